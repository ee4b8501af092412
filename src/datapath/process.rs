//! `process()`: classify a frame, find or schedule its connection, rewrite it for the service's
//! forwarding method, and pick the egress port and next-hop MAC.
//!
//! Own frames only: before anything else, a frame whose destination MAC is not the ingress
//! port's own (another host's unicast, a broadcast, a multicast) is dropped as `not_our_mac`,
//! and one whose source MAC is one of the box's own ports' (a frame xvs sent, looped back) as
//! `own_frame`. The XDP filter already passes both to the kernel; this is the defence in depth.
//!
//! VRRP: a service whose VIP is managed by VRRP ([`crate::datapath::Service::vrrp`]) is served
//! only while an instance of this box holds the VIP (MASTER). Otherwise every packet of it is
//! dropped as `vrrp_backup`: new flows and packets of existing connections in the original
//! direction, replies of its connections (NAT, FULLNAT, `one_packet`), later fragments
//! following one of those, and ICMP errors about its flows. A connection whose service a reload
//! removed is gated by its VIP alone.
//!
//! Classification of a TCP/UDP packet, IPv4 or IPv6 (one pipeline: `parse` yields the same
//! [`Parsed`] flow for both families, with a [`FlowKey`] of the packet's family; the rewrite
//! writes the family's IP header, `process/rewrite.rs`; IPv6 parsing, ICMPv6 errors and later
//! fragments included, is in `process/ipv6.rs`):
//! 1. destination (VIP, port, protocol) is a virtual service → **original direction**: look up
//!    the connection by its key; on a miss, a new flow (a TCP initial SYN, any UDP datagram, or
//!    with `sloppy_tcp` (the service's, else the global one) any non-RST segment) is scheduled
//!    and inserted; other TCP segments are dropped (`NoConnection`), as IPVS does without
//!    `sloppy_tcp`. A new flow goes to the
//!    service's sorry server instead of a real server while the service has lost quorum, or
//!    when the scheduler finds no real server that can take it; without a sorry server the
//!    latter is a drop (`NoRealServer`).
//! 2. otherwise a tracked reply (real server → client) → **reply direction**.
//! 3. otherwise → [`Verdict::Pass`]: the kernel's traffic. Frames of other EtherTypes (ARP),
//!    VLAN-tagged frames (not balanced yet), other protocols (VRRP) and ICMPv6 other than the
//!    errors below (neighbour discovery above all) are passed as well.
//!
//! ICMP and ICMPv6: an error (ICMP destination unreachable, time exceeded; ICMPv6 destination
//! unreachable, packet too big, time exceeded) quoting a packet of a tracked NAT or FULLNAT
//! connection is translated and forwarded (see `process/icmp.rs`); other ICMP (echo to a VIP
//! included) is passed.
//!
//! Each service's forwarding method decides the rewrite: NAT below, DR (`process/dr.rs`: MACs
//! only) and TUN (`process/tun.rs`: IP-in-IP, with the MTU rule; IPv6-in-IPv6 with Packet Too
//! Big in `process/tun/tun6.rs`). DR and TUN connections keep only their original-direction
//! key (replies bypass the box).
//!
//! NAT rewrite (IPVS VS/NAT): original direction, destination VIP:port → real server; reply
//! direction, source real server → VIP:port. IP and transport checksums are updated
//! incrementally (RFC 1624), a UDP checksum of 0 stays 0. xvs routes the packet: the TTL is
//! decremented (a packet that would leave with TTL 0 is dropped, `TtlExceeded`) and the Ethernet
//! header gets the egress port's MAC as source and the next hop's MAC as destination. NAT6 is
//! the same rewrite: the hop limit is the TTL, IPv6 has no header checksum, and the transport
//! checksum's update covers the 16-byte address of the pseudo-header.
//!
//! FULLNAT (see [`crate::datapath::fullnat`]): a service with `forwarding: fullnat` rewrites both
//! endpoints; its connections are inserted with a local address:port of the service's pool, and
//! a packet to a pool address:port is looked up as a reply by that endpoint. TOA insertion may
//! grow the frame (hence [`Processor::process_buf`], which knows the buffer's tailroom).
//!
//! Fragments (IPv4 and IPv6): a first fragment is handled like any packet and remembered; later
//! fragments follow its translation (`process/fragments.rs`; see [`crate::datapath::fragments`]
//! for the policy).
//!
//! Counting: the worker loop counts every outcome (rx, tx, drops by reason, passed) because it
//! alone knows the final one (a `Tx` verdict may still meet a full TX ring); `process` counts
//! only what the verdict cannot show, the new connections it scheduled, and the per-service and
//! per-real traffic ([`TrafficBlock`]): a packet of a service's flow that gets a `Tx` verdict is
//! counted with its IP length, "in" in the original direction, "out" in the reply direction (a
//! frame that then meets a full TX ring is still counted, as IPVS counts before transmitting).
//! Later fragments are not counted per service (they are in the worker's rx/tx counters).
//!
//! The pipeline: every step returns `Result<_, DropReason>` and the first drop ends it
//! ([`Processor::decide`]). (1) own frames only; (2) `parse`, once, into a [`Packet`] whose
//! offsets and fields later steps trust; (3) classify: a service's destination is the original
//! direction (`process/original.rs`: look up or schedule, then the method's rewrite), anything
//! else a possible reply (`process/reply.rs`), later fragments `process/fragments.rs`, ICMP
//! errors `process/icmp.rs`;
//! (4) one [`Processor::route`] step for every packet that leaves: the TTL check of a routed
//! packet, the next hop and its egress port, the rewrite (run only once the packet can leave,
//! so a drop leaves the frame untouched), and the Ethernet header. Counting and fragment
//! bookkeeping follow a `Tx`.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::conntrack::{ConnTable, Direction, Event, Hint, LocalPool, Probe, V4Key};
use crate::datapath::counters::TrafficBlock;
use crate::datapath::fragments::{DatagramId, FragmentRewrite, FragmentTable};
use crate::datapath::lookup::WordKey;
use crate::datapath::nexthop::{Mac, NextHop, NextHopError};
use crate::datapath::snapshot::mac_word;
use crate::datapath::wire::{
    EtherType, EthernetFrame, IcmpPacket, Ipv4Packet, TcpSegment, UdpDatagram,
};
use crate::datapath::{DropReason, NextHopTable, PortId, Snapshot, Verdict, WorkerCounters};

mod dr;
mod fast;
mod flow_cache;
mod fragments;
mod icmp;
mod icmp6;
mod ipv6;
mod original;
mod reply;
mod rewrite;
mod sync;
mod tun;

use crate::flow::{FlowKey, Nanos, Proto};
use crate::sched::persist::PersistenceTable;
use crate::sched::{self, Scheduler};
use icmp::{read_quote, read_tunnel_quote, IcmpError, TunnelFragNeeded};

/// Capacity of the queue of next hops whose MAC a worker missed.
pub const NEIGHBOUR_MISS_QUEUE: usize = 1024;

/// State shared by all workers and the control plane.
#[derive(Debug)]
pub struct Shared {
    /// The current configuration view; replaced whole on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Routes and neighbours; replaced whole by the neighbour refresher (which holds this `Arc`).
    pub nexthops: Arc<ArcSwap<NextHopTable>>,
    pub conntrack: ConnTable,
    /// Translations of fragmented datagrams for their later fragments.
    pub fragments: FragmentTable,
    /// Persistence templates of persistent services (see [`crate::sched::persist`]).
    pub persistence: PersistenceTable,
    /// Next hops a worker needed but whose MAC was unknown; the control plane resolves them.
    pub neighbour_misses: Arc<ArrayQueue<IpAddr>>,
    /// Processors made so far: each starts its expiry turn elsewhere ([`SWEEP_SPREAD`]).
    processors: AtomicUsize,
}

/// How far apart the expiry turns of successive processors start: an odd stride, so that with
/// any power-of-two number of shards no two of the first `shards` processors start on one
/// shard (and, all stepping one shard per batch, they never meet).
const SWEEP_SPREAD: usize = 0x9e37_79b9;

impl Shared {
    pub fn new(snapshot: Snapshot, nexthops: NextHopTable, max_entries: usize) -> Shared {
        Self::with_local_pools(snapshot, nexthops, max_entries, &[])
    }

    /// With FULLNAT `local_addresses` pools (fixed for the life of the table; a service's
    /// [`crate::datapath::Service::local_pool`] indexes `pools`).
    pub fn with_local_pools(
        snapshot: Snapshot,
        nexthops: NextHopTable,
        max_entries: usize,
        pools: &[LocalPool],
    ) -> Shared {
        Self::try_with_local_pools(snapshot, nexthops, max_entries, pools)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Shared::with_local_pools`] that reports a table it cannot allocate as an error (what
    /// `xvs run` uses: a clear line instead of an abort).
    pub fn try_with_local_pools(
        snapshot: Snapshot,
        nexthops: NextHopTable,
        max_entries: usize,
        pools: &[LocalPool],
    ) -> Result<Shared, crate::conntrack::TableAllocError> {
        Self::try_with_tables(snapshot, nexthops, max_entries, 0, pools)
    }

    /// [`Shared::try_with_local_pools`] with an IPv6 connection table of `max_entries_ipv6`
    /// (`conntrack.max_entries_ipv6`; 0 = none). The persistence templates are sized for both
    /// families' connections.
    pub fn try_with_tables(
        snapshot: Snapshot,
        nexthops: NextHopTable,
        max_entries: usize,
        max_entries_ipv6: usize,
        pools: &[LocalPool],
    ) -> Result<Shared, crate::conntrack::TableAllocError> {
        let templates = persistence_capacity(max_entries.saturating_add(max_entries_ipv6));
        Ok(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            nexthops: Arc::new(ArcSwap::from_pointee(nexthops)),
            conntrack: ConnTable::try_with_families(max_entries, max_entries_ipv6, 0, pools)?,
            fragments: FragmentTable::default(),
            persistence: PersistenceTable::try_new(templates)?,
            neighbour_misses: Arc::new(ArrayQueue::new(NEIGHBOUR_MISS_QUEUE)),
            processors: AtomicUsize::new(0),
        })
    }
}

/// Templates the persistence table holds: a quarter of the connection table (each template
/// stands for at least one connection while it matters), at least 1024 and at most 2^20. Memory
/// is reserved up front but only touched as templates are created.
pub fn persistence_capacity(max_entries: usize) -> usize {
    (max_entries / 4).clamp(1024, 1 << 20)
}

/// How many connection-table slots a worker sweeps for expired entries per batch.
pub const EXPIRY_BUDGET_PER_BATCH: usize = 64;

/// One worker's packet processor. Owns the worker's scheduler state and counters; reads the
/// shared snapshot and next-hop table loaded at the start of each batch.
pub struct Processor {
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    nexthops: Arc<NextHopTable>,
    /// One scheduler per service of `snap`, same order; rebuilt when the generation changes.
    schedulers: Vec<Box<dyn Scheduler>>,
    pub counters: Arc<WorkerCounters>,
    /// This worker's traffic counters for `snap` (also published in `counters.traffic`);
    /// rebuilt with `schedulers`.
    traffic: Arc<TrafficBlock>,
    /// Identification of the next IPv4 header this worker writes (TUN outer headers, ICMP
    /// errors); wraps. A `Cell` so that a rewrite step, which borrows the processor shared, can
    /// take one (the processor is one worker's, never shared between threads).
    ip_id: Cell<u16>,
    /// Connection sync's event ring, when sync is on (see `process/sync.rs`): `None` costs the
    /// packet path one predictable branch per event site.
    sync: Option<crate::sync::ring::SyncProducer>,
    /// What the batch's pre-pass ([`Processor::prefetch`]) found for its frames, in order:
    /// `BATCH_HINTS` entries, the first `hints_written` of this batch's; a frame the pre-pass
    /// could not read has `None`.
    hints: Box<[Option<FrameHint>]>,
    hints_written: usize,
    /// The pre-pass entry of the next frame `process_buf` decides.
    hints_read: usize,
    /// The pre-pass entry of the frame being decided (`usize::MAX`: none).
    hint_at: usize,
    /// Whether established flows take the fast path (`process/fast.rs`); on unless a test
    /// compares it with the pipeline ([`Processor::set_fast_path`]).
    fast_path: bool,
    /// The fast path's cache of established-flow hits (`process/flow_cache.rs`).
    flow_cache: flow_cache::FlowCache,
    /// The flow cache's epoch: moves whenever `snap` or `nexthops` changes (routes and traffic
    /// slots the cache worked out in another epoch are not used).
    epoch: u64,
    /// What the fast path may do with each service of `snap`, same order (rebuilt with it).
    fast_services: Vec<Option<fast::FastService>>,
    /// The shard this worker's next batch expires in each table (its own turn: see
    /// [`crate::conntrack::ConnTable::expire_turn_with`]).
    sweep_turn: usize,
}

/// How many frames of a batch the pre-pass keeps hints for (the frames after them are decided
/// without).
pub const BATCH_HINTS: usize = 256;

/// What the pre-pass found for one frame: the lookup it expects and the connection table's
/// [`Hint`] for it. The frame's own lookup uses the hint only when it looks up this very key in
/// this direction, so a frame the pre-pass read differently (or not at all) is only slower.
#[derive(Clone, Copy)]
struct FrameHint {
    dir: Direction,
    key: V4Key,
    /// The service the key's destination is (`dir` original), as the batch's snapshot says.
    service: Option<usize>,
    /// The key's hash in the table ([`crate::conntrack::ConnTable::hash_v4`]).
    hash: u64,
    /// The key's shard and hash, computed (and prefetched) unless the flow cache held the key.
    hint: Option<Hint>,
}

/// A parsed TCP/UDP packet of either IP family: where its headers are and what later steps read
/// from them. `parse` proved the IP header (IPv4, or IPv6 with its extension headers) and the
/// transport header it names fit the frame; the frame is not changed before the rewrite step
/// that uses them. The family is the key's (both addresses are of it).
struct Parsed {
    l3: usize,
    /// The transport header (after IPv6 extension headers, if any).
    l4: usize,
    key: FlowKey,
    event: Event,
    /// The IPv4 TTL or the IPv6 hop limit.
    ttl: u8,
    /// The IP packet's length: IPv4 total length, IPv6 fixed header plus payload length (what
    /// the traffic counters count).
    ip_len: u16,
    /// The datagram's identification when this is a first fragment (offset 0, more fragments):
    /// IPv4's 16 bits or the IPv6 fragment header's 32 (see [`crate::datapath::fragments`]).
    first_fragment: Option<u32>,
    /// The service key the destination would be ([`Snapshot::service_word`]), made by `parse`
    /// from the values it read (from the stored `key`, its address would be read back wider
    /// than it was written: a store-forwarding stall).
    service: WordKey,
}

/// A later fragment (offset > 0) of an IPv4 or IPv6 TCP/UDP datagram: no transport header.
struct LaterFragment {
    l3: usize,
    datagram: DatagramId,
    /// The datagram's protocol; `None` for an IPv6 fragment whose fragment header names
    /// destination options (the fragmentable part's first header), which hide it.
    proto: Option<Proto>,
    /// The TTL or hop limit.
    ttl: u8,
}

/// What `parse` found.
enum Packet {
    Flow(Parsed),
    LaterFragment(LaterFragment),
    /// An ICMP destination unreachable or time exceeded quoting an IPv4 TCP/UDP packet, or an
    /// ICMPv6 destination unreachable, packet too big or time exceeded quoting an IPv6 one.
    IcmpError(IcmpError),
    /// An ICMP fragmentation needed quoting an IP-in-IP packet.
    TunnelFragNeeded(TunnelFragNeeded),
}

/// Where a packet leaves for, and how: the input of [`Processor::route`].
#[derive(Clone, Copy)]
struct Route {
    /// The destination the next hop is looked up for.
    to: IpAddr,
    /// The TTL the packet arrived with when xvs routes it (its rewrite decrements it): one that
    /// would leave with TTL 0 is dropped (`ttl_exceeded`). `None` when the IP header is left
    /// alone (DR, TUN) or the packet is xvs's own (ICMP errors it originates).
    ttl: Option<u8>,
    /// DR: `to` must be on a directly connected network (`dr_not_on_link`).
    on_link_only: bool,
}

impl Route {
    /// A packet xvs routes (TTL decremented) to `to`.
    fn routed(to: impl Into<IpAddr>, ttl: u8) -> Route {
        Route {
            to: to.into(),
            ttl: Some(ttl),
            on_link_only: false,
        }
    }

    /// A packet sent to `to` with its IP header as it is.
    fn unrouted(to: impl Into<IpAddr>) -> Route {
        Route {
            to: to.into(),
            ttl: None,
            on_link_only: false,
        }
    }
}

/// The egress [`Processor::route`] chose: the next hop and what the rewrite may need of its port.
struct Egress {
    hop: NextHop,
    port_mac: Mac,
    /// The port's MTU (largest IP packet it sends).
    mtu: u16,
    /// The port's IPv4 address (TUN's outer source).
    ipv4: Option<Ipv4Addr>,
    /// The port's IPv6 address (TUN6's outer source).
    ipv6: Option<Ipv6Addr>,
}

/// What a method's rewrite step did with a packet. How its later fragments follow a first
/// fragment is worked out only for a first fragment, after the fact
/// ([`Processor::remember_fragments`]): the common packet carries nothing for it.
struct Sent {
    verdict: Verdict,
    /// The verdict is about the packet itself, which the traffic counters count (`false` when
    /// TUN answered the client with an ICMP error instead).
    counted: bool,
}

impl Sent {
    /// The packet itself was routed (verdict `verdict`).
    fn packet(verdict: Verdict) -> Sent {
        Sent {
            verdict,
            counted: true,
        }
    }
}

/// The TTL a routed packet leaves with; `ttl_exceeded` when that would be 0.
#[inline]
fn decremented_ttl(ttl: u8) -> Result<u8, DropReason> {
    match ttl {
        0 | 1 => Err(DropReason::TtlExceeded),
        t => Ok(t - 1),
    }
}

impl Processor {
    pub fn new(shared: Arc<Shared>) -> Processor {
        let snap = shared.snapshot.load_full();
        let nexthops = shared.nexthops.load_full();
        let schedulers = build_schedulers(&snap);
        let fast_services = snap.services.iter().map(fast::FastService::of).collect();
        let counters = Arc::new(WorkerCounters::default());
        let traffic = Arc::new(TrafficBlock::new(snap.clone(), None));
        counters.traffic.store(traffic.clone());
        let nth = shared.processors.fetch_add(1, Ordering::Relaxed);
        Processor {
            sweep_turn: nth.wrapping_mul(SWEEP_SPREAD),
            shared,
            snap,
            nexthops,
            schedulers,
            counters,
            traffic,
            ip_id: Cell::new(1),
            sync: None,
            hints: vec![None; BATCH_HINTS].into_boxed_slice(),
            hints_written: 0,
            hints_read: 0,
            hint_at: usize::MAX,
            fast_path: true,
            flow_cache: flow_cache::FlowCache::new(),
            epoch: 0,
            fast_services,
        }
    }

    /// Turns the established-flow fast path on or off (on by default). Off, every frame takes
    /// the general pipeline: what the tests that compare the two use; decisions never differ.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The version of the next-hop table loaded at the last [`begin_batch`](Self::begin_batch).
    pub fn nexthop_version(&self) -> u64 {
        self.nexthops.version()
    }

    /// Called once per batch before any `process`: loads the current snapshot and next-hop table
    /// and does a bounded amount of connection expiry.
    ///
    /// The snapshot and next-hop table are taken only when they changed: the current ones are
    /// compared through a borrowed load (no reference count written), so workers do not bounce
    /// the shared counts' cache lines between their cores every batch.
    pub fn begin_batch(&mut self, now: Nanos) {
        (self.hints_written, self.hints_read) = (0, 0);
        let current = self.shared.snapshot.load();
        if !Arc::ptr_eq(&current, &self.snap) {
            let snap = arc_swap::Guard::into_inner(current);
            if snap.generation != self.snap.generation {
                // Allocation here happens once per reload, at a batch boundary.
                self.schedulers = build_schedulers(&snap);
                let traffic = Arc::new(TrafficBlock::new(snap.clone(), Some(&self.traffic)));
                self.counters.traffic.store(traffic.clone());
                self.traffic = traffic;
            }
            self.snap = snap;
            self.epoch += 1;
            // Allocates only when the snapshot has more services than any before.
            self.fast_services.clear();
            (self.fast_services).extend(self.snap.services.iter().map(fast::FastService::of));
        }
        let hops = self.shared.nexthops.load();
        if !Arc::ptr_eq(&hops, &self.nexthops) {
            self.nexthops = arc_swap::Guard::into_inner(hops);
            self.epoch += 1;
        }
        self.expire(now);
    }

    /// The pre-pass of a batch, called for each of its frames before the first is processed:
    /// for an IPv4 TCP or UDP frame, asks the connection table to fetch what the frame's
    /// connection lookup will touch first ([`ConnTable::prefetch`]), so that the cache misses of
    /// the batch's frames overlap instead of following one another. Reads only what it needs,
    /// trusts nothing and changes nothing: a frame it cannot read is skipped, and every frame is
    /// decided by [`process_buf`](Self::process_buf) as if this had not run.
    ///
    /// The frames must then be decided in the order they were given here (after the frames
    /// held from earlier batches, which the pre-pass does not see): the lookup of each reuses
    /// what the pre-pass computed for it when it looks up the same key.
    ///
    /// A key the flow cache holds in the original direction with a route of this epoch is to
    /// the service that route names: the snapshot it was found in is this batch's (see
    /// `process/flow_cache.rs`), so the service lookup is skipped for it.
    #[inline]
    pub fn prefetch(&mut self, frame: &[u8]) {
        let found = fast::key_of(frame).map(|key| {
            let table = &self.shared.conntrack;
            let original = table.hash_v4(Direction::Original, &key);
            let cached = (self.flow_cache).cached_service(original, &key, self.epoch);
            let service = cached.or_else(|| self.service_of_v4(&key));
            let (dir, hash) = match service {
                Some(_) => (Direction::Original, original),
                None => (Direction::Reply, table.hash_v4(Direction::Reply, &key)),
            };
            // A flow the cache holds will not lock its shard: nothing of the table to fetch.
            let held = cached.is_some() || self.flow_cache.get(hash, dir, &key).is_some();
            let hint = (!held).then(|| {
                let hint = table.hint_v4_hashed(dir, &key, hash);
                table.prefetch_hint_v4(hint);
                hint
            });
            FrameHint {
                dir,
                key,
                service,
                hash,
                hint,
            }
        });
        if let Some(slot) = self.hints.get_mut(self.hints_written) {
            *slot = found;
            self.hints_written += 1;
        }
    }

    /// The lookup of `key` in direction `dir`, with the pre-pass's hint if it computed one for
    /// them for the frame being decided.
    #[inline]
    fn probe<'k>(&self, dir: Direction, key: &'k FlowKey) -> Probe<'k> {
        let hint = (self.hints.get(self.hint_at))
            .and_then(Option::as_ref)
            .filter(|h| h.dir == dir && V4Key::of(key) == Some(h.key))
            .and_then(|h| h.hint);
        Probe { dir, key, hint }
    }

    /// The service an IPv4 key's destination is ([`Snapshot::service_of_word`]).
    #[inline(always)]
    fn service_of_v4(&self, key: &V4Key) -> Option<usize> {
        let dst = IpAddr::V4(Ipv4Addr::from_bits(key.dst));
        (self.snap).service_of_word(Snapshot::service_word(dst, key.dport, key.proto))
    }

    /// Decides about one frame received on `ingress`, rewriting it in place. The frame cannot
    /// grow: a TUN packet, which needs room for its outer header, is dropped (`no_frame_room`);
    /// the worker loop calls [`process_buf`](Self::process_buf).
    #[inline]
    pub fn process(&mut self, now: Nanos, ingress: PortId, frame: &mut [u8]) -> Verdict {
        let mut len = frame.len();
        let v = self.process_buf(now, ingress, frame, &mut len);
        debug_assert!(len <= frame.len());
        v
    }

    /// Decides about the frame `buf[..*len]` received on `ingress`, rewriting it in place; the
    /// rest of `buf` is room the frame may grow into (TUN's outer header). On `Tx`, `*len` is
    /// the length of the frame to transmit (changed by TUN encapsulation and by ICMP errors
    /// xvs answers with); on `Drop` and `Pass` the frame and `*len` are untouched.
    #[inline]
    pub fn process_buf(
        &mut self,
        now: Nanos,
        ingress: PortId,
        buf: &mut [u8],
        len: &mut usize,
    ) -> Verdict {
        *len = (*len).min(buf.len());
        self.hint_at = usize::MAX;
        if self.hints_read < self.hints_written {
            self.hint_at = self.hints_read;
            self.hints_read += 1;
        }
        if let Some(decided) = self.fast(now, ingress, buf, *len) {
            return decided.unwrap_or_else(Verdict::Drop);
        }
        self.decide(now, ingress, buf, len)
            .unwrap_or_else(Verdict::Drop)
    }

    /// The pipeline (see the module documentation): own frames only, parse, then the step of
    /// what was parsed.
    #[inline]
    fn decide(
        &mut self,
        now: Nanos,
        ingress: PortId,
        buf: &mut [u8],
        len: &mut usize,
    ) -> Result<Verdict, DropReason> {
        let frame = buf.get(..*len).ok_or(DropReason::TruncatedEthernet)?;
        self.own_frames_only(ingress, frame)?;
        // Matched by reference, the `Result` included: the parsed packet stays where `parse`
        // wrote it (a `?` would move it out, a bulk copy of what was just written field by
        // field, which stalls on store forwarding).
        match &parse(frame) {
            Err(r) => Err(*r),
            Ok(None) => Ok(Verdict::Pass),
            Ok(Some(Packet::Flow(p))) => match self.snap.service_of_word(p.service) {
                Some(si) => self.original(now, si, buf, len, p),
                None => self.reply(now, buf, len, p),
            },
            Ok(Some(Packet::LaterFragment(f))) => self.later_fragment(now, buf, len, f),
            Ok(Some(Packet::IcmpError(e))) => self.icmp_error(now, buf, len, e),
            Ok(Some(Packet::TunnelFragNeeded(e))) => self.tunnel_frag_needed(now, buf, len, e),
        }
    }

    /// The frame must be addressed to the ingress port's own MAC (not another host's, not a
    /// broadcast or multicast) and must not come from one of the box's own MACs (a frame xvs
    /// sent, looped back): [`Snapshot::own_frame`]. The XDP filter passes such frames to the
    /// kernel; this is the defence in depth. A frame shorter than an Ethernet header (14 bytes)
    /// is `truncated_ethernet`.
    #[inline]
    fn own_frames_only(&self, ingress: PortId, frame: &[u8]) -> Result<(), DropReason> {
        let Some(&[d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, _, _]) =
            frame.first_chunk::<14>()
        else {
            return Err(DropReason::TruncatedEthernet);
        };
        let dst = mac_word(&[d0, d1, d2, d3, d4, d5]);
        let src = mac_word(&[s0, s1, s2, s3, s4, s5]);
        self.snap.own_frame(ingress, dst, src)
    }

    /// The route step, the only way a frame leaves: checks the TTL of a routed packet, finds the
    /// next hop and egress port, lets `rewrite` change the frame `buf[..*len]` (it may grow it
    /// into `buf` and set `*len`), then addresses the frame to the next hop from the port's MAC.
    /// Nothing is written unless the packet can leave, up to `rewrite`'s own refusals (which
    /// leave the frame untouched too).
    #[inline(always)]
    fn route<F>(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        route: Route,
        rewrite: F,
    ) -> Result<Verdict, DropReason>
    where
        F: FnOnce(&mut [u8], &mut usize, &Egress) -> Result<(), DropReason>,
    {
        if let Some(ttl) = route.ttl {
            decremented_ttl(ttl)?;
        }
        let egress = self.egress(route.to, route.on_link_only)?;
        rewrite(buf, len, &egress)?;
        let frame = buf.get_mut(..*len).ok_or(DropReason::NoFrameRoom)?;
        let mut eth = EthernetFrame::new_checked(frame)?;
        eth.set_dst(egress.hop.mac);
        eth.set_src(egress.port_mac);
        Ok(Verdict::Tx(egress.hop.port))
    }

    /// The next hop towards `dst` and its egress port, refusing a `dst` behind a gateway when
    /// `on_link_only` (`dr_not_on_link`). A next hop whose MAC is not known yet is handed to the
    /// control plane to resolve.
    #[inline(always)]
    fn egress(&self, dst: IpAddr, on_link_only: bool) -> Result<Egress, DropReason> {
        let hop = self.nexthops.resolve_with(dst, on_link_only).map_err(|e| {
            if let NextHopError::NoNeighbour(ip) = e {
                // Full queue: the control plane is already busy resolving; drop the hint.
                let _ = self.shared.neighbour_misses.push(ip);
            }
            e.drop_reason()
        })?;
        let port = self
            .snap
            .ports
            .get(usize::from(hop.port))
            .ok_or(DropReason::NoRoute)?;
        Ok(Egress {
            hop,
            port_mac: port.mac,
            mtu: port.mtu,
            ipv4: port.ipv4,
            ipv6: port.ipv6,
        })
    }

    /// The next hop towards `dst` and the MAC of its egress port: [`Processor::egress`] for the
    /// ICMP "fragmentation needed" writer (`tun.rs`), which routes its own frame.
    fn next_hop(&self, dst: IpAddr) -> Result<(NextHop, Mac), DropReason> {
        self.egress(dst, false).map(|e| (e.hop, e.port_mac))
    }

    /// Remembers how the later fragments of the datagram whose first fragment `p` was just
    /// forwarded are translated (`follow()`, asked only for a first fragment; see
    /// [`crate::datapath::fragments`]); nothing for a packet that is not a first fragment or a
    /// rewrite that is not followed.
    #[inline]
    fn remember_fragments(
        &self,
        now: Nanos,
        p: &Parsed,
        follow: impl FnOnce() -> Option<FragmentRewrite>,
    ) {
        let Some(id) = p.first_fragment else {
            return;
        };
        if let Some(rewrite) = follow() {
            self.remember(now, p, id, rewrite);
        }
    }

    /// [`remember_fragments`](Self::remember_fragments) of a first fragment (identification
    /// `id`).
    #[cold]
    fn remember(&self, now: Nanos, p: &Parsed, id: u32, rewrite: FragmentRewrite) {
        let k = &p.key;
        if let Some(datagram) = DatagramId::new(k.src, k.dst, k.proto, id) {
            self.shared.fragments.remember(datagram, rewrite, now);
        }
    }

    /// The next identification for an IPv4 header this worker writes.
    fn next_ip_id(&self) -> u16 {
        let id = self.ip_id.get();
        self.ip_id.set(id.wrapping_add(1));
        id
    }
}

/// Addresses `frame` to the next hop `hop` from its port's MAC `port_mac` and says to transmit
/// it on `hop.port` (the last part of [`Processor::route`], for the "fragmentation needed"
/// writer). A frame too short for an Ethernet header is dropped, never sent.
fn emit(frame: &mut [u8], hop: NextHop, port_mac: Mac) -> Verdict {
    match EthernetFrame::new_checked(frame) {
        Ok(mut eth) => {
            eth.set_dst(hop.mac);
            eth.set_src(port_mac);
            Verdict::Tx(hop.port)
        }
        Err(r) => Verdict::Drop(r.into()),
    }
}

fn build_schedulers(snap: &Snapshot) -> Vec<Box<dyn Scheduler>> {
    snap.services
        .iter()
        .map(|s| sched::build(s.scheduler, &s.tables, &s.reals))
        .collect()
}

/// Parses an Ethernet/IPv4 or Ethernet/IPv6 frame into what the pipeline handles. `Ok(None)`:
/// not something xvs balances (other EtherType, VLAN-tagged, other protocol, ICMP that is not an
/// error about a flow, ICMPv6).
#[inline(always)]
fn parse(frame: &[u8]) -> Result<Option<Packet>, DropReason> {
    let eth = EthernetFrame::new_checked(frame)?;
    // VLAN-tagged frames are not balanced yet (the filter passes them too): forwarding a tag from
    // one segment onto another would be wrong until ports know their VLANs.
    if eth.vlan_id().is_some() {
        return Ok(None);
    }
    let l3 = eth.header_len();
    match eth.ethertype() {
        EtherType::IPV4 => parse_ipv4(eth.payload(), l3),
        EtherType::IPV6 => ipv6::parse(eth.payload(), l3),
        _ => Ok(None),
    }
}

/// The IPv4 packet `packet` (at frame offset `l3`).
#[inline(always)]
fn parse_ipv4(packet: &[u8], l3: usize) -> Result<Option<Packet>, DropReason> {
    let ip = Ipv4Packet::new_checked(packet)?;
    if !ip.checksum_ok() {
        return Err(DropReason::BadIpv4Checksum);
    }
    if ip.protocol() == crate::datapath::wire::icmp::PROTOCOL {
        return parse_icmp(&ip, l3);
    }
    let Some(proto) = Proto::from_number(ip.protocol()) else {
        return Ok(None);
    };
    if ip.fragment_offset() != 0 {
        return Ok(Some(Packet::LaterFragment(LaterFragment {
            l3,
            datagram: DatagramId::V4 {
                src: ip.src(),
                dst: ip.dst(),
                proto,
                id: ip.identification(),
            },
            proto: Some(proto),
            ttl: ip.ttl(),
        })));
    }
    parse_flow(&ip, l3, proto).map(|p| Some(Packet::Flow(p)))
}

/// The ICMP message of the IPv4 packet `ip` (at frame offset `l3`): an error quoting a TCP/UDP
/// packet, or a "fragmentation needed" quoting a tunnelled one; other ICMP is the kernel's.
fn parse_icmp(ip: &Ipv4Packet<&[u8]>, l3: usize) -> Result<Option<Packet>, DropReason> {
    use crate::datapath::wire::icmp;
    // Fragmented ICMP is the kernel's (an error message fits one packet).
    if ip.is_fragment() {
        return Ok(None);
    }
    let l4 = l3 + ip.header_len();
    let msg = ip.payload();
    let m = IcmpPacket::new_checked(msg)?;
    if !icmp::is_error(m.icmp_type()) {
        return Ok(None);
    }
    // The translation recomputes the ICMP checksum: a corrupted message must not leave with a
    // valid one.
    if !m.checksum_ok() {
        return Err(DropReason::BadIcmpChecksum);
    }
    let Some((quoted, quote_at, quote_l4)) = read_quote(msg, l4) else {
        let frag_needed =
            m.icmp_type() == icmp::DEST_UNREACHABLE && m.code() == icmp::CODE_FRAG_NEEDED;
        return Ok(frag_needed
            .then(|| read_tunnel_quote(msg, l4, l3))
            .flatten()
            .map(Packet::TunnelFragNeeded));
    };
    Ok(Some(Packet::IcmpError(IcmpError {
        l3,
        l4,
        end: l3 + ip.total_len(),
        ttl: ip.ttl(),
        quoted,
        quote_at,
        quote_l4,
    })))
}

/// The event of the `proto` header at the start of `l4`, of a whole packet or, with
/// `first_fragment`, of a first fragment (whose UDP length covers later fragments too), once the
/// header is checked: a header cut short, TCP flags no stack sends (`bad_tcp_flags`), and over
/// IPv6 (`ipv6`) a UDP checksum of 0 (`udp_zero_checksum_ipv6`, RFC 8200 §8.1) are refused. The
/// ports are [`ports`]' (returned with the event, they were written to the stack apart and read
/// back merged: a store-forwarding stall).
#[inline(always)]
fn transport(
    l4: &[u8],
    proto: Proto,
    first_fragment: bool,
    ipv6: bool,
) -> Result<Event, DropReason> {
    match proto {
        Proto::Tcp => {
            let t = TcpSegment::new_checked(l4)?;
            if !t.flags().is_valid_combination() {
                return Err(DropReason::BadTcpFlags);
            }
            Ok(Event::Tcp(t.flags()))
        }
        Proto::Udp => {
            let u = match first_fragment {
                true => UdpDatagram::new_checked_first_fragment(l4)?,
                false => UdpDatagram::new_checked(l4)?,
            };
            if ipv6 && u.checksum() == 0 {
                return Err(DropReason::UdpZeroChecksumIpv6);
            }
            Ok(Event::Udp)
        }
    }
}

/// The source and destination ports of the TCP or UDP header at the start of `l4` (the first
/// two 16-bit words of both), which [`transport`] checked.
#[inline(always)]
fn ports(l4: &[u8]) -> (u16, u16) {
    let [s0, s1, d0, d1] = l4.first_chunk::<4>().copied().unwrap_or_default();
    (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]))
}

/// The TCP or UDP packet `ip` (at frame offset `l3`, not a later fragment).
#[inline(always)]
fn parse_flow(ip: &Ipv4Packet<&[u8]>, l3: usize, proto: Proto) -> Result<Parsed, DropReason> {
    let first_fragment = ip.more_fragments().then(|| u32::from(ip.identification()));
    let l4 = ip.payload();
    let event = transport(l4, proto, first_fragment.is_some(), false)?;
    let (sport, dport) = ports(l4);
    let dst = ip.dst();
    let service = Snapshot::service_word(IpAddr::V4(dst), dport, proto);
    Ok(Parsed {
        l3,
        l4: l3 + ip.header_len(),
        key: FlowKey {
            proto,
            src: IpAddr::V4(ip.src()),
            dst: IpAddr::V4(dst),
            sport,
            dport,
        },
        event,
        ttl: ip.ttl(),
        ip_len: u16::try_from(ip.total_len()).unwrap_or(u16::MAX),
        first_fragment,
        service,
    })
}
