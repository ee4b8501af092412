//! Connection sync on the packet path (issue 16): the events a worker enqueues on its
//! [`SyncProducer`] ring, only when sync is on (`Processor::sync` is `Some`; when it is `None`
//! each event site costs one predictable branch and nothing else).
//!
//! Which events, and where:
//! - **Create**: a connection scheduled and inserted (`original.rs`, `track`), any method; a
//!   FULLNAT one carries its local endpoint. A `one_packet` flow has no entry and no event.
//! - **Update**: a lookup (either direction) whose packet moved the state to ESTABLISHED or to
//!   a closing state (FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK), or whose refresh of the
//!   expiry crossed a [`crate::conntrack::REFRESH_SHIFT`] boundary (at most one per ~16 s of a
//!   busy connection, so a peer's copy does not expire under a long-lived flow). Never per
//!   packet.
//! - **Delete**: an entry a lookup found expired or reopened by a SYN (the lookup hands it
//!   back, [`Change::Removed`]), one the insert evicted (half-open, to make room), one the
//!   batch's expiry sweep removed. `remove_real` runs on the control thread: its Deletes come
//!   from [`crate::conntrack::ConnTable::remove_real_with`], not from a worker's ring.
//! - Templates: [`crate::sched::persist::PersistenceTable::schedule_synced`]'s record (Create
//!   when made, Update when moved or, at most once per quarter timeout, refreshed), and the
//!   sweep's Deletes.
//!
//! Every record's timeout is the idle time the entry has left (the state's timeout just after
//! a packet; 0 for a Delete). Enqueueing never blocks: a full ring drops the record and counts
//! it. No allocation, no lock beyond the shard lock the table already holds for the sweep (the
//! sweep's closure enqueues under it: a few stores).

use super::Processor;
use crate::conntrack::{timeout_ms, Change, Tracked};
use crate::flow::{Nanos, Proto};
use crate::sync::record::ConnRecord;
use crate::sync::ring::SyncProducer;
use crate::sync::{SyncOp, SyncRecord};

use super::EXPIRY_BUDGET_PER_BATCH;

impl Processor {
    /// Turns connection sync on (`Some`: this worker's ring) or off (`None`); returns the ring
    /// it had. Call between batches (the worker's start).
    pub fn set_sync(&mut self, ring: Option<SyncProducer>) -> Option<SyncProducer> {
        std::mem::replace(&mut self.sync, ring)
    }

    /// This worker's sync ring, if sync is on (its drop count for the metrics).
    pub fn sync_ring(&self) -> Option<&SyncProducer> {
        self.sync.as_ref()
    }

    /// The batch's bounded expiry of connections and templates, at this worker's own turn
    /// (one shard of each table, the next one each batch), each removal enqueued as a Delete
    /// when sync is on.
    pub(super) fn expire(&mut self, now: Nanos) {
        let (conns, templates) = (&self.shared.conntrack, &self.shared.persistence);
        let turn = self.sweep_turn;
        self.sweep_turn = turn.wrapping_add(1);
        let budget = EXPIRY_BUDGET_PER_BATCH;
        match &mut self.sync {
            None => {
                conns.expire_turn_with(turn, now, budget, |_| {});
                templates.expire_turn_with(turn, now, budget, |_| {});
            }
            Some(ring) => {
                conns.expire_turn_with(turn, now, budget, |r| {
                    ring.push(SyncRecord::Conn(r));
                });
                templates.expire_turn_with(turn, now, budget, |r| {
                    ring.push(SyncRecord::Template(r));
                });
            }
        }
    }

    /// The event of a lookup of a `proto` packet that wrote `t` (a hit, or the entry the
    /// lookup removed), if it is one: see the module documentation.
    #[inline(never)]
    pub(super) fn sync_lookup(&mut self, proto: Proto, t: &Tracked) {
        let op = match t.change {
            Change::None => return,
            Change::State if !(t.state.is_active() || t.state.is_closing()) => return,
            Change::State | Change::Refreshed => SyncOp::Update,
            Change::Removed => SyncOp::Delete,
        };
        let left = match op {
            SyncOp::Delete => 0,
            _ => timeout_ms(t.state.timeout(&self.snap.timeouts)),
        };
        if let Some(ring) = &mut self.sync {
            ring.push(SyncRecord::Conn(t.record(op, proto, left)));
        }
    }

    /// The events of a `proto` connection just inserted: its Create, and the Delete of the
    /// half-open entry evicted for it, if any.
    #[inline(never)]
    pub(super) fn sync_inserted(
        &mut self,
        proto: Proto,
        conn: &Tracked,
        evicted: Option<ConnRecord>,
    ) {
        let left = timeout_ms(conn.state.timeout(&self.snap.timeouts));
        let Some(ring) = &mut self.sync else { return };
        if let Some(evicted) = evicted {
            ring.push(SyncRecord::Conn(evicted));
        }
        ring.push(SyncRecord::Conn(conn.record(SyncOp::Create, proto, left)));
    }
}
