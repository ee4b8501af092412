//! The worker's flow cache: an exact-match cache of established-flow lookup hits, one per
//! worker (as Open vSwitch's exact-match cache is one per datapath thread), so that a hot
//! flow's packet is decided without locking its connection-table shard.
//!
//! Invariants:
//! - A slot holds a hit of [`ConnTable::lookup_established_v4`] for its key and direction
//!   (direct-mapped by the key's table hash; a newer hit of another key replaces it).
//! - A cached hit is used only when [`ConnTable::still_established_v4`] says the table would
//!   give the same answer and change nothing: its shard's version unchanged since the hit (no
//!   entry of the shard created, removed or changed but for expiries), the packet leaving its
//!   state as it is, and its expiry already the one the packet would refresh it to (the same
//!   1 ms tick). So a flow takes the locked lookup at least once per tick, which writes its
//!   expiry; between those, its packets read one shared word (the version), write nothing
//!   shared, and decide exactly as the locked lookup would.
//! - A slot may also hold where its flow's frames leave (next-hop and port MACs, egress port)
//!   and which traffic slot counts them ([`CachedRoute`]), as the route step and the counters
//!   worked them out for its hit under the worker's *epoch* (its snapshot and next-hop table;
//!   the worker starts a new epoch whenever either changes). They stand for that hit in that
//!   epoch only: a new hit clears them, and another epoch's are not used.
//! - The cache is the worker's own (no lock, no atomics) and is never read by another thread.

use crate::conntrack::{Direction, EstablishedV4, V4Key};
use crate::datapath::counters::SlotPair;
use crate::datapath::nexthop::Mac;
use crate::datapath::PortId;

/// Slots of a worker's flow cache (a power of two): 4096 slots of 120 bytes (two cache lines),
/// 480 KiB per worker.
pub const FLOW_CACHE_SLOTS: usize = 4096;

/// See the module documentation.
pub(super) struct FlowCache {
    slots: Box<[Option<Cached>]>,
}

/// The slot that holds a key's hit ([`FlowCache::held`], [`FlowCache::put`]): it stands for
/// that key only until the cache next changes (the caller uses it within one frame's decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Held(usize);

/// One cached hit, the key and direction it is for, and its route once worked out.
#[derive(Clone, Copy)]
struct Cached {
    key: V4Key,
    dir: Direction,
    hit: EstablishedV4,
    route: Option<CachedRoute>,
}

/// Where a cached flow's frames leave, and the traffic slot that counts them, in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CachedRoute {
    pub epoch: u64,
    /// The Ethernet destination (the next hop's MAC) and source (the egress port's).
    pub dst: Mac,
    pub src: Mac,
    pub port: PortId,
    /// The service that counts the flow's frames: the original direction's, or the reply's as
    /// the reply step found it in this epoch (`None`: a reload removed it).
    pub service: Option<u32>,
    /// Where the worker's traffic block counts the flow's frames (its service's and its real
    /// server's slots), when the hit's real server has a slot in its service.
    pub counts: Option<SlotPair>,
}

impl CachedRoute {
    /// `service` as an index into the snapshot's services (a `u32` always fits a `usize` on
    /// the 32- and 64-bit targets xvs builds for).
    #[inline(always)]
    pub(super) fn service_index(&self) -> Option<usize> {
        self.service.and_then(|s| usize::try_from(s).ok())
    }
}

impl FlowCache {
    /// An empty cache of [`FLOW_CACHE_SLOTS`] slots (allocated here, once per worker).
    pub(super) fn new() -> FlowCache {
        FlowCache {
            slots: vec![None; FLOW_CACHE_SLOTS].into_boxed_slice(),
        }
    }

    /// The slot of a key whose table hash is `hash`, in direction `dir`: the two directions of
    /// a key's hash take neighbouring slots (a NAT connection's two keys may hash alike).
    #[inline(always)]
    fn at(&self, hash: u64, dir: Direction) -> usize {
        // Only the low bits choose the slot: the truncation on 32-bit targets keeps them.
        #[allow(clippy::cast_possible_truncation)]
        let h = (hash >> 32) as usize;
        (h ^ usize::from(dir == Direction::Reply)) & (self.slots.len() - 1)
    }

    /// The slot of `key` in direction `dir` (table hash `hash`), if it holds them.
    #[inline(always)]
    fn find(&self, hash: u64, dir: Direction, key: &V4Key) -> Option<&Cached> {
        let c = self.slots.get(self.at(hash, dir))?.as_ref()?;
        (c.key == *key && c.dir == dir).then_some(c)
    }

    /// The hit cached for `key` in direction `dir` (table hash `hash`), if any.
    #[inline(always)]
    pub(super) fn get(&self, hash: u64, dir: Direction, key: &V4Key) -> Option<&EstablishedV4> {
        self.find(hash, dir, key).map(|c| &c.hit)
    }

    /// The service of the route cached in `epoch` with the original-direction hit of `key`
    /// (table hash `hash`), if any: the service the snapshot of `epoch` gives the key.
    #[inline(always)]
    pub(super) fn cached_service(&self, hash: u64, key: &V4Key, epoch: u64) -> Option<usize> {
        let c = self.find(hash, Direction::Original, key)?;
        c.route.filter(|r| r.epoch == epoch)?.service_index()
    }

    /// The slot holding the hit for `key` in direction `dir` (table hash `hash`), if any.
    #[inline(always)]
    pub(super) fn held(&self, hash: u64, dir: Direction, key: &V4Key) -> Option<Held> {
        self.find(hash, dir, key).map(|_| Held(self.at(hash, dir)))
    }

    /// The hit in slot `held`.
    #[inline(always)]
    pub(super) fn hit(&self, held: Held) -> Option<&EstablishedV4> {
        Some(&self.slots.get(held.0)?.as_ref()?.hit)
    }

    /// The hit in slot `held` and the route cached with it if that was worked out in `epoch`.
    #[inline(always)]
    pub(super) fn entry(
        &self,
        held: Held,
        epoch: u64,
    ) -> Option<(&EstablishedV4, Option<&CachedRoute>)> {
        let c = self.slots.get(held.0)?.as_ref()?;
        Some((&c.hit, c.route.as_ref().filter(|r| r.epoch == epoch)))
    }

    /// Caches `hit` for `key` in direction `dir` (table hash `hash`), without a route; the slot
    /// that now holds it.
    #[inline(always)]
    pub(super) fn put(
        &mut self,
        hash: u64,
        dir: Direction,
        key: V4Key,
        hit: EstablishedV4,
    ) -> Option<Held> {
        let at = self.at(hash, dir);
        let slot = self.slots.get_mut(at)?;
        *slot = Some(Cached {
            key,
            dir,
            hit,
            route: None,
        });
        Some(Held(at))
    }

    /// Caches `route` with the hit in slot `held`, which must still hold `key` in direction
    /// `dir` (nothing written to the cache since `held` was found: checked in debug builds).
    #[inline(always)]
    pub(super) fn set_held_route(
        &mut self,
        held: Held,
        dir: Direction,
        key: &V4Key,
        route: CachedRoute,
    ) {
        if let Some(Some(c)) = self.slots.get_mut(held.0) {
            debug_assert!(c.key == *key && c.dir == dir, "a stale Held");
            c.route = Some(route);
        }
    }

    /// Empties the slot of table hash `hash` in direction `dir` (its hit no longer stands).
    #[inline(always)]
    pub(super) fn forget(&mut self, hash: u64, dir: Direction) {
        let at = self.at(hash, dir);
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;

    fn key(sport: u16) -> V4Key {
        V4Key {
            src: 0xc612_0002,
            dst: 0xc612_0064,
            sport,
            dport: 80,
            proto: Proto::Tcp,
        }
    }

    fn hit(real: u32) -> EstablishedV4 {
        EstablishedV4::for_test(real)
    }

    #[test]
    fn both_directions_of_one_hash_are_kept_and_each_slot_holds_its_own_key_only() {
        let mut c = FlowCache::new();
        let (k, h) = (key(40000), 0x1234_5678_0000_0000);
        c.put(h, Direction::Original, k, hit(1));
        c.put(h, Direction::Reply, k, hit(2));
        assert_eq!(c.get(h, Direction::Original, &k).map(|x| x.real), Some(1));
        assert_eq!(c.get(h, Direction::Reply, &k).map(|x| x.real), Some(2));
        assert!(
            c.get(h, Direction::Original, &key(40001)).is_none(),
            "another key"
        );
        c.put(h, Direction::Original, key(40001), hit(3));
        assert!(c.get(h, Direction::Original, &k).is_none(), "replaced");
        c.forget(h, Direction::Reply);
        assert!(c.get(h, Direction::Reply, &k).is_none(), "forgotten");
    }

    #[test]
    fn a_slot_takes_two_cache_lines_at_most() {
        let size = std::mem::size_of::<Option<Cached>>();
        println!("flow cache slot: {size} bytes");
        assert!(size <= 128, "{size} bytes");
    }

    #[test]
    fn a_route_stands_for_its_hit_in_its_epoch_only() {
        let mut c = FlowCache::new();
        let (k, h) = (key(40000), 77 << 32);
        let route = CachedRoute {
            epoch: 3,
            dst: [2, 0, 0, 0, 0, 1],
            src: [2, 0, 0, 0, 0, 2],
            port: 1,
            service: Some(0),
            counts: Some(SlotPair::for_test(0, 4)),
        };
        assert!(c.held(h, Direction::Original, &k).is_none(), "no hit yet");
        let held = c.put(h, Direction::Original, k, hit(1)).unwrap();
        assert_eq!(c.held(h, Direction::Original, &k), Some(held));
        c.set_held_route(held, Direction::Original, &k, route);
        assert_eq!(c.entry(held, 3).and_then(|e| e.1), Some(&route));
        assert_eq!(c.cached_service(h, &k, 3), Some(0));
        assert!(c.entry(held, 4).unwrap().1.is_none(), "another epoch");
        assert!(c.cached_service(h, &k, 4).is_none(), "another epoch");
        assert!(
            c.held(h, Direction::Reply, &k).is_none(),
            "another direction"
        );
        let held = c.put(h, Direction::Original, k, hit(1)).unwrap();
        assert!(c.entry(held, 3).unwrap().1.is_none(), "a new hit clears it");
        assert!(c.cached_service(h, &k, 3).is_none(), "a new hit clears it");
    }
}
