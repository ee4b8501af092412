//! The connection table's side of the datapath's established-flow fast path: an IPv4 key as
//! plain words ([`V4Key`]), its prefetch, and a lookup hit that changes nothing but the expiry
//! ([`ConnTable::lookup_established_v4`]).
//!
//! Invariant: [`ConnTable::lookup_established_v4`] either returns a hit with exactly the effect
//! [`ConnTable::lookup_probe`] would have had on it (the expiry refreshed, nothing else: same
//! state, no first packet of an installed entry, no removal) or returns `None` having changed
//! nothing, so that the caller may run the full lookup afterwards as if this had not run.
//! It changes nothing a reader of the shard's version may have cached (only the expiry), so it
//! leaves the version as it is; a hit carries the [`Validity`] under which
//! [`ConnTable::still_established_v4`] may stand for a later lookup of the same key without
//! the lock (the datapath's flow cache).

use std::net::{IpAddr, Ipv4Addr};

use super::family::V4;
use super::{
    is_expired, is_uncounted, stats_id, tick, ticks, ConnState, ConnTable, Direction, Event, Hint,
    Key, Origin, Table, Timeouts,
};
use crate::conntrack::local_ports::NO_LOCAL;
use crate::flow::{FlowKey, Nanos, Proto};

/// An IPv4 flow key as the packet carries it, in words (no [`IpAddr`] to match on): source and
/// destination addresses' bits, ports, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4Key {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: Proto,
}

impl V4Key {
    /// The key of `k`, if both its addresses are IPv4.
    #[inline]
    pub fn of(k: &FlowKey) -> Option<V4Key> {
        match (k.src, k.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(V4Key {
                src: s.to_bits(),
                dst: d.to_bits(),
                sport: k.sport,
                dport: k.dport,
                proto: k.proto,
            }),
            _ => None,
        }
    }

    /// The same key as a [`FlowKey`].
    pub fn flow_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: IpAddr::V4(Ipv4Addr::from_bits(self.src)),
            dst: IpAddr::V4(Ipv4Addr::from_bits(self.dst)),
            sport: self.sport,
            dport: self.dport,
        }
    }

    #[inline(always)]
    fn key(&self) -> Key<V4> {
        Key {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
        }
    }
}

/// What an established hit hands the fast path: the connection's real server and where it was
/// scheduled (the entry's [`Origin`] and [`stats_id`], as [`super::Tracked`] carries them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstablishedV4 {
    pub client: u32,
    pub cport: u16,
    pub vip: u32,
    pub vport: u16,
    pub real: u32,
    pub rport: u16,
    pub origin: Origin,
    pub stats_id: usize,
    /// What a later lookup of the same key must find to get the same answer.
    pub validity: Validity,
}

/// The conditions under which an [`EstablishedV4`] hit stands for a later lookup of the same
/// key in the same direction ([`ConnTable::still_established_v4`]): its shard still at the
/// version it had under the lock (nothing in the shard changed but expiries), the packet
/// leaving the state as it is, and its refreshed expiry the one the entry already has (the same
/// tick: a lookup would write nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    shard: usize,
    version: u64,
    state: ConnState,
    expires: u32,
}

#[cfg(test)]
impl EstablishedV4 {
    /// A hit to real server `real` (its other fields zero), for caches that never look inside.
    pub(crate) fn for_test(real: u32) -> EstablishedV4 {
        EstablishedV4 {
            client: 0,
            cport: 0,
            vip: 0,
            vport: 0,
            real,
            rport: 0,
            origin: Origin::UNKNOWN,
            stats_id: 0,
            validity: Validity {
                shard: 0,
                version: 0,
                state: ConnState::Established,
                expires: 0,
            },
        }
    }
}

impl ConnTable {
    /// [`ConnTable::prefetch`] of an IPv4 key given as words.
    #[inline]
    pub fn prefetch_v4(&self, dir: Direction, key: &V4Key) -> Hint {
        let hint = self.hint_v4(dir, key);
        self.v4.prefetch_hint(hint);
        hint
    }

    /// The shard and hash of an IPv4 key in direction `dir` (what [`ConnTable::prefetch_v4`]
    /// computes), without prefetching.
    #[inline]
    pub fn hint_v4(&self, dir: Direction, key: &V4Key) -> Hint {
        self.v4.hint(dir, &key.key())
    }

    /// The hash of an IPv4 key in direction `dir` in its shard's index ([`Hint::hash`]),
    /// without the shard.
    #[inline]
    pub fn hash_v4(&self, dir: Direction, key: &V4Key) -> u64 {
        key.key().hash(dir, &self.v4.key_hasher)
    }

    /// [`ConnTable::hint_v4`] of a key whose [`ConnTable::hash_v4`] is `hash`.
    #[inline]
    pub fn hint_v4_hashed(&self, dir: Direction, key: &V4Key, hash: u64) -> Hint {
        Hint {
            shard: self.v4.shard_index(dir, &key.key()),
            hash,
        }
    }

    /// Prefetches what an IPv4 `hint` names (as [`ConnTable::prefetch_v4`]).
    #[inline]
    pub fn prefetch_hint_v4(&self, hint: Hint) {
        self.v4.prefetch_hint(hint);
    }

    /// Whether `hit`, returned by [`ConnTable::lookup_established_v4`] for a key in direction
    /// `dir`, stands for a lookup of the same key and direction with `event` at `now`: the
    /// lookup would return the same hit and change nothing (not even the expiry). Reads only its
    /// shard's version, without the lock. `false` says nothing: the caller looks up.
    #[inline(always)]
    pub fn still_established_v4(
        &self,
        dir: Direction,
        hit: &EstablishedV4,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> bool {
        let v = &hit.validity;
        let state = match event {
            Event::Tcp(f) if f.syn() => return false,
            Event::Tcp(f) => v.state.on_tcp(dir, f),
            Event::Udp => v.state,
        };
        let now_tick = tick(now);
        state == v.state
            && now_tick.wrapping_add(ticks(state.timeout(timeouts))) == v.expires
            && !is_expired(v.expires, now_tick)
            && self.v4.shards.version(v.shard) == v.version
    }

    /// The lookup of an established IPv4 NAT/DR connection's packet in direction `dir` (the
    /// caller excludes SYNs): a hit whose packet changes nothing but the expiry —
    /// a live entry, counted, without a local endpoint (not FULLNAT), whose state `event` leaves
    /// as it is — refreshes the expiry as [`ConnTable::lookup_probe`] does and returns the
    /// connection. Anything else (a miss included) returns `None` and changes nothing (see the
    /// module documentation). `hint`, when given, must be [`ConnTable::prefetch_v4`]'s for this
    /// key and direction.
    #[inline]
    pub fn lookup_established_v4(
        &self,
        dir: Direction,
        key: &V4Key,
        hint: Option<Hint>,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Option<EstablishedV4> {
        self.v4
            .lookup_established(dir, &key.key(), hint, event, now, timeouts)
    }
}

impl Table<V4> {
    /// See [`ConnTable::lookup_established_v4`].
    #[inline]
    fn lookup_established(
        &self,
        dir: Direction,
        key: &Key<V4>,
        hint: Option<Hint>,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Option<EstablishedV4> {
        if matches!(event, Event::Tcp(f) if f.syn()) {
            return None;
        }
        let hint = hint.unwrap_or_else(|| self.hint(dir, key));
        let mut guard = self.shards.lock(hint.shard);
        // Nothing but the expiry changes below.
        guard.unchanged();
        let version = guard.version();
        let shard = &mut *guard;
        let slot = shard.find_hashed(hint.hash, dir, key)?;
        let now_tick = tick(now);
        let e = shard.slots.get_mut(slot)?;
        if is_expired(e.expires, now_tick) || is_uncounted(e.origin) || e.lid != NO_LOCAL {
            return None;
        }
        let state = match event {
            Event::Tcp(flags) => e.state.on_tcp(dir, flags),
            Event::Udp => e.state,
        };
        if state != e.state {
            return None;
        }
        let expires = now_tick.wrapping_add(ticks(state.timeout(timeouts)));
        // Written only when it changes, as the full lookup does.
        if e.expires != expires {
            e.expires = expires;
        }
        Some(EstablishedV4 {
            client: e.client,
            cport: e.cport,
            vip: e.vip,
            vport: e.vport,
            real: e.real,
            rport: e.rport,
            origin: e.origin,
            stats_id: e.stats.as_ref().map_or(0, stats_id),
            validity: Validity {
                shard: hint.shard,
                version,
                state,
                expires,
            },
        })
    }
}
