//! IPv6-in-IPv6 (next header 41, RFC 2473): the outer IPv6 header xvs's TUN method puts in front
//! of a client's IPv6 packet, as IPVS does for its IPv6 tunnels.
//!
//! [`OuterHeader6`] is the outer header's `Repr`: the fields the caller chooses (IPVS copies the
//! traffic class and hop limit from the inner header) and the inner packet's length, which is
//! the outer payload length. [`OuterHeader6::emit`] writes a complete 40-byte fixed header (no
//! extension headers, so no tunnel encapsulation limit option) through [`Ipv6Repr::emit`]; the
//! inner packet is left as it is.
//!
//! # MTU arithmetic
//!
//! The outer packet is the inner packet plus [`OUTER_LEN`] (40) bytes, so on a link of MTU `m`
//! an inner packet fits when `inner_len <= m - 40` ([`max_inner_len`]). A client packet longer
//! than that cannot be tunnelled whole (IPv6 routers do not fragment): xvs answers with an
//! ICMPv6 Packet Too Big carrying MTU `m - 40`, as IPVS does. The inner packet's length is
//! its fixed header plus its payload length (40 + payload_len), at most 65535 + 40, and the
//! outer payload length field holds it: an inner packet over 65535 bytes cannot be tunnelled.

use std::net::Ipv6Addr;

use super::ipv6::{Ipv6Packet, Ipv6Repr, IPV6_IN_IPV6};
use super::Error;

/// Next header value of IPv6-in-IPv6.
pub const NEXT_HEADER: u8 = IPV6_IN_IPV6;
/// Length of the outer header xvs writes (no extension headers).
pub const OUTER_LEN: usize = 40;

/// The fields of an outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterHeader6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    /// Length of the whole inner packet (its 40-byte header and its payload): the outer
    /// payload length.
    pub inner_len: u16,
}

/// The longest inner packet that fits, once encapsulated, in a link MTU of `link_mtu`
/// (`link_mtu - 40`), `None` when not even the outer header fits.
pub fn max_inner_len(link_mtu: u16) -> Option<u16> {
    #[allow(clippy::cast_possible_truncation)] // OUTER_LEN is 40
    link_mtu.checked_sub(OUTER_LEN as u16)
}

impl OuterHeader6 {
    /// The outer packet's length (`inner_len + 40`).
    pub fn total_len(&self) -> usize {
        usize::from(self.inner_len) + OUTER_LEN
    }

    /// The IPv6 header this outer header is.
    fn ipv6(&self) -> Ipv6Repr {
        Ipv6Repr {
            src: self.src,
            dst: self.dst,
            next_header: NEXT_HEADER,
            payload_len: usize::from(self.inner_len),
            hop_limit: self.hop_limit,
            traffic_class: self.traffic_class,
            flow_label: self.flow_label,
        }
    }

    /// Reads the outer header of a checked packet: [`Error::UnexpectedProtocol`] unless the
    /// fixed header's next header is 41 (xvs writes no extension headers in front of the inner
    /// packet, so one that has them is not its own).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<OuterHeader6, Error> {
        let ip = Ipv6Repr::parse(p);
        if ip.next_header != NEXT_HEADER {
            return Err(Error::UnexpectedProtocol);
        }
        Ok(OuterHeader6 {
            src: ip.src,
            dst: ip.dst,
            hop_limit: ip.hop_limit,
            traffic_class: ip.traffic_class,
            flow_label: ip.flow_label,
            // The payload length field is 16 bits.
            inner_len: u16::try_from(ip.payload_len).map_err(|_| Error::Ipv6PayloadLenPastEnd)?,
        })
    }

    /// Writes the header into `buf[..40]`; `buf` must also have room for the inner packet after
    /// it. Errors (nothing written) as [`Ipv6Repr::emit`]'s.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        self.ipv6().emit(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 4, 0, 0, 0, 0x11);

    fn outer() -> OuterHeader6 {
        OuterHeader6 {
            src: SRC,
            dst: DST,
            hop_limit: 63,
            traffic_class: 0x28,
            flow_label: 0x1_2345,
            inner_len: 60,
        }
    }

    /// Golden bytes, field by field from RFC 8200 §3 (version 4 bits, traffic class 8, flow
    /// label 20, payload length 16, next header 8, hop limit 8, source 128, destination 128).
    #[test]
    fn emit_is_byte_exact_and_parses_back() {
        let mut b = [0u8; 100];
        outer().emit(&mut b).unwrap();
        #[rustfmt::skip]
        let want: [u8; 40] = [
            0x62, 0x81, 0x23, 0x45, // version 6, traffic class 0x28, flow label 0x12345
            0x00, 60, 41, 63,       // payload length 60 (the inner packet), next header 41, hop limit 63
            0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,       // 2001:2:0:1::1
            0x20, 0x01, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x11,    // 2001:2:0:4::11
        ];
        assert_eq!(b[..40], want);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(OuterHeader6::parse(&p), Ok(outer()));
        assert_eq!(outer().total_len(), 100);
    }

    #[test]
    fn refuses_short_buffers_other_protocols_and_wide_labels() {
        let h = outer();
        assert_eq!(h.emit(&mut [0u8; 39]), Err(Error::TruncatedIpv6));
        let mut b = [0u8; 99];
        assert_eq!(h.emit(&mut b), Err(Error::Ipv6PayloadLenPastEnd));
        assert_eq!(b, [0u8; 99], "nothing written");
        let wide = OuterHeader6 {
            flow_label: 0x10_0000,
            ..h
        };
        assert_eq!(wide.emit(&mut [0u8; 100]), Err(Error::Ipv6FlowLabelTooBig));
        let mut b = [0u8; 40];
        Ipv6Repr {
            next_header: 17,
            payload_len: 0,
            ..h.ipv6()
        }
        .emit(&mut b)
        .unwrap();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(OuterHeader6::parse(&p), Err(Error::UnexpectedProtocol));
        let max = OuterHeader6 {
            inner_len: u16::MAX,
            ..h
        };
        assert_eq!(max.total_len(), 65535 + 40);
    }

    #[test]
    fn mtu_arithmetic() {
        assert_eq!(max_inner_len(1500), Some(1460));
        assert_eq!(max_inner_len(1280), Some(1240));
        assert_eq!(max_inner_len(40), Some(0));
        assert_eq!(max_inner_len(39), None);
    }
}
