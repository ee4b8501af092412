//! TCP header view.
//!
//! Invariant after [`TcpSegment::new_checked`]: `20 <= header_len <= buffer length`.

use super::{read_u16, write_u16};
use crate::datapath::DropReason;

pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 16;

/// TCP flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// A connection-opening SYN (SYN without ACK/RST).
    pub fn is_initial_syn(self) -> bool {
        self.syn() && !self.ack() && !self.rst()
    }
}

#[derive(Debug)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TruncatedTcp);
        }
        let header_len = usize::from(b[12] >> 4) * 4;
        if header_len < MIN_HEADER_LEN || header_len > b.len() {
            return Err(DropReason::BadTcpHeaderLength);
        }
        Ok(TcpSegment { buffer })
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[13])
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_AT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
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
    fn checks_data_offset() {
        let mut h = [0u8; 24];
        h[12] = 5 << 4;
        h[13] = TcpFlags::SYN;
        let t = TcpSegment::new_checked(&h[..]).unwrap();
        assert!(t.flags().is_initial_syn());
        h[12] = 4 << 4;
        assert_eq!(
            TcpSegment::new_checked(&h[..]).unwrap_err(),
            DropReason::BadTcpHeaderLength
        );
        h[12] = 7 << 4;
        assert_eq!(
            TcpSegment::new_checked(&h[..]).unwrap_err(),
            DropReason::BadTcpHeaderLength
        );
        assert_eq!(
            TcpSegment::new_checked(&h[..19]).unwrap_err(),
            DropReason::TruncatedTcp
        );
    }
}
