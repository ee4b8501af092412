//! Golden packet table for ICMPv6 errors about NAT6 connections and for IPv6 fragments
//! (`tests/golden/icmp6.golden`, the shared format and replay of `tests/fixtures/golden.rs`),
//! replayed in order through one processor of the IPv6 lab (`tests/fixtures/nat6_lab.rs`).
//!
//! ICMPv6 errors (destination unreachable, packet too big, time exceeded) from the server side
//! go to the client from the VIP and errors from the client side go to the real server, each
//! with the quoted packet rewritten as the connection's packets are (TCP and UDP, a quote behind
//! extension headers, a quote without the transport checksum); an error about a DR6 reply goes
//! to the real server as it is; untracked quotes are dropped or passed as over IPv4, a quote
//! cut short is `truncated_icmpv6`. Fragments: first and later fragments of a NAT6 UDP datagram
//! in both directions, a later fragment without its first (`ipv6_fragment`), unrelated
//! fragments passed.
//!
//! Expected frames are built independently with etherparse: the quote of an expected error is
//! the translated packet built from field values (all checksums from scratch), cut to the
//! quoted length, and the ICMPv6 checksum is etherparse's over the pseudo-header, so a wrong
//! incremental update of the quoted checksum or a shortcut in the ICMPv6 one shows as a
//! mismatch. `XVS_BLESS=1` rewrites the file from the builder.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use etherparse::icmpv6::{DestUnreachableCode, TimeExceededCode};
use etherparse::{
    Icmpv6Type, IpFragOffset, IpNumber, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header,
    PacketBuilder,
};

#[path = "fixtures/frame6.rs"]
mod frame6;
#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/nat6_lab.rs"]
mod nat6_lab;

use frame6::{Ext, Pkt6, L4, PADN_16, PADN_8};
use golden::{case, Case};
use nat6_lab::*;

type Macs = ([u8; 6], [u8; 6]);
const FROM_CLIENT: Macs = (CLIENT_MAC, WAN_MAC);
const FROM_R1: Macs = (R1_MAC, LAN_MAC);
const FROM_R2: Macs = (R2_MAC, LAN_MAC);
const FROM_ROUTER: Macs = (ROUTER_MAC, LAN_MAC);
const TO_CLIENT: Macs = (WAN_MAC, CLIENT_MAC);
const TO_R1: Macs = (LAN_MAC, R1_MAC);
const TO_R2: Macs = (LAN_MAC, R2_MAC);
/// The load balancer's own address on wan0 (no VIP).
const LB: [u8; 16] = addr([0x2001, 2, 0, 0, 0, 0, 0, 1]);

type End = ([u8; 16], u16);

/// An IPv6 TCP (`Some(flags)`) or UDP packet (no Ethernet header), built by etherparse, with
/// hop-by-hop and destination options before the transport header when `ext`.
fn ip6(
    src: End,
    dst: End,
    hop: u8,
    tcp: Option<&'static str>,
    ext: bool,
    payload: &'static [u8],
) -> Vec<u8> {
    Pkt6 {
        hop,
        ext: if ext {
            Ext::Options(PADN_8, PADN_16)
        } else {
            Ext::None
        },
        payload,
        ..Pkt6::new(([0; 6], [0; 6]), src, dst, tcp.map_or(L4::Udp, L4::Tcp))
    }
    .packet()
}

/// An Ethernet frame from `macs.0` to `macs.1` carrying the IPv6 packet `ip`.
fn frame(macs: Macs, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&macs.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(ip);
    f
}

/// An Ethernet frame carrying an ICMPv6 message of `t` from `src` to `dst` with `quote` as its
/// payload (checksum over the pseudo-header, by etherparse).
fn icmp6(
    macs: Macs,
    src: [u8; 16],
    dst: [u8; 16],
    hop: u8,
    t: Icmpv6Type,
    quote: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src, dst, hop)
        .icmpv6(t)
        .write(&mut out, quote)
        .unwrap();
    out
}

fn unreachable(code: DestUnreachableCode) -> Icmpv6Type {
    Icmpv6Type::DestinationUnreachable(code)
}

fn too_big(mtu: u32) -> Icmpv6Type {
    Icmpv6Type::PacketTooBig { mtu }
}

fn time_exceeded() -> Icmpv6Type {
    Icmpv6Type::TimeExceeded(TimeExceededCode::HopLimitExceeded)
}

/// The three error types, each with who sends it from the server side and a name.
fn types() -> [(Icmpv6Type, &'static str); 3] {
    [
        (unreachable(DestUnreachableCode::Port), "port unreachable"),
        (too_big(1280), "packet too big (MTU 1280, kept)"),
        (time_exceeded(), "time exceeded"),
    ]
}

/// A NAT6 flow of the lab and its packets on each side.
struct Flow {
    name: &'static str,
    client: End,
    vip: End,
    real: End,
    tcp: Option<&'static str>,
    reply: Option<&'static str>,
    ext: bool,
}

impl Flow {
    /// The client's packet as it arrives (hop `hop`).
    fn in_(&self, hop: u8) -> Vec<u8> {
        ip6(self.client, self.vip, hop, self.tcp, self.ext, b"query-1")
    }

    /// The client's packet as the real server gets it (hop 63).
    fn sent(&self) -> Vec<u8> {
        ip6(self.client, self.real, 63, self.tcp, self.ext, b"query-1")
    }

    /// A reply as the real server sends it / as the client gets it (hop 63 either way).
    fn reply_server(&self) -> Vec<u8> {
        ip6(self.real, self.client, 63, self.reply, self.ext, b"answer")
    }

    fn reply_client(&self) -> Vec<u8> {
        ip6(self.vip, self.client, 63, self.reply, self.ext, b"answer")
    }

    /// The flow's first packet: NATed to the real server.
    fn start(&self, v: &mut Vec<Case>, what: &str) {
        v.push(case(
            &format!("{}: {what}", self.name),
            frame(FROM_CLIENT, &self.in_(64)),
            "tx 1",
            Some(frame(TO_R1, &self.sent())),
        ));
    }

    /// Each error type from the server side (to the client from the VIP) and from the client
    /// side (to the real server), the whole packet quoted.
    fn errors(&self, v: &mut Vec<Case>) {
        for (t, name) in types() {
            let from = match t {
                Icmpv6Type::DestinationUnreachable(_) => (FROM_R1, R1),
                _ => (FROM_ROUTER, ROUTER),
            };
            v.push(case(
                &format!(
                    "{}: {name} from {} about the packet r1 got: to the client from the VIP \
                     (hop limit 63), quote client -> VIP with the transport checksum fixed",
                    self.name,
                    if from.1 == R1 { "r1" } else { "a LAN router" }
                ),
                icmp6(from.0, from.1, CLIENT, 64, t, &self.sent()),
                "tx 0",
                Some(icmp6(TO_CLIENT, VIP, CLIENT, 63, t, &self.in_(63))),
            ));
            v.push(case(
                &format!(
                    "{}: {name} from the client about a reply (VIP -> client): to r1, quote \
                     r1 -> client with the transport checksum fixed",
                    self.name
                ),
                icmp6(FROM_CLIENT, CLIENT, VIP, 64, t, &self.reply_client()),
                "tx 1",
                Some(icmp6(TO_R1, CLIENT, R1, 63, t, &self.reply_server())),
            ));
        }
    }
}

const UDP_FLOW: Flow = Flow {
    name: "UDP [client]:50000 -> [VIP]:53",
    client: (CLIENT, 50000),
    vip: (VIP, 53),
    real: (R1, 5353),
    tcp: None,
    reply: None,
    ext: false,
};

const TCP_FLOW: Flow = Flow {
    name: "TCP [client]:40000 -> [VIP]:80",
    client: (CLIENT, 40000),
    vip: (VIP, 80),
    real: (R1, 80),
    tcp: Some("S"),
    reply: Some("SA"),
    ext: false,
};

const EXT_FLOW: Flow = Flow {
    name: "TCP [client]:40020 -> [VIP]:80 behind hop-by-hop and destination options",
    client: (CLIENT, 40020),
    vip: (VIP, 80),
    real: (R1, 80),
    tcp: Some("S"),
    reply: Some("SA"),
    ext: true,
};

fn translated(v: &mut Vec<Case>) {
    UDP_FLOW.start(
        v,
        "rr picks r1, destination [r1]:5353; the flow the next errors are about",
    );
    UDP_FLOW.errors(v);
    TCP_FLOW.start(v, "SYN, wrr picks r1");
    TCP_FLOW.errors(v);
    EXT_FLOW.start(v, "SYN, wrr picks r1 again");
    let t = time_exceeded();
    v.push(case(
        "time exceeded from a LAN router quoting the SYN behind its extension headers: to the \
         client, the quoted TCP header found behind them and translated, the headers kept",
        icmp6(FROM_ROUTER, ROUTER, CLIENT, 64, t, &EXT_FLOW.sent()),
        "tx 0",
        Some(icmp6(TO_CLIENT, VIP, CLIENT, 63, t, &EXT_FLOW.in_(63))),
    ));
    let t = too_big(1400);
    v.push(case(
        "packet too big (MTU 1400) from the client about the SYN-ACK behind extension headers: \
         to r1, quote r1:80 -> client:40020",
        icmp6(FROM_CLIENT, CLIENT, VIP, 64, t, &EXT_FLOW.reply_client()),
        "tx 1",
        Some(icmp6(TO_R1, CLIENT, R1, 63, t, &EXT_FLOW.reply_server())),
    ));
    let t = unreachable(DestUnreachableCode::Address);
    v.push(case(
        "address unreachable from r1 quoting 48 bytes of the SYN (ports and sequence number, \
         no TCP checksum): to the client, the quote's addresses and ports translated",
        icmp6(FROM_R1, R1, CLIENT, 64, t, &TCP_FLOW.sent()[..48]),
        "tx 0",
        Some(icmp6(
            TO_CLIENT,
            VIP,
            CLIENT,
            63,
            t,
            &TCP_FLOW.in_(63)[..48],
        )),
    ));
}

fn dr6_and_untracked(v: &mut Vec<Case>) {
    let syn = ip6((CLIENT, 41000), (VIP, 81), 64, Some("S"), false, b"");
    let mut to_r1 = frame(FROM_CLIENT, &syn);
    to_r1[..12].copy_from_slice(&[R1_MAC, LAN_MAC].concat());
    v.push(case(
        "DR6: TCP SYN to [VIP]:81, rr picks r1 (MACs only)",
        frame(FROM_CLIENT, &syn),
        "tx 1",
        Some(to_r1),
    ));
    let reply = ip6((VIP, 81), (CLIENT, 41000), 64, Some("SA"), false, b"");
    let t = too_big(1280);
    v.push(case(
        "DR6: packet too big from the client about r1's reply (VIP:81 -> client): to r1 as it \
         is, by MAC (IPv4's rule: path-MTU discovery for the replies)",
        icmp6(FROM_CLIENT, CLIENT, VIP, 64, t, &reply),
        "tx 1",
        Some(icmp6(TO_R1, CLIENT, VIP, 64, t, &reply)),
    ));
    let t = unreachable(DestUnreachableCode::Port);
    let stray = ip6((CLIENT, 40999), (R1, 80), 63, Some("S"), false, b"");
    v.push(case(
        "port unreachable about a packet to r1:80 of no connection: drop (icmp_untracked, as \
         over IPv4)",
        icmp6(FROM_R1, R1, CLIENT, 64, t, &stray),
        "drop icmp_untracked",
        None,
    ));
    let stray = ip6((VIP, 80), (CLIENT, 40999), 63, Some("SA"), false, b"");
    v.push(case(
        "port unreachable from the client about a VIP:80 reply of no connection: drop \
         (icmp_untracked)",
        icmp6(FROM_CLIENT, CLIENT, VIP, 64, t, &stray),
        "drop icmp_untracked",
        None,
    ));
    let own = ip6((LB, 33000), (CLIENT, 22), 64, Some("S"), false, b"");
    v.push(case(
        "port unreachable about the box's own packet (its address to the client's ssh): no \
         flow of xvs's, the kernel's (pass)",
        icmp6(FROM_CLIENT, CLIENT, LB, 64, t, &own),
        "pass",
        None,
    ));
    let pp = Icmpv6Type::ParameterProblem(etherparse::icmpv6::ParameterProblemHeader {
        code: etherparse::icmpv6::ParameterProblemCode::ErroneousHeaderField,
        pointer: 6,
    });
    v.push(case(
        "parameter problem about a tracked flow's packet: not translated (as over IPv4), pass",
        icmp6(FROM_R1, R1, CLIENT, 64, pp, &UDP_FLOW.sent()),
        "pass",
        None,
    ));
    v.push(case(
        "port unreachable quoting 44 bytes of the UDP datagram (4 of its header, no ports of \
         both): drop (truncated_icmpv6)",
        icmp6(FROM_R1, R1, CLIENT, 64, t, &UDP_FLOW.sent()[..44]),
        "drop truncated_icmpv6",
        None,
    ));
    v.push(case(
        "time exceeded quoting 30 bytes (the quoted IPv6 header cut): drop (truncated_icmpv6)",
        icmp6(
            FROM_ROUTER,
            ROUTER,
            CLIENT,
            64,
            time_exceeded(),
            &UDP_FLOW.sent()[..30],
        ),
        "drop truncated_icmpv6",
        None,
    ));
    v.push(case(
        "port unreachable about a tracked flow arriving with hop limit 1: drop (ttl_exceeded)",
        icmp6(FROM_R1, R1, CLIENT, 1, t, &UDP_FLOW.sent()),
        "drop ttl_exceeded",
        None,
    ));
}

/// The UDP datagram `src` -> `dst` carrying `payload` (header and payload, checksum over the
/// pseudo-header by etherparse).
fn udp_datagram(src: End, dst: End, payload: &'static [u8]) -> Vec<u8> {
    ip6(src, dst, 64, None, false, payload).split_off(40)
}

/// A fragment of a datagram `src` -> `dst` (identification `id`): IPv6 header, fragment header
/// (next header UDP, offset in bytes, M), then `data`.
fn fragment(
    macs: Macs,
    (src, dst, hop): ([u8; 16], [u8; 16], u8),
    id: u32,
    (offset, more): (u16, bool),
    data: &[u8],
) -> Vec<u8> {
    let header = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
        payload_length: (8 + data.len()) as u16,
        next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
        hop_limit: hop,
        source: src,
        destination: dst,
    };
    let frag = Ipv6FragmentHeader::new(
        IpNumber::UDP,
        IpFragOffset::try_new(offset / 8).unwrap(),
        more,
        id,
    );
    let mut ip = Vec::new();
    header.write(&mut ip).unwrap();
    frag.write(&mut ip).unwrap();
    ip.extend_from_slice(data);
    frame(macs, &ip)
}

fn fragments(v: &mut Vec<Case>) {
    let payload = b"a datagram in two";
    let (client, vip, r2) = ((CLIENT, 50010), (VIP, 53), (R2, 5353));
    // Original direction: 16 bytes (UDP header and 8 of payload) then the rest at offset 16.
    let whole = udp_datagram(client, vip, payload);
    let sent = udp_datagram(client, r2, payload);
    let (id, out_id) = (0x8000_0001, 0x0000_0002);
    v.push(case(
        "first fragment (M set, 16 bytes) of a UDP datagram [client]:50010 -> [VIP]:53 \
         (identification 0x80000001): a new flow, rr picks r2; destination [r2]:5353, the UDP \
         checksum (over the whole datagram) updated",
        fragment(FROM_CLIENT, (CLIENT, VIP, 64), id, (0, true), &whole[..16]),
        "tx 1",
        Some(fragment(
            TO_R2,
            (CLIENT, R2, 63),
            id,
            (0, true),
            &sent[..16],
        )),
    ));
    v.push(case(
        "its later fragment (offset 16, the last): follows it to r2 (destination, hop limit 63; \
         the data untouched)",
        fragment(
            FROM_CLIENT,
            (CLIENT, VIP, 64),
            id,
            (16, false),
            &whole[16..],
        ),
        "tx 1",
        Some(fragment(
            TO_R2,
            (CLIENT, R2, 63),
            id,
            (16, false),
            &sent[16..],
        )),
    ));
    // Reply direction.
    let answer = b"the answer, also in two";
    let from_r2 = udp_datagram(r2, client, answer);
    let to_client = udp_datagram(vip, client, answer);
    v.push(case(
        "first fragment of r2's reply datagram (identification 2): source [VIP]:53",
        fragment(FROM_R2, (R2, CLIENT, 64), out_id, (0, true), &from_r2[..16]),
        "tx 0",
        Some(fragment(
            TO_CLIENT,
            (VIP, CLIENT, 63),
            out_id,
            (0, true),
            &to_client[..16],
        )),
    ));
    v.push(case(
        "its later fragment: source the VIP, to the client",
        fragment(
            FROM_R2,
            (R2, CLIENT, 64),
            out_id,
            (16, false),
            &from_r2[16..],
        ),
        "tx 0",
        Some(fragment(
            TO_CLIENT,
            (VIP, CLIENT, 63),
            out_id,
            (16, false),
            &to_client[16..],
        )),
    ));
    v.push(case(
        "a later fragment to the VIP whose first fragment was never seen (same addresses, \
         identification 0x80000009): drop (ipv6_fragment)",
        fragment(
            FROM_CLIENT,
            (CLIENT, VIP, 64),
            0x8000_0009,
            (16, false),
            &whole[16..],
        ),
        "drop ipv6_fragment",
        None,
    ));
    v.push(case(
        "a later fragment from r1 (a NAT real server) of no known datagram: drop (ipv6_fragment)",
        fragment(FROM_R1, (R1, CLIENT, 64), 7, (16, false), &whole[16..]),
        "drop ipv6_fragment",
        None,
    ));
    let own = udp_datagram(client, (LB, 53), payload);
    v.push(case(
        "first fragment to the box's own address (no VIP): the kernel's (pass)",
        fragment(FROM_CLIENT, (CLIENT, LB, 64), 3, (0, true), &own[..16]),
        "pass",
        None,
    ));
    v.push(case(
        "and its later fragment: pass",
        fragment(FROM_CLIENT, (CLIENT, LB, 64), 3, (16, false), &own[16..]),
        "pass",
        None,
    ));
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    translated(&mut v);
    dr6_and_untracked(&mut v);
    fragments(&mut v);
    v
}

const GOLDEN: &str = "icmp6.golden";
const HEADER: &str =
    "# Golden ICMPv6 error and IPv6 fragment cases, replayed in order through one Processor\n\
     # (see tests/golden_icmp6.rs). Lab tests/fixtures/nat6_lab.rs: client 2001:2::2, VIP\n\
     # 2001:2::100 (tcp/80 NAT wrr r1:3 r2:1; udp/53 NAT rr -> :5353; tcp/81 DR6 rr), r1\n\
     # 2001:2:1::11, r2 2001:2:1::12, LAN router 2001:2:1::fe; port 0 = wan0, port 1 = lan0.\n";

#[test]
fn icmp6_golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_icmp6_table() {
    let cases = golden::load(GOLDEN, 30);
    let mut p = processor(1024);
    // No tailroom: nothing in this table grows a frame.
    let failures = golden::replay(&mut p, &cases, 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every translated error read back by etherparse: the ICMPv6 checksum over the new
/// pseudo-header verifies, and a quote that holds its whole TCP/UDP packet has a transport
/// checksum that verifies over the quoted addresses.
#[test]
fn translated_errors_verify_with_an_independent_parser() {
    let (mut checked, mut whole) = (0, 0);
    for c in golden::load(GOLDEN, 30) {
        let Some(o) = c.output else { continue };
        let pkt = etherparse::SlicedPacket::from_ethernet(&o).unwrap();
        let Some(etherparse::TransportSlice::Icmpv6(icmp)) = pkt.transport else {
            continue;
        };
        let Some(etherparse::NetSlice::Ipv6(ip)) = &pkt.net else {
            panic!("{}: not IPv6", c.what)
        };
        let h = icmp.header();
        let (src, dst) = (ip.header().source(), ip.header().destination());
        let want = h.icmp_type.calc_checksum(src, dst, icmp.payload()).unwrap();
        assert_eq!(h.checksum, want, "{}", c.what);
        checked += 1;
        let Ok(quote) = etherparse::SlicedPacket::from_ip(icmp.payload()) else {
            continue;
        };
        let Some(etherparse::NetSlice::Ipv6(qip)) = &quote.net else {
            panic!("{}: quote not IPv6", c.what)
        };
        let qh = qip.header().to_header();
        let ok = match &quote.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv6(&qh, t.payload()).unwrap() == t.checksum()
            }
            Some(etherparse::TransportSlice::Udp(u)) => {
                u.to_header().calc_checksum_ipv6(&qh, u.payload()).unwrap() == u.checksum()
            }
            _ => continue,
        };
        assert!(ok, "{}: quoted transport checksum", c.what);
        whole += 1;
    }
    assert_eq!(checked, 16, "translated errors in the table");
    assert!(whole >= 12, "{whole} whole quotes checked");
}

/// FULLNAT6 (for the lead, once fnat6's packet path is merged this runs unchanged): the ICMPv6
/// translation reads a FULLNAT6 connection's [`Translation`] from its entry, so errors about it
/// are translated today, whatever the SYN's own rewrite is (only its verdict is checked here:
/// its bytes are fnat6's golden table's). The lab is the IPv6 lab plus a FULLNAT service
/// [VIP]:83 -> r1:80 with the pool 2001:2:1::2, ports 20000-20099 (one table shard: its first
/// connection gets [2001:2:1::2]:20000).
#[test]
fn fullnat6_errors_are_translated_from_the_entry() {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use xvs::conntrack::{LocalPool, Timeouts};
    use xvs::datapath::snapshot::Forwarding;
    use xvs::datapath::{Service, ServiceKey, Shared, Snapshot, Verdict};
    use xvs::flow::{Proto, NANOS_PER_SEC};
    use xvs::sched::{RealServer, SchedulerKind};

    const L6: [u8; 16] = addr([0x2001, 2, 1, 0, 0, 0, 0, 2]);
    let key = ServiceKey {
        vip: VIP.into(),
        port: 83,
        proto: Proto::Tcp,
    };
    let real = RealServer::new(SocketAddr::new(R1.into(), 80), 1);
    let mut fnat = Service::new(
        "fnat6",
        key,
        Forwarding::FullNat,
        SchedulerKind::Rr,
        vec![real],
    );
    fnat.local_pool = Some(0);
    let mut services = snapshot().services;
    services.push(fnat);
    let snap = Snapshot::new(2, ports(), services, Timeouts::default(), false);
    let pool = LocalPool {
        name: "pool6".into(),
        addresses: vec![L6.into()],
        first_port: 20000,
        last_port: 20099,
    };
    let shared = Shared::try_with_tables(snap, nexthops(), 64, 1000, &[pool]).unwrap();
    let mut p = xvs::datapath::Processor::new(Arc::new(shared));
    let mut run = |n: u64, input: &[u8]| {
        let now = n * NANOS_PER_SEC;
        p.begin_batch(now);
        let mut out = input.to_vec();
        let ingress = golden::ingress_of(&p, input);
        (p.process(now, ingress, &mut out), out)
    };
    let syn = ip6((CLIENT, 42000), (VIP, 83), 64, Some("S"), false, b"");
    assert_eq!(run(1, &frame(FROM_CLIENT, &syn)).0, Verdict::Tx(1));

    // From the server side: r1 to the pool address about L6:20000 -> r1:80.
    let sent = ip6((L6, 20000), (R1, 80), 63, Some("S"), false, b"");
    let client_view = ip6((CLIENT, 42000), (VIP, 83), 63, Some("S"), false, b"");
    let t = too_big(1280);
    let (v, out) = run(2, &icmp6(FROM_R1, R1, L6, 64, t, &sent));
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(
        golden::hex(&out),
        golden::hex(&icmp6(TO_CLIENT, VIP, CLIENT, 63, t, &client_view))
    );
    // From the client side, about a reply: to r1 from the local address, quote r1 -> L6.
    let reply = ip6((VIP, 83), (CLIENT, 42000), 63, Some("SA"), false, b"");
    let server_view = ip6((R1, 80), (L6, 20000), 63, Some("SA"), false, b"");
    let t = unreachable(DestUnreachableCode::Port);
    let (v, out) = run(3, &icmp6(FROM_CLIENT, CLIENT, VIP, 64, t, &reply));
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(
        golden::hex(&out),
        golden::hex(&icmp6(TO_R1, L6, R1, 63, t, &server_view))
    );
    // A pool endpoint of no connection: untracked; a pool address at a port outside the pool's
    // range (the box's own connection, here to the router's ssh: r1 is also a NAT real server,
    // whose quotes are untracked when no connection has them): the kernel's.
    let stray = ip6((L6, 20001), (R1, 80), 63, Some("S"), false, b"");
    let v = run(4, &icmp6(FROM_R1, R1, L6, 64, t, &stray)).0;
    assert_eq!(v, Verdict::Drop(xvs::datapath::DropReason::IcmpUntracked));
    let own = ip6((L6, 5000), (ROUTER, 22), 63, Some("S"), false, b"");
    let v = run(5, &icmp6(FROM_ROUTER, ROUTER, L6, 64, t, &own)).0;
    assert_eq!(v, Verdict::Pass);
}
