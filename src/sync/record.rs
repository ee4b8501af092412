//! [`SyncRecord`]: one change to a connection or a persistence template, as the owning box
//! reports it to its peers.
//!
//! Invariants:
//! - Every address of one record is of one family (a connection's client, VIP, real server and
//!   local endpoint; a template's VIP, client network and real server), except that nothing
//!   here forbids a FULLNAT64 shape: the table that installs a record refuses mixed families,
//!   as it refuses them from the packet path.
//! - `timeout_ms` is the idle time the entry had left when the event happened, in
//!   milliseconds (below `i32::MAX`, as the table's expiries); the receiver installs the entry
//!   with that much left from the moment it installs it.
//! - `local` is `Some` exactly for FULLNAT connections: the local address and port the owning
//!   box took from its pool, which the receiver reserves in its own copy of that pool.

use crate::conntrack::ConnState;
use crate::flow::{Endpoint, Proto};
use crate::sched::persist::TemplateKey;

/// What happened to the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncOp {
    /// A new entry (a scheduled connection, a new template), or a full-dump copy of one.
    Create = 1,
    /// A state change that matters (ESTABLISHED, a closing state) or a refreshed timeout.
    Update = 2,
    /// The entry is gone (closed, expired, evicted, its real server removed).
    Delete = 3,
}

/// One tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    pub op: SyncOp,
    pub proto: Proto,
    pub state: ConnState,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub real: Endpoint,
    /// FULLNAT only: the local address and port the connection's packets to `real` carry.
    pub local: Option<Endpoint>,
    pub timeout_ms: u32,
}

/// One persistence template (client network → real server for a service).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateRecord {
    pub op: SyncOp,
    pub key: TemplateKey,
    pub real: Endpoint,
    pub timeout_ms: u32,
}

/// The unit of sync: what a worker enqueues and one entry of a sync message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRecord {
    Conn(ConnRecord),
    Template(TemplateRecord),
}

impl SyncRecord {
    /// The operation of either kind of record.
    pub fn op(&self) -> SyncOp {
        match self {
            SyncRecord::Conn(c) => c.op,
            SyncRecord::Template(t) => t.op,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), port)
    }

    #[test]
    fn a_record_is_small_enough_to_copy_on_the_packet_path() {
        // Four endpoints and a few bytes: the ring copies it whole per event.
        assert!(
            std::mem::size_of::<SyncRecord>() <= 112,
            "{}",
            std::mem::size_of::<SyncRecord>()
        );
    }

    #[test]
    fn op_reads_either_kind() {
        let conn = ConnRecord {
            op: SyncOp::Update,
            proto: Proto::Tcp,
            state: ConnState::Established,
            client: ep(2, 40000),
            vip: ep(100, 80),
            real: ep(11, 80),
            local: None,
            timeout_ms: 900_000,
        };
        assert_eq!(SyncRecord::Conn(conn).op(), SyncOp::Update);
        let key = TemplateKey::new(Proto::Tcp, ep(100, 80).ip, 80, ep(2, 0).ip, ep(255, 0).ip);
        let template = TemplateRecord {
            op: SyncOp::Delete,
            key,
            real: ep(11, 80),
            timeout_ms: 0,
        };
        assert_eq!(SyncRecord::Template(template).op(), SyncOp::Delete);
    }
}
