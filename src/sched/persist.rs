//! Persistence templates: IPVS persistent services (`ipvsadm -p TIMEOUT -M NETMASK`).
//!
//! A persistent service sends every new connection of one client network (the client address
//! masked with `persistence.netmask`) to the same real server while the network's **template**
//! lives. The template is keyed by (protocol, VIP, service port, client network); for a port-0
//! (all-port) service the port is 0, so every port of the VIP shares one template per client
//! network, as in IPVS. Semantics, each as IPVS unless noted:
//! - the first connection of a network is scheduled normally and creates the template;
//! - each new connection that uses the template sets its expiry to `now + timeout` again;
//! - a template whose real server is gone from the service or cannot take new flows (weight 0,
//!   down, overloaded) is replaced by a fresh pick. IPVS keeps sending to a quiescent (weight 0)
//!   server unless its `expire_quiescent_template` sysctl is set; xvs behaves as with the sysctl
//!   set, so weight 0 always means "no new flows";
//! - IPVS also keeps a template alive while connections it scheduled are alive; xvs's template
//!   expires `timeout` after the last connection it scheduled, whatever those connections do
//!   (they keep their server through the connection table either way). Only a *new* connection
//!   after the expiry may move.
//!
//! Layout and invariants (as the connection table, and in the same container,
//! [`Sharded`]): shards chosen by a fixed hash of the template key, each behind a mutex held for
//! one operation; a slab of fixed capacity plus an index with room for
//! four keys per slot (so it never reallocates); lazy expiry on lookup plus a bounded clock sweep
//! ([`PersistenceTable::expire`]). A full shard reclaims a bounded number of expired templates,
//! then refuses ([`TemplateFull`]). The decision under the lock ([`PersistenceTable::schedule`]'s
//! closure) only reads atomics, so two workers racing on one client network agree on one server.
//!
//! Connection sync (issue 16): [`PersistenceTable::schedule_synced`] says what a peer must hear
//! of a template: a **Create** when it is made (or an expired one is made again), an **Update**
//! when it moves to another server, a **Delete** when `choose` drops it; a refresh (same
//! server, expiry pushed on) is told only when the peers' copy has aged: at most once per
//! quarter of the timeout ([`SYNC_REFRESH_DIVISOR`]), so a peer's copy never has less than
//! three quarters of the timeout left while the template is in use here, and a busy client
//! network costs its peers one record per `timeout / 4`, not one per connection (IPVS syncs
//! a template with each synced connection). The sweep reports Deletes
//! ([`PersistenceTable::expire_with`]); [`PersistenceTable::install`] takes a peer's record and
//! [`PersistenceTable::dump_page`] is the full-dump source. The table never knows about rings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hashbrown::HashMap;

use crate::conntrack::sharded::{Hand, Sharded};
use crate::conntrack::TableAllocError;
use crate::flow::{Nanos, Proto};
use crate::sync::record::{SyncOp, SyncRecord, TemplateRecord};

/// A refresh of a template is synced once `timeout / SYNC_REFRESH_DIVISOR` passed since it was
/// last synced (see the module documentation).
pub const SYNC_REFRESH_DIVISOR: u64 = 4;

/// Identity of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub proto: Proto,
    pub vip: IpAddr,
    /// The service port; 0 for an all-port service.
    pub vport: u16,
    /// The client address masked with the service's netmask.
    pub client_net: IpAddr,
}

impl TemplateKey {
    /// The key for a client of service (`proto`, `vip`, `vport`) with `netmask`.
    pub fn new(proto: Proto, vip: IpAddr, vport: u16, client: IpAddr, netmask: IpAddr) -> Self {
        TemplateKey {
            proto,
            vip,
            vport,
            client_net: mask(client, netmask),
        }
    }
}

/// `addr & netmask`; a netmask of the other family leaves the address unmasked.
pub fn mask(addr: IpAddr, netmask: IpAddr) -> IpAddr {
    match (addr, netmask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => {
            IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & m.to_bits()))
        }
        (IpAddr::V6(a), IpAddr::V6(m)) => {
            IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & m.to_bits()))
        }
        _ => addr,
    }
}

/// The table of a shard was full of live templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("persistence template table full")]
pub struct TemplateFull;

/// A template as `xvs ctl conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRow {
    pub key: TemplateKey,
    pub real: SocketAddr,
    pub expires: Nanos,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: TemplateKey,
    real: SocketAddr,
    expires: Nanos,
    /// When a sync record of this template was last produced.
    synced: Nanos,
    live: bool,
}

impl Slot {
    /// The template as a sync record of `op`, with the time it has left at `now`.
    fn record(&self, op: SyncOp, now: Nanos) -> TemplateRecord {
        let left = self.expires.saturating_sub(now) / 1_000_000;
        TemplateRecord {
            op,
            key: self.key,
            real: self.real.into(),
            timeout_ms: u32::try_from(left).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug)]
struct Shard {
    index: HashMap<TemplateKey, u32, ahash::RandomState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
    /// The expiry sweep's position.
    hand: Hand,
}

/// How many slots a full shard visits for expired templates before refusing.
const RECLAIM_BUDGET: usize = 64;

impl Shard {
    fn try_new(capacity: usize) -> Result<Shard, String> {
        let mut index = HashMap::with_hasher(Default::default());
        let mut slots = Vec::new();
        let mut free = Vec::new();
        index
            .try_reserve(capacity.saturating_mul(2))
            .map_err(|e| format!("{e:?}"))?;
        slots
            .try_reserve_exact(capacity)
            .map_err(|e| e.to_string())?;
        free.try_reserve_exact(capacity)
            .map_err(|e| e.to_string())?;
        Ok(Shard {
            index,
            slots,
            free,
            capacity,
            live: 0,
            hand: Hand::default(),
        })
    }

    fn allocated_bytes(&self) -> usize {
        self.index.allocation_size()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// What [`Shard::allocated_bytes`] will be for a shard of `capacity` templates: hashbrown's
    /// layout for `2 × capacity` keys (buckets: the next power of two of 8/7 of them; each
    /// bucket holds a `(key, slot)` and a control byte, plus one group of control bytes), the
    /// slab and its free list.
    fn bytes_for(capacity: usize) -> usize {
        const GROUP: usize = 16;
        let keys = capacity.saturating_mul(2).max(15);
        let buckets = (keys.saturating_mul(8) / 7)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        let pair = std::mem::size_of::<(TemplateKey, u32)>();
        let index = pair
            .saturating_mul(buckets)
            .checked_next_multiple_of(GROUP)
            .unwrap_or(usize::MAX)
            .saturating_add(buckets.saturating_add(GROUP));
        index
            .saturating_add(capacity.saturating_mul(std::mem::size_of::<Slot>()))
            .saturating_add(capacity.saturating_mul(std::mem::size_of::<u32>()))
    }

    fn remove(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if !s.live {
            return;
        }
        s.live = false;
        let key = s.key;
        self.index.remove(&key);
        self.free.push(slot);
        self.live -= 1;
    }

    fn sweep(
        &mut self,
        now: Nanos,
        budget: usize,
        on_removed: &mut impl FnMut(TemplateRecord),
    ) -> usize {
        let mut removed = 0;
        for i in self.hand.advance(self.slots.len(), budget) {
            let s = self.slots[i];
            // A slot index is below the capacity, which `u32` holds (checked at construction).
            let Ok(slot) = u32::try_from(i) else { continue };
            if s.live && s.expires <= now {
                on_removed(s.record(SyncOp::Delete, now));
                self.remove(slot);
                removed += 1;
            }
        }
        removed
    }

    fn insert(&mut self, slot: Slot) -> Result<(), TemplateFull> {
        if self.live >= self.capacity {
            return Err(TemplateFull);
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).map_err(|_| TemplateFull)?;
                self.slots.push(slot);
                i
            }
        };
        self.index.insert(slot.key, i);
        self.live += 1;
        Ok(())
    }
}

/// The position of a full dump of the templates ([`PersistenceTable::dump_page`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TemplateDump {
    shard: usize,
    slot: usize,
    done: bool,
}

impl TemplateDump {
    /// Whether every shard was visited.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The sharded template table (see the module documentation).
#[derive(Debug)]
pub struct PersistenceTable {
    /// The shards, placed by template key.
    shards: Sharded<Shard>,
}

/// The fixed seeds that place a template in its shard.
const SHARD_SEEDS: [u64; 4] = [0x7876_7370, 0x6572_7369, 0x7374_656e, 0x6365_0001];
/// The most shards a template table has.
const MAX_SHARDS: usize = 16;

impl PersistenceTable {
    /// A table for at most `capacity` templates (split over up to 16 shards).
    pub fn new(capacity: usize) -> PersistenceTable {
        Self::try_new(capacity).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The capacity of each shard of a table of `capacity`.
    fn shard_capacities(capacity: usize) -> impl Iterator<Item = usize> {
        Sharded::<Shard>::capacities(capacity, Sharded::<Shard>::shards_for(capacity, MAX_SHARDS))
    }

    /// Bytes [`PersistenceTable::allocated_bytes`] will report for a table of `capacity`,
    /// computed without allocating.
    pub fn bytes_needed(capacity: usize) -> usize {
        Self::shard_capacities(capacity)
            .map(Shard::bytes_for)
            .fold(0, usize::saturating_add)
    }

    /// Bytes reserved for the templates and their index (at construction; never grows).
    pub fn allocated_bytes(&self) -> usize {
        self.shards.sum(Shard::allocated_bytes)
    }

    /// [`PersistenceTable::new`] that reports a failed allocation instead of aborting.
    pub fn try_new(capacity: usize) -> Result<PersistenceTable, TableAllocError> {
        let alloc_error = |reason| TableAllocError {
            what: "persistence template table",
            entries: capacity,
            bytes: Self::bytes_needed(capacity),
            reason,
        };
        if u32::try_from(capacity).is_err() {
            return Err(alloc_error(format!("more than {} templates", u32::MAX)));
        }
        let shards = Sharded::<Shard>::shards_for(capacity, MAX_SHARDS);
        let shards = Sharded::try_new(capacity, shards, SHARD_SEEDS, |_, c| Shard::try_new(c))
            .map_err(alloc_error)?;
        Ok(PersistenceTable { shards })
    }

    pub fn capacity(&self) -> usize {
        self.shards.capacity()
    }

    /// Live templates (expired ones count until a lookup or the sweep removes them).
    pub fn len(&self) -> usize {
        self.shards.sum(|s| s.live)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &TemplateKey) -> crate::conntrack::sharded::ShardGuard<'_, Shard> {
        self.shards.lock_for(key)
    }

    /// Schedules a new connection of template `key` at `now`.
    ///
    /// `choose` gets the server of the live template (`None` if there is none or it expired) and
    /// returns the server to use: the same one while it can take the flow, or a fresh pick. The
    /// template then points at the returned server and expires at `now + timeout`. When `choose`
    /// returns `None` (no server can take the flow) any stale template is removed and `Ok(None)`
    /// returned. `Err(TemplateFull)`: a new template was needed and the shard is full of live
    /// ones; nothing changed.
    pub fn schedule(
        &self,
        key: TemplateKey,
        now: Nanos,
        timeout: Nanos,
        choose: impl FnOnce(Option<SocketAddr>) -> Option<SocketAddr>,
    ) -> Result<Option<SocketAddr>, TemplateFull> {
        self.schedule_synced(key, now, timeout, choose)
            .map(|(real, _)| real)
    }

    /// [`PersistenceTable::schedule`] that also says what a sync peer must hear of the
    /// template, if anything (see the module documentation for the rule).
    pub fn schedule_synced(
        &self,
        key: TemplateKey,
        now: Nanos,
        timeout: Nanos,
        choose: impl FnOnce(Option<SocketAddr>) -> Option<SocketAddr>,
    ) -> Result<(Option<SocketAddr>, Option<TemplateRecord>), TemplateFull> {
        let mut shard = self.shard(&key);
        let existing = shard.index.get(&key).copied();
        let current = existing.and_then(|i| {
            let s = &shard.slots[i as usize];
            (s.expires > now).then_some(s.real)
        });
        let Some(real) = choose(current) else {
            let mut gone = None;
            if let Some(i) = existing {
                gone = Some(shard.slots[i as usize].record(SyncOp::Delete, now));
                shard.remove(i);
            }
            return Ok((None, gone));
        };
        let expires = now.saturating_add(timeout);
        if let Some(i) = existing {
            let s = &mut shard.slots[i as usize];
            let op = match current {
                None => Some(SyncOp::Create),
                Some(r) if r != real => Some(SyncOp::Update),
                Some(_) => (now.saturating_sub(s.synced) >= timeout / SYNC_REFRESH_DIVISOR)
                    .then_some(SyncOp::Update),
            };
            s.real = real;
            s.expires = expires;
            if op.is_some() {
                s.synced = now;
            }
            return Ok((Some(real), op.map(|op| s.record(op, now))));
        }
        let slot = Slot {
            key,
            real,
            expires,
            synced: now,
            live: true,
        };
        if shard.live >= shard.capacity {
            shard.sweep(now, RECLAIM_BUDGET, &mut |_| {});
        }
        shard.insert(slot)?;
        Ok((Some(real), Some(slot.record(SyncOp::Create, now))))
    }

    /// Installs a peer's template record: Create and Update make the template point at
    /// `rec.real`, expiring `rec.timeout_ms` from `now` (a new one if this box has none);
    /// Delete removes it if it points at `rec.real`. The caller checked that the service and
    /// real server exist here. `Err(TemplateFull)`: a new template was needed and the shard is
    /// full of live ones.
    pub fn install(&self, rec: &TemplateRecord, now: Nanos) -> Result<(), TemplateFull> {
        let mut shard = self.shard(&rec.key);
        let existing = shard.index.get(&rec.key).copied();
        let real = SocketAddr::from(rec.real);
        if rec.op == SyncOp::Delete {
            if let Some(i) = existing.filter(|&i| shard.slots[i as usize].real == real) {
                shard.remove(i);
            }
            return Ok(());
        }
        let expires = now.saturating_add(u64::from(rec.timeout_ms) * 1_000_000);
        if let Some(i) = existing {
            let s = &mut shard.slots[i as usize];
            (s.real, s.expires, s.synced) = (real, expires, now);
            return Ok(());
        }
        if shard.live >= shard.capacity {
            shard.sweep(now, RECLAIM_BUDGET, &mut |_| {});
        }
        shard.insert(Slot {
            key: rec.key,
            real,
            expires,
            synced: now,
            live: true,
        })?;
        Ok(())
    }

    /// The next page of a full dump of the templates: appends a Create record of every live
    /// template among up to `max_slots` slots of one shard (one lock), from where `cursor`
    /// stopped. Returns `false` once the dump is complete (then `cursor.is_done()`).
    pub fn dump_page(
        &self,
        cursor: &mut TemplateDump,
        now: Nanos,
        max_slots: usize,
        out: &mut Vec<SyncRecord>,
    ) -> bool {
        if cursor.is_done() {
            return false;
        }
        let shard = self.shards.lock(cursor.shard);
        let end = cursor
            .slot
            .saturating_add(max_slots.max(1))
            .min(shard.slots.len());
        let page = shard.slots.get(cursor.slot..end).unwrap_or_default();
        for s in page.iter().filter(|s| s.live && s.expires > now) {
            out.push(SyncRecord::Template(s.record(SyncOp::Create, now)));
        }
        if end < shard.slots.len() {
            cursor.slot = end;
        } else {
            cursor.shard += 1;
            cursor.slot = 0;
            cursor.done = cursor.shard >= self.shards.shards();
        }
        !cursor.is_done()
    }

    /// The server of the live template `key`, if any (expired templates are removed).
    pub fn get(&self, key: &TemplateKey, now: Nanos) -> Option<SocketAddr> {
        let mut shard = self.shard(key);
        let i = *shard.index.get(key)?;
        let s = shard.slots[i as usize];
        if s.expires <= now {
            shard.remove(i);
            return None;
        }
        Some(s.real)
    }

    /// Removes expired templates, visiting at most `budget` slots of one shard (shards take
    /// turns). Returns how many were removed.
    pub fn expire(&self, now: Nanos, budget: usize) -> usize {
        self.expire_with(now, budget, |_| {})
    }

    /// [`PersistenceTable::expire`] that hands each removed template to `on_removed` as a
    /// Delete record (under its shard's lock: `on_removed` must be short, an enqueue).
    pub fn expire_with(
        &self,
        now: Nanos,
        budget: usize,
        mut on_removed: impl FnMut(TemplateRecord),
    ) -> usize {
        self.shards
            .sweep(|shard| shard.sweep(now, budget, &mut on_removed))
    }

    /// [`PersistenceTable::expire_with`] of shard `turn` (modulo the number of shards), as
    /// [`crate::conntrack::ConnTable::expire_turn_with`] for a worker's own turn.
    pub fn expire_turn_with(
        &self,
        turn: usize,
        now: Nanos,
        budget: usize,
        mut on_removed: impl FnMut(TemplateRecord),
    ) -> usize {
        self.shards
            .sweep_shard(turn, |shard| shard.sweep(now, budget, &mut on_removed))
    }

    /// A copy of every live template (for `xvs ctl conns`; one shard locked at a time).
    pub fn rows(&self) -> Vec<TemplateRow> {
        let mut out = Vec::new();
        // Read only: the shards' versions stay as they are.
        self.shards.for_each_read(|s| {
            out.extend(s.slots.iter().filter(|t| t.live).map(|t| TemplateRow {
                key: t.key,
                real: t.real,
                expires: t.expires,
            }));
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = crate::flow::NANOS_PER_SEC;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn key(client: &str) -> TemplateKey {
        TemplateKey::new(
            Proto::Tcp,
            ip("198.18.0.100"),
            80,
            ip(client),
            ip("255.255.255.0"),
        )
    }

    #[test]
    fn masks_the_client_into_its_network() {
        assert_eq!(key("198.18.5.77").client_net, ip("198.18.5.0"));
        assert_eq!(key("198.18.5.77"), key("198.18.5.1"));
        assert_ne!(key("198.18.5.77"), key("198.18.6.77"));
        assert_eq!(
            mask(ip("2001:db8::1:2"), ip("ffff:ffff:ffff:ffff::")),
            ip("2001:db8::")
        );
    }

    #[test]
    fn a_live_template_is_offered_to_the_next_connection_and_refreshed() {
        let t = PersistenceTable::new(16);
        let r1 = sa("198.18.1.11:80");
        let first = t.schedule(key("198.18.5.1"), 0, 10 * S, |cur| {
            assert_eq!(cur, None);
            Some(r1)
        });
        assert_eq!(first, Ok(Some(r1)));
        let again = t.schedule(key("198.18.5.2"), 9 * S, 10 * S, |cur| {
            assert_eq!(cur, Some(r1), "same /24 sees the template");
            cur
        });
        assert_eq!(again, Ok(Some(r1)));
        // Refreshed at 9 s: alive at 18 s, gone at 19 s.
        assert_eq!(t.get(&key("198.18.5.3"), 18 * S), Some(r1));
        assert_eq!(t.get(&key("198.18.5.3"), 19 * S), None);
        assert!(
            t.is_empty(),
            "the expired template was removed by the lookup"
        );
    }

    #[test]
    fn choose_may_move_the_template_or_drop_it() {
        let t = PersistenceTable::new(16);
        let (r1, r2) = (sa("198.18.1.11:80"), sa("198.18.1.12:80"));
        t.schedule(key("198.18.5.1"), 0, 10 * S, |_| Some(r1))
            .unwrap();
        let moved = t.schedule(key("198.18.5.1"), S, 10 * S, |_| Some(r2));
        assert_eq!(moved, Ok(Some(r2)));
        assert_eq!(t.get(&key("198.18.5.9"), 2 * S), Some(r2));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.schedule(key("198.18.5.1"), 3 * S, 10 * S, |_| None),
            Ok(None)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_reclaims_expired_templates_then_refuses() {
        let t = PersistenceTable::new(4);
        for i in 0..4 {
            let k = key(&format!("198.18.{i}.1"));
            assert!(t.schedule(k, 0, S, |_| Some(sa("198.18.1.11:80"))).is_ok());
        }
        let k = key("198.18.9.1");
        assert_eq!(
            t.schedule(k, S / 2, S, |_| Some(sa("198.18.1.11:80"))),
            Err(TemplateFull)
        );
        assert_eq!(t.len(), 4);
        // Once the others expired, the insert reclaims them.
        assert!(t
            .schedule(k, 2 * S, S, |_| Some(sa("198.18.1.11:80")))
            .is_ok());
        assert!(t.len() <= 4);
        assert_eq!(t.rows().len(), t.len());
    }

    #[test]
    fn sweep_is_bounded_and_removes_expired() {
        let t = PersistenceTable::new(100);
        for i in 0..100u32 {
            let client = IpAddr::from((0xc612_0000u32 + (i << 8)).to_be_bytes());
            let k = TemplateKey::new(
                Proto::Udp,
                ip("198.18.0.100"),
                0,
                client,
                ip("255.255.255.0"),
            );
            t.schedule(k, 0, S, |_| Some(sa("198.18.1.11:0"))).unwrap();
        }
        assert_eq!(t.len(), 100);
        assert!(t.expire(2 * S, 10) <= 10);
        let mut rounds = 0;
        while !t.is_empty() {
            t.expire(2 * S, 10);
            rounds += 1;
            assert!(rounds < 100, "the sweep makes progress");
        }
    }

    fn key6(client: &str, prefix: u32) -> TemplateKey {
        let mask = Ipv6Addr::from_bits(u128::MAX << (128 - prefix));
        TemplateKey::new(
            Proto::Tcp,
            ip("2001:2::100"),
            443,
            ip(client),
            IpAddr::V6(mask),
        )
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_masked_prefix_next_to_ipv4_ones() {
        let t = PersistenceTable::new(16);
        let (r1, r2) = (sa("[2001:2:0:1::11]:443"), sa("[2001:2:0:1::12]:443"));
        assert_eq!(key6("2001:2:0:5::77", 64).client_net, ip("2001:2:0:5::"));
        assert_eq!(key6("2001:2:0:5:1::1", 64), key6("2001:2:0:5:ffff::2", 64));
        assert_ne!(key6("2001:2:0:5::1", 64), key6("2001:2:0:6::1", 64));
        assert_eq!(key6("2001:2:0:5::1", 48), key6("2001:2:0:6::1", 48));
        t.schedule(key6("2001:2:0:5::1", 64), 0, 10 * S, |_| Some(r1))
            .unwrap();
        t.schedule(key6("2001:2:0:6::1", 64), 0, 10 * S, |_| Some(r2))
            .unwrap();
        // An IPv4 client network of the same service port is a template of its own.
        t.schedule(key("198.18.5.1"), 0, 10 * S, |_| Some(sa("198.18.1.11:80")))
            .unwrap();
        assert_eq!(t.len(), 3);
        let again = t.schedule(key6("2001:2:0:5:abcd::9", 64), S, 10 * S, |cur| {
            assert_eq!(cur, Some(r1), "same /64 sees the template");
            cur
        });
        assert_eq!(again, Ok(Some(r1)));
        assert_eq!(t.get(&key6("2001:2:0:6::2", 64), 9 * S), Some(r2));
        assert_eq!(t.get(&key6("2001:2:0:6::2", 64), 10 * S), None);
        let rows = t.rows();
        assert!(rows.iter().any(|r| r.key.client_net == ip("2001:2:0:5::")));
    }

    #[test]
    fn ipv6_templates_share_the_bound() {
        let t = PersistenceTable::new(2);
        let r = sa("[2001:2:0:1::11]:443");
        t.schedule(key6("2001:2:0:1::1", 64), 0, S, |_| Some(r))
            .unwrap();
        t.schedule(key("198.18.5.1"), 0, S, |_| Some(sa("198.18.1.11:80")))
            .unwrap();
        assert_eq!(
            t.schedule(key6("2001:2:0:2::1", 64), S / 2, S, |_| Some(r)),
            Err(TemplateFull)
        );
        assert!(t
            .schedule(key6("2001:2:0:2::1", 64), 2 * S, S, |_| Some(r))
            .is_ok());
    }
}
