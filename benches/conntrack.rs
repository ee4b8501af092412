//! The connection table at scale: lookup hit and insert with 1M and 10M live entries, and the
//! per-batch expiry step while 1M entries expire at once. Also prints the measured bytes per
//! connection (entries + index, from the table's own allocation).
//!
//! - `lookup_hit/N`: `ConnTable::lookup` of an ESTABLISHED connection, keys visited in a
//!   pseudo-random order over all N entries (so caches do not hold the working set at 10M).
//! - `insert/N`: `ConnTable::insert` of a new connection into a table already holding N
//!   entries (1M of headroom; when it is used up the new entries are expired away, untimed).
//! - `expire_batch/1M`: one `ConnTable::expire(now, EXPIRY_BUDGET_PER_BATCH)` call (what each
//!   worker batch does) while 1M entries have all expired; refilled, untimed, when empty.
//!
//! The 10M case allocates about 650 MB.
//!
//! Checked untimed: before `lookup_hit/N` is timed, every one of the N keys it can visit is looked
//! up once and must hit its ESTABLISHED entry with the right client and real server (so the
//! figure is never the cost of a miss); every timed insert is counted and must have been a plain
//! insert (no refusal, no eviction). `cargo test --benches` (so `make test`) runs these checks
//! and each timed routine once, in criterion's test mode.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use xvs::conntrack::{ConnState, ConnTable, Direction, Event, NewConn, Timeouts};
use xvs::datapath::process::EXPIRY_BUDGET_PER_BATCH;
use xvs::datapath::wire::TcpFlags;
use xvs::flow::{FlowKey, Proto, NANOS_PER_SEC};
use xvs::sched::RealStats;

const HEADROOM: usize = 1_000_000;
const VIP: [u8; 4] = [198, 18, 0, 100];

fn client(i: u64) -> SocketAddr {
    // 2^16 ports per address, addresses counted up from 10.0.0.0 (never sent anywhere).
    let ip = 0x0a00_0000u32 + (i >> 16) as u32;
    SocketAddr::from((ip.to_be_bytes(), (i & 0xffff) as u16))
}

fn conn(i: u64, state: ConnState, stats: &Arc<RealStats>) -> NewConn {
    NewConn {
        proto: Proto::Tcp,
        client: client(i),
        vip: SocketAddr::from((VIP, 80)),
        real: SocketAddr::from(([198, 18, 1, 10 + (i % 8) as u8], 80)),
        state,
        stats: stats.clone(),
    }
}

fn key(i: u64) -> FlowKey {
    let c = client(i);
    FlowKey {
        proto: Proto::Tcp,
        src: c.ip(),
        sport: c.port(),
        dst: IpAddr::from(VIP),
        dport: 80,
    }
}

fn filled(n: usize, headroom: usize, stats: &Arc<RealStats>) -> ConnTable {
    let t = ConnTable::new(n + headroom);
    let to = Timeouts::default();
    for i in 0..n as u64 {
        t.insert(conn(i, ConnState::Established, stats), 0, &to)
            .unwrap();
    }
    t
}

fn bench(c: &mut Criterion) {
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    for n in [1_000_000usize, 10_000_000] {
        let t = filled(n, HEADROOM, &stats);
        eprintln!(
            "conntrack: capacity {} → {} bytes allocated, {:.1} bytes per connection",
            t.capacity(),
            t.allocated_bytes(),
            t.allocated_bytes() as f64 / t.capacity() as f64
        );
        let mut g = c.benchmark_group("conntrack");
        g.sample_size(20).measurement_time(Duration::from_secs(5));
        let ack = Event::Tcp(TcpFlags(TcpFlags::ACK));
        // Untimed: every key the timed lookups can visit (all of 0..n) hits its entry.
        for k in 0..n as u64 {
            let want = conn(k, ConnState::Established, &stats);
            let got = t.lookup(Direction::Original, &key(k), ack, NANOS_PER_SEC, &to);
            assert!(
                got.is_some_and(
                    |c| (c.client(), c.real(), c.state) == (want.client, want.real, want.state)
                ),
                "lookup_hit/{n}: key {k} found {got:?}"
            );
        }
        let mut i: u64 = 0;
        g.bench_function(BenchmarkId::new("lookup_hit", n), |b| {
            b.iter(|| {
                // An odd multiplier visits every entry in a scrambled order.
                i = i.wrapping_add(1);
                let k = key(i.wrapping_mul(0x9e37_79b9) % n as u64);
                black_box(t.lookup(Direction::Original, &k, ack, NANOS_PER_SEC, &to))
            })
        });
        let mut next = n as u64;
        // Inserts that were not a plain insert (refused, or made room by evicting).
        let mut not_plain = 0u64;
        // Refilled at half the headroom: the shards fill unevenly, and a full shard would evict
        // (or refuse) instead of inserting.
        let fill_to = n + HEADROOM / 2;
        g.bench_function(BenchmarkId::new("insert", n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    if t.len() >= fill_to {
                        // Expire the SYN_RECV entries added so far (untimed): they are past
                        // tcp_syn at 60 s, the established ones are not.
                        while t.len() > n {
                            t.expire(60 * NANOS_PER_SEC, 1 << 16);
                        }
                    }
                    let room = ((fill_to - t.len()) as u64).min(left);
                    let start = Instant::now();
                    for _ in 0..room {
                        next += 1;
                        let r = t.insert(conn(next, ConnState::SynRecv, &stats), 0, &to);
                        if !matches!(black_box(r), Ok(ins) if !ins.evicted_half_open) {
                            not_plain += 1;
                        }
                    }
                    spent += start.elapsed();
                    left -= room;
                }
                spent
            })
        });
        assert_eq!(
            not_plain, 0,
            "insert/{n}: timed inserts that were refused or evicted"
        );
        g.finish();
        drop(t);
    }

    // Expiry: 1M entries expire together; each call is one batch's bounded step.
    let n = 1_000_000u64;
    let t = ConnTable::new(n as usize);
    let short = Timeouts {
        tcp_syn: NANOS_PER_SEC,
        ..Timeouts::default()
    };
    let mut round = 0u64;
    let mut g = c.benchmark_group("conntrack");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.bench_function(BenchmarkId::new("expire_batch", n), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if t.is_empty() {
                    round += 1;
                    for i in 0..n {
                        let _ =
                            t.insert(conn(round * n + i, ConnState::SynRecv, &stats), 0, &short);
                    }
                }
                let start = Instant::now();
                while left > 0 && !t.is_empty() {
                    black_box(t.expire(10 * NANOS_PER_SEC, EXPIRY_BUDGET_PER_BATCH));
                    left -= 1;
                }
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
