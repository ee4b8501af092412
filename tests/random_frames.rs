//! Property tests over random input: `process()` and the wire views never panic, and what they
//! return agrees with an independent reading of the bytes.
//!
//! `process_survives_random_frames` sends 1,000,000 frames (override with `XVS_RANDOM_FRAMES`)
//! through the NAT lab processors: pure random bytes, random bytes behind a valid IPv4 Ethernet
//! header, and mostly *structured* frames (valid Ethernet/IPv4/TCP/UDP to the VIP's services,
//! from the real servers, or between random hosts, with valid checksums) that are then mutated
//! (bit flips, random bytes, truncation, padding, a header field set to a random value, often
//! with the IPv4 checksum fixed so the deeper checks are reached). Every verdict is checked:
//! - a frame the reference reading (`tests/fixtures/oracle.rs`, shared with the fuzz targets)
//!   finds malformed is dropped with exactly that reason, one it finds not balanced is passed;
//! - `Pass` and `Drop` leave the frame untouched;
//! - a `Tx` frame still parses, its IPv4 header checksum verifies, its TTL went down by one, a
//!   transport checksum that verified still verifies and a bad one stays bad (a UDP checksum of
//!   0 stays 0), and no byte changed outside the MACs, the addresses, the ports, the TTL and the
//!   checksums;
//! - against the lab's services (`oracle::Lab`, written from the lab's addresses, not read from
//!   the processor), for a well-formed frame addressed to the port it arrives on: a new flow (a
//!   TCP SYN, a UDP datagram) to a service leaves for one of the service's real servers that may
//!   take new flows (destination address and port rewritten, that server's MAC, the egress port
//!   of its route, the client's address and port untouched), unless its TTL is spent or the
//!   processor's state explains the drop (no real server can take it, its MAC is unknown, the
//!   connection or persistence table was full when it arrived); no frame to a service is passed;
//!   another segment to a service may also find no connection; a frame to no service is passed,
//!   or is a reply translated from its service's VIP:port to the same client.
//!
//! `wire_views_survive_random_slices` runs the views' checked constructors over random slices,
//! compares each result with the documented rule, then calls every accessor and setter.
//!
//! Deterministic: the seed is printed; `XVS_RANDOM_SEED=<u64, decimal or 0x hex>` replays a run.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use xvs::conntrack::Timeouts;
use xvs::datapath::snapshot::{Forwarding, Persistence};
use xvs::datapath::wire::checksum;
use xvs::datapath::{DropReason, Processor, Service, ServiceKey, Shared, Snapshot, Verdict};
use xvs::flow::{Proto, NANOS_PER_SEC};
use xvs::sched::{RealServer, SchedulerKind};

#[path = "fixtures/nat_lab.rs"]
mod nat_lab;

#[path = "fixtures/oracle.rs"]
mod oracle;

use nat_lab::*;
use oracle::{
    be16, check_in, exercise_views, fix_ip_checksum, fold, pseudo, read, sum, Context, Lab,
    LabService, Reading, Rule, IP_AT,
};

const DEFAULT_SEED: u64 = 0x7876_735f_6675_7a7a; // "xvs_fuzz"
const DEFAULT_FRAMES: usize = 1_000_000;

/// A second VIP carrying a persistent all-port (port 0) TCP service in the extended lab.
const VIP2: [u8; 4] = [198, 18, 0, 101];
const R3_UNKNOWN: [u8; 4] = [198, 18, 1, 13];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a u64")))
}

fn seed(test: &str) -> u64 {
    let s = env_u64("XVS_RANDOM_SEED").unwrap_or(DEFAULT_SEED);
    println!("{test}: seed {s:#x} (replay with XVS_RANDOM_SEED={s:#x})");
    s
}

/// splitmix64: small, fast, and good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `pct`/100.
    fn pct(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.extend((0..n).map(|_| self.byte()));
    }
}

// ---------------------------------------------------------------------------------------------
// Processors: the strict NAT lab, and an extended lab (sloppy_tcp, persistence, one_packet, a
// port-0 service, a small table) so every branch of process() is reachable.

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn extended_lab() -> Processor {
    let lab = snapshot(1, (3, 1), true);
    let mut services = lab.services;
    let key = |vip: [u8; 4], port, proto| ServiceKey {
        vip: vip.into(),
        port,
        proto,
    };
    let reals = |port| {
        vec![
            RealServer::new(sa(R1, port), 1),
            RealServer::new(sa(R2, port), 2),
        ]
    };
    let persistence = Some(Persistence {
        timeout: 60 * NANOS_PER_SEC,
        netmask: [255, 255, 255, 0].into(),
    });
    let mut https = Service::new(
        "https",
        key(VIP, 443, Proto::Tcp),
        Forwarding::Nat,
        SchedulerKind::Wlc,
        reals(443),
    );
    https.persistence = persistence;
    let mut ntp = Service::new(
        "ntp",
        key(VIP, 123, Proto::Udp),
        Forwarding::Nat,
        SchedulerKind::Lc,
        reals(123),
    );
    ntp.one_packet = true;
    let mut all = Service::new(
        "all-ports",
        key(VIP2, 0, Proto::Tcp),
        Forwarding::Nat,
        SchedulerKind::Sed,
        reals(0),
    );
    all.persistence = persistence;
    services.extend([https, ntp, all]);
    let snap = Snapshot::new(2, lab.ports, services, Timeouts::default(), true);
    Processor::new(Arc::new(Shared::new(snap, nexthops(), 256)))
}

/// What the oracle knows of [`extended_lab`]: the NAT lab's services and the three above.
fn extended_lab_services() -> Lab {
    let mut lab = Lab::nat();
    let mut https = LabService::new(VIP, 443, true, &[(R1, 443, 1), (R2, 443, 2)]);
    https.persistent = true;
    let mut ntp = LabService::new(VIP, 123, false, &[(R1, 123, 1), (R2, 123, 2)]);
    ntp.one_packet = true;
    let mut all = LabService::new(VIP2, 0, true, &[(R1, 0, 1), (R2, 0, 2)]);
    all.persistent = true;
    lab.services.extend([https, ntp, all]);
    lab
}

/// The processor's state that may explain a refused new flow. Both labs' tables are small
/// enough to have one shard (checked), so a table below its capacity has room for a new entry.
fn context(p: &Processor, ingress: u8) -> Context {
    let shared = p.shared();
    Context {
        ingress,
        conntrack_full: shared.conntrack.len() >= shared.conntrack.capacity(),
        templates_full: shared.persistence.len() >= shared.persistence.capacity(),
    }
}

// ---------------------------------------------------------------------------------------------
// Frame generation

const CLIENT_PORTS: std::ops::Range<u16> = 40000..40016;

#[derive(Clone, Copy)]
struct Spec {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vlan: bool,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    proto: u8,
    /// The flags + fragment offset word.
    frag: u16,
    ip_option_words: usize,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    tcp_option_words: usize,
    payload: usize,
    udp_no_checksum: bool,
}

fn client_addr(r: &mut Rng) -> [u8; 4] {
    match r.below(10) {
        0..=5 => CLIENT,
        6 | 7 => [198, 18, 0, r.byte()],
        8 => [10, 0, r.byte(), r.byte()],
        _ => [r.byte(), r.byte(), r.byte(), r.byte()],
    }
}

fn client_port(r: &mut Rng) -> u16 {
    if r.pct(90) {
        CLIENT_PORTS.start + r.below(CLIENT_PORTS.len()) as u16
    } else {
        r.u16()
    }
}

fn tcp_flags(r: &mut Rng) -> u8 {
    const F: u8 = 0x01;
    const S: u8 = 0x02;
    const R: u8 = 0x04;
    const P: u8 = 0x08;
    const A: u8 = 0x10;
    match r.below(10) {
        0..=2 => S,
        3 => A,
        4 => P | A,
        5 => F | A,
        6 => R,
        7 => S | A,
        _ => r.byte(),
    }
}

/// A connection a processor forwarded towards a real server, so replies can be sent for it.
#[derive(Clone, Copy)]
struct Flow {
    tcp: bool,
    client: [u8; 4],
    client_port: u16,
    real: [u8; 4],
    real_port: u16,
}

fn spec(r: &mut Rng, flows: &[Flow]) -> Spec {
    let ttl = match r.below(20) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => r.byte(),
        _ => 64,
    };
    let frag = match r.below(20) {
        0 => 0x2000,                      // MF: first fragment
        1 => 0x2000 | (r.u16() & 0x1fff), // middle fragment
        2 => r.u16() & 0x1fff,            // last fragment
        3 => r.u16(),
        _ => 0x4000, // DF
    };
    let mut s = Spec {
        dst_mac: WAN_MAC,
        src_mac: CLIENT_MAC,
        vlan: r.pct(3),
        src: CLIENT,
        dst: VIP,
        ttl,
        proto: 6,
        frag,
        ip_option_words: if r.pct(10) { r.below(11) } else { 0 },
        sport: 40000,
        dport: 80,
        tcp_flags: tcp_flags(r),
        tcp_option_words: if r.pct(20) { r.below(11) } else { 0 },
        payload: if r.pct(50) { 0 } else { r.below(200) },
        udp_no_checksum: r.pct(20),
    };
    match r.below(10) {
        // Client → a service (or a port/protocol next to one).
        0..=4 => {
            s.src = client_addr(r);
            s.sport = client_port(r);
            s.dst = if r.pct(85) { VIP } else { VIP2 };
            let (proto, dport) = r.pick(&[
                (6, 80),
                (6, 80),
                (17, 53),
                (6, 8080),
                (6, 9090),
                (6, 443),
                (17, 123),
                (6, 22),
                (17, 80),
                (6, 0),
            ]);
            s.proto = proto;
            s.dport = if r.pct(95) { dport } else { r.u16() };
        }
        // Real server → client (a reply, tracked or not).
        5..=7 => {
            s.dst_mac = LAN_MAC;
            s.src_mac = R1_MAC;
            if !flows.is_empty() && r.pct(70) {
                let f = r.pick(flows);
                s.proto = if f.tcp { 6 } else { 17 };
                (s.src, s.sport, s.dst, s.dport) = (f.real, f.real_port, f.client, f.client_port);
                return s;
            }
            s.src = r.pick(&[R1, R1, R2, R3_UNKNOWN]);
            let (proto, sport) =
                r.pick(&[(6, 80), (6, 80), (17, 5353), (6, 443), (17, 123), (6, 22)]);
            s.proto = proto;
            s.sport = if r.pct(95) { sport } else { r.u16() };
            s.dst = client_addr(r);
            s.dport = client_port(r);
        }
        // Anything else.
        _ => {
            s.src = [r.byte(), r.byte(), r.byte(), r.byte()];
            s.dst = [r.byte(), r.byte(), r.byte(), r.byte()];
            let other = r.byte();
            s.proto = r.pick(&[6, 17, 1, 112, other]);
            s.sport = r.u16();
            s.dport = r.u16();
        }
    }
    s
}

fn build(s: &Spec, r: &mut Rng, f: &mut Vec<u8>) {
    f.clear();
    f.extend_from_slice(&s.dst_mac);
    f.extend_from_slice(&s.src_mac);
    let ip = if s.vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 42]);
        18
    } else {
        IP_AT
    };
    f.extend_from_slice(&[0x08, 0x00]);
    let ihl = 5 + s.ip_option_words;
    let l4_hdr = match s.proto {
        6 => 20 + 4 * s.tcp_option_words,
        17 => 8,
        _ => 0,
    };
    let total = ihl * 4 + l4_hdr + s.payload;
    f.push(0x40 | ihl as u8);
    f.push(0);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&r.u16().to_be_bytes());
    f.extend_from_slice(&s.frag.to_be_bytes());
    f.extend_from_slice(&[s.ttl, s.proto, 0, 0]);
    f.extend_from_slice(&s.src);
    f.extend_from_slice(&s.dst);
    for _ in 0..s.ip_option_words {
        // Mostly well-formed NOPs, sometimes random option bytes.
        if r.pct(70) {
            f.extend_from_slice(&[1, 1, 1, 1]);
        } else {
            r.fill(f, 4);
        }
    }
    let l4 = f.len();
    match s.proto {
        6 => {
            f.extend_from_slice(&s.sport.to_be_bytes());
            f.extend_from_slice(&s.dport.to_be_bytes());
            r.fill(f, 8); // seq, ack
            f.push(((5 + s.tcp_option_words) as u8) << 4);
            f.push(s.tcp_flags);
            f.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
            r.fill(f, 4 * s.tcp_option_words);
        }
        17 => {
            f.extend_from_slice(&s.sport.to_be_bytes());
            f.extend_from_slice(&s.dport.to_be_bytes());
            f.extend_from_slice(&((8 + s.payload) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        _ => {}
    }
    r.fill(f, s.payload);
    let c = !fold(sum(&f[ip..l4], 0));
    f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    let at = match s.proto {
        6 => l4 + 16,
        17 if !s.udp_no_checksum => l4 + 6,
        _ => return,
    };
    let c = !fold(sum(&f[l4..], pseudo(&f[ip..], f.len() - l4)));
    let c = if c == 0 && s.proto == 17 { 0xffff } else { c };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Fills `f` with one test frame; replies may belong to one of `flows`.
fn frame(r: &mut Rng, f: &mut Vec<u8>, flows: &[Flow]) {
    f.clear();
    match r.below(100) {
        // Pure random bytes, mostly short.
        0..=9 => {
            let n = if r.pct(80) {
                r.below(80)
            } else {
                r.below(1515)
            };
            r.fill(f, n);
        }
        // Random bytes behind a valid Ethernet header (IPv4 EtherType, sometimes tagged).
        10..=14 => {
            f.extend_from_slice(&WAN_MAC);
            f.extend_from_slice(&CLIENT_MAC);
            if r.pct(10) {
                f.extend_from_slice(&[r.pick(&[0x81, 0x88]), r.pick(&[0x00, 0xa8]), 0, 1]);
            }
            f.extend_from_slice(&[0x08, 0x00]);
            if r.pct(60) {
                f.push(0x45);
            }
            let n = r.below(80);
            r.fill(f, n);
            if r.pct(50) {
                fix_ip_checksum(f);
            }
        }
        // Structured, then mutated.
        _ => {
            let mut s = spec(r, flows);
            // Frames a hub or a flooding bridge delivers: another host's, a broadcast, a
            // multicast; and the box's own, looped back.
            match r.below(100) {
                0 => {
                    s.dst_mac = r.pick(&[
                        [0x02, 0, 0, 0, 0, 0x03],
                        [0xff; 6],
                        [0x01, 0, 0x5e, 0, 0, 1],
                    ])
                }
                1 => s.src_mac = r.pick(&[WAN_MAC, LAN_MAC]),
                _ => {}
            }
            build(&s, r, f);
            mutate(r, f);
        }
    }
}

fn mutate(r: &mut Rng, f: &mut Vec<u8>) {
    if f.is_empty() {
        return;
    }
    match r.below(100) {
        0..=44 => return,
        45..=64 => {
            for _ in 0..1 + r.below(4) {
                let i = r.below(f.len());
                f[i] ^= 1 << r.below(8);
            }
        }
        65..=74 => {
            for _ in 0..1 + r.below(3) {
                let i = r.below(f.len());
                f[i] = r.byte();
            }
        }
        75..=84 => {
            let n = r.below(f.len() + 1);
            f.truncate(n);
        }
        85..=89 => {
            let n = 1 + r.below(64);
            r.fill(f, n);
        }
        _ => {
            // One header field set to a random value (offsets of an untagged frame without
            // options; on other frames this hits some other field, which is fine too).
            let (at, width) = r.pick(&[
                (12, 2),      // EtherType
                (14, 1),      // version + IHL
                (16, 2),      // total length
                (20, 2),      // flags + fragment offset
                (22, 1),      // TTL
                (23, 1),      // protocol
                (34 + 12, 1), // TCP data offset
                (34 + 13, 1), // TCP flags
                (34 + 4, 2),  // UDP length
            ]);
            let v = r.u16().to_be_bytes();
            for (k, &byte) in v.iter().enumerate().take(width) {
                if let Some(b) = f.get_mut(at + k) {
                    *b = byte;
                }
            }
        }
    }
    if r.pct(60) {
        fix_ip_checksum(f);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn process_survives_random_frames() {
    let seed = seed("process_survives_random_frames");
    let frames = env_u64("XVS_RANDOM_FRAMES").map_or(DEFAULT_FRAMES, |n| n as usize);
    let mut r = Rng(seed);
    let mut processors = [processor(4096), extended_lab()];
    let labs = [Lab::nat(), extended_lab_services()];
    for p in &processors {
        let shared = p.shared();
        // One shard each (see `context`): below 8192 entries, and 4096 templates per shard.
        assert_eq!(shared.conntrack.shards(), 1);
        assert!(shared.persistence.capacity() <= 4096);
    }
    let mut rules: BTreeMap<(Rule, String), u64> = BTreeMap::new();
    let mut now = 1000 * NANOS_PER_SEC;
    let mut input = Vec::with_capacity(2048);
    let mut buf = Vec::with_capacity(2048);
    let mut flows: [Vec<Flow>; 2] = Default::default();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let started = std::time::Instant::now();
    const BATCH: usize = 32;
    for n in 0..frames {
        if n % BATCH == 0 {
            now += if r.below(1000) < 2 {
                r.below(600) as u64 * NANOS_PER_SEC
            } else {
                r.below(50_000_000) as u64
            };
            for p in &mut processors {
                p.begin_batch(now);
            }
        }
        let which = r.below(processors.len());
        frame(&mut r, &mut input, &flows[which]);
        buf.clear();
        buf.extend_from_slice(&input);
        // Mostly the port whose MAC the frame is addressed to, as the NIC delivers it.
        let ingress = match input.get(0..6) {
            Some(m) if m == WAN_MAC && r.pct(90) => 0,
            Some(m) if m == LAN_MAC && r.pct(90) => 1,
            _ => r.below(2) as u8,
        };
        let cx = context(&processors[which], ingress);
        let verdict = processors[which].process(now, ingress, &mut buf);
        let rule = check_in(&labs[which], &cx, &input, verdict, &buf).unwrap_or_else(|e| {
            panic!(
                "frame {n} (seed {seed:#x}, processor {which}, ingress {ingress}): {e}\n input {}\noutput {}",
                hex(&input),
                hex(&buf)
            )
        });
        if let (Verdict::Tx(1), Reading::Balanced { l4, tcp, .. }) = (verdict, read(&buf)) {
            let flow = Flow {
                tcp,
                client: buf[26..30].try_into().unwrap(),
                client_port: be16(&buf, l4) as u16,
                real: buf[30..34].try_into().unwrap(),
                real_port: be16(&buf, l4 + 2) as u16,
            };
            let flows = &mut flows[which];
            if flows.len() < 64 {
                flows.push(flow);
            } else {
                flows[r.below(64)] = flow;
            }
        }
        let key = match verdict {
            Verdict::Tx(p) => format!("tx {p}"),
            Verdict::Pass => "pass".into(),
            Verdict::Drop(r) => format!("drop {}", r.label()),
        };
        if rule != Rule::Reading {
            *rules.entry((rule, key.clone())).or_default() += 1;
        }
        *outcomes.entry(key).or_default() += 1;
    }
    println!(
        "{frames} frames in {:.2?}; outcomes: {outcomes:#?}; held to the services' rules: {rules:?}",
        started.elapsed()
    );
    if frames >= 100_000 {
        // The generator must keep reaching the deep paths, not just the Ethernet parse.
        let mut want: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| {
                !matches!(
                    r,
                    DropReason::NoRoute
                        | DropReason::PersistenceFull
                        // The NAT lab has no FULLNAT service (tests/golden_fullnat.rs has it).
                        | DropReason::LocalPortsExhausted
                        | DropReason::NotLoadBalancerTraffic
                        | DropReason::TxRingFull
                        // TUN only (the NAT lab has no TUN service): tests/golden_dr_tun.rs.
                        | DropReason::TunnelMtu
                        | DropReason::NoTunnelSource
                        | DropReason::NoFrameRoom
                        | DropReason::DrNotOnLink
                        // ICMP errors quoting lab flows: tests/golden_icmp.rs.
                        | DropReason::IcmpUntracked
                        // No VRRP in these labs: tests/process_own_frames.rs.
                        | DropReason::VrrpBackup
                        // IPv6: `process_survives_random_ipv6_frames` (and wire emit only).
                        | DropReason::TruncatedIpv6
                        | DropReason::BadIpv6PayloadLength
                        | DropReason::BadIpv6FlowLabel
                        | DropReason::Ipv6ExtHeaderTruncated
                        | DropReason::Ipv6ExtHeaderChain
                        | DropReason::Ipv6ExtHeaderOrder
                        | DropReason::Ipv6UnsupportedExtHeader
                        | DropReason::Ipv6RoutingHeader
                        | DropReason::BadIpv6Fragment
                        | DropReason::BadUdpChecksum
                        | DropReason::UdpZeroChecksumIpv6
                        | DropReason::TruncatedIcmpv6
                        | DropReason::BadIcmpv6Checksum
                        | DropReason::Ipv6Fragment
                )
            })
            .map(|r| format!("drop {}", r.label()))
            .collect();
        want.extend(["tx 0".into(), "tx 1".into(), "pass".into()]);
        let missing: Vec<&String> = want.iter().filter(|k| !outcomes.contains_key(*k)).collect();
        assert!(missing.is_empty(), "outcomes never reached: {missing:?}");
        // The services' rules must keep biting: new flows forwarded and refused, replies
        // translated, and frames to no service passed.
        for (rule, key) in [
            (Rule::NewFlow, "tx 1"),
            (Rule::NewFlow, "drop ttl_exceeded"),
            (Rule::NewFlow, "drop no_real_server"),
            (Rule::NewFlow, "drop no_neighbour"),
            (Rule::NewFlow, "drop conntrack_full"),
            (Rule::ToService, "tx 1"),
            (Rule::ToService, "drop no_connection"),
            (Rule::NoService, "tx 0"),
            (Rule::NoService, "pass"),
        ] {
            let seen = rules.get(&(rule, key.to_string())).copied().unwrap_or(0);
            assert!(seen > 0, "no {rule:?} frame had the outcome {key}");
        }
        let tx = outcomes["tx 0"] + outcomes["tx 1"];
        assert!(
            tx * 20 >= frames as u64,
            "only {tx} of {frames} frames were forwarded; the generator lost its depth"
        );
    }
}

/// xvs's checksum helpers against this file's own sum: full computation, and incremental
/// updates (RFC 1624) of a random 16-bit word or 4-byte run.
fn exercise_checksums(r: &mut Rng, data: &mut Vec<u8>) {
    data.clear();
    let n = 12 + 2 * r.below(30);
    r.fill(data, n);
    assert_eq!(checksum::fold(checksum::sum(data, 0)), fold(sum(data, 0)));
    data[10] = 0;
    data[11] = 0;
    let c = checksum::checksum(data);
    data[10..12].copy_from_slice(&c.to_be_bytes());
    assert!(checksum::verifies(data));
    let at = 2 * r.below(n / 2 - 1);
    if at == 10 || at + 2 == 10 {
        return;
    }
    let hc = u16::from_be_bytes([data[10], data[11]]);
    let hc = if r.pct(50) {
        let (old, new) = (u16::from_be_bytes([data[at], data[at + 1]]), r.u16());
        data[at..at + 2].copy_from_slice(&new.to_be_bytes());
        checksum::update_u16(hc, old, new)
    } else {
        let old: [u8; 4] = data[at..at + 4].try_into().unwrap();
        let new = [r.byte(), r.byte(), r.byte(), r.byte()];
        data[at..at + 4].copy_from_slice(&new);
        checksum::update_bytes(hc, &old, &new)
    };
    data[10..12].copy_from_slice(&hc.to_be_bytes());
    assert!(
        checksum::verifies(data),
        "incremental update broke the checksum"
    );
}

#[test]
fn wire_views_survive_random_slices() {
    let seed = seed("wire_views_survive_random_slices");
    let mut r = Rng(seed ^ 0x5749_5245); // a different stream than the process test
    let mut f = Vec::with_capacity(2048);
    let mut scratch = Vec::with_capacity(128);
    let mut work = Vec::with_capacity(2048);
    for _ in 0..1_000_000 {
        frame(&mut r, &mut f, &[]);
        // Start at a header boundary of a structured frame (or anywhere), end anywhere after.
        let start = match r.below(5) {
            0 => 0,
            1 => 14,
            2 => 34,
            3 => 14 + usize::from(f.get(14).map_or(5, |b| b & 15)) * 4,
            _ => r.below(f.len() + 1),
        }
        .min(f.len());
        let end = if r.pct(70) {
            f.len()
        } else {
            start + r.below(f.len() - start + 1)
        };
        let values = r.next();
        exercise_views(&f[start..end], &mut work, values);
        exercise_checksums(&mut r, &mut scratch);
    }
}

// ---------------------------------------------------------------------------------------------
// IPv6: frames of the IPv6 lab (`tests/fixtures/nat6_lab.rs`), structured (extension-header
// chains, TCP/UDP/ICMPv6, fragments, hop limits) then often mutated. Checked: no panic, only the
// verdicts an IPv6 frame may get, `Pass`/`Drop` leave the frame untouched, and a `Tx` frame
// keeps its length, is NAT6 (hop limit one less, a transport checksum that verified still
// verifies, read with etherparse), a later fragment's IP-level rewrite (nothing past the fixed
// header changed, hop limit one less) or DR6 (the IPv6 packet unchanged).

#[path = "fixtures/nat6_lab.rs"]
mod nat6_lab;

/// The drop reasons an IPv6 frame of the lab may get; `reached` says which the generator must
/// reach in a long run.
const IPV6_DROPS: &[(DropReason, bool)] = &[
    (DropReason::TruncatedEthernet, false),
    (DropReason::NotOurMac, false),
    (DropReason::OwnFrame, false),
    (DropReason::TruncatedIpv6, true),
    (DropReason::BadIpVersion, true),
    (DropReason::BadIpv6PayloadLength, true),
    (DropReason::Ipv6ExtHeaderTruncated, true),
    (DropReason::Ipv6ExtHeaderChain, true),
    (DropReason::Ipv6ExtHeaderOrder, true),
    (DropReason::Ipv6UnsupportedExtHeader, true),
    (DropReason::Ipv6RoutingHeader, true),
    (DropReason::BadIpv6Fragment, true),
    (DropReason::TruncatedTcp, true),
    (DropReason::BadTcpHeaderLength, true),
    (DropReason::BadTcpFlags, true),
    (DropReason::TruncatedUdp, true),
    (DropReason::BadUdpLength, true),
    (DropReason::UdpZeroChecksumIpv6, true),
    (DropReason::TruncatedIcmpv6, true),
    // ICMPv6 errors (checksum, a quote naming a service of no connection) and later
    // fragments without their first.
    (DropReason::BadIcmpv6Checksum, false),
    (DropReason::IcmpUntracked, false),
    (DropReason::Ipv6Fragment, false),
    (DropReason::TtlExceeded, true),
    (DropReason::NoConnection, true),
    (DropReason::DrNotOnLink, true),
    (DropReason::ConntrackFull, false),
    // A mutated address of a reply (no route, or on a lab network without a known MAC).
    (DropReason::NoRoute, false),
    (DropReason::NoNeighbour, false),
];

/// One extension header of the generated chain: its next-header value and its bytes after the
/// first (next header) byte.
fn ext6(r: &mut Rng, kind: u8, out: &mut Vec<u8>) {
    match kind {
        // Fragment: offset mostly 0, M random, an identification.
        44 => {
            let offset: u16 = if r.pct(70) { 0 } else { r.u16() & 0xfff8 };
            let word = offset | u16::from(r.pct(50));
            out.push(0);
            out.extend_from_slice(&word.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x12, 0x34]);
        }
        // Routing: type 4, segments left mostly 0.
        43 => out.extend_from_slice(&[0, 4, u8::from(r.pct(20)), 0, 0, 0, 0]),
        // Options headers (and the refused ones, same shape): 0 to 2 units more, Pad1s.
        _ => {
            let units = r.below(3);
            out.push(units as u8);
            out.extend(std::iter::repeat_n(0, 6 + 8 * units));
        }
    }
}

/// A structured IPv6 frame of the lab, then maybe mutated.
fn frame6(r: &mut Rng, f: &mut Vec<u8>) {
    use nat6_lab::*;
    f.clear();
    let from_client = r.pct(70);
    let (src, dst, smac, dmac) = match from_client {
        true => {
            let other = addr([0x2001, 2, 0, 0, 0, 0, 0, 1]);
            (CLIENT, r.pick(&[VIP, VIP, VIP, other]), CLIENT_MAC, WAN_MAC)
        }
        false => {
            let (real, mac) = r.pick(&[(R1, R1_MAC), (R2, R2_MAC)]);
            (real, CLIENT, mac, LAN_MAC)
        }
    };
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x86, 0xdd]);
    let any = r.byte();
    let upper = r.pick(&[6u8, 6, 6, 17, 17, 58, 41, 59, any]);
    let exts: Vec<u8> = match r.below(10) {
        0..=5 => vec![],
        _ => (0..r.below(7))
            .map(|_| r.pick(&[0u8, 0, 60, 60, 43, 44, 44, 51, 50, 135]))
            .collect(),
    };
    let hop = r.pick(&[64u8, 64, 64, 64, 1, 2, 255, 0]);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, *exts.first().unwrap_or(&upper), hop]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    for (i, _) in exts.iter().enumerate() {
        f.push(*exts.get(i + 1).unwrap_or(&upper));
        ext6(r, exts[i], f);
    }
    let l4 = f.len();
    let client_port = r.pick(&[40000u16, 40001, 40002, 40003, 50000, 50001]);
    let any = r.u16();
    let service_port = r.pick(&[80u16, 80, 53, 81, 82, 5353, any]);
    let (sport, dport) = match from_client {
        true => (client_port, service_port),
        false => (service_port, client_port),
    };
    let payload = r.below(40);
    match upper {
        6 => {
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.to_be_bytes());
            f.extend_from_slice(&[0, 0, 3, 0xe8, 0, 0, 0, 1, 0x50]);
            f.push(r.pick(&[0x02u8, 0x02, 0x10, 0x12, 0x18, 0x11, 0x04, 0, 0x03]));
            f.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        }
        17 => {
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.to_be_bytes());
            f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        58 => {
            let any = r.byte();
            let t = r.pick(&[128u8, 129, 133, 134, 135, 136, 143, 130, 1, 2, 3, 4, any]);
            f.extend_from_slice(&[t, 0, 0, 0, r.byte(), r.byte(), r.byte(), r.byte()]);
        }
        _ => {}
    }
    r.fill(f, payload);
    let plen = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let csum_at = match upper {
        6 => Some(l4 + 16),
        17 => Some(l4 + 6),
        58 => Some(l4 + 2),
        _ => None,
    };
    if let Some(at) = csum_at {
        let len = f.len() - l4;
        let s = sum(&f[22..54], 0) + len as u64 + u64::from(upper);
        let c = !fold(sum(&f[l4..], s));
        let c = if upper == 17 && r.pct(5) { 0 } else { c };
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    if r.pct(40) {
        mutate6(r, f);
    }
}

fn mutate6(r: &mut Rng, f: &mut Vec<u8>) {
    match r.below(6) {
        0 => {
            let at = r.below(f.len());
            f[at] ^= 1 << r.below(8);
        }
        1 => f.truncate(r.below(f.len() + 1)),
        2 => {
            let any = r.u16();
            let v = r.pick(&[0u16, 1, 8, 39, 40, any]).to_be_bytes();
            f[18..20].copy_from_slice(&v);
        }
        3 => {
            let at = 54 + r.below(f.len().saturating_sub(54).max(1));
            if let Some(b) = f.get_mut(at) {
                *b = r.byte();
            }
        }
        4 => {
            let n = r.below(20);
            r.fill(f, n);
        }
        _ => f[14] = r.pick(&[0x40, 0x70, 0x00, 0x6f]),
    }
}

/// The hop limit of an etherparse-read IPv6 packet and whether its TCP/UDP checksum verifies
/// (`None` when etherparse does not read the transport: a first fragment, another protocol).
fn transport_ok6(frame: &[u8]) -> Option<(Option<bool>, u8)> {
    let pkt = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv6(ip)) = &pkt.net else {
        return None;
    };
    let h = ip.header().to_header();
    let ok = match &pkt.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => t
            .to_header()
            .calc_checksum_ipv6(&h, t.payload())
            .ok()
            .map(|c| c == t.checksum()),
        Some(etherparse::TransportSlice::Udp(u)) => u
            .to_header()
            .calc_checksum_ipv6(&h, u.payload())
            .ok()
            .map(|c| c == u.checksum()),
        _ => None,
    };
    Some((ok, h.hop_limit))
}

/// The IPv6 checks of one frame (see the section's documentation).
fn check6(input: &[u8], v: Verdict, out: &[u8]) -> Result<(), String> {
    match v {
        Verdict::Pass => {}
        Verdict::Drop(r) if IPV6_DROPS.iter().any(|(d, _)| *d == r) => {}
        Verdict::Drop(r) => return Err(format!("unexpected drop {}", r.label())),
        Verdict::Tx(port) if port <= 1 => {
            if out.len() != input.len() {
                return Err("Tx changed the length".into());
            }
            if out[14..] == input[14..] {
                return Ok(()); // DR6
            }
            let hop_less = |a: &[u8], b: &[u8]| u16::from(a[14 + 7]) + 1 == u16::from(b[14 + 7]);
            if out.get(54..) == input.get(54..) && hop_less(out, input) {
                // A later fragment following its first: addresses and hop limit only.
                return Ok(());
            }
            let (Some((was, hop)), Some((is, left))) = (transport_ok6(input), transport_ok6(out))
            else {
                return Err("a NAT6 frame etherparse cannot read".into());
            };
            if was != is || left + 1 != hop {
                return Err(format!(
                    "checksum {was:?} -> {is:?}, hop limit {hop} -> {left}"
                ));
            }
            return Ok(());
        }
        Verdict::Tx(port) => return Err(format!("tx on port {port}")),
    }
    match out == input {
        true => Ok(()),
        false => Err("Pass/Drop modified the frame".into()),
    }
}

#[test]
fn process_survives_random_ipv6_frames() {
    let seed = seed("process_survives_random_ipv6_frames");
    let frames = env_u64("XVS_RANDOM_FRAMES").map_or(DEFAULT_FRAMES / 2, |n| n as usize / 2);
    let mut r = Rng(seed ^ 0x6970_7636); // "ipv6"
    let mut p = nat6_lab::processor(4096);
    let mut now = 1000 * NANOS_PER_SEC;
    let (mut input, mut buf) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..frames {
        if n % 32 == 0 {
            now += r.below(50_000_000) as u64;
            p.begin_batch(now);
        }
        frame6(&mut r, &mut input);
        buf.clear();
        buf.extend_from_slice(&input);
        let ingress = golden_ingress(&input);
        let v = p.process(now, ingress, &mut buf);
        check6(&input, v, &buf).unwrap_or_else(|e| {
            panic!(
                "IPv6 frame {n} (seed {seed:#x}): {e}\n input {}\noutput {}",
                hex(&input),
                hex(&buf)
            )
        });
        let key = match v {
            Verdict::Tx(p) => format!("tx {p}"),
            Verdict::Pass => "pass".into(),
            Verdict::Drop(r) => format!("drop {}", r.label()),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    println!("{frames} IPv6 frames; outcomes: {outcomes:#?}");
    if frames >= 50_000 {
        let mut want: Vec<String> = IPV6_DROPS
            .iter()
            .filter(|(_, reached)| *reached)
            .map(|(d, _)| format!("drop {}", d.label()))
            .collect();
        want.extend(["tx 0".into(), "tx 1".into(), "pass".into()]);
        let missing: Vec<&String> = want.iter().filter(|k| !outcomes.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "IPv6 outcomes never reached: {missing:?}"
        );
    }
}

/// The port an IPv6 lab frame arrives on: the one its destination MAC names.
fn golden_ingress(frame: &[u8]) -> u8 {
    match frame.get(0..6) {
        Some(m) if m == nat6_lab::LAN_MAC => 1,
        _ => 0,
    }
}
