//! `process()` on established flows, per forwarding method: the per-packet cost of the datapath
//! core (parse, connection lookup and state update, the method's rewrite with incremental
//! checksums, next-hop lookup).
//!
//! Each iteration processes a batch of 64 frames of 64 distinct established connections (as a
//! worker would, with one `begin_batch` and `process_buf` on a buffer with tailroom); throughput
//! is reported per frame. Copying each frame template into the batch buffer (74 bytes) is
//! included in the figure. `nat_established_tcp` and `fullnat_established_tcp` use the NAT and
//! FULLNAT labs (`tests/fixtures/{nat,fullnat}_lab.rs`), `dr_established_tcp` and
//! `tun_established_tcp` the DR and TUN lab (`tests/fixtures/routed_lab.rs`).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use xvs::datapath::snapshot::Forwarding;
use xvs::datapath::{PortId, Processor, Verdict};

#[path = "../tests/fixtures/fullnat_lab.rs"]
mod fullnat_lab;
use fullnat_lab::nat_lab;
#[path = "../tests/fixtures/routed_lab.rs"]
mod routed_lab;

const BATCH: usize = 64;
/// Tailroom of every frame buffer, as UMEM frames have.
const ROOM: usize = 64;

/// A client's TCP segment to `vip`:80, in a frame addressed to `port_mac` (the receiving port's
/// own MAC: anything else is dropped as `not_our_mac`).
fn frame_to(port_mac: [u8; 6], vip: [u8; 4], client_port: u16, flags: u8) -> Vec<u8> {
    // Ethernet + IPv4 (20) + TCP (20) + 20 bytes of payload, checksums filled.
    let mut f = vec![0u8; 14 + 20 + 20 + 20];
    f[0..6].copy_from_slice(&port_mac);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12] = 0x08;
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, vip[0], vip[1], vip[2], vip[3],
    ]);
    let c = xvs::datapath::wire::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&client_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    let pseudo = xvs::datapath::wire::checksum::ipv4_pseudo_header_sum([198, 18, 0, 2], vip, 6, 40);
    let c =
        !xvs::datapath::wire::checksum::fold(xvs::datapath::wire::checksum::sum(&f[34..], pseudo));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// Opens 64 connections to `vip` with a SYN each (which must leave on `egress`), then measures
/// batches of one ACK segment on each, as the worker calls `process_buf`: every frame in a
/// buffer with 64 bytes of tailroom (TUN's outer header grows into it).
fn bench_established(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut p: Processor,
    vip: [u8; 4],
    egress: PortId,
) {
    let port_mac = p.shared().snapshot.load().ports[0].mac;
    let mut now = 1_000_000_000u64;
    p.begin_batch(now);
    for i in 0..BATCH {
        let mut f = frame_to(port_mac, vip, 40000 + i as u16, 0x02);
        let mut len = f.len();
        f.resize(len + ROOM, 0);
        let v = p.process_buf(now, 0, &mut f, &mut len);
        assert_eq!(v, Verdict::Tx(egress), "{name}: SYN {i}");
    }
    let templates: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| frame_to(port_mac, vip, 40000 + i as u16, 0x10))
        .collect();
    let mut bufs: Vec<Vec<u8>> = templates
        .iter()
        .map(|t| vec![0u8; t.len() + ROOM])
        .collect();
    g.bench_function(name, |b| {
        b.iter(|| {
            now += 1000;
            p.begin_batch(now);
            for (buf, t) in bufs.iter_mut().zip(&templates) {
                buf[..t.len()].copy_from_slice(t);
                let mut len = t.len();
                black_box(p.process_buf(now, 0, buf, &mut len));
            }
        })
    });
    assert_eq!(
        p.counters.total_drops(),
        0,
        "{name}: every benchmarked frame must be forwarded"
    );
}

fn bench_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(BATCH as u64));
    let nat_vip = [198, 18, 0, 100];
    bench_established(
        &mut g,
        "nat_established_tcp",
        nat_lab::processor(1_000_000),
        nat_vip,
        1,
    );
    // FULLNAT: both addresses and ports rewritten, the connection found by the client's key.
    let fullnat = fullnat_lab::processor_with(1_000_000, (1024, 65535));
    bench_established(&mut g, "fullnat_established_tcp", fullnat, nat_vip, 1);
    for (name, fwd) in [
        ("dr_established_tcp", Forwarding::Dr),
        ("tun_established_tcp", Forwarding::Tun),
    ] {
        bench_established(&mut g, name, routed_lab::processor(fwd), routed_lab::VIP, 0);
    }
    g.finish();
}

criterion_group!(benches, bench_process);
criterion_main!(benches);
