//! Locality-based least connection (`lblc`), as IPVS's `ip_vs_lblc`.
//!
//! Each destination address (the flow's `dst`) is remembered with the server it was last sent
//! to, and keeps it:
//!
//! - **Known destination**: its server is taken again if it is available
//!   ([`RealServer::is_available`]: weight > 0, up, not over its upper threshold) and not
//!   overloaded in lblc's sense: more active connections than its weight while some available
//!   server has fewer than half its weight in active connections (IPVS's `is_overloaded`).
//!   Otherwise a new server is picked, below, and replaces the old one for the destination.
//! - **New destination, or its server may not keep it**: the weighted least-connection pick
//!   (IPVS's `__ip_vs_lblc_schedule`, the `wlc` rule): least `(active * 256 + inactive) /
//!   weight` among available servers, first on ties; `None` when no server is available (the
//!   remembered entry, if any, stays as it was).
//!
//! Departures from IPVS:
//! - **Per worker**: IPVS has one table per service, shared by every CPU under a lock. In xvs
//!   each worker owns its scheduler instances (no lock on the packet path), so each worker has
//!   its own table, and one destination can be on different servers on different workers (at
//!   most one per worker). Locality holds per worker; the overload rule reads the connection
//!   counts every worker shares, so overload moves a destination on every worker alike.
//! - **Bounded table**: [`DESTINATIONS`] entries allocated when the scheduler is built, expired
//!   and replaced as the shared destination table documents (idle 24 h: dropped; a new
//!   destination replaces an entry idle for 6 min; when none is, it is served unremembered, as
//!   IPVS does when its table is over its limit). IPVS's table holds up to 16384 entries per
//!   service; in xvs a service is a VIP and port, so every new flow of a service has the VIP
//!   as destination and a table holds one entry per VIP until services match many
//!   destinations.
//! - **Reloads**: the table starts empty whenever the worker rebuilds its schedulers, i.e. on
//!   every new snapshot (IPVS keeps it across `ipvsadm` edits).

use super::locality::{is_overloaded, DestinationTable};
use super::{least_by_ratio, RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// log2 of the number of sets of the destination table.
const SET_BITS: u32 = 6;
/// Destinations one worker's `lblc` table remembers per service (64 sets of 4).
pub const DESTINATIONS: usize = super::locality::WAYS << SET_BITS;

/// The `lblc` scheduler of one worker: destination → server.
#[derive(Debug)]
pub struct LocalityLeastConnection {
    table: DestinationTable,
    /// The server of each slot of `table`.
    server: Box<[u32]>,
}

impl LocalityLeastConnection {
    /// An empty table (the server list only matters at pick time).
    pub fn new(_reals: &[RealServer]) -> LocalityLeastConnection {
        let table = DestinationTable::new(SET_BITS);
        let server = vec![0; table.capacity()].into_boxed_slice();
        LocalityLeastConnection { table, server }
    }
}

impl Scheduler for LocalityLeastConnection {
    fn pick(&mut self, now: Nanos, key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let slot = self.table.find(key.dst, now);
        if let Some(&cached) = slot.and_then(|s| self.server.get(s)) {
            let i = cached as usize;
            if reals.get(i).is_some_and(RealServer::is_available) && !is_overloaded(reals, i) {
                return Some(i);
            }
        }
        let i = least_by_ratio(reals, RealServer::conn_overhead)?;
        // A server index fits a `u32` (the config allows 4096 servers); one that did not would
        // only go unremembered.
        if let Ok(id) = u32::try_from(i) {
            if let Some(s) = slot.or_else(|| self.table.insert(key.dst, now)) {
                if let Some(entry) = self.server.get_mut(s) {
                    *entry = id;
                }
            }
        }
        Some(i)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use crate::sched::locality::{ENTRY_TIMEOUT, EXPIRATION};
    use crate::sched::testutil::{flow, loaded, set_active};

    const SEC: Nanos = crate::flow::NANOS_PER_SEC;
    const VIP: u32 = 0xC612_0064;

    fn pick(
        s: &mut LocalityLeastConnection,
        now: Nanos,
        dst: u32,
        r: &[RealServer],
    ) -> Option<usize> {
        s.pick(now, &flow(0x0A00_0001, 40000, dst), r)
    }

    #[test]
    fn destination_sticks_until_overload_then_moves() {
        // Weights 4 and 4; server 1 starts less loaded, so wlc picks it first.
        let r = loaded(&[(4, 1, 0), (4, 0, 0)]);
        let mut s = LocalityLeastConnection::new(&r);
        assert_eq!(pick(&mut s, 0, VIP, &r), Some(1));
        // It stays there while it fills up to its weight, though server 0 is now less loaded.
        for active in 1..=4 {
            set_active(&r, 1, active);
            assert_eq!(
                pick(&mut s, active * SEC, VIP, &r),
                Some(1),
                "active {active}"
            );
        }
        // Over its weight, but server 0 has 1 active, not below half of 4: still stays.
        set_active(&r, 1, 5);
        set_active(&r, 0, 2);
        assert_eq!(pick(&mut s, 10 * SEC, VIP, &r), Some(1));
        // Server 0 drops below half its weight: now server 1 is overloaded, the destination moves
        // to the weighted least-connection server and stays there.
        set_active(&r, 0, 1);
        assert_eq!(pick(&mut s, 11 * SEC, VIP, &r), Some(0));
        set_active(&r, 1, 0);
        assert_eq!(pick(&mut s, 12 * SEC, VIP, &r), Some(0), "remembered");
    }

    #[test]
    fn different_destinations_are_remembered_separately() {
        let r = loaded(&[(1, 0, 0), (1, 0, 0)]);
        let mut s = LocalityLeastConnection::new(&r);
        assert_eq!(pick(&mut s, 0, 1, &r), Some(0));
        set_active(&r, 0, 1);
        assert_eq!(pick(&mut s, 0, 2, &r), Some(1));
        set_active(&r, 1, 1);
        for _ in 0..3 {
            assert_eq!(pick(&mut s, SEC, 1, &r), Some(0));
            assert_eq!(pick(&mut s, SEC, 2, &r), Some(1));
        }
    }

    #[test]
    fn unavailable_server_loses_its_destinations() {
        // Server 1 has one active connection: at its weight, not over it.
        let r = loaded(&[(1, 0, 0), (1, 1, 0)]);
        let mut s = LocalityLeastConnection::new(&r);
        assert_eq!(pick(&mut s, 0, VIP, &r), Some(0));
        r[0].stats.set_up(false);
        assert_eq!(pick(&mut s, SEC, VIP, &r), Some(1));
        r[0].stats.set_up(true);
        assert_eq!(pick(&mut s, 2 * SEC, VIP, &r), Some(1), "moved for good");
        let mut q = r.clone();
        q[1].weight = 0;
        assert_eq!(pick(&mut s, 3 * SEC, VIP, &q), Some(0), "quiescent");
        r[0].stats.set_up(false);
        r[1].stats.set_up(false);
        assert_eq!(pick(&mut s, 4 * SEC, VIP, &r), None);
    }

    #[test]
    fn entry_idle_for_24_hours_is_forgotten() {
        let r = loaded(&[(1, 0, 0), (1, 0, 0)]);
        let mut s = LocalityLeastConnection::new(&r);
        assert_eq!(pick(&mut s, 0, VIP, &r), Some(0));
        set_active(&r, 0, 1);
        assert_eq!(pick(&mut s, EXPIRATION - 1, VIP, &r), Some(0));
        // Idle 24 h since the last use: wlc decides again.
        assert_eq!(pick(&mut s, 2 * EXPIRATION - 1, VIP, &r), Some(1));
    }

    #[test]
    fn table_is_bounded_and_busy_destinations_keep_their_server() {
        let r = loaded(&[(1, 0, 0), (1, 0, 0), (1, 0, 0)]);
        let mut s = LocalityLeastConnection::new(&r);
        // Far more destinations than the table holds, all within 6 min.
        let first: Vec<_> = (0..DESTINATIONS as u32 * 4)
            .map(|d| {
                let p = pick(&mut s, 0, d, &r);
                set_active(&r, p.unwrap(), d as u64 % 7);
                p
            })
            .collect();
        assert!(first.iter().all(Option::is_some), "always a server");
        assert!(s.table.len() <= DESTINATIONS);
        // The remembered ones keep their server.
        for r_ in r.iter() {
            r_.stats
                .active
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        let kept = (0..DESTINATIONS as u32 * 4)
            .filter(|&d| pick(&mut s, SEC, d, &r) == first[d as usize])
            .count();
        assert!(kept >= s.table.len(), "{kept} of {}", s.table.len());
        // After 6 min idle, new destinations get room again (a set takes at most 4 of them).
        let later = ENTRY_TIMEOUT + SEC;
        let new = 1_000_000..1_000_000 + DESTINATIONS as u32;
        for d in new.clone() {
            pick(&mut s, later, d, &r);
        }
        let remembered = new
            .filter(|&d| {
                s.table
                    .find(std::net::IpAddr::from(d.to_be_bytes()), later)
                    .is_some()
            })
            .count();
        assert!(remembered > DESTINATIONS / 2, "{remembered}");
        assert!(s.table.len() <= DESTINATIONS);
    }

    #[test]
    fn ipv6_destinations_are_remembered_separately() {
        use crate::sched::testutil::{flow6, reals6, v6};
        let r = reals6(&[1, 1]);
        let mut s = LocalityLeastConnection::new(&r);
        let (d1, d2) = (v6((1 << 64) | 1), v6((2 << 64) | 1));
        let mut pick = |now, dst| s.pick(now, &flow6(v6(7), 40000, dst), &r);
        assert_eq!(pick(0, d1), Some(0));
        set_active(&r, 0, 1);
        assert_eq!(pick(0, d2), Some(1));
        set_active(&r, 1, 1);
        for _ in 0..3 {
            assert_eq!(pick(SEC, d1), Some(0));
            assert_eq!(pick(SEC, d2), Some(1));
        }
        // Forgotten after 24 hours idle, as over IPv4.
        set_active(&r, 0, 5);
        assert_eq!(pick(EXPIRATION + 2 * SEC, d1), Some(1));
    }
}
