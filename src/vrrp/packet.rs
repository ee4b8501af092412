//! The VRRP advertisement on the wire: VRRPv2 (RFC 3768 §5) and VRRPv3 (RFC 5798 §5.1) over
//! IPv4, and VRRPv3 over IPv6 ([`v6`]: the same message with 16-byte addresses), byte-compatible
//! with keepalived.
//!
//! ```text
//! v2:  | 2 | 1 | VRID | Priority | Count IP | Auth Type | Adver Int (s) | Checksum | IPs.. | Auth Data (8) |
//! v3:  | 3 | 1 | VRID | Priority | Count IP | Rsvd(4) Max Adver Int (12 bits, cs) | Checksum | IPs.. |
//! ```
//!
//! - v2 checksum: over the VRRP message alone (authentication data included). v3 checksum:
//!   over the VRRP message and the IPv4 pseudo-header (source, destination, protocol 112,
//!   VRRP length; RFC 5798 §5.2.8), with the packet's real destination — for unicast too, as
//!   keepalived does since its `unicast_chksum_compat` change (older keepalived put 224.0.0.18 in
//!   the pseudo-header of unicast adverts; such peers are rejected as `checksum`).
//! - Authentication: xvs sends v2 Auth Type 0 with eight zero bytes of Auth Data and accepts only
//!   0 (RFC 3768 removed authentication; keepalived's `auth_type PASS`/`AH` peers are refused).
//! - IPv4 header as keepalived builds it: TOS 0xc0 (network control), ID 0 (the kernel fills it
//!   in on a raw socket), no fragment flags, TTL 255, protocol 112, destination 224.0.0.18 or a
//!   unicast peer.
//! - Ethernet: destination 01:00:5e:00:00:12 for 224.0.0.18 ([`MULTICAST_MAC_V4`]) or the unicast
//!   peer's MAC. Source: RFC 5798 §7.3 says the virtual router MAC 00:00:5e:00:01:VRID
//!   ([`virtual_mac`]). keepalived sends from the interface's own MAC unless `use_vmac` puts
//!   the instance on a macvlan carrying the virtual MAC; [`encode_frame`] takes the source MAC
//!   from the caller so the driver can do either (its default: the interface MAC, as keepalived).
//!
//! Invariant after [`VrrpPacket::new_checked`]: version is 2 or 3, type is 1, and the buffer is
//! exactly the VRRP message its count announces, so no accessor can panic. Nothing here
//! allocates except [`parse_ipv4`], which returns an owned [`Advert`] for the control plane.
//! The IPv4 and Ethernet headers are read and written through the wire layer's views and
//! `Repr`s ([`crate::wire`]): there is no second IPv4 parser or header emitter here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::instance::rules::FamilyError;
use super::{BuildError, VrrpError};
use crate::flow::Nanos;
use crate::wire::{self, checksum, EtherType, EthernetRepr, Ipv4Packet, Ipv4Repr};

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = 112;
/// The TTL every advert is sent with and, for multicast, must arrive with.
pub const TTL: u8 = 255;
/// The IPv4 multicast group of VRRP.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The Ethernet multicast address of 224.0.0.18 (01:00:5e + the low 23 bits of the group).
pub const MULTICAST_MAC_V4: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// Length of the fixed VRRP header.
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer.
pub const AUTH_DATA_LEN: usize = 8;
/// Length of the IPv4 header xvs writes (no options).
pub const IPV4_HEADER_LEN: usize = wire::ipv4::MIN_HEADER_LEN;
/// Length of an Ethernet header without VLAN tag.
pub const ETHERNET_HEADER_LEN: usize = wire::ethernet::HEADER_LEN;
/// TOS keepalived sets on adverts (precedence "internetwork control").
pub const TOS: u8 = 0xc0;
/// Centiseconds in nanoseconds.
pub const NANOS_PER_CENTISECOND: Nanos = 10_000_000;

const TYPE_ADVERTISEMENT: u8 = 1;

mod v6;
pub use v6::{
    encode_ip, encode_ipv6, parse_ip, parse_ipv6, parse_message_v6, virtual_mac_v6, Ipv6Meta,
    IPV6_HEADER_LEN, MULTICAST_MAC_V6, MULTICAST_V6, TRAFFIC_CLASS,
};

/// The VRRP virtual router MAC address for IPv4: 00-00-5E-00-01-{VRID} (RFC 5798 §7.3).
pub const fn virtual_mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
}

/// The protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, 8 bytes of authentication data.
    V2,
    /// RFC 5798/9568: interval in centiseconds, checksum over the pseudo-header.
    V3,
}

impl Version {
    /// The version number in the header.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    const fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// Whether an interval of `cs` centiseconds can be advertised: v2 whole seconds 1..=255,
    /// v3 1..=4095 centiseconds (12 bits).
    pub const fn interval_ok(self, cs: u16) -> bool {
        match self {
            Version::V2 => cs.is_multiple_of(100) && cs >= 100 && cs <= 25_500,
            Version::V3 => cs >= 1 && cs <= 0x0fff,
        }
    }

    /// Length of the VRRP message carrying `count` IPv4 addresses.
    pub const fn message_len_v4(self, count: usize) -> usize {
        self.message_len(Family::V4, count)
    }

    /// Length of the VRRP message carrying `count` addresses of `family`: v2 adds its 8 bytes of
    /// authentication data (v2 is IPv4 only: nothing builds or accepts it over IPv6).
    pub const fn message_len(self, family: Family, count: usize) -> usize {
        let addresses = family.address_len() * count;
        match self {
            Version::V2 => HEADER_LEN + addresses + AUTH_DATA_LEN,
            Version::V3 => HEADER_LEN + addresses,
        }
    }
}

/// The address family an advert is sent over and carries: one per virtual router (an IPv4 and
/// an IPv6 address need two instances, RFC 5798 §5.2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `a`.
    pub const fn of(a: IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Bytes of one address in the advert.
    pub const fn address_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// A checked view over a VRRP message (the IP payload) carrying addresses of one [`Family`].
#[derive(Clone, Copy, Debug)]
pub struct VrrpPacket<'a> {
    b: &'a [u8],
    family: Family,
}

impl<'a> VrrpPacket<'a> {
    /// A message received over IPv4: [`VrrpPacket::new_checked_family`] with [`Family::V4`].
    pub fn new_checked(b: &'a [u8]) -> Result<VrrpPacket<'a>, VrrpError> {
        VrrpPacket::new_checked_family(b, Family::V4)
    }

    /// A message received over IPv6: [`VrrpPacket::new_checked_family`] with [`Family::V6`].
    pub fn new_checked_v6(b: &'a [u8]) -> Result<VrrpPacket<'a>, VrrpError> {
        VrrpPacket::new_checked_family(b, Family::V6)
    }

    /// Checks length, version and type of a message received over `family`. Errors:
    /// [`VrrpError::Length`] (shorter than the header, or not exactly the length the count
    /// announces with addresses of `family`), [`VrrpError::Version`] (not 2 or 3, or 2 over
    /// IPv6, which RFC 3768 does not define), [`VrrpError::Type`] (not an ADVERTISEMENT). The
    /// checksum is checked separately ([`VrrpPacket::checksum_ok_v4`],
    /// [`VrrpPacket::checksum_ok_v6`]): v3 needs the IP addresses.
    pub fn new_checked_family(b: &'a [u8], family: Family) -> Result<VrrpPacket<'a>, VrrpError> {
        let (Some(&vt), Some(&count)) = (b.first(), b.get(3)) else {
            return Err(VrrpError::Length);
        };
        if b.len() < HEADER_LEN {
            return Err(VrrpError::Length);
        }
        let version = Version::from_number(vt >> 4).ok_or(VrrpError::Version)?;
        if family == Family::V6 && version == Version::V2 {
            return Err(VrrpError::Version);
        }
        if vt & 0x0f != TYPE_ADVERTISEMENT {
            return Err(VrrpError::Type);
        }
        if b.len() != version.message_len(family, usize::from(count)) {
            return Err(VrrpError::Length);
        }
        Ok(VrrpPacket { b, family })
    }

    pub fn version(&self) -> Version {
        // new_checked proved it is 2 or 3.
        Version::from_number(self.b[0] >> 4).unwrap_or(Version::V3)
    }

    pub fn vrid(&self) -> u8 {
        self.b[1]
    }

    pub fn priority(&self) -> u8 {
        self.b[2]
    }

    /// The "Count IPvX Addr" field.
    pub fn count(&self) -> u8 {
        self.b[3]
    }

    /// v2: the Auth Type field; v3: 0 (the byte belongs to the interval there).
    pub fn auth_type(&self) -> u8 {
        match self.version() {
            Version::V2 => self.b[4],
            Version::V3 => 0,
        }
    }

    /// The advert interval in centiseconds: v2 seconds × 100, v3 the 12-bit Max Adver Int
    /// (the 4 reserved bits ignored, as RFC 5798 §5.2.4 says for a receiver).
    pub fn interval_cs(&self) -> u16 {
        match self.version() {
            Version::V2 => u16::from(self.b[5]) * 100,
            Version::V3 => u16::from_be_bytes([self.b[4], self.b[5]]) & 0x0fff,
        }
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b[6], self.b[7]])
    }

    /// The addresses, in packet order (of the view's family).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let n = self.family.address_len();
        let end = HEADER_LEN + n * usize::from(self.b[3]);
        self.b[HEADER_LEN..end].chunks_exact(n).map(|c| {
            if let Ok(a) = <[u8; 16]>::try_from(c) {
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            }
        })
    }

    /// Whether the checksum verifies: v2 over the message, v3 with the IPv4 pseudo-header of
    /// `src` → `dst`.
    pub fn checksum_ok_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let initial = match self.version() {
            Version::V2 => 0,
            Version::V3 => pseudo_header_sum(src, dst, self.b.len()),
        };
        checksum::fold(checksum::sum(self.b, initial)) == 0xffff
    }

    /// Whether the v3 checksum with the IPv6 pseudo-header of `src` → `dst` (next header 112,
    /// RFC 5798 §5.2.8) verifies.
    pub fn checksum_ok_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::fold(checksum::sum(
            self.b,
            pseudo_header_sum_v6(src, dst, self.b.len()),
        )) == 0xffff
    }
}

#[allow(clippy::cast_possible_truncation)] // vrrp_len is at most 8 + 16 * 255 bytes
fn pseudo_header_sum_v6(src: Ipv6Addr, dst: Ipv6Addr, vrrp_len: usize) -> u32 {
    checksum::ipv6_pseudo_header_sum(src.octets(), dst.octets(), PROTO_VRRP, vrrp_len as u32)
}

#[allow(clippy::cast_possible_truncation)] // vrrp_len is at most 8 + 4 * 255 + 8 bytes
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, vrrp_len: usize) -> u32 {
    checksum::ipv4_pseudo_header_sum(src.octets(), dst.octets(), PROTO_VRRP, vrrp_len as u16)
}

/// A received advertisement, parsed and checksum-verified, with what the state machine needs of
/// its IP header. The instance-specific checks (TTL, version, VRID, interval, addresses) are
/// [`super::VrrpInstance::handle_advert`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// The count field (equal to `addresses.len()` after [`parse_ipv4`]).
    pub count: u8,
    /// v2 Auth Type; 0 for v3.
    pub auth_type: u8,
    /// Advert interval in centiseconds (v2: seconds × 100).
    pub interval_cs: u16,
    pub addresses: Vec<IpAddr>,
    /// IP source: the sender's primary address (tie-break of equal priorities).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
}

/// Parses a whole IPv4 packet (header + VRRP message) as a raw socket or AF_XDP hands it over,
/// checking everything that does not depend on the receiving instance: IPv4 header
/// ([`VrrpError::IpHeader`], [`VrrpError::Length`], IP header [`VrrpError::Checksum`]), then
/// the VRRP message's length, version, type and checksum. Never panics.
pub fn parse_ipv4(ip: &[u8]) -> Result<Advert, VrrpError> {
    let p = Ipv4Packet::new_checked(ip).map_err(ip_error)?;
    // Ethernet padding is not expected here: the packet must be exactly what it says.
    if p.total_len() != ip.len() {
        return Err(VrrpError::Length);
    }
    // MF flag or a fragment offset: not reassembled here.
    if p.is_fragment() || p.protocol() != PROTO_VRRP {
        return Err(VrrpError::IpHeader);
    }
    let h = Ipv4Repr::parse(&p).map_err(ip_error)?;
    let v = VrrpPacket::new_checked(p.payload())?;
    if !v.checksum_ok_v4(h.src, h.dst) {
        return Err(VrrpError::Checksum);
    }
    Ok(Advert::of_message(
        &v,
        IpAddr::V4(h.src),
        IpAddr::V4(h.dst),
        h.ttl,
    ))
}

impl Advert {
    /// The advert a checked message `v` holds, with what its IP header said (either family).
    fn of_message(v: &VrrpPacket<'_>, src: IpAddr, dst: IpAddr, ttl: u8) -> Advert {
        Advert {
            version: v.version(),
            vrid: v.vrid(),
            priority: v.priority(),
            count: v.count(),
            auth_type: v.auth_type(),
            interval_cs: v.interval_cs(),
            addresses: v.addresses().collect(),
            src,
            dst,
            ttl,
        }
    }
}

/// The VRRP error of an IPv4 header the wire layer refuses: cut short or longer than the packet
/// is `length`; a wrong version, an IHL below 5 or a fragment is `ip_header`; a header
/// checksum that does not verify is `checksum`.
fn ip_error(e: wire::Error) -> VrrpError {
    match e {
        wire::Error::BadIpv4Checksum => VrrpError::Checksum,
        wire::Error::BadIpVersion
        | wire::Error::Ipv4HeaderLenTooSmall
        | wire::Error::Ipv4Fragment => VrrpError::IpHeader,
        _ => VrrpError::Length,
    }
}

/// What an advert to send says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertFields<'a> {
    pub version: Version,
    pub vrid: u8,
    /// 0 = release (the sender stops being master).
    pub priority: u8,
    /// Centiseconds: v2 a multiple of 100 in 100..=25500, v3 1..=4095.
    pub interval_cs: u16,
    /// The virtual addresses: one family, IPv4 or (v3 only) IPv6.
    pub addresses: &'a [IpAddr],
}

impl AdvertFields<'_> {
    /// The family of the addresses (IPv4 when there are none).
    pub fn family(&self) -> Family {
        self.addresses
            .first()
            .map_or(Family::V4, |a| Family::of(*a))
    }

    fn check(&self) -> Result<(), BuildError> {
        if self.vrid == 0 {
            return Err(BuildError::Vrid);
        }
        if self.addresses.len() > usize::from(u8::MAX) {
            return Err(BuildError::TooManyAddresses(self.addresses.len()));
        }
        let family = self.family();
        if self.addresses.iter().any(|a| Family::of(*a) != family) {
            return Err(BuildError::Family(FamilyError::Mixed));
        }
        if family == Family::V6 && self.version == Version::V2 {
            return Err(BuildError::Family(FamilyError::V2Ipv6));
        }
        let cs = self.interval_cs;
        if !self.version.interval_ok(cs) {
            return Err(BuildError::Interval(u64::from(cs) * NANOS_PER_CENTISECOND));
        }
        Ok(())
    }

    /// Length of the VRRP message.
    pub fn message_len(&self) -> usize {
        self.version
            .message_len(self.family(), self.addresses.len())
    }

    /// The sum of the v3 pseudo-header for `src` → `dst` (0 for v2, which has none), or
    /// [`BuildError::FamilyMismatch`] when either is not of the addresses' family.
    fn pseudo_header(&self, src: IpAddr, dst: IpAddr, len: usize) -> Result<u32, BuildError> {
        let sum = match (self.family(), src, dst) {
            (Family::V4, IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_sum(s, d, len),
            (Family::V6, IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_sum_v6(s, d, len),
            (family, s, d) => {
                let odd = if Family::of(s) == family { d } else { s };
                return Err(BuildError::FamilyMismatch(odd));
            }
        };
        Ok(match self.version {
            Version::V2 => 0,
            Version::V3 => sum,
        })
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), BuildError> {
    if buf.len() < n {
        return Err(BuildError::BufferTooSmall {
            have: buf.len(),
            need: n,
        });
    }
    Ok(())
}

fn v4(a: IpAddr) -> Result<Ipv4Addr, BuildError> {
    match a {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(BuildError::FamilyMismatch(a)),
    }
}

/// Writes the VRRP message into the start of `buf` and returns its length: IPv4 or IPv6 (the
/// family of the addresses, which `src`/`dst`, the IP addresses it will be sent with, must
/// share: they make the v3 pseudo-header). No allocation.
pub fn encode_message(
    buf: &mut [u8],
    f: &AdvertFields<'_>,
    src: IpAddr,
    dst: IpAddr,
) -> Result<usize, BuildError> {
    f.check()?;
    let len = f.message_len();
    let initial = f.pseudo_header(src, dst, len)?;
    need(buf, len)?;
    let m = &mut buf[..len];
    m[0] = (f.version.number() << 4) | TYPE_ADVERTISEMENT;
    m[1] = f.vrid;
    m[2] = f.priority;
    m[3] = u8::try_from(f.addresses.len())
        .map_err(|_| BuildError::TooManyAddresses(f.addresses.len()))?;
    match f.version {
        Version::V2 => {
            m[4] = 0; // Auth Type: none
            m[5] = u8::try_from(f.interval_cs / 100).map_err(|_| {
                BuildError::Interval(u64::from(f.interval_cs) * NANOS_PER_CENTISECOND)
            })?;
        }
        Version::V3 => m[4..6].copy_from_slice(&(f.interval_cs & 0x0fff).to_be_bytes()),
    }
    m[6] = 0;
    m[7] = 0;
    let n = f.family().address_len();
    for (i, a) in f.addresses.iter().enumerate() {
        let at = HEADER_LEN + n * i;
        match a {
            IpAddr::V4(a) => m[at..at + 4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => m[at..at + 16].copy_from_slice(&a.octets()),
        }
    }
    if f.version == Version::V2 {
        m[len - AUTH_DATA_LEN..].fill(0);
    }
    let c = !checksum::fold(checksum::sum(m, initial));
    m[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(len)
}

/// Writes the IPv4 packet (header as keepalived builds it + VRRP message) into the start of
/// `buf` and returns its length. `dst` is [`MULTICAST_V4`] or a unicast peer.
pub fn encode_ipv4(
    buf: &mut [u8],
    f: &AdvertFields<'_>,
    src: IpAddr,
    dst: IpAddr,
) -> Result<usize, BuildError> {
    f.check()?;
    let (s4, d4) = (v4(src)?, v4(dst)?);
    let total = IPV4_HEADER_LEN + f.message_len();
    need(buf, total)?;
    let n = encode_message(&mut buf[IPV4_HEADER_LEN..], f, src, dst)?;
    let header = Ipv4Repr {
        src: s4,
        dst: d4,
        protocol: PROTO_VRRP,
        payload_len: n,
        tos: TOS,
        ttl: TTL,
        identification: 0, // the kernel fills it in on a raw socket
        dont_fragment: false,
    };
    header.emit(buf).map_err(|_| BuildError::BufferTooSmall {
        have: buf.len(),
        need: total,
    })?;
    Ok(IPV4_HEADER_LEN + n)
}

/// Writes the Ethernet frame (`dst_mac`, `src_mac`, the IP packet of [`encode_ip`]: IPv4, or
/// IPv6 with flow label 0) into the start of `buf` and returns its length. For multicast pass
/// [`MULTICAST_MAC_V4`] / [`MULTICAST_MAC_V6`]; `src_mac` is the interface's MAC (keepalived's
/// default) or [`virtual_mac`] (RFC 5798 §7.3, keepalived's `use_vmac`). Frames are not padded
/// to the 60-byte minimum; the NIC pads on transmit.
pub fn encode_frame(
    buf: &mut [u8],
    f: &AdvertFields<'_>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
) -> Result<usize, BuildError> {
    f.check()?;
    let (ip_len, ethertype) = match src {
        IpAddr::V4(_) => (IPV4_HEADER_LEN, EtherType::IPV4),
        IpAddr::V6(_) => (IPV6_HEADER_LEN, EtherType::IPV6),
    };
    let need_len = ETHERNET_HEADER_LEN + ip_len + f.message_len();
    need(buf, need_len)?;
    let n = encode_ip(&mut buf[ETHERNET_HEADER_LEN..], f, src, dst)?;
    let ethernet = EthernetRepr {
        src: src_mac,
        dst: dst_mac,
        ethertype,
    };
    ethernet.emit(buf).map_err(|_| BuildError::BufferTooSmall {
        have: buf.len(),
        need: need_len,
    })?;
    Ok(ETHERNET_HEADER_LEN + n)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;

    /// Straightforward RFC 1071 sum, independent of `wire::checksum`.
    fn ones_complement(parts: &[&[u8]]) -> u16 {
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(p);
        }
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            s += (u32::from(w[0]) << 8) | u32::from(w[1]);
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP1: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    const VIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));

    fn fields(version: Version, interval_cs: u16, addrs: &[IpAddr]) -> AdvertFields<'_> {
        AdvertFields {
            version,
            vrid: 51,
            priority: 100,
            interval_cs,
            addresses: addrs,
        }
    }

    #[test]
    fn v3_golden_frame() {
        let addrs = [VIP1, VIP2];
        let mut buf = [0u8; 128];
        let n = encode_frame(
            &mut buf,
            &fields(Version::V3, 100, &addrs),
            virtual_mac(51),
            MULTICAST_MAC_V4,
            IpAddr::V4(SRC),
            IpAddr::V4(MULTICAST_V4),
        )
        .unwrap();
        assert_eq!(n, 14 + 20 + 16);
        // VRRP message by hand: 0x31, VRID 51, prio 100, count 2, rsvd+interval 100 cs = 0x0064.
        let mut vrrp = vec![
            0x31, 51, 100, 2, 0x00, 0x64, 0, 0, 198, 18, 0, 100, 198, 18, 0, 101,
        ];
        let pseudo = [198, 18, 0, 1, 224, 0, 0, 18, 0, 112, 0, 16];
        let c = ones_complement(&[&pseudo, &vrrp]);
        vrrp[6..8].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![
            0x45, 0xc0, 0, 36, 0, 0, 0, 0, 255, 112, 0, 0, 198, 18, 0, 1, 224, 0, 0, 18,
        ];
        let ic = ones_complement(&[&ip]);
        ip[10..12].copy_from_slice(&ic.to_be_bytes());
        let mut want = vec![
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x00, 0x00, 0x5e, 0x00, 0x01, 51, 0x08, 0x00,
        ];
        want.extend_from_slice(&ip);
        want.extend_from_slice(&vrrp);
        assert_eq!(&buf[..n], &want[..]);
        // And etherparse agrees on the IPv4 header checksum.
        let h = etherparse::Ipv4HeaderSlice::from_slice(&buf[14..34]).unwrap();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(h.protocol(), etherparse::IpNumber(112));
        assert_eq!(h.ttl(), 255);
    }

    #[test]
    fn v2_golden_message() {
        let addrs = [VIP1];
        let mut buf = [0u8; 64];
        let n = encode_message(
            &mut buf,
            &fields(Version::V2, 300, &addrs),
            IpAddr::V4(SRC),
            IpAddr::V4(MULTICAST_V4),
        )
        .unwrap();
        // 0x21, VRID 51, prio 100, count 1, auth 0, interval 3 s, checksum, VIP, 8 zero bytes.
        let mut want = vec![
            0x21, 51, 100, 1, 0, 3, 0, 0, 198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let c = ones_complement(&[&want]); // no pseudo-header in v2
        want[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&buf[..n], &want[..]);
    }

    #[test]
    fn v3_unicast_checksum_uses_the_real_destination() {
        let addrs = [VIP1];
        let peer = Ipv4Addr::new(198, 18, 0, 2);
        let mut buf = [0u8; 64];
        let n = encode_ipv4(
            &mut buf,
            &fields(Version::V3, 100, &addrs),
            IpAddr::V4(SRC),
            IpAddr::V4(peer),
        )
        .unwrap();
        let a = parse_ipv4(&buf[..n]).unwrap();
        assert_eq!(a.dst, IpAddr::V4(peer));
        let v = VrrpPacket::new_checked(&buf[20..n]).unwrap();
        assert!(!v.checksum_ok_v4(SRC, MULTICAST_V4));
    }

    #[test]
    fn round_trip_both_versions() {
        for (version, cs) in [(Version::V2, 100), (Version::V3, 4095), (Version::V3, 1)] {
            let addrs = [VIP1, VIP2];
            let mut buf = [0u8; 128];
            let n = encode_ipv4(
                &mut buf,
                &fields(version, cs, &addrs),
                IpAddr::V4(SRC),
                IpAddr::V4(MULTICAST_V4),
            )
            .unwrap();
            let a = parse_ipv4(&buf[..n]).unwrap();
            assert_eq!(
                a,
                Advert {
                    version,
                    vrid: 51,
                    priority: 100,
                    count: 2,
                    auth_type: 0,
                    interval_cs: cs,
                    addresses: addrs.to_vec(),
                    src: IpAddr::V4(SRC),
                    dst: IpAddr::V4(MULTICAST_V4),
                    ttl: 255,
                }
            );
        }
    }

    #[test]
    fn v3_reserved_bits_are_ignored_on_receive() {
        let mut m = [0x31, 1, 100, 0, 0xf0, 0x64, 0, 0];
        let c = ones_complement(&[&[198, 18, 0, 1, 224, 0, 0, 18, 0, 112, 0, 8], &m]);
        m[6..8].copy_from_slice(&c.to_be_bytes());
        let v = VrrpPacket::new_checked(&m).unwrap();
        assert_eq!(v.interval_cs(), 100);
        assert!(v.checksum_ok_v4(SRC, MULTICAST_V4));
    }

    fn good_ipv4() -> Vec<u8> {
        let addrs = [VIP1];
        let mut buf = [0u8; 64];
        let n = encode_ipv4(
            &mut buf,
            &fields(Version::V3, 100, &addrs),
            IpAddr::V4(SRC),
            IpAddr::V4(MULTICAST_V4),
        )
        .unwrap();
        buf[..n].to_vec()
    }

    /// Rewrites the IP header checksum after a test edits the header.
    fn fix_ip_checksum(p: &mut [u8]) {
        p[10] = 0;
        p[11] = 0;
        let c = ones_complement(&[&p[..20]]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn receive_check_checksum() {
        let mut p = good_ipv4();
        p[20 + 2] ^= 1; // priority changed, checksum not
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Checksum));
        let mut p = good_ipv4();
        p[8] = 254; // TTL changed, IP checksum not
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Checksum));
    }

    #[test]
    fn receive_check_length() {
        let p = good_ipv4();
        for cut in 0..p.len() {
            assert_eq!(
                parse_ipv4(&p[..cut]).map(|_| ()),
                Err(VrrpError::Length),
                "{cut}"
            );
        }
        // Count says 2 addresses but one is there: the VRRP length is wrong.
        let mut p = good_ipv4();
        p[20 + 3] = 2;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Length));
        // One byte too many, IP total length adjusted.
        let mut p = good_ipv4();
        p.push(0);
        p[3] += 1;
        fix_ip_checksum(&mut p);
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Length));
    }

    #[test]
    fn receive_check_version_and_type() {
        let mut p = good_ipv4();
        p[20] = 0x11;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Version));
        p[20] = 0x41;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Version));
        p[20] = 0x32;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Type));
    }

    #[test]
    fn receive_check_ip_header() {
        let mut p = good_ipv4();
        p[9] = 17;
        fix_ip_checksum(&mut p);
        assert_eq!(parse_ipv4(&p), Err(VrrpError::IpHeader));
        let mut p = good_ipv4();
        p[6] = 0x20; // MF
        fix_ip_checksum(&mut p);
        assert_eq!(parse_ipv4(&p), Err(VrrpError::IpHeader));
        let mut p = good_ipv4();
        p[0] = 0x65;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::IpHeader));
        let mut p = good_ipv4();
        p[0] = 0x44;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::IpHeader));
        // Protocol and fragment are judged before the header checksum.
        let mut p = good_ipv4();
        p[9] = 17;
        assert_eq!(parse_ipv4(&p), Err(VrrpError::IpHeader));
    }

    #[test]
    fn receive_check_ip_lengths() {
        // IHL past the packet, total length below the header, above the packet, or below it
        // (trailing bytes such as Ethernet padding): all `length`, checksum fixed or not.
        for (at, v) in [(0, 0x4f), (3, 19), (3, 0xff), (3, 28)] {
            let mut p = good_ipv4();
            p[at] = v;
            assert_eq!(parse_ipv4(&p), Err(VrrpError::Length), "byte {at} = {v}");
            fix_ip_checksum(&mut p);
            assert_eq!(
                parse_ipv4(&p),
                Err(VrrpError::Length),
                "byte {at} = {v}, fixed"
            );
        }
        let mut p = good_ipv4();
        p.extend_from_slice(&[0; 4]);
        assert_eq!(parse_ipv4(&p), Err(VrrpError::Length), "padding");
        assert!(parse_ipv4(&good_ipv4()).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic xorshift over many lengths and contents, plus every one-byte edit of a
        // good packet.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 80];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 81) as usize;
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = parse_ipv4(&buf[..len]);
            let _ = VrrpPacket::new_checked(&buf[..len]).map(|v| v.addresses().count());
            let _ = VrrpPacket::new_checked_v6(&buf[..len]).map(|v| v.addresses().count());
            let _ = parse_ipv6(&buf[..len]);
        }
        let good = good_ipv4();
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut p = good.clone();
                p[i] = v;
                let _ = parse_ipv4(&p);
            }
        }
    }

    #[test]
    fn encoder_refuses_bad_input() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut buf = [0u8; 64];
        let src = IpAddr::V4(SRC);
        let dst = IpAddr::V4(MULTICAST_V4);
        assert_eq!(
            encode_message(&mut buf, &fields(Version::V3, 100, &[v6]), src, dst),
            Err(BuildError::FamilyMismatch(src))
        );
        assert_eq!(
            encode_message(&mut buf, &fields(Version::V3, 100, &[VIP1]), v6, dst),
            Err(BuildError::FamilyMismatch(v6))
        );
        assert_eq!(
            encode_ipv4(&mut buf, &fields(Version::V3, 100, &[VIP1]), src, v6),
            Err(BuildError::FamilyMismatch(v6))
        );
        assert!(matches!(
            encode_message(&mut buf, &fields(Version::V2, 150, &[VIP1]), src, dst),
            Err(BuildError::Interval(_))
        ));
        assert!(matches!(
            encode_message(&mut buf, &fields(Version::V3, 0, &[VIP1]), src, dst),
            Err(BuildError::Interval(_))
        ));
        assert_eq!(
            encode_frame(
                &mut buf[..40],
                &fields(Version::V3, 100, &[VIP1]),
                [0; 6],
                MULTICAST_MAC_V4,
                src,
                dst
            ),
            Err(BuildError::BufferTooSmall { have: 40, need: 46 })
        );
        let many = vec![VIP1; 256];
        let mut big = [0u8; 2048];
        assert_eq!(
            encode_message(&mut big, &fields(Version::V3, 100, &many), src, dst),
            Err(BuildError::TooManyAddresses(256))
        );
        let mut f = fields(Version::V3, 100, &[VIP1]);
        f.vrid = 0;
        assert_eq!(
            encode_message(&mut buf, &f, src, dst),
            Err(BuildError::Vrid)
        );
    }

    #[test]
    fn macs() {
        assert_eq!(virtual_mac(1), [0, 0, 0x5e, 0, 1, 1]);
        assert_eq!(virtual_mac(255), [0, 0, 0x5e, 0, 1, 0xff]);
        // 224.0.0.18 → 01:00:5e + low 23 bits.
        let o = MULTICAST_V4.octets();
        assert_eq!(
            MULTICAST_MAC_V4,
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        );
    }
}
