//! ICMPv4 header view (RFC 792).
//!
//! Invariant after [`IcmpPacket::new_checked`]: the buffer holds at least the 8-byte header.
//! For the error messages xvs translates (destination unreachable, time exceeded), the payload
//! is the offending packet's IP header and at least the first 8 bytes of its transport header.

use super::{checksum, read_u16, write_u16};
use crate::datapath::DropReason;

pub const HEADER_LEN: usize = 8;
/// IPv4 protocol number of ICMP.
pub const PROTOCOL: u8 = 1;
const CHECKSUM_AT: usize = 2;

/// ICMP types xvs knows about.
pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
/// Code of "fragmentation needed and DF set" under [`DEST_UNREACHABLE`].
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Whether an ICMP message of `icmp_type` is an error that quotes the offending packet.
pub fn is_error(icmp_type: u8) -> bool {
    matches!(icmp_type, DEST_UNREACHABLE | TIME_EXCEEDED)
}

#[derive(Debug)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::TruncatedIcmp);
        }
        Ok(IcmpPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn icmp_type(&self) -> u8 {
        self.b()[0]
    }

    pub fn code(&self) -> u8 {
        self.b()[1]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), CHECKSUM_AT)
    }

    /// The next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.b(), 6)
    }

    /// What follows the header: for an error, the quoted packet.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole message verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verifies(self.b())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_AT, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.b());
        self.set_checksum(c);
    }
}

/// Writes a "fragmentation needed" header (type 3, code 4, `mtu`) with a zero checksum into
/// `buf[..8]`; the caller adds the quoted packet and fills the checksum.
pub fn write_frag_needed_header(buf: &mut [u8; HEADER_LEN], mtu: u16) {
    *buf = [DEST_UNREACHABLE, CODE_FRAG_NEEDED, 0, 0, 0, 0, 0, 0];
    write_u16(buf, 6, mtu);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_checksum() {
        let mut b = [0u8; HEADER_LEN];
        write_frag_needed_header(&mut b, 1480);
        let mut m = b.to_vec();
        m.extend_from_slice(&[0x45, 0, 0, 20, 1, 2, 3]);
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        p.fill_checksum();
        assert!(p.checksum_ok());
        assert_eq!((p.icmp_type(), p.code(), p.next_hop_mtu()), (3, 4, 1480));
        assert!(is_error(p.icmp_type()) && !is_error(ECHO_REQUEST));
        assert_eq!(p.payload()[0], 0x45);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(
            IcmpPacket::new_checked(&[0u8; 7][..]).unwrap_err(),
            DropReason::TruncatedIcmp
        );
    }
}
