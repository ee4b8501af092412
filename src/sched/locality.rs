//! What `lblc` and `lblcr` share: the bounded per-destination table and their overload rule.
//!
//! IPVS keeps one hash table per service (1024 buckets of lists, a soft limit of 16384 entries),
//! and a timer every minute collects entries idle for 6 minutes when the table is over its
//! limit, plus, every 30 minutes, entries idle for 24 hours (`lblc_expiration`,
//! `lblcr_expiration`). A table that grows and a timer do not belong on xvs's packet path, so:
//!
//! - The table is allocated whole when the scheduler is built: `DestinationTable` is
//!   set-associative, `2^set_bits` sets of `WAYS` (4) slots, a destination living in the set its
//!   address hashes to (the kernel's `hash_32` of the folded address, as IPVS's bucket choice).
//!   A lookup or an insertion touches one set: bounded work per pick, no allocation.
//! - Expiry is lazy: an entry idle for [`EXPIRATION`] (IPVS's default 24 h) is dropped when it
//!   is next looked up, which is what IPVS's full check achieves.
//! - Room: a new destination takes a free slot of its set, else the least recently used slot if
//!   that one has been idle for [`ENTRY_TIMEOUT`] (IPVS's 6 min, the age its collector needs
//!   before dropping an entry). When every slot of the set was used within the last 6 min, the
//!   new destination is served without being remembered, which is what IPVS does when its table
//!   is over its limit (`ip_vs_lblc_new` creates no entry).

use std::net::IpAddr;

use super::hash::{fold, hash_32};
use super::RealServer;
use crate::flow::{Nanos, NANOS_PER_SEC};

/// Slots per set.
pub(crate) const WAYS: usize = 4;
/// An entry idle this long may be replaced by a new destination (IPVS `ENTRY_TIMEOUT`, 6 min).
pub const ENTRY_TIMEOUT: Nanos = 6 * 60 * NANOS_PER_SEC;
/// An entry idle this long is dropped (IPVS's default `lblc_expiration` and
/// `lblcr_expiration`, 24 h). `lblcr` also drops the most loaded member of a set that has not
/// changed for this long.
pub const EXPIRATION: Nanos = 24 * 60 * 60 * NANOS_PER_SEC;

/// Time from `then` to `now`, 0 if the clock went backwards.
#[inline]
pub(crate) fn elapsed(now: Nanos, then: Nanos) -> Nanos {
    now.saturating_sub(then)
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    dst: IpAddr,
    last_use: Nanos,
    used: bool,
}

/// A fixed-capacity map from destination address to a slot number (`0..capacity()`); the
/// schedulers keep what they remember per destination in arrays indexed by slot.
#[derive(Debug)]
pub(crate) struct DestinationTable {
    slots: Box<[Slot]>,
    set_bits: u32,
}

impl DestinationTable {
    /// A table of `2^set_bits` sets (`set_bits` is clamped to 1..=16), [`WAYS`] slots each.
    pub(crate) fn new(set_bits: u32) -> DestinationTable {
        let set_bits = set_bits.clamp(1, 16);
        let free = Slot {
            dst: IpAddr::from([0u8; 4]),
            last_use: 0,
            used: false,
        };
        DestinationTable {
            slots: vec![free; WAYS << set_bits].into_boxed_slice(),
            set_bits,
        }
    }

    /// The number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slots of `dst`'s set.
    #[inline]
    fn set_of(&self, dst: IpAddr) -> std::ops::Range<usize> {
        let first = hash_32(fold(dst), self.set_bits) as usize * WAYS;
        first..first + WAYS
    }

    /// The slot of `dst` if it is remembered and was used less than [`EXPIRATION`] ago, marked
    /// used at `now`. An expired entry is dropped.
    #[inline]
    pub(crate) fn find(&mut self, dst: IpAddr, now: Nanos) -> Option<usize> {
        let range = self.set_of(dst);
        let base = range.start;
        let set = self.slots.get_mut(range)?;
        let way = set.iter().position(|s| s.used && s.dst == dst)?;
        let slot = &mut set[way];
        if elapsed(now, slot.last_use) >= EXPIRATION {
            slot.used = false;
            return None;
        }
        slot.last_use = now;
        Some(base + way)
    }

    /// A slot for `dst`, which [`find`](Self::find) just did not find, marked used at `now`: a
    /// free slot of its set, else its least recently used slot if idle for [`ENTRY_TIMEOUT`].
    /// `None` when every slot of the set was used more recently than that.
    pub(crate) fn insert(&mut self, dst: IpAddr, now: Nanos) -> Option<usize> {
        let range = self.set_of(dst);
        let base = range.start;
        let set = self.slots.get_mut(range)?;
        let way = match set.iter().position(|s| !s.used) {
            Some(free) => free,
            None => {
                let (lru, s) = set.iter().enumerate().min_by_key(|(_, s)| s.last_use)?;
                if elapsed(now, s.last_use) < ENTRY_TIMEOUT {
                    return None;
                }
                lru
            }
        };
        set[way] = Slot {
            dst,
            last_use: now,
            used: true,
        };
        Some(base + way)
    }

    /// The number of remembered destinations (expired ones included until looked up).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }
}

/// `lblc`/`lblcr`'s overload rule (IPVS's `is_overloaded` in both): server `i` has more active
/// connections than its weight, and some available server has fewer than half its weight.
/// Only then does a destination leave its server. IPVS accepts any server as the less loaded
/// one; here it must be available (a server that is down or quiescent could not take the
/// destination anyway).
pub(crate) fn is_overloaded(reals: &[RealServer], i: usize) -> bool {
    let Some(r) = reals.get(i) else {
        return true;
    };
    r.active_connections() > u64::from(r.weight)
        && reals
            .iter()
            .any(|d| d.is_available() && d.active_connections() * 2 < u64::from(d.weight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{loaded, reals};

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn find_after_insert_and_expiry_after_24h() {
        let mut t = DestinationTable::new(2);
        assert_eq!(t.capacity(), 16);
        assert_eq!(t.find(ip(1), 0), None);
        let s = t.insert(ip(1), 0).unwrap();
        assert_eq!(t.find(ip(1), 10), Some(s));
        assert_eq!(t.find(ip(1), 10 + EXPIRATION - 1), Some(s), "use refreshes");
        assert_eq!(t.find(ip(1), 10 + 2 * EXPIRATION - 1), None, "idle 24 h");
        assert_eq!(t.len(), 0, "dropped");
    }

    #[test]
    fn a_full_set_keeps_recent_entries_and_replaces_idle_ones() {
        let mut t = DestinationTable::new(1);
        // Destinations that share one set.
        let set = t.set_of(ip(0)).start;
        let same: Vec<IpAddr> = (0..100_000u32)
            .map(ip)
            .filter(|a| t.set_of(*a).start == set)
            .take(WAYS + 1)
            .collect();
        for (k, a) in same[..WAYS].iter().enumerate() {
            assert!(t.insert(*a, k as Nanos).is_some());
        }
        let late = same[WAYS];
        assert_eq!(
            t.insert(late, ENTRY_TIMEOUT - 1),
            None,
            "all used within 6 min"
        );
        // Keep all but the first in use; the first becomes idle for 6 min and gives way.
        for a in &same[1..WAYS] {
            t.find(*a, ENTRY_TIMEOUT);
        }
        let s = t.insert(late, ENTRY_TIMEOUT).unwrap();
        assert_eq!(t.find(late, ENTRY_TIMEOUT + 1), Some(s));
        assert_eq!(t.find(same[0], ENTRY_TIMEOUT + 1), None, "replaced");
        assert_eq!(t.len(), WAYS);
    }

    #[test]
    fn many_destinations_never_exceed_the_capacity() {
        let mut t = DestinationTable::new(3);
        for n in 0..10_000u32 {
            let now = Nanos::from(n) * ENTRY_TIMEOUT / 100;
            if t.find(ip(n), now).is_none() {
                t.insert(ip(n), now);
            }
            assert!(t.len() <= t.capacity());
        }
        assert_eq!(t.len(), t.capacity(), "idle entries were replaced");
    }

    #[test]
    fn overload_needs_active_above_weight_and_a_half_empty_server() {
        // 3 active on weight 2, another at 0 of 1: overloaded.
        assert!(is_overloaded(&loaded(&[(2, 3, 0), (1, 0, 0)]), 0));
        // Exactly at weight: not.
        assert!(!is_overloaded(&loaded(&[(2, 2, 0), (1, 0, 0)]), 0));
        // Nobody below half their weight: stay.
        assert!(!is_overloaded(&loaded(&[(2, 9, 0), (4, 2, 0)]), 0));
        assert!(is_overloaded(&loaded(&[(2, 9, 0), (4, 1, 0)]), 0));
        // The half-empty server must be available.
        let r = loaded(&[(2, 9, 0), (4, 0, 0)]);
        r[1].stats.set_up(false);
        assert!(!is_overloaded(&r, 0));
        assert!(is_overloaded(&reals(&[1]), 5), "out of range");
    }
}
