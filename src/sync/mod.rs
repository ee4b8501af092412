//! Connection state sync between directors (issue 16): what one box tells its peers about the
//! connections and persistence templates it owns, so that a peer taking over a VIP forwards
//! them at once.
//!
//! Layers (the same split as [`crate::vrrp`]):
//! - [`record`]: the unit of sync, [`SyncRecord`]: plain `Copy` values that the workers enqueue
//!   on the packet path and the wire codec carries. It imports only [`crate::flow`],
//!   [`crate::conntrack::ConnState`] and [`crate::sched`]'s template key, never the control
//!   plane, so both the datapath and the sync thread build on it.
//!
//! - [`ring`]: the per-worker bounded event ring (single producer: the worker; single
//!   consumer: the sync thread); a full ring drops and counts, never blocks.
//!
//! Invariants every layer keeps: a record names addresses, ports and states only (never a slot,
//! a shard or a pointer of the sending box), so a peer installs it into a table of another
//! size; a record's timeout is the time the entry had left when the event happened, in
//! milliseconds, below [`crate::conntrack::MAX_TIMEOUT`].

pub mod record;
pub mod ring;

pub use record::{ConnRecord, SyncOp, SyncRecord, TemplateRecord};
