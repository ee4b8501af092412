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
//! Classification of an IPv4 TCP/UDP packet:
//! 1. destination (VIP, port, protocol) is a virtual service → **original direction**: look up
//!    the connection by its key; on a miss, a new flow (a TCP initial SYN, any UDP datagram, or
//!    with `sloppy_tcp` any non-RST segment) is scheduled and inserted; other TCP segments are
//!    dropped (`NoConnection`), as IPVS does without `sloppy_tcp`. A new flow goes to the
//!    service's sorry server instead of a real server while the service has lost quorum, or
//!    when the scheduler finds no real server that can take it; without a sorry server the
//!    latter is a drop (`NoRealServer`).
//! 2. otherwise a tracked reply (real server → client) → **reply direction**.
//! 3. otherwise → [`Verdict::Pass`]: the kernel's traffic. Non-IPv4 frames (ARP, IPv6),
//!    VLAN-tagged frames (not balanced yet) and other protocols (VRRP) are passed as well.
//!
//! ICMP: a destination unreachable or time exceeded quoting a packet of a tracked NAT or
//! FULLNAT connection is translated and forwarded (see `process/icmp.rs`); other ICMP (echo to a VIP
//! included) is passed.
//!
//! Each service's forwarding method decides the rewrite: NAT below, DR (`process/dr.rs`: MACs
//! only) and TUN (`process/tun.rs`: IP-in-IP, with the MTU rule). DR and TUN connections keep
//! only their original-direction key (replies bypass the box).
//!
//! NAT rewrite (IPVS VS/NAT): original direction, destination VIP:port → real server; reply
//! direction, source real server → VIP:port. IP and transport checksums are updated
//! incrementally (RFC 1624), a UDP checksum of 0 stays 0. xvs routes the packet: the TTL is
//! decremented (a packet that would leave with TTL 0 is dropped, `TtlExceeded`) and the Ethernet
//! header gets the egress port's MAC as source and the next hop's MAC as destination.
//!
//! FULLNAT (see [`crate::datapath::fullnat`]): a service with `forwarding: fullnat` rewrites both
//! endpoints; its connections are inserted with a local address:port of the service's pool, and
//! a packet to a pool address:port is looked up as a reply by that endpoint. TOA insertion may
//! grow the frame (hence [`Processor::process_buf`], which knows the buffer's tailroom).
//!
//! Fragments: a first fragment is handled like any packet and remembered; later fragments
//! follow its translation (see [`crate::datapath::fragments`] for the policy).
//!
//! Counting: the worker loop counts every outcome (rx, tx, drops by reason, passed) because it
//! alone knows the final one (a `Tx` verdict may still meet a full TX ring); `process` counts
//! only what the verdict cannot show, the new connections it scheduled, and the per-service and
//! per-real traffic ([`TrafficBlock`]): a packet of a service's flow that gets a `Tx` verdict is
//! counted with its IP length, "in" in the original direction, "out" in the reply direction (a
//! frame that then meets a full TX ring is still counted, as IPVS counts before transmitting).
//! Later fragments are not counted per service (they are in the worker's rx/tx counters).

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::conntrack::{
    ConnState, ConnTable, Direction, Event, InsertError, LocalPool, NewConn, Tracked,
};
use crate::datapath::counters::{bump, Dir, TrafficBlock};
use crate::datapath::fragments::{DatagramId, FragmentRewrite, FragmentTable};
use crate::datapath::fullnat;
use crate::datapath::nexthop::{Mac, NextHop, NextHopError};
use crate::datapath::snapshot::mac_word;
use crate::datapath::wire::checksum;
use crate::datapath::wire::{
    EtherType, EthernetFrame, IcmpPacket, Ipv4Packet, TcpSegment, UdpDatagram,
};
use crate::datapath::{
    DropReason, Forwarding, NextHopTable, PortId, ServiceKey, Snapshot, Verdict, WorkerCounters,
};

mod dr;
mod icmp;
mod tun;

use crate::flow::{FlowKey, Nanos, Proto};
use crate::sched::persist::{PersistenceTable, TemplateKey};
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
}

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
        Ok(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            nexthops: Arc::new(ArcSwap::from_pointee(nexthops)),
            conntrack: ConnTable::try_with_pools(max_entries, 0, pools)?,
            fragments: FragmentTable::default(),
            persistence: PersistenceTable::try_new(persistence_capacity(max_entries))?,
            neighbour_misses: Arc::new(ArrayQueue::new(NEIGHBOUR_MISS_QUEUE)),
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
    /// errors); wraps.
    ip_id: u16,
}

/// Where the headers of a parsed IPv4 TCP/UDP frame are.
struct Parsed {
    l3: usize,
    l4: usize,
    key: FlowKey,
    event: Event,
    ttl: u8,
    /// IPv4 total length (what the traffic counters count).
    ip_len: u16,
    /// The IP identification when this is the first fragment of a datagram.
    first_fragment: Option<u16>,
}

/// A later fragment (offset > 0) of an IPv4 TCP/UDP datagram: no transport header.
struct LaterFragment {
    l3: usize,
    datagram: DatagramId,
    ttl: u8,
}

/// What `parse` found.
enum Packet {
    Flow(Parsed),
    LaterFragment(LaterFragment),
    /// An ICMP destination unreachable or time exceeded quoting an IPv4 TCP/UDP packet.
    IcmpError(IcmpError),
    /// An ICMP fragmentation needed quoting an IP-in-IP packet.
    TunnelFragNeeded(TunnelFragNeeded),
}

/// Which endpoint of the packet a rewrite changes.
#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

impl Processor {
    pub fn new(shared: Arc<Shared>) -> Processor {
        let snap = shared.snapshot.load_full();
        let nexthops = shared.nexthops.load_full();
        let schedulers = build_schedulers(&snap);
        let counters = Arc::new(WorkerCounters::default());
        let traffic = Arc::new(TrafficBlock::new(snap.clone(), None));
        counters.traffic.store(traffic.clone());
        Processor {
            shared,
            snap,
            nexthops,
            schedulers,
            counters,
            traffic,
            ip_id: 1,
        }
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
    pub fn begin_batch(&mut self, now: Nanos) {
        let snap = self.shared.snapshot.load_full();
        if snap.generation != self.snap.generation {
            // Allocation here happens once per reload, at a batch boundary.
            self.schedulers = build_schedulers(&snap);
            let traffic = Arc::new(TrafficBlock::new(snap.clone(), Some(&self.traffic)));
            self.counters.traffic.store(traffic.clone());
            self.traffic = traffic;
        }
        self.snap = snap;
        self.nexthops = self.shared.nexthops.load_full();
        self.shared.conntrack.expire(now, EXPIRY_BUDGET_PER_BATCH);
        self.shared.persistence.expire(now, EXPIRY_BUDGET_PER_BATCH);
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
        self.decide(now, ingress, buf, len)
    }

    fn decide(&mut self, now: Nanos, ingress: PortId, buf: &mut [u8], len: &mut usize) -> Verdict {
        let frame_len = *len;
        if let Err(r) = self.own_frames_only(ingress, &buf[..frame_len]) {
            return Verdict::Drop(r);
        }
        let p = match parse(&buf[..frame_len]) {
            Ok(Some(Packet::Flow(p))) => p,
            Ok(Some(Packet::LaterFragment(f))) => {
                return self.later_fragment(now, &mut buf[..frame_len], &f)
            }
            Ok(Some(Packet::IcmpError(e))) => return self.icmp_error(now, buf, len, &e),
            Ok(Some(Packet::TunnelFragNeeded(e))) => {
                return self.tunnel_frag_needed(now, buf, len, &e)
            }
            Ok(None) => return Verdict::Pass,
            Err(r) => return Verdict::Drop(r),
        };
        let svc_key = ServiceKey {
            vip: p.key.dst,
            port: p.key.dport,
            proto: p.key.proto,
        };
        let (verdict, side, to, route_to) = if let Some(si) = self.snap.service_for(&svc_key) {
            if self.snap.services[si].vrrp_backup() {
                return Verdict::Drop(DropReason::VrrpBackup);
            }
            let forwarding = self.snap.services[si].forwarding;
            // NAT and FULLNAT route the packet (TTL decremented); DR and TUN leave the IP
            // header alone, as IPVS does.
            if forwarding.replies_return() && p.ttl <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            let t = match self.original(now, si, &p) {
                Ok(t) => t,
                Err(r) => return Verdict::Drop(r),
            };
            if let Some(local) = t.local {
                // FULLNAT (the entry carries its local endpoint, so a connection keeps the
                // method it was created with across a reload).
                let v = self.forward_fullnat(buf, len, &p, local, t.real, &t, si);
                if let Verdict::Tx(_) = v {
                    self.traffic.count(si, t.real, Dir::In, u64::from(p.ip_len));
                    if let Some(id) = p.first_fragment {
                        let rw = FragmentRewrite::new(
                            Some(local.ip()),
                            Some(t.real.ip()),
                            t.real.ip(),
                            true,
                        );
                        self.remember_fragments(now, &p, id, rw);
                    }
                }
                return v;
            }
            let frame = &mut buf[..frame_len];
            let (v, forwarded) = match forwarding {
                // A FULLNAT service's connection without a local endpoint was made while the
                // service was NAT: it stays NAT.
                Forwarding::Nat | Forwarding::FullNat => (
                    self.forward(frame, &p, Side::Dst, t.real, t.real.ip()),
                    true,
                ),
                Forwarding::Dr => (self.forward_dr(frame, t.real), true),
                Forwarding::Tun => self.forward_tun(buf, len, &p, t.real),
            };
            if let (Verdict::Tx(_), true) = (v, forwarded) {
                self.traffic.count(si, t.real, Dir::In, u64::from(p.ip_len));
            }
            if !forwarding.replies_return() {
                // DR: later fragments follow the first by MAC. TUN: they are not followed
                // (xvs does not fragment the outer packet; see the README).
                if let (Verdict::Tx(_), Some(id), Forwarding::Dr) =
                    (v, p.first_fragment, forwarding)
                {
                    let rw = FragmentRewrite::new(None, None, t.real.ip(), false);
                    self.remember_fragments(now, &p, id, rw);
                }
                return v;
            }
            (v, Side::Dst, t.real, t.real.ip())
        } else {
            let timeouts = self.snap.timeouts;
            let (vip, client) = match self.shared.conntrack.lookup(
                Direction::Reply,
                &p.key,
                p.event,
                now,
                &timeouts,
            ) {
                Some(t) if t.local.is_some() => {
                    let si = match self.reply_service(t.vip, p.key.proto) {
                        Ok(si) => si,
                        Err(r) => return Verdict::Drop(r),
                    };
                    if p.ttl <= 1 {
                        return Verdict::Drop(DropReason::TtlExceeded);
                    }
                    let v = self.reply_fullnat(&mut buf[..frame_len], &p, t.vip, t.client);
                    if let Verdict::Tx(_) = v {
                        self.count_reply(&p, si);
                        if let Some(id) = p.first_fragment {
                            let (src, dst) = (t.vip.ip(), t.client.ip());
                            let rw = FragmentRewrite::new(Some(src), Some(dst), dst, true);
                            self.remember_fragments(now, &p, id, rw);
                        }
                    }
                    return v;
                }
                Some(t) => (t.vip, t.client.ip()),
                None => match self
                    .snap
                    .one_packet_reply(p.key.proto, p.key.src, p.key.sport)
                {
                    // A reply of a one_packet service: no entry by design, translated back
                    // statelessly.
                    Some(vip) => (vip, p.key.dst),
                    None => return Verdict::Pass,
                },
            };
            let si = match self.reply_service(vip, p.key.proto) {
                Ok(si) => si,
                Err(r) => return Verdict::Drop(r),
            };
            if p.ttl <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            let frame = &mut buf[..frame_len];
            let v = self.forward(frame, &p, Side::Src, vip, client);
            if let Verdict::Tx(_) = v {
                self.count_reply(&p, si);
            }
            (v, Side::Src, vip, client)
        };
        if let (Verdict::Tx(_), Some(id)) = (verdict, p.first_fragment) {
            let rw = match side {
                Side::Src => FragmentRewrite::new(Some(to.ip()), None, route_to, true),
                Side::Dst => FragmentRewrite::new(None, Some(to.ip()), route_to, true),
            };
            self.remember_fragments(now, &p, id, rw);
        }
        verdict
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

    /// The service (if it still exists) of a reply of the connection to `vip`; `vrrp_backup`
    /// when the VIP is managed by VRRP and not held.
    #[inline]
    fn reply_service(&self, vip: SocketAddr, proto: Proto) -> Result<Option<usize>, DropReason> {
        let key = ServiceKey {
            vip: vip.ip(),
            port: vip.port(),
            proto,
        };
        let si = self.snap.service_for(&key);
        let backup = match si {
            Some(si) => self.snap.services[si].vrrp_backup(),
            None => self.snap.has_vrrp_gates() && self.snap.vrrp_backup_vip(vip.ip()),
        };
        if backup {
            return Err(DropReason::VrrpBackup);
        }
        Ok(si)
    }

    /// Counts a forwarded reply (source `p.key.src:sport`, the real server) for its service
    /// `si`, if it still exists.
    #[inline]
    fn count_reply(&self, p: &Parsed, si: Option<usize>) {
        if let Some(si) = si {
            let real = SocketAddr::new(p.key.src, p.key.sport);
            self.traffic.count(si, real, Dir::Out, u64::from(p.ip_len));
        }
    }

    /// Remembers how the later fragments of the datagram whose first fragment `p` (IP id `id`)
    /// was just forwarded are translated (see [`crate::datapath::fragments`]); nothing for a
    /// datagram or a rewrite that is not IPv4.
    fn remember_fragments(
        &self,
        now: Nanos,
        p: &Parsed,
        id: u16,
        rewrite: Option<FragmentRewrite>,
    ) {
        let (IpAddr::V4(src), IpAddr::V4(dst), Some(rewrite)) = (p.key.src, p.key.dst, rewrite)
        else {
            return;
        };
        let datagram = DatagramId {
            src,
            dst,
            proto: p.key.proto,
            id,
        };
        self.shared.fragments.remember(datagram, rewrite, now);
    }

    /// A later fragment: translated like its first fragment if that was forwarded, dropped if it
    /// belongs to a service, a NAT real server or a FULLNAT local address, else the kernel's.
    fn later_fragment(&self, now: Nanos, frame: &mut [u8], f: &LaterFragment) -> Verdict {
        let d = &f.datagram;
        let Some(rw) = self.shared.fragments.find(d, now) else {
            let ours = self.snap.is_vip(IpAddr::V4(d.dst), d.proto)
                || self.snap.is_nat_real(IpAddr::V4(d.src), d.proto)
                || self
                    .shared
                    .conntrack
                    .local_pools()
                    .id_of(d.dst.to_bits())
                    .is_some();
            return if ours {
                Verdict::Drop(DropReason::Ipv4Fragment)
            } else {
                Verdict::Pass
            };
        };
        // The datagram's VIP: its destination in the original direction, the new source of a
        // reply.
        if self.snap.has_vrrp_gates()
            && (self.snap.vrrp_backup_vip(IpAddr::V4(d.dst))
                || rw
                    .new_src
                    .is_some_and(|vip| self.snap.vrrp_backup_vip(IpAddr::V4(vip))))
        {
            return Verdict::Drop(DropReason::VrrpBackup);
        }
        if rw.routed && f.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let (hop, port_mac) = match self.next_hop(IpAddr::V4(rw.route_to)) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[f.l3..]) else {
            return Verdict::Drop(DropReason::TruncatedIpv4);
        };
        if let Some(a) = rw.new_src {
            ip.set_src(a);
        }
        if let Some(a) = rw.new_dst {
            ip.set_dst(a);
        }
        if rw.routed {
            ip.set_ttl(f.ttl - 1);
        }
        let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else {
            return Verdict::Drop(DropReason::TruncatedEthernet);
        };
        eth.set_dst(hop.mac);
        eth.set_src(port_mac);
        Verdict::Tx(hop.port)
    }

    /// The connection of an original-direction packet to service `si`: found, or scheduled and
    /// inserted (for a `one_packet` service: scheduled, never inserted).
    #[inline(always)]
    fn original(&mut self, now: Nanos, si: usize, p: &Parsed) -> Result<Tracked, DropReason> {
        let timeouts = self.snap.timeouts;
        let one_packet = self.snap.services[si].one_packet;
        if !one_packet {
            let table = &self.shared.conntrack;
            if let Some(t) = table.lookup(Direction::Original, &p.key, p.event, now, &timeouts) {
                return Ok(t);
            }
        }
        let state = match p.event {
            Event::Tcp(f) if f.is_initial_syn() => ConnState::SynRecv,
            Event::Tcp(f) if self.snap.sloppy_tcp && !f.rst() => {
                ConnState::Established.on_tcp(Direction::Original, f)
            }
            Event::Tcp(_) => return Err(DropReason::NoConnection),
            Event::Udp => ConnState::Udp,
        };
        // keepalived: a service that lost quorum has its real servers replaced by the sorry
        // server (without one, the servers still up keep taking flows); a service whose real
        // servers can take no flow uses the sorry server too.
        let lost_quorum = {
            let svc = &self.snap.services[si];
            svc.sorry.is_some() && !svc.state.has_quorum()
        };
        let picked = if lost_quorum {
            None
        } else {
            match self.pick_real(now, si, p) {
                Ok(ri) => Some(ri),
                Err(DropReason::NoRealServer) => None,
                Err(e) => return Err(e),
            }
        };
        let svc = &self.snap.services[si];
        let real = match picked {
            Some(ri) => &svc.reals[ri],
            None => svc.sorry.as_ref().ok_or(DropReason::NoRealServer)?,
        };
        // A port-0 real server (of a port-0 service) keeps the client's destination port.
        let real_addr = match real.addr.port() {
            0 => SocketAddr::new(real.addr.ip(), p.key.dport),
            _ => real.addr,
        };
        let client = SocketAddr::new(p.key.src, p.key.sport);
        let vip = SocketAddr::new(p.key.dst, p.key.dport);
        if one_packet {
            real.stats.connections_total.fetch_add(1, Ordering::Relaxed);
            bump(&self.counters.new_connections, 1);
            return Ok(Tracked {
                client,
                vip,
                real: real_addr,
                state,
                local: None,
                handshake_completed: false,
            });
        }
        let new = NewConn {
            proto: p.key.proto,
            client,
            vip,
            real: real_addr,
            state,
            stats: real.stats.clone(),
        };
        let table = &self.shared.conntrack;
        let inserted = match svc.local_pool {
            Some(pool) => table.insert_fullnat(new, pool, now, &timeouts),
            None if svc.forwarding.replies_return() => table.insert(new, now, &timeouts),
            None => table.insert_original_only(new, now, &timeouts),
        };
        match inserted {
            Ok(ins) => {
                real.stats.connections_total.fetch_add(1, Ordering::Relaxed);
                bump(&self.counters.new_connections, 1);
                if ins.evicted_half_open {
                    bump(&self.counters.conntrack_evictions, 1);
                }
                Ok(ins.conn)
            }
            // `parse` yields IPv4 keys only and the config refuses IPv6 real servers, so
            // `NotIpv4` cannot happen today; if it did, the flow could not be tracked either.
            Err(InsertError::Full | InsertError::NotIpv4) => Err(DropReason::ConntrackFull),
            Err(InsertError::LocalPortsExhausted) => Err(DropReason::LocalPortsExhausted),
        }
    }

    /// The real server (index in the service's `reals`) for a new flow of service `si`: the
    /// scheduler's pick, or for a persistent service the server of the client network's template
    /// while that server can take the flow.
    fn pick_real(&mut self, now: Nanos, si: usize, p: &Parsed) -> Result<usize, DropReason> {
        let svc = &self.snap.services[si];
        let scheduler = &mut self.schedulers[si];
        let Some(persistence) = svc.persistence else {
            return scheduler
                .pick(now, &p.key, &svc.reals)
                .ok_or(DropReason::NoRealServer);
        };
        let key = TemplateKey::new(
            svc.key.proto,
            svc.key.vip,
            svc.key.port,
            p.key.src,
            persistence.netmask,
        );
        let chosen = self
            .shared
            .persistence
            .schedule(key, now, persistence.timeout, |current| {
                let kept = current
                    .and_then(|addr| svc.real_position(addr))
                    .filter(|&i| svc.reals[i].is_available());
                kept.or_else(|| scheduler.pick(now, &p.key, &svc.reals))
                    .map(|i| svc.reals[i].addr)
            })
            .map_err(|_| DropReason::PersistenceFull)?;
        chosen
            .and_then(|addr| svc.real_position(addr))
            .ok_or(DropReason::NoRealServer)
    }

    /// The next hop towards `dst` and the MAC of its egress port. A next hop whose MAC is not
    /// known yet is handed to the control plane to resolve.
    fn next_hop(&self, dst: IpAddr) -> Result<(NextHop, Mac), DropReason> {
        self.next_hop_with(dst, false)
    }

    /// [`next_hop`](Self::next_hop), refusing a `dst` behind a gateway when `on_link_only`
    /// (`dr_not_on_link`).
    fn next_hop_with(&self, dst: IpAddr, on_link_only: bool) -> Result<(NextHop, Mac), DropReason> {
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
        Ok((hop, port.mac))
    }

    /// Rewrites `side` of the packet to `to`, routes towards `route_to` and fills the Ethernet
    /// header.
    fn forward(
        &self,
        frame: &mut [u8],
        p: &Parsed,
        side: Side,
        to: SocketAddr,
        route_to: IpAddr,
    ) -> Verdict {
        let (hop, port_mac) = match self.next_hop(route_to) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let (IpAddr::V4(new_ip), true) = (to.ip(), p.key.src.is_ipv4()) else {
            // IPv6 is refused by the configuration until its issue lands; never rewrite across
            // families.
            return Verdict::Pass;
        };
        rewrite_ipv4(frame, p, side, new_ip, to.port());
        emit(&mut *frame, hop, port_mac)
    }
}

impl Processor {
    /// FULLNAT, original direction: source → `local`, destination → `real`, routed to the real
    /// server; then, for a `toa` service, the TOA option in the client's SYN and in its ACK
    /// completing the handshake (may grow the frame, see [`crate::datapath::fullnat`]).
    #[allow(clippy::too_many_arguments)]
    fn forward_fullnat(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        local: SocketAddr,
        real: SocketAddr,
        t: &Tracked,
        si: usize,
    ) -> Verdict {
        // FULLNAT routes the packet. Checked here, not only by the service's method: a
        // connection keeps FULLNAT after a reload made its service DR or TUN.
        if p.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let (hop, port_mac) = match self.next_hop(real.ip()) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let (SocketAddr::V4(local), SocketAddr::V4(real), IpAddr::V4(cip)) =
            (local, real, p.key.src)
        else {
            return Verdict::Pass;
        };
        let frame_len = (*len).min(buf.len());
        if !fullnat::rewrite_both(
            &mut buf[..frame_len],
            p.l3,
            p.l4,
            p.key.proto,
            p.ttl - 1,
            local,
            real,
        ) {
            return Verdict::Drop(DropReason::TruncatedIpv4);
        }
        if self.snap.services[si].toa {
            if let Event::Tcp(f) = p.event {
                if f.is_initial_syn() || t.handshake_completed {
                    let mtu = self
                        .snap
                        .ports
                        .get(usize::from(hop.port))
                        .map_or(1500, |port| port.mtu);
                    let client = SocketAddrV4::new(cip, p.key.sport);
                    let inserted = match p.first_fragment {
                        Some(_) => Err(fullnat::ToaSkip::Fragment),
                        None => fullnat::insert_toa(buf, frame_len, p.l3, p.l4, client, mtu),
                    };
                    match inserted {
                        Ok(n) => {
                            *len = n;
                            bump(&self.counters.toa_inserted, 1);
                        }
                        Err(skip) => self.counters.count_toa_skip(skip),
                    }
                }
            }
        }
        let frame_len = (*len).min(buf.len());
        emit(&mut buf[..frame_len], hop, port_mac)
    }

    /// FULLNAT, reply direction: source → VIP:port, destination → client, routed to the client.
    fn reply_fullnat(
        &self,
        frame: &mut [u8],
        p: &Parsed,
        vip: SocketAddr,
        client: SocketAddr,
    ) -> Verdict {
        let (hop, port_mac) = match self.next_hop(client.ip()) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let (SocketAddr::V4(vip), SocketAddr::V4(client)) = (vip, client) else {
            return Verdict::Pass;
        };
        if !fullnat::rewrite_both(frame, p.l3, p.l4, p.key.proto, p.ttl - 1, vip, client) {
            return Verdict::Drop(DropReason::TruncatedIpv4);
        }
        emit(&mut *frame, hop, port_mac)
    }
}

fn build_schedulers(snap: &Snapshot) -> Vec<Box<dyn Scheduler>> {
    snap.services
        .iter()
        .map(|s| sched::build(s.scheduler, &s.tables, &s.reals))
        .collect()
}

/// Addresses `frame` to the next hop `hop` from its port's MAC `port_mac` and says to transmit it
/// on `hop.port`. Every caller's frame was parsed as Ethernet; one too short for the header
/// (impossible after that) is dropped, never sent.
#[inline]
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

/// Parses an Ethernet/IPv4/TCP-or-UDP frame. `Ok(None)`: not something xvs balances (other
/// EtherType, other protocol).
fn parse(frame: &[u8]) -> Result<Option<Packet>, DropReason> {
    let eth = EthernetFrame::new_checked(frame)?;
    // VLAN-tagged frames are not balanced yet (the filter passes them too): forwarding a tag from
    // one segment onto another would be wrong until ports know their VLANs.
    if eth.ethertype() != EtherType::IPV4 || eth.vlan_id().is_some() {
        return Ok(None);
    }
    let l3 = eth.header_len();
    let ip = Ipv4Packet::new_checked(&frame[l3..])?;
    if !ip.checksum_ok() {
        return Err(DropReason::BadIpv4Checksum);
    }
    if ip.protocol() == crate::datapath::wire::icmp::PROTOCOL {
        // Fragmented ICMP is the kernel's (an error message fits one packet).
        if ip.is_fragment() {
            return Ok(None);
        }
        let l4 = l3 + ip.header_len();
        let msg = ip.payload();
        let m = IcmpPacket::new_checked(msg)?;
        if !crate::datapath::wire::icmp::is_error(m.icmp_type()) {
            return Ok(None);
        }
        // The translation recomputes the ICMP checksum: a corrupted message must not leave
        // with a valid one.
        if !m.checksum_ok() {
            return Err(DropReason::BadIcmpChecksum);
        }
        let Some((quoted, quote_at, quote_l4)) = read_quote(msg, l4) else {
            let frag_needed = m.icmp_type() == crate::datapath::wire::icmp::DEST_UNREACHABLE
                && m.code() == crate::datapath::wire::icmp::CODE_FRAG_NEEDED;
            return Ok(frag_needed
                .then(|| read_tunnel_quote(msg, l4, l3))
                .flatten()
                .map(Packet::TunnelFragNeeded));
        };
        return Ok(Some(Packet::IcmpError(IcmpError {
            l3,
            l4,
            end: l3 + ip.total_len(),
            ttl: ip.ttl(),
            quoted,
            quote_at,
            quote_l4,
        })));
    }
    let Some(proto) = Proto::from_number(ip.protocol()) else {
        return Ok(None);
    };
    if ip.fragment_offset() != 0 {
        return Ok(Some(Packet::LaterFragment(LaterFragment {
            l3,
            datagram: DatagramId {
                src: ip.src(),
                dst: ip.dst(),
                proto,
                id: ip.identification(),
            },
            ttl: ip.ttl(),
        })));
    }
    let first_fragment = ip.more_fragments().then(|| ip.identification());
    let l4 = l3 + ip.header_len();
    let payload = ip.payload();
    let (sport, dport, event) = match proto {
        Proto::Tcp => {
            let t = TcpSegment::new_checked(payload)?;
            if !t.flags().is_valid_combination() {
                return Err(DropReason::BadTcpFlags);
            }
            (t.src_port(), t.dst_port(), Event::Tcp(t.flags()))
        }
        Proto::Udp => {
            let u = match first_fragment {
                Some(_) => UdpDatagram::new_checked_first_fragment(payload)?,
                None => UdpDatagram::new_checked(payload)?,
            };
            (u.src_port(), u.dst_port(), Event::Udp)
        }
    };
    Ok(Some(Packet::Flow(Parsed {
        l3,
        l4,
        key: FlowKey {
            proto,
            src: IpAddr::V4(ip.src()),
            dst: IpAddr::V4(ip.dst()),
            sport,
            dport,
        },
        event,
        ttl: ip.ttl(),
        ip_len: u16::try_from(ip.total_len()).unwrap_or(u16::MAX),
        first_fragment,
    })))
}

/// Rewrites one endpoint (address and port) of a parsed IPv4 packet and decrements its TTL,
/// keeping the IP and transport checksums correct.
fn rewrite_ipv4(
    frame: &mut [u8],
    p: &Parsed,
    side: Side,
    new_ip: std::net::Ipv4Addr,
    new_port: u16,
) {
    let mut ip = Ipv4Packet::new_checked(&mut frame[p.l3..]).expect("parsed before");
    let old_ip = match side {
        Side::Src => ip.src(),
        Side::Dst => ip.dst(),
    };
    match side {
        Side::Src => ip.set_src(new_ip),
        Side::Dst => ip.set_dst(new_ip),
    }
    ip.set_ttl(p.ttl - 1);
    let old_port = match side {
        Side::Src => p.key.sport,
        Side::Dst => p.key.dport,
    };
    // The transport checksum covers the pseudo-header's address and the port.
    let update = |c: u16| {
        let c = checksum::update_bytes(c, &old_ip.octets(), &new_ip.octets());
        checksum::update_u16(c, old_port, new_port)
    };
    let l4 = &mut frame[p.l4..];
    match p.key.proto {
        Proto::Tcp => {
            let mut t = TcpSegment::new_checked(l4).expect("parsed before");
            match side {
                Side::Src => t.set_src_port(new_port),
                Side::Dst => t.set_dst_port(new_port),
            }
            let c = update(t.checksum());
            t.set_checksum(c);
        }
        Proto::Udp => {
            // The relaxed check: a first fragment's length field covers later fragments too.
            let mut u = UdpDatagram::new_checked_first_fragment(l4).expect("parsed before");
            match side {
                Side::Src => u.set_src_port(new_port),
                Side::Dst => u.set_dst_port(new_port),
            }
            // 0 means "no checksum" and stays 0; a computed 0 is sent as 0xffff (RFC 768).
            if u.checksum() != 0 {
                let c = update(u.checksum());
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
        }
    }
}
