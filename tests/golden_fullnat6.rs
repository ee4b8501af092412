//! Golden packet table for FULLNAT6 (both endpoints rewritten over IPv6) and the IPv6 TOA.
//!
//! `tests/golden/fullnat6.golden` is in the format of `tests/golden/fullnat.golden`, replayed in
//! order through one processor of the FULLNAT6 lab (`tests/fixtures/fullnat6_lab.rs`; the order
//! matters: replies need the connections earlier cases created, and local endpoints are handed
//! out in a fixed order). Each input frame is given 64 bytes of tailroom, as a UMEM frame has,
//! so TOA can grow it.
//!
//! The expected frames are built independently of xvs's rewrite code: etherparse builds every
//! frame from field values (the IPv6 TOA option included, as raw option bytes written out here:
//! kind 254, length 20, port, address) and computes every checksum from scratch over the IPv6
//! pseudo-header. `XVS_BLESS=1` rewrites the file after a deliberate change; review the diff.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use xvs::datapath::Verdict;

#[path = "fixtures/frame6.rs"]
mod frame6;
#[path = "fixtures/fullnat6_lab.rs"]
mod fullnat6_lab;
#[path = "fixtures/golden.rs"]
mod golden;

use frame6::{Ext, Pkt6, L4, PADN_8};
use fullnat6_lab::*;
use golden::{hex, Case};

/// Linux's SYN options: MSS 1440, SACK permitted, timestamps, NOP, window scale 7 (20 bytes).
const SYN_OPTS: [u8; 20] = [
    2, 4, 0x05, 0xa0, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// NOP, NOP, timestamps (12 bytes), as on Linux's ACKs.
const ACK_OPTS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1];

impl Pkt6 {
    /// From the client on wan0.
    fn tcp(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, flags: &'static str) -> Pkt6 {
        Pkt6::new(
            (CLIENT_MAC, WAN_MAC),
            (src, sport),
            (dst, dport),
            L4::Tcp(flags),
        )
    }

    fn udp(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &'static [u8]) -> Pkt6 {
        Pkt6 {
            l4: L4::Udp,
            payload,
            ..Pkt6::tcp(src, sport, dst, dport, "")
        }
    }

    fn opts(self, opts: &'static [u8]) -> Pkt6 {
        Pkt6 { opts, ..self }
    }

    fn data(self, payload: &'static [u8]) -> Pkt6 {
        Pkt6 { payload, ..self }
    }

    /// Sent by the real server it comes from, on lan0.
    fn sent_on_lan(mut self) -> Pkt6 {
        self.src_mac = if self.src == R2 { R2_MAC } else { R1_MAC };
        self.dst_mac = LAN_MAC;
        self
    }
}

/// The IPv6 TOA option for `client` (DPVS `struct tcpopt_ip6_addr`), written out field by field.
fn toa6((ip, port): ([u8; 16], u16)) -> Vec<u8> {
    let mut o = vec![254, 20];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&ip);
    o
}

/// What a FULLNAT6 director emits for `p`: source `src`, destination `dst`, hop limit − 1, the
/// egress hop's MACs, and with `toa` the IPv6 TOA option for `toa` first among the options.
fn fnat(
    p: &Pkt6,
    src: ([u8; 16], u16),
    dst: ([u8; 16], u16),
    macs: ([u8; 6], [u8; 6]),
    toa: Option<([u8; 16], u16)>,
) -> Vec<u8> {
    let mut o = *p;
    (o.src, o.sport) = src;
    (o.dst, o.dport) = dst;
    o.hop -= 1;
    (o.src_mac, o.dst_mac) = macs;
    match (toa, o.l4) {
        (Some(client), L4::Tcp(_)) => o.build_with_opts(&[toa6(client), o.opts.to_vec()].concat()),
        _ => o.build(),
    }
}

const TO_R1: ([u8; 6], [u8; 6]) = (LAN_MAC, R1_MAC);
const TO_R2: ([u8; 6], [u8; 6]) = (LAN_MAC, R2_MAC);
const TO_WAN: ([u8; 6], [u8; 6]) = (WAN_MAC, CLIENT_MAC);

/// Appends the case of `input` (built) to `v`.
fn case(v: &mut Vec<Case>, what: &str, input: &Pkt6, verdict: &str, output: Option<Vec<u8>>) {
    v.push(golden::case(what, input.build(), verdict, output));
}

/// web6 tcp/80: both translations, two flows over the pool's two addresses.
fn tcp(v: &mut Vec<Case>) {
    let syn = Pkt6::tcp(CLIENT, 40000, VIP, 80, "S");
    case(v,
        "TCP SYN to [VIP]:80 (rr: r1): source → pool6's first endpoint [2001:2:1::2]:20000, destination → [r1]:80, hop limit 63",
        &syn, "tx 1", Some(fnat(&syn, (L1, 20000), (R1, 80), TO_R1, None)));
    let synack = Pkt6::tcp(R1, 80, L1, 20000, "SA").sent_on_lan();
    case(v,
        "SYN-ACK from r1 to [2001:2:1::2]:20000: source → [VIP]:80, destination → [client]:40000, out on wan0",
        &synack, "tx 0", Some(fnat(&synack, (VIP, 80), (CLIENT, 40000), TO_WAN, None)));
    let ack = Pkt6::tcp(CLIENT, 40000, VIP, 80, "PA").data(b"GET / HTTP/1.0\r\n\r\n");
    case(
        v,
        "data from the client follows its connection (same local endpoint)",
        &ack,
        "tx 1",
        Some(fnat(&ack, (L1, 20000), (R1, 80), TO_R1, None)),
    );
    let resp = Pkt6::tcp(R1, 80, L1, 20000, "PA")
        .data(b"HTTP/1.0 200 OK\r\n\r\nr1\n")
        .sent_on_lan();
    case(
        v,
        "data reply from r1",
        &resp,
        "tx 0",
        Some(fnat(&resp, (VIP, 80), (CLIENT, 40000), TO_WAN, None)),
    );
    let syn2 = Pkt6::tcp(CLIENT, 40001, VIP, 80, "S");
    case(
        v,
        "second flow (rr: r2) gets the pool's next address: [2001:2:1::3]:20000",
        &syn2,
        "tx 1",
        Some(fnat(&syn2, (L2, 20000), (R2, 80), TO_R2, None)),
    );
    let synack2 = Pkt6::tcp(R2, 80, L2, 20000, "SA").sent_on_lan();
    case(
        v,
        "SYN-ACK from r2 to [2001:2:1::3]:20000",
        &synack2,
        "tx 0",
        Some(fnat(&synack2, (VIP, 80), (CLIENT, 40001), TO_WAN, None)),
    );
    let stray = Pkt6::tcp(R1, 80, L1, 20050, "A").sent_on_lan();
    case(
        v,
        "packet to a pool port no connection holds: pass (not a tracked reply)",
        &stray,
        "pass",
        None,
    );
    let natlike = Pkt6::tcp(R1, 80, CLIENT, 40000, "A").sent_on_lan();
    case(
        v,
        "r1 → client directly (a NAT-style reply key): a FULLNAT6 connection is not found by it",
        &natlike,
        "pass",
        None,
    );
    let ext = Pkt6 {
        ext: Ext::Options(PADN_8, PADN_8),
        ..Pkt6::tcp(CLIENT, 40000, VIP, 80, "A")
    };
    case(v,
        "behind hop-by-hop and destination options: both endpoints translated, the extension headers kept",
        &ext, "tx 1", Some(fnat(&ext, (L1, 20000), (R1, 80), TO_R1, None)));
    let low = Pkt6 {
        hop: 1,
        ..Pkt6::tcp(CLIENT, 40002, VIP, 80, "S")
    };
    case(
        v,
        "SYN with hop limit 1: would leave with 0, dropped (no local port taken)",
        &low,
        "drop ttl_exceeded",
        None,
    );
}

/// dns6 udp/53 both ways.
fn udp(v: &mut Vec<Case>) {
    let q = Pkt6::udp(CLIENT, 50000, VIP, 53, b"query-1");
    case(
        v,
        "UDP to [VIP]:53 (rr: r1): [2001:2:1::2]:20001 → [r1]:5353",
        &q,
        "tx 1",
        Some(fnat(&q, (L1, 20001), (R1, 5353), TO_R1, None)),
    );
    let a = Pkt6::udp(R1, 5353, L1, 20001, b"r1:query-1").sent_on_lan();
    case(
        v,
        "UDP reply from [r1]:5353 to [2001:2:1::2]:20001: [VIP]:53 → [client]:50000",
        &a,
        "tx 0",
        Some(fnat(&a, (VIP, 53), (CLIENT, 50000), TO_WAN, None)),
    );
    let q2 = Pkt6::udp(CLIENT, 50001, VIP, 53, b"query-2");
    case(
        v,
        "UDP from another client port (rr: r2): [2001:2:1::3]:20001 → [r2]:5353",
        &q2,
        "tx 1",
        Some(fnat(&q2, (L2, 20001), (R2, 5353), TO_R2, None)),
    );
    let a2 = Pkt6::udp(R2, 5353, L2, 20001, b"r2:query-2").sent_on_lan();
    case(
        v,
        "UDP reply from [r2]:5353",
        &a2,
        "tx 0",
        Some(fnat(&a2, (VIP, 53), (CLIENT, 50001), TO_WAN, None)),
    );
}

/// toa6 tcp/81: the IPv6 TOA in the SYN and the handshake's last ACK, and its skips.
fn toa(v: &mut Vec<Case>) {
    let tsyn = Pkt6::tcp(CLIENT, 40010, VIP, 81, "S").opts(&SYN_OPTS);
    case(v,
        "TOA6: SYN with Linux's 20 option bytes gets option 254/20 (client [2001:2::2]:40010) first: data offset 15, the largest, 20 bytes longer",
        &tsyn, "tx 1", Some(fnat(&tsyn, (L1, 20002), (R1, 80), TO_R1, Some((CLIENT, 40010)))));
    let tsynack = Pkt6::tcp(R1, 80, L1, 20002, "SA")
        .opts(&SYN_OPTS)
        .sent_on_lan();
    case(
        v,
        "TOA6: the SYN-ACK back to the client carries no TOA",
        &tsynack,
        "tx 0",
        Some(fnat(&tsynack, (VIP, 81), (CLIENT, 40010), TO_WAN, None)),
    );
    let tack = Pkt6::tcp(CLIENT, 40010, VIP, 81, "A").opts(&ACK_OPTS);
    case(v,
        "TOA6: the client's ACK completing the handshake gets the option too (the TOA kernel module reads it there)",
        &tack, "tx 1", Some(fnat(&tack, (L1, 20002), (R1, 80), TO_R1, Some((CLIENT, 40010)))));
    let tdata = Pkt6::tcp(CLIENT, 40010, VIP, 81, "PA")
        .opts(&ACK_OPTS)
        .data(b"GET / HTTP/1.0\r\n\r\n");
    case(
        v,
        "TOA6: later segments carry no option",
        &tdata,
        "tx 1",
        Some(fnat(&tdata, (L1, 20002), (R1, 80), TO_R1, None)),
    );
    let full = Pkt6::tcp(CLIENT, 40011, VIP, 81, "S").opts(&[1; 24]);
    case(v,
        "TOA6 skipped: a SYN with 24 option bytes has 16 left, no room for 20 (counted no_option_space), translated anyway",
        &full, "tx 1", Some(fnat(&full, (L2, 20002), (R1, 80), TO_R1, None)));
    let msyn = Pkt6 {
        ext: Ext::Options(PADN_8, PADN_8),
        ..Pkt6::tcp(CLIENT, 40012, VIP, 81, "S")
    };
    case(v,
        "TOA6: SYN without options behind hop-by-hop and destination options: the option goes into the TCP header (data offset 10), the payload length grows by 20",
        &msyn, "tx 1", Some(fnat(&msyn, (L1, 20003), (R1, 80), TO_R1, Some((CLIENT, 40012)))));
    let msynack = Pkt6::tcp(R1, 80, L1, 20003, "SA").sent_on_lan();
    case(
        v,
        "TOA6: its SYN-ACK",
        &msynack,
        "tx 0",
        Some(fnat(&msynack, (VIP, 81), (CLIENT, 40012), TO_WAN, None)),
    );
    let big = Pkt6::tcp(CLIENT, 40012, VIP, 81, "PA").data(&[b'a'; 1440]);
    case(v,
        "TOA6 skipped: the handshake-completing ACK carries 1440 bytes (a 1500-byte packet), 20 more would exceed the LAN MTU (counted mtu)",
        &big, "tx 1", Some(fnat(&big, (L1, 20003), (R1, 80), TO_R1, None)));
}

/// tiny6: one address, one port.
fn exhaustion(v: &mut Vec<Case>) {
    let t1 = Pkt6::tcp(CLIENT, 41000, VIP, 9000, "S");
    case(
        v,
        "tiny6 pool (one address, one port): the first flow takes [2001:2:1::4]:30000",
        &t1,
        "tx 1",
        Some(fnat(&t1, (L_TINY, 30000), (R1, 80), TO_R1, None)),
    );
    let t2 = Pkt6::tcp(CLIENT, 41001, VIP, 9000, "S");
    case(
        v,
        "tiny6 pool exhausted: a second concurrent flow is dropped",
        &t2,
        "drop local_ports_exhausted",
        None,
    );
    let again = Pkt6::tcp(CLIENT, 41000, VIP, 9000, "A");
    case(
        v,
        "the first flow keeps its endpoint",
        &again,
        "tx 1",
        Some(fnat(&again, (L_TINY, 30000), (R1, 80), TO_R1, None)),
    );
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    tcp(&mut v);
    udp(&mut v);
    toa(&mut v);
    exhaustion(&mut v);
    v
}

const GOLDEN: &str = "fullnat6.golden";
const HEADER: &str =
    "# Golden FULLNAT6 cases, replayed in order through one Processor (see tests/golden_fullnat6.rs).\n\
     # Lab: client 2001:2::2, VIP 2001:2::100, r1 2001:2:1::11, r2 2001:2:1::12; pool6 =\n\
     # 2001:2:1::2 + 2001:2:1::3 ports 20000-20099, tiny6 = 2001:2:1::4 port 30000. Services (rr):\n\
     # tcp/80 r1 r2, tcp/81 r1 with toa, udp/53 r1:5353 r2:5353 (pool6); tcp/9000 r1 (tiny6).\n\
     # Port 0 = wan0, port 1 = lan0 (MTU 1500).\n";

#[test]
fn golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

/// The shared replay (64 bytes of tailroom, so TOA can grow a SYN), then the counters the
/// table must leave behind.
#[test]
fn golden_fullnat6_table() {
    let cases = golden::load(GOLDEN, 25);
    let mut p = processor();
    let failures = golden::replay(&mut p, &cases, 64);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    use std::sync::atomic::Ordering::Relaxed;
    use xvs::datapath::fullnat::ToaSkip;
    let c = &p.counters;
    assert_eq!(c.toa_inserted.load(Relaxed), 3);
    assert_eq!(c.toa_skips(ToaSkip::NoOptionSpace), 1);
    assert_eq!(c.toa_skips(ToaSkip::Mtu), 1);
    assert_eq!(c.toa_skips(ToaSkip::NoRoom), 0);
    // Ports in use: pool6 holds 2 web6 + 2 dns6 + 3 toa6 flows, tiny6 its one, pool4 none.
    let t = &p.shared().conntrack;
    let in_use = |pool: u16| t.local_ports_in_use(usize::from(pool));
    assert_eq!((in_use(POOL4), in_use(POOL6), in_use(TINY6)), (0, 7, 1));
    assert_eq!((t.len(), t.len_ipv6()), (8, 8), "every connection is IPv6");
}

/// Every output read back by etherparse: hop limit 63, the payload length the frame's, the
/// TCP/UDP checksum right over the IPv6 pseudo-header, and in the TOA cases the option first
/// with the client's endpoint.
#[test]
fn outputs_verify_with_an_independent_parser() {
    for c in golden::load(GOLDEN, 25) {
        let Some(out) = &c.output else { continue };
        let pkt = etherparse::SlicedPacket::from_ethernet(out).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &pkt.net else {
            panic!("{}: not IPv6", c.what)
        };
        let h = ip.header().to_header();
        assert_eq!(h.hop_limit, 63, "{}", c.what);
        assert_eq!(
            14 + 40 + usize::from(h.payload_length),
            out.len(),
            "{}",
            c.what
        );
        match &pkt.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), want, "{}", c.what);
                let toa = xvs::datapath::fullnat::find_toa6(t.options());
                let inserted =
                    c.what.starts_with("TOA6: SYN") || c.what.starts_with("TOA6: the client's ACK");
                match inserted {
                    true => {
                        assert_eq!(
                            t.options().get(..2),
                            Some(&[254, 20][..]),
                            "{}: {:?}",
                            c.what,
                            t.options()
                        );
                        assert_eq!(toa.map(|a| a.ip().octets()), Some(CLIENT), "{}", c.what);
                    }
                    false => assert_eq!(toa, None, "{}", c.what),
                }
            }
            Some(etherparse::TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), want, "{}", c.what);
            }
            _ => panic!("{}: no transport", c.what),
        }
    }
}

/// Mutated golden inputs (bit flips, truncations, scribbled options) through a FULLNAT6
/// processor with tailroom: never a panic; every transmitted IPv6 frame still parses and its
/// length is its payload length's (TOA growth included).
#[test]
fn mutated_frames_never_panic_and_tx_frames_stay_consistent() {
    let cases = golden::load(GOLDEN, 25);
    let mut p = processor();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tx = 0;
    for i in 0..100_000u64 {
        let c = &cases[(next() % cases.len() as u64) as usize];
        let mut frame = c.input.clone();
        match next() % 4 {
            0 => {
                let at = (next() % frame.len() as u64) as usize;
                frame[at] ^= 1 << (next() % 8);
            }
            1 => frame.truncate((next() % frame.len() as u64) as usize),
            2 if frame.len() > 74 => {
                // Scribble over the TCP data offset and the options/payload area.
                frame[66] = next() as u8;
                let at = 74 + (next() % (frame.len() as u64 - 74)) as usize;
                frame[at] = next() as u8;
            }
            _ => {}
        }
        let len = frame.len();
        frame.resize(len + 64, 0);
        let mut n = len;
        let now = (i + 1) * 1_000_000;
        p.begin_batch(now);
        if let Verdict::Tx(_) = p.process_buf(now, 0, &mut frame, &mut n) {
            tx += 1;
            assert!(n <= len + 20, "length {len} became {n}");
            let out = &frame[..n];
            let pkt = etherparse::SlicedPacket::from_ethernet(out)
                .unwrap_or_else(|e| panic!("tx frame does not parse ({e}): {}", hex(out)));
            if let Some(etherparse::NetSlice::Ipv6(ip)) = &pkt.net {
                let plen = usize::from(ip.header().payload_length());
                assert!(14 + 40 + plen <= n, "{}", hex(out));
            }
        }
    }
    assert!(tx > 5_000, "only {tx} frames transmitted");
}
