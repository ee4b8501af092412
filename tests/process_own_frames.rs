//! Only the box a frame is addressed to acts on it, and a VRRP BACKUP forwards nothing: a
//! `Processor` driven directly on the lab fixtures (frames built with etherparse through
//! `tests/fixtures/icmp_frames.rs`; the golden table `tests/golden/nat.golden` has the exact
//! bytes of the MAC cases).
//!
//! - own frames: a frame whose destination MAC is not the ingress port's own (another host's,
//!   another port's, broadcast, multicast) or whose source MAC is one of the box's ports' is
//!   dropped before anything else: no connection entry, no scheduling;
//! - the VRRP gate: while a VRRP-managed VIP's "held" flag is false, every packet of its
//!   services is dropped as `vrrp_backup`, whichever way it arrives (new flows, existing
//!   connections in both directions, NAT, FULLNAT and `one_packet` replies, later fragments,
//!   ICMP errors, DR and TUN), and the very same frames are forwarded while it is true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

#[path = "fixtures/fullnat_lab.rs"]
mod fullnat_lab;
#[path = "fixtures/icmp_frames.rs"]
mod icmp_frames;
#[path = "fixtures/routed_lab.rs"]
mod routed_lab;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use etherparse::icmpv4::DestUnreachableHeader as U;
use fullnat_lab::nat_lab::{self, *};
use icmp_frames::{frame, icmp_frame, ip_packet, unreachable};
use xvs::datapath::snapshot::{Forwarding, VrrpHeld};
use xvs::datapath::{
    DropReason, PortId, Processor, Service, ServiceKey, Shared, Snapshot, Verdict,
};
use xvs::flow::{Proto, NANOS_PER_SEC};
use xvs::sched::{RealServer, SchedulerKind};

const NOT_OUR_MAC: Verdict = Verdict::Drop(DropReason::NotOurMac);
const OWN_FRAME: Verdict = Verdict::Drop(DropReason::OwnFrame);
const BACKUP: Verdict = Verdict::Drop(DropReason::VrrpBackup);

/// Another VIP, not managed by VRRP, with one service (tcp/80 → r2:80).
const VIP2: [u8; 4] = [198, 18, 0, 101];

fn client_syn(dst_mac: [u8; 6], src_mac: [u8; 6], sport: u16) -> Vec<u8> {
    frame(
        (src_mac, dst_mac),
        ip_packet((CLIENT, sport), (VIP, 80), 64, Some("S"), b""),
    )
}

/// Processes `f` on `ingress` at second `t`; the frame must stay untouched unless it is sent.
fn run(p: &mut Processor, t: u64, ingress: PortId, f: &[u8]) -> (Verdict, Vec<u8>) {
    let now = t * NANOS_PER_SEC;
    p.begin_batch(now);
    let mut buf = f.to_vec();
    let v = p.process(now, ingress, &mut buf);
    if !matches!(v, Verdict::Tx(_)) {
        assert_eq!(buf, f, "{v:?} modified the frame");
    }
    (v, buf)
}

// ---- own frames --------------------------------------------------------------------------------

#[test]
fn frames_not_addressed_to_the_ingress_port_are_dropped_before_any_scheduling() {
    let mut p = nat_lab::processor(100);
    let other_lb = [0x02, 0, 0, 0, 0, 0x03];
    // (what, destination MAC, source MAC, ingress port, verdict)
    type Case = (&'static str, [u8; 6], [u8; 6], PortId, Verdict);
    let cases: &[Case] = &[
        ("another host's MAC", other_lb, CLIENT_MAC, 0, NOT_OUR_MAC),
        ("broadcast", [0xff; 6], CLIENT_MAC, 0, NOT_OUR_MAC),
        (
            "IPv4 multicast",
            [1, 0, 0x5e, 0, 0, 0x12],
            CLIENT_MAC,
            0,
            NOT_OUR_MAC,
        ),
        (
            "IPv6 multicast",
            [0x33, 0x33, 0, 0, 0, 1],
            CLIENT_MAC,
            0,
            NOT_OUR_MAC,
        ),
        // The box's MAC, but the other port's: not what this port receives.
        ("lan0's MAC on wan0", LAN_MAC, CLIENT_MAC, 0, NOT_OUR_MAC),
        ("wan0's MAC on lan0", WAN_MAC, CLIENT_MAC, 1, NOT_OUR_MAC),
        (
            "wan0's MAC on a port that does not exist",
            WAN_MAC,
            CLIENT_MAC,
            7,
            NOT_OUR_MAC,
        ),
        (
            "from lan0's MAC (xvs's own frame)",
            WAN_MAC,
            LAN_MAC,
            0,
            OWN_FRAME,
        ),
        (
            "from wan0's MAC (xvs's own frame)",
            WAN_MAC,
            WAN_MAC,
            0,
            OWN_FRAME,
        ),
        ("from lan0's MAC to lan0", LAN_MAC, LAN_MAC, 1, OWN_FRAME),
    ];
    for (i, (what, dst, src, ingress, want)) in cases.iter().enumerate() {
        let (v, _) = run(
            &mut p,
            1,
            *ingress,
            &client_syn(*dst, *src, 40000 + i as u16),
        );
        assert_eq!(v, *want, "SYN to VIP:80, {what}");
    }
    assert_eq!(p.shared().conntrack.len(), 0, "no connection entry");
    assert_eq!(p.counters.new_connections.load(Ordering::Relaxed), 0);
    // Nothing was scheduled: the first SYN addressed to wan0 is wrr's first pick (r1), and the
    // lab's 3:1 sequence goes on from there.
    let mut picks = Vec::new();
    for port in 41000..41004 {
        let (v, out) = run(&mut p, 2, 0, &client_syn(WAN_MAC, CLIENT_MAC, port));
        assert_eq!(v, Verdict::Tx(1));
        picks.push([out[30], out[31], out[32], out[33]]);
    }
    assert_eq!(picks, [R1, R1, R1, R2]);
}

#[test]
fn the_egress_source_mac_and_the_ingress_check_follow_a_port_mac_change() {
    let new_wan: [u8; 6] = [0x02, 0, 0, 0, 0, 0x71];
    let mut p = nat_lab::processor(100);
    let (v, _) = run(&mut p, 1, 0, &client_syn(WAN_MAC, CLIENT_MAC, 40000));
    assert_eq!(v, Verdict::Tx(1));
    // `ip link set dev wan0 address ...`: the control plane swaps in a snapshot with the new MAC.
    let mut ports = nat_lab::ports();
    ports[0].mac = new_wan;
    let snap = nat_lab::snapshot(2, (3, 1), false);
    let snap = Snapshot::new(2, ports, snap.services, snap.timeouts, false);
    p.shared().snapshot.store(Arc::new(snap));
    let (v, _) = run(&mut p, 2, 0, &client_syn(WAN_MAC, CLIENT_MAC, 40001));
    assert_eq!(v, NOT_OUR_MAC, "the old MAC is no longer wan0's");
    let (v, _) = run(&mut p, 2, 0, &client_syn(new_wan, CLIENT_MAC, 40001));
    assert_eq!(v, Verdict::Tx(1));
    // A frame from the new MAC is the box's own; from the old one it is not any more.
    let (v, _) = run(&mut p, 2, 0, &client_syn(new_wan, new_wan, 40002));
    assert_eq!(v, OWN_FRAME);
    // The reply of the first flow leaves wan0 from the new MAC.
    let reply = frame(
        (R1_MAC, LAN_MAC),
        ip_packet((R1, 80), (CLIENT, 40000), 64, Some("SA"), b""),
    );
    let (v, out) = run(&mut p, 3, 1, &reply);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(out[0..6], CLIENT_MAC);
    assert_eq!(out[6..12], new_wan);
}

#[test]
fn two_ports_sharing_a_mac_each_take_frames_to_it() {
    // A bond's or VLANs' shared MAC: each port receives it, and a frame from it is own.
    let mut ports = nat_lab::ports();
    ports[1].mac = WAN_MAC;
    let snap = nat_lab::snapshot(1, (3, 1), false);
    let snap = Snapshot::new(1, ports, snap.services, snap.timeouts, false);
    let mut p = Processor::new(Arc::new(Shared::new(snap, nexthops(), 100)));
    for ingress in [0, 1] {
        let (v, _) = run(
            &mut p,
            1,
            ingress,
            &client_syn(WAN_MAC, CLIENT_MAC, 40000 + u16::from(ingress)),
        );
        assert_eq!(v, Verdict::Tx(1), "on port {ingress}");
        let (v, _) = run(&mut p, 1, ingress, &client_syn(WAN_MAC, WAN_MAC, 40010));
        assert_eq!(v, OWN_FRAME, "on port {ingress}");
    }
}

// ---- the VRRP gate -------------------------------------------------------------------------------

fn gates(vip: [u8; 4]) -> (VrrpHeld, Vec<(IpAddr, VrrpHeld)>) {
    let held: VrrpHeld = Arc::new(AtomicBool::new(false));
    (held.clone(), vec![(IpAddr::from(vip), held)])
}

fn service(name: &str, vip: [u8; 4], port: u16, proto: Proto, real: SocketAddr) -> Service {
    Service::new(
        name,
        ServiceKey {
            vip: vip.into(),
            port,
            proto,
        },
        Forwarding::Nat,
        SchedulerKind::Rr,
        vec![RealServer::new(real, 1)],
    )
}

/// The NAT lab plus `ntp` (udp/123 `one_packet` → r1:123) on the VIP and `other` (tcp/80 →
/// r2:80) on VIP2; only the VIP is managed by VRRP. With `web` unless `without_web`.
fn nat_snapshot(generation: u64, gates: &[(IpAddr, VrrpHeld)], without_web: bool) -> Snapshot {
    let lab = nat_lab::snapshot(generation, (3, 1), false);
    let mut services: Vec<Service> = lab
        .services
        .into_iter()
        .filter(|s| !(without_web && s.name == "web"))
        .collect();
    let mut ntp = service("ntp", VIP, 123, Proto::Udp, SocketAddr::from((R1, 123)));
    ntp.one_packet = true;
    services.push(ntp);
    services.push(service(
        "other",
        VIP2,
        80,
        Proto::Tcp,
        SocketAddr::from((R2, 80)),
    ));
    Snapshot::new(generation, lab.ports, services, lab.timeouts, false)
        .with_vrrp_gates(gates.to_vec())
}

/// A later fragment (offset 16) of a UDP datagram `src` → `dst` with IP id `id`.
fn later_fragment(macs: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(8, 64, etherparse::IpNumber::UDP, src, dst).unwrap();
    h.identification = id;
    h.fragment_offset = etherparse::IpFragOffset::try_new(2).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut ip = h.to_bytes().to_vec();
    ip.extend_from_slice(b"fragment");
    frame(macs, ip)
}

/// A first fragment (8 bytes of UDP header, 8 of data; more to come) of a UDP datagram.
fn first_fragment(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    id: u16,
) -> Vec<u8> {
    let mut h =
        etherparse::Ipv4Header::new(16, 64, etherparse::IpNumber::UDP, src.0, dst.0).unwrap();
    h.identification = id;
    h.more_fragments = true;
    h.header_checksum = h.calc_header_checksum();
    let mut ip = h.to_bytes().to_vec();
    ip.extend_from_slice(&src.1.to_be_bytes());
    ip.extend_from_slice(&dst.1.to_be_bytes());
    ip.extend_from_slice(&24u16.to_be_bytes()); // the whole datagram's UDP length
    ip.extend_from_slice(&[0, 0]); // no checksum
    ip.extend_from_slice(b"first-8b");
    frame(macs, ip)
}

#[test]
fn a_nat_backup_forwards_nothing_of_a_vrrp_service_in_either_direction() {
    let (held, gates) = gates(VIP);
    let shared = Shared::new(nat_snapshot(1, &gates, false), nexthops(), 100);
    let mut p = Processor::new(Arc::new(shared));
    let from_client = (CLIENT_MAC, WAN_MAC);
    let from_r1 = (R1_MAC, LAN_MAC);
    let tcp = |src, dst, flags| ip_packet(src, dst, 64, Some(flags), b"");
    let udp = |src, dst| ip_packet(src, dst, 64, None, b"q");

    // Never held yet (a BACKUP from the start): a new flow is refused, no entry made.
    let syn = frame(from_client, tcp((CLIENT, 40000), (VIP, 80), "S"));
    assert_eq!(run(&mut p, 1, 0, &syn).0, BACKUP);
    assert_eq!(p.shared().conntrack.len(), 0);
    // Another VIP, not managed: served.
    let other = frame(from_client, tcp((CLIENT, 40000), (VIP2, 80), "S"));
    assert_eq!(run(&mut p, 1, 0, &other).0, Verdict::Tx(1));

    // MASTER: connections are made (TCP, UDP, a fragmented UDP datagram).
    held.store(true, Ordering::Relaxed);
    assert_eq!(run(&mut p, 2, 0, &syn).0, Verdict::Tx(1));
    let query = frame(from_client, udp((CLIENT, 50000), (VIP, 53)));
    assert_eq!(run(&mut p, 2, 0, &query).0, Verdict::Tx(1));
    let first = first_fragment(from_client, (CLIENT, 50100), (VIP, 53), 0x4242);
    assert_eq!(run(&mut p, 2, 0, &first).0, Verdict::Tx(1));
    let entries = p.shared().conntrack.len();
    assert!(entries >= 3);

    // Everything of them, each way it can arrive.
    let ack = frame(from_client, tcp((CLIENT, 40000), (VIP, 80), "A"));
    let reply = frame(from_r1, tcp((R1, 80), (CLIENT, 40000), "SA"));
    let answer = frame(from_r1, udp((R1, 5353), (CLIENT, 50000)));
    let one_packet_reply = frame(from_r1, udp((R1, 123), (CLIENT, 50200)));
    let later = later_fragment(from_client, CLIENT, VIP, 0x4242);
    // r1 says the port the client's datagram went to is closed (about a packet xvs sent it).
    let from_server = icmp_frame(
        from_r1,
        R1,
        CLIENT,
        64,
        unreachable(U::Port),
        &ip_packet((CLIENT, 50000), (R1, 5353), 63, None, b"q"),
    );
    // A router on the client's side about a reply the client got.
    let from_client_side = icmp_frame(
        from_client,
        CLIENT,
        VIP,
        64,
        unreachable(U::Port),
        &ip_packet((VIP, 80), (CLIENT, 40000), 63, Some("SA"), b""),
    );
    let new_flow = frame(from_client, tcp((CLIENT, 40001), (VIP, 80), "S"));
    let frames: [(&str, &[u8], PortId); 8] = [
        ("the client's ACK of an existing connection", &ack, 0),
        ("r1's reply", &reply, 1),
        ("r1's UDP answer", &answer, 1),
        ("a reply of the one_packet service", &one_packet_reply, 1),
        ("a later fragment of a forwarded datagram", &later, 0),
        ("an ICMP error from r1 about a flow", &from_server, 1),
        (
            "an ICMP error from the client about a reply",
            &from_client_side,
            0,
        ),
        ("a new flow", &new_flow, 0),
    ];
    // MASTER → BACKUP: the entries stay, nothing is forwarded.
    held.store(false, Ordering::Relaxed);
    let wrong: Vec<String> = frames
        .iter()
        .filter_map(|(what, f, ingress)| {
            let v = run(&mut p, 3, *ingress, f).0;
            (v != BACKUP).then(|| format!("{what}: {v:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "BACKUP forwarded: {wrong:#?}");
    assert_eq!(p.shared().conntrack.len(), entries, "no entry made or lost");
    assert_eq!(
        run(&mut p, 3, 0, &other).0,
        Verdict::Tx(1),
        "VIP2 is served"
    );
    // MASTER again: the very same frames go out.
    held.store(true, Ordering::Relaxed);
    let wrong: Vec<String> = frames
        .iter()
        .filter_map(|(what, f, ingress)| {
            let v = run(&mut p, 4, *ingress, f).0;
            (!matches!(v, Verdict::Tx(_))).then(|| format!("{what}: {v:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "MASTER did not forward: {wrong:#?}");

    // A reload removes `web` while its connection remains: its replies are gated by the VIP.
    let snap = nat_snapshot(2, &gates, true);
    p.shared().snapshot.store(Arc::new(snap));
    assert_eq!(run(&mut p, 5, 1, &reply).0, Verdict::Tx(0));
    held.store(false, Ordering::Relaxed);
    assert_eq!(run(&mut p, 5, 1, &reply).0, BACKUP);
}

#[test]
fn a_fullnat_backup_forwards_no_reply_to_a_pool_address_nor_errors_about_it() {
    let (held, gates) = gates(VIP);
    let snap = fullnat_lab::snapshot().with_vrrp_gates(gates);
    let shared = Shared::with_local_pools(snap, nexthops(), 1000, &fullnat_lab::pools());
    let mut p = Processor::new(Arc::new(shared));
    let syn = frame(
        (CLIENT_MAC, WAN_MAC),
        ip_packet((CLIENT, 40000), (VIP, 80), 64, Some("S"), b""),
    );
    assert_eq!(run(&mut p, 1, 0, &syn).0, BACKUP);
    held.store(true, Ordering::Relaxed);
    let (v, out) = run(&mut p, 2, 0, &syn);
    assert_eq!(v, Verdict::Tx(1));
    let local: [u8; 4] = out[26..30].try_into().unwrap();
    let local_port = u16::from_be_bytes([out[34], out[35]]);
    assert!(local == fullnat_lab::L1 || local == fullnat_lab::L2);
    let reply = frame(
        (R1_MAC, LAN_MAC),
        ip_packet((R1, 80), (local, local_port), 64, Some("SA"), b""),
    );
    let error = icmp_frame(
        (R1_MAC, LAN_MAC),
        R1,
        local,
        64,
        unreachable(U::Port),
        &ip_packet((local, local_port), (R1, 80), 63, Some("S"), b""),
    );
    held.store(false, Ordering::Relaxed);
    assert_eq!(
        run(&mut p, 3, 1, &reply).0,
        BACKUP,
        "reply to the pool address"
    );
    assert_eq!(run(&mut p, 3, 1, &error).0, BACKUP, "ICMP error about it");
    held.store(true, Ordering::Relaxed);
    assert_eq!(run(&mut p, 4, 1, &reply).0, Verdict::Tx(0));
    assert_eq!(run(&mut p, 4, 1, &error).0, Verdict::Tx(0));
}

#[test]
fn a_dr_or_tun_backup_forwards_nothing_of_a_vrrp_service() {
    use routed_lab::{CLIENT, LAN_MAC, ROUTER_MAC, VIP};
    for forwarding in [Forwarding::Dr, Forwarding::Tun] {
        let (held, gates) = gates(VIP);
        let snap = routed_lab::snapshot(forwarding).with_vrrp_gates(gates);
        let shared = Shared::new(snap, routed_lab::nexthops(), 1000);
        let mut p = Processor::new(Arc::new(shared));
        let from_router = (ROUTER_MAC, LAN_MAC);
        let syn = frame(
            from_router,
            ip_packet((CLIENT, 40000), (VIP, 80), 63, Some("S"), b""),
        );
        let mut process = |t: u64, f: &[u8]| {
            let now = t * NANOS_PER_SEC;
            p.begin_batch(now);
            let mut buf = f.to_vec();
            let mut len = buf.len();
            buf.resize(len + 64, 0);
            p.process_buf(now, 0, &mut buf, &mut len)
        };
        assert_eq!(process(1, &syn), BACKUP, "{forwarding:?}: new flow");
        held.store(true, Ordering::Relaxed);
        assert_eq!(process(2, &syn), Verdict::Tx(0), "{forwarding:?}: MASTER");
        let ack = frame(
            from_router,
            ip_packet((CLIENT, 40000), (VIP, 80), 63, Some("A"), b""),
        );
        // A router about a reply the client should have got (it left the real server with
        // the VIP as its source, so the error comes to the box).
        let error = icmp_frame(
            from_router,
            [198, 18, 1, 254],
            VIP,
            64,
            unreachable(U::FragmentationNeeded { next_hop_mtu: 1400 }),
            &ip_packet((VIP, 80), (CLIENT, 40000), 63, Some("SA"), b""),
        );
        held.store(false, Ordering::Relaxed);
        assert_eq!(process(3, &ack), BACKUP, "{forwarding:?}: existing flow");
        assert_eq!(process(3, &error), BACKUP, "{forwarding:?}: ICMP error");
        held.store(true, Ordering::Relaxed);
        assert_eq!(process(4, &ack), Verdict::Tx(0), "{forwarding:?}: MASTER");
        assert_eq!(process(4, &error), Verdict::Tx(0), "{forwarding:?}: MASTER");
    }
}
