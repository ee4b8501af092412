//! Connection state sync between directors (issue 16): what one box tells its peers about the
//! connections and persistence templates it owns, so that a peer taking over a VIP forwards
//! them at once.
//!
//! Layers (the same split as [`crate::vrrp`]):
//! - [`record`]: the unit of sync, [`SyncRecord`]: plain `Copy` values that the workers enqueue
//!   on the packet path and the wire codec carries. It imports only [`crate::flow`],
//!   [`crate::conntrack::ConnState`] and [`crate::sched`]'s template key, never the control
//!   plane, so both the datapath and the sync thread build on it.
//! - [`wire`]: the message format (version first, header, fixed-size records, HMAC-SHA256 tag)
//!   as a checked view and `Repr`s, encoded into a caller's buffer; [`wire::record`] is one
//!   record's bytes.
//! - [`auth`]: the HMAC-SHA256 [`Key`]; [`keyfile`]: reading it from `sync.key_file` (mode,
//!   type, length rules), for `xvs check` and start-up alike.
//! - [`replay`]: per sender, its epoch and a 1024-message sliding window.
//! - [`channel`]: the sans-IO ends, [`Sealer`] (number, sign) and [`Opener`] (check length,
//!   tag, records, then replay), and [`pager`]: a full dump in bounded bursts, then dump-end.
//! - [`SyncError`]: every reason a received message is dropped, the `reason` label of
//!   `xvs_sync_errors_total`.
//! - [`ring`]: the per-worker bounded event ring (single producer: the worker; single
//!   consumer: the sync thread); a full ring drops and counts, never blocks.
//! - [`tables`]: what the endpoint needs of this box's tables ([`tables::RecordSource`],
//!   [`tables::DumpSource`], [`tables::RecordSink`]); [`endpoint`]: [`endpoint::SyncEndpoint`],
//!   the sans-IO machine (batching, dump requests and bursts, bounded queue, per-peer counters).
//! - [`driver`]: the `xvs-sync` thread (socket, clock, poll loop) and [`status`], what it
//!   publishes for `xvs ctl sync` and the `xvs_sync_*` metrics.
//!
//! None of these but [`driver`] read a clock or open a socket, and none imports `control`: the
//! driver feeds the rest with bytes and `now`.
//!
//! Invariants every layer keeps: a record names addresses, ports and states only (never a slot,
//! a shard or a pointer of the sending box), so a peer installs it into a table of another
//! size; a record's timeout is the time the entry had left when the event happened, in
//! milliseconds, below [`crate::conntrack::MAX_TIMEOUT`].

pub mod auth;
pub mod channel;
pub mod driver;
pub mod endpoint;
pub mod error;
pub mod keyfile;
pub mod pager;
pub mod record;
pub mod replay;
pub mod ring;
pub mod status;
pub mod tables;
pub mod wire;

pub use auth::Key;
pub use channel::{Opener, Sealer};
pub use error::{EncodeError, SyncError};
pub use record::{ConnRecord, SyncOp, SyncRecord, TemplateRecord};
