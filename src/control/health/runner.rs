//! The health-check threads: one scheduler thread owning the [`Checks`] and a pool of probe
//! threads (started as needed, at most [`MAX_PROBES_IN_FLIGHT`]). The scheduler hands due probes
//! to the pool over a channel, applies their results as they come back, and takes new plans from
//! the daemon ([`HealthHandle::update`]) at any time. Log lines go to stderr, as the daemon's.
//!
//! On stop the scheduler thread ends within 100 ms; probe threads are not waited for (a probe may
//! block up to its timeout, which may be long): they end with their probe (an exec probe kills
//! its command at once) or with the process.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};

use super::probe::{self, Job, Outcome};
use super::{Checks, HealthMetrics, Plan};
use crate::datapath::Shared;
use crate::sync::ring::SyncProducer;

/// Probes running at the same time, at most (the pool's size).
pub const MAX_PROBES_IN_FLIGHT: usize = 8;
/// Longest sleep of the scheduler thread: how late it may notice the stop flag.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// The daemon's side: hands new plans to the health thread.
#[derive(Clone, Debug)]
pub struct HealthHandle {
    plans: Sender<Plan>,
}

impl HealthHandle {
    /// Replaces the set of checks (after a start or a reload).
    pub fn update(&self, plan: Plan) {
        let _ = self.plans.send(plan);
    }
}

type Result_ = (u64, Outcome, Duration);

/// Starts the health thread; it applies `on_failure: remove` to `shared`'s connection table
/// (each removed connection enqueued as a Delete on `sync`, when connection sync is on) and
/// counts into `metrics`, and stops (with its pool) once `stop` is set.
pub fn spawn(
    shared: Arc<Shared>,
    metrics: Arc<HealthMetrics>,
    sync: Option<SyncProducer>,
    stop: Arc<AtomicBool>,
) -> io::Result<(HealthHandle, JoinHandle<()>)> {
    let (plan_tx, plan_rx) = channel::unbounded::<Plan>();
    let handle = std::thread::Builder::new()
        .name("xvs-health".into())
        .spawn(move || {
            let mut checks = Checks::new(metrics);
            checks.set_sync(sync);
            run(shared, checks, stop, plan_rx);
        })?;
    Ok((HealthHandle { plans: plan_tx }, handle))
}

fn run(shared: Arc<Shared>, mut checks: Checks, stop: Arc<AtomicBool>, mut plans: Receiver<Plan>) {
    let epoch = Instant::now();
    let now = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let (job_tx, job_rx) = channel::unbounded::<Job>();
    let (res_tx, res_rx) = channel::unbounded::<Result_>();
    let mut pool: Vec<JoinHandle<()>> = Vec::new();
    let mut outstanding = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for job in checks.due(now()) {
            outstanding += 1;
            let _ = job_tx.send(job);
        }
        while pool.len() < outstanding.min(MAX_PROBES_IN_FLIGHT) {
            match spawn_prober(pool.len(), job_rx.clone(), res_tx.clone(), stop.clone()) {
                Ok(h) => pool.push(h),
                Err(e) => {
                    log::error!("Cannot start a health-check thread: {e}");
                    break;
                }
            }
        }
        let t = now();
        let wait = checks
            .next_due()
            .map_or(MAX_WAIT, |d| Duration::from_nanos(d.saturating_sub(t)))
            .min(MAX_WAIT);
        channel::select! {
            recv(plans) -> p => match p {
                Ok(plan) => {
                    // Service changes (checkers added, sorry servers), at info.
                    for l in checks.update(plan, now()) {
                        log::info!("{l}");
                    }
                }
                // The daemon dropped its handle: keep checking the last plan.
                Err(_) => plans = channel::never(),
            },
            recv(res_rx) -> r => {
                if let Ok((id, outcome, took)) = r {
                    outstanding = outstanding.saturating_sub(1);
                    for l in checks.complete(id, now(), &outcome, took, &shared.conntrack) {
                        log::info!("{l}");
                    }
                }
            },
            default(wait) => {}
        }
    }
    // Detached: see the module documentation.
    drop(job_tx);
    drop(pool);
}

fn spawn_prober(
    n: usize,
    jobs: Receiver<Job>,
    results: Sender<Result_>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("xvs-probe-{n}"))
        .spawn(move || {
            for job in jobs.iter() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (outcome, took) = probe::run(&job, &stop);
                if results.send((job.id, outcome, took)).is_err() {
                    break;
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::{CheckType, HealthCheck, OnFailure, Quorum};
    use crate::control::health::{RealPlan, ServicePlan};
    use crate::datapath::{NextHopTable, ServiceKey, Snapshot};
    use crate::flow::Proto;
    use crate::sched::RealStats;
    use std::net::{SocketAddr, TcpListener};

    /// The threads end to end on loopback: a listening port stays up, a closed one goes down
    /// within interval × fall, and comes back after rise checks once it listens again.
    #[test]
    fn checks_run_on_the_pool_and_mark_servers_down_and_up() {
        let snap = Snapshot::new(1, vec![], vec![], Default::default(), false);
        let shared = Arc::new(Shared::new(snap, NextHopTable::new(vec![], []), 16));
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(HealthMetrics::default());
        let (h, thread) = spawn(shared, metrics.clone(), None, stop.clone()).unwrap();
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let check = HealthCheck {
            kind: CheckType::Tcp,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
            rise: 2,
            fall: 2,
            ..HealthCheck::default()
        };
        let real = |addr: SocketAddr| RealPlan {
            addr,
            weight: 1,
            stats: Arc::new(RealStats::default()),
            check: Some(check.clone()),
        };
        let reals = vec![real(up.local_addr().unwrap()), real(gone_addr)];
        let stats: Vec<_> = reals.iter().map(|r| r.stats.clone()).collect();
        h.update(Plan {
            services: vec![ServicePlan {
                name: "web".into(),
                key: ServiceKey {
                    vip: "198.18.0.100".parse().unwrap(),
                    port: 80,
                    proto: Proto::Tcp,
                },
                on_failure: OnFailure::Remove,
                quorum: Quorum::default(),
                sorry: None,
                state: Arc::default(),
                reals,
            }],
        });
        let wait_for = |what: &str, f: &dyn Fn() -> bool| {
            let end = Instant::now() + Duration::from_secs(5);
            while !f() {
                assert!(Instant::now() < end, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait_for("the closed port to go down", &|| !stats[1].is_up());
        assert!(stats[0].is_up());
        let back = TcpListener::bind(gone_addr).unwrap();
        wait_for("the port to come back up", &|| stats[1].is_up());
        assert!(metrics
            .checks()
            .iter()
            .any(|c| c.service == "web" && c.real == gone_addr && c.failure > 0));
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        drop(back);
    }
}
