//! TCP header view and the TCP flags (which conntrack's state machine reads too).
//!
//! Invariant after [`TcpSegment::check_len`]: `20 <= header_len <= buffer length`, so no
//! accessor panics.

use super::{read_u16, write_u16, Error};

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

    #[inline]
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    #[inline]
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    #[inline]
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    #[inline]
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// A connection-opening SYN (SYN without ACK/RST).
    #[inline]
    pub fn is_initial_syn(self) -> bool {
        self.syn() && !self.ack() && !self.rst()
    }

    /// Whether the flags form a combination TCP ever sends (the table Linux's connection
    /// tracking applies): with PSH, ECE and CWR ignored, one of SYN, SYN+URG, SYN+ACK, RST,
    /// RST+ACK, FIN+ACK, FIN+ACK+URG, ACK, ACK+URG. Anything else — no flag at all (a null
    /// scan), SYN+FIN, SYN+RST, FIN without ACK (an Xmas scan), URG alone — is invalid.
    pub fn is_valid_combination(self) -> bool {
        const URG: u8 = 0x20;
        const IGNORED: u8 = TcpFlags::PSH | 0x40 | 0x80; // PSH, ECE, CWR
        const VALID: [u8; 9] = [
            TcpFlags::SYN,
            TcpFlags::SYN | URG,
            TcpFlags::SYN | TcpFlags::ACK,
            TcpFlags::RST,
            TcpFlags::RST | TcpFlags::ACK,
            TcpFlags::FIN | TcpFlags::ACK,
            TcpFlags::FIN | TcpFlags::ACK | URG,
            TcpFlags::ACK,
            TcpFlags::ACK | URG,
        ];
        // The combinations as a bit set over the 6 bits left (a bit test per segment, not a
        // search).
        const MASK: u64 = {
            let mut m = 0u64;
            let mut i = 0;
            while i < VALID.len() {
                m |= 1 << VALID[i];
                i += 1;
            }
            m
        };
        (MASK >> (self.0 & !IGNORED)) & 1 != 0
    }
}

#[derive(Debug)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(TcpSegment);

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    /// Checks the data offset against the buffer: [`Error::TruncatedTcp`],
    /// [`Error::TcpHeaderLenTooSmall`], [`Error::TcpHeaderLenPastEnd`].
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::TruncatedTcp);
        }
        let header_len = usize::from(b[12] >> 4) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::TcpHeaderLenTooSmall);
        }
        if header_len > b.len() {
            return Err(Error::TcpHeaderLenPastEnd);
        }
        Ok(())
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
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[13])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_AT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
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

#[cfg(test)]
mod tests {
    use super::TcpFlags as F;

    #[test]
    fn flag_combinations_as_linux_conntrack_validates_them() {
        for ok in [
            0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30, 0x18, 0x19, 0xc2, 0x1c,
        ] {
            assert!(F(ok).is_valid_combination(), "{ok:#04x}");
        }
        for bad in [
            0x00, 0x03, 0x06, 0x16, 0x01, 0x29, 0x20, 0x08, 0x07, 0x3f, 0x13,
        ] {
            assert!(!F(bad).is_valid_combination(), "{bad:#04x}");
        }
    }

    #[test]
    fn the_bit_set_is_the_list_for_every_flag_byte() {
        let listed = [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30];
        for b in 0..=u8::MAX {
            let want = listed.contains(&(b & !(F::PSH | 0x40 | 0x80)));
            assert_eq!(F(b).is_valid_combination(), want, "{b:#04x}");
        }
    }

    use super::*;

    #[test]
    fn checks_data_offset() {
        let mut h = [0u8; 24];
        h[12] = 5 << 4;
        h[13] = TcpFlags::SYN;
        let t = TcpSegment::new_checked(&h[..]).unwrap();
        assert!(t.flags().is_initial_syn());
        h[12] = 6 << 4;
        assert_eq!(TcpSegment::new_checked(&h[..]).unwrap().header_len(), 24);
        assert_eq!(
            TcpSegment::new_checked(&h[..23]).unwrap_err(),
            Error::TcpHeaderLenPastEnd
        );
        for doff in 0..5 {
            h[12] = doff << 4;
            assert_eq!(
                TcpSegment::new_checked(&h[..]).unwrap_err(),
                Error::TcpHeaderLenTooSmall
            );
        }
        h[12] = 7 << 4;
        assert_eq!(
            TcpSegment::new_checked(&h[..]).unwrap_err(),
            Error::TcpHeaderLenPastEnd
        );
        for n in 0..20 {
            assert_eq!(
                TcpSegment::new_checked(&h[..n]).unwrap_err(),
                Error::TruncatedTcp
            );
        }
    }
}
