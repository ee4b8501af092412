//! Round trips, bounds and authentication of the message format.

use std::net::IpAddr;

use super::record::{self, CONN_V4_LEN, CONN_V6_LEN, TEMPLATE_V4_LEN, TEMPLATE_V6_LEN};
use super::*;
use crate::conntrack::ConnState;
use crate::flow::{Endpoint, Proto};
use crate::sched::persist::TemplateKey;
use crate::sync::record::{ConnRecord, SyncOp, TemplateRecord};

pub(super) fn key() -> Key {
    Key::new(b"sync-test-key-0123456789").unwrap()
}

fn ep(s: &str) -> Endpoint {
    Endpoint::from(s.parse::<std::net::SocketAddr>().unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn conn_v4() -> SyncRecord {
    SyncRecord::Conn(ConnRecord {
        op: SyncOp::Create,
        proto: Proto::Tcp,
        state: ConnState::Established,
        client: ep("198.18.0.2:40000"),
        vip: ep("198.18.0.100:80"),
        real: ep("198.18.1.11:8080"),
        local: None,
        timeout_ms: 900_000,
    })
}

/// Every kind and family, with and without a local endpoint, every op, both protocols.
pub(super) fn samples() -> Vec<SyncRecord> {
    let fullnat4 = SyncRecord::Conn(ConnRecord {
        op: SyncOp::Update,
        state: ConnState::FinWait,
        local: Some(ep("198.18.1.2:20001")),
        ..match conn_v4() {
            SyncRecord::Conn(c) => c,
            SyncRecord::Template(_) => unreachable!(),
        }
    });
    let udp6 = SyncRecord::Conn(ConnRecord {
        op: SyncOp::Delete,
        proto: Proto::Udp,
        state: ConnState::Udp,
        client: ep("[2001:2::2]:5353"),
        vip: ep("[2001:2::100]:53"),
        real: ep("[2001:2:0:1::11]:53"),
        local: None,
        timeout_ms: 0,
    });
    let fullnat6 = SyncRecord::Conn(ConnRecord {
        op: SyncOp::Create,
        proto: Proto::Tcp,
        state: ConnState::SynRecv,
        client: ep("[2001:2::2]:65535"),
        vip: ep("[2001:2::100]:443"),
        real: ep("[2001:2:0:1::11]:443"),
        local: Some(ep("[2001:2:0:1::2]:1024")),
        timeout_ms: record::MAX_TIMEOUT_MS,
    });
    let t4 = SyncRecord::Template(TemplateRecord {
        op: SyncOp::Create,
        key: TemplateKey::new(
            Proto::Tcp,
            ip("198.18.0.100"),
            0,
            ip("198.18.0.7"),
            ip("255.255.255.0"),
        ),
        real: ep("198.18.1.12:80"),
        timeout_ms: 300_000,
    });
    let t6 = SyncRecord::Template(TemplateRecord {
        op: SyncOp::Delete,
        key: TemplateKey::new(
            Proto::Udp,
            ip("2001:2::100"),
            53,
            ip("2001:2::7"),
            ip("ffff:ffff::"),
        ),
        real: ep("[2001:2:0:1::12]:53"),
        timeout_ms: 1,
    });
    vec![conn_v4(), fullnat4, udp6, fullnat6, t4, t6]
}

#[test]
fn every_record_kind_and_family_round_trips_at_its_length() {
    let lens = [
        CONN_V4_LEN,
        CONN_V4_LEN,
        CONN_V6_LEN,
        CONN_V6_LEN,
        TEMPLATE_V4_LEN,
        TEMPLATE_V6_LEN,
    ];
    assert_eq!(
        (CONN_V4_LEN, CONN_V6_LEN, TEMPLATE_V4_LEN, TEMPLATE_V6_LEN),
        (33, 81, 24, 60)
    );
    for (r, want) in samples().iter().zip(lens) {
        let mut b = [0xeeu8; 100];
        assert_eq!(record::emit(r, &mut b), Ok(want), "{r:?}");
        assert_eq!(record::len_of(b[0]), Ok(want));
        assert_eq!(record::parse(&b[..want]), Ok((*r, want)), "{r:?}");
        // Short buffers: nothing written, and a short read is a count error.
        let mut short = vec![0u8; want - 1];
        assert_eq!(record::emit(r, &mut short), Err(EncodeError::Full));
        assert!(short.iter().all(|&x| x == 0));
        assert_eq!(record::parse(&b[..want - 1]), Err(SyncError::BadCount));
    }
}

#[test]
fn records_the_wire_cannot_carry_are_refused_when_encoding() {
    let SyncRecord::Conn(c) = conn_v4() else {
        unreachable!()
    };
    let mixed = SyncRecord::Conn(ConnRecord {
        real: ep("[2001:2:0:1::11]:80"),
        ..c
    });
    let mut b = [0u8; 100];
    assert_eq!(record::emit(&mixed, &mut b), Err(EncodeError::MixedFamily));
    let mixed_local = SyncRecord::Conn(ConnRecord {
        local: Some(ep("[2001:2::9]:1")),
        ..c
    });
    assert_eq!(
        record::emit(&mixed_local, &mut b),
        Err(EncodeError::MixedFamily)
    );
    let long = SyncRecord::Conn(ConnRecord {
        timeout_ms: record::MAX_TIMEOUT_MS + 1,
        ..c
    });
    assert_eq!(record::emit(&long, &mut b), Err(EncodeError::OutOfRange));
}

#[test]
fn the_timeout_bound_is_the_connection_tables() {
    assert_eq!(
        u64::from(record::MAX_TIMEOUT_MS) * 1_000_000,
        crate::conntrack::MAX_TIMEOUT
    );
}

fn header(msg_type: MessageType, seq: u64) -> HeaderRepr {
    HeaderRepr {
        msg_type,
        sender: 0x0a0b_0c0d,
        epoch: 1_700_000_000_000_000_000,
        seq,
    }
}

#[test]
fn a_message_round_trips_with_every_record() {
    let k = key();
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let h = header(MessageType::Records, 42);
    let len = emit(&h, &samples(), &k, &mut buf).unwrap();
    let body: usize = samples().iter().map(|r| record::shape(r).unwrap().1).sum();
    assert_eq!(len, HEADER_LEN + body + TAG_LEN);
    let view = SyncMessage::new_checked(&buf[..len]).unwrap();
    assert_eq!((view.version(), view.type_byte(), view.count()), (1, 1, 6));
    assert_eq!(
        (view.length(), view.sender(), view.seq()),
        (len, 0x0a0b_0c0d, 42)
    );
    assert_eq!(view.epoch(), h.epoch);
    assert_eq!(view.body().len(), body);
    let m = MessageRepr::parse(&view, &k).unwrap();
    assert_eq!(m.header, h);
    assert_eq!(m.records.len(), 6);
    assert_eq!(m.records.collect::<Vec<_>>(), samples());
}

#[test]
fn control_messages_carry_no_records() {
    let k = key();
    let mut buf = [0u8; 64];
    for t in [
        MessageType::DumpRequest,
        MessageType::DumpEnd,
        MessageType::Records,
    ] {
        let len = emit(&header(t, 1), &[], &k, &mut buf).unwrap();
        assert_eq!(len, HEADER_LEN + TAG_LEN);
        let m = MessageRepr::parse(&SyncMessage::new_checked(&buf[..len]).unwrap(), &k).unwrap();
        assert_eq!((m.header.msg_type, m.records.count()), (t, 0));
    }
    let mut big = [0u8; 200];
    assert_eq!(
        emit(&header(MessageType::DumpEnd, 1), &[conn_v4()], &k, &mut big),
        Err(EncodeError::RecordsNotAllowed(MessageType::DumpEnd))
    );
    assert_eq!(
        MessageBuilder::new(&mut [0u8; 57]).unwrap_err(),
        EncodeError::BufferTooSmall { have: 57, need: 58 }
    );
}

#[test]
fn a_full_message_fits_one_frame_and_holds_n_records_of_each_family() {
    assert_eq!(MAX_MESSAGE_LEN, 1452);
    assert_eq!(
        (CONN_V4_PER_MESSAGE, CONN_V6_PER_MESSAGE, MAX_RECORDS),
        (42, 17, 58)
    );
    let k = key();
    let six = samples()[2];
    for (r, n) in [(conn_v4(), CONN_V4_PER_MESSAGE), (six, CONN_V6_PER_MESSAGE)] {
        let mut buf = [0u8; 2048];
        let mut m = MessageBuilder::new(&mut buf).unwrap();
        for _ in 0..n {
            m.push(&r).unwrap();
        }
        assert_eq!(
            m.push(&r),
            Err(EncodeError::Full),
            "record {} does not fit",
            n + 1
        );
        assert_eq!(m.count(), n);
        let len = m.finish(&header(MessageType::Records, 1), &k).unwrap();
        assert!(len <= MAX_MESSAGE_LEN);
        // With IPv6 and UDP headers the datagram fits a 1500-byte MTU.
        assert!(len + 40 + 8 <= 1500);
        let m = MessageRepr::parse(&SyncMessage::new_checked(&buf[..len]).unwrap(), &k).unwrap();
        assert_eq!(m.records.len(), n);
    }
    // A smaller buffer bounds the message too.
    let mut small = [0u8; HEADER_LEN + TAG_LEN + CONN_V4_LEN + 10];
    let mut m = MessageBuilder::new(&mut small).unwrap();
    m.push(&conn_v4()).unwrap();
    assert_eq!(m.push(&conn_v4()), Err(EncodeError::Full));
    // emit is all or nothing.
    let many = vec![conn_v4(); CONN_V4_PER_MESSAGE + 1];
    let mut buf = [0u8; 2048];
    assert_eq!(
        emit(&header(MessageType::Records, 1), &many, &k, &mut buf),
        Err(EncodeError::Full)
    );
}

#[test]
fn every_flipped_bit_is_refused_and_so_is_another_key() {
    let k = key();
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let len = emit(&header(MessageType::Records, 7), &samples(), &k, &mut buf).unwrap();
    let good = buf[..len].to_vec();
    for bit in 0..len * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let got =
            SyncMessage::new_checked(&b[..]).and_then(|v| MessageRepr::parse(&v, &k).map(|_| ()));
        let want = match bit / 8 {
            0 => SyncError::BadVersion,
            4 | 5 => SyncError::BadLength,
            _ => SyncError::BadTag,
        };
        assert_eq!(got, Err(want), "bit {bit}");
    }
    let other = Key::new(b"sync-test-key-0123456788").unwrap();
    let v = SyncMessage::new_checked(&good[..]).unwrap();
    assert_eq!(
        MessageRepr::parse(&v, &other).unwrap_err(),
        SyncError::BadTag
    );
    assert!(MessageRepr::parse(&v, &k).is_ok());
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random bytes never panic the decoder, and never pass without the key.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let k = key();
            if let Ok(v) = SyncMessage::new_checked(&bytes[..]) {
                prop_assert!(MessageRepr::parse(&v, &k).is_err());
            }
            let _ = record::parse(&bytes);
        }

        /// Random bytes with a valid header and tag (a peer with the key sending garbage) never
        /// panic the decoder; whatever it accepts re-encodes to the same bytes.
        #[test]
        fn signed_garbage_never_panics(
            msg_type in 0u8..5,
            count in 0u16..70,
            body in proptest::collection::vec(any::<u8>(), 0..MAX_BODY_LEN),
        ) {
            let k = key();
            let b = signed(msg_type, count, &body, &k);
            let v = SyncMessage::new_checked(&b[..]).unwrap();
            if let Ok(m) = MessageRepr::parse(&v, &k) {
                let records: Vec<SyncRecord> = m.records.collect();
                let mut out = [0u8; MAX_MESSAGE_LEN];
                let len = emit(&m.header, &records, &k, &mut out).unwrap();
                prop_assert_eq!(&out[..len], &b[..]);
            }
        }

        /// Garbage records behind a valid header: every record byte string either parses and
        /// re-encodes to itself, or is refused.
        #[test]
        fn a_record_has_one_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok((r, len)) = record::parse(&bytes) {
                let mut out = [0u8; 100];
                prop_assert_eq!(record::emit(&r, &mut out), Ok(len));
                prop_assert_eq!(&out[..len], &bytes[..len]);
            }
        }
    }
}

/// A message of version 1 with these raw fields and a valid tag.
pub(super) fn signed(msg_type: u8, count: u16, body: &[u8], k: &Key) -> Vec<u8> {
    let len = HEADER_LEN + body.len() + TAG_LEN;
    let mut b = vec![0u8; len];
    b[0] = VERSION;
    b[1] = msg_type;
    b[2..4].copy_from_slice(&count.to_be_bytes());
    b[4..6].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    b[6..10].copy_from_slice(&7u32.to_be_bytes());
    b[10..18].copy_from_slice(&1u64.to_be_bytes());
    b[18..26].copy_from_slice(&1u64.to_be_bytes());
    b[HEADER_LEN..len - TAG_LEN].copy_from_slice(body);
    resign(&mut b, k);
    b
}

/// Recomputes the tag of `b` (a peer with the key that encodes badly).
pub(super) fn resign(b: &mut [u8], k: &Key) {
    let n = b.len() - TAG_LEN;
    let tag = k.sign(&b[..n]);
    b[n..].copy_from_slice(&tag);
}
