//! The immutable view of the configuration the workers read: services, their real servers, the
//! attached ports and the connection-table settings.
//!
//! The control plane builds a new [`Snapshot`] for every (re)load and swaps it in whole
//! (`arc-swap`); a worker loads it once per batch. Nothing here changes after construction, so
//! lookups need no lock. Real-server counters live behind `Arc`s that survive reloads.

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::conntrack::Timeouts;
use crate::datapath::nexthop::Mac;
use crate::flow::Proto;
use crate::sched::{Prepared, RealServer, SchedulerKind};

/// A virtual service's identity: what a client addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Proto,
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
}

/// One virtual service of the snapshot.
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
}

/// An interface the datapath is attached to.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub ifindex: u32,
    /// Source MAC of frames transmitted on this port.
    pub mac: Mac,
}

/// A key the XDP filter program matches to steer a frame into the AF_XDP sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SteerKey {
    /// Frames whose destination is this address/port/protocol (a virtual service).
    Dst {
        addr: IpAddr,
        port: u16,
        proto: Proto,
    },
    /// Frames whose source is this address/port/protocol (replies of a NAT real server).
    Src {
        addr: IpAddr,
        port: u16,
        proto: Proto,
    },
}

/// Everything a worker needs to decide about a frame, except next hops (see `nexthop`).
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every swap; workers rebuild per-service scheduler state when it changes.
    pub generation: u64,
    pub ports: Vec<Port>,
    pub services: Vec<Service>,
    by_key: HashMap<ServiceKey, usize, ahash::RandomState>,
    pub timeouts: Timeouts,
    /// Pick up TCP flows mid-stream (IPVS `sloppy_tcp`).
    pub sloppy_tcp: bool,
}

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
        let mut by_key = HashMap::with_capacity_and_hasher(services.len(), Default::default());
        for (i, s) in services.iter().enumerate() {
            by_key.insert(s.key, i);
        }
        Snapshot {
            generation,
            ports,
            services,
            by_key,
            timeouts,
            sloppy_tcp,
        }
    }

    /// The index of the service a packet to `key` belongs to.
    #[inline]
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// What the XDP filter must steer to the sockets for this snapshot: every service's
    /// destination, and for NAT services every real server's source (its replies).
    pub fn steering_keys(&self) -> Vec<SteerKey> {
        let mut keys = Vec::new();
        for s in &self.services {
            keys.push(SteerKey::Dst {
                addr: s.key.vip,
                port: s.key.port,
                proto: s.key.proto,
            });
            match s.forwarding {
                Forwarding::Nat => {
                    for r in &s.reals {
                        keys.push(SteerKey::Src {
                            addr: r.addr.ip(),
                            port: r.addr.port(),
                            proto: s.key.proto,
                        });
                    }
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}
