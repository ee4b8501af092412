//! Weighted least connection (`wlc`, the IPVS default), as IPVS's `ip_vs_wlc`.
//!
//! Each server's load is its connection overhead divided by its weight, the overhead being
//! `active * 256 + inactive` ([`RealServer::conn_overhead`], IPVS's `ip_vs_dest_conn_overhead`).
//! The available server (weight > 0, [`RealServer::is_available`]) with the smallest
//! `overhead / weight` is taken. As in IPVS there is no division: the candidate `least` (overhead
//! `loh`, weight `lw`) is replaced by server `d` (overhead `doh`, weight `dw`) only when
//! `loh * dw > doh * lw`, strictly, so among equally loaded servers the first in the list wins.
//! IPVS does the products in 64 bits; here they are done in 128 bits so they cannot overflow.
//! Weight-0 servers are never picked; `None` when no server is available.
//!
//! Stateless: the counts live in the shared [`super::RealStats`], kept exact by the connection
//! table.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The `wlc` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl WeightedLeastConnection {
    pub fn new() -> WeightedLeastConnection {
        WeightedLeastConnection
    }
}

impl Scheduler for WeightedLeastConnection {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        super::least_by_ratio(reals, RealServer::conn_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{key, loaded};

    fn pick(r: &[RealServer]) -> Option<usize> {
        WeightedLeastConnection::new().pick(0, &key(1), r)
    }

    #[test]
    fn least_overhead_per_weight_wins() {
        // overhead/weight: 512/1 = 512, 768/3 = 256, 256/2 = 128
        let r = loaded(&[(1, 2, 0), (3, 3, 0), (2, 1, 0)]);
        assert_eq!(pick(&r), Some(2));
        // Inactive connections count 1/256 of an active one: 256/1 vs 300/1.
        let r = loaded(&[(1, 1, 0), (1, 0, 300)]);
        assert_eq!(pick(&r), Some(0));
    }

    #[test]
    fn weight_scales_the_share() {
        // 4 active on weight 4 (256/unit) beats 2 active on weight 1 (512/unit).
        let r = loaded(&[(1, 2, 0), (4, 4, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first() {
        // 256/1 == 512/2 == 768/3
        let r = loaded(&[(1, 1, 0), (2, 2, 0), (3, 3, 0)]);
        assert_eq!(pick(&r), Some(0));
        let r = loaded(&[(1, 9, 0), (2, 2, 0), (3, 3, 0)]);
        assert_eq!(pick(&r), Some(1));
        let r = loaded(&[(5, 0, 0), (1, 0, 0)]);
        assert_eq!(pick(&r), Some(0));
    }

    #[test]
    fn weight_zero_is_skipped_even_when_idle() {
        let r = loaded(&[(0, 0, 0), (1, 7, 7), (0, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn all_zero_or_empty_is_none() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 1, 1)])), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let r = loaded(&[
            (u32::MAX, u64::MAX / 512, 0),
            (u32::MAX - 1, u64::MAX / 512, 0),
        ]);
        assert_eq!(pick(&r), Some(0));
    }
}
