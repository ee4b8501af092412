//! A peer that sends garbage: a corpus of named bad messages, each dropped under its own
//! counted reason by the receiving end ([`Opener::open`]), none of them a panic.
//!
//! Most cases start from a valid message and break one thing; "re-signed" cases recompute the
//! tag afterwards (a peer holding the key that encodes badly), so they reach the check after
//! the tag; the others are what an outsider without the key can send.

use super::tests::{conn_v4, key, resign, samples, signed};
use super::*;
use crate::sync::channel::{Opener, Sealer};

const MAX_PEERS: usize = 8;

/// A valid message from sender 7, epoch 100, sequence `seq`, of `records`.
fn valid(records: &[SyncRecord], seq: u64) -> Vec<u8> {
    let h = HeaderRepr {
        msg_type: MessageType::Records,
        sender: 7,
        epoch: 100,
        seq,
    };
    let mut buf = [0u8; MAX_MESSAGE_LEN + 100];
    let len = emit(&h, records, &key(), &mut buf).unwrap();
    buf[..len].to_vec()
}

fn with_len_field(mut b: Vec<u8>, len: usize) -> Vec<u8> {
    b[4..6].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    b
}

/// `b` with byte `at` set to `value`, not re-signed (what an outsider can change).
fn edited(b: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut b = b.to_vec();
    b[at] = value;
    b
}

/// `b` with byte `at` set to `value`, re-signed (a peer with the key that encodes badly).
fn resigned(b: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut b = edited(b, at, value);
    resign(&mut b, &key());
    b
}

type Case = (&'static str, Vec<u8>, SyncError);

/// Cases caught before the tag: length, version, framing; and the tag itself.
fn framing_cases() -> Vec<Case> {
    use SyncError::*;
    let good = valid(&[conn_v4()], 1);
    let n = good.len();
    let other = Key::new(b"another-key-0123456789").unwrap();
    vec![
        ("empty datagram", vec![], Truncated),
        ("one byte", vec![VERSION], Truncated),
        ("header without tag", good[..HEADER_LEN].to_vec(), Truncated),
        (
            "one byte short of header and tag",
            good[..HEADER_LEN + TAG_LEN - 1].to_vec(),
            Truncated,
        ),
        (
            "version 0 (an IPVS v1 message starts with 0)",
            edited(&good, 0, 0),
            BadVersion,
        ),
        ("version 2", edited(&good, 0, 2), BadVersion),
        ("version 255", edited(&good, 0, 255), BadVersion),
        ("cut short by one byte", good[..n - 1].to_vec(), BadLength),
        (
            "length field one too many",
            with_len_field(good.clone(), n + 1),
            BadLength,
        ),
        (
            "length field one too few",
            with_len_field(good.clone(), n - 1),
            BadLength,
        ),
        ("a trailing byte", [&good[..], &[0]].concat(), BadLength),
        (
            "longer than a message may be",
            signed(1, 0, &[0u8; MAX_BODY_LEN + 1], &key()),
            BadLength,
        ),
        (
            "tag flipped",
            edited(&good, n - 1, good[n - 1] ^ 0x80),
            BadTag,
        ),
        (
            "tag zeroed",
            [&good[..n - TAG_LEN], &[0; TAG_LEN]].concat(),
            BadTag,
        ),
        ("signed with another key", signed(1, 0, &[], &other), BadTag),
        (
            "a record byte changed, not re-signed",
            edited(&good, HEADER_LEN + 10, 0),
            BadTag,
        ),
        (
            "sender id changed, not re-signed",
            edited(&good, 9, 8),
            BadTag,
        ),
        (
            "sequence changed, not re-signed",
            edited(&good, 25, 2),
            BadTag,
        ),
    ]
}

/// Authentic messages whose header does not match their records.
fn header_cases() -> Vec<Case> {
    use SyncError::*;
    let k = key();
    let good = valid(&[conn_v4()], 1);
    let n = good.len();
    let mut stray = good[HEADER_LEN..n - TAG_LEN].to_vec();
    stray.extend_from_slice(&[0; 5]);
    vec![
        ("type 0", signed(0, 0, &[], &k), BadType),
        ("type 4", signed(4, 0, &[], &k), BadType),
        ("type 255", signed(255, 0, &[], &k), BadType),
        ("count 2, one record", resigned(&good, 3, 2), BadCount),
        ("count 0, one record", resigned(&good, 3, 0), BadCount),
        (
            "count above the most a message holds",
            signed(1, 59, &[], &k),
            BadCount,
        ),
        ("count 65535", signed(1, u16::MAX, &[], &k), BadCount),
        (
            "a dump request with a record",
            resigned(&good, 1, 2),
            BadCount,
        ),
        ("a dump end with a record", resigned(&good, 1, 3), BadCount),
        (
            "a good record then stray bytes",
            signed(1, 1, &stray, &k),
            BadCount,
        ),
        (
            "a valid tag over garbage",
            signed(1, 1, &[0xaa; 33], &k),
            BadKind,
        ),
        (
            "a valid tag over zeros",
            signed(1, 1, &[0; 33], &k),
            BadKind,
        ),
    ]
}

/// Authentic messages with one record field out of range.
fn record_cases() -> Vec<Case> {
    use SyncError::*;
    let one = valid(&[conn_v4()], 1);
    let bad = |at: usize, value: u8| resigned(&one, HEADER_LEN + at, value);
    let two = valid(&[conn_v4(), conn_v4()], 1);
    let template = valid(&[samples()[4]], 1);
    vec![
        ("an IPv4 record announced as IPv6", bad(0, 0x16), BadCount),
        ("record kind 0", bad(0, 0x04), BadKind),
        ("record kind 3", bad(0, 0x34), BadKind),
        ("record kind 0xf", bad(0, 0xf4), BadKind),
        ("record family 5", bad(0, 0x15), BadFamily),
        ("record family 0", bad(0, 0x10), BadFamily),
        ("op 0", bad(1, 0), BadRecord),
        ("op 4", bad(1, 4), BadRecord),
        ("protocol 1 (ICMP)", bad(2, 1), BadRecord),
        ("protocol 132 (SCTP)", bad(2, 132), BadRecord),
        ("state 11 (none has it)", bad(3, 11), BadRecord),
        ("a UDP state on TCP", bad(3, 10), BadRecord),
        ("a TCP state on UDP", bad(2, 17), BadRecord),
        ("timeout 2^31 ms", bad(4, 0x80), BadRecord),
        ("unknown flag", bad(8, 0x02), BadRecord),
        (
            "a local endpoint without its flag",
            bad(CONN_LOCAL_AT, 198),
            BadRecord,
        ),
        (
            "template reserved byte set",
            resigned(&template, HEADER_LEN + 3, 1),
            BadRecord,
        ),
        (
            "a good record then a bad one",
            resigned(&two, HEADER_LEN + record::CONN_V4_LEN + 1, 9),
            BadRecord,
        ),
    ]
}

fn corpus() -> Vec<Case> {
    let mut cases = framing_cases();
    cases.extend(header_cases());
    cases.extend(record_cases());
    cases
}

/// Byte of a connection record where its local endpoint starts (IPv4).
const CONN_LOCAL_AT: usize = 9 + 3 * 6;

#[test]
fn every_bad_message_is_dropped_under_its_reason() {
    let cases = corpus();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut counted = [0u32; SyncError::COUNT];
    for (name, bytes, want) in &cases {
        let mut rx = Opener::new(key(), MAX_PEERS);
        match rx.open(bytes) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                assert_eq!(e, *want, "{name}");
                counted[e.index()] += 1;
            }
        }
        assert!(
            rx.replay().is_empty(),
            "{name}: a refused message opened a window"
        );
    }
    // Every decode reason has at least one case; the replay reasons have theirs below, the
    // endpoint's (unknown peer, own sender id) in `sync::endpoint`'s tests.
    for e in SyncError::ALL {
        let replay = matches!(
            e,
            SyncError::Replayed
                | SyncError::StaleEpoch
                | SyncError::TooManyPeers
                | SyncError::UnknownPeer
                | SyncError::OwnSender
        );
        assert_eq!(counted[e.index()] > 0, !replay, "{e}");
    }
    // The same corpus is refused after a good message too, and does not disturb its window.
    let mut rx = Opener::new(key(), MAX_PEERS);
    rx.open(&valid(&samples(), 5)).unwrap();
    for (name, bytes, want) in &cases {
        assert_eq!(rx.open(bytes).unwrap_err(), *want, "{name}");
    }
    assert_eq!(rx.replay().window(7).map(|w| w.position()), Some((100, 5)));
}

#[test]
fn replays_are_dropped_after_the_tag_is_checked() {
    let mut rx = Opener::new(key(), 2);
    let m5 = valid(&[conn_v4()], 5);
    assert_eq!(rx.open(&m5).map(|m| m.header.seq), Ok(5));
    assert_eq!(rx.open(&m5).unwrap_err(), SyncError::Replayed, "duplicate");
    assert!(
        rx.open(&valid(&[conn_v4()], 4)).is_ok(),
        "late, inside the window"
    );
    // A forged message with a far higher sequence does not move the window...
    let mut forged = valid(&[conn_v4()], 5000);
    forged[30] ^= 1;
    assert_eq!(rx.open(&forged).unwrap_err(), SyncError::BadTag);
    assert!(
        rx.open(&valid(&[conn_v4()], 6)).is_ok(),
        "...so 6 is still new"
    );
    // ...an authentic one does, and then 6 - 1024 is too old.
    assert!(rx.open(&valid(&[], 2000)).is_ok());
    assert_eq!(
        rx.open(&valid(&[], 900)).unwrap_err(),
        SyncError::Replayed,
        "too old"
    );
    assert!(rx.open(&valid(&[], 1000)).is_ok(), "inside the window");
}

#[test]
fn epochs_order_the_runs_of_a_sender() {
    let k = key();
    let mut rx = Opener::new(k.clone(), 2);
    let mut buf = [0u8; 256];
    let mut old = Sealer::new(k.clone(), 7, 100);
    let mut new = Sealer::new(k.clone(), 7, 200);
    let first = old.records(&[conn_v4()], &mut buf).unwrap();
    assert!(rx.open(&buf[..first]).is_ok());
    let restarted = new.records(&[conn_v4()], &mut buf).unwrap();
    assert!(
        rx.open(&buf[..restarted]).is_ok(),
        "a newer epoch, sequence 1 again"
    );
    let late = old.records(&[conn_v4()], &mut buf).unwrap();
    assert_eq!(rx.open(&buf[..late]).unwrap_err(), SyncError::StaleEpoch);
    // Another sender has its own window; a third exceeds the bound of 2.
    let mut other = Sealer::new(k.clone(), 8, 1);
    let len = other.control(MessageType::DumpRequest, &mut buf).unwrap();
    assert_eq!(
        rx.open(&buf[..len]).map(|m| m.header.msg_type),
        Ok(MessageType::DumpRequest)
    );
    let mut third = Sealer::new(k, 9, 1);
    let len = third.control(MessageType::DumpEnd, &mut buf).unwrap();
    assert_eq!(rx.open(&buf[..len]).unwrap_err(), SyncError::TooManyPeers);
}

#[test]
fn a_sealer_numbers_only_the_messages_it_produced() {
    let mut tx = Sealer::new(key(), 1, 1);
    let mut tiny = [0u8; 10];
    assert!(tx.records(&[conn_v4()], &mut tiny).is_err());
    assert_eq!(tx.next_seq(), 1);
    let mut buf = [0u8; 256];
    let len = tx.records(&[conn_v4()], &mut buf).unwrap();
    assert_eq!(SyncMessage::new_checked(&buf[..len]).unwrap().seq(), 1);
    assert_eq!(tx.next_seq(), 2);
}
