//! The admin socket and `xvs ctl`: protocol, daemon side, client side, ipvsadm layouts.
//!
//! | file | owns | may import |
//! |---|---|---|
//! | [`protocol`] | the wire: [`Request`] lines, [`Reply`] status + body, the JSON reply bodies, typed parse errors | serde only (nothing of the crate) |
//! | [`answer`] | the daemon's answers: `list`/`conns`/`stats`/`vrrp` from the shared state, `reload`/`real` relayed to the main loop, [`AdminError`] | `protocol`, datapath shared state and counters, `control::stats`, the VRRP status |
//! | [`server`] | the Unix socket: 0600 bind, accept loop, one thread per connection, deadlines and the connection cap | `answer`, `protocol`, the poll wrapper |
//! | [`client`] | `xvs ctl`'s command line, the exchange with the daemon, what it prints, [`CtlError`] | `protocol`, `format` |
//! | [`format`](mod@format) | ipvsadm's text layouts of the replies (`-L -n`, `--stats`, `--rate`, `-c`), `stats` and `vrrp` | `protocol` |
//!
//! The client side (`client`, `format`, `protocol`) knows nothing of the daemon's internals, and
//! the daemon side never formats text for a terminal: the daemon sends data, the client chooses
//! the layout. Every error is a typed enum whose text is word for word what the user reads.
//!
//! The daemon uses [`spawn_server`], [`AdminState`], [`reload_channel`] and [`MainOp`] (re-exported
//! here); `xvs ctl` uses [`ctl`], the names of the former `control::ctl` module.

pub mod answer;
pub mod client;
pub mod format;
pub mod protocol;
pub mod server;

pub use answer::{
    conns, handle, list, reload_channel, vrrp_reply, AdminError, AdminState, ListCounters, MainOp,
    ReloadOutcome, ReloadRequest,
};
pub use client::CtlError;
pub use protocol::{Reply, Request};
pub use server::{spawn_server, spawn_server_with, AdminLimits, LIMITS};

/// `xvs ctl`'s names at their former path `control::ctl` (the client, its layouts and the
/// protocol types), so callers of that module keep compiling.
pub mod ctl {
    pub use super::client::*;
    pub use super::format::*;
    pub use super::protocol::*;
}
