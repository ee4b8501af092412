//! The NAT rewrite of one endpoint of a parsed TCP/UDP packet of either IP family, with its
//! checksums.
//!
//! One rewrite for both families: the transport header (port and checksum) is the same, and the
//! transport checksum's update covers the pseudo-header's address whatever its width (RFC 1624
//! over 2 or 8 words). What differs is the IP header, behind [`IpHeader`]: IPv4 updates its
//! header checksum with each field, IPv6 has none (hop limit and addresses are written as they
//! are).

use std::net::{IpAddr, SocketAddr};

use super::Parsed;
use crate::datapath::wire::{checksum, Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram};
use crate::datapath::DropReason;
use crate::flow::Proto;

/// Which endpoint of the packet a rewrite changes.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Src,
    Dst,
}

/// The IP header of a packet being rewritten, of either family: what a routed rewrite changes in
/// it (one address, the TTL or hop limit). Built over the bytes `parse` proved to hold it.
pub(super) enum IpHeader<'a> {
    V4(Ipv4Packet<&'a mut [u8]>),
    V6(Ipv6Packet<&'a mut [u8]>),
}

impl<'a> IpHeader<'a> {
    /// The header at the start of `packet`, of the family of `like` (an address the packet
    /// carries): the same checked view `parse` built.
    #[inline(always)]
    pub(super) fn new(packet: &'a mut [u8], like: IpAddr) -> Result<IpHeader<'a>, DropReason> {
        Ok(match like {
            IpAddr::V4(_) => IpHeader::V4(Ipv4Packet::new_checked(packet)?),
            IpAddr::V6(_) => IpHeader::V6(Ipv6Packet::new_checked(packet)?),
        })
    }

    /// Writes address `a` on `side` (the IPv4 header checksum follows); an address of the other
    /// family is refused (`not_lb_traffic`: the configuration never pairs families, so no
    /// packet gets here with one).
    #[inline(always)]
    pub(super) fn set_addr(&mut self, side: Side, a: IpAddr) -> Result<(), DropReason> {
        match (self, side, a) {
            (IpHeader::V4(ip), Side::Src, IpAddr::V4(a)) => ip.set_src(a),
            (IpHeader::V4(ip), Side::Dst, IpAddr::V4(a)) => ip.set_dst(a),
            (IpHeader::V6(ip), Side::Src, IpAddr::V6(a)) => ip.set_src(a),
            (IpHeader::V6(ip), Side::Dst, IpAddr::V6(a)) => ip.set_dst(a),
            _ => return Err(DropReason::NotLoadBalancerTraffic),
        }
        Ok(())
    }

    /// Writes the TTL (IPv4, header checksum updated) or hop limit (IPv6).
    #[inline(always)]
    pub(super) fn set_hop_limit(&mut self, ttl: u8) {
        match self {
            IpHeader::V4(ip) => ip.set_ttl(ttl),
            IpHeader::V6(ip) => ip.set_hop_limit(ttl),
        }
    }
}

/// Rewrites one endpoint (address and port) of the parsed packet `p` of `frame` to `to` and
/// decrements its TTL or hop limit, keeping the checksums correct (RFC 1624; over IPv4 a UDP
/// checksum of 0 stays 0, a computed 0 is sent as 0xffff, RFC 768; over IPv6 `parse` refused a
/// UDP checksum of 0). The views are those `parse` proved to fit; the old endpoint is the
/// parsed one. `to` is of the packet's family (callers check; one that is not is refused before
/// anything is written).
#[inline(always)]
pub(super) fn rewrite_endpoint(
    frame: &mut [u8],
    p: &Parsed,
    side: Side,
    to: SocketAddr,
) -> Result<(), DropReason> {
    let (old_ip, old_port) = match side {
        Side::Src => (p.key.src, p.key.sport),
        Side::Dst => (p.key.dst, p.key.dport),
    };
    let (new_ip, new_port) = (to.ip(), to.port());
    let l3 = frame.get_mut(p.l3..).ok_or(DropReason::TruncatedIpv4)?;
    let l4_at = p.l4 - p.l3;
    let l4 = l3.get_mut(l4_at..).unwrap_or_default();
    // The transport checksum covers the pseudo-header's address and the port.
    match (old_ip, new_ip) {
        (IpAddr::V4(o), IpAddr::V4(n)) => {
            let addr = (&o.octets()[..], &n.octets()[..]);
            rewrite_transport(l4, p.key.proto, side, addr, (old_port, new_port))?;
        }
        (IpAddr::V6(o), IpAddr::V6(n)) => {
            let addr = (&o.octets()[..], &n.octets()[..]);
            rewrite_transport(l4, p.key.proto, side, addr, (old_port, new_port))?;
        }
        _ => return Err(DropReason::NotLoadBalancerTraffic),
    }
    let mut ip = IpHeader::new(l3, old_ip)?;
    ip.set_addr(side, new_ip)?;
    ip.set_hop_limit(p.ttl.saturating_sub(1));
    Ok(())
}

/// Rewrites the port on `side` of the TCP/UDP header at the start of `l4` from `port.0` (the
/// parsed one) to `port.1` and updates its checksum for that and for the pseudo-header address
/// changing `addr.0 → addr.1` (4 or 16 bytes). `parse` proved both views fit, so neither can
/// fail here; if one did, the frame would be dropped, never sent.
#[inline(always)]
fn rewrite_transport(
    l4: &mut [u8],
    proto: Proto,
    side: Side,
    addr: (&[u8], &[u8]),
    port: (u16, u16),
) -> Result<(), DropReason> {
    let new_port = port.1;
    let update = |c: u16| {
        let c = checksum::update_bytes(c, addr.0, addr.1);
        checksum::update_u16(c, port.0, new_port)
    };
    match proto {
        Proto::Tcp => {
            let mut t = TcpSegment::new_checked(l4)?;
            match side {
                Side::Src => t.set_src_port(new_port),
                Side::Dst => t.set_dst_port(new_port),
            }
            let c = update(t.checksum());
            t.set_checksum(c);
        }
        Proto::Udp => {
            // The relaxed check: a first fragment's length field covers later fragments too.
            let mut u = UdpDatagram::new_checked_first_fragment(l4)?;
            match side {
                Side::Src => u.set_src_port(new_port),
                Side::Dst => u.set_dst_port(new_port),
            }
            if u.checksum() != 0 {
                u.set_checksum(checksum::udp_field(update(u.checksum())));
            }
        }
    }
    Ok(())
}
