//! The full dump a box sends a peer that joins: every record it owns, in full messages, in
//! bounded bursts, then a dump-end message so the joiner knows the dump is complete.
//!
//! Sans-IO: the caller owns the source (an iterator over a snapshot of the tables, which the
//! table side pages out), the buffer and the pacing. [`DumpPager::poll`] yields one sealed
//! message at a time; after `burst` messages it says [`Page::Pause`] until the caller calls
//! [`DumpPager::resume`] (after a pause of its choosing, so a dump of a million connections
//! does not flood the sync link or starve the live messages). The pager keeps its place between
//! bursts: the record that did not fit the last message is the first of the next.
//!
//! Invariants: every message holds as many records as fit ([`crate::sync::wire`]'s bound); no
//! record is sent twice or lost (a record the wire cannot carry, a mixed-family one, is skipped
//! and counted in [`DumpPager::skipped`]); exactly one dump-end message follows the last record
//! message, and nothing after it.

use super::channel::Sealer;
use super::error::EncodeError;
use super::record::SyncRecord;
use super::wire::{MessageBuilder, MessageType};

/// What [`DumpPager::poll`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// A sealed message of this length at the start of the buffer: send it.
    Message(usize),
    /// This burst's messages are out: call [`DumpPager::resume`] when the next burst may go.
    Pause,
    /// The dump-end message was produced: the dump is complete.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Records,
    End,
    Done,
}

/// One full dump in progress.
#[derive(Debug)]
pub struct DumpPager<I: Iterator<Item = SyncRecord>> {
    source: I,
    /// The record that did not fit the previous message.
    pending: Option<SyncRecord>,
    burst: usize,
    in_burst: usize,
    phase: Phase,
    records: u64,
    messages: u64,
    skipped: u64,
}

impl<I: Iterator<Item = SyncRecord>> DumpPager<I> {
    /// A dump of `source`, at most `burst` messages (at least 1) per burst.
    pub fn new(source: I, burst: usize) -> DumpPager<I> {
        DumpPager {
            source,
            pending: None,
            burst: burst.max(1),
            in_burst: 0,
            phase: Phase::Records,
            records: 0,
            messages: 0,
            skipped: 0,
        }
    }

    /// The next message of the dump, sealed by `sealer` into `buf`. An error leaves the pager
    /// where it was (the same call with a usable buffer goes on).
    pub fn poll(&mut self, sealer: &mut Sealer, buf: &mut [u8]) -> Result<Page, EncodeError> {
        if self.phase == Phase::Done {
            return Ok(Page::Done);
        }
        if self.in_burst >= self.burst {
            return Ok(Page::Pause);
        }
        if self.phase == Phase::Records {
            let mut m = MessageBuilder::new(buf)?;
            let added = self.fill(&mut m)?;
            if added > 0 {
                let len = sealer.seal(m, MessageType::Records)?;
                self.records += added as u64;
                return Ok(self.sent(len));
            }
            self.phase = Phase::End;
        }
        let len = sealer.control(MessageType::DumpEnd, buf)?;
        self.phase = Phase::Done;
        Ok(self.sent(len))
    }

    /// Adds records to `m` until it is full or the source is exhausted; returns how many.
    fn fill(&mut self, m: &mut MessageBuilder<'_>) -> Result<usize, EncodeError> {
        while let Some(r) = self.pending.take().or_else(|| self.source.next()) {
            match m.push(&r) {
                Ok(()) => {}
                Err(EncodeError::Full) => {
                    self.pending = Some(r);
                    if m.count() == 0 {
                        // Not even one record fits: the buffer is too small.
                        return Err(EncodeError::Full);
                    }
                    break;
                }
                Err(EncodeError::MixedFamily | EncodeError::OutOfRange) => self.skipped += 1,
                Err(e) => {
                    self.pending = Some(r);
                    return Err(e);
                }
            }
        }
        Ok(m.count())
    }

    fn sent(&mut self, len: usize) -> Page {
        self.in_burst += 1;
        self.messages += 1;
        Page::Message(len)
    }

    /// Starts the next burst (after [`Page::Pause`]).
    pub fn resume(&mut self) {
        self.in_burst = 0;
    }

    /// Whether the dump-end message was produced.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Records sent so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Messages sent so far (the dump-end message included).
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Records left out because the wire cannot carry them (mixed families, a timeout out of
    /// range).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConnState;
    use crate::flow::{Endpoint, Proto};
    use crate::sync::auth::Key;
    use crate::sync::channel::Opener;
    use crate::sync::record::{ConnRecord, SyncOp};
    use crate::sync::wire::{CONN_V4_PER_MESSAGE, CONN_V6_PER_MESSAGE, MAX_MESSAGE_LEN};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn key() -> Key {
        Key::new(b"pager-test-key-0123456789").unwrap()
    }

    /// Connection `i`: IPv4 for even `i` when `mixed`, else always IPv4; distinct client ports.
    fn conn(i: usize, v6: bool) -> SyncRecord {
        #[allow(clippy::cast_possible_truncation)] // test values are small
        let port = 1024 + i as u16;
        let ip = |last: u8| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, u16::from(last)))
            } else {
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
            }
        };
        SyncRecord::Conn(ConnRecord {
            op: SyncOp::Create,
            proto: Proto::Tcp,
            state: ConnState::Established,
            client: Endpoint::new(ip(2), port),
            vip: Endpoint::new(ip(100), 80),
            real: Endpoint::new(ip(11), 80),
            local: None,
            timeout_ms: 60_000,
        })
    }

    /// Runs a whole dump, resuming after every pause; returns the records received, the
    /// record count of each message, the pauses, and whether the last message was a dump end.
    fn run(source: Vec<SyncRecord>, burst: usize) -> (Vec<SyncRecord>, Vec<usize>, usize, bool) {
        let mut tx = Sealer::new(key(), 1, 1);
        let mut rx = Opener::new(key(), 4);
        let mut pager = DumpPager::new(source.into_iter(), burst);
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let (mut got, mut sizes, mut pauses, mut ended) = (Vec::new(), Vec::new(), 0, false);
        let mut in_burst = 0;
        loop {
            match pager.poll(&mut tx, &mut buf).unwrap() {
                Page::Message(len) => {
                    assert!(!ended, "nothing after the dump end");
                    in_burst += 1;
                    assert!(in_burst <= burst.max(1), "burst bound");
                    let m = rx.open(&buf[..len]).unwrap();
                    ended = m.header.msg_type == MessageType::DumpEnd;
                    if !ended {
                        sizes.push(m.records.len());
                        got.extend(m.records);
                    }
                }
                Page::Pause => {
                    assert_eq!(in_burst, burst.max(1), "a pause only after a full burst");
                    pauses += 1;
                    in_burst = 0;
                    assert_eq!(
                        pager.poll(&mut tx, &mut buf),
                        Ok(Page::Pause),
                        "until resumed"
                    );
                    pager.resume();
                }
                Page::Done => break,
            }
        }
        assert!(pager.is_done());
        assert_eq!(pager.messages(), sizes.len() as u64 + 1);
        assert_eq!(pager.records(), got.len() as u64);
        (got, sizes, pauses, ended)
    }

    #[test]
    fn every_record_once_in_full_messages_then_the_dump_end() {
        let source: Vec<SyncRecord> = (0..100).map(|i| conn(i, false)).collect();
        let (got, sizes, pauses, ended) = run(source.clone(), 1000);
        assert_eq!(got, source);
        assert_eq!(sizes, vec![42, 42, 16]);
        assert_eq!((pauses, ended), (0, true));
        // IPv6 records: 17 a message.
        let source: Vec<SyncRecord> = (0..40).map(|i| conn(i, true)).collect();
        let (got, sizes, _, _) = run(source.clone(), 1000);
        assert_eq!(got, source);
        assert_eq!(sizes, vec![CONN_V6_PER_MESSAGE, CONN_V6_PER_MESSAGE, 6]);
    }

    #[test]
    fn bursts_are_bounded_and_the_pager_resumes_where_it_paused() {
        let n = CONN_V4_PER_MESSAGE * 7 + 1; // 8 record messages, then the dump end: 9
        let source: Vec<SyncRecord> = (0..n).map(|i| conn(i, i % 3 == 0)).collect();
        for burst in [1, 2, 3, 9, 10] {
            let (got, sizes, pauses, ended) = run(source.clone(), burst);
            assert_eq!(got, source, "burst {burst}");
            assert!(ended);
            let messages = sizes.len() + 1;
            assert_eq!(
                pauses,
                (messages - 1) / burst,
                "burst {burst}: {messages} messages"
            );
        }
        // A burst of 0 is taken as 1.
        let (got, _, _, _) = run(source[..3].to_vec(), 0);
        assert_eq!(got, source[..3].to_vec());
    }

    #[test]
    fn an_empty_source_sends_only_the_dump_end() {
        let (got, sizes, pauses, ended) = run(Vec::new(), 1);
        assert!(got.is_empty() && sizes.is_empty());
        assert_eq!((pauses, ended), (0, true));
    }

    #[test]
    fn records_the_wire_cannot_carry_are_skipped_and_counted() {
        let SyncRecord::Conn(c) = conn(0, false) else {
            unreachable!()
        };
        let mixed = SyncRecord::Conn(ConnRecord {
            real: Endpoint::new("2001:2::9".parse().unwrap(), 80),
            ..c
        });
        let source = vec![conn(1, false), mixed, conn(2, false)];
        let mut pager = DumpPager::new(source.into_iter(), 10);
        let mut tx = Sealer::new(key(), 1, 1);
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        assert!(matches!(
            pager.poll(&mut tx, &mut buf),
            Ok(Page::Message(_))
        ));
        assert_eq!((pager.records(), pager.skipped()), (2, 1));
    }

    #[test]
    fn a_buffer_too_small_for_one_record_is_an_error_that_loses_nothing() {
        let source = vec![conn(1, false)];
        let mut pager = DumpPager::new(source.clone().into_iter(), 10);
        let mut tx = Sealer::new(key(), 1, 1);
        let mut small = [0u8; 70];
        assert_eq!(pager.poll(&mut tx, &mut small), Err(EncodeError::Full));
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let Ok(Page::Message(len)) = pager.poll(&mut tx, &mut buf) else {
            panic!()
        };
        let mut rx = Opener::new(key(), 1);
        assert_eq!(
            rx.open(&buf[..len]).unwrap().records.collect::<Vec<_>>(),
            source
        );
        assert_eq!(tx.next_seq(), 2, "the failed poll used no sequence number");
    }
}
