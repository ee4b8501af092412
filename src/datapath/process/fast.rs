//! The established-flow fast path: a packet of an established IPv4 NAT or DR connection in the
//! original direction (client → real server) decided in one pass over fixed offsets, without
//! the general pipeline's views, [`super::Parsed`] and [`crate::conntrack::Tracked`].
//!
//! What it takes: an untagged Ethernet frame carrying IPv4 without options (IHL 5), not a
//! fragment (neither MF nor an offset), a valid header checksum, TCP (a header that fits, a flag
//! combination TCP sends, no SYN) or UDP (a length field that fits), to a NAT or DR service that
//! is not `one_packet` and not a VRRP backup's, with the TTL a NAT packet needs, sync off, and
//! whose connection hits with nothing to change but its expiry
//! ([`crate::conntrack::ConnTable::lookup_established_v4`]).
//!
//! Invariant: the fast path either decides the frame exactly as the pipeline would (same
//! verdict, same bytes, same counters, same table effect) or returns `None` having changed
//! nothing, and the pipeline decides the frame. Every check that could make the pipeline decide
//! differently is made before the lookup, except what only the entry says (a state change, an
//! expired or installed entry, a FULLNAT local endpoint), for which the lookup itself declines.
//! After a hit, the pipeline's steps follow in its order: the route step (next hop, egress
//! port; its drops are the pipeline's), the rewrite with the same incremental checksums (one
//! RFC 1624 update per checksum instead of one per field: the same value, see
//! [`update_words`]), the Ethernet header, the traffic counters. What the route step and the
//! counters work out for a hit (the MACs and port, the traffic slots, a reply's service) is
//! kept with it in the flow cache for the worker's epoch ([`CachedRoute`]); only the VRRP gate,
//! which may move at any time, is read per frame.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::flow_cache::{CachedRoute, Held};
use super::Processor;
use crate::conntrack::{Direction, EstablishedV4, Event, Hint, Origin, V4Key};
use crate::datapath::counters::Dir;
use crate::datapath::nexthop::Mac;
use crate::datapath::snapshot::Forwarding;
use crate::datapath::wire::{checksum, TcpFlags};
use crate::datapath::{DropReason, PortId, Verdict};
use crate::flow::{Nanos, Proto};

/// Frame offsets of the IPv4 header and the transport header (IHL 5).
const L3: usize = 14;
const L4: usize = L3 + 20;

/// An untagged IPv4 TCP/UDP frame without options or fragmentation, read at fixed offsets and
/// checked as `parse` checks it ([`read`]).
#[derive(Clone, Copy)]
pub(super) struct Fast {
    pub(super) key: V4Key,
    event: Event,
    ttl: u8,
    /// The IPv4 total length.
    ip_len: u16,
}

/// The flow key of an untagged IPv4 TCP/UDP frame without IP options that is not a later
/// fragment, at fixed offsets, checking nothing else: what the batch's pre-pass hashes.
#[inline(always)]
pub(super) fn key_of(frame: &[u8]) -> Option<V4Key> {
    let h = frame.first_chunk::<{ L4 + 4 }>()?;
    if h[12..15] != [0x08, 0x00, 0x45] || (h[20] & 0x1f, h[21]) != (0, 0) {
        return None;
    }
    let w = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let a = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    Some(V4Key {
        src: a(L3 + 12),
        dst: a(L3 + 16),
        sport: w(L4),
        dport: w(L4 + 2),
        proto: Proto::from_number(h[L3 + 9])?,
    })
}

/// [`key_of`] for a frame `parse` would accept as a whole TCP/UDP packet with the same event,
/// TTL and length: total length within the frame, not a fragment (first ones included), the
/// header checksum verified, the transport header as `transport` checks it. `None` for anything
/// else (the pipeline then parses it).
#[inline(always)]
fn read(frame: &[u8]) -> Option<Fast> {
    let key = key_of(frame)?;
    let h = frame.first_chunk::<{ L4 + 14 }>()?;
    // A SYN (a new connection, or one reopening its entry) is the pipeline's: said first, so
    // that new connections pay as little as possible for the fast path.
    if key.proto == Proto::Tcp && TcpFlags(h[L4 + 13]).syn() {
        return None;
    }
    let total = u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]);
    let l4_len = usize::from(total).checked_sub(20)?;
    if usize::from(total) > frame.len() - L3 || h[L3 + 6] & 0x20 != 0 {
        return None;
    }
    if !checksum::ipv4_header_verifies(h.get(L3..L4)?.first_chunk()?) {
        return None;
    }
    let event = match key.proto {
        Proto::Tcp => {
            let header_len = usize::from(h[L4 + 12] >> 4) * 4;
            let flags = TcpFlags(h[L4 + 13]);
            let fits = l4_len >= 20 && header_len >= 20 && header_len <= l4_len;
            if !fits || !flags.is_valid_combination() {
                return None;
            }
            Event::Tcp(flags)
        }
        Proto::Udp => {
            let len = usize::from(u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]));
            if l4_len < 8 || len < 8 || len > l4_len {
                return None;
            }
            Event::Udp
        }
    };
    Some(Fast {
        key,
        event,
        ttl: h[L3 + 8],
        ip_len: total,
    })
}

/// What the fast path may do with the frames of one service of the worker's snapshot
/// ([`FastService::of`]; the processor keeps one per service, rebuilt with each snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FastService {
    /// NAT (the rewrite and the TTL); `false`: DR (MACs only).
    nat: bool,
    /// Its VIP is managed by VRRP: a frame of it takes the fast path only while this box holds
    /// the VIP (read per frame).
    gated: bool,
}

impl FastService {
    /// `None` for a service whose frames the fast path leaves to the pipeline: FULLNAT, TUN,
    /// `one_packet`.
    pub(super) fn of(svc: &crate::datapath::Service) -> Option<FastService> {
        let nat = match svc.forwarding {
            Forwarding::Nat => true,
            Forwarding::Dr => false,
            Forwarding::FullNat | Forwarding::Tun => return None,
        };
        (!svc.one_packet).then_some(FastService {
            nat,
            gated: svc.vrrp.is_some(),
        })
    }
}

/// RFC 1624 update of checksum `hc` for the 16-bit words `old` changing to `new`, in one sum:
/// the same value as one [`checksum::update_u16`] per word (each step's folded sum is congruent
/// modulo 0xffff and is 0 only when every term is, so the final fold is the same).
#[inline(always)]
fn update_words<const N: usize>(hc: u16, old: [u16; N], new: [u16; N]) -> u16 {
    // An index loop over the arrays: the optimiser unrolls it (a `zip` of the two arrays'
    // iterators stayed a loop of calls, about 150 instructions per frame).
    let mut s = u32::from(!hc);
    for i in 0..N {
        s += u32::from(!old[i]) + u32::from(new[i]);
    }
    !checksum::fold(s)
}

impl Processor {
    /// The fast path (see the module documentation): `Some` with the decision of a frame it
    /// took, `None` having changed nothing.
    #[inline(always)]
    pub(super) fn fast(
        &mut self,
        now: Nanos,
        ingress: PortId,
        buf: &mut [u8],
        len: usize,
    ) -> Option<Result<Verdict, DropReason>> {
        if self.sync.is_some() || !self.fast_path {
            return None;
        }
        let frame = buf.get(..len)?;
        let f = read(frame)?;
        self.own_frames_only(ingress, frame).ok()?;
        // The pre-pass's entry for this frame, if it read this key (then its service is this
        // batch's answer for it).
        let hinted = (self.hints.get(self.hint_at))
            .and_then(Option::as_ref)
            .filter(|h| h.key == f.key);
        let service = match hinted {
            Some(h) => h.service,
            None => self.service_of_v4(&f.key),
        };
        let hint = hinted.map(|h| (h.hash, h.hint));
        let Some(si) = service else {
            return self.fast_reply(now, buf, len, &f, hint);
        };
        let fs = (self.fast_services.get(si).copied()).flatten()?;
        let nat = fs.nat;
        if (nat && f.ttl <= 1) || (fs.gated && self.snap.services.get(si)?.vrrp_backup()) {
            return None;
        }
        let held = self.fast_lookup(Direction::Original, now, &f, hint)?;
        let (hit, cached) = self.flow_cache.entry(held, self.epoch)?;
        let (real, rport, origin, stats_id) = (hit.real, hit.rport, hit.origin, hit.stats_id);
        let frame = buf.get_mut(..len)?;
        let (port, counts) = match cached {
            Some(route) => {
                write_eth(frame, route);
                (route.port, route.counts)
            }
            None => match self.cached_route(real, !nat, Some(si), origin, stats_id) {
                Ok(route) => {
                    let route = route?;
                    (self.flow_cache).set_held_route(held, Direction::Original, &f.key, route);
                    write_eth(frame, &route);
                    (route.port, route.counts)
                }
                Err(r) => return Some(Err(r)),
            },
        };
        if nat {
            rewrite(frame, &f, Side::Dst, real, rport);
        }
        match counts {
            Some(pair) => (self.traffic).count_pair(pair, Dir::In, u64::from(f.ip_len)),
            None => {
                let real = SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(real)), rport);
                self.count_conn(si, origin, stats_id, real, Dir::In, f.ip_len);
            }
        }
        Some(Ok(Verdict::Tx(port)))
    }

    /// A frame to no service: the reply of an established NAT connection (real server →
    /// client), as the pipeline's `reply` decides it, or `None`.
    #[inline(always)]
    fn fast_reply(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: usize,
        f: &Fast,
        hint: Option<(u64, Option<Hint>)>,
    ) -> Option<Result<Verdict, DropReason>> {
        // The pipeline drops a reply with TTL 1 after its lookup: left to it.
        if f.ttl <= 1 {
            return None;
        }
        let held = self.fast_lookup(Direction::Reply, now, f, hint)?;
        let (hit, cached) = self.flow_cache.entry(held, self.epoch)?;
        let hit = *hit;
        let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(hit.vip)), hit.vport);
        let route = match cached {
            // The service and route of this epoch; only the VIP's VRRP state may have moved.
            Some(route) => match self.reply_gate(route.service_index(), vip.ip()) {
                Ok(()) => *route,
                Err(r) => return Some(Err(r)),
            },
            None => match self.reply_route(&hit, vip, f.key.proto) {
                Ok(route) => {
                    let route = route?;
                    (self.flow_cache).set_held_route(held, Direction::Reply, &f.key, route);
                    route
                }
                Err(r) => return Some(Err(r)),
            },
        };
        let frame = buf.get_mut(..len)?;
        write_eth(frame, &route);
        rewrite(frame, f, Side::Src, hit.vip, hit.vport);
        if let Some(si) = route.service_index() {
            match route.counts {
                Some(pair) => (self.traffic).count_pair(pair, Dir::Out, u64::from(f.ip_len)),
                None => {
                    let real =
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(hit.real)), hit.rport);
                    self.count_conn(si, hit.origin, hit.stats_id, real, Dir::Out, f.ip_len);
                }
            }
        }
        Some(Ok(Verdict::Tx(route.port)))
    }

    /// What the pipeline's reply step works out for `hit` (a connection to `vip`), in its order:
    /// the reply's service (its VRRP drop first), then the route to the client; as a
    /// [`CachedRoute`] of this epoch.
    #[inline(always)]
    fn reply_route(
        &self,
        hit: &EstablishedV4,
        vip: SocketAddr,
        proto: crate::flow::Proto,
    ) -> Result<Option<CachedRoute>, DropReason> {
        let si = self.reply_service_of(hit.origin, vip, proto)?;
        self.cached_route(hit.client, false, si, hit.origin, hit.stats_id)
    }

    /// The route step towards `to` (`on_link_only` for DR) and the traffic slots of service
    /// `si` for a connection scheduled at `origin` with counters `stats_id`, as a
    /// [`CachedRoute`] of this epoch; `Ok(None)` for a service index beyond 32 bits (never
    /// configured), which cannot be cached: the pipeline decides that frame.
    #[inline(always)]
    fn cached_route(
        &self,
        to: u32,
        on_link_only: bool,
        si: Option<usize>,
        origin: Origin,
        stats_id: usize,
    ) -> Result<Option<CachedRoute>, DropReason> {
        let (dst, src, port) = self.fast_egress(Ipv4Addr::from_bits(to), on_link_only)?;
        let counts = si.and_then(|si| {
            let slot = self.origin_slot(si, origin, stats_id)?;
            self.traffic.slot_pair(si, slot)
        });
        let Ok(service) = si.map(u32::try_from).transpose() else {
            return Ok(None);
        };
        Ok(Some(CachedRoute {
            epoch: self.epoch,
            dst,
            src,
            port,
            service,
            counts,
        }))
    }

    /// The lookup of `f`'s connection in direction `dir`, with what the pre-pass computed for
    /// its key (for the direction its service gives, which is `dir`): the key's hash, and its
    /// [`Hint`] unless the flow cache held the key then. The flow cache's hit when it still
    /// stands ([`crate::conntrack::ConnTable::still_established_v4`]), else the table's, cached:
    /// the flow cache's slot that now holds the hit for `f`'s key and `dir` (read it with
    /// [`super::flow_cache::FlowCache::entry`]).
    #[inline(always)]
    fn fast_lookup(
        &mut self,
        dir: Direction,
        now: Nanos,
        f: &Fast,
        hint: Option<(u64, Option<Hint>)>,
    ) -> Option<Held> {
        let (table, timeouts) = (&self.shared.conntrack, &self.snap.timeouts);
        let (hash, hint) = hint.unwrap_or_else(|| (table.hash_v4(dir, &f.key), None));
        if let Some(held) = self.flow_cache.held(hash, dir, &f.key) {
            let hit = self.flow_cache.hit(held);
            if hit.is_some_and(|hit| table.still_established_v4(dir, hit, f.event, now, timeouts)) {
                return Some(held);
            }
        }
        let hint = hint.unwrap_or_else(|| table.hint_v4_hashed(dir, &f.key, hash));
        match table.lookup_established_v4(dir, &f.key, Some(hint), f.event, now, timeouts) {
            Some(hit) => self.flow_cache.put(hash, dir, f.key, hit),
            None => {
                self.flow_cache.forget(hash, dir);
                None
            }
        }
    }

    /// The route step towards `to` (`on_link_only` for DR): the next hop's MAC, the egress
    /// port's MAC and the egress port, or the route step's drop.
    #[inline(always)]
    fn fast_egress(
        &self,
        to: Ipv4Addr,
        on_link_only: bool,
    ) -> Result<(Mac, Mac, PortId), DropReason> {
        let egress = self.egress(IpAddr::V4(to), on_link_only)?;
        Ok((egress.hop.mac, egress.port_mac, egress.hop.port))
    }
}

/// Writes the Ethernet addresses of `route` into `frame` ([`read`] proved it holds a header).
#[inline(always)]
fn write_eth(frame: &mut [u8], route: &CachedRoute) {
    if let Some(eth) = frame.first_chunk_mut::<12>() {
        eth[..6].copy_from_slice(&route.dst);
        eth[6..].copy_from_slice(&route.src);
    }
}

/// Which endpoint [`rewrite`] changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// NAT's rewrite of the frame [`read`] checked: the address and port on `side` → `addr`:`port`,
/// TTL decremented, the IPv4 header and transport checksums updated (a UDP checksum of 0 stays
/// 0, a computed 0 is sent as 0xffff). [`read`] proved every offset in the frame.
#[inline(always)]
fn rewrite(frame: &mut [u8], f: &Fast, side: Side, addr: u32, port: u16) {
    let (at_addr, at_port, old_addr, old_port) = match side {
        Side::Src => (L3 + 12, L4, f.key.src, f.key.sport),
        Side::Dst => (L3 + 16, L4 + 2, f.key.dst, f.key.dport),
    };
    let [o0, o1] = split(old_addr);
    let [n0, n1] = split(addr);
    let Some(h) = frame.first_chunk_mut::<{ L4 + 8 }>() else {
        return;
    };
    let ttl = f.ttl.saturating_sub(1);
    let proto = u16::from(h[L3 + 9]);
    let ip_sum = u16::from_be_bytes([h[L3 + 10], h[L3 + 11]]);
    let old = [o0, o1, u16::from(f.ttl) << 8 | proto];
    let ip_sum = update_words(ip_sum, old, [n0, n1, u16::from(ttl) << 8 | proto]);
    h[L3 + 8] = ttl;
    h[L3 + 10..L3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    h[at_addr..at_addr + 4].copy_from_slice(&addr.to_be_bytes());
    h[at_port..at_port + 2].copy_from_slice(&port.to_be_bytes());
    // The transport checksum covers the pseudo-header's address and the port.
    let (old, new) = ([o0, o1, old_port], [n0, n1, port]);
    let at = match f.key.proto {
        Proto::Tcp => L4 + 16,
        Proto::Udp => L4 + 6,
    };
    let Some(field) = frame.get_mut(at..at + 2) else {
        return;
    };
    let c = u16::from_be_bytes([field[0], field[1]]);
    let c = match f.key.proto {
        Proto::Tcp => update_words(c, old, new),
        Proto::Udp if c == 0 => 0,
        Proto::Udp => checksum::udp_field(update_words(c, old, new)),
    };
    field.copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 address's bits as its two 16-bit words.
#[inline(always)]
fn split(a: u32) -> [u16; 2] {
    let [b0, b1, b2, b3] = a.to_be_bytes();
    [u16::from_be_bytes([b0, b1]), u16::from_be_bytes([b2, b3])]
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small
mod tests {
    use super::*;

    /// One [`checksum::update_u16`] per word, as the pipeline updates.
    fn stepwise<const N: usize>(hc: u16, old: [u16; N], new: [u16; N]) -> u16 {
        (old.into_iter().zip(new)).fold(hc, |c, (o, n)| checksum::update_u16(c, o, n))
    }

    #[test]
    fn one_update_equals_one_per_word_at_the_edges_and_at_random() {
        let edges = [0u16, 1, 0x7fff, 0x8000, 0xfffe, 0xffff];
        for &c in &edges {
            for &a in &edges {
                for &b in &edges {
                    for &x in &edges {
                        let (old, new) = ([a, x, b], [b, a, x]);
                        assert_eq!(update_words(c, old, new), stepwise(c, old, new));
                    }
                }
            }
        }
        let mut r: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            (r & 0xffff) as u16
        };
        for _ in 0..200_000 {
            let c = next();
            let old = [next(), next(), next()];
            let new = [next(), next(), next()];
            assert_eq!(update_words(c, old, new), stepwise(c, old, new));
        }
    }

    #[test]
    fn only_plain_ipv4_tcp_udp_frames_are_read() {
        let mut f = vec![0u8; 60];
        f[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[46] = 5 << 4;
        f[47] = 0x10;
        assert!(read(&f).is_some());
        let broken = |at: usize, v: u8| {
            let mut g = f.clone();
            g[at] = v;
            read(&g).is_none()
        };
        assert!(broken(12, 0x81), "VLAN");
        assert!(broken(14, 0x46), "options");
        assert!(broken(20, 0x20), "more fragments");
        assert!(broken(21, 1), "fragment offset");
        assert!(broken(23, 1), "ICMP");
        assert!(broken(25, c.to_be_bytes()[1] ^ 1), "header checksum");
        assert!(broken(46, 4 << 4), "TCP header too short");
        assert!(broken(46, 6 << 4), "TCP header past the packet");
        assert!(broken(47, 0x02), "SYN");
        assert!(broken(47, 0x03), "SYN+FIN");
        assert!(read(&f[..53]).is_none(), "total length past the frame");
    }
}
