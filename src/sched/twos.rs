//! Weighted power of two choices (`twos`), as IPVS's `ip_vs_twos` (Linux 6.5 and later).
//!
//! Per new flow: draw two servers at random, each with probability proportional to its weight
//! among the available servers ([`RealServer::is_available`]: weight > 0, up, not over its upper
//! threshold), and take the one with the smaller `conn_overhead / weight`
//! ([`RealServer::conn_overhead`]: `active * 256 + inactive`, IPVS's `ip_vs_dest_conn_overhead`),
//! compared without division as `wlc` does (128-bit products). On equal loads the first draw
//! wins, so with equal loads the picks follow the weights exactly. The two draws are independent
//! and may name the same server. Weight-0, down and overloaded servers are never drawn; `None`
//! when no server is available.
//!
//! Cost: two passes over the servers at most (the weight sum, then the draws), no table, no
//! allocation. Power of two choices (Mitzenmacher) gets most of least-connection's balance
//! while looking at the counts of only two servers, and it does not send a burst of new flows
//! all to the one least-loaded server between count updates, as `lc`/`wlc` can.
//!
//! Randomness: each scheduler instance (one per worker and service, rebuilt with the snapshot)
//! owns an xorshift64* generator started from a fixed seed: deterministic, allocation-free and
//! without syscalls on the packet path. IPVS draws from the kernel's `get_random_u32_below`.
//!
//! Departure from IPVS: IPVS draws in `0..=W` (`W` the sum of the weights) and takes the first
//! server whose running weight sum reaches the draw, which gives the first available server
//! `w + 1` chances in `W + 1`. xvs draws in `0..W` and takes the first server whose running sum
//! exceeds the draw: exactly `w` chances in `W`.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The generator's default seed (any non-zero value; the golden-ratio constant).
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The `twos` scheduler: its random generator.
///
/// Invariant: `state` is never 0 (xorshift stays at 0 once there).
#[derive(Debug)]
pub struct WeightedTwoChoices {
    state: u64,
}

impl Default for WeightedTwoChoices {
    fn default() -> Self {
        WeightedTwoChoices::with_seed(DEFAULT_SEED)
    }
}

impl WeightedTwoChoices {
    pub fn new() -> WeightedTwoChoices {
        WeightedTwoChoices::default()
    }

    /// A scheduler whose generator starts at `seed` (0 is replaced by the default seed).
    pub fn with_seed(seed: u64) -> WeightedTwoChoices {
        WeightedTwoChoices {
            state: if seed == 0 { DEFAULT_SEED } else { seed },
        }
    }

    /// The next 64 random bits (xorshift64*, Vigna 2016).
    #[inline]
    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random value in `0..bound` (`bound` > 0), by multiply-shift: the high half of the
    /// 128-bit product of 64 random bits and `bound` (bias below `bound / 2^64`).
    #[inline]
    // The high 64 bits of a 64x64-bit product fit a `u64` and are below `bound`.
    #[allow(clippy::cast_possible_truncation)]
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// The sum of the weights of the available servers.
#[inline]
fn available_weight(reals: &[RealServer]) -> u64 {
    reals
        .iter()
        .filter(|r| r.is_available())
        .fold(0u64, |sum, r| sum.saturating_add(u64::from(r.weight)))
}

/// The indices of the available servers whose weight ranges contain the draws `d1` and `d2`:
/// walking the available servers in order with a running weight sum, the first server whose
/// sum exceeds the draw. Both draws must be below [`available_weight`].
#[inline]
fn locate(reals: &[RealServer], d1: u64, d2: u64) -> Option<(usize, usize)> {
    let (mut c1, mut c2) = (None, None);
    let mut sum = 0u64;
    for (i, r) in reals.iter().enumerate() {
        if !r.is_available() {
            continue;
        }
        sum = sum.saturating_add(u64::from(r.weight));
        if c1.is_none() && d1 < sum {
            c1 = Some(i);
        }
        if c2.is_none() && d2 < sum {
            c2 = Some(i);
        }
        if let (Some(a), Some(b)) = (c1, c2) {
            return Some((a, b));
        }
    }
    None
}

/// Of servers `a` and `b` (indices into `reals`), `b` when its `conn_overhead / weight` is
/// strictly smaller than `a`'s, else `a` (compared as `oh_a * w_b > oh_b * w_a`).
#[inline]
pub(crate) fn less_loaded(reals: &[RealServer], a: usize, b: usize) -> usize {
    let (Some(ra), Some(rb)) = (reals.get(a), reals.get(b)) else {
        return a;
    };
    let lhs = u128::from(ra.conn_overhead()) * u128::from(rb.weight);
    let rhs = u128::from(rb.conn_overhead()) * u128::from(ra.weight);
    if lhs > rhs {
        b
    } else {
        a
    }
}

impl Scheduler for WeightedTwoChoices {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let total = available_weight(reals);
        if total == 0 {
            return None;
        }
        let d1 = self.below(total);
        let d2 = self.below(total);
        let (a, b) = locate(reals, d1, d2)?;
        Some(less_loaded(reals, a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{histogram, key, loaded, reals, set_active};

    fn picks(s: &mut WeightedTwoChoices, r: &[RealServer], n: u32) -> Vec<usize> {
        histogram((0..n).map(|i| s.pick(0, &key(i), r)), r.len())
    }

    /// Whether `got` picks out of `n` are within 5 standard deviations of `n * p`.
    fn within(got: usize, n: usize, p: f64) -> bool {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (got as f64 - mean).abs() <= 5.0 * sd
    }

    #[test]
    fn equal_loads_follow_the_weights_over_100k_picks() {
        let weights = [1, 2, 3, 4, 10];
        let r = reals(&weights);
        let n = 100_000;
        let h = picks(&mut WeightedTwoChoices::new(), &r, n);
        let total: u32 = weights.iter().sum();
        for (i, (&got, &w)) in h.iter().zip(&weights).enumerate() {
            let p = f64::from(w) / f64::from(total);
            assert!(
                within(got, n as usize, p),
                "server {i}: {got} of {n}, p {p}: {h:?}"
            );
        }
        // Equal non-zero load per weight is a tie too.
        let r = loaded(&[(1, 1, 0), (3, 3, 0)]);
        let h = picks(&mut WeightedTwoChoices::with_seed(7), &r, n);
        assert!(within(h[1], n as usize, 0.75), "{h:?}");
    }

    #[test]
    fn weight_zero_down_and_overloaded_servers_are_never_picked() {
        let r = reals(&[0, 5, 0, 1, 7]);
        r[3].stats.set_up(false);
        r[4].stats.set_thresholds(1, 0);
        r[4].stats
            .inactive
            .store(1, std::sync::atomic::Ordering::Relaxed);
        r[4].stats.conn_added();
        let h = picks(&mut WeightedTwoChoices::new(), &r, 100_000);
        assert_eq!(h, [0, 100_000, 0, 0, 0]);
    }

    #[test]
    fn the_less_loaded_of_the_two_is_taken() {
        // Per weight: 512/1 vs 256/1; 1024/4 = 256 vs 300/1; equal ratios keep the first.
        let r = loaded(&[(1, 2, 0), (1, 1, 0), (4, 4, 0), (1, 0, 300), (2, 2, 0)]);
        assert_eq!(less_loaded(&r, 0, 1), 1);
        assert_eq!(less_loaded(&r, 1, 0), 1);
        assert_eq!(less_loaded(&r, 2, 3), 2);
        assert_eq!(less_loaded(&r, 3, 2), 2);
        assert_eq!(less_loaded(&r, 1, 4), 1, "256/1 == 512/2: the first draw");
        assert_eq!(less_loaded(&r, 4, 1), 4);
        assert_eq!(less_loaded(&r, 2, 2), 2);
    }

    #[test]
    fn a_busy_server_is_taken_only_when_drawn_twice() {
        // Four equal weights, server 0 busy: it wins only when both draws name it (1/16).
        let r = reals(&[1, 1, 1, 1]);
        set_active(&r, 0, 100);
        let n = 100_000;
        let h = picks(&mut WeightedTwoChoices::new(), &r, n);
        assert!(within(h[0], n as usize, 1.0 / 16.0), "{h:?}");
        for &got in &h[1..] {
            assert!(within(got, n as usize, 5.0 / 16.0), "{h:?}");
        }
    }

    #[test]
    fn huge_weights_and_counts_do_not_overflow() {
        let r = loaded(&[(u32::MAX, u64::MAX / 512, 0), (u32::MAX, 0, 0)]);
        let h = picks(&mut WeightedTwoChoices::new(), &r, 1000);
        assert!(h[1] > h[0], "{h:?}");
    }

    #[test]
    fn none_when_nothing_is_available_or_empty() {
        assert_eq!(
            WeightedTwoChoices::new().pick(0, &key(1), &reals(&[0, 0])),
            None
        );
        assert_eq!(WeightedTwoChoices::new().pick(0, &key(1), &[]), None);
    }

    #[test]
    fn same_seed_same_sequence_and_zero_seed_is_replaced() {
        let r = reals(&[1, 1, 1, 1, 1, 1, 1, 1]);
        let seq = |s: &mut WeightedTwoChoices| {
            (0..64).map(|i| s.pick(0, &key(i), &r)).collect::<Vec<_>>()
        };
        assert_eq!(
            seq(&mut WeightedTwoChoices::new()),
            seq(&mut WeightedTwoChoices::new())
        );
        assert_eq!(
            seq(&mut WeightedTwoChoices::with_seed(0)),
            seq(&mut WeightedTwoChoices::new())
        );
        assert_ne!(
            seq(&mut WeightedTwoChoices::with_seed(1)),
            seq(&mut WeightedTwoChoices::new())
        );
    }
}
