//! [`Checks`] driven by hand: a simulated clock and made-up probe results.

use super::*;
use crate::conntrack::{ConnState, NewConn, Timeouts};
use crate::flow::Proto;

const MS: Nanos = 1_000_000;

fn key() -> ServiceKey {
    ServiceKey {
        vip: "198.18.0.100".parse().unwrap(),
        port: 80,
        proto: Proto::Tcp,
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn http_check(interval_ms: u64, rise: u32, fall: u32) -> HealthCheck {
    HealthCheck {
        kind: CheckType::Http,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(interval_ms),
        rise,
        fall,
        http: Some(config::HttpCheck::default()),
        exec: None,
    }
}

fn real(addr: &str, check: Option<HealthCheck>) -> RealPlan {
    RealPlan {
        addr: sa(addr),
        weight: 1,
        stats: Arc::new(RealStats::default()),
        check,
    }
}

fn service(reals: Vec<RealPlan>) -> ServicePlan {
    ServicePlan {
        name: "web".into(),
        key: key(),
        on_failure: OnFailure::Remove,
        quorum: Quorum::default(),
        sorry: None,
        state: Arc::default(),
        reals,
    }
}

fn two_reals(on_failure: OnFailure) -> Plan {
    let c = Some(http_check(200, 2, 2));
    let mut s = service(vec![
        real("198.18.1.11:80", c.clone()),
        real("198.18.1.12:80", c),
    ]);
    s.on_failure = on_failure;
    Plan { services: vec![s] }
}

fn checks() -> Checks {
    Checks::new(Arc::default())
}

/// The id of the job for `addr` among `jobs`.
fn id_of(jobs: &[Job], addr: &str) -> u64 {
    jobs.iter().find(|j| j.addr == sa(addr)).expect(addr).id
}

/// Runs every due probe at `now` with `result(addr)`; returns the log lines.
fn tick(
    c: &mut Checks,
    now: Nanos,
    conns: &ConnTable,
    result: &dyn Fn(SocketAddr) -> Outcome,
) -> Vec<String> {
    let jobs = c.due(now);
    let mut lines = Vec::new();
    for j in jobs {
        lines.extend(c.complete(j.id, now, &result(j.addr), Duration::from_millis(1), conns));
    }
    lines
}

fn refused(_: SocketAddr) -> Outcome {
    Err(Failure::Connect("Connection refused".into()))
}

#[test]
fn checks_are_spread_over_the_interval_and_keep_their_phase() {
    let mut c = checks();
    let c4 = Some(http_check(200, 2, 2));
    let plan = Plan {
        services: vec![service(
            [
                "198.18.1.11:80",
                "198.18.1.12:80",
                "198.18.1.13:80",
                "198.18.1.14:80",
            ]
            .iter()
            .map(|a| real(a, c4.clone()))
            .collect(),
        )],
    };
    assert!(
        c.update(plan, 1000 * MS).is_empty(),
        "starts up, quorum kept"
    );
    assert_eq!(c.len(), 4);
    // Due at +0, +50, +100, +150 ms.
    let conns = ConnTable::new(16);
    let mut seen = Vec::new();
    for t in (1000..1200).step_by(10) {
        for j in c.due(t * MS) {
            seen.push((t, j.addr.ip().to_string()));
            c.complete(j.id, t * MS, &Ok(()), Duration::ZERO, &conns);
        }
    }
    let times: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(times, [1000, 1050, 1100, 1150]);
    // Each then runs every 200 ms on its own phase.
    assert_eq!(c.next_due(), Some(1200 * MS));
    let later: Vec<u64> = (1200..1400)
        .step_by(10)
        .filter(|t| {
            let jobs = c.due(t * MS);
            for j in &jobs {
                c.complete(j.id, t * MS, &Ok(()), Duration::ZERO, &conns);
            }
            !jobs.is_empty()
        })
        .collect();
    assert_eq!(later, [1200, 1250, 1300, 1350]);
}

#[test]
fn a_probe_in_flight_is_not_started_twice_and_a_late_result_reschedules_from_now() {
    let mut c = checks();
    c.update(
        Plan {
            services: vec![service(vec![real(
                "198.18.1.11:80",
                Some(http_check(200, 1, 1)),
            )])],
        },
        0,
    );
    let jobs = c.due(0);
    assert_eq!(jobs.len(), 1);
    assert!(c.due(500 * MS).is_empty(), "still in flight");
    assert_eq!(c.next_due(), None);
    c.complete(
        jobs[0].id,
        700 * MS,
        &Ok(()),
        Duration::ZERO,
        &ConnTable::new(4),
    );
    assert_eq!(
        c.next_due(),
        Some(700 * MS),
        "due at 200 ms has passed: now"
    );
}

/// A connection of `client_port` to real `r` in the table.
fn conn(t: &ConnTable, client_port: u16, r: &RealPlan) {
    t.insert(
        NewConn {
            proto: Proto::Tcp,
            client: SocketAddr::new("198.18.0.2".parse().unwrap(), client_port),
            vip: sa("198.18.0.100:80"),
            real: r.addr,
            state: ConnState::SynRecv,
            stats: r.stats.clone(),
        },
        0,
        &Timeouts::default(),
    )
    .unwrap();
}

#[test]
fn fall_failures_mark_down_and_remove_its_connections_rise_successes_bring_it_back() {
    let plan = two_reals(OnFailure::Remove);
    let (r1, r2) = (
        plan.services[0].reals[0].clone(),
        plan.services[0].reals[1].clone(),
    );
    let table = ConnTable::new(64);
    for p in 0..3 {
        conn(&table, 1000 + p, &r1);
        conn(&table, 2000 + p, &r2);
    }
    let mut c = checks();
    // Connection sync on: the removed connections go to the peers as Deletes.
    let (ring, mut synced) = crate::sync::ring::ring(16);
    c.set_sync(Some(ring));
    c.update(plan, 0);
    let r2_down = |a: SocketAddr| if a == r2.addr { refused(a) } else { Ok(()) };
    // r1 due at 0, r2 at 100 ms; interval 200 ms, fall 2.
    assert_eq!(tick(&mut c, 0, &table, &r2_down), Vec::<String>::new());
    assert_eq!(
        tick(&mut c, 100 * MS, &table, &r2_down),
        ["Error connecting server [198.18.1.12]:tcp:80."]
    );
    assert!(r2.stats.is_up(), "one failure of fall 2");
    tick(&mut c, 200 * MS, &table, &r2_down);
    assert_eq!(
        tick(&mut c, 300 * MS, &table, &r2_down),
        [
            "Error connecting server [198.18.1.12]:tcp:80.",
            "Check on service [198.18.1.12]:tcp:80 failed after 1 retry.",
            "Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80",
            "Removed 3 connections of service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80",
        ]
    );
    assert!(!r2.stats.is_up());
    assert_eq!(table.len(), 3);
    let mut deletes = Vec::new();
    assert_eq!(synced.drain_into(&mut deletes, 16), 3);
    let mut ports: Vec<u16> = deletes
        .iter()
        .map(|d| match d {
            crate::sync::SyncRecord::Conn(c) => {
                assert_eq!(
                    (c.op, c.real),
                    (crate::sync::SyncOp::Delete, r2.addr.into())
                );
                c.client.port
            }
            crate::sync::SyncRecord::Template(_) => panic!("a template: {d:?}"),
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [2000, 2001, 2002]);
    assert_eq!(r2.stats.total_connections(), 0);
    assert_eq!(r1.stats.total_connections(), 3);
    // Down: failures are not logged again.
    assert!(tick(&mut c, 500 * MS, &table, &r2_down).is_empty());
    // Back: rise 2.
    assert!(tick(&mut c, 700 * MS, &table, &|_| Ok(())).is_empty());
    assert_eq!(
        tick(&mut c, 900 * MS, &table, &|_| Ok(())),
        [
            "HTTP status code success to [198.18.1.12]:tcp:80 url(/)",
            "Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80",
        ]
    );
    assert!(r2.stats.is_up());
}

#[test]
fn drain_keeps_the_connections_and_says_disabling() {
    let plan = two_reals(OnFailure::Drain);
    let r2 = plan.services[0].reals[1].clone();
    let table = ConnTable::new(64);
    conn(&table, 2000, &r2);
    let mut c = checks();
    c.update(plan, 0);
    let r2_503 = |a: SocketAddr| {
        if a == r2.addr {
            Err(Failure::Status(503))
        } else {
            Ok(())
        }
    };
    let mut lines = Vec::new();
    for t in 0..4 {
        lines.extend(tick(&mut c, t * 100 * MS, &table, &r2_503));
    }
    assert_eq!(
        lines,
        [
            "HTTP status code error to server [198.18.1.12]:tcp:80 (status 503).",
            "HTTP status code error to server [198.18.1.12]:tcp:80 (status 503).",
            "Check on service [198.18.1.12]:tcp:80 failed after 1 retry.",
            "Disabling service [198.18.1.12]:tcp:80 of VS [198.18.0.100]:tcp:80",
        ]
    );
    assert!(!r2.stats.is_up());
    assert_eq!(table.len(), 1, "drain: the connection continues");
    assert_eq!(r2.stats.total_connections(), 1);
    for t in 4..8 {
        lines = tick(&mut c, t * 100 * MS, &table, &|_| Ok(()));
        if !lines.is_empty() {
            break;
        }
    }
    assert_eq!(
        lines.last().unwrap(),
        "Enabling service [198.18.1.12]:tcp:80 of VS [198.18.0.100]:tcp:80"
    );
}

#[test]
fn losing_every_server_loses_quorum_and_brings_in_the_sorry_server() {
    let mut plan = two_reals(OnFailure::Remove);
    plan.services[0].sorry = Some(sa("198.18.1.11:8080"));
    let state = plan.services[0].state.clone();
    let table = ConnTable::new(8);
    let mut c = checks();
    c.update(plan, 0);
    let mut lines = Vec::new();
    for t in 0..4 {
        lines.extend(tick(&mut c, t * 100 * MS, &table, &refused));
    }
    assert!(!state.has_quorum());
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80",
            "Lost quorum 1-0=1 > 0 for VS [198.18.0.100]:tcp:80",
            "Adding sorry server [198.18.1.11]:tcp:8080 to VS [198.18.0.100]:tcp:80",
            "Removing alive servers from the pool for VS [198.18.0.100]:tcp:80",
        ]
    );
    // One server back (rise 2) is enough for min_up 1.
    lines.clear();
    for t in 4..8 {
        lines.extend(tick(&mut c, t * 100 * MS, &table, &|a| {
            if a == sa("198.18.1.11:80") {
                Ok(())
            } else {
                refused(a)
            }
        }));
    }
    assert!(state.has_quorum());
    assert_eq!(
        lines[lines.len() - 3..],
        [
            "Gained quorum 1+0=1 <= 1 for VS [198.18.0.100]:tcp:80",
            "Removing sorry server [198.18.1.11]:tcp:8080 from VS [198.18.0.100]:tcp:80",
            "Adding alive servers to the pool for VS [198.18.0.100]:tcp:80",
        ]
    );
}

#[test]
fn quorum_with_hysteresis_counts_servers_up_with_weight() {
    // Four servers, min_up 3, hysteresis 1: lost below 2 up, regained at 4. A quiescent
    // server (weight 0) does not count.
    let c1 = Some(http_check(100, 1, 1));
    let mut s = service(
        (11..=15)
            .map(|i| real(&format!("198.18.1.{i}:80"), c1.clone()))
            .collect(),
    );
    s.reals[4].weight = 0;
    s.quorum = Quorum {
        min_up: 3,
        hysteresis: 1,
    };
    let state = s.state.clone();
    let table = ConnTable::new(8);
    let mut c = checks();
    assert!(
        c.update(Plan { services: vec![s] }, 0).is_empty(),
        "4 up: 4 >= 3 + 1"
    );
    let down = |n: u8| {
        move |a: SocketAddr| {
            let last = match a.ip() {
                std::net::IpAddr::V4(v) => v.octets()[3],
                _ => 0,
            };
            if last < 11 + n {
                refused(a)
            } else {
                Ok(())
            }
        }
    };
    let run = |c: &mut Checks, from: u64, n: u8| {
        let mut l = Vec::new();
        for t in from..from + 2 {
            l.extend(tick(c, t * 100 * MS, &table, &down(n)));
        }
        l
    };
    run(&mut c, 0, 2);
    assert!(state.has_quorum(), "2 up is not below 3 - 1");
    let l = run(&mut c, 2, 3);
    assert!(!state.has_quorum(), "1 up");
    assert!(
        l.contains(&"Lost quorum 3-1=2 > 1 for VS [198.18.0.100]:tcp:80".to_string()),
        "{l:?}"
    );
    run(&mut c, 4, 1);
    assert!(!state.has_quorum(), "3 up does not reach 3 + 1");
    let l = run(&mut c, 6, 0);
    assert!(state.has_quorum());
    assert!(
        l.contains(&"Gained quorum 3+1=4 <= 4 for VS [198.18.0.100]:tcp:80".to_string()),
        "{l:?}"
    );
}

#[test]
fn a_service_can_start_with_quorum_down() {
    let mut s = service(vec![
        real("198.18.1.11:80", None),
        real("198.18.1.12:80", None),
    ]);
    s.quorum = Quorum {
        min_up: 2,
        hysteresis: 1,
    };
    s.sorry = Some(sa("198.18.1.13:80"));
    let state = s.state.clone();
    let mut c = checks();
    assert_eq!(
        c.update(Plan { services: vec![s] }, 0),
        [
            "Starting with quorum down 2+1=3 > 2 for VS [198.18.0.100]:tcp:80",
            "Adding sorry server [198.18.1.13]:tcp:80 to VS [198.18.0.100]:tcp:80",
        ]
    );
    assert!(!state.has_quorum());
    assert!(c.is_empty(), "no check: nothing to probe");
}

#[test]
fn a_reload_keeps_unchanged_checks_restarts_changed_ones_and_drops_removed_ones() {
    let plan = two_reals(OnFailure::Remove);
    let r2 = plan.services[0].reals[1].clone();
    let table = ConnTable::new(8);
    let mut c = checks();
    c.update(plan.clone(), 0);
    // r2 fails once (fall 2), then a reload keeps its check: one more failure takes it down.
    let jobs = c.due(100 * MS);
    let r2_id = id_of(&jobs, "198.18.1.12:80");
    c.complete(r2_id, 100 * MS, &refused(r2.addr), Duration::ZERO, &table);
    for j in jobs.iter().filter(|j| j.id != r2_id) {
        c.complete(j.id, 100 * MS, &Ok(()), Duration::ZERO, &table);
    }
    assert!(c.update(plan.clone(), 150 * MS).is_empty());
    let jobs = c.due(300 * MS);
    let lines = c.complete(
        id_of(&jobs, "198.18.1.12:80"),
        300 * MS,
        &refused(r2.addr),
        Duration::ZERO,
        &table,
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Removing service [198.18.1.12]")),
        "{lines:?}"
    );
    for j in jobs.iter().filter(|j| j.addr != r2.addr) {
        c.complete(j.id, 300 * MS, &Ok(()), Duration::ZERO, &table);
    }
    // A changed check (fall 3) keeps it down; an in-flight result of the old check is ignored.
    let stale = c.due(500 * MS);
    let mut changed = plan.clone();
    for r in &mut changed.services[0].reals {
        r.check = Some(http_check(200, 2, 3));
    }
    assert!(c.update(changed, 550 * MS).is_empty());
    assert!(!r2.stats.is_up());
    for j in &stale {
        assert!(c
            .complete(j.id, 560 * MS, &Ok(()), Duration::ZERO, &table)
            .is_empty());
    }
    // Without a check the server is up again, and no longer probed.
    let mut unchecked = plan.clone();
    unchecked.services[0].reals[1].check = None;
    assert_eq!(
        c.update(unchecked, 600 * MS),
        ["Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80"]
    );
    assert!(r2.stats.is_up());
    assert_eq!(c.len(), 1);
    // Removed from the config: not checked.
    let mut gone = plan;
    gone.services[0].reals.truncate(1);
    c.update(gone, 700 * MS);
    assert_eq!(c.len(), 1);
    assert!(c.due(10_000 * MS).iter().all(|j| j.addr != r2.addr));
}

#[test]
fn log_wording_per_check_type() {
    let vs = key();
    let rs = "[198.18.1.11]:tcp:80";
    let mut c = HealthCheck::default();
    assert_eq!(
        failure_line(&c, rs, &vs, &Failure::Connect("x".into())),
        "TCP connection to [198.18.1.11]:tcp:80 failed."
    );
    assert_eq!(
        failure_line(&c, rs, &vs, &Failure::ConnectTimeout),
        "TCP connection to [198.18.1.11]:tcp:80 timeout."
    );
    assert_eq!(
        success_line(&c, rs, &vs),
        "TCP connection to [198.18.1.11]:tcp:80 success."
    );
    c.kind = CheckType::Http;
    assert_eq!(
        failure_line(&c, rs, &vs, &Failure::Timeout),
        "Timeout WEB read server [198.18.1.11]:tcp:80."
    );
    c.kind = CheckType::Udp;
    assert_eq!(
        failure_line(&c, "[198.18.1.11]:udp:53", &vs, &Failure::Timeout),
        "UDP connection to [198.18.1.11]:udp:53 timeout."
    );
    c.kind = CheckType::Exec;
    c.exec = Some(config::ExecCheck {
        command: "/usr/local/bin/check %ADDR% %PORT%".into(),
    });
    assert_eq!(
        failure_line(&c, rs, &vs, &Failure::Exit(2)),
        "Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/usr/local/bin/check] failed (exited with status 2)."
    );
    assert_eq!(
        failure_line(&c, rs, &vs, &Failure::ExecTimeout),
        "Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/usr/local/bin/check] timed out."
    );
}

#[test]
fn the_plan_takes_each_reals_effective_check() {
    let text = "
datapath:
  interfaces: [{ name: wan0, queues: [0] }]
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    scheduler: rr
    sorry_server: 198.18.1.11:8080
    quorum: { min_up: 2, hysteresis: 1 }
    on_failure: drain
    health_check: { type: http, interval: 1s, timeout: 500ms, http: { path: /health } }
    reals:
      - { address: 198.18.1.11:80 }
      - { address: 198.18.1.12:80, health_check: { type: tcp } }
      - { address: 198.18.1.13:80, health_check: { type: none } }
  - name: dns
    vip: 198.18.0.100
    port: 53
    protocol: udp
    reals:
      - { address: 198.18.1.11:5353 }
";
    let cfg =
        Config::from_str_named(text, "t.yaml", &|_: &str| true).unwrap_or_else(|e| panic!("{e}"));
    let snap = crate::control::snapshot::build(&cfg, vec![], 1, None);
    let p = plan(&cfg, &snap);
    let web = &p.services[0];
    assert_eq!(
        (web.on_failure, web.quorum.min_up, web.sorry),
        (OnFailure::Drain, 2, Some(sa("198.18.1.11:8080")))
    );
    assert!(Arc::ptr_eq(&web.state, &snap.services[0].state));
    assert!(Arc::ptr_eq(
        &web.reals[0].stats,
        &snap.services[0].reals[0].stats
    ));
    let kinds: Vec<_> = web
        .reals
        .iter()
        .map(|r| r.check.as_ref().map(|c| c.kind))
        .collect();
    assert_eq!(kinds, [Some(CheckType::Http), Some(CheckType::Tcp), None]);
    assert_eq!(
        web.reals[0]
            .check
            .as_ref()
            .unwrap()
            .http
            .as_ref()
            .unwrap()
            .path,
        "/health"
    );
    assert!(
        p.services[1].reals[0].check.is_none(),
        "no health_check: not checked"
    );
}

/// An IPv6 service end to end through the plan: the config's IPv6 real servers and sorry server
/// reach the plan, every log line writes addresses as keepalived does (`[2001:2:0:1::12]:tcp:80`),
/// failures take the servers out, the lost quorum brings in the IPv6 sorry server, and one
/// server back gains it again.
#[test]
fn an_ipv6_service_takes_servers_out_and_brings_in_its_ipv6_sorry_server() {
    let text = "
datapath:
  interfaces: [{ name: wan0, queues: [0] }]
services:
  - name: web6
    vip: \"2001:2::100\"
    port: 80
    scheduler: rr
    sorry_server: \"[2001:2:0:1::11]:8080\"
    health_check: { type: http, interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }
    reals:
      - { address: \"[2001:2:0:1::11]:80\" }
      - { address: \"[2001:2:0:1::12]:80\", health_check: { type: exec, interval: 200ms, timeout: 200ms, rise: 2, fall: 2, exec: { command: \"ping -6 -c1 -W1 %ADDR%\" } } }
";
    let cfg =
        Config::from_str_named(text, "t.yaml", &|_: &str| true).unwrap_or_else(|e| panic!("{e}"));
    let snap = crate::control::snapshot::build(&cfg, vec![], 1, None);
    let p = plan(&cfg, &snap);
    let s = &p.services[0];
    assert_eq!(s.sorry, Some(sa("[2001:2:0:1::11]:8080")));
    let addrs: Vec<SocketAddr> = s.reals.iter().map(|r| r.addr).collect();
    assert_eq!(
        addrs,
        [sa("[2001:2:0:1::11]:80"), sa("[2001:2:0:1::12]:80")]
    );
    let state = s.state.clone();
    let table = ConnTable::new(8);
    let mut c = checks();
    assert!(c.update(p, 0).is_empty());
    let mut lines = Vec::new();
    let exit1 = |a: SocketAddr| {
        if a == sa("[2001:2:0:1::12]:80") {
            Err(Failure::Exit(1))
        } else {
            refused(a)
        }
    };
    for t in 0..4 {
        lines.extend(tick(&mut c, t * 100 * MS, &table, &exit1));
    }
    assert!(!state.has_quorum());
    assert_eq!(
        lines,
        [
            "Error connecting server [2001:2:0:1::11]:tcp:80.",
            "Misc check for [[2001:2:0:1::12]:tcp:80 VS [2001:2::100]:tcp:80] by [ping] failed (exited with status 1).",
            "Error connecting server [2001:2:0:1::11]:tcp:80.",
            "Check on service [2001:2:0:1::11]:tcp:80 failed after 1 retry.",
            "Removing service [2001:2:0:1::11]:tcp:80 from VS [2001:2::100]:tcp:80",
            "Misc check for [[2001:2:0:1::12]:tcp:80 VS [2001:2::100]:tcp:80] by [ping] failed (exited with status 1).",
            "Check on service [2001:2:0:1::12]:tcp:80 failed after 1 retry.",
            "Removing service [2001:2:0:1::12]:tcp:80 from VS [2001:2::100]:tcp:80",
            "Lost quorum 1-0=1 > 0 for VS [2001:2::100]:tcp:80",
            "Adding sorry server [2001:2:0:1::11]:tcp:8080 to VS [2001:2::100]:tcp:80",
            "Removing alive servers from the pool for VS [2001:2::100]:tcp:80",
        ]
    );
    lines.clear();
    for t in 4..8 {
        lines.extend(tick(&mut c, t * 100 * MS, &table, &|_| Ok(())));
    }
    assert!(state.has_quorum());
    assert_eq!(
        lines[..5],
        [
            "HTTP status code success to [2001:2:0:1::11]:tcp:80 url(/)",
            "Adding service [2001:2:0:1::11]:tcp:80 to VS [2001:2::100]:tcp:80",
            "Gained quorum 1+0=1 <= 1 for VS [2001:2::100]:tcp:80",
            "Removing sorry server [2001:2:0:1::11]:tcp:8080 from VS [2001:2::100]:tcp:80",
            "Adding alive servers to the pool for VS [2001:2::100]:tcp:80",
        ]
    );
    assert_eq!(
        lines[5..],
        [
            "Misc check for [[2001:2:0:1::12]:tcp:80 VS [2001:2::100]:tcp:80] by [ping] succeeded.",
            "Adding service [2001:2:0:1::12]:tcp:80 to VS [2001:2::100]:tcp:80",
        ]
    );
}
