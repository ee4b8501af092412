//! Health-check metrics: `xvs_health_checks_total{service,real,result}` and the
//! `xvs_health_check_duration_seconds{type}` histogram, kept by the health thread and rendered
//! by the Prometheus exporter. Control plane only, so a mutex is fine; series of real servers
//! no longer checked are dropped when the checks are updated.

use std::collections::HashMap;
use std::fmt::Write as _;
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

    /// Appends both metric families in the Prometheus text format.
    pub fn render(&self, o: &mut String) {
        let i = self.lock();
        let _ = writeln!(
            o,
            "# HELP xvs_health_checks_total Health-check probes of a real server by result.\n# TYPE xvs_health_checks_total counter"
        );
        let mut rows: Vec<_> = i.checks.iter().collect();
        rows.sort_by(|a, b| (&a.1.service, a.0 .1).cmp(&(&b.1.service, b.0 .1)));
        for ((_, real), c) in rows {
            for (result, n) in [("success", c.success), ("failure", c.failure)] {
                let _ = writeln!(
                    o,
                    "xvs_health_checks_total{{service=\"{}\",real=\"{real}\",result=\"{result}\"}} {n}",
                    esc(&c.service)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP xvs_health_check_duration_seconds How long a health-check probe took, by check type.\n# TYPE xvs_health_check_duration_seconds histogram"
        );
        let mut kinds: Vec<_> = i.durations.iter().collect();
        kinds.sort_by_key(|(k, _)| **k);
        for (kind, h) in kinds {
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    o,
                    "xvs_health_check_duration_seconds_bucket{{type=\"{kind}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                o,
                "xvs_health_check_duration_seconds_bucket{{type=\"{kind}\",le=\"+Inf\"}} {}\nxvs_health_check_duration_seconds_sum{{type=\"{kind}\"}} {}\nxvs_health_check_duration_seconds_count{{type=\"{kind}\"}} {}",
                h.count, h.sum, h.count
            );
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    fn renders_counters_and_a_cumulative_histogram() {
        let m = HealthMetrics::default();
        let r1: SocketAddr = "198.18.1.11:80".parse().unwrap();
        let r2: SocketAddr = "198.18.1.12:80".parse().unwrap();
        m.ensure(key(), "web", r2);
        let ms = Duration::from_millis;
        m.record(key(), "web", r1, "http", true, ms(3));
        m.record(key(), "web", r1, "http", false, ms(300));
        m.record(key(), "web", r1, "http", true, Duration::from_secs(20));
        let mut o = String::new();
        m.render(&mut o);
        for want in [
            "# TYPE xvs_health_checks_total counter\n",
            "xvs_health_checks_total{service=\"web\",real=\"198.18.1.11:80\",result=\"success\"} 2\n",
            "xvs_health_checks_total{service=\"web\",real=\"198.18.1.11:80\",result=\"failure\"} 1\n",
            "xvs_health_checks_total{service=\"web\",real=\"198.18.1.12:80\",result=\"success\"} 0\n",
            "# TYPE xvs_health_check_duration_seconds histogram\n",
            "xvs_health_check_duration_seconds_bucket{type=\"http\",le=\"0.001\"} 0\n",
            "xvs_health_check_duration_seconds_bucket{type=\"http\",le=\"0.005\"} 1\n",
            "xvs_health_check_duration_seconds_bucket{type=\"http\",le=\"0.5\"} 2\n",
            "xvs_health_check_duration_seconds_bucket{type=\"http\",le=\"10\"} 2\n",
            "xvs_health_check_duration_seconds_bucket{type=\"http\",le=\"+Inf\"} 3\n",
            "xvs_health_check_duration_seconds_count{type=\"http\"} 3\n",
        ] {
            assert!(o.contains(want), "missing {want:?} in\n{o}");
        }
        let sum: f64 = o
            .lines()
            .find_map(|l| l.strip_prefix("xvs_health_check_duration_seconds_sum{type=\"http\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.303).abs() < 1e-9, "{sum}");
        // r1 sorts before r2.
        assert!(o.find("198.18.1.11:80").unwrap() < o.find("198.18.1.12:80").unwrap());
        m.retain(|_, r| *r == r2);
        let mut o = String::new();
        m.render(&mut o);
        assert!(!o.contains("198.18.1.11:80"), "{o}");
    }
}
