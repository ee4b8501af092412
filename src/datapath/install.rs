//! Connection sync's install side at the datapath's level (issue 16): a peer's [`SyncRecord`]
//! mapped to this box's configuration and installed into the shared tables, and the full-dump
//! source over both tables.
//!
//! Invariants:
//! - A record names addresses only; this box finds the service by the record's VIP:port and
//!   protocol (an all-port service included) and the real server by address in its own
//!   snapshot, and refuses what it does not have ([`InstallError::UnknownService`],
//!   [`InstallError::UnknownReal`]): it never forwards to a server it was not configured with.
//!   A port-0 real server matches any port (it keeps the client's destination port), the sorry
//!   server matches too.
//! - How the entry is tracked follows this box's service: FULLNAT needs the record's local
//!   endpoint (reserved in the service's pool), NAT tracks both directions, DR and TUN the
//!   original one only; a record that disagrees is refused ([`InstallError::MethodMismatch`]).
//! - The install runs on the sync thread, never on a worker; each record takes one shard lock
//!   for one operation, as a packet does. VRRP does not gate it: a backup keeps the entries
//!   ready and forwards them as soon as it holds the VIP.
//! - The sync thread holds an `Arc<Shared>`, the very tables the workers use: a reload swaps
//!   the snapshot inside it (`Shared::snapshot`), never the tables, so installs always land
//!   where the packets look and are mapped through the newest configuration
//!   ([`RecordSink`] and [`DumpSource`] for `Arc<Shared>`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::conntrack::{ConnDump, InstallTarget, Origin, Track};
use crate::datapath::{Service, Shared, Snapshot};
use crate::flow::{Endpoint, Nanos};
use crate::sched::persist::TemplateDump;
use crate::sched::RealServer;
use crate::sync::record::{ConnRecord, SyncOp, SyncRecord, TemplateRecord};
use crate::sync::tables::{DumpSource, InstallRefusal, RecordSink};

pub use crate::conntrack::InstallError;

/// The position of a full dump of the shared tables ([`Shared::dump_page`]): connections, then
/// templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullDump {
    conns: ConnDump,
    templates: TemplateDump,
}

impl FullDump {
    /// Whether both tables were dumped whole.
    pub fn is_done(&self) -> bool {
        self.conns.is_done() && self.templates.is_done()
    }
}

/// The real server of `svc` at `real` (a port-0 server at any port, or the sorry server), with
/// its traffic slot.
fn find_real(svc: &Service, real: Endpoint) -> Option<(usize, &RealServer)> {
    let exact = SocketAddr::from(real);
    let any_port = SocketAddr::new(real.ip, 0);
    for addr in [exact, any_port] {
        if let Some(i) = svc.real_position(addr) {
            return svc.reals.get(i).map(|r| (i, r));
        }
    }
    let sorry = svc.sorry.as_ref()?;
    (sorry.addr == exact || sorry.addr == any_port).then_some((svc.reals.len(), sorry))
}

/// Where the connection of `rec` belongs in `snap` (see the module documentation).
pub fn conn_target(snap: &Snapshot, rec: &ConnRecord) -> Result<InstallTarget, InstallError> {
    let si = snap
        .service_to(rec.vip.ip, rec.vip.port, rec.proto)
        .ok_or(InstallError::UnknownService)?;
    let svc = &snap.services[si];
    let (slot, server) = find_real(svc, rec.real).ok_or(InstallError::UnknownReal)?;
    // As the scheduler records it: a port-0 server's slot is found by address.
    let origin = match server.addr.port() {
        0 => Origin::UNKNOWN,
        _ => Origin::new(si, slot),
    };
    let track = match (rec.local, svc.local_pool) {
        (Some(_), Some(pool)) => Track::FullNat { pool },
        (Some(_), None) => return Err(InstallError::MethodMismatch),
        (None, _) if svc.forwarding.replies_return() => Track::Both,
        (None, _) => Track::OriginalOnly,
    };
    Ok(InstallTarget {
        origin,
        stats: server.stats.clone(),
        track,
    })
}

/// Checks that the template of `rec` names a service and real server of `snap`.
fn check_template(snap: &Snapshot, rec: &TemplateRecord) -> Result<(), InstallError> {
    let k = &rec.key;
    let si = snap
        .service_to(k.vip, k.vport, k.proto)
        .ok_or(InstallError::UnknownService)?;
    find_real(&snap.services[si], rec.real)
        .map(|_| ())
        .ok_or(InstallError::UnknownReal)
}

impl Shared {
    /// Installs a peer's record into this box's tables at `now`, mapped through the current
    /// snapshot: a connection's Create or Update ([`crate::conntrack::ConnTable::install`]),
    /// Delete ([`crate::conntrack::ConnTable::uninstall`]), or a template's
    /// ([`crate::sched::persist::PersistenceTable::install`]).
    pub fn install(&self, rec: &SyncRecord, now: Nanos) -> Result<(), InstallError> {
        let snap = self.snapshot.load();
        match rec {
            SyncRecord::Conn(c) if c.op == SyncOp::Delete => {
                self.conntrack.uninstall(c).map(|_| ())
            }
            SyncRecord::Conn(c) => {
                let target = conn_target(&snap, c)?;
                self.conntrack.install(c, target, now).map(|_| ())
            }
            SyncRecord::Template(t) => {
                if t.op != SyncOp::Delete {
                    check_template(&snap, t)?;
                }
                (self.persistence.install(t, now)).map_err(|_| InstallError::TemplateFull)
            }
        }
    }

    /// The next page of a full dump of this box's connections, then templates: a Create record
    /// of every live entry among up to `max_slots` slots of one shard (one lock per page).
    /// Returns `false` once the dump is complete.
    pub fn dump_page(
        &self,
        cursor: &mut FullDump,
        now: Nanos,
        max_slots: usize,
        out: &mut Vec<SyncRecord>,
    ) -> bool {
        if !cursor.conns.is_done() {
            self.conntrack
                .dump_page(&mut cursor.conns, now, max_slots, out);
        } else {
            (self.persistence).dump_page(&mut cursor.templates, now, max_slots, out);
        }
        !cursor.is_done()
    }
}

/// Table slots a full dump reads per page (one shard lock each): a few microseconds of lock
/// hold, a few messages' worth of records from a full table.
pub const DUMP_PAGE_SLOTS: usize = 1024;

/// The sync thread's sink: a peer's record installed into the workers' own tables.
impl RecordSink for Arc<Shared> {
    fn install(&mut self, record: &SyncRecord, now: Nanos) -> Result<(), InstallRefusal> {
        Shared::install(self, record, now).map_err(InstallRefusal::from)
    }
}

/// The sync thread's dump: [`SharedDump`], pulled lazily.
impl DumpSource for Arc<Shared> {
    fn dump(&mut self, now: Nanos) -> Box<dyn Iterator<Item = SyncRecord> + Send> {
        Box::new(SharedDump::new(self.clone(), now))
    }
}

/// A full dump of the shared tables as an iterator: one page ([`DUMP_PAGE_SLOTS`] slots, one
/// shard lock) read whenever the records of the last one are used up. Each page is read at
/// the dump's `now` plus the time since the dump began, so the idle times left that its
/// records carry are those of when they were read, however long the sender paces the dump.
pub struct SharedDump {
    shared: Arc<Shared>,
    cursor: FullDump,
    start: Nanos,
    began: Instant,
    page: Vec<SyncRecord>,
    ready: VecDeque<SyncRecord>,
}

impl SharedDump {
    /// A dump of `shared` from its first slot, begun at `now`.
    pub fn new(shared: Arc<Shared>, now: Nanos) -> SharedDump {
        SharedDump {
            shared,
            cursor: FullDump::default(),
            start: now,
            began: Instant::now(),
            page: Vec::new(),
            ready: VecDeque::new(),
        }
    }
}

impl Iterator for SharedDump {
    type Item = SyncRecord;

    fn next(&mut self) -> Option<SyncRecord> {
        while self.ready.is_empty() && !self.cursor.is_done() {
            let elapsed = u64::try_from(self.began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let now = self.start.saturating_add(elapsed);
            self.page.clear();
            (self.shared).dump_page(&mut self.cursor, now, DUMP_PAGE_SLOTS, &mut self.page);
            self.ready.extend(self.page.drain(..));
        }
        self.ready.pop_front()
    }
}
