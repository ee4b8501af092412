//! Wire views over frame bytes, in the style of smoltcp's `wire`.
//!
//! Each header has two layers:
//! - a *view* (`EthernetFrame`, `Ipv4Packet`, `TcpSegment`, `UdpDatagram`, `IcmpPacket`,
//!   `ArpPacket`) wraps a
//!   byte buffer. `new_unchecked` wraps without looking; `check_len` proves the lengths the
//!   accessors rely on and says which one is wrong ([`Error`]); `new_checked` is the two in one.
//!   Once checked, no accessor can panic (each view's doc states the invariant that makes it so);
//!   on an unchecked view they may. Setters write fields in place; the helpers in [`checksum`]
//!   keep checksums correct incrementally.
//! - a *`Repr`* (`Ipv4Repr`, `UdpRepr`, `IcmpRepr`, the IP-in-IP [`ipip::OuterHeader`],
//!   `EthernetRepr`, `ArpRepr`) is the header's meaning as plain values: `parse` reads one from a checked
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
pub mod ipip;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use ipip::OuterHeader;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
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
    /// The IP version field is not 4.
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
