//! Two IPv6 routers, and a dual-stack sync group, through the [`Pair`] harness: adverts are real
//! VRRPv3-over-IPv6 packets (encoded, then parsed with every check) on the simulated link.

use super::pair::{spec, spec6, Node, Pair};
use super::*;
use crate::flow::NANOS_PER_SEC;

const S: Nanos = NANOS_PER_SEC;
/// A backup of priority 100 with a 1 s interval: 3 × 1 s + (256 − 100)/256 s.
const DOWN_100: Nanos = 3 * S + 156 * S / 256;

fn single6(priority_a: u8, priority_b: u8) -> Pair {
    let a = Node::new(
        vec![spec6("VI_6", "wan0", 51, priority_a, "fe80::1")],
        vec![],
    );
    let b = Node::new(
        vec![spec6("VI_6", "wan0", 51, priority_b, "fe80::2")],
        vec![],
    );
    Pair::new(a, b)
}

/// The usual dual-stack pair: an IPv4 and an IPv6 instance on wan0, both VRID 51 (one VRID per
/// family), in one sync group.
fn dual_stack(priority_a: u8, priority_b: u8) -> Pair {
    let node = |p: u8, last: u8| {
        Node::new(
            vec![
                spec("VI_4", "wan0", 51, p, &format!("198.18.0.{last}")),
                spec6("VI_6", "wan0", 51, p, &format!("fe80::{last}")),
            ],
            vec![vec!["VI_4".into(), "VI_6".into()]],
        )
    };
    Pair::new(node(priority_a, 1), node(priority_b, 2))
}

fn started(mut p: Pair) -> Pair {
    p.start('a');
    p.start('b');
    p
}

#[test]
fn two_ipv6_routers_elect_the_higher_priority_and_fail_over() {
    let mut p = started(single6(200, 100));
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_6"), State::Master);
    assert_eq!(p.b.state("VI_6"), State::Backup);
    assert_eq!(p.b.entered("VI_6", State::Master), None);
    let heard = p.b.router.members()[0].instance().master_address();
    assert_eq!(heard, Some("fe80::1".parse().unwrap()));
    let last_heard = p.a.sent.last().unwrap().0 + p.latency;
    p.a.alive = false;
    p.drive_until(20 * S);
    assert_eq!(p.b.state("VI_6"), State::Master);
    assert_eq!(
        p.b.entered("VI_6", State::Master),
        Some(last_heard + DOWN_100)
    );
    // A comes back and preempts.
    p.start('a');
    p.drive_until(40 * S);
    assert_eq!(p.a.state("VI_6"), State::Master);
    assert_eq!(p.b.state("VI_6"), State::Backup);
}

#[test]
fn equal_priorities_leave_the_higher_link_local_address_master() {
    for (a, b, winner) in [
        ("fe80::1", "fe80::2", 'b'),
        ("fe80::1:0:0:0:1", "fe80::ffff", 'a'),
    ] {
        let mut p = Pair::new(
            Node::new(vec![spec6("VI_6", "wan0", 51, 100, a)], vec![]),
            Node::new(vec![spec6("VI_6", "wan0", 51, 100, b)], vec![]),
        );
        p = started(p);
        p.drive_until(20 * S);
        let loser = if winner == 'a' { 'b' } else { 'a' };
        assert_eq!(p.node(winner).state("VI_6"), State::Master, "{a} vs {b}");
        assert_eq!(p.node(loser).state("VI_6"), State::Backup, "{a} vs {b}");
    }
}

#[test]
fn a_dual_stack_sync_group_moves_both_families_together() {
    let mut p = started(dual_stack(200, 100));
    p.drive_until(10 * S);
    for i in ["VI_4", "VI_6"] {
        assert_eq!(p.a.state(i), State::Master, "{i}");
        assert_eq!(p.b.state(i), State::Backup, "{i}");
        assert_eq!(
            p.b.entered(i, State::Master),
            None,
            "{i}: same VRID, no mix-up"
        );
    }
    // A dies: both instances of B take over at the same moment.
    p.a.alive = false;
    p.drive_until(20 * S);
    let t4 = p.b.entered("VI_4", State::Master).unwrap();
    let t6 = p.b.entered("VI_6", State::Master).unwrap();
    assert_eq!(t4, t6, "together");
    // A returns: it preempts both, B follows back to BACKUP with both.
    p.start('a');
    p.drive_until(40 * S);
    for i in ["VI_4", "VI_6"] {
        assert_eq!(p.a.state(i), State::Master, "{i}");
        assert_eq!(p.b.state(i), State::Backup, "{i}");
    }
    assert_eq!(
        p.b.entered("VI_4", State::Backup),
        p.b.entered("VI_6", State::Backup)
    );
}

#[test]
fn a_fault_of_the_ipv6_member_hands_both_families_over() {
    let mut p = dual_stack(200, 100);
    p.a.specs[1].track_interfaces = vec!["lan0".into()];
    let mut p = started(p);
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_4"), State::Master);
    p.set_link('a', "lan0", false);
    assert_eq!(p.a.state("VI_6"), State::Fault);
    assert_eq!(p.a.state("VI_4"), State::Fault, "the group follows");
    // Both sent priority 0: B takes both after its Skew_Time.
    p.drive_until(11 * S);
    for i in ["VI_4", "VI_6"] {
        let t = p.b.entered(i, State::Master).unwrap();
        assert_eq!(t, 10 * S + p.latency + 156 * S / 256, "{i}");
    }
}
