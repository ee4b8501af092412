//! `Scheduler::pick`: nanoseconds per pick for every built scheduler, with 10 and 1000 real
//! servers.
//!
//! Weights are 1..=8, active counts 1..=16 and inactive counts 0..2000, fixed pseudo-random values
//! (an xorshift with a constant seed), so the connection-count schedulers have a real minimum to
//! find rather than a tie at 0; every server has weight > 0. The counts do not change between picks (no
//! connection table here): this is the cost of the selection itself, which for lc, wlc, sed, nq,
//! fo and ovf is one pass over the servers, and for rr and wrr a few steps of their cursor.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use xvs::flow::{FlowKey, Proto};
use xvs::sched::{self, RealServer, SchedulerKind};

const KINDS: [SchedulerKind; 8] = [
    SchedulerKind::Rr,
    SchedulerKind::Wrr,
    SchedulerKind::Lc,
    SchedulerKind::Wlc,
    SchedulerKind::Sed,
    SchedulerKind::Nq,
    SchedulerKind::Fo,
    SchedulerKind::Ovf,
];

fn reals(n: usize) -> Vec<RealServer> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
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

fn bench(c: &mut Criterion) {
    let key = FlowKey {
        proto: Proto::Tcp,
        src: "198.18.0.2".parse().unwrap(),
        dst: "198.18.0.100".parse().unwrap(),
        sport: 40000,
        dport: 80,
    };
    let mut g = c.benchmark_group("pick");
    for n in [10, 1000] {
        let r = reals(n);
        for kind in KINDS {
            let mut s = sched::build(kind, &sched::Prepared::default(), &r);
            g.bench_with_input(BenchmarkId::new(kind.name(), n), &r, |b, r| {
                b.iter(|| black_box(s.pick(0, black_box(&key), r)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
