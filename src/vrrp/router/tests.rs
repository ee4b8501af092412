use super::pair::{script, spec, Node, Pair};
use super::*;
use crate::flow::NANOS_PER_SEC;

const S: Nanos = NANOS_PER_SEC;
const MS: Nanos = NANOS_PER_SEC / 1000;
/// A backup of priority 100 with a 1 s interval: 3 × 1 s + (256 − 100)/256 s.
const DOWN_100: Nanos = 3 * S + 156 * S / 256;

fn single(priority_a: u8, priority_b: u8) -> Pair {
    let a = Node::new(
        vec![spec("VI_1", "wan0", 51, priority_a, "198.18.0.1")],
        vec![],
    );
    let b = Node::new(
        vec![spec("VI_1", "wan0", 51, priority_b, "198.18.0.2")],
        vec![],
    );
    Pair::new(a, b)
}

/// Two instances per box (wan0 VRID 51, lan0 VRID 52) in one sync group.
fn grouped(priority_a: u8, priority_b: u8) -> Pair {
    let node = |p: u8, last: u8| {
        Node::new(
            vec![
                spec("VI_1", "wan0", 51, p, &format!("198.18.0.{last}")),
                spec("VI_2", "lan0", 52, p, &format!("198.18.1.{last}")),
            ],
            vec![vec!["VI_1".into(), "VI_2".into()]],
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
fn pair_elects_the_higher_priority_and_the_backup_takes_over_when_the_master_goes_silent() {
    let mut p = started(single(200, 100));
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_1"), State::Master);
    assert_eq!(p.b.state("VI_1"), State::Backup);
    assert_eq!(
        p.b.entered("VI_1", State::Master),
        None,
        "never both MASTER"
    );
    // A dies: B hears its last advert, then nothing.
    let last_heard = p.a.sent.last().unwrap().0 + p.latency;
    p.a.alive = false;
    p.drive_until(20 * S);
    assert_eq!(p.b.state("VI_1"), State::Master);
    let took_over = p.b.entered("VI_1", State::Master).unwrap();
    assert_eq!(
        took_over,
        last_heard + DOWN_100,
        "Master_Down_Interval after the last advert"
    );
}

#[test]
fn preemption_hands_mastership_back_to_the_higher_priority_router() {
    let mut p = single(200, 100);
    p.start('b');
    p.drive_until(20 * S);
    assert_eq!(p.b.state("VI_1"), State::Master, "alone, B takes over");
    p.start('a');
    p.drive_until(40 * S);
    assert_eq!(p.a.state("VI_1"), State::Master, "A preempts");
    assert_eq!(p.b.state("VI_1"), State::Backup);
    let a_master = p.a.entered("VI_1", State::Master).unwrap();
    // A ignores B's lower-priority adverts and takes over when its own timer runs out.
    assert_eq!(a_master, 20 * S + 3 * S + 56 * S / 256);

    // Without preempt A stays BACKUP behind the lower-priority master.
    let mut q = {
        let mut s = spec("VI_1", "wan0", 51, 200, "198.18.0.1");
        s.cfg.preempt = false;
        let b = Node::new(vec![spec("VI_1", "wan0", 51, 100, "198.18.0.2")], vec![]);
        Pair::new(Node::new(vec![s], vec![]), b)
    };
    q.start('b');
    q.drive_until(20 * S);
    q.start('a');
    q.drive_until(60 * S);
    assert_eq!(q.a.state("VI_1"), State::Backup);
    assert_eq!(q.b.state("VI_1"), State::Master);
}

#[test]
fn a_sync_group_follows_a_member_into_fault_and_the_peer_takes_over_both() {
    let mut p = started(grouped(200, 100));
    p.drive_until(10 * S);
    for i in ["VI_1", "VI_2"] {
        assert_eq!(p.a.state(i), State::Master);
        assert_eq!(p.b.state(i), State::Backup);
    }
    // lan0 (VI_2's own interface) goes down on A: VI_2 faults, VI_1 follows it into FAULT.
    p.set_link('a', "lan0", false);
    assert_eq!(p.a.state("VI_2"), State::Fault);
    assert_eq!(p.a.state("VI_1"), State::Fault, "the group follows");
    // Both sent priority 0: B takes over after its Skew_Time, not its Master_Down_Interval.
    p.drive_until(11 * S);
    for i in ["VI_1", "VI_2"] {
        assert_eq!(p.b.state(i), State::Master, "{i}");
        let t = p.b.entered(i, State::Master).unwrap();
        assert_eq!(t, 10 * S + p.latency + 156 * S / 256, "{i}");
    }
    // Back up: A leaves FAULT as BACKUP and preempts again.
    p.set_link('a', "lan0", true);
    p.drive_until(30 * S);
    for i in ["VI_1", "VI_2"] {
        assert_eq!(p.a.state(i), State::Master, "{i}");
        assert_eq!(p.b.state(i), State::Backup, "{i}");
    }
}

#[test]
fn a_sync_group_backup_does_not_take_over_alone_while_a_member_still_hears_the_master() {
    let mut p = started(grouped(200, 100));
    p.drive_until(10 * S);
    // wan0 between the boxes is cut: B's VI_1 hears nothing, but VI_2 still hears A.
    p.cut.insert("wan0".into());
    p.drive_until(30 * S);
    assert_eq!(p.b.entered("VI_1", State::Master), None, "no lone takeover");
    assert_eq!(p.b.state("VI_1"), State::Backup);
    assert_eq!(p.b.state("VI_2"), State::Backup);
    // lan0 is cut too: now every member wants to, and the group takes over at once.
    p.cut.insert("lan0".into());
    p.drive_until(40 * S);
    let t1 = p.b.entered("VI_1", State::Master).unwrap();
    let t2 = p.b.entered("VI_2", State::Master).unwrap();
    assert_eq!(t1, t2, "together");
    assert!(t1 > 30 * S && t1 <= 30 * S + DOWN_100 + MS, "{t1}");
}

#[test]
fn a_sync_group_member_leaving_master_takes_the_group_to_backup() {
    // A runs VI_1 and VI_2 in a group; B runs only VI_1, at a higher priority, and starts late.
    let mut p = grouped(200, 100);
    p.b = Node::new(vec![spec("VI_1", "wan0", 51, 250, "198.18.0.2")], vec![]);
    p.start('a');
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_2"), State::Master);
    p.start('b');
    p.drive_until(20 * S);
    assert_eq!(p.b.state("VI_1"), State::Master, "B preempts on wan0");
    let t = p.a.entered("VI_1", State::Backup).unwrap();
    assert_eq!(
        p.a.entered("VI_2", State::Backup),
        Some(t),
        "VI_2 follows VI_1"
    );
    assert_eq!(
        p.a.state("VI_2"),
        State::Backup,
        "and stays, its group hearing a master"
    );
}

#[test]
fn a_failing_track_script_with_a_negative_weight_hands_over_by_priority() {
    let mut p = single(200, 100);
    p.a.specs_mut()[0].track_scripts = vec![script("check", 2, -150)];
    p.a.scripts.insert("check".into(), Some(true));
    p.start('a');
    p.start('b');
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_1"), State::Master);
    p.a.scripts.insert("check".into(), Some(false));
    p.drive_until(20 * S);
    // Two failures (runs at 10 s and 11 s): priority 200 − 150 = 50 < B's 100.
    assert_eq!(p.a.router.members()[0].inst.priority(), 50);
    assert!(p.a.sent.iter().any(|s| s.2 == 50), "adverts carry 50");
    assert_eq!(p.b.state("VI_1"), State::Master);
    assert_eq!(p.a.state("VI_1"), State::Backup);
    // Recovery (rise 1): 200 again, and A preempts.
    p.a.scripts.insert("check".into(), Some(true));
    p.drive_until(30 * S);
    assert_eq!(p.a.router.members()[0].inst.priority(), 200);
    assert_eq!(p.a.state("VI_1"), State::Master);
    assert_eq!(p.b.state("VI_1"), State::Backup);
}

#[test]
fn a_weight_zero_script_failure_is_fault_and_the_peer_takes_over_at_once() {
    let mut p = single(200, 100);
    p.a.specs_mut()[0].track_scripts = vec![script("check", 1, 0)];
    p.a.scripts.insert("check".into(), Some(true));
    p.start('a');
    p.start('b');
    p.drive_until(10 * S - MS);
    assert_eq!(p.a.state("VI_1"), State::Master);
    p.a.scripts.insert("check".into(), Some(false));
    p.drive_until(10 * S);
    assert_eq!(p.a.state("VI_1"), State::Fault, "fall 1: the run at 10 s");
    assert!(
        p.a.sent.iter().any(|s| s.0 == 10 * S && s.2 == 0),
        "priority 0 sent"
    );
    p.drive_until(11 * S);
    assert_eq!(
        p.b.entered("VI_1", State::Master),
        Some(10 * S + p.latency + 156 * S / 256)
    );
    p.a.scripts.insert("check".into(), Some(true));
    p.drive_until(20 * S);
    assert_eq!(p.a.state("VI_1"), State::Master);
}

#[test]
fn a_script_still_running_at_its_next_run_is_killed_and_counted_as_a_failure() {
    let mut p = single(200, 100);
    p.a.specs_mut()[0].track_scripts = vec![script("hang", 2, 0)];
    p.a.scripts.insert("hang".into(), None);
    p.start('a');
    p.drive_until(2 * S - 1);
    assert_eq!(p.a.killed, 1, "killed at 1 s");
    assert_eq!(p.a.state("VI_1"), State::Backup, "one failure of fall 2");
    p.drive_until(2 * S);
    assert_eq!(p.a.killed, 2);
    assert_eq!(p.a.state("VI_1"), State::Fault);
    assert_eq!(p.a.entered("VI_1", State::Fault), Some(2 * S));
}

#[test]
fn the_second_gratuitous_arp_burst_comes_5_s_after_mastership_only_if_still_master() {
    let mut p = single(200, 100);
    p.start('a');
    p.drive_until(4 * S);
    let m = p.a.entered_master_or_panic();
    p.drive_until(m + garp::MASTER_DELAY - 1);
    assert_eq!(p.a.garps, 0);
    p.drive_until(m + garp::MASTER_DELAY);
    assert_eq!(p.a.garps, 1);
    // Master again later, but FAULT before the 5 s: no second burst.
    p.set_link('a', "wan0", false);
    p.set_link('a', "wan0", true);
    p.drive_until(p.now + 4 * S);
    let m2 = p.a.entered_master_or_panic();
    assert!(m2 > m + garp::MASTER_DELAY);
    p.drive_until(m2 + S);
    p.set_link('a', "wan0", false);
    p.drive_until(m2 + 10 * S);
    assert_eq!(p.a.garps, 1);
}

impl Node {
    fn specs_mut(&mut self) -> &mut Vec<InstanceSpec> {
        &mut self.specs
    }

    fn entered_master_or_panic(&self) -> Nanos {
        self.entered("VI_1", State::Master).expect("MASTER")
    }
}

// ---- one box, no link -----------------------------------------------------------------------

fn router_with(specs: Vec<InstanceSpec>, groups: &[Vec<String>]) -> (Router, Reload) {
    let mut r = Router::new();
    let plan = r.reload(0, specs, groups);
    (r, plan)
}

#[test]
fn script_weights_move_the_priority_and_weight_zero_faults() {
    let mut s = spec("VI_1", "wan0", 51, 100, "198.18.0.11");
    s.track_scripts = vec![script("a", 1, 20), script("b", 1, -60), script("c", 1, 0)];
    let (mut r, _) = router_with(vec![s.clone()], &[]);
    let m = &mut r.members[0];
    // All up: +20 only.
    assert_eq!(m.effective_priority(), 120);
    assert!(!m.own_fault());
    m.scripts[0].up = false;
    m.scripts[1].up = false;
    assert_eq!(m.effective_priority(), 40);
    m.scripts[2].up = false;
    assert!(m.own_fault());
    // Clamped to 1..254; an owner stays 255.
    for (base, w, up, want) in [
        (10, -60, false, 1),
        (250, 20, true, 254),
        (255, -60, false, 255),
    ] {
        let mut s = spec("VI_1", "wan0", 51, base, "198.18.0.11");
        s.track_scripts = vec![script("a", 1, w)];
        let (mut r, _) = router_with(vec![s], &[]);
        r.members[0].scripts[0].up = up;
        assert_eq!(r.members[0].effective_priority(), want, "{base} {w}");
    }
    // A link down is a fault.
    let (mut r, _) = router_with(vec![spec("VI_1", "wan0", 51, 100, "198.18.0.11")], &[]);
    r.handle_links(0, |n| n != "wan0");
    assert!(r.members[0].own_fault());
    assert_eq!(r.members[0].inst.state(), State::Fault);
}

/// An instance `name` with VRID `vrid` holding `vips` (/32 each).
fn named(name: &str, vrid: u8, vips: &[&str]) -> InstanceSpec {
    let mut s = spec(name, "wan0", vrid, 100, "198.18.0.11");
    s.cfg.vips = vips.iter().map(|v| v.parse().unwrap()).collect();
    s.prefixes = s.cfg.vips.iter().map(|&v| (v, 32)).collect();
    s
}

#[test]
fn reload_with_an_instance_that_cannot_start_keeps_sync_groups_on_their_members() {
    // VI_0 cannot start (priority 0): it is left out, and the group still means VI_1 and
    // VI_2, not whatever sits at their positions in the file.
    let mut bad = named("VI_0", 50, &["198.18.0.100"]);
    bad.cfg.priority = 0;
    let specs = vec![
        bad,
        named("VI_1", 51, &["198.18.0.101"]),
        named("VI_2", 52, &["198.18.0.102"]),
    ];
    let (mut r, plan) = router_with(specs, &[vec!["VI_1".into(), "VI_2".into()]]);
    assert!(plan
        .lines
        .iter()
        .any(|l| l.starts_with("VRRP instance VI_0: priority 0")));
    let names: Vec<&str> = r.members.iter().map(|m| m.spec.name.as_str()).collect();
    assert_eq!(names, ["VI_1", "VI_2"]);
    assert_eq!(r.groups, vec![vec![0, 1]]);
    assert!(r.members.iter().all(|m| m.group == Some(0)));
    // A fault of VI_2 is a fault of VI_1.
    r.members[1].link_down = true;
    r.settle(0);
    assert_eq!(r.members[0].inst.state(), State::Fault);
}

#[test]
fn a_refused_reconfigure_keeps_the_running_spec() {
    let old = named("VI_1", 51, &["198.18.0.101"]);
    let (mut r, _) = router_with(vec![old.clone()], &[]);
    r.members[0].holding = true;
    let mut new = named("VI_1", 51, &["198.18.0.101", "198.18.0.105"]);
    new.cfg.advert_interval = 5_000_000; // not a whole centisecond: refused
    let plan = r.reload(0, vec![new], &[]);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        r.members[0].spec, old,
        "the spec must match what the instance runs"
    );
    assert!(plan.dropped.is_empty() && plan.released.is_empty());
    assert!(
        plan.lines
            .iter()
            .any(|l| l.contains("VI_1") && l.contains("advert interval")),
        "{:?}",
        plan.lines
    );
}

#[test]
fn a_vip_moved_from_a_master_to_a_backup_instance_is_released() {
    let x: IpAddr = "198.18.0.101".parse().unwrap();
    let before = vec![
        named("VI_1", 51, &["198.18.0.101", "198.18.0.102"]),
        named("VI_2", 52, &["198.18.0.103"]),
    ];
    let (mut r, _) = router_with(before, &[]);
    r.members[0].holding = true;
    let after = vec![
        named("VI_1", 51, &["198.18.0.102"]),
        named("VI_2", 52, &["198.18.0.103", "198.18.0.101"]),
    ];
    let plan = r.reload(0, after, &[]);
    assert_eq!(plan.released, [x], "no longer held: no longer steered");
    assert_eq!(plan.dropped, [(2, x, 32)]);
    assert_eq!(
        r.members[0].spec.cfg.vips,
        ["198.18.0.102".parse::<IpAddr>().unwrap()]
    );

    // Moved to another instance that holds its VIPs: it stays steered and on the interface.
    let before = vec![
        named("VI_1", 51, &["198.18.0.101", "198.18.0.102"]),
        named("VI_3", 53, &["198.18.0.104"]),
    ];
    let (mut r, _) = router_with(before, &[]);
    r.members[0].holding = true;
    r.members[1].holding = true;
    let after = vec![
        named("VI_1", 51, &["198.18.0.102"]),
        named("VI_3", 53, &["198.18.0.104", "198.18.0.101"]),
    ];
    let plan = r.reload(0, after, &[]);
    assert!(plan.released.is_empty() && plan.dropped.is_empty());
}

#[test]
fn a_removed_master_releases_with_priority_0_and_its_scripts_are_killed() {
    let mut s = spec("VI_1", "wan0", 51, 255, "198.18.0.11");
    s.track_scripts = vec![script("hang", 3, 0)];
    let keep = spec("VI_2", "wan0", 52, 100, "198.18.0.11");
    let (mut r, _) = router_with(vec![s, keep.clone()], &[]);
    r.handle_timeout(0);
    let actions: Vec<Action> = std::iter::from_fn(|| r.poll_action()).collect();
    let run = actions.iter().find_map(|a| match a {
        Action::RunScript { run, .. } => Some(*run),
        _ => None,
    });
    assert_eq!(r.members[0].inst.state(), State::Master, "owner");
    r.stop_removed(S, std::slice::from_ref(&keep));
    let actions: Vec<Action> = std::iter::from_fn(|| r.poll_action()).collect();
    assert_eq!(
        actions,
        [
            Action::Transmit {
                inst: 0,
                transmit: Transmit { priority: 0 }
            },
            Action::Event {
                inst: 0,
                event: Event::Stopped
            }
        ]
    );
    let plan = r.reload(S, vec![keep], &[]);
    assert_eq!(plan.removed, ["VRRP instance VI_1 removed"]);
    assert_eq!(
        r.poll_action(),
        Some(Action::KillScript { run: run.unwrap() })
    );
    assert_eq!(r.members.len(), 1);
}

#[test]
fn identity_is_name_interface_vrid_version() {
    let a = spec("VI_1", "wan0", 51, 100, "198.18.0.11");
    let mut b = spec("VI_1", "wan0", 51, 200, "198.18.0.12");
    b.track_scripts = vec![script("x", 1, 5)];
    assert_eq!(a.identity(), b.identity());
    b.cfg.vrid = 52;
    assert_ne!(a.identity(), b.identity());
}

#[test]
fn an_advert_for_a_vrid_without_instance_is_a_vrid_error() {
    let (mut r, _) = router_with(vec![spec("VI_1", "wan0", 51, 100, "198.18.0.11")], &[]);
    let mut other = Router::new();
    other.reload(0, vec![spec("VI_9", "wan0", 9, 100, "198.18.0.12")], &[]);
    other.handle_timeout(10 * S);
    let Some(Action::Transmit { inst, transmit }) =
        std::iter::from_fn(|| other.poll_action()).find(|a| matches!(a, Action::Transmit { .. }))
    else {
        panic!("no advert");
    };
    let m = &other.members[inst];
    let mut buf = [0u8; 200];
    let dst = IpAddr::V4(crate::vrrp::packet::MULTICAST_V4);
    let n = crate::vrrp::packet::encode_ipv4(
        &mut buf,
        &m.inst.advert_fields(&transmit),
        m.spec.cfg.primary,
        dst,
    )
    .unwrap();
    let a = crate::vrrp::packet::parse_ipv4(&buf[..n]).unwrap();
    assert_eq!(r.handle_advert(S, "wan0", &a), Err(VrrpError::Vrid));
    assert_eq!(r.handle_advert(S, "lan0", &a), Err(VrrpError::Vrid));
}
