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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::datapath::counters::{traffic_totals, Traffic, TrafficKey};
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

/// Everything the readers need: the workers' counters and the last rates.
pub struct Stats {
    shared: Arc<Shared>,
    workers: Vec<Arc<WorkerCounters>>,
    rates: ArcSwap<HashMap<TrafficKey, Rates>>,
    last: Mutex<Option<(Instant, HashMap<TrafficKey, Totals>)>>,
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
    pub fn new(shared: Arc<Shared>, workers: Vec<Arc<WorkerCounters>>) -> Stats {
        Stats {
            shared,
            workers,
            rates: ArcSwap::from_pointee(HashMap::new()),
            last: Mutex::new(None),
        }
    }

    /// Packet and byte totals of every identity, summed over the workers.
    pub fn traffic(&self) -> HashMap<TrafficKey, Traffic> {
        traffic_totals(self.workers.iter().map(|w| &**w))
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
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, previous)) = last.as_ref() {
            let seconds = now.saturating_duration_since(*then).as_secs_f64();
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
        *last = Some((now, current));
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
        let stats = Stats::new(shared.clone(), vec![a.counters.clone(), b.counters.clone()]);
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
}
