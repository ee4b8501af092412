//! Never queue (`nq`), as IPVS's `ip_vs_nq`.
//!
//! Two speeds: walking the servers in order, the first available server (weight > 0,
//! [`RealServer::is_available`]) with no ESTABLISHED connection is taken at once, whatever its
//! weight and its inactive connections. When every available server has at least one active
//! connection the pick is the `sed` one: the smallest `(active + 1) / weight`, compared as in IPVS
//! by `loh * dw > doh * lw` (strictly, so the first wins ties; no division, 128-bit products).
//! Inactive connections never count. Weight-0 servers are never picked, idle or not; `None` when
//! no server is available.
//!
//! Stateless: the counts live in the shared [`super::RealStats`], kept exact by the connection
//! table.

use super::sed::expected_delay;
use super::{least_by_ratio, RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The `nq` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct NeverQueue;

impl NeverQueue {
    pub fn new() -> NeverQueue {
        NeverQueue
    }
}

impl Scheduler for NeverQueue {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        // The first available server with no active connection takes the flow at once.
        if let Some(idle) = reals
            .iter()
            .position(|r| r.is_available() && r.active_connections() == 0)
        {
            return Some(idle);
        }
        least_by_ratio(reals, expected_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{key, loaded};

    fn pick(r: &[RealServer]) -> Option<usize> {
        NeverQueue::new().pick(0, &key(1), r)
    }

    #[test]
    fn first_idle_server_is_taken_at_once() {
        // Server 1 has weight 1 and many inactive connections, but no active one: it wins over a
        // weight-100 server with one active connection, and over the later idle server 2.
        let r = loaded(&[(100, 1, 0), (1, 0, 500), (50, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn without_an_idle_server_it_is_sed() {
        // (a+1)/w: 3/1 = 3, 5/3 = 1.67, 4/2 = 2
        let r = loaded(&[(1, 2, 0), (3, 4, 0), (2, 3, 0)]);
        assert_eq!(pick(&r), Some(1));
        // Inactive connections are ignored.
        let r = loaded(&[(1, 2, 0), (1, 1, 1000)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first() {
        // 2/1 == 4/2 == 6/3
        let r = loaded(&[(1, 1, 0), (2, 3, 0), (3, 5, 0)]);
        assert_eq!(pick(&r), Some(0));
        // Two idle servers: the first.
        let r = loaded(&[(1, 1, 0), (1, 0, 0), (9, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn weight_zero_is_skipped_even_when_idle() {
        let r = loaded(&[(0, 0, 0), (1, 9, 0), (0, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn all_zero_or_empty_is_none() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 4, 0)])), None);
        assert_eq!(pick(&[]), None);
    }
}
