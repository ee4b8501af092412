//! IP-in-IP (IPv4 protocol 4, RFC 2003): the outer IPv4 header xvs's TUN method puts in front of
//! a client's packet.
//!
//! [`OuterHeader`] is the outer header's `Repr`: the fields the caller chooses, as IPVS's tunnel
//! transmitter sets them (TOS, TTL and DF copied from the inner header, a fresh identification,
//! protocol 4). [`OuterHeader::emit`] writes a complete 20-byte header (no options) with its
//! checksum through [`Ipv4Repr::emit`]; the inner packet is left as it is.

use std::net::Ipv4Addr;

use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::Error;

/// IPv4 protocol number of IP-in-IP.
pub const PROTOCOL: u8 = 4;
/// Length of the outer header xvs writes (no options).
pub const OUTER_LEN: usize = 20;

/// The fields of an outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterHeader {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub ttl: u8,
    pub identification: u16,
    pub dont_fragment: bool,
    /// Length of the inner packet (its IPv4 total length).
    pub inner_len: u16,
}

impl OuterHeader {
    /// The outer packet's total length, `None` if it would not fit in 16 bits.
    #[allow(clippy::cast_possible_truncation)] // OUTER_LEN is 20
    pub fn total_len(&self) -> Option<u16> {
        self.inner_len.checked_add(OUTER_LEN as u16)
    }

    /// The IPv4 header this outer header is.
    fn ipv4(&self) -> Ipv4Repr {
        Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: PROTOCOL,
            payload_len: usize::from(self.inner_len),
            tos: self.tos,
            ttl: self.ttl,
            identification: self.identification,
            dont_fragment: self.dont_fragment,
        }
    }

    /// Reads the outer header of a checked packet: [`Ipv4Repr::parse`]'s errors (fragment, bad
    /// checksum), then [`Error::UnexpectedProtocol`] when the protocol is not 4.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<OuterHeader, Error> {
        let ip = Ipv4Repr::parse(p)?;
        if ip.protocol != PROTOCOL {
            return Err(Error::UnexpectedProtocol);
        }
        Ok(OuterHeader {
            src: ip.src,
            dst: ip.dst,
            tos: ip.tos,
            ttl: ip.ttl,
            identification: ip.identification,
            dont_fragment: ip.dont_fragment,
            // check_len bounds the total length by 65535, so the payload fits too.
            inner_len: u16::try_from(ip.payload_len).map_err(|_| Error::Ipv4TotalLenPastEnd)?,
        })
    }

    /// Writes the header into `buf[..20]`; `buf` must also have room for the inner packet after
    /// it. Errors (nothing written) as [`Ipv4Repr::emit`]'s.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        self.ipv4().emit(buf)
    }
}

/// Writes `h` into `buf[..20]`. Returns `false` (and writes nothing) when `buf` has no room for
/// the header and the inner packet or the total length overflows.
pub fn write_outer(buf: &mut [u8], h: &OuterHeader) -> bool {
    h.emit(buf).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_header_parses_back_with_a_valid_checksum() {
        let mut b = [0u8; 20 + 40];
        // A 40-byte inner packet's worth of room after the header.
        b[20] = 0x45;
        b[22..24].copy_from_slice(&40u16.to_be_bytes());
        let h = OuterHeader {
            src: Ipv4Addr::new(198, 18, 1, 1),
            dst: Ipv4Addr::new(198, 18, 4, 11),
            tos: 0x10,
            ttl: 63,
            identification: 7,
            dont_fragment: true,
            inner_len: 40,
        };
        assert!(write_outer(&mut b, &h));
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(OuterHeader::parse(&p), Ok(h));
        assert!(p.checksum_ok());
        assert_eq!(
            (p.protocol(), p.ttl(), p.total_len(), p.identification()),
            (4, 63, 60, 7)
        );
        assert!(p.dont_fragment() && !p.is_fragment());
        assert_eq!((p.src(), p.dst()), (h.src, h.dst));
        assert_eq!(b[1], 0x10);
    }

    #[test]
    fn refuses_short_buffers_and_overflowing_lengths() {
        let h = OuterHeader {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            tos: 0,
            ttl: 1,
            identification: 0,
            dont_fragment: false,
            inner_len: u16::MAX - 10,
        };
        assert!(!write_outer(&mut [0u8; 64], &h));
        let small = OuterHeader { inner_len: 20, ..h };
        assert!(!write_outer(&mut [0u8; 19], &small));
        assert_eq!(small.emit(&mut [0u8; 39]), Err(Error::Ipv4TotalLenPastEnd));
        assert_eq!(small.emit(&mut [0u8; 19]), Err(Error::TruncatedIpv4));
        assert!(write_outer(&mut [0u8; 40], &small));
    }

    #[test]
    fn parse_refuses_other_protocols() {
        let mut b = [0u8; 20];
        let udp = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 1, 1),
            dst: Ipv4Addr::new(198, 18, 4, 11),
            protocol: 17,
            payload_len: 0,
            tos: 0,
            ttl: 64,
            identification: 1,
            dont_fragment: false,
        };
        udp.emit(&mut b).unwrap();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(OuterHeader::parse(&p), Err(Error::UnexpectedProtocol));
    }
}
