//! Maglev hashing (`mh`), as IPVS's `ip_vs_mh`, with its flags `mh-port` and `mh-fallback`.
//!
//! Consistent hashing of the client's address to a real server through a lookup table of `M`
//! entries, `M` a prime (`mh_table_size`, default [`DEFAULT_TABLE_SIZE`] = 65537; IPVS's is 4093
//! by default, chosen at kernel build time). The algorithm is section 3.4 of the Maglev paper
//! (Eisenbud et al., NSDI 2016):
//!
//! - **Permutations**: each real server `i` with weight > 0 gets `offset_i = h1(i) mod M` and
//!   `skip_i = h2(i) mod (M - 1) + 1` from two independent hashes of its address and port; its
//!   preference list is `offset_i, offset_i + skip_i, offset_i + 2 skip_i, ... (mod M)`, which
//!   visits every entry once because `M` is prime.
//! - **Population**: servers take turns; on its turn a server takes the first entry of its
//!   preference list that is still free. Servers with weight 0 get no entry (IPVS: no turns).
//! - **Weights** (IPVS: "turns", the weight divided by the gcd of all weights): a server's turns
//!   come at the rate of its weight. IPVS gives each server all of its turns back to back in
//!   every round and shifts the turns right until the largest fits 6 bits, which loses weight
//!   precision (weights 100 and 1 become 50 and 1) and, when the turns of one round add up to
//!   more than `M`, fills the whole table before the last servers' turn. xvs interleaves the
//!   turns in weighted-fair order instead: server `i`'s `k`-th turn (`k` = 0, 1, ...) comes at
//!   virtual time `k / turns_i`, ties to the server first in the list. So every server with a
//!   positive weight gets at least one entry, and its count is off its share
//!   `M * weight_i / W` (`W` the sum of the weights) by less than one entry or
//!   `N * weight_i / W` entries, whichever is more (`N` servers): under 1% of every share of
//!   100 entries or more when `M` is at least 100 times `N`, as the Maglev paper recommends.
//! - **Lookup**: entry `h(src, sport) mod M`, the source port hashed only with `mh-port` (0
//!   otherwise).
//! - **Unavailable server** (weight 0, down or over its upper threshold:
//!   [`RealServer::is_available`]): without `mh-fallback`, no server (`None`, as IPVS). With
//!   `mh-fallback`, as IPVS: the entries `h(src, sport, offset) mod M` for `offset = h0,
//!   h0 + 1, ... (mod M)` (`h0` the first entry) are tried in turn, up to `M` of them, and the first
//!   available server is taken. The retries hash the key afresh, so an unavailable server's
//!   clients spread over the others in proportion to their entries; `None` when no server is
//!   available (checked first, so that case costs one pass over the servers, not `M` probes).
//!
//! What changes the table: adding or removing a server, or changing a weight (a new table is
//! built by the control plane and swapped in whole with the snapshot). Consistency: removing
//! one of `N` servers moves its own clients and, in Maglev's population, only a small fraction
//! of the others' (the tests hold it under 2% of the table for 10 servers and the default size).
//!
//! Departures from IPVS besides the weight interleaving above:
//! - A server whose weight becomes 0 leaves the table here; IPVS keeps it in the table with
//!   its last non-zero weight (`last_weight`) so that its clients get no server (or fall back)
//!   instead of moving. xvs builds each table from the configuration alone.
//! - The hashes are xvs's own fixed 64-bit mix (IPVS: `hsiphash` with two fixed keys), over the
//!   whole address (IPVS folds IPv6 to 32 bits first). Tables are identical across runs and
//!   boxes for the same configuration, as in IPVS, but not equal to IPVS's.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::hash::{gcd, hash_endpoint};
use super::table::{LookupTable, TableLookup};
use super::{RealServer, SchedFlags};
use crate::flow::FlowKey;

/// The default number of lookup-table entries (`mh_table_size`): a prime, 65537 = 2^16 + 1.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// The smallest `mh_table_size` accepted (the smallest of IPVS's choices).
pub const MIN_TABLE_SIZE: u32 = 251;
/// The largest `mh_table_size` accepted (a prime; 4 MB of table).
pub const MAX_TABLE_SIZE: u32 = 1_000_003;

/// Seeds of the three hashes: server offsets, server skips, and client lookups.
const SEED_OFFSET: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_SKIP: u64 = 0xc2b2_ae3d_27d4_eb4f;
const SEED_LOOKUP: u64 = 0x1656_67b1_9e37_79f9;

/// `h mod m`, as a `u32`.
#[inline]
// The remainder is below `m`, a `u32`: the cast keeps every bit.
#[allow(clippy::cast_possible_truncation)]
fn reduce(h: u64, m: u32) -> u32 {
    (h % u64::from(m)) as u32
}

/// Whether `n` is prime (trial division; `n` is at most a few million here).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime of at least `n` (for a size that is not prime, used only when a caller
/// bypasses config validation; `n` is at most [`MAX_TABLE_SIZE`] there).
fn prime_at_least(n: u32) -> u32 {
    (n.max(2)..=u32::MAX).find(|&p| is_prime(p)).unwrap_or(n)
}

/// The Maglev lookup table of one service, with its flags.
///
/// Invariants: `entries` is empty (no server with weight > 0) or has exactly `size` entries,
/// each the index of a server with weight > 0 in the list it was built for; `size` is prime.
#[derive(Debug)]
pub struct MaglevTable {
    entries: Box<[u32]>,
    size: u32,
    servers: usize,
    flags: SchedFlags,
}

/// One pending turn of the population: server `server`'s turn number `k`, due at virtual time
/// `k / turns`. Ordered by due time, then by server index (the list order breaks ties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Turn {
    k: u64,
    turns: u64,
    server: u32,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.k) * u128::from(other.turns))
            .cmp(&(u128::from(other.k) * u128::from(self.turns)))
            .then(self.server.cmp(&other.server))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl MaglevTable {
    /// Builds the table of `size` entries for `reals` (see the module documentation). `size`
    /// must be a prime of at most [`MAX_TABLE_SIZE`] (config validation guarantees it); another
    /// value is capped at that and raised to the next prime, so the permutations stay
    /// complete. Cost: `O(M log N)` plus the probes of the population (about `M ln M` steps in
    /// total).
    pub fn build(reals: &[RealServer], size: u32, flags: SchedFlags) -> MaglevTable {
        let size = size.clamp(2, MAX_TABLE_SIZE);
        let size = if is_prime(size) {
            size
        } else {
            prime_at_least(size)
        };
        let m = size;
        let g = reals
            .iter()
            .map(|r| u64::from(r.weight))
            .fold(0, gcd)
            .max(1);
        // Per server: next entry of its preference list, and its skip.
        // Entries below `m` and skips below `m`, so `entry + skip` < 2m fits a `u32`.
        let mut next = vec![0u32; reals.len()];
        let mut skip = vec![0u32; reals.len()];
        let mut due = BinaryHeap::with_capacity(reals.len());
        for (server, r) in (0u32..).zip(reals) {
            if r.weight == 0 {
                continue;
            }
            let (ip, port) = (r.addr.ip(), r.addr.port());
            next[server as usize] = reduce(hash_endpoint(SEED_OFFSET, ip, port, 0), m);
            skip[server as usize] = reduce(hash_endpoint(SEED_SKIP, ip, port, 0), m - 1) + 1;
            due.push(Reverse(Turn {
                k: 0,
                turns: u64::from(r.weight) / g,
                server,
            }));
        }
        if due.is_empty() {
            return MaglevTable {
                entries: Box::new([]),
                size,
                servers: reals.len(),
                flags,
            };
        }
        const FREE: u32 = u32::MAX;
        let mut entries = vec![FREE; size as usize];
        let mut filled = 0u32;
        while filled < m {
            let Some(Reverse(turn)) = due.pop() else {
                break;
            };
            let i = turn.server as usize;
            // The preference list visits every entry and at least one is free: this ends.
            let mut c = next[i];
            while entries[c as usize] != FREE {
                c += skip[i];
                if c >= m {
                    c -= m;
                }
            }
            entries[c as usize] = turn.server;
            filled += 1;
            next[i] = c;
            due.push(Reverse(Turn {
                k: turn.k + 1,
                ..turn
            }));
        }
        MaglevTable {
            entries: entries.into_boxed_slice(),
            size,
            servers: reals.len(),
            flags,
        }
    }

    /// The number of entries `M` (a prime).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The number of filled entries: `M`, or 0 when no server has weight > 0.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is filled (no server with weight > 0).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the table was built for a list of `n` servers.
    pub fn fits(&self, n: usize) -> bool {
        self.servers == n
    }

    /// How many entries each of the servers the table was built for holds.
    pub fn entries_per_server(&self) -> Vec<usize> {
        let mut c = vec![0; self.servers];
        for &s in self.entries.iter() {
            if let Some(n) = c.get_mut(s as usize) {
                *n += 1;
            }
        }
        c
    }

    /// The server of entry `e`, if any.
    #[inline]
    fn entry(&self, e: u32) -> Option<usize> {
        self.entries.get(e as usize).map(|&s| s as usize)
    }

    /// The hashed port of `key`: its source port with `mh-port`, else 0.
    #[inline]
    fn port(&self, key: &FlowKey) -> u16 {
        if self.flags.hash_port {
            key.sport
        } else {
            0
        }
    }
}

impl LookupTable for MaglevTable {
    /// Entry `h(src, sport) mod M`, the port only with `mh-port`.
    #[inline]
    fn home(&self, key: &FlowKey) -> u32 {
        reduce(
            hash_endpoint(SEED_LOOKUP, key.src, self.port(key), 0),
            self.size,
        )
    }

    #[inline]
    fn server(&self, pos: u32) -> Option<usize> {
        self.entry(pos)
    }

    /// With `mh-fallback`: up to `M` probes.
    #[inline]
    fn fallback_probes(&self) -> Option<u32> {
        self.flags.fallback.then_some(self.size)
    }

    /// Entry `h(src, sport, (home + n) mod M) mod M`: the key hashed afresh with the offset.
    #[inline]
    fn probe(&self, key: &FlowKey, home: u32, n: u32) -> Option<usize> {
        let offset = home.wrapping_add(n) % self.size;
        let h = hash_endpoint(SEED_LOOKUP, key.src, self.port(key), offset);
        self.entry(reduce(h, self.size))
    }
}

/// The `mh` scheduler: the table-lookup scheduler over a shared [`MaglevTable`].
pub type MaglevHashing = TableLookup<MaglevTable>;

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, histogram, reals};
    use crate::sched::Scheduler;
    use std::net::SocketAddr;
    use std::sync::Arc;

    const NO_FLAGS: SchedFlags = SchedFlags {
        hash_port: false,
        fallback: false,
    };
    const FALLBACK: SchedFlags = SchedFlags {
        hash_port: false,
        fallback: true,
    };
    const VIP: u32 = 0xC612_0064;
    const CLIENTS: std::ops::Range<u32> = 0x0A00_0000..0x0A00_0000 + 100_000;

    fn table(r: &[RealServer]) -> MaglevTable {
        MaglevTable::build(r, DEFAULT_TABLE_SIZE, NO_FLAGS)
    }

    /// Servers `198.18.x.y:80` for the indices in `ids`, weights `weight(id)`: the same id is
    /// the same server in two lists.
    fn servers(
        ids: impl IntoIterator<Item = usize>,
        weight: impl Fn(usize) -> u32,
    ) -> Vec<RealServer> {
        ids.into_iter()
            .map(|i| {
                RealServer::new(
                    SocketAddr::from(([198, 18, (1 + i / 250) as u8, (i % 250) as u8], 80)),
                    weight(i),
                )
            })
            .collect()
    }

    /// Entry by entry, the server address of each table.
    fn addrs(t: &MaglevTable, r: &[RealServer]) -> Vec<SocketAddr> {
        t.entries.iter().map(|&i| r[i as usize].addr).collect()
    }

    #[test]
    fn primes_and_default_size() {
        assert!(is_prime(DEFAULT_TABLE_SIZE));
        assert!(is_prime(MIN_TABLE_SIZE));
        assert!(is_prime(MAX_TABLE_SIZE));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(0) && !is_prime(9));
        assert!(is_prime(2) && is_prime(4093));
        let t = table(&reals(&[1, 1]));
        assert_eq!(t.size(), 65537);
        assert_eq!(t.entries.len(), 65537);
        // A size that is not prime is raised to the next prime.
        let t = MaglevTable::build(&reals(&[1]), 1000, NO_FLAGS);
        assert_eq!(t.size(), 1009);
    }

    #[test]
    fn equal_weights_split_the_table_evenly() {
        let r = servers(0..10, |_| 1);
        let c = table(&r).entries_per_server();
        assert!(c.iter().all(|&n| n == 6553 || n == 6554), "{c:?}");
    }

    /// Asserts the documented bound on each server's entries: off its share `M * w / W` by less
    /// than `max(1, N * w / W)` entries, and by at most 1% of a share of 100 entries or more
    /// when `M >= 100 N`.
    #[track_caller]
    fn assert_entries_match_weights(weights: &[u32]) {
        let r = servers(0..weights.len(), |i| weights[i]);
        let c = table(&r).entries_per_server();
        let m = f64::from(DEFAULT_TABLE_SIZE);
        let n = weights.iter().filter(|&&w| w > 0).count() as f64;
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 {
                assert_eq!(c[i], 0, "weight 0 gets no entry");
                continue;
            }
            let share = m * f64::from(w) / total;
            let off = (c[i] as f64 - share).abs();
            let bound = (n * f64::from(w) / total).max(1.0);
            assert!(
                c[i] > 0 && off < bound,
                "{weights:?}: server {i} has {}, share {share}",
                c[i]
            );
            if m >= 100.0 * n && share >= 100.0 {
                assert!(
                    off <= share * 0.01,
                    "{weights:?}: server {i}: {} vs {share}",
                    c[i]
                );
            }
        }
    }

    #[test]
    fn entries_per_server_match_weights_within_one_percent() {
        assert_entries_match_weights(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_entries_match_weights(&[100, 1, 1, 1, 1]);
        assert_entries_match_weights(&[65535, 1000, 1, 7, 3]);
        assert_entries_match_weights(&[4, 4, 8, 0, 12]);
        let varied: Vec<u32> = (0..100).map(|i| 1 + (i * 7919 % 13)).collect();
        assert_entries_match_weights(&varied);
    }

    #[test]
    fn entries_match_weights_for_1000_servers() {
        // 65 entries per server on average: the bound, not 1%, is what holds here.
        let weights: Vec<u32> = (0..1000).map(|i| 1 + (i % 8)).collect();
        assert_entries_match_weights(&weights);
    }

    /// Fraction of the table whose server (by address) differs between `a` and `b`, among the
    /// entries whose server in `a` is still in `b`'s list (resp. was in `a`'s, for additions).
    fn moved(
        a: &[SocketAddr],
        b: &[SocketAddr],
        counted: impl Fn(&SocketAddr, &SocketAddr) -> bool,
    ) -> f64 {
        let moved = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x != y && counted(x, y))
            .count();
        moved as f64 / a.len() as f64
    }

    #[test]
    fn removing_one_server_moves_only_its_entries_and_few_others() {
        for (n, varied) in [(10usize, false), (10, true), (20, true), (100, true)] {
            let w = move |i: usize| if varied { 1 + (i % 5) as u32 } else { 1 };
            let all = servers(0..n, w);
            let before = addrs(&table(&all), &all);
            for gone in [0, n / 2, n - 1] {
                let rest = servers((0..n).filter(|&i| i != gone), w);
                let after = addrs(&table(&rest), &rest);
                let gone_addr = all[gone].addr;
                // Every entry of the removed server moved (it is gone)...
                assert!(after.iter().all(|a| *a != gone_addr));
                // ...and entries of the others moved in at most 2% of the table.
                let others_moved = moved(&before, &after, |x, _| *x != gone_addr);
                assert!(
                    others_moved <= 0.02,
                    "{n} servers, removing {gone}: {:.3}% of the others' entries moved",
                    others_moved * 100.0
                );
            }
        }
    }

    #[test]
    fn adding_one_server_takes_its_share_and_moves_few_others() {
        for n in [10usize, 20, 100] {
            let old = servers(0..n, |_| 1);
            let new = servers(0..=n, |_| 1);
            let before = addrs(&table(&old), &old);
            let after = addrs(&table(&new), &new);
            let added = new[n].addr;
            // Entries that moved to someone other than the new server.
            let others_moved = moved(&before, &after, |_, y| *y != added);
            assert!(
                others_moved <= 0.02,
                "{n} servers + 1: {:.3}% moved between old servers",
                others_moved * 100.0
            );
            let got = after.iter().filter(|a| **a == added).count() as f64;
            let share = f64::from(DEFAULT_TABLE_SIZE) / (n + 1) as f64;
            assert!((got - share).abs() <= share * 0.01, "{got} vs {share}");
        }
    }

    #[test]
    fn removal_moves_only_that_servers_clients_in_lookups() {
        let all = servers(0..10, |_| 1);
        let rest = servers((0..10).filter(|&i| i != 3), |_| 1);
        let mut a = MaglevHashing::new(Arc::new(table(&all)));
        let mut b = MaglevHashing::new(Arc::new(table(&rest)));
        let (mut others, mut others_moved) = (0, 0);
        for c in CLIENTS {
            let before = all[a.pick(0, &flow(c, 1024, VIP), &all).unwrap()].addr;
            let after = rest[b.pick(0, &flow(c, 1024, VIP), &rest).unwrap()].addr;
            if before != all[3].addr {
                others += 1;
                others_moved += usize::from(before != after);
            }
        }
        assert!(
            others_moved as f64 / others as f64 <= 0.02,
            "{others_moved} of {others}"
        );
    }

    #[test]
    fn same_client_same_server_and_even_spread() {
        let r = servers(0..10, |_| 1);
        let mut s = MaglevHashing::new(Arc::new(table(&r)));
        let h = histogram(CLIENTS.map(|c| s.pick(0, &flow(c, 1024, VIP), &r)), 10);
        let expect = CLIENTS.len() as f64 / 10.0;
        let chi2: f64 = h
            .iter()
            .map(|&o| (o as f64 - expect).powi(2) / expect)
            .sum();
        // 9 degrees of freedom: the 99.9% quantile is 27.9.
        assert!(chi2 < 27.9, "chi2 {chi2}: {h:?}");
        for c in CLIENTS.step_by(1001) {
            let p = s.pick(0, &flow(c, 1024, VIP), &r);
            assert_eq!(s.pick(7, &flow(c, 4000, VIP), &r), p, "port not hashed");
            let other_worker =
                MaglevHashing::new(Arc::new(table(&r))).pick(0, &flow(c, 1024, VIP), &r);
            assert_eq!(other_worker, p);
        }
    }

    #[test]
    fn mh_port_hashes_the_source_port() {
        let r = servers(0..10, |_| 1);
        let t = MaglevTable::build(
            &r,
            DEFAULT_TABLE_SIZE,
            SchedFlags {
                hash_port: true,
                fallback: false,
            },
        );
        let mut s = MaglevHashing::new(Arc::new(t));
        let h = histogram(
            (1024..21024).map(|p| s.pick(0, &flow(0x0A00_0001, p, VIP), &r)),
            10,
        );
        assert!(h.iter().all(|&n| n > 1500), "{h:?}");
        assert_eq!(
            s.pick(0, &flow(0x0A00_0001, 5000, VIP), &r),
            s.pick(0, &flow(0x0A00_0001, 5000, VIP), &r)
        );
    }

    #[test]
    fn unavailable_server_without_fallback_is_none() {
        let r = servers(0..4, |_| 1);
        let mut s = MaglevHashing::new(Arc::new(table(&r)));
        let before: Vec<_> = CLIENTS
            .map(|c| s.pick(0, &flow(c, 1024, VIP), &r))
            .collect();
        r[2].stats.set_up(false);
        for (c, b) in CLIENTS.zip(&before) {
            let now = s.pick(0, &flow(c, 1024, VIP), &r);
            if *b == Some(2) {
                assert_eq!(now, None);
            } else {
                assert_eq!(now, *b);
            }
        }
    }

    #[test]
    fn fallback_spreads_the_unavailable_servers_clients_over_the_others() {
        let r = servers(0..4, |_| 1);
        let mut s = MaglevHashing::new(Arc::new(MaglevTable::build(
            &r,
            DEFAULT_TABLE_SIZE,
            FALLBACK,
        )));
        let before: Vec<_> = CLIENTS
            .map(|c| s.pick(0, &flow(c, 1024, VIP), &r))
            .collect();
        // Overloaded (upper threshold reached): unavailable without any table change.
        r[2].stats.set_thresholds(1, 0);
        r[2].stats
            .inactive
            .store(1, std::sync::atomic::Ordering::Relaxed);
        r[2].stats.conn_added();
        assert!(!r[2].is_available());
        let mut moved_to = [0usize; 4];
        for (c, b) in CLIENTS.zip(&before) {
            let now = s.pick(0, &flow(c, 1024, VIP), &r);
            if *b == Some(2) {
                moved_to[now.unwrap()] += 1;
            } else {
                assert_eq!(now, *b);
            }
        }
        assert_eq!(moved_to[2], 0);
        let total: usize = moved_to.iter().sum();
        for i in [0, 1, 3] {
            assert!(moved_to[i] * 5 > total, "{moved_to:?}");
        }
        // Nothing available: None, also with the flag.
        for x in [0, 1, 3] {
            r[x].stats.set_up(false);
        }
        assert_eq!(s.pick(0, &flow(1, 1024, VIP), &r), None);
    }

    #[test]
    fn quiescent_servers_get_no_entries_and_all_quiescent_is_none() {
        let r = servers(0..3, |i| if i == 1 { 0 } else { 1 });
        let t = table(&r);
        assert_eq!(t.entries_per_server()[1], 0);
        let r = servers(0..3, |_| 0);
        let t = table(&r);
        assert!(t.entries.is_empty());
        let mut s = MaglevHashing::new(Arc::new(t));
        assert_eq!(s.pick(0, &flow(1, 1, VIP), &r), None);
        assert_eq!(
            MaglevHashing::new(Arc::new(table(&[]))).pick(0, &flow(1, 1, VIP), &[]),
            None
        );
    }

    #[test]
    fn same_configuration_same_table() {
        let r = servers(0..50, |i| 1 + (i % 3) as u32);
        assert_eq!(table(&r).entries, table(&r).entries);
        let small = MaglevTable::build(&r, MIN_TABLE_SIZE, NO_FLAGS);
        assert_eq!(small.entries.len(), 251);
        assert!(small.entries.iter().all(|&i| (i as usize) < 50));
    }

    #[test]
    fn ipv6_servers_fill_the_table_by_weight_and_ipv6_clients_spread_evenly() {
        use crate::sched::testutil::{chi2, flow6, reals6, v6};
        let r = reals6(&[1, 2, 3, 4]);
        let t = table(&r);
        let mut per = [0usize; 4];
        for &e in t.entries.iter() {
            per[e as usize] += 1;
        }
        let m = t.entries.len() as f64;
        for (i, &n) in per.iter().enumerate() {
            let want = m * (i + 1) as f64 / 10.0;
            assert!(
                (n as f64 - want).abs() / want < 0.01,
                "server {i}: {n} of {m}"
            );
        }
        let r = reals6(&[1; 10]);
        let mut s = MaglevHashing::new(Arc::new(table(&r)));
        let vip = v6(0x100);
        let clients = (0..100_000u128).map(|i| v6((i << 64) | 1));
        let h = histogram(clients.map(|c| s.pick(0, &flow6(c, 1024, vip), &r)), 10);
        assert!(chi2(&h) < 27.9, "{h:?}");
        for i in (0..100_000u128).step_by(1001) {
            let c = v6((i << 64) | 1);
            let p = s.pick(0, &flow6(c, 1024, vip), &r);
            assert_eq!(s.pick(7, &flow6(c, 4000, vip), &r), p, "port not hashed");
            let other = MaglevHashing::new(Arc::new(table(&r))).pick(0, &flow6(c, 1024, vip), &r);
            assert_eq!(other, p);
        }
    }
}
