//! The original direction (client → service): gate, look up or schedule the connection, then
//! the rewrite of the connection's method (NAT and FULLNAT here, DR in `dr.rs`, TUN in
//! `tun.rs`), each ending in [`Processor::route`].
//!
//! A connection keeps the method it was created with where the entry says so: one with a local
//! endpoint is FULLNAT whatever its service became; a FULLNAT service's connection without one
//! (made while the service was NAT) stays NAT.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use super::rewrite::{rewrite_endpoint, Side};
use super::{decremented_ttl, Parsed, Processor, Route, Sent};
use crate::conntrack::{
    stats_id, ConnState, Direction, Event, Hint, InsertError, Missed, NewConn, Origin, Scheduled,
    Track, Tracked,
};
use crate::datapath::counters::{bump, Dir};
use crate::datapath::fragments::FragmentRewrite;
use crate::datapath::fullnat;
use crate::datapath::{DropReason, Forwarding, Verdict};
use crate::flow::Nanos;
use crate::sched::persist::TemplateKey;
use crate::sched::RealStats;
use crate::sync::record::ConnRecord;
use crate::sync::SyncRecord;

/// What the connection table's lookup that missed a new flow's original key knew, for its
/// insert: the shard and hash, and where the key's probe run ended ([`Missed`]).
type Miss = (Option<Hint>, Option<Missed>);

impl Processor {
    /// A packet to service `si`: the connection's rewrite, then counting and fragment
    /// bookkeeping.
    #[inline(always)]
    pub(super) fn original(
        &mut self,
        now: Nanos,
        si: usize,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
    ) -> Result<Verdict, DropReason> {
        let svc = &self.snap.services[si];
        if svc.vrrp_backup() {
            return Err(DropReason::VrrpBackup);
        }
        // NAT and FULLNAT route the packet (TTL decremented); DR and TUN leave the IP header
        // alone, as IPVS does. A packet that could not be routed creates no connection.
        if svc.forwarding.replies_return() {
            decremented_ttl(p.ttl)?;
        }
        let mut t = Tracked::EMPTY;
        self.connection(now, si, p, &mut t)?;
        let sent = self.forward(buf, len, si, p, &t)?;
        if let Verdict::Tx(_) = sent.verdict {
            if sent.counted {
                self.count(si, &t, Dir::In, p.ip_len);
            }
            self.remember_fragments(now, p, || self.follow_original(si, &t));
        }
        Ok(sent.verdict)
    }

    /// How the later fragments of connection `t`'s first fragment follow it: translated like
    /// it (NAT, FULLNAT), sent by MAC (DR), or not at all (TUN: xvs does not fragment the outer
    /// packet; see the README).
    #[cold]
    fn follow_original(&self, si: usize, t: &Tracked) -> Option<FragmentRewrite> {
        let real = t.real().ip();
        if let Some(local) = t.local() {
            return FragmentRewrite::new(Some(local.ip()), Some(real), real, true);
        }
        match self.snap.services[si].forwarding {
            Forwarding::Nat | Forwarding::FullNat => {
                FragmentRewrite::new(None, Some(real), real, true)
            }
            Forwarding::Dr => FragmentRewrite::new(None, None, real, false),
            Forwarding::Tun => None,
        }
    }

    /// The rewrite of connection `t`'s method.
    #[inline(always)]
    fn forward(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        si: usize,
        p: &Parsed,
        t: &Tracked,
    ) -> Result<Sent, DropReason> {
        // A connection's addresses are of one family, the packet's (each family has its table).
        let Some(local) = t.local() else {
            return match self.snap.services[si].forwarding {
                Forwarding::Nat | Forwarding::FullNat => self.forward_nat(buf, len, p, t.real()),
                Forwarding::Dr => self.forward_dr(buf, len, t.real()).map(Sent::packet),
                Forwarding::Tun => self.forward_tun(buf, len, p, t.real()),
            };
        };
        self.forward_fullnat(buf, len, p, (local, t.real()), si, t)
    }

    /// NAT: destination VIP:port → real server, routed to it.
    #[inline(always)]
    fn forward_nat(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        real: SocketAddr,
    ) -> Result<Sent, DropReason> {
        if real.is_ipv4() != p.key.dst.is_ipv4() {
            // The configuration never pairs families (and conntrack refuses such entries);
            // never rewrite across them.
            return Ok(Sent::packet(Verdict::Pass));
        }
        let route = Route::routed(real.ip(), p.ttl);
        let v = self.route(buf, len, route, |buf, len, _| {
            rewrite_endpoint(&mut buf[..*len], p, Side::Dst, real)
        })?;
        Ok(Sent::packet(v))
    }

    /// FULLNAT: source → `local`, destination → `real`, routed to the real server; then, for a
    /// `toa` service, the TOA option in the client's SYN and in its ACK completing the
    /// handshake (may grow the frame, see [`crate::datapath::fullnat`]). The TTL is checked here
    /// too, not only by the service's method: a connection keeps FULLNAT after a reload made its
    /// service DR or TUN.
    fn forward_fullnat(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        (local, real): (SocketAddr, SocketAddr),
        si: usize,
        t: &Tracked,
    ) -> Result<Sent, DropReason> {
        let toa = match p.event {
            Event::Tcp(f) if self.snap.services[si].toa => {
                f.is_initial_syn() || t.handshake_completed
            }
            _ => false,
        };
        let route = Route::routed(real.ip(), p.ttl);
        let v = self.route(buf, len, route, |buf, len, egress| {
            let frame = &mut buf[..*len];
            let (l3, l4, proto, ttl) = (p.l3, p.l4, p.key.proto, p.ttl.saturating_sub(1));
            if !fullnat::rewrite_both(frame, l3, l4, proto, ttl, local, real) {
                return Err(fullnat_truncated(p));
            }
            if toa {
                self.insert_toa(buf, len, p, egress.mtu);
            }
            Ok(())
        })?;
        Ok(Sent::packet(v))
    }

    /// Inserts the TOA option with the client's endpoint into the rewritten frame, or counts why
    /// not.
    fn insert_toa(&self, buf: &mut [u8], len: &mut usize, p: &Parsed, mtu: u16) {
        // The client's family's option (8 bytes for IPv4, 20 for IPv6).
        let client = SocketAddr::new(p.key.src, p.key.sport);
        let inserted = match p.first_fragment {
            Some(_) => Err(fullnat::ToaSkip::Fragment),
            None => fullnat::insert_toa(buf, *len, p.l3, p.l4, client, mtu),
        };
        match inserted {
            Ok(n) => {
                *len = n;
                bump(&self.counters.toa_inserted, 1);
            }
            Err(skip) => self.counters.count_toa_skip(skip),
        }
    }

    /// The connection of an original-direction packet to service `si`, written into `t`: found,
    /// or scheduled and inserted (for a `one_packet` service: scheduled, never inserted).
    #[inline(always)]
    fn connection(
        &mut self,
        now: Nanos,
        si: usize,
        p: &Parsed,
        t: &mut Tracked,
    ) -> Result<(), DropReason> {
        let timeouts = self.snap.timeouts;
        let mut miss = (None, None);
        if !self.snap.services[si].one_packet {
            let table = &self.shared.conntrack;
            let probe = self.probe(Direction::Original, &p.key);
            let mut missed = None;
            if table.lookup_probe_missed(probe, (p.event, now), &timeouts, t, &mut missed) {
                if self.sync.is_some() {
                    self.sync_lookup(p.key.proto, t);
                }
                return Ok(());
            }
            if self.sync.is_some() {
                self.sync_lookup(p.key.proto, t);
            }
            // The miss's shard and hash, and where its probe run ended, for the insert (the
            // same key, original direction).
            miss = (probe.hint, missed);
        }
        let sloppy = self.snap.services[si].picks_up_mid_stream(self.snap.sloppy_tcp);
        let state = match p.event {
            Event::Tcp(f) if f.is_initial_syn() => ConnState::SynRecv,
            Event::Tcp(f) if sloppy && !f.rst() => {
                ConnState::Established.on_tcp(Direction::Original, f)
            }
            Event::Tcp(_) => return Err(DropReason::NoConnection),
            Event::Udp => ConnState::Udp,
        };
        self.schedule(now, si, p, (state, miss), t)
    }

    /// Schedules a new flow of service `si` in `state` and tracks it, written into `t` (with
    /// `miss`, what the connection table's lookup that missed it knew, if it ran). keepalived: a
    /// service that lost quorum has its real servers replaced by the sorry server (without one,
    /// the servers still up keep taking flows); a service whose real servers can take no flow
    /// uses the sorry server too.
    fn schedule(
        &mut self,
        now: Nanos,
        si: usize,
        p: &Parsed,
        (state, miss): (ConnState, Miss),
        t: &mut Tracked,
    ) -> Result<(), DropReason> {
        let lost_quorum = {
            let svc = &self.snap.services[si];
            svc.sorry.is_some() && !svc.state.has_quorum()
        };
        let picked = match lost_quorum {
            true => None,
            false => match self.pick_real(now, si, p) {
                Ok(ri) => Some(ri),
                Err(DropReason::NoRealServer) => None,
                Err(e) => return Err(e),
            },
        };
        let svc = &self.snap.services[si];
        let (real, slot) = match picked {
            Some(ri) => (&svc.reals[ri], ri),
            None => {
                let sorry = svc.sorry.as_ref().ok_or(DropReason::NoRealServer)?;
                (sorry, svc.reals.len())
            }
        };
        // A port-0 real server (of a port-0 service) keeps the client's destination port. Its
        // traffic slot is found by address (the origin is left unknown), as are those of a
        // sorry server that shares a real server's address.
        let (real_addr, origin) = match real.addr.port() {
            0 => (
                SocketAddr::new(real.addr.ip(), p.key.dport),
                Origin::UNKNOWN,
            ),
            _ if picked.is_none() && svc.real_position(real.addr).is_some() => {
                (real.addr, Origin::UNKNOWN)
            }
            _ => (real.addr, Origin::new(si, slot)),
        };
        let new = NewConn {
            proto: p.key.proto,
            client: SocketAddr::new(p.key.src, p.key.sport),
            vip: SocketAddr::new(p.key.dst, p.key.dport),
            real: real_addr,
            state,
            stats: real.stats.clone(),
        };
        if svc.one_packet {
            real.stats.connections_total.fetch_add(1, Ordering::Relaxed);
            bump(&self.counters.new_connections, 1);
            let ends = (new.client, new.vip, new.real);
            let stats = stats_id(&real.stats);
            *t = Tracked::new(ends, None, state, origin, stats);
            return Ok(());
        }
        let proto = new.proto;
        let evicted = self.track(now, si, new, (origin, miss), (&real.stats, t))?;
        if self.sync.is_some() {
            self.sync_inserted(proto, t, evicted);
        }
        Ok(())
    }

    /// Inserts the new connection `new` of service `si` as its method tracks it, with what the
    /// lookup's miss knew (its `Hint` and `Missed`), writes it into `out` and counts it on
    /// `stats`, its real server's counters (the ones `new` holds; borrowed from the snapshot,
    /// not cloned: a clone and its drop are two more locked instructions per new connection). Returns the half-open entry
    /// evicted to make room, if any.
    fn track(
        &self,
        now: Nanos,
        si: usize,
        new: NewConn,
        (origin, (hint, missed)): (Origin, Miss),
        (stats, out): (&RealStats, &mut Tracked),
    ) -> Result<Option<ConnRecord>, DropReason> {
        let svc = &self.snap.services[si];
        let track = match svc.local_pool {
            Some(pool) => Track::FullNat { pool },
            None if svc.forwarding.replies_return() => Track::Both,
            None => Track::OriginalOnly,
        };
        let table = &self.shared.conntrack;
        let at = Scheduled {
            origin,
            track,
            hint,
            missed,
        };
        match table.insert_scheduled(new, at, now, &self.snap.timeouts, out) {
            Ok(evicted) => {
                stats.connections_total.fetch_add(1, Ordering::Relaxed);
                bump(&self.counters.new_connections, 1);
                if evicted.is_some() {
                    bump(&self.counters.conntrack_evictions, 1);
                }
                Ok(evicted)
            }
            // A service's real servers are of its VIP's family (the config refuses others), so
            // `MixedFamilies` cannot happen; if it did, the flow could not be tracked either.
            Err(InsertError::Full | InsertError::MixedFamilies) => Err(DropReason::ConntrackFull),
            Err(InsertError::LocalPortsExhausted) => Err(DropReason::LocalPortsExhausted),
        }
    }

    /// The real server (index in the service's `reals`) for a new flow of service `si`: the
    /// scheduler's pick, or for a persistent service the server of the client network's template
    /// while that server can take the flow.
    fn pick_real(&mut self, now: Nanos, si: usize, p: &Parsed) -> Result<usize, DropReason> {
        let svc = &self.snap.services[si];
        let scheduler = &mut self.schedulers[si];
        let Some(persistence) = svc.persistence else {
            return scheduler
                .pick(now, &p.key, &svc.reals)
                .ok_or(DropReason::NoRealServer);
        };
        let key = TemplateKey::new(
            svc.key.proto,
            svc.key.vip,
            svc.key.port,
            p.key.src,
            persistence.netmask,
        );
        let (chosen, record) = self
            .shared
            .persistence
            .schedule_synced(key, now, persistence.timeout, |current| {
                let kept = current
                    .and_then(|addr| svc.real_position(addr))
                    .filter(|&i| svc.reals[i].is_available());
                kept.or_else(|| scheduler.pick(now, &p.key, &svc.reals))
                    .map(|i| svc.reals[i].addr)
            })
            .map_err(|_| DropReason::PersistenceFull)?;
        if let (Some(ring), Some(record)) = (&mut self.sync, record) {
            ring.push(SyncRecord::Template(record));
        }
        chosen
            .and_then(|addr| svc.real_position(addr))
            .ok_or(DropReason::NoRealServer)
    }

    /// Counts a forwarded packet of connection `t` of service `si` (an index into the worker's
    /// snapshot) in direction `dir`: on the service and on the connection's real server, found
    /// from the entry's [`Origin`] while that still names it, else by address.
    #[inline]
    pub(super) fn count(&self, si: usize, t: &Tracked, dir: Dir, ip_len: u16) {
        self.count_conn(si, t.origin, t.stats_id, t.real(), dir, ip_len);
    }

    /// [`Processor::count`] of a connection given by its origin, [`stats_id`] and real server.
    #[inline]
    pub(super) fn count_conn(
        &self,
        si: usize,
        origin: Origin,
        stats: usize,
        real: SocketAddr,
        dir: Dir,
        ip_len: u16,
    ) {
        let bytes = u64::from(ip_len);
        match self.origin_slot(si, origin, stats) {
            Some(slot) => self.traffic.count_slot(si, slot, dir, bytes),
            None => self.traffic.count(si, real, dir, bytes),
        }
    }

    /// The traffic slot of a connection's real server in service `si`, if the connection's
    /// `origin` is that service and the real server at the origin's slot is still the one whose
    /// counters (`stats`, their [`stats_id`]) the connection holds (a reload may have moved or
    /// replaced it).
    #[inline]
    pub(super) fn origin_slot(&self, si: usize, origin: Origin, stats: usize) -> Option<usize> {
        if usize::from(origin.service) != si {
            return None;
        }
        let slot = usize::from(origin.real);
        let held = self.snap.services.get(si)?.slot_stats(slot)?;
        (stats_id(held) == stats).then_some(slot)
    }
}

/// The drop reason of a FULLNAT rewrite whose views do not fit (never for a parsed packet): the
/// truncated IP header of the packet's family.
pub(super) fn fullnat_truncated(p: &Parsed) -> DropReason {
    match p.key.src {
        IpAddr::V4(_) => DropReason::TruncatedIpv4,
        IpAddr::V6(_) => DropReason::TruncatedIpv6,
    }
}
