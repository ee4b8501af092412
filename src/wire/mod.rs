//! Wire views over frame bytes, in the style of smoltcp's `wire`.
//!
//! Each header has two layers:
//! - a *view* (`EthernetFrame`, `Ipv4Packet`, `Ipv6Packet`, `TcpSegment`, `UdpDatagram`,
//!   `IcmpPacket`, `Icmpv6Packet`, `ArpPacket`) wraps a byte buffer. `new_unchecked` wraps without looking; `check_len` proves the lengths the
//!   accessors rely on and says which one is wrong ([`Error`]); `new_checked` is the two in one.
//!   Once checked, no accessor can panic (each view's doc states the invariant that makes it so);
//!   on an unchecked view they may. Setters write fields in place; the helpers in [`checksum`]
//!   keep checksums correct incrementally.
//! - a *`Repr`* (`Ipv4Repr`, `Ipv6Repr`, `UdpRepr`, `IcmpRepr`, `Icmpv6Repr`, the IP-in-IP
//!   [`ipip::OuterHeader`] and IPv6-in-IPv6 [`ip6ip6::OuterHeader6`], `EthernetRepr`, `ArpRepr`) is the header's meaning as plain values: `parse` reads one from a checked
//!   view (verifying what the view does not, such as checksums), `emit` writes a complete header
//!   with its checksum. Every header xvs builds (TUN outer header, ICMP errors, VRRP adverts,
//!   gratuitous ARPs) goes through a `Repr`'s `emit`.
//!
//! Views never allocate and never copy the payload; `Repr`s are `Copy`. This module imports
//! nothing else of the crate, so the datapath, conntrack and vrrp can all build on it. Errors are
//! the wire layer's own ([`Error`]); the datapath maps them to its drop reasons.

/// The constructors every view shares, so each view writes only what differs (`new_unchecked`
/// and `check_len`): `new_checked`, the one way to a view whose accessors cannot panic, and
/// `into_inner`. The view's buffer field must be named `buffer`.
macro_rules! checked_view {
    ($view:ident) => {
        impl<T: AsRef<[u8]>> $view<T> {
            /// [`new_unchecked`](Self::new_unchecked) followed by
            /// [`check_len`](Self::check_len).
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self, $crate::wire::Error> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ip6ip6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod tcp;
pub mod udp;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use icmpv6::{Icmpv6Message, Icmpv6Packet, Icmpv6Repr};
pub use ip6ip6::OuterHeader6;
pub use ipip::OuterHeader;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Fragment, Ipv6Packet, Ipv6Repr, UpperLayer};
pub use tcp::{TcpFlags, TcpSegment};
pub use udp::{UdpDatagram, UdpRepr};

/// What is wrong with a header: one variant per malformation `check_len` or a `Repr`'s `parse`
/// finds, and the same variants when `emit` is given a buffer too short for what it must write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than an Ethernet header, or than its 802.1Q/802.1ad tag.
    TruncatedEthernet,
    /// Shorter than a minimal (20-byte) IPv4 header.
    TruncatedIpv4,
    /// The IP version field is not the one the view reads (4 for `Ipv4Packet`, 6 for
    /// `Ipv6Packet`).
    BadIpVersion,
    /// IHL below 5 (a header shorter than 20 bytes).
    Ipv4HeaderLenTooSmall,
    /// IHL says the header runs past the end of the buffer.
    Ipv4HeaderLenPastEnd,
    /// Total length below the header length.
    Ipv4TotalLenTooSmall,
    /// Total length past the end of the buffer (or, for `emit`, beyond 65535).
    Ipv4TotalLenPastEnd,
    /// The IPv4 header checksum does not verify.
    BadIpv4Checksum,
    /// A fragment (MF set or an offset), which a `Repr` cannot describe: xvs does not reassemble.
    Ipv4Fragment,
    /// The IPv4 protocol is not the one the `Repr` describes (IP-in-IP: not 4).
    UnexpectedProtocol,
    /// Shorter than the 40-byte IPv6 header.
    TruncatedIpv6,
    /// The IPv6 payload length runs past the end of the buffer (or, for `emit`, beyond 65535).
    Ipv6PayloadLenPastEnd,
    /// `emit` was given a flow label wider than the header's 20 bits.
    Ipv6FlowLabelTooBig,
    /// An extension header runs past the end of the IPv6 payload (or its length byte does).
    Ipv6ExtHeaderTruncated,
    /// More extension headers than [`ipv6::MAX_EXT_HEADERS`] before the upper layer.
    Ipv6TooManyExtHeaders,
    /// The extension headers together exceed [`ipv6::MAX_EXT_LEN`] bytes.
    Ipv6ExtHeadersTooLong,
    /// A hop-by-hop options header anywhere but right after the fixed header (RFC 8200 §4.3).
    Ipv6HopByHopNotFirst,
    /// A next header xvs does not walk: AH (51), ESP (50) or another extension header of
    /// IANA's list it does not parse (mobility, HIP, shim6, the experimental 253/254).
    Ipv6UnsupportedNextHeader,
    /// A second fragment header in one packet.
    Ipv6RepeatedFragmentHeader,
    /// A routing header with segments left: the packet's destination is not its final one
    /// (RFC 8200 §4.4), so it is not for a VIP.
    Ipv6RoutingSegmentsLeft,
    /// A fragment with more to come whose data is not a multiple of 8 bytes (RFC 8200 §4.5).
    Ipv6FragmentLenNotMultipleOf8,
    /// A fragment whose offset and length put the reassembled payload beyond 65535 bytes
    /// (RFC 8200 §4.5).
    Ipv6FragmentPastMaxLen,
    /// Shorter than a minimal (20-byte) TCP header.
    TruncatedTcp,
    /// TCP data offset below 5.
    TcpHeaderLenTooSmall,
    /// TCP data offset says the header runs past the end of the buffer.
    TcpHeaderLenPastEnd,
    /// Shorter than the 8-byte UDP header.
    TruncatedUdp,
    /// UDP length field below 8.
    UdpLenTooSmall,
    /// UDP length field past the end of the buffer (or, for `emit`, beyond 65535).
    UdpLenPastEnd,
    /// Shorter than the 8-byte ICMP header.
    TruncatedIcmp,
    /// The ICMP checksum does not verify.
    BadIcmpChecksum,
    /// A UDP checksum that does not verify.
    BadUdpChecksum,
    /// A UDP checksum of 0 over IPv6, where it is not allowed (RFC 8200 §8.1).
    UdpZeroChecksumIpv6,
    /// Shorter than the 8-byte ICMPv6 header.
    TruncatedIcmpv6,
    /// The ICMPv6 checksum (over the IPv6 pseudo-header and the message) does not verify.
    BadIcmpv6Checksum,
    /// An ICMPv6 message [`Icmpv6Repr`] does not describe (neighbour discovery, MLD, unknown).
    UnsupportedIcmpv6,
    /// Shorter than an Ethernet/IPv4 ARP message (28 bytes).
    TruncatedArp,
    /// ARP for another hardware or protocol type than Ethernet/IPv4.
    UnsupportedArp,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// The big-endian 16-bit word at `b[at..at + 2]`. Callers index only offsets their view's
/// invariant puts inside `b`.
#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes `v` big-endian at `b[at..at + 2]` (same precondition as [`read_u16`]).
#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The four bytes at `b[at..at + 4]` (same precondition as [`read_u16`]).
#[inline]
pub(crate) fn read_4(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// The big-endian 32-bit word at `b[at..at + 4]` (same precondition as [`read_u16`]).
#[inline]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_4(b, at))
}

/// Writes `v` big-endian at `b[at..at + 4]` (same precondition as [`read_u16`]).
#[inline]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The sixteen bytes at `b[at..at + 16]` (same precondition as [`read_u16`]).
#[inline]
pub(crate) fn read_16(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}
