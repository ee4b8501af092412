//! IP-in-IP tunnelling (IPVS VS/TUN): the client's packet, unchanged, inside an outer IPv4
//! header from the egress port's address to the real server.
//!
//! The outer header is IPVS's (`ip_vs_tunnel_xmit`): protocol 4, TOS and TTL copied from the
//! inner header, DF copied from the inner header, a fresh identification (a per-worker counter),
//! no options. The inner packet is not touched (its TTL neither: IPVS takes it from LOCAL_IN).
//!
//! MTU: a packet whose encapsulated size would exceed the egress port's MTU is not sent. With
//! DF set, xvs answers the client with ICMP "fragmentation needed" (type 3, code 4, next-hop MTU
//! = port MTU − 20) from the VIP, as IPVS does (`ensure_mtu_is_adequate` → `icmp_send`, whose
//! source is the local address the packet was sent to), so the client's path-MTU discovery
//! shrinks its packets. Without DF, IPVS lets the kernel fragment the outer packet; xvs does
//! not fragment and drops it. Both are counted as `tunnel_mtu`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{emit, Parsed, Processor};
use crate::datapath::wire::ipip::{self, OuterHeader, OUTER_LEN};
use crate::datapath::wire::{icmp, ipv4, IcmpRepr, Ipv4Repr};
use crate::datapath::{DropReason, Verdict};

/// TTL of the ICMP errors xvs originates (Linux's default `ip_default_ttl`).
pub const ICMP_TTL: u8 = 64;
/// TOS of the ICMP errors xvs originates (Linux: precedence "internetwork control").
pub const ICMP_TOS: u8 = 0xc0;
/// Most of the offending packet an ICMP error quotes: its IP header (at most 60 bytes) and the
/// first 8 bytes of its payload (RFC 792).
const MAX_QUOTE: usize = 60 + 8;

/// The IPv4 packet to tunnel: where it starts in the frame, its length and TTL.
struct Inner {
    l3: usize,
    len: usize,
    ttl: u8,
}

/// What [`Processor::tunnel`] did.
enum Tunnelled {
    /// Encapsulated and routed (`Tx`), or refused for another reason.
    Sent(Verdict),
    /// Too big for the egress port's MTU once encapsulated; nothing changed.
    TooBig { mtu: usize, df: bool },
}

impl Processor {
    /// Encapsulates the frame `buf[..*len]` (the packet `p`) towards real server `real`. The
    /// flag says whether the verdict is about the packet itself (`false`: the frame became an
    /// ICMP error for the client, which the service's traffic counters must not count).
    pub(super) fn forward_tun(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        real: SocketAddr,
    ) -> (Verdict, bool) {
        let packet = Inner {
            l3: p.l3,
            len: usize::from(p.ip_len),
            ttl: p.ttl,
        };
        match self.tunnel(buf, len, &packet, real) {
            Tunnelled::Sent(v) => (v, matches!(v, Verdict::Tx(_))),
            Tunnelled::TooBig { mtu, df: true } if mtu >= OUTER_LEN + 68 => {
                let icmp = self.frag_needed(buf, len, p, (mtu - OUTER_LEN) as u16);
                (icmp, false)
            }
            Tunnelled::TooBig { .. } => (Verdict::Drop(DropReason::TunnelMtu), false),
        }
    }

    /// Encapsulates an ICMP error (the whole IP packet at `l3`, `ip_len` bytes) towards real
    /// server `real`, as IPVS forwards errors about a TUN connection's replies. One too big for
    /// the tunnel is dropped (`tunnel_mtu`): no ICMP is sent about an ICMP error.
    pub(super) fn tunnel_icmp(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        (l3, ip_len, ttl): (usize, usize, u8),
        real: SocketAddr,
    ) -> Verdict {
        let packet = Inner {
            l3,
            len: ip_len,
            ttl,
        };
        match self.tunnel(buf, len, &packet, real) {
            Tunnelled::Sent(v) => v,
            Tunnelled::TooBig { .. } => Verdict::Drop(DropReason::TunnelMtu),
        }
    }

    /// Wraps the IPv4 packet `inner` of the frame in an outer header to `real` and routes it.
    fn tunnel(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        inner: &Inner,
        real: SocketAddr,
    ) -> Tunnelled {
        let IpAddr::V4(real_ip) = real.ip() else {
            return Tunnelled::Sent(Verdict::Pass);
        };
        let (hop, port_mac) = match self.next_hop(real.ip()) {
            Ok(h) => h,
            Err(r) => return Tunnelled::Sent(Verdict::Drop(r)),
        };
        let port = &self.snap.ports[usize::from(hop.port)];
        let (mtu, src) = (usize::from(port.mtu), port.ipv4);
        let l3 = inner.l3;
        let dont_fragment = buf[l3 + 6] & 0x40 != 0;
        if inner.len + OUTER_LEN > mtu {
            return Tunnelled::TooBig {
                mtu,
                df: dont_fragment,
            };
        }
        let Some(src) = src else {
            return Tunnelled::Sent(Verdict::Drop(DropReason::NoTunnelSource));
        };
        let end = l3 + inner.len;
        if end + OUTER_LEN > buf.len() {
            return Tunnelled::Sent(Verdict::Drop(DropReason::NoFrameRoom));
        }
        let outer = OuterHeader {
            src,
            dst: real_ip,
            tos: buf[l3 + 1],
            ttl: inner.ttl,
            identification: self.next_ip_id(),
            dont_fragment,
            inner_len: inner.len as u16,
        };
        buf.copy_within(l3..end, l3 + OUTER_LEN);
        let written = ipip::write_outer(&mut buf[l3..], &outer);
        debug_assert!(written, "room and length checked above");
        *len = end + OUTER_LEN;
        Tunnelled::Sent(emit(&mut buf[..*len], hop, port_mac))
    }

    /// Replaces the frame with an ICMP "fragmentation needed" (next-hop MTU `mtu`) about packet
    /// `p`, from its destination (the VIP) to its source (the client), and routes it there. The
    /// original packet is dropped and counted as `tunnel_mtu`.
    fn frag_needed(&mut self, buf: &mut [u8], len: &mut usize, p: &Parsed, mtu: u16) -> Verdict {
        let (IpAddr::V4(client), IpAddr::V4(vip)) = (p.key.src, p.key.dst) else {
            return Verdict::Drop(DropReason::TunnelMtu);
        };
        let quote_len = (p.l4 - p.l3 + 8).min(usize::from(p.ip_len));
        let v = self.answer_frag_needed(buf, len, p.l3, (client, vip), p.l3..p.l3 + quote_len, mtu);
        if let Verdict::Tx(_) = v {
            self.counters.count_drop(DropReason::TunnelMtu);
        }
        v
    }

    /// Replaces the frame (its IP packet at `l3`) with an ICMP "fragmentation needed"
    /// (next-hop MTU `mtu`) from `to.1` (the VIP) to `to.0` (the client), quoting
    /// `buf[quote]` (at most 68 bytes are kept: an IP header and 8 bytes), and routes it there.
    pub(super) fn answer_frag_needed(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        l3: usize,
        to: (Ipv4Addr, Ipv4Addr),
        quote: std::ops::Range<usize>,
        mtu: u16,
    ) -> Verdict {
        let (client, vip) = to;
        let (hop, port_mac) = match self.next_hop(IpAddr::V4(client)) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let quote_len = quote.len().min(MAX_QUOTE);
        let icmp_len = icmp::HEADER_LEN + quote_len;
        let total = ipv4::MIN_HEADER_LEN + icmp_len;
        if l3 + total > buf.len() {
            return Verdict::Drop(DropReason::NoFrameRoom);
        }
        let mut quoted = [0u8; MAX_QUOTE];
        quoted[..quote_len].copy_from_slice(&buf[quote.start..quote.start + quote_len]);
        let header = Ipv4Repr {
            src: vip,
            dst: client,
            protocol: icmp::PROTOCOL,
            payload_len: icmp_len,
            tos: ICMP_TOS,
            ttl: ICMP_TTL,
            identification: self.next_ip_id(),
            dont_fragment: false,
        };
        let ip = &mut buf[l3..l3 + total];
        ip[ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN..].copy_from_slice(&quoted[..quote_len]);
        let written = header.emit(ip).and_then(|()| {
            IcmpRepr::frag_needed(mtu, quote_len).emit(&mut ip[ipv4::MIN_HEADER_LEN..])
        });
        if let Err(e) = written {
            return Verdict::Drop(e.into());
        }
        *len = l3 + total;
        emit(&mut buf[..*len], hop, port_mac)
    }

    /// The next identification for an IPv4 header this worker writes.
    fn next_ip_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }
}
