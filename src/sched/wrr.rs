//! Weighted round robin (`wrr`), as IPVS's `ip_vs_wrr`.
//!
//! IPVS keeps a current index `i` and a current weight `cw`. Each pick advances `i`; whenever it
//! wraps to the first server, `cw` drops by `di`, the gcd of all weights, and when `cw` reaches 0
//! or below it restarts at `mw`, the maximum weight. The first server with `weight >= cw` is
//! taken. Over one cycle of `sum(weight)/di` picks, each server is picked `weight/di` times,
//! interleaved (heavier servers first within each round). Weight-0 servers are never picked; when
//! the maximum weight is 0 there is no server.
//!
//! `gcd` and `mw` are computed when the scheduler is built (the real-server set and weights are
//! fixed until the snapshot changes and the worker rebuilds its schedulers).

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// IPVS wrr state.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// Index of the last server picked; starts "before the first" (= the last index).
    index: usize,
    /// Current weight.
    cw: i64,
    /// Maximum weight.
    mw: i64,
    /// Gcd of the non-zero weights.
    di: i64,
    /// `mw / di`: the weight levels a pick may pass (computed once: a division per pick costs
    /// more than the rest of it).
    rounds: usize,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WeightedRoundRobin {
    pub fn new(reals: &[RealServer]) -> WeightedRoundRobin {
        let di = reals
            .iter()
            .map(|r| r.weight)
            .filter(|w| *w > 0)
            .fold(0, gcd)
            .max(1);
        let mw = reals.iter().map(|r| r.weight).max().unwrap_or(0);
        WeightedRoundRobin {
            index: reals.len().saturating_sub(1),
            cw: 0,
            mw: i64::from(mw),
            di: i64::from(di),
            rounds: usize::try_from(mw / di).unwrap_or(usize::MAX),
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let n = reals.len();
        if n == 0 || self.mw == 0 {
            return None;
        }
        // At most one full pass over every weight level: (mw / di) rounds of n servers.
        let bound = n.saturating_mul(self.rounds).saturating_add(n);
        for _ in 0..bound {
            // `index` < n (same `reals` every call): a compare, not a division.
            self.index = if self.index + 1 >= n {
                0
            } else {
                self.index + 1
            };
            if self.index == 0 {
                self.cw -= self.di;
                if self.cw <= 0 {
                    self.cw = self.mw;
                }
            }
            let r = &reals[self.index];
            if r.is_available() && i64::from(r.weight) >= self.cw {
                return Some(self.index);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, sequence};

    /// The sequences below are what IPVS's wrr produces for these weights (worked by hand from
    /// `ip_vs_wrr_schedule`: cw starts at mw and drops by gcd each time the index wraps).
    #[test]
    fn ipvs_sequence_4_3_2() {
        let r = reals(&[4, 3, 2]);
        let seq = sequence(&mut WeightedRoundRobin::new(&r), &r, 9);
        // cw=4: A; cw=3: A B; cw=2: A B C; cw=1: A B C
        assert_eq!(seq, [0, 0, 1, 0, 1, 2, 0, 1, 2].map(Some));
    }

    #[test]
    fn ipvs_sequence_3_1_repeats_per_cycle() {
        let r = reals(&[3, 1]);
        let seq = sequence(&mut WeightedRoundRobin::new(&r), &r, 8);
        // cw=3: A; cw=2: A; cw=1: A B; then again.
        assert_eq!(seq, [0, 0, 0, 1, 0, 0, 0, 1].map(Some));
    }

    #[test]
    fn gcd_shortens_the_cycle() {
        let r = reals(&[4, 2]);
        let seq = sequence(&mut WeightedRoundRobin::new(&r), &r, 6);
        // di = 2: cw=4: A; cw=2: A B.
        assert_eq!(seq, [0, 0, 1, 0, 0, 1].map(Some));
    }

    #[test]
    fn weight_zero_takes_no_flow() {
        let r = reals(&[2, 0, 1]);
        let seq = sequence(&mut WeightedRoundRobin::new(&r), &r, 30);
        assert!(seq.iter().all(|p| *p != Some(1)));
        let a = seq.iter().filter(|p| **p == Some(0)).count();
        let c = seq.iter().filter(|p| **p == Some(2)).count();
        assert_eq!((a, c), (20, 10));
    }

    #[test]
    fn all_zero_is_none() {
        let r = reals(&[0, 0]);
        assert_eq!(
            WeightedRoundRobin::new(&r).pick(0, &crate::sched::testutil::key(0), &r),
            None
        );
    }

    #[test]
    fn equal_weights_are_round_robin() {
        let r = reals(&[5, 5, 5]);
        let seq = sequence(&mut WeightedRoundRobin::new(&r), &r, 6);
        assert_eq!(seq, [0, 1, 2, 0, 1, 2].map(Some));
    }
}
