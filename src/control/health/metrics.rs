//! Health-check metrics: `xvs_health_checks_total{service,real,result}` and the
//! `xvs_health_check_duration_seconds{type}` histogram, kept by the health thread and read by
//! the Prometheus exporter (`control::metrics`) at scrape time. Control plane only, so a mutex is fine; series of real servers
//! no longer checked are dropped when the checks are updated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::datapath::ServiceKey;

/// Upper bounds (seconds) of the duration histogram's buckets.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Counts {
    service: String,
    success: u64,
    failure: u64,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    checks: HashMap<(ServiceKey, SocketAddr), Counts>,
    durations: HashMap<&'static str, Histogram>,
}

/// The health-check metrics (see the module documentation).
#[derive(Debug, Default)]
pub struct HealthMetrics {
    inner: Mutex<Inner>,
}

impl HealthMetrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure the series of a checked real server exist (at 0 before its first probe).
    pub fn ensure(&self, service: ServiceKey, name: &str, real: SocketAddr) {
        let mut i = self.lock();
        let c = i.checks.entry((service, real)).or_default();
        if c.service != name {
            c.service = name.to_string();
        }
    }

    /// Keeps only the real servers for which `keep` is true.
    pub fn retain(&self, keep: impl Fn(&ServiceKey, &SocketAddr) -> bool) {
        self.lock().checks.retain(|(s, r), _| keep(s, r));
    }

    /// Counts one probe of `real` in `service` by a check of type `kind`.
    pub fn record(
        &self,
        service: ServiceKey,
        name: &str,
        real: SocketAddr,
        kind: &'static str,
        ok: bool,
        took: Duration,
    ) {
        let mut i = self.lock();
        let c = i.checks.entry((service, real)).or_default();
        if c.service != name {
            c.service = name.to_string();
        }
        if ok {
            c.success += 1;
        } else {
            c.failure += 1;
        }
        let h = i.durations.entry(kind).or_default();
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[b] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Every checked real server's probe counts, by service name then address.
    pub fn checks(&self) -> Vec<CheckCounts> {
        let i = self.lock();
        let mut rows: Vec<CheckCounts> = i
            .checks
            .iter()
            .map(|((_, real), c)| CheckCounts {
                service: c.service.clone(),
                real: *real,
                success: c.success,
                failure: c.failure,
            })
            .collect();
        rows.sort_by(|a, b| (&a.service, a.real).cmp(&(&b.service, b.real)));
        rows
    }

    /// The duration histogram of every check type that probed, by type.
    pub fn durations(&self) -> Vec<Durations> {
        let i = self.lock();
        let mut kinds: Vec<Durations> = i
            .durations
            .iter()
            .map(|(kind, h)| Durations {
                kind,
                buckets: h.buckets,
                count: h.count,
                sum: h.sum,
            })
            .collect();
        kinds.sort_by_key(|d| d.kind);
        kinds
    }
}

/// The probe counts of one checked real server (`xvs_health_checks_total`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckCounts {
    /// The service's name.
    pub service: String,
    pub real: SocketAddr,
    pub success: u64,
    pub failure: u64,
}

/// The probe durations of one check type (`xvs_health_check_duration_seconds`).
#[derive(Clone, Debug, PartialEq)]
pub struct Durations {
    pub kind: &'static str,
    /// Observations at or below each bound of [`BUCKETS`] and above the previous one (not
    /// cumulative); `count` minus their sum were above the last.
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;

    fn key() -> ServiceKey {
        ServiceKey {
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn counts_probes_and_buckets_durations() {
        let m = HealthMetrics::default();
        let r1: SocketAddr = "198.18.1.11:80".parse().unwrap();
        let r2: SocketAddr = "198.18.1.12:80".parse().unwrap();
        m.ensure(key(), "web", r2);
        let ms = Duration::from_millis;
        m.record(key(), "web", r1, "http", true, ms(3));
        m.record(key(), "web", r1, "http", false, ms(300));
        m.record(key(), "web", r1, "http", true, Duration::from_secs(20));
        let counts = |real, success, failure| CheckCounts {
            service: "web".into(),
            real,
            success,
            failure,
        };
        // r1 sorts before r2; r2 has its series at 0 before its first probe.
        assert_eq!(m.checks(), vec![counts(r1, 2, 1), counts(r2, 0, 0)]);
        let d = m.durations();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].kind, d[0].count), ("http", 3));
        // 3 ms in the 0.005 bucket, 300 ms in the 0.5 one, 20 s past the last.
        let mut want = [0; BUCKETS.len()];
        want[2] = 1;
        want[8] = 1;
        assert_eq!(d[0].buckets, want);
        assert!((d[0].sum - 20.303).abs() < 1e-9, "{}", d[0].sum);
        m.retain(|_, r| *r == r2);
        assert_eq!(m.checks(), vec![counts(r2, 0, 0)]);
    }
}
