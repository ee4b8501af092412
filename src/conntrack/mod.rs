//! The connection table: one entry per tracked connection, found from either direction.
//!
//! Layout and invariants:
//! - The table is split into a power-of-two number of shards, each behind its own mutex, held for
//!   one operation only (never across a batch). A connection lives in the shard chosen by its
//!   **client endpoint** (address, port), which both directions carry (source of the original
//!   direction, destination of replies), so both lookups of one connection hit the same shard
//!   even when replies arrive on another queue (RSS is not symmetric for NAT).
//! - Each shard owns a slab of entries and an index from [`FlowKey`] to slab slot holding both the
//!   original key (client → VIP) and the reply key (real server → client); each index value also
//!   records which of the two it is, so a lookup only matches a key of its own direction.
//!   Capacity is fixed at construction (`conntrack.max_entries`, split across shards); slab and
//!   index are allocated up front. The index has room for twice the keys it can ever hold, so
//!   hashbrown never reallocates it: when removals' tombstones use up its spare room it rehashes
//!   in place (a pause proportional to the shard, under its lock; the fixed-size table of the
//!   conntrack-at-scale issue removes it). A full shard first reclaims expired entries (bounded
//!   work), then refuses.
//! - Expiry is lazy (an expired entry found by a lookup is removed and reported as a miss) plus a
//!   clock sweep: [`ConnTable::expire`] visits a bounded number of slots per call, so no call ever
//!   walks the whole table.
//! - Per-real-server active/inactive counts ([`RealStats`]) are kept exact: every insert, state
//!   change across ESTABLISHED, and removal adjusts them.

pub mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

pub use state::{ConnState, Direction};

use crate::datapath::wire::TcpFlags;
use crate::flow::{FlowKey, Nanos, Proto};
use crate::sched::RealStats;

/// Idle timeouts per protocol state, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: Nanos,
    pub tcp_syn: Nanos,
    pub tcp_fin: Nanos,
    pub tcp_close: Nanos,
    pub udp: Nanos,
    pub icmp: Nanos,
}

impl Default for Timeouts {
    /// The defaults of CONTRACT.md (IPVS's defaults: 15m, 30s, 2m, 10s, 5m; ICMP 30s).
    fn default() -> Self {
        const S: Nanos = crate::flow::NANOS_PER_SEC;
        Timeouts {
            tcp_established: 900 * S,
            tcp_syn: 30 * S,
            tcp_fin: 120 * S,
            tcp_close: 10 * S,
            udp: 300 * S,
            icmp: 30 * S,
        }
    }
}

/// What a packet tells the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Tcp(TcpFlags),
    Udp,
}

/// A new connection to insert.
#[derive(Clone, Debug)]
pub struct NewConn {
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub state: ConnState,
    pub stats: Arc<RealStats>,
}

/// The translation a tracked connection applies (a copy, taken under the shard lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub state: ConnState,
}

/// A row of the table as `xvs ctl conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRow {
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub state: ConnState,
    pub expires: Nanos,
}

/// Why an insert was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("connection table full")]
    Full,
}

#[derive(Debug)]
struct Entry {
    proto: Proto,
    client: SocketAddr,
    vip: SocketAddr,
    real: SocketAddr,
    state: ConnState,
    expires: Nanos,
    stats: Option<Arc<RealStats>>,
}

impl Entry {
    fn original_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.client.ip(),
            sport: self.client.port(),
            dst: self.vip.ip(),
            dport: self.vip.port(),
        }
    }

    fn reply_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.real.ip(),
            sport: self.real.port(),
            dst: self.client.ip(),
            dport: self.client.port(),
        }
    }

    fn tracked(&self) -> Tracked {
        Tracked {
            client: self.client,
            vip: self.vip,
            real: self.real,
            state: self.state,
        }
    }

    fn is_live(&self) -> bool {
        self.stats.is_some()
    }
}

/// Direction bit of an index value.
const ORIGINAL: u32 = 0;
const REPLY: u32 = 1;

fn dir_bit(dir: Direction) -> u32 {
    match dir {
        Direction::Original => ORIGINAL,
        Direction::Reply => REPLY,
    }
}

fn count(stats: &RealStats, state: ConnState) -> &AtomicU64 {
    if state.is_active() {
        &stats.active
    } else {
        &stats.inactive
    }
}

#[derive(Debug)]
struct Shard {
    /// Key → `slot << 1 | direction bit` (see [`IndexValue`]).
    index: HashMap<FlowKey, u32, ahash::RandomState>,
    slots: Vec<Entry>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
    cursor: usize,
}

/// How many slots an insert into a full shard may visit looking for expired entries.
const RECLAIM_BUDGET: usize = 64;

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            // At most 2 keys per entry; 4 per entry keeps live keys at most half of the table, the
            // condition for hashbrown to clean tombstones in place instead of growing.
            index: HashMap::with_capacity_and_hasher(capacity * 4, Default::default()),
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            capacity,
            live: 0,
            cursor: 0,
        }
    }

    fn remove(&mut self, slot: u32) {
        let e = &mut self.slots[slot as usize];
        let Some(stats) = e.stats.take() else { return };
        count(&stats, e.state).fetch_sub(1, Ordering::Relaxed);
        stats.conn_removed();
        let (ok, rk) = (e.original_key(), e.reply_key());
        for k in [ok, rk] {
            if self.index.get(&k).map(|v| v >> 1) == Some(slot) {
                self.index.remove(&k);
            }
        }
        self.free.push(slot);
        self.live -= 1;
    }

    /// Visits up to `budget` slots from the cursor, removing expired entries. Returns the number
    /// removed.
    fn sweep(&mut self, now: Nanos, budget: usize) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.cursor = (self.cursor + 1) % n;
            let e = &self.slots[self.cursor];
            if e.is_live() && e.expires <= now {
                self.remove(self.cursor as u32);
                removed += 1;
            }
        }
        removed
    }
}

/// The sharded connection table. See the module documentation for its invariants.
#[derive(Debug)]
pub struct ConnTable {
    shards: Box<[Mutex<Shard>]>,
    hasher: ahash::RandomState,
    capacity: usize,
    len: AtomicUsize,
    sweep_shard: AtomicUsize,
}

impl ConnTable {
    /// A table holding at most `max_entries` connections, in a number of shards that grows with
    /// the capacity (1 shard below 8192 entries, up to 64).
    pub fn new(max_entries: usize) -> ConnTable {
        let shards = (max_entries / 4096)
            .clamp(1, 64)
            .next_power_of_two()
            .min(64);
        Self::with_shards(max_entries, shards)
    }

    /// A table with an explicit power-of-two shard count; capacity is split exactly.
    pub fn with_shards(max_entries: usize, shards: usize) -> ConnTable {
        assert!(
            shards.is_power_of_two(),
            "shard count must be a power of two"
        );
        let base = max_entries / shards;
        let extra = max_entries % shards;
        let shards = (0..shards)
            .map(|i| Mutex::new(Shard::new(base + usize::from(i < extra))))
            .collect();
        ConnTable {
            shards,
            hasher: ahash::RandomState::with_seeds(
                0x7876_7300,
                0x636f_6e6e,
                0x7472_6163,
                0x6b00_0001,
            ),
            capacity: max_entries,
            len: AtomicUsize::new(0),
            sweep_shard: AtomicUsize::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of live entries (exact between operations).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_for(&self, client: (std::net::IpAddr, u16)) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(client) as usize) & (self.shards.len() - 1);
        // A poisoned shard only means another thread panicked mid-operation; the shard's own
        // invariants are restored by every operation before it returns, so keep going.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client endpoint of a packet travelling in `dir` with `key`.
    fn client_of(dir: Direction, key: &FlowKey) -> (std::net::IpAddr, u16) {
        match dir {
            Direction::Original => (key.src, key.sport),
            Direction::Reply => (key.dst, key.dport),
        }
    }

    /// Finds the connection of a packet, advances its state and refreshes its timeout.
    ///
    /// Returns `None` when there is no live entry, when the entry had expired (it is removed), or
    /// when an initial SYN from the client reopens a closing connection (the entry is removed so
    /// that the caller schedules the new connection afresh).
    pub fn lookup(
        &self,
        dir: Direction,
        key: &FlowKey,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Option<Tracked> {
        let mut shard = self.shard_for(Self::client_of(dir, key));
        let value = *shard.index.get(key)?;
        if value & 1 != dir_bit(dir) {
            // The key of the other direction (e.g. a client's segment to a VIP whose service was
            // just removed looks like a "reply"): not this packet's connection.
            return None;
        }
        let slot = value >> 1;
        let e = &mut shard.slots[slot as usize];
        let reopen = matches!(event, Event::Tcp(f) if dir == Direction::Original && f.is_initial_syn() && e.state.reusable_by_syn());
        if e.expires <= now || reopen {
            shard.remove(slot);
            self.len.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let new_state = match event {
            Event::Tcp(flags) => e.state.on_tcp(dir, flags),
            Event::Udp => e.state,
        };
        if new_state != e.state {
            if let Some(stats) = &e.stats {
                if new_state.is_active() != e.state.is_active() {
                    count(stats, e.state).fetch_sub(1, Ordering::Relaxed);
                    count(stats, new_state).fetch_add(1, Ordering::Relaxed);
                }
            }
            e.state = new_state;
        }
        e.expires = now.saturating_add(new_state.timeout(timeouts));
        Some(e.tracked())
    }

    /// Inserts a new connection. If the original key is already tracked (two workers raced on
    /// the same new flow), the existing entry wins and is returned.
    pub fn insert(
        &self,
        new: NewConn,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Tracked, InsertError> {
        let mut shard = self.shard_for((new.client.ip(), new.client.port()));
        let entry = Entry {
            proto: new.proto,
            client: new.client,
            vip: new.vip,
            real: new.real,
            state: new.state,
            expires: now.saturating_add(new.state.timeout(timeouts)),
            stats: Some(new.stats),
        };
        let (ok, rk) = (entry.original_key(), entry.reply_key());
        if let Some(slot) = shard
            .index
            .get(&ok)
            .filter(|v| *v & 1 == ORIGINAL)
            .map(|v| v >> 1)
        {
            let existing = &shard.slots[slot as usize];
            if existing.expires > now {
                return Ok(existing.tracked());
            }
            shard.remove(slot);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        if shard.live >= shard.capacity {
            let reclaimed = shard.sweep(now, RECLAIM_BUDGET);
            self.len.fetch_sub(reclaimed, Ordering::Relaxed);
            if shard.live >= shard.capacity {
                return Err(InsertError::Full);
            }
        }
        // A reply key held by another live connection (same client endpoint NATed to the same
        // real server from two services) is taken over by the newer connection; the older one
        // keeps its original direction until it expires.
        if let Some(stats) = &entry.stats {
            count(stats, entry.state).fetch_add(1, Ordering::Relaxed);
            stats.conn_added();
        }
        let tracked = entry.tracked();
        let slot = match shard.free.pop() {
            Some(s) => {
                shard.slots[s as usize] = entry;
                s
            }
            None => {
                let s = shard.slots.len() as u32;
                shard.slots.push(entry);
                s
            }
        };
        shard.index.insert(ok, slot << 1 | ORIGINAL);
        shard.index.insert(rk, slot << 1 | REPLY);
        shard.live += 1;
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(tracked)
    }

    /// Removes expired entries, visiting at most `budget` slots of one shard (the shards take
    /// turns). Returns how many entries were removed.
    pub fn expire(&self, now: Nanos, budget: usize) -> usize {
        let i = self.sweep_shard.fetch_add(1, Ordering::Relaxed) & (self.shards.len() - 1);
        let removed = self.shards[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sweep(now, budget);
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Removes every connection scheduled to the real server whose counters are `stats` (one
    /// (service, real server) pair: the same address in another service is not touched), as
    /// health checks do for `on_failure: remove`. Its active/inactive counts drop with each
    /// entry. Locks one shard at a time, never two, so workers wait at most one shard's scan.
    /// Returns how many connections were removed.
    pub fn remove_real(&self, stats: &Arc<RealStats>) -> usize {
        let mut total = 0;
        for s in self.shards.iter() {
            let mut shard = s.lock().unwrap_or_else(|p| p.into_inner());
            let mut removed = 0;
            for slot in 0..shard.slots.len() {
                let mine = shard.slots[slot]
                    .stats
                    .as_ref()
                    .is_some_and(|st| Arc::ptr_eq(st, stats));
                if mine {
                    shard.remove(slot as u32);
                    removed += 1;
                }
            }
            drop(shard);
            self.len.fetch_sub(removed, Ordering::Relaxed);
            total += removed;
        }
        total
    }

    /// A copy of every live entry (for `xvs ctl conns` and tests; locks one shard at a time).
    pub fn rows(&self) -> Vec<ConnRow> {
        let mut out = Vec::with_capacity(self.len());
        for s in self.shards.iter() {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(s.slots.iter().filter(|e| e.is_live()).map(|e| ConnRow {
                proto: e.proto,
                client: e.client,
                vip: e.vip,
                real: e.real,
                state: e.state,
                expires: e.expires,
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = crate::flow::NANOS_PER_SEC;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn new_conn(client_port: u16, stats: &Arc<RealStats>) -> NewConn {
        NewConn {
            proto: Proto::Tcp,
            client: SocketAddr::new("198.18.0.2".parse().unwrap(), client_port),
            vip: sa("198.18.0.100:80"),
            real: sa("198.18.1.11:8080"),
            state: ConnState::SynRecv,
            stats: stats.clone(),
        }
    }

    fn keys(c: &NewConn) -> (FlowKey, FlowKey) {
        let o = FlowKey {
            proto: c.proto,
            src: c.client.ip(),
            sport: c.client.port(),
            dst: c.vip.ip(),
            dport: c.vip.port(),
        };
        let r = FlowKey {
            proto: c.proto,
            src: c.real.ip(),
            sport: c.real.port(),
            dst: c.client.ip(),
            dport: c.client.port(),
        };
        (o, r)
    }

    const ACK: Event = Event::Tcp(TcpFlags(TcpFlags::ACK));
    const SYN: Event = Event::Tcp(TcpFlags(TcpFlags::SYN));

    #[test]
    fn both_directions_find_the_connection_and_state_advances() {
        let t = ConnTable::with_shards(100, 4);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = new_conn(40000, &stats);
        let (o, r) = keys(&c);
        t.insert(c.clone(), 0, &to).unwrap();
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 1);
        let synack = Event::Tcp(TcpFlags(TcpFlags::SYN | TcpFlags::ACK));
        let got = t.lookup(Direction::Reply, &r, synack, S, &to).unwrap();
        assert_eq!((got.vip, got.state), (c.vip, ConnState::SynRecv));
        let got = t.lookup(Direction::Original, &o, ACK, 2 * S, &to).unwrap();
        assert_eq!((got.real, got.state), (c.real, ConnState::Established));
        assert_eq!(stats.active.load(Ordering::Relaxed), 1);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 0);
        assert_eq!(t.len(), 1);
        // A reply key must not match as an original key and vice versa.
        assert!(t
            .lookup(Direction::Original, &o.reversed(), ACK, 2 * S, &to)
            .is_none());
    }

    #[test]
    fn entries_expire_lazily_and_by_sweep() {
        let t = ConnTable::with_shards(100, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        for p in 0..10 {
            t.insert(new_conn(40000 + p, &stats), 0, &to).unwrap();
        }
        let (o, _) = keys(&new_conn(40000, &stats));
        // tcp_syn is 30 s: alive at 29 s, gone at 31 s.
        assert!(t
            .lookup(Direction::Original, &o, ACK, 29 * S, &to)
            .is_some());
        // Now ESTABLISHED (15 min) for port 40000; the 9 others expire at 30 s.
        assert_eq!(t.expire(31 * S, 4), 4, "sweep is bounded by its budget");
        assert_eq!(t.expire(31 * S, 100), 5);
        assert_eq!(t.len(), 1);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 0);
        assert_eq!(stats.active.load(Ordering::Relaxed), 1);
        assert!(
            t.lookup(Direction::Original, &o, ACK, 901 * S + 29 * S, &to)
                .is_none(),
            "expired on lookup"
        );
        assert_eq!(t.len(), 0);
        assert_eq!(stats.active.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_table_refuses_then_reclaims_expired() {
        let t = ConnTable::with_shards(8, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        for p in 0..8 {
            t.insert(new_conn(1000 + p, &stats), 0, &to).unwrap();
        }
        assert_eq!(
            t.insert(new_conn(2000, &stats), S, &to),
            Err(InsertError::Full)
        );
        assert_eq!(t.len(), 8);
        // After tcp_syn (30 s) the old entries are reclaimable by the insert itself.
        t.insert(new_conn(2000, &stats), 31 * S, &to).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn syn_reopens_a_closing_connection() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = new_conn(5000, &stats);
        let (o, _) = keys(&c);
        t.insert(c, 0, &to).unwrap();
        t.lookup(
            Direction::Original,
            &o,
            Event::Tcp(TcpFlags(TcpFlags::RST)),
            S,
            &to,
        )
        .unwrap();
        assert!(t.lookup(Direction::Original, &o, SYN, 2 * S, &to).is_none());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn duplicate_insert_returns_the_existing_entry() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let mut c = new_conn(5000, &stats);
        t.insert(c.clone(), 0, &to).unwrap();
        c.real = sa("198.18.1.12:8080");
        assert_eq!(t.insert(c, 0, &to).unwrap().real, sa("198.18.1.11:8080"));
        assert_eq!(t.len(), 1);
        assert_eq!(t.rows().len(), 1);
    }

    #[test]
    fn a_key_only_matches_in_its_own_direction() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = new_conn(6000, &stats);
        let (o, r) = keys(&c);
        t.insert(c, 0, &to).unwrap();
        assert!(t.lookup(Direction::Reply, &o, ACK, 1, &to).is_none());
        assert!(t.lookup(Direction::Original, &r, ACK, 1, &to).is_none());
        assert!(t.lookup(Direction::Original, &o, ACK, 1, &to).is_some());
        assert!(t.lookup(Direction::Reply, &r, ACK, 1, &to).is_some());
    }

    #[test]
    fn churn_at_full_occupancy_never_reallocates_the_index() {
        let to = Timeouts {
            tcp_syn: 1,
            ..Timeouts::default()
        };
        let t = ConnTable::with_shards(4096, 1);
        let stats = Arc::new(RealStats::default());
        let size = || t.shards[0].lock().unwrap().index.allocation_size();
        let before = size();
        let mut now = 0;
        for round in 0..40u32 {
            for i in 0..4096u32 {
                let mut c = new_conn(0, &stats);
                c.client = SocketAddr::from(((round * 4096 + i).to_be_bytes(), 1000));
                t.insert(c, now, &to).unwrap();
            }
            now += 10;
            assert_eq!(t.expire(now, 4096), 4096);
            assert_eq!(size(), before, "index reallocated in round {round}");
        }
    }

    #[test]
    fn remove_real_removes_only_that_servers_connections_and_keeps_counts_exact() {
        let t = ConnTable::with_shards(1000, 8);
        let to = Timeouts::default();
        let a = Arc::new(RealStats::default());
        let b = Arc::new(RealStats::default());
        // Same address, another service: its own counters, untouched.
        let other = Arc::new(RealStats::default());
        for p in 0..100u16 {
            let mut c = new_conn(10_000 + p, if p % 2 == 0 { &a } else { &b });
            if p % 2 == 1 {
                c.real = sa("198.18.1.12:8080");
            }
            t.insert(c, 0, &to).unwrap();
        }
        for p in 0..10u16 {
            let mut c = new_conn(20_000 + p, &other);
            c.vip = sa("198.18.0.100:81");
            t.insert(c, 0, &to).unwrap();
        }
        // Half of a's connections established.
        for p in (0..100u16).step_by(4) {
            let (o, _) = keys(&new_conn(10_000 + p, &a));
            t.lookup(Direction::Original, &o, ACK, 1, &to).unwrap();
        }
        assert_eq!(a.active.load(Ordering::Relaxed), 25);
        assert_eq!(a.inactive.load(Ordering::Relaxed), 25);
        assert_eq!(t.remove_real(&a), 50);
        assert_eq!(t.len(), 60);
        assert_eq!(a.total_connections(), 0);
        assert_eq!(b.inactive.load(Ordering::Relaxed), 50);
        assert_eq!(other.inactive.load(Ordering::Relaxed), 10);
        assert!(t
            .rows()
            .iter()
            .all(|r| r.real != sa("198.18.1.11:8080") || r.vip == sa("198.18.0.100:81")));
        // Both directions of a removed connection are gone, and its slot is reusable.
        let (o, r) = keys(&new_conn(10_000, &a));
        assert!(t.lookup(Direction::Original, &o, ACK, 2, &to).is_none());
        assert!(t.lookup(Direction::Reply, &r, ACK, 2, &to).is_none());
        t.insert(new_conn(10_000, &a), 2, &to).unwrap();
        assert_eq!(a.inactive.load(Ordering::Relaxed), 1);
        assert_eq!(t.remove_real(&a), 1);
        assert_eq!(t.remove_real(&a), 0);
        assert_eq!(t.len(), 60);
    }

    #[test]
    fn capacity_is_split_exactly_across_shards() {
        let t = ConnTable::with_shards(10, 4);
        let caps: usize = t.shards.iter().map(|s| s.lock().unwrap().capacity).sum();
        assert_eq!(caps, 10);
    }
}
