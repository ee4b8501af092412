//! Start-up of `xvs run`, in the order of the module doc of [`super`]: each step returns a typed
//! [`DaemonError`], and whatever earlier steps set up is undone by dropping it (the interface
//! locks, the XDP filter, which detaches when its last reference goes, and the [`Threads`]
//! guard, which stops and joins every thread started so far). Locals are declared in set-up
//! order, so they drop in the reverse: threads before the filter, the filter before the locks.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;

use super::threads::Threads;
use super::{build_snapshot, real_addresses, unix_now, DaemonError, Running};
use crate::control::admin::{self, ReloadRequest};
use crate::control::announce::{AnnounceStatus, Announcer};
use crate::control::config::{self, Config};
use crate::control::health::{self, HealthHandle, HealthMetrics};
use crate::control::metrics::{self, ReloadStatus};
use crate::control::signals::DaemonSignals;
use crate::control::stats::{self, Stats};
use crate::control::sync_spec;
use crate::control::vrrp_spec as vrrp;
use crate::control::{iflock, neighbours, netlink, snapshot};
use crate::datapath::filter::{FilterPort, FilterProgram, XdpMode};
use crate::datapath::placement::{self, Placement};
use crate::datapath::worker::{spawn_pinned_workers, PollMode, WorkerConfig};
use crate::datapath::xsk::{QueueIo, XskConfig, ZeroCopy};
use crate::datapath::{Port, Processor, Shared, WorkerCounters};
use crate::steer::SteerKey;
use crate::sync::ring::{self, SyncConsumer, SyncProducer};
use crate::sync::status::SyncStatus;
use crate::sys;
use crate::vrrp::gate::{HeldFlags, SinkError, SteeringSink, VipGate};
use crate::vrrp::spec::{InstanceSpec, SyncGroups};

/// How long start-up waits for the real servers' MAC addresses.
const PRIME_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the janitor sweeps the connection table, and how many slots per shard visit.
const JANITOR_INTERVAL: Duration = Duration::from_millis(100);
const JANITOR_BUDGET: usize = 4096;
/// Where the per-interface locks live (see [`iflock`]).
const LOCK_DIR: &str = "/run/xvs/locks";
/// How long start-up waits for the interface locks of an xvs that is exiting (killed just
/// before); a running one is refused at once.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long start-up waits for an `announce.device` that exists to go away (that of an xvs
/// killed just before, whose exit is finishing) before refusing it.
const ANNOUNCE_DEVICE_WAIT: Duration = Duration::from_secs(1);

/// The XDP filter as the [`VipGate`]'s sink: the gate writes the `steer` map.
struct FilterSink(Arc<FilterProgram>);

impl SteeringSink for FilterSink {
    fn set_steering(&self, keys: &[SteerKey]) -> Result<(), SinkError> {
        Ok(self.0.set_steering(keys).map(|_| ())?)
    }
}

/// Starts the appliance from the file at `path`: everything up to `READY=1`.
pub(super) fn start(path: &Path) -> Result<Running, DaemonError> {
    if !sys::is_root() {
        return Err(DaemonError::NotRoot);
    }
    let cfg = config::load(path, &config::SystemHost::startup()).map_err(DaemonError::Config)?;
    let (specs, groups) = vrrp::specs(&cfg).map_err(|e| DaemonError::Vrrp(e.into()))?;
    // Block the daemon's signals before any thread starts, so they all inherit the mask.
    let signals = DaemonSignals::block().map_err(DaemonError::Signals)?;
    let queues = queue_ids(&cfg)?;
    let ports = ports_of(&cfg)?;
    // Created before the first snapshot, whose VRRP-managed services read them (false: no
    // instance holds its VIPs yet).
    let held = Arc::new(HeldFlags::default());
    // Held until the daemon ends (after the filter is detached; then their files are removed):
    // while we hold them, an `xvs_filter` found attached is stale. Taken before the tables are
    // allocated, so a second xvs is refused (or waits for an exiting one) before it commits
    // memory.
    let locks = lock_interfaces(&ports)?;
    // Its device goes away with the process however it ends (and this value on an error
    // return): nothing is announced before the first evaluation of the main loop.
    let announcer = match &cfg.announce {
        Some(a) => Some(Announcer::start(a, ANNOUNCE_DEVICE_WAIT)?),
        None => None,
    };
    let shared = shared_state(&cfg, &ports, &held)?;
    let filter = Arc::new(attach_filter(&cfg, &ports)?);
    // From here on, returning an error drops `filter`, which detaches it.
    let ios = open_sockets(&cfg, &ports, &queues, &filter)?;
    let gate = steer(&cfg, &shared, &filter, &held)?;
    prime_next_hops(&cfg, &ports, &shared)?;
    let announce = announcer.as_ref().map(Announcer::status);
    let started = spawn_threads(&cfg, &shared, &ports, ios, &gate, (specs, groups), announce)?;
    log_started(&cfg, &ports, &filter, started.threads.workers.len());
    sys::sd_notify("READY=1");
    Ok(Running {
        threads: started.threads,
        signals,
        requests: started.requests,
        path: path.to_path_buf(),
        cfg,
        ports,
        shared,
        filter,
        gate,
        held,
        reload: started.reload,
        health: started.health,
        address_sync_failing: false,
        draining: Vec::new(),
        announcer,
        _locks: locks,
    })
}

/// The RX queues of `iface` (`/sys/class/net/IFACE/queues/rx-N`).
fn rx_queue_count(iface: &str) -> Result<u32, DaemonError> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|source| DaemonError::QueueDir {
            dir: dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The queue ids every worker serves: the same set on every interface (a flow's reply may come in
/// on another interface, and each worker transmits on its own queue of every interface).
fn queue_ids(cfg: &Config) -> Result<Vec<u32>, DaemonError> {
    let mut sets = Vec::new();
    for i in &cfg.datapath.interfaces {
        let mut q = match &i.queues {
            config::Queues::All => (0..rx_queue_count(&i.name)?).collect(),
            config::Queues::List(l) => l.clone(),
        };
        q.sort_unstable();
        sets.push((i.name.clone(), q));
    }
    let Some((first_iface, first)) = sets.first().cloned() else {
        return Err(DaemonError::NoQueue);
    };
    if let Some((iface, queues)) = sets.into_iter().find(|s| s.1 != first) {
        return Err(DaemonError::QueuesDiffer {
            first_iface,
            first,
            iface,
            queues,
        });
    }
    if first.is_empty() {
        return Err(DaemonError::NoQueue);
    }
    if let config::Workers::Count(n) = cfg.datapath.workers {
        if n as usize != first.len() {
            return Err(DaemonError::WorkerCount {
                workers: n,
                queues: first.len(),
            });
        }
    }
    Ok(first)
}

/// The interfaces of `datapath.interfaces` as the datapath's ports. A port's own IPv4 address
/// (the outer source of TUN packets) is its first address with a prefix shorter than /32 that
/// is none of the addresses xvs itself may add or answer for: service VIPs, VRRP VIPs (a
/// crashed master may have left them behind) and FULLNAT pool addresses. Its own IPv6 address
/// (TUN6's outer source, ICMPv6 errors) is chosen likewise among its global addresses
/// ([`own_ipv6`]).
fn ports_of(cfg: &Config) -> Result<Vec<Port>, DaemonError> {
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
            let iface_err = |source| DaemonError::Interface {
                name: i.name.clone(),
                source,
            };
            let link = netlink::link_by_name(&i.name).map_err(iface_err)?;
            let addrs = netlink::interface_addresses(link.ifindex).map_err(iface_err)?;
            Ok(Port {
                name: i.name.clone(),
                ifindex: link.ifindex,
                mac: link.mac,
                ipv4: own_ipv4(addrs.iter().copied(), &not_own),
                ipv6: own_ipv6(addrs.iter().copied(), &not_own),
                mtu: u16::try_from(link.mtu).unwrap_or(u16::MAX),
            })
        })
        .collect()
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

/// The port's own global IPv6 address among `addrs` (address, prefix length): the first that is
/// not link-local, loopback, multicast or IPv4-mapped and not in `not_own`, one with a prefix
/// shorter than /128 preferred (a /128 is usually a VIP; DHCPv6 also hands out /128s, so one is
/// taken when there is nothing else).
fn own_ipv6(
    addrs: impl IntoIterator<Item = (IpAddr, u8)>,
    not_own: &HashSet<IpAddr>,
) -> Option<std::net::Ipv6Addr> {
    let candidates: Vec<(std::net::Ipv6Addr, u8)> = addrs
        .into_iter()
        .filter_map(|(a, prefix)| match a {
            IpAddr::V6(v6)
                if !not_own.contains(&a)
                    && !v6.is_unicast_link_local()
                    && !v6.is_loopback()
                    && !v6.is_multicast()
                    && !v6.is_unspecified()
                    && v6.to_ipv4_mapped().is_none() =>
            {
                Some((v6, prefix))
            }
            _ => None,
        })
        .collect();
    candidates
        .iter()
        .find(|(_, prefix)| *prefix < 128)
        .or_else(|| candidates.first())
        .map(|(a, _)| *a)
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

/// The state the workers and control threads share: the first snapshot, the kernel's next hops
/// and the connection tables (sized by `conntrack.max_entries` and the effective
/// `conntrack.max_entries_ipv6`, refused if they cannot fit).
fn shared_state(
    cfg: &Config,
    ports: &[Port],
    held: &HeldFlags,
) -> Result<Arc<Shared>, DaemonError> {
    let snap = build_snapshot(cfg, ports.to_vec(), 1, None, held);
    let nexthops = neighbours::build_table(ports)?;
    let max_entries = usize::try_from(cfg.conntrack.max_entries).unwrap_or(usize::MAX);
    let max_entries_ipv6 = usize::try_from(cfg.max_entries_ipv6()).unwrap_or(usize::MAX);
    Ok(Arc::new(Shared::try_with_tables(
        snap,
        nexthops,
        max_entries,
        max_entries_ipv6,
        &snapshot::local_pools(cfg),
    )?))
}

/// Takes an exclusive lock per attached interface (`/run/xvs/locks/net<NETNS>-if<IFINDEX>.lock`),
/// so that a second `xvs run` on the same interfaces fails before it touches the XDP program of
/// the running one. The kernel releases them when the process exits, however it exits; a start
/// right after a SIGKILL waits (at most [`LOCK_WAIT`]) for the killed process's exit to finish.
/// Dropping the locks removes their files.
fn lock_interfaces(ports: &[Port]) -> Result<iflock::InterfaceLocks, DaemonError> {
    let ns = std::fs::read_link("/proc/self/ns/net").map_err(DaemonError::Netns)?;
    let ns: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let ifaces: Vec<(String, u32)> = ports.iter().map(|p| (p.name.clone(), p.ifindex)).collect();
    let locks = iflock::lock_interfaces(Path::new(LOCK_DIR), &ns, &ifaces, LOCK_WAIT)?;
    for w in locks.waited() {
        log::warn!(
            "Interface {} was still held by an exiting xvs{}; got it after {} ms",
            w.iface,
            w.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            w.waited.as_millis()
        );
    }
    Ok(locks)
}

/// Attaches the XDP filter to every port (refusing interfaces another program owns).
fn attach_filter(cfg: &Config, ports: &[Port]) -> Result<FilterProgram, DaemonError> {
    let mode = match cfg.datapath.xdp_mode {
        config::XdpMode::Auto => XdpMode::Auto,
        config::XdpMode::Native => XdpMode::Native,
        config::XdpMode::Skb => XdpMode::Skb,
    };
    let filter_ports: Vec<FilterPort> = ports
        .iter()
        .map(|p| FilterPort {
            name: p.name.clone(),
            ifindex: p.ifindex,
            mac: p.mac,
        })
        .collect();
    Ok(FilterProgram::attach(&filter_ports, mode)?)
}

/// Opens the AF_XDP sockets of every queue (one per port) and registers them with the filter.
fn open_sockets(
    cfg: &Config,
    ports: &[Port],
    queues: &[u32],
    filter: &FilterProgram,
) -> Result<Vec<QueueIo>, DaemonError> {
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
    for &q in queues {
        let io = QueueIo::open(&iface_names, q, &xsk_cfg)?;
        for (port, fd) in io.socket_fds() {
            filter.register_socket(port, q, fd)?;
        }
        ios.push(io);
    }
    Ok(ios)
}

/// Builds the VRRP gate and steers the services through it (VRRP-managed VIPs only once their
/// instance is MASTER), and gives the filter the box's own and FULLNAT pool addresses.
fn steer(
    cfg: &Config,
    shared: &Shared,
    filter: &Arc<FilterProgram>,
    held: &Arc<HeldFlags>,
) -> Result<Arc<VipGate>, DaemonError> {
    let gate = Arc::new(VipGate::new(
        Box::new(FilterSink(filter.clone())),
        vrrp::managed_vips(cfg),
        held.clone(),
    ));
    gate.set_keys(shared.snapshot.load().steering_keys())
        .map_err(|e| DaemonError::Steering(e.into()))?;
    let own = netlink::dump_addresses()?;
    filter.set_local_addresses(&own)?;
    filter.set_local_pools(&local_pool_ranges(cfg))?;
    for (addr, _, _) in local_pool_ranges(cfg) {
        if !own.contains(&addr) {
            // Replies to it need the box's kernel to answer ARP for it.
            log::warn!(
                "Local address {addr} is not an address of this box: real servers cannot reach it until it is added to the interface on their LAN"
            );
        }
    }
    Ok(gate)
}

/// Resolves the real (and sorry) servers' MACs, waiting at most [`PRIME_TIMEOUT`].
fn prime_next_hops(cfg: &Config, ports: &[Port], shared: &Shared) -> Result<(), DaemonError> {
    let primed = neighbours::prime(ports, &real_addresses(cfg), PRIME_TIMEOUT)?;
    shared.nexthops.store(Arc::new(primed.table));
    for ip in &primed.unresolved {
        log::warn!("Real server {ip}: next-hop MAC not resolved yet (will keep trying)");
    }
    Ok(())
}

/// What [`spawn_threads`] hands the running daemon.
struct Started {
    threads: Threads,
    health: HealthHandle,
    reload: Arc<ReloadStatus>,
    requests: Receiver<ReloadRequest>,
}

/// Starts every thread: workers, neighbour refresher, expiry janitor, health checks, rate
/// estimator, VRRP, then the metrics and admin servers. First the calling (main) thread moves to
/// the control CPUs of the [`Placement`], so every control thread inherits them; each worker pins
/// itself to its own CPU. On error, the threads already started are stopped and joined (the
/// [`Threads`] guard drops).
fn spawn_threads(
    cfg: &Config,
    shared: &Arc<Shared>,
    ports: &[Port],
    ios: Vec<QueueIo>,
    gate: &Arc<VipGate>,
    (specs, groups): (Vec<InstanceSpec>, SyncGroups),
    announce: Option<Arc<AnnounceStatus>>,
) -> Result<Started, DaemonError> {
    let placed = place_threads(cfg, &ios)?;
    let mut threads = Threads::new();
    let epoch = Instant::now();
    let xsk = ios.iter().map(|io| io.stats_reader()).collect();
    let rings = SyncRings::new(cfg, ios.len());
    let workers = spawn_datapath(
        &mut threads,
        cfg,
        shared,
        ios,
        rings.workers,
        &placed.workers,
        epoch,
    )?;
    let stop = threads.stop_flag();
    let refresher = neighbours::spawn_refresher(
        ports.to_vec(),
        shared.nexthops.clone(),
        shared.neighbour_misses.clone(),
        stop.clone(),
    );
    threads
        .aux
        .push(refresher.map_err(DaemonError::spawn("the neighbour refresher"))?);
    let janitor = spawn_janitor(shared.clone(), epoch, stop.clone());
    threads
        .aux
        .push(janitor.map_err(DaemonError::spawn("the expiry janitor"))?);
    let health_metrics = Arc::new(HealthMetrics::default());
    let (health, thread) = health::spawn(
        shared.clone(),
        health_metrics.clone(),
        rings.health,
        stop.clone(),
    )
    .map_err(DaemonError::spawn("the health checks"))?;
    threads.aux.push(thread);
    health.update(health::plan(cfg, &shared.snapshot.load()));
    let reload = Arc::new(ReloadStatus::default());
    reload.successful.store(true, Ordering::Relaxed);
    reload
        .timestamp_seconds
        .store(unix_now(), Ordering::Relaxed);
    let stats = Arc::new(Stats::new(shared.clone(), workers.clone()));
    let estimator = stats::spawn_estimator(stats.clone(), stop.clone());
    threads
        .aux
        .push(estimator.map_err(DaemonError::spawn("the rate estimator"))?);
    let (vrrp_handle, vrrp_thread) =
        vrrp::spawn(specs, groups, gate.clone(), epoch, stop).map_err(DaemonError::VrrpStart)?;
    let vrrp_status = vrrp_handle.status.clone();
    threads.vrrp = Some((vrrp_handle, vrrp_thread));
    let sync = spawn_sync(&mut threads, cfg, shared, rings.consumers, epoch)?;
    let sources = Arc::new(metrics::Sources {
        shared: shared.clone(),
        workers,
        xsk,
        reload: reload.clone(),
        health: health_metrics,
        vrrp: vrrp_status.clone(),
        stats: stats.clone(),
        sync: sync.clone(),
        announce: announce.clone(),
    });
    let (reload_tx, requests) = admin::reload_channel();
    let admin_state = admin::AdminState {
        shared: shared.clone(),
        epoch,
        reloads: reload_tx,
        stats,
        vrrp: vrrp_status,
        sync,
        announce,
    };
    spawn_servers(&mut threads, cfg, sources, admin_state)?;
    Ok(Started {
        threads,
        health,
        reload,
        requests,
    })
}

/// Connection sync's event rings when `sync:` is configured (none otherwise): one per worker
/// and one for the health checker (the connections `on_failure: remove` deletes), each of
/// [`ring::DEFAULT_CAPACITY`] records (32 768, about 3.5 MiB: a second of a busy worker's
/// creates and closes before the sync thread, which drains every 5 ms, falls behind; a full
/// ring drops and counts, `xvs_sync_dropped_total{stage="ring"}`).
struct SyncRings {
    /// The i-th worker's producer.
    workers: Vec<Option<SyncProducer>>,
    health: Option<SyncProducer>,
    /// Every ring's consumer, for the sync thread.
    consumers: Vec<SyncConsumer>,
}

impl SyncRings {
    fn new(cfg: &Config, workers: usize) -> SyncRings {
        if cfg.sync.is_none() {
            return SyncRings {
                workers: (0..workers).map(|_| None).collect(),
                health: None,
                consumers: Vec::new(),
            };
        }
        let (mut producers, consumers): (Vec<_>, Vec<_>) = (0..=workers)
            .map(|_| ring::ring(ring::DEFAULT_CAPACITY))
            .unzip();
        let health = producers.pop();
        SyncRings {
            workers: producers.into_iter().map(Some).collect(),
            health,
            consumers,
        }
    }
}

/// Starts the connection sync thread when `sync:` is configured, with the workers' and the
/// health checker's rings and `shared`'s install and dump ([`sync_spec::tables`]). Returns what
/// it publishes, for the metrics and `xvs ctl sync`.
fn spawn_sync(
    threads: &mut Threads,
    cfg: &Config,
    shared: &Arc<Shared>,
    rings: Vec<SyncConsumer>,
    epoch: Instant,
) -> Result<Option<Arc<SyncStatus>>, DaemonError> {
    let Some(s) = &cfg.sync else {
        return Ok(None);
    };
    let tables = sync_spec::tables(shared, rings);
    let (status, thread) = sync_spec::spawn(s, tables, epoch, threads.stop_flag())
        .map_err(|e| DaemonError::spawn("connection sync")(std::io::Error::other(e)))?;
    threads.aux.push(thread);
    Ok(Some(status))
}

/// Places the threads ([`placement::place`] on the process's CPUs and `datapath.cpus`), moves
/// the calling thread to the control CPUs and logs the placement.
fn place_threads(cfg: &Config, ios: &[QueueIo]) -> Result<Placement, DaemonError> {
    let allowed = sys::thread_cpus().map_err(DaemonError::Affinity)?;
    let list = cfg.datapath.cpus.list();
    let placed = placement::place(&allowed, list.as_deref(), ios.len()).ok_or_else(|| {
        DaemonError::Affinity(std::io::Error::other("no CPU to run the workers on"))
    })?;
    sys::set_thread_cpus(&placed.control).map_err(|source| DaemonError::ControlCpus {
        cpus: placement::cpu_list(&placed.control),
        source,
    })?;
    let queues: Vec<u32> = ios.iter().map(QueueIo::queue).collect();
    log::info!("{}", placed.describe(&queues));
    Ok(placed)
}

/// Starts one worker per queue, the i-th pinned to `cpus[i]` and enqueueing its sync events on
/// `rings[i]`; returns each worker's (queue,
/// counters).
fn spawn_datapath(
    threads: &mut Threads,
    cfg: &Config,
    shared: &Arc<Shared>,
    ios: Vec<QueueIo>,
    rings: Vec<Option<SyncProducer>>,
    cpus: &[usize],
    epoch: Instant,
) -> Result<Vec<(u32, Arc<WorkerCounters>)>, DaemonError> {
    let poll = match cfg.datapath.poll {
        config::Poll::Busy => PollMode::Busy,
        config::Poll::Wakeup => PollMode::Wakeup,
    };
    let mut workers = Vec::with_capacity(ios.len());
    let mut counters = Vec::with_capacity(ios.len());
    for (io, ring) in ios.into_iter().zip(rings) {
        let mut p = Processor::new(shared.clone());
        p.set_sync(ring);
        counters.push((io.queue(), p.counters.clone()));
        workers.push((io, p));
    }
    let cfg = WorkerConfig::new(poll, epoch);
    threads.workers = spawn_pinned_workers(workers, cpus, cfg, threads.stop_flag())?;
    Ok(counters)
}

/// Starts the metrics server, then the admin server (each named for the stop's log line).
fn spawn_servers(
    threads: &mut Threads,
    cfg: &Config,
    sources: Arc<metrics::Sources>,
    admin_state: admin::AdminState,
) -> Result<(), DaemonError> {
    let listen = cfg.global.metrics_listen;
    let m = metrics::spawn_server(listen, sources, threads.stop_flag()).map_err(|source| {
        DaemonError::Listen {
            setting: "global.metrics_listen",
            addr: listen.to_string(),
            source,
        }
    })?;
    threads.servers.push(("metrics", m));
    let socket = &cfg.global.admin_socket;
    let a = admin::spawn_server(socket, admin_state, threads.stop_flag()).map_err(|source| {
        DaemonError::Listen {
            setting: "global.admin_socket",
            addr: socket.display().to_string(),
            source,
        }
    })?;
    threads.servers.push(("admin", a));
    Ok(())
}

/// `xvs 0.x started (ROUTER): N service(s), N worker(s), XDP on IFACE (MODE), ...`.
fn log_started(cfg: &Config, ports: &[Port], filter: &FilterProgram, workers: usize) {
    let modes: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mode = u8::try_from(i)
                .ok()
                .and_then(|i| filter.attach_mode(i))
                .map_or("?", |m| m.name());
            format!("{} ({mode})", p.name)
        })
        .collect();
    log::info!(
        "xvs {} started ({}): {} service(s), {} worker(s), XDP on {}",
        env!("CARGO_PKG_VERSION"),
        cfg.global.router_id,
        cfg.services.len(),
        workers,
        modes.join(", ")
    );
}

/// Sweeps the connection and persistence tables for expired entries off the packet path.
fn spawn_janitor(
    shared: Arc<Shared>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xvs-janitor".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn own_ipv6_is_a_global_address_xvs_does_not_manage() {
        let a = |s: &str, p: u8| (s.parse::<IpAddr>().unwrap(), p);
        let not_own: HashSet<IpAddr> = ["2001:2:0:1::2", "2001:2::100"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let addrs = [
            a("198.18.1.1", 24),
            a("fe80::18:ff:fe01:1", 64),
            a("2001:2::100", 64),
            a("2001:2:0:9::9", 128),
            a("2001:2:0:1::2", 64),
            a("::ffff:198.18.1.1", 96),
            a("2001:2:0:1::1", 64),
        ];
        let ip6 = |s: &str| Some(s.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(own_ipv6(addrs, &not_own), ip6("2001:2:0:1::1"));
        // A /128 only when there is nothing else (DHCPv6 hands out /128s).
        assert_eq!(
            own_ipv6([a("fe80::1", 64), a("2001:2:0:9::9", 128)], &not_own),
            ip6("2001:2:0:9::9")
        );
        assert_eq!(
            own_ipv6([a("fe80::1", 64), a("2001:2::100", 64)], &not_own),
            None
        );
        assert_eq!(own_ipv6([], &not_own), None);
    }
}
