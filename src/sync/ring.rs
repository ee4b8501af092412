//! The per-worker sync event ring: one bounded single-producer single-consumer queue of
//! [`SyncRecord`]s per worker, filled on the packet path ([`SyncProducer`], owned by the
//! worker's [`crate::datapath::Processor`]) and drained by the sync thread ([`SyncConsumer`]).
//!
//! Invariants:
//! - The ring's slots are allocated once, by [`ring`]; [`SyncProducer::push`] never allocates,
//!   never blocks, never makes a syscall and takes no lock: a full ring drops the record and
//!   counts it ([`SyncProducer::dropped`]), so a sync thread that falls behind costs the peers
//!   some events, never a worker its packets.
//! - One producer, one consumer: both ends are owned values (`Send`, not `Clone`), so the type
//!   system keeps a second writer or reader out. The queue is `rtrb`'s wait-free SPSC ring: a push
//!   is a slot write and one release store of the tail (the head is re-read only when the
//!   producer's cached copy says full), with no compare-and-swap, which a multi-producer queue
//!   (crossbeam's `ArrayQueue`) pays on every push.
//! - Records come out in the order they went in; a dropped record leaves no gap marker (the
//!   count says how many were lost; the next full dump repairs the peers).
//! - The drop counter has one writer (the producer), so it is bumped with a plain load and store
//!   (no locked instruction), and any thread may read it ([`SyncDrops`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::sync::record::SyncRecord;

/// Records one worker's ring holds by default: about 3.5 MiB of 112-byte records, a second of
/// a worker creating and closing connections at a high rate before the sync thread drains it.
pub const DEFAULT_CAPACITY: usize = 32 * 1024;

/// The producer end, owned by one worker (see the module documentation).
#[derive(Debug)]
pub struct SyncProducer {
    ring: rtrb::Producer<SyncRecord>,
    dropped: Arc<AtomicU64>,
}

/// The consumer end, owned by the sync thread.
#[derive(Debug)]
pub struct SyncConsumer {
    ring: rtrb::Consumer<SyncRecord>,
    dropped: Arc<AtomicU64>,
}

/// A reader of one ring's drop count (for the metrics; any thread).
#[derive(Clone, Debug)]
pub struct SyncDrops(Arc<AtomicU64>);

impl SyncDrops {
    /// Records dropped because the ring was full, since it was made.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A ring of `capacity` records (at least 1), allocated now and never again.
pub fn ring(capacity: usize) -> (SyncProducer, SyncConsumer) {
    let (p, c) = rtrb::RingBuffer::new(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        SyncProducer {
            ring: p,
            dropped: dropped.clone(),
        },
        SyncConsumer { ring: c, dropped },
    )
}

impl SyncProducer {
    /// Enqueues `record`; when the ring is full the record is dropped and counted. Returns
    /// whether it was enqueued. Never blocks, never allocates.
    #[inline]
    pub fn push(&mut self, record: SyncRecord) -> bool {
        match self.ring.push(record) {
            Ok(()) => true,
            Err(_) => {
                self.count_drop();
                false
            }
        }
    }

    #[cold]
    fn count_drop(&self) {
        // One writer: a load and a store, no read-modify-write.
        let n = self.dropped.load(Ordering::Relaxed);
        self.dropped.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Records dropped so far (this ring's).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A reader of the drop count for the metrics.
    pub fn drops(&self) -> SyncDrops {
        SyncDrops(self.dropped.clone())
    }

    /// Free slots now.
    pub fn free(&self) -> usize {
        self.ring.slots()
    }
}

impl SyncConsumer {
    /// The oldest record, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<SyncRecord> {
        self.ring.pop().ok()
    }

    /// Moves up to `max` records, oldest first, to the end of `out`; returns how many.
    pub fn drain_into(&mut self, out: &mut Vec<SyncRecord>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(r) = self.pop() else { break };
            out.push(r);
            n += 1;
        }
        n
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.ring.slots()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Records the producer dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A reader of the drop count for the metrics.
    pub fn drops(&self) -> SyncDrops {
        SyncDrops(self.dropped.clone())
    }

    /// Whether the producer is gone (its worker stopped): what is left can still be drained.
    pub fn is_abandoned(&self) -> bool {
        self.ring.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConnState;
    use crate::flow::{Endpoint, Proto};
    use crate::sync::record::{ConnRecord, SyncOp};
    use std::net::{IpAddr, Ipv4Addr};

    fn rec(port: u16) -> SyncRecord {
        let ep = |last, port| Endpoint::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), port);
        SyncRecord::Conn(ConnRecord {
            op: SyncOp::Create,
            proto: Proto::Tcp,
            state: ConnState::SynRecv,
            client: ep(2, port),
            vip: ep(100, 80),
            real: ep(11, 80),
            local: None,
            timeout_ms: 30_000,
        })
    }

    #[test]
    fn records_come_out_in_order_and_a_full_ring_drops_and_counts() {
        let (mut p, mut c) = ring(4);
        for i in 0..4 {
            assert!(p.push(rec(i)));
        }
        assert_eq!(p.free(), 0);
        assert!(!p.push(rec(99)), "full: dropped, not blocked");
        assert!(!p.push(rec(98)));
        assert_eq!((p.dropped(), c.dropped(), c.drops().get()), (2, 2, 2));
        let mut out = Vec::new();
        assert_eq!(c.drain_into(&mut out, 3), 3);
        assert_eq!(out, [rec(0), rec(1), rec(2)]);
        assert!(p.push(rec(4)));
        assert_eq!(c.pop(), Some(rec(3)));
        assert_eq!(c.pop(), Some(rec(4)));
        assert_eq!(c.pop(), None);
        assert!(c.is_empty() && !c.is_abandoned());
        drop(p);
        assert!(c.is_abandoned());
    }

    #[test]
    fn one_producer_thread_one_consumer_thread_lose_nothing_that_fit() {
        let (mut p, mut c) = ring(64);
        let n = 20_000u16;
        let t = std::thread::spawn(move || {
            let mut sent = 0u64;
            for i in 0..n {
                sent += u64::from(p.push(rec(i)));
            }
            (sent, p.dropped())
        });
        let mut got = Vec::new();
        loop {
            match c.pop() {
                Some(r) => got.push(r),
                None if c.is_abandoned() && c.is_empty() => break,
                None => std::thread::yield_now(),
            }
        }
        let (sent, dropped) = t.join().unwrap();
        assert_eq!(sent + dropped, u64::from(n));
        assert_eq!(got.len() as u64, sent);
        // In order, gaps only where records were dropped.
        let ports: Vec<u16> = got
            .iter()
            .map(|r| match r {
                SyncRecord::Conn(c) => c.client.port,
                SyncRecord::Template(_) => unreachable!(),
            })
            .collect();
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
    }
}
