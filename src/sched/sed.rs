//! Shortest expected delay (`sed`), as IPVS's `ip_vs_sed`.
//!
//! Each server's expected delay is `(active + 1) / weight`: only ESTABLISHED connections count
//! (inactive ones are ignored, unlike `lc`/`wlc`), and the `+ 1` is the new connection itself. The
//! available server (weight > 0, [`RealServer::is_available`]) with the smallest expected delay is
//! taken. As in IPVS there is no division: the candidate (`loh = active + 1`, weight `lw`) is
//! replaced by server `d` (`doh`, `dw`) only when `loh * dw > doh * lw`, strictly, so among equal
//! delays the first in the list wins (products in 128 bits here, so they cannot overflow).
//! Weight-0 servers are never picked; `None` when no server is available.
//!
//! Stateless: the counts live in the shared [`super::RealStats`], kept exact by the connection
//! table.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// IPVS's `ip_vs_sed_dest_overhead`: active connections plus the one being scheduled.
#[inline]
pub(crate) fn expected_delay(r: &RealServer) -> u64 {
    r.active_connections().saturating_add(1)
}

/// The `sed` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl ShortestExpectedDelay {
    pub fn new() -> ShortestExpectedDelay {
        ShortestExpectedDelay
    }
}

impl Scheduler for ShortestExpectedDelay {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        super::least_by_ratio(reals, expected_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{key, loaded};

    fn pick(r: &[RealServer]) -> Option<usize> {
        ShortestExpectedDelay::new().pick(0, &key(1), r)
    }

    #[test]
    fn smallest_active_plus_one_per_weight_wins() {
        // (a+1)/w: 3/1 = 3, 5/3 = 1.67, 4/2 = 2
        let r = loaded(&[(1, 2, 0), (3, 4, 0), (2, 3, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn the_plus_one_prefers_the_heavier_idle_server() {
        // Both idle: 1/1 vs 1/4: the weight-4 server (wlc would tie and take the first).
        let r = loaded(&[(1, 0, 0), (4, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn inactive_connections_are_ignored() {
        // 1/1 with 1000 inactive beats 2/1 with none.
        let r = loaded(&[(1, 1, 0), (1, 0, 1000)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first() {
        // 2/1 == 4/2 == 6/3
        let r = loaded(&[(1, 1, 0), (2, 3, 0), (3, 5, 0)]);
        assert_eq!(pick(&r), Some(0));
        let r = loaded(&[(1, 5, 0), (2, 3, 0), (3, 5, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn weight_zero_is_skipped_even_when_idle() {
        let r = loaded(&[(0, 0, 0), (1, 9, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn all_zero_or_empty_is_none() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 0, 0)])), None);
        assert_eq!(pick(&[]), None);
    }
}
