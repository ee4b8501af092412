//! IPv4 fragments: how the later fragments of a datagram follow its first one.
//!
//! Policy: the **first fragment** (offset 0, more-fragments set) carries the transport header, so
//! it is classified, scheduled and rewritten like any packet (its transport checksum, which
//! covers the whole datagram, is updated incrementally and stays right). When it is
//! transmitted, the translation of its IP header is remembered here under the datagram's
//! identity (source, destination, protocol, IP identification). A **later fragment** (offset >
//! 0) has no ports; it gets the same IP rewrite and next hop if its datagram is remembered, and
//! is otherwise dropped (`ipv4_fragment`: its first fragment was not seen, came later, or was
//! forgotten) — when it belongs to a virtual service or a real server; anything else is passed
//! to the kernel. xvs never reassembles.
//!
//! The table is a fixed direct-mapped cache of [`FRAGMENT_SLOTS`] slots (a newer datagram whose
//! identity hashes to a busy slot replaces the older one), each remembered for
//! [`FRAGMENT_TIMEOUT`]: bounded memory, O(1) work, one short lock per fragment.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use crate::flow::{Nanos, Proto};

/// Datagrams remembered at once.
pub const FRAGMENT_SLOTS: usize = 4096;
/// How long the translation of a datagram is kept after its first fragment (Linux's default
/// reassembly timeout, `ipfrag_time`).
pub const FRAGMENT_TIMEOUT: Nanos = 30 * crate::flow::NANOS_PER_SEC;

/// A datagram's identity, as every one of its fragments carries it (before translation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramId {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: Proto,
    pub id: u16,
}

/// The IP-level translation of a datagram's fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRewrite {
    /// Which address changes, and to what.
    pub new_src: Option<Ipv4Addr>,
    pub new_dst: Option<Ipv4Addr>,
    /// Where the fragments are routed (their destination after translation).
    pub route_to: Ipv4Addr,
    /// Whether xvs routes them (NAT: TTL decremented) or only changes their MACs (DR: TTL kept).
    pub routed: bool,
}

impl FragmentRewrite {
    /// The rewrite of addresses as the packet path holds them; `None` when one is not IPv4.
    pub fn new(
        new_src: Option<IpAddr>,
        new_dst: Option<IpAddr>,
        route_to: IpAddr,
        routed: bool,
    ) -> Option<FragmentRewrite> {
        fn v4(a: IpAddr) -> Option<Ipv4Addr> {
            match a {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            }
        }
        // Absent stays absent; present must be IPv4.
        let opt = |a: Option<IpAddr>| match a {
            None => Some(None),
            Some(a) => v4(a).map(Some),
        };
        Some(FragmentRewrite {
            new_src: opt(new_src)?,
            new_dst: opt(new_dst)?,
            route_to: v4(route_to)?,
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
        DatagramId {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            proto: Proto::Udp,
            id: n,
        }
    }

    const RW: FragmentRewrite = FragmentRewrite {
        new_src: None,
        new_dst: Some(Ipv4Addr::new(198, 18, 1, 11)),
        route_to: Ipv4Addr::new(198, 18, 1, 11),
        routed: true,
    };

    #[test]
    fn remembered_until_the_timeout_and_only_for_its_own_datagram() {
        let t = FragmentTable::default();
        t.remember(id(7), RW, 0);
        assert_eq!(t.find(&id(7), FRAGMENT_TIMEOUT - 1), Some(RW));
        assert_eq!(t.find(&id(7), FRAGMENT_TIMEOUT), None);
        assert_eq!(t.find(&id(8), 1), None);
        let other_proto = DatagramId {
            proto: Proto::Tcp,
            ..id(7)
        };
        assert_eq!(t.find(&other_proto, 1), None);
    }

    #[test]
    fn bounded_a_flood_of_datagrams_only_replaces_slots() {
        let t = FragmentTable::default();
        for n in 0..=u16::MAX {
            t.remember(id(n), RW, 0);
        }
        let found = (0..=u16::MAX)
            .filter(|n| t.find(&id(*n), 1).is_some())
            .count();
        assert!(found <= FRAGMENT_SLOTS, "{found}");
        assert!(
            found > FRAGMENT_SLOTS / 2,
            "{found}: most slots hold the newest datagram"
        );
    }
}
