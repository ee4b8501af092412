//! UDP header view and its `Repr`.
//!
//! Invariant after [`UdpDatagram::check_len`]: `8 <= length field <= buffer length` (after
//! [`UdpDatagram::new_checked_first_fragment`]: `8 <= length field` and `8 <= buffer length`),
//! so no accessor panics. A checksum of 0 means "none" over IPv4 and must stay 0 across
//! rewrites; over IPv6 it is invalid (RFC 8200 §8.1, [`UdpDatagram::verify_ipv6`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{checksum, read_u16, write_u16, Error};

pub const HEADER_LEN: usize = 8;
/// IPv4 protocol number of UDP.
pub const PROTOCOL: u8 = 17;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 6;

#[derive(Debug)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(UdpDatagram);

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// Checks the header and the length field against the buffer: [`Error::TruncatedUdp`],
    /// [`Error::UdpLenTooSmall`], [`Error::UdpLenPastEnd`].
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.check_header()?;
        if len > self.buffer.as_ref().len() {
            return Err(Error::UdpLenPastEnd);
        }
        Ok(())
    }

    /// The length field, once the header fits and the field is at least the header.
    #[inline]
    fn check_header(&self) -> Result<usize, Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TruncatedUdp);
        }
        let len = usize::from(read_u16(b, 4));
        if len < HEADER_LEN {
            return Err(Error::UdpLenTooSmall);
        }
        Ok(len)
    }

    /// Like [`new_checked`](Self::new_checked) for the first fragment of a datagram, whose
    /// length field covers fragments still to come: it may exceed `buffer` but not fall below
    /// the header.
    #[inline]
    pub fn new_checked_first_fragment(buffer: T) -> Result<Self, Error> {
        let u = Self::new_unchecked(buffer);
        u.check_header()?;
        Ok(u)
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    #[inline]
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), 4))
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_AT)
    }

    /// Whether the checksum of a datagram sent from `src` to `dst` is 0 ("none") or verifies.
    /// Needs [`check_len`](Self::check_len) (the whole datagram in the buffer), not just the
    /// first-fragment check.
    pub fn checksum_ok(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = read_u16(self.buffer.as_ref(), 4);
        let Some(datagram) = self.buffer.as_ref().get(..usize::from(len)) else {
            return false;
        };
        let pseudo = checksum::ipv4_pseudo_header_sum(src.octets(), dst.octets(), PROTOCOL, len);
        self.checksum() == 0 || checksum::fold(checksum::sum(datagram, pseudo)) == 0xffff
    }

    /// Verifies the checksum of a datagram sent from `src` to `dst` over IPv6:
    /// [`Error::UdpZeroChecksumIpv6`] for a checksum of 0 (not allowed over IPv6),
    /// [`Error::BadUdpChecksum`] when it does not verify. Needs [`check_len`](Self::check_len)
    /// (the whole datagram in the buffer), as [`checksum_ok`](Self::checksum_ok).
    pub fn verify_ipv6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), Error> {
        if self.checksum() == 0 {
            return Err(Error::UdpZeroChecksumIpv6);
        }
        let len = read_u16(self.buffer.as_ref(), 4);
        let datagram = self
            .buffer
            .as_ref()
            .get(..usize::from(len))
            .ok_or(Error::UdpLenPastEnd)?;
        let pseudo =
            checksum::ipv6_pseudo_header_sum(src.octets(), dst.octets(), PROTOCOL, u32::from(len));
        if checksum::fold(checksum::sum(datagram, pseudo)) != 0xffff {
            return Err(Error::BadUdpChecksum);
        }
        Ok(())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_AT, c);
    }

    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), 0, p);
    }

    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), 2, p);
    }
}

/// A UDP header as values. The checksum covers the IPv4 pseudo-header, so `parse` and `emit`
/// take the addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Length of the data after the header.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a checked datagram. The checksum is not verified (the datapath forwards UDP
    /// untouched, as IPVS does); [`UdpDatagram::checksum_ok`] does that for a caller who needs it.
    pub fn parse<T: AsRef<[u8]>>(d: &UdpDatagram<T>) -> UdpRepr {
        UdpRepr {
            src_port: d.src_port(),
            dst_port: d.dst_port(),
            payload_len: d.len().saturating_sub(HEADER_LEN),
        }
    }

    /// Writes the 8-byte header into `buf`, whose next `payload_len` bytes already hold the
    /// payload, and the checksum over it for `src` → `dst` (0xffff for a computed 0, RFC 768).
    /// [`Error::TruncatedUdp`] when `buf` cannot hold the header, [`Error::UdpLenPastEnd`] when it
    /// cannot hold the payload or the length exceeds 65535; nothing is written then.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), Error> {
        self.emit_with(buf, |len| {
            checksum::ipv4_pseudo_header_sum(src.octets(), dst.octets(), PROTOCOL, len)
        })
    }

    /// [`emit`](Self::emit) over IPv6: the checksum covers the IPv6 pseudo-header (RFC 8200
    /// §8.1) and is never 0. Same errors.
    pub fn emit_ipv6(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), Error> {
        self.emit_with(buf, |len| {
            checksum::ipv6_pseudo_header_sum(src.octets(), dst.octets(), PROTOCOL, u32::from(len))
        })
    }

    /// [`emit`](Self::emit) with the pseudo-header sum `pseudo(length)`.
    fn emit_with(&self, buf: &mut [u8], pseudo: impl Fn(u16) -> u32) -> Result<(), Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::TruncatedUdp);
        }
        let len = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|l| u16::try_from(l).ok())
            .filter(|&l| usize::from(l) <= buf.len())
            .ok_or(Error::UdpLenPastEnd)?;
        let d = &mut buf[..usize::from(len)];
        write_u16(d, 0, self.src_port);
        write_u16(d, 2, self.dst_port);
        write_u16(d, 4, len);
        write_u16(d, CHECKSUM_AT, 0);
        let c = !checksum::fold(checksum::sum(d, pseudo(len)));
        write_u16(d, CHECKSUM_AT, checksum::udp_field(c));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_length_field() {
        let mut h = [0u8; 12];
        h[5] = 12;
        assert_eq!(UdpDatagram::new_checked(&h[..]).unwrap().len(), 12);
        h[5] = 13;
        assert_eq!(
            UdpDatagram::new_checked(&h[..]).unwrap_err(),
            Error::UdpLenPastEnd
        );
        assert_eq!(
            UdpDatagram::new_checked_first_fragment(&h[..])
                .unwrap()
                .len(),
            13
        );
        for l in 0..8 {
            h[5] = l;
            assert_eq!(
                UdpDatagram::new_checked(&h[..]).unwrap_err(),
                Error::UdpLenTooSmall
            );
            assert_eq!(
                UdpDatagram::new_checked_first_fragment(&h[..]).unwrap_err(),
                Error::UdpLenTooSmall
            );
        }
        for n in 0..8 {
            assert_eq!(
                UdpDatagram::new_checked(&h[..n]).unwrap_err(),
                Error::TruncatedUdp
            );
            assert_eq!(
                UdpDatagram::new_checked_first_fragment(&h[..n]).unwrap_err(),
                Error::TruncatedUdp
            );
        }
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    #[test]
    fn repr_emit_is_byte_exact() {
        // 198.18.0.2:1234 -> 198.18.0.100:53, payload "xvs". The checksum, computed apart from
        // this code (RFC 768 over pseudo-header c612 0002 c612 0064 0011 000b, header
        // 04d2 0035 000b 0000 and data 7876 7300), is 0x82cf.
        let mut b = [0u8; 11];
        b[8..].copy_from_slice(b"xvs");
        let r = UdpRepr {
            src_port: 1234,
            dst_port: 53,
            payload_len: 3,
        };
        r.emit(&mut b, SRC, DST).unwrap();
        assert_eq!(
            b,
            [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0x82, 0xcf, b'x', b'v', b's']
        );
        let d = UdpDatagram::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&d), r);
        assert!(d.checksum_ok(SRC, DST));
        assert!(!d.checksum_ok(DST, DST));
    }

    #[test]
    fn repr_parse_accepts_no_checksum_and_emit_refuses_short_buffers() {
        let mut b = [0u8; 12];
        b[5] = 12;
        let d = UdpDatagram::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&d).payload_len, 4);
        assert!(d.checksum_ok(SRC, DST), "checksum 0 is none");
        let r = UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload_len: 4,
        };
        assert_eq!(r.emit(&mut [0u8; 7], SRC, DST), Err(Error::TruncatedUdp));
        assert_eq!(r.emit(&mut [0u8; 11], SRC, DST), Err(Error::UdpLenPastEnd));
        let huge = UdpRepr {
            payload_len: 65535 - 7,
            ..r
        };
        assert_eq!(huge.emit(&mut b, SRC, DST), Err(Error::UdpLenPastEnd));
        assert_eq!(b[..8], [0, 0, 0, 0, 0, 12, 0, 0], "nothing written");
    }
}
