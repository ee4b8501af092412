//! IP-in-IP (IPv4 protocol 4, RFC 2003): the outer IPv4 header xvs's TUN method puts in front of
//! a client's packet.
//!
//! [`write_outer`] writes a complete 20-byte outer header (no options) with its checksum; the
//! inner packet is left as it is. [`OuterHeader`] holds the fields the caller chooses, as IPVS's
//! tunnel transmitter sets them: TOS and TTL copied from the inner header, DF copied from the
//! inner header, a fresh identification, protocol 4.

use std::net::Ipv4Addr;

use super::{checksum, write_u16};

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
    pub fn total_len(&self) -> Option<u16> {
        self.inner_len.checked_add(OUTER_LEN as u16)
    }
}

/// Writes `h` into `buf[..20]`. Returns `false` (and writes nothing) when `buf` is shorter than
/// 20 bytes or the total length overflows.
pub fn write_outer(buf: &mut [u8], h: &OuterHeader) -> bool {
    let (Some(total), Some(b)) = (h.total_len(), buf.get_mut(..OUTER_LEN)) else {
        return false;
    };
    b[0] = 0x45;
    b[1] = h.tos;
    write_u16(b, 2, total);
    write_u16(b, 4, h.identification);
    write_u16(b, 6, if h.dont_fragment { 0x4000 } else { 0 });
    b[8] = h.ttl;
    b[9] = PROTOCOL;
    write_u16(b, 10, 0);
    b[12..16].copy_from_slice(&h.src.octets());
    b[16..20].copy_from_slice(&h.dst.octets());
    let c = checksum::checksum(b);
    write_u16(b, 10, c);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::wire::Ipv4Packet;

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
        assert!(!write_outer(
            &mut [0u8; 19],
            &OuterHeader { inner_len: 20, ..h }
        ));
    }
}
