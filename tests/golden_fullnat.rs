//! Golden packet table for FULLNAT forwarding and TOA insertion.
//!
//! `tests/golden/fullnat.golden` holds, in order, cases of {description, input frame, expected
//! verdict, expected output frame} (the shared format and replay of `tests/fixtures/golden.rs`),
//! replayed through one `Processor` of the FULLNAT lab
//! (`tests/fixtures/fullnat_lab.rs`; the order matters: replies need the connections earlier
//! cases created, and local endpoints are handed out in a fixed order). Each input frame is given
//! 64 bytes of tailroom, as a UMEM frame has, so TOA can grow it.
//!
//! The expected frames are built independently of xvs's rewrite code: etherparse builds every
//! frame from field values (the TOA option included, as raw option bytes) and computes all
//! checksums from scratch. `golden_file_matches_its_builder` keeps the file and this builder in
//! step; run with `XVS_BLESS=1` to rewrite the file after a deliberate change, and review the
//! diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use etherparse::PacketBuilder;
use xvs::datapath::Verdict;

#[path = "fixtures/fullnat_lab.rs"]
mod fullnat_lab;
#[path = "fixtures/golden.rs"]
mod golden;

use fullnat_lab::*;
use golden::{hex, Case};

#[derive(Clone)]
enum L4 {
    Tcp { flags: &'static str, opts: Vec<u8> },
    Udp,
}

#[derive(Clone)]
struct Pkt {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    l4: L4,
    payload: Vec<u8>,
}

/// Linux's SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (20 bytes).
const SYN_OPTS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// NOP, NOP, timestamps (12 bytes), as on Linux's ACKs.
const ACK_OPTS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1];

impl Pkt {
    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &'static str) -> Pkt {
        Pkt {
            src_mac: CLIENT_MAC,
            dst_mac: WAN_MAC,
            src,
            dst,
            ttl: 64,
            sport,
            dport,
            l4: L4::Tcp {
                flags,
                opts: Vec::new(),
            },
            payload: Vec::new(),
        }
    }

    fn opts(mut self, o: &[u8]) -> Pkt {
        if let L4::Tcp { opts, .. } = &mut self.l4 {
            *opts = o.to_vec();
        }
        self
    }

    fn data(mut self, d: &[u8]) -> Pkt {
        self.payload = d.to_vec();
        self
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Pkt {
        Pkt {
            l4: L4::Udp,
            payload: payload.to_vec(),
            ..Pkt::tcp(src, sport, dst, dport, "")
        }
    }

    fn sent_on_lan(mut self) -> Pkt {
        self.src_mac = if self.src == R2 { R2_MAC } else { R1_MAC };
        self.dst_mac = LAN_MAC;
        self
    }

    fn build(&self) -> Vec<u8> {
        let step =
            PacketBuilder::ethernet2(self.src_mac, self.dst_mac).ip(etherparse::IpHeaders::Ipv4(
                {
                    let mut ip = etherparse::Ipv4Header::new(
                        0,
                        self.ttl,
                        etherparse::IpNumber::TCP,
                        self.src,
                        self.dst,
                    )
                    .unwrap();
                    ip.identification = 0x1234;
                    ip.dont_fragment = true;
                    ip
                },
                Default::default(),
            ));
        let mut out = Vec::new();
        match &self.l4 {
            L4::Tcp { flags, opts } => {
                let mut t = step.tcp(self.sport, self.dport, 1000, 64240);
                for f in flags.chars() {
                    t = match f {
                        'S' => t.syn(),
                        'A' => t.ack(1),
                        'F' => t.fin(),
                        'R' => t.rst(),
                        'P' => t.psh(),
                        _ => panic!("flag {f}"),
                    };
                }
                if !opts.is_empty() {
                    t = t.options_raw(opts).unwrap();
                }
                t.write(&mut out, &self.payload).unwrap();
            }
            L4::Udp => step
                .udp(self.sport, self.dport)
                .write(&mut out, &self.payload)
                .unwrap(),
        }
        out
    }
}

/// What a FULLNAT director emits for `p`: source `src`, destination `dst`, TTL − 1, the egress
/// hop's MACs, and with `toa` the TOA option for `toa` first among the options.
fn fnat(
    p: &Pkt,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    macs: ([u8; 6], [u8; 6]),
    toa: Option<([u8; 4], u16)>,
) -> Vec<u8> {
    let mut o = p.clone();
    (o.src, o.sport) = src;
    (o.dst, o.dport) = dst;
    o.ttl -= 1;
    (o.src_mac, o.dst_mac) = macs;
    if let (Some((ip, port)), L4::Tcp { opts, .. }) = (toa, &mut o.l4) {
        let p = port.to_be_bytes();
        let mut with = vec![254, 8, p[0], p[1], ip[0], ip[1], ip[2], ip[3]];
        with.extend_from_slice(opts);
        *opts = with;
    }
    o.build()
}

const TO_LAN: ([u8; 6], [u8; 6]) = (LAN_MAC, R1_MAC);
const TO_R2: ([u8; 6], [u8; 6]) = (LAN_MAC, R2_MAC);
const TO_WAN: ([u8; 6], [u8; 6]) = (WAN_MAC, CLIENT_MAC);

/// Appends the case of `input` (built) to `v`.
fn case(v: &mut Vec<Case>, what: &str, input: &Pkt, verdict: &str, output: Option<Vec<u8>>) {
    v.push(golden::case(what, input.build(), verdict, output));
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // web tcp/80: both translations.
    let syn = Pkt::tcp(CLIENT, 40000, VIP, 80, "S");
    case(&mut v,
        "TCP SYN to VIP:80 (rr: r1): source → pool1's first endpoint 198.18.1.2:20000, destination → r1:80",
        &syn, "tx 1", Some(fnat(&syn, (L1, 20000), (R1, 80), TO_LAN, None)));
    let synack = Pkt::tcp(R1, 80, L1, 20000, "SA").sent_on_lan();
    case(&mut v,
        "SYN-ACK from r1 to 198.18.1.2:20000: source → VIP:80, destination → client:40000, out on WAN",
        &synack, "tx 0", Some(fnat(&synack, (VIP, 80), (CLIENT, 40000), TO_WAN, None)));
    let ack = Pkt::tcp(CLIENT, 40000, VIP, 80, "PA").data(b"GET / HTTP/1.0\r\n\r\n");
    case(
        &mut v,
        "data from the client follows its connection (same local endpoint)",
        &ack,
        "tx 1",
        Some(fnat(&ack, (L1, 20000), (R1, 80), TO_LAN, None)),
    );
    let resp = Pkt::tcp(R1, 80, L1, 20000, "PA")
        .data(b"HTTP/1.0 200 OK\r\n\r\nr1\n")
        .sent_on_lan();
    case(
        &mut v,
        "data reply from r1",
        &resp,
        "tx 0",
        Some(fnat(&resp, (VIP, 80), (CLIENT, 40000), TO_WAN, None)),
    );
    let syn2 = Pkt::tcp(CLIENT, 40001, VIP, 80, "S");
    case(
        &mut v,
        "second flow (rr: r2) gets the pool's next address: 198.18.1.3:20000",
        &syn2,
        "tx 1",
        Some(fnat(&syn2, (L2, 20000), (R2, 80), TO_R2, None)),
    );
    let synack2 = Pkt::tcp(R2, 80, L2, 20000, "SA").sent_on_lan();
    case(
        &mut v,
        "SYN-ACK from r2 to 198.18.1.3:20000",
        &synack2,
        "tx 0",
        Some(fnat(&synack2, (VIP, 80), (CLIENT, 40001), TO_WAN, None)),
    );
    let stray = Pkt::tcp(R1, 80, L1, 20050, "A").sent_on_lan();
    case(
        &mut v,
        "packet to a pool port no connection holds: pass (not a tracked reply)",
        &stray,
        "pass",
        None,
    );
    let natlike = Pkt::tcp(R1, 80, CLIENT, 40000, "A").sent_on_lan();
    case(
        &mut v,
        "r1 → client directly (a NAT-style reply key): a FULLNAT connection is not found by it",
        &natlike,
        "pass",
        None,
    );
    // dns udp/53.
    let q = Pkt::udp(CLIENT, 50000, VIP, 53, b"query-1");
    case(
        &mut v,
        "UDP to VIP:53 (rr: r1): 198.18.1.2:20001 → r1:5353",
        &q,
        "tx 1",
        Some(fnat(&q, (L1, 20001), (R1, 5353), TO_LAN, None)),
    );
    let a = Pkt::udp(R1, 5353, L1, 20001, b"r1:query-1").sent_on_lan();
    case(
        &mut v,
        "UDP reply from r1:5353 to 198.18.1.2:20001: VIP:53 → client:50000",
        &a,
        "tx 0",
        Some(fnat(&a, (VIP, 53), (CLIENT, 50000), TO_WAN, None)),
    );
    // toa tcp/81.
    let tsyn = Pkt::tcp(CLIENT, 40010, VIP, 81, "S").opts(&SYN_OPTS);
    case(&mut v,
        "TOA: SYN with Linux's 20 option bytes gets option 254 (client 198.18.0.2:40010) first: data offset 12, 8 bytes longer",
        &tsyn, "tx 1", Some(fnat(&tsyn, (L2, 20001), (R1, 80), TO_LAN, Some((CLIENT, 40010)))));
    let tsynack = Pkt::tcp(R1, 80, L2, 20001, "SA")
        .opts(&SYN_OPTS)
        .sent_on_lan();
    case(
        &mut v,
        "TOA: the SYN-ACK back to the client carries no TOA",
        &tsynack,
        "tx 0",
        Some(fnat(&tsynack, (VIP, 81), (CLIENT, 40010), TO_WAN, None)),
    );
    let tack = Pkt::tcp(CLIENT, 40010, VIP, 81, "A").opts(&ACK_OPTS);
    case(&mut v,
        "TOA: the client's ACK completing the handshake gets the option too (the TOA kernel module reads it there)",
        &tack, "tx 1", Some(fnat(&tack, (L2, 20001), (R1, 80), TO_LAN, Some((CLIENT, 40010)))));
    let tdata = Pkt::tcp(CLIENT, 40010, VIP, 81, "PA")
        .opts(&ACK_OPTS)
        .data(b"GET / HTTP/1.0\r\n\r\n");
    case(
        &mut v,
        "TOA: later segments carry no option",
        &tdata,
        "tx 1",
        Some(fnat(&tdata, (L2, 20001), (R1, 80), TO_LAN, None)),
    );
    let full = Pkt::tcp(CLIENT, 40011, VIP, 81, "S").opts(&[1; 36]);
    case(&mut v,
        "TOA skipped: a SYN with 36 option bytes has no room for 8 more (counted no_option_space), translated anyway",
        &full, "tx 1", Some(fnat(&full, (L1, 20002), (R1, 80), TO_LAN, None)));
    let msyn = Pkt::tcp(CLIENT, 40012, VIP, 81, "S");
    case(
        &mut v,
        "TOA: SYN without options gets the option (data offset 7)",
        &msyn,
        "tx 1",
        Some(fnat(
            &msyn,
            (L2, 20002),
            (R1, 80),
            TO_LAN,
            Some((CLIENT, 40012)),
        )),
    );
    let msynack = Pkt::tcp(R1, 80, L2, 20002, "SA").sent_on_lan();
    case(
        &mut v,
        "TOA: its SYN-ACK",
        &msynack,
        "tx 0",
        Some(fnat(&msynack, (VIP, 81), (CLIENT, 40012), TO_WAN, None)),
    );
    let big = Pkt::tcp(CLIENT, 40012, VIP, 81, "PA").data(&[b'a'; 1460]);
    case(&mut v,
        "TOA skipped: the handshake-completing ACK carries 1460 bytes, 8 more would exceed the LAN MTU 1500 (counted mtu)",
        &big, "tx 1", Some(fnat(&big, (L2, 20002), (R1, 80), TO_LAN, None)));
    // Pool exhaustion.
    let t1 = Pkt::tcp(CLIENT, 41000, VIP, 9000, "S");
    case(
        &mut v,
        "tiny pool (one address, one port): the first flow takes 198.18.1.4:30000",
        &t1,
        "tx 1",
        Some(fnat(&t1, (L_TINY, 30000), (R1, 80), TO_LAN, None)),
    );
    let t2 = Pkt::tcp(CLIENT, 41001, VIP, 9000, "S");
    case(
        &mut v,
        "tiny pool exhausted: a second concurrent flow is dropped",
        &t2,
        "drop local_ports_exhausted",
        None,
    );
    let again = Pkt::tcp(CLIENT, 41000, VIP, 9000, "A");
    case(
        &mut v,
        "the first flow keeps its endpoint",
        &again,
        "tx 1",
        Some(fnat(&again, (L_TINY, 30000), (R1, 80), TO_LAN, None)),
    );
    // Fragments: the expected fragments are the translated whole datagram (built and
    // checksummed by etherparse) split the same way.
    let q = Pkt::udp(CLIENT, 50100, VIP, 53, b"fragmented-query");
    let (first, later) = fragments(q.build(), 16, 0x4242);
    let (first_out, later_out) =
        fragments(fnat(&q, (L1, 20003), (R2, 5353), TO_R2, None), 16, 0x4242);
    push_raw(&mut v,
        "first fragment of a UDP datagram to VIP:53 (rr: r2): both endpoints translated, checksum of the whole datagram",
        first, "tx 1", Some(first_out));
    push_raw(
        &mut v,
        "later fragment: both addresses translated like its first fragment (no ports to see)",
        later,
        "tx 1",
        Some(later_out),
    );
    let r = Pkt::udp(R2, 5353, L1, 20003, b"r2:fragmented-answer").sent_on_lan();
    let (first, later) = fragments(r.build(), 16, 0x5151);
    let (first_out, later_out) = fragments(
        fnat(&r, (VIP, 53), (CLIENT, 50100), TO_WAN, None),
        16,
        0x5151,
    );
    push_raw(
        &mut v,
        "first fragment of r2's reply to 198.18.1.2:20003",
        first,
        "tx 0",
        Some(first_out),
    );
    push_raw(
        &mut v,
        "later fragment of the reply: to the client, from the VIP",
        later,
        "tx 0",
        Some(later_out),
    );
    let (_, orphan) = fragments(
        Pkt::udp(R2, 5353, L1, 20004, b"fragmented-answer")
            .sent_on_lan()
            .build(),
        8,
        0x6161,
    );
    push_raw(
        &mut v,
        "later fragment to a pool address whose first fragment was never seen: drop",
        orphan,
        "drop ipv4_fragment",
        None,
    );
    v
}

fn push_raw(v: &mut Vec<Case>, what: &str, input: Vec<u8>, verdict: &str, output: Option<Vec<u8>>) {
    v.push(golden::case(what, input, verdict, output));
}

/// Splits an Ethernet/IPv4 frame (no IP options) into two fragments after `at` bytes of IP
/// payload (a multiple of 8), with IP identification `id` and fresh header checksums.
fn fragments(frame: Vec<u8>, at: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(at % 8, 0);
    let (head, payload) = frame.split_at(14 + 20);
    let piece = |data: &[u8], offset: usize, more: bool| {
        let mut f = head.to_vec();
        f.extend_from_slice(data);
        f[14 + 2..14 + 4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        f[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        let flags = if more { 0x2000 } else { 0 } | (offset / 8) as u16;
        f[14 + 6..14 + 8].copy_from_slice(&flags.to_be_bytes());
        f[14 + 10] = 0;
        f[14 + 11] = 0;
        let h = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap().0;
        f[14 + 10..14 + 12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
        f
    };
    (
        piece(&payload[..at], 0, true),
        piece(&payload[at..], at, false),
    )
}

const GOLDEN: &str = "fullnat.golden";
const HEADER: &str =
    "# Golden FULLNAT cases, replayed in order through one Processor (see tests/golden_fullnat.rs).\n\
     # Lab: client 198.18.0.2, VIP 198.18.0.100, r1 198.18.1.11, r2 198.18.1.12; pool1 =\n\
     # 198.18.1.2 + 198.18.1.3 ports 20000-20099, tiny = 198.18.1.4 port 30000. Services (rr):\n\
     # tcp/80 r1 r2, tcp/81 r1 with toa, udp/53 r1:5353 r2:5353 (pool1); tcp/9000 r1 (tiny).\n\
     # Port 0 = wan0, port 1 = lan0 (MTU 1500).\n";

#[test]
fn golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

/// The shared replay (64 bytes of tailroom, as a UMEM frame has, so TOA can grow a SYN), then
/// the counters the table must leave behind.
#[test]
fn golden_fullnat_table() {
    let cases = golden::load(GOLDEN, 20);
    let mut p = processor();
    let failures = golden::replay(&mut p, &cases, 64);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    use xvs::datapath::fullnat::ToaSkip;
    let c = &p.counters;
    assert_eq!(c.toa_inserted.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(c.toa_skips(ToaSkip::NoOptionSpace), 1);
    assert_eq!(c.toa_skips(ToaSkip::Mtu), 1);
    // Ports in use: pool1 holds 2 web + 2 dns + 3 toa flows; tiny its one.
    let pools = p.shared().conntrack.local_pools();
    assert_eq!((pools.ports_in_use(0), pools.ports_in_use(1)), (7, 1));
}

#[test]
fn outputs_verify_with_an_independent_parser() {
    for c in golden::load(GOLDEN, 20) {
        let Some(o) = c.output else { continue };
        let options = golden::check_routed_output(&o, &c.what);
        if c.what.starts_with("TOA: SYN") || c.what.contains("completing the handshake") {
            let toa = options.and_then(|opts| xvs::datapath::fullnat::find_toa(&opts));
            assert_eq!(toa.map(|a| a.ip().octets()), Some(CLIENT), "{}", c.what);
        }
    }
}

/// Mutated golden inputs (bit flips, truncations, random option bytes) through a FULLNAT
/// processor with tailroom: never a panic; every transmitted frame still parses, has a correct
/// IPv4 header checksum and a length that matches its IP total length (TOA growth included).
#[test]
fn mutated_frames_never_panic_and_tx_frames_stay_consistent() {
    let cases = golden::load(GOLDEN, 20);
    let mut p = processor();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tx = 0;
    for i in 0..200_000u64 {
        let c = &cases[(next() % cases.len() as u64) as usize];
        let mut frame = c.input.clone();
        match next() % 4 {
            0 => {
                let at = (next() % frame.len() as u64) as usize;
                frame[at] ^= 1 << (next() % 8);
            }
            1 => frame.truncate((next() % frame.len() as u64) as usize),
            2 if frame.len() > 54 => {
                // Scribble over the TCP options/payload area and the data offset.
                let at = 46 + (next() % 8) as usize;
                frame[at] = next() as u8;
                let at = 54 + (next() % (frame.len() as u64 - 54)) as usize;
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
            assert!(n <= len + 8, "length {len} became {n}");
            let out = &frame[..n];
            let pkt = etherparse::SlicedPacket::from_ethernet(out)
                .unwrap_or_else(|e| panic!("tx frame does not parse ({e}): {}", hex(out)));
            if let Some(etherparse::NetSlice::Ipv4(ip)) = &pkt.net {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "{}", hex(out));
                assert!(14 + usize::from(h.total_len) <= n, "{}", hex(out));
            }
        }
    }
    assert!(tx > 10_000, "only {tx} frames transmitted");
}
