//! Wire views over frame bytes, in the style of smoltcp's `wire`: a view wraps a byte buffer, a
//! checked constructor proves the lengths once, and accessors can then not panic. Setters write
//! fields in place; the checksum helpers in [`checksum`] keep checksums correct incrementally.
//!
//! Views never allocate and never copy the payload.

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipip;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use ethernet::{EtherType, EthernetFrame};
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use tcp::{TcpFlags, TcpSegment};
pub use udp::UdpDatagram;

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
