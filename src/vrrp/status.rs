//! What the VRRP thread publishes: each instance's state for `xvs ctl vrrp` and the
//! `xvs_vrrp_*` metrics, and the counters of rejected packets by reason. Written by the driver
//! (`super::driver`) when something changed, read by the admin socket and the exporter.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{State, VrrpError};

/// One instance as `xvs ctl vrrp` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    pub state: State,
    pub priority: u8,
    /// The current master: ourselves (our primary address) in MASTER, else the last master
    /// heard.
    pub master: Option<IpAddr>,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
}

/// What the VRRP thread publishes for the admin socket and the metrics.
#[derive(Debug, Default)]
pub struct VrrpStatus {
    instances: Mutex<Vec<InstanceStatus>>,
    errors: [AtomicU64; VrrpError::COUNT],
}

/// The `xvs_vrrp_state` value of a state (CONTRACT.md: 0 init, 1 backup, 2 master, 3 fault).
pub const fn state_gauge(s: State) -> u8 {
    match s {
        State::Initialize => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

impl VrrpStatus {
    pub fn instances(&self) -> Vec<InstanceStatus> {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_instances(&self, v: Vec<InstanceStatus>) {
        *self.instances.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    pub fn count_error(&self, e: VrrpError) {
        self.errors[e.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        VrrpError::ALL
            .iter()
            .map(|e| (e.label(), self.errors[e.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// The `xvs_vrrp_*` families in the Prometheus text format.
    pub fn render(&self, o: &mut String) {
        let insts = self.instances();
        let fam = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let per = |o: &mut String, name: &str, get: &dyn Fn(&InstanceStatus) -> u64| {
            for i in &insts {
                let _ = writeln!(
                    o,
                    "{name}{{instance=\"{}\",vrid=\"{}\"}} {}",
                    i.name.replace('\\', "\\\\").replace('"', "\\\""),
                    i.vrid,
                    get(i)
                );
            }
        };
        fam(
            o,
            "xvs_vrrp_state",
            "gauge",
            "VRRP instance state: 0 init, 1 backup, 2 master, 3 fault.",
        );
        per(o, "xvs_vrrp_state", &|i| u64::from(state_gauge(i.state)));
        fam(
            o,
            "xvs_vrrp_transitions_total",
            "counter",
            "VRRP state changes of the instance.",
        );
        per(o, "xvs_vrrp_transitions_total", &|i| i.transitions);
        fam(
            o,
            "xvs_vrrp_adverts_sent_total",
            "counter",
            "VRRP advertisements sent (each unicast peer counts once).",
        );
        per(o, "xvs_vrrp_adverts_sent_total", &|i| i.adverts_sent);
        fam(
            o,
            "xvs_vrrp_adverts_received_total",
            "counter",
            "VRRP advertisements received that passed every check.",
        );
        per(o, "xvs_vrrp_adverts_received_total", &|i| {
            i.adverts_received
        });
        fam(
            o,
            "xvs_vrrp_errors_total",
            "counter",
            "Received VRRP packets rejected, by reason.",
        );
        for (reason, n) in self.errors() {
            let _ = writeln!(o, "xvs_vrrp_errors_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_renders_the_contract_metrics() {
        let st = VrrpStatus::default();
        st.set_instances(vec![InstanceStatus {
            name: "VI_1".into(),
            vrid: 51,
            state: State::Master,
            priority: 200,
            master: None,
            transitions: 2,
            adverts_sent: 7,
            adverts_received: 3,
        }]);
        st.count_error(VrrpError::Ttl);
        let mut o = String::new();
        st.render(&mut o);
        for want in [
            "xvs_vrrp_state{instance=\"VI_1\",vrid=\"51\"} 2",
            "xvs_vrrp_transitions_total{instance=\"VI_1\",vrid=\"51\"} 2",
            "xvs_vrrp_adverts_sent_total{instance=\"VI_1\",vrid=\"51\"} 7",
            "xvs_vrrp_adverts_received_total{instance=\"VI_1\",vrid=\"51\"} 3",
            "xvs_vrrp_errors_total{reason=\"ttl\"} 1",
            "xvs_vrrp_errors_total{reason=\"checksum\"} 0",
            "# TYPE xvs_vrrp_errors_total counter",
        ] {
            assert!(o.contains(want), "missing {want} in\n{o}");
        }
    }
}
