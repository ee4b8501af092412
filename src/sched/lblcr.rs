//! Locality-based least connection with replication (`lblcr`), as IPVS's `ip_vs_lblcr`.
//!
//! Each destination address (the flow's `dst`) is remembered with a *set* of servers, so that a
//! busy destination can be served by several servers while an idle one stays on one:
//!
//! - **New destination**: the weighted least-connection pick (the `wlc` rule: least
//!   `(active * 256 + inactive) / weight` among available servers, first on ties) becomes its
//!   set of one. `None` when no server is available.
//! - **Known destination**: the least loaded available member of its set is picked (the same
//!   rule over the members, newest member first on ties as IPVS's list is). If its set has more
//!   than one member and has not changed for [`EXPIRATION`] (IPVS's default
//!   `lblcr_expiration`, 24 h), its most loaded member (highest `overhead / weight` among
//!   members with weight > 0) is dropped from it, which counts as a change. Then, if the picked
//!   member exists and is not overloaded in lblc's sense (more active connections than its
//!   weight while some available server has fewer than half its weight), it is used.
//!   Otherwise the weighted least-connection server of the whole service is used and added to
//!   the set (a change), unless it is already a member.
//!
//! Departures from IPVS:
//! - **Per worker**: IPVS has one table per service, shared under a lock. Each xvs worker owns
//!   its scheduler instances, so each worker has its own table and sets (a destination's set can
//!   differ between workers). The loads that grow and shrink the sets are the connection
//!   counts every worker shares.
//! - **Bounded table**: [`DESTINATIONS`] entries, allocated when the scheduler is built and
//!   expired and replaced as the shared destination table documents (idle 24 h: dropped; a new
//!   destination replaces an entry idle for 6 min, else is served unremembered, as IPVS does
//!   when its table is over its limit).
//! - **Bounded sets**: at most [`MAX_SET`] members (or the number of servers, if smaller; IPVS
//!   has no limit). Adding to a full set replaces its most loaded member (the one the 24 h
//!   shrink would drop first).
//! - **Reloads**: the table starts empty on every new snapshot (IPVS keeps it across edits).
//!
//! In xvs a service is a VIP and port, so every new flow of a service has the VIP as
//! destination: one set per service and worker, which grows while its servers are overloaded.

use super::locality::{elapsed, is_overloaded, DestinationTable, EXPIRATION};
use super::{least_by_ratio, least_by_ratio_among, RealServer, Scheduler};
use crate::flow::{FlowKey, Nanos};

/// log2 of the number of sets of the destination table.
const SET_BITS: u32 = 6;
/// Destinations one worker's `lblcr` table remembers per service (64 sets of 4).
pub const DESTINATIONS: usize = super::locality::WAYS << SET_BITS;
/// The most servers one destination's set holds.
pub const MAX_SET: usize = 32;

/// The `lblcr` scheduler of one worker: destination → server set.
#[derive(Debug)]
pub struct LocalityLeastConnectionReplicated {
    table: DestinationTable,
    /// Members per set: `min(MAX_SET, number of servers)`, at least 1.
    set_capacity: usize,
    /// Slot `s`'s members are `members[s * set_capacity..][..len[s]]`, oldest first.
    members: Box<[u32]>,
    len: Box<[u8]>,
    /// When slot `s`'s set last changed.
    last_change: Box<[Nanos]>,
}

impl LocalityLeastConnectionReplicated {
    /// An empty table whose sets hold up to `min(MAX_SET, reals.len())` members.
    pub fn new(reals: &[RealServer]) -> LocalityLeastConnectionReplicated {
        let table = DestinationTable::new(SET_BITS);
        let set_capacity = reals.len().clamp(1, MAX_SET);
        let slots = table.capacity();
        LocalityLeastConnectionReplicated {
            members: vec![0; slots * set_capacity].into_boxed_slice(),
            len: vec![0; slots].into_boxed_slice(),
            last_change: vec![0; slots].into_boxed_slice(),
            table,
            set_capacity,
        }
    }

    /// The members of slot `s`, oldest first.
    fn set(&self, s: usize) -> &[u32] {
        let len = usize::from(self.len.get(s).copied().unwrap_or(0));
        self.members
            .get(s * self.set_capacity..)
            .and_then(|m| m.get(..len))
            .unwrap_or(&[])
    }

    /// The position in slot `s`'s set of its most loaded member with weight > 0 (highest
    /// `overhead / weight`, newest first on ties; IPVS's `ip_vs_dest_set_max`).
    fn most_loaded(&self, s: usize, reals: &[RealServer]) -> Option<usize> {
        let mut most: Option<(usize, u64, u32)> = None;
        for (pos, &m) in self.set(s).iter().enumerate().rev() {
            let Some(r) = reals.get(m as usize).filter(|r| r.weight > 0) else {
                continue;
            };
            let doh = r.conn_overhead();
            let more = match most {
                None => true,
                Some((_, moh, mw)) => {
                    u128::from(moh) * u128::from(r.weight) < u128::from(doh) * u128::from(mw)
                }
            };
            if more {
                most = Some((pos, doh, r.weight));
            }
        }
        most.map(|(pos, _, _)| pos)
    }

    /// Removes the member at `pos` of slot `s`'s set, keeping the others' order.
    fn remove(&mut self, s: usize, pos: usize, now: Nanos) {
        let len = usize::from(self.len[s]);
        if pos >= len {
            return;
        }
        let base = s * self.set_capacity;
        self.members
            .copy_within(base + pos + 1..base + len, base + pos);
        self.len[s] -= 1;
        self.last_change[s] = now;
    }

    /// Adds server `i` to slot `s`'s set unless it is a member; a full set first loses its most
    /// loaded member (or, if none has weight > 0, its oldest).
    fn add(&mut self, s: usize, i: usize, reals: &[RealServer], now: Nanos) {
        // A server index fits a `u32` (the config allows 4096 servers); one that did not would
        // only stay out of the set.
        let Ok(id) = u32::try_from(i) else {
            return;
        };
        if self.set(s).contains(&id) {
            return;
        }
        if usize::from(self.len[s]) >= self.set_capacity {
            let pos = self.most_loaded(s, reals).unwrap_or(0);
            self.remove(s, pos, now);
        }
        let len = usize::from(self.len[s]);
        self.members[s * self.set_capacity + len] = id;
        self.len[s] += 1;
        self.last_change[s] = now;
    }
}

impl Scheduler for LocalityLeastConnectionReplicated {
    fn pick(&mut self, now: Nanos, key: &FlowKey, reals: &[RealServer]) -> Option<usize> {
        let Some(s) = self.table.find(key.dst, now) else {
            let i = least_by_ratio(reals, RealServer::conn_overhead)?;
            if let Some(s) = self.table.insert(key.dst, now) {
                self.len[s] = 0;
                self.add(s, i, reals, now);
            }
            return Some(i);
        };
        let members = self.set(s);
        let least = least_by_ratio_among(
            reals,
            members.iter().rev().map(|&m| m as usize),
            RealServer::conn_overhead,
        );
        if members.len() > 1 && elapsed(now, self.last_change[s]) > EXPIRATION {
            if let Some(pos) = self.most_loaded(s, reals) {
                self.remove(s, pos, now);
            }
        }
        if let Some(i) = least.filter(|&i| !is_overloaded(reals, i)) {
            return Some(i);
        }
        let i = least_by_ratio(reals, RealServer::conn_overhead)?;
        self.add(s, i, reals, now);
        Some(i)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, loaded, set_active};

    const SEC: Nanos = crate::flow::NANOS_PER_SEC;
    const VIP: u32 = 0xC612_0064;

    fn pick(
        s: &mut LocalityLeastConnectionReplicated,
        now: Nanos,
        r: &[RealServer],
    ) -> Option<usize> {
        s.pick(now, &flow(0x0A00_0001, 40000, VIP), r)
    }

    fn members(s: &mut LocalityLeastConnectionReplicated, now: Nanos) -> Vec<u32> {
        let slot = s
            .table
            .find(std::net::IpAddr::from(VIP.to_be_bytes()), now)
            .unwrap();
        s.set(slot).to_vec()
    }

    #[test]
    fn destination_sticks_until_overload_then_the_set_grows() {
        let r = loaded(&[(4, 0, 0), (4, 0, 0), (4, 0, 0)]);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        assert_eq!(pick(&mut s, 0, &r), Some(0));
        // Sticks while within its weight (wlc would now prefer 1 or 2).
        for active in 1..=4 {
            set_active(&r, 0, active);
            assert_eq!(pick(&mut s, SEC, &r), Some(0));
        }
        // Over its weight while others are below half theirs: server 1 joins the set.
        set_active(&r, 0, 5);
        assert_eq!(pick(&mut s, 2 * SEC, &r), Some(1));
        assert_eq!(members(&mut s, 2 * SEC), [0, 1]);
        // Now the least loaded member serves: 1 (0 active) until it has more than 0.
        assert_eq!(pick(&mut s, 3 * SEC, &r), Some(1));
        set_active(&r, 1, 5);
        set_active(&r, 0, 1);
        assert_eq!(pick(&mut s, 4 * SEC, &r), Some(0), "0 is less loaded now");
        // Both members over their weight, server 2 idle: it joins.
        set_active(&r, 0, 6);
        assert_eq!(pick(&mut s, 5 * SEC, &r), Some(2));
        assert_eq!(members(&mut s, 5 * SEC), [0, 1, 2]);
    }

    #[test]
    fn unchanged_set_loses_its_most_loaded_member_after_24_hours() {
        let r = loaded(&[(4, 0, 0), (4, 0, 0)]);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        assert_eq!(pick(&mut s, 0, &r), Some(0));
        set_active(&r, 0, 5);
        assert_eq!(pick(&mut s, SEC, &r), Some(1));
        assert_eq!(members(&mut s, SEC), [0, 1]);
        set_active(&r, 0, 3);
        set_active(&r, 1, 1);
        // Used twice a day (an entry idle for 24 h would be forgotten), the set unchanged since
        // SEC: at 24 h + SEC, not yet shrunk (IPVS: strictly after).
        let half_day = EXPIRATION / 2;
        assert_eq!(pick(&mut s, half_day, &r), Some(1));
        assert_eq!(pick(&mut s, EXPIRATION + SEC, &r), Some(1));
        assert_eq!(members(&mut s, EXPIRATION + SEC), [0, 1]);
        // Then the most loaded (0: 3 active on weight 4) is dropped.
        assert_eq!(pick(&mut s, EXPIRATION + 2 * SEC, &r), Some(1));
        assert_eq!(members(&mut s, EXPIRATION + 2 * SEC), [1]);
        // A set of one is never shrunk, however long unchanged.
        let mut now = EXPIRATION + 2 * SEC;
        for _ in 0..4 {
            now += half_day;
            assert_eq!(pick(&mut s, now, &r), Some(1));
        }
        assert_eq!(members(&mut s, now), [1]);
    }

    #[test]
    fn unavailable_members_are_skipped() {
        let r = loaded(&[(4, 0, 0), (4, 0, 0)]);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        assert_eq!(pick(&mut s, 0, &r), Some(0));
        r[0].stats.set_up(false);
        // No available member: wlc's pick joins the set.
        assert_eq!(pick(&mut s, SEC, &r), Some(1));
        assert_eq!(members(&mut s, SEC), [0, 1]);
        r[0].stats.set_up(true);
        set_active(&r, 1, 1);
        assert_eq!(pick(&mut s, 2 * SEC, &r), Some(0), "back, and less loaded");
        r[0].stats.set_up(false);
        r[1].stats.set_up(false);
        assert_eq!(pick(&mut s, 3 * SEC, &r), None);
    }

    #[test]
    fn set_is_bounded_by_the_servers_and_max_set() {
        let weights: Vec<(u32, u64, u64)> = (0..40).map(|_| (1, 0, 0)).collect();
        let r = loaded(&weights);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        assert_eq!(s.set_capacity, MAX_SET);
        // Each pick overloads the server it got: the set keeps growing, up to MAX_SET.
        for k in 0..100u64 {
            let i = pick(&mut s, k * SEC, &r).unwrap();
            set_active(&r, i, 2 + k);
            assert!(members(&mut s, k * SEC).len() <= MAX_SET);
        }
        assert_eq!(members(&mut s, 100 * SEC).len(), MAX_SET);
        let small = loaded(&[(1, 0, 0), (1, 0, 0)]);
        assert_eq!(
            LocalityLeastConnectionReplicated::new(&small).set_capacity,
            2
        );
        assert_eq!(LocalityLeastConnectionReplicated::new(&[]).set_capacity, 1);
        assert_eq!(
            pick(&mut LocalityLeastConnectionReplicated::new(&[]), 0, &[]),
            None
        );
    }

    #[test]
    fn table_is_bounded() {
        let r = loaded(&[(1, 0, 0), (1, 0, 0)]);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        for d in 0..DESTINATIONS as u32 * 8 {
            assert!(s.pick(0, &flow(1, 1, d), &r).is_some());
        }
        assert!(s.table.len() <= DESTINATIONS);
    }

    #[test]
    fn an_ipv6_destination_sticks_until_overload_then_its_set_grows() {
        use crate::sched::testutil::{flow6, reals6, v6};
        let r = reals6(&[4, 4, 4]);
        let mut s = LocalityLeastConnectionReplicated::new(&r);
        let dst = v6(0x100);
        let key = flow6(v6((3 << 64) | 9), 40000, dst);
        assert_eq!(s.pick(0, &key, &r), Some(0));
        for active in 1..=4 {
            set_active(&r, 0, active);
            assert_eq!(s.pick(SEC, &key, &r), Some(0));
        }
        set_active(&r, 0, 5);
        assert_eq!(s.pick(2 * SEC, &key, &r), Some(1));
        let slot = s
            .table
            .find(std::net::IpAddr::from(dst.to_be_bytes()), 2 * SEC)
            .unwrap();
        assert_eq!(s.set(slot), [0, 1]);
        // Another IPv6 destination has a set of its own: the least loaded server, alone.
        set_active(&r, 1, 1);
        let other = flow6(v6(1), 40000, v6(0x101));
        assert_eq!(s.pick(3 * SEC, &other, &r), Some(2));
        let slot = s
            .table
            .find(std::net::IpAddr::from(v6(0x101).to_be_bytes()), 3 * SEC)
            .unwrap();
        assert_eq!(s.set(slot), [2]);
    }
}
