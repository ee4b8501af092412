//! IP-in-IP tunnelling (IPVS VS/TUN): the client's packet, unchanged, inside an outer IP
//! header of its own family from the egress port's address to the real server. IPv4 here;
//! IPv6-in-IPv6 (TUN6, with Packet Too Big) in `tun/tun6.rs`. A tunnel between families (IPv6
//! in IPv4, IPv4 in IPv6) is refused (`not_lb_traffic`): the configuration never pairs a VIP
//! with a real server of the other family, and conntrack refuses such entries, so only a
//! `one_packet` service built around the configuration could get one here.
//!
//! The IPv4 outer header is IPVS's (`ip_vs_tunnel_xmit`): protocol 4, TOS and TTL copied from
//! the inner header, DF copied from the inner header, a fresh identification (a per-worker
//! counter), no options. The inner packet is not touched (its TTL neither: IPVS takes it from
//! LOCAL_IN).
//!
//! MTU: a packet whose encapsulated size would exceed the egress port's MTU is not sent. With
//! DF set, xvs answers the client with ICMP "fragmentation needed" (type 3, code 4, next-hop MTU
//! = port MTU − 20) from the VIP, as IPVS does (`ensure_mtu_is_adequate` → `icmp_send`, whose
//! source is the local address the packet was sent to), so the client's path-MTU discovery
//! shrinks its packets. Without DF, IPVS lets the kernel fragment the outer packet; xvs does
//! not fragment and drops it. Both are counted as `tunnel_mtu`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{emit, Parsed, Processor, Route, Sent};
use crate::datapath::wire::ipip::{self, OuterHeader, OUTER_LEN};
use crate::datapath::wire::{icmp, ipv4, IcmpRepr, Ipv4Repr};
use crate::datapath::{DropReason, Verdict};

/// [`OUTER_LEN`] as a header length field (20).
#[allow(clippy::cast_possible_truncation)] // 20 fits.
const OUTER_LEN_U16: u16 = OUTER_LEN as u16;

/// TTL of the ICMP errors xvs originates (Linux's default `ip_default_ttl`).
pub const ICMP_TTL: u8 = 64;
/// TOS of the ICMP errors xvs originates (Linux: precedence "internetwork control").
pub const ICMP_TOS: u8 = 0xc0;
/// Most of the offending packet an ICMP error quotes: its IP header (at most 60 bytes) and the
/// first 8 bytes of its payload (RFC 792).
const MAX_QUOTE: usize = 60 + 8;

mod tun6;

pub(super) use tun6::packet_too_big_mtu;

/// The next-hop MTU a "fragmentation needed" announces for a tunnel whose outer packets may be
/// `outer_mtu` bytes (`outer_mtu` − 20), `None` when that is below IPv4's minimum of 68 bytes
/// (RFC 791): no answer can help then.
pub(super) fn frag_needed_mtu(outer_mtu: u16) -> Option<u16> {
    outer_mtu.checked_sub(OUTER_LEN_U16).filter(|m| *m >= 68)
}

/// The IP packet to tunnel: where it starts in the frame, its length and TTL (IPv6: hop
/// limit).
struct Inner {
    l3: usize,
    len: usize,
    ttl: u8,
}

/// Why [`Processor::tunnel`] did not send the packet.
enum NotSent {
    /// Refused, as any packet can be.
    Drop(DropReason),
    /// Too big for the egress port's MTU once encapsulated; nothing changed. `df`: the inner
    /// packet may not be fragmented (always for IPv6, whose routers never fragment).
    TooBig { mtu: u16, df: bool },
}

impl From<DropReason> for NotSent {
    fn from(r: DropReason) -> NotSent {
        NotSent::Drop(r)
    }
}

impl Processor {
    /// Encapsulates the frame `buf[..*len]` (the packet `p`) towards real server `real`, in an
    /// outer header of the packet's family (IPv4 here, IPv6 in `tun6.rs`). A packet too big for
    /// the tunnel (with DF set over IPv4; every one over IPv6) becomes an ICMP error for the
    /// client ([`too_big`](Self::too_big)), which the service's traffic counters must not count
    /// (`Sent::counted` is false). Later fragments are not followed (xvs does not fragment the
    /// outer packet; see the README).
    pub(super) fn forward_tun(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        real: SocketAddr,
    ) -> Result<Sent, DropReason> {
        let packet = Inner {
            l3: p.l3,
            len: usize::from(p.ip_len),
            ttl: p.ttl,
        };
        let sent = match (p.key.dst, real.ip()) {
            (IpAddr::V4(_), IpAddr::V4(real)) => self.tunnel(buf, len, &packet, real),
            (IpAddr::V6(_), IpAddr::V6(real)) => self.tunnel6(buf, len, &packet, real),
            _ => return Err(DropReason::NotLoadBalancerTraffic),
        };
        let verdict = match sent {
            Ok(v) => return Ok(Sent::packet(v)),
            Err(NotSent::Drop(r)) => return Err(r),
            Err(NotSent::TooBig { mtu, df: true }) => self.too_big(buf, len, p, mtu),
            Err(NotSent::TooBig { .. }) => Verdict::Drop(DropReason::TunnelMtu),
        };
        Ok(Sent {
            verdict,
            counted: false,
        })
    }

    /// Encapsulates an ICMP error (the whole IP packet at `l3`, `ip_len` bytes) towards real
    /// server `real`, as IPVS forwards errors about a TUN connection's replies: in IPv4 for an
    /// IPv4 real server, in IPv6 for an IPv6 one (the inner packet must be of the real's family:
    /// `bad_ip_version` otherwise). One too big for the tunnel is dropped (`tunnel_mtu`): no
    /// ICMP is sent about an ICMP error.
    pub(super) fn tunnel_icmp(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        (l3, ip_len, ttl): (usize, usize, u8),
        real: SocketAddr,
    ) -> Result<Verdict, DropReason> {
        let packet = Inner {
            l3,
            len: ip_len,
            ttl,
        };
        let sent = match real.ip() {
            IpAddr::V4(real) => self.tunnel(buf, len, &packet, real),
            IpAddr::V6(real) => self.tunnel6(buf, len, &packet, real),
        };
        match sent {
            Ok(v) => Ok(v),
            Err(NotSent::Drop(r)) => Err(r),
            Err(NotSent::TooBig { .. }) => Err(DropReason::TunnelMtu),
        }
    }

    /// Wraps the IPv4 packet `inner` of the frame in an outer header to `real_ip` and routes
    /// it.
    fn tunnel(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        inner: &Inner,
        real_ip: Ipv4Addr,
    ) -> Result<Verdict, NotSent> {
        let mut too_big = None;
        let routed = self.route(buf, len, Route::unrouted(real_ip), |buf, len, egress| {
            let l3 = inner.l3;
            let ip = buf.get(l3..).ok_or(DropReason::TruncatedIpv4)?;
            let (tos, dont_fragment) = (ip.get(1).copied(), ip.get(6).map(|b| b & 0x40 != 0));
            let (Some(tos), Some(dont_fragment)) = (tos, dont_fragment) else {
                return Err(DropReason::TruncatedIpv4);
            };
            // An IPv6 packet never goes into an IPv4 tunnel.
            if ip.first().map(|b| b >> 4) != Some(4) {
                return Err(DropReason::BadIpVersion);
            }
            if inner.len + OUTER_LEN > usize::from(egress.mtu) {
                too_big = Some(NotSent::TooBig {
                    mtu: egress.mtu,
                    df: dont_fragment,
                });
                return Err(DropReason::TunnelMtu);
            }
            let src = egress.ipv4.ok_or(DropReason::NoTunnelSource)?;
            let end = l3 + inner.len;
            let inner_len = u16::try_from(inner.len).map_err(|_| DropReason::NoFrameRoom)?;
            if end + OUTER_LEN > buf.len() {
                return Err(DropReason::NoFrameRoom);
            }
            let outer = OuterHeader {
                src,
                dst: real_ip,
                tos,
                ttl: inner.ttl,
                identification: self.next_ip_id(),
                dont_fragment,
                inner_len,
            };
            buf.copy_within(l3..end, l3 + OUTER_LEN);
            // Room and length are checked above, so the header fits.
            if !ipip::write_outer(&mut buf[l3..], &outer) {
                return Err(DropReason::NoFrameRoom);
            }
            *len = end + OUTER_LEN;
            Ok(())
        });
        routed.map_err(|r| too_big.unwrap_or(NotSent::Drop(r)))
    }

    /// Replaces the frame with the ICMP error telling the client (the source of `p`), from the
    /// VIP (its destination), that `p` is too big for the tunnel behind an egress port of MTU
    /// `port_mtu`: a "fragmentation needed" quoting its IP header and 8 bytes (IPv4), or a
    /// Packet Too Big quoting as much of it as fits (IPv6); routed there. The original packet
    /// is dropped and counted as `tunnel_mtu`, and so is one for which the port's MTU leaves
    /// no MTU to announce ([`frag_needed_mtu`], [`packet_too_big_mtu`]).
    fn too_big(&mut self, buf: &mut [u8], len: &mut usize, p: &Parsed, port_mtu: u16) -> Verdict {
        let answered = match (p.key.src, p.key.dst) {
            (IpAddr::V4(client), IpAddr::V4(vip)) => frag_needed_mtu(port_mtu).map(|mtu| {
                let quote_len = (p.l4 - p.l3 + 8).min(usize::from(p.ip_len));
                let quote = p.l3..p.l3 + quote_len;
                self.answer_frag_needed(buf, len, p.l3, (client, vip), quote, mtu)
            }),
            (IpAddr::V6(client), IpAddr::V6(vip)) => packet_too_big_mtu(port_mtu).map(|mtu| {
                let quote = p.l3..p.l3 + usize::from(p.ip_len);
                self.answer_packet_too_big(buf, len, p.l3, (client, vip), quote, mtu)
            }),
            // `forward_tun` tunnels only within one family.
            _ => None,
        };
        let Some(v) = answered else {
            return Verdict::Drop(DropReason::TunnelMtu);
        };
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
}
