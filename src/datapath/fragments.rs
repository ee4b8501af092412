//! Fragments of IPv4 and IPv6 datagrams: how the later fragments of a datagram follow its first
//! one.
//!
//! Policy: the **first fragment** (offset 0, more-fragments set) carries the transport header, so
//! it is classified, scheduled and rewritten like any packet (its transport checksum, which
//! covers the whole datagram, is updated incrementally and stays right). When it is
//! transmitted, the translation of its IP header is remembered here under the datagram's
//! identity ([`DatagramId`]: IPv4 source, destination, protocol and 16-bit identification;
//! IPv6 source, destination and the fragment header's 32-bit identification, RFC 8200 §4.5). A
//! **later fragment** (offset > 0) has no ports; it gets the same IP rewrite and next hop if its
//! datagram is remembered, and is otherwise dropped (`ipv4_fragment`, `ipv6_fragment`: its first
//! fragment was not seen, came later, or was forgotten) — when it belongs to a virtual service,
//! a real server or a FULLNAT local address; anything else is passed to the kernel. xvs never
//! reassembles.
//!
//! The table is a fixed direct-mapped cache of [`FRAGMENT_SLOTS`] slots shared by both families
//! (a newer datagram whose identity hashes to a busy slot replaces the older one), each
//! remembered for [`FRAGMENT_TIMEOUT`]: bounded memory, O(1) work, one short lock per fragment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use crate::flow::{Nanos, Proto};

/// Datagrams remembered at once.
pub const FRAGMENT_SLOTS: usize = 4096;
/// How long the translation of a datagram is kept after its first fragment (Linux's default
/// reassembly timeout, `ipfrag_time`).
pub const FRAGMENT_TIMEOUT: Nanos = 30 * crate::flow::NANOS_PER_SEC;

/// A datagram's identity, as every one of its fragments carries it (before translation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatagramId {
    /// IPv4 (RFC 791): the protocol is part of the identity.
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: Proto,
        id: u16,
    },
    /// IPv6 (RFC 8200 §4.5): source, destination and identification only (the fragment
    /// header's next header is the fragmentable part's first header, not always the protocol).
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        id: u32,
    },
}

impl DatagramId {
    /// The identity of a datagram from `src` to `dst` (of one family) of protocol `proto` with
    /// identification `id` (an IPv4 one is 16 bits: `None` beyond, or for mixed families).
    pub fn new(src: IpAddr, dst: IpAddr, proto: Proto, id: u32) -> Option<DatagramId> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(DatagramId::V4 {
                src,
                dst,
                proto,
                id: u16::try_from(id).ok()?,
            }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(DatagramId::V6 { src, dst, id }),
            _ => None,
        }
    }

    pub fn src(&self) -> IpAddr {
        match *self {
            DatagramId::V4 { src, .. } => IpAddr::V4(src),
            DatagramId::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match *self {
            DatagramId::V4 { dst, .. } => IpAddr::V4(dst),
            DatagramId::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }
}

/// The IP-level translation of a datagram's fragments. Every address is of the datagram's
/// family ([`FragmentRewrite::new`] refuses others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRewrite {
    /// Which address changes, and to what.
    pub new_src: Option<IpAddr>,
    pub new_dst: Option<IpAddr>,
    /// Where the fragments are routed (their destination after translation).
    pub route_to: IpAddr,
    /// Whether xvs routes them (NAT: TTL or hop limit decremented) or only changes their MACs
    /// (DR: kept).
    pub routed: bool,
}

impl FragmentRewrite {
    /// The rewrite of addresses as the packet path holds them; `None` when they are not all of
    /// `route_to`'s family.
    pub fn new(
        new_src: Option<IpAddr>,
        new_dst: Option<IpAddr>,
        route_to: IpAddr,
        routed: bool,
    ) -> Option<FragmentRewrite> {
        let same = |a: Option<IpAddr>| a.is_none_or(|a| a.is_ipv4() == route_to.is_ipv4());
        (same(new_src) && same(new_dst)).then_some(FragmentRewrite {
            new_src,
            new_dst,
            route_to,
            routed,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    id: DatagramId,
    rewrite: FragmentRewrite,
    expires: Nanos,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FragmentTable {
    slots: Box<[Mutex<Option<Slot>>]>,
    hasher: ahash::RandomState,
}

impl Default for FragmentTable {
    fn default() -> Self {
        FragmentTable {
            slots: (0..FRAGMENT_SLOTS).map(|_| Mutex::new(None)).collect(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl FragmentTable {
    fn slot(&self, id: &DatagramId) -> std::sync::MutexGuard<'_, Option<Slot>> {
        #[allow(clippy::cast_possible_truncation)] // A hash: dropping high bits keeps it one.
        let i = (self.hasher.hash_one(id) as usize) % self.slots.len();
        // A poisoned slot holds a plain value; nothing can be half-updated.
        self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the translation of datagram `id` (its first fragment was just transmitted).
    pub fn remember(&self, id: DatagramId, rewrite: FragmentRewrite, now: Nanos) {
        *self.slot(&id) = Some(Slot {
            id,
            rewrite,
            expires: now.saturating_add(FRAGMENT_TIMEOUT),
        });
    }

    /// The translation of datagram `id`, if remembered and not expired.
    pub fn find(&self, id: &DatagramId, now: Nanos) -> Option<FragmentRewrite> {
        let slot = self.slot(id);
        match *slot {
            Some(s) if s.id == *id && s.expires > now => Some(s.rewrite),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> DatagramId {
        DatagramId::V4 {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            proto: Proto::Udp,
            id: n,
        }
    }

    fn id6(n: u32) -> DatagramId {
        DatagramId::V6 {
            src: "2001:2::2".parse().unwrap(),
            dst: "2001:2::100".parse().unwrap(),
            id: n,
        }
    }

    const RW: FragmentRewrite = FragmentRewrite {
        new_src: None,
        new_dst: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11))),
        route_to: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)),
        routed: true,
    };

    fn rw6() -> FragmentRewrite {
        let r1: IpAddr = "2001:2:1::11".parse().unwrap();
        FragmentRewrite::new(None, Some(r1), r1, true).unwrap()
    }

    #[test]
    fn remembered_until_the_timeout_and_only_for_its_own_datagram() {
        let t = FragmentTable::default();
        t.remember(id(7), RW, 0);
        assert_eq!(t.find(&id(7), FRAGMENT_TIMEOUT - 1), Some(RW));
        assert_eq!(t.find(&id(7), FRAGMENT_TIMEOUT), None);
        assert_eq!(t.find(&id(8), 1), None);
        let DatagramId::V4 {
            src, dst, id: n, ..
        } = id(7)
        else {
            unreachable!()
        };
        let other_proto = DatagramId::V4 {
            src,
            dst,
            proto: Proto::Tcp,
            id: n,
        };
        assert_eq!(t.find(&other_proto, 1), None);
    }

    #[test]
    fn ipv6_datagrams_by_source_destination_and_32_bit_identification() {
        let t = FragmentTable::default();
        t.remember(id6(0x8000_0007), rw6(), 0);
        assert_eq!(t.find(&id6(0x8000_0007), 1), Some(rw6()));
        // Not the 16 low bits only, nor another family's datagram with the same number.
        assert_eq!(t.find(&id6(7), 1), None);
        t.remember(id6(7), rw6(), 0);
        assert_eq!(t.find(&id(7), 1), None);
        let DatagramId::V6 { src, dst, id: n } = id6(7) else {
            unreachable!()
        };
        let reversed = DatagramId::V6 {
            src: dst,
            dst: src,
            id: n,
        };
        assert_eq!(t.find(&reversed, 1), None);
        assert_eq!(t.find(&id6(7), FRAGMENT_TIMEOUT), None);
    }

    #[test]
    fn identities_and_rewrites_keep_to_one_family() {
        let (a4, b4): (IpAddr, IpAddr) = (
            "198.18.0.2".parse().unwrap(),
            "198.18.0.100".parse().unwrap(),
        );
        let (a6, b6): (IpAddr, IpAddr) =
            ("2001:2::2".parse().unwrap(), "2001:2::100".parse().unwrap());
        assert_eq!(DatagramId::new(a4, b4, Proto::Udp, 7), Some(id(7)));
        assert_eq!(DatagramId::new(a4, b4, Proto::Udp, 0x1_0000), None);
        assert_eq!(DatagramId::new(a4, b6, Proto::Udp, 7), None);
        let d = DatagramId::new(a6, b6, Proto::Tcp, 0x8000_0007).unwrap();
        assert_eq!((d, d.src(), d.dst()), (id6(0x8000_0007), a6, b6));
        assert_eq!(FragmentRewrite::new(Some(a4), None, b6, true), None);
        assert_eq!(FragmentRewrite::new(None, Some(a6), b4, true), None);
        assert!(FragmentRewrite::new(Some(a6), None, b6, false).is_some());
    }

    #[test]
    fn bounded_a_flood_of_datagrams_only_replaces_slots() {
        let t = FragmentTable::default();
        for n in 0..=u16::MAX {
            t.remember(id(n), RW, 0);
            t.remember(id6(u32::from(n) << 16), rw6(), 0);
        }
        let found = (0..=u16::MAX)
            .filter(|n| {
                t.find(&id(*n), 1).is_some() || t.find(&id6(u32::from(*n) << 16), 1).is_some()
            })
            .count();
        assert!(found <= FRAGMENT_SLOTS, "{found}");
        assert!(
            found > FRAGMENT_SLOTS / 2,
            "{found}: most slots hold the newest datagram"
        );
    }
}
