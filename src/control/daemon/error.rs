//! Why `xvs run` stops (at start-up or while running) or refuses a reload: one typed error per
//! cause, built from the subsystems' own errors. The text a user sees is [`DaemonError::report`]:
//! `xvs: <one line>`, or for a configuration that does not validate, its `FILE:LINE:COL: message`
//! lines as they are. Each variant's wording is part of the user interface (tests match it).

use std::io;

use crate::conntrack::TableAllocError;
use crate::control::announce::AnnounceError;
use crate::control::config::{self, ConfigErrors};
use crate::control::iflock::LockError;
use crate::control::netlink::NetlinkError;
use crate::datapath::filter::FilterError;
use crate::datapath::worker::WorkerError;
use crate::datapath::xsk::XskError;
use crate::vrrp::driver::DriverError;

/// An error of a subsystem whose error type is its own business (VRRP's spec resolution and
/// steering gate): kept whole as the source, shown as it displays.
pub type SubsystemError = Box<dyn std::error::Error + Send + Sync>;

/// A fatal start-up or run-time error, or a refused reload.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("must run as root (CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW are needed to attach XDP programs and open AF_XDP sockets)")]
    NotRoot,
    /// The file does not validate: its diagnostics, one per line.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A VRRP instance cannot run with this configuration.
    #[error("{0}")]
    Vrrp(SubsystemError),
    #[error("{0}")]
    Signals(io::Error),
    #[error("cannot read {dir}: {source}")]
    QueueDir { dir: String, source: io::Error },
    #[error("datapath.interfaces: every interface must use the same queues ({first_iface} has {first:?}, {iface} has {queues:?})")]
    QueuesDiffer {
        first_iface: String,
        first: Vec<u32>,
        iface: String,
        queues: Vec<u32>,
    },
    #[error("datapath.interfaces: no receive queue to attach to")]
    NoQueue,
    #[error("datapath.workers: {workers} workers for {queues} queues is not supported yet (one worker per queue; use `workers: auto`)")]
    WorkerCount { workers: u32, queues: usize },
    #[error("interface {name}: {source}")]
    Interface { name: String, source: NetlinkError },
    #[error("{0}")]
    Netlink(#[from] NetlinkError),
    #[error("{0}")]
    ConnTable(#[from] TableAllocError),
    #[error("cannot identify the network namespace: {0}")]
    Netns(io::Error),
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("{0}")]
    Filter(#[from] FilterError),
    #[error("{0}")]
    Xsk(#[from] XskError),
    /// The XDP filter's steering could not be written (through the VRRP gate).
    #[error("{0}")]
    Steering(SubsystemError),
    #[error("{0}")]
    Worker(#[from] WorkerError),
    #[error("cannot read the CPUs this process may use: {0}")]
    Affinity(io::Error),
    #[error("cannot move the control threads to CPU(s) {cpus}: {source}")]
    ControlCpus { cpus: String, source: io::Error },
    /// A thread could not be started; `what` names it ("the health checks").
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        source: io::Error,
    },
    /// The VRRP thread could not start (its sockets, its waker or the thread itself).
    #[error("cannot start VRRP: {0}")]
    VrrpStart(DriverError),
    /// The metrics or admin server could not listen on `addr` (`setting` names the key).
    #[error("{setting} {addr}: {source}")]
    Listen {
        setting: &'static str,
        addr: String,
        source: io::Error,
    },
    /// The announcer's device could not be set up.
    #[error("{0}")]
    Announce(#[from] AnnounceError),
    #[error("{0} stopped unexpectedly; stopping")]
    ThreadStopped(&'static str),
    #[error("{0} panicked")]
    ThreadPanicked(&'static str),
    /// A reload changes a setting that only a restart applies.
    #[error("{0} changed: restart xvs to apply it")]
    RestartNeeded(&'static str),
    #[error("service `{service}`: forwarding changed from {from} to {to}; its open connections cannot change method: remove the service in one reload and add it back in the next, or restart xvs")]
    ForwardingChanged {
        service: String,
        from: config::Forwarding,
        to: config::Forwarding,
    },
}

impl DaemonError {
    /// The text shown to the user: `xvs: <message>`, or the configuration's diagnostics as is.
    pub fn report(&self) -> String {
        match self {
            DaemonError::Config(e) => e.to_string().trim_end().to_string(),
            other => format!("xvs: {other}"),
        }
    }

    /// `what` ("the health checks") could not be started.
    pub(super) fn spawn(what: &'static str) -> impl FnOnce(io::Error) -> DaemonError {
        move |source| DaemonError::Spawn { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_prefix_every_error_but_the_configurations_diagnostics() {
        assert_eq!(
            DaemonError::RestartNeeded("datapath section").report(),
            "xvs: datapath section changed: restart xvs to apply it"
        );
        let io = io::Error::from_raw_os_error(libc::EAGAIN);
        let e = DaemonError::spawn("the expiry janitor")(io);
        assert!(
            e.report()
                .starts_with("xvs: cannot start the expiry janitor: "),
            "{}",
            e.report()
        );
        let text = "datapath:\n  interfaces: []\n  bogus: 1\n";
        let errors = config::Config::from_str_named(text, "t.yaml", &|_: &str| true).unwrap_err();
        let report = DaemonError::Config(errors).report();
        assert!(report.starts_with("t.yaml:"), "{report}");
        assert!(!report.ends_with('\n'));
    }
}
