//! Real-server selection: the [`Scheduler`] trait and one file per IPVS algorithm.
//!
//! A scheduler sees a flow key and the service's real servers, nothing of packets. Each worker
//! owns its own scheduler instances (built with [`build`] when the snapshot changes), so `pick`
//! takes `&mut self` and needs no lock; per-real connection counts shared by all workers live in
//! [`RealStats`].
//!
//! Common rule (IPVS): a real server with weight 0 is quiescent and takes no new flow.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::flow::FlowKey;

pub mod rr;
pub mod wrr;

pub use rr::RoundRobin;
pub use wrr::WeightedRoundRobin;

/// Counters of one real server, shared by every worker and kept across reloads.
#[derive(Debug, Default)]
pub struct RealStats {
    /// Connections scheduled to this server since it was added.
    pub connections_total: AtomicU64,
    /// Connections currently ESTABLISHED (IPVS "ActiveConn").
    pub active: AtomicU64,
    /// Other tracked connections (IPVS "InActConn").
    pub inactive: AtomicU64,
}

/// A real server as the schedulers see it.
#[derive(Clone, Debug)]
pub struct RealServer {
    pub addr: SocketAddr,
    /// Relative weight; 0 = quiescent.
    pub weight: u32,
    pub stats: Arc<RealStats>,
}

impl RealServer {
    pub fn new(addr: SocketAddr, weight: u32) -> RealServer {
        RealServer {
            addr,
            weight,
            stats: Arc::default(),
        }
    }

    /// Whether the server may take a new flow.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.weight > 0
    }

    pub fn active_connections(&self) -> u64 {
        self.stats.active.load(Ordering::Relaxed)
    }

    pub fn inactive_connections(&self) -> u64 {
        self.stats.inactive.load(Ordering::Relaxed)
    }
}

/// Picks the real server for a new flow.
pub trait Scheduler: Send {
    /// The index in `reals` of the server for the flow `key`, or `None` if no server can take it.
    /// `reals` is the same slice (same order, same length) on every call until the scheduler is
    /// rebuilt.
    fn pick(&mut self, key: &FlowKey, reals: &[RealServer]) -> Option<usize>;
}

/// The scheduling algorithms (`scheduler:` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
}

impl SchedulerKind {
    /// The name used in the config and by ipvsadm.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fresh scheduler of `kind` for `reals`.
pub fn build(kind: SchedulerKind, reals: &[RealServer]) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::new()),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::new(reals)),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::flow::Proto;

    pub fn reals(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| RealServer::new(SocketAddr::from(([198, 18, 1, 10 + i as u8], 80)), *w))
            .collect()
    }

    pub fn key(n: u32) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: std::net::IpAddr::from(n.to_be_bytes()),
            dst: "198.18.0.100".parse().unwrap(),
            sport: 40000,
            dport: 80,
        }
    }

    /// The first `n` picks.
    pub fn sequence(s: &mut dyn Scheduler, reals: &[RealServer], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|i| s.pick(&key(i as u32), reals)).collect()
    }
}
