//! The NAT rewrite of one endpoint of a parsed IPv4 TCP/UDP packet, with its checksums.

use std::net::SocketAddrV4;

use super::Parsed;
use crate::datapath::wire::{checksum, Ipv4Packet, TcpSegment, UdpDatagram};
use crate::datapath::DropReason;
use crate::flow::Proto;

/// Which endpoint of the packet a rewrite changes.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Src,
    Dst,
}

/// Rewrites one endpoint (address and port) of the parsed packet `p` of `frame` to `to` and
/// decrements its TTL, keeping the IP and transport checksums correct (RFC 1624; a UDP checksum
/// of 0 stays 0, a computed 0 is sent as 0xffff, RFC 768). The views are those `parse` proved to
/// fit; the old endpoint is the parsed one.
#[inline(always)]
pub(super) fn rewrite_endpoint(
    frame: &mut [u8],
    p: &Parsed,
    side: Side,
    to: SocketAddrV4,
) -> Result<(), DropReason> {
    let (old_ip, old_port) = match side {
        Side::Src => (p.src, p.key.sport),
        Side::Dst => (p.dst, p.key.dport),
    };
    let (new_ip, new_port) = (*to.ip(), to.port());
    // The transport checksum covers the pseudo-header's address and the port.
    let update = |c: u16| {
        let c = checksum::update_bytes(c, &old_ip.octets(), &new_ip.octets());
        checksum::update_u16(c, old_port, new_port)
    };
    let l3 = frame.get_mut(p.l3..).ok_or(DropReason::TruncatedIpv4)?;
    let l4_at = p.l4 - p.l3;
    let l4 = l3.get_mut(l4_at..).unwrap_or_default();
    // The transport header first: `parse` proved both views fit, so neither can fail here; if
    // one did, the frame would be dropped, never sent.
    match p.key.proto {
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
                let c = update(u.checksum());
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
        }
    }
    let mut ip = Ipv4Packet::new_checked(l3)?;
    match side {
        Side::Src => ip.set_src(new_ip),
        Side::Dst => ip.set_dst(new_ip),
    }
    ip.set_ttl(p.ttl.saturating_sub(1));
    Ok(())
}
