//! Golden packet table for TUN6 (IPv6-in-IPv6) and DR6 on one lab: `tests/golden/tun6.golden`,
//! in the format of `tests/golden/nat.golden`, replayed in order through one processor of the
//! TUN6 lab (`tests/fixtures/tun6_lab.rs`) with 64 bytes of room per frame (TUN6's outer header
//! needs 40), as AF_XDP frames have.
//!
//! Cases: TCP SYN and data, UDP, an inner packet with hop-by-hop and destination options (kept
//! inside, untouched), hop limit 1 (tunnelled as it is: TUN does not route the inner packet),
//! traffic class copied and flow label cleared in the outer header, the MTU edge (exactly 1500
//! bytes encapsulated), Packet Too Big for TCP and UDP packets too big for the tunnel, a port
//! whose MTU less 40 is below 1280 (dropped, no Packet Too Big), a port without an IPv6 address,
//! a real server behind the router, DR6 beside TUN6, a TUN service pairing families, and a
//! Packet Too Big from a router inside the tunnel (answered to the client with 40 bytes less).
//!
//! Every expected frame is built independently of xvs by etherparse from field values (the
//! ICMPv6 checksum computed from scratch). `XVS_BLESS=1` rewrites the file.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use etherparse::{Icmpv6Type, IpHeaders, IpNumber, Ipv6FlowLabel, Ipv6Header, PacketBuilder};
use xvs::datapath::DropReason;

#[path = "fixtures/frame6.rs"]
mod frame6;
#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/tun6_lab.rs"]
mod tun6_lab;

use frame6::{Ext, Pkt6, L4, PADN_16, PADN_8};
use golden::{case, Case};
use tun6_lab::*;

const GOLDEN: &str = "tun6.golden";
const HEADER: &str =
    "# TUN6 (IPv6-in-IPv6, Packet Too Big) and DR6 golden table (tests/golden_tun6.rs,\n\
# lab tests/fixtures/tun6_lab.rs). Regenerate with XVS_BLESS=1 cargo test --test golden_tun6;\n\
# review the diff.";
/// Bytes of room each frame gets to grow into.
const ROOM: usize = 64;

impl Pkt6 {
    /// A client packet, as it reaches lan0 from the router (hop limit 63).
    fn tcp(sport: u16, dport: u16, flags: &'static str) -> Pkt6 {
        Pkt6 {
            hop: 63,
            ..Pkt6::new(
                (ROUTER_MAC, LAN_MAC),
                (CLIENT, sport),
                (VIP, dport),
                L4::Tcp(flags),
            )
        }
    }

    fn udp(sport: u16, payload: &'static [u8]) -> Pkt6 {
        Pkt6 {
            l4: L4::Udp,
            payload,
            ..Pkt6::tcp(sport, 5353, "")
        }
    }
}

/// TUN6: `p`'s IPv6 packet inside an outer IPv6 header from `src` to `real` (next header 41,
/// traffic class and hop limit of the inner, flow label 0), from `macs.0` to `macs.1`.
fn tun_out_via(p: Pkt6, (src, real): ([u8; 16], [u8; 16]), macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let outer = Ipv6Header {
        traffic_class: p.traffic_class,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: 0,
        next_header: IpNumber::IPV6,
        hop_limit: p.hop,
        source: src,
        destination: real,
    };
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ip(IpHeaders::Ipv6(outer, Default::default()))
        .write(&mut out, IpNumber::IPV6, &p.packet())
        .unwrap();
    out
}

/// TUN6 from lan0 to `real` through the router.
fn tun_out(p: Pkt6, real: [u8; 16]) -> Vec<u8> {
    tun_out_via(p, (LB, real), (LAN_MAC, ROUTER_MAC))
}

/// DR6: the same frame, lan0's MAC to `real_mac`.
fn dr_out(p: Pkt6, real_mac: [u8; 6]) -> Vec<u8> {
    Pkt6 {
        src_mac: LAN_MAC,
        dst_mac: real_mac,
        ..p
    }
    .build()
}

/// A Packet Too Big (MTU `mtu`) about `p` from the VIP to the client (hop limit 64, traffic
/// class and flow label 0), quoting the first 1232 bytes of `p`'s packet, through the router.
fn packet_too_big(p: Pkt6, mtu: u32) -> Vec<u8> {
    let inner = p.packet();
    let quote = &inner[..inner.len().min(1232)];
    let mut out = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, ROUTER_MAC)
        .ipv6(VIP, CLIENT, 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut out, quote)
        .unwrap();
    out
}

/// Payloads that make a TCP packet 1460 bytes (1500 encapsulated) and 1500 bytes.
const FITS: &[u8] = &[0x5a; 1460 - 60];
const BIG: &[u8] = &[0x5a; 1500 - 60];
/// A UDP payload that makes a 1461-byte packet: one byte too many.
const BIG_UDP: &[u8] = &[0x5a; 1461 - 48];
/// A TCP payload that makes a 1261-byte packet: one byte past lan1's MTU less 40.
const SMALL_BIG: &[u8] = &[0x5a; 1261 - 60];

fn tun_basics(v: &mut Vec<Case>) {
    let syn = Pkt6::tcp(40000, 80, "S");
    v.push(case(
        "TCP SYN to [VIP6]:80, rr picks r1: the packet unchanged inside an outer IPv6 header 2001:2:0:1::1 -> 2001:2:0:4::11, next header 41, hop limit 63 copied, flow label 0; to the router",
        syn.build(),
        "tx 0",
        Some(tun_out(syn, TUN_R1)),
    ));
    let data = Pkt6 {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        traffic_class: 0xb9,
        ..Pkt6::tcp(40000, 80, "PA")
    };
    v.push(case(
        "TCP data on the flow, traffic class 0xb9 (DSCP 46, ECN 1): to r1 again, outer traffic class copied whole, flow label 0x12345 not copied",
        data.build(),
        "tx 0",
        Some(tun_out(data, TUN_R1)),
    ));
    let syn2 = Pkt6::tcp(40001, 80, "S");
    v.push(case(
        "second TCP SYN: rr picks r2",
        syn2.build(),
        "tx 0",
        Some(tun_out(syn2, TUN_R2)),
    ));
    let udp = Pkt6::udp(50000, b"query-1");
    v.push(case(
        "UDP to [VIP6]:5353, rr picks r1",
        udp.build(),
        "tx 0",
        Some(tun_out(udp, TUN_R1)),
    ));
    let ext = Pkt6 {
        ext: Ext::Options(PADN_8, PADN_16),
        ..Pkt6::tcp(40002, 80, "S")
    };
    v.push(case(
        "TCP SYN with hop-by-hop and destination options (rr picks r1): the extension headers stay inside, untouched; the outer header has none",
        ext.build(),
        "tx 0",
        Some(tun_out(ext, TUN_R1)),
    ));
    let hop1 = Pkt6 {
        hop: 1,
        ..Pkt6::tcp(40003, 80, "S")
    };
    v.push(case(
        "TCP SYN with hop limit 1 (rr picks r2): tunnelled as it is, inner and outer hop limit 1 (TUN does not route the inner packet, as for IPv4)",
        hop1.build(),
        "tx 0",
        Some(tun_out(hop1, TUN_R2)),
    ));
    let far = Pkt6::tcp(40000, 8080, "S");
    v.push(case(
        "SYN to far6 (tcp/8080), whose real server is behind the router: tunnelled to 2001:2:0:9::9 through it",
        far.build(),
        "tx 0",
        Some(tun_out(far, FAR)),
    ));
}

fn mtu(v: &mut Vec<Case>) {
    let fits = Pkt6 {
        payload: FITS,
        ..Pkt6::tcp(40000, 80, "PA")
    };
    v.push(case(
        "1460-byte packet on the flow: 1500 bytes encapsulated, exactly lan0's MTU: tunnelled to r1",
        fits.build(),
        "tx 0",
        Some(tun_out(fits, TUN_R1)),
    ));
    let big = Pkt6 {
        payload: BIG,
        ..Pkt6::tcp(40000, 80, "PA")
    };
    v.push(case(
        "1500-byte packet on the flow: too big for the tunnel: ICMPv6 Packet Too Big (2/0, MTU 1460) from the VIP to the client, hop limit 64, quoting its first 1232 bytes (1280 in all)",
        big.build(),
        "tx 0",
        Some(packet_too_big(big, 1460)),
    ));
    let big_udp = Pkt6 {
        payload: BIG_UDP,
        ..Pkt6::udp(50001, b"")
    };
    v.push(case(
        "1461-byte UDP datagram (rr picks r2): one byte too big: Packet Too Big too (IPv6 has no DF to clear)",
        big_udp.build(),
        "tx 0",
        Some(packet_too_big(big_udp, 1460)),
    ));
    let small = Pkt6::tcp(40000, 82, "S");
    v.push(case(
        "SYN to small6 (tcp/82): tunnelled on lan1 (MTU 1300) from 2001:2:0:5::1 to 2001:2:0:5::11",
        small.build(),
        "tx 1",
        Some(tun_out_via(small, (LB1, SMALL), (LAN1_MAC, SMALL_MAC))),
    ));
    let small_big = Pkt6 {
        payload: SMALL_BIG,
        ..Pkt6::tcp(40000, 82, "PA")
    };
    v.push(case(
        "1261-byte packet to small6: too big for lan1, whose MTU less 40 (1260) is below 1280: dropped without Packet Too Big (tunnel_mtu)",
        small_big.build(),
        "drop tunnel_mtu",
        None,
    ));
}

fn refusals(v: &mut Vec<Case>) {
    v.push(case(
        "SYN to nosrc6 (tcp/83), whose egress port lan2 has no IPv6 address: drop (no_tunnel_source)",
        Pkt6::tcp(40000, 83, "S").build(),
        "drop no_tunnel_source",
        None,
    ));
    v.push(case(
        "SYN to mixed (tcp/84), a TUN service with an IPv4 real server: no IPv6 in IPv4 tunnel (not_lb_traffic)",
        Pkt6::tcp(40000, 84, "S").build(),
        "drop not_lb_traffic",
        None,
    ));
    v.push(case(
        "ACK with no connection: drop (no_connection)",
        Pkt6::tcp(40100, 80, "A").build(),
        "drop no_connection",
        None,
    ));
}

fn dr6(v: &mut Vec<Case>) {
    let syn = Pkt6::tcp(40000, 81, "S");
    v.push(case(
        "DR6 beside TUN6: TCP SYN to [VIP6]:81, rr picks 2001:2:0:1::11: only the MACs change",
        syn.build(),
        "tx 0",
        Some(dr_out(syn, DR_R1_MAC)),
    ));
    let data = Pkt6 {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..Pkt6::tcp(40000, 81, "PA")
    };
    v.push(case(
        "DR6 data on the flow follows it, MACs only",
        data.build(),
        "tx 0",
        Some(dr_out(data, DR_R1_MAC)),
    ));
    let big = Pkt6 {
        payload: BIG,
        ..Pkt6::tcp(40001, 81, "S")
    };
    v.push(case(
        "a 1500-byte DR6 SYN (rr picks ::12): DR never grows the packet, no MTU rule",
        big.build(),
        "tx 0",
        Some(dr_out(big, DR_R2_MAC)),
    ));
}

/// A Packet Too Big (MTU `mtu`) from the router inside the tunnel to lan0, quoting the tunnelled
/// packet xvs sent (`tunnelled`: its outer IPv6 header and the client's packet).
fn ptb_from_router(tunnelled: &[u8], mtu: u32) -> Vec<u8> {
    let quote = &tunnelled[14..];
    let mut out = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, LAN_MAC)
        .ipv6(ROUTER, LB, 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut out, &quote[..quote.len().min(1232)])
        .unwrap();
    out
}

fn tunnel_errors(v: &mut Vec<Case>) {
    let data = Pkt6 {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..Pkt6::tcp(40000, 80, "PA")
    };
    v.push(case(
        "Packet Too Big (MTU 1400) from the router inside the tunnel, quoting a packet xvs tunnelled to r1: Packet Too Big from the VIP to the client with MTU 1360 (40 less), quoting the client's packet",
        ptb_from_router(&tun_out(data, TUN_R1), 1400),
        "tx 0",
        Some(packet_too_big(data, 1360)),
    ));
    v.push(case(
        "Packet Too Big (MTU 1300) from inside the tunnel: 1260 for the client would be below IPv6's 1280: drop (tunnel_mtu)",
        ptb_from_router(&tun_out(data, TUN_R1), 1300),
        "drop tunnel_mtu",
        None,
    ));
    v.push(case(
        "Packet Too Big quoting a tunnelled packet of the flow but addressed to r2, not the flow's real server: drop (icmp_untracked)",
        ptb_from_router(&tun_out(data, TUN_R2), 1400),
        "drop icmp_untracked",
        None,
    ));
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    tun_basics(&mut v);
    mtu(&mut v);
    refusals(&mut v);
    dr6(&mut v);
    tunnel_errors(&mut v);
    v
}

#[test]
fn golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_tun6_table() {
    let cases = golden::load(GOLDEN, 18);
    let mut p = processor();
    let failures = golden::replay(&mut p, &cases, ROOM);
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each Packet Too Big counts its packet as a tunnel_mtu drop itself; the drop without one
    // is a Drop verdict, which the worker loop counts.
    assert_eq!(p.counters.drops(DropReason::TunnelMtu), 2);
}

/// Every tunnelled output read back by etherparse: the inner packet is the input's, byte for
/// byte, behind an outer header from a port's address with the inner's hop limit, within the
/// MTU; every Packet Too Big verifies (ICMPv6 checksum over the pseudo-header) and fits in 1280.
#[test]
fn tun6_outputs_verify_with_an_independent_parser() {
    let mut seen = (0, 0);
    for c in golden::load(GOLDEN, 21) {
        let Some(o) = c.output else { continue };
        if o[14..] == c.input[14..] {
            continue; // DR6
        }
        let (outer, rest) = etherparse::Ipv6Header::from_slice(&o[14..]).unwrap();
        if outer.next_header == IpNumber::IPV6 {
            seen.0 += 1;
            assert_eq!(rest, &c.input[14..], "{}", c.what);
            assert!([LB, LB1].contains(&outer.source), "{}", c.what);
            assert_eq!(outer.hop_limit, c.input[14 + 7], "{}", c.what);
            assert_eq!(outer.flow_label, Ipv6FlowLabel::ZERO, "{}", c.what);
            assert!(o.len() - 14 <= usize::from(MTU), "{}", c.what);
        } else {
            seen.1 += 1;
            assert_eq!(outer.next_header, IpNumber::IPV6_ICMP, "{}", c.what);
            assert_eq!(
                (outer.source, outer.destination),
                (VIP, CLIENT),
                "{}",
                c.what
            );
            assert_eq!(outer.hop_limit, 64, "{}", c.what);
            // About a client packet too big for the tunnel: its first 1232 bytes (1280 in all);
            // about a tunnelled packet a router inside the tunnel reported: the client's packet
            // from that report's quote (behind its IPv6 + ICMPv6 headers and the outer header).
            let about = if c.input[14 + 6] == 58 {
                &c.input[14 + 40 + 8 + 40..]
            } else {
                &c.input[14..14 + 1232]
            };
            assert!(o.len() - 14 <= 1280, "{}", c.what);
            let icmp = etherparse::Icmpv6Slice::from_slice(rest).unwrap();
            let want = icmp
                .header()
                .icmp_type
                .calc_checksum(outer.source, outer.destination, icmp.payload())
                .unwrap();
            assert_eq!(icmp.header().checksum, want, "{}", c.what);
            assert_eq!(icmp.payload(), about, "{}", c.what);
        }
    }
    assert_eq!(seen, (9, 3));
}

/// The same SYN through a processor whose frames have no room for the outer header: dropped,
/// untouched (`process()` cannot grow a frame).
#[test]
fn no_room_for_the_outer_header_is_a_drop() {
    let mut p = processor();
    p.begin_batch(1);
    let mut frame = Pkt6::tcp(40000, 80, "S").build();
    let before = frame.clone();
    let v = p.process(1, 0, &mut frame);
    assert_eq!(v, xvs::datapath::Verdict::Drop(DropReason::NoFrameRoom));
    assert_eq!(frame, before);
}
