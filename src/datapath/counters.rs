//! Per-worker packet counters.
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer; the metrics exporter reads all
//! of them and sums at scrape time. Single-writer counters are bumped with a relaxed load+store
//! (no locked read-modify-write on the packet path).
//!
//! # Per-service and per-real traffic ([`TrafficBlock`])
//!
//! Each worker also owns a [`TrafficBlock`]: packet and byte counters in both directions
//! ("in" = client → real server, IPVS's InPkts/InBytes; "out" = real server → client) for every
//! service of the snapshot it was built for and every real server (and sorry server) of each
//! service. Bytes are IP packet lengths (the IPv4 total length), as IPVS counts `skb->len` at L3.
//! Invariants:
//!
//! - **One writer.** Only the owning worker bumps a block (relaxed load+store, like the other
//!   counters); readers (the exporter, the admin socket) sum the blocks of all workers.
//! - **One block per snapshot generation, built off the packet path.** When the worker's
//!   snapshot generation changes (at a batch boundary, where the schedulers are rebuilt), it
//!   builds a new block for the new snapshot, **carrying over** the totals of every (service,
//!   real server) identity the old block also had, then publishes it
//!   ([`WorkerCounters::traffic`]) and drops the old one. So counts are monotonic and survive
//!   reloads for pairs that stay; a removed real server's counts go with it (as in IPVS, where a
//!   removed destination's counters go), and a service's own totals stay as long as the service
//!   does, whatever happens to its real servers.
//! - **Identities, not indices, cross generations.** A block carries the snapshot it was built
//!   for; readers map its slots to ([`ServiceKey`], real address) with [`TrafficBlock::for_each`].
//! - A packet of a connection whose real server left the snapshot (draining after a reload) is
//!   counted for its service only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::conntrack::Timeouts;
use crate::datapath::fullnat::ToaSkip;
use crate::datapath::{DropReason, ServiceKey, Snapshot};

/// Counters of one worker.
#[derive(Debug)]
pub struct WorkerCounters {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Frames handed back as [`crate::datapath::Verdict::Pass`].
    pub passed: AtomicU64,
    pub new_connections: AtomicU64,
    /// Half-open entries evicted from a full connection table for a new connection.
    pub conntrack_evictions: AtomicU64,
    /// FULLNAT TOA options inserted, and skipped by reason (see `datapath::fullnat`).
    pub toa_inserted: AtomicU64,
    pub toa_skipped: [AtomicU64; 4],
    drops: [AtomicU64; DropReason::COUNT],
    /// Batches processed and batches that had at least one frame.
    pub batches: AtomicU64,
    pub busy_batches: AtomicU64,
    /// Nanoseconds spent in batches that received frames (`xvs_worker_busy_seconds_total`): each
    /// such batch adds the time from its own clock read to the loop's next one (see
    /// `datapath::worker`). Invariant: `busy_ns` never exceeds the time the worker has run, since
    /// the spans added are disjoint; a batch that received nothing, and the spin or `poll()`
    /// wait after it, is never busy.
    pub busy_ns: AtomicU64,
    /// Frames received per batch that had frames (`xvs_worker_batch_frames`).
    pub batch_frames: BatchHistogram,
    /// Frames held while their next hop's MAC was resolved (see `worker`); each then left or
    /// was counted as a `no_neighbour` drop.
    pub neighbour_held: AtomicU64,
    /// The worker's current per-service and per-real traffic counters (see the module
    /// documentation); replaced whole by the worker when the snapshot generation changes.
    pub traffic: ArcSwap<TrafficBlock>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            new_connections: AtomicU64::new(0),
            conntrack_evictions: AtomicU64::new(0),
            toa_inserted: AtomicU64::new(0),
            toa_skipped: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            batches: AtomicU64::new(0),
            busy_batches: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            batch_frames: BatchHistogram::default(),
            neighbour_held: AtomicU64::new(0),
            traffic: ArcSwap::from_pointee(TrafficBlock::empty()),
        }
    }
}

/// Adds `n` to a single-writer counter.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl WorkerCounters {
    /// Counts one drop. Only the owning worker may call this.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason.index()], 1);
    }

    /// Counts a TOA that was not inserted. Only the owning worker may call this.
    #[inline]
    pub fn count_toa_skip(&self, skip: ToaSkip) {
        bump(&self.toa_skipped[toa_skip_index(skip)], 1);
    }

    /// TOA options skipped for `skip` so far.
    pub fn toa_skips(&self, skip: ToaSkip) -> u64 {
        self.toa_skipped[toa_skip_index(skip)].load(Ordering::Relaxed)
    }

    /// Drops counted for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }
}

/// Upper bounds (`le`) of the [`BatchHistogram`] buckets below `+Inf`.
pub const BATCH_FRAMES_LE: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Frames received per non-empty batch, as a Prometheus histogram with the bounds
/// [`BATCH_FRAMES_LE`] and `+Inf` (VPP's "vectors per call"): a worker whose batches are near
/// the batch size is saturated. Bucket `i` counts the batches of `BATCH_FRAMES_LE[i-1] < n <=
/// BATCH_FRAMES_LE[i]` frames (the last one those above 64): per bucket, not cumulative; the
/// exporter sums them into `le` buckets. One writer (the worker), one bucket and the sum bumped
/// per batch, never per frame. The count is the buckets' total (so `_count` always equals the
/// `+Inf` bucket).
#[derive(Debug, Default)]
pub struct BatchHistogram {
    buckets: [AtomicU64; 8],
    sum: AtomicU64,
}

/// What a [`BatchHistogram`] holds at one read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchFrames {
    /// Batches per bucket (not cumulative), `le` = 1, 2, 4, 8, 16, 32, 64, +Inf.
    pub buckets: [u64; 8],
    /// Frames in all those batches.
    pub sum: u64,
}

impl BatchFrames {
    /// Batches counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |a, b| a.wrapping_add(*b))
    }
}

/// The bucket of a batch of `frames` frames (at least 1): the smallest `i` with `frames <=
/// 2^i`, 7 above 64.
#[inline]
pub fn batch_bucket(frames: usize) -> usize {
    let bits = usize::BITS - frames.saturating_sub(1).leading_zeros();
    usize::try_from(bits).map_or(7, |b| b.min(7))
}

impl BatchHistogram {
    /// Counts one batch of `frames` frames (at least 1). Only the owning worker may call this.
    #[inline]
    pub fn record(&self, frames: usize) {
        if let Some(b) = self.buckets.get(batch_bucket(frames)) {
            bump(b, 1);
        }
        bump(&self.sum, frames as u64);
    }

    /// The counts now.
    pub fn read(&self) -> BatchFrames {
        BatchFrames {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// Every TOA skip reason, in counter order.
pub const TOA_SKIPS: [ToaSkip; 4] = [
    ToaSkip::NoOptionSpace,
    ToaSkip::Mtu,
    ToaSkip::NoRoom,
    ToaSkip::Fragment,
];

fn toa_skip_index(s: ToaSkip) -> usize {
    match s {
        ToaSkip::NoOptionSpace => 0,
        ToaSkip::Mtu => 1,
        ToaSkip::NoRoom => 2,
        ToaSkip::Fragment => 3,
    }
}

/// Packet and byte totals of one service or real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.in_packets = self.in_packets.wrapping_add(o.in_packets);
        self.in_bytes = self.in_bytes.wrapping_add(o.in_bytes);
        self.out_packets = self.out_packets.wrapping_add(o.out_packets);
        self.out_bytes = self.out_bytes.wrapping_add(o.out_bytes);
    }
}

/// Direction of a counted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client → real server (IPVS "in").
    In,
    /// Real server → client (IPVS "out").
    Out,
}

/// One counter slot (a service's or a real server's), written by one worker. A cache line of
/// its own, so that no slot shares a line with another worker's block (or anything else).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    in_packets: AtomicU64,
    in_bytes: AtomicU64,
    out_packets: AtomicU64,
    out_bytes: AtomicU64,
}

impl Slot {
    fn read(&self) -> Traffic {
        Traffic {
            in_packets: self.in_packets.load(Ordering::Relaxed),
            in_bytes: self.in_bytes.load(Ordering::Relaxed),
            out_packets: self.out_packets.load(Ordering::Relaxed),
            out_bytes: self.out_bytes.load(Ordering::Relaxed),
        }
    }

    fn add(&self, t: Traffic) {
        bump(&self.in_packets, t.in_packets);
        bump(&self.in_bytes, t.in_bytes);
        bump(&self.out_packets, t.out_packets);
        bump(&self.out_bytes, t.out_bytes);
    }

    #[inline]
    fn count(&self, dir: Dir, bytes: u64) {
        match dir {
            Dir::In => {
                bump(&self.in_packets, 1);
                bump(&self.in_bytes, bytes);
            }
            Dir::Out => {
                bump(&self.out_packets, 1);
                bump(&self.out_bytes, bytes);
            }
        }
    }
}

/// The positions in one [`TrafficBlock`] of a service's totals and of one of its real servers'
/// ([`TrafficBlock::slot_pair`]): what the flow cache keeps so that counting a cached flow's
/// frame does no lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotPair {
    service: u32,
    real: u32,
}

#[cfg(test)]
impl SlotPair {
    /// A pair at the given positions, for caches that never count with it.
    pub(crate) fn for_test(service: u32, real: u32) -> SlotPair {
        SlotPair { service, real }
    }
}

/// What a traffic slot counts: a service (`real: None`) or one of its real servers or its sorry
/// server (`real: Some(address as configured)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficKey {
    pub service: ServiceKey,
    pub real: Option<SocketAddr>,
}

/// One worker's traffic counters for one snapshot (see the module documentation). Slots of
/// service `i` start at `base[i]`: the service itself, then its `reals` in order, then its sorry
/// server if it has one.
#[derive(Debug)]
pub struct TrafficBlock {
    snap: Arc<Snapshot>,
    base: Vec<usize>,
    slots: Box<[Slot]>,
}

impl TrafficBlock {
    /// A block with no service (before the first snapshot).
    pub fn empty() -> TrafficBlock {
        TrafficBlock::new(
            Arc::new(Snapshot::new(0, vec![], vec![], Timeouts::default(), false)),
            None,
        )
    }

    /// A block for `snap`, starting from the totals `previous` has for the same identities.
    /// Allocates: call it off the packet path (at a batch boundary, once per reload).
    pub fn new(snap: Arc<Snapshot>, previous: Option<&TrafficBlock>) -> TrafficBlock {
        let mut base = Vec::with_capacity(snap.services.len());
        let mut n = 0;
        for s in &snap.services {
            base.push(n);
            n += 1 + s.reals.len() + usize::from(s.sorry.is_some());
        }
        let slots: Box<[Slot]> = (0..n).map(|_| Slot::default()).collect();
        let block = TrafficBlock { snap, base, slots };
        if let Some(old) = previous {
            old.for_each(|key, t| {
                if let Some(i) = block.slot_of_key(&key) {
                    block.slots[i].add(t);
                }
            });
        }
        block
    }

    /// The snapshot generation the block was built for.
    pub fn generation(&self) -> u64 {
        self.snap.generation
    }

    fn slot_of_key(&self, key: &TrafficKey) -> Option<usize> {
        let si = self.snap.service_index(&key.service)?;
        match key.real {
            None => self.base.get(si).copied(),
            Some(addr) => self.real_slot(si, addr),
        }
    }

    /// The slot of the real server (or sorry server) of service `si` that `addr` designates: its
    /// configured address, or with port 0 configured (all-port services) any port of its IP.
    #[inline]
    fn real_slot(&self, si: usize, addr: SocketAddr) -> Option<usize> {
        let svc = self.snap.services.get(si)?;
        let base = *self.base.get(si)?;
        let any_port = SocketAddr::new(addr.ip(), 0);
        if let Some(ri) = svc
            .real_position(addr)
            .or_else(|| (addr.port() != 0).then(|| svc.real_position(any_port))?)
        {
            return Some(base + 1 + ri);
        }
        svc.sorry
            .as_ref()
            .filter(|s| s.addr == addr || s.addr == any_port)
            .map(|_| base + 1 + svc.reals.len())
    }

    /// Counts one packet of `bytes` in direction `dir` for service `si` (an index into the
    /// block's snapshot, which is the worker's) and its real server `real` (the connection's
    /// real-server address). Only the owning worker may call this.
    #[inline]
    pub fn count(&self, si: usize, real: SocketAddr, dir: Dir, bytes: u64) {
        let Some(&base) = self.base.get(si) else {
            return;
        };
        if let Some(s) = self.slots.get(base) {
            s.count(dir, bytes);
        }
        if let Some(s) = self.real_slot(si, real).and_then(|i| self.slots.get(i)) {
            s.count(dir, bytes);
        }
    }

    /// Counts one packet of `bytes` in direction `dir` for service `si` and its traffic slot
    /// `slot` (`reals` in order, then the sorry server: what [`crate::conntrack::Origin::real`]
    /// records), with no lookup by address. Only the owning worker may call this.
    #[inline]
    pub fn count_slot(&self, si: usize, slot: usize, dir: Dir, bytes: u64) {
        match self.slot_pair(si, slot) {
            Some(pair) => self.count_pair(pair, dir, bytes),
            // A slot outside the service (another service's slots start after this one's
            // sorry server): the service alone.
            None => {
                if let Some(s) = self.base.get(si).and_then(|&base| self.slots.get(base)) {
                    s.count(dir, bytes);
                }
            }
        }
    }

    /// Where [`TrafficBlock::count_slot`] counts for service `si` and its traffic slot `slot`,
    /// for [`TrafficBlock::count_pair`]: `None` unless both are in the block (then
    /// `count_slot` counts the service alone, or nothing). Valid for this block only.
    #[inline]
    pub fn slot_pair(&self, si: usize, slot: usize) -> Option<SlotPair> {
        let base = *self.base.get(si)?;
        let last = self.base.get(si + 1).copied().unwrap_or(self.slots.len());
        let real = base + 1 + slot;
        Some(SlotPair {
            service: u32::try_from(base).ok()?,
            real: u32::try_from(real).ok().filter(|_| real < last)?,
        })
    }

    /// [`TrafficBlock::count_slot`] at the positions [`TrafficBlock::slot_pair`] gave (for this
    /// block). Only the owning worker may call this.
    #[inline]
    pub fn count_pair(&self, pair: SlotPair, dir: Dir, bytes: u64) {
        for at in [pair.service, pair.real] {
            if let Some(s) = self.slots.get(at as usize) {
                s.count(dir, bytes);
            }
        }
    }

    /// Calls `f` with every identity of the block and its totals.
    pub fn for_each(&self, mut f: impl FnMut(TrafficKey, Traffic)) {
        for (si, svc) in self.snap.services.iter().enumerate() {
            let base = self.base[si];
            let slot = |i: usize| self.slots[base + i].read();
            f(
                TrafficKey {
                    service: svc.key,
                    real: None,
                },
                slot(0),
            );
            for (ri, r) in svc.reals.iter().enumerate() {
                f(
                    TrafficKey {
                        service: svc.key,
                        real: Some(r.addr),
                    },
                    slot(1 + ri),
                );
            }
            if let Some(r) = &svc.sorry {
                f(
                    TrafficKey {
                        service: svc.key,
                        real: Some(r.addr),
                    },
                    slot(1 + svc.reals.len()),
                );
            }
        }
    }
}

/// The traffic totals of every identity, summed over `workers` (scrape time; allocates).
pub fn traffic_totals<'a>(
    workers: impl IntoIterator<Item = &'a WorkerCounters>,
) -> HashMap<TrafficKey, Traffic> {
    let mut out: HashMap<TrafficKey, Traffic> = HashMap::new();
    for w in workers {
        w.traffic
            .load()
            .for_each(|k, t| *out.entry(k).or_default() += t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_are_per_reason() {
        let c = WorkerCounters::default();
        c.count_drop(DropReason::NoRoute);
        c.count_drop(DropReason::NoRoute);
        c.count_drop(DropReason::TruncatedIpv4);
        assert_eq!(c.drops(DropReason::NoRoute), 2);
        assert_eq!(c.drops(DropReason::TruncatedIpv4), 1);
        assert_eq!(c.total_drops(), 3);
    }

    fn block_for(generation: u64, reals: &[&str], sorry: Option<&str>, port: u16) -> TrafficBlock {
        use crate::datapath::snapshot::Forwarding;
        use crate::datapath::Service;
        use crate::flow::Proto;
        use crate::sched::{RealServer, SchedulerKind};
        let mut svc = Service::new(
            "web",
            ServiceKey {
                vip: "198.18.0.100".parse().unwrap(),
                port,
                proto: Proto::Tcp,
            },
            Forwarding::Nat,
            SchedulerKind::Rr,
            reals
                .iter()
                .map(|a| RealServer::new(a.parse().unwrap(), 1))
                .collect(),
        );
        svc.sorry = sorry.map(|a| RealServer::new(a.parse().unwrap(), 1));
        let snap = Snapshot::new(generation, vec![], vec![svc], Timeouts::default(), false);
        TrafficBlock::new(Arc::new(snap), None)
    }

    fn totals(b: &TrafficBlock) -> std::collections::HashMap<Option<SocketAddr>, Traffic> {
        let mut m = std::collections::HashMap::new();
        b.for_each(|k, t| {
            m.insert(k.real, t);
        });
        m
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn traffic_counts_service_and_real_and_carries_over_by_identity() {
        let a = block_for(1, &["198.18.1.11:80", "198.18.1.12:80"], None, 80);
        a.count(0, sa("198.18.1.11:80"), Dir::In, 60);
        a.count(0, sa("198.18.1.12:80"), Dir::Out, 1500);
        // A real server that left the snapshot: its service still counts.
        a.count(0, sa("198.18.1.99:80"), Dir::In, 40);
        // An index beyond the block: nothing, no panic.
        a.count(7, sa("198.18.1.11:80"), Dir::In, 40);
        let t = totals(&a);
        assert_eq!(
            t[&None],
            Traffic {
                in_packets: 2,
                in_bytes: 100,
                out_packets: 1,
                out_bytes: 1500
            }
        );
        assert_eq!(t[&Some(sa("198.18.1.11:80"))].in_bytes, 60);
        assert_eq!(t[&Some(sa("198.18.1.12:80"))].out_packets, 1);

        // .12 removed, .13 added: .11 and the service keep their totals, .13 starts at 0.
        let b = block_for(2, &["198.18.1.13:80", "198.18.1.11:80"], None, 80);
        let b = TrafficBlock::new(b.snap.clone(), Some(&a));
        let t = totals(&b);
        assert_eq!(t[&None].in_packets, 2);
        assert_eq!(t[&Some(sa("198.18.1.11:80"))].in_bytes, 60);
        assert_eq!(t[&Some(sa("198.18.1.13:80"))], Traffic::default());
        assert!(!t.contains_key(&Some(sa("198.18.1.12:80"))));
    }

    #[test]
    fn traffic_finds_port_0_reals_and_the_sorry_server() {
        let b = block_for(1, &["198.18.1.11:0"], Some("198.18.1.20:8080"), 0);
        b.count(0, sa("198.18.1.11:443"), Dir::In, 52);
        b.count(0, sa("198.18.1.20:8080"), Dir::Out, 52);
        let t = totals(&b);
        assert_eq!(t[&Some(sa("198.18.1.11:0"))].in_packets, 1);
        assert_eq!(t[&Some(sa("198.18.1.20:8080"))].out_packets, 1);
        assert_eq!(t[&None].in_packets + t[&None].out_packets, 2);
        assert_eq!(TrafficBlock::empty().generation(), 0);
    }

    #[test]
    fn batch_buckets_follow_prometheus_le_bounds() {
        let cases = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
            (16, 4),
            (17, 5),
            (32, 5),
            (33, 6),
            (64, 6),
            (65, 7),
            (128, 7),
            (usize::MAX, 7),
        ];
        for (frames, bucket) in cases {
            assert_eq!(batch_bucket(frames), bucket, "{frames} frames");
            // The bucket's bound holds the batch, the one below does not.
            if bucket < 7 {
                assert!(frames as u64 <= BATCH_FRAMES_LE[bucket]);
            }
            if bucket > 0 {
                assert!(frames as u64 > BATCH_FRAMES_LE[bucket - 1]);
            }
        }
        let h = BatchHistogram::default();
        for n in [1, 1, 3, 64, 100] {
            h.record(n);
        }
        let r = h.read();
        assert_eq!(r.buckets, [2, 0, 1, 0, 0, 0, 1, 1]);
        assert_eq!((r.sum, r.count()), (169, 5));
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::COUNT);
    }
}
