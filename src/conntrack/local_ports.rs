//! FULLNAT local address:port allocation (`local_addresses` pools).
//!
//! A FULLNAT connection gets a source endpoint (local address, local port) of its service's pool;
//! replies come back to that endpoint, so it must be unique among live connections and it must
//! lead the reply lookup to the shard that holds the connection.
//!
//! Invariants:
//! - The pools are fixed when the table is built (changing `local_addresses` needs a restart).
//!   Every pool address gets a global **local id** (its position in [`LocalPools::addrs`]).
//! - Shard `s` of a table of `n` shards owns exactly the ports `p` of each pool address with
//!   `p mod n == s`, as a FIFO ring of free ports allocated once at construction. A connection
//!   lives in the shard of its client endpoint, and takes its local port from that shard's
//!   rings, so the reply (destination = local address:port) finds the shard from the port alone
//!   ([`LocalPools::shard_of_reply`]).
//! - Allocation and release happen under the shard's lock, inside the connection-table operation
//!   that inserts or removes the entry: no extra lock, no allocation, and a port can never be
//!   handed out twice, whichever worker asks (each port belongs to one shard's ring, and a
//!   popped port is only pushed back when the entry holding it is removed — expiry, eviction,
//!   `remove_real` or a reopening SYN).
//! - FIFO reuse: a released port goes to the back of its ring, so it is reused as late as
//!   possible (the real server may still hold the previous connection in TIME_WAIT).
//! - A pool's capacity is split evenly across the shards; a shard whose share of the pool is
//!   used up refuses the new flow (the caller counts `local_ports_exhausted`), even if another
//!   shard still has free ports. Clients hash evenly over the shards, so this only matters when a
//!   pool is nearly full.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A FULLNAT source pool as the connection table sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPool {
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
    /// First and last source port, inclusive (1 ≤ first ≤ last).
    pub first_port: u16,
    pub last_port: u16,
}

/// "No local endpoint": the entry is not FULLNAT.
pub const NO_LOCAL: u16 = u16::MAX;

/// Every pool and its addresses, shared (read-only) by all shards.
#[derive(Debug, Default)]
pub struct LocalPools {
    pub pools: Vec<LocalPool>,
    /// Every pool address as a `u32`, indexed by local id.
    pub addrs: Vec<u32>,
    /// `(address, local id)` sorted by address: the per-packet lookup ([`LocalPools::id_of`])
    /// is a binary search, whatever the number of pool addresses.
    by_addr: Vec<(u32, u16)>,
    /// Pool index of each local id.
    pub pool_of: Vec<u16>,
    /// For each pool, its local ids (a contiguous range of `addrs`).
    pub ids: Vec<std::ops::Range<u16>>,
    /// Ports in use per pool (a gauge: incremented and decremented under shard locks).
    pub in_use: Vec<AtomicU64>,
}

/// The pools hold more addresses than there are local ids (or more pools than pool indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{addresses} local addresses in {pools} pools; at most {max} addresses are supported", max = NO_LOCAL - 1)]
pub struct TooManyLocalAddresses {
    pub addresses: usize,
    pub pools: usize,
}

impl LocalPools {
    /// The pools, their addresses numbered by local id in order (at most `NO_LOCAL - 1` of
    /// them, so every id and the end of every id range is below [`NO_LOCAL`]).
    pub fn new(pools: &[LocalPool]) -> Result<LocalPools, TooManyLocalAddresses> {
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
            for a in &p.addresses {
                out.addrs.push(a.to_bits());
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
    pub fn id_of(&self, addr: u32) -> Option<u16> {
        self.by_addr
            .binary_search_by_key(&addr, |&(a, _)| a)
            .ok()
            .map(|i| self.by_addr[i].1)
    }

    /// Whether `addr`:`port` is a local endpoint xvs hands out: a pool address, at a port of its
    /// pool's range (the box's own connections from a pool address use other ports).
    #[inline]
    pub fn is_pool_endpoint(&self, addr: u32, port: u16) -> bool {
        self.id_of(addr).is_some_and(|id| {
            let p = &self.pools[usize::from(self.pool_of[usize::from(id)])];
            (p.first_port..=p.last_port).contains(&port)
        })
    }

    /// The shard (of `shards`, a power of two) that holds the connection whose local endpoint
    /// is `port` on a pool address.
    #[inline]
    pub fn shard_of_reply(port: u16, shards: usize) -> usize {
        usize::from(port) & (shards - 1)
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
}

impl ShardPorts {
    /// Shard `shard` of `shards`: the ports `p` with `p mod shards == shard` of every address.
    pub fn new(pools: &LocalPools, shard: usize, shards: usize) -> ShardPorts {
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
        }
    }

    /// Bytes allocated for the rings.
    pub fn allocated_bytes(&self) -> usize {
        self.rings.iter().map(|r| r.buf.len() * 2).sum::<usize>() + self.cursors.len() * 2
    }

    /// A free (local id, port) of pool `pool`, taking the pool's addresses in turn; `None` when
    /// this shard's share of the pool is used up.
    pub fn alloc(&mut self, pools: &LocalPools, pool: u16) -> Option<(u16, u16)> {
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
    pub fn release(&mut self, pools: &LocalPools, id: u16, port: u16) {
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

    fn pools(first: u16, last: u16, addrs: &[&str]) -> LocalPools {
        LocalPools::new(&[LocalPool {
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
            addresses: addresses.to_vec(),
            first_port: 1024,
            last_port: 1024,
        };
        assert_eq!(
            LocalPools::new(&[pool(&addresses)]).err(),
            Some(TooManyLocalAddresses {
                addresses: n,
                pools: 1
            })
        );
        // Split over two pools, or one fewer: the last id below NO_LOCAL is the limit.
        let (a, b) = addresses.split_at(100);
        assert!(LocalPools::new(&[pool(a), pool(b)]).is_err());
        let p = LocalPools::new(&[pool(&addresses[..n - 1])]).unwrap();
        assert_eq!(p.id_of(addresses[n - 2].to_bits()), Some(NO_LOCAL - 2));
    }

    #[test]
    fn id_of_finds_every_address_of_every_pool_and_nothing_else() {
        let mk = |name: &str, addrs: &[Ipv4Addr]| LocalPool {
            name: name.into(),
            addresses: addrs.to_vec(),
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
        let p = LocalPools::new(&[mk("a", &a), mk("b", &b)]).unwrap();
        for (id, addr) in a.iter().chain(&b).enumerate() {
            assert_eq!(p.id_of(addr.to_bits()), Some(id as u16), "{addr}");
        }
        for other in ["198.18.1.99", "198.18.1.140", "198.18.3.240", "0.0.0.0"] {
            let other: Ipv4Addr = other.parse().unwrap();
            assert_eq!(p.id_of(other.to_bits()), None, "{other}");
        }
        assert_eq!(LocalPools::new(&[]).unwrap().id_of(0), None);
    }

    #[test]
    fn pool_endpoints_are_pool_addresses_at_ports_of_their_own_pool() {
        let p = LocalPools::new(&[
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
                assert_eq!(LocalPools::shard_of_reply(port, 4), s);
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
    fn unknown_pool_allocates_nothing() {
        let p = pools(1, 10, &["198.18.1.2"]);
        let mut sp = ShardPorts::new(&p, 0, 1);
        assert_eq!(sp.alloc(&p, 7), None);
    }
}
