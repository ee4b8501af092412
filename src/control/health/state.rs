//! The decisions of health checking as plain functions of their inputs: a real server's rise/fall
//! state machine ([`RiseFall`]) and a service's quorum ([`quorum_after`], [`quorum_at_start`]).
//! No clock, no I/O: the caller feeds results in order.

use crate::control::config::Quorum;

/// A real server's up/down state under consecutive check results (keepalived's checker state
/// with `rise`/`fall`).
///
/// Up, it goes down after `fall` consecutive failures; down, it comes up after `rise`
/// consecutive successes. A result that agrees with the current state resets the count towards
/// the other one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiseFall {
    up: bool,
    /// Consecutive results that disagree with `up` so far.
    run: u32,
}

impl RiseFall {
    /// Starts `up` or down with no result counted.
    pub fn new(up: bool) -> RiseFall {
        RiseFall { up, run: 0 }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive results so far that disagree with the current state (failures while up,
    /// successes while down).
    pub fn run(&self) -> u32 {
        self.run
    }

    /// Counts one result; returns the new state when it changes (`Some(false)`: went down).
    /// `rise` and `fall` below 1 count as 1.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.up { fall } else { rise }.max(1);
        if self.run < needed {
            return None;
        }
        self.up = ok;
        self.run = 0;
        Some(ok)
    }
}

/// The quorum after a change in the number of real servers that can take flows (`up`), given
/// the current state `has` (keepalived's `update_quorum_state`, counting servers instead of
/// weights): with quorum, it is lost when no server is up or fewer than
/// `min_up - hysteresis` are; without, it is gained at `min_up + hysteresis` or more (and at
/// least one).
pub fn quorum_after(has: bool, up: u32, q: Quorum) -> bool {
    if has {
        !(up == 0 || up < q.min_up.saturating_sub(q.hysteresis))
    } else {
        up >= gain_threshold(q)
    }
}

/// The quorum of a service when it starts being checked (keepalived's `set_quorum_states`):
/// whether `up` reaches `min_up + hysteresis` (and at least one).
pub fn quorum_at_start(up: u32, q: Quorum) -> bool {
    up >= gain_threshold(q)
}

/// Servers needed to gain quorum: `min_up + hysteresis`, at least 1 (a service with no server up
/// never has quorum, as in keepalived).
pub fn gain_threshold(q: Quorum) -> u32 {
    q.min_up.saturating_add(q.hysteresis).max(1)
}

/// Servers below which quorum is lost: `min_up - hysteresis`.
pub fn loss_threshold(q: Quorum) -> u32 {
    q.min_up.saturating_sub(q.hysteresis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut RiseFall, results: &str, rise: u32, fall: u32) -> Vec<Option<bool>> {
        results
            .chars()
            .map(|c| s.record(c == '+', rise, fall))
            .collect()
    }

    #[test]
    fn goes_down_after_fall_consecutive_failures_only() {
        let mut s = RiseFall::new(true);
        // fall 3: two failures, a success resets, then three in a row.
        let got = feed(&mut s, "--+---", 2, 3);
        assert_eq!(got, [None, None, None, None, None, Some(false)]);
        assert!(!s.is_up());
        assert_eq!(s.run(), 0);
    }

    #[test]
    fn comes_up_after_rise_consecutive_successes_only() {
        let mut s = RiseFall::new(false);
        let got = feed(&mut s, "+-++", 2, 3);
        assert_eq!(got, [None, None, None, Some(true)]);
        assert!(s.is_up());
        // Failures while down and successes while up change nothing.
        let mut d = RiseFall::new(false);
        assert_eq!(feed(&mut d, "----", 2, 3), [None; 4]);
        let mut u = RiseFall::new(true);
        assert_eq!(feed(&mut u, "++++", 2, 3), [None; 4]);
    }

    #[test]
    fn rise_and_fall_of_one_flip_on_each_change() {
        let mut s = RiseFall::new(true);
        assert_eq!(
            feed(&mut s, "-+-+", 1, 1),
            [Some(false), Some(true), Some(false), Some(true)]
        );
        // 0 is treated as 1 (validation refuses it anyway).
        let mut z = RiseFall::new(true);
        assert_eq!(z.record(false, 0, 0), Some(false));
    }

    #[test]
    fn a_full_cycle_with_rise_2_fall_2() {
        let mut s = RiseFall::new(true);
        assert_eq!(
            feed(&mut s, "+--+-++", 2, 2),
            [None, None, Some(false), None, None, None, Some(true)]
        );
    }

    fn q(min_up: u32, hysteresis: u32) -> Quorum {
        Quorum { min_up, hysteresis }
    }

    #[test]
    fn default_quorum_is_lost_with_no_server_up_and_gained_with_one() {
        let d = Quorum::default();
        assert!(quorum_after(true, 1, d));
        assert!(!quorum_after(true, 0, d));
        assert!(!quorum_after(false, 0, d));
        assert!(quorum_after(false, 1, d));
        assert!(quorum_at_start(1, d));
        assert!(!quorum_at_start(0, d));
    }

    #[test]
    fn hysteresis_keeps_the_state_between_the_thresholds() {
        // min_up 3, hysteresis 1: lost below 2, gained at 4.
        let h = q(3, 1);
        assert_eq!((loss_threshold(h), gain_threshold(h)), (2, 4));
        assert!(quorum_after(true, 2, h), "2 is not below 3 - 1");
        assert!(!quorum_after(true, 1, h));
        assert!(!quorum_after(false, 3, h), "3 does not reach 3 + 1");
        assert!(quorum_after(false, 4, h));
        assert!(
            !quorum_at_start(3, h),
            "keepalived starts with min_up + hysteresis"
        );
    }

    #[test]
    fn min_up_zero_still_needs_a_server() {
        let z = q(0, 0);
        assert!(!quorum_after(true, 0, z));
        assert!(quorum_after(false, 1, z));
        assert!(!quorum_at_start(0, z));
    }
}
