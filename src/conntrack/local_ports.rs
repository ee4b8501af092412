//! FULLNAT local address:port allocation (`local_addresses` pools).
//!
//! A FULLNAT connection gets a source endpoint (local address, local port) of its service's pool;
//! replies come back to that endpoint, so it must be unique among live connections and it must
//! lead the reply lookup to the shard that holds the connection.
//!
//! Invariants:
//! - The pools are fixed when the table is built (changing `local_addresses` needs a restart).
//!   A pool is of one address family; each family's table builds its own [`LocalPools`] from
//!   the same list, keeping every pool's index (a pool of the other family has no address there,
//!   so it hands out no port). Every pool address of the family gets a **local id** (its position
//!   in [`LocalPools::addrs`]).
//! - Shard `s` of a table of `n` shards owns exactly the ports `p` of each pool address with
//!   `p mod n == s`, as a FIFO ring of free ports allocated once at construction. A connection
//!   lives in the shard of its client endpoint, and takes its local port from that shard's
//!   rings, so the reply (destination = local address:port) finds the shard from the port alone
//!   ([`shard_of_reply`]).
//! - Allocation and release happen under the shard's lock, inside the connection-table operation
//!   that inserts or removes the entry: no extra lock, no allocation, and a port can never be
//!   handed out twice, whichever worker asks (each port belongs to one shard's ring, and a
//!   popped port is only pushed back when the entry holding it is removed — expiry, eviction,
//!   `remove_real` or a reopening SYN).
//! - FIFO reuse: a released port goes to the back of its ring, so it is reused as late as
//!   possible (the real server may still hold the previous connection in TIME_WAIT).
//! - A port can also be reserved by number ([`ShardPorts::reserve`]: a connection installed
//!   from a peer's sync record keeps the local port the peer gave it): the port is taken out of
//!   its ring (a scan of that ring, under the same lock; only the sync thread reserves) and comes
//!   back like any other when the entry is removed. A port of another shard's share, out of the
//!   pool's range, or in use is refused ([`ReserveError`]).
//! - A pool's capacity is split evenly across the shards; a shard whose share of the pool is
//!   used up refuses the new flow (the caller counts `local_ports_exhausted`), even if another
//!   shard still has free ports. Clients hash evenly over the shards, so this only matters when a
//!   pool is nearly full.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::conntrack::family::{Family, V4};

/// A FULLNAT source pool as the connection table sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPool {
    pub name: String,
    /// The pool's addresses, all of one family (the config enforces it; a table takes those of
    /// its own family).
    pub addresses: Vec<IpAddr>,
    /// First and last source port, inclusive (1 ≤ first ≤ last).
    pub first_port: u16,
    pub last_port: u16,
}

/// "No local endpoint": the entry is not FULLNAT.
pub const NO_LOCAL: u16 = u16::MAX;

/// Every pool and its addresses of family `F`, shared (read-only) by all shards of that
/// family's table.
#[derive(Debug)]
pub struct LocalPools<F: Family = V4> {
    pub pools: Vec<LocalPool>,
    /// Every pool address of family `F`, indexed by local id.
    pub addrs: Vec<F::Addr>,
    /// `(address, local id)` sorted by address: the per-packet lookup ([`LocalPools::id_of`])
    /// is a binary search, whatever the number of pool addresses.
    by_addr: Vec<(F::Addr, u16)>,
    /// Pool index of each local id.
    pub pool_of: Vec<u16>,
    /// For each pool, its local ids (a contiguous range of `addrs`).
    pub ids: Vec<std::ops::Range<u16>>,
    /// Ports in use per pool (a gauge: incremented and decremented under shard locks).
    pub in_use: Vec<AtomicU64>,
}

impl<F: Family> Default for LocalPools<F> {
    fn default() -> Self {
        LocalPools {
            pools: Vec::new(),
            addrs: Vec::new(),
            by_addr: Vec::new(),
            pool_of: Vec::new(),
            ids: Vec::new(),
            in_use: Vec::new(),
        }
    }
}

/// The pools hold more addresses than there are local ids (or more pools than pool indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{addresses} local addresses in {pools} pools; at most {max} addresses are supported", max = NO_LOCAL - 1)]
pub struct TooManyLocalAddresses {
    pub addresses: usize,
    pub pools: usize,
}

impl<F: Family> LocalPools<F> {
    /// The pools, their addresses of family `F` numbered by local id in order (at most
    /// `NO_LOCAL - 1` of them, so every id and the end of every id range is below
    /// [`NO_LOCAL`]); addresses of the other family are left out.
    pub fn new(pools: &[LocalPool]) -> Result<LocalPools<F>, TooManyLocalAddresses> {
        let too_many = TooManyLocalAddresses {
            addresses: pools.iter().map(|p| p.addresses.len()).sum(),
            pools: pools.len(),
        };
        let local_id = |n: usize| {
            u16::try_from(n)
                .ok()
                .filter(|&id| id < NO_LOCAL)
                .ok_or(too_many)
        };
        let mut out = LocalPools {
            pools: pools.to_vec(),
            ..LocalPools::default()
        };
        for (pi, p) in pools.iter().enumerate() {
            let pool = u16::try_from(pi).map_err(|_| too_many)?;
            let start = local_id(out.addrs.len())?;
            for a in p.addresses.iter().filter_map(|&a| F::from_ip(a)) {
                out.addrs.push(a);
                out.pool_of.push(pool);
            }
            out.ids.push(start..local_id(out.addrs.len())?);
            out.in_use.push(AtomicU64::new(0));
        }
        out.by_addr = (0u16..).zip(&out.addrs).map(|(id, &a)| (a, id)).collect();
        out.by_addr.sort_unstable();
        Ok(out)
    }

    /// The local id of `addr`, if it is a pool address.
    #[inline]
    pub fn id_of(&self, addr: F::Addr) -> Option<u16> {
        self.by_addr
            .binary_search_by_key(&addr, |&(a, _)| a)
            .ok()
            .map(|i| self.by_addr[i].1)
    }

    /// Whether `addr`:`port` is a local endpoint xvs hands out: a pool address, at a port of its
    /// pool's range (the box's own connections from a pool address use other ports).
    #[inline]
    pub fn is_pool_endpoint(&self, addr: F::Addr, port: u16) -> bool {
        self.id_of(addr).is_some_and(|id| {
            let p = &self.pools[usize::from(self.pool_of[usize::from(id)])];
            (p.first_port..=p.last_port).contains(&port)
        })
    }

    /// Ports of pool `pool` in use now.
    pub fn ports_in_use(&self, pool: usize) -> u64 {
        self.in_use
            .get(pool)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Ports each address of pool `pool` offers (`last - first + 1`).
    pub fn ports_per_address(&self, pool: usize) -> u64 {
        self.pools
            .get(pool)
            .map_or(0, |p| u64::from(p.last_port - p.first_port) + 1)
    }
}

/// The shard (of `shards`, a power of two) that holds the connection whose local endpoint is
/// `port` on a pool address (either family).
#[inline]
pub fn shard_of_reply(port: u16, shards: usize) -> usize {
    usize::from(port) & (shards - 1)
}

/// A FIFO ring of free ports, allocated once.
#[derive(Debug)]
struct PortRing {
    buf: Box<[u16]>,
    head: usize,
    len: usize,
}

impl PortRing {
    fn full_of(ports: impl Iterator<Item = u16>) -> PortRing {
        let buf: Box<[u16]> = ports.collect();
        let len = buf.len();
        PortRing { buf, head: 0, len }
    }

    /// Takes `port` out of the ring, wherever it is (the head's port moves to its place: the
    /// FIFO order of the others is kept but for that one). Returns whether it was there.
    fn take(&mut self, port: u16) -> bool {
        let n = self.buf.len();
        let Some(i) = (0..self.len).find(|i| self.buf[(self.head + i) % n] == port) else {
            return false;
        };
        self.buf[(self.head + i) % n] = self.buf[self.head];
        self.head = (self.head + 1) % n;
        self.len -= 1;
        true
    }

    fn pop(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(p)
    }

    /// Returns a port. Never overflows: only ports popped from this ring come back.
    fn push(&mut self, port: u16) {
        if self.len == self.buf.len() {
            debug_assert!(false, "port {port} released twice");
            return;
        }
        let tail = (self.head + self.len) % self.buf.len();
        self.buf[tail] = port;
        self.len += 1;
    }
}

/// One shard's share of every pool: a ring per local id and a round-robin cursor per pool.
#[derive(Debug, Default)]
pub struct ShardPorts {
    rings: Vec<PortRing>,
    cursors: Vec<u16>,
    /// This shard's index and the table's shard count (the ports `p` with
    /// `p mod shards == shard` are this shard's).
    shard: usize,
    shards: usize,
}

/// Why [`ShardPorts::reserve`] refused a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// The local id is unknown, or the port is outside its pool's range.
    #[error("local port not in the pool")]
    NotInPool,
    /// The port is in the pool but another shard's (the peer's table has another shard count:
    /// FULLNAT sync needs the same `conntrack.max_entries` on both boxes).
    #[error("local port belongs to another shard (different conntrack.max_entries on the peer?)")]
    OtherShard,
    /// The port is held by another connection.
    #[error("local port in use")]
    Taken,
}

impl ShardPorts {
    /// Shard `shard` of `shards`: the ports `p` with `p mod shards == shard` of every address.
    pub fn new<F: Family>(pools: &LocalPools<F>, shard: usize, shards: usize) -> ShardPorts {
        let rings = pools
            .pool_of
            .iter()
            .map(|&pi| {
                let p = &pools.pools[usize::from(pi)];
                // The first port of the range in this shard, then every `shards`-th one.
                let skip = (shard + shards - usize::from(p.first_port) % shards) % shards;
                PortRing::full_of((p.first_port..=p.last_port).skip(skip).step_by(shards))
            })
            .collect();
        ShardPorts {
            rings,
            cursors: vec![0; pools.pools.len()],
            shard,
            shards,
        }
    }

    /// Takes port `port` of local id `id` (one of this shard's ports, free) as allocated.
    pub fn reserve<F: Family>(
        &mut self,
        pools: &LocalPools<F>,
        id: u16,
        port: u16,
    ) -> Result<(), ReserveError> {
        let pool = *pools
            .pool_of
            .get(usize::from(id))
            .ok_or(ReserveError::NotInPool)?;
        let p = &pools.pools[usize::from(pool)];
        if !(p.first_port..=p.last_port).contains(&port) {
            return Err(ReserveError::NotInPool);
        }
        if shard_of_reply(port, self.shards.max(1)) != self.shard {
            return Err(ReserveError::OtherShard);
        }
        let ring = self
            .rings
            .get_mut(usize::from(id))
            .ok_or(ReserveError::NotInPool)?;
        if !ring.take(port) {
            return Err(ReserveError::Taken);
        }
        pools.in_use[usize::from(pool)].fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes allocated for the rings.
    pub fn allocated_bytes(&self) -> usize {
        self.rings.iter().map(|r| r.buf.len() * 2).sum::<usize>() + self.cursors.len() * 2
    }

    /// A free (local id, port) of pool `pool`, taking the pool's addresses in turn; `None` when
    /// this shard's share of the pool is used up.
    pub fn alloc<F: Family>(&mut self, pools: &LocalPools<F>, pool: u16) -> Option<(u16, u16)> {
        let ids = pools.ids.get(usize::from(pool))?.clone();
        let n = ids.end - ids.start;
        let cursor = self.cursors.get_mut(usize::from(pool))?;
        for k in 0..n {
            let id = ids.start + (*cursor + k) % n;
            if let Some(port) = self.rings[usize::from(id)].pop() {
                *cursor = (*cursor + k + 1) % n;
                pools.in_use[usize::from(pool)].fetch_add(1, Ordering::Relaxed);
                return Some((id, port));
            }
        }
        None
    }

    /// Returns `port` of local id `id`.
    pub fn release<F: Family>(&mut self, pools: &LocalPools<F>, id: u16, port: u16) {
        if let Some(r) = self.rings.get_mut(usize::from(id)) {
            r.push(port);
            let pool = usize::from(pools.pool_of[usize::from(id)]);
            pools.in_use[pool].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Free ports of local id `id` in this shard.
    pub fn free(&self, id: u16) -> usize {
        self.rings.get(usize::from(id)).map_or(0, |r| r.len)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pools(first: u16, last: u16, addrs: &[&str]) -> LocalPools {
        LocalPools::<V4>::new(&[LocalPool {
            name: "p".into(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            first_port: first,
            last_port: last,
        }])
        .unwrap()
    }

    #[test]
    fn more_addresses_than_local_ids_is_an_error() {
        let n = usize::from(NO_LOCAL);
        let addresses: Vec<Ipv4Addr> = (0..n)
            .map(|i| Ipv4Addr::from_bits(0xc612_0000 + u32::try_from(i).unwrap()))
            .collect();
        let pool = |addresses: &[Ipv4Addr]| LocalPool {
            name: "p".into(),
            addresses: addresses.iter().map(|&a| a.into()).collect(),
            first_port: 1024,
            last_port: 1024,
        };
        assert_eq!(
            LocalPools::<V4>::new(&[pool(&addresses)]).err(),
            Some(TooManyLocalAddresses {
                addresses: n,
                pools: 1
            })
        );
        // Split over two pools, or one fewer: the last id below NO_LOCAL is the limit.
        let (a, b) = addresses.split_at(100);
        assert!(LocalPools::<V4>::new(&[pool(a), pool(b)]).is_err());
        let p = LocalPools::<V4>::new(&[pool(&addresses[..n - 1])]).unwrap();
        assert_eq!(p.id_of(addresses[n - 2].to_bits()), Some(NO_LOCAL - 2));
    }

    #[test]
    fn id_of_finds_every_address_of_every_pool_and_nothing_else() {
        let mk = |name: &str, addrs: &[Ipv4Addr]| LocalPool {
            name: name.into(),
            addresses: addrs.iter().map(|&a| a.into()).collect(),
            first_port: 20000,
            last_port: 20099,
        };
        // Addresses given out of order, over two pools.
        let a: Vec<Ipv4Addr> = (0..40u8)
            .rev()
            .map(|i| Ipv4Addr::new(198, 18, 1, 100 + i))
            .collect();
        let b: Vec<Ipv4Addr> = (0..10u8)
            .map(|i| Ipv4Addr::new(198, 18, 3, 250 - i))
            .collect();
        let p = LocalPools::<V4>::new(&[mk("a", &a), mk("b", &b)]).unwrap();
        for (id, addr) in a.iter().chain(&b).enumerate() {
            assert_eq!(p.id_of(addr.to_bits()), Some(id as u16), "{addr}");
        }
        for other in ["198.18.1.99", "198.18.1.140", "198.18.3.240", "0.0.0.0"] {
            let other: Ipv4Addr = other.parse().unwrap();
            assert_eq!(p.id_of(other.to_bits()), None, "{other}");
        }
        assert_eq!(LocalPools::<V4>::new(&[]).unwrap().id_of(0), None);
    }

    #[test]
    fn pool_endpoints_are_pool_addresses_at_ports_of_their_own_pool() {
        let p = LocalPools::<V4>::new(&[
            LocalPool {
                name: "a".into(),
                addresses: vec!["198.18.1.2".parse().unwrap()],
                first_port: 1000,
                last_port: 1099,
            },
            LocalPool {
                name: "b".into(),
                addresses: vec!["198.18.1.3".parse().unwrap()],
                first_port: 5000,
                last_port: 5000,
            },
        ])
        .unwrap();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap().to_bits();
        assert!(p.is_pool_endpoint(a("198.18.1.2"), 1000));
        assert!(p.is_pool_endpoint(a("198.18.1.2"), 1099));
        assert!(!p.is_pool_endpoint(a("198.18.1.2"), 1100));
        assert!(!p.is_pool_endpoint(a("198.18.1.2"), 5000));
        assert!(p.is_pool_endpoint(a("198.18.1.3"), 5000));
        assert!(!p.is_pool_endpoint(a("198.18.1.3"), 1000));
        assert!(!p.is_pool_endpoint(a("198.18.1.4"), 1000));
    }

    #[test]
    fn shards_split_the_ports_by_residue_and_together_cover_the_range() {
        let p = pools(1000, 1099, &["198.18.1.2"]);
        let mut seen = std::collections::HashSet::new();
        for s in 0..4 {
            let mut sp = ShardPorts::new(&p, s, 4);
            while let Some((id, port)) = sp.alloc(&p, 0) {
                assert_eq!(id, 0);
                assert_eq!(shard_of_reply(port, 4), s);
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(p.ports_in_use(0), 100);
    }

    #[test]
    fn addresses_take_turns_and_released_ports_come_back_last() {
        let p = pools(2000, 2002, &["198.18.1.2", "198.18.1.3"]);
        let mut sp = ShardPorts::new(&p, 0, 1);
        let got: Vec<_> = (0..6).map(|_| sp.alloc(&p, 0).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                (0, 2000),
                (1, 2000),
                (0, 2001),
                (1, 2001),
                (0, 2002),
                (1, 2002)
            ]
        );
        assert_eq!(sp.alloc(&p, 0), None, "exhausted");
        sp.release(&p, 1, 2001);
        assert_eq!(p.ports_in_use(0), 5);
        assert_eq!(sp.alloc(&p, 0), Some((1, 2001)));
        assert_eq!(sp.alloc(&p, 0), None);
    }

    #[test]
    fn reserve_takes_exactly_that_port_and_refuses_taken_foreign_and_out_of_range_ones() {
        let p = pools(1000, 1015, &["198.18.1.2"]);
        let mut s1 = ShardPorts::new(&p, 1, 4);
        assert_eq!(s1.reserve(&p, 0, 1009), Ok(()));
        assert_eq!(p.ports_in_use(0), 1);
        assert_eq!(s1.reserve(&p, 0, 1009), Err(ReserveError::Taken));
        assert_eq!(s1.reserve(&p, 0, 1010), Err(ReserveError::OtherShard));
        assert_eq!(s1.reserve(&p, 0, 1016), Err(ReserveError::NotInPool));
        assert_eq!(s1.reserve(&p, 0, 999), Err(ReserveError::NotInPool));
        assert_eq!(s1.reserve(&p, 7, 1009), Err(ReserveError::NotInPool));
        // The shard's other ports are still handed out, never the reserved one.
        let got: Vec<u16> = std::iter::from_fn(|| s1.alloc(&p, 0).map(|(_, port)| port)).collect();
        assert_eq!(got, [1005, 1001, 1013]);
        assert_eq!(p.ports_in_use(0), 4);
        // Released, it comes back like any other.
        s1.release(&p, 0, 1009);
        assert_eq!(s1.alloc(&p, 0), Some((0, 1009)));
        assert_eq!(s1.alloc(&p, 0), None);
    }

    #[test]
    fn unknown_pool_allocates_nothing() {
        let p = pools(1, 10, &["198.18.1.2"]);
        let mut sp = ShardPorts::new(&p, 0, 1);
        assert_eq!(sp.alloc(&p, 7), None);
    }

    #[test]
    fn each_family_numbers_its_own_addresses_and_keeps_the_pool_indices() {
        use crate::conntrack::family::V6;
        let mk = |name: &str, addrs: &[&str]| LocalPool {
            name: name.into(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            first_port: 3000,
            last_port: 3009,
        };
        let list = [
            mk("a4", &["198.18.1.2"]),
            mk("b6", &["2001:2:0:2::2", "2001:2:0:2::3"]),
        ];
        let p4 = LocalPools::<V4>::new(&list).unwrap();
        let p6 = LocalPools::<V6>::new(&list).unwrap();
        assert_eq!((p4.addrs.len(), p6.addrs.len()), (1, 2));
        assert_eq!((p4.pools.len(), p6.pools.len()), (2, 2));
        assert_eq!(p6.ids, [0..0, 0..2]);
        let a6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().to_bits();
        assert_eq!(p6.id_of(a6("2001:2:0:2::3")), Some(1));
        assert!(p6.is_pool_endpoint(a6("2001:2:0:2::2"), 3009));
        assert!(!p6.is_pool_endpoint(a6("2001:2:0:2::2"), 3010));
        assert_eq!(p6.id_of(a6("2001:2:0:2::4")), None);
        // The IPv4 pool hands out nothing from the IPv6 table, the IPv6 pool everything.
        let mut sp = ShardPorts::new(&p6, 0, 1);
        assert_eq!(sp.alloc(&p6, 0), None);
        let got: Vec<_> = (0..20).map_while(|_| sp.alloc(&p6, 1)).collect();
        assert_eq!(got.len(), 20);
        assert_eq!(p6.ports_in_use(1), 20);
        assert_eq!(p4.ports_in_use(1), 0);
    }
}
