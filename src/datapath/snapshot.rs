//! The immutable view of the configuration the workers read: services, their real servers, the
//! attached ports and the connection-table settings.
//!
//! The control plane builds a new [`Snapshot`] for every (re)load and swaps it in whole
//! (`arc-swap`); a worker loads it once per batch. Nothing here changes after construction, so
//! lookups need no lock. Real-server counters ([`RealStats`](crate::sched::RealStats)) and the
//! per-service dynamic state ([`ServiceState`]) live behind `Arc`s that survive reloads; the
//! control plane changes them with atomic stores and the workers read them without a lock.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};

use crate::conntrack::Timeouts;
use crate::datapath::lookup::{WordKey, WordMap};
use crate::datapath::nexthop::Mac;
use crate::datapath::{DropReason, PortId};
use crate::flow::{Nanos, Proto};
use crate::sched::{Prepared, RealServer, RealStats, SchedulerKind};
/// Moved to [`crate::steer`] (seen by the datapath, the control plane and VRRP alike).
pub use crate::steer::{SteerKey, VrrpHeld};

/// A virtual service's identity: what a client addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceKey {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Proto,
}

/// Hashed as few words as the address allows (IPv4: address, port and protocol in one): the
/// service lookup is on every packet's path, and a derived hash feeds the hasher field by field
/// (the address's discriminant, its bits, the port, the protocol). Equal keys hash alike.
impl std::hash::Hash for ServiceKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let rest = (u64::from(self.port) << 8) | u64::from(self.proto.number());
        match self.vip {
            IpAddr::V4(a) => state.write_u64((u64::from(a.to_bits()) << 24) | rest),
            IpAddr::V6(a) => {
                state.write_u128(a.to_bits());
                state.write_u64(rest | 1 << 24);
            }
        }
    }
}

impl std::fmt::Display for ServiceKey {
    /// IPVS's notation, as in keepalived's logs: `[198.18.0.100]:tcp:80`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]:{}:{}", self.vip, self.proto, self.port)
    }
}

/// How packets of a service reach its real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// Destination NAT to the real server; replies come back through the load balancer and get
    /// their source rewritten to the VIP.
    Nat,
    /// Direct routing (IPVS VS/DR): only the Ethernet header changes (destination = the real
    /// server's MAC); the real server holds the VIP on a non-ARPing interface and answers the
    /// client directly. Replies never reach the load balancer.
    Dr,
    /// IP-in-IP tunnelling (IPVS VS/TUN): the packet is wrapped in an outer IPv4 header to the
    /// real server, which decapsulates it and answers the client directly.
    Tun,
    /// DPVS's FULLNAT: source → a local address:port of the service's pool
    /// ([`Service::local_pool`]), destination → the real server; replies come back to the local
    /// address:port and get source VIP:port, destination client (see `datapath::fullnat`).
    FullNat,
}

impl Forwarding {
    /// Whether replies come back through the load balancer (and are translated there).
    pub fn replies_return(self) -> bool {
        matches!(self, Forwarding::Nat | Forwarding::FullNat)
    }
}

/// IPVS persistence of a service (see [`crate::sched::persist`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// Template lifetime after the last connection it scheduled, in nanoseconds (> 0).
    pub timeout: Nanos,
    /// Client addresses are masked with it into the template's client network.
    pub netmask: IpAddr,
}

/// Dynamic state of a virtual service, kept by the control plane's health checks and read by
/// the workers: shared by every snapshot that has the service (same [`ServiceKey`]), so it
/// survives reloads.
#[derive(Debug)]
pub struct ServiceState {
    quorum: AtomicBool,
}

impl Default for ServiceState {
    /// With quorum.
    fn default() -> Self {
        ServiceState {
            quorum: AtomicBool::new(true),
        }
    }
}

impl ServiceState {
    /// Whether the service has quorum (keepalived's `quorum_state_up`): enough real servers up.
    #[inline]
    pub fn has_quorum(&self) -> bool {
        self.quorum.load(Ordering::Relaxed)
    }

    /// Sets the quorum state; returns whether that changed it.
    pub fn set_quorum(&self, up: bool) -> bool {
        self.quorum.swap(up, Ordering::Relaxed) != up
    }
}

/// One virtual service of the snapshot.
///
/// A service with `key.port == 0` takes every port of its VIP that no other service of the VIP
/// names (IPVS's port-zero service); its real servers have port 0 and each connection keeps the
/// client's destination port.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub key: ServiceKey,
    pub forwarding: Forwarding,
    pub scheduler: SchedulerKind,
    /// The scheduler's flags and precomputed tables (`sh`, `dh`, `mh`), made by
    /// [`crate::sched::prepare`] for `reals` off the packet path; workers share them.
    pub tables: Prepared,
    pub reals: Vec<RealServer>,
    /// `Some` for a persistent service.
    pub persistence: Option<Persistence>,
    /// UDP: every datagram is scheduled on its own and no connection entry is kept.
    pub one_packet: bool,
    /// TCP: this service's mid-stream pickup (IPVS `sloppy_tcp`); `None` = the snapshot's
    /// [`Snapshot::sloppy_tcp`] (see [`Service::picks_up_mid_stream`]).
    pub sloppy_tcp: Option<bool>,
    /// FULLNAT: index of the service's `local_addresses` pool in the connection table's pools.
    pub local_pool: Option<u16>,
    /// FULLNAT/TCP: carry the client's address to the real server in TCP option 254 (TOA).
    pub toa: bool,
    /// Position of each real server in `reals`, by address.
    real_index: HashMap<SocketAddr, usize, ahash::RandomState>,
    /// Takes the new flows while the service has lost quorum, or when no real server can take
    /// a flow (keepalived's `sorry_server`). Forwarded like a real server; never health checked.
    pub sorry: Option<RealServer>,
    /// Quorum, set by the health checks.
    pub state: Arc<ServiceState>,
    /// `Some` when the VIP is managed by VRRP: whether an instance of this box holds it (is
    /// MASTER). Set by [`Snapshot::with_vrrp_gates`]; written by the control plane's
    /// `VipGate`, read by the workers (one relaxed load per packet of the service).
    pub vrrp: Option<VrrpHeld>,
}

impl Service {
    /// A service with no sorry server, no persistence, not one-packet, a fresh state (with
    /// quorum) and no precomputed scheduler tables (set `tables` with
    /// [`crate::sched::prepare`] for `sh`, `dh` and `mh`).
    pub fn new(
        name: impl Into<String>,
        key: ServiceKey,
        forwarding: Forwarding,
        scheduler: SchedulerKind,
        reals: Vec<RealServer>,
    ) -> Service {
        let real_index = reals.iter().enumerate().map(|(i, r)| (r.addr, i)).collect();
        Service {
            name: name.into(),
            key,
            forwarding,
            scheduler,
            tables: Prepared::default(),
            reals,
            persistence: None,
            one_packet: false,
            sloppy_tcp: None,
            local_pool: None,
            toa: false,
            sorry: None,
            state: Arc::default(),
            vrrp: None,
            real_index,
        }
    }

    /// Whether the service's VIP is managed by VRRP and not held by this box (a BACKUP): none of
    /// its packets may be forwarded.
    #[inline]
    pub fn vrrp_backup(&self) -> bool {
        self.vrrp
            .as_ref()
            .is_some_and(|held| !held.load(Ordering::Relaxed))
    }

    /// Whether a TCP segment other than a SYN or RST that finds no connection starts one
    /// (mid-stream pickup): the service's own `sloppy_tcp`, else `global` (the snapshot's).
    #[inline]
    pub fn picks_up_mid_stream(&self, global: bool) -> bool {
        self.sloppy_tcp.unwrap_or(global)
    }

    /// The counters of traffic slot `slot`: `reals[slot]`, or the sorry server at `reals.len()`.
    #[inline]
    pub fn slot_stats(&self, slot: usize) -> Option<&Arc<RealStats>> {
        match self.reals.get(slot) {
            Some(r) => Some(&r.stats),
            None if slot == self.reals.len() => self.sorry.as_ref().map(|s| &s.stats),
            None => None,
        }
    }

    /// The position in `reals` of the real server with address `addr`.
    #[inline]
    pub fn real_position(&self, addr: SocketAddr) -> Option<usize> {
        self.real_index.get(&addr).copied()
    }
}

/// An interface the datapath is attached to.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub ifindex: u32,
    /// Source MAC of frames transmitted on this port.
    pub mac: Mac,
    /// The port's IPv4 address (the first one with a prefix shorter than /32, read at start):
    /// the outer source of TUN packets sent on this port.
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// The port's IPv6 address: a global one (not link-local, not a /128, not a VIP or pool
    /// address xvs manages), read at start like `ipv4`: the outer source of TUN6 packets sent
    /// on this port. `None`: TUN6 packets leaving here are dropped (`no_tunnel_source`).
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// The interface's MTU (largest IP packet it sends), read at start: TUN packets and frames
    /// grown in place (TOA) stay within it.
    pub mtu: u16,
}

/// Appends the `steer` map keys of one service, whose real and sorry servers are `targets`, to
/// `out` (duplicates left in): what [`Snapshot::steering_keys`] installs, and what `xvs check`
/// counts against the map's capacity.
pub fn service_steering_keys(
    key: ServiceKey,
    forwarding: Forwarding,
    targets: impl IntoIterator<Item = SocketAddr>,
    out: &mut Vec<SteerKey>,
) {
    out.push(SteerKey::Dst {
        addr: key.vip,
        port: key.port,
        proto: key.proto,
    });
    out.push(SteerKey::DstFragments {
        addr: key.vip,
        proto: key.proto,
    });
    match forwarding {
        // DR/TUN: nothing comes back. FULLNAT: replies come to a pool address:port, steered by
        // the pools (`local_pools` map of the filter), not by the real servers' sources.
        Forwarding::Dr | Forwarding::Tun | Forwarding::FullNat => {}
        Forwarding::Nat => {
            for t in targets {
                out.push(SteerKey::Src {
                    addr: t.ip(),
                    port: t.port(),
                    proto: key.proto,
                });
                out.push(SteerKey::SrcFragments {
                    addr: t.ip(),
                    proto: key.proto,
                });
            }
        }
    }
}

/// Everything a worker needs to decide about a frame, except next hops (see `nexthop`).
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every swap; workers rebuild per-service scheduler state when it changes.
    pub generation: u64,
    pub ports: Vec<Port>,
    pub services: Vec<Service>,
    /// Service index by [`ServiceKey`] ([`service_word`]).
    by_key: WordMap<usize>,
    /// `(real address, real port, protocol)` → service index, for the real servers of
    /// `one_packet` NAT services (their replies have no connection entry).
    one_packet_reals: HashMap<(IpAddr, u16, Proto), usize, ahash::RandomState>,
    /// Every (VIP, protocol) and every (NAT real server address, protocol): whose later
    /// fragments are the load balancer's.
    vip_addrs: HashSet<(IpAddr, Proto), ahash::RandomState>,
    nat_real_addrs: HashSet<(IpAddr, Proto), ahash::RandomState>,
    pub timeouts: Timeouts,
    /// Pick up TCP flows mid-stream (IPVS `sloppy_tcp`).
    pub sloppy_tcp: bool,
    /// The "held" flag of every VRRP-managed VIP (see [`Snapshot::with_vrrp_gates`]); empty
    /// without VRRP, which keeps the reply path free of the extra check.
    vrrp_gates: HashMap<IpAddr, VrrpHeld, ahash::RandomState>,
    /// Each port's MAC as a [`mac_word`], in port order: what [`Snapshot::own_frame`] compares
    /// (made from `ports` by [`Snapshot::new`]).
    mac_words: Vec<u64>,
}

/// A MAC (the first 6 bytes of `b`) as a number, for one-instruction comparisons on the packet
/// path; the I/G (group) bit is [`GROUP_BIT`].
#[inline]
pub fn mac_word(b: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// The I/G bit of a [`mac_word`]: set for broadcast and multicast addresses.
pub const GROUP_BIT: u64 = 1 << 40;

impl Snapshot {
    /// Builds a snapshot. Service keys must be unique (config validation guarantees it); a later
    /// duplicate would shadow an earlier one.
    pub fn new(
        generation: u64,
        ports: Vec<Port>,
        services: Vec<Service>,
        timeouts: Timeouts,
        sloppy_tcp: bool,
    ) -> Snapshot {
        let mut one_packet_reals = HashMap::default();
        let mut vip_addrs = HashSet::default();
        let mut nat_real_addrs = HashSet::default();
        let by_key = WordMap::build((services.iter().enumerate()).map(|(i, s)| {
            (
                Snapshot::service_word(s.key.vip, s.key.port, s.key.proto),
                i,
            )
        }));
        for (i, s) in services.iter().enumerate() {
            vip_addrs.insert((s.key.vip, s.key.proto));
            match s.forwarding {
                // DR and TUN replies bypass the load balancer: nothing to steer back; FULLNAT
                // replies come to a pool address:port, steered by the pools.
                Forwarding::Dr | Forwarding::Tun | Forwarding::FullNat => {}
                Forwarding::Nat => {
                    nat_real_addrs.extend(
                        s.reals
                            .iter()
                            .chain(&s.sorry)
                            .map(|r| (r.addr.ip(), s.key.proto)),
                    );
                }
            }
            if s.one_packet && s.forwarding == Forwarding::Nat {
                for r in &s.reals {
                    one_packet_reals
                        .entry((r.addr.ip(), r.addr.port(), s.key.proto))
                        .or_insert(i);
                }
            }
        }
        let mac_words = ports.iter().map(|p| mac_word(&p.mac)).collect();
        Snapshot {
            generation,
            mac_words,
            ports,
            services,
            by_key,
            one_packet_reals,
            vip_addrs,
            nat_real_addrs,
            timeouts,
            sloppy_tcp,
            vrrp_gates: HashMap::default(),
        }
    }

    /// The snapshot with its VRRP gates: `gates` has the "held" flag of every VRRP-managed VIP
    /// (the control plane's `VipGate` sets them); every service on such a VIP gets its flag.
    /// While a VIP's flag is false, `process()` forwards nothing of its services (new flows,
    /// replies, fragments, ICMP errors), and nothing of connections to that VIP whose service a
    /// reload removed.
    pub fn with_vrrp_gates(mut self, gates: impl IntoIterator<Item = (IpAddr, VrrpHeld)>) -> Self {
        let gates: HashMap<IpAddr, VrrpHeld, ahash::RandomState> = gates.into_iter().collect();
        for s in &mut self.services {
            s.vrrp = gates.get(&s.key.vip).cloned();
        }
        self.vrrp_gates = gates;
        self
    }

    /// Whether any VIP is managed by VRRP.
    #[inline]
    pub fn has_vrrp_gates(&self) -> bool {
        !self.vrrp_gates.is_empty()
    }

    /// Whether `vip` is managed by VRRP and not held by this box.
    #[inline]
    pub fn vrrp_backup_vip(&self, vip: IpAddr) -> bool {
        self.vrrp_gates
            .get(&vip)
            .is_some_and(|held| !held.load(Ordering::Relaxed))
    }

    /// Whether the connection to `vip` (VIP address and port, `proto`) may not be forwarded
    /// because its VIP is managed by VRRP and not held: decided by its service (the exact port,
    /// else the VIP's port-0 service) or, for a connection whose service a reload removed, by
    /// the VIP alone. Free when no VIP is managed.
    #[inline]
    pub fn vrrp_backup_conn(&self, vip: SocketAddr, proto: Proto) -> bool {
        if self.vrrp_gates.is_empty() {
            return false;
        }
        let key = ServiceKey {
            vip: vip.ip(),
            port: vip.port(),
            proto,
        };
        match self.service_for(&key) {
            Some(si) => self.services[si].vrrp_backup(),
            None => self.vrrp_backup_vip(vip.ip()),
        }
    }

    /// Whether a frame from `src` to `dst` ([`mac_word`]s) received on port `ingress` is the
    /// box's to act on: `not_our_mac` unless `dst` is that port's own MAC (never a broadcast or
    /// multicast, whatever the port's MAC), `own_frame` if `src` is one of the ports' MACs (a
    /// frame xvs sent, looped back).
    #[inline]
    pub fn own_frame(&self, ingress: PortId, dst: u64, src: u64) -> Result<(), DropReason> {
        let ours = self.mac_words.get(usize::from(ingress)) == Some(&dst);
        if !ours || dst & GROUP_BIT != 0 {
            return Err(DropReason::NotOurMac);
        }
        if self.mac_words.contains(&src) {
            return Err(DropReason::OwnFrame);
        }
        Ok(())
    }

    /// The index of the service whose key is exactly `key`.
    #[inline]
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.by_key
            .get(Snapshot::service_word(key.vip, key.port, key.proto))
    }

    /// The index of the service a packet to `key` belongs to: the service of that exact port,
    /// else the VIP's port-0 (all-port) service, as IPVS looks them up.
    #[inline]
    pub fn service_for(&self, key: &ServiceKey) -> Option<usize> {
        self.service_to(key.vip, key.port, key.proto)
    }

    /// [`Snapshot::service_for`] of the key (`vip`, `port`, `proto`).
    #[inline(always)]
    pub fn service_to(&self, vip: IpAddr, port: u16, proto: Proto) -> Option<usize> {
        self.service_of_word(Snapshot::service_word(vip, port, proto))
    }

    /// The lookup key of a service (`vip`, `port`, `proto`): what the packet path makes once
    /// per packet, where it read the values ([`Snapshot::service_of_word`]).
    #[inline(always)]
    pub fn service_word(vip: IpAddr, port: u16, proto: Proto) -> WordKey {
        WordKey::new(vip, u32::from(port) << 8 | u32::from(proto.number()))
    }

    /// [`Snapshot::service_for`] of the key `word` made by [`Snapshot::service_word`].
    #[inline(always)]
    pub fn service_of_word(&self, word: WordKey) -> Option<usize> {
        self.by_key.get(word).or_else(|| {
            // The all-port service of the VIP: port 0 in the key (a key of port 0 is itself).
            let any_port = word.keep(0xff);
            (any_port != word)
                .then(|| self.by_key.get(any_port))
                .flatten()
        })
    }

    /// Whether `addr` is the VIP of a `proto` service.
    #[inline]
    pub fn is_vip(&self, addr: IpAddr, proto: Proto) -> bool {
        self.vip_addrs.contains(&(addr, proto))
    }

    /// Whether `addr` is a real server of a `proto` NAT service.
    #[inline]
    pub fn is_nat_real(&self, addr: IpAddr, proto: Proto) -> bool {
        self.nat_real_addrs.contains(&(addr, proto))
    }

    /// For a packet from a real server of a `one_packet` NAT service (`src`:`sport`, `proto`),
    /// the service and the VIP address:port its source becomes. Port-0 real servers match any
    /// source port, which is then also the VIP's port.
    #[inline]
    pub fn one_packet_reply(&self, proto: Proto, src: IpAddr, sport: u16) -> Option<SocketAddr> {
        if self.one_packet_reals.is_empty() {
            return None;
        }
        let si = self
            .one_packet_reals
            .get(&(src, sport, proto))
            .or_else(|| self.one_packet_reals.get(&(src, 0, proto)))?;
        let key = self.services[*si].key;
        let port = if key.port == 0 { sport } else { key.port };
        Some(SocketAddr::new(key.vip, port))
    }

    /// What the XDP filter must steer to the sockets for this snapshot: every service's
    /// destination, and for NAT services every real server's and the sorry server's source
    /// (their replies); plus, by address alone, the later fragments of both.
    pub fn steering_keys(&self) -> Vec<SteerKey> {
        let mut keys = Vec::new();
        for s in &self.services {
            let targets = s.reals.iter().chain(&s.sorry).map(|r| r.addr);
            service_steering_keys(s.key, s.forwarding, targets, &mut keys);
        }
        keys.sort();
        keys.dedup();
        keys
    }
}
