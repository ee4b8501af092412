//! Least connection (`lc`), as IPVS's `ip_vs_lc`.
//!
//! Each server's load is its connection overhead, `active * 256 + inactive`
//! ([`RealServer::conn_overhead`], IPVS's `ip_vs_dest_conn_overhead`: an ESTABLISHED connection
//! is counted as 256 times the work of one in any other state). The available server (weight > 0,
//! [`RealServer::is_available`]) with the smallest overhead is taken. Weights otherwise do not
//! matter. IPVS replaces its candidate only on a strictly smaller overhead (`doh < loh`), so among
//! equally loaded servers the first in the list wins. Weight-0 servers are never picked; `None`
//! when no server is available.
//!
//! Stateless: the counts live in the shared [`super::RealStats`], kept exact by the connection
//! table.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// The `lc` scheduler (no state of its own).
#[derive(Debug, Default)]
pub struct LeastConnection;

impl LeastConnection {
    pub fn new() -> LeastConnection {
        LeastConnection
    }
}

impl Scheduler for LeastConnection {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, r) in reals.iter().enumerate() {
            if !r.is_available() {
                continue;
            }
            let doh = r.conn_overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{key, loaded};

    fn pick(r: &[RealServer]) -> Option<usize> {
        LeastConnection::new().pick(0, &key(1), r)
    }

    #[test]
    fn least_overhead_wins_active_counts_256_times() {
        // overheads: 1*256+0 = 256, 0*256+255 = 255, 0*256+300 = 300
        let r = loaded(&[(1, 1, 0), (1, 0, 255), (1, 0, 300)]);
        assert_eq!(pick(&r), Some(1));
        // 256 inactive outweigh one active connection.
        let r = loaded(&[(1, 1, 0), (1, 0, 257)]);
        assert_eq!(pick(&r), Some(0));
    }

    #[test]
    fn weights_do_not_matter_beyond_zero() {
        // lc ignores weights: the weight-100 server has more connections, so it loses.
        let r = loaded(&[(100, 3, 0), (1, 2, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn ties_go_to_the_first() {
        let r = loaded(&[(1, 2, 5), (1, 1, 5), (1, 1, 5)]);
        assert_eq!(pick(&r), Some(1));
        let r = loaded(&[(1, 0, 0), (1, 0, 0)]);
        assert_eq!(pick(&r), Some(0));
    }

    #[test]
    fn weight_zero_is_skipped_even_when_idle() {
        let r = loaded(&[(0, 0, 0), (1, 5, 5), (0, 0, 0)]);
        assert_eq!(pick(&r), Some(1));
    }

    #[test]
    fn all_zero_or_empty_is_none() {
        assert_eq!(pick(&loaded(&[(0, 0, 0), (0, 3, 0)])), None);
        assert_eq!(pick(&[]), None);
    }
}
