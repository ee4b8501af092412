//! Ethernet II frame view, with at most one 802.1Q / 802.1ad tag kept in place.

use super::read_u16;
use crate::datapath::DropReason;

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

/// A view of an Ethernet frame. Invariant: the buffer holds the whole header, including the VLAN
/// tag when there is one, so `payload` starts at a valid offset.
#[derive(Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the header (and one VLAN tag, if present) fits.
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::TruncatedEthernet);
        }
        let outer = EtherType(read_u16(b, 12));
        let header_len = if outer == EtherType::VLAN || outer == EtherType::QINQ {
            if b.len() < TAGGED_HEADER_LEN {
                return Err(DropReason::TruncatedEthernet);
            }
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        };
        Ok(EthernetFrame { buffer, header_len })
    }

    pub fn dst(&self) -> [u8; 6] {
        self.buffer.as_ref()[0..6]
            .try_into()
            .expect("checked length")
    }

    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[6..12]
            .try_into()
            .expect("checked length")
    }

    /// The EtherType of the payload (after the VLAN tag, if any).
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), self.header_len - 2))
    }

    /// The VLAN ID, if the frame is tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        (self.header_len == TAGGED_HEADER_LEN).then(|| read_u16(self.buffer.as_ref(), 14) & 0x0fff)
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac);
    }

    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac);
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
        assert_eq!(
            EthernetFrame::new_checked(&f[..17]).unwrap_err(),
            DropReason::TruncatedEthernet
        );
        assert_eq!(
            EthernetFrame::new_checked(&f[..13]).unwrap_err(),
            DropReason::TruncatedEthernet
        );
    }
}
