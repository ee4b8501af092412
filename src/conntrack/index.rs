//! The fixed-size open-addressing index of one connection-table shard.
//!
//! Invariants:
//! - The bucket array is allocated once ([`FlowIndex::with_capacity`]) and never grows: it has
//!   room for its key capacity at a load factor of at most [`MAX_LOAD`], so inserts always find
//!   an empty bucket.
//! - Linear probing from the key's home bucket (`fastrange` of the hash, any bucket count), and
//!   **backward-shift deletion**: removing a key moves the later keys of its probe run back, so
//!   there are no tombstones, probe runs never degrade with churn, and nothing ever rehashes.
//! - A bucket is 8 bytes: 32 bits of the key's hash (a tag that rejects almost every wrong
//!   bucket without touching the slab) and a 32-bit value, 0 meaning empty. The index does not
//!   store keys: the caller confirms a tag match against its own entry (`matches`).

use crate::sys::{huge_page_vecs, HugeAllocError, HugePageVec};

/// Highest fraction of buckets in use: [`LOAD_NUM`] / [`LOAD_DEN`].
pub const MAX_LOAD: f64 = 0.75;
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;
const _: () = assert!(LOAD_NUM as f64 / LOAD_DEN as f64 == MAX_LOAD);

#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Bucket {
    tag: u32,
    /// 0 = empty; any other value is the caller's.
    value: u32,
}

/// The home bucket of `hash` among `n` buckets: fastrange, which maps the low 32 bits onto
/// `0..n` without a modulo.
#[inline]
fn home_in(n: usize, hash: u64) -> usize {
    (((hash & 0xffff_ffff) * n as u64) >> 32) as usize
}

/// The address and length of an index's bucket array ([`FlowIndex::buckets_at`]), kept outside
/// the shard's lock so that a batch can prefetch a key's home bucket before it locks the shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct BucketsAt {
    addr: usize,
    len: usize,
}

impl BucketsAt {
    /// The address of the home bucket of `hash`: only ever prefetched, never dereferenced.
    #[inline]
    pub fn home_addr(&self, hash: u64) -> usize {
        let home = home_in(self.len, hash);
        self.addr
            .wrapping_add(home.wrapping_mul(std::mem::size_of::<Bucket>()))
    }
}

/// The empty bucket that ends a probe run ([`FlowIndex::find_or_vacant`]): valid for
/// [`FlowIndex::insert_two_at`] until the index next changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vacant {
    at: usize,
    /// No bucket of the run carried the hash's tag: no key of this hash is indexed.
    clean: bool,
}

impl Vacant {
    /// Whether no key of the scanned hash was in the run (not even one `matches` rejected).
    pub fn is_clean(&self) -> bool {
        self.clean
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct FlowIndex {
    /// Full to its capacity (every bucket is initialized, empty or not).
    buckets: HugePageVec<Bucket>,
    len: usize,
}

impl FlowIndex {
    /// An index for at most `keys` keys (tests; the table uses [`FlowIndex::try_many`]).
    #[cfg(test)]
    pub fn with_capacity(keys: usize) -> FlowIndex {
        Self::try_many(&[keys])
            .ok()
            .and_then(|mut v| v.pop())
            .expect("cannot allocate the flow index")
    }

    /// Indexes for at most `keys[i]` keys each, their buckets carved from one allocation (a
    /// table's shards: large enough for huge pages, see [`crate::sys::huge_page_vecs`]), or the
    /// allocation error instead of an abort.
    pub fn try_many(keys: &[usize]) -> Result<Vec<FlowIndex>, HugeAllocError> {
        let counts: Vec<usize> = keys.iter().map(|&k| Self::buckets_for(k)).collect();
        let mut all = huge_page_vecs::<Bucket>(&counts)?;
        for buckets in &mut all {
            // Fills the vector to its capacity (a push past it gives the bucket back).
            while buckets.push(Bucket::default()).is_ok() {}
        }
        Ok(all
            .into_iter()
            .map(|buckets| FlowIndex { buckets, len: 0 })
            .collect())
    }

    /// Buckets of an index for `keys` keys.
    fn buckets_for(keys: usize) -> usize {
        (keys.saturating_mul(LOAD_DEN).div_ceil(LOAD_NUM))
            .max(keys.saturating_add(1))
            .max(8)
    }

    /// What [`FlowIndex::allocated_bytes`] will be for an index of `keys` keys, without
    /// allocating it.
    pub fn bytes_for(keys: usize) -> usize {
        Self::buckets_for(keys).saturating_mul(std::mem::size_of::<Bucket>())
    }

    /// Bytes allocated for the buckets.
    pub fn allocated_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        home_in(self.buckets.len(), hash)
    }

    /// Where the bucket array is, for [`BucketsAt::home_addr`] (the array never moves: it is
    /// allocated once and never grows).
    pub fn buckets_at(&self) -> BucketsAt {
        BucketsAt {
            addr: self.buckets.as_ptr() as usize,
            len: self.buckets.len(),
        }
    }

    #[inline]
    fn tag(hash: u64) -> u32 {
        (hash >> 32) as u32
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        }
    }

    /// The value stored for the key with `hash` for which `matches(value)` holds.
    #[inline]
    pub fn find(&self, hash: u64, matches: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_or_vacant(hash, matches).ok()
    }

    /// The bucket of the key with `hash` for which `matches(value)` holds.
    fn position(&self, hash: u64, matches: impl FnMut(u32) -> bool) -> Option<usize> {
        self.scan(hash, matches).ok()
    }

    /// Adds `value` (non-zero) under `hash`. The caller makes sure the key is not present and
    /// that no more keys than the capacity are stored.
    #[inline]
    pub fn insert(&mut self, hash: u64, value: u32) {
        let home = self.home(hash);
        let i = self.empty_from(home);
        self.put(i, hash, value);
    }

    /// One scan of `hash`'s probe run for both questions an insert asks: the value there for
    /// which `matches` holds (`Ok`), or else the run's end, its first empty bucket (`Err`),
    /// where [`FlowIndex::insert_two_at`] puts new keys of this hash without scanning again.
    #[inline]
    pub fn find_or_vacant(
        &self,
        hash: u64,
        matches: impl FnMut(u32) -> bool,
    ) -> Result<u32, Vacant> {
        self.scan(hash, matches).map(|i| self.buckets[i].value)
    }

    /// The one probe loop: from `hash`'s home to the bucket holding the value for which
    /// `matches` holds (`Ok`, its position) or to the run's first empty bucket (`Err`).
    #[inline]
    fn scan(&self, hash: u64, mut matches: impl FnMut(u32) -> bool) -> Result<usize, Vacant> {
        let tag = Self::tag(hash);
        let mut i = self.home(hash);
        let mut clean = true;
        loop {
            let b = self.buckets[i];
            if b.value == 0 {
                return Err(Vacant { at: i, clean });
            }
            if b.tag == tag {
                clean = false;
                if matches(b.value) {
                    return Ok(i);
                }
            }
            i = self.next(i);
        }
    }

    /// Adds `first` and then `second` (non-zero, keys not present), both under `hash`, where
    /// [`FlowIndex::find_or_vacant`] found `hash`'s run to end, the index unchanged since: the
    /// same buckets as `insert(hash, first)` then `insert(hash, second)`, without scanning the
    /// run from its home twice more.
    #[inline]
    pub fn insert_two_at(&mut self, at: Vacant, hash: u64, (first, second): (u32, u32)) {
        debug_assert_eq!(at.at, self.empty_from(self.home(hash)), "a stale vacancy");
        self.put(at.at, hash, first);
        let i = self.empty_from(self.next(at.at));
        self.put(i, hash, second);
    }

    /// The first empty bucket from `i` on (the caller keeps at least one empty).
    #[inline]
    fn empty_from(&self, mut i: usize) -> usize {
        debug_assert!(self.len < self.buckets.len());
        while self.buckets[i].value != 0 {
            i = self.next(i);
        }
        i
    }

    /// Writes `value` (non-zero) under `hash` into the empty bucket `i`.
    #[inline]
    fn put(&mut self, i: usize, hash: u64, value: u32) {
        debug_assert!(value != 0 && self.buckets[i].value == 0);
        self.buckets[i] = Bucket {
            tag: Self::tag(hash),
            value,
        };
        self.len += 1;
    }

    /// Removes the key with `hash` for which `matches(value)` holds; returns whether it was
    /// there. `rehash(value)` must return the hash a stored value was inserted with (the backward
    /// shift needs the home bucket of the keys it moves).
    pub fn remove(
        &mut self,
        hash: u64,
        mut matches: impl FnMut(u32) -> bool,
        mut rehash: impl FnMut(u32) -> u64,
    ) -> bool {
        let Some(mut hole) = self.position(hash, &mut matches) else {
            return false;
        };
        let n = self.buckets.len();
        let mut j = self.next(hole);
        while self.buckets[j].value != 0 {
            let home = self.home(rehash(self.buckets[j].value));
            // Move j back into the hole unless its home lies cyclically in (hole, j].
            let dist_home = (j + n - home) % n;
            let dist_hole = (j + n - hole) % n;
            if dist_home >= dist_hole {
                self.buckets[hole] = self.buckets[j];
                hole = j;
            }
            j = self.next(j);
        }
        self.buckets[hole] = Bucket::default();
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately bad hash so that probe runs collide and wrap.
    fn h(k: u32) -> u64 {
        let home = u64::from(k % 5) * (u64::from(u32::MAX) / 12);
        (u64::from(k) << 32) | home
    }

    #[test]
    fn insert_find_remove_with_collisions_and_wraparound() {
        let mut ix = FlowIndex::with_capacity(9);
        for k in 1..=9 {
            ix.insert(h(k), k);
        }
        assert_eq!(ix.len(), 9);
        for k in 1..=9 {
            assert_eq!(ix.find(h(k), |v| v == k), Some(k), "key {k}");
        }
        assert_eq!(ix.find(h(10), |v| v == 10), None);
        // Remove in an order that exercises backward shifts across the wrap.
        for k in [1, 6, 3, 9, 2] {
            assert!(ix.remove(h(k), |v| v == k, h));
            assert!(!ix.remove(h(k), |v| v == k, h));
            for other in 1..=9 {
                let present = ![1, 6, 3, 9, 2]
                    [..=[1, 6, 3, 9, 2].iter().position(|x| *x == k).unwrap()]
                    .contains(&other);
                assert_eq!(
                    ix.find(h(other), |v| v == other).is_some(),
                    present,
                    "{other} after removing {k}"
                );
            }
        }
        assert_eq!(ix.len(), 4);
    }

    #[test]
    fn churn_keeps_every_key_findable() {
        // Pseudo-random churn at the capacity limit against a model.
        let cap = 1000;
        let mut ix = FlowIndex::with_capacity(cap);
        let mut model = std::collections::HashSet::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let hash = |k: u32| (u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(17);
        for _ in 0..200_000 {
            let k = (rnd() % 3000) as u32 + 1;
            if model.contains(&k) {
                assert!(ix.remove(hash(k), |v| v == k, hash));
                model.remove(&k);
            } else if model.len() < cap {
                ix.insert(hash(k), k);
                model.insert(k);
            }
        }
        assert_eq!(ix.len(), model.len());
        for k in 1..=3000u32 {
            assert_eq!(
                ix.find(hash(k), |v| v == k).is_some(),
                model.contains(&k),
                "{k}"
            );
        }
    }

    /// The buckets of `ix`, as (tag, value) pairs.
    fn layout(ix: &FlowIndex) -> Vec<(u32, u32)> {
        ix.buckets.iter().map(|b| (b.tag, b.value)).collect()
    }

    #[test]
    fn one_scan_and_two_puts_leave_the_buckets_two_inserts_leave() {
        // Pairs under one colliding hash (runs that collide and wrap), some keys removed
        // between, built twice: once with two `insert`s per pair, once with `find_or_vacant`
        // and `insert_two_at`. The layouts must be the same after every step.
        let (mut a, mut b) = (FlowIndex::with_capacity(16), FlowIndex::with_capacity(16));
        // Values 2k and 2k+1 share the hash of key k; even keys' home is the last bucket (their
        // runs wrap to the front).
        let h = |k: u32| match k % 2 {
            0 => (u64::from(k) << 32) | 0xffff_ffff,
            _ => h(k),
        };
        let hv = |v: u32| h(v / 2);
        for k in 1..=7u32 {
            let (first, second) = (2 * k, 2 * k + 1);
            a.insert(h(k), first);
            a.insert(h(k), second);
            let vacant = b.find_or_vacant(h(k), |v| v == first || v == second);
            let Err(at) = vacant else {
                panic!("pair {k} found before it was inserted");
            };
            b.insert_two_at(at, h(k), (first, second));
            assert_eq!(layout(&a), layout(&b), "after pair {k}");
            assert_eq!(b.find_or_vacant(h(k), |v| v == second), Ok(second));
            if k % 3 == 0 {
                // A hole in the middle of the runs: the next pair's vacancy must come after
                // the backward shift, as `insert`'s does.
                let gone = 2 * (k - 1);
                assert!(a.remove(h(k - 1), |v| v == gone, hv));
                assert!(b.remove(h(k - 1), |v| v == gone, hv));
                assert_eq!(layout(&a), layout(&b), "after removing {gone}");
            }
        }
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn size_follows_the_load_factor() {
        let ix = FlowIndex::with_capacity(3000);
        assert_eq!(ix.allocated_bytes(), 4000 * 8);
    }
}
