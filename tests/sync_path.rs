//! Connection sync on the packet path and the install side (issue 16): the events a worker's
//! ring gets for each step of a connection, and a box B that installs box A's records forwarding
//! that connection's next packets exactly as A does (same verdict, same bytes), for NAT, DR,
//! TUN, FULLNAT and IPv6 NAT.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

#[path = "fixtures/frame6.rs"]
mod frame6;
#[path = "fixtures/fullnat_lab.rs"]
mod fullnat_lab;
#[path = "fixtures/nat6_lab.rs"]
mod nat6_lab;
#[path = "fixtures/routed_lab.rs"]
mod routed_lab;

use fullnat_lab::nat_lab;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use xvs::conntrack::ConnState;
use xvs::datapath::install::FullDump;
use xvs::datapath::snapshot::{Forwarding, Persistence};
use xvs::datapath::{PortId, Processor, Shared, Verdict};
use xvs::flow::NANOS_PER_SEC as S;
use xvs::sync::ring::{ring, SyncConsumer};
use xvs::sync::{SyncOp, SyncRecord};

const T0: u64 = 1_000 * S;

/// An IPv4 TCP frame `src` → `dst` from `macs.0` to `macs.1`, flags as in `frame6::L4::Tcp`.
fn tcp4(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: &str,
) -> Vec<u8> {
    let mut t = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 64240);
    for f in flags.chars() {
        t = match f {
            'S' => t.syn(),
            'A' => t.ack(1),
            'F' => t.fin(),
            'P' => t.psh(),
            'R' => t.rst(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    t.write(&mut out, b"sync").unwrap();
    out
}

/// The answer of the host `out` (a frame the load balancer sent) was addressed to: MACs,
/// addresses and ports swapped, with `flags`.
fn answer(out: &[u8], flags: &'static str) -> Vec<u8> {
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let eth = match p.link.unwrap() {
        etherparse::LinkSlice::Ethernet2(e) => e,
        _ => panic!("not ethernet"),
    };
    let macs = (eth.destination(), eth.source());
    let (sport, dport) = match p.transport.unwrap() {
        TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
        _ => panic!("not tcp"),
    };
    match p.net.unwrap() {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            tcp4(macs, (h.destination(), dport), (h.source(), sport), flags)
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            let mut pk = frame6::Pkt6::new(
                macs,
                (h.destination(), dport),
                (h.source(), sport),
                frame6::L4::Tcp(flags),
            );
            pk.payload = b"sync";
            pk.build()
        }
        _ => panic!("not ip"),
    }
}

/// Processes `frame` on `ingress`; the verdict and the frame as it leaves.
fn run(p: &mut Processor, now: u64, ingress: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = frame.to_vec();
    let mut len = buf.len();
    buf.resize(len + 64, 0);
    p.begin_batch(now);
    let v = p.process_buf(now, ingress, &mut buf, &mut len);
    buf.truncate(len);
    (v, buf)
}

fn drain(c: &mut SyncConsumer) -> Vec<SyncRecord> {
    let mut out = Vec::new();
    c.drain_into(&mut out, usize::MAX);
    out
}

/// (op, state) of each connection record.
fn ops(records: &[SyncRecord]) -> Vec<(SyncOp, ConnState)> {
    records
        .iter()
        .filter_map(|r| match r {
            SyncRecord::Conn(c) => Some((c.op, c.state)),
            SyncRecord::Template(_) => None,
        })
        .collect()
}

fn with_ring(p: &mut Processor, capacity: usize) -> SyncConsumer {
    let (prod, cons) = ring(capacity);
    assert!(p.set_sync(Some(prod)).is_none());
    cons
}

fn nat_client(flags: &str, port: u16) -> Vec<u8> {
    use nat_lab::*;
    tcp4((CLIENT_MAC, WAN_MAC), (CLIENT, port), (VIP, 80), flags)
}

#[test]
fn a_handshake_gives_create_then_established_fin_an_update_and_expiry_a_delete() {
    let mut a = nat_lab::processor(1000);
    let mut c = with_ring(&mut a, 64);
    let (v, out) = run(&mut a, T0, 0, &nat_client("S", 40000));
    assert_eq!(v, Verdict::Tx(1));
    let recs = drain(&mut c);
    assert_eq!(ops(&recs), [(SyncOp::Create, ConnState::SynRecv)]);
    let SyncRecord::Conn(create) = recs[0] else {
        panic!()
    };
    assert_eq!(create.timeout_ms, 30_000, "tcp_syn left");
    assert_eq!(create.vip.port, 80);
    assert!(create.local.is_none());
    // The server's SYN-ACK changes nothing a peer needs; the client's ACK establishes it.
    assert_eq!(run(&mut a, T0, 1, &answer(&out, "SA")).0, Verdict::Tx(0));
    assert!(drain(&mut c).is_empty());
    run(&mut a, T0, 0, &nat_client("A", 40000));
    let recs = drain(&mut c);
    assert_eq!(ops(&recs), [(SyncOp::Update, ConnState::Established)]);
    let SyncRecord::Conn(up) = recs[0] else {
        panic!()
    };
    assert_eq!(up.timeout_ms, 900_000);
    // More data: not an event per packet (at most one refresh, if the expiry crossed a
    // refresh boundary).
    for k in 0..5 {
        run(&mut a, T0 + S + k * 1_000_000, 0, &nat_client("AP", 40000));
    }
    assert!(drain(&mut c).len() <= 1);
    // Busy for longer than a refresh period: one refresh.
    run(&mut a, T0 + 20 * S, 0, &nat_client("AP", 40000));
    assert_eq!(
        ops(&drain(&mut c)),
        [(SyncOp::Update, ConnState::Established)]
    );
    run(&mut a, T0 + 20 * S, 0, &nat_client("AF", 40000));
    assert_eq!(
        ops(&drain(&mut c)),
        [(SyncOp::Update, ConnState::CloseWait)]
    );
    // Expired: the batch's sweep removes it and says so.
    let later = T0 + 20 * S + 121 * S;
    run(&mut a, later, 0, &[0u8; 10]);
    assert_eq!(
        ops(&drain(&mut c)),
        [(SyncOp::Delete, ConnState::CloseWait)]
    );
    assert!(a.shared().conntrack.is_empty());
}

#[test]
fn a_lookup_that_finds_its_entry_expired_gives_a_delete() {
    // A table large enough that one batch's sweep does not reach the entry (64 shards).
    let mut a = nat_lab::processor(1 << 20);
    let mut c = with_ring(&mut a, 64);
    run(&mut a, T0, 0, &nat_client("S", 40001));
    drain(&mut c);
    let (v, _) = run(&mut a, T0 + 31 * S, 0, &nat_client("A", 40001));
    assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
    let recs = drain(&mut c);
    assert!(
        ops(&recs).contains(&(SyncOp::Delete, ConnState::SynRecv)),
        "{recs:?}"
    );
    // A SYN reopening a closed connection: Delete of the old, Create of the new.
    run(&mut a, T0 + 40 * S, 0, &nat_client("S", 40002));
    run(&mut a, T0 + 40 * S, 0, &nat_client("A", 40002));
    run(&mut a, T0 + 40 * S, 0, &nat_client("R", 40002));
    drain(&mut c);
    run(&mut a, T0 + 41 * S, 0, &nat_client("S", 40002));
    let got = ops(&drain(&mut c));
    assert_eq!(got.first().map(|o| o.0), Some(SyncOp::Delete), "{got:?}");
    assert_eq!(got.last(), Some(&(SyncOp::Create, ConnState::SynRecv)));
}

#[test]
fn a_full_ring_counts_a_drop_and_the_packet_is_still_forwarded() {
    let mut a = nat_lab::processor(1000);
    let mut c = with_ring(&mut a, 1);
    assert_eq!(
        run(&mut a, T0, 0, &nat_client("S", 40000)).0,
        Verdict::Tx(1)
    );
    assert_eq!(
        run(&mut a, T0, 0, &nat_client("S", 40001)).0,
        Verdict::Tx(1)
    );
    assert_eq!(a.sync_ring().unwrap().dropped(), 1);
    assert_eq!(c.dropped(), 1);
    assert_eq!(drain(&mut c).len(), 1);
    // Off: no ring, no events, same forwarding.
    assert!(a.set_sync(None).is_some());
    assert_eq!(
        run(&mut a, T0, 0, &nat_client("S", 40002)).0,
        Verdict::Tx(1)
    );
}

/// Box A opens the connection (`syn`, answered by the server with a SYN-ACK where replies come
/// back, then the client's ACK); box B installs A's records; then both get the client's next
/// segment and, where replies come back, the server's: verdicts and bytes must be equal.
fn round_trip(
    mut a: Processor,
    mut b: Processor,
    client: &dyn Fn(&'static str) -> Vec<u8>,
    (wan, lan): (PortId, PortId),
    replies: bool,
    tun: bool,
) {
    let mut ca = with_ring(&mut a, 64);
    let (v, out) = run(&mut a, T0, wan, &client("S"));
    assert!(matches!(v, Verdict::Tx(_)), "{v:?}");
    if replies {
        assert!(matches!(
            run(&mut a, T0, lan, &answer(&out, "SA")).0,
            Verdict::Tx(_)
        ));
    }
    run(&mut a, T0, wan, &client("A"));
    let records = drain(&mut ca);
    assert!(records.len() >= 2, "{records:?}");
    let stats = |p: &Processor| {
        let snap = p.shared().snapshot.load();
        let (mut active, mut inactive) = (0, 0);
        for s in &snap.services {
            for r in &s.reals {
                active += r.stats.active.load(Ordering::Relaxed);
                inactive += r.stats.inactive.load(Ordering::Relaxed);
            }
        }
        (active, inactive)
    };
    let now = T0 + S;
    for r in &records {
        b.shared().install(r, now).unwrap();
    }
    assert_eq!(b.shared().conntrack.len(), 1);
    assert_eq!(
        stats(&b),
        (0, 0),
        "installed, not counted until it takes traffic"
    );
    let (va, mut oa) = run(&mut a, now, wan, &client("AP"));
    let (vb, mut ob) = run(&mut b, now, wan, &client("AP"));
    if tun {
        // The outer header's identification is each worker's own counter (and so its
        // checksum): everything else must match.
        for o in [&mut oa, &mut ob] {
            o[18..20].fill(0);
            o[24..26].fill(0);
        }
    }
    assert!(matches!(va, Verdict::Tx(_)), "{va:?}");
    assert_eq!((va, &oa), (vb, &ob), "original direction");
    assert_eq!(stats(&b), (1, 0), "counted on its first packet");
    assert_eq!(stats(&a), stats(&b));
    if replies {
        let reply = answer(&oa, "AP");
        let (va, ra) = run(&mut a, now, lan, &reply);
        let (vb, rb) = run(&mut b, now, lan, &reply);
        assert!(matches!(va, Verdict::Tx(_)), "{va:?}");
        assert_eq!((va, &ra), (vb, &rb), "reply direction");
    }
}

#[test]
fn a_box_that_installs_the_records_forwards_nat_as_the_owner_does() {
    let client = |f: &'static str| nat_client(f, 40000);
    let (a, b) = (nat_lab::processor(1000), nat_lab::processor(1000));
    round_trip(a, b, &client, (0, 1), true, false);
}

#[test]
fn a_box_that_installs_the_records_forwards_fullnat_as_the_owner_does() {
    let client = |f: &'static str| {
        use nat_lab::*;
        tcp4((CLIENT_MAC, WAN_MAC), (CLIENT, 40000), (VIP, 80), f)
    };
    let (a, b) = (fullnat_lab::processor(), fullnat_lab::processor());
    // Another connection on B first, so that B's next free port is not the one A used.
    let mut b = b;
    run(
        &mut b,
        T0,
        0,
        &tcp4(
            (nat_lab::CLIENT_MAC, nat_lab::WAN_MAC),
            ([198, 18, 0, 3], 50000),
            (nat_lab::VIP, 80),
            "S",
        ),
    );
    let b_conns = b.shared().conntrack.len();
    assert_eq!(b_conns, 1);
    let mut a = a;
    let mut ca = with_ring(&mut a, 64);
    run(&mut a, T0, 0, &client("S"));
    let recs = drain(&mut ca);
    let SyncRecord::Conn(create) = recs[0] else {
        panic!()
    };
    let local = create.local.expect("FULLNAT carries its local endpoint");
    let taken = b.shared().install(&recs[0], T0);
    assert_eq!(
        taken,
        Err(xvs::conntrack::InstallError::LocalPort(
            xvs::conntrack::local_ports::ReserveError::Taken
        )),
        "B's own connection holds {local:?}"
    );
    // A fresh B takes it.
    let b = fullnat_lab::processor();
    let a = fullnat_lab::processor();
    round_trip(a, b, &client, (0, 1), true, false);
}

#[test]
fn a_box_that_installs_the_records_forwards_dr_and_tun_as_the_owner_does() {
    for fwd in [Forwarding::Dr, Forwarding::Tun] {
        let client = |f: &'static str| {
            use routed_lab::*;
            tcp4((ROUTER_MAC, LAN_MAC), (CLIENT, 40000), (VIP, 80), f)
        };
        let (a, b) = (routed_lab::processor(fwd), routed_lab::processor(fwd));
        round_trip(a, b, &client, (0, 0), false, fwd == Forwarding::Tun);
    }
}

#[test]
fn a_box_that_installs_the_records_forwards_ipv6_nat_as_the_owner_does() {
    let client = |f: &'static str| {
        use nat6_lab::*;
        let mut p = frame6::Pkt6::new(
            (CLIENT_MAC, WAN_MAC),
            (CLIENT, 40000),
            (VIP, 80),
            frame6::L4::Tcp(f),
        );
        p.payload = b"sync";
        p.build()
    };
    let (a, b) = (nat6_lab::processor(1000), nat6_lab::processor(1000));
    round_trip(a, b, &client, (0, 1), true, false);
}

#[test]
fn records_of_unknown_services_or_reals_are_refused() {
    let mut a = nat_lab::processor(1000);
    let mut c = with_ring(&mut a, 64);
    run(&mut a, T0, 0, &nat_client("S", 40000));
    let SyncRecord::Conn(rec) = drain(&mut c)[0] else {
        panic!()
    };
    let b = nat_lab::processor(1000);
    let mut bad = rec;
    bad.vip.port = 81;
    let e = b.shared().install(&SyncRecord::Conn(bad), T0);
    assert_eq!(e, Err(xvs::conntrack::InstallError::UnknownService));
    let mut bad = rec;
    bad.real.ip = IpAddr::from([198, 18, 1, 99]);
    let e = b.shared().install(&SyncRecord::Conn(bad), T0);
    assert_eq!(e, Err(xvs::conntrack::InstallError::UnknownReal));
    // DR/TUN box: a NAT record's method differs only in tracking, FULLNAT needs a pool.
    let mut fullnat = rec;
    fullnat.local = Some(rec.client);
    let e = b.shared().install(&SyncRecord::Conn(fullnat), T0);
    assert_eq!(e, Err(xvs::conntrack::InstallError::MethodMismatch));
    assert!(b.shared().conntrack.is_empty());
    // A Delete of what B installed removes it.
    b.shared().install(&SyncRecord::Conn(rec), T0).unwrap();
    assert_eq!(b.shared().conntrack.len(), 1);
    let mut del = rec;
    del.op = SyncOp::Delete;
    b.shared().install(&SyncRecord::Conn(del), T0).unwrap();
    assert!(b.shared().conntrack.is_empty());
}

/// The NAT lab with `web` persistent (/24, 60 s).
fn persistent_processor() -> Processor {
    let mut snap = nat_lab::snapshot(1, (3, 1), false);
    snap.services[0].persistence = Some(Persistence {
        timeout: 60 * S,
        netmask: IpAddr::from([255, 255, 255, 0]),
    });
    Processor::new(Arc::new(Shared::new(snap, nat_lab::nexthops(), 1000)))
}

fn templates(records: &[SyncRecord]) -> Vec<SyncOp> {
    records
        .iter()
        .filter_map(|r| match r {
            SyncRecord::Template(t) => Some(t.op),
            SyncRecord::Conn(_) => None,
        })
        .collect()
}

#[test]
fn templates_are_synced_when_made_at_most_every_quarter_timeout_when_used_and_on_expiry() {
    let mut a = persistent_processor();
    let mut c = with_ring(&mut a, 256);
    run(&mut a, T0, 0, &nat_client("S", 40000));
    let recs = drain(&mut c);
    assert_eq!(templates(&recs), [SyncOp::Create]);
    // New connections of the network within 15 s: no template record.
    for (i, t) in [1, 5, 14].into_iter().enumerate() {
        run(&mut a, T0 + t * S, 0, &nat_client("S", 40001 + i as u16));
    }
    assert!(templates(&drain(&mut c)).is_empty());
    run(&mut a, T0 + 16 * S, 0, &nat_client("S", 40010));
    let recs = drain(&mut c);
    assert_eq!(templates(&recs), [SyncOp::Update]);
    // B installs the template: its new connection of the network goes to the same server.
    let b = persistent_processor();
    for r in &recs {
        b.shared().install(r, T0 + 16 * S).unwrap();
    }
    assert_eq!(b.shared().persistence.len(), 1);
    let mut b = b;
    let (_, oa) = run(&mut a, T0 + 17 * S, 0, &nat_client("S", 40020));
    let (_, ob) = run(&mut b, T0 + 17 * S, 0, &nat_client("S", 40020));
    assert_eq!(oa, ob, "same real server from the template");
    drain(&mut c);
    // Expiry: a Delete.
    for k in 0..4 {
        run(&mut a, T0 + 100 * S + k, 0, &[0u8; 10]);
    }
    assert!(templates(&drain(&mut c)).contains(&SyncOp::Delete));
}

#[test]
fn the_full_dump_gives_every_connection_and_template_once_in_bounded_pages() {
    let mut a = persistent_processor();
    for i in 0..300u16 {
        // Three clients of one /24: one template.
        let client = [198, 18, 0, 2 + (i % 3) as u8];
        let macs = (nat_lab::CLIENT_MAC, nat_lab::WAN_MAC);
        let f = tcp4(macs, (client, 20000 + i), (nat_lab::VIP, 80), "S");
        assert!(
            matches!(run(&mut a, T0, 0, &f).0, Verdict::Tx(_)),
            "flow {i}"
        );
    }
    let shared = a.shared();
    assert_eq!(shared.conntrack.len(), 300);
    assert_eq!(shared.persistence.len(), 1, "one /24");
    let (mut cursor, mut out, mut pages) = (FullDump::default(), Vec::new(), 0);
    loop {
        let before = out.len();
        let more = shared.dump_page(&mut cursor, T0, 16, &mut out);
        assert!(out.len() - before <= 16, "a page holds at most its slots");
        pages += 1;
        if !more {
            break;
        }
    }
    assert!(cursor.is_done() && pages >= 300 / 16);
    assert!(out.iter().all(|r| r.op() == SyncOp::Create));
    let mut ports: Vec<u16> = out
        .iter()
        .filter_map(|r| match r {
            SyncRecord::Conn(c) => Some(c.client.port),
            SyncRecord::Template(_) => None,
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        (20000..20300).collect::<Vec<_>>(),
        "every connection once"
    );
    assert_eq!(templates(&out), [SyncOp::Create]);
    // Installed on a fresh box, the dump reproduces the tables.
    let b = persistent_processor();
    for r in &out {
        b.shared().install(r, T0).unwrap();
    }
    assert_eq!(b.shared().conntrack.len(), 300);
    assert_eq!(b.shared().persistence.len(), 1);

    // What the sync thread runs: the dump as a lazy iterator over `Arc<Shared>` (the same
    // records), installed through the `RecordSink` of a third box's `Arc<Shared>` (called by
    // path: imported, the traits' methods on `Arc<Shared>` would hide `Shared`'s own).
    let mut source = shared.clone();
    let dumped: Vec<SyncRecord> = xvs::sync::tables::DumpSource::dump(&mut source, T0).collect();
    assert_eq!(dumped.len(), out.len());
    // The same entries; their idle time left is read page by page, a few µs later than T0.
    let without_timeout = |r: &SyncRecord| match *r {
        SyncRecord::Conn(mut c) => {
            assert!(c.timeout_ms <= 60_000 * 15, "{c:?}");
            c.timeout_ms = 0;
            SyncRecord::Conn(c)
        }
        SyncRecord::Template(mut t) => {
            t.timeout_ms = 0;
            SyncRecord::Template(t)
        }
    };
    let dumped_keys: Vec<SyncRecord> = dumped.iter().map(without_timeout).collect();
    assert!(out
        .iter()
        .all(|r| dumped_keys.contains(&without_timeout(r))));
    let mut sink = persistent_processor().shared().clone();
    for r in &dumped {
        xvs::sync::tables::RecordSink::install(&mut sink, r, T0).unwrap();
    }
    assert_eq!(sink.conntrack.len(), 300);
    assert_eq!(sink.persistence.len(), 1);
}
