//! The batch pre-pass (`Processor::prefetch`) changes nothing but time: two NAT lab processors,
//! each over a table of its own, one running the pre-pass over every batch and the other not,
//! decide every frame alike (verdict, length and bytes), whether the frames are then decided in
//! the pre-pass's order, in another order, with frames it never saw, or after frames it could
//! not read.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use xvs::datapath::wire::checksum;
use xvs::datapath::{PortId, Processor, Verdict};

#[path = "fixtures/nat_lab.rs"]
mod nat_lab;
use nat_lab::*;

const T0: u64 = 1_000_000_000;
const FLOWS: usize = 48;

/// A TCP segment `src` → `dst` with `flags`, checksums filled.
fn segment(
    eth: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: u8,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[0..6].copy_from_slice(&eth.0);
    f[6..12].copy_from_slice(&eth.1);
    f[12] = 0x08;
    let (s, d) = (src.0, dst.0);
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3],
    ]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&src.1.to_be_bytes());
    f[36..38].copy_from_slice(&dst.1.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = flags;
    let c = !checksum::fold(checksum::sum(
        &f[34..],
        checksum::ipv4_pseudo_header_sum(s, d, 6, 20),
    ));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

fn from_client(i: usize, flags: u8) -> Vec<u8> {
    segment(
        (WAN_MAC, CLIENT_MAC),
        (CLIENT, 30000 + i as u16),
        (VIP, 80),
        flags,
    )
}

fn from_real(real: [u8; 4], i: usize, flags: u8) -> Vec<u8> {
    let mac = if real == R1 { R1_MAC } else { R2_MAC };
    segment(
        (LAN_MAC, mac),
        (real, 80),
        (CLIENT, 30000 + i as u16),
        flags,
    )
}

/// Decides `frames` (each with its ingress) on both processors in one batch: `with` runs the
/// pre-pass over `looked` first, `without` does not. Returns `without`'s outputs after checking
/// that `with`'s are the same.
fn both(
    (with, without): (&mut Processor, &mut Processor),
    now: u64,
    looked: &[Vec<u8>],
    frames: &[(PortId, Vec<u8>)],
) -> Vec<(Verdict, Vec<u8>)> {
    with.begin_batch(now);
    without.begin_batch(now);
    for f in looked {
        with.prefetch(f);
    }
    let run = |p: &mut Processor, ingress: PortId, frame: &[u8]| {
        nat_lab::decide_copy(p, now, ingress, frame)
    };
    frames
        .iter()
        .enumerate()
        .map(|(i, (ingress, f))| {
            let a = run(with, *ingress, f);
            let b = run(without, *ingress, f);
            assert_eq!(a, b, "frame {i}");
            b
        })
        .collect()
}

#[test]
fn the_pre_pass_changes_no_decision() {
    let (mut a, mut b) = (processor(10_000), processor(10_000));
    let mut now = T0;
    // New flows, looked at in order.
    let syns: Vec<Vec<u8>> = (0..FLOWS).map(|i| from_client(i, 0x02)).collect();
    let framed =
        |v: &[Vec<u8>], ingress| v.iter().map(|f| (ingress, f.clone())).collect::<Vec<_>>();
    let out = both((&mut a, &mut b), now, &syns, &framed(&syns, 0));
    assert!(out.iter().all(|(v, _)| *v == Verdict::Tx(1)));
    let reals: Vec<[u8; 4]> = out
        .iter()
        .map(|(_, f)| f[30..34].try_into().unwrap())
        .collect();
    // Replies, decided in reverse order of the pre-pass, with a garbage frame looked at first.
    now += 1000;
    let acks: Vec<Vec<u8>> = (0..FLOWS).map(|i| from_real(reals[i], i, 0x12)).collect();
    let mut looked = vec![vec![0xffu8; 30]];
    looked.extend(acks.iter().cloned());
    let mut frames = framed(&acks, 1);
    frames.reverse();
    let out = both((&mut a, &mut b), now, &looked, &frames);
    assert!(out.iter().all(|(v, _)| *v == Verdict::Tx(0)));
    // Client ACKs: half looked at, some frames twice, an unknown flow, a truncated frame.
    now += 1000;
    let mut frames = framed(
        &(0..FLOWS).map(|i| from_client(i, 0x10)).collect::<Vec<_>>(),
        0,
    );
    frames.push((0, from_client(FLOWS + 7, 0x10)));
    frames.push((0, from_client(3, 0x10)[..40].to_vec()));
    frames.extend(frames.clone().into_iter().take(5));
    let looked: Vec<Vec<u8>> = frames.iter().step_by(2).map(|(_, f)| f.clone()).collect();
    let out = both((&mut a, &mut b), now, &looked, &frames);
    assert!(out[..FLOWS].iter().all(|(v, _)| *v == Verdict::Tx(1)));
    // More frames looked at than the pre-pass keeps.
    now += 1000;
    let many: Vec<Vec<u8>> = (0..600).map(|i| from_client(i % FLOWS, 0x10)).collect();
    both((&mut a, &mut b), now, &many, &framed(&many, 0));
    assert_eq!(a.shared().conntrack.len(), b.shared().conntrack.len());
}
