//! Golden packet tables for DR and TUN forwarding: `tests/golden/dr.golden` and
//! `tests/golden/tun.golden`, in the format of `tests/golden/nat.golden` (description, input
//! frame, expected verdict, expected output frame), each replayed in order through one
//! `Processor` of the DR or TUN lab (`tests/fixtures/routed_lab.rs`).
//!
//! Expected frames are built independently of xvs with etherparse (every header and checksum
//! from field values). The runner gives each frame 64 bytes of room to grow into, as AF_XDP
//! frames have (TUN's outer header needs 20). `XVS_BLESS=1` rewrites the files from the builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};
use xvs::datapath::snapshot::Forwarding;
use xvs::datapath::DropReason;

#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/routed_lab.rs"]
mod routed_lab;

use golden::{case, Case};

use routed_lab::*;

#[derive(Clone, Copy)]
enum L4 {
    Tcp(&'static str),
    Udp,
}

#[derive(Clone, Copy)]
struct Pkt {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    tos: u8,
    df: bool,
    sport: u16,
    dport: u16,
    l4: L4,
    payload: &'static [u8],
}

impl Pkt {
    /// From the client, through the router, to the load balancer's lan0.
    fn tcp(sport: u16, dport: u16, flags: &'static str) -> Pkt {
        Pkt {
            src_mac: ROUTER_MAC,
            dst_mac: LAN_MAC,
            src: CLIENT,
            dst: VIP,
            ttl: 63,
            tos: 0,
            df: true,
            sport,
            dport,
            l4: L4::Tcp(flags),
            payload: b"",
        }
    }

    fn udp(sport: u16, payload: &'static [u8]) -> Pkt {
        Pkt {
            l4: L4::Udp,
            dport: 5353,
            payload,
            df: false,
            ..Pkt::tcp(sport, 5353, "")
        }
    }

    fn ip_header(&self, proto: IpNumber, payload_len: usize) -> Ipv4Header {
        let mut ip =
            Ipv4Header::new(payload_len as u16, self.ttl, proto, self.src, self.dst).unwrap();
        ip.identification = 0x1234;
        ip.dont_fragment = self.df;
        ip.dscp = etherparse::IpDscp::try_new(self.tos >> 2).unwrap();
        ip.ecn = etherparse::IpEcn::try_new(self.tos & 3).unwrap();
        ip
    }

    /// The Ethernet frame.
    fn build(&self) -> Vec<u8> {
        let mut out = self.eth_header();
        out.extend_from_slice(&self.ip_packet());
        out
    }

    fn eth_header(&self) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&self.dst_mac);
        e.extend_from_slice(&self.src_mac);
        e.extend_from_slice(&[0x08, 0x00]);
        e
    }

    /// The IP packet (no Ethernet header).
    fn ip_packet(&self) -> Vec<u8> {
        let ip = IpHeaders::Ipv4(self.ip_header(IpNumber::TCP, 0), Default::default());
        let step = PacketBuilder::ethernet2(self.src_mac, self.dst_mac).ip(ip);
        let mut out = Vec::new();
        match self.l4 {
            L4::Tcp(flags) => {
                let mut t = step.tcp(self.sport, self.dport, 1000, 64240);
                for f in flags.chars() {
                    t = match f {
                        'S' => t.syn(),
                        'A' => t.ack(1),
                        'F' => t.fin(),
                        'P' => t.psh(),
                        _ => panic!("flag {f}"),
                    };
                }
                t.write(&mut out, self.payload).unwrap();
            }
            L4::Udp => step
                .udp(self.sport, self.dport)
                .write(&mut out, self.payload)
                .unwrap(),
        }
        out.split_off(14)
    }
}

/// DR: the same frame with new MACs only.
fn dr_out(p: Pkt, real_mac: [u8; 6]) -> Vec<u8> {
    Pkt {
        src_mac: LAN_MAC,
        dst_mac: real_mac,
        ..p
    }
    .build()
}

/// TUN: `p`'s IP packet inside an outer IPv4 header from the LB to `real`, sent to the router.
fn tun_out(p: Pkt, real: [u8; 4], id: u16) -> Vec<u8> {
    let inner = p.ip_packet();
    let mut outer = Ipv4Header::new(0, p.ttl, IpNumber::IPV4, LB, real).unwrap();
    outer.identification = id;
    outer.dont_fragment = p.df;
    outer.dscp = etherparse::IpDscp::try_new(p.tos >> 2).unwrap();
    outer.ecn = etherparse::IpEcn::try_new(p.tos & 3).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, ROUTER_MAC)
        .ip(IpHeaders::Ipv4(outer, Default::default()))
        .write(&mut out, IpNumber::IPV4, &inner)
        .unwrap();
    out
}

/// Wraps the IP packet of `frame` (Ethernet header first) in an outer IPv4 header from the LB
/// to `real` with TOS, TTL and DF read from the inner header, sent to the router.
fn tun_wrap(frame: &[u8], real: [u8; 4], id: u16) -> Vec<u8> {
    let inner = &frame[14..];
    let mut outer = Ipv4Header::new(0, inner[8], IpNumber::IPV4, LB, real).unwrap();
    outer.identification = id;
    outer.dont_fragment = inner[6] & 0x40 != 0;
    outer.dscp = etherparse::IpDscp::try_new(inner[1] >> 2).unwrap();
    outer.ecn = etherparse::IpEcn::try_new(inner[1] & 3).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, ROUTER_MAC)
        .ip(IpHeaders::Ipv4(outer, Default::default()))
        .write(&mut out, IpNumber::IPV4, inner)
        .unwrap();
    out
}

/// An ICMP "fragmentation needed" (MTU 1400) from a router on the client's path (198.18.0.1)
/// to the VIP, about the reply `reply` (VIP:80 -> client) a real server sent.
fn error_about_reply(reply: Pkt) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, LAN_MAC)
        .ipv4([198, 18, 0, 1], VIP, 63)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut out, &reply.ip_packet())
        .unwrap();
    out
}

/// A reply of connection client:`cport` -> VIP:80 as the real server sent it.
fn reply_of(cport: u16) -> Pkt {
    Pkt {
        src: VIP,
        dst: CLIENT,
        payload: b"HTTP/1.0 200 OK\r\n\r\n",
        ..Pkt::tcp(80, cport, "PA")
    }
}

/// ICMP "fragmentation needed" about `p` (quoting its IP header and 8 bytes), from the VIP to
/// the client, sent to the router.
fn frag_needed(p: Pkt, mtu: u16, id: u16) -> Vec<u8> {
    let inner = p.ip_packet();
    let quote = &inner[..28];
    let mut ip = Ipv4Header::new(0, 64, IpNumber::ICMP, VIP, CLIENT).unwrap();
    ip.identification = id;
    ip.dont_fragment = false;
    ip.dscp = etherparse::IpDscp::try_new(0xc0 >> 2).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, ROUTER_MAC)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
        ))
        .write(&mut out, quote)
        .unwrap();
    out
}

/// `frame` with new MAC addresses.
fn with_macs(frame: &[u8], src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

/// Splits the IPv4 datagram in `frame` into two fragments, the first carrying `at` bytes of its
/// payload (a multiple of 8), with identification `id`; IP checksums recomputed here.
fn fragments(frame: &[u8], at: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    let (eth, ip) = frame.split_at(14);
    let (header, payload) = ip.split_at(20);
    let part = |bytes: &[u8], offset: usize, more: bool| {
        let mut h = header.to_vec();
        h[2..4].copy_from_slice(&((20 + bytes.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let mut sum: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut f = eth.to_vec();
        f.extend(h);
        f.extend_from_slice(bytes);
        f
    };
    (
        part(&payload[..at], 0, true),
        part(&payload[at..], at, false),
    )
}

const BIG: &[u8] = &[0x5a; 1460];
const FITS: &[u8] = &[0x5a; 1440];
const BIG_UDP: &[u8] = &[0x5a; 1472];

fn dr_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let syn = Pkt::tcp(40000, 80, "S");
    v.push(case(
        "TCP SYN to VIP:80, rr picks r1: only the MACs change (src lan0, dst r1); IP and TCP untouched, TTL 63 kept",
        syn.build(),
        "tx 0",
        Some(dr_out(syn, R1_MAC)),
    ));
    let data = Pkt {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..Pkt::tcp(40000, 80, "PA")
    };
    v.push(case(
        "TCP data on the flow follows its connection to r1",
        data.build(),
        "tx 0",
        Some(dr_out(data, R1_MAC)),
    ));
    let syn2 = Pkt::tcp(40001, 80, "S");
    v.push(case(
        "second TCP SYN: rr picks r2",
        syn2.build(),
        "tx 0",
        Some(dr_out(syn2, R2_MAC)),
    ));
    let ttl1 = Pkt {
        ttl: 1,
        ..Pkt::tcp(40002, 80, "S")
    };
    v.push(case(
        "TCP SYN with TTL 1: forwarded with TTL 1 (DR does not route the IP packet, as IPVS)",
        ttl1.build(),
        "tx 0",
        Some(dr_out(ttl1, R1_MAC)),
    ));
    let udp = Pkt::udp(50000, b"query-1");
    v.push(case(
        "UDP to VIP:5353, rr picks r1: MACs only",
        udp.build(),
        "tx 0",
        Some(dr_out(udp, R1_MAC)),
    ));
    let big = Pkt {
        payload: BIG,
        ..Pkt::tcp(40000, 80, "PA")
    };
    v.push(case(
        "a full 1500-byte segment needs no room: DR never changes the length",
        big.build(),
        "tx 0",
        Some(dr_out(big, R1_MAC)),
    ));
    let reply = Pkt {
        src_mac: R1_MAC,
        dst_mac: LAN_MAC,
        src: VIP,
        dst: CLIENT,
        sport: 80,
        dport: 40000,
        ..Pkt::tcp(80, 40000, "SA")
    };
    v.push(case(
        "a DR reply (VIP:80 -> client) that reaches the box anyway is not tracked: pass",
        reply.build(),
        "pass",
        None,
    ));
    // A fragmented UDP datagram: rr picks r2 for it; the later fragment follows by MAC.
    let dgram = Pkt::udp(50002, &[0x61; 100]).build();
    let (first, later) = fragments(&dgram, 48, 0x1234);
    v.push(case(
        "first fragment of a UDP datagram to VIP:5353 (rr picks r2): MACs only",
        first.clone(),
        "tx 0",
        Some(with_macs(&first, LAN_MAC, R2_MAC)),
    ));
    v.push(case(
        "its later fragment (no ports) follows the first one to r2, MACs only, TTL kept",
        later.clone(),
        "tx 0",
        Some(with_macs(&later, LAN_MAC, R2_MAC)),
    ));
    let err = error_about_reply(reply_of(40000));
    v.push(case(
        "fragmentation needed from a router about a reply of client:40000 (VIP:80 -> client): on to r1 unchanged, by MAC",
        err.clone(),
        "tx 0",
        Some(with_macs(&err, LAN_MAC, R1_MAC)),
    ));
    v.push(case(
        "the same error about a reply of no connection: drop (icmp_untracked)",
        error_about_reply(reply_of(40999)),
        "drop icmp_untracked",
        None,
    ));
    v.push(case(
        "SYN to a service whose real server is behind the router: drop (dr_not_on_link; the router would send it back)",
        Pkt::tcp(40000, 8080, "S").build(),
        "drop dr_not_on_link",
        None,
    ));
    let stray = Pkt::tcp(40100, 80, "A");
    v.push(case(
        "ACK with no connection: drop (no_connection)",
        stray.build(),
        "drop no_connection",
        None,
    ));
    v
}

fn tun_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let syn = Pkt::tcp(40000, 80, "S");
    v.push(case(
        "TCP SYN to VIP:80, rr picks r1: outer IPv4 198.18.1.1 -> 198.18.4.11, proto 4, TTL 63 and DF copied from the inner, id 1; sent to the router",
        syn.build(),
        "tx 0",
        Some(tun_out(syn, TUN_R1, 1)),
    ));
    let data = Pkt {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        tos: 0x28,
        ..Pkt::tcp(40000, 80, "PA")
    };
    v.push(case(
        "TCP data on the flow (TOS 0x28): to r1 again, outer TOS copied, id 2",
        data.build(),
        "tx 0",
        Some(tun_out(data, TUN_R1, 2)),
    ));
    let syn2 = Pkt::tcp(40001, 80, "S");
    v.push(case(
        "second TCP SYN: rr picks r2, id 3",
        syn2.build(),
        "tx 0",
        Some(tun_out(syn2, TUN_R2, 3)),
    ));
    let udp = Pkt::udp(50000, b"query-1");
    v.push(case(
        "UDP without DF to VIP:5353: outer DF clear, id 4",
        udp.build(),
        "tx 0",
        Some(tun_out(udp, TUN_R1, 4)),
    ));
    let fits = Pkt {
        payload: FITS,
        ..Pkt::tcp(40000, 80, "PA")
    };
    v.push(case(
        "1480-byte packet: 1500 bytes encapsulated, exactly the MTU: forwarded, id 5",
        fits.build(),
        "tx 0",
        Some(tun_out(fits, TUN_R1, 5)),
    ));
    let big = Pkt {
        payload: BIG,
        ..Pkt::tcp(40000, 80, "PA")
    };
    v.push(case(
        "1500-byte packet with DF: too big for the tunnel: ICMP fragmentation needed (3/4, MTU 1480) from the VIP to the client, id 6",
        big.build(),
        "tx 0",
        Some(frag_needed(big, MTU - 20, 6)),
    ));
    let big_udp = Pkt {
        payload: BIG_UDP,
        ..Pkt::udp(50001, b"")
    };
    v.push(case(
        "1500-byte UDP datagram without DF: too big, dropped (tunnel_mtu; xvs does not fragment)",
        big_udp.build(),
        "drop tunnel_mtu",
        None,
    ));
    let far = Pkt::tcp(40000, 8080, "S");
    v.push(case(
        "SYN to a service whose real server is behind the router: tunnelled to it through the router, id 7",
        far.build(),
        "tx 0",
        Some(tun_out(far, FAR, 7)),
    ));
    let err = error_about_reply(reply_of(40000));
    v.push(case(
        "fragmentation needed from a router about a reply of client:40000: on to r1 unchanged inside the tunnel, id 8",
        err.clone(),
        "tx 0",
        Some(tun_wrap(&err, TUN_R1, 8)),
    ));
    let too_big = tunnel_frag_needed(&tun_out(syn, TUN_R1, 1));
    v.push(case(
        "fragmentation needed (MTU 1400) from a router inside the tunnel about the SYN's encapsulated packet: fragmentation needed (MTU 1380) from the VIP to the client about its SYN, id 9",
        too_big,
        "tx 0",
        Some(frag_needed(syn, 1380, 9)),
    ));
    v.push(case(
        "the same error quoting a tunnel to a server that is not the connection's: drop (icmp_untracked)",
        tunnel_frag_needed(&tun_out(syn, TUN_R2, 1)),
        "drop icmp_untracked",
        None,
    ));
    v
}

/// A "fragmentation needed" (MTU 1400) from the router (198.18.1.254) to the LB about the
/// encapsulated `frame` it could not forward.
fn tunnel_frag_needed(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, LAN_MAC)
        .ipv4([198, 18, 1, 254], LB, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut out, &frame[14..])
        .unwrap();
    out
}

fn header(title: &str) -> String {
    format!(
        "# Golden {title} cases, replayed in order through one Processor (see tests/golden_dr_tun.rs).\n\
         # Lab: client 198.18.0.2 behind the router 198.18.1.254, lb lan0 198.18.1.1 (port 0, MTU 1500),\n\
         # VIP 198.18.2.100 (tcp/80 rr, udp/5353 rr); see tests/fixtures/routed_lab.rs.\n"
    )
}

fn file_matches_builder(name: &str, title: &str, cases: &[Case]) {
    golden::file_matches_builder(name, &header(title), cases);
}

/// Replays `name` through a fresh processor for `forwarding`; returns the processor's
/// counters' drops of `tunnel_mtu`.
fn replay(name: &str, forwarding: Forwarding, min_cases: usize) -> u64 {
    let cases = golden::load(name, min_cases);
    let mut p = processor(forwarding);
    let failures = golden::replay(&mut p, &cases, 64);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    p.counters.drops(DropReason::TunnelMtu)
}

#[test]
fn dr_golden_file_matches_its_builder() {
    file_matches_builder("dr.golden", "DR", &dr_cases());
}

#[test]
fn tun_golden_file_matches_its_builder() {
    file_matches_builder("tun.golden", "TUN", &tun_cases());
}

#[test]
fn golden_dr_table() {
    replay("dr.golden", Forwarding::Dr, 13);
}

#[test]
fn golden_tun_table() {
    // The frag-needed answer (a Tx verdict) counts its packet as a tunnel_mtu drop itself; the
    // drop without DF is a Drop verdict, which the worker loop counts.
    assert_eq!(replay("tun.golden", Forwarding::Tun, 11), 1);
}

#[test]
fn dr_output_differs_from_input_in_the_mac_addresses_only() {
    for c in golden::load("dr.golden", 13) {
        let Some(o) = c.output else { continue };
        assert_eq!(o.len(), c.input.len(), "{}", c.what);
        assert_eq!(
            o[12..],
            c.input[12..],
            "{}: bytes after the MACs changed",
            c.what
        );
        assert_eq!(o[6..12], LAN_MAC, "{}", c.what);
    }
}

#[test]
fn tun_outputs_verify_with_an_independent_parser() {
    for c in golden::load("tun.golden", 11) {
        let Some(o) = c.output else { continue };
        let outer = etherparse::Ipv4HeaderSlice::from_slice(&o[14..]).unwrap();
        let h = outer.to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "{}", c.what);
        if h.protocol == IpNumber::IPV4 {
            // The inner packet is the input's IP packet, byte for byte.
            assert_eq!(&o[34..], &c.input[14..], "{}", c.what);
            assert_eq!(h.source, LB, "{}", c.what);
            assert!(usize::from(h.total_len) <= usize::from(MTU), "{}", c.what);
        } else {
            assert_eq!(h.protocol, IpNumber::ICMP, "{}", c.what);
            let icmp = etherparse::Icmpv4Slice::from_slice(&o[34..]).unwrap();
            assert_eq!(
                icmp.header().checksum,
                icmp.header().icmp_type.calc_checksum(icmp.payload()),
                "{}",
                c.what
            );
        }
    }
}
