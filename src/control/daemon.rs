//! `xvs run`: start the appliance, serve until SIGTERM/SIGINT, reload on SIGHUP.
//!
//! Start-up order (each step undone if a later one fails, so a failed start leaves no XDP program
//! attached): check privileges → load and validate the config → look up the interfaces → build
//! the snapshot and next-hop table → attach the XDP filter (refusing interfaces owned by another
//! program) → open the AF_XDP sockets and register them → steer the services → resolve the real
//! (and sorry) servers' MACs → start workers, neighbour refresher, expiry janitor, health checks,
//! metrics, the VRRP thread and the admin socket → `READY=1`. Every steering change goes through
//! the VRRP [`VipGate`]: a VIP held by a VRRP instance is steered only while that instance is
//! MASTER (`src/vrrp/gate.rs`).
//!
//! A reload builds a new snapshot off the packet path and swaps it in whole, then hands the health
//! checks their new plan (pairs kept across the reload keep their state); a file that does not
//! validate, or that changes what needs a restart (the `datapath` section, `conntrack.max_entries`, `local_addresses`,
//! `global.metrics_listen`, `global.admin_socket`), is refused and the running configuration stays.
//! VRRP instances are resolved first (a reload whose instance cannot run is refused whole), then
//! handed to the VRRP thread, which keeps the state of every instance whose identity did not
//! change. `xvs ctl reload` reaches the same code: the admin thread hands the request to the main loop,
//! which drains it at every wake-up (at most 250 ms) and answers with the outcome.
//!
//! SIGTERM/SIGINT: the main loop (woken at once) sets the stop flag every thread watches, sends
//! the VRRP release, and joins the threads. The metrics and admin servers notice the flag within
//! 50 ms and close their connections without waiting for any client (a silent one, or one that
//! never reads its reply); their threads are joined with a bound all the same
//! ([`SERVER_STOP_WAIT`]), so no client can hold the stop up.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::control::config::{self, Config};
use crate::control::ctl::{RealChange, RealChangeKind};
use crate::control::health::{self, HealthHandle, HealthMetrics};
use crate::control::metrics::{self, ReloadStatus};
use crate::control::signals::{self, DaemonSignals, Signal};
use crate::control::stats::{self, Stats};
use crate::control::vrrp_spec as vrrp;
use crate::control::{admin, iflock, neighbours, netlink, snapshot};
use crate::datapath::filter::{FilterPort, FilterProgram, XdpMode};
use crate::datapath::worker::{spawn_workers, PollMode, WorkerConfig, WorkerError};
use crate::datapath::xsk::{QueueIo, XskConfig, ZeroCopy};
use crate::datapath::{Port, Processor, Shared, Snapshot};
use crate::steer::SteerKey;
use crate::vrrp::driver::{VrrpHandle, VrrpStatus};
use crate::vrrp::gate::{HeldFlags, SinkError, SteeringSink, VipGate};

/// The XDP filter as the [`VipGate`]'s sink: the gate writes the `steer` map.
struct FilterSink(Arc<FilterProgram>);

impl SteeringSink for FilterSink {
    fn set_steering(&self, keys: &[SteerKey]) -> Result<(), SinkError> {
        Ok(self.0.set_steering(keys).map(|_| ())?)
    }
}

/// A fatal start-up or run-time error, printed as is on stderr: `xvs: <one line>`, or for a
/// configuration that does not validate, its `FILE:LINE:COL: message` lines.
#[derive(Debug)]
pub struct Fatal(pub String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Fatal {
        Fatal(format!("xvs: {e}"))
    }
}

fn fatal(msg: impl std::fmt::Display) -> Fatal {
    Fatal(format!("xvs: {msg}"))
}

fn config_errors(e: config::ConfigErrors) -> Fatal {
    Fatal(e.to_string().trim_end().to_string())
}

/// How long start-up waits for the real servers' MAC addresses.
const PRIME_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the janitor sweeps the connection table, and how many slots per shard visit.
const JANITOR_INTERVAL: Duration = Duration::from_millis(100);
const JANITOR_BUDGET: usize = 4096;
/// How often the filter's copy of the box's own addresses is re-synced from the kernel.
const ADDRESS_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The RX queues of `iface` (`/sys/class/net/IFACE/queues/rx-N`).
fn rx_queue_count(iface: &str) -> Result<u32, Fatal> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| fatal(format!("cannot read {dir}: {e}")))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n as u32)
}

/// The queue ids every worker serves: the same set on every interface (a flow's reply may come in
/// on another interface, and each worker transmits on its own queue of every interface).
fn queue_ids(cfg: &Config) -> Result<Vec<u32>, Fatal> {
    let mut sets = Vec::new();
    for i in &cfg.datapath.interfaces {
        let mut q = match &i.queues {
            config::Queues::All => (0..rx_queue_count(&i.name)?).collect(),
            config::Queues::List(l) => l.clone(),
        };
        q.sort_unstable();
        sets.push((i.name.clone(), q));
    }
    let first = sets.first().map(|s| s.1.clone()).unwrap_or_default();
    if let Some((name, q)) = sets.iter().find(|s| s.1 != first) {
        return Err(fatal(format!(
            "datapath.interfaces: every interface must use the same queues ({} has {:?}, {} has {:?})",
            sets[0].0, first, name, q
        )));
    }
    if first.is_empty() {
        return Err(fatal("datapath.interfaces: no receive queue to attach to"));
    }
    if let config::Workers::Count(n) = cfg.datapath.workers {
        if n as usize != first.len() {
            return Err(fatal(format!(
                "datapath.workers: {n} workers for {} queues is not supported yet (one worker per queue; use `workers: auto`)",
                first.len()
            )));
        }
    }
    Ok(first)
}

/// The interfaces of `datapath.interfaces` as the datapath's ports. A port's own IPv4 address
/// (the outer source of TUN packets) is its first address with a prefix shorter than /32 that
/// is none of the addresses xvs itself may add or answer for: service VIPs, VRRP VIPs (a
/// crashed master may have left them behind) and FULLNAT pool addresses.
fn ports_of(cfg: &Config) -> Result<Vec<Port>, Fatal> {
    let not_own: HashSet<IpAddr> = cfg
        .services
        .iter()
        .map(|s| s.vip)
        .chain(
            cfg.vrrp
                .instances
                .iter()
                .flat_map(|i| i.vips.iter().map(|v| v.addr)),
        )
        .chain(
            cfg.local_addresses
                .iter()
                .flat_map(|p| p.addresses.iter().copied()),
        )
        .collect();
    cfg.datapath
        .interfaces
        .iter()
        .map(|i| {
            let link = netlink::link_by_name(&i.name)
                .map_err(|e| fatal(format!("interface {}: {e}", i.name)))?;
            let ipv4 = netlink::interface_addresses(link.ifindex)
                .map_err(|e| fatal(format!("interface {}: {e}", i.name)))?
                .into_iter();
            let ipv4 = own_ipv4(ipv4, &not_own);
            Ok(Port {
                name: i.name.clone(),
                ifindex: link.ifindex,
                mac: link.mac,
                ipv4,
                mtu: u16::try_from(link.mtu).unwrap_or(u16::MAX),
            })
        })
        .collect()
}

/// Why `new` cannot replace `old` on reload because a service kept its identity (VIP, port,
/// protocol) but changed its forwarding method, if it did. Connection entries do not record
/// their method (IPVS's do), so the open connections of such a service would be forwarded the
/// new way while their replies still come back the old way.
fn forwarding_changes(old: &Config, new: &Config) -> Option<String> {
    new.services.iter().find_map(|n| {
        let o = old.services.iter().find(|o| o.key() == n.key())?;
        (o.forwarding != n.forwarding).then(|| {
            format!(
                "service `{}`: forwarding changed from {} to {}; its open connections cannot change method: remove the service in one reload and add it back in the next, or restart xvs",
                n.name, o.forwarding, n.forwarding
            )
        })
    })
}

/// The first of `addrs` (address, prefix length) that is IPv4, not a /32, and not in `not_own`.
fn own_ipv4(
    addrs: impl IntoIterator<Item = (IpAddr, u8)>,
    not_own: &HashSet<IpAddr>,
) -> Option<std::net::Ipv4Addr> {
    addrs.into_iter().find_map(|(a, prefix)| match a {
        IpAddr::V4(v4) if prefix < 32 && !not_own.contains(&a) => Some(v4),
        _ => None,
    })
}

/// Every FULLNAT pool address with its pool's port range, for the filter's `local_pools` map.
fn local_pool_ranges(cfg: &Config) -> Vec<(IpAddr, u16, u16)> {
    cfg.local_addresses
        .iter()
        .flat_map(|p| {
            p.addresses
                .iter()
                .map(|a| (*a, p.ports.first, p.ports.last))
        })
        .collect()
}

fn real_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = cfg
        .services
        .iter()
        .flat_map(|s| {
            s.reals
                .iter()
                .map(|r| r.address.ip())
                .chain(s.sorry_server.map(|a| a.ip()))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `02:18:00:01:00:01`.
fn mac_text(m: &[u8; 6]) -> String {
    let h: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    h.join(":")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the per-interface locks live (see [`iflock`]).
const LOCK_DIR: &str = "/run/xvs/locks";
/// How long start-up waits for the interface locks of an xvs that is exiting (killed just
/// before); a running one is refused at once.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes an exclusive lock per attached interface (`/run/xvs/locks/net<NETNS>-if<IFINDEX>.lock`),
/// so that a second `xvs run` on the same interfaces fails before it touches the XDP program of
/// the running one. The kernel releases them when the process exits, however it exits; a start
/// right after a SIGKILL waits (at most [`LOCK_WAIT`]) for the killed process's exit to finish.
/// Dropping the locks removes their files.
fn lock_interfaces(ports: &[Port]) -> Result<iflock::InterfaceLocks, Fatal> {
    let ns = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| fatal(format!("cannot identify the network namespace: {e}")))?;
    let ns: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let ifaces: Vec<(String, u32)> = ports.iter().map(|p| (p.name.clone(), p.ifindex)).collect();
    Ok(iflock::lock_interfaces(
        Path::new(LOCK_DIR),
        &ns,
        &ifaces,
        LOCK_WAIT,
    )?)
}

/// Snapshot `generation` of `cfg` on `ports` (see [`snapshot::build`]), its services on
/// VRRP-managed VIPs gated by their "held" flags: never forwarded while not MASTER.
fn build_snapshot(
    cfg: &Config,
    ports: Vec<Port>,
    generation: u64,
    previous: Option<&Snapshot>,
    held: &HeldFlags,
) -> Snapshot {
    snapshot::build(cfg, ports, generation, previous)
        .with_vrrp_gates(held.for_vips(&vrrp::managed_vips(cfg)))
}

/// Everything the running daemon holds.
struct Running {
    path: PathBuf,
    cfg: Config,
    ports: Vec<Port>,
    shared: Arc<Shared>,
    filter: Arc<FilterProgram>,
    /// Every steering change goes through it: VRRP VIPs are steered only while MASTER.
    gate: Arc<VipGate>,
    /// The "held" flags of the VRRP-managed VIPs, which the gate sets and every snapshot's
    /// services read.
    held: Arc<HeldFlags>,
    vrrp: VrrpHandle,
    reload: Arc<ReloadStatus>,
    health: HealthHandle,
    /// The last local-address sync failed (logged once until it works again).
    address_sync_failing: bool,
    /// Real servers removed by a reload whose connections have not all ended: their replies
    /// stay steered to the workers until then.
    draining: Vec<snapshot::DrainingReal>,
}

/// What the filter steers: the snapshot's keys and those of the real servers still draining.
fn steering_keys(snap: &Snapshot, draining: &[snapshot::DrainingReal]) -> Vec<SteerKey> {
    let mut keys = snap.steering_keys();
    keys.extend(draining.iter().flat_map(|d| d.steering_keys()));
    keys.sort();
    keys.dedup();
    keys
}

impl Running {
    /// Forgets the draining real servers whose last connection ended and stops steering their
    /// replies.
    fn finish_draining(&mut self) {
        let before = self.draining.len();
        self.draining.retain(|d| {
            let done = d.is_drained();
            if done {
                log::info!(
                    "Service [{}]:{}:{} of VS {} drained",
                    d.addr.ip(),
                    d.service.proto,
                    d.addr.port(),
                    d.service
                );
            }
            !done
        });
        if self.draining.len() != before {
            let keys = steering_keys(&self.shared.snapshot.load(), &self.draining);
            if let Err(e) = self.gate.set_keys(keys) {
                log::error!("Cannot update the XDP filter's steering: {e}");
            }
        }
    }

    /// Re-syncs the filter's `local_addrs` map with the kernel's addresses (an address added by
    /// an operator or by VRRP). Errors are logged, never fatal.
    fn sync_local_addresses(&mut self) {
        let result = netlink::dump_addresses()
            .map_err(|e| e.to_string())
            .and_then(|a| {
                self.filter
                    .set_local_addresses(&a)
                    .map_err(|e| e.to_string())
            });
        match (result, self.address_sync_failing) {
            (Ok(_), true) => {
                log::info!("Local addresses synced again");
                self.address_sync_failing = false;
            }
            (Err(e), false) => {
                log::error!("Cannot sync local addresses to the XDP filter: {e}");
                self.address_sync_failing = true;
            }
            _ => {}
        }
    }

    /// Re-reads each port's MAC (an operator's `ip link set dev X address ...`, a bond's new
    /// active slave): the filter's `ports` and `own_macs` maps follow, and so does the snapshot
    /// (the ingress check of `process()` and the source MAC of transmitted frames). Errors are
    /// logged, never fatal.
    fn sync_port_macs(&mut self) {
        let mut macs: Vec<[u8; 6]> = self.ports.iter().map(|p| p.mac).collect();
        for (port, mac) in self.ports.iter().zip(macs.iter_mut()) {
            match netlink::link_by_name(&port.name) {
                Ok(link) if link.ifindex == port.ifindex => *mac = link.mac,
                // Gone or replaced by another interface of that name: xvs cannot follow that
                // (its sockets are bound to the old one); keep what it had.
                Ok(_) | Err(_) => {}
            }
        }
        if self.ports.iter().zip(&macs).all(|(p, m)| p.mac == *m) {
            return;
        }
        if let Err(e) = self.filter.set_port_macs(&macs) {
            log::error!("Cannot update the XDP filter's interface MACs: {e}");
            return;
        }
        for (port, mac) in self.ports.iter_mut().zip(&macs) {
            if port.mac != *mac {
                log::info!(
                    "Interface {}: MAC changed from {} to {}",
                    port.name,
                    mac_text(&port.mac),
                    mac_text(mac)
                );
                port.mac = *mac;
            }
        }
        let old = self.shared.snapshot.load_full();
        let new = build_snapshot(
            &self.cfg,
            self.ports.clone(),
            old.generation + 1,
            Some(&old),
            &self.held,
        );
        self.shared.snapshot.store(Arc::new(new));
    }

    /// `xvs ctl real add|edit|del`: changes the running configuration (not the file), validated
    /// like a load, applied like a reload. A deleted real server drains.
    fn real_change(&mut self, c: &RealChange) -> admin::ReloadOutcome {
        let mut cfg = self.cfg.clone();
        let what = format!("real {} {} in service `{}`", c.op.name(), c.addr, c.service);
        let Some(svc) = cfg.services.iter_mut().find(|s| s.name == c.service) else {
            return Err(format!("xvs: {what}: no service named `{}`", c.service));
        };
        let at = svc.reals.iter().position(|r| r.address == c.addr);
        match (c.op, at) {
            (RealChangeKind::Add, Some(_)) => {
                return Err(format!(
                    "xvs: {what}: {} is already a real server of it",
                    c.addr
                ))
            }
            (RealChangeKind::Add, None) => svc.reals.push(config::Real {
                address: c.addr,
                weight: c.weight.unwrap_or(1),
                upper_threshold: 0,
                lower_threshold: 0,
                health_check: None,
            }),
            (_, None) => {
                return Err(format!(
                    "xvs: {what}: {} is not a real server of it",
                    c.addr
                ))
            }
            (RealChangeKind::Edit, Some(i)) => match c.weight {
                Some(w) => svc.reals[i].weight = w,
                None => return Err(format!("xvs: {what}: nothing to change (give --weight N)")),
            },
            (RealChangeKind::Del, Some(i)) => {
                svc.reals.remove(i);
            }
        }
        if let Err(problems) = config::validate_runtime(&cfg, &config::SystemHost::running()) {
            return Err(format!("xvs: {what} refused: {}", problems.join("; ")));
        }
        log::info!("Run-time change: {what}");
        match self.apply(cfg) {
            Ok(changes) => {
                for l in &changes {
                    log::info!("{l}");
                }
                if changes.is_empty() {
                    Ok("No change".to_string())
                } else {
                    Ok(changes.join("\n"))
                }
            }
            Err(Fatal(msg)) => {
                log::error!("{msg}");
                Err(msg)
            }
        }
    }

    /// Applies the file again; on any error the running configuration stays. Logs as it goes and
    /// returns what changed, or why the file was refused (for `xvs ctl reload`).
    fn reload(&mut self) -> admin::ReloadOutcome {
        signals::sd_notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            signals::monotonic_usec()
        ));
        log::info!("Reloading configuration file {}", self.path.display());
        let outcome = match self.try_reload() {
            Ok(changes) => {
                for c in &changes {
                    log::info!("{c}");
                }
                let done = format!(
                    "Configuration reloaded ({} change{})",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                );
                log::info!("{done}");
                self.reload.successful.store(true, Ordering::Relaxed);
                self.reload
                    .timestamp_seconds
                    .store(unix_now(), Ordering::Relaxed);
                let mut text = changes;
                text.push(done);
                Ok(text.join("\n"))
            }
            Err(Fatal(msg)) => {
                let kept = "Configuration reload failed; keeping the running configuration";
                log::error!("{msg}");
                log::error!("{kept}");
                self.reload.successful.store(false, Ordering::Relaxed);
                Err(format!("{msg}\n{kept}"))
            }
        };
        signals::sd_notify("READY=1");
        outcome
    }

    fn try_reload(&mut self) -> Result<Vec<String>, Fatal> {
        let cfg =
            config::load(&self.path, &config::SystemHost::running()).map_err(config_errors)?;
        if cfg.datapath != self.cfg.datapath {
            return Err(fatal("datapath section changed: restart xvs to apply it"));
        }
        if cfg.local_addresses != self.cfg.local_addresses {
            // The connection table owns the pools' ports (and live connections hold some).
            return Err(fatal("local_addresses changed: restart xvs to apply it"));
        }
        if cfg.conntrack.max_entries != self.cfg.conntrack.max_entries {
            return Err(fatal(
                "conntrack.max_entries changed: restart xvs to apply it",
            ));
        }
        if cfg.global.metrics_listen != self.cfg.global.metrics_listen {
            return Err(fatal(
                "global.metrics_listen changed: restart xvs to apply it",
            ));
        }
        if cfg.global.admin_socket != self.cfg.global.admin_socket {
            return Err(fatal(
                "global.admin_socket changed: restart xvs to apply it",
            ));
        }
        if let Some(msg) = forwarding_changes(&self.cfg, &cfg) {
            return Err(fatal(msg));
        }
        // Resolved before anything changes: a VRRP instance that cannot run refuses the file.
        let (specs, groups) = vrrp::specs(&cfg).map_err(fatal)?;
        let mut changes = self.apply(cfg)?;
        changes.extend(
            self.vrrp
                .reconfigure(specs, groups)
                .unwrap_or_else(|e| vec![e.to_string()]),
        );
        Ok(changes)
    }

    /// Makes `cfg` (validated) the running configuration: a new snapshot swapped in, steering,
    /// next hops and health checks updated. Returns the change lines; on error nothing changed.
    fn apply(&mut self, cfg: Config) -> Result<Vec<String>, Fatal> {
        let old = self.shared.snapshot.load_full();
        let new = build_snapshot(
            &cfg,
            self.ports.clone(),
            old.generation + 1,
            Some(&old),
            &self.held,
        );
        let changes = snapshot::describe_changes(&old, &new);
        let mut draining = self.draining.clone();
        for d in snapshot::removed_with_connections(&old, &new) {
            if !draining.iter().any(|x| Arc::ptr_eq(&x.stats, &d.stats)) {
                draining.push(d);
            }
        }
        let keys = steering_keys(&new, &draining);
        let new = Arc::new(new);
        // Swap first, then steer: a new service's first packets only reach the sockets once the
        // workers already know it. A removed service's packets that arrive in between are passed
        // (and counted as `not_lb_traffic`), never mis-forwarded.
        self.shared.snapshot.store(new.clone());
        // Keys and VRRP-managed VIPs in one write: a VIP that becomes managed is never steered
        // before its instance is MASTER.
        if let Err(e) = self.gate.update(keys, vrrp::managed_vips(&cfg)) {
            // Keep the promise of a failed reload: the running configuration stays, whole.
            self.shared.snapshot.store(old.clone());
            let _ = self.gate.update(
                steering_keys(&old, &self.draining),
                vrrp::managed_vips(&self.cfg),
            );
            return Err(fatal(e));
        }
        for d in &draining[self.draining.len()..] {
            log::info!(
                "Draining service [{}]:{}:{} of VS {} ({} connections left)",
                d.addr.ip(),
                d.service.proto,
                d.addr.port(),
                d.service,
                d.stats.total_connections()
            );
        }
        self.draining = draining;
        for ip in real_addresses(&cfg) {
            let _ = self.shared.neighbour_misses.push(ip);
        }
        self.health.update(health::plan(&cfg, &new));
        self.cfg = cfg;
        Ok(changes)
    }
}

/// Runs the daemon until SIGTERM/SIGINT. `Err` carries the one line to print.
pub fn run(path: &Path) -> Result<(), Fatal> {
    if !signals::is_root() {
        return Err(Fatal(
            "xvs: must run as root (CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW are needed to attach XDP programs and open AF_XDP sockets)".into(),
        ));
    }
    let cfg = config::load(path, &config::SystemHost::startup()).map_err(config_errors)?;
    let (vrrp_specs, vrrp_groups) = vrrp::specs(&cfg).map_err(fatal)?;
    // Block the daemon's signals before any thread starts, so they all inherit the mask.
    let sigs = DaemonSignals::block()?;
    let queues = queue_ids(&cfg)?;
    let ports = ports_of(&cfg)?;
    // Created before the first snapshot, whose VRRP-managed services read them (false: no
    // instance holds its VIPs yet).
    let held = Arc::new(HeldFlags::default());
    let snap = build_snapshot(&cfg, ports.clone(), 1, None, &held);
    let nexthops = neighbours::build_table(&ports)?;
    let max_entries = usize::try_from(cfg.conntrack.max_entries).unwrap_or(usize::MAX);
    let shared = Arc::new(Shared::try_with_local_pools(
        snap,
        nexthops,
        max_entries,
        &snapshot::local_pools(&cfg),
    )?);

    let mode = match cfg.datapath.xdp_mode {
        config::XdpMode::Auto => XdpMode::Auto,
        config::XdpMode::Native => XdpMode::Native,
        config::XdpMode::Skb => XdpMode::Skb,
    };
    // Held until `run` returns (after the filter is detached; then their files are removed):
    // while we hold them, an `xvs_filter` found attached is stale.
    let locks = lock_interfaces(&ports)?;
    for w in locks.waited() {
        log::warn!(
            "Interface {} was still held by an exiting xvs{}; got it after {} ms",
            w.iface,
            w.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            w.waited.as_millis()
        );
    }
    let filter_ports: Vec<FilterPort> = ports
        .iter()
        .map(|p| FilterPort {
            name: p.name.clone(),
            ifindex: p.ifindex,
            mac: p.mac,
        })
        .collect();
    let filter = Arc::new(FilterProgram::attach(&filter_ports, mode)?);
    // From here on, returning an error drops `filter`, which detaches it.
    let xsk_cfg = XskConfig {
        ring_size: cfg.datapath.ring_size,
        frame_size: cfg.datapath.frame_size,
        zero_copy: match cfg.datapath.zero_copy {
            config::ZeroCopy::Auto => ZeroCopy::Auto,
            config::ZeroCopy::On => ZeroCopy::On,
            config::ZeroCopy::Off => ZeroCopy::Off,
        },
        ..XskConfig::default()
    };
    let iface_names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let mut ios = Vec::with_capacity(queues.len());
    for q in &queues {
        let io = QueueIo::open(&iface_names, *q, &xsk_cfg)?;
        for (port, fd) in io.socket_fds() {
            filter.register_socket(port, *q, fd)?;
        }
        ios.push(io);
    }
    // VRRP-managed VIPs are steered only once their instance is MASTER.
    let gate = Arc::new(VipGate::new(
        Box::new(FilterSink(filter.clone())),
        vrrp::managed_vips(&cfg),
        held.clone(),
    ));
    gate.set_keys(shared.snapshot.load().steering_keys())
        .map_err(fatal)?;
    let own = netlink::dump_addresses()?;
    filter.set_local_addresses(&own)?;
    filter.set_local_pools(&local_pool_ranges(&cfg))?;
    for (addr, _, _) in local_pool_ranges(&cfg) {
        if !own.contains(&addr) {
            // Replies to it need the box's kernel to answer ARP for it.
            log::warn!(
                "Local address {addr} is not an address of this box: real servers cannot reach it until it is added to the interface on their LAN"
            );
        }
    }

    let primed = neighbours::prime(&ports, &real_addresses(&cfg), PRIME_TIMEOUT)?;
    shared.nexthops.store(Arc::new(primed.table));
    for ip in &primed.unresolved {
        log::warn!("Real server {ip}: next-hop MAC not resolved yet (will keep trying)");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let poll = match cfg.datapath.poll {
        config::Poll::Busy => PollMode::Busy,
        config::Poll::Wakeup => PollMode::Wakeup,
    };
    let xsk_readers = ios.iter().map(|io| io.stats_reader()).collect();
    let mut workers = Vec::with_capacity(ios.len());
    let mut counters = Vec::with_capacity(ios.len());
    for io in ios {
        let p = Processor::new(shared.clone());
        counters.push((io.queue(), p.counters.clone()));
        workers.push((io, p));
    }
    let handles = spawn_workers(workers, WorkerConfig::new(poll, epoch), stop.clone())?;

    let mut aux: Vec<JoinHandle<()>> = vec![
        neighbours::spawn_refresher(
            ports.clone(),
            shared.nexthops.clone(),
            shared.neighbour_misses.clone(),
            stop.clone(),
        ),
        spawn_janitor(shared.clone(), epoch, stop.clone()),
    ];
    let health_metrics = Arc::new(HealthMetrics::default());
    let health = match health::spawn(shared.clone(), health_metrics.clone(), stop.clone()) {
        Ok((handle, thread)) => {
            aux.push(thread);
            handle
        }
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            handles.into_iter().for_each(|h| drop(h.join()));
            aux.into_iter().for_each(|h| drop(h.join()));
            return Err(fatal(format!("cannot start the health checks: {e}")));
        }
    };
    health.update(health::plan(&cfg, &shared.snapshot.load()));
    let reload = Arc::new(ReloadStatus::default());
    reload.successful.store(true, Ordering::Relaxed);
    reload
        .timestamp_seconds
        .store(unix_now(), Ordering::Relaxed);
    let stats = Arc::new(Stats::new(
        shared.clone(),
        counters.iter().map(|(_, c)| c.clone()).collect(),
    ));
    match stats::spawn_estimator(stats.clone(), stop.clone()) {
        Ok(t) => aux.push(t),
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            handles.into_iter().for_each(|h| drop(h.join()));
            aux.into_iter().for_each(|h| drop(h.join()));
            return Err(fatal(format!("cannot start the rate estimator: {e}")));
        }
    }
    let (vrrp_handle, vrrp_thread) =
        match vrrp::spawn(vrrp_specs, vrrp_groups, gate.clone(), epoch, stop.clone()) {
            Ok(v) => v,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                handles.into_iter().for_each(|h| drop(h.join()));
                aux.into_iter().for_each(|h| drop(h.join()));
                return Err(fatal(format!("cannot start VRRP: {e}")));
            }
        };
    let vrrp_status: Arc<VrrpStatus> = vrrp_handle.status.clone();
    let sources = Arc::new(metrics::Sources {
        shared: shared.clone(),
        workers: counters,
        xsk: xsk_readers,
        reload: reload.clone(),
        health: health_metrics,
        vrrp: vrrp_status.clone(),
    });
    let (reload_tx, reload_rx) = admin::reload_channel();
    let admin_state = admin::AdminState {
        shared: shared.clone(),
        epoch,
        reloads: reload_tx,
        stats,
        vrrp: vrrp_status,
    };
    // The metrics and admin servers: joined with a bound at shutdown.
    let mut servers: Vec<(&str, JoinHandle<()>)> = Vec::with_capacity(2);
    let started = metrics::spawn_server(cfg.global.metrics_listen, sources, stop.clone())
        .map_err(|e| {
            fatal(format!(
                "global.metrics_listen {}: {e}",
                cfg.global.metrics_listen
            ))
        })
        .and_then(|m| {
            servers.push(("metrics", m));
            admin::spawn_server(&cfg.global.admin_socket, admin_state, stop.clone()).map_err(|e| {
                fatal(format!(
                    "global.admin_socket {}: {e}",
                    cfg.global.admin_socket.display()
                ))
            })
        });
    match started {
        Ok(a) => servers.push(("admin", a)),
        Err(e) => {
            // Workers own their sockets: stop them before the filter is detached on return.
            stop.store(true, Ordering::Relaxed);
            vrrp_handle.wake();
            drop(vrrp_thread.join());
            handles.into_iter().for_each(|h| drop(h.join()));
            aux.into_iter().for_each(|h| drop(h.join()));
            join_servers(servers);
            return Err(e);
        }
    }

    let modes: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{} ({})",
                p.name,
                filter.attach_mode(i as u8).map_or("?", |m| m.name())
            )
        })
        .collect();
    log::info!(
        "xvs {} started ({}): {} service(s), {} worker(s), XDP on {}",
        env!("CARGO_PKG_VERSION"),
        cfg.global.router_id,
        cfg.services.len(),
        handles.len(),
        modes.join(", ")
    );
    signals::sd_notify("READY=1");

    let mut running = Running {
        path: path.to_path_buf(),
        cfg,
        ports,
        shared,
        filter,
        gate,
        held,
        vrrp: vrrp_handle,
        reload,
        health,
        address_sync_failing: false,
        draining: Vec::new(),
    };
    let mut failure = None;
    let mut last_address_sync = Instant::now();
    loop {
        match sigs.wait(Duration::from_millis(250)) {
            Some(Signal::Stop(sig)) => {
                log::info!("Received signal {sig}, stopping");
                break;
            }
            Some(Signal::Reload) => {
                let _ = running.reload();
            }
            None => {
                if handles.iter().any(|h| h.is_finished()) {
                    failure = Some(fatal("a worker stopped unexpectedly; stopping"));
                    break;
                }
                if vrrp_thread.is_finished() {
                    failure = Some(fatal("the VRRP thread stopped unexpectedly; stopping"));
                    break;
                }
            }
        }
        if last_address_sync.elapsed() >= ADDRESS_SYNC_INTERVAL {
            last_address_sync = Instant::now();
            running.sync_local_addresses();
            running.finish_draining();
        }
        // At every wake-up (at most 250 ms): a changed MAC is followed well within a second.
        running.sync_port_macs();
        // `xvs ctl reload`: run here, where the running configuration lives.
        for req in reload_rx.try_iter() {
            let outcome = match &req.op {
                admin::MainOp::Reload => running.reload(),
                admin::MainOp::Real(change) => running.real_change(change),
            };
            req.respond(outcome);
        }
    }
    signals::sd_notify("STOPPING=1");
    stop.store(true, Ordering::Relaxed);
    // A MASTER's priority-0 release goes out now, before the workers are joined.
    running.vrrp.wake();
    let mut worker_error: Option<WorkerError> = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => worker_error = Some(e),
            Err(_) => failure = Some(fatal("a worker panicked")),
        }
    }
    if vrrp_thread.join().is_err() {
        failure = Some(fatal("the VRRP thread panicked"));
    }
    for h in aux {
        let _ = h.join();
    }
    join_servers(servers);
    // Every thread holding the gate (and so the filter) has ended.
    drop(running.gate);
    match Arc::try_unwrap(running.filter) {
        Ok(f) => f.detach()?,
        Err(_) => {
            log::warn!("XDP filter still referenced at exit; it is detached when the process ends")
        }
    }
    log::info!("xvs stopped");
    if let Some(e) = worker_error {
        return Err(fatal(e));
    }
    failure.map_or(Ok(()), Err)
}

/// How long shutdown waits for the metrics and admin servers' threads. They notice `stop`
/// within 50 ms and never wait for a client, so this only bounds a bug.
const SERVER_STOP_WAIT: Duration = Duration::from_millis(500);

/// Joins the server threads, waiting at most [`SERVER_STOP_WAIT`] in all: a thread still
/// running then is left behind (it ends with the process) rather than delaying the stop.
fn join_servers(servers: Vec<(&str, JoinHandle<()>)>) {
    let deadline = Instant::now() + SERVER_STOP_WAIT;
    for (name, h) in servers {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            log::warn!(
                "The {name} server did not stop within {} ms; not waiting for it",
                SERVER_STOP_WAIT.as_millis()
            );
        }
    }
}

/// Sweeps the connection and persistence tables for expired entries off the packet path.
fn spawn_janitor(shared: Arc<Shared>, epoch: Instant, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("xvs-janitor".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = epoch.elapsed().as_nanos() as u64;
                // One visit per shard per interval (the table rotates shards itself).
                for _ in 0..64 {
                    shared.conntrack.expire(now, JANITOR_BUDGET);
                }
                for _ in 0..16 {
                    shared.persistence.expire(now, JANITOR_BUDGET);
                }
                std::thread::sleep(JANITOR_INTERVAL);
            }
        })
        .expect("cannot spawn the expiry janitor thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_may_not_change_a_kept_services_forwarding() {
        let cfg = |web: &str, dns: &str| {
            let text = format!(
                "datapath:\n  interfaces:\n    - name: eth0\nservices:\n\
                 \x20 - {{ name: web, vip: 198.18.2.100, port: 80, forwarding: {web}, reals: [{{ address: 198.18.1.11:80 }}] }}\n\
                 \x20 - {{ name: dns, vip: {dns}, port: 53, protocol: udp, forwarding: tun, reals: [{{ address: 198.18.1.11:53 }}] }}\n"
            );
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let old = cfg("dr", "198.18.2.100");
        assert_eq!(forwarding_changes(&old, &old), None);
        let msg = forwarding_changes(&old, &cfg("tun", "198.18.2.100")).unwrap();
        assert!(
            msg.starts_with("service `web`: forwarding changed from dr to tun;"),
            "{msg}"
        );
        // A service with a new identity (another VIP) is a new service: its method is free.
        assert_eq!(forwarding_changes(&old, &cfg("dr", "198.18.2.101")), None);
    }

    #[test]
    fn snapshots_gate_the_services_of_vrrp_managed_vips_closed_until_held() {
        struct Nowhere;
        impl SteeringSink for Nowhere {
            fn set_steering(&self, _: &[SteerKey]) -> Result<(), SinkError> {
                Ok(())
            }
        }
        let cfg = |vips: &str| {
            let mut text = "datapath:\n  interfaces:\n    - name: eth0\nservices:\n\
                 \x20 - { name: web, vip: 198.18.0.100, port: 80, reals: [{ address: 198.18.1.11:80 }] }\n\
                 \x20 - { name: dns, vip: 198.18.0.101, port: 53, protocol: udp, reals: [{ address: 198.18.1.11:53 }] }\n"
                .to_string();
            if !vips.is_empty() {
                text += &format!(
                    "vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth0, vrid: 51, priority: 100, vips: [{vips}] }}\n"
                );
            }
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let gate_of = |snap: &Snapshot, name: &str| {
            let s = snap.services.iter().find(|s| s.name == name).unwrap();
            s.vrrp.as_ref().map(|f| f.load(Ordering::Relaxed))
        };
        let held = Arc::new(HeldFlags::default());
        let plain = build_snapshot(&cfg(""), Vec::new(), 1, None, &held);
        assert_eq!(gate_of(&plain, "web"), None);
        // A reload puts web's VIP behind VRRP: closed before any instance holds it.
        let c2 = cfg("198.18.0.100/32");
        let gate = VipGate::new(Box::new(Nowhere), vrrp::managed_vips(&c2), held.clone());
        let s2 = build_snapshot(&c2, Vec::new(), 2, Some(&plain), &held);
        assert_eq!(gate_of(&s2, "web"), Some(false));
        assert!(s2.services[0].vrrp_backup());
        assert_eq!(gate_of(&s2, "dns"), None, "not VRRP-managed");
        gate.hold(&["198.18.0.100".parse().unwrap()], true).unwrap();
        assert_eq!(gate_of(&s2, "web"), Some(true));
        // The next reload also manages dns's VIP: web stays open, dns starts closed.
        let c3 = cfg("198.18.0.100/32, 198.18.0.101/32");
        let s3 = build_snapshot(&c3, Vec::new(), 3, Some(&s2), &held);
        gate.update(Vec::new(), vrrp::managed_vips(&c3)).unwrap();
        assert_eq!(gate_of(&s3, "web"), Some(true));
        assert_eq!(gate_of(&s3, "dns"), Some(false));
    }

    #[test]
    fn own_ipv4_skips_host_routes_ipv6_and_addresses_xvs_manages() {
        let a = |s: &str, p: u8| (s.parse::<IpAddr>().unwrap(), p);
        let not_own: HashSet<IpAddr> = ["198.18.1.2", "198.18.2.100"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        // A pool address or VIP given as /24 (or left by a crashed master) is not the port's own.
        let addrs = [
            a("2001:db8::1", 64),
            a("198.18.2.100", 24),
            a("198.18.9.9", 32),
            a("198.18.1.2", 24),
            a("198.18.1.1", 24),
        ];
        assert_eq!(
            own_ipv4(addrs, &not_own),
            Some("198.18.1.1".parse().unwrap())
        );
        assert_eq!(own_ipv4([a("198.18.1.2", 24)], &not_own), None);
        assert_eq!(own_ipv4([], &not_own), None);
    }
}
