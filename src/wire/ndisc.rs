//! The neighbour advertisement of IPv6 neighbour discovery (RFC 4861 §4.4) with its target
//! link-layer address option (§4.6.1) for Ethernet: what a new VRRP master sends, unsolicited,
//! for each IPv6 VIP (§7.2.6), as gratuitous ARP does for IPv4.
//!
//! ```text
//! | 136 | 0 | Checksum | R S O Reserved (29 bits) | Target Address (16) | 2 | 1 | MAC (6) |
//! ```
//!
//! The message is read and written through the ICMPv6 view ([`Icmpv6Packet`]: length, type,
//! checksum over the IPv6 pseudo-header); [`NeighbourAdvertRepr`] adds the fields neighbour
//! discovery gives the rest of the header. Neighbour discovery stays the kernel's on the packet
//! path ([`super::icmpv6::is_kernel_only`]): xvs only builds these for VRRP.

use std::net::Ipv6Addr;

use super::icmpv6::{Icmpv6Packet, NEIGHBOUR_ADVERT};
use super::{read_16, Error};

/// The R flag: the sender is a router.
pub const FLAG_ROUTER: u8 = 0x80;
/// The S flag: sent in response to a neighbour solicitation.
pub const FLAG_SOLICITED: u8 = 0x40;
/// The O flag: the advertisement overrides a cached link-layer address.
pub const FLAG_OVERRIDE: u8 = 0x20;
/// Option type of the target link-layer address.
pub const OPT_TARGET_LL_ADDR: u8 = 2;
/// Length of the message without options: 8-byte ICMPv6 header and the target.
pub const HEADER_LEN: usize = 24;
/// Length of the message with an Ethernet target link-layer address option (one 8-byte unit).
pub const LEN_WITH_MAC: usize = HEADER_LEN + 8;
/// The hop limit neighbour discovery messages are sent with and must arrive with (§7.1.2).
pub const HOP_LIMIT: u8 = 255;
/// All-nodes multicast: the destination of an unsolicited advertisement (§7.2.6).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet multicast address of ff02::1 (RFC 2464 §7).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// A neighbour advertisement as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourAdvertRepr {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation (never for an unsolicited one).
    pub solicited: bool,
    /// O: replace the link-layer address a neighbour has cached.
    pub override_cache: bool,
    /// The address whose link-layer address is advertised.
    pub target: Ipv6Addr,
    /// The target link-layer address option, if present.
    pub target_mac: Option<[u8; 6]>,
}

impl NeighbourAdvertRepr {
    /// The length of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        if self.target_mac.is_some() {
            LEN_WITH_MAC
        } else {
            HEADER_LEN
        }
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.router {
            f |= FLAG_ROUTER;
        }
        if self.solicited {
            f |= FLAG_SOLICITED;
        }
        if self.override_cache {
            f |= FLAG_OVERRIDE;
        }
        f
    }

    /// Writes the message into `buf[..buffer_len()]` with its checksum for `src` → `dst`.
    /// [`Error::TruncatedIcmpv6`] (nothing written) when `buf` is shorter. Bytes past the
    /// message are not touched.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), Error> {
        let m = buf
            .get_mut(..self.buffer_len())
            .ok_or(Error::TruncatedIcmpv6)?;
        m.fill(0);
        m[0] = NEIGHBOUR_ADVERT;
        m[4] = self.flags();
        m[8..24].copy_from_slice(&self.target.octets());
        if let Some(mac) = self.target_mac {
            m[24] = OPT_TARGET_LL_ADDR;
            m[25] = 1;
            m[26..32].copy_from_slice(&mac);
        }
        Icmpv6Packet::new_unchecked(m).fill_checksum(src, dst);
        Ok(())
    }

    /// Reads a checked ICMPv6 message sent `src` → `dst`: [`Error::BadIcmpv6Checksum`], then
    /// [`Error::UnsupportedIcmpv6`] for another type, a code not 0 or an option of length 0
    /// (RFC 4861 §4.6: discarded), [`Error::TruncatedIcmpv6`] when the target or an option runs
    /// past the end. The first target link-layer address option of 6 bytes is kept; other
    /// options are skipped.
    pub fn parse<T: AsRef<[u8]>>(
        p: &Icmpv6Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<NeighbourAdvertRepr, Error> {
        if !p.checksum_ok(src, dst) {
            return Err(Error::BadIcmpv6Checksum);
        }
        if p.msg_type() != NEIGHBOUR_ADVERT || p.code() != 0 {
            return Err(Error::UnsupportedIcmpv6);
        }
        let b = p.payload();
        // The payload holds the flags word and the target, then options.
        if b.len() < HEADER_LEN - 8 {
            return Err(Error::TruncatedIcmpv6);
        }
        let flags = p.rest_of_header()[0];
        let mut target_mac = None;
        let mut opts = &b[HEADER_LEN - 8..];
        while let [kind, units, ..] = *opts {
            let len = usize::from(units) * 8;
            if len == 0 {
                return Err(Error::UnsupportedIcmpv6);
            }
            let opt = opts.get(..len).ok_or(Error::TruncatedIcmpv6)?;
            if kind == OPT_TARGET_LL_ADDR && len == 8 && target_mac.is_none() {
                target_mac = <[u8; 6]>::try_from(&opt[2..8]).ok();
            }
            opts = &opts[len..];
        }
        Ok(NeighbourAdvertRepr {
            router: flags & FLAG_ROUTER != 0,
            solicited: flags & FLAG_SOLICITED != 0,
            override_cache: flags & FLAG_OVERRIDE != 0,
            target: Ipv6Addr::from(read_16(b, 0)),
            target_mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn na() -> NeighbourAdvertRepr {
        NeighbourAdvertRepr {
            router: false,
            solicited: false,
            override_cache: true,
            target: v6("2001:2::100"),
            target_mac: Some([2, 0, 0, 0, 0, 0x0a]),
        }
    }

    #[test]
    fn emits_the_rfc_layout_and_parses_back() {
        let src = v6("2001:2::100");
        let mut buf = [0xeeu8; 40];
        na().emit(&mut buf, src, ALL_NODES).unwrap();
        assert_eq!(&buf[32..], &[0xee; 8], "nothing past the message");
        let want_head = [136, 0];
        assert_eq!(&buf[..2], &want_head);
        assert_eq!(&buf[4..8], &[FLAG_OVERRIDE, 0, 0, 0]);
        assert_eq!(&buf[8..24], &src.octets());
        assert_eq!(&buf[24..32], &[2, 1, 2, 0, 0, 0, 0, 0x0a]);
        let p = Icmpv6Packet::new_checked(&buf[..32]).unwrap();
        assert!(p.checksum_ok(src, ALL_NODES));
        assert_eq!(NeighbourAdvertRepr::parse(&p, src, ALL_NODES), Ok(na()));
        // Every flag, and no option.
        let all = NeighbourAdvertRepr {
            router: true,
            solicited: true,
            target_mac: None,
            ..na()
        };
        all.emit(&mut buf, src, ALL_NODES).unwrap();
        assert_eq!(buf[4], 0xe0);
        let p = Icmpv6Packet::new_checked(&buf[..24]).unwrap();
        assert_eq!(NeighbourAdvertRepr::parse(&p, src, ALL_NODES), Ok(all));
    }

    #[test]
    fn refuses_what_is_not_a_neighbour_advertisement() {
        let src = v6("2001:2::100");
        let mut buf = [0u8; 32];
        assert_eq!(
            na().emit(&mut buf[..31], src, ALL_NODES),
            Err(Error::TruncatedIcmpv6)
        );
        na().emit(&mut buf, src, ALL_NODES).unwrap();
        let parse = |b: &[u8]| {
            let p = Icmpv6Packet::new_checked(b).unwrap();
            NeighbourAdvertRepr::parse(&p, src, ALL_NODES)
        };
        let mut bad = buf;
        bad[9] ^= 1;
        assert_eq!(parse(&bad), Err(Error::BadIcmpv6Checksum));
        let refill = |b: &mut [u8]| Icmpv6Packet::new_unchecked(b).fill_checksum(src, ALL_NODES);
        for (at, v, e) in [
            (0, 135, Error::UnsupportedIcmpv6),
            (1, 1, Error::UnsupportedIcmpv6),
            (25, 0, Error::UnsupportedIcmpv6),
            (25, 2, Error::TruncatedIcmpv6),
        ] {
            let mut b = buf;
            b[at] = v;
            refill(&mut b);
            assert_eq!(parse(&b), Err(e), "byte {at} = {v}");
        }
        let mut short = [0u8; 20];
        short.copy_from_slice(&buf[..20]);
        refill(&mut short);
        assert_eq!(parse(&short), Err(Error::TruncatedIcmpv6));
    }
}
