//! `process()` behaviour that spans several packets or a configuration change, on the NAT lab
//! fixture (frames built from field values by `fixtures/tcp4.rs`; the golden table covers exact
//! bytes).
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

#[path = "fixtures/nat_lab.rs"]
mod nat_lab;
#[path = "fixtures/tcp4.rs"]
mod tcp4;

use std::sync::Arc;

use nat_lab::*;
use tcp4::Tcp4;
use xvs::datapath::{DropReason, Processor, Shared, Verdict};
use xvs::flow::NANOS_PER_SEC;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

/// A client → VIP:80 TCP frame with valid checksums.
fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    Tcp4::new((WAN_MAC, CLIENT_MAC), (CLIENT, sport), (VIP, 80), flags).frame()
}

/// Sends one frame at second `t`; returns the verdict and the real server it went to.
fn send(p: &mut Processor, t: u64, sport: u16, flags: u8) -> (Verdict, Option<[u8; 4]>) {
    let now = t * NANOS_PER_SEC;
    p.begin_batch(now);
    let mut f = tcp(sport, flags);
    let v = p.process(now, 0, &mut f);
    let dst = matches!(v, Verdict::Tx(_)).then(|| [f[30], f[31], f[32], f[33]]);
    (v, dst)
}

#[test]
fn mid_stream_segments_are_dropped_unless_sloppy_tcp() {
    let mut strict = processor(100);
    assert_eq!(
        send(&mut strict, 1, 41000, ACK).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    let mut sloppy = Processor::new(Arc::new(Shared::new(
        snapshot(1, (3, 1), true),
        nexthops(),
        100,
    )));
    assert_eq!(send(&mut sloppy, 1, 41000, ACK), (Verdict::Tx(1), Some(R1)));
    // Picked up as ESTABLISHED: the next segment follows the same server.
    assert_eq!(send(&mut sloppy, 2, 41000, ACK), (Verdict::Tx(1), Some(R1)));
    // An RST never opens a connection, even with sloppy_tcp.
    assert_eq!(
        send(&mut sloppy, 3, 41001, RST).0,
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn a_service_sloppy_tcp_overrides_the_global_one() {
    // Global off, web's own on: a mid-stream ACK to a fresh box is picked up.
    let mut snap = snapshot(1, (3, 1), false);
    snap.services[0].sloppy_tcp = Some(true);
    let mut on = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
    assert_eq!(send(&mut on, 1, 41000, ACK), (Verdict::Tx(1), Some(R1)));
    assert_eq!(send(&mut on, 2, 41000, ACK), (Verdict::Tx(1), Some(R1)));
    assert_eq!(
        send(&mut on, 3, 41001, RST).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    // Global on, web's own off: dropped as without sloppy_tcp; a SYN still opens a flow.
    let mut snap = snapshot(1, (3, 1), true);
    snap.services[0].sloppy_tcp = Some(false);
    let mut off = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
    assert_eq!(
        send(&mut off, 1, 41000, ACK).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert!(matches!(send(&mut off, 1, 41002, SYN).0, Verdict::Tx(1)));
}

#[test]
fn full_table_of_established_flows_refuses_new_flows_but_keeps_forwarding_them() {
    let mut p = processor(4);
    for port in 0..4 {
        assert!(matches!(
            send(&mut p, 1, 42000 + port, SYN).0,
            Verdict::Tx(1)
        ));
        assert!(matches!(
            send(&mut p, 1, 42000 + port, ACK).0,
            Verdict::Tx(1)
        ));
    }
    assert_eq!(
        send(&mut p, 2, 43000, SYN).0,
        Verdict::Drop(DropReason::ConntrackFull)
    );
    for port in 0..4 {
        assert!(
            matches!(send(&mut p, 2, 42000 + port, ACK).0, Verdict::Tx(1)),
            "tracked flow {port}"
        );
    }
    assert_eq!(p.shared().conntrack.len(), 4);
}

#[test]
fn full_table_evicts_a_half_open_flow_for_a_new_one_and_counts_it() {
    let mut p = processor(4);
    send(&mut p, 1, 42000, SYN);
    send(&mut p, 1, 42000, ACK); // established: never evicted
    for port in 1..4 {
        send(&mut p, 1 + u64::from(port), 42000 + port, SYN);
    }
    assert!(matches!(send(&mut p, 5, 43000, SYN).0, Verdict::Tx(1)));
    let evictions = p
        .counters
        .conntrack_evictions
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(evictions, 1);
    // The oldest half-open flow (42001, from 2 s) is gone; its next segment is refused.
    assert_eq!(
        send(&mut p, 6, 42001, ACK).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert!(matches!(send(&mut p, 6, 42000, ACK).0, Verdict::Tx(1)));
    assert_eq!(p.shared().conntrack.len(), 4);
}

#[test]
fn a_new_snapshot_reschedules_new_flows_and_keeps_existing_ones() {
    let mut p = processor(100);
    // wrr 3:1: r1 r1 r1 r2.
    let first: Vec<_> = (0..4)
        .map(|i| send(&mut p, 1, 44000 + i, SYN).1.unwrap())
        .collect();
    assert_eq!(first, [R1, R1, R1, R2]);
    // r1 goes quiescent (weight 0).
    p.shared()
        .snapshot
        .store(Arc::new(snapshot(2, (0, 1), false)));
    for i in 0..4 {
        assert_eq!(
            send(&mut p, 2, 45000 + i, SYN).1,
            Some(R2),
            "new flows avoid the quiescent r1"
        );
    }
    for (i, want) in first.iter().enumerate() {
        assert_eq!(
            send(&mut p, 3, 44000 + i as u16, ACK).1,
            Some(*want),
            "existing flow {i} keeps its server"
        );
    }
}

#[test]
fn a_syn_after_rst_opens_a_new_connection() {
    let mut p = processor(100);
    assert_eq!(send(&mut p, 1, 46000, SYN).1, Some(R1));
    assert!(matches!(send(&mut p, 1, 46000, ACK).0, Verdict::Tx(1)));
    assert!(matches!(send(&mut p, 2, 46000, RST).0, Verdict::Tx(1)));
    // Reopened: scheduled afresh (wrr's next pick), not stuck on the closed entry.
    assert_eq!(send(&mut p, 3, 46000, SYN).1, Some(R1));
    assert_eq!(
        p.counters
            .new_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(p.shared().conntrack.len(), 1);
}

#[test]
fn idle_connections_expire_and_a_late_segment_is_refused() {
    let mut p = processor(100);
    assert_eq!(send(&mut p, 1, 47000, SYN).1, Some(R1));
    // tcp_syn is 30 s.
    assert!(matches!(send(&mut p, 30, 47000, ACK).0, Verdict::Tx(1)));
    // Now ESTABLISHED (15 min); idle past that, the entry is gone.
    assert_eq!(
        send(&mut p, 30 + 901, 47000, ACK).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(p.shared().conntrack.len(), 0);
}

#[test]
fn a_workers_batches_expire_the_shards_in_turn_one_per_batch() {
    // A table of eight 4096-entry shards holding 200 half-open flows (spread over the shards
    // by client port), all expired by second 40 (tcp_syn is 30 s) and never looked up again:
    // only the batches' expiry removes them, one shard per batch at the worker's own turn.
    let mut p = processor(8 * 4096);
    for i in 0..200 {
        assert!(send(&mut p, 1, 30000 + i, SYN).1.is_some());
    }
    assert_eq!(p.shared().conntrack.len(), 200);
    let left: Vec<usize> = (0..8)
        .map(|_| {
            p.begin_batch(40 * NANOS_PER_SEC);
            p.shared().conntrack.len()
        })
        .collect();
    assert!(
        left.windows(2).all(|w| w[1] < w[0]),
        "every batch sweeps another shard: {left:?}"
    );
    assert!(
        left[0] > 100,
        "one shard per batch, not the table: {left:?}"
    );
    assert_eq!(left[7], 0, "eight batches visit the eight shards: {left:?}");
}

#[test]
fn a_removed_service_packets_are_never_sent_back_as_replies() {
    let mut p = processor(100);
    assert_eq!(send(&mut p, 1, 48000, SYN).1, Some(R1));
    // The service disappears (reload); the client's next segment must not match its own
    // connection's original key as if it were a reply.
    let empty = xvs::datapath::Snapshot::new(
        2,
        ports(),
        vec![],
        xvs::conntrack::Timeouts::default(),
        false,
    );
    p.shared().snapshot.store(Arc::new(empty));
    assert_eq!(send(&mut p, 2, 48000, ACK).0, Verdict::Pass);
}

#[test]
fn wlc_sends_new_flows_to_the_least_loaded_server_as_connections_open_and_close() {
    // web as wlc with weights 1:1. Overhead = active * 256 + inactive; a SYN-only flow is
    // inactive, the client's ACK makes it ESTABLISHED (active), an RST makes it inactive again.
    let mut snap = snapshot(1, (1, 1), false);
    snap.services[0].scheduler = xvs::sched::SchedulerKind::Wlc;
    let mut p = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
    // Both idle: the first server. Then r1 has 1 inactive, r2 none.
    assert_eq!(send(&mut p, 1, 48000, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 1, 48001, SYN).1, Some(R2));
    // Both ESTABLISHED: 256 each.
    assert_eq!(send(&mut p, 2, 48000, ACK).1, Some(R1));
    assert_eq!(send(&mut p, 2, 48001, ACK).1, Some(R2));
    // A tie goes to the first: r1 257, then r2 (256 < 257): r2 257.
    assert_eq!(send(&mut p, 3, 48002, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 3, 48003, SYN).1, Some(R2));
    // r1's new flow is established: r1 512 against r2 257, so the next two go to r2.
    assert_eq!(send(&mut p, 4, 48002, ACK).1, Some(R1));
    assert_eq!(send(&mut p, 4, 48004, SYN).1, Some(R2));
    assert_eq!(send(&mut p, 4, 48005, SYN).1, Some(R2));
    // Closing both of r1's connections leaves it 2 inactive against r2's 256 + 3: back to r1.
    assert!(matches!(send(&mut p, 5, 48000, RST).0, Verdict::Tx(1)));
    assert!(matches!(send(&mut p, 5, 48002, RST).0, Verdict::Tx(1)));
    assert_eq!(send(&mut p, 6, 48006, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 6, 48007, SYN).1, Some(R1));
    let web = &p.shared().snapshot.load().services[0];
    let counts: Vec<_> = web
        .reals
        .iter()
        .map(|r| (r.active_connections(), r.inactive_connections()))
        .collect();
    assert_eq!(counts, [(0, 4), (1, 3)]);
}

// ---- health checks: servers held down, on_failure, quorum and the sorry server ----------------

const SORRY: [u8; 4] = R1;
const SORRY_PORT: u16 = 8080;

/// The lab's processor with a sorry server (r1:8080) on `web` when `sorry` is set.
fn processor_with_sorry(sorry: bool) -> Processor {
    let mut snap = snapshot(1, (1, 1), false);
    if sorry {
        snap.services[0].sorry = Some(xvs::sched::RealServer::new(
            std::net::SocketAddr::from((SORRY, SORRY_PORT)),
            1,
        ));
    }
    Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)))
}

/// Like `send`, with the destination port of a forwarded frame.
fn send_to(p: &mut Processor, t: u64, sport: u16, flags: u8) -> (Verdict, Option<([u8; 4], u16)>) {
    let now = t * NANOS_PER_SEC;
    p.begin_batch(now);
    let mut f = tcp(sport, flags);
    let v = p.process(now, 0, &mut f);
    let dst = matches!(v, Verdict::Tx(_)).then(|| {
        (
            [f[30], f[31], f[32], f[33]],
            u16::from_be_bytes([f[36], f[37]]),
        )
    });
    (v, dst)
}

fn web(p: &Processor) -> Arc<xvs::datapath::Snapshot> {
    p.shared().snapshot.load_full()
}

#[test]
fn with_every_real_server_down_new_flows_go_to_the_sorry_server_or_are_dropped_without_one() {
    for sorry in [true, false] {
        let mut p = processor_with_sorry(sorry);
        let snap = web(&p);
        for r in &snap.services[0].reals {
            r.stats.set_up(false);
        }
        let got = send_to(&mut p, 1, 50000, SYN);
        if sorry {
            assert_eq!(got, (Verdict::Tx(1), Some((SORRY, SORRY_PORT))));
            // The flow stays with the sorry server, replies included in the table.
            assert_eq!(send_to(&mut p, 2, 50000, ACK).1, Some((SORRY, SORRY_PORT)));
            let s = snap.services[0].sorry.as_ref().unwrap();
            assert_eq!(
                s.stats
                    .connections_total
                    .load(std::sync::atomic::Ordering::Relaxed),
                1
            );
            assert_eq!(
                s.active_connections(),
                1,
                "ESTABLISHED counted on the sorry server"
            );
            let rows = p.shared().conntrack.rows(0);
            assert_eq!(rows[0].real.port(), SORRY_PORT);
        } else {
            assert_eq!(got.0, Verdict::Drop(DropReason::NoRealServer));
        }
    }
}

#[test]
fn a_lost_quorum_sends_new_flows_to_the_sorry_server_while_existing_flows_keep_their_server() {
    let mut p = processor_with_sorry(true);
    let snap = web(&p);
    assert_eq!(send_to(&mut p, 1, 51000, SYN).1, Some((R1, 80)));
    snap.services[0].state.set_quorum(false);
    for port in 51001..51004 {
        assert_eq!(
            send_to(&mut p, 2, port, SYN).1,
            Some((SORRY, SORRY_PORT)),
            "quorum lost: the sorry server, though the real servers are up"
        );
    }
    assert_eq!(
        send_to(&mut p, 2, 51000, ACK).1,
        Some((R1, 80)),
        "existing flow"
    );
    snap.services[0].state.set_quorum(true);
    assert_eq!(send_to(&mut p, 3, 51010, SYN).1, Some((R2, 80)), "rr again");
    // Without a sorry server, a lost quorum changes nothing (keepalived keeps the servers up).
    let mut p = processor_with_sorry(false);
    web(&p).services[0].state.set_quorum(false);
    assert_eq!(send_to(&mut p, 1, 52000, SYN).1, Some((R1, 80)));
}

#[test]
fn a_server_held_down_takes_no_new_flow_and_only_remove_ends_its_existing_ones() {
    for remove in [false, true] {
        let mut p = processor_with_sorry(false);
        let snap = web(&p);
        // rr: 53000 → r1, 53001 → r2; both established.
        assert_eq!(send_to(&mut p, 1, 53000, SYN).1, Some((R1, 80)));
        assert_eq!(send_to(&mut p, 1, 53001, SYN).1, Some((R2, 80)));
        send_to(&mut p, 2, 53000, ACK);
        send_to(&mut p, 2, 53001, ACK);
        let r2 = &snap.services[0].reals[1];
        // What the health checks do on r2's down transition.
        r2.stats.set_up(false);
        if remove {
            assert_eq!(p.shared().conntrack.remove_real(&r2.stats), 1);
            assert_eq!(r2.active_connections(), 0);
        }
        for port in 53010..53014 {
            assert_eq!(
                send_to(&mut p, 3, port, SYN).1,
                Some((R1, 80)),
                "no new flow to r2"
            );
        }
        let existing = send_to(&mut p, 4, 53001, ACK);
        if remove {
            assert_eq!(existing.0, Verdict::Drop(DropReason::NoConnection));
        } else {
            assert_eq!(existing.1, Some((R2, 80)), "drain: the flow continues");
        }
        assert_eq!(send_to(&mut p, 4, 53000, ACK).1, Some((R1, 80)));
        // Back up: new flows reach r2 again.
        r2.stats.set_up(true);
        let picks: Vec<_> = (53020..53024)
            .map(|port| send_to(&mut p, 5, port, SYN).1.unwrap().0)
            .collect();
        assert!(picks.contains(&R2), "{picks:?}");
    }
}

#[test]
fn sh_keeps_a_client_on_one_server_and_sh_port_spreads_its_ports() {
    use xvs::sched::{self, SchedFlags, SchedulerKind};
    for hash_port in [false, true] {
        let mut snap = snapshot(1, (1, 1), false);
        let web = &mut snap.services[0];
        web.scheduler = SchedulerKind::Sh;
        let flags = SchedFlags {
            hash_port,
            fallback: false,
        };
        web.tables = sched::prepare(SchedulerKind::Sh, flags, &web.reals, 65537);
        let mut p = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
        let servers: std::collections::HashSet<_> = (0..32)
            .map(|i| send(&mut p, 1, 50000 + i, SYN).1.unwrap())
            .collect();
        // One client (198.18.0.2): one server without sh-port, both with it.
        assert_eq!(
            servers.len(),
            if hash_port { 2 } else { 1 },
            "sh-port {hash_port}"
        );
    }
}

#[test]
fn lblc_keeps_the_vip_on_one_server_until_it_is_overloaded() {
    // web as lblc with weights 1:1: the VIP (the destination) sticks to r1 until r1 has more
    // ESTABLISHED connections than its weight while r2 has fewer than half of its own.
    let mut snap = snapshot(1, (1, 1), false);
    snap.services[0].scheduler = xvs::sched::SchedulerKind::Lblc;
    let mut p = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
    assert_eq!(send(&mut p, 1, 49000, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 1, 49000, ACK).1, Some(R1));
    // r1: 1 active = its weight: not overloaded; the SYN-only flows are inactive.
    assert_eq!(send(&mut p, 2, 49001, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 2, 49002, SYN).1, Some(R1));
    assert_eq!(send(&mut p, 3, 49001, ACK).1, Some(R1));
    // r1: 2 active > weight 1, r2 idle: the VIP moves to r2 and stays.
    assert_eq!(send(&mut p, 4, 49003, SYN).1, Some(R2));
    assert_eq!(send(&mut p, 4, 49004, SYN).1, Some(R2));
}

/// A real server → client TCP reply frame (from `real`:80 to the client's `dport`).
fn reply(real: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    Tcp4::new((LAN_MAC, R1_MAC), (real, 80), (CLIENT, dport), flags).frame()
}

#[test]
fn packets_and_bytes_are_counted_per_service_and_real_and_survive_a_reload() {
    use std::net::SocketAddr;
    use xvs::datapath::counters::{traffic_totals, Traffic, TrafficKey};
    use xvs::datapath::ServiceKey;
    use xvs::flow::Proto;

    let mut p = processor(100);
    let web = ServiceKey {
        vip: "198.18.0.100".parse().unwrap(),
        port: 80,
        proto: Proto::Tcp,
    };
    let key = |real: Option<&str>| TrafficKey {
        service: web,
        real: real.map(|r| r.parse::<SocketAddr>().unwrap()),
    };
    let totals = |p: &Processor| traffic_totals([&*p.counters]);
    // wrr 3:1: r1 r1 r1 r2; then an ACK on the first flow and two replies from r1.
    for i in 0..4 {
        send(&mut p, 1, 46000 + i, SYN);
    }
    send(&mut p, 1, 46000, ACK);
    for _ in 0..2 {
        let mut f = reply(R1, 46000, ACK);
        assert!(matches!(
            p.process(NANOS_PER_SEC, 1, &mut f),
            Verdict::Tx(0)
        ));
    }
    // A reply nobody tracks is not counted.
    let mut f = reply(R2, 1, ACK);
    p.process(NANOS_PER_SEC, 1, &mut f);
    // A refused segment is not counted either.
    send(&mut p, 1, 47000, ACK);
    let t = totals(&p);
    let packets = |i, o| Traffic {
        in_packets: i,
        in_bytes: 40 * i,
        out_packets: o,
        out_bytes: 40 * o,
    };
    assert_eq!(t[&key(None)], packets(5, 2));
    assert_eq!(t[&key(Some("198.18.1.11:80"))], packets(4, 2));
    assert_eq!(t[&key(Some("198.18.1.12:80"))], packets(1, 0));

    // A reload keeps the totals of the pairs that stay and counts on from them.
    p.shared()
        .snapshot
        .store(Arc::new(snapshot(2, (0, 1), false)));
    send(&mut p, 2, 46000, ACK);
    let t = totals(&p);
    assert_eq!(p.counters.traffic.load().generation(), 2);
    assert_eq!(t[&key(None)], packets(6, 2));
    assert_eq!(t[&key(Some("198.18.1.11:80"))], packets(5, 2));
    assert_eq!(t[&key(Some("198.18.1.12:80"))], packets(1, 0));
}

/// The snapshot after a reload that keeps every (service, real server) pair and its counters,
/// as the control plane does, but reverses the web service's real servers (at index `at`, the
/// only service kept) and, with `front`, puts a new service before it (so the service's index
/// changes too).
fn reordered(old: &xvs::datapath::Snapshot, at: usize, front: bool) -> xvs::datapath::Snapshot {
    use xvs::datapath::{Forwarding, Service, ServiceKey};
    use xvs::flow::Proto;
    use xvs::sched::{RealServer, SchedulerKind};
    let web = &old.services[at];
    let mut reals = web.reals.clone();
    reals.reverse();
    let first = Service::new(
        "front",
        ServiceKey {
            vip: "198.18.0.100".parse().unwrap(),
            port: 443,
            proto: Proto::Tcp,
        },
        Forwarding::Nat,
        SchedulerKind::Rr,
        vec![RealServer::new("198.18.1.13:443".parse().unwrap(), 1)],
    );
    let moved = Service::new("web", web.key, Forwarding::Nat, SchedulerKind::Wrr, reals);
    xvs::datapath::Snapshot::new(
        old.generation + 1,
        ports(),
        if front {
            vec![first, moved]
        } else {
            vec![moved]
        },
        old.timeouts,
        false,
    )
}

#[test]
fn traffic_is_counted_on_the_connections_real_server_when_a_reload_moves_it() {
    use std::net::SocketAddr;
    use xvs::datapath::counters::{traffic_totals, TrafficKey};

    let mut p = processor(100);
    // wrr 3:1: three flows to r1, one to r2.
    let mut to = std::collections::BTreeMap::new();
    for i in 0..4 {
        let real = send(&mut p, 1, 48000 + i, SYN).1.unwrap();
        to.entry(real).or_insert_with(Vec::new).push(48000 + i);
    }
    let (on_r1, on_r2) = (to[&R1].clone(), to[&R2][0]);
    assert_eq!(on_r1.len(), 3);
    let web = p.shared().snapshot.load().services[0].key;
    let of = |p: &Processor, real: &str| {
        let key = TrafficKey {
            service: web,
            real: Some(real.parse::<SocketAddr>().unwrap()),
        };
        traffic_totals([&*p.counters])[&key]
    };
    let reply_from = |p: &mut Processor, real, dport| {
        let mut f = reply(real, dport, ACK);
        let v = p.process(2 * NANOS_PER_SEC, 1, &mut f);
        assert!(matches!(v, Verdict::Tx(0)), "{v:?}");
    };
    // Before the reload the entry's origin names the right slot.
    reply_from(&mut p, R2, on_r2);
    assert_eq!(of(&p, "198.18.1.12:80").out_packets, 1);
    assert_eq!(of(&p, "198.18.1.11:80").out_packets, 0);

    // Reload 1: the servers swap positions, the service keeps its index. Reload 2: the service
    // moves. Every connection's packets, both directions, still count on its own real server:
    // the origins recorded before a reload no longer match and are not trusted.
    for (reload, (at, front)) in [(0, false), (0, true)].into_iter().enumerate() {
        let next = reordered(&p.shared().snapshot.load(), at, front);
        p.shared().snapshot.store(Arc::new(next));
        p.begin_batch(2 * NANOS_PER_SEC);
        reply_from(&mut p, R2, on_r2);
        reply_from(&mut p, R1, on_r1[0]);
        assert_eq!(send(&mut p, 2, on_r1[1], ACK).1, Some(R1));
        let n = reload as u64 + 1;
        assert_eq!(of(&p, "198.18.1.12:80").out_packets, 1 + n, "reload {n}");
        assert_eq!(of(&p, "198.18.1.11:80").out_packets, n, "reload {n}");
        assert_eq!(of(&p, "198.18.1.11:80").in_packets, 3 + n, "reload {n}");
        assert_eq!(of(&p, "198.18.1.12:80").in_packets, 1, "reload {n}");
    }
    // New connections record the new positions and count there too.
    let mut to = std::collections::BTreeMap::new();
    for i in 0..4 {
        let real = send(&mut p, 3, 48100 + i, SYN).1.unwrap();
        to.entry(real).or_insert_with(Vec::new).push(48100 + i);
    }
    reply_from(&mut p, R2, to[&R2][0]);
    reply_from(&mut p, R1, to[&R1][0]);
    assert_eq!(of(&p, "198.18.1.12:80").out_packets, 4);
    assert_eq!(of(&p, "198.18.1.11:80").out_packets, 3);
}
