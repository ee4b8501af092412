//! The connection table: one entry per tracked connection, found from either direction.
//!
//! Layout and invariants:
//! - The table is split into a power-of-two number of shards, each behind its own mutex, held for
//!   one operation only (never across a batch): a [`sharded::Sharded`] container, which the
//!   persistence templates use too. A connection lives in the shard chosen by its
//!   **client endpoint** (address, port), which both directions carry (source of the original
//!   direction, destination of replies), so both lookups of one connection hit the same shard
//!   even when replies arrive on another queue (RSS is not symmetric for NAT). A FULLNAT reply
//!   carries a local endpoint instead of the client's; its connection took that local port from
//!   its own shard's share of the pool, and the port names the shard ([`local_ports`]).
//! - Each shard owns a slab of fixed capacity (`conntrack.max_entries` split across shards) and a
//!   fixed-size open-addressing index ([`index::FlowIndex`]) holding both the original key
//!   (client → VIP) and the reply key (real server → client; FULLNAT: real server → local
//!   address:port) of every entry; each index value
//!   records its slot and which of the two keys it is, so a lookup only matches a key of its own
//!   direction. Both are allocated at construction and never grow, and the index deletes by
//!   backward shift, so there is no rehash and no pause on the packet path, ever. The shards'
//!   slabs are shares of one allocation per table, and so are their indexes: large enough for
//!   transparent huge pages ([`crate::sys::huge_page_vecs`]), which a table of random accesses
//!   needs (with base pages nearly every access misses the TLB). Where THP is `never` they are
//!   base pages, as before; with huge pages a table's slab is resident once its shards hold a
//!   few entries each (a huge page spans several shards' shares).
//! - A key's index hash ([`Key::hash`]) covers the connection's client-side endpoint as the key
//!   carries it (the source of an original key, the destination of a reply key), the port on
//!   the service side (the VIP's port in an original key, the real server's in a reply key)
//!   and the protocol, under random seeds; only the service-side *address* is left out. So a
//!   NAT connection whose real server listens on the VIP's port (every all-port service, and
//!   most others) has two keys that hash alike: its reply key sits in the original key's home
//!   bucket's run, on the line a batch's pre-pass prefetched for the original key, and the
//!   insert reuses the hash. Keys that share a home (one client endpoint to one port of
//!   several VIPs, or of several real servers) are told apart by the direction bit and the
//!   entry's whole key, as any tag collision is; how many there can be is bounded by the
//!   configuration, not by what a client sends (a client varying its destination port, as a
//!   SYN scan of an all-port service does, spreads over the index as before).
//! - An IPv4 entry is 40 bytes: three addresses and four ports (client, VIP, real server and,
//!   for FULLNAT, the local port; the local address is the pool's, named by the local id), the
//!   local id, the service and real-server positions it was scheduled at ([`Origin`], so the
//!   datapath counts its packets without a lookup by address), protocol, state, a 32-bit expiry
//!   in milliseconds (wrapping; timeouts are below 2^31 ms, which the config enforces) and the
//!   `Arc` of its real server's counters. Free slots form a list threaded through the slab. With the
//!   index at 75 % load for two keys per entry, a connection costs 40 + 2 × 8 / 0.75 ≈ 61.3
//!   bytes, NAT or FULLNAT ([`ConnTable::allocated_bytes`] measures it); a FULLNAT entry's local
//!   port goes back to its pool when the entry is removed, however that happens.
//! - Expiry is lazy (an expired entry found by a lookup is removed and reported as a miss) plus a
//!   clock sweep: [`ConnTable::expire`] visits a bounded number of slots per call, so no call ever
//!   walks the whole table, however many entries expire at once.
//! - When a shard is full, an insert first reclaims expired entries (bounded), then **evicts the
//!   oldest half-open entry** (SYN_RECV, SYN_SENT, SYNACK: the earliest expiry among a bounded
//!   scan of slots), never an established one; if the scan finds none, the insert is refused.
//!   Both outcomes are reported to the caller, which counts them.
//! - Per-real-server active/inactive counts ([`RealStats`]) are kept exact: every insert, state
//!   change across ESTABLISHED, and removal adjusts them. An entry installed from a peer's sync
//!   record ([`ConnTable::install`]) is the exception, as in IPVS: it is left out of the counts
//!   until the first lookup that hits it here, which counts it. The mark is a bit of the stored
//!   [`Origin`] (its service index toggled by [`UNCOUNTED`]; known service indices stay below
//!   `0x7fff`, so the toggled values never collide with real ones, [`Origin::UNKNOWN`]
//!   included); every reader of a stored origin takes it through [`counted_origin`].
//! - Connection sync (see [`sync`]): a lookup says what it did to its entry
//!   ([`Tracked::change`]: a state change, a refresh past a [`REFRESH_SHIFT`] boundary of the
//!   expiry clock, or the entry's removal on an expired or reopened hit) so that the caller,
//!   not the table, produces sync events; the sweep, `remove_real` and an insert that evicts
//!   report what they removed in the same way. The table never knows about rings.
//! - Each address family has a table of its own, with its own bound: IPv4
//!   (`conntrack.max_entries`) and IPv6 (`conntrack.max_entries_ipv6`; a capacity of 0 builds
//!   no IPv6 table and reserves no memory, and every IPv6 insert is refused as full). The shard,
//!   slab, index and expiry code is written once, generic over a sealed [`family::Family`]
//!   (addresses stored as `u32` or `u128`); [`ConnTable`] routes every call by its key's
//!   family. A key or connection whose addresses mix the families is refused (lookups find
//!   nothing, inserts return [`InsertError::MixedFamilies`]), never converted. An IPv6 entry is
//!   80 bytes (three 16-byte addresses), so an IPv6 connection costs 80 + 2 × 8 / 0.75 ≈ 101.3
//!   bytes. FULLNAT pools are of one family each; each table numbers the addresses of its own
//!   family, keeping the pool indices (a pool of the other family hands out no port).

pub mod family;
mod fast;
pub mod index;
pub mod local_ports;
pub mod sharded;
pub mod state;
pub mod sync;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sharded::ShardGuard;

pub use fast::{EstablishedV4, V4Key, Validity};
pub use state::{ConnState, Direction};
pub use sync::{timeout_ms, ConnDump, InstallError, InstallTarget, Installed};

use crate::conntrack::family::{Family, V4, V6};
use crate::conntrack::index::{BucketsAt, FlowIndex, Vacant};
pub use crate::conntrack::local_ports::LocalPool;
use crate::conntrack::local_ports::{LocalPools, ShardPorts, NO_LOCAL};
use crate::conntrack::sharded::{Hand, Sharded};
use crate::flow::{Endpoint, FlowKey, Nanos, Proto};
use crate::sched::RealStats;
use crate::sync::record::ConnRecord;
use crate::sys::HugePageVec;
use crate::wire::TcpFlags;

/// Idle timeouts per protocol state, in nanoseconds. Each must be below
/// [`MAX_TIMEOUT`] (the table stores expiries in wrapping 32-bit milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: Nanos,
    pub tcp_syn: Nanos,
    pub tcp_fin: Nanos,
    pub tcp_close: Nanos,
    pub udp: Nanos,
    pub icmp: Nanos,
}

/// The longest timeout the table can hold: 2^31 − 1 milliseconds (about 24.8 days). Longer
/// timeouts are clamped to it.
pub const MAX_TIMEOUT: Nanos = (i32::MAX as u64) * NANOS_PER_TICK;

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

/// Where a connection was scheduled: its service's index in the snapshot's `services` and its
/// real server's traffic slot in that service (`reals` in order, then the sorry server), as they
/// were in the snapshot that scheduled it. A reload may move or remove both, so a reader checks
/// them before use ([`Tracked::stats_id`] says which real server's counters the connection
/// holds: the same counters at that position mean the same (service, real server) pair) and
/// falls back to a lookup by address when they do not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub service: u16,
    pub real: u16,
}

impl Origin {
    /// No recorded position (a connection inserted without one, or an index beyond `u16`):
    /// readers always look it up.
    pub const UNKNOWN: Origin = Origin {
        service: u16::MAX,
        real: u16::MAX,
    };

    /// The origin of service `service`, traffic slot `real`; [`Origin::UNKNOWN`] when either
    /// does not fit (a service index from `0x7fff` up: the table keeps the top bit for its
    /// not-yet-counted mark, see [`UNCOUNTED`]).
    pub fn new(service: usize, real: usize) -> Origin {
        match (u16::try_from(service), u16::try_from(real)) {
            (Ok(service), Ok(real)) if service < UNCOUNTED - 1 => Origin { service, real },
            _ => Origin::UNKNOWN,
        }
    }
}

/// The bit an entry's stored [`Origin::service`] is toggled by while the entry is not counted
/// in its real server's active/inactive counts (installed from a peer, no packet seen here).
/// Counted stored values are below `0x7fff` or `0xffff` (unknown); toggled ones are the rest.
pub const UNCOUNTED: u16 = 0x8000;

/// Whether a stored origin carries the not-yet-counted mark.
#[inline]
fn is_uncounted(o: Origin) -> bool {
    o.service.wrapping_add(1) >= UNCOUNTED
}

/// Sets or clears the not-yet-counted mark.
#[inline]
fn toggle_uncounted(o: Origin) -> Origin {
    Origin {
        service: o.service ^ UNCOUNTED,
        real: o.real,
    }
}

/// The origin a stored (possibly marked) origin stands for.
#[inline]
pub(crate) fn counted_origin(o: Origin) -> Origin {
    if is_uncounted(o) {
        toggle_uncounted(o)
    } else {
        o
    }
}

/// What a lookup did to its entry, for the caller's sync events ([`Tracked::change`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Change {
    /// Nothing a peer needs to hear of (the timeout moved within its refresh period).
    #[default]
    None,
    /// The state changed (to [`Tracked::state`]).
    State,
    /// The state is the same but the expiry crossed a [`REFRESH_SHIFT`] boundary: at most once
    /// per 2^14 ms (about 16 s) of traffic, the time to refresh the peers' copy.
    Refreshed,
    /// The lookup found the entry expired, or reopened by a SYN, and removed it: the lookup
    /// returned `false` and the [`Tracked`] is the removed connection.
    Removed,
}

/// A refresh is reported when the expiry's bits from this one up change (2^14 ms ≈ 16.4 s).
pub const REFRESH_SHIFT: u32 = 14;

/// The identity of a real server's counters: the address of its [`RealStats`] (compared, never
/// dereferenced). While a connection holds those counters they cannot be freed, so no other
/// live counters share the address.
pub fn stats_id(stats: &Arc<RealStats>) -> usize {
    Arc::as_ptr(stats) as usize
}

/// The translation a tracked connection applies (a copy, taken under the shard lock). Its
/// endpoints are compact [`Endpoint`]s read through [`Tracked::client`] and its siblings, which
/// keeps the whole value at 96 bytes (copied inline on the packet path, never by `memcpy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    client: Endpoint,
    vip: Endpoint,
    real: Endpoint,
    /// FULLNAT: the local address:port the connection's packets to the real server come from
    /// (replies are addressed to it). `None` for NAT.
    local: Option<Endpoint>,
    pub state: ConnState,
    /// This packet moved the connection from a handshake state (SYN_RECV) to ESTABLISHED in the
    /// original direction: it is the client's ACK completing the handshake.
    pub handshake_completed: bool,
    /// What the lookup that returned this did to the entry ([`Change::None`] from anything
    /// else).
    pub change: Change,
    /// Where the connection was scheduled (see [`Origin`]).
    pub origin: Origin,
    /// [`stats_id`] of the real server's counters the entry holds (for a `one_packet` flow,
    /// which has no entry, of the counters of the real server it was scheduled to).
    pub stats_id: usize,
}

const _: () = assert!(std::mem::size_of::<Tracked>() <= 96);

impl Tracked {
    /// A placeholder for [`ConnTable::lookup_into`] to write into (unspecified addresses, no
    /// counters); never a connection.
    pub const EMPTY: Tracked = {
        let none = Endpoint::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
        Tracked {
            client: none,
            vip: none,
            real: none,
            local: None,
            state: ConnState::NoState,
            handshake_completed: false,
            change: Change::None,
            origin: Origin::UNKNOWN,
            stats_id: 0,
        }
    };

    /// A connection client → vip scheduled to `real` (through `local` for FULLNAT), in `state`;
    /// `handshake_completed` false.
    pub fn new(
        (client, vip, real): (SocketAddr, SocketAddr, SocketAddr),
        local: Option<SocketAddr>,
        state: ConnState,
        origin: Origin,
        stats_id: usize,
    ) -> Tracked {
        Tracked {
            client: client.into(),
            vip: vip.into(),
            real: real.into(),
            local: local.map(Endpoint::from),
            state,
            handshake_completed: false,
            change: Change::None,
            origin,
            stats_id,
        }
    }

    /// The client's address:port.
    #[inline]
    pub fn client(&self) -> SocketAddr {
        self.client.into()
    }

    /// The VIP:port the client addressed.
    #[inline]
    pub fn vip(&self) -> SocketAddr {
        self.vip.into()
    }

    /// The real server's address:port.
    #[inline]
    pub fn real(&self) -> SocketAddr {
        self.real.into()
    }

    /// FULLNAT's local address:port; `None` for NAT, DR and TUN.
    #[inline]
    pub fn local(&self) -> Option<SocketAddr> {
        self.local.map(SocketAddr::from)
    }
}

/// Where [`ConnTable::prefetch`] found a key: its shard and its hash in the shard's index, so
/// that the lookup that follows does not compute them again. Valid for that key, in that
/// direction, in that table only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    shard: usize,
    hash: u64,
}

impl Hint {
    /// The key's hash in the shard's index (what a per-worker cache of the key may use).
    #[inline]
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Where the lookup that missed a key in the original direction found the key's probe run to
/// end, with no key of its hash in the run, and the shard's version then
/// ([`ConnTable::lookup_probe_missed`]). An insert of that key whose reply key has the same
/// hash (NAT to the VIP's port) into the shard at the same version (nothing in it changed
/// since) puts both keys there without scanning the run again ([`Scheduled::missed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missed {
    shard: usize,
    hash: u64,
    version: u64,
    at: Vacant,
}

impl Missed {
    /// Where an insert of the key with `hint` into its shard, now at `version`, may put it.
    #[inline]
    fn vacancy(&self, hint: Hint, version: u64) -> Option<Vacant> {
        let same = self.shard == hint.shard && self.hash == hint.hash;
        (same && self.version == version).then_some(self.at)
    }
}

/// A lookup of [`ConnTable::lookup_probe`]: the key, its direction and, if the batch's
/// pre-pass computed it for this same key and direction, its [`Hint`].
#[derive(Clone, Copy, Debug)]
pub struct Probe<'a> {
    pub dir: Direction,
    pub key: &'a FlowKey,
    pub hint: Option<Hint>,
}

/// The outcome of a successful [`ConnTable::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub conn: Tracked,
    /// A half-open entry was evicted to make room.
    pub evicted_half_open: bool,
    /// The evicted entry, as a [`crate::sync::SyncOp::Delete`] record (`Some` exactly when
    /// `evicted_half_open`).
    pub evicted: Option<ConnRecord>,
}

/// How the datapath scheduled a connection it inserts ([`ConnTable::insert_scheduled`]).
#[derive(Clone, Copy, Debug)]
pub struct Scheduled {
    /// Where it was scheduled.
    pub origin: Origin,
    /// How its method tracks it.
    pub track: Track,
    /// The [`Hint`] the lookup that just missed the connection's original key (client → VIP)
    /// used, if it had one: [`ConnTable::prefetch`]'s (or [`ConnTable::prefetch_v4`]'s) for
    /// that key in the original direction. The insert then hashes nothing again; it still
    /// finds the key under the shard's lock, so that of two workers racing on one new flow the
    /// first insert wins.
    pub hint: Option<Hint>,
    /// What that lookup's miss said ([`ConnTable::lookup_probe_missed`]), if anything.
    pub missed: Option<Missed>,
}

/// A row of the table as `xvs ctl conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRow {
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    /// FULLNAT: the local address:port (see [`Tracked::local`]).
    pub local: Option<SocketAddr>,
    pub state: ConnState,
    /// When the entry expires (nanoseconds on the caller's clock).
    pub expires: Nanos,
}

/// Why an insert was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The shard is full of live entries none of which is half-open.
    #[error("connection table full")]
    Full,
    /// The connection's addresses are not all of one family (client, VIP and real server are
    /// all IPv4 or all IPv6).
    #[error("a connection's addresses must all be IPv4 or all IPv6")]
    MixedFamilies,
    /// FULLNAT: the shard's share of the pool's local ports is in use.
    #[error("local address pool exhausted")]
    LocalPortsExhausted,
}

/// Nanoseconds per expiry tick (1 ms).
const NANOS_PER_TICK: Nanos = 1_000_000;

/// The wrapping 32-bit millisecond clock entries store their expiry in.
#[inline]
// Keeping the low 32 bits is the point: the clock wraps, and expiries compare by serial numbers.
#[allow(clippy::cast_possible_truncation)]
fn tick(now: Nanos) -> u32 {
    (now / NANOS_PER_TICK) as u32
}

/// A timeout in ticks, clamped to [`MAX_TIMEOUT`].
#[inline]
fn ticks(timeout: Nanos) -> u32 {
    (timeout.min(MAX_TIMEOUT) / NANOS_PER_TICK) as u32
}

/// Whether an entry expiring at `expires` has expired at `now` (serial-number arithmetic).
#[inline]
fn is_expired(expires: u32, now: u32) -> bool {
    now.wrapping_sub(expires) as i32 >= 0
}

/// One connection of family `F` (40 bytes for IPv4, 80 for IPv6). A free slot has
/// `stats: None` and keeps the next free slot + 1 (0 = none) in `expires`. A FULLNAT entry has
/// a local id (`lid`, see [`local_ports`]) and its local endpoint `addrs[lid]:lport` (the
/// address is the pools', not stored: [`Entry::local`]); NAT entries have `lid == NO_LOCAL`.
/// `origin` is where the connection was scheduled. The field order keeps both families free of
/// padding but the tail's.
#[derive(Debug)]
#[repr(C)]
struct Entry<F: Family> {
    client: F::Addr,
    vip: F::Addr,
    real: F::Addr,
    /// Expiry tick (see [`tick`]); a free slot's next free slot + 1.
    expires: u32,
    stats: Option<Arc<RealStats>>,
    origin: Origin,
    cport: u16,
    vport: u16,
    rport: u16,
    lport: u16,
    lid: u16,
    proto: Proto,
    state: ConnState,
}

const _: () = assert!(std::mem::size_of::<Entry<V4>>() == 40);
const _: () = assert!(std::mem::size_of::<Entry<V6>>() == 80);

/// A compact flow key of family `F`: (source, destination, source port, destination port,
/// protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key<F: Family> {
    src: F::Addr,
    dst: F::Addr,
    sport: u16,
    dport: u16,
    proto: Proto,
}

impl<F: Family> Key<F> {
    /// The key, if both its addresses are of family `F`.
    fn of(k: &FlowKey) -> Option<Key<F>> {
        Some(Key {
            src: F::from_ip(k.src)?,
            dst: F::from_ip(k.dst)?,
            sport: k.sport,
            dport: k.dport,
            proto: k.proto,
        })
    }

    /// The key's hash in a shard's index as a connection's `dir` key: of its client-side
    /// endpoint (the source in the original direction; the destination in the reply direction,
    /// which is the client's endpoint for NAT and the local one for FULLNAT), its service-side
    /// port (the destination port in the original direction, the source port in the reply
    /// direction) and protocol. See the module documentation.
    #[inline(always)]
    fn hash(&self, dir: Direction, seed: &ahash::RandomState) -> u64 {
        let (addr, port, service_port) = match dir {
            Direction::Original => (self.src, self.sport, self.dport),
            Direction::Reply => (self.dst, self.dport, self.sport),
        };
        let rest = (u64::from(port) << 24) | (u64::from(service_port) << 8) | self.proto as u64;
        F::hash_endpoint(seed, addr, rest)
    }
}

impl<F: Family> Entry<F> {
    /// Counts a new entry on its real server (its state's count and the connection added), as
    /// it is inserted.
    #[inline]
    fn count_added(&self) {
        if let Some(stats) = &self.stats {
            count(stats, self.state).fetch_add(1, Ordering::Relaxed);
            stats.conn_added();
        }
    }

    /// The entry of a new connection scheduled at `origin` (every address of family `F`),
    /// expiring after its state's timeout from `now`; NAT until a local endpoint is allocated.
    fn new(
        new: NewConn,
        origin: Origin,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Entry<F>, InsertError> {
        let (Some(client), Some(vip), Some(real)) = (
            F::from_ip(new.client.ip()),
            F::from_ip(new.vip.ip()),
            F::from_ip(new.real.ip()),
        ) else {
            return Err(InsertError::MixedFamilies);
        };
        Ok(Entry {
            client,
            vip,
            real,
            expires: tick(now).wrapping_add(ticks(new.state.timeout(timeouts))),
            stats: Some(new.stats),
            origin,
            cport: new.client.port(),
            vport: new.vip.port(),
            rport: new.real.port(),
            lport: 0,
            lid: NO_LOCAL,
            proto: new.proto,
            state: new.state,
        })
    }

    fn is_live(&self) -> bool {
        self.stats.is_some()
    }

    /// The local address of a FULLNAT entry (all zeros for NAT: no pool address is
    /// unspecified).
    #[inline]
    fn local(&self, pools: &LocalPools<F>) -> F::Addr {
        pools
            .addrs
            .get(usize::from(self.lid))
            .copied()
            .unwrap_or_default()
    }

    fn key(&self, dir: Direction, pools: &LocalPools<F>) -> Key<F> {
        match dir {
            Direction::Original => Key {
                src: self.client,
                dst: self.vip,
                sport: self.cport,
                dport: self.vport,
                proto: self.proto,
            },
            Direction::Reply if self.lid != NO_LOCAL => Key {
                src: self.real,
                dst: self.local(pools),
                sport: self.rport,
                dport: self.lport,
                proto: self.proto,
            },
            Direction::Reply => Key {
                src: self.real,
                dst: self.client,
                sport: self.rport,
                dport: self.cport,
                proto: self.proto,
            },
        }
    }

    #[inline]
    fn tracked(&self, pools: &LocalPools<F>) -> Tracked {
        let ep = |ip: F::Addr, port| Endpoint::new(F::to_ip(ip), port);
        Tracked {
            client: ep(self.client, self.cport),
            vip: ep(self.vip, self.vport),
            real: ep(self.real, self.rport),
            local: (self.lid != NO_LOCAL).then(|| ep(self.local(pools), self.lport)),
            state: self.state,
            handshake_completed: false,
            change: Change::None,
            origin: self.origin,
            stats_id: self.stats.as_ref().map_or(0, stats_id),
        }
    }

    /// Expiry in nanoseconds on the caller's clock, given `now` (expired entries give `now`).
    fn expires_at(&self, now: Nanos) -> Nanos {
        let left = self.expires.wrapping_sub(tick(now)) as i32;
        let into_tick = now % NANOS_PER_TICK;
        if left <= 0 {
            now
        } else {
            now - into_tick + u64::from(left as u32) * NANOS_PER_TICK
        }
    }
}

/// Direction bit of an index value: `(slot + 1) << 1 | bit`.
fn dir_bit(dir: Direction) -> u32 {
    match dir {
        Direction::Original => 0,
        Direction::Reply => 1,
    }
}

/// The most slots a shard may have: slot numbers, plus one and shifted left by the direction
/// bit, fit a `u32` ([`index_value`]).
const MAX_SHARD_SLOTS: usize = (1 << 31) - 2;

/// Slot `slot` as the index and the free list store it.
#[inline]
// A shard has at most MAX_SHARD_SLOTS slots (checked when the table is built), so it fits.
#[allow(clippy::cast_possible_truncation)]
fn slot_id(slot: usize) -> u32 {
    slot as u32
}

fn index_value(slot: u32, dir: Direction) -> u32 {
    ((slot + 1) << 1) | dir_bit(dir)
}

fn value_slot(v: u32) -> usize {
    ((v >> 1) - 1) as usize
}

fn value_dir(v: u32) -> Direction {
    if v & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

fn count(stats: &RealStats, state: ConnState) -> &AtomicU64 {
    if state.is_active() {
        &stats.active
    } else {
        &stats.inactive
    }
}

/// The first packet of an installed entry here: counts it in its real server's active/inactive
/// counts and clears its not-yet-counted mark.
#[cold]
#[inline(never)]
fn first_packet<F: Family>(e: &mut Entry<F>) {
    e.origin = toggle_uncounted(e.origin);
    if let Some(stats) = &e.stats {
        count(stats, e.state).fetch_add(1, Ordering::Relaxed);
        stats.conn_added();
    }
}

#[derive(Debug)]
struct Shard<F: Family> {
    /// The slab: never grows past its capacity, the shard's (one share of the table's slab
    /// allocation, see [`Table::try_new`]).
    slots: HugePageVec<Entry<F>>,
    index: FlowIndex,
    /// This shard's share of the FULLNAT pools' ports.
    ports: ShardPorts,
    pools: Arc<LocalPools<F>>,
    /// First free slot + 1 (0 = none) among `slots` already pushed.
    free_head: u32,
    live: usize,
    /// The expiry sweep's position.
    sweep_hand: Hand,
    /// The half-open eviction scan's position.
    evict_hand: Hand,
}

/// How a scheduled connection is tracked ([`ConnTable::insert_scheduled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// Both directions (NAT: replies come back through the load balancer).
    Both,
    /// The original direction only (DR, TUN).
    OriginalOnly,
    /// Both directions, with a local endpoint from pool `pool` (FULLNAT).
    FullNat { pool: u16 },
}

/// Which keys of an entry the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    /// Original and reply (NAT: replies come back through the load balancer).
    Both,
    /// Original only (DR, TUN: replies go straight to the client).
    OriginalOnly,
}

/// How [`Table::insert_with`] inserts a connection.
#[derive(Clone, Copy, Debug)]
struct Insert {
    /// Where the connection was scheduled.
    origin: Origin,
    /// FULLNAT: the pool its local endpoint comes from.
    pool: Option<u16>,
    keys: Keys,
    /// The original key's [`Hint`], if the caller's lookup (which just missed) had one.
    hint: Option<Hint>,
    /// That lookup's [`Missed`], if it recorded one.
    missed: Option<Missed>,
}

impl Insert {
    /// An insert without a recorded origin or hint.
    fn unscheduled(pool: Option<u16>, keys: Keys) -> Insert {
        Insert {
            origin: Origin::UNKNOWN,
            pool,
            keys,
            hint: None,
            missed: None,
        }
    }
}

/// How many slots an insert into a full shard may visit looking for expired entries.
const RECLAIM_BUDGET: usize = 64;
/// How many slots an insert into a full shard may visit looking for a half-open entry to evict.
const EVICT_SCAN: usize = 64;
/// How many slots [`ConnTable::remove_real`] scans per lock of a shard.
pub const REMOVE_REAL_CHUNK: usize = 4096;

impl<F: Family> Shard<F> {
    /// A shard of `slots.capacity()` entries in `slots` (empty) and `index` (for twice as
    /// many keys).
    fn new(
        (slots, index): (HugePageVec<Entry<F>>, FlowIndex),
        pools: Arc<LocalPools<F>>,
        shard: usize,
        shards: usize,
    ) -> Shard<F> {
        Shard {
            slots,
            index,
            ports: ShardPorts::new(&pools, shard, shards),
            pools,
            free_head: 0,
            live: 0,
            sweep_hand: Hand::default(),
            evict_hand: Hand::default(),
        }
    }

    /// What [`Shard::allocated_bytes`] will be for a shard of `capacity` entries.
    fn bytes_for(capacity: usize) -> usize {
        capacity
            .saturating_mul(std::mem::size_of::<Entry<F>>())
            .saturating_add(FlowIndex::bytes_for(capacity.saturating_mul(2)))
    }

    fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry<F>>() + self.index.allocated_bytes()
    }

    /// Bytes allocated for the FULLNAT port rings.
    fn port_bytes(&self) -> usize {
        self.ports.allocated_bytes()
    }

    /// The slot whose `dir` key is `key`.
    #[inline]
    fn find(&self, seed: &ahash::RandomState, dir: Direction, key: &Key<F>) -> Option<usize> {
        self.find_hashed(key.hash(dir, seed), dir, key)
    }

    /// [`Shard::find`] of a key whose hash is `hash`.
    #[inline]
    fn find_hashed(&self, hash: u64, dir: Direction, key: &Key<F>) -> Option<usize> {
        self.find_or_vacant_hashed(hash, dir, key).ok()
    }

    /// [`Shard::find_hashed`] that says, on a miss, where the key's probe run ends.
    #[inline]
    fn find_or_vacant_hashed(
        &self,
        hash: u64,
        dir: Direction,
        key: &Key<F>,
    ) -> Result<usize, Vacant> {
        let (slots, pools) = (&self.slots, &*self.pools);
        self.index
            .find_or_vacant(hash, |v| {
                value_dir(v) == dir && slots[value_slot(v)].key(dir, pools) == *key
            })
            .map(value_slot)
    }

    fn unindex(&mut self, seed: &ahash::RandomState, slot: usize, dir: Direction) {
        let (slots, pools) = (&self.slots, &*self.pools);
        let key = slots[slot].key(dir, pools);
        let own = index_value(slot_id(slot), dir);
        self.index.remove(
            key.hash(dir, seed),
            |v| v == own,
            |v| {
                let dir = value_dir(v);
                slots[value_slot(v)].key(dir, pools).hash(dir, seed)
            },
        );
    }

    fn remove(&mut self, seed: &ahash::RandomState, slot: usize) {
        if !self.slots[slot].is_live() {
            return;
        }
        self.unindex(seed, slot, Direction::Original);
        self.unindex(seed, slot, Direction::Reply);
        let e = &mut self.slots[slot];
        if let Some(stats) = e.stats.take() {
            if !is_uncounted(e.origin) {
                count(&stats, e.state).fetch_sub(1, Ordering::Relaxed);
                stats.conn_removed();
            }
        }
        if e.lid != NO_LOCAL {
            let (lid, lport) = (e.lid, e.lport);
            e.lid = NO_LOCAL;
            self.ports.release(&self.pools, lid, lport);
        }
        let e = &mut self.slots[slot];
        e.expires = self.free_head;
        self.free_head = slot_id(slot) + 1;
        self.live -= 1;
    }

    /// Visits up to `budget` slots from the cursor, removing expired entries, each reported to
    /// `on_removed` as a Delete record first. Returns the number removed.
    fn sweep(
        &mut self,
        seed: &ahash::RandomState,
        now: u32,
        budget: usize,
        on_removed: &mut impl FnMut(ConnRecord),
    ) -> usize {
        let mut removed = 0;
        for slot in self.sweep_hand.advance(self.slots.len(), budget) {
            let e = &self.slots[slot];
            if e.is_live() && is_expired(e.expires, now) {
                on_removed(e.record(crate::sync::SyncOp::Delete, &self.pools, now));
                self.remove(seed, slot);
                removed += 1;
            }
        }
        removed
    }

    /// Evicts the half-open entry closest to expiry (the oldest) among up to [`EVICT_SCAN`]
    /// slots from the eviction cursor. Returns it as a Delete record, if one was evicted.
    fn evict_half_open(&mut self, seed: &ahash::RandomState, now: u32) -> Option<ConnRecord> {
        let mut oldest: Option<(usize, i32)> = None;
        for slot in self.evict_hand.advance(self.slots.len(), EVICT_SCAN) {
            let e = &self.slots[slot];
            if e.is_live() && e.state.is_half_open() {
                let left = e.expires.wrapping_sub(now) as i32;
                if oldest.is_none_or(|(_, l)| left < l) {
                    oldest = Some((slot, left));
                }
            }
        }
        let (slot, _) = oldest?;
        let record = self.slots[slot].record(crate::sync::SyncOp::Delete, &self.pools, now);
        self.remove(seed, slot);
        Some(record)
    }

    /// Prefetches, for a write, the slot the next insert into this shard takes (the head of
    /// the free list; nothing when the slab grows instead, at its warm end). A lookup that
    /// misses in the original direction calls it: an insert usually follows such a miss, and
    /// in a table that has churned the free slot is anywhere in the slab, a cold line. Each pop
    /// from the free list ([`Shard::take_slot`]) calls it too, for the new head: the next
    /// insert into the shard then finds its slot's lines on their way already.
    #[inline]
    fn prefetch_free_slot(&self) {
        let head = (self.free_head as usize).checked_sub(1);
        if let Some(e) = head.and_then(|s| self.slots.get(s)) {
            // An entry may straddle two lines: both are written.
            let at = std::ptr::from_ref(e) as usize;
            crate::sys::prefetch_write(at);
            crate::sys::prefetch_write(at + std::mem::size_of::<Entry<F>>() - 1);
        }
    }

    /// Places `entry` in a free slot and indexes its keys (both, or the original one only).
    fn place(&mut self, seed: &ahash::RandomState, entry: Entry<F>, keys: Keys) -> usize {
        let hash = |dir| entry.key(dir, &self.pools).hash(dir, seed);
        let hashes = (
            hash(Direction::Original),
            (keys == Keys::Both).then(|| hash(Direction::Reply)),
        );
        self.place_hashed(entry, hashes)
    }

    /// Whether a slot is free for [`Shard::place`]: one on the free list, or room at the end of
    /// the slab (which has a fixed capacity and never grows).
    fn has_room(&self) -> bool {
        self.free_head != 0 || self.slots.len() < self.slots.capacity()
    }

    /// [`Shard::place`] of an entry whose original key's index hash is `original` and whose
    /// reply key, when it is indexed, has the index hash `reply`. The caller checked
    /// [`Shard::has_room`] under the same lock.
    fn place_hashed(&mut self, entry: Entry<F>, (original, reply): (u64, Option<u64>)) -> usize {
        let slot = self.take_slot(entry);
        let id = slot_id(slot);
        self.index
            .insert(original, index_value(id, Direction::Original));
        if let Some(reply) = reply {
            self.index.insert(reply, index_value(id, Direction::Reply));
        }
        slot
    }

    /// The common new connection in one scan of the index: NAT (both keys indexed, no local
    /// endpoint) to a real server on the VIP's port, so that its reply key hashes as its
    /// original key (`ok`, index hash `hash`), into a shard with a free slot and room below its
    /// capacity, neither key indexed yet. Does what [`Table::insert_with`] does then (counts
    /// it, writes it into `out`, places it) with one scan of the probe run, which answers both
    /// "is either key there?" and "where does the run end?", or with none when `known` is the
    /// run's end that the lookup which just missed found clean in the unchanged shard
    /// ([`Missed::vacancy`]). Anything else (a key found, a full shard, FULLNAT, DR, another
    /// port) gives the entry back untouched for the general path.
    fn insert_fresh_pair(
        &mut self,
        entry: Entry<F>,
        (ok, hash): (&Key<F>, u64),
        known: Option<Vacant>,
        how: Insert,
        out: &mut Tracked,
    ) -> Result<(), Entry<F>> {
        let pair = how.keys == Keys::Both && how.pool.is_none() && entry.lid == NO_LOCAL;
        // Below capacity (the general path would reclaim or evict) and a free slot to take.
        let room = self.live < self.slots.capacity() && self.has_room();
        if !pair || entry.rport != entry.vport || !room {
            return Err(entry);
        }
        let at = match known {
            // The run ends there, holding no key of this hash: neither key is indexed.
            Some(at) => {
                #[cfg(test)]
                tests::VACANCIES_REUSED.with(|n| n.set(n.get() + 1));
                at
            }
            None => {
                let rk = entry.key(Direction::Reply, &self.pools);
                let (slots, pools) = (&self.slots, &*self.pools);
                let scan = self.index.find_or_vacant(hash, |v| {
                    let dir = value_dir(v);
                    let key = match dir {
                        Direction::Original => ok,
                        Direction::Reply => &rk,
                    };
                    slots[value_slot(v)].key(dir, pools) == *key
                });
                let Err(at) = scan else {
                    return Err(entry);
                };
                at
            }
        };
        #[cfg(test)]
        tests::ONE_SCAN_INSERTS.with(|n| n.set(n.get() + 1));
        entry.count_added();
        *out = entry.tracked(&self.pools);
        self.place_pair_at(entry, hash, at);
        Ok(())
    }

    /// [`Shard::place_hashed`] of an entry whose original and reply keys both have the index
    /// hash `hash`, at the end of its probe run that [`FlowIndex::find_or_vacant`] found
    /// holding neither key (under the same lock, the index unchanged since).
    fn place_pair_at(&mut self, entry: Entry<F>, hash: u64, at: Vacant) -> usize {
        let slot = self.take_slot(entry);
        let id = slot_id(slot);
        let values = (
            index_value(id, Direction::Original),
            index_value(id, Direction::Reply),
        );
        self.index.insert_two_at(at, hash, values);
        slot
    }

    /// Stores `entry` in a free slot (the caller checked [`Shard::has_room`] under the same
    /// lock) and counts it live; returns the slot. The caller indexes its keys.
    fn take_slot(&mut self, entry: Entry<F>) -> usize {
        let slot = if self.free_head != 0 {
            let s = (self.free_head - 1) as usize;
            self.free_head = self.slots[s].expires;
            // The next pop reads the new head's link: start loading its (cold) line now, a
            // whole insert ahead, so that it never waits for memory.
            self.prefetch_free_slot();
            self.slots[s] = entry;
            s
        } else {
            // The caller checked `has_room`: with no free slot, the slab has room at its end.
            debug_assert!(self.slots.len() < self.slots.capacity());
            let _ = self.slots.push(entry);
            self.slots.len() - 1
        };
        self.live += 1;
        slot
    }
}

/// A table allocated whole at start-up did not fit the memory the process can get.
#[derive(Debug, thiserror::Error)]
#[error("cannot allocate the {what} for {entries} entries ({bytes} bytes): {reason}")]
pub struct TableAllocError {
    pub what: &'static str,
    pub entries: usize,
    pub bytes: usize,
    /// The allocator's error (capacity overflow, or the allocation failed).
    pub reason: String,
}

/// One family's sharded table. See the module documentation for its invariants.
#[derive(Debug)]
struct Table<F: Family> {
    /// The shards, placed by client endpoint `(address, port)`.
    shards: Sharded<Shard<F>>,
    /// The FULLNAT pools' addresses of family `F` (fixed at construction).
    pools: Arc<LocalPools<F>>,
    /// Hashes keys for the shards' indexes (random seeds: flooding one probe run needs them).
    key_hasher: ahash::RandomState,
    /// Where each shard's index buckets are (fixed for the table's life), for
    /// [`Table::prefetch`], which locks nothing.
    buckets_at: Box<[BucketsAt]>,
}

/// The fixed seeds that place a connection in its shard.
const SHARD_SEEDS: [u64; 4] = [0x7876_7300, 0x636f_6e6e, 0x7472_6163, 0x6b00_0001];
/// The most shards a connection table has.
const MAX_SHARDS: usize = 64;

fn default_shards(max_entries: usize) -> usize {
    Sharded::<()>::shards_for(max_entries, MAX_SHARDS)
}

impl<F: Family> Table<F> {
    /// Live entries: the sum of the shards' own counts, each read under its lock (no shared
    /// counter is written per insert or removal).
    fn len(&self) -> usize {
        self.shards.sum(|s| s.live)
    }

    /// What [`Table::allocated_bytes`] will be for `max_entries` in the default shard count.
    fn bytes_needed(max_entries: usize) -> usize {
        Sharded::<()>::capacities(max_entries, default_shards(max_entries))
            .map(Shard::<F>::bytes_for)
            .fold(0, usize::saturating_add)
    }

    /// A table of `max_entries` in `shards` shards (0 = the default), `what` naming it in
    /// errors.
    fn try_new(
        what: &'static str,
        max_entries: usize,
        shards: usize,
        pools: &[LocalPool],
    ) -> Result<Table<F>, TableAllocError> {
        let n = if shards == 0 {
            default_shards(max_entries)
        } else {
            shards
        };
        let pools = Arc::new(LocalPools::<F>::new(pools).map_err(|e| TableAllocError {
            what: "FULLNAT local address pools",
            entries: e.addresses,
            bytes: 0,
            reason: e.to_string(),
        })?);
        let alloc_error = |reason| TableAllocError {
            what,
            entries: max_entries,
            bytes: Self::bytes_needed(max_entries),
            reason,
        };
        if max_entries.div_ceil(n) > MAX_SHARD_SLOTS {
            return Err(alloc_error(format!(
                "more than {MAX_SHARD_SLOTS} entries in one of {n} shards"
            )));
        }
        // One allocation for all the shards' slabs, one for all their indexes: each large
        // enough for huge pages where a shard's own would not be (the TLB covers a large
        // table then; see `sys::huge_page_vecs`).
        let caps: Vec<usize> = Sharded::<()>::capacities(max_entries, n).collect();
        let keys: Vec<usize> = caps.iter().map(|c| c.saturating_mul(2)).collect();
        let slabs = crate::sys::huge_page_vecs::<Entry<F>>(&caps);
        let parts = slabs.and_then(|s| Ok(s.into_iter().zip(FlowIndex::try_many(&keys)?)));
        let mut parts = parts.map_err(|e| alloc_error(e.to_string()))?;
        let shards = Sharded::try_new(max_entries, n, SHARD_SEEDS, |i, _| {
            let part = parts.next().ok_or(crate::sys::HugeAllocError::Failed)?;
            Ok::<_, crate::sys::HugeAllocError>(Shard::new(part, pools.clone(), i, n))
        })
        .map_err(|e| alloc_error(e.to_string()))?;
        let buckets_at = (0..n).map(|i| shards.lock(i).index.buckets_at()).collect();
        Ok(Table {
            shards,
            pools,
            key_hasher: ahash::RandomState::new(),
            buckets_at,
        })
    }

    fn allocated_bytes(&self) -> usize {
        self.shards.sum(Shard::allocated_bytes)
    }

    #[inline]
    fn shard_for(&self, client: (F::Addr, u16)) -> ShardGuard<'_, Shard<F>> {
        self.shards.lock_for(&client)
    }

    /// The shard of a packet travelling in `dir` with `key`: the shard of its client endpoint,
    /// or for a FULLNAT reply (destination a pool address) the shard that owns its local port.
    #[inline]
    fn shard_of(&self, dir: Direction, key: &Key<F>) -> ShardGuard<'_, Shard<F>> {
        self.shards.lock(self.shard_index(dir, key))
    }

    /// The index of [`Table::shard_of`]'s shard.
    #[inline]
    fn shard_index(&self, dir: Direction, key: &Key<F>) -> usize {
        match dir {
            Direction::Original => self.shards.index_of(&(key.src, key.sport)),
            Direction::Reply => {
                if !self.pools.addrs.is_empty() && self.pools.id_of(key.dst).is_some() {
                    local_ports::shard_of_reply(key.dport, self.shards.shards())
                } else {
                    self.shards.index_of(&(key.dst, key.dport))
                }
            }
        }
    }

    /// See [`ConnTable::prefetch`].
    #[inline]
    fn prefetch(&self, dir: Direction, key: &FlowKey) -> Option<Hint> {
        let key = Key::<F>::of(key)?;
        let hint = self.hint(dir, &key);
        self.prefetch_hint(hint);
        Some(hint)
    }

    /// Prefetches what `hint` names: its shard's lock (for a write) and its home bucket.
    #[inline]
    fn prefetch_hint(&self, hint: Hint) {
        self.shards.prefetch(hint.shard);
        if let Some(at) = self.buckets_at.get(hint.shard) {
            crate::sys::prefetch_read(at.home_addr(hint.hash));
        }
    }

    /// The shard and hash of `key` in direction `dir`.
    #[inline(always)]
    fn hint(&self, dir: Direction, key: &Key<F>) -> Hint {
        Hint {
            shard: self.shard_index(dir, key),
            hash: key.hash(dir, &self.key_hasher),
        }
    }

    /// See [`ConnTable::peek`].
    fn peek(&self, dir: Direction, key: &FlowKey, now: Nanos) -> Option<Tracked> {
        let key = Key::<F>::of(key)?;
        let shard = self.shard_of(dir, &key);
        let slot = shard.find(&self.key_hasher, dir, &key)?;
        let e = &shard.slots[slot];
        let mut t = (!is_expired(e.expires, tick(now))).then(|| e.tracked(&shard.pools))?;
        t.origin = counted_origin(t.origin);
        Some(t)
    }

    /// See [`ConnTable::lookup_probe`]: `probe.hint`, when given, must be what
    /// [`Table::hint`] says for the probe's direction and key.
    #[inline]
    fn lookup_into(
        &self,
        probe: Probe<'_>,
        (event, now): (Event, Nanos),
        timeouts: &Timeouts,
        out: &mut Tracked,
        missed: &mut Option<Missed>,
    ) -> bool {
        let Some(key) = Key::<F>::of(probe.key) else {
            return false;
        };
        let dir = probe.dir;
        let hint = probe.hint.unwrap_or_else(|| self.hint(dir, &key));
        let mut guard = self.shards.lock(hint.shard);
        let slot = match guard.find_or_vacant_hashed(hint.hash, dir, &key) {
            Ok(slot) => slot,
            Err(at) => {
                guard.unchanged();
                if dir == Direction::Original {
                    guard.prefetch_free_slot();
                    *missed = at.is_clean().then(|| Missed {
                        shard: hint.shard,
                        hash: hint.hash,
                        version: guard.version(),
                        at,
                    });
                }
                return false;
            }
        };
        let now_tick = tick(now);
        let e = &guard.slots[slot];
        // A hit that changes nothing but the expiry leaves the shard's version as it is.
        let unchanged = !is_expired(e.expires, now_tick)
            && !is_uncounted(e.origin)
            && match event {
                Event::Tcp(f) => e.state.on_tcp(dir, f) == e.state && !f.is_initial_syn(),
                Event::Udp => true,
            };
        if unchanged {
            guard.unchanged();
        }
        let shard = &mut *guard;
        let e = &mut shard.slots[slot];
        let reopen = matches!(event, Event::Tcp(f) if dir == Direction::Original && f.is_initial_syn() && e.state.reusable_by_syn());
        if is_expired(e.expires, now_tick) || reopen {
            self.removed_on_lookup(shard, slot, out);
            return false;
        }
        if is_uncounted(e.origin) {
            first_packet(e);
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
        }
        let handshake_completed = dir == Direction::Original
            && e.state == ConnState::SynRecv
            && new_state == ConnState::Established;
        let expires = now_tick.wrapping_add(ticks(new_state.timeout(timeouts)));
        let change = if new_state != e.state {
            Change::State
        } else if (e.expires ^ expires) >> REFRESH_SHIFT != 0 {
            Change::Refreshed
        } else {
            Change::None
        };
        if new_state != e.state {
            e.state = new_state;
        }
        // Written only when it changes (once per tick at most): a packet that changes nothing
        // leaves the entry's line clean, so workers sharing a line of the slab do not bounce it.
        if e.expires != expires {
            e.expires = expires;
        }
        *out = e.tracked(&shard.pools);
        out.handshake_completed = handshake_completed;
        out.change = change;
        true
    }

    /// The lookup's hit in `slot` had expired or was reopened: writes it into `out` (marked
    /// [`Change::Removed`]) and removes it.
    #[cold]
    #[inline(never)]
    fn removed_on_lookup(&self, shard: &mut Shard<F>, slot: usize, out: &mut Tracked) {
        let e = &shard.slots[slot];
        *out = e.tracked(&shard.pools);
        out.origin = counted_origin(out.origin);
        out.change = Change::Removed;
        shard.remove(&self.key_hasher, slot);
    }

    /// See [`ConnTable::insert`] and its siblings. The original key is looked up again under
    /// the shard's lock (two workers may race on one new flow: the first insert wins), with
    /// the shard and hash of `how.hint` when given, and the reply key of a NAT connection reuses
    /// the hash (see [`Key::hash`]): a NAT insert after a hinted lookup computes no hash.
    fn insert_with(
        &self,
        new: NewConn,
        how: Insert,
        now: Nanos,
        timeouts: &Timeouts,
        out: &mut Tracked,
    ) -> Result<Option<ConnRecord>, InsertError> {
        let entry = Entry::<F>::new(new, how.origin, now, timeouts)?;
        let now_tick = tick(now);
        let seed = &self.key_hasher;
        let ok = entry.key(Direction::Original, &self.pools);
        let hint = match how.hint {
            Some(h) => {
                debug_assert_eq!(h, self.hint(Direction::Original, &ok), "another key's hint");
                h
            }
            None => self.hint(Direction::Original, &ok),
        };
        let mut shard = self.shards.lock(hint.shard);
        let known = (how.missed).and_then(|m| m.vacancy(hint, shard.version()));
        let mut entry = match shard.insert_fresh_pair(entry, (&ok, hint.hash), known, how, out) {
            Ok(()) => return Ok(None),
            Err(entry) => entry,
        };
        if let Some(slot) = shard.find_hashed(hint.hash, Direction::Original, &ok) {
            let existing = &shard.slots[slot];
            if !is_expired(existing.expires, now_tick) {
                *out = existing.tracked(&shard.pools);
                out.origin = counted_origin(out.origin);
                return Ok(None);
            }
            shard.remove(seed, slot);
        }
        let evicted = match shard.live < shard.slots.capacity() {
            true => None,
            false => self.make_room(&mut shard, now_tick)?,
        };
        if !shard.has_room() {
            // Never, while `live` counts every slot off the free list; refused rather than
            // trusted, because the slab cannot grow.
            return Err(InsertError::Full);
        }
        if let Some(pool) = how.pool {
            let Shard { ports, pools, .. } = &mut *shard;
            let Some((lid, lport)) = ports.alloc(pools, pool) else {
                return Err(InsertError::LocalPortsExhausted);
            };
            entry.lid = lid;
            entry.lport = lport;
        }
        let reply = match how.keys {
            Keys::Both => Some(self.take_reply_key(&mut shard, &entry, hint.hash)),
            Keys::OriginalOnly => None,
        };
        entry.count_added();
        *out = entry.tracked(&shard.pools);
        shard.place_hashed(entry, (hint.hash, reply));
        Ok(evicted)
    }

    /// The index hash of `entry`'s reply key, about to be indexed in `shard`, after taking the
    /// key from the connection that holds it, if one does (a client endpoint NATed to the same
    /// real server from two services: the newer connection takes it; the older one keeps its
    /// original direction until it expires, and `unindex` on its removal finds nothing for
    /// that key and does nothing). `original` is the index hash of the entry's original key,
    /// which is the reply key's for NAT when the real server's port is the VIP's (both hash the
    /// client's endpoint and that port).
    fn take_reply_key(&self, shard: &mut Shard<F>, entry: &Entry<F>, original: u64) -> u64 {
        let seed = &self.key_hasher;
        let rk = entry.key(Direction::Reply, &shard.pools);
        let hash = if entry.lid == NO_LOCAL && entry.rport == entry.vport {
            original
        } else {
            rk.hash(Direction::Reply, seed)
        };
        debug_assert_eq!(hash, rk.hash(Direction::Reply, seed));
        if let Some(older) = shard.find_hashed(hash, Direction::Reply, &rk) {
            shard.unindex(seed, older, Direction::Reply);
        }
        hash
    }

    /// Makes room in a full `shard`: reclaims expired entries, then evicts the oldest half-open
    /// one (returned as a Delete record), else refuses (`Full`; a table of capacity 0 always
    /// refuses). Reclaimed expired entries are not reported: a peer's copy expires on its own.
    fn make_room(
        &self,
        shard: &mut Shard<F>,
        now_tick: u32,
    ) -> Result<Option<ConnRecord>, InsertError> {
        let seed = &self.key_hasher;
        if shard.live < shard.slots.capacity() {
            return Ok(None);
        }
        shard.sweep(seed, now_tick, RECLAIM_BUDGET, &mut |_| {});
        if shard.live < shard.slots.capacity() {
            return Ok(None);
        }
        let evicted = shard
            .evict_half_open(seed, now_tick)
            .ok_or(InsertError::Full)?;
        Ok(Some(evicted))
    }

    /// See [`ConnTable::expire_with`] (`turn`: [`ConnTable::expire_turn_with`]'s).
    fn expire(
        &self,
        (turn, now): (Option<usize>, Nanos),
        budget: usize,
        on_removed: &mut impl FnMut(ConnRecord),
    ) -> usize {
        let now = tick(now);
        let visit = |shard: &mut Shard<F>| shard.sweep(&self.key_hasher, now, budget, on_removed);
        match turn {
            Some(turn) => self.shards.sweep_shard(turn, visit),
            None => self.shards.sweep(visit),
        }
    }

    /// See [`ConnTable::remove_real_with`].
    fn remove_real(
        &self,
        stats: &Arc<RealStats>,
        now: Nanos,
        on_removed: &mut impl FnMut(ConnRecord),
    ) -> usize {
        let mut total = 0;
        for i in 0..self.shards.shards() {
            let mut start = 0;
            loop {
                let mut shard = self.shards.lock(i);
                let end = (start + REMOVE_REAL_CHUNK).min(shard.slots.len());
                let mut removed = 0;
                for slot in start..end {
                    let mine = shard.slots[slot]
                        .stats
                        .as_ref()
                        .is_some_and(|st| Arc::ptr_eq(st, stats));
                    if mine {
                        let op = crate::sync::SyncOp::Delete;
                        on_removed(shard.slots[slot].record(op, &shard.pools, tick(now)));
                        shard.remove(&self.key_hasher, slot);
                        removed += 1;
                    }
                }
                let more = end < shard.slots.len();
                drop(shard);
                total += removed;
                if !more {
                    break;
                }
                start = end;
            }
        }
        total
    }

    /// Appends a copy of every entry live at `now` to `out` (locks one shard at a time).
    fn rows_into(&self, now: Nanos, out: &mut Vec<ConnRow>) {
        let now_tick = tick(now);
        self.shards.for_each_read(|s| {
            out.extend(
                s.slots
                    .iter()
                    .filter(|e| e.is_live() && !is_expired(e.expires, now_tick))
                    .map(|e| {
                        let t = e.tracked(&s.pools);
                        ConnRow {
                            proto: e.proto,
                            client: t.client(),
                            vip: t.vip(),
                            real: t.real(),
                            local: t.local(),
                            state: e.state,
                            expires: e.expires_at(now),
                        }
                    }),
            );
        });
    }
}

/// The connection table: an IPv4 table and, when it has a capacity, an IPv6 table, each with
/// its own bound. Every call goes to the table of its key's family; a key or connection whose
/// addresses mix the families is refused. See the module documentation for the invariants.
#[derive(Debug)]
pub struct ConnTable {
    v4: Table<V4>,
    /// `None` when the IPv6 capacity is 0 (no memory reserved): IPv6 inserts are refused as
    /// [`InsertError::Full`] and lookups find nothing.
    v6: Option<Table<V6>>,
}

impl ConnTable {
    /// A table holding at most `max_entries` IPv4 connections (and no IPv6 ones), in a number
    /// of shards that grows with the capacity (1 shard below 8192 entries, up to 64).
    pub fn new(max_entries: usize) -> ConnTable {
        Self::with_shards(max_entries, default_shards(max_entries))
    }

    /// The number of shards [`ConnTable::new`] gives a table of `max_entries`.
    pub fn shards_for(max_entries: usize) -> usize {
        default_shards(max_entries)
    }

    /// Number of shards of the IPv4 table (a power of two).
    pub fn shards(&self) -> usize {
        self.v4.shards.shards()
    }

    /// The FULLNAT pools with their IPv4 addresses: names, address lookups. Ports in use count
    /// both families in [`ConnTable::local_ports_in_use`].
    pub fn local_pools(&self) -> &LocalPools {
        &self.v4.pools
    }

    /// The FULLNAT pools with their IPv6 addresses (`None` without an IPv6 table).
    pub fn local_pools_v6(&self) -> Option<&LocalPools<V6>> {
        self.v6.as_ref().map(|t| &*t.pools)
    }

    /// Whether `addr` is an address of a FULLNAT pool (in its family's pools).
    #[inline]
    pub fn is_pool_address(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.pools.id_of(a.to_bits()).is_some(),
            IpAddr::V6(a) => {
                (self.local_pools_v6()).is_some_and(|p| p.id_of(a.to_bits()).is_some())
            }
        }
    }

    /// Whether `addr`:`port` is a FULLNAT local endpoint: a pool address at a port of its
    /// pool's range (see [`LocalPools::is_pool_endpoint`]), in its family's pools.
    #[inline]
    pub fn is_pool_endpoint(&self, addr: IpAddr, port: u16) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.pools.is_pool_endpoint(a.to_bits(), port),
            IpAddr::V6(a) => {
                (self.local_pools_v6()).is_some_and(|p| p.is_pool_endpoint(a.to_bits(), port))
            }
        }
    }

    /// Ports of pool `pool` held by connections of either family
    /// (`xvs_local_address_ports_in_use`).
    pub fn local_ports_in_use(&self, pool: usize) -> u64 {
        self.v4.pools.ports_in_use(pool)
            + self.v6.as_ref().map_or(0, |t| t.pools.ports_in_use(pool))
    }

    /// Bytes allocated for the FULLNAT pools' free-port rings (2 bytes per pool port).
    pub fn local_port_bytes(&self) -> usize {
        self.v4.shards.sum(Shard::port_bytes)
            + self
                .v6
                .as_ref()
                .map_or(0, |t| t.shards.sum(Shard::port_bytes))
    }

    /// An IPv4-only table with an explicit power-of-two shard count; capacity is split exactly.
    pub fn with_shards(max_entries: usize, shards: usize) -> ConnTable {
        Self::with_pools(max_entries, shards, &[])
    }

    /// An IPv4-only table with FULLNAT local address pools (pool `i` of `pools` is pool index
    /// `i` of [`ConnTable::insert_fullnat`]); `shards` as in [`ConnTable::with_shards`], or 0
    /// for the default of [`ConnTable::new`].
    pub fn with_pools(max_entries: usize, shards: usize, pools: &[LocalPool]) -> ConnTable {
        Self::with_families(max_entries, 0, shards, pools)
    }

    /// [`ConnTable::try_with_families`], panicking on an allocation error (tests, benches).
    pub fn with_families(
        max_entries: usize,
        max_entries_ipv6: usize,
        shards: usize,
        pools: &[LocalPool],
    ) -> ConnTable {
        Self::try_with_families(max_entries, max_entries_ipv6, shards, pools)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Bytes [`ConnTable::allocated_bytes`] will report for the IPv4 table of `max_entries`
    /// built by [`ConnTable::new`] (entries and indexes; the FULLNAT port rings are
    /// [`ConnTable::local_port_bytes`]), computed without allocating: what `xvs check` weighs
    /// against the memory the process can get.
    pub fn bytes_needed(max_entries: usize) -> usize {
        Table::<V4>::bytes_needed(max_entries)
    }

    /// The same for an IPv6 table of `max_entries` (0 for none).
    pub fn bytes_needed_ipv6(max_entries: usize) -> usize {
        match max_entries {
            0 => 0,
            n => Table::<V6>::bytes_needed(n),
        }
    }

    /// [`ConnTable::with_pools`] that reports a failed allocation (an address-space or data
    /// limit, a capacity overflow) as an error instead of aborting the process.
    pub fn try_with_pools(
        max_entries: usize,
        shards: usize,
        pools: &[LocalPool],
    ) -> Result<ConnTable, TableAllocError> {
        Self::try_with_families(max_entries, 0, shards, pools)
    }

    /// A table of at most `max_entries` IPv4 and `max_entries_ipv6` IPv6 connections (0: no
    /// IPv6 table), each split over `shards` shards (0: the default for its capacity), with
    /// FULLNAT pools of either family; allocation failures are errors.
    pub fn try_with_families(
        max_entries: usize,
        max_entries_ipv6: usize,
        shards: usize,
        pools: &[LocalPool],
    ) -> Result<ConnTable, TableAllocError> {
        let v4 = Table::try_new("connection table", max_entries, shards, pools)?;
        let v6 = match max_entries_ipv6 {
            0 => None,
            n => Some(Table::try_new("IPv6 connection table", n, shards, pools)?),
        };
        Ok(ConnTable { v4, v6 })
    }

    /// Capacity of the IPv4 table (`conntrack.max_entries`).
    pub fn capacity(&self) -> usize {
        self.v4.shards.capacity()
    }

    /// Capacity of the IPv6 table (`conntrack.max_entries_ipv6`; 0 without one).
    pub fn capacity_ipv6(&self) -> usize {
        self.v6.as_ref().map_or(0, |t| t.shards.capacity())
    }

    /// Number of live entries of both families (exact between operations).
    pub fn len(&self) -> usize {
        self.v4.len() + self.len_ipv6()
    }

    /// Number of live IPv6 entries.
    pub fn len_ipv6(&self) -> usize {
        self.v6.as_ref().map_or(0, Table::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes allocated for entries and indexes of both families (reserved at construction;
    /// pages are touched as entries are first used).
    pub fn allocated_bytes(&self) -> usize {
        self.v4.allocated_bytes() + self.v6.as_ref().map_or(0, Table::allocated_bytes)
    }

    /// The IPv6 table, for a key whose source is IPv6 (its destination is checked by the
    /// table's own key conversion).
    fn v6_for(&self, key: &FlowKey) -> Option<&Table<V6>> {
        self.v6.as_ref().filter(|_| key.src.is_ipv6())
    }

    /// The live connection whose `dir` key is `key`, without touching its state or timeout (for
    /// ICMP errors about a connection, which say nothing about its progress).
    pub fn peek(&self, dir: Direction, key: &FlowKey, now: Nanos) -> Option<Tracked> {
        match key.src {
            IpAddr::V4(_) => self.v4.peek(dir, key, now),
            IpAddr::V6(_) => self.v6_for(key)?.peek(dir, key, now),
        }
    }

    /// Asks the CPU to fetch what a lookup of `key` in direction `dir` touches first: the
    /// shard's lock (for a write) and the key's home bucket in the shard's index. Locks and
    /// changes nothing; a batch calls it for every frame before it processes the first, so the
    /// frames' cache misses overlap instead of following one another.
    /// Returns the key's shard and hash, for [`ConnTable::lookup_probe`] (`None` for a key no
    /// table holds).
    #[inline]
    pub fn prefetch(&self, dir: Direction, key: &FlowKey) -> Option<Hint> {
        match key.src {
            IpAddr::V4(_) => self.v4.prefetch(dir, key),
            IpAddr::V6(_) => self.v6_for(key)?.prefetch(dir, key),
        }
    }

    /// Finds the connection of a packet, advances its state and refreshes its timeout.
    ///
    /// Returns `None` when there is no live entry, when the entry had expired (it is removed),
    /// when an initial SYN from the client reopens a closing connection (the entry is removed so
    /// that the caller schedules the new connection afresh), or when the key's addresses mix
    /// the families.
    pub fn lookup(
        &self,
        dir: Direction,
        key: &FlowKey,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Option<Tracked> {
        let mut t = Tracked::EMPTY;
        self.lookup_into(dir, key, event, now, timeouts, &mut t)
            .then_some(t)
    }

    /// [`ConnTable::lookup`] that writes the connection into the caller's `out` and says
    /// whether there was one (`out` is unchanged when not). The packet path's form: the entry
    /// is copied once, field by field, where the caller reads it, never moved through return
    /// values (a bulk copy of what was just written field by field stalls on store
    /// forwarding).
    pub fn lookup_into(
        &self,
        dir: Direction,
        key: &FlowKey,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
        out: &mut Tracked,
    ) -> bool {
        let probe = Probe {
            dir,
            key,
            hint: None,
        };
        self.lookup_probe(probe, event, now, timeouts, out)
    }

    /// [`ConnTable::lookup_into`] of `probe.key` in direction `probe.dir`, with the shard and
    /// hash [`ConnTable::prefetch`] computed for them, if any (they are not computed again).
    #[inline]
    pub fn lookup_probe(
        &self,
        probe: Probe<'_>,
        event: Event,
        now: Nanos,
        timeouts: &Timeouts,
        out: &mut Tracked,
    ) -> bool {
        self.lookup_probe_missed(probe, (event, now), timeouts, out, &mut None)
    }

    /// [`ConnTable::lookup_probe`] that, when it misses a key in the original direction whose
    /// probe run holds no key of its hash, writes where the run ends into `missed` (for the
    /// insert that usually follows: [`Scheduled::missed`]); `missed` is left as it is
    /// otherwise.
    #[inline]
    pub fn lookup_probe_missed(
        &self,
        probe: Probe<'_>,
        at: (Event, Nanos),
        timeouts: &Timeouts,
        out: &mut Tracked,
        missed: &mut Option<Missed>,
    ) -> bool {
        match probe.key.src {
            IpAddr::V4(_) => self.v4.lookup_into(probe, at, timeouts, out, missed),
            IpAddr::V6(_) => self
                .v6_for(probe.key)
                .is_some_and(|t| t.lookup_into(probe, at, timeouts, out, missed)),
        }
    }

    /// Inserts a new connection. If the original key is already tracked (two workers raced on
    /// the same new flow), the existing entry wins and is returned. A full shard reclaims expired
    /// entries, then evicts its oldest half-open entry (reported in [`Inserted`]), else refuses.
    pub fn insert(
        &self,
        new: NewConn,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Inserted, InsertError> {
        self.inserted(new, Insert::unscheduled(None, Keys::Both), now, timeouts)
    }

    /// Inserts a connection the datapath scheduled, recording where (`origin`) so that its
    /// packets are counted without a lookup by address. `track` is how the method tracks it:
    /// as [`insert`](Self::insert), [`insert_original_only`](Self::insert_original_only) or
    /// [`insert_fullnat`](Self::insert_fullnat), with `at.hint` (see [`Scheduled`]). The packet
    /// path's form, as [`ConnTable::lookup_into`] is: the connection (the new one, or the
    /// existing entry that won) is written into `out`, where the caller reads it, never moved
    /// through return values; the result is the half-open entry evicted to make room, if any,
    /// as a Delete record.
    pub fn insert_scheduled(
        &self,
        new: NewConn,
        at: Scheduled,
        now: Nanos,
        timeouts: &Timeouts,
        out: &mut Tracked,
    ) -> Result<Option<ConnRecord>, InsertError> {
        let (pool, keys) = match at.track {
            Track::Both => (None, Keys::Both),
            Track::OriginalOnly => (None, Keys::OriginalOnly),
            Track::FullNat { pool } => (Some(pool), Keys::Both),
        };
        let how = Insert {
            origin: at.origin,
            pool,
            keys,
            hint: at.hint,
            missed: at.missed,
        };
        self.insert_with(new, how, now, timeouts, out)
    }

    /// [`ConnTable::insert_with`] returning the connection in an [`Inserted`].
    fn inserted(
        &self,
        new: NewConn,
        how: Insert,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Inserted, InsertError> {
        let mut conn = Tracked::EMPTY;
        let evicted = self.insert_with(new, how, now, timeouts, &mut conn)?;
        Ok(Inserted {
            conn,
            evicted_half_open: evicted.is_some(),
            evicted,
        })
    }

    /// Like [`insert`](Self::insert) for a connection whose replies never pass through the load
    /// balancer (DR, TUN): only its original-direction key is indexed, so it takes one index
    /// bucket instead of two and a reply lookup never finds it. Removal is the same (removing
    /// the reply key of such an entry finds nothing and does nothing).
    pub fn insert_original_only(
        &self,
        new: NewConn,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Inserted, InsertError> {
        let how = Insert::unscheduled(None, Keys::OriginalOnly);
        self.inserted(new, how, now, timeouts)
    }

    /// Inserts a new FULLNAT connection whose local endpoint comes from pool `pool` (an index
    /// into the pools the table was built with; its addresses of the connection's family):
    /// allocated in the connection's shard, under its lock, and returned when the entry is
    /// removed. [`InsertError::LocalPortsExhausted`] when the shard's share of the pool is in
    /// use (or the pool has no address of the connection's family). Otherwise as
    /// [`ConnTable::insert`].
    pub fn insert_fullnat(
        &self,
        new: NewConn,
        pool: u16,
        now: Nanos,
        timeouts: &Timeouts,
    ) -> Result<Inserted, InsertError> {
        self.inserted(
            new,
            Insert::unscheduled(Some(pool), Keys::Both),
            now,
            timeouts,
        )
    }

    /// Routes an insert to the table of the connection's family: mixed families are refused
    /// ([`InsertError::MixedFamilies`]), IPv6 without an IPv6 table is [`InsertError::Full`].
    fn insert_with(
        &self,
        new: NewConn,
        how: Insert,
        now: Nanos,
        timeouts: &Timeouts,
        out: &mut Tracked,
    ) -> Result<Option<ConnRecord>, InsertError> {
        let v6 = new.client.is_ipv6();
        if new.vip.is_ipv6() != v6 || new.real.is_ipv6() != v6 {
            return Err(InsertError::MixedFamilies);
        }
        if !v6 {
            return self.v4.insert_with(new, how, now, timeouts, out);
        }
        match &self.v6 {
            Some(t) => t.insert_with(new, how, now, timeouts, out),
            None => Err(InsertError::Full),
        }
    }

    /// Removes expired entries, visiting at most `budget` slots of one shard of each family's
    /// table (the shards take turns). Returns how many entries were removed.
    pub fn expire(&self, now: Nanos, budget: usize) -> usize {
        self.expire_with(now, budget, |_| {})
    }

    /// [`ConnTable::expire`] that hands each removed entry to `on_removed` as a
    /// [`crate::sync::SyncOp::Delete`] record (under its shard's lock: `on_removed` must be
    /// short, an enqueue).
    pub fn expire_with(
        &self,
        now: Nanos,
        budget: usize,
        on_removed: impl FnMut(ConnRecord),
    ) -> usize {
        self.expire_at((None, now), budget, on_removed)
    }

    /// [`ConnTable::expire_with`] of shard `turn` of each family's table (modulo its number
    /// of shards) instead of the table's next in turn: a worker keeps its own turn, one step
    /// per batch, so that no line is written by every worker's every batch. Each shard keeps
    /// its own position in its slab, so workers that visit one shard in turn go on from each
    /// other.
    pub fn expire_turn_with(
        &self,
        turn: usize,
        now: Nanos,
        budget: usize,
        on_removed: impl FnMut(ConnRecord),
    ) -> usize {
        self.expire_at((Some(turn), now), budget, on_removed)
    }

    fn expire_at(
        &self,
        at: (Option<usize>, Nanos),
        budget: usize,
        mut on_removed: impl FnMut(ConnRecord),
    ) -> usize {
        let f = &mut on_removed;
        self.v4.expire(at, budget, f) + self.v6.as_ref().map_or(0, |t| t.expire(at, budget, f))
    }

    /// Removes every connection scheduled to the real server whose counters are `stats` (one
    /// (service, real server) pair: the same address in another service is not touched), as
    /// health checks do for `on_failure: remove`. Its active/inactive counts drop with each
    /// entry. Holds one shard's lock for at most [`REMOVE_REAL_CHUNK`] slots at a time, so a
    /// worker waits at most one chunk's scan. Returns how many connections were removed.
    pub fn remove_real(&self, stats: &Arc<RealStats>) -> usize {
        self.remove_real_with(stats, 0, |_| {})
    }

    /// [`ConnTable::remove_real`] that hands each removed entry to `on_removed` as a
    /// [`crate::sync::SyncOp::Delete`] record (its timeout 0; `now` dates nothing else).
    pub fn remove_real_with(
        &self,
        stats: &Arc<RealStats>,
        now: Nanos,
        mut on_removed: impl FnMut(ConnRecord),
    ) -> usize {
        let f = &mut on_removed;
        self.v4.remove_real(stats, now, f)
            + self.v6.as_ref().map_or(0, |t| t.remove_real(stats, now, f))
    }

    /// A copy of every entry live at `now`, IPv4 then IPv6 (for `xvs ctl conns` and tests;
    /// locks one shard at a time).
    pub fn rows(&self, now: Nanos) -> Vec<ConnRow> {
        let mut out = Vec::with_capacity(self.len());
        self.v4.rows_into(now, &mut out);
        if let Some(t) = &self.v6 {
            t.rows_into(now, &mut out);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use std::cell::Cell;

    const S: Nanos = crate::flow::NANOS_PER_SEC;

    pub(super) fn sa(s: &str) -> SocketAddr {
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

    /// [`ConnTable::insert_scheduled`] of a NAT connection at `origin` with `hint`, at time 0,
    /// as an [`Inserted`].
    fn insert_at(
        t: &ConnTable,
        c: NewConn,
        origin: Origin,
        hint: Option<Hint>,
    ) -> Result<Inserted, InsertError> {
        let mut conn = Tracked::EMPTY;
        let at = Scheduled {
            origin,
            track: Track::Both,
            hint,
            missed: None,
        };
        let evicted = t.insert_scheduled(c, at, 0, &Timeouts::default(), &mut conn)?;
        Ok(Inserted {
            conn,
            evicted_half_open: evicted.is_some(),
            evicted,
        })
    }

    /// (original key, reply key) of a NAT connection (IPv4 or IPv6).
    pub(super) fn keys(c: &NewConn) -> (FlowKey, FlowKey) {
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
    fn bytes_needed_is_what_the_table_allocates() {
        for n in [1, 4095, 8192, 100_000, 262_144, 1_000_003] {
            assert_eq!(
                ConnTable::bytes_needed(n),
                ConnTable::new(n).allocated_bytes(),
                "{n}"
            );
        }
    }

    #[test]
    fn a_table_too_large_to_allocate_is_an_error_not_an_abort() {
        let e = ConnTable::try_with_pools(usize::MAX / 2, 0, &[]).unwrap_err();
        assert_eq!(e.entries, usize::MAX / 2);
        assert!(
            e.to_string()
                .starts_with("cannot allocate the connection table for "),
            "{e}"
        );
        let e = crate::sched::persist::PersistenceTable::try_new(usize::MAX / 2).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot allocate the persistence template table for "),
            "{e}"
        );
    }

    #[test]
    fn a_shard_past_the_slot_numbers_is_an_error() {
        let e = ConnTable::try_with_pools(MAX_SHARD_SLOTS + 1, 1, &[]).unwrap_err();
        assert!(e.reason.contains("entries in one of 1 shards"), "{e}");
    }

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
        assert_eq!((got.vip(), got.state), (c.vip, ConnState::SynRecv));
        let got = t.lookup(Direction::Original, &o, ACK, 2 * S, &to).unwrap();
        assert_eq!((got.real(), got.state), (c.real, ConnState::Established));
        assert_eq!(stats.active.load(Ordering::Relaxed), 1);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 0);
        assert_eq!(t.len(), 1);
        // A reply key must not match as an original key and vice versa.
        assert!(t
            .lookup(Direction::Original, &o.reversed(), ACK, 2 * S, &to)
            .is_none());
    }

    #[test]
    fn original_only_entries_index_one_key_and_remove_cleanly() {
        let t = ConnTable::with_shards(100, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = new_conn(40000, &stats);
        let (o, r) = keys(&c);
        t.insert_original_only(c.clone(), 0, &to).unwrap();
        assert_eq!(
            t.v4.shards.lock(0).index.len(),
            1,
            "one index key per DR/TUN entry"
        );
        // Replies bypass the load balancer: the reply key is not indexed.
        assert!(t.lookup(Direction::Reply, &r, ACK, S, &to).is_none());
        let got = t.lookup(Direction::Original, &o, ACK, S, &to).unwrap();
        assert_eq!(got.real(), c.real);
        // A NAT entry next to it keeps both keys; removal of both leaves an empty index.
        t.insert(new_conn(40001, &stats), 0, &to).unwrap();
        assert_eq!(t.v4.shards.lock(0).index.len(), 3);
        assert_eq!(t.expire(10_000 * S, 100), 2);
        assert_eq!(t.len(), 0);
        assert_eq!(t.v4.shards.lock(0).index.len(), 0);
        assert_eq!(stats.active.load(Ordering::Relaxed), 0);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn peek_finds_without_changing_state_or_timeout() {
        let t = ConnTable::with_shards(100, 2);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = new_conn(40000, &stats);
        let (o, r) = keys(&c);
        t.insert(c.clone(), 0, &to).unwrap();
        let got = t.peek(Direction::Reply, &r, 29 * S).unwrap();
        assert_eq!((got.client(), got.state), (c.client, ConnState::SynRecv));
        assert!(t.peek(Direction::Original, &o, 29 * S).is_some());
        // tcp_syn (30 s) was not refreshed by the peeks.
        assert!(t.peek(Direction::Original, &o, 31 * S).is_none());
        assert!(t.peek(Direction::Original, &r, S).is_none());
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

    fn established(client_port: u16, stats: &Arc<RealStats>) -> NewConn {
        NewConn {
            state: ConnState::Established,
            ..new_conn(client_port, stats)
        }
    }

    #[test]
    fn full_table_of_established_entries_refuses_then_reclaims_expired() {
        let t = ConnTable::with_shards(8, 1);
        let to = Timeouts {
            tcp_established: 60 * S,
            ..Timeouts::default()
        };
        let stats = Arc::new(RealStats::default());
        for p in 0..8 {
            t.insert(established(1000 + p, &stats), 0, &to).unwrap();
        }
        assert_eq!(
            t.insert(new_conn(2000, &stats), S, &to),
            Err(InsertError::Full),
            "established entries are never evicted"
        );
        assert_eq!(t.len(), 8);
        // Once they expired, the insert itself reclaims them.
        let ins = t.insert(new_conn(2000, &stats), 61 * S, &to).unwrap();
        assert!(!ins.evicted_half_open);
        assert_eq!(t.len(), 1);
        assert_eq!(stats.active.load(Ordering::Relaxed), 0);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn full_table_evicts_the_oldest_half_open_entry() {
        let t = ConnTable::with_shards(8, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        for p in 0..4 {
            t.insert(established(1000 + p, &stats), 0, &to).unwrap();
        }
        // Half-open entries created at 1..=4 s: the one from 1 s is the oldest.
        for p in 0..4u16 {
            t.insert(new_conn(2000 + p, &stats), (1 + u64::from(p)) * S, &to)
                .unwrap();
        }
        let ins = t.insert(new_conn(3000, &stats), 5 * S, &to).unwrap();
        assert!(ins.evicted_half_open);
        assert_eq!(t.len(), 8);
        let (oldest, _) = keys(&new_conn(2000, &stats));
        assert!(t
            .lookup(Direction::Original, &oldest, ACK, 6 * S, &to)
            .is_none());
        for p in 0..4 {
            let (o, _) = keys(&new_conn(1000 + p, &stats));
            assert!(t.lookup(Direction::Original, &o, ACK, 6 * S, &to).is_some());
        }
        assert_eq!(stats.active.load(Ordering::Relaxed), 4);
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn syn_reopens_a_closing_connection() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let c = established(5000, &stats);
        let (o, _) = keys(&c);
        t.insert(c, 0, &to).unwrap();
        let rst = Event::Tcp(TcpFlags(TcpFlags::RST));
        let got = t.lookup(Direction::Original, &o, rst, S, &to).unwrap();
        assert_eq!(got.state, ConnState::Close);
        assert!(t.lookup(Direction::Original, &o, SYN, 2 * S, &to).is_none());
        assert_eq!(t.len(), 0);
    }

    thread_local! {
        /// Inserts `Shard::insert_fresh_pair` made on this test's thread.
        pub(super) static ONE_SCAN_INSERTS: Cell<usize> = const { Cell::new(0) };
        /// Of those, the ones that took the vacancy of the lookup that missed (no scan).
        pub(super) static VACANCIES_REUSED: Cell<usize> = const { Cell::new(0) };
    }

    /// The lookup of a SYN for `c`'s original key, with the pre-pass's hint, as the datapath
    /// makes it before an insert: whether it hit, what its miss recorded, and its hint.
    fn syn_lookup(t: &ConnTable, c: &NewConn) -> (bool, Option<Missed>, Option<Hint>) {
        let (o, _) = keys(c);
        let hint = t.prefetch(Direction::Original, &o);
        let probe = Probe {
            dir: Direction::Original,
            key: &o,
            hint,
        };
        let (mut out, mut missed) = (Tracked::EMPTY, None);
        let hit =
            t.lookup_probe_missed(probe, (SYN, 0), &Timeouts::default(), &mut out, &mut missed);
        (hit, missed, hint)
    }

    /// [`ConnTable::insert_scheduled`] of `c` as the datapath makes it after `syn_lookup`.
    fn insert_after(t: &ConnTable, c: NewConn, (missed, hint): (Option<Missed>, Option<Hint>)) {
        let at = Scheduled {
            origin: Origin::new(0, 0),
            track: Track::Both,
            hint,
            missed,
        };
        let mut out = Tracked::EMPTY;
        assert_eq!(
            t.insert_scheduled(c, at, 0, &Timeouts::default(), &mut out),
            Ok(None)
        );
    }

    #[test]
    fn an_insert_takes_the_vacancy_its_missed_lookup_found_only_while_the_shard_is_unchanged() {
        let t = ConnTable::with_shards(64, 1);
        let stats = Arc::new(RealStats::default());
        let on_80 = |port: u16, vip: &str| NewConn {
            vip: sa(vip),
            real: sa("198.18.1.11:80"),
            ..new_conn(port, &stats)
        };
        let found = |c: &NewConn| {
            let (o, r) = keys(c);
            let vip = |dir, k| t.peek(dir, k, 0).map(|x: Tracked| x.vip());
            (vip(Direction::Original, &o), vip(Direction::Reply, &r))
        };
        VACANCIES_REUSED.with(|n| n.set(0));
        let reused = || VACANCIES_REUSED.with(Cell::get);
        // A SYN's lookup and insert of `c`, whose miss must be clean or not.
        let open = |c: &NewConn, clean: bool| {
            let (hit, missed, hint) = syn_lookup(&t, c);
            assert_eq!((hit, missed.is_some()), (false, clean), "{c:?}");
            insert_after(&t, c.clone(), (missed, hint));
            assert_eq!(found(c), (Some(c.vip), Some(c.vip)));
        };
        // A clean miss, then its insert: the vacancy is taken.
        open(&on_80(1000, "198.18.0.100:80"), true);
        assert_eq!(reused(), 1);
        // The same client endpoint to another VIP hashes the same: its run holds the first
        // one's keys, so its miss records nothing and its insert scans (and takes the reply
        // key over).
        open(&on_80(1000, "198.18.0.101:80"), false);
        assert_eq!(reused(), 1);
        // A clean miss gone stale: another insert of the same hash into the shard between the
        // lookup and the insert takes the bucket the miss found. The version says so, the
        // insert scans, and both connections keep their keys.
        let c = on_80(2000, "198.18.0.100:80");
        let d = on_80(2000, "198.18.0.101:80");
        let (hit, stale, hint) = syn_lookup(&t, &c);
        assert!(!hit && stale.is_some());
        insert_after(&t, d.clone(), (None, None));
        insert_after(&t, c.clone(), (stale, hint));
        assert_eq!(reused(), 1, "a stale vacancy was taken");
        assert_eq!(found(&c).0, Some(c.vip));
        assert_eq!(found(&d).0, Some(d.vip));
        assert_eq!(
            found(&c).1,
            Some(c.vip),
            "the newer connection holds the reply key"
        );
    }

    /// What a NAT table of one shard answers after a run of inserts for real servers on port
    /// `rport` (new flows, into an empty slab and then into slots the sweep freed; repeats; a
    /// reply key taken over; the shard filled until it evicts and refuses): every key's lookup,
    /// the inserts' outcomes, the counts; and how many inserts took the one-scan path
    /// (`Shard::insert_fresh_pair`; only port 80, the VIP's, can).
    fn nat_run(rport: u16) -> (Vec<String>, usize) {
        ONE_SCAN_INSERTS.with(|n| n.set(0));
        let t = ConnTable::with_shards(64, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let conn = |port: u16, vip: &str| NewConn {
            vip: sa(vip),
            real: SocketAddr::new("198.18.1.11".parse().unwrap(), rport),
            ..new_conn(port, &stats)
        };
        let mut seen = Vec::new();
        let mut record = |what: String| seen.push(what);
        for round in 0..3u64 {
            // SYN_RECV entries live 30 s: each round's sweep frees the previous round's slots.
            let now = round * 200 * S;
            let removed = t.expire(now, 1000);
            record(format!("{round} expired {removed}"));
            for port in 1000..1040u16 {
                let c = conn(port, "198.18.0.100:80");
                let got = t.insert(c.clone(), now, &to).map(|i| i.conn.real());
                record(format!("{round} insert {port}: {got:?}"));
            }
            // A repeat (the existing entry wins) and a second VIP's connection from the same
            // client endpoint (it takes the reply key over).
            let again = t.insert(conn(1000, "198.18.0.100:80"), now, &to);
            record(format!("{round} repeat: {:?}", again.map(|i| i.conn.vip())));
            let other = t.insert(conn(1001, "198.18.0.101:80"), now, &to);
            record(format!(
                "{round} other vip: {:?}",
                other.map(|i| i.conn.vip())
            ));
            for port in 999..1041u16 {
                let (o, r) = keys(&conn(port, "198.18.0.100:80"));
                let found = |dir, k| t.peek(dir, k, now).map(|c: Tracked| (c.vip(), c.real()));
                let (fo, fr) = (found(Direction::Original, &o), found(Direction::Reply, &r));
                record(format!("{round} {port}: {fo:?} {fr:?}"));
            }
            record(format!(
                "{round} len {} total {}",
                t.len(),
                stats.total_connections()
            ));
        }
        // Past the shard's capacity: the last inserts evict half-open entries.
        for port in 2000..2030u16 {
            let got = t.insert(conn(port, "198.18.0.100:80"), 400 * S + 1, &to);
            let got = got.map(|i| (i.conn.real(), i.evicted_half_open));
            record(format!("full {port}: {got:?} len {}", t.len()));
        }
        (seen, ONE_SCAN_INSERTS.with(Cell::get))
    }

    #[test]
    fn a_nat_pair_on_the_vips_port_is_inserted_in_one_scan_as_the_general_path_inserts_it() {
        let ((one_scan, fast), (general, none)) = (nat_run(80), nat_run(8080));
        let unported = |v: Vec<String>| -> Vec<String> {
            v.into_iter().map(|l| l.replace(":8080", ":80")).collect()
        };
        assert_eq!(one_scan, unported(general));
        // Three rounds of 40 fresh flows, and the fill until the shard is full.
        assert_eq!((fast, none), (3 * 40 + 64 - 41, 0), "{one_scan:#?}");
        let taken = "0 1001: Some((198.18.0.100:80, 198.18.1.11:80)) Some((198.18.0.101:80, 198.18.1.11:80))";
        assert!(one_scan.iter().any(|l| l == taken), "{one_scan:#?}");
        assert!(
            one_scan.iter().any(|l| l.contains("true)) len 64")),
            "no eviction: {one_scan:#?}"
        );
    }

    #[test]
    fn a_newer_connection_takes_over_a_shared_reply_key() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let first = established(7000, &stats);
        let second = NewConn {
            state: ConnState::SynRecv,
            vip: sa("198.18.0.101:80"),
            ..first.clone()
        };
        let (o1, r) = keys(&first);
        t.insert(first, 0, &to).unwrap();
        t.insert(second.clone(), 0, &to).unwrap();
        let got = t.lookup(Direction::Reply, &r, ACK, S, &to).unwrap();
        assert_eq!(got.vip(), second.vip);
        // Removing the older one leaves the newer one's reply key in place.
        let rst = Event::Tcp(TcpFlags(TcpFlags::RST | TcpFlags::ACK));
        assert!(t.lookup(Direction::Original, &o1, rst, S, &to).is_some());
        assert_eq!(
            t.expire(20 * S, 10),
            1,
            "the older one closed at 1 s (10 s tcp_close)"
        );
        assert_eq!(
            t.lookup(Direction::Reply, &r, ACK, 20 * S, &to)
                .map(|c| c.vip()),
            Some(second.vip)
        );
    }

    #[test]
    fn an_ipv4_only_table_refuses_ipv6_as_full_and_mixed_families_as_such() {
        let t = ConnTable::with_shards(10, 1);
        let stats = Arc::new(RealStats::default());
        let to = Timeouts::default();
        let v6 = NewConn {
            client: sa("[2001:2::2]:1000"),
            vip: sa("[2001:2::100]:80"),
            real: sa("[2001:2:0:1::11]:8080"),
            ..new_conn(1, &stats)
        };
        assert_eq!(t.insert(v6.clone(), 0, &to), Err(InsertError::Full));
        let (o, r) = keys(&v6);
        assert!(t.lookup(Direction::Original, &o, ACK, 0, &to).is_none());
        assert!(t.peek(Direction::Reply, &r, 0).is_none());
        let mixed = NewConn {
            client: sa("[2001:2::2]:1000"),
            ..new_conn(1, &stats)
        };
        assert_eq!(t.insert(mixed, 0, &to), Err(InsertError::MixedFamilies));
        assert_eq!((t.len(), t.capacity_ipv6(), t.len_ipv6()), (0, 0, 0));
        assert_eq!(stats.total_connections(), 0);
    }

    #[test]
    fn a_scheduled_connection_carries_its_origin_and_counters_identity_both_ways() {
        let t = ConnTable::with_shards(16, 1);
        let stats = Arc::new(RealStats::default());
        let c = new_conn(40000, &stats);
        let (o, r) = keys(&c);
        let origin = Origin::new(3, 1);
        let hint = t.prefetch(Direction::Original, &o);
        let ins = insert_at(&t, c.clone(), origin, hint).unwrap();
        assert_eq!(ins.conn.origin, origin);
        assert_eq!(ins.conn.stats_id, stats_id(&stats));
        for (dir, key) in [(Direction::Original, o), (Direction::Reply, r)] {
            let found = t.lookup(dir, &key, ACK, 1, &Timeouts::default()).unwrap();
            assert_eq!((found.origin, found.stats_id), (origin, stats_id(&stats)));
        }
        // A plain insert records no origin; an index that does not fit records none either.
        let other = new_conn(40001, &stats);
        let plain = t.insert(other, 0, &Timeouts::default()).unwrap();
        assert_eq!(plain.conn.origin, Origin::UNKNOWN);
        assert_eq!(Origin::new(usize::from(u16::MAX), 0), Origin::UNKNOWN);
        assert_eq!(Origin::new(0, 1 << 16), Origin::UNKNOWN);
        // Another real server's counters have another identity.
        assert_ne!(stats_id(&Arc::new(RealStats::default())), stats_id(&stats));
    }

    #[test]
    fn an_entry_is_40_bytes_and_a_connection_at_most_64_with_its_index() {
        // NAT and FULLNAT entries are the same size (FULLNAT's local endpoint lives in it).
        assert_eq!(std::mem::size_of::<Entry<V4>>(), 40);
        let t = ConnTable::new(1_000_000);
        let per = t.allocated_bytes() as f64 / 1_000_000.0;
        assert!(per <= 64.0, "{per} bytes per connection");
        assert!(
            per > 50.0,
            "{per}: the measurement counts entries and index"
        );
    }

    #[test]
    fn expiry_survives_the_32_bit_millisecond_wrap() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        // 2^32 ms after the epoch, minus 10 s: the expiry tick wraps around 0.
        let start = (1u64 << 32) * NANOS_PER_TICK - 10 * S;
        let c = new_conn(8000, &stats);
        let (o, _) = keys(&c);
        t.insert(c, start, &to).unwrap();
        assert!(t
            .lookup(Direction::Original, &o, ACK, start + 29 * S, &to)
            .is_some());
        // Now ESTABLISHED (15 min) from start + 29 s.
        assert_eq!(t.expire(start + 900 * S, 10), 0);
        assert_eq!(t.expire(start + 930 * S, 10), 1);
    }

    #[test]
    fn duplicate_insert_returns_the_existing_entry() {
        let t = ConnTable::with_shards(10, 1);
        let to = Timeouts::default();
        let stats = Arc::new(RealStats::default());
        let mut c = new_conn(5000, &stats);
        t.insert(c.clone(), 0, &to).unwrap();
        c.real = sa("198.18.1.12:8080");
        assert_eq!(
            t.insert(c, 0, &to).unwrap().conn.real(),
            sa("198.18.1.11:8080")
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.rows(0).len(), 1);
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
    fn churn_at_full_occupancy_never_reallocates() {
        let to = Timeouts {
            tcp_syn: NANOS_PER_TICK,
            ..Timeouts::default()
        };
        let t = ConnTable::with_shards(4096, 1);
        let stats = Arc::new(RealStats::default());
        let before = t.allocated_bytes();
        let mut now = 0;
        for round in 0..40u32 {
            for i in 0..4096u32 {
                let mut c = new_conn(0, &stats);
                c.client = SocketAddr::from(((round * 4096 + i).to_be_bytes(), 1000));
                t.insert(c, now, &to).unwrap();
            }
            assert_eq!(t.len(), 4096);
            now += 10 * NANOS_PER_TICK;
            assert_eq!(t.expire(now, 4096), 4096);
            assert_eq!(t.allocated_bytes(), before, "reallocated in round {round}");
        }
        assert!(t.is_empty());
        assert_eq!(stats.inactive.load(Ordering::Relaxed), 0);
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
            .rows(1)
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
    fn remove_real_works_through_shards_larger_than_one_chunk() {
        let n = REMOVE_REAL_CHUNK * 2 + 100;
        let t = ConnTable::with_shards(n, 1);
        let to = Timeouts::default();
        let a = Arc::new(RealStats::default());
        for i in 0..n as u32 {
            let mut c = new_conn(0, &a);
            c.client = SocketAddr::from((i.to_be_bytes(), 1000));
            t.insert(c, 0, &to).unwrap();
        }
        assert_eq!(t.remove_real(&a), n);
        assert!(t.is_empty());
        assert_eq!(a.total_connections(), 0);
    }

    #[test]
    fn a_nat_connections_two_keys_hash_alike_when_the_real_server_takes_the_vip_port() {
        let seed = ahash::RandomState::with_seeds(5, 6, 7, 8);
        let stats = Arc::new(RealStats::default());
        let to = Timeouts::default();
        let mut e = Entry::<V4>::new(new_conn(40000, &stats), Origin::UNKNOWN, 0, &to).unwrap();
        e.rport = e.vport;
        let pools = LocalPools::<V4>::new(&[]).unwrap();
        let hash = |e: &Entry<V4>, dir| e.key(dir, &pools).hash(dir, &seed);
        let h = hash(&e, Direction::Original);
        assert_eq!(h, hash(&e, Direction::Reply));
        let other = Entry::<V4>::new(new_conn(40001, &stats), Origin::UNKNOWN, 0, &to).unwrap();
        assert_ne!(h, hash(&other, Direction::Original));
        // Another VIP and real server on the same port, of the same client endpoint: the same
        // hash (the keys tell the entries apart); another protocol, another port (a SYN scan of
        // an all-port service), or a real server on another port than the VIP's: another hash.
        (e.vip, e.real) = (e.vip + 1, e.real + 1);
        assert_eq!(
            (hash(&e, Direction::Original), hash(&e, Direction::Reply)),
            (h, h)
        );
        e.proto = Proto::Udp;
        assert_ne!(hash(&e, Direction::Original), h);
        e.proto = Proto::Tcp;
        e.rport += 1;
        assert_eq!(
            hash(&e, Direction::Original),
            h,
            "the real server on another port"
        );
        assert_ne!(hash(&e, Direction::Reply), h);
        e.vport += 1;
        let scanned = hash(&e, Direction::Original);
        assert_ne!(scanned, h, "the next port of an all-port service");
        assert_eq!(hash(&e, Direction::Reply), scanned);
    }

    #[test]
    fn a_syn_scan_of_an_all_port_service_from_one_endpoint_spreads_over_the_index() {
        // One client endpoint to 4096 destination ports (real servers on the same ports, as an
        // all-port service keeps them): every key hashes apart, so no probe run grows with what
        // one client sends.
        let seed = ahash::RandomState::with_seeds(5, 6, 7, 8);
        let stats = Arc::new(RealStats::default());
        let (to, pools) = (Timeouts::default(), LocalPools::<V4>::new(&[]).unwrap());
        let mut seen = std::collections::HashSet::new();
        for port in 1..=4096u16 {
            let mut e = Entry::<V4>::new(new_conn(40000, &stats), Origin::UNKNOWN, 0, &to).unwrap();
            (e.vport, e.rport) = (port, port);
            for dir in [Direction::Original, Direction::Reply] {
                seen.insert((dir == Direction::Reply, e.key(dir, &pools).hash(dir, &seed)));
            }
        }
        assert_eq!(seen.len(), 2 * 4096);
    }

    #[test]
    fn one_client_endpoint_in_many_services_keeps_every_key_apart() {
        // 40 connections of one client endpoint to 40 service ports, 20 real servers: every
        // key shares the endpoint's home bucket; each is found in its own direction only, the
        // newer connection takes a shared reply key, and removal keeps the rest findable.
        let t = ConnTable::with_shards(256, 1);
        let stats = Arc::new(RealStats::default());
        let to = Timeouts::default();
        let conn = |vport: u16| NewConn {
            proto: Proto::Tcp,
            client: sa("198.18.0.1:40000"),
            vip: SocketAddr::new("198.18.0.100".parse().unwrap(), vport),
            real: SocketAddr::new(format!("198.18.1.{}", vport % 20).parse().unwrap(), 80),
            state: ConnState::Established,
            stats: stats.clone(),
        };
        for vport in 1..=40 {
            t.insert(conn(vport), 0, &to).unwrap();
        }
        assert_eq!(t.len(), 40);
        for vport in 1..=40 {
            let (o, r) = keys(&conn(vport));
            let found = t.peek(Direction::Original, &o, 0).unwrap();
            assert_eq!(found.vip(), conn(vport).vip);
            // The reply key of real `vport % 20` belongs to the newest connection using it.
            let newest = if vport > 20 { vport } else { vport + 20 };
            assert_eq!(
                t.peek(Direction::Reply, &r, 0).unwrap().vip().port(),
                newest
            );
            assert!(t.peek(Direction::Reply, &o, 0).is_none());
            assert!(t.peek(Direction::Original, &r, 0).is_none());
        }
        // Remove the older half by expiring them (inserted earlier, they expire earlier).
        let short = Timeouts {
            tcp_established: 1_000_000_000,
            ..to
        };
        let t2 = ConnTable::with_shards(256, 1);
        for vport in 1..=40 {
            let timeouts = if vport <= 20 { &short } else { &to };
            t2.insert(conn(vport), 0, timeouts).unwrap();
        }
        assert_eq!(t2.expire(2_000_000_000, usize::MAX), 20);
        for vport in 1..=40 {
            let (o, r) = keys(&conn(vport));
            assert_eq!(t2.peek(Direction::Original, &o, 0).is_some(), vport > 20);
            assert_eq!(
                t2.peek(Direction::Reply, &r, 0).map(|c| c.vip().port()),
                Some(if vport > 20 { vport } else { vport + 20 })
            );
        }
    }

    #[test]
    fn a_hinted_insert_finds_a_racing_entry_and_inserts_as_an_unhinted_one() {
        let stats = Arc::new(RealStats::default());
        let (a, b) = (ConnTable::with_shards(64, 4), ConnTable::with_shards(64, 4));
        for port in 40000..40016 {
            let c = new_conn(port, &stats);
            let (o, r) = keys(&c);
            let hint = a.prefetch(Direction::Original, &o);
            assert!(hint.is_some());
            let with = insert_at(&a, c.clone(), Origin::new(0, 0), hint);
            let without = insert_at(&b, c.clone(), Origin::new(0, 0), None);
            assert_eq!(with, without);
            // Another worker's insert of the same flow with the same hint: the first one wins.
            let again = insert_at(&a, c, Origin::new(0, 1), hint);
            assert_eq!(again.unwrap().conn.origin, Origin::new(0, 0));
            for table in [&a, &b] {
                assert!(table.peek(Direction::Original, &o, 0).is_some());
                assert!(table.peek(Direction::Reply, &r, 0).is_some());
            }
        }
        assert_eq!((a.len(), b.len()), (16, 16));
    }

    #[test]
    fn capacity_is_split_exactly_across_shards() {
        let t = ConnTable::with_shards(10, 4);
        let caps: usize = t.v4.shards.sum(|s| s.slots.capacity());
        assert_eq!(caps, 10);
    }
}

#[cfg(test)]
mod fullnat_tests;
#[cfg(test)]
mod ipv6_tests;
