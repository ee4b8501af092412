//! ARP for IPv4 over Ethernet (RFC 826): the view and `Repr` of the gratuitous ARPs a new VRRP
//! master sends. The datapath never parses ARP (the XDP filter leaves it to the kernel).
//!
//! Invariant after [`ArpPacket::check_len`]: the buffer holds the 28-byte Ethernet/IPv4 ARP
//! message, so no accessor panics. Other hardware or protocol types are refused by
//! [`ArpRepr::parse`], not by the view.

use std::net::Ipv4Addr;

use super::{read_4, read_u16, write_u16, Error};

/// Length of an ARP message for IPv4 over Ethernet.
pub const LEN: usize = 28;
/// Hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4 (an EtherType).
const PTYPE_IPV4: u16 = 0x0800;

/// ARP operations.
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

#[derive(Debug)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(ArpPacket);

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// [`Error::TruncatedArp`] when the buffer cannot hold the 28-byte message.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < LEN {
            return Err(Error::TruncatedArp);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the hardware/protocol types and lengths are Ethernet (6 bytes) and IPv4 (4 bytes).
    pub fn is_ethernet_ipv4(&self) -> bool {
        read_u16(self.b(), 0) == HTYPE_ETHERNET
            && read_u16(self.b(), 2) == PTYPE_IPV4
            && self.b()[4] == 6
            && self.b()[5] == 4
    }

    pub fn operation(&self) -> u16 {
        read_u16(self.b(), 6)
    }

    pub fn sender_mac(&self) -> [u8; 6] {
        let b = self.b();
        [b[8], b[9], b[10], b[11], b[12], b[13]]
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(self.b(), 14))
    }

    pub fn target_mac(&self) -> [u8; 6] {
        let b = self.b();
        [b[18], b[19], b[20], b[21], b[22], b[23]]
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(self.b(), 24))
    }
}

/// An Ethernet/IPv4 ARP message as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// The gratuitous ARP announcing `ip` at `mac`: a request with sender = target = `ip` and a
    /// zero target hardware address (an ARP announcement, RFC 5227 §3).
    pub fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            operation: OP_REQUEST,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: [0; 6],
            target_ip: ip,
        }
    }

    /// Reads a checked message: [`Error::UnsupportedArp`] unless it is Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr, Error> {
        if !p.is_ethernet_ipv4() {
            return Err(Error::UnsupportedArp);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// Writes the 28-byte message into `buf[..28]`; [`Error::TruncatedArp`] (and nothing written)
    /// when `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let m = buf.get_mut(..LEN).ok_or(Error::TruncatedArp)?;
        write_u16(m, 0, HTYPE_ETHERNET);
        write_u16(m, 2, PTYPE_IPV4);
        m[4] = 6;
        m[5] = 4;
        write_u16(m, 6, self.operation);
        m[8..14].copy_from_slice(&self.sender_mac);
        m[14..18].copy_from_slice(&self.sender_ip.octets());
        m[18..24].copy_from_slice(&self.target_mac);
        m[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_round_trip_and_errors() {
        let r = ArpRepr::announcement([2, 0x18, 0, 0, 0, 0x0b], Ipv4Addr::new(198, 18, 0, 100));
        let mut b = [0u8; LEN];
        r.emit(&mut b).unwrap();
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Ok(r));
        for n in 0..LEN {
            assert_eq!(
                ArpPacket::new_checked(&b[..n]).unwrap_err(),
                Error::TruncatedArp
            );
        }
        assert_eq!(r.emit(&mut [0u8; LEN - 1]), Err(Error::TruncatedArp));
        for (at, v) in [(1, 6), (3, 0xdd), (4, 8), (5, 16)] {
            let mut other = b;
            other[at] = v;
            let p = ArpPacket::new_checked(&other[..]).unwrap();
            assert_eq!(ArpRepr::parse(&p), Err(Error::UnsupportedArp), "byte {at}");
        }
    }
}
