//! `process()` with persistent services, all-port (port 0) services, `one_packet` UDP services,
//! thresholds and weight 0: which real server each new flow gets, over many packets. Frames are
//! built with etherparse (independent of xvs's wire code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/nat_lab.rs"]
mod nat_lab;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use etherparse::PacketBuilder;
use nat_lab::*;
use xvs::conntrack::Timeouts;
use xvs::datapath::snapshot::{Forwarding, Persistence};
use xvs::datapath::{DropReason, Processor, Service, ServiceKey, Shared, Snapshot, Verdict};
use xvs::flow::{Nanos, Proto, NANOS_PER_SEC};
use xvs::sched::{RealServer, SchedulerKind};

const S: Nanos = NANOS_PER_SEC;

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

fn service(port: u16, proto: Proto, sched: SchedulerKind, reals: &[(&str, u32)]) -> Service {
    Service::new(
        format!("svc{port}"),
        ServiceKey {
            vip: v4(VIP),
            port,
            proto,
        },
        Forwarding::Nat,
        sched,
        reals
            .iter()
            .map(|(a, w)| RealServer::new(a.parse().unwrap(), *w))
            .collect(),
    )
}

fn processor(services: Vec<Service>) -> Processor {
    let lab = snapshot(1, (1, 1), false);
    let snap = Snapshot::new(1, lab.ports.clone(), services, Timeouts::default(), false);
    Processor::new(Arc::new(Shared::new(snap, nexthops(), 100_000)))
}

fn syn(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv4(src, VIP, 64)
        .tcp(sport, dport, 1, 64240)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, from_lan: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let (smac, dmac) = if from_lan {
        (R1_MAC, LAN_MAC)
    } else {
        (CLIENT_MAC, WAN_MAC)
    };
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, b"q")
        .unwrap();
    f
}

/// Processes one frame at `now`, received on the port its destination MAC names; returns the
/// verdict and the (address, port) it went to.
fn send(p: &mut Processor, now: Nanos, mut f: Vec<u8>) -> (Verdict, Option<SocketAddr>) {
    p.begin_batch(now);
    let ingress = golden::ingress_of(p, &f);
    let v = p.process(now, ingress, &mut f);
    let to = matches!(v, Verdict::Tx(_)).then(|| {
        let ip = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([f[36], f[37]]))
    });
    (v, to)
}

fn persistent(mut s: Service, timeout_s: u64, netmask: &str) -> Service {
    s.persistence = Some(Persistence {
        timeout: timeout_s * S,
        netmask: netmask.parse().unwrap(),
    });
    s
}

/// tcp/80 rr over r1 and r2, persistent per client /24 for 300 s.
fn web_persistent_per_24() -> Service {
    persistent(
        service(
            80,
            Proto::Tcp,
            SchedulerKind::Rr,
            &[("198.18.1.11:80", 1), ("198.18.1.12:80", 1)],
        ),
        300,
        "255.255.255.0",
    )
}

/// The counters of the first service's real servers.
fn real_stats(p: &Processor) -> Vec<std::sync::Arc<xvs::sched::RealStats>> {
    let snap = p.shared().snapshot.load();
    snap.services[0]
        .reals
        .iter()
        .map(|r| r.stats.clone())
        .collect()
}

fn client(net: u8, host: u8) -> [u8; 4] {
    [198, 19, net, host]
}

#[test]
fn persistence_sends_a_client_network_to_one_server_until_the_template_expires() {
    let mut p = processor(vec![web_persistent_per_24()]);
    // 1000 connections from one /24 (many hosts and ports) all land on one server, although rr
    // alternates between servers for new template-less picks.
    let mut first = None;
    for i in 0..1000u32 {
        let src = client(5, 1 + (i % 250) as u8);
        let (v, to) = send(
            &mut p,
            S + u64::from(i) * 1000,
            syn(src, 10_000 + i as u16, 80),
        );
        assert!(matches!(v, Verdict::Tx(1)), "{v:?}");
        let to = to.unwrap();
        assert_eq!(*first.get_or_insert(to), to, "connection {i} moved");
    }
    // Other networks are scheduled on their own (rr: the next network gets the other server).
    let (_, other) = send(&mut p, 2 * S, syn(client(6, 1), 20_000, 80));
    assert_ne!(other, first, "a second /24 gets the next rr pick");
    // The template lives 300 s after its last connection: at +299 s still the same server.
    let last = S + 999 * 1000;
    let (_, to) = send(&mut p, last + 299 * S, syn(client(5, 9), 30_000, 80));
    assert_eq!(to, first);
    // That connection refreshed it; 300 s after it the template is gone and the network is
    // scheduled afresh. rr has picked twice (/24-5 → first, /24-6 → the other); a third
    // network takes the first server again, so the /24-5 network's new pick is the other one.
    let after = last + 599 * S + 1;
    let (_, third) = send(&mut p, after, syn(client(7, 1), 30_002, 80));
    assert_eq!(third, first);
    let (_, to) = send(&mut p, after, syn(client(5, 9), 30_001, 80));
    assert_ne!(
        to, first,
        "after the timeout the network is scheduled afresh"
    );
}

#[test]
fn persistence_moves_a_network_off_an_unavailable_server() {
    let mut p = processor(vec![web_persistent_per_24()]);
    let stats = real_stats(&p);
    let (_, a) = send(&mut p, S, syn(client(5, 1), 10_000, 80));
    let a = a.unwrap();
    let ai = if a.ip() == v4(R1) { 0 } else { 1 };
    // The template's server goes down: the next connection of the network moves, and the
    // template follows it.
    stats[ai].set_up(false);
    let (_, b) = send(&mut p, 2 * S, syn(client(5, 2), 10_001, 80));
    assert_ne!(Some(a), b);
    stats[ai].set_up(true);
    let (_, c) = send(&mut p, 3 * S, syn(client(5, 3), 10_002, 80));
    assert_eq!(b, c, "the template now names the other server");
    // Both unavailable: no server, and the connection is refused.
    stats[0].set_up(false);
    stats[1].set_up(false);
    assert_eq!(
        send(&mut p, 4 * S, syn(client(5, 4), 10_003, 80)).0,
        Verdict::Drop(DropReason::NoRealServer)
    );
}

#[test]
fn port_zero_service_takes_every_port_keeps_it_and_yields_to_an_exact_service() {
    let all = persistent(
        service(
            0,
            Proto::Tcp,
            SchedulerKind::Rr,
            &[("198.18.1.11:0", 1), ("198.18.1.12:0", 1)],
        ),
        60,
        "255.255.255.255",
    );
    let exact = service(
        443,
        Proto::Tcp,
        SchedulerKind::Rr,
        &[("198.18.1.12:8443", 1)],
    );
    let mut p = processor(vec![all, exact]);
    let (v, to) = send(&mut p, S, syn(client(5, 1), 10_000, 80));
    assert_eq!(v, Verdict::Tx(1));
    let to = to.unwrap();
    assert_eq!(to.port(), 80, "the destination port is kept");
    // Every port of the VIP from that client goes to the same server (one template per client,
    // port 0).
    for dport in [22, 8080, 25, 53] {
        let (_, t) = send(&mut p, 2 * S, syn(client(5, 1), 10_001, dport));
        assert_eq!(t, Some(SocketAddr::new(to.ip(), dport)));
    }
    // A port with its own service is that service's.
    let (_, t) = send(&mut p, 3 * S, syn(client(5, 1), 10_002, 443));
    assert_eq!(t, Some("198.18.1.12:8443".parse().unwrap()));
    // UDP to the VIP is not the TCP service's.
    assert_eq!(
        send(&mut p, 4 * S, udp(client(5, 1), VIP, 10_003, 80, false)).0,
        Verdict::Pass
    );
}

#[test]
fn one_packet_schedules_every_datagram_keeps_no_entry_and_translates_replies() {
    let mut ops = service(
        53,
        Proto::Udp,
        SchedulerKind::Rr,
        &[("198.18.1.11:5353", 1), ("198.18.1.12:5353", 1)],
    );
    ops.one_packet = true;
    let mut p = processor(vec![ops]);
    let mut seen = Vec::new();
    for i in 0..4u64 {
        let (v, to) = send(&mut p, S + i, udp(CLIENT, VIP, 40_000, 53, false));
        assert_eq!(v, Verdict::Tx(1));
        seen.push(to.unwrap().ip());
    }
    // The same client endpoint alternates between servers: each datagram is scheduled.
    assert_eq!(seen, vec![v4(R1), v4(R2), v4(R1), v4(R2)]);
    assert!(p.shared().conntrack.is_empty(), "no entry kept");
    // The real server's reply is translated back to the VIP without an entry.
    let (v, _) = send(&mut p, 2 * S, udp(R1, CLIENT, 5353, 40_000, true));
    assert_eq!(v, Verdict::Tx(0));
    let mut reply = udp(R1, CLIENT, 5353, 40_000, true);
    p.process(2 * S, 1, &mut reply);
    let ip = etherparse::SlicedPacket::from_ethernet(&reply).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ipv4)) = ip.net else {
        panic!("not IPv4")
    };
    assert_eq!(ipv4.header().source(), VIP);
    let Some(etherparse::TransportSlice::Udp(u)) = ip.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.source_port(), 53);
    // Checksums were kept right by the incremental update.
    let expect = u
        .to_header()
        .calc_checksum_ipv4(&ipv4.header().to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), expect);
    // Real servers' counters count every datagram as a connection.
    let snap = p.shared().snapshot.load();
    let total: u64 = snap.services[0]
        .reals
        .iter()
        .map(|r| {
            r.stats
                .connections_total
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(total, 4);
}

#[test]
fn no_new_flow_goes_to_an_overloaded_or_quiescent_server_but_its_flows_continue() {
    let svc = service(
        80,
        Proto::Tcp,
        SchedulerKind::Wlc,
        &[("198.18.1.11:80", 1), ("198.18.1.12:80", 1)],
    );
    let mut p = processor(vec![svc]);
    let stats = real_stats(&p);
    // r1 may hold at most 3 connections; after 2 more removals (lower 1) it takes flows again.
    stats[0].set_thresholds(3, 1);
    let mut to_r1 = Vec::new();
    for i in 0..20u16 {
        let (v, to) = send(&mut p, S, syn(client(7, 1), 10_000 + i, 80));
        assert_eq!(v, Verdict::Tx(1));
        if to.unwrap().ip() == v4(R1) {
            to_r1.push(10_000 + i);
        }
    }
    assert_eq!(to_r1.len(), 3, "r1 stops at its upper threshold");
    assert!(stats[0].is_overloaded());
    // Its existing flows keep going to it.
    for &port in &to_r1 {
        let mut f = syn(client(7, 1), port, 80);
        f[47] = 0x10; // ACK instead of SYN (checksum fixed below)
        fix_tcp_checksum(&mut f);
        let (v, to) = send(&mut p, 2 * S, f);
        assert_eq!((v, to.map(|a| a.ip())), (Verdict::Tx(1), Some(v4(R1))));
    }
}

/// Recomputes the TCP checksum of a frame built by `syn` after a header edit.
fn fix_tcp_checksum(f: &mut [u8]) {
    let c = {
        let sliced = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
            unreachable!()
        };
        let Some(etherparse::TransportSlice::Tcp(t)) = sliced.transport else {
            unreachable!()
        };
        let mut h = t.to_header();
        h.checksum = 0;
        h.calc_checksum_ipv4(&ip.header().to_header(), t.payload())
            .unwrap()
    };
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn weight_zero_takes_no_new_flow() {
    let svc = service(
        80,
        Proto::Tcp,
        SchedulerKind::Rr,
        &[("198.18.1.11:80", 0), ("198.18.1.12:80", 1)],
    );
    let mut p = processor(vec![svc]);
    for i in 0..50u16 {
        let (_, to) = send(&mut p, S, syn(client(8, 1), 10_000 + i, 80));
        assert_eq!(to.map(|a| a.ip()), Some(v4(R2)));
    }
}
