//! IPv4 header view.
//!
//! Invariant after [`Ipv4Packet::new_checked`]: version is 4, `20 <= header_len <= total_len <=
//! buffer length`. Bytes past `total_len` (Ethernet padding) are not part of the packet.
//! Setters keep the header checksum correct incrementally; transport checksums are the caller's
//! business (they cover a pseudo-header).

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16};
use crate::datapath::DropReason;

/// Minimum IPv4 header length.
pub const MIN_HEADER_LEN: usize = 20;

const CHECKSUM_AT: usize = 10;

#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates version, IHL and total length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TruncatedIpv4);
        }
        if b[0] >> 4 != 4 {
            return Err(DropReason::BadIpVersion);
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN || header_len > b.len() {
            return Err(DropReason::BadIpv4HeaderLength);
        }
        let total_len = usize::from(read_u16(b, 2));
        if total_len < header_len || total_len > b.len() {
            return Err(DropReason::BadIpv4TotalLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }

    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.b(), 2))
    }

    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), CHECKSUM_AT)
    }

    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[12], self.b()[13], self.b()[14], self.b()[15])
    }

    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[16], self.b()[17], self.b()[18], self.b()[19])
    }

    /// The identification field (shared by the fragments of one datagram).
    pub fn identification(&self) -> u16 {
        read_u16(self.b(), 4)
    }

    pub fn dont_fragment(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    pub fn more_fragments(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn fragment_offset(&self) -> usize {
        usize::from(read_u16(self.b(), 6) & 0x1fff) * 8
    }

    /// Whether this packet is a fragment (first or later).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }

    /// Whether the header checksum verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verifies(&self.b()[..self.header_len()])
    }

    /// The transport payload (without Ethernet padding).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_checksum(&mut self, c: u16) {
        write_u16(self.b_mut(), CHECKSUM_AT, c);
    }

    /// Sets the source address, updating the header checksum.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        let old = self.src();
        let c = checksum::update_bytes(self.checksum(), &old.octets(), &a.octets());
        self.b_mut()[12..16].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Sets the destination address, updating the header checksum.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        let old = self.dst();
        let c = checksum::update_bytes(self.checksum(), &old.octets(), &a.octets());
        self.b_mut()[16..20].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Sets the TTL, updating the header checksum (TTL shares a 16-bit word with the protocol).
    pub fn set_ttl(&mut self, ttl: u8) {
        let old = read_u16(self.b(), 8);
        let new = (u16::from(ttl) << 8) | u16::from(self.protocol());
        let c = checksum::update_u16(self.checksum(), old, new);
        self.b_mut()[8] = ttl;
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 20] {
        let mut h = [
            0x45, 0, 0, 20, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 100,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn parses_and_rewrites_with_valid_checksum() {
        let mut h = header();
        let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
        assert!(p.checksum_ok());
        assert!(p.dont_fragment() && !p.is_fragment());
        p.set_dst(Ipv4Addr::new(198, 18, 1, 11));
        p.set_src(Ipv4Addr::new(198, 18, 0, 3));
        p.set_ttl(63);
        assert!(p.checksum_ok());
        assert_eq!((p.ttl(), p.protocol()), (63, 6));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 1, 11));
    }

    #[test]
    fn rejects_bad_headers() {
        let h = header();
        assert_eq!(
            Ipv4Packet::new_checked(&h[..19]).unwrap_err(),
            DropReason::TruncatedIpv4
        );
        let mut v6 = h;
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            DropReason::BadIpVersion
        );
        let mut ihl = h;
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            DropReason::BadIpv4HeaderLength
        );
        ihl[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            DropReason::BadIpv4HeaderLength
        );
        let mut tl = h;
        tl[3] = 21;
        assert_eq!(
            Ipv4Packet::new_checked(&tl[..]).unwrap_err(),
            DropReason::BadIpv4TotalLength
        );
        tl[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&tl[..]).unwrap_err(),
            DropReason::BadIpv4TotalLength
        );
    }
}
