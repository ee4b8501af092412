//! Golden packet table for IPv6: NAT6 (TCP and UDP, both directions), DR6, the hop-limit drop,
//! the UDP zero-checksum drop, ICMPv6 that is the kernel's (neighbour discovery, MLD, echo,
//! errors), fragments, and extension headers before the transport header.
//!
//! `tests/golden/nat6.golden` is in the format of `tests/golden/nat.golden`, replayed in order
//! through one processor of the IPv6 lab (`tests/fixtures/nat6_lab.rs`). Every expected frame
//! is built independently of xvs by etherparse from field values, its checksums computed from
//! scratch, so a wrong incremental update (over the IPv6 pseudo-header) or a wrong offset
//! (behind extension headers) is a byte mismatch. `XVS_BLESS=1` rewrites the file.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use etherparse::{IpHeaders, IpNumber, Ipv6Extensions, Ipv6RawExtHeader, PacketBuilder};

#[path = "fixtures/frame6.rs"]
mod frame6;
#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/nat6_lab.rs"]
mod nat6_lab;

use frame6::{Ext, Pkt6, L4, PADN_16, PADN_8};
use golden::{case, Case};
use nat6_lab::*;

const GOLDEN: &str = "nat6.golden";
const HEADER: &str =
    "# IPv6 golden table: NAT6, DR6, hop limit, UDP zero checksum, ICMPv6, fragments,\n\
# extension headers (tests/golden_nat6.rs, lab tests/fixtures/nat6_lab.rs).\n\
# Regenerate with XVS_BLESS=1 cargo test --release --test golden_nat6; review the diff.";

/// Hop-by-hop options (8 bytes, a PadN) then destination options (16 bytes, PadN).
const HBH_DEST: Ext = Ext::Options(PADN_8, PADN_16);

impl Pkt6 {
    /// From the client on wan0.
    fn tcp(sport: u16, dport: u16, flags: &'static str) -> Pkt6 {
        Pkt6::new(
            (CLIENT_MAC, WAN_MAC),
            (CLIENT, sport),
            (VIP, dport),
            L4::Tcp(flags),
        )
    }

    fn udp(sport: u16, dport: u16, payload: &'static [u8]) -> Pkt6 {
        Pkt6 {
            l4: L4::Udp,
            payload,
            ..Pkt6::tcp(sport, dport, "")
        }
    }

    /// From real server `real` on lan0 to the client.
    fn reply(real: [u8; 16], sport: u16, dport: u16, l4: L4) -> Pkt6 {
        Pkt6 {
            src_mac: if real == R2 { R2_MAC } else { R1_MAC },
            dst_mac: LAN_MAC,
            src: real,
            dst: CLIENT,
            l4,
            ..Pkt6::tcp(sport, dport, "")
        }
    }
}

/// What a NAT6 director emits for `p`: `rewrite` applied, hop limit decremented, the egress
/// hop's MACs.
fn nat(p: Pkt6, rewrite: impl FnOnce(&mut Pkt6), macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut o = p;
    rewrite(&mut o);
    o.hop -= 1;
    (o.src_mac, o.dst_mac) = macs;
    o.build()
}

fn to(real: [u8; 16], port: u16) -> impl FnOnce(&mut Pkt6) {
    move |p: &mut Pkt6| {
        p.dst = real;
        p.dport = port;
    }
}

fn from_vip(port: u16) -> impl FnOnce(&mut Pkt6) {
    move |p: &mut Pkt6| {
        p.src = VIP;
        p.sport = port;
    }
}

/// DR6: the same packet, MACs of lan0 and the real server.
fn dr(p: Pkt6, real_mac: [u8; 6]) -> Vec<u8> {
    Pkt6 {
        src_mac: LAN_MAC,
        dst_mac: real_mac,
        ..p
    }
    .build()
}

const TO_R1: ([u8; 6], [u8; 6]) = (LAN_MAC, R1_MAC);
const TO_R2: ([u8; 6], [u8; 6]) = (LAN_MAC, R2_MAC);
const TO_CLIENT: ([u8; 6], [u8; 6]) = (WAN_MAC, CLIENT_MAC);

fn nat_tcp(v: &mut Vec<Case>) {
    let syn = Pkt6::tcp(40000, 80, "S");
    v.push(case(
        "TCP SYN to [VIP]:80, first wrr pick (3:1) is r1: destination NATed, hop limit 63",
        syn.build(),
        "tx 1",
        Some(nat(syn, to(R1, 80), TO_R1)),
    ));
    let synack = Pkt6::reply(R1, 80, 40000, L4::Tcp("SA"));
    v.push(case(
        "TCP SYN-ACK from r1: source rewritten to [VIP]:80, out on wan0 to the client",
        synack.build(),
        "tx 0",
        Some(nat(synack, from_vip(80), TO_CLIENT)),
    ));
    let ack = Pkt6 {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..Pkt6::tcp(40000, 80, "PA")
    };
    v.push(case(
        "TCP ACK with data on the established flow follows the connection to r1",
        ack.build(),
        "tx 1",
        Some(nat(ack, to(R1, 80), TO_R1)),
    ));
    let resp = Pkt6 {
        payload: b"HTTP/1.0 200 OK\r\n\r\nr1\n",
        ..Pkt6::reply(R1, 80, 40000, L4::Tcp("PA"))
    };
    v.push(case(
        "TCP data reply from r1",
        resp.build(),
        "tx 0",
        Some(nat(resp, from_vip(80), TO_CLIENT)),
    ));
    for port in [40001u16, 40002] {
        let s = Pkt6::tcp(port, 80, "S");
        v.push(case(
            &format!("TCP SYN from port {port}: wrr picks r1 again (weight 3)"),
            s.build(),
            "tx 1",
            Some(nat(s, to(R1, 80), TO_R1)),
        ));
    }
    let s = Pkt6::tcp(40003, 80, "S");
    v.push(case(
        "TCP SYN from port 40003: the fourth new flow goes to r2 (weight 1)",
        s.build(),
        "tx 1",
        Some(nat(s, to(R2, 80), TO_R2)),
    ));
    let r = Pkt6::reply(R2, 80, 40003, L4::Tcp("SA"));
    v.push(case(
        "TCP SYN-ACK from r2 to port 40003, translated back",
        r.build(),
        "tx 0",
        Some(nat(r, from_vip(80), TO_CLIENT)),
    ));
    let a = Pkt6::tcp(40099, 80, "A");
    v.push(case(
        "TCP ACK of no connection: dropped (no sloppy_tcp)",
        a.build(),
        "drop no_connection",
        None,
    ));
}

fn nat_udp(v: &mut Vec<Case>) {
    let q = Pkt6::udp(50000, 53, b"query");
    v.push(case(
        "UDP to [VIP]:53: rr picks r1, destination [r1]:5353",
        q.build(),
        "tx 1",
        Some(nat(q, to(R1, 5353), TO_R1)),
    ));
    let a = Pkt6::reply(R1, 5353, 50000, L4::Udp);
    let a = Pkt6 {
        payload: b"answer",
        ..a
    };
    v.push(case(
        "UDP answer from [r1]:5353: source rewritten to [VIP]:53",
        a.build(),
        "tx 0",
        Some(nat(a, from_vip(53), TO_CLIENT)),
    ));
    let q2 = Pkt6::udp(50001, 53, b"query 2");
    v.push(case(
        "UDP from another port: rr picks r2",
        q2.build(),
        "tx 1",
        Some(nat(q2, to(R2, 5353), TO_R2)),
    ));
    let mut zero = Pkt6::udp(50002, 53, b"no checksum").build();
    let at = 14 + 40 + 6;
    zero[at..at + 2].copy_from_slice(&[0, 0]);
    v.push(case(
        "UDP over IPv6 with checksum 0 (not allowed, RFC 8200 8.1): dropped",
        zero,
        "drop udp_zero_checksum_ipv6",
        None,
    ));
}

fn hop_limits(v: &mut Vec<Case>) {
    let s = Pkt6 {
        hop: 1,
        ..Pkt6::tcp(40010, 80, "S")
    };
    v.push(case(
        "TCP SYN with hop limit 1: would leave with 0, dropped (no connection made)",
        s.build(),
        "drop ttl_exceeded",
        None,
    ));
    let r = Pkt6 {
        hop: 1,
        ..Pkt6::reply(R1, 80, 40000, L4::Tcp("A"))
    };
    v.push(case(
        "reply from r1 with hop limit 1: dropped",
        r.build(),
        "drop ttl_exceeded",
        None,
    ));
    let s = Pkt6 {
        hop: 2,
        ..Pkt6::tcp(40000, 80, "A")
    };
    v.push(case(
        "established flow with hop limit 2: forwarded with 1",
        s.build(),
        "tx 1",
        Some(nat(s, to(R1, 80), TO_R1)),
    ));
}

fn extension_headers(v: &mut Vec<Case>) {
    let s = Pkt6 {
        ext: HBH_DEST,
        ..Pkt6::tcp(40020, 80, "S")
    };
    v.push(case(
        "TCP SYN behind hop-by-hop (8 bytes) and destination options (16 bytes): the TCP \
         header at offset 64 is translated, the extension headers kept; wrr: r1",
        s.build(),
        "tx 1",
        Some(nat(s, to(R1, 80), TO_R1)),
    ));
    let r = Pkt6 {
        ext: HBH_DEST,
        ..Pkt6::reply(R1, 80, 40020, L4::Tcp("SA"))
    };
    v.push(case(
        "the SYN-ACK behind the same extension headers, translated back",
        r.build(),
        "tx 0",
        Some(nat(r, from_vip(80), TO_CLIENT)),
    ));
    let u = Pkt6 {
        ext: HBH_DEST,
        ..Pkt6::udp(50000, 53, b"query again")
    };
    v.push(case(
        "UDP of the existing flow behind extension headers: follows it to r1",
        u.build(),
        "tx 1",
        Some(nat(u, to(R1, 5353), TO_R1)),
    ));
}

fn fragments(v: &mut Vec<Case>) {
    let first = Pkt6 {
        ext: Ext::Fragment(0, true, 0xabcd),
        ..Pkt6::udp(50000, 53, b"first fragment!!")
    };
    v.push(case(
        "first fragment (fragment header, M set) of a UDP datagram of the existing flow: \
         translated like any packet",
        first.build(),
        "tx 1",
        Some(nat(first, to(R1, 5353), TO_R1)),
    ));
    let atomic = Pkt6 {
        ext: Ext::Fragment(0, false, 0xabce),
        ..Pkt6::tcp(40000, 80, "A")
    };
    v.push(case(
        "atomic fragment (offset 0, no more) of the established TCP flow: a whole packet",
        atomic.build(),
        "tx 1",
        Some(nat(atomic, to(R1, 80), TO_R1)),
    ));
    // A later fragment: fragment header (offset 2 units = 16 bytes), then 4 bytes of data (no
    // ports: the bytes where a UDP header would be are data, never rewritten).
    let later = |p: Pkt6| {
        let mut f = p.build();
        f.truncate(14 + 40 + 8 + 4);
        f[14 + 4..14 + 6].copy_from_slice(&12u16.to_be_bytes());
        f
    };
    let rest = Pkt6 {
        ext: Ext::Fragment(2, false, 0xabcd),
        ..Pkt6::udp(50000, 53, b"rest")
    };
    let mut sent = Pkt6 {
        dst: R1,
        hop: rest.hop - 1,
        ..rest
    };
    (sent.src_mac, sent.dst_mac) = TO_R1;
    v.push(case(
        "later fragment (offset 16) of the first fragment's datagram (id 0xabcd): follows it to \
         r1 (destination address, hop limit 63; the data untouched)",
        later(rest),
        "tx 1",
        Some(later(sent)),
    ));
}

fn dr6(v: &mut Vec<Case>) {
    let s = Pkt6::tcp(41000, 81, "S");
    v.push(case(
        "DR6: TCP SYN to [VIP]:81, rr picks r1: MACs only, every IPv6 byte kept (hop limit too)",
        s.build(),
        "tx 1",
        Some(dr(s, R1_MAC)),
    ));
    let a = Pkt6 {
        payload: b"data",
        ..Pkt6::tcp(41000, 81, "PA")
    };
    v.push(case(
        "DR6: the flow's data follows it to r1",
        a.build(),
        "tx 1",
        Some(dr(a, R1_MAC)),
    ));
    let s2 = Pkt6::tcp(41001, 81, "S");
    v.push(case(
        "DR6: the next flow goes to r2",
        s2.build(),
        "tx 1",
        Some(dr(s2, R2_MAC)),
    ));
    let h = Pkt6 {
        hop: 1,
        ..Pkt6::tcp(41000, 81, "A")
    };
    v.push(case(
        "DR6: hop limit 1 is not xvs's to check (the packet is not routed, as IPVS DR)",
        h.build(),
        "tx 1",
        Some(dr(h, R1_MAC)),
    ));
    let far = Pkt6::tcp(41002, 82, "S");
    v.push(case(
        "DR6: a real server behind a router is refused",
        far.build(),
        "drop dr_not_on_link",
        None,
    ));
}

/// An ICMPv6 message from the client (type, code, the 4 bytes after the checksum, body) to
/// `dst`, with `hop` and, for MLD, a hop-by-hop header (Router Alert).
fn icmpv6(dst: [u8; 16], (t, code, rest): (u8, u8, [u8; 4]), body: &[u8], hbh: bool) -> Vec<u8> {
    let p = Pkt6 {
        dst,
        hop: if hbh { 1 } else { 255 },
        ..Pkt6::tcp(0, 0, "")
    };
    let mut ext = Ipv6Extensions::default();
    if hbh {
        // Router Alert (type 5, length 2, value 0: MLD) then PadN of 0.
        ext.hop_by_hop_options =
            Some(Ipv6RawExtHeader::new_raw(IpNumber::IPV6_ICMP, &[5, 2, 0, 0, 1, 0]).unwrap());
    }
    let IpHeaders::Ipv6(header, _) = p.ip(IpNumber::IPV6_ICMP) else {
        unreachable!()
    };
    let mut out = Vec::new();
    PacketBuilder::ethernet2(p.src_mac, p.dst_mac)
        .ip(IpHeaders::Ipv6(header, ext))
        .icmpv6_raw(t, code, rest)
        .write(&mut out, body)
        .unwrap();
    out
}

fn kernel_icmpv6(v: &mut Vec<Case>) {
    let target = VIP;
    let mut ns_body = target.to_vec();
    ns_body.extend_from_slice(&[1, 1]);
    ns_body.extend_from_slice(&CLIENT_MAC);
    let lb = addr([0x2001, 2, 0, 0, 0, 0, 0, 1]);
    for (what, dst, msg, body, hbh) in [
        (
            "neighbour solicitation for the VIP (unicast, NUD)",
            VIP,
            (135u8, 0u8, [0u8; 4]),
            ns_body.clone(),
            false,
        ),
        (
            "neighbour advertisement",
            lb,
            (136, 0, [0x60, 0, 0, 0]),
            CLIENT.to_vec(),
            false,
        ),
        ("router solicitation", lb, (133, 0, [0; 4]), vec![], false),
        (
            "router advertisement",
            lb,
            (134, 0, [64, 0, 0x07, 0x08]),
            vec![0; 8],
            false,
        ),
        (
            "MLDv2 report behind hop-by-hop (Router Alert)",
            lb,
            (143, 0, [0, 0, 0, 0]),
            vec![],
            true,
        ),
        (
            "MLD query behind hop-by-hop (Router Alert)",
            lb,
            (130, 0, [0x27, 0x10, 0, 0]),
            vec![0; 16],
            true,
        ),
        (
            "echo request to the VIP",
            VIP,
            (128, 0, [0, 1, 0, 1]),
            b"ping".to_vec(),
            false,
        ),
        (
            "echo request to another address",
            lb,
            (128, 0, [0, 1, 0, 2]),
            b"ping".to_vec(),
            false,
        ),
        (
            "destination unreachable quoting no TCP/UDP packet (next header 0x60)",
            VIP,
            (1, 4, [0; 4]),
            vec![0x60; 48],
            false,
        ),
        (
            "packet too big quoting no TCP/UDP packet",
            VIP,
            (2, 0, [0, 0, 5, 0]),
            vec![0x60; 48],
            false,
        ),
    ] {
        v.push(case(
            &format!("ICMPv6 {what}: the kernel's, passed"),
            icmpv6(dst, msg, &body, hbh),
            "pass",
            None,
        ));
    }
    let mut short = icmpv6(VIP, (128, 0, [0; 4]), b"", false);
    short.truncate(14 + 40 + 4);
    short[14 + 4..14 + 6].copy_from_slice(&4u16.to_be_bytes());
    v.push(case(
        "ICMPv6 cut after 4 bytes of its header: dropped",
        short,
        "drop truncated_icmpv6",
        None,
    ));
    let other = Pkt6 {
        dst: lb,
        ..Pkt6::tcp(40000, 22, "S")
    };
    v.push(case(
        "TCP to an address that is no VIP (the box's own ssh): passed",
        other.build(),
        "pass",
        None,
    ));
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    nat_tcp(&mut v);
    nat_udp(&mut v);
    hop_limits(&mut v);
    extension_headers(&mut v);
    fragments(&mut v);
    dr6(&mut v);
    kernel_icmpv6(&mut v);
    v
}

#[test]
fn golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_nat6_table() {
    let cases = golden::load(GOLDEN, 30);
    let mut p = processor(1024);
    let failures = golden::replay(&mut p, &cases, 0);
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every routed output (NAT6) read back by etherparse: hop limit one less than the input's,
/// TCP/UDP checksum over the IPv6 pseudo-header right, extension headers where they were.
#[test]
fn nat6_outputs_verify_with_an_independent_parser() {
    for c in golden::load(GOLDEN, 30) {
        let Some(out) = &c.output else { continue };
        if out[14..] == c.input[14..] {
            continue; // DR6: the IPv6 packet is unchanged.
        }
        let pkt = etherparse::SlicedPacket::from_ethernet(out).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &pkt.net else {
            panic!("{}: not IPv6", c.what)
        };
        let h = ip.header().to_header();
        assert_eq!(h.hop_limit, c.input[14 + 7] - 1, "{}", c.what);
        assert_eq!(out[14 + 6], c.input[14 + 6], "{}: next header", c.what);
        if ip.payload().fragmented {
            continue;
        }
        match &pkt.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), want, "{}", c.what);
            }
            Some(etherparse::TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), want, "{}", c.what);
            }
            _ => panic!("{}: no transport", c.what),
        }
    }
}
