//! ICMP and ICMPv6 errors about tracked connections (IPVS `ip_vs_in_icmp` / `ip_vs_out_icmp`,
//! and their `_v6` twins).
//!
//! An ICMP destination unreachable (fragmentation needed included) or time exceeded, or an
//! ICMPv6 destination unreachable, packet too big or time exceeded (`icmp6.rs`: what differs
//! over IPv6), quotes the packet it is about (its IP header, over IPv6 its extension headers,
//! and at least 8 bytes of its transport header). When that packet belongs to a connection xvs
//! translates, the error goes to the other party with the quote rewritten as the connection's
//! packets are, read from its [`Translation`] (of either family):
//!
//! - **from the server side** (the real server, or a router on its way, about a packet xvs sent
//!   it): the quote is a server-side original packet (NAT: client → real server; FULLNAT: local
//!   address:port → real server); it becomes the client-side original (client → VIP), the outer
//!   source the VIP and the outer destination the client (as IPVS: even an error from a router
//!   appears to come from the VIP). Found by the connection's reply key (the quote reversed).
//!   A FULLNAT error is addressed to the pool address, one of the box's own: it is recognised
//!   by the quote's source, a pool address at a port of its pool's range (the filter's
//!   `local_pools` map); errors about the box's own connections from a pool address (other
//!   ports) stay the kernel's.
//! - **from the client side** (the client, or a router on its way, about a reply): the quote is
//!   a client-side reply (VIP → client); it becomes the server-side reply (NAT: real server →
//!   client; FULLNAT: real server → local address:port), the outer destination the real server
//!   (and, when the method rewrites the source, FULLNAT, the outer source the local address, so
//!   the real server, which has no route to the client, sees an error from the peer it knows).
//!   Found by the original key (the quote reversed).
//!
//! Which translation applies is read from the connection entry, not the service
//! ([`Translation::of`]): a connection keeps the method it was created with across a reload.
//!
//! Both fix the quoted IP header checksum (IPv4) and, when it is quoted, the quoted transport
//! checksum (incrementally; a UDP checksum of 0 stays 0), then the outer header (incrementally,
//! TTL or hop limit decremented as for any routed packet) and the ICMP checksum (recomputed
//! over the message; ICMPv6's over its pseudo-header too). Looking a connection up for an
//! error does not change its state or timeout.
//!
//! DR and TUN rewrite no address: their real servers' errors go straight to the client. An
//! error from the client's side about a reply (which left the real server with the VIP as its
//! source, so the error comes to the box) goes on to the connection's real server unchanged —
//! DR by MAC, TUN encapsulated — as IPVS does, so path-MTU discovery works for the replies.
//! The same rule holds over IPv6 (DR6 by MAC, TUN6 in IPv6-in-IPv6).
//!
//! TUN: a "fragmentation needed" from a router inside the tunnel (addressed to the box, quoting
//! the outer header and the client's packet) becomes a "fragmentation needed" from the VIP to
//! the client with the MTU less 20 bytes, as IPVS does; over IPv6 a Packet Too Big quoting
//! the outer IPv6 header (next header 41) becomes a Packet Too Big from the VIP with the MTU
//! less 40 (never below 1280: `tunnel_mtu` otherwise); other errors about tunnelled packets
//! are the kernel's.
//!
//! Not forwarded either: an error about a flow of a service whose VIP is managed by VRRP and not
//! held by this box (`vrrp_backup`, see `process.rs`).
//!
//! Not translated: an error whose quote is no connection's. The XDP filter only steers errors
//! whose quote names a service (source VIP:port), a FULLNAT local endpoint (source pool
//! address at a port of its range) or a NAT real server (destination address:port), and never
//! an error addressed to the box itself about a packet to a NAT real server (a health check's),
//! so such an error is one about a connection that is gone or never was: it is dropped and
//! counted as `icmp_untracked`. Every other ICMP message (echo to a VIP
//! included) is the kernel's: the filter passes it, and `process()` passes it too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use super::tun::{frag_needed_mtu, packet_too_big_mtu};
use super::{icmp6, Processor, Route};
use crate::conntrack::{Direction, Tracked};
use crate::datapath::translation::Translation;
use crate::datapath::wire::{checksum, icmp, read_u16, write_u16, IcmpPacket};
use crate::datapath::{DropReason, Forwarding, ServiceKey, Verdict};
use crate::flow::{FlowKey, Nanos, Proto};

/// Where an ICMP or ICMPv6 error is in the frame (the family is the quote's).
pub(super) struct IcmpError {
    pub l3: usize,
    /// Start of the ICMP message and end of the IP packet.
    pub l4: usize,
    pub end: usize,
    /// The TTL or hop limit.
    pub ttl: u8,
    /// The packet the error quotes, as read from the quote.
    pub quoted: FlowKey,
    /// Start of the quote and of its transport header (after any extension headers).
    pub quote_at: usize,
    pub quote_l4: usize,
}

/// Offsets of an ICMP error from the start of its IP packet: what the rewrite of each family
/// needs.
pub(super) struct QuoteAt {
    /// The ICMP message.
    pub l4: usize,
    /// The quote.
    pub quote: usize,
    /// The quote's transport header, from the start of the quote.
    pub quote_l4: usize,
}

impl IcmpError {
    fn offsets(&self) -> QuoteAt {
        QuoteAt {
            l4: self.l4 - self.l3,
            quote: self.quote_at - self.l3,
            quote_l4: self.quote_l4 - self.quote_at,
        }
    }
}

/// Reads the quote of an ICMP error message `msg` (ICMP header included) at frame offset `l4`.
/// `None` unless it is an IPv4 TCP/UDP header (not a later fragment) with 8 transport bytes.
pub(super) fn read_quote(msg: &[u8], l4: usize) -> Option<(FlowKey, usize, usize)> {
    let q = msg.get(icmp::HEADER_LEN..)?;
    if q.len() < 20 || q[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(q[0] & 0x0f) * 4;
    if ihl < 20 || q.len() < ihl + 8 || read_u16(q, 6) & 0x1fff != 0 {
        return None;
    }
    let proto = Proto::from_number(q[9])?;
    let addr = |at: usize| IpAddr::V4(Ipv4Addr::new(q[at], q[at + 1], q[at + 2], q[at + 3]));
    let key = FlowKey {
        proto,
        src: addr(12),
        dst: addr(16),
        sport: read_u16(q, ihl),
        dport: read_u16(q, ihl + 2),
    };
    let quote_at = l4 + icmp::HEADER_LEN;
    Some((key, quote_at, quote_at + ihl))
}

/// A "fragmentation needed" (IPv4) or Packet Too Big (IPv6) about a packet xvs tunnelled (its
/// quote is the outer header, protocol 4 or next header 41, then the client's packet).
pub(super) struct TunnelFragNeeded {
    pub l3: usize,
    /// The MTU the router reports: an IPv4 "fragmentation needed"'s next-hop MTU (16 bits on
    /// the wire) or an IPv6 Packet Too Big's (32 bits).
    pub mtu: u32,
    /// Where the quoted outer header says the tunnelled packet went (the real server).
    pub outer_dst: IpAddr,
    /// The client's packet, as read from the quote.
    pub inner: FlowKey,
    /// Its bytes in the frame (IP header and what follows of it, at most 8 bytes).
    pub inner_quote: std::ops::Range<usize>,
}

/// Reads the quote of a "fragmentation needed" message `msg` at frame offset `l4` as an IP-in-IP
/// packet: `None` unless the outer header is protocol 4 and the inner one an IPv4 TCP/UDP
/// header (not a later fragment) with its ports.
pub(super) fn read_tunnel_quote(msg: &[u8], l4: usize, l3: usize) -> Option<TunnelFragNeeded> {
    let q = msg.get(icmp::HEADER_LEN..)?;
    if q.len() < 20 || q[0] >> 4 != 4 || q[9] != crate::datapath::wire::ipip::PROTOCOL {
        return None;
    }
    let ihl = usize::from(q[0] & 0x0f) * 4;
    let inner = q.get(ihl..)?;
    if ihl < 20 || inner.len() < 20 || inner[0] >> 4 != 4 {
        return None;
    }
    let iihl = usize::from(inner[0] & 0x0f) * 4;
    if iihl < 20 || inner.len() < iihl + 4 || read_u16(inner, 6) & 0x1fff != 0 {
        return None;
    }
    let proto = Proto::from_number(inner[9])?;
    let v4 = |b: &[u8], at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    let start = l4 + icmp::HEADER_LEN + ihl;
    Some(TunnelFragNeeded {
        l3,
        mtu: u32::from(read_u16(msg, 6)),
        outer_dst: IpAddr::V4(v4(q, 16)),
        inner: FlowKey {
            proto,
            src: IpAddr::V4(v4(inner, 12)),
            dst: IpAddr::V4(v4(inner, 16)),
            sport: read_u16(inner, iihl),
            dport: read_u16(inner, iihl + 2),
        },
        inner_quote: start..start + inner.len().min(iihl + 8),
    })
}

impl Processor {
    /// A router inside a TUN connection's tunnel says the encapsulated packet was too big: the
    /// client gets "fragmentation needed" from the VIP with that MTU less the outer header's 20
    /// bytes, about its own packet (IPVS `ip_vs_in_icmp` does the same for IPIP).
    pub(super) fn tunnel_frag_needed(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        e: &TunnelFragNeeded,
    ) -> Result<Verdict, DropReason> {
        let k = &e.inner;
        let svc = self.snap.service_for(&ServiceKey {
            vip: k.dst,
            port: k.dport,
            proto: k.proto,
        });
        let Some(si) = svc else {
            return Ok(Verdict::Pass);
        };
        if self.snap.services[si].forwarding != Forwarding::Tun {
            return Ok(Verdict::Pass);
        }
        if self.snap.services[si].vrrp_backup() {
            return Err(DropReason::VrrpBackup);
        }
        let tracked = self.shared.conntrack.peek(Direction::Original, k, now);
        if tracked.is_none_or(|t| t.real().ip() != e.outer_dst) {
            return Err(DropReason::IcmpUntracked);
        }
        let quote = e.inner_quote.clone();
        // The router's MTU is the outer packet's: the client's packets get the outer header
        // less, as when the box's own port is too small (an MTU past 16 bits is about no
        // packet xvs sent).
        let outer_mtu = u16::try_from(e.mtu).map_err(|_| DropReason::TunnelMtu)?;
        match (k.src, k.dst) {
            (IpAddr::V4(client), IpAddr::V4(vip)) => {
                let mtu = frag_needed_mtu(outer_mtu).ok_or(DropReason::TunnelMtu)?;
                Ok(self.answer_frag_needed(buf, len, e.l3, (client, vip), quote, mtu))
            }
            (IpAddr::V6(client), IpAddr::V6(vip)) => {
                let mtu = packet_too_big_mtu(outer_mtu).ok_or(DropReason::TunnelMtu)?;
                Ok(self.answer_packet_too_big(buf, len, e.l3, (client, vip), quote, mtu))
            }
            _ => Err(DropReason::TunnelMtu),
        }
    }

    /// Translates and forwards an ICMP error about a tracked connection (see the module
    /// documentation); passes or drops the others.
    pub(super) fn icmp_error(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        e: &IcmpError,
    ) -> Result<Verdict, DropReason> {
        let q = &e.quoted;
        // Client side: the quote is a reply the client got (VIP:port → client).
        let about_service = self.snap.service_for(&ServiceKey {
            vip: q.src,
            port: q.sport,
            proto: q.proto,
        });
        if let Some(si) = about_service {
            return self.icmp_from_client(now, buf, len, e, si);
        }
        // Server side, FULLNAT: the quote is a packet xvs sent from a local endpoint (a pool
        // address at a port of its pool's range; other ports are the box's own connections).
        if self.shared.conntrack.is_pool_endpoint(q.src, q.sport) {
            let t = self.server_side_conn(now, q)?;
            let t = Translation::fullnat(&t).ok_or(DropReason::IcmpUntracked)?;
            return self.icmp_to_client(buf, len, e, &t);
        }
        // Server side, NAT: the quote is a packet xvs sent a NAT real server.
        if self.snap.is_nat_real(q.dst, q.proto) {
            let t = self.server_side_conn(now, q)?;
            let t = Translation::nat(&t).ok_or(DropReason::IcmpUntracked)?;
            return self.icmp_to_client(buf, len, e, &t);
        }
        Ok(Verdict::Pass)
    }

    /// The connection of a server-side quote `q` (a packet xvs sent): found by its reply key
    /// (the quote reversed); `icmp_untracked` without one, `vrrp_backup` when its VIP is not held.
    fn server_side_conn(&self, now: Nanos, q: &FlowKey) -> Result<Tracked, DropReason> {
        let table = &self.shared.conntrack;
        let t =
            (table.peek(Direction::Reply, &q.reversed(), now)).ok_or(DropReason::IcmpUntracked)?;
        if self.snap.vrrp_backup_conn(t.vip(), q.proto) {
            return Err(DropReason::VrrpBackup);
        }
        Ok(t)
    }

    /// An error from the client side about a reply of service `si`'s connection: to its real
    /// server, translated (NAT, FULLNAT) or as it is (DR, TUN).
    fn icmp_from_client(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        e: &IcmpError,
        si: usize,
    ) -> Result<Verdict, DropReason> {
        let svc = &self.snap.services[si];
        if svc.vrrp_backup() {
            return Err(DropReason::VrrpBackup);
        }
        let forwarding = svc.forwarding;
        let table = &self.shared.conntrack;
        let t = table.peek(Direction::Original, &e.quoted.reversed(), now);
        let t = t.ok_or(DropReason::IcmpUntracked)?;
        match forwarding {
            // A DR/TUN reply left the real server with the VIP as source, so errors about it
            // (e.g. a router's fragmentation needed) come to the box: the real server gets the
            // error as it is, like the connection's packets.
            Forwarding::Tun => self.tunnel_icmp(buf, len, (e.l3, e.end - e.l3, e.ttl), t.real()),
            Forwarding::Dr => self.forward_dr(buf, len, t.real()),
            // NAT or FULLNAT: the entry says which (see `Translation::of`).
            Forwarding::Nat | Forwarding::FullNat => {
                let t = Translation::of(&t).ok_or(DropReason::IcmpUntracked)?;
                let (source, real) = t.server_side;
                let outer_src = t.rewrites_source().then(|| source.ip());
                self.icmp_forward(buf, len, e, (outer_src, real.ip()), (real, source))
            }
        }
    }

    /// An error from the server side: to the client, about its own packet.
    fn icmp_to_client(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        e: &IcmpError,
        t: &Translation,
    ) -> Result<Verdict, DropReason> {
        let (client, vip) = t.client_side;
        let outer = (Some(vip.ip()), client.ip());
        self.icmp_forward(buf, len, e, outer, (client, vip))
    }

    /// Rewrites the outer header to (`outer.0` if any, `outer.1`) and the quote to
    /// `quote.0 → quote.1` (every address of the error's family), then routes the error to
    /// `outer.1`.
    fn icmp_forward(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        e: &IcmpError,
        outer: (Option<IpAddr>, IpAddr),
        quote: (SocketAddr, SocketAddr),
    ) -> Result<Verdict, DropReason> {
        let hop_limit = e.ttl.saturating_sub(1);
        self.route(buf, len, Route::routed(outer.1, e.ttl), |buf, _, _| {
            let packet = buf.get_mut(e.l3..e.end).ok_or(DropReason::TruncatedIpv4)?;
            let at = e.offsets();
            match (outer, quote) {
                ((src, IpAddr::V4(dst)), (SocketAddr::V4(a), SocketAddr::V4(b))) => {
                    let src = src.map(|s| v4(s).ok_or(DropReason::NotLoadBalancerTraffic));
                    let quote = (e.quoted.proto, (a, b));
                    rewrite_error(packet, &at, (src.transpose()?, dst), quote, hop_limit)
                }
                ((src, IpAddr::V6(dst)), (SocketAddr::V6(a), SocketAddr::V6(b))) => {
                    let src = src.map(|s| v6(s).ok_or(DropReason::NotLoadBalancerTraffic));
                    let quote = (e.quoted.proto, (a, b));
                    icmp6::rewrite_error(packet, &at, (src.transpose()?, dst), quote, hop_limit)
                }
                // A connection's addresses are of one family, and so is its error.
                _ => Err(DropReason::NotLoadBalancerTraffic),
            }
        })
    }
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn v6(a: IpAddr) -> Option<std::net::Ipv6Addr> {
    match a {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// Rewrites the ICMP error `packet` (its IPv4 packet, `at` the offsets in it, quoting a `proto`
/// packet): the quote to `quote.0 → quote.1`, the ICMP checksum, the outer source to `src` (if
/// any) and destination to `dst`, the TTL to `ttl` (the IPv4 header checksum follows each
/// field).
fn rewrite_error(
    packet: &mut [u8],
    at: &QuoteAt,
    (src, dst): (Option<Ipv4Addr>, Ipv4Addr),
    (proto, quote): (Proto, (SocketAddrV4, SocketAddrV4)),
    ttl: u8,
) -> Result<(), DropReason> {
    let q = packet
        .get_mut(at.quote..)
        .ok_or(DropReason::TruncatedIcmp)?;
    rewrite_quote(q, at.quote_l4, proto, quote)?;
    let msg = packet.get_mut(at.l4..).ok_or(DropReason::TruncatedIcmp)?;
    IcmpPacket::new_checked(msg)?.fill_checksum();
    let mut ip = crate::datapath::wire::Ipv4Packet::new_checked(packet)?;
    if let Some(src) = src {
        ip.set_src(src);
    }
    ip.set_dst(dst);
    ip.set_ttl(ttl);
    Ok(())
}

/// Rewrites a quoted `proto` packet `q` (IP header of `ihl` bytes, then at least 8 transport
/// bytes) to `to.0 → to.1`: addresses, ports, the IP header checksum, and the transport checksum
/// when it is quoted.
fn rewrite_quote(
    q: &mut [u8],
    ihl: usize,
    proto: Proto,
    to: (SocketAddrV4, SocketAddrV4),
) -> Result<(), DropReason> {
    // What `read_quote` proved: an IPv4 header and 8 transport bytes.
    if ihl < 20 || q.len() < ihl + 8 {
        return Err(DropReason::TruncatedIcmp);
    }
    let (src, dst) = to;
    let mut old = [0u8; 12];
    old[..8].copy_from_slice(&q[12..20]);
    old[8..12].copy_from_slice(&q[ihl..ihl + 4]);
    let mut new = [0u8; 12];
    new[..4].copy_from_slice(&src.ip().octets());
    new[4..8].copy_from_slice(&dst.ip().octets());
    new[8..10].copy_from_slice(&src.port().to_be_bytes());
    new[10..12].copy_from_slice(&dst.port().to_be_bytes());
    // IP header checksum: the addresses only.
    let c = checksum::update_bytes(read_u16(q, 10), &old[..8], &new[..8]);
    write_u16(q, 10, c);
    q[12..20].copy_from_slice(&new[..8]);
    q[ihl..ihl + 4].copy_from_slice(&new[8..12]);
    update_quoted_checksum(q, ihl, proto, &old, &new);
    Ok(())
}

/// Updates the checksum of the quoted `proto` header at `q[l4..]`, when the quote holds it, for
/// the pseudo-header addresses and the ports changing `old → new` (both families' quotes: the
/// addresses are 4 or 16 bytes each). A UDP checksum of 0 stays 0; a computed 0 is sent as
/// 0xffff.
pub(super) fn update_quoted_checksum(
    q: &mut [u8],
    l4: usize,
    proto: Proto,
    old: &[u8],
    new: &[u8],
) {
    let at = match proto {
        Proto::Tcp => l4 + 16,
        Proto::Udp => l4 + 6,
    };
    if q.len() < at + 2 {
        return;
    }
    let c = read_u16(q, at);
    match proto {
        Proto::Tcp => write_u16(q, at, checksum::update_bytes(c, old, new)),
        Proto::Udp if c != 0 => {
            write_u16(
                q,
                at,
                checksum::udp_field(checksum::update_bytes(c, old, new)),
            );
        }
        Proto::Udp => {}
    }
}
