//! IPv4 header view and its `Repr`.
//!
//! Invariant after [`Ipv4Packet::check_len`]: version is 4, `20 <= header_len <= total_len <=
//! buffer length`, so no accessor panics. Bytes past `total_len` (Ethernet padding) are not part
//! of the packet. Setters keep the header checksum correct incrementally; transport checksums
//! are the caller's business (they cover a pseudo-header).

use std::net::Ipv4Addr;

use super::{checksum, read_4, read_u16, write_u16, Error};

/// Minimum IPv4 header length.
pub const MIN_HEADER_LEN: usize = 20;

const CHECKSUM_AT: usize = 10;
/// The DF bit in the flags/fragment-offset word.
const DONT_FRAGMENT: u16 = 0x4000;

#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(Ipv4Packet);

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Validates version, IHL and total length against the buffer, in that order:
    /// [`Error::TruncatedIpv4`], [`Error::BadIpVersion`], [`Error::Ipv4HeaderLenTooSmall`],
    /// [`Error::Ipv4HeaderLenPastEnd`], [`Error::Ipv4TotalLenTooSmall`],
    /// [`Error::Ipv4TotalLenPastEnd`].
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::TruncatedIpv4);
        }
        let vihl = b[0];
        if vihl >> 4 != 4 {
            return Err(Error::BadIpVersion);
        }
        let header_len = usize::from(vihl & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Ipv4HeaderLenTooSmall);
        }
        if header_len > b.len() {
            return Err(Error::Ipv4HeaderLenPastEnd);
        }
        let total_len = usize::from(read_u16(b, 2));
        if total_len < header_len {
            return Err(Error::Ipv4TotalLenTooSmall);
        }
        if total_len > b.len() {
            return Err(Error::Ipv4TotalLenPastEnd);
        }
        Ok(())
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }

    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.b(), 2))
    }

    /// The type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.b()[1]
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), CHECKSUM_AT)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(self.b(), 12))
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(self.b(), 16))
    }

    /// The identification field (shared by the fragments of one datagram).
    #[inline]
    pub fn identification(&self) -> u16 {
        read_u16(self.b(), 4)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn fragment_offset(&self) -> usize {
        usize::from(read_u16(self.b(), 6) & 0x1fff) * 8
    }

    /// Whether this packet is a fragment (first or later).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }

    /// Whether the header checksum verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verifies(&self.b()[..self.header_len()])
    }

    /// The transport payload (without Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    fn set_checksum(&mut self, c: u16) {
        write_u16(self.b_mut(), CHECKSUM_AT, c);
    }

    /// Sets the source address, updating the header checksum.
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.set_addr(12, a);
    }

    /// Sets the destination address, updating the header checksum.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.set_addr(16, a);
    }

    /// Writes the address at `at` (12: source, 16: destination), updating the header checksum.
    #[inline]
    fn set_addr(&mut self, at: usize, a: Ipv4Addr) {
        let old = read_4(self.b(), at);
        let c = checksum::update_bytes(self.checksum(), &old, &a.octets());
        self.b_mut()[at..at + 4].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Sets the TTL, updating the header checksum (TTL shares a 16-bit word with the protocol).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        let old = read_u16(self.b(), 8);
        let new = (u16::from(ttl) << 8) | u16::from(self.protocol());
        let c = checksum::update_u16(self.checksum(), old, new);
        self.b_mut()[8] = ttl;
        self.set_checksum(c);
    }
}

/// An unfragmented IPv4 header without options, as values: what xvs reads from a header it
/// accepts whole (a VRRP advert) and what it writes for a header it builds (a TUN outer header,
/// an ICMP error, a VRRP advert). Identification 0 is written as is (no per-packet counter here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Length of what follows the header (the total length minus the header length).
    pub payload_len: usize,
    pub tos: u8,
    pub ttl: u8,
    pub identification: u16,
    pub dont_fragment: bool,
}

impl Ipv4Repr {
    /// Reads a checked packet: [`Error::Ipv4Fragment`] for a fragment (a `Repr` describes whole
    /// datagrams), then [`Error::BadIpv4Checksum`] when the header checksum does not verify.
    /// Options are skipped (`payload_len` excludes them).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr, Error> {
        if p.is_fragment() {
            return Err(Error::Ipv4Fragment);
        }
        if !p.checksum_ok() {
            return Err(Error::BadIpv4Checksum);
        }
        Ok(Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len(),
            tos: p.tos(),
            ttl: p.ttl(),
            identification: p.identification(),
            dont_fragment: p.dont_fragment(),
        })
    }

    /// The total length field this header gets: [`Error::Ipv4TotalLenPastEnd`] beyond 65535.
    pub fn total_len(&self) -> Result<u16, Error> {
        MIN_HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|t| u16::try_from(t).ok())
            .ok_or(Error::Ipv4TotalLenPastEnd)
    }

    /// Writes the 20-byte header, checksum included, into `buf[..20]`. `buf` must have room for
    /// the payload too (written before or after): [`Error::TruncatedIpv4`] when it cannot hold
    /// the header, [`Error::Ipv4TotalLenPastEnd`] when it cannot hold the payload or the total
    /// length exceeds 65535; nothing is written then. On success `Ipv4Packet::new_checked(buf)`
    /// accepts the result.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        if buf.len() < MIN_HEADER_LEN {
            return Err(Error::TruncatedIpv4);
        }
        let total = self.total_len()?;
        if usize::from(total) > buf.len() {
            return Err(Error::Ipv4TotalLenPastEnd);
        }
        let h = &mut buf[..MIN_HEADER_LEN];
        h[0] = 0x45; // version 4, IHL 5
        h[1] = self.tos;
        write_u16(h, 2, total);
        write_u16(h, 4, self.identification);
        write_u16(h, 6, if self.dont_fragment { DONT_FRAGMENT } else { 0 });
        h[8] = self.ttl;
        h[9] = self.protocol;
        write_u16(h, CHECKSUM_AT, 0);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(h);
        write_u16(h, CHECKSUM_AT, c);
        Ok(())
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
    fn every_malformation_has_its_error() {
        let h = header();
        for n in 0..20 {
            assert_eq!(
                Ipv4Packet::new_checked(&h[..n]).unwrap_err(),
                Error::TruncatedIpv4,
                "{n} bytes"
            );
        }
        let with = |at: usize, v: u8| {
            let mut b = [0u8; 28];
            b[..20].copy_from_slice(&h);
            b[at] = v;
            b
        };
        let err = |b: &[u8]| Ipv4Packet::new_checked(b).unwrap_err();
        assert_eq!(err(&with(0, 0x65)), Error::BadIpVersion);
        assert_eq!(err(&with(0, 0x44)), Error::Ipv4HeaderLenTooSmall);
        assert_eq!(err(&with(0, 0x40)), Error::Ipv4HeaderLenTooSmall);
        assert_eq!(err(&with(0, 0x48)), Error::Ipv4HeaderLenPastEnd);
        assert_eq!(err(&with(0, 0x46)[..23]), Error::Ipv4HeaderLenPastEnd);
        assert_eq!(err(&with(3, 19)), Error::Ipv4TotalLenTooSmall);
        assert_eq!(err(&with(0, 0x46)), Error::Ipv4TotalLenTooSmall); // 20 < 24
        assert_eq!(err(&with(3, 29)), Error::Ipv4TotalLenPastEnd);
        // Boundaries accepted: IHL 6 with total 24 in 24 bytes; total 28 in 28; padding after.
        let mut ok = with(0, 0x46);
        ok[3] = 24;
        assert!(Ipv4Packet::new_checked(&ok[..24]).is_ok());
        assert_eq!(
            Ipv4Packet::new_checked(&with(3, 28)[..])
                .unwrap()
                .payload()
                .len(),
            8
        );
        assert_eq!(Ipv4Packet::new_checked(&h[..]).unwrap().payload().len(), 0);
        assert!(Ipv4Packet::new_checked(&with(3, 20)[..]).is_ok());
    }

    /// The worked example of the IPv4 header checksum (Wikipedia, "Internet checksum" /
    /// "IPv4 header checksum"): a UDP packet 192.168.0.1 → 192.168.0.199, DF, TTL 64, total
    /// length 0x73, whose published checksum is 0xb861.
    const CAPTURED: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    const CAPTURED_TOTAL: usize = 0x73;

    fn captured_repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: 17,
            payload_len: CAPTURED_TOTAL - 20,
            tos: 0,
            ttl: 64,
            identification: 0,
            dont_fragment: true,
        }
    }

    #[test]
    fn repr_emit_is_byte_exact_against_a_captured_header() {
        let mut b = [0u8; CAPTURED_TOTAL];
        captured_repr().emit(&mut b).unwrap();
        assert_eq!(b[..20], CAPTURED);
    }

    #[test]
    fn repr_parse_emit_round_trip() {
        let mut b = [0u8; CAPTURED_TOTAL];
        b[..20].copy_from_slice(&CAPTURED);
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r, captured_repr());
        let mut out = [0u8; CAPTURED_TOTAL];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b);
        let r2 = Ipv4Repr {
            tos: 0xc0,
            dont_fragment: false,
            payload_len: 0,
            ..r
        };
        r2.emit(&mut out).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&out[..]).unwrap()),
            Ok(r2)
        );
    }

    #[test]
    fn repr_parse_refuses_fragments_then_bad_checksums() {
        let mut b = CAPTURED;
        b[3] = 20;
        let c = checksum::update_u16(0xb861, 0x0073, 0x0014);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).is_ok());
        b[11] ^= 1;
        let parse = |b: &[u8]| Ipv4Repr::parse(&Ipv4Packet::new_checked(b).unwrap());
        assert_eq!(parse(&b), Err(Error::BadIpv4Checksum));
        b[6] = 0x20; // MF: a fragment, whatever the checksum
        assert_eq!(parse(&b), Err(Error::Ipv4Fragment));
        b[6] = 0;
        b[7] = 1; // offset 8
        assert_eq!(parse(&b), Err(Error::Ipv4Fragment));
    }

    #[test]
    fn repr_emit_refuses_short_buffers_and_overlong_payloads() {
        let r = captured_repr();
        assert_eq!(r.emit(&mut [0u8; 19]), Err(Error::TruncatedIpv4));
        let mut short = [0u8; CAPTURED_TOTAL - 1];
        assert_eq!(r.emit(&mut short), Err(Error::Ipv4TotalLenPastEnd));
        assert_eq!(short, [0u8; CAPTURED_TOTAL - 1], "nothing written");
        let huge = Ipv4Repr {
            payload_len: 65535 - 19,
            ..r
        };
        assert_eq!(huge.emit(&mut [0u8; 100]), Err(Error::Ipv4TotalLenPastEnd));
        assert_eq!(huge.total_len(), Err(Error::Ipv4TotalLenPastEnd));
        let max = Ipv4Repr {
            payload_len: 65535 - 20,
            ..r
        };
        assert_eq!(max.total_len(), Ok(65535));
        assert_eq!(
            Ipv4Repr {
                payload_len: usize::MAX,
                ..r
            }
            .total_len(),
            Err(Error::Ipv4TotalLenPastEnd)
        );
    }
}
