//! Round robin (`rr`), as IPVS's `ip_vs_rr`: walk the real servers in order, starting after the
//! last one picked, and take the first that is available (weight > 0). Weights otherwise do not
//! matter. `None` when no server is available.

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// Round-robin state: the index of the last server picked.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Scheduler for RoundRobin {
    fn pick(&mut self, _now: Nanos, _key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let n = reals.len();
        if n == 0 {
            return None;
        }
        let start = self.last.map_or(0, |l| (l + 1) % n);
        for step in 0..n {
            let i = (start + step) % n;
            if reals[i].is_available() {
                self.last = Some(i);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, sequence};

    #[test]
    fn cycles_in_order() {
        let r = reals(&[1, 5, 1]);
        let seq = sequence(&mut RoundRobin::new(), &r, 7);
        assert_eq!(seq, [0, 1, 2, 0, 1, 2, 0].map(Some));
    }

    #[test]
    fn skips_quiescent_servers() {
        let r = reals(&[1, 0, 1]);
        let seq = sequence(&mut RoundRobin::new(), &r, 4);
        assert_eq!(seq, [0, 2, 0, 2].map(Some));
    }

    #[test]
    fn none_when_all_quiescent_or_empty() {
        assert_eq!(
            RoundRobin::new().pick(0, &crate::sched::testutil::key(1), &reals(&[0, 0])),
            None
        );
        assert_eq!(
            RoundRobin::new().pick(0, &crate::sched::testutil::key(1), &[]),
            None
        );
    }
}
