//! VRRPv3 over IPv6 (RFC 5798 §5.1.2), byte-compatible with keepalived: the same message as over
//! IPv4 with 16-byte addresses, its checksum over the IPv6 pseudo-header (next header 112,
//! RFC 5798 §5.2.8), sent with hop limit 255 from the interface's link-local address to
//! ff02::12 ([`MULTICAST_V6`]) or to unicast peers. VRRPv2 over IPv6 is not defined (RFC 3768 is
//! IPv4 only): neither built nor accepted ([`VrrpError::Version`]).
//!
//! The IPv6 header as keepalived's kernel sends it: traffic class 0xc0 ([`TRAFFIC_CLASS`],
//! keepalived sets `IPV6_TCLASS`), hop limit 255, no extension header; the flow label is the
//! kernel's (its automatic flow labels), so [`encode_ipv6`] takes it from the caller. A raw
//! IPv6 socket hands over the VRRP message without its IPv6 header: the driver passes the
//! header's facts beside it ([`Ipv6Meta`], from `recvmsg`'s source address and its
//! `IPV6_PKTINFO` / `IPV6_HOPLIMIT` ancillary data) to [`parse_message_v6`]; [`parse_ipv6`]
//! reads a whole packet (tests, captures) through the wire layer's [`Ipv6Packet`] and ends in
//! the same function, so both see the same checks.

use std::net::{IpAddr, Ipv6Addr};

use super::super::{BuildError, VrrpError};
use super::{need, Advert, AdvertFields, Family, VrrpPacket, PROTO_VRRP, TTL};
use crate::wire::{self, Ipv6Packet, Ipv6Repr};

/// The IPv6 multicast group of VRRP (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The Ethernet multicast address of ff02::12 (33:33 + the low 32 bits of the group, RFC 2464 §7).
pub const MULTICAST_MAC_V6: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x12];
/// Length of the IPv6 header xvs writes (no extension header).
pub const IPV6_HEADER_LEN: usize = wire::ipv6::HEADER_LEN;
/// Traffic class keepalived sets on IPv6 adverts (as the IPv4 TOS: network control).
pub const TRAFFIC_CLASS: u8 = 0xc0;

/// The VRRP virtual router MAC address for IPv6: 00-00-5E-00-02-{VRID} (RFC 5798 §7.3).
pub const fn virtual_mac_v6(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x02, vrid]
}

/// What the IPv6 header said of a VRRP message received on a raw IPv6 socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Meta {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

/// Parses a VRRP message received over IPv6 whose header said `meta`: length, version (3 only),
/// type and checksum ([`VrrpPacket::new_checked_v6`], [`VrrpPacket::checksum_ok_v6`]). The hop
/// limit and the source's scope are the instance's checks (they depend on unicast). Never panics.
pub fn parse_message_v6(msg: &[u8], meta: Ipv6Meta) -> Result<Advert, VrrpError> {
    let v = VrrpPacket::new_checked_v6(msg)?;
    if !v.checksum_ok_v6(meta.src, meta.dst) {
        return Err(VrrpError::Checksum);
    }
    Ok(Advert::of_message(
        &v,
        IpAddr::V6(meta.src),
        IpAddr::V6(meta.dst),
        meta.hop_limit,
    ))
}

/// Parses a whole IPv6 packet carrying a VRRP message: the fixed header must be exactly the
/// packet ([`VrrpError::Length`] for a cut or padded one), the extension-header walk must reach
/// protocol 112 unfragmented ([`VrrpError::IpHeader`] otherwise: the kernel reassembles for a
/// raw socket, a fragment seen raw is dropped), then [`parse_message_v6`]. Never panics.
pub fn parse_ipv6(ip: &[u8]) -> Result<Advert, VrrpError> {
    let p = Ipv6Packet::new_checked(ip).map_err(ip6_error)?;
    if p.total_len() != ip.len() {
        return Err(VrrpError::Length);
    }
    let upper = p.upper_layer().map_err(ip6_error)?;
    if upper.protocol != PROTO_VRRP || upper.fragment.is_some() {
        return Err(VrrpError::IpHeader);
    }
    let h = Ipv6Repr::parse(&p);
    let meta = Ipv6Meta {
        src: h.src,
        dst: h.dst,
        hop_limit: h.hop_limit,
    };
    parse_message_v6(ip.get(upper.offset..).unwrap_or_default(), meta)
}

/// The VRRP error of an IPv6 packet the wire layer refuses: cut short is `length`, anything
/// else (a version not 6, an extension header xvs does not walk) is `ip_header`.
fn ip6_error(e: wire::Error) -> VrrpError {
    match e {
        wire::Error::TruncatedIpv6
        | wire::Error::Ipv6PayloadLenPastEnd
        | wire::Error::Ipv6ExtHeaderTruncated => VrrpError::Length,
        _ => VrrpError::IpHeader,
    }
}

/// Writes the IPv6 packet (header as keepalived's kernel builds it, with `flow_label`, + VRRP
/// message) into the start of `buf` and returns its length. `dst` is [`MULTICAST_V6`] or a
/// unicast peer; `src` the interface's link-local address.
pub fn encode_ipv6(
    buf: &mut [u8],
    f: &AdvertFields<'_>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flow_label: u32,
) -> Result<usize, BuildError> {
    let total = IPV6_HEADER_LEN + f.message_len();
    need(buf, total)?;
    let n = super::encode_message(
        &mut buf[IPV6_HEADER_LEN..],
        f,
        IpAddr::V6(src),
        IpAddr::V6(dst),
    )?;
    let header = Ipv6Repr {
        src,
        dst,
        next_header: PROTO_VRRP,
        payload_len: n,
        hop_limit: TTL,
        traffic_class: TRAFFIC_CLASS,
        flow_label,
    };
    header.emit(buf).map_err(|_| BuildError::BufferTooSmall {
        have: buf.len(),
        need: total,
    })?;
    Ok(IPV6_HEADER_LEN + n)
}

/// Writes the whole IP packet of either family (the family of `src`, which `dst` and the
/// addresses must share; IPv6 with flow label 0) and returns its length.
pub fn encode_ip(
    buf: &mut [u8],
    f: &AdvertFields<'_>,
    src: IpAddr,
    dst: IpAddr,
) -> Result<usize, BuildError> {
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => encode_ipv6(buf, f, s, d, 0),
        (IpAddr::V6(_), _) => Err(BuildError::FamilyMismatch(dst)),
        _ => super::encode_ipv4(buf, f, src, dst),
    }
}

/// Parses a whole IP packet of either family (by its version nibble: 6 is IPv6, anything else
/// goes to [`super::parse_ipv4`], which refuses what is not IPv4).
pub fn parse_ip(ip: &[u8]) -> Result<Advert, VrrpError> {
    match ip.first().map(|b| b >> 4) {
        Some(6) => parse_ipv6(ip),
        _ => super::parse_ipv4(ip),
    }
}

impl Family {
    /// The multicast group adverts of this family go to.
    pub const fn multicast(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(super::MULTICAST_V4),
            Family::V6 => IpAddr::V6(MULTICAST_V6),
        }
    }
}

#[cfg(test)]
#[path = "v6_tests.rs"]
mod tests;
