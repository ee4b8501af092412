//! Per-service and per-real statistics as the control plane reads them: packet and byte totals
//! summed over the workers' [`TrafficBlock`](crate::datapath::counters::TrafficBlock)s, the
//! connection totals of the real servers, and the rates `xvs ctl list --rate` shows.
//!
//! # Rates
//!
//! IPVS's estimator samples every counter every 2 seconds and keeps a smoothed rate. xvs's
//! estimator thread (`xvs-rates`) also samples every [`RATE_INTERVAL`] (2 s), and keeps, per
//! service and per real server, the rate over the last interval: `(total now - total 2 s ago) /
//! elapsed`, rounded down, for connections (CPS), packets (InPPS, OutPPS) and bytes (InBPS,
//! OutBPS). Departure: no exponential smoothing, so a rate shows a change within one interval
//! and is exactly the last interval's average. Until two samples exist (the first 2 s) every
//! rate is 0; an identity that appeared since the previous sample has rate 0 until the next.
//!
//! # Worker load
//!
//! The same samples give each worker's load over the last interval ([`WorkerLoad`]): received
//! and transmitted frames per second, the busy share (`busy_ns` gained over the interval's
//! length, clamped to 0..=1: `xvs_worker_busy_ratio`) and the mean frames per batch that had
//! frames. All 0 until two samples exist. The busy share is the last interval's, not an average
//! since start, so a worker that saturates shows it within one interval.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::datapath::counters::{traffic_totals, BatchFrames, Traffic, TrafficKey};
use crate::datapath::{Shared, Snapshot, WorkerCounters};

/// How often the estimator samples (as IPVS's estimator does).
pub const RATE_INTERVAL: Duration = Duration::from_secs(2);

/// Per-second rates of one service or real server (all 0 until two samples exist).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// One sample of one identity: connections and traffic totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub traffic: Traffic,
}

/// One worker's load over the last estimator interval (all 0 before the first interval).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkerLoad {
    pub queue: u32,
    /// Frames received per second.
    pub rx_pps: u64,
    /// Frames transmitted per second.
    pub tx_pps: u64,
    /// Share of the interval spent in batches that had frames, 0..=1.
    pub busy_ratio: f64,
    /// Mean frames per batch that had frames (0 when none had).
    pub frames_per_batch: f64,
}

/// The workers' loads over the last interval, and its length (zero before the first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerLoads {
    pub interval: Duration,
    pub workers: Vec<WorkerLoad>,
}

/// One sample of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSample {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub busy_ns: u64,
    pub batch_frames: BatchFrames,
}

impl WorkerSample {
    /// The counters of `c` now.
    pub fn read(c: &WorkerCounters) -> WorkerSample {
        WorkerSample {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            busy_ns: c.busy_ns.load(Ordering::Relaxed),
            batch_frames: c.batch_frames.read(),
        }
    }
}

/// The load of worker `queue` between two samples `interval` apart (all 0 for an empty
/// interval; a counter that went backwards counts as 0).
pub fn load_between(
    queue: u32,
    then: &WorkerSample,
    now: &WorkerSample,
    interval: Duration,
) -> WorkerLoad {
    let seconds = interval.as_secs_f64();
    if seconds <= 0.0 {
        return WorkerLoad {
            queue,
            ..WorkerLoad::default()
        };
    }
    let busy = now.busy_ns.saturating_sub(then.busy_ns) as f64 / 1e9;
    let frames = now.batch_frames.sum.saturating_sub(then.batch_frames.sum);
    let batches = (now.batch_frames.count()).saturating_sub(then.batch_frames.count());
    WorkerLoad {
        queue,
        rx_pps: per_second(now.rx_packets, then.rx_packets, seconds),
        tx_pps: per_second(now.tx_packets, then.tx_packets, seconds),
        busy_ratio: (busy / seconds).clamp(0.0, 1.0),
        frames_per_batch: if batches == 0 {
            0.0
        } else {
            frames as f64 / batches as f64
        },
    }
}

/// The previous sample: when, every identity's totals, every worker's counters.
type Sample = (Instant, HashMap<TrafficKey, Totals>, Vec<WorkerSample>);

/// Everything the readers need: the workers' counters and the last rates.
pub struct Stats {
    shared: Arc<Shared>,
    /// (queue, counters) of each worker.
    workers: Vec<(u32, Arc<WorkerCounters>)>,
    rates: ArcSwap<HashMap<TrafficKey, Rates>>,
    loads: ArcSwap<WorkerLoads>,
    last: Mutex<Option<Sample>>,
}

/// Connections scheduled to each identity of `snap` (a service's: its real servers' and sorry
/// server's sum, as `xvs_service_connections_total`).
fn connections(snap: &Snapshot) -> HashMap<TrafficKey, u64> {
    let mut out = HashMap::new();
    for s in &snap.services {
        let mut total = 0u64;
        for r in s.reals.iter().chain(&s.sorry) {
            let n = r.stats.connections_total.load(Ordering::Relaxed);
            total = total.wrapping_add(n);
            *out.entry(TrafficKey {
                service: s.key,
                real: Some(r.addr),
            })
            .or_insert(0) += n;
        }
        out.insert(
            TrafficKey {
                service: s.key,
                real: None,
            },
            total,
        );
    }
    out
}

/// `(now - then) / seconds`, 0 when the counter went backwards (an identity removed and added
/// again between two samples starts from 0).
// A float-to-integer `as` saturates (NaN gives 0): the wanted clamp for a rate.
#[allow(clippy::cast_possible_truncation)]
fn per_second(now: u64, then: u64, seconds: f64) -> u64 {
    if seconds <= 0.0 {
        return 0;
    }
    (now.saturating_sub(then) as f64 / seconds) as u64
}

/// The rates between two samples `seconds` apart.
pub fn rates_between(then: &Totals, now: &Totals, seconds: f64) -> Rates {
    Rates {
        cps: per_second(now.connections, then.connections, seconds),
        in_pps: per_second(now.traffic.in_packets, then.traffic.in_packets, seconds),
        out_pps: per_second(now.traffic.out_packets, then.traffic.out_packets, seconds),
        in_bps: per_second(now.traffic.in_bytes, then.traffic.in_bytes, seconds),
        out_bps: per_second(now.traffic.out_bytes, then.traffic.out_bytes, seconds),
    }
}

impl Stats {
    /// Statistics over `workers`, (queue, counters) of each.
    pub fn new(shared: Arc<Shared>, workers: Vec<(u32, Arc<WorkerCounters>)>) -> Stats {
        let loads = WorkerLoads {
            interval: Duration::ZERO,
            workers: workers
                .iter()
                .map(|(queue, _)| WorkerLoad {
                    queue: *queue,
                    ..WorkerLoad::default()
                })
                .collect(),
        };
        Stats {
            shared,
            workers,
            rates: ArcSwap::from_pointee(HashMap::new()),
            loads: ArcSwap::from_pointee(loads),
            last: Mutex::new(None),
        }
    }

    /// Packet and byte totals of every identity, summed over the workers.
    pub fn traffic(&self) -> HashMap<TrafficKey, Traffic> {
        traffic_totals(self.workers.iter().map(|(_, w)| &**w))
    }

    /// Each worker's load over the last interval (see the module documentation).
    pub fn loads(&self) -> Arc<WorkerLoads> {
        self.loads.load_full()
    }

    /// Connections and traffic of every identity of the current snapshot.
    pub fn totals(&self) -> HashMap<TrafficKey, Totals> {
        let traffic = self.traffic();
        connections(&self.shared.snapshot.load())
            .into_iter()
            .map(|(k, connections)| {
                let traffic = traffic.get(&k).copied().unwrap_or_default();
                (
                    k,
                    Totals {
                        connections,
                        traffic,
                    },
                )
            })
            .collect()
    }

    /// The rates of the last interval (see the module documentation).
    pub fn rates(&self) -> Arc<HashMap<TrafficKey, Rates>> {
        self.rates.load_full()
    }

    /// Takes a sample at `now` and updates the rates from the previous one.
    pub fn sample(&self, now: Instant) {
        let current = self.totals();
        let workers: Vec<WorkerSample> = self
            .workers
            .iter()
            .map(|(_, c)| WorkerSample::read(c))
            .collect();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, previous, previous_workers)) = last.as_ref() {
            let interval = now.saturating_duration_since(*then);
            let loads = self
                .workers
                .iter()
                .zip(previous_workers.iter().zip(&workers))
                .map(|((queue, _), (p, w))| load_between(*queue, p, w, interval))
                .collect();
            self.loads.store(Arc::new(WorkerLoads {
                interval,
                workers: loads,
            }));
            let seconds = interval.as_secs_f64();
            let rates = current
                .iter()
                .map(|(k, t)| {
                    let r = previous
                        .get(k)
                        .map_or_else(Rates::default, |p| rates_between(p, t, seconds));
                    (*k, r)
                })
                .collect();
            self.rates.store(Arc::new(rates));
        }
        *last = Some((now, current, workers));
    }
}

/// The key of a real server of `service`.
pub fn real_key(service: crate::datapath::ServiceKey, real: SocketAddr) -> TrafficKey {
    TrafficKey {
        service,
        real: Some(real),
    }
}

/// The key of `service` itself.
pub fn service_key(service: crate::datapath::ServiceKey) -> TrafficKey {
    TrafficKey {
        service,
        real: None,
    }
}

/// Starts the estimator thread (`xvs-rates`): a sample every [`RATE_INTERVAL`] until `stop`.
pub fn spawn_estimator(
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xvs-rates".into())
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    stats.sample(now);
                    next = now + RATE_INTERVAL;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::Timeouts;
    use crate::datapath::counters::Dir;
    use crate::datapath::nexthop::NextHopTable;
    use crate::datapath::snapshot::Forwarding;
    use crate::datapath::{Processor, Service, ServiceKey};
    use crate::flow::Proto;
    use crate::sched::{RealServer, SchedulerKind};

    fn web() -> ServiceKey {
        ServiceKey {
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_are_the_last_interval_average() {
        let then = Totals {
            connections: 10,
            traffic: Traffic {
                in_packets: 100,
                in_bytes: 10_000,
                out_packets: 50,
                out_bytes: 5_000,
            },
        };
        let now = Totals {
            connections: 30,
            traffic: Traffic {
                in_packets: 301,
                in_bytes: 30_000,
                out_packets: 50,
                out_bytes: 9_000,
            },
        };
        assert_eq!(
            rates_between(&then, &now, 2.0),
            Rates {
                cps: 10,
                in_pps: 100,
                out_pps: 0,
                in_bps: 10_000,
                out_bps: 2_000
            }
        );
        // Backwards (removed and added again): 0, never a wrapped huge number.
        assert_eq!(rates_between(&now, &then, 2.0), Rates::default());
        assert_eq!(rates_between(&then, &now, 0.0), Rates::default());
    }

    #[test]
    fn sample_sums_workers_and_computes_rates() {
        let svc = Service::new(
            "web",
            web(),
            Forwarding::Nat,
            SchedulerKind::Rr,
            vec![RealServer::new(sa("198.18.1.11:80"), 1)],
        );
        let snap = Snapshot::new(1, vec![], vec![svc], Timeouts::default(), false);
        let shared = Arc::new(Shared::new(snap, NextHopTable::new(vec![], []), 64));
        let (a, b) = (
            Processor::new(shared.clone()),
            Processor::new(shared.clone()),
        );
        let stats = Stats::new(
            shared.clone(),
            vec![(0, a.counters.clone()), (1, b.counters.clone())],
        );
        let t0 = Instant::now();
        stats.sample(t0);
        assert!(stats.rates().is_empty(), "one sample: no rates yet");
        let real = sa("198.18.1.11:80");
        for _ in 0..10 {
            a.counters.traffic.load().count(0, real, Dir::In, 100);
        }
        for _ in 0..4 {
            b.counters.traffic.load().count(0, real, Dir::Out, 1000);
        }
        shared.snapshot.load().services[0].reals[0]
            .stats
            .connections_total
            .store(6, Ordering::Relaxed);
        let totals = stats.totals();
        let t = totals[&real_key(web(), real)];
        assert_eq!(
            (t.connections, t.traffic.in_packets, t.traffic.out_bytes),
            (6, 10, 4000)
        );
        assert_eq!(totals[&service_key(web())], t);
        stats.sample(t0 + Duration::from_secs(2));
        let r = stats.rates()[&service_key(web())];
        assert_eq!(
            r,
            Rates {
                cps: 3,
                in_pps: 5,
                out_pps: 2,
                in_bps: 500,
                out_bps: 2000
            }
        );
    }

    /// Bumps worker `c` as `n` batches of `frames` frames each, busy `busy_ns` in all.
    fn work(c: &WorkerCounters, n: usize, frames: usize, busy_ns: u64) {
        for _ in 0..n {
            c.batch_frames.record(frames);
        }
        let total = (n * frames) as u64;
        c.rx_packets.fetch_add(total, Ordering::Relaxed);
        c.tx_packets.fetch_add(total / 2, Ordering::Relaxed);
        c.busy_ns.fetch_add(busy_ns, Ordering::Relaxed);
    }

    #[test]
    fn worker_load_is_the_last_interval_not_an_average_since_start() {
        let shared = crate::control::testing::web_shared(SchedulerKind::Rr, vec![]);
        let (a, b) = (
            Arc::new(WorkerCounters::default()),
            Arc::new(WorkerCounters::default()),
        );
        let stats = Stats::new(shared, vec![(0, a.clone()), (3, b.clone())]);
        let zero = |q| WorkerLoad {
            queue: q,
            ..WorkerLoad::default()
        };
        // Before the first interval: a zero row per worker, interval 0.
        let want = WorkerLoads {
            interval: Duration::ZERO,
            workers: vec![zero(0), zero(3)],
        };
        assert_eq!(*stats.loads(), want);
        // Busy for an hour before the first sample: not part of any interval.
        work(&a, 1000, 64, 3_600 * 1_000_000_000);
        let t0 = Instant::now();
        stats.sample(t0);
        assert_eq!(*stats.loads(), want, "one sample: no interval yet");
        // Interval 1 (2 s): a is busy 1.9 s with full batches, b idle.
        work(&a, 10_000, 64, 1_900_000_000);
        stats.sample(t0 + Duration::from_secs(2));
        let l = stats.loads();
        assert_eq!(l.interval, Duration::from_secs(2));
        assert_eq!(l.workers[0].queue, 0);
        assert!((l.workers[0].busy_ratio - 0.95).abs() < 1e-9, "{l:?}");
        assert_eq!(l.workers[0].frames_per_batch, 64.0);
        assert_eq!(
            (l.workers[0].rx_pps, l.workers[0].tx_pps),
            (320_000, 160_000)
        );
        assert_eq!(l.workers[1], zero(3));
        // Interval 2 (4 s): a idle, b lightly loaded (1 and 3 frames per batch).
        work(&b, 100, 1, 2_000_000);
        work(&b, 100, 3, 2_000_000);
        stats.sample(t0 + Duration::from_secs(6));
        let l = stats.loads();
        assert_eq!(l.workers[0], zero(0), "idle: 0, whatever came before");
        assert!((l.workers[1].busy_ratio - 0.001).abs() < 1e-9, "{l:?}");
        assert_eq!(l.workers[1].frames_per_batch, 2.0);
        assert_eq!(l.workers[1].rx_pps, 100);
    }

    #[test]
    fn load_between_clamps_and_survives_empty_intervals() {
        let then = WorkerSample::default();
        let now = WorkerSample {
            busy_ns: 3_000_000_000,
            ..WorkerSample::default()
        };
        // More busy time than the interval (a sample taken late): at most 1.
        let l = load_between(1, &then, &now, Duration::from_secs(2));
        assert_eq!(l.busy_ratio, 1.0);
        assert_eq!(l.frames_per_batch, 0.0);
        assert_eq!(load_between(1, &then, &now, Duration::ZERO).busy_ratio, 0.0);
        // Backwards: 0.
        assert_eq!(
            load_between(1, &now, &then, Duration::from_secs(2)).busy_ratio,
            0.0
        );
    }
}
