//! Fuzz target: a sequence of frames through one fresh NAT lab processor
//! (`tests/fixtures/nat_lab.rs`), every verdict checked by the reference reading
//! (`tests/fixtures/oracle.rs`, shared with `tests/random_frames.rs`).
//!
//! Each frame is received on the port its destination MAC names (`oracle::ingress_of`).
//!
//! Input: records of a 2-byte big-endian header and a frame. Header bits 0..=10: frame length
//! (cut to what is left); bit 15: write a valid IPv4 header checksum before processing (so the
//! fuzzer reaches the transport, conntrack and rewrite paths without guessing checksums); bit 14:
//! advance the clock by 31 s first (past the TCP SYN timeout); bit 13 of the *first* record: use
//! the lab with `sloppy_tcp` on. A fresh processor per input keeps every run reproducible.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xvs::datapath::{Processor, Shared};
use xvs::flow::NANOS_PER_SEC;

#[path = "../../tests/fixtures/nat_lab.rs"]
mod nat_lab;
#[path = "../../tests/fixtures/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let sloppy = data.first().is_some_and(|b| b & 0x20 != 0);
    let mut p = Processor::new(Arc::new(Shared::new(
        nat_lab::snapshot(1, (3, 1), sloppy),
        nat_lab::nexthops(),
        64,
    )));
    let mut now = 1000 * NANOS_PER_SEC;
    p.begin_batch(now);
    let mut rest = data;
    let mut frame = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let head = u16::from_be_bytes([*hi, *lo]);
        let len = usize::from(head & 0x07ff).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        frame.clear();
        frame.extend_from_slice(bytes);
        if head & 0x8000 != 0 {
            oracle::fix_ip_checksum(&mut frame);
        }
        if head & 0x4000 != 0 {
            now += 31 * NANOS_PER_SEC;
            p.begin_batch(now);
        }
        let input = frame.clone();
        let ingress = oracle::ingress_of(&input);
        let verdict = p.process(now, ingress, &mut frame);
        if let Err(e) = oracle::check(&input, ingress, verdict, &frame) {
            panic!("{e}\n input {input:02x?}\noutput {frame:02x?}");
        }
    }
});
