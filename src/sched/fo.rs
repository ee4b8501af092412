//! Weighted failover (`fo`), as IPVS's `ip_vs_fo`.
//!
//! Every new flow goes to the available server (weight > 0, [`RealServer::is_available`]) with
//! the highest weight, whatever its connection counts. IPVS replaces its candidate only on a
//! strictly higher weight (`weight > hw`), so among servers of the same highest weight the first in
//! the list wins. Failover is done by weights: lowering the primary's weight (to 0, or below a
//! backup's) moves new flows to the next one. Weight-0 servers are never picked; `None` when no
//! server is available.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The `fo` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct WeightedFailover;

impl WeightedFailover {
    pub fn new() -> WeightedFailover {
        WeightedFailover
    }
}

impl Scheduler for WeightedFailover {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, r) in reals.iter().enumerate() {
            if r.is_available() && best.is_none_or(|(_, hw)| r.weight > hw) {
                best = Some((i, r.weight));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{key, loaded};

    fn pick(r: &[RealServer]) -> Option<usize> {
        WeightedFailover::new().pick(0, &key(1), r)
    }

    #[test]
    fn highest_weight_wins_whatever_its_load() {
        let r = loaded(&[(2, 0, 0), (5, 1000, 1000), (3, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first() {
        let r = loaded(&[(1, 0, 0), (5, 9, 0), (5, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn weight_zero_is_skipped() {
        let r = loaded(&[(0, 0, 0), (1, 3, 0), (0, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn all_zero_or_empty_is_none() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 0, 0)])), None);
        assert_eq!(pick(&[]), None);
    }
}
