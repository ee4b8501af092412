//! Malformed IPv6 corpus at the `process()` level: each case is one Ethernet/IPv6 frame to the
//! IPv6 lab (`tests/fixtures/nat6_lab.rs`) that must be dropped with exactly the reason it
//! names (the reason the worker then counts in `xvs_drops_total`), without a panic and without
//! touching the frame.
//!
//! The frames are built here, independently of xvs's wire code: valid TCP/UDP headers by
//! etherparse, IPv6 headers and extension headers byte by byte, then exactly one thing broken
//! (truncated headers, bad payload lengths, extension-header loops and overlong chains,
//! headers out of order, refused next headers, fragments, transport headers, ICMPv6 errors:
//! bad checksums, quotes cut short, untracked quotes).
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeSet;

use etherparse::PacketBuilder;
use xvs::datapath::{DropReason, Verdict};
use xvs::flow::NANOS_PER_SEC;

#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/nat6_lab.rs"]
mod nat6_lab;

use nat6_lab::*;

const HBH: u8 = 0;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ESP: u8 = 50;
const AH: u8 = 51;
const ICMPV6: u8 = 58;
const DEST_OPTS: u8 = 60;

/// The TCP header (and no data) of a segment client:40000 → VIP:`dport` with `flags`, as
/// etherparse writes it (checksum over the plain IPv6 header).
fn tcp(dport: u16, flags: &str) -> Vec<u8> {
    let mut t = PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv6(CLIENT, VIP, 64)
        .tcp(40000, dport, 1000, 64240);
    for f in flags.chars() {
        t = match f {
            'S' => t.syn(),
            'A' => t.ack(1),
            'F' => t.fin(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    t.write(&mut out, b"").unwrap();
    out[54..].to_vec()
}

/// A UDP datagram client:50000 → VIP:53 with `payload`, as etherparse writes it.
fn udp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv6(CLIENT, VIP, 64)
        .udp(50000, 53)
        .write(&mut out, payload)
        .unwrap();
    out[54..].to_vec()
}

/// An options-shaped extension header (hop-by-hop, destination options, or one xvs refuses)
/// naming `next`, of `units` 8-byte units after the first (its length byte), Pad1-filled.
fn ext(next: u8, units: u8) -> Vec<u8> {
    let mut h = vec![next, units];
    h.resize(8 * (usize::from(units) + 1), 0);
    h
}

/// A fragment header naming `next`: data offset in bytes (a multiple of 8), M flag.
fn frag(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let word = offset | u16::from(more);
    let [a, b] = word.to_be_bytes();
    vec![next, 0, a, b, 0, 0, 0xbe, 0xef]
}

/// Ethernet + IPv6 (client → VIP, `hop`, first next header `next`) + `rest`, the payload
/// length that of `rest`.
fn frame(next: u8, hop: u8, rest: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&WAN_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0x01, 0x23, 0x45]);
    f.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, hop]);
    f.extend_from_slice(&CLIENT);
    f.extend_from_slice(&VIP);
    f.extend_from_slice(rest);
    f
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Sets the payload length field of `f`.
fn set_payload_len(mut f: Vec<u8>, len: u16) -> Vec<u8> {
    f[18..20].copy_from_slice(&len.to_be_bytes());
    f
}

struct Case {
    what: &'static str,
    expect: DropReason,
    frame: Vec<u8>,
}

fn ipv6_header_cases(v: &mut Vec<Case>) {
    use DropReason::*;
    let syn = frame(TCP, 64, &tcp(80, "S"));
    let mut add = |what, expect, frame| {
        v.push(Case {
            what,
            expect,
            frame,
        })
    };
    add(
        "IPv6 EtherType, no byte of IPv6 header",
        TruncatedIpv6,
        syn[..14].to_vec(),
    );
    add(
        "IPv6 EtherType, one byte of header",
        TruncatedIpv6,
        syn[..15].to_vec(),
    );
    add(
        "IPv6 header cut at 39 of its 40 bytes",
        TruncatedIpv6,
        syn[..53].to_vec(),
    );
    let mut f = syn.clone();
    f[14] = 0x45;
    add("version 4 behind the IPv6 EtherType", BadIpVersion, f);
    let mut f = syn.clone();
    f[14] = 0x00;
    add("version 0", BadIpVersion, f);
    let mut f = syn.clone();
    f[14] = 0xf0;
    add("version 15", BadIpVersion, f);
    add(
        "payload length one byte past the frame",
        BadIpv6PayloadLength,
        set_payload_len(syn.clone(), 21),
    );
    add(
        "payload length 65535 in a 94-byte frame",
        BadIpv6PayloadLength,
        set_payload_len(syn.clone(), 0xffff),
    );
    add(
        "frame cut in the TCP header, payload length unchanged",
        BadIpv6PayloadLength,
        syn[..64].to_vec(),
    );
}

fn ext_header_cases(v: &mut Vec<Case>) {
    use DropReason::*;
    let t = tcp(80, "S");
    let mut add = |what, expect, frame| {
        v.push(Case {
            what,
            expect,
            frame,
        })
    };
    add(
        "hop-by-hop named, payload length 0",
        Ipv6ExtHeaderTruncated,
        frame(HBH, 64, &[]),
    );
    add(
        "hop-by-hop says 16 bytes, the payload holds 8",
        Ipv6ExtHeaderTruncated,
        frame(HBH, 64, &ext(TCP, 1)[..8]),
    );
    add(
        "destination options named, one byte of payload",
        Ipv6ExtHeaderTruncated,
        frame(DEST_OPTS, 64, &[TCP]),
    );
    add(
        "fragment header cut after 4 of its 8 bytes",
        Ipv6ExtHeaderTruncated,
        frame(FRAGMENT, 64, &frag(TCP, 0, false)[..4]),
    );
    let loop6: Vec<u8> = (0..6).flat_map(|_| ext(DEST_OPTS, 0)).collect();
    add(
        "six destination options headers, each naming the next (a loop): one past the bound",
        Ipv6ExtHeaderChain,
        frame(DEST_OPTS, 64, &cat(&[&loop6, &t])),
    );
    add(
        "hop-by-hop announcing 2048 bytes (length 255)",
        Ipv6ExtHeaderChain,
        frame(HBH, 64, &cat(&[&ext(TCP, 255)[..8], &t])),
    );
    add(
        "two destination options of 264 bytes each: 528 bytes of headers, over 512",
        Ipv6ExtHeaderChain,
        frame(
            DEST_OPTS,
            64,
            &cat(&[&ext(DEST_OPTS, 32), &ext(TCP, 32), &t]),
        ),
    );
    add(
        "hop-by-hop after destination options",
        Ipv6ExtHeaderOrder,
        frame(DEST_OPTS, 64, &cat(&[&ext(HBH, 0), &ext(TCP, 0), &t])),
    );
    add(
        "two fragment headers",
        Ipv6ExtHeaderOrder,
        frame(
            FRAGMENT,
            64,
            &cat(&[&frag(FRAGMENT, 0, false), &frag(TCP, 0, false), &t]),
        ),
    );
    add(
        "a later fragment whose fragment header names hop-by-hop",
        Ipv6ExtHeaderOrder,
        frame(FRAGMENT, 64, &cat(&[&frag(HBH, 16, false), &[0; 8]])),
    );
    for (what, next) in [
        ("AH (authentication header)", AH),
        ("ESP", ESP),
        ("mobility header (135)", 135),
    ] {
        add(
            what,
            Ipv6UnsupportedExtHeader,
            frame(next, 64, &cat(&[&ext(TCP, 0), &t])),
        );
    }
    add(
        "experimental extension header 253 after destination options",
        Ipv6UnsupportedExtHeader,
        frame(DEST_OPTS, 64, &cat(&[&ext(253, 0), &ext(TCP, 0), &t])),
    );
    let mut routing = ext(TCP, 0);
    routing[2] = 4;
    routing[3] = 1;
    add(
        "routing header with one segment left: the VIP is not the final destination",
        Ipv6RoutingHeader,
        frame(ROUTING, 64, &cat(&[&routing, &t])),
    );
    add(
        "first fragment (M set) whose data is 20 bytes, not a multiple of 8",
        BadIpv6Fragment,
        frame(FRAGMENT, 64, &cat(&[&frag(TCP, 0, true), &t])),
    );
    add(
        "fragment at offset 65528 with 16 bytes: past a 65535-byte payload",
        BadIpv6Fragment,
        frame(FRAGMENT, 64, &cat(&[&frag(TCP, 65528, false), &[0; 16]])),
    );
}

fn transport_cases(v: &mut Vec<Case>) {
    use DropReason::*;
    let t = tcp(80, "S");
    let u = udp(b"query");
    let mut add = |what, expect, frame| {
        v.push(Case {
            what,
            expect,
            frame,
        })
    };
    add(
        "TCP header cut at 10 bytes",
        TruncatedTcp,
        frame(TCP, 64, &t[..10]),
    );
    add(
        "TCP header cut at 12 bytes behind hop-by-hop and destination options",
        TruncatedTcp,
        frame(HBH, 64, &cat(&[&ext(DEST_OPTS, 0), &ext(TCP, 1), &t[..12]])),
    );
    add(
        "first fragment (M set) with 16 bytes of a TCP header",
        TruncatedTcp,
        frame(FRAGMENT, 64, &cat(&[&frag(TCP, 0, true), &t[..16]])),
    );
    let mut f = t.clone();
    f[12] = 0x40;
    add("TCP data offset 4", BadTcpHeaderLength, frame(TCP, 64, &f));
    let mut f = t.clone();
    f[12] = 0xf0;
    add(
        "TCP data offset 15 past the packet",
        BadTcpHeaderLength,
        frame(TCP, 64, &f),
    );
    add("TCP SYN+FIN", BadTcpFlags, frame(TCP, 64, &tcp(80, "SF")));
    add(
        "TCP with no flag",
        BadTcpFlags,
        frame(TCP, 64, &tcp(80, "")),
    );
    add(
        "UDP header cut at 4 bytes",
        TruncatedUdp,
        frame(UDP, 64, &u[..4]),
    );
    let mut f = u.clone();
    f[4..6].copy_from_slice(&7u16.to_be_bytes());
    add(
        "UDP length 7, below its header",
        BadUdpLength,
        frame(UDP, 64, &f),
    );
    let mut f = u.clone();
    f[4..6].copy_from_slice(&14u16.to_be_bytes());
    add(
        "UDP length one past the packet",
        BadUdpLength,
        frame(UDP, 64, &f),
    );
    let mut f = u.clone();
    f[6..8].copy_from_slice(&[0, 0]);
    add("UDP checksum 0", UdpZeroChecksumIpv6, frame(UDP, 64, &f));
    let mut f = udp(b"first fragment!!");
    f[6..8].copy_from_slice(&[0, 0]);
    add(
        "UDP checksum 0 in a first fragment (M set, 24 bytes of data)",
        UdpZeroChecksumIpv6,
        frame(FRAGMENT, 64, &cat(&[&frag(UDP, 0, true), &f])),
    );
    add(
        "ICMPv6 cut at 3 bytes",
        TruncatedIcmpv6,
        frame(ICMPV6, 64, &[128, 0, 0]),
    );
    add(
        "ICMPv6 named by hop-by-hop, no byte of it",
        TruncatedIcmpv6,
        frame(HBH, 1, &ext(ICMPV6, 0)),
    );
}

fn forwarding_cases(v: &mut Vec<Case>) {
    use DropReason::*;
    let mut add = |what, expect, frame| {
        v.push(Case {
            what,
            expect,
            frame,
        })
    };
    add(
        "TCP SYN to [VIP]:80 with hop limit 0",
        TtlExceeded,
        frame(TCP, 0, &tcp(80, "S")),
    );
    add(
        "TCP SYN to [VIP]:80 with hop limit 1",
        TtlExceeded,
        frame(TCP, 1, &tcp(80, "S")),
    );
    add(
        "UDP to [VIP]:53 with hop limit 1 behind destination options",
        TtlExceeded,
        frame(DEST_OPTS, 1, &cat(&[&ext(UDP, 0), &udp(b"q")])),
    );
    add(
        "TCP ACK of no connection",
        NoConnection,
        frame(TCP, 64, &tcp(80, "A")),
    );
    add(
        "DR6 SYN to [VIP]:82, whose real server is behind a router",
        DrNotOnLink,
        frame(TCP, 64, &tcp(82, "S")),
    );
}

/// The packet a client-side ICMPv6 error quotes: an IPv6 header VIP → client naming `next`,
/// then `rest` (its payload length that of the whole packet, `full` bytes, however much of it
/// is quoted).
fn quoted(next: u8, rest: &[u8], full: usize) -> Vec<u8> {
    let mut q = vec![0x60, 0, 0, 0];
    q.extend_from_slice(&((full - 40) as u16).to_be_bytes());
    q.extend_from_slice(&[next, 63]);
    q.extend_from_slice(&VIP);
    q.extend_from_slice(&CLIENT);
    q.extend_from_slice(rest);
    q
}

/// An ICMPv6 error of `msg_type` (code 0, the 4 bytes after the checksum 0 but for packet too
/// big's MTU 1280) from the client to the VIP quoting `quote`, its checksum computed here
/// (RFC 4443 §2.3: over the pseudo-header and the message) and then `tweak`ed.
fn icmp_error(msg_type: u8, quote: &[u8], tweak: u16) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    let rest: [u8; 4] = if msg_type == 2 { [0, 0, 5, 0] } else { [0; 4] };
    m.extend_from_slice(&rest);
    m.extend_from_slice(quote);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&CLIENT);
    pseudo.extend_from_slice(&VIP);
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    let mut sum: u32 = 0;
    for chunk in pseudo.chunks(2).chain(m.chunks(2)) {
        sum += u32::from(chunk[0]) << 8 | u32::from(*chunk.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = (!(sum as u16)).wrapping_add(tweak);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    frame(ICMPV6, 64, &m)
}

fn icmpv6_error_cases(v: &mut Vec<Case>) {
    use DropReason::*;
    let mut reply = tcp(40000, "SA");
    // The reply's ports: VIP:80 → client:40000.
    reply[..4].copy_from_slice(&[0, 80, 0x9c, 0x40]);
    let whole = quoted(TCP, &reply, 60);
    let mut add = |what, expect, frame| {
        v.push(Case {
            what,
            expect,
            frame,
        })
    };
    add(
        "destination unreachable quoting a VIP reply, checksum off by one",
        BadIcmpv6Checksum,
        icmp_error(1, &whole, 1),
    );
    add(
        "packet too big with a zeroed checksum",
        BadIcmpv6Checksum,
        {
            let mut f = icmp_error(2, &whole, 0);
            f[54 + 2..54 + 4].copy_from_slice(&[0, 0]);
            f
        },
    );
    add(
        "destination unreachable quoting nothing",
        TruncatedIcmpv6,
        icmp_error(1, &[], 0),
    );
    add(
        "time exceeded quoting 39 bytes of the IPv6 header",
        TruncatedIcmpv6,
        icmp_error(3, &whole[..39], 0),
    );
    add(
        "packet too big quoting a TCP header cut at 6 bytes (no destination port)",
        TruncatedIcmpv6,
        icmp_error(2, &whole[..46], 0),
    );
    let behind = quoted(HBH, &cat(&[&ext(UDP, 1), &udp(b"q")[..7]]), 40 + 16 + 9);
    add(
        "time exceeded quoting UDP behind hop-by-hop, cut at 7 of its 8 bytes",
        TruncatedIcmpv6,
        icmp_error(3, &behind, 0),
    );
    let cut = quoted(DEST_OPTS, &ext(TCP, 2)[..16], 40 + 24 + 20);
    add(
        "destination unreachable quoting destination options (24 bytes) cut at 16",
        TruncatedIcmpv6,
        icmp_error(1, &cut, 0),
    );
    add(
        "destination unreachable quoting a VIP:80 reply of no connection",
        IcmpUntracked,
        icmp_error(1, &whole, 0),
    );
    add(
        "later fragment (offset 16) to the VIP with no first fragment seen",
        Ipv6Fragment,
        frame(FRAGMENT, 64, &cat(&[&frag(UDP, 16, false), &[0; 8]])),
    );
    add(
        "later fragment to the VIP naming destination options (protocol hidden), no first seen",
        Ipv6Fragment,
        frame(FRAGMENT, 64, &cat(&[&frag(DEST_OPTS, 24, true), &[0; 16]])),
    );
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    ipv6_header_cases(&mut v);
    ext_header_cases(&mut v);
    transport_cases(&mut v);
    forwarding_cases(&mut v);
    icmpv6_error_cases(&mut v);
    v
}

#[test]
fn every_malformed_ipv6_frame_is_dropped_with_its_reason() {
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    let cases = cases();
    for c in &cases {
        let mut out = c.frame.clone();
        let run = std::panic::catch_unwind(move || {
            let now = 1000 * NANOS_PER_SEC;
            let mut p = processor(64);
            p.begin_batch(now);
            let ingress = golden::ingress_of(&p, &out);
            let v = p.process(now, ingress, &mut out);
            (v, out)
        });
        match run {
            Err(_) => failures.push(format!("{}: PANIC in process()", c.what)),
            Ok((Verdict::Drop(r), out)) if r == c.expect => {
                if out != c.frame {
                    failures.push(format!("{}: dropped but the frame was modified", c.what));
                }
                covered.insert(r.label());
            }
            Ok((v, _)) => failures.push(format!(
                "{}: expected drop {}, got {v:?}",
                c.what,
                c.expect.label()
            )),
        }
    }
    // Every IPv6 reason a received frame can provoke has a case.
    for r in [
        DropReason::TruncatedIpv6,
        DropReason::BadIpv6PayloadLength,
        DropReason::Ipv6ExtHeaderTruncated,
        DropReason::Ipv6ExtHeaderChain,
        DropReason::Ipv6ExtHeaderOrder,
        DropReason::Ipv6UnsupportedExtHeader,
        DropReason::Ipv6RoutingHeader,
        DropReason::BadIpv6Fragment,
        DropReason::UdpZeroChecksumIpv6,
        DropReason::TruncatedIcmpv6,
        DropReason::BadIcmpv6Checksum,
        DropReason::Ipv6Fragment,
    ] {
        if !covered.contains(r.label()) {
            failures.push(format!("no case for {}", r.label()));
        }
    }
    if cases.len() < 30 {
        failures.push(format!("{} cases, at least 30 expected", cases.len()));
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) with the malformed IPv6 corpus ({} cases):\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
