//! Destination hashing (`dh`), as IPVS's `ip_vs_dh`.
//!
//! A static mapping from the packet's destination address to a real server, through a bucket
//! table:
//!
//! - **Table** (built off the packet path by [`DestinationHashTable::build`]): the servers in list
//!   order take one bucket each, cycling until every bucket is taken (IPVS's `ip_vs_dh_reassign`;
//!   weights play no part, quiescent servers included).
//! - **Lookup**: bucket `hash_32(dst, bits)` of the destination address folded to 32 bits (IPv6:
//!   the XOR of its four words), the kernel's multiplicative `hash_32`.
//! - **Unavailable server** (weight 0, down, or over its upper threshold:
//!   [`RealServer::is_available`]): no server (`None`). `dh` has no flags and no fallback.
//!
//! In xvs a service is a VIP and port, so the destination of every new flow of a service is its
//! VIP: every flow of a `dh` service goes to the one server its VIP hashes to. That is IPVS's
//! behaviour for such a service too; `dh` is meant for services that match many destinations
//! (IPVS firewall-mark services of cache clusters), which xvs does not have yet.
//!
//! Departure from IPVS, in the table's shape only: IPVS's table has 256 buckets, so with more
//! than 256 servers some get none; here it is the smallest power of two of at least 256 that
//! holds 32 cycles of the servers, up to 2^20 buckets.
//!
//! The lookup is the shared table-lookup scheduler's ([`super::table`]); this file says how the
//! table is filled and what is hashed.

use super::hash::{fold, hash_32, Buckets};
use super::table::{LookupTable, TableLookup};
use super::RealServer;
use crate::flow::FlowKey;

/// The `dh` bucket table of one service.
#[derive(Debug)]
pub struct DestinationHashTable {
    buckets: Buckets,
}

impl DestinationHashTable {
    /// Fills the table for `reals`: one bucket per server per cycle.
    pub fn build(reals: &[RealServer]) -> DestinationHashTable {
        DestinationHashTable {
            buckets: Buckets::fill(reals, |_| 1),
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

impl LookupTable for DestinationHashTable {
    /// Bucket `hash_32(dst, bits)`.
    #[inline]
    fn home(&self, key: &FlowKey) -> u32 {
        hash_32(fold(key.dst), self.buckets.bits())
    }

    #[inline]
    fn server(&self, pos: u32) -> Option<usize> {
        self.buckets.get(pos)
    }

    /// `dh` has no fallback: an unavailable server means no server.
    #[inline]
    fn fallback_probes(&self) -> Option<u32> {
        None
    }

    fn probe(&self, _key: &FlowKey, _home: u32, _n: u32) -> Option<usize> {
        None
    }
}

/// The `dh` scheduler: the table-lookup scheduler over a shared [`DestinationHashTable`].
pub type DestinationHashing = TableLookup<DestinationHashTable>;

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, histogram, reals};
    use crate::sched::Scheduler;
    use std::sync::Arc;

    /// Destination addresses for the spread tests: 100 000 consecutive addresses from
    /// 203.0.113.0 on.
    const DESTINATIONS: std::ops::Range<u32> = 0xCB00_7100..0xCB00_7100 + 100_000;

    fn dh(r: &[RealServer]) -> DestinationHashing {
        DestinationHashing::new(Arc::new(DestinationHashTable::build(r)))
    }

    #[test]
    fn same_destination_same_server_whatever_the_source() {
        let r = reals(&[1; 10]);
        let mut s = dh(&r);
        for d in DESTINATIONS.step_by(997) {
            let first = s.pick(0, &flow(1, 1024, d), &r);
            assert!(first.is_some());
            for (src, port) in [(2, 1024), (0x0A00_0001, 40000), (u32::MAX, 1)] {
                assert_eq!(s.pick(0, &flow(src, port, d), &r), first);
            }
            assert_eq!(dh(&r).pick(0, &flow(1, 1024, d), &r), first);
        }
    }

    #[test]
    fn spreads_destinations_evenly() {
        for n in [10usize, 100, 1000] {
            let r = reals_n(n);
            let mut s = dh(&r);
            let h = histogram(DESTINATIONS.map(|d| s.pick(0, &flow(1, 1024, d), &r)), n);
            let (min, max) = (*h.iter().min().unwrap(), *h.iter().max().unwrap());
            let expect = DESTINATIONS.len() as f64 / n as f64;
            let chi2: f64 = h
                .iter()
                .map(|&o| (o as f64 - expect).powi(2) / expect)
                .sum();
            assert!(chi2 < (2 * n + 20) as f64, "{n} servers: chi2 {chi2}");
            assert!(
                max as f64 / min as f64 <= if n < 1000 { 1.10 } else { 1.5 },
                "{n} servers: min {min} max {max}"
            );
        }
    }

    /// `n` servers of weight 1 with distinct addresses (the testutil list stops at 245).
    fn reals_n(n: usize) -> Vec<RealServer> {
        (0..n)
            .map(|i| {
                RealServer::new(
                    std::net::SocketAddr::from((
                        [198, 18, (1 + i / 250) as u8, (i % 250) as u8],
                        80,
                    )),
                    1,
                )
            })
            .collect()
    }

    #[test]
    fn weights_do_not_matter() {
        let a = DestinationHashTable::build(&reals(&[1, 5, 0]));
        assert_eq!(a.buckets.counts(), [86, 85, 85]);
    }

    #[test]
    fn unavailable_server_means_no_server() {
        let r = reals(&[1, 1, 1]);
        let mut s = dh(&r);
        let d = DESTINATIONS
            .clone()
            .find(|&d| s.pick(0, &flow(1, 1024, d), &r) == Some(1))
            .unwrap();
        let other = DESTINATIONS
            .clone()
            .find(|&d| s.pick(0, &flow(1, 1024, d), &r) == Some(2))
            .unwrap();
        r[1].stats.set_up(false);
        assert_eq!(s.pick(0, &flow(1, 1024, d), &r), None);
        assert_eq!(s.pick(0, &flow(1, 1024, other), &r), Some(2));
        r[1].stats.set_up(true);
        assert_eq!(s.pick(0, &flow(1, 1024, d), &r), Some(1));
        let mut q = r.clone();
        q[1].weight = 0;
        assert_eq!(s.pick(0, &flow(1, 1024, d), &q), None, "quiescent");
    }

    #[test]
    fn one_vip_one_server() {
        let r = reals(&[1; 5]);
        let mut s = dh(&r);
        let vip = 0xC612_0064;
        let picks: Vec<_> = (0..1000)
            .map(|c| s.pick(0, &flow(c, 1024, vip), &r))
            .collect();
        assert!(picks.iter().all(|p| *p == picks[0] && p.is_some()));
    }

    #[test]
    fn empty_list_is_none() {
        assert_eq!(dh(&[]).pick(0, &flow(1, 1, 2), &[]), None);
    }

    #[test]
    fn ipv6_destinations_stick_to_their_server_and_spread_evenly() {
        use crate::sched::testutil::{chi2, flow6, reals6, v6};
        let r = reals6(&[1; 10]);
        let mut s = dh(&r);
        let h = histogram(
            (0..100_000u128).map(|d| s.pick(0, &flow6(v6(1), 1024, v6((9 << 64) | d)), &r)),
            10,
        );
        assert!(chi2(&h) < 40.0, "{h:?}");
        for d in (0..100_000u128).step_by(997) {
            let dst = v6((9 << 64) | d);
            let first = s.pick(0, &flow6(v6(1), 1024, dst), &r);
            assert!(first.is_some());
            for (src, port) in [(v6(2), 1024), (v6((3 << 64) | 1), 40000), (u128::MAX, 1)] {
                assert_eq!(s.pick(0, &flow6(src, port, dst), &r), first);
            }
        }
    }
}
