//! Overflow connection (`ovf`), as IPVS's `ip_vs_ovf`.
//!
//! Like `fo`, new flows go to the available server (weight > 0, [`RealServer::is_available`])
//! with the highest weight, but a server is passed over while its ESTABLISHED connections exceed
//! its weight: IPVS skips a server when `activeconns > weight`, so a server is still eligible with
//! exactly `weight` active connections (its weight is its capacity, and the flow that brings it to
//! `weight + 1` is the last it takes until one closes). Flows then overflow to the next-highest
//! weight. Inactive connections do not count. IPVS replaces its candidate only on a strictly
//! higher weight, so among eligible servers of the same highest weight the first in the list
//! wins. Weight-0 servers are never picked; `None` when every server is quiescent or over its
//! weight.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The `ovf` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct Overflow;

impl Overflow {
    pub fn new() -> Overflow {
        Overflow
    }
}

impl Scheduler for Overflow {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, r) in reals.iter().enumerate() {
            if !r.is_available() || r.active_connections() > u64::from(r.weight) {
                continue;
            }
            if best.is_none_or(|(_, hw)| r.weight > hw) {
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
        Overflow::new().pick(0, &key(1), r)
    }

    #[test]
    fn highest_weight_until_active_exceeds_weight() {
        // Active 3 == weight 3: still eligible (IPVS skips only when active > weight).
        let r = loaded(&[(2, 0, 0), (3, 3, 0)]);
        assert_eq!(pick(&r), Some(1));
        // Active 4 > weight 3: overflow to the weight-2 server.
        let r = loaded(&[(2, 0, 0), (3, 4, 0)]);
        assert_eq!(pick(&r), Some(0));
    }

    #[test]
    fn inactive_connections_do_not_count() {
        let r = loaded(&[(2, 0, 0), (3, 0, 1000)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first_eligible() {
        let r = loaded(&[(1, 0, 0), (5, 2, 0), (5, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
        let r = loaded(&[(1, 0, 0), (5, 6, 0), (5, 0, 0)]);
        assert_eq!(pick(&r), Some(2));
    }

    #[test]
    fn weight_zero_is_skipped_even_when_idle() {
        let r = loaded(&[(0, 0, 0), (1, 1, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn none_when_all_zero_all_full_or_empty() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 0, 0)])), None);
        assert_eq!(pick(&loaded(&[(0, 0, 0), (1, 2, 0), (2, 3, 0)])), None);
        assert_eq!(pick(&[]), None);
    }
}
