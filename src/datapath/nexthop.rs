//! Where a rewritten packet goes next: the route (egress port and gateway) and the next hop's
//! MAC address.
//!
//! The control plane fills a [`NextHopTable`] from the kernel (netlink routes and neighbours) and
//! swaps it in whole; workers load it once per batch and only read it. When a next hop's MAC is
//! unknown the worker posts the address on a bounded queue (no allocation) so that the control
//! plane asks the kernel to resolve it, and holds the frame until the table changes (see
//! `worker`); the control plane applies the kernel's neighbour events to a copy of the table
//! and swaps that in. Every table has a [`version`](NextHopTable::version), new for every
//! table built or changed, so a worker sees at a glance that it may retry.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;

use crate::datapath::lookup::{WordKey, WordMap};
use crate::datapath::{DropReason, PortId};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// One route through an attached port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Network address (host bits zero).
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub port: PortId,
    /// Next-hop router, or `None` for an on-link destination.
    pub gateway: Option<IpAddr>,
}

impl Route {
    /// Whether `addr` falls inside this route's prefix.
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.prefix, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let len = u32::from(self.prefix_len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let len = u32::from(self.prefix_len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Where to send a packet: egress port, the MAC to put in the destination field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: PortId,
    pub mac: Mac,
}

/// Why no next hop was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHopError {
    NoRoute,
    /// The route is known but this neighbour's MAC is not.
    NoNeighbour(IpAddr),
    /// The destination had to be on a directly connected network (DR) but its route has a
    /// gateway.
    NotOnLink,
}

impl NextHopError {
    pub fn drop_reason(self) -> DropReason {
        match self {
            NextHopError::NoRoute => DropReason::NoRoute,
            NextHopError::NoNeighbour(_) => DropReason::NoNeighbour,
            NextHopError::NotOnLink => DropReason::DrNotOnLink,
        }
    }
}

/// A neighbour's key: its port and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NeighbourKey(PortId, IpAddr);

/// Hashed as few words as the address allows (IPv4: port and address in one): the lookup is on
/// every forwarded packet's path, and a derived hash feeds the hasher field by field (the
/// port, the address's discriminant, its bits). Equal keys hash alike.
impl Hash for NeighbourKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let port = u64::from(self.0);
        match self.1 {
            IpAddr::V4(a) => state.write_u64((port << 32) | u64::from(a.to_bits())),
            IpAddr::V6(a) => {
                state.write_u128(a.to_bits());
                state.write_u64(port | 1 << 8);
            }
        }
    }
}

/// A route as the packet path matches it: the prefix and mask as numbers made once, when the
/// table is built (IPv4 in the low 32 bits; `v6` says the family).
#[derive(Clone, Copy, Debug, Default)]
struct Matcher {
    v6: bool,
    prefix: u128,
    mask: u128,
    /// The route's gateway as [`addr_bits`] gives it.
    gateway: Option<(bool, u128)>,
}

impl Matcher {
    fn new(r: &Route) -> Matcher {
        let (v6, bits, width) = match r.prefix {
            IpAddr::V4(p) => (false, u128::from(p.to_bits()), 32),
            IpAddr::V6(p) => (true, p.to_bits(), 128),
        };
        let len = u32::from(r.prefix_len).min(width);
        let ones = |n: u32| match n {
            0 => 0,
            n => u128::MAX >> (128 - n),
        };
        // The top `len` bits of the family's `width`.
        let mask = ones(width) & !ones(width - len);
        Matcher {
            v6,
            prefix: bits & mask,
            mask,
            gateway: r.gateway.map(addr_bits),
        }
    }

    /// Whether the address (`v6`, `bits` as [`addr_bits`] gives them) is inside the prefix.
    #[inline(always)]
    fn contains(&self, v6: bool, bits: u128) -> bool {
        self.v6 == v6 && bits & self.mask == self.prefix
    }
}

/// The address of [`addr_bits`]' (`v6`, `bits`).
#[cold]
fn ip_of(v6: bool, bits: u128) -> IpAddr {
    match v6 {
        true => IpAddr::V6(std::net::Ipv6Addr::from_bits(bits)),
        // An IPv4 address's bits are its low 32 (`addr_bits`); the truncation keeps them.
        #[allow(clippy::cast_possible_truncation)]
        false => IpAddr::V4(std::net::Ipv4Addr::from_bits(bits as u32)),
    }
}

/// An address as (is IPv6, its bits).
#[inline(always)]
fn addr_bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u128::from(a.to_bits())),
        IpAddr::V6(a) => (true, a.to_bits()),
    }
}

/// Routes (longest prefix first) and neighbours of the attached ports.
///
/// Invariants: `matchers[i]` is `routes[i]`'s prefix and mask; `fast` holds exactly the
/// entries of `neighbours` (rebuilt with every change), keyed by [`neighbour_word`]. The packet
/// path reads only `matchers`, `routes` and `fast`.
#[derive(Clone, Debug, Default)]
pub struct NextHopTable {
    routes: Vec<Route>,
    matchers: Vec<Matcher>,
    neighbours: HashMap<NeighbourKey, Mac, ahash::RandomState>,
    fast: WordMap<Option<Mac>>,
    version: u64,
}

/// The lookup key of neighbour `ip` on `port`.
#[inline(always)]
fn neighbour_word(port: PortId, ip: IpAddr) -> WordKey {
    WordKey::new(ip, u32::from(port))
}

/// The packet path's map of `neighbours`.
fn fast_neighbours(
    neighbours: &HashMap<NeighbourKey, Mac, ahash::RandomState>,
) -> WordMap<Option<Mac>> {
    WordMap::build(
        (neighbours.iter())
            .map(|(NeighbourKey(port, ip), mac)| (neighbour_word(*port, *ip), Some(*mac))),
    )
}

/// A version no table had before (process-wide; 0 is the empty default table's).
fn next_version() -> u64 {
    static VERSIONS: AtomicU64 = AtomicU64::new(1);
    VERSIONS.fetch_add(1, Ordering::Relaxed)
}

impl NextHopTable {
    /// Builds a table; routes are sorted longest prefix first (ties keep their order).
    pub fn new(
        mut routes: Vec<Route>,
        neighbours: impl IntoIterator<Item = (PortId, IpAddr, Mac)>,
    ) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix_len));
        let neighbours = neighbours
            .into_iter()
            .map(|(port, ip, mac)| (NeighbourKey(port, ip), mac))
            .collect();
        NextHopTable {
            matchers: routes.iter().map(Matcher::new).collect(),
            routes,
            fast: fast_neighbours(&neighbours),
            neighbours,
            version: next_version(),
        }
    }

    /// Identifies this table's contents: every table [`new`](Self::new) builds and every change
    /// ([`set_neighbour`](Self::set_neighbour)) gets a version no earlier table had (a clone
    /// keeps it, having the same contents).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Sets (`Some`) or removes (`None`) the MAC of neighbour `ip` on `port`. Returns whether the
    /// table changed; if so it has a new [`version`](Self::version).
    pub fn set_neighbour(&mut self, port: PortId, ip: IpAddr, mac: Option<Mac>) -> bool {
        let changed = match mac {
            Some(mac) => self.neighbours.insert(NeighbourKey(port, ip), mac) != Some(mac),
            None => self.neighbours.remove(&NeighbourKey(port, ip)).is_some(),
        };
        if changed {
            self.fast = fast_neighbours(&self.neighbours);
            self.version = next_version();
        }
        changed
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn neighbour_count(&self) -> usize {
        self.neighbours.len()
    }

    /// The longest-prefix route to `dst`.
    #[inline]
    pub fn route(&self, dst: IpAddr) -> Option<&Route> {
        let (v6, bits) = addr_bits(dst);
        let i = self.matchers.iter().position(|m| m.contains(v6, bits))?;
        self.routes.get(i)
    }

    /// The MAC of `ip` as a neighbour on `port`.
    #[inline]
    pub fn neighbour(&self, port: PortId, ip: IpAddr) -> Option<Mac> {
        self.fast.get(neighbour_word(port, ip)).flatten()
    }

    /// Route and neighbour lookup for a packet to `dst`.
    #[inline]
    pub fn resolve(&self, dst: IpAddr) -> Result<NextHop, NextHopError> {
        self.resolve_with(dst, false)
    }

    /// [`resolve`](Self::resolve) for a destination that must be its own next hop (DR: the frame
    /// keeps the VIP as its destination, so a gateway would route it back): a route with a
    /// gateway is [`NextHopError::NotOnLink`]. One route lookup either way. Inlined into the
    /// packet path's route step, so that the next hop stays in registers (returned through
    /// memory, it was written byte by byte and read back wider: a store-forwarding stall).
    #[inline(always)]
    pub fn resolve_with(&self, dst: IpAddr, on_link_only: bool) -> Result<NextHop, NextHopError> {
        // Everything from here works on the address's bits, in registers: an `IpAddr` passed
        // on by value is copied through memory and read back wider (a store-forwarding stall).
        let (v6, bits) = addr_bits(dst);
        let i = (self.matchers.iter())
            .position(|m| m.contains(v6, bits))
            .ok_or(NextHopError::NoRoute)?;
        let (Some(m), Some(route)) = (self.matchers.get(i), self.routes.get(i)) else {
            return Err(NextHopError::NoRoute);
        };
        if on_link_only && m.gateway.is_some() {
            return Err(NextHopError::NotOnLink);
        }
        let (hop_v6, hop) = m.gateway.unwrap_or((v6, bits));
        let key = WordKey::from_bits(hop_v6, hop, u32::from(route.port));
        match self.fast.get(key).flatten() {
            Some(mac) => Ok(NextHop {
                port: route.port,
                mac,
            }),
            None => Err(NextHopError::NoNeighbour(ip_of(hop_v6, hop))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_gateway_is_resolved() {
        let t = NextHopTable::new(
            vec![
                Route {
                    prefix: ip("0.0.0.0"),
                    prefix_len: 0,
                    port: 0,
                    gateway: Some(ip("198.18.0.254")),
                },
                Route {
                    prefix: ip("198.18.1.0"),
                    prefix_len: 24,
                    port: 1,
                    gateway: None,
                },
                Route {
                    prefix: ip("198.18.0.0"),
                    prefix_len: 24,
                    port: 0,
                    gateway: None,
                },
            ],
            vec![
                (1, ip("198.18.1.11"), [2, 0, 0, 0, 1, 11]),
                (0, ip("198.18.0.254"), [2, 0, 0, 0, 0, 254]),
            ],
        );
        assert_eq!(
            t.resolve(ip("198.18.1.11")),
            Ok(NextHop {
                port: 1,
                mac: [2, 0, 0, 0, 1, 11]
            })
        );
        assert_eq!(
            t.resolve(ip("203.0.113.9")),
            Ok(NextHop {
                port: 0,
                mac: [2, 0, 0, 0, 0, 254]
            })
        );
        assert_eq!(
            t.resolve(ip("198.18.1.12")),
            Err(NextHopError::NoNeighbour(ip("198.18.1.12")))
        );
        // A neighbour known on another port does not count.
        assert_eq!(
            t.resolve(ip("198.18.0.5")),
            Err(NextHopError::NoNeighbour(ip("198.18.0.5")))
        );
        // On-link only (DR): the connected route resolves as before, the gateway route is
        // refused whether or not the gateway's MAC is known.
        assert_eq!(
            t.resolve_with(ip("198.18.1.11"), true),
            t.resolve(ip("198.18.1.11"))
        );
        assert_eq!(
            t.resolve_with(ip("203.0.113.9"), true),
            Err(NextHopError::NotOnLink)
        );
        assert_eq!(
            NextHopError::NotOnLink.drop_reason(),
            DropReason::DrNotOnLink
        );
    }

    /// Only 198.18.1.0/24 on port 1, no neighbour.
    fn lan_only() -> NextHopTable {
        NextHopTable::new(
            vec![Route {
                prefix: ip("198.18.1.0"),
                prefix_len: 24,
                port: 1,
                gateway: None,
            }],
            vec![],
        )
    }

    #[test]
    fn set_neighbour_changes_the_table_and_its_version() {
        let mut t = lan_only();
        let other = NextHopTable::new(Vec::new(), Vec::new());
        assert_ne!(t.version(), other.version());
        let v0 = t.version();
        let dst = ip("198.18.1.11");
        assert_eq!(t.resolve(dst), Err(NextHopError::NoNeighbour(dst)));
        let mac = [2, 0, 0, 0, 1, 11];
        assert!(t.set_neighbour(1, dst, Some(mac)));
        let v1 = t.version();
        assert_ne!(v1, v0);
        assert_eq!(t.resolve(dst), Ok(NextHop { port: 1, mac }));
        // The same MAC again is no change; a clone keeps the version.
        assert!(!t.set_neighbour(1, dst, Some(mac)));
        assert_eq!(t.version(), v1);
        assert_eq!(t.clone().version(), v1);
        // A new MAC and a removal are changes.
        assert!(t.set_neighbour(1, dst, Some([2, 0, 0, 0, 1, 12])));
        assert_ne!(t.version(), v1);
        let v2 = t.version();
        assert!(t.set_neighbour(1, dst, None));
        assert_ne!(t.version(), v2);
        assert_eq!(t.resolve(dst), Err(NextHopError::NoNeighbour(dst)));
        assert!(!t.set_neighbour(1, dst, None));
    }

    #[test]
    fn no_route_without_default() {
        let t = lan_only();
        assert_eq!(t.resolve(ip("198.18.2.1")), Err(NextHopError::NoRoute));
        assert_eq!(t.resolve(ip("::1")), Err(NextHopError::NoRoute));
    }
}

#[cfg(test)]
mod matcher_tests {
    use super::*;

    #[test]
    fn matchers_agree_with_route_contains() {
        let addrs: Vec<IpAddr> = [
            "198.18.0.1",
            "198.18.1.11",
            "198.19.255.255",
            "0.0.0.0",
            "255.255.255.255",
            "2001:2::1",
            "2001:2:0:1::11",
            "::",
            "::c612:1",
            "ffff::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for prefix in ["198.18.0.0", "198.18.1.0", "0.0.0.0", "2001:2::", "::"] {
            let prefix: IpAddr = prefix.parse().unwrap();
            for len in [0, 1, 8, 15, 16, 24, 31, 32, 48, 64, 127, 128, 200] {
                let r = Route {
                    prefix,
                    prefix_len: len,
                    port: 0,
                    gateway: None,
                };
                let m = Matcher::new(&r);
                for a in &addrs {
                    let (v6, bits) = addr_bits(*a);
                    assert_eq!(m.contains(v6, bits), r.contains(*a), "{prefix}/{len} {a}");
                }
            }
        }
    }
}
