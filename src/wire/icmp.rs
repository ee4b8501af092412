//! ICMPv4 header view (RFC 792) and its `Repr`.
//!
//! Invariant after [`IcmpPacket::check_len`]: the buffer holds at least the 8-byte header, so no
//! accessor panics. For the error messages xvs translates (destination unreachable, time
//! exceeded), the payload is the offending packet's IP header and at least the first 8 bytes of
//! its transport header.

use super::{checksum, read_4, read_u16, write_u16, Error};

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

checked_view!(IcmpPacket);

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// [`Error::TruncatedIcmp`] when the buffer cannot hold the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::TruncatedIcmp);
        }
        Ok(())
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn icmp_type(&self) -> u8 {
        self.b()[0]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.b()[1]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), CHECKSUM_AT)
    }

    /// The four bytes after the checksum ("rest of header": next-hop MTU, identifier and
    /// sequence number, pointer, or unused).
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        read_4(self.b(), 4)
    }

    /// The next-hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.b(), 6)
    }

    /// What follows the header: for an error, the quoted packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole message verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verifies(self.b())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_AT, c);
    }

    #[inline]
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

/// An ICMP header as values: type, code and the four type-specific bytes, plus the length of
/// the data after the header (for an error, the quoted packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpRepr {
    pub icmp_type: u8,
    pub code: u8,
    pub rest_of_header: [u8; 4],
    pub payload_len: usize,
}

impl IcmpRepr {
    /// "Fragmentation needed and DF set" (type 3, code 4) with next-hop MTU `mtu` (RFC 1191),
    /// quoting `payload_len` bytes.
    pub fn frag_needed(mtu: u16, payload_len: usize) -> IcmpRepr {
        let [hi, lo] = mtu.to_be_bytes();
        IcmpRepr {
            icmp_type: DEST_UNREACHABLE,
            code: CODE_FRAG_NEEDED,
            rest_of_header: [0, 0, hi, lo],
            payload_len,
        }
    }

    /// Reads a checked message (its whole buffer is the message): [`Error::BadIcmpChecksum`] when
    /// the checksum does not verify.
    pub fn parse<T: AsRef<[u8]>>(p: &IcmpPacket<T>) -> Result<IcmpRepr, Error> {
        if !p.checksum_ok() {
            return Err(Error::BadIcmpChecksum);
        }
        Ok(IcmpRepr {
            icmp_type: p.icmp_type(),
            code: p.code(),
            rest_of_header: p.rest_of_header(),
            payload_len: p.payload().len(),
        })
    }

    /// Writes the 8-byte header into `buf`, whose next `payload_len` bytes already hold the
    /// payload, with the checksum over both. [`Error::TruncatedIcmp`] (and nothing written) when
    /// `buf` cannot hold header and payload.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let len = HEADER_LEN
            .checked_add(self.payload_len)
            .ok_or(Error::TruncatedIcmp)?;
        let m = buf.get_mut(..len).ok_or(Error::TruncatedIcmp)?;
        m[0] = self.icmp_type;
        m[1] = self.code;
        write_u16(m, CHECKSUM_AT, 0);
        m[4..8].copy_from_slice(&self.rest_of_header);
        let c = checksum::checksum(m);
        write_u16(m, CHECKSUM_AT, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_checksum() {
        let mut m = vec![0u8; HEADER_LEN];
        m.extend_from_slice(&[0x45, 0, 0, 20, 1, 2, 3]);
        IcmpRepr::frag_needed(1480, 7).emit(&mut m).unwrap();
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert!(p.checksum_ok());
        assert_eq!((p.icmp_type(), p.code(), p.next_hop_mtu()), (3, 4, 1480));
        assert!(is_error(p.icmp_type()) && !is_error(ECHO_REQUEST));
        assert_eq!(p.payload()[0], 0x45);
        p.set_checksum(0);
        assert!(!p.checksum_ok());
        p.fill_checksum();
        assert!(p.checksum_ok());
    }

    #[test]
    fn short_buffers_are_refused() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                IcmpPacket::new_checked(&[0u8; 8][..n]).unwrap_err(),
                Error::TruncatedIcmp
            );
        }
        assert!(IcmpPacket::new_checked(&[0u8; 8][..]).is_ok());
        let r = IcmpRepr::frag_needed(1480, 4);
        let mut b = [0u8; 11];
        assert_eq!(r.emit(&mut b), Err(Error::TruncatedIcmp));
        assert_eq!(b, [0u8; 11], "nothing written");
        let huge = IcmpRepr {
            payload_len: usize::MAX,
            ..r
        };
        assert_eq!(huge.emit(&mut b), Err(Error::TruncatedIcmp));
    }

    /// An echo request (id 0x0b0d, seq 1, payload "abcd"); its checksum, computed apart from
    /// this code (RFC 1071 over 0800 0000 0b0d 0001 6162 6364), is 0x282b.
    #[test]
    fn repr_emit_byte_exact_and_round_trip() {
        let mut b = *b"\0\0\0\0\0\0\0\0abcd";
        let r = IcmpRepr {
            icmp_type: ECHO_REQUEST,
            code: 0,
            rest_of_header: [0x0b, 0x0d, 0x00, 0x01],
            payload_len: 4,
        };
        r.emit(&mut b).unwrap();
        assert_eq!(b[..8], [8, 0, 0x28, 0x2b, 0x0b, 0x0d, 0x00, 0x01]);
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&p), Ok(r));
        b[9] ^= 0x20;
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&p), Err(Error::BadIcmpChecksum));
    }
}
