//! `process()` on established NAT flows: the per-packet cost of the datapath core (parse,
//! connection lookup and state update, NAT rewrite with incremental checksums, next-hop lookup).
//!
//! Each iteration processes a batch of 64 frames of 64 distinct established connections (as a
//! worker would, with one `begin_batch`); throughput is reported per frame. Copying each frame
//! template into the batch buffer (74 bytes) is included in the figure.
//!
//! `dr_established_tcp` and `tun_established_tcp` do the same through the DR and TUN labs
//! (`tests/fixtures/routed_lab.rs`); TUN's buffers have room for the outer header, as UMEM
//! frames do.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xvs::datapath::Verdict;

#[path = "../tests/fixtures/nat_lab.rs"]
mod nat_lab;
#[path = "../tests/fixtures/routed_lab.rs"]
mod routed_lab;

#[path = "../tests/fixtures/fullnat_lab.rs"]
mod fullnat_lab;

const BATCH: usize = 64;

fn frame(client_port: u16, flags: u8) -> Vec<u8> {
    frame_to([198, 18, 0, 100], client_port, flags)
}

fn frame_to(vip: [u8; 4], client_port: u16, flags: u8) -> Vec<u8> {
    // Ethernet + IPv4 (20) + TCP (20) + 20 bytes of payload, checksums filled.
    let mut f = vec![0u8; 14 + 20 + 20 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
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

fn bench_process(c: &mut Criterion) {
    let mut p = nat_lab::processor(1_000_000);
    // Open 64 connections with a SYN each, then benchmark ACK segments on them.
    let mut now = 1_000_000_000u64;
    p.begin_batch(now);
    for i in 0..BATCH {
        let mut f = frame(40000 + i as u16, 0x02);
        assert!(matches!(p.process(now, 0, &mut f), Verdict::Tx(1)));
    }
    let templates: Vec<Vec<u8>> = (0..BATCH).map(|i| frame(40000 + i as u16, 0x10)).collect();
    let mut bufs = templates.clone();
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("nat_established_tcp", |b| {
        b.iter(|| {
            now += 1000;
            p.begin_batch(now);
            for (buf, t) in bufs.iter_mut().zip(&templates) {
                buf.copy_from_slice(t);
                black_box(p.process(now, 0, buf));
            }
        })
    });
    g.finish();
    assert_eq!(
        p.counters.total_drops(),
        0,
        "every benchmarked frame must be forwarded"
    );
}

fn bench_routed(c: &mut Criterion) {
    use xvs::datapath::snapshot::Forwarding;
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, fwd) in [
        ("dr_established_tcp", Forwarding::Dr),
        ("tun_established_tcp", Forwarding::Tun),
    ] {
        let mut p = routed_lab::processor(fwd);
        let mut now = 1_000_000_000u64;
        p.begin_batch(now);
        for i in 0..BATCH {
            let mut f = frame_to(routed_lab::VIP, 40000 + i as u16, 0x02);
            let mut len = f.len();
            f.resize(len + 64, 0);
            assert!(matches!(
                p.process_buf(now, 0, &mut f, &mut len),
                Verdict::Tx(0)
            ));
        }
        let templates: Vec<Vec<u8>> = (0..BATCH)
            .map(|i| frame_to(routed_lab::VIP, 40000 + i as u16, 0x10))
            .collect();
        let mut bufs: Vec<Vec<u8>> = templates.iter().map(|t| vec![0u8; t.len() + 64]).collect();
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
        assert_eq!(p.counters.total_drops(), 0, "{name}: every frame forwarded");
    }
    g.finish();
}

/// The same on FULLNAT flows (`web` of the FULLNAT lab: both addresses and ports rewritten, the
/// connection found by the client's key).
fn bench_process_fullnat(c: &mut Criterion) {
    let mut p = fullnat_lab::processor_with(1_000_000, (1024, 65535));
    let mut now = 1_000_000_000u64;
    p.begin_batch(now);
    for i in 0..BATCH {
        let mut f = frame(40000 + i as u16, 0x02);
        assert!(matches!(p.process(now, 0, &mut f), Verdict::Tx(1)));
    }
    let templates: Vec<Vec<u8>> = (0..BATCH).map(|i| frame(40000 + i as u16, 0x10)).collect();
    let mut bufs = templates.clone();
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("fullnat_established_tcp", |b| {
        b.iter(|| {
            now += 1000;
            p.begin_batch(now);
            for (buf, t) in bufs.iter_mut().zip(&templates) {
                buf.copy_from_slice(t);
                black_box(p.process(now, 0, buf));
            }
        })
    });
    g.finish();
    assert_eq!(
        p.counters.total_drops(),
        0,
        "every benchmarked frame must be forwarded"
    );
}

criterion_group!(benches, bench_process, bench_routed, bench_process_fullnat);
criterion_main!(benches);
