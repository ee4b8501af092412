//! Source hashing (`sh`), as IPVS's `ip_vs_sh`, with its flags `sh-port` and `sh-fallback`.
//!
//! A static mapping from the client's address to a real server, through a bucket table:
//!
//! - **Table** (built off the packet path by [`SourceHashTable::build`]): the servers in list
//!   order each take `weight` consecutive buckets, cycling until every bucket is taken (IPVS's
//!   `ip_vs_sh_reassign`). A weight-0 (quiescent) server still takes one bucket per cycle, as in
//!   IPVS: its clients then get no server (or, with `sh-fallback`, another one) while it is
//!   quiescent, and nobody else's mapping changes when a weight-1 server is quiesced.
//! - **Lookup**: bucket `hash_32(src + sport, bits)` of the source address folded to 32 bits
//!   (IPv6: the XOR of its four words), the kernel's multiplicative `hash_32`; `sport` is added
//!   only with `sh-port` (hashing address and port spreads one client's connections over the
//!   servers, for clients behind one NAT address).
//! - **Unavailable server** (weight 0, down, or over its upper threshold:
//!   [`RealServer::is_available`]): without `sh-fallback`, no server (`None`; IPVS logs "no
//!   destination available" and drops the connection). With `sh-fallback`, as IPVS's
//!   `ip_vs_sh_get_fallback`: the buckets are walked one by one from bucket `2h mod size` (IPVS
//!   adds the hash to its probe offset twice), and the first available server is taken; `None`
//!   when none is (checked first, so that case costs one pass over the servers, not a walk of
//!   the table). Deterministic, but not spread: with the cyclic fill, bucket `2h` tends to
//!   belong to one and the same server for all of an unavailable server's clients (with equal
//!   weights and 4 servers, server 1's clients all go to server 2), in IPVS as here.
//!
//! Departures from IPVS, all in the table's shape, none in the lookup rule:
//! - IPVS's table has 256 buckets (`CONFIG_IP_VS_SH_TAB_BITS` = 8), so with more than 256
//!   servers (or large weights) some servers get no bucket at all. Here the table is the smallest
//!   power of two of at least 256 buckets that holds 32 full cycles of the fill, up to 2^20 (the
//!   kernel's largest choice), so every server gets its share within one cycle in 32.
//! - Weights are divided by their greatest common divisor first (IPVS fills weights 100 and 100
//!   as runs of 100 buckets, which gives the first server 156 of 256 buckets); when a cycle still
//!   does not fit 32 times in 2^20 buckets, the weights are scaled down in proportion.
//!
//! The same table is shared by every worker ([`super::Prepared`]); health and overload changes
//! need no rebuild, only a change of the server list or of a weight does. The lookup and its
//! fallback rule are the shared table-lookup scheduler's ([`super::table`]); this file says how
//! the table is filled, what is hashed and which buckets a fallback walks.

use super::hash::{fold, gcd, hash_32, Buckets};
use super::table::{LookupTable, TableLookup};
use super::{RealServer, SchedFlags};
use crate::flow::FlowKey;

/// The `sh` bucket table of one service, with its flags.
#[derive(Debug)]
pub struct SourceHashTable {
    buckets: Buckets,
    flags: SchedFlags,
}

impl SourceHashTable {
    /// Fills the table for `reals` (see the module documentation).
    pub fn build(reals: &[RealServer], flags: SchedFlags) -> SourceHashTable {
        let g = reals
            .iter()
            .map(|r| u64::from(r.weight))
            .fold(0, gcd)
            .max(1);
        SourceHashTable {
            buckets: Buckets::fill(reals, |r| u64::from(r.weight) / g),
            flags,
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether the table has no bucket (built for no server).
    pub fn is_empty(&self) -> bool {
        self.buckets.len() == 0
    }

    /// Whether the table was built for a list of `n` servers.
    pub fn fits(&self, n: usize) -> bool {
        self.buckets.fits(n)
    }
}

impl LookupTable for SourceHashTable {
    /// Bucket `hash_32(src + sport, bits)`, the port only with `sh-port`.
    #[inline]
    fn home(&self, key: &FlowKey) -> u32 {
        let port = if self.flags.hash_port { key.sport } else { 0 };
        hash_32(
            fold(key.src).wrapping_add(u32::from(port)),
            self.buckets.bits(),
        )
    }

    #[inline]
    fn server(&self, pos: u32) -> Option<usize> {
        self.buckets.get(pos)
    }

    /// With `sh-fallback`: one probe per bucket.
    #[inline]
    fn fallback_probes(&self) -> Option<u32> {
        self.flags.fallback.then(|| self.buckets.count())
    }

    /// Bucket `2h + n` (IPVS adds the hash to its probe offset twice).
    #[inline]
    fn probe(&self, _key: &FlowKey, home: u32, n: u32) -> Option<usize> {
        self.buckets.get(home.wrapping_mul(2).wrapping_add(n))
    }
}

/// The `sh` scheduler: the table-lookup scheduler over a shared [`SourceHashTable`].
pub type SourceHashing = TableLookup<SourceHashTable>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, histogram, reals};
    use crate::sched::Scheduler;
    use std::sync::Arc;

    const NO_FLAGS: SchedFlags = SchedFlags {
        hash_port: false,
        fallback: false,
    };
    const PORT: SchedFlags = SchedFlags {
        hash_port: true,
        fallback: false,
    };
    const FALLBACK: SchedFlags = SchedFlags {
        hash_port: false,
        fallback: true,
    };
    const VIP: u32 = 0xC612_0064;
    /// Client addresses for the spread tests: 100 000 consecutive addresses from 10.0.0.0.
    const CLIENTS: std::ops::Range<u32> = 0x0A00_0000..0x0A00_0000 + 100_000;

    fn sh(r: &[RealServer], flags: SchedFlags) -> SourceHashing {
        SourceHashing::new(Arc::new(SourceHashTable::build(r, flags)))
    }

    #[test]
    fn same_source_same_server_whatever_the_port() {
        let r = reals(&[1; 10]);
        let mut s = sh(&r, NO_FLAGS);
        for c in CLIENTS.step_by(997) {
            let first = s.pick(0, &flow(c, 1024, VIP), &r);
            assert!(first.is_some());
            for port in [1025, 40000, 65535] {
                assert_eq!(s.pick(5, &flow(c, port, VIP), &r), first, "client {c:#x}");
            }
            // A second scheduler built from the same list agrees (each worker has its own).
            assert_eq!(sh(&r, NO_FLAGS).pick(0, &flow(c, 1024, VIP), &r), first);
        }
    }

    #[test]
    fn spreads_sources_evenly() {
        for n in [10usize, 100] {
            let r = reals(&vec![1; n]);
            let mut s = sh(&r, NO_FLAGS);
            let h = histogram(CLIENTS.map(|c| s.pick(0, &flow(c, 1024, VIP), &r)), n);
            let (min, max) = (*h.iter().min().unwrap(), *h.iter().max().unwrap());
            assert!(
                max as f64 / min as f64 <= 1.10,
                "{n} servers: min {min} max {max}"
            );
            // Chi-square against the uniform spread: with n-1 degrees of freedom the 99.9%
            // quantile is below 2n + 20 for these n; the multiplicative hash is far more even.
            let expect = CLIENTS.len() as f64 / n as f64;
            let chi2: f64 = h
                .iter()
                .map(|&o| (o as f64 - expect).powi(2) / expect)
                .sum();
            assert!(chi2 < (2 * n + 20) as f64, "{n} servers: chi2 {chi2}");
        }
    }

    #[test]
    fn weights_set_the_share_of_buckets_and_of_sources() {
        let r = reals(&[1, 2, 3, 4]);
        let t = SourceHashTable::build(&r, NO_FLAGS);
        let c = t.buckets.counts();
        let total: usize = c.iter().sum();
        for (i, w) in [1, 2, 3, 4].iter().enumerate() {
            let share = c[i] as f64 / total as f64;
            let want = f64::from(*w) / 10.0;
            assert!((share - want).abs() / want < 1.0 / 32.0, "{i}: {share}");
        }
        let mut s = sh(&r, NO_FLAGS);
        let h = histogram(CLIENTS.map(|c| s.pick(0, &flow(c, 1024, VIP), &r)), 4);
        for (i, w) in [1, 2, 3, 4].iter().enumerate() {
            let share = h[i] as f64 / CLIENTS.len() as f64;
            let want = f64::from(*w) / 10.0;
            assert!((share - want).abs() / want < 0.05, "{i}: {share} vs {want}");
        }
    }

    #[test]
    fn common_factor_of_weights_does_not_skew() {
        let r = reals(&[100, 100]);
        let t = SourceHashTable::build(&r, NO_FLAGS);
        assert_eq!(t.buckets.counts(), [128, 128]);
    }

    #[test]
    fn sh_port_spreads_one_client_over_the_servers() {
        let r = reals(&[1; 10]);
        let mut s = sh(&r, PORT);
        let h = histogram(
            (1024..31024).map(|p| s.pick(0, &flow(0x0A00_0001, p, VIP), &r)),
            10,
        );
        assert!(h.iter().all(|&n| n > 2000), "{h:?}");
        // Still deterministic per (address, port).
        assert_eq!(
            s.pick(0, &flow(0x0A00_0001, 5000, VIP), &r),
            s.pick(9, &flow(0x0A00_0001, 5000, VIP), &r)
        );
        // Without the flag the port does not matter.
        let mut s = sh(&r, NO_FLAGS);
        let h = histogram(
            (1024..2024).map(|p| s.pick(0, &flow(0x0A00_0001, p, VIP), &r)),
            10,
        );
        assert_eq!(h.iter().filter(|&&n| n > 0).count(), 1);
    }

    /// The clients of server 1 when every server is available.
    fn clients_of(s: &mut SourceHashing, r: &[RealServer], server: usize) -> Vec<u32> {
        CLIENTS
            .filter(|&c| s.pick(0, &flow(c, 1024, VIP), r) == Some(server))
            .collect()
    }

    #[test]
    fn unavailable_server_means_no_server_without_fallback() {
        let cases: [fn(&mut Vec<RealServer>); 3] = [
            |r: &mut Vec<RealServer>| r[1].weight = 0,
            |r: &mut Vec<RealServer>| {
                r[1].stats.set_up(false);
            },
            |r: &mut Vec<RealServer>| {
                r[1].stats.set_thresholds(1, 0);
                r[1].stats
                    .inactive
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                r[1].stats.conn_added();
            },
        ];
        for make_unavailable in cases {
            let mut r = reals(&[1, 1, 1]);
            // Built while available: only the availability seen at pick time changes.
            let mut s = sh(&r, NO_FLAGS);
            let mine = clients_of(&mut s, &r, 1);
            let mine_set: std::collections::HashSet<u32> = mine.iter().copied().collect();
            let others: Vec<u32> = CLIENTS
                .step_by(101)
                .filter(|c| !mine_set.contains(c))
                .collect();
            let before: Vec<_> = others
                .iter()
                .map(|&c| s.pick(0, &flow(c, 1024, VIP), &r))
                .collect();
            make_unavailable(&mut r);
            for &c in mine.iter().step_by(50) {
                assert_eq!(s.pick(0, &flow(c, 1024, VIP), &r), None);
            }
            let after: Vec<_> = others
                .iter()
                .map(|&c| s.pick(0, &flow(c, 1024, VIP), &r))
                .collect();
            assert_eq!(before, after, "other clients keep their server");
        }
    }

    #[test]
    fn fallback_moves_only_the_unavailable_servers_clients() {
        let r = reals(&[1, 1, 1, 1]);
        let mut s = sh(&r, FALLBACK);
        let mine = clients_of(&mut s, &r, 1);
        let before: Vec<_> = CLIENTS
            .map(|c| s.pick(0, &flow(c, 1024, VIP), &r))
            .collect();
        r[1].stats.set_up(false);
        let after: Vec<_> = CLIENTS
            .map(|c| s.pick(0, &flow(c, 1024, VIP), &r))
            .collect();
        let mut moved_to = [0usize; 4];
        for (b, a) in before.iter().zip(&after) {
            if *b == Some(1) {
                moved_to[a.unwrap()] += 1;
            } else {
                assert_eq!(b, a);
            }
        }
        assert_eq!(moved_to[1], 0);
        assert_eq!(moved_to.iter().sum::<usize>(), mine.len());
        // As in IPVS, the walk from bucket 2h lands on server 2 for all of them (2h = 2 mod 4
        // when h = 1 mod 4, and the buckets cycle 0, 1, 2, 3).
        assert_eq!(moved_to, [0, 0, mine.len(), 0]);
        // Server 2 down too: they walk on to the next available bucket (3, then 0).
        r[2].stats.set_up(false);
        let h = histogram(mine.iter().map(|&c| s.pick(0, &flow(c, 1024, VIP), &r)), 4);
        assert_eq!(h, [0, 0, 0, mine.len()]);
        r[2].stats.set_up(true);
        // Deterministic.
        assert_eq!(
            s.pick(0, &flow(mine[0], 1024, VIP), &r),
            s.pick(1, &flow(mine[0], 1024, VIP), &r)
        );
        // Back up: back to its own clients.
        r[1].stats.set_up(true);
        assert_eq!(s.pick(0, &flow(mine[0], 1024, VIP), &r), Some(1));
    }

    #[test]
    fn fallback_with_nothing_available_is_none() {
        let r = reals(&[1, 0, 1]);
        r[0].stats.set_up(false);
        r[2].stats.set_up(false);
        let mut s = sh(&r, FALLBACK);
        assert!(CLIENTS
            .step_by(1000)
            .all(|c| s.pick(0, &flow(c, 1024, VIP), &r).is_none()));
    }

    #[test]
    fn quiescent_server_keeps_its_buckets() {
        // IPVS: a weight-0 server takes one bucket per cycle.
        let t = SourceHashTable::build(&reals(&[1, 0, 1]), NO_FLAGS);
        assert_eq!(t.buckets.counts(), [86, 85, 85]);
    }

    #[test]
    fn empty_list_or_table_for_another_list_is_none() {
        let mut s = sh(&[], FALLBACK);
        assert_eq!(s.pick(0, &flow(1, 1, VIP), &[]), None);
        // A table built for 3 servers, used with 1: indices past the end are no server.
        let r3 = reals(&[1, 1, 1]);
        let mut s = sh(&r3, NO_FLAGS);
        let r1 = reals(&[1]);
        for c in CLIENTS.step_by(1000) {
            let p = s.pick(0, &flow(c, 1024, VIP), &r1);
            assert!(p.is_none() || p == Some(0));
        }
    }

    #[test]
    fn ipv6_sources_stick_to_their_server_and_spread_evenly() {
        use crate::sched::testutil::{chi2, flow6, reals6, v6};
        let r = reals6(&[1; 10]);
        let vip = v6(0x100);
        for flags in [NO_FLAGS, FALLBACK] {
            let mut s = sh(&r, flags);
            // Consecutive interface ids of one /64, then one address in each of consecutive /64s.
            for shift in [0u32, 64] {
                let clients = (0..100_000u128).map(|i| v6(i << shift));
                let h = histogram(clients.map(|c| s.pick(0, &flow6(c, 1024, vip), &r)), 10);
                assert!(chi2(&h) < 40.0, "shift {shift}: {h:?}");
            }
            for i in (0..100_000u128).step_by(997) {
                let c = v6((5 << 64) | i);
                let first = s.pick(0, &flow6(c, 1024, vip), &r);
                assert!(first.is_some());
                assert_eq!(s.pick(3, &flow6(c, 40000, vip), &r), first, "{c:#x}");
                assert_eq!(sh(&r, flags).pick(0, &flow6(c, 1024, vip), &r), first);
            }
        }
        // sh-port: one IPv6 client's ports spread over the servers.
        let mut s = sh(&r, PORT);
        let c = v6(7);
        let h = histogram((1024..11024).map(|p| s.pick(0, &flow6(c, p, vip), &r)), 10);
        assert!(h.iter().all(|&n| n > 500), "{h:?}");
    }
}
