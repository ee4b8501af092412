//! What the VRRP thread publishes: each instance's state for `xvs ctl vrrp` and the
//! `xvs_vrrp_*` metrics, and the counters of rejected packets by reason. Written by the driver
//! (`super::driver`) when something changed, read by the admin socket and the exporter.

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

    /// Replaces the published instances (the driver, when something changed).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_publishes_instances_and_every_error_reason() {
        let st = VrrpStatus::default();
        let vi = InstanceStatus {
            name: "VI_1".into(),
            vrid: 51,
            state: State::Master,
            priority: 200,
            master: None,
            transitions: 2,
            adverts_sent: 7,
            adverts_received: 3,
        };
        st.set_instances(vec![vi.clone()]);
        st.count_error(VrrpError::Ttl);
        assert_eq!(st.instances(), vec![vi]);
        let errors = st.errors();
        assert_eq!(errors.len(), VrrpError::COUNT);
        assert!(errors.contains(&("ttl", 1)), "{errors:?}");
        assert!(errors.contains(&("checksum", 0)), "{errors:?}");
        assert_eq!(state_gauge(State::Master), 2);
    }
}
