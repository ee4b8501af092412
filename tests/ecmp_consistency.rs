//! Active-active behind ECMP without shared state: boxes built independently from one config
//! (`scheduler: mh`, `mh-port`, `sloppy_tcp` on the service) pick the same real server for every
//! flow, and a box that never saw a flow's SYN (the router moved the flow to it) picks up its
//! next segment on the same real server too. DR and TUN, 10 000 flows each. No network: the
//! boxes are [`Processor`]s fed hand-made frames, as the `ecmp` lab's lb1..lb3 would get them.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

#[path = "fixtures/routed_lab.rs"]
mod routed_lab;
#[path = "fixtures/tcp4.rs"]
mod tcp4;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use xvs::control::config::Config;
use xvs::control::snapshot;
use xvs::datapath::{Port, Processor, Shared, Verdict};
use xvs::flow::NANOS_PER_SEC;

use routed_lab::{R1_MAC, R2_MAC, ROUTER_MAC, VIP};
use tcp4::Tcp4;

/// The lb config of the `ecmp` lab (tests/e2e_ecmp.rs runs the same services): DR on tcp/80,
/// TUN on tcp/8080, to r1 and r2 on the lbs' LAN.
const CONFIG: &str = "\
datapath:
  interfaces: [{ name: lan0, queues: [0] }]
services:
  - name: web
    vip: 198.18.2.100
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    forwarding: dr
    sloppy_tcp: true
    reals: [{ address: 198.18.1.11:80 }, { address: 198.18.1.12:80 }]
  - name: web-tun
    vip: 198.18.2.100
    port: 8080
    scheduler: mh
    scheduler_flags: [mh-port]
    forwarding: tun
    sloppy_tcp: true
    reals: [{ address: 198.18.1.11:8080 }, { address: 198.18.1.12:8080 }]
";

const FLOWS: u32 = 10_000;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// lb`n` of the lab: its config built into a snapshot on its own lan0 (MAC and address of its
/// own), its own connection table.
fn lb(n: u8) -> (Processor, [u8; 6]) {
    lb_from(CONFIG, n)
}

/// [`lb`] with the config `text`.
fn lb_from(text: &str, n: u8) -> (Processor, [u8; 6]) {
    let cfg = Config::from_str_named(text, "ecmp.yaml", &|_: &str| true)
        .unwrap_or_else(|e| panic!("{e}"));
    let mac = [0x02, 0x18, 0, 0x01, 0, 0x20 + n];
    let port = Port {
        name: "lan0".into(),
        ifindex: 2,
        mac,
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 20 + n)),
        ipv6: None,
        mtu: 1500,
    };
    let snap = snapshot::build(&cfg, vec![port], 1, None);
    (
        Processor::new(Arc::new(Shared::new(snap, routed_lab::nexthops(), 65536))),
        mac,
    )
}

/// Flow `i`: a client address in 198.18.64.0/18 and a source port, both varying.
fn flow(i: u32) -> ([u8; 4], u16) {
    let a = 64 * 256 + i / 7;
    let client = [198, 18, (a >> 8) as u8, (a & 0xff) as u8];
    (client, 1024 + ((i * 7919) % 64000) as u16)
}

/// A TCP segment of flow `i` to VIP:`dport`, as the router hands it to the lb with MAC `to`.
fn segment(to: [u8; 6], i: u32, dport: u16, flags: u8) -> Vec<u8> {
    let (client, sport) = flow(i);
    Tcp4 {
        ttl: 63,
        seq: i * 1000,
        window: 64240,
        ..Tcp4::new((to, ROUTER_MAC), (client, sport), (VIP, dport), flags)
    }
    .frame()
}

/// Where box `p` sends segment `frame`: the real server's last address byte (11, 12), read from
/// the destination MAC (DR) or the outer destination address (TUN). Panics on any other verdict.
fn send(p: &mut Processor, t: u64, frame: &[u8], tun: bool) -> u8 {
    let now = t * NANOS_PER_SEC;
    let mut buf = vec![0u8; 2048];
    buf[..frame.len()].copy_from_slice(frame);
    let mut len = frame.len();
    p.begin_batch(now);
    let v = p.process_buf(now, 0, &mut buf, &mut len);
    assert_eq!(v, Verdict::Tx(0), "not forwarded: {v:?}");
    if tun {
        assert_eq!(buf[23], 4, "IP-in-IP");
        assert_eq!(&buf[30..33], &[198, 18, 1]);
        buf[33]
    } else {
        match buf[0..6].try_into().unwrap() {
            R1_MAC => 11,
            R2_MAC => 12,
            other => panic!("DR to {other:02x?}"),
        }
    }
}

/// Three boxes: lb1 and lb2 each get every flow's SYN and must pick the same real server;
/// lb3 never sees a SYN and gets each flow mid-stream (an ACK, then data), and must pick it too.
fn same_real_server_on_every_box(dport: u16, tun: bool) {
    let (mut lb1, mac1) = lb(1);
    let (mut lb2, mac2) = lb(2);
    let (mut lb3, mac3) = lb(3);
    let mut spread: BTreeMap<u8, u32> = BTreeMap::new();
    for i in 0..FLOWS {
        let first = send(&mut lb1, 1, &segment(mac1, i, dport, SYN), tun);
        let second = send(&mut lb2, 1, &segment(mac2, i, dport, SYN), tun);
        assert_eq!(first, second, "flow {i}: lb1 and lb2 disagree");
        let picked_up = send(&mut lb3, 2, &segment(mac3, i, dport, ACK), tun);
        assert_eq!(picked_up, first, "flow {i}: lb3 picked it up elsewhere");
        // The picked-up flow is tracked: its next segment follows the entry.
        let next = send(&mut lb3, 3, &segment(mac3, i, dport, PSH_ACK), tun);
        assert_eq!(next, first, "flow {i}: lb3's next segment");
        *spread.entry(first).or_default() += 1;
    }
    assert_eq!(lb3.shared().conntrack.len(), FLOWS as usize);
    // Maglev spreads the flows evenly over equal weights.
    assert_eq!(spread.len(), 2, "{spread:?}");
    assert!(
        spread.values().all(|&n| n > FLOWS * 45 / 100),
        "uneven: {spread:?}"
    );
}

#[test]
fn dr_boxes_built_from_one_config_agree_on_every_flow_and_pick_up_each_others() {
    same_real_server_on_every_box(80, false);
}

#[test]
fn tun_boxes_built_from_one_config_agree_on_every_flow_and_pick_up_each_others() {
    same_real_server_on_every_box(8080, true);
}

#[test]
fn without_sloppy_tcp_a_box_drops_a_flow_it_never_saw() {
    let text = CONFIG.replacen("sloppy_tcp: true", "sloppy_tcp: false", 1);
    let (mut without, mac) = lb_from(&text, 1);
    let mut f = segment(mac, 1, 80, ACK);
    without.begin_batch(NANOS_PER_SEC);
    assert_eq!(
        without.process(NANOS_PER_SEC, 0, &mut f),
        Verdict::Drop(xvs::datapath::DropReason::NoConnection)
    );
    // The TUN service keeps its own sloppy_tcp.
    send(&mut without, 1, &segment(mac, 1, 8080, ACK), true);
}
