//! ICMPv6 errors about tracked connections: the IPv6 half of `icmp.rs` (whose module
//! documentation is the policy, the same for both families). What differs over IPv6:
//!
//! - the errors translated are destination unreachable (type 1), packet too big (type 2; its
//!   MTU is kept, as IPv4's "fragmentation needed" keeps its next-hop MTU) and time exceeded
//!   (type 3); parameter problem (4), echo, neighbour discovery, MLD and every other message
//!   are the kernel's. A translated error whose checksum does not verify is dropped
//!   (`bad_icmpv6_checksum`), as over IPv4;
//! - the quote is an IPv6 packet (RFC 4443 §2.4 (c): as much as fits in 1280 bytes): its fixed
//!   header, the extension headers walked under the wire layer's bounded policy
//!   ([`quoted_upper_layer`]), then at least 8 bytes of its TCP/UDP header (a first fragment
//!   counts; a later fragment, or a quote the walk refuses, is no flow's: the kernel's). A quote
//!   cut before its fixed header, its extension headers or those 8 bytes end is dropped as
//!   `truncated_icmpv6` (the kernel cannot use it either: Linux's `icmpv6_notify` wants the
//!   same bytes);
//! - the quoted IPv6 header has no checksum: the quote's addresses and ports are rewritten and
//!   its transport checksum (when quoted) updated incrementally over the 16-byte addresses of
//!   its pseudo-header; the outer addresses and hop limit are written, and the ICMPv6 checksum
//!   is recomputed over the whole message and the new pseudo-header (no shortcut: the message
//!   changed, and so did the pseudo-header).

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use super::icmp::{update_quoted_checksum, IcmpError, QuoteAt, TunnelFragNeeded};
use super::Packet;
use crate::datapath::wire::ipv6::{quoted_upper_layer, Ipv6Packet};
use crate::datapath::wire::{icmpv6, ip6ip6, read_16, read_u16, Error, Icmpv6Packet};
use crate::datapath::DropReason;
use crate::flow::{FlowKey, Proto};

/// Bytes of the quoted transport header an error must carry (RFC 4443 §2.4 (c) quotes far
/// more; the ports and, for UDP, the checksum are in these).
const QUOTED_L4: usize = 8;

/// The ICMPv6 message `msg` of the IPv6 packet `ip` (its upper layer at frame offset `l4`, the
/// packet at `l3`): an error about a TCP/UDP packet becomes [`Packet::IcmpError`]; anything
/// else is the kernel's (`None`). `truncated_icmpv6` for a header or quote cut short,
/// `bad_icmpv6_checksum` for an error whose checksum does not verify.
pub(super) fn parse(
    ip: &Ipv6Packet<&[u8]>,
    msg: &[u8],
    l3: usize,
    l4: usize,
) -> Result<Option<Packet>, DropReason> {
    let m = Icmpv6Packet::new_checked(msg)?;
    let t = m.msg_type();
    if !matches!(
        t,
        icmpv6::DEST_UNREACHABLE | icmpv6::PACKET_TOO_BIG | icmpv6::TIME_EXCEEDED
    ) {
        return Ok(None);
    }
    // The translation recomputes the checksum: a corrupted message must not leave with a valid
    // one.
    if !m.checksum_ok(ip.src(), ip.dst()) {
        return Err(DropReason::BadIcmpv6Checksum);
    }
    let Some((quoted, quote_at, quote_l4)) = read_quote(m.payload(), l4 + icmpv6::HEADER_LEN)?
    else {
        return Ok((t == icmpv6::PACKET_TOO_BIG)
            .then(|| read_tunnel_quote(m.payload(), l3, l4 + icmpv6::HEADER_LEN, m.mtu()))
            .flatten()
            .map(Packet::TunnelFragNeeded));
    };
    Ok(Some(Packet::IcmpError(IcmpError {
        l3,
        l4,
        end: l3 + ip.total_len(),
        ttl: ip.hop_limit(),
        quoted,
        quote_at,
        quote_l4,
    })))
}

/// Reads the quote `q` of an ICMPv6 error (at frame offset `quote_at`): the flow of a quoted
/// TCP/UDP packet (not a later fragment) and where its transport header starts in the frame;
/// `None` for any other quote; `truncated_icmpv6` for one cut short (see the module
/// documentation).
fn read_quote(q: &[u8], quote_at: usize) -> Result<Option<(FlowKey, usize, usize)>, DropReason> {
    let upper = match quoted_upper_layer(q) {
        Ok(u) => u,
        Err(Error::TruncatedIpv6 | Error::Ipv6ExtHeaderTruncated) => {
            return Err(DropReason::TruncatedIcmpv6)
        }
        Err(_) => return Ok(None),
    };
    if upper.fragment.is_some_and(|f| !f.is_first()) {
        return Ok(None);
    }
    let Some(proto) = Proto::from_number(upper.protocol) else {
        return Ok(None);
    };
    let t = (q.get(upper.offset..upper.offset + QUOTED_L4)).ok_or(DropReason::TruncatedIcmpv6)?;
    let key = FlowKey {
        proto,
        src: IpAddr::V6(Ipv6Addr::from(read_16(q, 8))),
        dst: IpAddr::V6(Ipv6Addr::from(read_16(q, 24))),
        sport: read_u16(t, 0),
        dport: read_u16(t, 2),
    };
    Ok(Some((key, quote_at, quote_at + upper.offset)))
}

/// Reads the quote `q` (at frame offset `quote_at`) of a Packet Too Big from a router inside a
/// TUN6 tunnel: an outer IPv6 header naming next header 41 (after extension headers, walked as
/// any quote's), then the client's IPv6 TCP/UDP packet (not a later fragment) with its ports.
/// `None` for any other quote: the kernel's.
fn read_tunnel_quote(q: &[u8], l3: usize, quote_at: usize, mtu: u32) -> Option<TunnelFragNeeded> {
    let outer = quoted_upper_layer(q).ok()?;
    if outer.protocol != ip6ip6::NEXT_HEADER || outer.fragment.is_some() {
        return None;
    }
    let inner = q.get(outer.offset..)?;
    let upper = quoted_upper_layer(inner).ok()?;
    if upper.fragment.is_some_and(|f| !f.is_first()) {
        return None;
    }
    let proto = Proto::from_number(upper.protocol)?;
    let t = inner.get(upper.offset..upper.offset + QUOTED_L4)?;
    let start = quote_at + outer.offset;
    Some(TunnelFragNeeded {
        l3,
        mtu,
        outer_dst: IpAddr::V6(Ipv6Addr::from(read_16(q, 24))),
        inner: FlowKey {
            proto,
            src: IpAddr::V6(Ipv6Addr::from(read_16(inner, 8))),
            dst: IpAddr::V6(Ipv6Addr::from(read_16(inner, 24))),
            sport: read_u16(t, 0),
            dport: read_u16(t, 2),
        },
        inner_quote: start..start + inner.len(),
    })
}

/// Rewrites the ICMPv6 error `packet` (its IPv6 packet, `at` the offsets in it, quoting a
/// `proto` packet): the quote to `quote.0 → quote.1`, the outer source to `src` (if any) and
/// destination to `dst`, the hop limit to `hop_limit`, then the ICMPv6 checksum over the new
/// pseudo-header and the message.
pub(super) fn rewrite_error(
    packet: &mut [u8],
    at: &QuoteAt,
    (src, dst): (Option<Ipv6Addr>, Ipv6Addr),
    (proto, quote): (Proto, (SocketAddrV6, SocketAddrV6)),
    hop_limit: u8,
) -> Result<(), DropReason> {
    let q = packet
        .get_mut(at.quote..)
        .ok_or(DropReason::TruncatedIcmpv6)?;
    rewrite_quote(q, at.quote_l4, proto, quote)?;
    let mut ip = Ipv6Packet::new_checked(&mut *packet)?;
    if let Some(src) = src {
        ip.set_src(src);
    }
    ip.set_dst(dst);
    ip.set_hop_limit(hop_limit);
    let src = ip.src();
    let msg = packet.get_mut(at.l4..).ok_or(DropReason::TruncatedIcmpv6)?;
    Icmpv6Packet::new_checked(msg)?.fill_checksum(src, dst);
    Ok(())
}

/// Rewrites a quoted IPv6 packet `q` of `proto` (its transport header at `l4`, with at least 8
/// bytes) to `to.0 → to.1`: addresses, ports, and the transport checksum when it is quoted (a
/// UDP checksum of 0, which IPv6 forbids, is left as it is).
fn rewrite_quote(
    q: &mut [u8],
    l4: usize,
    proto: Proto,
    to: (SocketAddrV6, SocketAddrV6),
) -> Result<(), DropReason> {
    // What `read_quote` proved: an IPv6 header, then 8 transport bytes at `l4`.
    if l4 < 40 || q.len() < l4 + QUOTED_L4 {
        return Err(DropReason::TruncatedIcmpv6);
    }
    let (src, dst) = to;
    let mut old = [0u8; 36];
    old[..32].copy_from_slice(&q[8..40]);
    old[32..].copy_from_slice(&q[l4..l4 + 4]);
    let mut new = [0u8; 36];
    new[..16].copy_from_slice(&src.ip().octets());
    new[16..32].copy_from_slice(&dst.ip().octets());
    new[32..34].copy_from_slice(&src.port().to_be_bytes());
    new[34..].copy_from_slice(&dst.port().to_be_bytes());
    q[8..40].copy_from_slice(&new[..32]);
    q[l4..l4 + 4].copy_from_slice(&new[32..]);
    // The transport checksum covers the pseudo-header's addresses and the ports, where quoted.
    update_quoted_checksum(q, l4, proto, &old, &new);
    Ok(())
}
