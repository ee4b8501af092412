//! `Scheduler::pick`: nanoseconds per pick for every scheduler, with 10 and 1000 real servers;
//! and `mh_build`: the time to build a Maglev table of 65537 entries for 1000 servers.
//!
//! Weights are 1..=8, active counts 1..=16 and inactive counts 0..2000, fixed pseudo-random values
//! (an xorshift with a constant seed), so the connection-count schedulers have a real minimum to
//! find rather than a tie at 0; every server has weight > 0 and is available. The counts do not
//! change between picks (no connection table here): this is the cost of the selection itself,
//! which for lc, wlc, sed, nq, fo and ovf is one pass over the servers, for rr and wrr a few
//! steps of their cursor, and for twos two passes at most (the weight sum, then the two draws).
//!
//! Keys: each iteration takes the next of 4096 precomputed flow keys (pseudo-random source
//! address, source port and destination address), so the hashing schedulers (sh, dh, mh) look up
//! a different entry each time instead of one cache-hot entry. sh and mh run with their port
//! flag set (so the port is hashed too) and no fallback (every server is available). lblc and
//! lblcr get the same keys but with the VIP as destination, which is what xvs gives them (a
//! service is a VIP and port): one remembered destination per worker, so this measures their
//! table lookup plus the overload check; with these fixed counts the remembered server is not
//! overloaded in their sense, so no pick falls through to the weighted least-connection pass
//! (with 10 servers it has more active connections than its weight but no server is below half
//! of its own, which the check finds by scanning the list; with 1000 it is within its weight).
//! The tables of sh, dh and mh are built before the measurement, as the control plane does.
//!
//! Checked untimed, before timing: every pick the timed loop can make (each of the 4096 keys,
//! through the very scheduler instance that is then timed) returns a server that exists and can
//! take the flow, so no figure is the cost of finding nothing; and the Maglev table built is
//! full (every entry names one of the 1000 servers). `cargo test --benches` (so `make test`)
//! runs these checks and each timed routine once, in criterion's test mode.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use xvs::flow::{FlowKey, Proto};
use xvs::sched::{self, MaglevTable, RealServer, SchedFlags, SchedulerKind};

const KINDS: [SchedulerKind; 14] = [
    SchedulerKind::Rr,
    SchedulerKind::Wrr,
    SchedulerKind::Lc,
    SchedulerKind::Wlc,
    SchedulerKind::Sed,
    SchedulerKind::Nq,
    SchedulerKind::Fo,
    SchedulerKind::Ovf,
    SchedulerKind::Lblc,
    SchedulerKind::Lblcr,
    SchedulerKind::Dh,
    SchedulerKind::Sh,
    SchedulerKind::Mh,
    SchedulerKind::Twos,
];

/// How many distinct keys the picks cycle through (a power of two).
const KEYS: usize = 4096;

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn reals(n: usize) -> Vec<RealServer> {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([198, 18, (1 + i / 250) as u8, (i % 250) as u8], 80));
            let r = RealServer::new(addr, 1 + (next() % 8) as u32);
            // At least one active connection everywhere, so nq does the full sed pass; 1..=16
            // against weights 1..=8, so about a third of the servers are within ovf's limit.
            r.stats.active.store(1 + next() % 16, Ordering::Relaxed);
            r.stats.inactive.store(next() % 2000, Ordering::Relaxed);
            r
        })
        .collect()
}

/// `KEYS` flow keys to the VIP's port 80 from pseudo-random clients; `dst` is a pseudo-random
/// address, or the VIP when `to_vip`.
fn keys(to_vip: bool) -> Vec<FlowKey> {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let vip: IpAddr = "198.18.0.100".parse().unwrap();
    (0..KEYS)
        .map(|_| {
            let r = next();
            FlowKey {
                proto: Proto::Tcp,
                src: IpAddr::from((r as u32).to_be_bytes()),
                dst: if to_vip {
                    vip
                } else {
                    IpAddr::from(((r >> 32) as u32).to_be_bytes())
                },
                sport: 1024 + (r >> 48) as u16 % 64000,
                dport: 80,
            }
        })
        .collect()
}

fn bench_pick(c: &mut Criterion) {
    let (to_any, to_vip) = (keys(false), keys(true));
    let flags = SchedFlags {
        hash_port: true,
        fallback: false,
    };
    let mut g = c.benchmark_group("pick");
    for n in [10, 1000] {
        let r = reals(n);
        for kind in KINDS {
            let prepared = sched::prepare(kind, flags, &r, sched::mh::DEFAULT_TABLE_SIZE);
            let mut s = sched::build(kind, &prepared, &r);
            let keys = match kind {
                SchedulerKind::Lblc | SchedulerKind::Lblcr => {
                    // The documented case: the remembered server is not overloaded in lblc's
                    // sense, so every pick takes it again.
                    let first = s.pick(0, &to_vip[0], &r).expect("a server");
                    let over = r[first].active_connections() > u64::from(r[first].weight)
                        && r.iter()
                            .any(|d| d.active_connections() * 2 < u64::from(d.weight));
                    assert!(!over, "{kind}/{n}: the remembered server is overloaded");
                    &to_vip
                }
                _ => &to_any,
            };
            // Untimed: every key the timed loop cycles through gets an available server.
            for (k, key) in keys.iter().enumerate() {
                let picked = s.pick(0, key, &r);
                assert!(
                    picked.is_some_and(|p| p < r.len() && r[p].is_available()),
                    "{kind}/{n}: key {k} picked {picked:?}, not an available server"
                );
            }
            let mut i = 0usize;
            g.bench_with_input(BenchmarkId::new(kind.name(), n), &r, |b, r| {
                b.iter(|| {
                    i = (i + 1) & (KEYS - 1);
                    black_box(s.pick(0, black_box(&keys[i]), r))
                })
            });
        }
    }
    g.finish();
}

fn bench_mh_build(c: &mut Criterion) {
    let r = reals(1000);
    let size = sched::mh::DEFAULT_TABLE_SIZE;
    // Untimed: the table is full and shares its entries among all the servers.
    let t = MaglevTable::build(&r, size, SchedFlags::default());
    let per = t.entries_per_server();
    assert_eq!(
        (t.len(), per.len()),
        (size as usize, r.len()),
        "mh_build: table size"
    );
    assert_eq!(
        per.iter().sum::<usize>(),
        size as usize,
        "mh_build: entries"
    );
    assert!(
        per.iter().all(|&e| e > 0),
        "mh_build: a server without entries"
    );
    c.bench_function("mh_build/1000 servers, 65537 entries", |b| {
        b.iter(|| {
            black_box(MaglevTable::build(
                black_box(&r),
                size,
                SchedFlags::default(),
            ))
        })
    });
}

criterion_group!(benches, bench_pick, bench_mh_build);
criterion_main!(benches);
