//! Golden packet table for ICMP errors about FULLNAT connections
//! (`tests/golden/fullnat_icmp.golden`, the shared format and replay of `tests/fixtures/golden.rs`), replayed in
//! order through one FULLNAT-lab `Processor` (`tests/fixtures/fullnat_lab.rs`; one shard, so
//! local endpoints are handed out in a fixed order: the pool's addresses take turns).
//!
//! Errors from the server side (the real server or a router on the LAN, addressed to the pool
//! address) go to the client from the VIP, the quote rewritten to client → VIP; errors from the
//! client side about a reply go to the real server from the local address, the quote rewritten
//! to real server → local address:port. Errors about a pool endpoint of no connection are
//! dropped; errors about a pool address at a port outside its pool's range (the box's own
//! connections) are the kernel's.
//!
//! Expected frames are built independently with etherparse: the quote of an expected error is
//! the translated packet built from field values (all checksums from scratch), cut to the
//! quoted length. `XVS_BLESS=1` rewrites the file from the builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use etherparse::icmpv4::DestUnreachableHeader as U;

#[path = "fixtures/fullnat_lab.rs"]
mod fullnat_lab;
#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/icmp_frames.rs"]
mod icmp_frames;

use fullnat_lab::*;
use golden::{case, Case};
use icmp_frames::*;

const FROM_CLIENT: ([u8; 6], [u8; 6]) = (CLIENT_MAC, WAN_MAC);
const FROM_R1: ([u8; 6], [u8; 6]) = (R1_MAC, LAN_MAC);
const TO_CLIENT: ([u8; 6], [u8; 6]) = (WAN_MAC, CLIENT_MAC);
const TO_R1: ([u8; 6], [u8; 6]) = (LAN_MAC, R1_MAC);
/// A router on the LAN (any source address: xvs forwards by the quote).
const LAN_ROUTER: [u8; 4] = [198, 18, 1, 254];

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // UDP client:50000 -> VIP:53, FULLNAT to L1:20000 -> r1:5353 (pool1's first endpoint).
    let query = b"query-1";
    let udp_in = ip_packet((CLIENT, 50000), (VIP, 53), 64, None, query);
    let udp_sent = ip_packet((L1, 20000), (R1, 5353), 63, None, query);
    v.push(case(
        "UDP to VIP:53 (rr: r1): source -> 198.18.1.2:20000, destination -> r1:5353; the flow the next errors are about",
        frame(FROM_CLIENT, udp_in),
        "tx 1",
        Some(frame(TO_R1, udp_sent.clone())),
    ));
    let client_view = ip_packet((CLIENT, 50000), (VIP, 53), 63, None, query);
    v.push(case(
        "port unreachable from r1 to the pool address about the datagram it got (whole datagram quoted): to the client from the VIP, quote client:50000 -> VIP:53 with IP and UDP checksums fixed, TTL 63",
        icmp_frame(FROM_R1, R1, L1, 64, unreachable(U::Port), &udp_sent),
        "tx 0",
        Some(icmp_frame(TO_CLIENT, VIP, CLIENT, 63, unreachable(U::Port), &client_view)),
    ));
    // TCP client:40000 -> VIP:80, FULLNAT to L2:20000 -> r1:80 (the pool's addresses take turns).
    let syn = ip_packet((CLIENT, 40000), (VIP, 80), 64, Some("S"), b"");
    let syn_sent = ip_packet((L2, 20000), (R1, 80), 63, Some("S"), b"");
    v.push(case(
        "TCP SYN to VIP:80 (rr: r1): source -> 198.18.1.3:20000, destination -> r1:80",
        frame(FROM_CLIENT, syn),
        "tx 1",
        Some(frame(TO_R1, syn_sent.clone())),
    ));
    let syn_client_view = ip_packet((CLIENT, 40000), (VIP, 80), 63, Some("S"), b"");
    v.push(case(
        "time exceeded from a LAN router to the pool address quoting 28 bytes of the SYN (TCP checksum not quoted): to the client from the VIP, quote client:40000 -> VIP:80",
        icmp_frame(FROM_R1, LAN_ROUTER, L2, 64, time_exceeded(), &syn_sent[..28]),
        "tx 0",
        Some(icmp_frame(TO_CLIENT, VIP, CLIENT, 63, time_exceeded(), &syn_client_view[..28])),
    ));
    let frag = |mtu| unreachable(U::FragmentationNeeded { next_hop_mtu: mtu });
    v.push(case(
        "fragmentation needed (MTU 1400) from r1's side about the SYN: to the client from the VIP with the MTU unchanged, quote client:40000 -> VIP:80 with IP and TCP checksums fixed",
        icmp_frame(FROM_R1, LAN_ROUTER, L2, 64, frag(1400), &syn_sent),
        "tx 0",
        Some(icmp_frame(TO_CLIENT, VIP, CLIENT, 63, frag(1400), &syn_client_view)),
    ));
    let synack_client = ip_packet((VIP, 80), (CLIENT, 40000), 63, Some("SA"), b"");
    let synack_server = ip_packet((R1, 80), (L2, 20000), 63, Some("SA"), b"");
    v.push(case(
        "fragmentation needed (MTU 1280) from the client's side about the SYN-ACK it got (VIP:80 -> client): to r1 from the local address 198.18.1.3, quote r1:80 -> 198.18.1.3:20000 with IP and TCP checksums fixed",
        icmp_frame(FROM_CLIENT, CLIENT, VIP, 64, frag(1280), &synack_client),
        "tx 1",
        Some(icmp_frame(TO_R1, L2, R1, 63, frag(1280), &synack_server)),
    ));
    let reply_client = ip_packet((VIP, 53), (CLIENT, 50000), 63, None, b"answer");
    let reply_server = ip_packet((R1, 5353), (L1, 20000), 63, None, b"answer");
    v.push(case(
        "port unreachable from the client about a DNS reply (VIP:53 -> client:50000, socket closed): to r1 from 198.18.1.2, quote r1:5353 -> 198.18.1.2:20000",
        icmp_frame(FROM_CLIENT, CLIENT, VIP, 64, unreachable(U::Port), &reply_client),
        "tx 1",
        Some(icmp_frame(TO_R1, L1, R1, 63, unreachable(U::Port), &reply_server)),
    ));
    // TOA (tcp/81, `toa: true`): the SYN the real server got carries option 254; an error quoting
    // it goes back with the option still in the quote (the client's kernel matches its socket by
    // addresses, ports and sequence number; the option is quoted bytes like any other).
    let toa_syn = ip_packet((CLIENT, 40001), (VIP, 81), 64, Some("S"), b"");
    let toa_opt = [
        254, 8, 0x9c, 0x41, CLIENT[0], CLIENT[1], CLIENT[2], CLIENT[3],
    ];
    let toa_sent = ip_packet_with_options((L1, 20001), (R1, 80), 63, Some("S"), &toa_opt, b"");
    v.push(case(
        "TCP SYN to VIP:81 (toa): source -> 198.18.1.2:20001, destination -> r1:80, TOA client:40001 inserted",
        frame(FROM_CLIENT, toa_syn),
        "tx 1",
        Some(frame(TO_R1, toa_sent.clone())),
    ));
    let toa_client_view =
        ip_packet_with_options((CLIENT, 40001), (VIP, 81), 63, Some("S"), &toa_opt, b"");
    v.push(case(
        "host unreachable from r1 about the SYN with TOA: to the client from the VIP, quote client:40001 -> VIP:81 (TOA option kept) with IP and TCP checksums fixed",
        icmp_frame(FROM_R1, R1, L1, 64, unreachable(U::Host), &toa_sent),
        "tx 0",
        Some(icmp_frame(TO_CLIENT, VIP, CLIENT, 63, unreachable(U::Host), &toa_client_view)),
    ));
    let stray = ip_packet((L1, 20050), (R1, 80), 63, Some("S"), b"");
    v.push(case(
        "host unreachable about a packet from 198.18.1.2:20050 (in the pool's range) of no connection: drop (icmp_untracked)",
        icmp_frame(FROM_R1, R1, L1, 64, unreachable(U::Host), &stray),
        "drop icmp_untracked",
        None,
    ));
    let own = ip_packet((L1, 40000), (R1, 80), 64, Some("S"), b"");
    v.push(case(
        "port unreachable about the box's own packet from 198.18.1.2:40000 (outside the pool's range): the kernel's (pass)",
        icmp_frame(FROM_R1, R1, L1, 64, unreachable(U::Port), &own),
        "pass",
        None,
    ));
    let stray_reply = ip_packet((VIP, 80), (CLIENT, 40999), 63, Some("SA"), b"");
    v.push(case(
        "port unreachable from the client about a VIP:80 reply of no connection: drop (icmp_untracked)",
        icmp_frame(FROM_CLIENT, CLIENT, VIP, 64, unreachable(U::Port), &stray_reply),
        "drop icmp_untracked",
        None,
    ));
    v.push(case(
        "an error with TTL 1 from the client's side about a tracked reply: drop (ttl_exceeded)",
        icmp_frame(
            FROM_CLIENT,
            CLIENT,
            VIP,
            1,
            unreachable(U::Port),
            &reply_client,
        ),
        "drop ttl_exceeded",
        None,
    ));
    v
}

const GOLDEN: &str = "fullnat_icmp.golden";
const HEADER: &str =
    "# Golden ICMP error cases for FULLNAT, replayed in order through one Processor (see tests/golden_fullnat_icmp.rs).\n\
     # Lab: client 198.18.0.2, VIP 198.18.0.100 (fullnat rr: tcp/80 -> r1:80, r2:80; udp/53 -> :5353; tcp/81 toa -> r1:80),\n\
     # pool1 198.18.1.2, 198.18.1.3 ports 20000-20099; r1 198.18.1.11, r2 198.18.1.12; port 0 = wan0, port 1 = lan0.\n";

#[test]
fn fullnat_icmp_golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_fullnat_icmp_table() {
    let cases = golden::load(GOLDEN, 13);
    let mut p = processor();
    // 64 bytes of tailroom, as a UMEM frame has (TOA grows a SYN).
    let failures = golden::replay(&mut p, &cases, 64);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn translated_fullnat_errors_verify_with_an_independent_parser() {
    let mut checked = 0;
    for c in golden::load(GOLDEN, 13) {
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
    assert_eq!(checked, 6, "translated errors in the table");
}
