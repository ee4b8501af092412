//! Golden packet table for ICMP errors about NAT connections (`tests/golden/icmp.golden`, the
//! shared format and replay of `tests/fixtures/golden.rs`), replayed in order through one NAT-lab `Processor`
//! (`tests/fixtures/nat_lab.rs`): errors from the server side go to the client and errors from
//! the client side go to the real server, with the quoted packet rewritten as the connection's
//! packets are; untracked errors are dropped, other ICMP passed.
//!
//! Expected frames are built independently with etherparse: the quote of an expected error is
//! the translated packet built from field values (all checksums from scratch), cut to the
//! quoted length, so a wrong incremental update of the quoted checksums shows as a mismatch.
//! `XVS_BLESS=1` rewrites the file from the builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use etherparse::PacketBuilder;

#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/icmp_frames.rs"]
mod icmp_frames;
#[path = "fixtures/nat_lab.rs"]
mod nat_lab;

use golden::{case, Case};
use icmp_frames::*;
use nat_lab::*;

const FROM_CLIENT: ([u8; 6], [u8; 6]) = (CLIENT_MAC, WAN_MAC);
const FROM_R1: ([u8; 6], [u8; 6]) = (R1_MAC, LAN_MAC);
const TO_CLIENT: ([u8; 6], [u8; 6]) = (WAN_MAC, CLIENT_MAC);
const TO_R1: ([u8; 6], [u8; 6]) = (LAN_MAC, R1_MAC);

fn cases() -> Vec<Case> {
    use etherparse::icmpv4::DestUnreachableHeader as U;
    let mut v = Vec::new();
    // A UDP flow client:50000 -> VIP:53, NATed to r1:5353.
    let query = b"query-1";
    let udp_in = ip_packet((CLIENT, 50000), (VIP, 53), 64, None, query);
    let udp_sent = ip_packet((CLIENT, 50000), (R1, 5353), 63, None, query);
    v.push(case(
        "UDP to VIP:53 (rr picks r1): the flow the next errors are about",
        frame(FROM_CLIENT, udp_in),
        "tx 1",
        Some(frame(TO_R1, udp_sent.clone())),
    ));
    let client_view = ip_packet((CLIENT, 50000), (VIP, 53), 63, None, query);
    v.push(case(
        "port unreachable from r1 about the datagram it got (whole datagram quoted): to the client from the VIP, quote client:50000 -> VIP:53 with IP and UDP checksums fixed, TTL 63",
        icmp_frame(FROM_R1, R1, CLIENT, 64, unreachable(U::Port), &udp_sent),
        "tx 0",
        Some(icmp_frame(TO_CLIENT, VIP, CLIENT, 63, unreachable(U::Port), &client_view)),
    ));
    // A TCP flow client:40000 -> VIP:80, NATed to r1:80.
    let syn = ip_packet((CLIENT, 40000), (VIP, 80), 64, Some("S"), b"");
    let syn_sent = ip_packet((CLIENT, 40000), (R1, 80), 63, Some("S"), b"");
    v.push(case(
        "TCP SYN to VIP:80 (wrr picks r1)",
        frame(FROM_CLIENT, syn),
        "tx 1",
        Some(frame(TO_R1, syn_sent.clone())),
    ));
    let syn_client_view = ip_packet((CLIENT, 40000), (VIP, 80), 63, Some("S"), b"");
    v.push(case(
        "time exceeded from r1's side quoting 28 bytes of the SYN (TCP checksum not quoted): to the client, quote client:40000 -> VIP:80",
        icmp_frame(
            FROM_R1,
            R1,
            CLIENT,
            64,
            time_exceeded(),
            &syn_sent[..28],
        ),
        "tx 0",
        Some(icmp_frame(
            TO_CLIENT,
            VIP,
            CLIENT,
            63,
            time_exceeded(),
            &syn_client_view[..28],
        )),
    ));
    let synack_client = ip_packet((VIP, 80), (CLIENT, 40000), 63, Some("SA"), b"");
    let synack_server = ip_packet((R1, 80), (CLIENT, 40000), 63, Some("SA"), b"");
    v.push(case(
        "fragmentation needed (MTU 1400) from the client's side about the SYN-ACK it got (VIP:80 -> client): to r1, quote r1:80 -> client:40000 with IP and TCP checksums fixed",
        icmp_frame(
            FROM_CLIENT,
            CLIENT,
            VIP,
            64,
            unreachable(U::FragmentationNeeded { next_hop_mtu: 1400 }),
            &synack_client,
        ),
        "tx 1",
        Some(icmp_frame(
            TO_R1,
            CLIENT,
            R1,
            63,
            unreachable(U::FragmentationNeeded { next_hop_mtu: 1400 }),
            &synack_server,
        )),
    ));
    let stray = ip_packet((CLIENT, 40999), (R1, 80), 63, Some("S"), b"");
    v.push(case(
        "host unreachable about a packet to r1:80 of no connection: drop (icmp_untracked)",
        icmp_frame(FROM_R1, R1, CLIENT, 64, unreachable(U::Host), &stray),
        "drop icmp_untracked",
        None,
    ));
    let stray_reply = ip_packet((VIP, 80), (CLIENT, 40999), 63, Some("SA"), b"");
    v.push(case(
        "port unreachable from the client about a VIP:80 reply of no connection: drop (icmp_untracked)",
        icmp_frame(FROM_CLIENT, CLIENT, VIP, 64, unreachable(U::Port), &stray_reply),
        "drop icmp_untracked",
        None,
    ));
    let other = ip_packet((CLIENT, 5000), ([198, 18, 0, 1], 22), 64, Some("S"), b"");
    v.push(case(
        "port unreachable about a packet to the box's own address: the kernel's (pass)",
        icmp_frame(
            FROM_CLIENT,
            [198, 18, 0, 1],
            CLIENT,
            64,
            unreachable(U::Port),
            &other,
        ),
        "pass",
        None,
    ));
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    v.push(case(
        "echo request to the VIP: the kernel answers it (pass)",
        echo,
        "pass",
        None,
    ));
    let mut short = icmp_frame(FROM_R1, R1, CLIENT, 64, unreachable(U::Port), &[]);
    // Cut the ICMP header to 4 bytes (IP total length and checksum adjusted).
    short.truncate(14 + 20 + 4);
    short[16..18].copy_from_slice(&24u16.to_be_bytes());
    short[24..26].copy_from_slice(&[0, 0]);
    let c = ip_checksum(&short[14..34]);
    short[24..26].copy_from_slice(&c.to_be_bytes());
    v.push(case(
        "ICMP message shorter than its 8-byte header: drop (truncated_icmp)",
        short,
        "drop truncated_icmp",
        None,
    ));
    v
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

const GOLDEN: &str = "icmp.golden";
const HEADER: &str =
    "# Golden ICMP error cases for NAT, replayed in order through one Processor (see tests/golden_icmp.rs).\n\
     # Lab: client 198.18.0.2, VIP 198.18.0.100 (tcp/80 wrr r1:3 r2:1; udp/53 rr -> :5353),\n\
     # r1 198.18.1.11, r2 198.18.1.12; port 0 = wan0, port 1 = lan0.\n";

#[test]
fn icmp_golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_icmp_table() {
    let cases = golden::load(GOLDEN, 10);
    let mut p = processor(1000);
    // No tailroom: nothing in this table grows a frame.
    let failures = golden::replay(&mut p, &cases, 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn translated_errors_verify_with_an_independent_parser() {
    let mut checked = 0;
    for c in golden::load(GOLDEN, 10) {
        let Some(o) = c.output else { continue };
        let pkt = etherparse::SlicedPacket::from_ethernet(&o).unwrap();
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = pkt.transport else {
            continue;
        };
        let h = icmp.header();
        assert_eq!(
            h.checksum,
            h.icmp_type.calc_checksum(icmp.payload()),
            "{}",
            c.what
        );
        let q = etherparse::Ipv4HeaderSlice::from_slice(icmp.payload()).unwrap();
        let qh = q.to_header();
        assert_eq!(qh.header_checksum, qh.calc_header_checksum(), "{}", c.what);
        checked += 1;
    }
    assert_eq!(checked, 3, "translated errors in the table");
}
