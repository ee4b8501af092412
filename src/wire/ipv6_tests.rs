//! Tests of the IPv6 view, its `Repr` and the extension-header walk: golden bytes, round trips,
//! the malformed corpus (each case its exact [`Error`]) and a bounded random-bytes property test.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use super::*;
use std::net::Ipv4Addr;

use crate::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use crate::wire::ip6ip6::OuterHeader6;
use crate::wire::tcp::TcpSegment;
use crate::wire::udp::UdpDatagram;
use crate::wire::{checksum, Fragment as F};

const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

/// A plain RFC 1071 checksum, written apart from `checksum`: one word at a time, each carry
/// added back as it happens, complemented.
fn plain_checksum(bytes: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in bytes.chunks(2) {
        s += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        if s > 0xffff {
            s = (s & 0xffff) + 1;
        }
    }
    !(s as u16)
}

/// The pseudo-header of RFC 8200 §8.1 written out byte by byte.
fn pseudo_bytes(next_header: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&SRC.octets());
    p.extend_from_slice(&DST.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next_header]);
    p
}

/// The checksum of an upper-layer message over the pseudo-header, with the view code's helper.
fn l4_checksum(next_header: u8, l4: &[u8]) -> u16 {
    let s = checksum::ipv6_pseudo_header_sum(SRC.octets(), DST.octets(), next_header, 0);
    let s = checksum::sum(&(l4.len() as u32).to_be_bytes(), s);
    !checksum::fold(checksum::sum(l4, s))
}

// ---------------------------------------------------------------------------------------------
// Building packets: extension headers as (number, bytes); `packet` chains their next headers.

/// A hop-by-hop (0) or destination options (60) header of `(units + 1) * 8` bytes, Pad1 options.
fn opts(number: u8, units: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; (usize::from(units) + 1) * 8];
    h[1] = units;
    (number, h)
}

fn hbh(units: u8) -> (u8, Vec<u8>) {
    opts(HOP_BY_HOP, units)
}

fn dst_opts(units: u8) -> (u8, Vec<u8>) {
    opts(DEST_OPTS, units)
}

/// A routing header (type 4) with `left` segments left.
fn routing(left: u8) -> (u8, Vec<u8>) {
    (ROUTING, vec![0, 0, 4, left, 0, 0, 0, 0])
}

/// A fragment header: offset in bytes (a multiple of 8), M flag, identification.
fn frag(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; 8];
    h[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    (FRAGMENT, h)
}

/// An IPv6 packet SRC → DST, hop limit 64: the chain, then `l4` under protocol `upper` (the
/// last header's next header). Payload length covers chain and `l4`.
fn packet(chain: &[(u8, Vec<u8>)], upper: u8, l4: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (_, h)) in chain.iter().enumerate() {
        let mut h = h.clone();
        h[0] = chain.get(i + 1).map_or(upper, |n| n.0);
        payload.extend_from_slice(&h);
    }
    payload.extend_from_slice(l4);
    let mut b = vec![0u8; HEADER_LEN + payload.len()];
    Ipv6Repr {
        src: SRC,
        dst: DST,
        next_header: chain.first().map_or(upper, |h| h.0),
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut b)
    .unwrap();
    b[HEADER_LEN..].copy_from_slice(&payload);
    b
}

/// A TCP SYN 40000 → 80 (20 bytes, no options), checksum over the pseudo-header.
fn tcp_syn() -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    let c = l4_checksum(TCP, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram 1234 → 53 with "xvs", valid IPv6 checksum.
fn udp() -> Vec<u8> {
    let mut u = vec![0u8; 11];
    u[8..].copy_from_slice(b"xvs");
    crate::wire::UdpRepr {
        src_port: 1234,
        dst_port: 53,
        payload_len: 3,
    }
    .emit_ipv6(&mut u, SRC, DST)
    .unwrap();
    u
}

/// An ICMPv6 echo request (id 0x1234, seq 1, "xvs6"), valid checksum.
fn echo() -> Vec<u8> {
    let mut m = vec![0u8; 12];
    m[8..].copy_from_slice(b"xvs6");
    Icmpv6Repr {
        message: crate::wire::Icmpv6Message::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
        },
        payload_len: 4,
    }
    .emit(&mut m, SRC, DST)
    .unwrap();
    m
}

/// How the datapath will read a packet: the fixed header, the walk, then (for a whole packet
/// or a first fragment) the upper layer's view and, for an unfragmented UDP or ICMPv6 message,
/// its checksum.
fn read(b: &[u8]) -> Result<UpperLayer, Error> {
    let p = Ipv6Packet::new_checked(b)?;
    let u = p.upper_layer()?;
    if u.fragment.is_some_and(|f| !f.is_first()) {
        return Ok(u);
    }
    let whole = u.fragment.is_none_or(|f| f.is_atomic());
    let l4 = &b[u.offset..p.total_len()];
    match u.protocol {
        TCP => TcpSegment::new_checked(l4).map(|_| ())?,
        UDP if whole => UdpDatagram::new_checked(l4)?.verify_ipv6(p.src(), p.dst())?,
        ICMPV6 if whole => {
            Icmpv6Repr::parse(&Icmpv6Packet::new_checked(l4)?, p.src(), p.dst()).map(|_| ())?
        }
        _ => {}
    }
    Ok(u)
}

// ---------------------------------------------------------------------------------------------
// Golden bytes, checksums, round trips.

/// A TCP SYN over IPv6, every byte from RFC 8200 §3 and RFC 9293 §3.1 field layouts. The TCP
/// checksum 0xce45 was computed apart from this code (a Python one's-complement sum over the
/// pseudo-header and segment) and is checked here against a plain sum too.
#[test]
fn golden_tcp_syn_and_its_checksum() {
    let b = packet(&[], TCP, &tcp_syn());
    #[rustfmt::skip]
    let want: [u8; 60] = [
        0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
        0x00, 20, 6, 64,        // payload length 20, next header TCP, hop limit 64
        0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,    // 2001:2::1
        0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // 2001:2::100
        0x9c, 0x40, 0x00, 0x50, // ports 40000 → 80
        0x01, 0x02, 0x03, 0x04, // sequence number
        0, 0, 0, 0,             // acknowledgment number
        0x50, 0x02, 0xff, 0xff, // data offset 5, SYN, window 65535
        0xce, 0x45, 0, 0,       // checksum, urgent pointer
    ];
    assert_eq!(b, want);
    let mut plain = pseudo_bytes(TCP, 20);
    plain.extend_from_slice(&b[40..]);
    plain[40 + 16..40 + 18].fill(0);
    assert_eq!(plain_checksum(&plain), 0xce45);
    let p = Ipv6Packet::new_checked(&b[..]).unwrap();
    let u = p.upper_layer().unwrap();
    assert_eq!(
        u,
        UpperLayer {
            protocol: TCP,
            offset: 40,
            fragment: None
        }
    );
    assert_eq!(read(&b), Ok(u));
}

/// An ICMPv6 echo request over IPv6 (RFC 4443 §4.1 layout); checksum 0x40d0 computed apart from
/// this code and against a plain sum here.
#[test]
fn golden_icmpv6_echo_checksum() {
    let m = echo();
    assert_eq!(
        m,
        [128, 0, 0x40, 0xd0, 0x12, 0x34, 0x00, 0x01, b'x', b'v', b's', b'6']
    );
    let mut plain = pseudo_bytes(ICMPV6, m.len());
    plain.extend_from_slice(&m);
    plain[40 + 2..40 + 4].fill(0);
    assert_eq!(plain_checksum(&plain), 0x40d0);
    let b = packet(&[], ICMPV6, &m);
    assert_eq!(read(&b).unwrap().protocol, ICMPV6);
}

/// A UDP datagram over IPv6 (RFC 768 layout); checksum 0xce53 computed apart from this code.
#[test]
fn golden_udp_checksum_and_zero_refused() {
    let u = udp();
    assert_eq!(
        u,
        [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0xce, 0x53, b'x', b'v', b's']
    );
    let d = UdpDatagram::new_checked(&u[..]).unwrap();
    assert_eq!(d.verify_ipv6(SRC, DST), Ok(()));
    assert_eq!(d.verify_ipv6(DST, SRC), Ok(()), "the sum is symmetric");
    assert_eq!(d.verify_ipv6(SRC, SRC), Err(Error::BadUdpChecksum));
    let mut z = u.clone();
    z[6..8].fill(0);
    let d = UdpDatagram::new_checked(&z[..]).unwrap();
    assert_eq!(d.verify_ipv6(SRC, DST), Err(Error::UdpZeroChecksumIpv6));
    assert!(
        d.checksum_ok(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
        "none, over IPv4"
    );
}

/// A header with every field set, bytes from RFC 8200 §3.
#[test]
fn fields_setters_and_repr_round_trip() {
    let r = Ipv6Repr {
        src: SRC,
        dst: DST,
        next_header: UDP,
        payload_len: 11,
        hop_limit: 255,
        traffic_class: 0xb8,
        flow_label: 0xf_edcb,
    };
    let mut b = vec![0u8; 51 + 3]; // three bytes of padding after the packet
    b[40..51].copy_from_slice(&udp());
    r.emit(&mut b).unwrap();
    assert_eq!(b[..8], [0x6b, 0x8f, 0xed, 0xcb, 0, 11, 17, 255]);
    let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
    assert_eq!(Ipv6Repr::parse(&p), r);
    assert_eq!((p.version(), p.total_len(), p.payload().len()), (6, 51, 11));
    p.set_src(DST);
    p.set_dst(SRC);
    p.set_hop_limit(1);
    p.payload_mut()[0] = 0xaa;
    assert_eq!((p.src(), p.dst(), p.hop_limit()), (DST, SRC, 1));
    assert_eq!(p.payload()[0], 0xaa);
    assert_eq!((p.traffic_class(), p.flow_label()), (0xb8, 0xf_edcb));
    let mut out = vec![0u8; 54];
    let back = Ipv6Repr::parse(&p);
    out[40..].copy_from_slice(&p.into_inner()[40..]);
    back.emit(&mut out).unwrap();
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_checked(&out[..]).unwrap()),
        back
    );
    assert_eq!(back.buffer_len(), 51);
}

#[test]
fn repr_emit_refuses_what_it_cannot_write() {
    let r = Ipv6Repr {
        src: SRC,
        dst: DST,
        next_header: NO_NEXT_HEADER,
        payload_len: 8,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    assert_eq!(r.emit(&mut [0u8; 39]), Err(Error::TruncatedIpv6));
    let mut short = [0u8; 47];
    assert_eq!(r.emit(&mut short), Err(Error::Ipv6PayloadLenPastEnd));
    assert_eq!(short, [0u8; 47], "nothing written");
    let huge = Ipv6Repr {
        payload_len: 65536,
        ..r
    };
    assert_eq!(huge.emit(&mut [0u8; 48]), Err(Error::Ipv6PayloadLenPastEnd));
    let max = Ipv6Repr {
        payload_len: usize::MAX,
        ..r
    };
    assert_eq!(max.buffer_len(), usize::MAX);
    assert_eq!(max.emit(&mut [0u8; 48]), Err(Error::Ipv6PayloadLenPastEnd));
    let label = Ipv6Repr {
        flow_label: 1 << 20,
        ..r
    };
    assert_eq!(label.emit(&mut [0u8; 48]), Err(Error::Ipv6FlowLabelTooBig));
    assert!(r.emit(&mut [0u8; 48]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The walk: accepted chains.

#[test]
fn walks_a_full_chain_in_rfc_order() {
    let chain = [
        hbh(0),
        dst_opts(1),
        routing(0),
        frag(0, true, 0xdead_beef),
        dst_opts(0),
    ];
    let mut l4 = tcp_syn();
    l4.extend_from_slice(&[0; 4]); // 24 bytes of fragment data: a multiple of 8
    let b = packet(&chain, TCP, &l4);
    let u = read(&b).unwrap();
    assert_eq!((u.protocol, u.offset), (TCP, 40 + 8 + 16 + 8 + 8 + 8));
    assert_eq!(
        u.fragment,
        Some(F {
            offset: 0,
            more_fragments: true,
            identification: 0xdead_beef,
            data_len: 8 + 24,
        })
    );
    assert!(u.fragment.unwrap().is_first() && !u.fragment.unwrap().is_atomic());
}

#[test]
fn atomic_and_later_fragments() {
    let b = packet(&[frag(0, false, 7)], UDP, &udp());
    let u = read(&b).unwrap();
    assert_eq!((u.protocol, u.offset), (UDP, 48));
    assert!(u.fragment.unwrap().is_atomic());
    // A later fragment: its data looks like an overlong options header, but it is not walked.
    let mut data = vec![0xffu8; 16];
    data[0] = DEST_OPTS;
    let b = packet(&[hbh(0), frag(1448, false, 9)], DEST_OPTS, &data);
    let u = read(&b).unwrap();
    assert_eq!((u.protocol, u.offset), (DEST_OPTS, 56));
    let f = u.fragment.unwrap();
    assert!(!f.is_first() && !f.is_atomic());
    assert_eq!((f.offset, f.identification, f.data_len), (1448, 9, 16));
}

#[test]
fn bounds_are_inclusive() {
    // Five headers (the most) and 512 bytes of them (the most) are accepted.
    let five = [
        hbh(0),
        dst_opts(0),
        routing(0),
        frag(0, false, 1),
        dst_opts(0),
    ];
    assert_eq!(read(&packet(&five, UDP, &udp())).unwrap().offset, 80);
    let b = packet(&[dst_opts(31), dst_opts(31)], TCP, &tcp_syn());
    assert_eq!(read(&b).unwrap().offset, 40 + 512);
    // Upper layers that are not extension headers are reported, whatever they are.
    for proto in [NO_NEXT_HEADER, IPV6_IN_IPV6, 4, 47, 89, 112, 132, 255] {
        let b = packet(&[dst_opts(0)], proto, &[]);
        assert_eq!(read(&b).unwrap().protocol, proto);
    }
}

// ---------------------------------------------------------------------------------------------
// The malformed corpus.

/// `b` with its payload length field set to `len`.
fn with_payload_len(mut b: Vec<u8>, len: u16) -> Vec<u8> {
    b[4..6].copy_from_slice(&len.to_be_bytes());
    b
}

/// `b` cut to `n` bytes, its payload length set to match.
fn cut(b: Vec<u8>, n: usize) -> Vec<u8> {
    let b = b[..n].to_vec();
    with_payload_len(b, (n - HEADER_LEN) as u16)
}

#[rustfmt::skip] // a table: one case a line
fn corpus() -> Vec<(&'static str, Vec<u8>, Error)> {
    use Error as E;
    let syn = tcp_syn();
    let good = packet(&[], TCP, &syn);
    let mut cases = vec![
        ("empty", vec![], E::TruncatedIpv6),
        ("39 bytes", good[..39].to_vec(), E::TruncatedIpv6),
        ("version 4", { let mut b = good.clone(); b[0] = 0x45; b }, E::BadIpVersion),
        ("version 0", { let mut b = good.clone(); b[0] = 0x00; b }, E::BadIpVersion),
        ("version 7", { let mut b = good.clone(); b[0] = 0x70; b }, E::BadIpVersion),
        ("payload length one past", with_payload_len(good.clone(), 21), E::Ipv6PayloadLenPastEnd),
        ("payload length 65535", with_payload_len(good.clone(), 0xffff), E::Ipv6PayloadLenPastEnd),
        ("payload length cuts TCP", with_payload_len(good.clone(), 19), E::TruncatedTcp),
        ("payload length hides an options header", with_payload_len(packet(&[hbh(0)], TCP, &[]), 4), E::Ipv6ExtHeaderTruncated),
        ("hop-by-hop without its length byte", cut(packet(&[hbh(0)], TCP, &[]), 41), E::Ipv6ExtHeaderTruncated),
        ("hop-by-hop cut", cut(packet(&[hbh(1)], TCP, &syn), 40 + 8), E::Ipv6ExtHeaderTruncated),
        ("destination options cut", cut(packet(&[dst_opts(2)], TCP, &syn), 40 + 23), E::Ipv6ExtHeaderTruncated),
        ("routing cut", cut(packet(&[routing(0)], TCP, &syn), 44), E::Ipv6ExtHeaderTruncated),
        ("fragment cut", cut(packet(&[frag(0, false, 1)], TCP, &syn), 47), E::Ipv6ExtHeaderTruncated),
        ("first fragment with a cut chain", cut(packet(&[frag(0, true, 1), dst_opts(1)], TCP, &syn), 40 + 8 + 8), E::Ipv6ExtHeaderTruncated),
        ("hop-by-hop second", packet(&[dst_opts(0), hbh(0)], TCP, &syn), E::Ipv6HopByHopNotFirst),
        ("hop-by-hop twice", packet(&[hbh(0), hbh(0)], TCP, &syn), E::Ipv6HopByHopNotFirst),
        ("later fragment of hop-by-hop", packet(&[frag(8, false, 1)], HOP_BY_HOP, &[0; 8]), E::Ipv6HopByHopNotFirst),
        ("six destination options", packet(&[dst_opts(0), dst_opts(0), dst_opts(0), dst_opts(0), dst_opts(0), dst_opts(0)], TCP, &syn), E::Ipv6TooManyExtHeaders),
        ("six headers in RFC order", packet(&[hbh(0), dst_opts(0), routing(0), frag(0, false, 1), dst_opts(0), dst_opts(0)], TCP, &syn), E::Ipv6TooManyExtHeaders),
        ("one 2048-byte options header", packet(&[dst_opts(255)], TCP, &syn), E::Ipv6ExtHeadersTooLong),
        ("a 2048-byte header announced, cut", cut(packet(&[dst_opts(255)], TCP, &syn), 48), E::Ipv6ExtHeadersTooLong),
        ("520 bytes of headers", packet(&[dst_opts(31), dst_opts(31), dst_opts(0)], TCP, &syn), E::Ipv6ExtHeadersTooLong),
        ("ESP", packet(&[], ESP, &[0; 16]), E::Ipv6UnsupportedNextHeader),
        ("AH", packet(&[], AH, &[0; 16]), E::Ipv6UnsupportedNextHeader),
        ("AH after options", packet(&[dst_opts(0)], AH, &[0; 16]), E::Ipv6UnsupportedNextHeader),
        ("mobility header", packet(&[], 135, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("HIP header", packet(&[hbh(0)], 139, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("shim6 header", packet(&[], 140, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("experimental 253", packet(&[], 253, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("experimental 254 after a routing header", packet(&[routing(0)], 254, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("later fragment of ESP", packet(&[frag(16, false, 1)], ESP, &[0; 8]), E::Ipv6UnsupportedNextHeader),
        ("fragment twice", packet(&[frag(0, false, 1), frag(0, false, 2)], TCP, &syn), E::Ipv6RepeatedFragmentHeader),
        ("first fragment then a fragment", packet(&[frag(0, true, 1), dst_opts(0), frag(8, false, 1)], TCP, &[0; 16]), E::Ipv6RepeatedFragmentHeader),
        ("routing, one segment left", packet(&[routing(1)], TCP, &syn), E::Ipv6RoutingSegmentsLeft),
        ("routing, 255 segments left, after hop-by-hop", packet(&[hbh(0), routing(255)], TCP, &syn), E::Ipv6RoutingSegmentsLeft),
        ("first fragment of 20 bytes with more to come", packet(&[frag(0, true, 1)], TCP, &syn), E::Ipv6FragmentLenNotMultipleOf8),
        ("later fragment of 12 bytes with more to come", packet(&[frag(64, true, 1)], TCP, &[0; 12]), E::Ipv6FragmentLenNotMultipleOf8),
        ("later fragment past 65535", packet(&[frag(65528, false, 1)], TCP, &[0; 8]), E::Ipv6FragmentPastMaxLen),
        ("fragment past 65535 with headers before", packet(&[dst_opts(0), frag(65512, true, 1)], TCP, &[0; 24]), E::Ipv6FragmentPastMaxLen),
        ("TCP cut after a chain", packet(&[hbh(0), dst_opts(0)], TCP, &syn[..19]), E::TruncatedTcp),
        ("UDP length past the payload", packet(&[dst_opts(0)], UDP, &udp()[..10]), E::UdpLenPastEnd),
        ("UDP checksum 0", { let mut u = udp(); u[6..8].fill(0); packet(&[], UDP, &u) }, E::UdpZeroChecksumIpv6),
        ("UDP checksum wrong", { let mut u = udp(); u[7] ^= 1; packet(&[], UDP, &u) }, E::BadUdpChecksum),
        ("ICMPv6 cut", packet(&[], ICMPV6, &echo()[..7]), E::TruncatedIcmpv6),
        ("ICMPv6 checksum wrong", { let mut m = echo(); m[9] ^= 0x20; packet(&[dst_opts(0)], ICMPV6, &m) }, E::BadIcmpv6Checksum),
        ("ICMPv6 neighbour solicitation", { let mut m = vec![135u8, 0, 0, 0, 0, 0, 0, 0]; let c = l4_checksum(ICMPV6, &m); m[2..4].copy_from_slice(&c.to_be_bytes()); packet(&[], ICMPV6, &m) }, E::UnsupportedIcmpv6),
    ];
    // The same TCP packet with a byte of the fixed header's payload length raised: always past.
    for extra in [1u16, 8, 256] {
        cases.push((
            "payload length raised",
            with_payload_len(good.clone(), 20 + extra),
            E::Ipv6PayloadLenPastEnd,
        ));
    }
    cases
}

#[test]
fn malformed_corpus_each_with_its_error() {
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, bytes, want) in cases {
        assert_eq!(read(&bytes), Err(want), "{name}");
    }
}

#[test]
fn every_prefix_of_a_valid_packet_is_refused_cleanly() {
    let chain = [hbh(0), routing(0), frag(0, false, 3), dst_opts(1)];
    let b = packet(&chain, TCP, &tcp_syn());
    assert!(read(&b).is_ok());
    for n in 0..b.len() {
        let want = if n < HEADER_LEN {
            Error::TruncatedIpv6
        } else {
            Error::Ipv6PayloadLenPastEnd
        };
        assert_eq!(read(&b[..n]), Err(want), "{n} bytes");
        if n >= HEADER_LEN {
            // With the payload length cut too, the chain or TCP is cut instead.
            let r = read(&cut(b.clone(), n));
            let fine = [Error::Ipv6ExtHeaderTruncated, Error::TruncatedTcp];
            assert!(r.is_err_and(|e| fine.contains(&e)), "{n} bytes: {r:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The walk of a packet quoted in an ICMPv6 error.

#[test]
fn quoted_walk_is_bounded_by_the_quote_not_the_payload_length() {
    let chain = [hbh(0), dst_opts(1)];
    let b = packet(&chain, TCP, &tcp_syn());
    // Every quote that holds the chain finds TCP behind it, however much of TCP it holds; the
    // payload length (which runs past a cut quote) is not held against it.
    for n in 40 + 24..=b.len() {
        let u = quoted_upper_layer(&b[..n]).unwrap();
        assert_eq!((u.protocol, u.offset, u.fragment), (TCP, 64, None), "{n}");
    }
    for n in 0..HEADER_LEN {
        assert_eq!(
            quoted_upper_layer(&b[..n]),
            Err(Error::TruncatedIpv6),
            "{n}"
        );
    }
    for n in HEADER_LEN..40 + 24 {
        let want = Err(Error::Ipv6ExtHeaderTruncated);
        assert_eq!(quoted_upper_layer(&b[..n]), want, "{n}");
    }
    // A quote holding more than the packet (trailing bytes) is walked to the packet's end.
    let mut longer = packet(&[dst_opts(0)], UDP, &[]);
    longer.extend_from_slice(&[DEST_OPTS, 9, 9, 9, 9, 9, 9, 9]);
    assert_eq!(quoted_upper_layer(&longer).unwrap().offset, 48);
    let mut v4 = b.clone();
    v4[0] = 0x45;
    assert_eq!(quoted_upper_layer(&v4), Err(Error::BadIpVersion));
}

#[test]
fn quoted_walk_keeps_the_policy_but_not_the_fragment_lengths() {
    // A first fragment whose data the quote cut to 20 bytes (not a multiple of 8): read.
    let b = packet(&[frag(0, true, 0xbeef)], TCP, &tcp_syn());
    assert_eq!(read(&b), Err(Error::Ipv6FragmentLenNotMultipleOf8));
    let u = quoted_upper_layer(&b).unwrap();
    assert_eq!((u.protocol, u.offset), (TCP, 48));
    let f = u.fragment.unwrap();
    assert_eq!(
        (f.identification, f.is_first(), f.data_len),
        (0xbeef, true, 20)
    );
    // A later fragment: its fragment header's next header, not walked further.
    let b = packet(&[frag(1448, true, 7)], UDP, &[0; 12]);
    let u = quoted_upper_layer(&b).unwrap();
    assert!(u.fragment.is_some_and(|f| !f.is_first()));
    // The rest of the policy holds.
    let loop6: Vec<_> = (0..6).map(|_| dst_opts(0)).collect();
    let b = packet(&loop6, TCP, &tcp_syn());
    assert_eq!(quoted_upper_layer(&b), Err(Error::Ipv6TooManyExtHeaders));
    let b = packet(&[routing(1)], TCP, &tcp_syn());
    assert_eq!(quoted_upper_layer(&b), Err(Error::Ipv6RoutingSegmentsLeft));
    let b = packet(&[(AH, vec![0; 8])], TCP, &tcp_syn());
    assert_eq!(
        quoted_upper_layer(&b),
        Err(Error::Ipv6UnsupportedNextHeader)
    );
}

// ---------------------------------------------------------------------------------------------
// Random bytes: never a panic, and what is accepted keeps the documented bounds.

/// splitmix64, as the crate's random-frames test drives its generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A random, mostly plausible packet: a chain of random headers (recognised or not, random
/// lengths), a random upper layer, then often a mutation (a byte, the payload length, a cut).
fn random_packet(r: &mut Rng) -> Vec<u8> {
    if r.below(4) == 0 {
        return (0..r.below(120)).map(|_| r.byte()).collect();
    }
    let mut chain = Vec::new();
    for _ in 0..r.below(8) {
        chain.push(match r.below(7) {
            0 => hbh(r.below(4) as u8),
            1 => dst_opts(if r.below(8) == 0 {
                r.byte()
            } else {
                r.below(4) as u8
            }),
            2 => routing(if r.below(2) == 0 { 0 } else { r.byte() }),
            3 => frag((r.next() as u16) & 0xfff8, r.below(2) == 0, r.next() as u32),
            4 => (r.byte(), vec![0u8; 8 * (1 + r.below(3))]),
            5 => opts(r.byte(), r.below(3) as u8),
            _ => (r.byte(), (0..8).map(|_| r.byte()).collect()),
        });
    }
    let upper = [TCP, UDP, ICMPV6, r.byte()][r.below(4)];
    let l4: Vec<u8> = match upper {
        TCP => tcp_syn(),
        UDP => udp(),
        ICMPV6 => echo(),
        _ => (0..r.below(40)).map(|_| r.byte()).collect(),
    };
    let mut b = packet(&chain, upper, &l4);
    match r.below(4) {
        0 => {
            let at = r.below(b.len());
            b[at] = r.byte();
        }
        1 => b[4..6].copy_from_slice(&(r.next() as u16).to_be_bytes()),
        2 => b.truncate(r.below(b.len() + 1)),
        _ => {}
    }
    b
}

#[test]
fn random_bytes_never_panic() {
    let mut r = Rng(0x7876_7336_2d77_6972); // fixed seed: "xvs6-wir"
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let b = random_packet(&mut r);
        match read(&b) {
            Ok(u) => {
                accepted += 1;
                let p = Ipv6Packet::new_checked(&b[..]).unwrap();
                assert!(HEADER_LEN <= u.offset && u.offset <= p.total_len());
                assert!(u.offset - HEADER_LEN <= MAX_EXT_LEN);
                let later = u.fragment.is_some_and(|f| !f.is_first());
                assert!(later || ext_kind(u.protocol) == Ok(None), "{b:?}");
                let mut out = b.clone();
                Ipv6Repr::parse(&p).emit(&mut out).unwrap();
                assert_eq!(out, b, "parse then emit is the identity");
            }
            Err(_) => refused += 1,
        }
        if let Ok(p) = Ipv6Packet::new_checked(&b[..]) {
            let _ = (p.traffic_class(), p.flow_label(), p.payload().len());
            let _ = OuterHeader6::parse(&p);
        }
        let start = r.below(b.len() + 1);
        if let Ok(m) = Icmpv6Packet::new_checked(&b[start..]) {
            let _ = (m.mtu(), m.pointer(), m.echo_ident(), m.echo_seq_no());
            let _ = Icmpv6Repr::parse(&m, SRC, DST);
        }
    }
    assert!(
        accepted > 1000 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
}
