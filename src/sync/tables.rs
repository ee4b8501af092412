//! What the sync endpoint needs of this box's tables, as three small traits: where the local
//! changes come from ([`RecordSource`]: the workers' rings), a full dump of every live entry
//! ([`DumpSource`]), and where a peer's records go ([`RecordSink`]: the connection and
//! persistence tables' install). The endpoint ([`super::endpoint`]) and its driver know only
//! these, so they are tested with fakes and the daemon plugs in the real ones.
//!
//! Invariants: none of the three blocks (a ring drained empty returns what it has; an install
//! takes one shard lock for one record, as a packet does); [`RecordSink::install`] refuses with
//! a [`InstallRefusal`], a `Copy` reason that doubles as a counter index
//! (`xvs_sync_install_refused_total{reason}`), never a string.

use super::record::SyncRecord;
use super::ring::SyncConsumer;
use crate::conntrack::InstallError;
use crate::flow::Nanos;

/// The local changes to send: the workers' event rings, drained by the sync thread.
pub trait RecordSource {
    /// Moves up to `max` records, oldest first, to the end of `out`; returns how many.
    fn drain_into(&mut self, out: &mut Vec<SyncRecord>, max: usize) -> usize;

    /// Records the rings dropped because they were full (the workers' side of "drop and
    /// count"), since the start; 0 when the source does not count.
    fn dropped(&self) -> u64 {
        0
    }
}

/// A full dump of this box's tables, for a peer that joins.
pub trait DumpSource {
    /// A fresh iterator over a Create record of every live connection and template at `now`.
    /// It is pulled lazily, a message's worth at a time, between bursts (a paging iterator over
    /// the tables takes one lock per page, never the whole table).
    fn dump(&mut self, now: Nanos) -> Box<dyn Iterator<Item = SyncRecord> + Send>;
}

/// Where a peer's records go: this box's connection and persistence tables.
pub trait RecordSink {
    /// Installs (Create, Update) or removes (Delete) the entry of `record` at `now`, or says
    /// why not.
    fn install(&mut self, record: &SyncRecord, now: Nanos) -> Result<(), InstallRefusal>;
}

macro_rules! refusals {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )*) => {
        /// Why this box did not install a peer's record (the `reason` of
        /// `xvs_sync_install_refused_total`). Labels are stable.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum InstallRefusal {
            $( $(#[$doc])* $variant, )*
        }

        impl InstallRefusal {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [InstallRefusal] = &[$(InstallRefusal::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = InstallRefusal::ALL.len();

            /// The `reason` label.
            pub const fn label(self) -> &'static str {
                match self {
                    $(InstallRefusal::$variant => $label,)*
                }
            }

            /// Index into a counter array.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

refusals! {
    /// The record's addresses mix the families, or its family has no table here.
    MixedFamilies => "mixed_families",
    /// No service here has the record's VIP, port and protocol.
    UnknownService => "unknown_service",
    /// The service here has no such real server (nor sorry server).
    UnknownReal => "unknown_real",
    /// The record's forwarding method is not the service's here (a local endpoint given for a
    /// service that is not FULLNAT here, or missing for one that is).
    MethodMismatch => "method_mismatch",
    /// The FULLNAT local endpoint is not in the service's pool here, or cannot be reserved.
    LocalPort => "local_port",
    /// The connection table's shard is full of live entries.
    TableFull => "table_full",
    /// The persistence template table's shard is full.
    TemplateFull => "template_full",
}

impl From<InstallError> for InstallRefusal {
    /// The table's reason as a counter label (one to one; `Full` is `table_full`).
    fn from(e: InstallError) -> InstallRefusal {
        match e {
            InstallError::MixedFamilies => InstallRefusal::MixedFamilies,
            InstallError::UnknownService => InstallRefusal::UnknownService,
            InstallError::UnknownReal => InstallRefusal::UnknownReal,
            InstallError::MethodMismatch => InstallRefusal::MethodMismatch,
            InstallError::LocalPort(_) => InstallRefusal::LocalPort,
            InstallError::Full => InstallRefusal::TableFull,
            InstallError::TemplateFull => InstallRefusal::TemplateFull,
        }
    }
}

/// The workers' rings, one consumer each: every ring visited per call, each up to an equal
/// share of `max`, so one busy worker cannot starve the others' records.
impl RecordSource for Vec<SyncConsumer> {
    fn drain_into(&mut self, out: &mut Vec<SyncRecord>, max: usize) -> usize {
        let share = max.div_ceil(self.len().max(1));
        let mut n = 0;
        for c in self.iter_mut() {
            n += c.drain_into(out, share.min(max - n));
        }
        n
    }

    fn dropped(&self) -> u64 {
        self.iter().map(SyncConsumer::dropped).sum()
    }
}

/// A source, dump and sink with nothing in them, for tests of the endpoint and the driver (it
/// records nothing, dumps nothing and drops what it is given). The daemon plugs in the
/// workers' rings and `Arc<Shared>` (`control::sync_spec::tables`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Nothing;

impl RecordSource for Nothing {
    fn drain_into(&mut self, _: &mut Vec<SyncRecord>, _: usize) -> usize {
        0
    }
}

impl DumpSource for Nothing {
    fn dump(&mut self, _: Nanos) -> Box<dyn Iterator<Item = SyncRecord> + Send> {
        Box::new(std::iter::empty())
    }
}

impl RecordSink for Nothing {
    fn install(&mut self, _: &SyncRecord, _: Nanos) -> Result<(), InstallRefusal> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rings_are_drained_in_fair_shares_and_their_drops_summed() {
        use crate::conntrack::ConnState;
        use crate::flow::{Endpoint, Proto};
        use crate::sync::record::{ConnRecord, SyncOp};
        use crate::sync::ring::ring;
        let ep = |last: u8| Endpoint::new(std::net::Ipv4Addr::new(198, 18, 0, last).into(), 80);
        let c = ConnRecord {
            op: SyncOp::Create,
            proto: Proto::Tcp,
            state: ConnState::Established,
            client: ep(2),
            vip: ep(100),
            real: ep(11),
            local: None,
            timeout_ms: 1000,
        };
        let (mut p0, c0) = ring(8);
        let (mut p1, c1) = ring(2);
        for _ in 0..6 {
            p0.push(SyncRecord::Conn(c));
        }
        for _ in 0..3 {
            p1.push(SyncRecord::Conn(c));
        }
        let mut rings = vec![c0, c1];
        assert_eq!(
            RecordSource::dropped(&rings),
            1,
            "the third push to a ring of 2"
        );
        let mut out = Vec::new();
        // A share of 2 each: two from each ring.
        assert_eq!(rings.drain_into(&mut out, 4), 4);
        assert_eq!(rings.drain_into(&mut out, 100), 4);
        assert_eq!(out.len(), 6 + 2);
        assert_eq!(rings.drain_into(&mut out, 100), 0);
        assert_eq!(
            InstallRefusal::from(InstallError::Full),
            InstallRefusal::TableFull
        );
    }

    #[test]
    fn refusal_labels_are_unique_and_indices_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in InstallRefusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(seen.insert(r.label()));
        }
    }
}
