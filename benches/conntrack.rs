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
//! - `new_connection/1M`: the issue-15 budget's "new connection (lookup miss + schedule +
//!   insert)", for a batch of 64 fresh flows in the table holding 1M entries, as the datapath
//!   does them: the batch's pre-pass (`ConnTable::prefetch` of each flow's key), then per flow
//!   the lookup that misses (`ConnTable::lookup_probe` with the pre-pass's hint), the wrr
//!   scheduler's pick (two real servers, weights 3:1) and `ConnTable::insert_scheduled` of the
//!   NAT connection (both keys). Throughput is per flow. The table is refilled untimed as for
//!   `insert/N`.
//!
//! The 10M case allocates about 650 MB; `XVS_BENCH_MAX_ENTRIES=1000000` leaves it out (its
//! table is filled and checked whatever benches the command line selects).
//!
//! Checked untimed: before `lookup_hit/N` is timed, every one of the N keys it can visit is looked
//! up once and must hit its ESTABLISHED entry with the right client and real server (so the
//! figure is never the cost of a miss); every timed insert is counted and must have been a plain
//! insert (no refusal, no eviction); every `new_connection` lookup must miss, every insert be
//! plain and hold the real server picked, and the flows split 3:1 exactly (wrr over whole
//! cycles). `cargo test --benches` (so `make test`) runs these checks
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

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use xvs::conntrack::{
    ConnState, ConnTable, Direction, Event, NewConn, Origin, Probe, Scheduled, Timeouts, Track,
    Tracked,
};
use xvs::datapath::process::EXPIRY_BUDGET_PER_BATCH;
use xvs::datapath::wire::TcpFlags;
use xvs::flow::{FlowKey, Proto, NANOS_PER_SEC};
use xvs::sched::wrr::WeightedRoundRobin;
use xvs::sched::{RealServer, RealStats, Scheduler};

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

/// Flows per `new_connection` batch (a worker's receive batch).
const NEW_BATCH: usize = 64;

/// What the untimed checks of `new_connection` count.
#[derive(Default)]
struct NewTally {
    /// Lookups that hit (must be none: every flow is fresh).
    hits: u64,
    /// Inserts refused or that evicted.
    not_plain: u64,
    /// Inserted connections whose real server is not the one picked.
    wrong_real: u64,
    /// Connections per real server.
    per_real: [u64; 2],
}

/// One timed `new_connection` batch over `keys`: the pre-pass, then per flow the lookup that
/// misses, the wrr pick and the insert, as the datapath's original direction does them.
fn new_batch(
    t: &ConnTable,
    keys: &[FlowKey; NEW_BATCH],
    (wrr, reals): (&mut WeightedRoundRobin, &[RealServer]),
    tally: &mut NewTally,
) {
    let to = Timeouts::default();
    let syn = Event::Tcp(TcpFlags(TcpFlags::SYN));
    let hints = keys.map(|k| t.prefetch(Direction::Original, &k));
    for (key, &hint) in keys.iter().zip(&hints) {
        let mut out = Tracked::EMPTY;
        let probe = Probe {
            dir: Direction::Original,
            key,
            hint,
        };
        let mut missed = None;
        if t.lookup_probe_missed(probe, (syn, 0), &to, &mut out, &mut missed) {
            tally.hits += 1;
            continue;
        }
        let ri = wrr.pick(0, key, reals).unwrap();
        let real = &reals[ri];
        let new = NewConn {
            proto: key.proto,
            client: SocketAddr::new(key.src, key.sport),
            vip: SocketAddr::new(key.dst, key.dport),
            real: real.addr,
            state: ConnState::SynRecv,
            stats: real.stats.clone(),
        };
        let at = Scheduled {
            origin: Origin::new(0, ri),
            track: Track::Both,
            hint,
            missed,
        };
        match t.insert_scheduled(new, at, 0, &to, &mut out) {
            Ok(None) => {
                tally.wrong_real += u64::from(black_box(&out).real() != real.addr);
                tally.per_real[ri] += 1;
            }
            _ => tally.not_plain += 1,
        }
    }
}

/// `new_connection/N` over `t` (N entries live, `HEADROOM` more room), fresh flows numbered
/// from `*next` up.
fn bench_new_connection(
    g: &mut BenchmarkGroup<'_, WallTime>,
    t: &ConnTable,
    n: usize,
    next: &mut u64,
) {
    let reals = [
        RealServer::new(SocketAddr::from(([198, 18, 1, 10], 80)), 3),
        RealServer::new(SocketAddr::from(([198, 18, 1, 11], 80)), 1),
    ];
    let mut wrr = WeightedRoundRobin::new(&reals);
    let mut tally = NewTally::default();
    let fill_to = n + HEADROOM / 2;
    g.throughput(Throughput::Elements(NEW_BATCH as u64));
    g.bench_function(BenchmarkId::new("new_connection", n), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if t.len() + NEW_BATCH > fill_to {
                    // Untimed, as for `insert/N`: the SYN_RECV entries go, the 1M stay.
                    while t.len() > n {
                        t.expire(60 * NANOS_PER_SEC, 1 << 16);
                    }
                }
                let keys: [FlowKey; NEW_BATCH] = std::array::from_fn(|_| {
                    *next += 1;
                    key(*next)
                });
                let start = Instant::now();
                new_batch(t, &keys, (&mut wrr, &reals), &mut tally);
                spent += start.elapsed();
            }
            spent
        })
    });
    let what = format!("new_connection/{n}");
    assert_eq!(tally.hits, 0, "{what}: lookups of fresh flows that hit");
    assert_eq!(tally.not_plain, 0, "{what}: inserts refused or evicting");
    assert_eq!(
        tally.wrong_real, 0,
        "{what}: entries on another real server"
    );
    let [r1, r2] = tally.per_real;
    assert!(r1 > 0 && r1 == 3 * r2, "{what}: split {r1}/{r2}, not 3:1");
}

fn bench(c: &mut Criterion) {
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let max: usize =
        std::env::var("XVS_BENCH_MAX_ENTRIES").map_or(usize::MAX, |v| v.parse().unwrap());
    for n in [1_000_000usize, 10_000_000]
        .into_iter()
        .filter(|&n| n <= max)
    {
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
        if n == 1_000_000 {
            bench_new_connection(&mut g, &t, n, &mut next);
        }
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
