//! The sharded-table container shared by the connection table ([`super::ConnTable`]) and the
//! persistence templates ([`crate::sched::persist::PersistenceTable`]): an array of locked
//! shards, the placement of a key in one of them, the count of live entries, and the bounded
//! sweep that visits them in turn. What a shard holds (slab, index, expiry rule) is the owner's.
//!
//! Invariants:
//! - The number of shards is a power of two, fixed at construction. Each shard is a spin lock
//!   ([`ShardLock`]) on its own cache line ([`CachePadded`]), so workers locking neighbouring
//!   shards do not bounce one line between their cores.
//! - A key's shard is `hash(key) & (shards - 1)` under a hasher with **fixed** seeds chosen by
//!   the owner: placement depends on the key alone, the same on every run and every box (the
//!   FULLNAT port split and the golden tables rely on it).
//! - A shard's lock is held for one operation (one guard, one closure), never across a batch.
//!   A panic unwinding through a holder releases the shard, which is used as it is: every owner
//!   operation restores its shard's invariants before it returns, so a panic elsewhere leaves
//!   nothing half-done.
//! - Capacity is split exactly: shard `i` of `n` holds `capacity / n` entries, plus one for the
//!   first `capacity % n` shards ([`Sharded::capacities`]).
//! - The owner counts each shard's live entries in the shard, under its lock; a table's length
//!   is their sum ([`Sharded::sum`], one lock at a time), exact between operations. Nothing
//!   shared is written per insert or removal beyond the shard itself (a table-wide counter
//!   would be one more locked instruction per new connection, on a line every core writes).
//! - The sweep is bounded: one [`Sharded::sweep`] call locks one shard (the shards take turns),
//!   and the owner visits at most its budget of slots there, walking its slab with a [`Hand`]
//!   that resumes where the previous call stopped. No call ever walks a whole table.
//! - Each shard has a **version** ([`Sharded::version`]), on a cache line of its own, that
//!   changes whenever the shard may have changed: every [`ShardGuard`] bumps it when it is
//!   dropped, before the lock is released, unless its holder declared that it changed nothing
//!   that a reader of the version may have cached ([`ShardGuard::unchanged`]). A reader that
//!   saw version `v` under the lock and reads `v` again later without the lock knows that no
//!   guard that could have changed the shard was released in between (the datapath's flow
//!   cache, `datapath/process/flow_cache.rs`, relies on this; only the version is read
//!   without the lock).

use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam::utils::CachePadded;

/// A shard's lock: a spin lock whose release is a plain store (no locked instruction; a
/// `std::sync::Mutex` releases with an atomic swap, in case a waiter sleeps). A new connection
/// locks its shard twice (lookup, insert), so this is two fewer full barriers per SYN.
/// Waiters spin ([`SpinThenYield`]): a packet's hold is a lookup or an insert, well under a
/// microsecond.
type ShardLock<S> = spin::mutex::SpinMutex<S, SpinThenYield>;

/// How a waiter for a shard waits: a CPU pause per try, and every [`YIELD_EVERY`]th try the CPU
/// given up, because the holder may be a thread preempted on the waiter's own CPU (a control
/// thread where every CPU has a worker) or one holding the shard for a whole operation of the
/// control plane (`xvs ctl conns` reads a shard's whole slab under its lock; a real server's
/// removal visits a few thousand slots per hold).
#[derive(Debug)]
pub struct SpinThenYield;

/// Tries between two yields of a waiting thread (a pause is about 10–100 cycles, so a few
/// microseconds of spinning).
const YIELD_EVERY: u32 = 128;

thread_local! {
    /// This thread's tries since it last yielded while waiting for a shard.
    static TRIES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl spin::relax::RelaxStrategy for SpinThenYield {
    #[inline]
    fn relax() {
        let tries = TRIES.with(|t| {
            let n = t.get().wrapping_add(1) % YIELD_EVERY;
            t.set(n);
            n
        });
        match tries {
            0 => std::thread::yield_now(),
            _ => std::hint::spin_loop(),
        }
    }
}

/// Shards get at least this many entries each before a table is split further.
const ENTRIES_PER_SHARD: usize = 4096;

/// N locked shards of `S`, chosen by a fixed hash of a key. See the module documentation.
#[derive(Debug)]
pub struct Sharded<S> {
    shards: Box<[CachePadded<ShardLock<S>>]>,
    /// Each shard's version (see the module documentation), apart from the locks: a lock's line
    /// is written by every locker, a version's only when its shard changes.
    versions: Box<[CachePadded<AtomicU64>]>,
    /// Chooses the shard of a key (fixed seeds: placement only).
    placement: ahash::RandomState,
    capacity: usize,
    /// Which shard the next sweep step visits, on a cache line of its own (every batch writes
    /// it; the fields above are read on every lookup, by every worker, and must stay clean).
    next_sweep: CachePadded<AtomicUsize>,
}

impl<S> Sharded<S> {
    /// The number of shards for a table of `capacity` entries: one per 4096 entries, rounded up
    /// to a power of two, from 1 to `max` (a power of two).
    pub fn shards_for(capacity: usize, max: usize) -> usize {
        (capacity / ENTRIES_PER_SHARD)
            .clamp(1, max)
            .next_power_of_two()
            .min(max)
    }

    /// The capacity of each of `shards` shards of a table of `capacity` entries (they add up to
    /// `capacity`).
    pub fn capacities(capacity: usize, shards: usize) -> impl Iterator<Item = usize> {
        let shards = shards.max(1);
        let base = capacity / shards;
        let extra = capacity % shards;
        (0..shards).map(move |i| base + usize::from(i < extra))
    }

    /// A table of `capacity` entries in `shards` shards (a power of two), shard `i` made by
    /// `make(i, its capacity)`; `seeds` fix the placement hash. The first error of `make` is
    /// returned (nothing is kept).
    pub fn try_new<E>(
        capacity: usize,
        shards: usize,
        seeds: [u64; 4],
        mut make: impl FnMut(usize, usize) -> Result<S, E>,
    ) -> Result<Sharded<S>, E> {
        assert!(
            shards.is_power_of_two(),
            "shard count must be a power of two"
        );
        let shards = Self::capacities(capacity, shards)
            .enumerate()
            .map(|(i, c)| make(i, c).map(|s| CachePadded::new(ShardLock::new(s))))
            .collect::<Result<Box<[_]>, E>>()?;
        let versions = (0..shards.len())
            .map(|_| CachePadded::new(AtomicU64::new(0)))
            .collect();
        let [a, b, c, d] = seeds;
        Ok(Sharded {
            shards,
            versions,
            placement: ahash::RandomState::with_seeds(a, b, c, d),
            capacity,
            next_sweep: CachePadded::new(AtomicUsize::new(0)),
        })
    }

    /// Number of shards (a power of two).
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The capacity the table was built for (the sum of its shards').
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The shard of `key`.
    #[inline]
    pub fn index_of<K: Hash>(&self, key: &K) -> usize {
        // Only the low bits select the shard: the truncation on 32-bit targets keeps them.
        #[allow(clippy::cast_possible_truncation)]
        let h = self.placement.hash_one(key) as usize;
        h & (self.shards.len() - 1)
    }

    /// Locks shard `i` (taken modulo the number of shards).
    #[inline]
    pub fn lock(&self, i: usize) -> ShardGuard<'_, S> {
        let i = i & (self.shards.len() - 1);
        let guard = self.shards[i].lock();
        ShardGuard {
            version: &self.versions[i],
            changed: true,
            guard,
        }
    }

    /// Shard `i`'s version now (see the module documentation), read without its lock.
    #[inline]
    pub fn version(&self, i: usize) -> u64 {
        self.versions[i & (self.shards.len() - 1)].load(Ordering::Acquire)
    }

    /// Prefetches shard `i`'s lock (and the shard's first fields, on its line) for a write:
    /// a batch warms the shards of its frames before it locks them one frame at a time.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        let shard = &self.shards[i & (self.shards.len() - 1)];
        crate::sys::prefetch_write(std::ptr::from_ref(shard) as usize);
    }

    /// Locks the shard of `key`.
    #[inline]
    pub fn lock_for<K: Hash>(&self, key: &K) -> ShardGuard<'_, S> {
        self.lock(self.index_of(key))
    }

    /// One step of the bounded sweep: locks the next shard in turn and runs `visit` on it,
    /// which returns how many entries it removed and must change nothing else but its own
    /// position. A step that removed nothing leaves the
    /// shard's version as it is (every batch runs a step: the versions of quiet shards stay).
    pub fn sweep(&self, visit: impl FnOnce(&mut S) -> usize) -> usize {
        let i = self.next_sweep.fetch_add(1, Ordering::Relaxed);
        self.sweep_shard(i, visit)
    }

    /// [`Sharded::sweep`] of shard `turn` (taken modulo the number of shards) instead of the
    /// table's next in turn: for a caller that keeps its own turn (a worker, once per batch:
    /// the shared turn is a line every worker would write per batch).
    pub fn sweep_shard(&self, turn: usize, visit: impl FnOnce(&mut S) -> usize) -> usize {
        let mut shard = self.lock(turn);
        let removed = visit(&mut shard);
        if removed == 0 {
            shard.unchanged();
        }
        removed
    }

    /// The sum of `f` over the shards, locking one at a time.
    pub fn sum(&self, f: impl Fn(&S) -> usize) -> usize {
        let mut total = 0;
        self.for_each_read(|s| total += f(s));
        total
    }

    /// Runs `f` on every shard, locking one at a time, to read it only: the shards' versions
    /// stay as they are.
    pub fn for_each_read(&self, mut f: impl FnMut(&S)) {
        for i in 0..self.shards() {
            let mut shard = self.lock(i);
            shard.unchanged();
            f(&shard);
        }
    }
}

/// A locked shard (see [`Sharded::lock`]): derefs to it, releases the lock when dropped, and
/// bumps the shard's version first unless [`ShardGuard::unchanged`] was called.
pub struct ShardGuard<'a, S> {
    version: &'a AtomicU64,
    changed: bool,
    guard: spin::mutex::SpinMutexGuard<'a, S, SpinThenYield>,
}

impl<S> ShardGuard<'_, S> {
    /// The holder changed nothing a reader of the version may have cached: the guard leaves the
    /// version as it is. (A holder that changes something after this call must not have made
    /// it.)
    #[inline]
    pub fn unchanged(&mut self) {
        self.changed = false;
    }

    /// The shard's version, stable while the lock is held.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

impl<S> Deref for ShardGuard<'_, S> {
    type Target = S;

    #[inline]
    fn deref(&self) -> &S {
        &self.guard
    }
}

impl<S> DerefMut for ShardGuard<'_, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut S {
        &mut self.guard
    }
}

impl<S> Drop for ShardGuard<'_, S> {
    /// Bumps the version (a plain load and store: only the lock's holder writes it) before the
    /// lock is released (`guard` drops after this).
    #[inline]
    fn drop(&mut self) {
        if self.changed {
            let v = self.version.load(Ordering::Relaxed);
            self.version.store(v.wrapping_add(1), Ordering::Release);
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for ShardGuard<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardGuard")
            .field("changed", &self.changed)
            .field("shard", &*self.guard)
            .finish()
    }
}

/// A clock hand over the slots of a shard's slab, for a sweep that visits a bounded number of
/// slots per call and resumes where it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hand {
    /// The slot visited last.
    at: usize,
}

impl Hand {
    /// The next `budget` slots (at most `n`) of a slab of `n` slots, from the one after the
    /// last visited, wrapping; the hand moves past them. A slab never shrinks, so the hand is
    /// always below `n` once `n` is non-zero.
    #[inline]
    pub fn advance(&mut self, n: usize, budget: usize) -> impl Iterator<Item = usize> {
        let k = budget.min(n);
        let start = self.at;
        if n > 0 {
            self.at = (start + k) % n;
        }
        (1..=k).map(move |i| (start + i) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    const SEEDS: [u64; 4] = [1, 2, 3, 4];

    fn table(capacity: usize, shards: usize) -> Sharded<Vec<u32>> {
        Sharded::try_new(capacity, shards, SEEDS, |_, c| {
            Ok::<_, Infallible>(Vec::with_capacity(c))
        })
        .unwrap()
    }

    #[test]
    fn shard_count_grows_with_capacity_up_to_the_cap() {
        assert_eq!(Sharded::<()>::shards_for(0, 64), 1);
        assert_eq!(Sharded::<()>::shards_for(8191, 64), 1);
        assert_eq!(Sharded::<()>::shards_for(3 * 4096, 64), 4);
        assert_eq!(Sharded::<()>::shards_for(10_000_000, 64), 64);
        assert_eq!(Sharded::<()>::shards_for(10_000_000, 16), 16);
    }

    #[test]
    fn capacity_is_split_exactly() {
        let c: Vec<usize> = Sharded::<()>::capacities(10, 4).collect();
        assert_eq!(c, [3, 3, 2, 2]);
        let t = table(1_000_003, 16);
        assert_eq!(t.sum(Vec::capacity), 1_000_003);
        assert_eq!(t.capacity(), 1_000_003);
    }

    #[test]
    fn placement_is_fixed_by_the_seeds_and_spread() {
        let a = table(1 << 16, 16);
        let b = table(1 << 16, 16);
        let mut per_shard = [0usize; 16];
        for k in 0..16_000u32 {
            let i = a.index_of(&(k, 80u16));
            assert_eq!(i, b.index_of(&(k, 80u16)), "same seeds, same shard");
            per_shard[i] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 800), "{per_shard:?}");
        let other =
            Sharded::try_new(1 << 16, 16, [5, 6, 7, 8], |_, _| Ok::<_, Infallible>(())).unwrap();
        assert!((0..100u32).any(|k| other.index_of(&k) != a.index_of(&k)));
    }

    #[test]
    fn a_callers_own_turn_sweeps_that_shard_and_leaves_the_tables_turn() {
        let t = table(100, 4);
        for i in 0..4 {
            t.lock(i).push(u32::try_from(i).unwrap());
        }
        // Turn 6 is shard 2 of 4; the table's own turn still starts at shard 0.
        assert_eq!(t.sweep_shard(6, |s| s.drain(..).count()), 1);
        assert_eq!(*t.lock(2), [] as [u32; 0]);
        let mut next = Vec::new();
        t.sweep(|s| {
            next.extend(s.iter().copied());
            0
        });
        assert_eq!(next, [0]);
    }

    #[test]
    fn a_shard_version_moves_with_every_guard_but_an_unchanged_one() {
        let t = table(100, 4);
        let before: Vec<u64> = (0..4).map(|i| t.version(i)).collect();
        t.lock(1).push(7);
        assert_eq!(
            t.version(1),
            before[1] + 1,
            "a guard that may have changed the shard"
        );
        {
            let mut g = t.lock(2);
            assert_eq!(g.version(), before[2]);
            g.unchanged();
        }
        assert_eq!(t.version(2), before[2], "an unchanged guard leaves it");
        assert_eq!(t.sum(Vec::len), 1);
        t.sweep(|_| 0);
        assert_eq!(t.version(0), before[0], "a sweep step that removed nothing");
        t.sweep(|s| s.len());
        assert_eq!(
            t.version(1),
            before[1] + 2,
            "a sweep step that removed something"
        );
        for i in 0..4 {
            drop(t.lock(i));
        }
        assert_eq!(t.version(0), before[0] + 1, "a plain guard");
        assert_eq!(
            t.version(2),
            before[2] + 1,
            "sum leaves them, a plain guard does not"
        );
        t.for_each_read(|_| {});
        assert_eq!(t.version(2), before[2] + 1, "for_each_read leaves them");
        assert_eq!(t.version(5), t.version(1), "taken modulo the shard count");
        assert_eq!(t.version(1), before[1] + 3);
    }

    #[test]
    fn a_failed_shard_fails_the_table() {
        let r = Sharded::try_new(100, 4, SEEDS, |i, _| if i == 2 { Err(i) } else { Ok(()) });
        assert_eq!(r.err(), Some(2));
    }

    #[test]
    fn sweep_takes_the_shards_in_turn_and_returns_the_removals() {
        let t = table(64, 4);
        for i in 0..4 {
            t.lock(i).push(u32::try_from(i).unwrap());
        }
        let mut seen = Vec::new();
        let mut removed = 0;
        for _ in 0..8 {
            removed += t.sweep(|s| {
                seen.push(s.first().copied());
                s.drain(..).count()
            });
        }
        assert_eq!(seen[..4], [Some(0), Some(1), Some(2), Some(3)]);
        assert!(seen[4..].iter().all(Option::is_none));
        assert_eq!((removed, t.sum(Vec::len)), (4, 0));
    }

    #[test]
    fn a_shard_is_held_by_one_thread_at_a_time_and_a_waiter_outlasts_a_long_hold() {
        let t = table(16, 2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        let mut shard = t.lock(1);
                        // A read and a write apart: a second holder would lose increments.
                        let n = u32::try_from(shard.len()).unwrap();
                        shard.push(n);
                    }
                });
            }
            // A long hold (as `xvs ctl conns` makes) while the two above wait.
            let held = t.lock(1);
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(held);
        });
        let shard = t.lock(1);
        assert_eq!(shard.len(), 40_000);
        let in_order = (shard.iter().enumerate()).all(|(i, &n)| u32::try_from(i) == Ok(n));
        assert!(in_order, "an increment was lost");
    }

    #[test]
    fn a_shard_a_panic_unwound_through_stays_usable() {
        let t = table(16, 1);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = t.lock(0);
            panic!("poison");
        }));
        t.lock(0).push(7);
        assert_eq!(*t.lock(0), [7]);
    }

    #[test]
    fn hand_visits_every_slot_once_per_lap_in_bounded_steps() {
        let mut h = Hand::default();
        let mut seen: Vec<usize> = Vec::new();
        for _ in 0..4 {
            let step: Vec<usize> = h.advance(10, 3).collect();
            assert!(step.len() <= 3);
            seen.extend(step);
        }
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]);
        assert_eq!(h.advance(0, 5).count(), 0, "an empty slab has no slot");
        assert_eq!(h.advance(4, 100).count(), 4, "at most one lap per call");
        // The slab grew: the hand goes on from where it was.
        let next: Vec<usize> = h.advance(20, 2).collect();
        assert_eq!(next, [3, 4]);
    }
}
