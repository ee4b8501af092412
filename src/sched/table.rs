//! The table-lookup scheduler shared by `sh`, `dh` and `mh`: a pick is a lookup in a table
//! built off the packet path, indexed by a hash of the flow, with the fallback rule for an
//! unavailable server. What differs lives in each scheduler's file, behind [`LookupTable`]: how
//! the table is built, what is hashed, and which entries a fallback probes.
//!
//! The lookup rule (IPVS's `ip_vs_sh_schedule`, `ip_vs_mh_schedule`, `ip_vs_dh_schedule`):
//! 1. the entry at the flow's home position names a server; if it is available
//!    ([`RealServer::is_available`]) it is the pick;
//! 2. otherwise, without fallback (`dh` always; `sh`/`mh` without their `*-fallback` flag): no
//!    server;
//! 3. with fallback: no server when none of the list is available (one pass over the servers,
//!    checked before any probe, so that case never costs a walk of the table); else the table's
//!    fallback probes, in order, and the first available server among them.
//!
//! Invariants: a lookup never allocates, locks or reads a clock; it makes at most
//! [`LookupTable::fallback_probes`] probes; a server index it returns is one of `reals` and
//! available. A table built for another list than `reals` gives only indices that are checked
//! against `reals`.

use std::fmt;
use std::sync::Arc;

use super::{RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// A scheduler's prebuilt lookup table (see the module documentation).
pub trait LookupTable: fmt::Debug + Send + Sync {
    /// Where `key` lands: its home position, which [`LookupTable::server`] and the fallback
    /// probes start from.
    fn home(&self, key: &FlowKey) -> u32;

    /// The server of the entry at `pos` (a home position); `None` when the table is empty.
    fn server(&self, pos: u32) -> Option<usize>;

    /// How many fallback probes a lookup may make when the home server is unavailable; `None`
    /// when the table has no fallback.
    fn fallback_probes(&self) -> Option<u32>;

    /// The server of the `n`-th fallback probe (`n` below [`LookupTable::fallback_probes`]) of
    /// `key`, whose home is `home`.
    fn probe(&self, key: &FlowKey, home: u32, n: u32) -> Option<usize>;
}

/// The server for `key` in `table`, looked up in `reals` (the list the table was built for), by
/// the rule of the module documentation.
#[inline]
pub fn lookup<T: LookupTable + ?Sized>(
    table: &T,
    key: &FlowKey,
    reals: &[RealServer],
) -> Option<usize> {
    let home = table.home(key);
    let first = table.server(home)?;
    if reals.get(first)?.is_available() {
        return Some(first);
    }
    let probes = table.fallback_probes()?;
    if !reals.iter().any(RealServer::is_available) {
        return None;
    }
    (0..probes)
        .filter_map(|n| table.probe(key, home, n))
        .find(|&i| reals.get(i).is_some_and(RealServer::is_available))
}

/// A scheduler that picks by [`lookup`] in a shared table: `sh`, `dh` and `mh` (no state of its
/// own; every worker's instance shares the one table built by the control plane).
#[derive(Debug)]
pub struct TableLookup<T> {
    table: Arc<T>,
}

impl<T: LookupTable> TableLookup<T> {
    pub fn new(table: Arc<T>) -> TableLookup<T> {
        TableLookup { table }
    }
}

impl<T: LookupTable> Scheduler for TableLookup<T> {
    #[inline]
    fn pick(&mut self, _now: Nanos, key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        lookup(&*self.table, key, reals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, reals};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A table of fixed entries; the home is the source address modulo the size, and fallback
    /// probe `n` is entry `home + 1 + n`. Counts its probes.
    #[derive(Debug)]
    struct Fixed {
        entries: Vec<usize>,
        fallback: bool,
        probes: AtomicU32,
    }

    impl Fixed {
        fn new(entries: &[usize], fallback: bool) -> Fixed {
            Fixed {
                entries: entries.to_vec(),
                fallback,
                probes: AtomicU32::new(0),
            }
        }

        fn at(&self, pos: u32) -> Option<usize> {
            let n = self.entries.len();
            (n > 0).then(|| self.entries[pos as usize % n])
        }
    }

    impl LookupTable for Fixed {
        fn home(&self, key: &FlowKey) -> u32 {
            let n = u32::try_from(self.entries.len()).unwrap().max(1);
            crate::sched::hash::fold(key.src) % n
        }
        fn server(&self, pos: u32) -> Option<usize> {
            self.at(pos)
        }
        fn fallback_probes(&self) -> Option<u32> {
            self.fallback
                .then(|| u32::try_from(self.entries.len()).unwrap())
        }
        fn probe(&self, _key: &FlowKey, home: u32, n: u32) -> Option<usize> {
            self.probes.fetch_add(1, Ordering::Relaxed);
            self.at(home + 1 + n)
        }
    }

    fn pick(t: Fixed, src: u32, r: &[RealServer]) -> (Option<usize>, u32) {
        let t = Arc::new(t);
        let got = TableLookup::new(t.clone()).pick(0, &flow(src, 1024, 1), r);
        (got, t.probes.load(Ordering::Relaxed))
    }

    #[test]
    fn the_home_entry_wins_while_its_server_is_available() {
        let r = reals(&[1, 1, 1]);
        assert_eq!(pick(Fixed::new(&[2, 0, 1], true), 0, &r), (Some(2), 0));
        assert_eq!(pick(Fixed::new(&[2, 0, 1], true), 4, &r), (Some(0), 0));
    }

    #[test]
    fn unavailable_home_server_is_no_server_without_fallback() {
        let r = reals(&[1, 1, 1]);
        r[2].stats.set_up(false);
        assert_eq!(pick(Fixed::new(&[2, 0, 1], false), 0, &r), (None, 0));
    }

    #[test]
    fn fallback_takes_the_first_available_probe_in_order() {
        let r = reals(&[1, 1, 0]);
        r[1].stats.set_up(false);
        // Home 0 holds server 1 (down); probes: entry 1 (server 2, weight 0), entry 2 (server 0).
        assert_eq!(pick(Fixed::new(&[1, 2, 0], true), 0, &r), (Some(0), 2));
    }

    #[test]
    fn nothing_available_is_none_without_a_probe() {
        let r = reals(&[1, 1]);
        r[0].stats.set_up(false);
        r[1].stats.set_up(false);
        assert_eq!(pick(Fixed::new(&[0, 1, 0, 1], true), 0, &r), (None, 0));
    }

    #[test]
    fn probes_are_bounded_and_indices_checked_against_the_list() {
        // Every probe names a server past the end of the list: no pick, and no more probes
        // than the table allows.
        let r = reals(&[1, 1]);
        r[0].stats.set_up(false);
        assert_eq!(pick(Fixed::new(&[0, 5, 7, 9], true), 0, &r), (None, 4));
        assert_eq!(pick(Fixed::new(&[], true), 0, &r), (None, 0));
        assert_eq!(pick(Fixed::new(&[3], true), 0, &reals(&[1])), (None, 0));
    }
}
