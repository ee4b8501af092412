//! Ethernet II frame view, with at most one 802.1Q / 802.1ad tag kept in place.

use super::{read_u16, write_u16, Error};

/// Well-known EtherTypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const QINQ: EtherType = EtherType(0x88a8);
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of a single-tagged Ethernet header.
pub const TAGGED_HEADER_LEN: usize = 18;

/// A view of an Ethernet frame.
///
/// Invariant after [`check_len`](Self::check_len) (or [`new_checked`](Self::new_checked)): the
/// buffer holds the whole header, including the VLAN tag when there is one, so no accessor
/// panics and `payload` starts at a valid offset.
#[derive(Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

/// The header length the outer EtherType of `b` announces (14, or 18 with a VLAN tag); 14 when
/// `b` is too short to hold an EtherType.
#[inline]
fn announced_header_len(b: &[u8]) -> usize {
    match b.get(12..14) {
        Some(&[hi, lo]) if matches!(u16::from_be_bytes([hi, lo]), 0x8100 | 0x88a8) => {
            TAGGED_HEADER_LEN
        }
        _ => HEADER_LEN,
    }
}

checked_view!(EthernetFrame);

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        let header_len = announced_header_len(buffer.as_ref());
        EthernetFrame { buffer, header_len }
    }

    /// Checks that the header (and one VLAN tag, if present) fits:
    /// [`Error::TruncatedEthernet`] otherwise.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < self.header_len {
            return Err(Error::TruncatedEthernet);
        }
        Ok(())
    }

    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    #[inline]
    pub fn src(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }

    /// The EtherType of the payload (after the VLAN tag, if any).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), self.header_len - 2))
    }

    /// The VLAN ID, if the frame is tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        (self.header_len == TAGGED_HEADER_LEN).then(|| read_u16(self.buffer.as_ref(), 14) & 0x0fff)
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac);
    }
}

/// An untagged Ethernet II header as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads an untagged header; a tagged frame's `ethertype` is the one after the tag (the tag
    /// itself is not represented).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            src: frame.src(),
            dst: frame.dst(),
            ethertype: frame.ethertype(),
        }
    }

    /// Writes the 14-byte header into `buf[..14]`; [`Error::TruncatedEthernet`] (and nothing
    /// written) when `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::TruncatedEthernet)?;
        h[0..6].copy_from_slice(&self.dst);
        h[6..12].copy_from_slice(&self.src);
        write_u16(h, 12, self.ethertype.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged() {
        let mut f = [0u8; 18];
        f[12] = 0x08;
        let e = EthernetFrame::new_checked(&f[..14]).unwrap();
        assert_eq!(e.ethertype(), EtherType::IPV4);
        assert_eq!(e.header_len(), 14);
        assert_eq!(e.vlan_id(), None);
        f[12] = 0x81;
        f[13] = 0x00;
        f[14] = 0x00;
        f[15] = 0x2a;
        f[16] = 0x08;
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.ethertype(), EtherType::IPV4);
        assert_eq!(e.vlan_id(), Some(42));
        assert_eq!(e.payload().len(), 0);
    }

    #[test]
    fn every_truncation_is_truncated_ethernet() {
        let mut f = [0u8; 18];
        f[12] = 0x08;
        for n in 0..14 {
            assert_eq!(
                EthernetFrame::new_checked(&f[..n]).unwrap_err(),
                Error::TruncatedEthernet,
                "{n} bytes"
            );
        }
        assert!(EthernetFrame::new_checked(&f[..14]).is_ok());
        for tpid in [[0x81, 0x00], [0x88, 0xa8]] {
            f[12..14].copy_from_slice(&tpid);
            for n in 14..18 {
                assert_eq!(
                    EthernetFrame::new_checked(&f[..n]).unwrap_err(),
                    Error::TruncatedEthernet,
                    "tagged, {n} bytes"
                );
            }
            assert_eq!(EthernetFrame::new_checked(&f[..]).unwrap().header_len(), 18);
        }
    }

    #[test]
    fn repr_round_trip_and_golden_bytes() {
        let r = EthernetRepr {
            src: [2, 0x18, 0, 0, 0, 0x0b],
            dst: [0xff; 6],
            ethertype: EtherType::ARP,
        };
        let mut b = [0u8; 14];
        r.emit(&mut b).unwrap();
        assert_eq!(
            b,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x18, 0, 0, 0, 0x0b, 0x08, 0x06]
        );
        assert_eq!(
            EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).unwrap()),
            r
        );
        assert_eq!(r.emit(&mut [0u8; 13]), Err(Error::TruncatedEthernet));
    }
}
