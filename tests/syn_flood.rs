//! A SYN flood through `process()`: 1,000,000 distinct SYNs against a table of 100,000 entries
//! that already holds established flows. The table never exceeds its bound, every established
//! flow keeps forwarding to its server, and every SYN that found the table full is accounted for
//! as an eviction of a half-open entry or a `conntrack_full` drop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

#[path = "fixtures/nat_lab.rs"]
mod nat_lab;

use std::sync::atomic::Ordering;

use etherparse::PacketBuilder;
use nat_lab::*;
use xvs::datapath::wire::checksum;
use xvs::datapath::{DropReason, Verdict};
use xvs::flow::NANOS_PER_SEC;

const MAX_ENTRIES: usize = 100_000;
const ESTABLISHED: u32 = 2_000;
const FLOOD: u32 = 1_000_000;

/// A client → VIP:80 TCP segment from `src`:`sport` with `flags` (valid IPv4 checksum).
fn segment(src: [u8; 4], sport: u16, syn: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let b = PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv4(src, VIP, 64)
        .tcp(sport, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    b.write(&mut f, &[]).unwrap();
    f
}

/// Rewrites the source of a frame made by `segment` in place (fresh IPv4 checksum).
fn set_source(f: &mut [u8], src: [u8; 4], sport: u16) {
    f[26..30].copy_from_slice(&src);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn client(i: u32) -> ([u8; 4], u16) {
    // 198.18.0.0/15 minus the lab's own subnets: 198.19.x.y, 1024 ports each.
    let host = i / 1024;
    (
        [198, 19, (host >> 8) as u8, host as u8],
        1024 + (i % 1024) as u16,
    )
}

#[test]
fn a_million_syns_keep_the_table_bounded_and_established_flows_alive() {
    let mut p = processor(MAX_ENTRIES);
    let mut now = NANOS_PER_SEC;
    // Established flows first (SYN, then the client's ACK), and where each one went.
    let mut servers = Vec::new();
    p.begin_batch(now);
    for i in 0..ESTABLISHED {
        let (src, sport) = client(i);
        let mut syn = segment(src, sport, true);
        assert_eq!(p.process(now, 0, &mut syn), Verdict::Tx(1));
        servers.push([syn[30], syn[31], syn[32], syn[33]]);
        let mut ack = segment(src, sport, false);
        assert_eq!(p.process(now, 0, &mut ack), Verdict::Tx(1));
    }
    let table = &p.shared().conntrack;
    assert_eq!(table.len(), ESTABLISHED as usize);

    // The flood: distinct sources, 64 frames per batch, 1 ms per batch.
    let (src, sport) = client(ESTABLISHED);
    let template = segment(src, sport, true);
    let (mut tx, mut full) = (0u64, 0u64);
    for i in 0..FLOOD {
        if i % 64 == 0 {
            now += 1_000_000;
            p.begin_batch(now);
        }
        let (src, sport) = client(ESTABLISHED + 1 + i);
        let mut f = template.clone();
        set_source(&mut f, src, sport);
        match p.process(now, 0, &mut f) {
            Verdict::Tx(_) => tx += 1,
            Verdict::Drop(DropReason::ConntrackFull) => full += 1,
            other => panic!("SYN {i}: {other:?}"),
        }
        if i % 4096 == 0 {
            assert!(p.shared().conntrack.len() <= MAX_ENTRIES, "at SYN {i}");
        }
    }
    let table = &p.shared().conntrack;
    assert!(table.len() <= MAX_ENTRIES);
    let evicted = p.counters.conntrack_evictions.load(Ordering::Relaxed);
    let free_at_start = (MAX_ENTRIES - ESTABLISHED as usize) as u64;
    assert_eq!(tx + full, u64::from(FLOOD));
    // Each SYN after the table filled either evicted a half-open entry or was refused.
    assert_eq!(
        evicted + full,
        u64::from(FLOOD) - free_at_start,
        "evicted {evicted}, refused {full}"
    );
    eprintln!("flood: {tx} forwarded ({evicted} by eviction), {full} refused as conntrack_full");

    // Every established flow still forwards to its server.
    now += 1_000_000;
    p.begin_batch(now);
    for (i, want) in servers.iter().enumerate() {
        let (src, sport) = client(i as u32);
        let mut ack = segment(src, sport, false);
        assert_eq!(p.process(now, 0, &mut ack), Verdict::Tx(1), "flow {i}");
        assert_eq!(&ack[30..34], want, "flow {i} moved");
    }
}
