//! Tests of the ICMPv6 view and `Repr`: golden bytes per message (RFC 4443 §3 and §4 layouts),
//! round trips, checksums over the pseudo-header, and the NDP/MLD classification.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use super::*;

const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

/// Every message the `Repr` describes, with the 4 bytes RFC 4443 puts after the checksum.
fn messages() -> [(Icmpv6Message, [u8; 2], [u8; 4]); 6] {
    use Icmpv6Message as M;
    [
        (M::DestinationUnreachable { code: 4 }, [1, 4], [0; 4]),
        (M::PacketTooBig { mtu: 1460 }, [2, 0], [0, 0, 0x05, 0xb4]),
        (M::TimeExceeded { code: 1 }, [3, 1], [0; 4]),
        (
            M::ParameterProblem {
                code: 1,
                pointer: 0x0102_0328,
            },
            [4, 1],
            [1, 2, 3, 0x28],
        ),
        (
            M::EchoRequest {
                ident: 0xabcd,
                seq_no: 7,
            },
            [128, 0],
            [0xab, 0xcd, 0, 7],
        ),
        (
            M::EchoReply {
                ident: 1,
                seq_no: 0xfffe,
            },
            [129, 0],
            [0, 1, 0xff, 0xfe],
        ),
    ]
}

#[test]
fn each_message_golden_and_round_trip() {
    let quote = [0x60u8, 0, 0, 0, 0, 8, 17, 64, 1, 2, 3, 4];
    for (message, type_code, rest) in messages() {
        let mut b = vec![0u8; HEADER_LEN + quote.len() + 2];
        b[HEADER_LEN..HEADER_LEN + quote.len()].copy_from_slice(&quote);
        let r = Icmpv6Repr {
            message,
            payload_len: quote.len(),
        };
        r.emit(&mut b, SRC, DST).unwrap();
        assert_eq!(b[..2], type_code, "{message:?}");
        assert_eq!(b[4..8], rest, "{message:?}");
        assert_eq!(
            b[HEADER_LEN + quote.len()..],
            [0, 0],
            "nothing past the message"
        );
        let m = &b[..r.buffer_len()];
        let p = Icmpv6Packet::new_checked(m).unwrap();
        assert!(p.checksum_ok(SRC, DST));
        assert!(!p.checksum_ok(SRC, SRC));
        assert_eq!(Icmpv6Repr::parse(&p, SRC, DST), Ok(r));
        assert_eq!(p.payload(), quote);
        assert_eq!(is_error(p.msg_type()), p.msg_type() < 128);
    }
}

/// A Packet Too Big quoting 8 bytes, every byte written out: type 2, code 0, checksum, MTU 1280.
/// The checksum 0x4b93 was computed apart from this code (a Python one's-complement sum over the
/// pseudo-header 2001:2::1 → 2001:2::100, length 16, next header 58, and the message).
#[test]
fn golden_packet_too_big() {
    let mut b = [0u8; 16];
    b[8..].copy_from_slice(&[0x60, 0, 0, 0, 0x05, 0xdc, 6, 63]);
    Icmpv6Repr {
        message: Icmpv6Message::PacketTooBig { mtu: 1280 },
        payload_len: 8,
    }
    .emit(&mut b, SRC, DST)
    .unwrap();
    assert_eq!(
        b,
        [2, 0, 0x4b, 0x93, 0, 0, 0x05, 0x00, 0x60, 0, 0, 0, 0x05, 0xdc, 6, 63]
    );
    let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
    assert_eq!((p.mtu(), p.checksum()), (1280, 0x4b93));
}

#[test]
fn view_fields_and_fill_checksum() {
    let mut b = [
        128u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'x', b'v', b's', b'6',
    ];
    let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
    assert!(!p.checksum_ok(SRC, DST));
    p.fill_checksum(SRC, DST);
    assert!(p.checksum_ok(SRC, DST));
    assert_eq!(
        p.checksum(),
        0x40d0,
        "the echo of the IPv6 tests' golden packet"
    );
    assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
    assert_eq!(p.rest_of_header(), [0x12, 0x34, 0, 1]);
    assert_eq!((p.pointer(), p.mtu()), (0x1234_0001, 0x1234_0001));
    p.payload_mut()[0] = b'X';
    assert!(!p.checksum_ok(SRC, DST));
    assert_eq!(
        Icmpv6Repr::parse(&p, SRC, DST),
        Err(Error::BadIcmpv6Checksum)
    );
    p.set_checksum(0);
    p.fill_checksum(SRC, DST);
    assert_eq!(p.code(), 0);
    assert!(Icmpv6Repr::parse(&p, SRC, DST).is_ok());
}

#[test]
fn neighbour_discovery_and_mld_are_told_apart() {
    for t in 0..=255u8 {
        let nd = (133..=137).contains(&t);
        let mld = matches!(t, 130 | 131 | 132 | 143);
        assert_eq!(is_neighbour_discovery(t), nd, "{t}");
        assert_eq!(is_mld(t), mld, "{t}");
        assert_eq!(is_kernel_only(t), nd || mld, "{t}");
        // None of them is a message the Repr describes.
        let mut b = [t, 0, 0, 0, 0, 0, 0, 0];
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), SRC, DST);
        let described = matches!(t, 1..=4 | 128 | 129);
        assert_eq!(r.is_ok(), described, "{t}");
        if !described {
            assert_eq!(r, Err(Error::UnsupportedIcmpv6), "{t}");
        }
    }
}

#[test]
fn short_buffers_are_refused() {
    for n in 0..HEADER_LEN {
        assert_eq!(
            Icmpv6Packet::new_checked(&[0u8; 8][..n]).unwrap_err(),
            Error::TruncatedIcmpv6
        );
    }
    let r = Icmpv6Repr {
        message: Icmpv6Message::TimeExceeded { code: 0 },
        payload_len: 4,
    };
    let mut b = [0u8; 11];
    assert_eq!(r.emit(&mut b, SRC, DST), Err(Error::TruncatedIcmpv6));
    assert_eq!(b, [0u8; 11], "nothing written");
    let huge = Icmpv6Repr {
        payload_len: usize::MAX,
        ..r
    };
    assert_eq!(huge.emit(&mut b, SRC, DST), Err(Error::TruncatedIcmpv6));
    assert_eq!(huge.buffer_len(), usize::MAX);
    assert_eq!(MAX_ERROR_LEN, 1240);
}
