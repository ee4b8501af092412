//! The connection table's side of connection sync (issue 16): an entry as a [`ConnRecord`],
//! the install of a peer's record ([`ConnTable::install`], [`ConnTable::uninstall`]) and the
//! full-dump source ([`ConnTable::dump_page`]).
//!
//! Invariants:
//! - The table never knows about rings or peers: it turns entries into records and records into
//!   entries; the caller moves them.
//! - An installed entry is a connection like any other (same slab, same index, same expiry, the
//!   FULLNAT local port taken from this box's pool), with two differences until its first packet
//!   here: it is out of its real server's active/inactive counts (see the module documentation
//!   of [`crate::conntrack`]), and `connections_total` never counts it (it was scheduled
//!   elsewhere).
//! - A record whose connection this box already holds (same original key, same real server and
//!   local endpoint) updates that entry's state and timeout; one whose key is held by another
//!   connection replaces it (the owner's word wins); a Delete removes the entry only if it is
//!   that connection.
//! - FULLNAT: the record's local port is reserved exactly, in the shard of the client's
//!   endpoint, which must also be the shard the port names ([`super::local_ports::shard_of_reply`]):
//!   both boxes need the same shard count (the same `conntrack.max_entries`), else the install
//!   is refused ([`InstallError::LocalPort`] with [`ReserveError::OtherShard`]).
//! - The dump visits one shard at a time, at most a page of slots per lock, and resumes from
//!   its [`ConnDump`] cursor: entries present for the whole dump are given exactly once;
//!   entries created or removed meanwhile may or may not be (their own events cover them).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::family::Family;
use super::local_ports::{LocalPools, ReserveError, NO_LOCAL};
use super::{
    count, counted_origin, is_expired, is_uncounted, tick, toggle_uncounted, ConnState, ConnTable,
    Direction, Entry, InsertError, Key, Keys, Origin, Shard, Table, Track, MAX_TIMEOUT,
    NANOS_PER_TICK,
};
use crate::flow::{Endpoint, Nanos};
use crate::sched::RealStats;
use crate::sync::record::{ConnRecord, SyncOp, SyncRecord};

/// Where an installed connection belongs on this box: what the caller found for the record's
/// service and real server in its own configuration.
#[derive(Clone, Debug)]
pub struct InstallTarget {
    /// The service and real-server position, as [`super::ConnTable::insert_scheduled`] takes.
    pub origin: Origin,
    /// The real server's counters (held by the entry; counted on its first packet here).
    pub stats: Arc<RealStats>,
    /// How the service's method tracks it; a record with a local endpoint needs
    /// [`Track::FullNat`] (its pool must hold the endpoint's address), one without needs
    /// another.
    pub track: Track,
}

/// What [`ConnTable::install`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// A new entry (not counted until its first packet here).
    Created,
    /// The entry was already here: its state and timeout were set.
    Updated,
}

/// Why a record was not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The record's addresses mix the families, or its family has no table here.
    #[error("a synced connection's addresses must all be IPv4 or all IPv6")]
    MixedFamilies,
    /// No service here has the record's VIP:port and protocol.
    #[error("unknown virtual service")]
    UnknownService,
    /// The service has no such real server (or sorry server) here.
    #[error("unknown real server")]
    UnknownReal,
    /// The record has a local endpoint and the service is not FULLNAT here, or the other way
    /// round.
    #[error("forwarding method differs (local endpoint given or missing)")]
    MethodMismatch,
    /// The local endpoint's address is not one of the service's pool here, or its port cannot
    /// be reserved.
    #[error("local endpoint refused: {0}")]
    LocalPort(ReserveError),
    /// The shard is full of live entries none of which is half-open.
    #[error("connection table full")]
    Full,
    /// A template's shard is full of live templates.
    #[error("persistence template table full")]
    TemplateFull,
}

/// The position of a full dump of the table ([`ConnTable::dump_page`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnDump {
    /// 0: the IPv4 table; 1: the IPv6 table; 2: done.
    family: u8,
    shard: usize,
    slot: usize,
}

impl ConnDump {
    /// Whether every shard was visited.
    pub fn is_done(&self) -> bool {
        self.family >= 2
    }
}

/// Milliseconds as expiry ticks, clamped to [`MAX_TIMEOUT`].
fn ticks_ms(ms: u32) -> u32 {
    ms.min(ticks_max())
}

fn ticks_max() -> u32 {
    u32::try_from(MAX_TIMEOUT / NANOS_PER_TICK).unwrap_or(u32::MAX)
}

impl<F: Family> Entry<F> {
    /// The entry as a sync record of operation `op`, with the time it has left at `now_tick`
    /// (0 when expired).
    pub(super) fn record(&self, op: SyncOp, pools: &LocalPools<F>, now_tick: u32) -> ConnRecord {
        let ep = |ip: F::Addr, port| Endpoint::new(F::to_ip(ip), port);
        let left = self.expires.wrapping_sub(now_tick) as i32;
        ConnRecord {
            op,
            proto: self.proto,
            state: self.state,
            client: ep(self.client, self.cport),
            vip: ep(self.vip, self.vport),
            real: ep(self.real, self.rport),
            local: (self.lid != NO_LOCAL).then(|| ep(self.local(pools), self.lport)),
            timeout_ms: u32::try_from(left.max(0)).unwrap_or(0),
        }
    }

    /// Whether this entry is the connection of `rec` (same real server and local endpoint).
    fn is_record(&self, rec: &ConnRecord, pools: &LocalPools<F>) -> bool {
        let local =
            (self.lid != NO_LOCAL).then(|| Endpoint::new(F::to_ip(self.local(pools)), self.lport));
        F::to_ip(self.real) == rec.real.ip && self.rport == rec.real.port && local == rec.local
    }

    /// Sets the state of an installed or local entry, keeping its counts exact if it is counted.
    fn set_state(&mut self, state: ConnState) {
        if let Some(stats) = &self.stats {
            if !is_uncounted(self.origin) && state.is_active() != self.state.is_active() {
                count(stats, self.state).fetch_sub(1, Ordering::Relaxed);
                count(stats, state).fetch_add(1, Ordering::Relaxed);
            }
        }
        self.state = state;
    }
}

/// A record's addresses in family `F`, or `MixedFamilies`.
fn addrs<F: Family>(rec: &ConnRecord) -> Result<[F::Addr; 3], InstallError> {
    match (
        F::from_ip(rec.client.ip),
        F::from_ip(rec.vip.ip),
        F::from_ip(rec.real.ip),
    ) {
        (Some(c), Some(v), Some(r)) => Ok([c, v, r]),
        _ => Err(InstallError::MixedFamilies),
    }
}

/// The original-direction key (client → VIP) of a record's connection.
fn original_key<F: Family>(rec: &ConnRecord, client: F::Addr, vip: F::Addr) -> Key<F> {
    Key {
        src: client,
        dst: vip,
        sport: rec.client.port,
        dport: rec.vip.port,
        proto: rec.proto,
    }
}

impl<F: Family> Table<F> {
    /// See [`ConnTable::install`].
    fn install(
        &self,
        rec: &ConnRecord,
        target: InstallTarget,
        now: Nanos,
    ) -> Result<Installed, InstallError> {
        let [client, vip, real] = addrs::<F>(rec)?;
        let (pool, keys) = match (rec.local, target.track) {
            (Some(_), Track::FullNat { pool }) => (Some(pool), Keys::Both),
            (None, Track::Both) => (None, Keys::Both),
            (None, Track::OriginalOnly) => (None, Keys::OriginalOnly),
            _ => return Err(InstallError::MethodMismatch),
        };
        let now_tick = tick(now);
        let expires = now_tick.wrapping_add(ticks_ms(rec.timeout_ms));
        let seed = &self.key_hasher;
        let mut guard = self.shard_for((client, rec.client.port));
        let shard = &mut *guard;
        let ok = original_key::<F>(rec, client, vip);
        if let Some(slot) = shard.find(seed, Direction::Original, &ok) {
            let e = &mut shard.slots[slot];
            if !is_expired(e.expires, now_tick) && e.is_record(rec, &shard.pools) {
                e.set_state(rec.state);
                e.expires = expires;
                return Ok(Installed::Updated);
            }
            shard.remove(seed, slot);
        }
        self.make_room(shard, now_tick).map_err(|e| match e {
            InsertError::MixedFamilies => InstallError::MixedFamilies,
            _ => InstallError::Full,
        })?;
        if !shard.has_room() {
            return Err(InstallError::Full);
        }
        let mut entry = Entry {
            client,
            vip,
            real,
            expires,
            stats: Some(target.stats),
            origin: toggle_uncounted(counted_origin(target.origin)),
            cport: rec.client.port,
            vport: rec.vip.port,
            rport: rec.real.port,
            lport: 0,
            lid: NO_LOCAL,
            proto: rec.proto,
            state: rec.state,
        };
        if let (Some(local), Some(pool)) = (rec.local, pool) {
            entry.lid = reserve_local(shard, local, pool)?;
            entry.lport = local.port;
        }
        if keys == Keys::Both {
            let rk = entry.key(Direction::Reply, &shard.pools);
            if let Some(older) = shard.find(seed, Direction::Reply, &rk) {
                shard.unindex(seed, older, Direction::Reply);
            }
        }
        shard.place(seed, entry, keys);
        Ok(Installed::Created)
    }

    /// See [`ConnTable::uninstall`].
    fn uninstall(&self, rec: &ConnRecord) -> Result<bool, InstallError> {
        let [client, vip, _] = addrs::<F>(rec)?;
        let seed = &self.key_hasher;
        let mut shard = self.shard_for((client, rec.client.port));
        let ok = original_key::<F>(rec, client, vip);
        let Some(slot) = shard.find(seed, Direction::Original, &ok) else {
            return Ok(false);
        };
        if !shard.slots[slot].is_record(rec, &shard.pools) {
            return Ok(false);
        }
        shard.remove(seed, slot);
        Ok(true)
    }

    /// One page of the dump of shard `shard` from slot `from`: up to `max_slots` slots visited,
    /// live entries appended as Create records. Returns the next slot, `None` at the shard's end.
    fn dump_shard(
        &self,
        shard: usize,
        from: usize,
        max_slots: usize,
        now: Nanos,
        out: &mut Vec<SyncRecord>,
    ) -> Option<usize> {
        let now_tick = tick(now);
        let mut s = self.shards.lock(shard);
        // A dump only reads: flow caches of the shard stay valid.
        s.unchanged();
        let end = from.saturating_add(max_slots.max(1)).min(s.slots.len());
        for e in s.slots.get(from..end).unwrap_or_default() {
            if e.is_live() && !is_expired(e.expires, now_tick) {
                out.push(SyncRecord::Conn(e.record(
                    SyncOp::Create,
                    &s.pools,
                    now_tick,
                )));
            }
        }
        (end < s.slots.len()).then_some(end)
    }
}

/// Reserves the record's local endpoint `local` of pool `pool` in `shard`; returns its local id.
fn reserve_local<F: Family>(
    shard: &mut Shard<F>,
    local: Endpoint,
    pool: u16,
) -> Result<u16, InstallError> {
    let not_in_pool = InstallError::LocalPort(ReserveError::NotInPool);
    let addr = F::from_ip(local.ip).ok_or(InstallError::MixedFamilies)?;
    let id = shard.pools.id_of(addr).ok_or(not_in_pool)?;
    if shard.pools.pool_of.get(usize::from(id)) != Some(&pool) {
        return Err(not_in_pool);
    }
    let Shard { ports, pools, .. } = shard;
    ports
        .reserve(pools, id, local.port)
        .map_err(InstallError::LocalPort)?;
    Ok(id)
}

impl ConnTable {
    /// Installs a peer's Create or Update record (see the module documentation): a new entry
    /// expiring `rec.timeout_ms` from `now`, kept out of `target.stats`' active/inactive counts
    /// until its first packet here, its FULLNAT local port reserved exactly; or, for a
    /// connection this box already has, its new state and timeout. A Delete record is
    /// [`ConnTable::uninstall`]'s.
    pub fn install(
        &self,
        rec: &ConnRecord,
        target: InstallTarget,
        now: Nanos,
    ) -> Result<Installed, InstallError> {
        let v6 = rec.client.ip.is_ipv6();
        if v6 {
            self.v6
                .as_ref()
                .ok_or(InstallError::Full)?
                .install(rec, target, now)
        } else {
            self.v4.install(rec, target, now)
        }
    }

    /// Removes the connection of a peer's Delete record, if this box has that connection (same
    /// original key, real server and local endpoint; its local port goes back to the pool).
    /// Returns whether it was there.
    pub fn uninstall(&self, rec: &ConnRecord) -> Result<bool, InstallError> {
        match (rec.client.ip.is_ipv6(), &self.v6) {
            (false, _) => self.v4.uninstall(rec),
            (true, Some(t)) => t.uninstall(rec),
            (true, None) => Ok(false),
        }
    }

    /// The next page of a full dump: appends a Create record of every live entry among up to
    /// `max_slots` slots of one shard (one lock), from where `cursor` stopped, IPv4 then IPv6.
    /// Returns `false` once the dump is complete (then `cursor.is_done()`).
    pub fn dump_page(
        &self,
        cursor: &mut ConnDump,
        now: Nanos,
        max_slots: usize,
        out: &mut Vec<SyncRecord>,
    ) -> bool {
        let (shards, next) = match cursor.family {
            0 => (
                self.v4.shards.shards(),
                self.v4
                    .dump_shard(cursor.shard, cursor.slot, max_slots, now, out),
            ),
            1 => match &self.v6 {
                Some(t) => (
                    t.shards.shards(),
                    t.dump_shard(cursor.shard, cursor.slot, max_slots, now, out),
                ),
                None => (0, None),
            },
            _ => return false,
        };
        match next {
            Some(slot) => cursor.slot = slot,
            None if cursor.shard + 1 < shards => {
                cursor.shard += 1;
                cursor.slot = 0;
            }
            None => {
                *cursor = ConnDump {
                    family: cursor.family + 1,
                    ..ConnDump::default()
                };
            }
        }
        !cursor.is_done()
    }
}

/// A timeout as a record's milliseconds (clamped to [`MAX_TIMEOUT`]).
pub fn timeout_ms(timeout: Nanos) -> u32 {
    u32::try_from(timeout.min(MAX_TIMEOUT) / NANOS_PER_TICK).unwrap_or(u32::MAX)
}

impl super::Tracked {
    /// The connection as a sync record of operation `op` (the packet path's form: `proto` is
    /// the packet's, `timeout_ms` what the entry has left, 0 for a Delete).
    pub fn record(&self, op: SyncOp, proto: crate::flow::Proto, timeout_ms: u32) -> ConnRecord {
        ConnRecord {
            op,
            proto,
            state: self.state,
            client: self.client,
            vip: self.vip,
            real: self.real,
            local: self.local,
            timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tests::sa;
    use crate::conntrack::{Event, LocalPool, Timeouts};
    use crate::flow::{FlowKey, Proto};
    use crate::wire::TcpFlags;
    use std::net::SocketAddr;

    const S: Nanos = crate::flow::NANOS_PER_SEC;

    fn rec(client: &str, local: Option<&str>) -> ConnRecord {
        let ep = |s: &str| Endpoint::from(sa(s));
        ConnRecord {
            op: SyncOp::Create,
            proto: Proto::Tcp,
            state: ConnState::Established,
            client: ep(client),
            vip: ep("198.18.0.100:80"),
            real: ep("198.18.1.11:80"),
            local: local.map(ep),
            timeout_ms: 60_000,
        }
    }

    fn target(stats: &Arc<RealStats>, track: Track) -> InstallTarget {
        InstallTarget {
            origin: Origin::new(0, 0),
            stats: stats.clone(),
            track,
        }
    }

    fn key(src: &str, dst: &str) -> FlowKey {
        let (s, d): (SocketAddr, SocketAddr) = (sa(src), sa(dst));
        FlowKey {
            proto: Proto::Tcp,
            src: s.ip(),
            dst: d.ip(),
            sport: s.port(),
            dport: d.port(),
        }
    }

    const ACK: Event = Event::Tcp(TcpFlags(0x10));

    #[test]
    fn an_installed_entry_is_counted_on_its_first_packet_only_and_uncounted_on_removal() {
        let t = ConnTable::new(100);
        let stats = Arc::new(RealStats::default());
        let r = rec("198.18.0.2:40000", None);
        let got = t.install(&r, target(&stats, Track::Both), S);
        assert_eq!(got, Ok(Installed::Created));
        let counts = || {
            let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            (ld(&stats.active), ld(&stats.inactive))
        };
        assert_eq!(counts(), (0, 0));
        assert_eq!(stats.connections_total.load(Ordering::Relaxed), 0);
        // An update keeps it uncounted, whatever the state.
        let closing = ConnRecord {
            state: ConnState::CloseWait,
            ..r
        };
        assert_eq!(
            t.install(&closing, target(&stats, Track::Both), S),
            Ok(Installed::Updated)
        );
        assert_eq!(counts(), (0, 0));
        assert_eq!(
            t.install(&r, target(&stats, Track::Both), S),
            Ok(Installed::Updated)
        );
        // ICMP's peek does not count it; the first lookup does, once; its origin is clean.
        let o = key("198.18.0.2:40000", "198.18.0.100:80");
        let peeked = t.peek(Direction::Original, &o, 2 * S).unwrap();
        assert_eq!(peeked.origin, Origin::new(0, 0));
        assert_eq!(counts(), (0, 0));
        let to = Timeouts::default();
        let hit = t.lookup(Direction::Original, &o, ACK, 2 * S, &to).unwrap();
        assert_eq!(hit.origin, Origin::new(0, 0));
        assert_eq!(hit.state, ConnState::Established);
        assert_eq!(counts(), (1, 0));
        t.lookup(
            Direction::Reply,
            &key("198.18.1.11:80", "198.18.0.2:40000"),
            ACK,
            2 * S,
            &to,
        )
        .unwrap();
        assert_eq!(counts(), (1, 0));
        // Removed: counts back to 0. An uncounted one removed leaves them alone.
        assert!(t.uninstall(&r).unwrap());
        assert_eq!(counts(), (0, 0));
        t.install(&r, target(&stats, Track::Both), 3 * S).unwrap();
        assert_eq!(t.expire(200 * S, 100), 1);
        assert_eq!(counts(), (0, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn an_installed_entry_expires_after_the_records_timeout() {
        let t = ConnTable::new(100);
        let stats = Arc::new(RealStats::default());
        t.install(
            &rec("198.18.0.2:40000", None),
            target(&stats, Track::Both),
            S,
        )
        .unwrap();
        let rows = t.rows(S);
        assert_eq!(rows[0].expires, 61 * S);
        let o = key("198.18.0.2:40000", "198.18.0.100:80");
        assert!(t.peek(Direction::Original, &o, 60 * S).is_some());
        assert!(t.peek(Direction::Original, &o, 61 * S).is_none());
    }

    fn pool(first: u16, last: u16) -> LocalPool {
        LocalPool {
            name: "p".into(),
            addresses: vec!["198.18.1.2".parse().unwrap()],
            first_port: first,
            last_port: last,
        }
    }

    #[test]
    fn fullnat_installs_reserve_exactly_the_records_port_and_refuse_conflicts() {
        let t = ConnTable::with_pools(100, 1, &[pool(20000, 20009)]);
        let stats = Arc::new(RealStats::default());
        let fullnat = || target(&stats, Track::FullNat { pool: 0 });
        let r = rec("198.18.0.2:40000", Some("198.18.1.2:20005"));
        assert_eq!(t.install(&r, fullnat(), S), Ok(Installed::Created));
        assert_eq!(t.local_ports_in_use(0), 1);
        // The reply to the local endpoint finds it.
        let reply = key("198.18.1.11:80", "198.18.1.2:20005");
        let to = Timeouts::default();
        let got = t.lookup(Direction::Reply, &reply, ACK, S, &to).unwrap();
        assert_eq!(got.client(), sa("198.18.0.2:40000"));
        // Another connection with the same local endpoint: taken.
        let other = rec("198.18.0.3:40000", Some("198.18.1.2:20005"));
        let e = t.install(&other, fullnat(), S);
        assert_eq!(e, Err(InstallError::LocalPort(ReserveError::Taken)));
        let outside = rec("198.18.0.3:40000", Some("198.18.1.2:20010"));
        let e = t.install(&outside, fullnat(), S);
        assert_eq!(e, Err(InstallError::LocalPort(ReserveError::NotInPool)));
        let not_pool = rec("198.18.0.3:40000", Some("198.18.1.9:20001"));
        let e = t.install(&not_pool, fullnat(), S);
        assert_eq!(e, Err(InstallError::LocalPort(ReserveError::NotInPool)));
        let e = t.install(&other, target(&stats, Track::Both), S);
        assert_eq!(e, Err(InstallError::MethodMismatch));
        // New local connections never get the reserved port; a delete gives it back.
        let mut handed = Vec::new();
        for port in 1..=20u16 {
            let new = crate::conntrack::NewConn {
                proto: Proto::Tcp,
                client: SocketAddr::new(sa("198.18.0.9:1").ip(), port),
                vip: sa("198.18.0.100:80"),
                real: sa("198.18.1.11:80"),
                state: ConnState::SynRecv,
                stats: stats.clone(),
            };
            if let Ok(ins) = t.insert_fullnat(new, 0, S, &to) {
                handed.push(ins.conn.local().unwrap().port());
            }
        }
        assert_eq!(handed.len(), 9);
        assert!(!handed.contains(&20005));
        assert!(t.uninstall(&r).unwrap());
        assert_eq!(t.local_ports_in_use(0), 9);
    }

    #[test]
    fn a_fullnat_port_of_another_shard_is_refused() {
        // Four shards: the client's shard is fixed by its endpoint, the port names another.
        let t = ConnTable::with_pools(100, 4, &[pool(20000, 20099)]);
        let stats = Arc::new(RealStats::default());
        let refused = (20000..20004u16)
            .filter(|p| {
                let r = rec("198.18.0.2:40000", Some(&format!("198.18.1.2:{p}")));
                let got = t.install(&r, target(&stats, Track::FullNat { pool: 0 }), S);
                if got.is_ok() {
                    t.uninstall(&r).unwrap();
                }
                got == Err(InstallError::LocalPort(ReserveError::OtherShard))
            })
            .count();
        assert_eq!(
            refused, 3,
            "exactly one residue of four is the client's shard"
        );
    }

    #[test]
    fn the_dump_pager_gives_every_live_entry_once_one_shard_per_page() {
        let t = ConnTable::with_families(50_000, 1000, 8, &[]);
        let stats = Arc::new(RealStats::default());
        let mut want = Vec::new();
        for i in 0..3000u16 {
            let r = rec(&format!("198.18.{}.{}:{}", i % 7, i % 200, 1000 + i), None);
            t.install(&r, target(&stats, Track::Both), S).unwrap();
            want.push(r.client);
        }
        let mut r6 = rec("[2001:2::2]:4000", None);
        (r6.vip, r6.real) = (
            sa("[2001:2::100]:80").into(),
            sa("[2001:2:1::11]:80").into(),
        );
        t.install(&r6, target(&stats, Track::Both), S).unwrap();
        want.push(r6.client);
        let (mut cursor, mut out) = (ConnDump::default(), Vec::new());
        while t.dump_page(&mut cursor, 2 * S, 100, &mut out) {}
        assert!(cursor.is_done());
        assert!(!t.dump_page(&mut cursor, 2 * S, 100, &mut out));
        let mut got: Vec<Endpoint> = out
            .iter()
            .map(|r| match r {
                SyncRecord::Conn(c) => {
                    assert_eq!((c.op, c.timeout_ms), (SyncOp::Create, 59_000));
                    c.client
                }
                SyncRecord::Template(_) => unreachable!(),
            })
            .collect();
        let key = |e: &Endpoint| (e.ip, e.port);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
    }
}
