//! VIPs announced through a kernel routing table (`announce:`): one host route per ready VIP in
//! `announce.table`, for a routing daemon (BIRD's `protocol kernel { kernel table N; learn; }`)
//! to export over BGP. xvs never speaks BGP itself.
//!
//! The routes go through a TUN device of xvs's own (`announce.device`, default
//! `xvs-announce`), created at start-up on a descriptor of `/dev/net/tun` that the daemon keeps
//! for its whole life ([`crate::sys::create_tun`]). It is not persistent, so when the process
//! ends, however it ends (SIGKILL, a crash, the OOM killer), the kernel closes the descriptor,
//! deletes the device and with it every route through it: a dead xvs never stays announced.
//! Nothing is ever sent or read on the device; it only anchors the routes.
//!
//! Invariants:
//! - A route is in the table only while xvs runs and its VIP is ready: every service on the VIP
//!   has quorum (the health checks' [`ServiceState`](crate::datapath::snapshot::ServiceState),
//!   the same quorum the sorry server follows: lost when no real server with a weight above 0
//!   is up, or fewer than `min_up - hysteresis`; so a VIP whose service lost quorum is withdrawn
//!   even when a sorry server takes its flows: another box with quorum serves it better) and
//!   the box is not drained.
//! - Decisions are [`core`]'s (sans IO, unit-tested); this module applies them with netlink, on
//!   the daemon's main loop only (at every wake-up, at most 250 ms apart, and at once after a
//!   reload, a drain or an undrain), never on the packet path. Draining withdraws routes only:
//!   the datapath, and so every existing flow, is untouched.
//! - About once a second (the main loop's `resync` tick) an evaluation reads the table back: a route someone deleted
//!   by hand is re-installed (logged as a warning), one someone added through the device for a
//!   VIP that is not ready is deleted.
//! - A clean stop ([`Announcer::stop`]) deletes every route (logged `withdrawn (stopping)`),
//!   then closes the device.
//! - Every change is logged once, at info: `announce: VIP 198.18.0.100 announced in table
//!   100`, `announce: VIP 198.18.0.100 withdrawn (quorum lost)`. A route the kernel refuses is
//!   logged once per VIP until it works, and retried at each evaluation.

pub mod core;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::core::{wanted, Action, Core, Reason};
pub use self::status::{AnnounceStatus, Published, VipState};
use crate::control::config;
use crate::control::netlink::{self, HostRoute, NetlinkError};
use crate::datapath::Snapshot;
use crate::sys;

/// The route protocol number of xvs's routes (`proto 252` in `ip route`): how BIRD
/// (`krt_source = 252`) and operators tell them from others.
pub const ROUTE_PROTO: u8 = 252;

/// Why the announcer could not start.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("announce.device: interface {0} already exists; xvs creates its own device (a leftover persistent TUN device? delete it with `ip link del {0}`, or name another device)")]
    Exists(String),
    #[error("announce.device: cannot create the TUN device {device}: {source}")]
    Create {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("announce.device: cannot bring {device} up: {source}")]
    Up {
        device: String,
        #[source]
        source: NetlinkError,
    },
}

/// The running announcer: its device, what it has installed, what it publishes.
pub struct Announcer {
    /// Keeps the device alive; closing it deletes the device and its routes.
    _tun: OwnedFd,
    ifindex: u32,
    table: u32,
    core: Core,
    status: Arc<AnnounceStatus>,
    /// VIPs whose last add or delete the kernel refused (logged once until it works).
    failing: BTreeSet<IpAddr>,
}

impl Announcer {
    /// Creates and brings up the device of `cfg`. An interface of that name that exists is
    /// waited for, at most `wait` (the device of an xvs that was just killed goes away with its
    /// last file, a few milliseconds after its interface locks), then refused. Nothing is
    /// announced until the first [`evaluate`](Self::evaluate).
    pub fn start(cfg: &config::Announce, wait: Duration) -> Result<Announcer, AnnounceError> {
        let dev = &cfg.device;
        let deadline = Instant::now() + wait;
        while sys::if_nametoindex(dev).is_ok() {
            if Instant::now() >= deadline {
                return Err(AnnounceError::Exists(dev.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let tun = sys::create_tun(dev).map_err(|source| match source.raw_os_error() {
            Some(libc::EBUSY) | Some(libc::EEXIST) => AnnounceError::Exists(dev.clone()),
            _ => AnnounceError::Create {
                device: dev.clone(),
                source,
            },
        })?;
        let ifindex = sys::if_nametoindex(dev).map_err(|source| AnnounceError::Create {
            device: dev.clone(),
            source,
        })?;
        netlink::set_link_up(ifindex).map_err(|source| AnnounceError::Up {
            device: dev.clone(),
            source,
        })?;
        log::info!(
            "announce: device {dev} (ifindex {ifindex}) up; ready VIPs go in table {}",
            cfg.table
        );
        Ok(Announcer {
            _tun: tun,
            ifindex,
            table: cfg.table,
            core: Core::new(),
            status: Arc::new(AnnounceStatus::new(cfg.table, dev)),
            failing: BTreeSet::new(),
        })
    }

    /// What the metrics and admin threads read.
    pub fn status(&self) -> Arc<AnnounceStatus> {
        self.status.clone()
    }

    pub fn drained(&self) -> bool {
        self.core.drained()
    }

    /// Makes the table match `snap`'s services (their quorum) and the drained flag; with
    /// `resync`, reads the table back from the kernel first. Returns the actions that were
    /// done.
    pub fn evaluate(&mut self, snap: &Snapshot, resync: bool) -> Vec<Action> {
        if resync {
            self.resync();
        }
        let want = wanted(
            snap.services
                .iter()
                .map(|s| (s.key.vip, s.state.has_quorum())),
            self.core.drained(),
        );
        let done = self.apply(self.core.plan(&want));
        self.publish(&want);
        done
    }

    /// `xvs ctl drain` (`true`) or `undrain`: sets the flag and evaluates at once. Returns how
    /// many VIPs were withdrawn (drain) or announced (undrain) by it.
    pub fn set_drained(&mut self, drained: bool, snap: &Snapshot) -> usize {
        self.core.set_drained(drained);
        log::info!(
            "announce: {}",
            if drained {
                "drained: withdrawing every VIP; existing flows continue"
            } else {
                "undrained: announcing every ready VIP"
            }
        );
        self.evaluate(snap, false)
            .iter()
            .filter(|a| matches!(a, Action::Del(..)) == drained)
            .count()
    }

    /// A clean stop: deletes every route (each logged `withdrawn (stopping)`), then closes the
    /// device (dropping `self`).
    pub fn stop(mut self) {
        let plan = self.core.plan_stop();
        self.apply(plan);
    }

    /// Replaces what the core believes installed with the kernel's table (the routes through
    /// the device); a route that vanished is logged and comes back with the next plan.
    fn resync(&mut self) {
        match netlink::host_routes(self.table, self.ifindex) {
            Ok(routes) => {
                let kernel = routes
                    .iter()
                    .filter(|r| r.proto == ROUTE_PROTO)
                    .map(|r| r.dst)
                    .collect();
                for vip in self.core.resync(kernel) {
                    log::warn!(
                        "announce: the route of VIP {vip} in table {} was deleted by someone else; re-installing it",
                        self.table
                    );
                }
            }
            Err(e) => log::error!("announce: cannot read table {}: {e}", self.table),
        }
    }

    fn route(&self, vip: IpAddr) -> HostRoute {
        HostRoute {
            dst: vip,
            table: self.table,
            oif: self.ifindex,
            proto: ROUTE_PROTO,
        }
    }

    /// Does `plan` with netlink, logging each change; returns the actions the kernel accepted.
    fn apply(&mut self, plan: Vec<Action>) -> Vec<Action> {
        let mut done = Vec::with_capacity(plan.len());
        for a in plan {
            let (vip, result) = match a {
                Action::Add(vip) => (vip, netlink::add_route(&self.route(vip))),
                Action::Del(vip, _) => (vip, netlink::del_route(&self.route(vip))),
            };
            match result {
                Ok(()) => {
                    self.failing.remove(&vip);
                    self.core.applied(a);
                    match a {
                        Action::Add(_) => {
                            log::info!("announce: VIP {vip} announced in table {}", self.table)
                        }
                        Action::Del(_, why) => {
                            log::info!("announce: VIP {vip} withdrawn ({})", why.log_words())
                        }
                    }
                    done.push(a);
                }
                Err(e) => {
                    if self.failing.insert(vip) {
                        log::error!("announce: VIP {vip} in table {}: {e}", self.table);
                    }
                }
            }
        }
        done
    }

    /// Publishes every VIP of `want` with its state.
    fn publish(&self, want: &BTreeMap<IpAddr, Option<Reason>>) {
        let vips = want
            .iter()
            .map(|(vip, why)| {
                let announced = self.core.is_installed(*vip);
                VipState {
                    vip: *vip,
                    announced,
                    reason: match (announced, why) {
                        (true, _) => None,
                        (false, Some(r)) => Some(*r),
                        (false, None) => Some(Reason::Failed),
                    },
                }
            })
            .collect();
        self.status.publish(Published {
            drained: self.core.drained(),
            vips,
        });
    }
}
