//! Real-server selection: the [`Scheduler`] trait and one file per IPVS algorithm.
//!
//! A scheduler sees a flow key and the service's real servers, nothing of packets. Each worker
//! owns its own scheduler instances (built with [`build`] when the snapshot changes), so `pick`
//! takes `&mut self` and needs no lock; per-real connection counts shared by all workers live in
//! [`RealStats`].
//!
//! Common rule (IPVS): a real server takes no new flow when its weight is 0 (quiescent), when
//! health checks hold it down, or when it is over its upper threshold
//! ([`RealServer::is_available`], the one availability rule every scheduler applies). Its
//! existing flows continue in all three cases.
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
//! | `sh` | [`sh`] | a bucket table indexed by a hash of the source address (and port) |
//! | `dh` | [`dh`] | a bucket table indexed by a hash of the destination address |
//! | `mh` | [`mh`] | a Maglev lookup table indexed by a hash of the source address (and port) |
//! | `lblc` | [`lblc`] | the destination's cached server until it is overloaded, else as `wlc` |
//! | `lblcr` | [`lblcr`] | the least loaded of the destination's server set, grown when overloaded |
//! | `twos` | [`twos`] | the less loaded (`(active * 256 + inactive) / weight`) of two drawn by weight |
//!
//! Ties go to the first server in the list in every one of the connection-count schedulers
//! (in `twos`, to the first of its two draws).
//!
//! **The control plane computes, the data plane looks up.** `sh`, `dh` and `mh` pick from tables
//! computed from the server list and weights. [`prepare`] builds them off the packet path (the
//! control plane calls it when it builds a snapshot); they live in a [`Prepared`] behind an `Arc`
//! in the snapshot's service, and [`build`], called by each worker when the snapshot changes,
//! only clones that `Arc`. The three share one table-lookup scheduler ([`table::TableLookup`]:
//! the lookup at the flow's home entry and the fallback rule for an unavailable server); each
//! one's file says how its table is built, what it hashes and which entries its fallback
//! probes. A changed server list or weight means a new snapshot and new tables,
//! swapped in whole. Health and overload do not rebuild anything: they show through
//! [`RealServer::is_available`] when a table entry is looked up (the `*-fallback` flags decide
//! what happens then). `lblc` and `lblcr` keep per-destination state that changes on the packet
//! path; each worker owns its own bounded table (see their files).
//!
//! No scheduler allocates in `pick`; none reads a clock (time comes in as `now`); the one that
//! draws at random (`twos`) uses its own generator, no syscall.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::flow::{FlowKey, Nanos};

pub mod dh;
pub mod fo;
mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod locality;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod persist;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod table;
pub mod twos;
pub mod wlc;
pub mod wrr;

pub use dh::{DestinationHashTable, DestinationHashing};
pub use fo::WeightedFailover;
pub use lblc::LocalityLeastConnection;
pub use lblcr::LocalityLeastConnectionReplicated;
pub use lc::LeastConnection;
pub use mh::{MaglevHashing, MaglevTable};
pub use nq::NeverQueue;
pub use ovf::Overflow;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::{SourceHashTable, SourceHashing};
pub use table::{LookupTable, TableLookup};
pub use twos::WeightedTwoChoices;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

/// Counters and dynamic state of one real server, shared by every worker and kept across
/// reloads.
///
/// Besides the connection counts, two flags decide whether the server may take new flows
/// ([`RealServer::is_available`]):
/// - `up`: false while health checks hold the server down (set by the control plane);
/// - `overloaded`: IPVS's `IP_VS_DEST_F_OVERLOAD`, kept by [`RealStats::conn_added`] and
///   [`RealStats::conn_removed`] from the thresholds (`upper_threshold`/`lower_threshold`, IPVS's
///   `-x`/`-y`): set when a new connection brings active + inactive to the upper threshold or
///   above; cleared when a removal brings the total below the lower threshold, or, without a
///   lower threshold, below 3/4 of the upper one.
#[derive(Debug)]
pub struct RealStats {
    /// Connections scheduled to this server since it was added.
    pub connections_total: AtomicU64,
    /// Connections currently ESTABLISHED (IPVS "ActiveConn").
    pub active: AtomicU64,
    /// Other tracked connections (IPVS "InActConn").
    pub inactive: AtomicU64,
    up: AtomicBool,
    overloaded: AtomicBool,
    upper_threshold: AtomicU32,
    lower_threshold: AtomicU32,
}

impl Default for RealStats {
    /// No connections, up, no thresholds.
    fn default() -> Self {
        RealStats {
            connections_total: AtomicU64::new(0),
            active: AtomicU64::new(0),
            inactive: AtomicU64::new(0),
            up: AtomicBool::new(true),
            overloaded: AtomicBool::new(false),
            upper_threshold: AtomicU32::new(0),
            lower_threshold: AtomicU32::new(0),
        }
    }
}

impl RealStats {
    /// Whether health checks hold the server up (true when it has no health check).
    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the server up or down; returns whether that changed its state.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed) != up
    }

    /// Whether the server is over its upper threshold (see the type's documentation).
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Active + inactive connections (IPVS's `ip_vs_dest_totalconns`).
    #[inline]
    pub fn total_connections(&self) -> u64 {
        self.active
            .load(Ordering::Relaxed)
            .saturating_add(self.inactive.load(Ordering::Relaxed))
    }

    /// Sets the thresholds (0 = none) and re-evaluates the overload flag against the current
    /// total, as an `ipvsadm -e` does.
    pub fn set_thresholds(&self, upper: u32, lower: u32) {
        self.upper_threshold.store(upper, Ordering::Relaxed);
        self.lower_threshold.store(lower, Ordering::Relaxed);
        if upper == 0 {
            self.overloaded.store(false, Ordering::Relaxed);
        } else if self.total_connections() >= u64::from(upper) {
            self.overloaded.store(true, Ordering::Relaxed);
        } else {
            self.conn_removed_check();
        }
    }

    /// The thresholds `(upper, lower)`.
    pub fn thresholds(&self) -> (u32, u32) {
        (
            self.upper_threshold.load(Ordering::Relaxed),
            self.lower_threshold.load(Ordering::Relaxed),
        )
    }

    /// Called after a connection was counted (IPVS `ip_vs_bind_dest`).
    #[inline]
    pub fn conn_added(&self) {
        let upper = self.upper_threshold.load(Ordering::Relaxed);
        if upper != 0 && self.total_connections() >= u64::from(upper) {
            self.overloaded.store(true, Ordering::Relaxed);
        }
    }

    /// Called after a connection was uncounted (IPVS `ip_vs_unbind_dest`).
    #[inline]
    pub fn conn_removed(&self) {
        if self.overloaded.load(Ordering::Relaxed) {
            self.conn_removed_check();
        }
    }

    fn conn_removed_check(&self) {
        let (upper, lower) = self.thresholds();
        let total = self.total_connections();
        let clear = if lower != 0 {
            total < u64::from(lower)
        } else if upper != 0 {
            total * 4 < u64::from(upper) * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }
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

    /// Whether the server may take a new flow: weight > 0 (not quiescent), up, not overloaded.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.weight > 0 && self.stats.is_up() && !self.stats.is_overloaded()
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
    least_by_ratio_among(reals, 0..reals.len(), load)
}

/// [`least_by_ratio`] over the servers `candidates` (indices into `reals`, visited in the order
/// given, so "first on ties" means first in that order; indices out of range are skipped).
#[inline]
pub(crate) fn least_by_ratio_among(
    reals: &[RealServer],
    candidates: impl IntoIterator<Item = usize>,
    load: fn(&RealServer) -> u64,
) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for i in candidates {
        let Some(r) = reals.get(i) else {
            continue;
        };
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
    /// rebuilt. `now` is the caller's monotonic clock (read once per batch); only the schedulers
    /// with expiring state (`lblc`, `lblcr`) look at it, and it must not go backwards between
    /// calls on one instance (a step back is treated as no time passing).
    fn pick(&mut self, now: Nanos, key: &FlowKey, reals: &[RealServer]) -> Option<usize>;
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
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Mh,
    /// Weighted power of two choices.
    Twos,
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
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scheduler flags of `sh` and `mh` (`ipvsadm -b`, `scheduler_flags:` in the config).
/// Other schedulers ignore them (the config refuses a flag with another scheduler).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// `sh-port` / `mh-port`: hash the source port together with the source address.
    pub hash_port: bool,
    /// `sh-fallback` / `mh-fallback`: when the hashed server is unavailable, look further in the
    /// table instead of refusing the flow.
    pub fallback: bool,
}

/// What the control plane computes for a service's scheduler, off the packet path: the flags
/// and, for `sh`, `dh` and `mh`, the lookup table, shared by every worker through an `Arc`.
///
/// Made by [`prepare`] for one real-server list; [`build`] uses it for that list. A `Prepared`
/// is immutable: a changed server list or weight gets a new one.
#[derive(Clone, Debug)]
pub struct Prepared {
    flags: SchedFlags,
    mh_table_size: u32,
    table: Table,
}

impl Default for Prepared {
    /// No flags, no table, the default Maglev size: what the schedulers without tables need.
    fn default() -> Self {
        Prepared {
            flags: SchedFlags::default(),
            mh_table_size: mh::DEFAULT_TABLE_SIZE,
            table: Table::None,
        }
    }
}

/// The precomputed table of one service, if its scheduler has one.
#[derive(Clone, Debug)]
enum Table {
    None,
    Sh(Arc<SourceHashTable>),
    Dh(Arc<DestinationHashTable>),
    Mh(Arc<MaglevTable>),
}

impl Prepared {
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// The Maglev table size `mh` uses (the configured one; meaningful for `mh` only).
    pub fn mh_table_size(&self) -> u32 {
        self.mh_table_size
    }

    /// Entries of the precomputed table: buckets for `sh` and `dh`, `M` for `mh` (0 when it
    /// has no server with weight > 0), 0 for the schedulers without a table.
    pub fn table_len(&self) -> usize {
        match &self.table {
            Table::None => 0,
            Table::Sh(t) => t.len(),
            Table::Dh(t) => t.len(),
            Table::Mh(t) => t.len(),
        }
    }

    /// Whether `self` and `other` hold the very same table (one `Arc`), or both none.
    pub fn shares_table_with(&self, other: &Prepared) -> bool {
        match (&self.table, &other.table) {
            (Table::None, Table::None) => true,
            (Table::Sh(a), Table::Sh(b)) => Arc::ptr_eq(a, b),
            (Table::Dh(a), Table::Dh(b)) => Arc::ptr_eq(a, b),
            (Table::Mh(a), Table::Mh(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Computes what scheduler `kind` needs for `reals` off the packet path: for `sh` the source
/// bucket table, for `dh` the destination bucket table, for `mh` the Maglev lookup table of
/// `mh_table_size` entries (a prime; see [`mh`]); for the others nothing but the flags.
pub fn prepare(
    kind: SchedulerKind,
    flags: SchedFlags,
    reals: &[RealServer],
    mh_table_size: u32,
) -> Prepared {
    let table = match kind {
        SchedulerKind::Sh => Table::Sh(Arc::new(SourceHashTable::build(reals, flags))),
        SchedulerKind::Dh => Table::Dh(Arc::new(DestinationHashTable::build(reals))),
        SchedulerKind::Mh => Table::Mh(Arc::new(MaglevTable::build(reals, mh_table_size, flags))),
        _ => Table::None,
    };
    Prepared {
        flags,
        mh_table_size,
        table,
    }
}

/// A fresh scheduler of `kind` for `reals`, using the tables of `prepared` (made by [`prepare`]
/// for the same `reals`): for `sh`, `dh` and `mh` this only clones an `Arc`. Should `prepared`
/// lack the table `kind` needs, or hold one made for a list of another length, the table is
/// computed here instead (correct, but the work [`prepare`] exists to keep off the workers).
/// `lblc` and `lblcr` allocate their bounded per-worker tables here.
pub fn build(kind: SchedulerKind, prepared: &Prepared, reals: &[RealServer]) -> Box<dyn Scheduler> {
    let flags = prepared.flags;
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::new()),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::new(reals)),
        SchedulerKind::Lc => Box::new(LeastConnection::new()),
        SchedulerKind::Wlc => Box::new(WeightedLeastConnection::new()),
        SchedulerKind::Sed => Box::new(ShortestExpectedDelay::new()),
        SchedulerKind::Nq => Box::new(NeverQueue::new()),
        SchedulerKind::Fo => Box::new(WeightedFailover::new()),
        SchedulerKind::Ovf => Box::new(Overflow::new()),
        SchedulerKind::Lblc => Box::new(LocalityLeastConnection::new(reals)),
        SchedulerKind::Lblcr => Box::new(LocalityLeastConnectionReplicated::new(reals)),
        SchedulerKind::Twos => Box::new(WeightedTwoChoices::new()),
        SchedulerKind::Sh => Box::new(SourceHashing::new(match &prepared.table {
            Table::Sh(t) if t.fits(reals.len()) => t.clone(),
            _ => Arc::new(SourceHashTable::build(reals, flags)),
        })),
        SchedulerKind::Dh => Box::new(DestinationHashing::new(match &prepared.table {
            Table::Dh(t) if t.fits(reals.len()) => t.clone(),
            _ => Arc::new(DestinationHashTable::build(reals)),
        })),
        SchedulerKind::Mh => Box::new(MaglevHashing::new(match &prepared.table {
            Table::Mh(t) if t.fits(reals.len()) => t.clone(),
            _ => Arc::new(MaglevTable::build(reals, prepared.mh_table_size, flags)),
        })),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
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
        (0..n).map(|i| s.pick(0, &key(i as u32), reals)).collect()
    }

    /// A flow from `src` port `sport` to `dst`, port 80.
    fn flow_between(src: std::net::IpAddr, sport: u16, dst: std::net::IpAddr) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src,
            dst,
            sport,
            dport: 80,
        }
    }

    /// A flow from `src` (an IPv4 address as an integer) port `sport` to `dst`.
    pub fn flow(src: u32, sport: u16, dst: u32) -> FlowKey {
        flow_between(src.to_be_bytes().into(), sport, dst.to_be_bytes().into())
    }

    /// A flow from `src` (an IPv6 address as an integer) port `sport` to `dst`.
    pub fn flow6(src: u128, sport: u16, dst: u128) -> FlowKey {
        flow_between(src.to_be_bytes().into(), sport, dst.to_be_bytes().into())
    }

    /// `2001:2::/48` plus `low`: IPv6 test addresses as integers.
    pub const fn v6(low: u128) -> u128 {
        0x2001_0002_0000_0000_0000_0000_0000_0000 | low
    }

    /// Real servers `[2001:2:0:1::(10 + i)]:80` of weights `weights`.
    pub fn reals6(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .zip(0u128..)
            .map(|(w, i)| {
                let ip = std::net::Ipv6Addr::from_bits(v6((1 << 64) | (10 + i)));
                RealServer::new(SocketAddr::from((ip, 80)), *w)
            })
            .collect()
    }

    /// The chi-square statistic of histogram `h` against an even spread.
    pub fn chi2(h: &[usize]) -> f64 {
        let expect = h.iter().sum::<usize>() as f64 / h.len() as f64;
        h.iter()
            .map(|&o| (o as f64 - expect).powi(2) / expect)
            .sum()
    }

    /// How many of `picks` went to each of `n` servers (`None`s not counted).
    pub fn histogram(picks: impl IntoIterator<Item = Option<usize>>, n: usize) -> Vec<usize> {
        let mut h = vec![0; n];
        for i in picks.into_iter().flatten() {
            h[i] += 1;
        }
        h
    }

    /// Sets `active` on server `i`.
    pub fn set_active(reals: &[RealServer], i: usize, active: u64) {
        reals[i].stats.active.store(active, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &RealStats, n: u64) {
        for _ in 0..n {
            s.inactive.fetch_add(1, Ordering::Relaxed);
            s.conn_added();
        }
    }

    fn remove(s: &RealStats, n: u64) {
        for _ in 0..n {
            s.inactive.fetch_sub(1, Ordering::Relaxed);
            s.conn_removed();
        }
    }

    #[test]
    fn upper_threshold_overloads_and_lower_threshold_clears() {
        let s = RealStats::default();
        s.set_thresholds(10, 5);
        add(&s, 9);
        assert!(!s.is_overloaded());
        add(&s, 1);
        assert!(
            s.is_overloaded(),
            "10 connections reach the upper threshold"
        );
        remove(&s, 5);
        assert!(s.is_overloaded(), "5 is not below the lower threshold 5");
        remove(&s, 1);
        assert!(!s.is_overloaded(), "4 < 5 clears");
    }

    #[test]
    fn without_lower_threshold_three_quarters_of_upper_clears() {
        let s = RealStats::default();
        s.set_thresholds(8, 0);
        add(&s, 8);
        assert!(s.is_overloaded());
        remove(&s, 2);
        assert!(s.is_overloaded(), "6 * 4 = 24 is not below 8 * 3");
        remove(&s, 1);
        assert!(!s.is_overloaded(), "5 * 4 < 24 clears");
    }

    #[test]
    fn no_thresholds_never_overload_and_setting_them_reevaluates() {
        let s = RealStats::default();
        add(&s, 1000);
        assert!(!s.is_overloaded());
        s.set_thresholds(500, 0);
        assert!(
            s.is_overloaded(),
            "an edit below the current total overloads at once"
        );
        s.set_thresholds(0, 0);
        assert!(!s.is_overloaded(), "removing the threshold clears");
    }

    #[test]
    fn availability_needs_weight_up_and_not_overloaded() {
        let r = RealServer::new(SocketAddr::from(([198, 18, 1, 10], 80)), 1);
        assert!(r.is_available());
        assert!(r.stats.set_up(false));
        assert!(!r.is_available(), "down");
        assert!(!r.stats.set_up(false), "no change");
        r.stats.set_up(true);
        r.stats.set_thresholds(1, 0);
        add(&r.stats, 1);
        assert!(!r.is_available(), "overloaded");
        remove(&r.stats, 1);
        assert!(r.is_available());
        let quiescent = RealServer::new(r.addr, 0);
        assert!(!quiescent.is_available(), "weight 0");
    }
}
