//! Keeps the datapath's [`NextHopTable`] in step with the kernel.
//!
//! The table is built from the kernel's main routing table and neighbour cache (see
//! [`netlink`](super::netlink)), restricted to the interfaces the datapath is attached to. A
//! refresher thread keeps it current:
//!
//! - it **subscribes to the kernel's neighbour and route notifications**; a neighbour that
//!   appears, changes its MAC or goes away is applied to a copy of the table ([`apply`]), which
//!   is swapped in within about a millisecond of the kernel's own change; a route change makes it
//!   read everything again;
//! - it re-reads routes and neighbours in full every [`RESYNC_INTERVAL`] as a safety net (and at
//!   once when the kernel reports lost notifications); without a subscription (should the kernel
//!   refuse one) it polls every [`REFRESH_INTERVAL`] instead, as a fallback;
//! - workers that miss a neighbour post its address on a bounded queue (and hold the frame, see
//!   `datapath::worker`); the refresher asks the kernel to resolve it (at most once per address
//!   per [`SOLICIT_INTERVAL`]); the answer arrives as a notification, so the held frame leaves
//!   within milliseconds.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use hashbrown::HashMap;

use crate::control::netlink::{self, Change, KernelRoute, NetlinkError, Subscription};
use crate::datapath::{Mac, NextHopTable, Port, PortId, Route};
use crate::sys;

/// How often the refresher re-reads the whole table while it receives notifications.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);
/// How often the refresher rebuilds the table from the kernel when it has no subscription.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest time between two solicitations of the same address.
pub const SOLICIT_INTERVAL: Duration = Duration::from_millis(500);
/// Without a subscription: how soon after soliciting the refresher rebuilds (the answer usually
/// takes well under 1 ms).
const AFTER_SOLICIT: Duration = Duration::from_millis(20);
/// The refresher's tick: misses and the stop flag are checked this often (notifications are
/// handled as they arrive).
const TICK: Duration = Duration::from_millis(10);
/// After a table swap the refresher waits this long before it reads notifications again, so a
/// burst of them becomes one copy and one swap of the table (at most a thousand a second).
const SWAP_COALESCE: Duration = Duration::from_millis(1);
/// Bound on solicitations per tick, so a flood of misses cannot turn into a flood of requests.
const MAX_SOLICITS_PER_TICK: usize = 64;

type Neighbour = (PortId, IpAddr, Mac);

fn port_of(ports: &[Port], ifindex: u32) -> Option<PortId> {
    if ifindex == 0 {
        return None;
    }
    ports
        .iter()
        .position(|p| p.ifindex == ifindex)
        .and_then(|i| PortId::try_from(i).ok())
}

/// Zeroes the host bits of `addr` beyond `len`.
fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// The routes and neighbours of `ports`, from what the kernel reported. Pure, so it is unit
/// tested; routes keep the kernel's order, neighbours come out sorted.
pub fn select(
    ports: &[Port],
    routes: &[KernelRoute],
    neighbours: &[(u32, IpAddr, Mac)],
) -> (Vec<Route>, Vec<Neighbour>) {
    let routes = routes
        .iter()
        .filter_map(|r| {
            Some(Route {
                prefix: network(r.dst, r.prefix_len),
                prefix_len: r.prefix_len,
                port: port_of(ports, r.oif)?,
                gateway: r.gateway,
            })
        })
        .collect();
    let mut neigh: Vec<Neighbour> = neighbours
        .iter()
        .filter_map(|&(ifindex, ip, mac)| Some((port_of(ports, ifindex)?, ip, mac)))
        .collect();
    neigh.sort_unstable();
    neigh.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    (routes, neigh)
}

/// Whether `table` already holds exactly these routes and neighbours.
fn same_table(table: &NextHopTable, routes: &[Route], neighbours: &[Neighbour]) -> bool {
    let fresh = NextHopTable::new(routes.to_vec(), std::iter::empty());
    table.routes() == fresh.routes()
        && table.neighbour_count() == neighbours.len()
        && neighbours
            .iter()
            .all(|&(port, ip, mac)| table.neighbour(port, ip) == Some(mac))
}

fn read_kernel(ports: &[Port]) -> Result<(Vec<Route>, Vec<Neighbour>), NetlinkError> {
    let routes = netlink::dump_routes()?;
    let neighbours = netlink::dump_neighbours()?;
    Ok(select(ports, &routes, &neighbours))
}

/// What a batch of notifications asks of the table.
#[derive(Debug)]
pub struct Applied {
    /// The changed table (a copy of the one given, with a new version); `None`: no change.
    pub table: Option<NextHopTable>,
    /// Routes changed or notifications were lost: read the whole table again.
    pub resync: bool,
}

/// Applies `changes` (in order) to a copy of `table`: neighbours of the attached `ports` are set
/// or removed; neighbours of other interfaces are ignored. Pure, so it is unit tested.
pub fn apply(table: &NextHopTable, ports: &[Port], changes: &[Change]) -> Applied {
    let mut next: Option<NextHopTable> = None;
    let mut resync = false;
    for change in changes {
        match *change {
            Change::Neighbour { ifindex, ip, mac } => {
                let Some(port) = port_of(ports, ifindex) else {
                    continue;
                };
                if next.as_ref().unwrap_or(table).neighbour(port, ip) == mac {
                    continue;
                }
                next.get_or_insert_with(|| table.clone())
                    .set_neighbour(port, ip, mac);
            }
            Change::Routes | Change::Lost => resync = true,
        }
    }
    Applied {
        table: next,
        resync,
    }
}

/// Builds the next-hop table of `ports` (`PortId` = index in `ports`) from the kernel's main
/// routing table and neighbour cache, in the calling thread's network namespace.
pub fn build_table(ports: &[Port]) -> Result<NextHopTable, NetlinkError> {
    let (routes, neighbours) = read_kernel(ports)?;
    Ok(NextHopTable::new(routes, neighbours))
}

/// Where to solicit `addr` (a destination): the next hop of its route and that port's ifindex.
fn solicit_target(table: &NextHopTable, ports: &[Port], addr: IpAddr) -> Option<(IpAddr, u32)> {
    let route = table.route(addr)?;
    let hop = route.gateway.unwrap_or(addr);
    Some((hop, ports.get(usize::from(route.port))?.ifindex))
}

/// Per-address rate limit for solicitations.
struct Limiter {
    last: HashMap<IpAddr, Instant>,
    interval: Duration,
}

impl Limiter {
    fn new(interval: Duration) -> Self {
        Limiter {
            last: HashMap::new(),
            interval,
        }
    }

    /// Whether `addr` may be solicited at `now`; records it if so.
    fn allow(&mut self, addr: IpAddr, now: Instant) -> bool {
        match self.last.get(&addr) {
            Some(&t) if now.saturating_duration_since(t) < self.interval => false,
            _ => {
                self.last.insert(addr, now);
                true
            }
        }
    }

    /// Forgets addresses not solicited for a while (keeps the map bounded).
    fn prune(&mut self, now: Instant) {
        let keep = self.interval * 4;
        self.last
            .retain(|_, t| now.saturating_duration_since(*t) < keep);
    }
}

/// Tables replaced in the shared slot, kept until no worker holds them any more, so the last
/// reference (and the free of the table's memory) is dropped here, never on the packet path.
#[derive(Default)]
struct Retired(Vec<Arc<NextHopTable>>);

impl Retired {
    /// Puts `next` in `slot` and keeps the table it replaces.
    fn replace(&mut self, slot: &ArcSwap<NextHopTable>, next: NextHopTable) {
        self.0.push(slot.swap(Arc::new(next)));
    }

    /// Frees the tables only this list still holds.
    fn collect(&mut self) {
        self.0.retain(|t| Arc::strong_count(t) > 1);
    }
}

/// Logs a refresher error once, until the error changes or the refresher recovers.
#[derive(Default)]
struct ErrorLog(Option<String>);

impl ErrorLog {
    fn error(&mut self, what: &str, e: &NetlinkError) {
        let line = format!("{what}: {e}");
        if self.0.as_deref() != Some(line.as_str()) {
            log::error!("xvs: neighbours: {line}");
            self.0 = Some(line);
        }
    }

    fn ok(&mut self) {
        if self.0.take().is_some() {
            log::info!("xvs: neighbours: table refresh recovered");
        }
    }
}

/// Starts the refresher thread (named `xvs-neighbours`), in the calling thread's network
/// namespace. It applies the kernel's neighbour notifications to the table of `ports` in `table`
/// as they arrive, re-reads the whole table on a route change and every [`RESYNC_INTERVAL`]
/// (every [`REFRESH_INTERVAL`] when it cannot subscribe), and stores each changed table; it
/// drains `misses` (addresses whose next hop had no MAC, posted by the workers) and solicits each
/// next hop, at most once per address per [`SOLICIT_INTERVAL`]. It is the only writer of `table`
/// once started. It exits within a few milliseconds after `stop` is set. Errors are logged, never
/// fatal.
pub fn spawn_refresher(
    ports: Vec<Port>,
    table: Arc<ArcSwap<NextHopTable>>,
    misses: Arc<ArrayQueue<IpAddr>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xvs-neighbours".into())
        .spawn(move || refresher(&ports, &table, &misses, &stop))
}

/// Drains `misses` and solicits the next hop of each (at most [`MAX_SOLICITS_PER_TICK`], each
/// hop at most once per [`SOLICIT_INTERVAL`]); returns how many were solicited.
fn solicit_misses(
    current: &NextHopTable,
    ports: &[Port],
    misses: &ArrayQueue<IpAddr>,
    limiter: &mut Limiter,
    log: &mut ErrorLog,
    now: Instant,
) -> usize {
    let mut solicited = 0;
    while let Some(addr) = misses.pop() {
        if solicited >= MAX_SOLICITS_PER_TICK {
            continue; // drain anyway: they will be posted again if still missing
        }
        let Some((hop, ifindex)) = solicit_target(current, ports, addr) else {
            continue;
        };
        if !limiter.allow(hop, now) {
            continue;
        }
        solicited += 1;
        if let Err(e) = netlink::solicit(hop, ifindex) {
            log.error(&format!("solicit {hop}"), &e);
        }
    }
    solicited
}

fn refresher(
    ports: &[Port],
    table: &ArcSwap<NextHopTable>,
    misses: &ArrayQueue<IpAddr>,
    stop: &AtomicBool,
) {
    let mut limiter = Limiter::new(SOLICIT_INTERVAL);
    let mut log = ErrorLog::default();
    // Subscribed before the first full read below, so no change falls between the two.
    let mut subscription = match Subscription::open() {
        Ok(s) => Some(s),
        Err(e) => {
            log.error("cannot subscribe to neighbour changes; polling instead", &e);
            None
        }
    };
    let mut changes = Vec::new();
    let mut retired = Retired::default();
    let mut next_rebuild = Instant::now();
    let mut next_prune = Instant::now() + SOLICIT_INTERVAL * 8;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut swapped = false;
        if let Some(sub) = subscription.as_mut() {
            changes.clear();
            if let Err(e) = sub.read(&mut changes) {
                log.error("neighbour notifications failed; polling instead", &e);
                subscription = None;
                changes.push(Change::Lost);
            }
            // A notification queued before a full read is applied after it; it can only be as
            // old as that read, and the next notification or resync corrects it.
            let applied = apply(&table.load(), ports, &changes);
            if let Some(t) = applied.table {
                retired.replace(table, t);
                swapped = true;
            }
            if applied.resync {
                next_rebuild = now;
            }
        }
        let solicited = if misses.is_empty() {
            0
        } else {
            solicit_misses(&table.load(), ports, misses, &mut limiter, &mut log, now)
        };
        if solicited > 0 && subscription.is_none() {
            next_rebuild = next_rebuild.min(now + AFTER_SOLICIT);
        }
        if now >= next_rebuild {
            match read_kernel(ports) {
                Ok((routes, neighbours)) => {
                    log.ok();
                    if !same_table(&table.load(), &routes, &neighbours) {
                        retired.replace(table, NextHopTable::new(routes, neighbours));
                        swapped = true;
                    }
                }
                Err(e) => log.error("refresh", &e),
            }
            next_rebuild = now
                + if subscription.is_some() {
                    RESYNC_INTERVAL
                } else {
                    REFRESH_INTERVAL
                };
        }
        if now >= next_prune {
            limiter.prune(now);
            next_prune = now + SOLICIT_INTERVAL * 8;
        }
        retired.collect();
        match &subscription {
            Some(_) if swapped => std::thread::sleep(SWAP_COALESCE),
            Some(sub) => {
                let ms = i32::try_from(TICK.as_millis()).unwrap_or(i32::MAX);
                let mut fds = [libc::pollfd {
                    fd: sub.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                if let Err(e) = sys::poll(&mut fds, ms) {
                    log.error(
                        "wait for notifications",
                        &NetlinkError::Io {
                            op: "poll",
                            source: e,
                        },
                    );
                    std::thread::sleep(TICK);
                }
            }
            None => std::thread::sleep(TICK),
        }
    }
}

/// What [`prime`] achieved.
#[derive(Debug)]
pub struct Primed {
    /// The table as of the end of priming.
    pub table: NextHopTable,
    /// Addresses that still have no next hop MAC (no route through a port, or no answer).
    pub unresolved: Vec<IpAddr>,
}

/// Resolves the next hops of `addrs` (destinations, e.g. the real servers) before the datapath
/// starts: solicits each next hop (again every [`SOLICIT_INTERVAL`]) and waits until all resolve
/// or `timeout` passes. Never fails because a neighbour does not answer; see
/// [`Primed::unresolved`].
pub fn prime(ports: &[Port], addrs: &[IpAddr], timeout: Duration) -> Result<Primed, NetlinkError> {
    let deadline = Instant::now() + timeout;
    let mut limiter = Limiter::new(SOLICIT_INTERVAL);
    loop {
        let table = build_table(ports)?;
        let unresolved: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|&a| table.resolve(a).is_err())
            .collect();
        let now = Instant::now();
        if unresolved.is_empty() || now >= deadline {
            return Ok(Primed { table, unresolved });
        }
        for &a in &unresolved {
            if let Some((hop, ifindex)) = solicit_target(&table, ports, a) {
                if limiter.allow(hop, now) {
                    netlink::solicit(hop, ifindex)?;
                }
            }
        }
        std::thread::sleep(TICK.min(deadline.saturating_duration_since(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ports() -> Vec<Port> {
        vec![
            Port {
                name: "wan0".into(),
                ifindex: 2,
                mac: [2, 0x18, 0, 0, 0, 1],
                ipv4: None,
                ipv6: None,
                mtu: 1500,
            },
            Port {
                name: "lan0".into(),
                ifindex: 3,
                mac: [2, 0x18, 0, 1, 0, 1],
                ipv4: None,
                ipv6: None,
                mtu: 1500,
            },
        ]
    }

    fn kr(dst: &str, len: u8, oif: u32, gw: Option<&str>) -> KernelRoute {
        KernelRoute {
            dst: ip(dst),
            prefix_len: len,
            oif,
            gateway: gw.map(ip),
        }
    }

    #[test]
    fn select_keeps_only_attached_ports() {
        let routes = [
            kr("198.18.0.0", 24, 2, None),
            kr("198.18.1.0", 24, 3, None),
            kr("10.0.0.0", 8, 7, None), // another interface
            kr("0.0.0.0", 0, 2, Some("198.18.0.254")),
            kr("203.0.113.0", 24, 0, None), // no oif
        ];
        let mac = [2, 0x18, 0, 1, 0, 0xb];
        let neigh = [
            (3, ip("198.18.1.11"), mac),
            (7, ip("10.0.0.1"), [9; 6]),
            (3, ip("198.18.1.11"), mac), // duplicate
        ];
        let (r, n) = select(&ports(), &routes, &neigh);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].port, 1);
        assert_eq!(r[2].gateway, Some(ip("198.18.0.254")));
        assert_eq!(n, vec![(1, ip("198.18.1.11"), mac)]);

        let t = NextHopTable::new(r.clone(), n.clone());
        assert_eq!(t.resolve(ip("198.18.1.11")).unwrap().port, 1);
        assert_eq!(t.resolve(ip("198.18.1.11")).unwrap().mac, mac);
        assert!(same_table(&t, &r, &n));
        assert!(!same_table(&t, &r, &[]));
        assert!(!same_table(&t, &r[..2], &n));
        let other_mac = vec![(1, ip("198.18.1.11"), [1; 6])];
        assert!(!same_table(&t, &r, &other_mac));
    }

    #[test]
    fn a_neighbour_event_updates_the_table() {
        let (r, n) = select(&ports(), &[kr("198.18.0.0", 24, 2, None)], &[]);
        let table = NextHopTable::new(r, n);
        let client = ip("198.18.0.150");
        assert!(table.resolve(client).is_err());
        let mac = [2, 0x18, 0, 0, 0, 0x96];
        let learnt = |mac| Change::Neighbour {
            ifindex: 2,
            ip: client,
            mac,
        };
        // Learnt on an attached port: a new table (new version) that resolves the client.
        let a = apply(&table, &ports(), &[learnt(Some(mac))]);
        assert!(!a.resync);
        let t1 = a.table.expect("changed");
        assert_ne!(t1.version(), table.version());
        assert_eq!(t1.resolve(client).unwrap().mac, mac);
        assert_eq!(t1.resolve(client).unwrap().port, 0);
        // The same again: no change, no new table.
        assert!(apply(&t1, &ports(), &[learnt(Some(mac))]).table.is_none());
        // A new MAC replaces it; gone (or FAILED) removes it; in order within one batch.
        let moved = [2, 0x18, 0, 0, 0, 0x97];
        let t2 = apply(&t1, &ports(), &[learnt(Some(moved))]).table.unwrap();
        assert_eq!(t2.resolve(client).unwrap().mac, moved);
        let t3 = apply(&t2, &ports(), &[learnt(None)]).table.unwrap();
        assert!(t3.resolve(client).is_err());
        let both = apply(&t2, &ports(), &[learnt(None), learnt(Some(mac))]);
        assert_eq!(both.table.unwrap().resolve(client).unwrap().mac, mac);
        // Another interface's neighbour is not ours; a route change or a loss asks for a resync.
        let other = Change::Neighbour {
            ifindex: 7,
            ip: client,
            mac: Some(mac),
        };
        let a = apply(&table, &ports(), &[other]);
        assert!(a.table.is_none() && !a.resync);
        assert!(apply(&table, &ports(), &[Change::Routes]).resync);
        assert!(apply(&table, &ports(), &[Change::Lost]).resync);
        // The input table is never modified.
        assert!(table.resolve(client).is_err());
    }

    #[test]
    fn replaced_tables_are_freed_by_the_refresher_once_no_worker_holds_them() {
        let slot = ArcSwap::from_pointee(NextHopTable::default());
        let mut retired = Retired::default();
        let worker = slot.load_full(); // a worker's table of its current batch
        let weak = Arc::downgrade(&worker);
        retired.replace(&slot, NextHopTable::new(Vec::new(), Vec::new()));
        retired.collect();
        assert_eq!(retired.0.len(), 1, "kept while the worker holds it");
        drop(worker); // the worker moves on: not the last reference
        assert!(weak.upgrade().is_some());
        retired.collect();
        assert!(retired.0.is_empty());
        assert!(weak.upgrade().is_none(), "freed by collect");
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(network(ip("198.18.1.77"), 24), ip("198.18.1.0"));
        assert_eq!(network(ip("198.18.1.77"), 0), ip("0.0.0.0"));
        assert_eq!(network(ip("198.18.1.77"), 32), ip("198.18.1.77"));
        assert_eq!(network(ip("2001:db8::1"), 64), ip("2001:db8::"));
    }

    #[test]
    fn solicit_targets_the_next_hop() {
        let (r, n) = select(
            &ports(),
            &[
                kr("198.18.1.0", 24, 3, None),
                kr("0.0.0.0", 0, 2, Some("198.18.0.254")),
            ],
            &[],
        );
        let t = NextHopTable::new(r, n);
        assert_eq!(
            solicit_target(&t, &ports(), ip("198.18.1.12")),
            Some((ip("198.18.1.12"), 3))
        );
        assert_eq!(
            solicit_target(&t, &ports(), ip("203.0.113.5")),
            Some((ip("198.18.0.254"), 2))
        );
        assert_eq!(solicit_target(&t, &ports(), ip("2001:db8::1")), None);
    }

    #[test]
    fn ipv6_routes_and_neighbours_fill_the_table_as_ipv4_does() {
        let r1 = [2, 0x18, 0, 1, 0, 0x11];
        let wan_router = [2, 0x18, 0, 0, 0, 0xfe];
        let lan_router = [2, 0x18, 0, 1, 0, 0xfe];
        let (r, n) = select(
            &ports(),
            &[
                kr("2001:2::", 64, 2, None),
                kr("2001:2:0:1::", 64, 3, None),
                kr("fe80::", 64, 2, None),
                kr("fe80::", 64, 3, None),
                kr("2001:2:0:7::", 64, 7, None), // not an attached port
                kr("::", 0, 2, Some("fe80::1")), // default via a link-local router
                kr("198.18.1.0", 24, 3, None),
            ],
            &[
                (3, ip("2001:2:0:1::11"), r1),
                (2, ip("fe80::1"), wan_router),
                (3, ip("fe80::1"), lan_router), // the same link-local address on another link
                (7, ip("2001:2:0:7::1"), [9; 6]),
            ],
        );
        assert_eq!(r.len(), 6);
        assert_eq!(n.len(), 3);
        let t = NextHopTable::new(r, n);
        let hop = t.resolve(ip("2001:2:0:1::11")).unwrap();
        assert_eq!((hop.port, hop.mac), (1, r1));
        // Off-link destinations go to the wan0 router, never to lan0's fe80::1.
        let hop = t.resolve(ip("2001:2:ff::5")).unwrap();
        assert_eq!((hop.port, hop.mac), (0, wan_router));
        assert_eq!(
            t.resolve(ip("2001:2:0:1::12")),
            Err(crate::datapath::nexthop::NextHopError::NoNeighbour(ip(
                "2001:2:0:1::12"
            )))
        );
        // IPv4 is unaffected by the IPv6 default route.
        assert!(t.resolve(ip("198.18.9.9")).is_err());
    }

    #[test]
    fn ipv6_misses_solicit_the_next_hop_on_its_port() {
        let (r, n) = select(
            &ports(),
            &[
                kr("2001:2:0:1::", 64, 3, None),
                kr("::", 0, 2, Some("fe80::1")),
            ],
            &[],
        );
        let t = NextHopTable::new(r, n);
        assert_eq!(
            solicit_target(&t, &ports(), ip("2001:2:0:1::12")),
            Some((ip("2001:2:0:1::12"), 3))
        );
        // A link-local router is solicited on the interface of the route that names it.
        assert_eq!(
            solicit_target(&t, &ports(), ip("2001:2:ff::5")),
            Some((ip("fe80::1"), 2))
        );
        assert_eq!(solicit_target(&t, &ports(), ip("198.18.1.1")), None);
        // An IPv6 neighbour learnt from a notification resolves it.
        let mac = [2, 0x18, 0, 0, 0, 0xfe];
        let learnt = Change::Neighbour {
            ifindex: 2,
            ip: ip("fe80::1"),
            mac: Some(mac),
        };
        let t = apply(&t, &ports(), &[learnt]).table.unwrap();
        assert_eq!(t.resolve(ip("2001:2:ff::5")).unwrap().mac, mac);
    }

    #[test]
    fn limiter_allows_once_per_interval() {
        let mut l = Limiter::new(Duration::from_millis(500));
        let t0 = Instant::now();
        let a = ip("198.18.1.11");
        assert!(l.allow(a, t0));
        assert!(!l.allow(a, t0 + Duration::from_millis(100)));
        assert!(l.allow(ip("198.18.1.12"), t0 + Duration::from_millis(100)));
        assert!(l.allow(a, t0 + Duration::from_millis(500)));
        l.prune(t0 + Duration::from_secs(10));
        assert!(l.last.is_empty());
    }
}
