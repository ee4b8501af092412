//! Real-server selection: the [`Scheduler`] trait and one file per IPVS algorithm.
//!
//! A scheduler sees a flow key and the service's real servers, nothing of packets. Each worker
//! owns its own scheduler instances (built with [`build`] when the snapshot changes), so `pick`
//! takes `&mut self` and needs no lock; per-real connection counts shared by all workers live in
//! [`RealStats`].
//!
//! Common rule (IPVS): a real server with weight 0 is quiescent and takes no new flow
//! ([`RealServer::is_available`], the one availability rule every scheduler applies). IPVS also
//! skips servers flagged overloaded (`upper_threshold`); xvs refuses thresholds for now, so no
//! server is ever overloaded.
//!
//! | kind | file | picks |
//! |---|---|---|
//! | `rr` | [`rr`] | next available in order |
//! | `wrr` | [`wrr`] | IPVS weighted round robin |
//! | `lc` | [`lc`] | least `active * 256 + inactive` |
//! | `wlc` | [`wlc`] | least `(active * 256 + inactive) / weight` |
//! | `sed` | [`sed`] | least `(active + 1) / weight` |
//! | `nq` | [`nq`] | first with no active connection, else as `sed` |
//! | `fo` | [`fo`] | highest weight |
//! | `ovf` | [`ovf`] | highest weight whose active connections do not exceed it |
//!
//! Ties go to the first server in the list in every one of them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::flow::FlowKey;

pub mod fo;
pub mod lc;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod wlc;
pub mod wrr;

pub use fo::WeightedFailover;
pub use lc::LeastConnection;
pub use nq::NeverQueue;
pub use ovf::Overflow;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use wlc::WeightedLeastConnection;
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

    /// IPVS's `ip_vs_dest_conn_overhead`: `active * 256 + inactive` (an ESTABLISHED connection
    /// weighs 256 times one in any other state). Used by `lc` and `wlc`.
    #[inline]
    pub fn conn_overhead(&self) -> u64 {
        self.active_connections()
            .saturating_mul(256)
            .saturating_add(self.inactive_connections())
    }
}

/// The index of the available server with the smallest `load(r) / weight`, the first on ties:
/// the IPVS `wlc`/`sed` loop. The candidate (load `loh`, weight `lw`) is replaced by server `d`
/// only when `loh * d.weight > load(d) * lw`, compared without division (128-bit products, so
/// they cannot overflow). `None` when no server is available.
#[inline]
pub(crate) fn least_by_ratio(reals: &[RealServer], load: fn(&RealServer) -> u64) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, r) in reals.iter().enumerate() {
        if !r.is_available() {
            continue;
        }
        let doh = load(r);
        let better = match least {
            None => true,
            Some((_, loh, lw)) => {
                u128::from(loh) * u128::from(r.weight) > u128::from(doh) * u128::from(lw)
            }
        };
        if better {
            least = Some((i, doh, r.weight));
        }
    }
    least.map(|(i, _, _)| i)
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
    /// Least connection.
    Lc,
    /// Weighted least connection (the IPVS default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Overflow connection.
    Ovf,
}

impl SchedulerKind {
    /// The name used in the config and by ipvsadm.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
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
        SchedulerKind::Lc => Box::new(LeastConnection::new()),
        SchedulerKind::Wlc => Box::new(WeightedLeastConnection::new()),
        SchedulerKind::Sed => Box::new(ShortestExpectedDelay::new()),
        SchedulerKind::Nq => Box::new(NeverQueue::new()),
        SchedulerKind::Fo => Box::new(WeightedFailover::new()),
        SchedulerKind::Ovf => Box::new(Overflow::new()),
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

    /// Real servers from `(weight, active, inactive)`, the counts set on their [`RealStats`].
    pub fn loaded(spec: &[(u32, u64, u64)]) -> Vec<RealServer> {
        let weights: Vec<u32> = spec.iter().map(|s| s.0).collect();
        let r = reals(&weights);
        for (real, (_, active, inactive)) in r.iter().zip(spec) {
            real.stats.active.store(*active, Ordering::Relaxed);
            real.stats.inactive.store(*inactive, Ordering::Relaxed);
        }
        r
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
