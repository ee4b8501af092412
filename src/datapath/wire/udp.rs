//! UDP header view.
//!
//! Invariant after [`UdpDatagram::new_checked`]: `8 <= length field <= buffer length`.
//! A checksum of 0 means "none" (IPv4) and must stay 0 across rewrites.

use super::{read_u16, write_u16};
use crate::datapath::DropReason;

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 6;

#[derive(Debug)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::TruncatedUdp);
        }
        let len = usize::from(read_u16(b, 4));
        if len < HEADER_LEN || len > b.len() {
            return Err(DropReason::BadUdpLength);
        }
        Ok(UdpDatagram { buffer })
    }

    /// Like [`new_checked`](Self::new_checked) for the first fragment of a datagram, whose
    /// length field covers fragments still to come: it may exceed `buffer` but not fall below
    /// the header.
    pub fn new_checked_first_fragment(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::TruncatedUdp);
        }
        if usize::from(read_u16(b, 4)) < HEADER_LEN {
            return Err(DropReason::BadUdpLength);
        }
        Ok(UdpDatagram { buffer })
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), 4))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_AT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_AT, c);
    }

    pub fn set_src_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), 0, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), 2, p);
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
            DropReason::BadUdpLength
        );
        h[5] = 7;
        assert_eq!(
            UdpDatagram::new_checked(&h[..]).unwrap_err(),
            DropReason::BadUdpLength
        );
        assert_eq!(
            UdpDatagram::new_checked(&h[..7]).unwrap_err(),
            DropReason::TruncatedUdp
        );
    }
}
