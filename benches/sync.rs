//! Connection sync on one core: how many full messages of IPv4 connection records (42 records,
//! 1452 bytes with header and tag) one core can produce and check.
//!
//! - `seal_full_v4`: `Sealer::records`: encode 42 records into a buffer and sign the message
//!   (HMAC-SHA256 over 1420 bytes).
//! - `open_full_v4`: `Opener::open` of such a message: length and version, tag (constant-time
//!   compare), every record parsed, the replay window, then the 42 records iterated.
//!
//! Checked untimed: the sealed message opens to the same records. Throughput is in messages;
//! records per second are 42 times that. `cargo test --benches` runs the checks and each
//! routine once.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xvs::conntrack::ConnState;
use xvs::flow::{Endpoint, Proto};
use xvs::sync::wire::{CONN_V4_PER_MESSAGE, MAX_MESSAGE_LEN};
use xvs::sync::{ConnRecord, Key, Opener, Sealer, SyncOp, SyncRecord};

fn records() -> Vec<SyncRecord> {
    let ip = |a: u8, b: u8| IpAddr::V4(Ipv4Addr::new(198, 18, a, b));
    (0..CONN_V4_PER_MESSAGE)
        .map(|i| {
            SyncRecord::Conn(ConnRecord {
                op: SyncOp::Update,
                proto: Proto::Tcp,
                state: ConnState::Established,
                client: Endpoint::new(ip(0, 2 + i as u8), 40_000 + i as u16),
                vip: Endpoint::new(ip(0, 100), 80),
                real: Endpoint::new(ip(1, 11 + (i % 4) as u8), 80),
                local: None,
                timeout_ms: 900_000,
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let key = Key::new(b"bench-sync-key-0123456789abcdef").unwrap();
    let recs = records();
    let mut tx = Sealer::new(key.clone(), 1, 1);
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let len = tx.records(&recs, &mut buf).unwrap();
    assert_eq!(
        len,
        26 + 42 * 33 + 32,
        "a full message: header, 42 records, tag"
    );
    let mut rx = Opener::new(key.clone(), 4);
    assert_eq!(
        rx.open(&buf[..len]).unwrap().records.collect::<Vec<_>>(),
        recs
    );

    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal_full_v4", |b| {
        b.iter(|| black_box(tx.records(black_box(&recs), &mut buf).unwrap()))
    });
    // A fresh sealer's messages, one per iteration, each with a new sequence number (a replayed
    // one would be refused before its records are read).
    let mut tx = Sealer::new(key.clone(), 2, 1);
    let mut rx = Opener::new(key, 4);
    let mut msg = [0u8; MAX_MESSAGE_LEN];
    g.bench_function("open_full_v4", |b| {
        b.iter_batched_ref(
            || {
                let n = tx.records(&recs, &mut msg).unwrap();
                msg[..n].to_vec()
            },
            |m| {
                let opened = rx.open(black_box(m)).unwrap();
                black_box(
                    opened
                        .records
                        .fold(0u32, |n, r| n + u32::from(r.op() as u8)),
                )
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
