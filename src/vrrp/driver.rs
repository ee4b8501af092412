//! The VRRP driver: one thread (`xvs-vrrp`, off the packet path) that owns the raw sockets and
//! drives every [`VrrpInstance`] with `now` from the monotonic clock (nanoseconds since the
//! daemon's epoch).
//!
//! Each loop: take reload commands; receive every waiting advert on each interface's socket and
//! hand it to the instance of its VRID (no instance → counted as `vrid`; any rejection counted
//! by reason in `xvs_vrrp_errors_total`); fire due timers; check tracked interfaces (every
//! [`LINK_CHECK_INTERVAL`], the instance's own interface included, as keepalived does) and track
//! scripts; then send the adverts queued and act on state changes:
//! - MASTER: add the VIPs to the interface (netlink), open them in the XDP filter
//!   ([`super::gate::VipGate`]), send gratuitous ARPs ([`super::garp`]: 5 per VIP now, 5 more
//!   5 s later), run `notify.master`.
//! - BACKUP / FAULT / stopped: close the VIPs in the filter, remove them from the interface, run
//!   `notify.backup` / `notify.fault`. A BACKUP at start-up removes VIPs a previous run may have
//!   left behind (a crash).
//! - Sync groups: a member entering MASTER takes the other members of its group from BACKUP to
//!   MASTER, one leaving MASTER for BACKUP takes them to BACKUP, a fault of one member is a
//!   fault of all, and a BACKUP member takes over only when every BACKUP member of the group
//!   wants to (keepalived's `vrrp_sync_group`, which avoids thrashing).
//! - Track scripts: `sh -c COMMAND` every `interval` (killed and counted as a failure if still
//!   running at the next run); `fall` failures in a row mark it down, `rise` successes up; a
//!   script starts up. Down with `weight: 0` → FAULT; otherwise the effective priority is the
//!   configured one plus the weights of the positive-weight scripts that are up and of the
//!   negative-weight ones that are down, clamped to 1..254 (an owner's 255 is never changed).
//!
//! It sleeps in `poll(2)` until the next timer, packet or wake-up ([`VrrpHandle::wake`]), at most
//! [`MAX_WAIT`]: on stop every instance shuts down (a MASTER sends its priority-0 advert and
//! releases its VIPs) before the thread ends.
//!
//! Log lines use keepalived's wording: `(VI_1) Entering MASTER STATE`,
//! `(VI_1) Entering BACKUP STATE`, `(VI_1) Entering FAULT STATE`, `(VI_1) sent 0 priority`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::gate::VipGate;
use super::packet::{encode_ipv4, parse_ipv4, Version, MULTICAST_V4};
use super::socket::{poll_readable, ArpSocket, VrrpSocket, Waker};
pub use super::status::{state_gauge, InstanceStatus, VrrpStatus};
use super::{garp, Event, InstanceConfig, State, VrrpError, VrrpInstance};
use crate::control::config::{self, Config, VrrpVersion};
use crate::control::netlink;
use crate::flow::Nanos;

/// How often tracked interfaces (and each instance's own) are checked.
pub const LINK_CHECK_INTERVAL: Nanos = 100_000_000;
/// The longest sleep (a stop or a reload also wakes the thread at once, [`VrrpHandle::wake`]).
pub const MAX_WAIT: Duration = Duration::from_millis(10);
/// The longest sleep while no instance is configured (a reload may add some).
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Adverts read per socket per wake-up (bounded work per loop).
const RECV_BUDGET: usize = 64;

/// One configured instance, resolved against the system (interface index and MAC, primary
/// address).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub name: String,
    pub interface: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub cfg: InstanceConfig,
    /// The VIPs with their prefix lengths, as added to the interface.
    pub prefixes: Vec<(IpAddr, u8)>,
    /// Unicast peers (empty = multicast 224.0.0.18).
    pub peers: Vec<Ipv4Addr>,
    pub track_interfaces: Vec<String>,
    pub track_scripts: Vec<config::TrackScript>,
    pub notify: config::Notify,
}

/// What makes two instances across a reload the same virtual router.
type Identity = (String, String, u8, Version);

impl InstanceSpec {
    fn identity(&self) -> Identity {
        (
            self.name.clone(),
            self.interface.clone(),
            self.cfg.vrid,
            self.cfg.version,
        )
    }
}

/// The sync groups, each as the names of its member instances. The driver resolves names
/// against the instances that run (a member that could not start is left out), never by
/// position in the file.
pub type SyncGroups = Vec<Vec<String>>;

/// The configuration's instances and sync groups, resolved: every interface must exist and have
/// an IPv4 address of its own (the primary address adverts are sent from, the first one that is
/// not a VIP of any instance), and every instance's values must be ones it can run
/// ([`super::instance::validate`]), so a reload is refused before anything changes.
pub fn specs(cfg: &Config) -> Result<(Vec<InstanceSpec>, SyncGroups), String> {
    let all_vips: HashSet<IpAddr> = cfg
        .vrrp
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().map(|v| v.addr))
        .collect();
    let mut out = Vec::with_capacity(cfg.vrrp.instances.len());
    for i in &cfg.vrrp.instances {
        let what = |e: String| format!("vrrp instance `{}`: {e}", i.name);
        let link = netlink::link_by_name(&i.interface)
            .map_err(|e| what(format!("interface {}: {e}", i.interface)))?;
        let primary = netlink::interface_addresses(link.ifindex)
            .map_err(|e| what(e.to_string()))?
            .into_iter()
            .map(|(a, _)| a)
            .find(|a| a.is_ipv4() && !all_vips.contains(a))
            .ok_or_else(|| {
                what(format!(
                    "interface {} has no IPv4 address of its own to send adverts from",
                    i.interface
                ))
            })?;
        let peers = i
            .unicast_peers
            .iter()
            .map(|p| match p {
                IpAddr::V4(a) => Ok(*a),
                IpAddr::V6(_) => Err(what(format!("IPv6 peer {p} is not supported yet"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = InstanceSpec {
            name: i.name.clone(),
            interface: i.interface.clone(),
            ifindex: link.ifindex,
            mac: link.mac,
            cfg: InstanceConfig {
                vrid: i.vrid,
                version: match i.version {
                    VrrpVersion::V2 => Version::V2,
                    VrrpVersion::V3 => Version::V3,
                },
                priority: i.priority,
                advert_interval: i.advert_interval.as_nanos() as Nanos,
                preempt: i.preempt,
                preempt_delay: i.preempt_delay.as_nanos() as Nanos,
                primary,
                vips: i.vips.iter().map(|v| v.addr).collect(),
                unicast: !peers.is_empty(),
            },
            prefixes: i.vips.iter().map(|v| (v.addr, v.len)).collect(),
            peers,
            track_interfaces: i.track_interfaces.clone(),
            track_scripts: i.track_scripts.clone(),
            notify: i.notify.clone(),
        };
        super::instance::validate(&spec.cfg).map_err(|e| what(e.to_string()))?;
        out.push(spec);
    }
    let groups = cfg
        .vrrp
        .sync_groups
        .iter()
        .map(|g| g.instances.clone())
        .collect();
    Ok((out, groups))
}

/// Every VIP of every VRRP instance of `cfg` (what the [`VipGate`] manages: steered only while
/// held by a MASTER).
pub fn managed_vips(cfg: &Config) -> HashSet<IpAddr> {
    cfg.vrrp
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().map(|v| v.addr))
        .collect()
}

enum Command {
    Reconfigure {
        specs: Vec<InstanceSpec>,
        groups: SyncGroups,
        reply: mpsc::Sender<Vec<String>>,
    },
}

/// The daemon's handle on the VRRP thread.
pub struct VrrpHandle {
    tx: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    pub status: Arc<VrrpStatus>,
}

impl VrrpHandle {
    /// Wakes the thread now (call after setting the stop flag: a MASTER's priority-0 release
    /// then goes out at once).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Applies a reloaded configuration: instances whose identity (name, interface, VRID,
    /// version) is unchanged keep their state and take the new values in place; removed ones
    /// shut down (a MASTER releases with priority 0 and removes its VIPs); added ones start.
    /// Returns the change lines.
    pub fn reconfigure(&self, specs: Vec<InstanceSpec>, groups: SyncGroups) -> Vec<String> {
        let (reply, rx) = mpsc::channel();
        if self
            .tx
            .send(Command::Reconfigure {
                specs,
                groups,
                reply,
            })
            .is_err()
        {
            return vec!["VRRP thread is not running; VRRP changes not applied".into()];
        }
        self.waker.wake();
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| vec!["VRRP thread did not answer; VRRP changes not applied".into()])
    }
}

/// Starts the VRRP thread with `specs` (from [`specs`]).
pub fn spawn(
    specs: Vec<InstanceSpec>,
    groups: SyncGroups,
    gate: Arc<VipGate>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(VrrpHandle, JoinHandle<()>)> {
    let status = Arc::new(VrrpStatus::default());
    let arp = ArpSocket::open()?;
    let (tx, rx) = mpsc::channel();
    let waker = Arc::new(Waker::new()?);
    let mut d = Driver {
        waker: waker.clone(),
        epoch,
        insts: Vec::new(),
        groups: Vec::new(),
        sockets: Vec::new(),
        arp,
        gate,
        status: status.clone(),
        children: Vec::new(),
        next_link_check: 0,
        dirty: true,
    };
    let now = d.now();
    // At start every instance is "added"; anything else (a socket that cannot open, an
    // instance that cannot start) is logged.
    for line in d.reconfigure(now, specs, groups) {
        if line.ends_with(" added") {
            log::debug!("{line}");
        } else {
            log::info!("{line}");
        }
    }
    let thread = std::thread::Builder::new()
        .name("xvs-vrrp".into())
        .spawn(move || d.run(&rx, &stop))?;
    Ok((VrrpHandle { tx, waker, status }, thread))
}

struct Script {
    spec: config::TrackScript,
    next_run: Nanos,
    running: Option<(Child, Nanos)>,
    up: bool,
    successes: u32,
    failures: u32,
}

struct Inst {
    spec: InstanceSpec,
    inst: VrrpInstance,
    /// VIPs added to the interface and open in the gate.
    holding: bool,
    /// When the second gratuitous-ARP burst is due.
    garp_at: Option<Nanos>,
    scripts: Vec<Script>,
    /// Own or tracked interface down.
    link_down: bool,
    group: Option<usize>,
    transitions: u64,
    sent: u64,
    received: u64,
}

impl Inst {
    fn new(spec: InstanceSpec, now: Nanos) -> Result<Inst, String> {
        let inst = VrrpInstance::new(spec.cfg.clone(), now).map_err(|e| e.to_string())?;
        let scripts = scripts_of(&spec, now);
        Ok(Inst {
            spec,
            inst,
            holding: false,
            garp_at: None,
            scripts,
            link_down: false,
            group: None,
            transitions: 0,
            sent: 0,
            received: 0,
        })
    }

    /// Own reasons to be in FAULT: a link down or a weight-0 script down.
    fn own_fault(&self) -> bool {
        self.link_down || self.scripts.iter().any(|s| s.spec.weight == 0 && !s.up)
    }

    /// Configured priority adjusted by the script weights.
    fn effective_priority(&self) -> u8 {
        let base = self.spec.cfg.priority;
        if base == 255 {
            return 255;
        }
        let adj: i32 = self
            .scripts
            .iter()
            .map(|s| match (s.spec.weight, s.up) {
                (w, true) if w > 0 => w,
                (w, false) if w < 0 => w,
                _ => 0,
            })
            .sum();
        (i32::from(base) + adj).clamp(1, 254) as u8
    }
}

fn scripts_of(spec: &InstanceSpec, now: Nanos) -> Vec<Script> {
    spec.track_scripts
        .iter()
        .map(|t| Script {
            spec: t.clone(),
            next_run: now,
            running: None,
            up: true,
            successes: 0,
            failures: 0,
        })
        .collect()
}

/// What a reload does to the instances that stay or come, decided without IO.
struct Reload {
    insts: Vec<Inst>,
    /// The sync groups as indices into `insts` (members that did not start are left out).
    groups: Vec<Vec<usize>>,
    /// Addresses (interface index, VIP, prefix length) that instances holding them no longer
    /// have and no other holding instance has: to remove from the interface.
    dropped: Vec<(u32, IpAddr, u8)>,
    /// VIPs that instances holding them no longer have and no other holding instance has: to
    /// stop steering (a VIP moved from a MASTER instance to a BACKUP one).
    released: Vec<IpAddr>,
    lines: Vec<String>,
}

/// Matches `specs` with the `old` instances (by identity): a kept one takes its new
/// configuration in place (or, if refused, keeps running its old one), a new one starts (or is
/// left out, with a line). Sync groups are resolved by member name against the instances that
/// run, so a member that did not start never shifts the others.
fn plan_reload(
    mut old: Vec<Inst>,
    specs: Vec<InstanceSpec>,
    groups: &[Vec<String>],
    now: Nanos,
) -> Reload {
    let mut insts: Vec<Inst> = Vec::with_capacity(specs.len());
    let mut lines = Vec::new();
    let mut given_up: Vec<(u32, IpAddr, u8)> = Vec::new();
    for spec in specs {
        match old
            .iter()
            .position(|i| i.spec.identity() == spec.identity())
        {
            Some(p) => {
                let mut i = old.remove(p);
                if i.spec != spec {
                    match i.inst.reconfigure(spec.cfg.clone()) {
                        Ok(()) => {
                            lines.push(format!("VRRP instance {} changed", spec.name));
                            if i.holding {
                                for &(a, l) in &i.spec.prefixes {
                                    if !spec.prefixes.contains(&(a, l)) {
                                        given_up.push((i.spec.ifindex, a, l));
                                    }
                                }
                            }
                            if i.spec.track_scripts != spec.track_scripts {
                                i.scripts = scripts_of(&spec, now);
                            }
                            i.spec = spec;
                        }
                        Err(e) => lines.push(format!(
                            "VRRP instance {}: {e}; it keeps running its previous configuration",
                            spec.name
                        )),
                    }
                }
                insts.push(i);
            }
            None => match Inst::new(spec.clone(), now) {
                Ok(i) => {
                    lines.push(format!("VRRP instance {} added", spec.name));
                    insts.push(i);
                }
                Err(e) => lines.push(format!(
                    "VRRP instance {}: {e}; it is not started",
                    spec.name
                )),
            },
        }
    }
    let groups: Vec<Vec<usize>> = groups
        .iter()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| insts.iter().position(|i| &i.spec.name == n))
                .collect()
        })
        .collect();
    for i in &mut insts {
        i.group = None;
    }
    for (g, members) in groups.iter().enumerate() {
        for &k in members {
            insts[k].group = Some(g);
        }
    }
    let held = |ifindex: Option<u32>, a: IpAddr, l: Option<u8>| {
        insts.iter().any(|i| {
            i.holding
                && ifindex.is_none_or(|x| x == i.spec.ifindex)
                && i.spec
                    .prefixes
                    .iter()
                    .any(|&(b, m)| b == a && l.is_none_or(|l| l == m))
        })
    };
    let dropped: Vec<(u32, IpAddr, u8)> = given_up
        .iter()
        .copied()
        .filter(|&(x, a, l)| !held(Some(x), a, Some(l)))
        .collect();
    let mut released: Vec<IpAddr> = given_up
        .iter()
        .map(|&(_, a, _)| a)
        .filter(|&a| !held(None, a, None))
        .collect();
    released.sort();
    released.dedup();
    Reload {
        insts,
        groups,
        dropped,
        released,
        lines,
    }
}

/// Per sync group: whether any member has a fault of its own.
fn group_faults(insts: &[Inst], groups: &[Vec<usize>]) -> Vec<bool> {
    groups
        .iter()
        .map(|g| g.iter().filter_map(|&k| insts.get(k)).any(Inst::own_fault))
        .collect()
}

struct Driver {
    epoch: Instant,
    /// In the poll set after the sockets: a stop or a command is waiting.
    waker: Arc<Waker>,
    insts: Vec<Inst>,
    groups: Vec<Vec<usize>>,
    /// One socket per interface in use: (interface, socket).
    sockets: Vec<(String, VrrpSocket)>,
    arp: ArpSocket,
    gate: Arc<VipGate>,
    status: Arc<VrrpStatus>,
    /// Notify commands still running (reaped each loop).
    children: Vec<Child>,
    next_link_check: Nanos,
    dirty: bool,
}

fn shell(cmd: &str) -> std::io::Result<Child> {
    Process::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl Driver {
    fn now(&self) -> Nanos {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn run(mut self, rx: &mpsc::Receiver<Command>, stop: &AtomicBool) {
        let mut ready = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let now = self.now();
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    Command::Reconfigure {
                        specs,
                        groups,
                        reply,
                    } => {
                        let lines = self.reconfigure(now, specs, groups);
                        let _ = reply.send(lines);
                    }
                }
            }
            if stop.load(Ordering::Relaxed) {
                for i in &mut self.insts {
                    i.inst.shutdown(now);
                }
                self.flush(now);
                self.kill_scripts();
                self.publish();
                return;
            }
            for &k in &ready {
                if k == self.sockets.len() {
                    self.waker.drain();
                } else {
                    self.receive(k, now, &mut buf);
                }
            }
            self.defer_group_takeovers(now);
            for i in &mut self.insts {
                i.inst.handle_timeout(now);
            }
            if now >= self.next_link_check {
                self.next_link_check = now + LINK_CHECK_INTERVAL;
                self.check_links();
            }
            self.run_scripts(now);
            self.apply_faults_and_priorities(now);
            self.flush(now);
            self.second_garps(now);
            self.children
                .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            if self.dirty {
                self.publish();
            }
            let cap = if self.insts.is_empty() {
                IDLE_WAIT
            } else {
                MAX_WAIT
            };
            let wait = self.next_deadline().map_or(cap, |t| {
                let now = self.now();
                Duration::from_nanos(t.saturating_sub(now)).min(cap)
            });
            // Round up to whole milliseconds so that a timer is never polled early.
            let ms = wait.as_nanos().div_ceil(1_000_000) as i32;
            let fds: Vec<_> = self
                .sockets
                .iter()
                .map(|(_, s)| s.as_raw_fd())
                .chain(std::iter::once(self.waker.as_raw_fd()))
                .collect();
            if let Err(e) = poll_readable(&fds, ms, &mut ready) {
                log::error!("VRRP: poll failed: {e}");
                std::thread::sleep(MAX_WAIT);
            }
        }
    }

    /// A BACKUP member of a sync group takes over only when every other BACKUP member of the
    /// group wants to as well (its Master_Down_Timer ran out too); until then it waits for the
    /// earliest of their timers. A member that keeps hearing a master so keeps the whole group
    /// BACKUP, instead of the group thrashing between the two boxes.
    fn defer_group_takeovers(&mut self, now: Nanos) {
        for g in 0..self.groups.len() {
            let due = |i: &Inst| {
                i.inst.state() == State::Backup && i.inst.poll_timeout().is_some_and(|t| t <= now)
            };
            let waiting: Option<Nanos> = self.groups[g]
                .iter()
                .filter_map(|&k| self.insts.get(k))
                .filter(|i| i.inst.state() == State::Backup)
                .filter_map(|i| i.inst.poll_timeout())
                .filter(|&t| t > now)
                .min();
            let Some(until) = waiting else { continue };
            for &k in &self.groups[g] {
                if let Some(i) = self.insts.get_mut(k) {
                    if due(i) {
                        i.inst.defer_takeover(until);
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Nanos> {
        self.insts
            .iter()
            .flat_map(|i| {
                i.inst
                    .poll_timeout()
                    .into_iter()
                    .chain(i.garp_at)
                    .chain(i.scripts.iter().map(|s| s.next_run))
            })
            .chain(std::iter::once(self.next_link_check))
            .min()
    }

    fn receive(&mut self, k: usize, now: Nanos, buf: &mut [u8]) {
        for _ in 0..RECV_BUDGET {
            let Some((iface, sock)) = self.sockets.get(k) else {
                return;
            };
            let n = match sock.recv(buf) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) => {
                    log::error!("VRRP: receive on {iface} failed: {e}");
                    return;
                }
            };
            let advert = match parse_ipv4(&buf[..n]) {
                Ok(a) => a,
                Err(e) => {
                    self.status.count_error(e);
                    continue;
                }
            };
            let iface = iface.clone();
            let Some(i) = self
                .insts
                .iter_mut()
                .find(|i| i.spec.interface == iface && i.spec.cfg.vrid == advert.vrid)
            else {
                self.status.count_error(VrrpError::Vrid);
                continue;
            };
            match i.inst.handle_advert(now, &advert) {
                Ok(()) => i.received += 1,
                Err(e) => self.status.count_error(e),
            }
            self.dirty = true;
        }
    }

    fn check_links(&mut self) {
        let mut cache: HashMap<String, bool> = HashMap::new();
        let mut up = |name: &str| -> bool {
            *cache
                .entry(name.to_string())
                .or_insert_with(|| netlink::link_by_name(name).is_ok_and(|l| l.up))
        };
        for i in &mut self.insts {
            let down: Vec<String> = std::iter::once(&i.spec.interface)
                .chain(&i.spec.track_interfaces)
                .filter(|n| !up(n))
                .cloned()
                .collect();
            let now_down = !down.is_empty();
            if now_down != i.link_down {
                if now_down {
                    log::info!("({}) Netlink reports {} down", i.spec.name, down.join(", "));
                } else {
                    log::info!("({}) Netlink reports interfaces up", i.spec.name);
                }
                i.link_down = now_down;
            }
        }
    }

    fn run_scripts(&mut self, now: Nanos) {
        for i in &mut self.insts {
            for s in &mut i.scripts {
                let mut result = None;
                if let Some((child, started)) = &mut s.running {
                    match child.try_wait() {
                        Ok(Some(st)) => result = Some(st.success()),
                        Ok(None) => {
                            if now.saturating_sub(*started) >= s.spec.interval.as_nanos() as Nanos {
                                let _ = child.kill();
                                let _ = child.wait();
                                result = Some(false);
                            }
                        }
                        Err(_) => result = Some(false),
                    }
                }
                if let Some(ok) = result {
                    s.running = None;
                    if ok {
                        s.successes = s.successes.saturating_add(1);
                        s.failures = 0;
                        if !s.up && s.successes >= s.spec.rise {
                            s.up = true;
                            log::info!("VRRP_Script({}) succeeded", s.spec.command);
                        }
                    } else {
                        s.failures = s.failures.saturating_add(1);
                        s.successes = 0;
                        if s.up && s.failures >= s.spec.fall {
                            s.up = false;
                            log::info!("VRRP_Script({}) failed", s.spec.command);
                        }
                    }
                }
                if s.running.is_none() && now >= s.next_run {
                    s.next_run = now + s.spec.interval.as_nanos() as Nanos;
                    match shell(&s.spec.command) {
                        Ok(c) => s.running = Some((c, now)),
                        Err(e) => {
                            log::error!("VRRP_Script({}) cannot start: {e}", s.spec.command);
                            s.failures = s.failures.saturating_add(1);
                        }
                    }
                }
            }
        }
    }

    fn kill_scripts(&mut self) {
        for i in &mut self.insts {
            for s in &mut i.scripts {
                if let Some((mut c, _)) = s.running.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    fn apply_faults_and_priorities(&mut self, now: Nanos) {
        let group_fault = group_faults(&self.insts, &self.groups);
        for i in &mut self.insts {
            let fault = i.own_fault()
                || i.group
                    .is_some_and(|g| group_fault.get(g).copied().unwrap_or(false));
            i.inst.set_fault(now, fault);
            let p = i.effective_priority();
            if p != i.inst.priority() {
                log::info!(
                    "({}) Changing effective priority from {} to {p}",
                    i.spec.name,
                    i.inst.priority()
                );
                i.inst.set_priority(p);
                self.dirty = true;
            }
        }
    }

    /// Sends queued adverts and acts on state changes until none is left (sync groups can
    /// cause more; bounded).
    fn flush(&mut self, now: Nanos) {
        for _ in 0..8 {
            let mut follow: Vec<(usize, State)> = Vec::new();
            for k in 0..self.insts.len() {
                self.send_adverts(k);
                while let Some(e) = self.insts[k].inst.poll_event() {
                    self.on_event(k, e, now);
                    if let Some(g) = self.insts[k].group {
                        for &other in self.groups.get(g).into_iter().flatten() {
                            if other != k {
                                follow.push((other, e.state()));
                            }
                        }
                    }
                }
            }
            if follow.is_empty() {
                return;
            }
            for (k, s) in follow {
                if let Some(i) = self.insts.get_mut(k) {
                    i.inst.follow(now, s);
                }
            }
        }
    }

    fn send_adverts(&mut self, k: usize) {
        let mut buf = [0u8; 1100];
        let i = &mut self.insts[k];
        let Some((_, sock)) = self.sockets.iter().find(|(n, _)| *n == i.spec.interface) else {
            return;
        };
        while let Some(t) = i.inst.poll_transmit() {
            if t.priority == 0 {
                log::info!("({}) sent 0 priority", i.spec.name);
            }
            let fields = i.inst.advert_fields(&t);
            let dsts: Vec<Ipv4Addr> = if i.spec.peers.is_empty() {
                vec![MULTICAST_V4]
            } else {
                i.spec.peers.clone()
            };
            for dst in dsts {
                let n = match encode_ipv4(&mut buf, &fields, i.spec.cfg.primary, IpAddr::V4(dst)) {
                    Ok(n) => n,
                    Err(e) => {
                        log::error!("({}) cannot encode an advert: {e}", i.spec.name);
                        continue;
                    }
                };
                match sock.send(&buf[..n], dst) {
                    Ok(()) => i.sent += 1,
                    Err(e) => log::error!("({}) cannot send an advert to {dst}: {e}", i.spec.name),
                }
            }
            self.dirty = true;
        }
    }

    fn on_event(&mut self, k: usize, e: Event, now: Nanos) {
        self.dirty = true;
        let i = &mut self.insts[k];
        i.transitions += 1;
        let name = i.spec.name.clone();
        match e {
            Event::Stopped => log::info!("({name}) Stopped"),
            _ => log::info!("({name}) Entering {} STATE", e.state().name()),
        }
        let notify = match e {
            Event::BecomeMaster => i.spec.notify.master.clone(),
            Event::BecomeBackup => i.spec.notify.backup.clone(),
            Event::BecomeFault => i.spec.notify.fault.clone(),
            Event::Stopped => None,
        };
        if e == Event::BecomeMaster {
            self.take_vips(k, now);
        } else {
            self.release_vips(k);
        }
        if let Some(cmd) = notify {
            match shell(&cmd) {
                Ok(c) => self.children.push(c),
                Err(e) => log::error!("({name}) cannot run notify command: {e}"),
            }
        }
    }

    fn take_vips(&mut self, k: usize, now: Nanos) {
        let i = &mut self.insts[k];
        for &(addr, len) in &i.spec.prefixes {
            if let Err(e) = netlink::add_address(i.spec.ifindex, addr, len) {
                log::error!(
                    "({}) cannot add {addr}/{len} to {}: {e}",
                    i.spec.name,
                    i.spec.interface
                );
            }
        }
        if let Err(e) = self.gate.hold(&i.spec.cfg.vips, true) {
            log::error!("({}) cannot steer the VIPs: {e}", i.spec.name);
        }
        i.holding = true;
        i.garp_at = Some(now + garp::MASTER_DELAY);
        self.send_garps(k);
    }

    fn release_vips(&mut self, k: usize) {
        let i = &mut self.insts[k];
        i.garp_at = None;
        // Close the filter first: from here on the datapath does not forward for the VIPs.
        if let Err(e) = self.gate.hold(&i.spec.cfg.vips, false) {
            log::error!("({}) cannot stop steering the VIPs: {e}", i.spec.name);
        }
        // Also at start-up (not holding): a previous run may have left them behind.
        for &(addr, len) in &i.spec.prefixes {
            if let Err(e) = netlink::del_address(i.spec.ifindex, addr, len) {
                log::error!(
                    "({}) cannot remove {addr}/{len} from {}: {e}",
                    i.spec.name,
                    i.spec.interface
                );
            }
        }
        i.holding = false;
    }

    fn send_garps(&self, k: usize) {
        let i = &self.insts[k];
        // The interface's MAC now, not the one read at start-up: after `ip link set dev X
        // address ...` the datapath serves only the new MAC (frames to the old one are
        // `not_our_mac`), so announcing the old one would strand the VIP until the neighbours'
        // ARP entries expire. Falls back to the start-up MAC if the link cannot be read.
        let mac = netlink::link_by_name(&i.spec.interface).map_or(i.spec.mac, |l| l.mac);
        for vip in &i.spec.cfg.vips {
            let IpAddr::V4(v4) = vip else { continue };
            let f = garp::frame(mac, *v4);
            for _ in 0..garp::MASTER_REPEAT {
                if let Err(e) = self.arp.send(i.spec.ifindex, &f) {
                    log::error!(
                        "({}) cannot send gratuitous ARP for {vip}: {e}",
                        i.spec.name
                    );
                    break;
                }
            }
        }
    }

    fn second_garps(&mut self, now: Nanos) {
        for k in 0..self.insts.len() {
            let i = &mut self.insts[k];
            if i.garp_at.is_some_and(|t| now >= t) {
                i.garp_at = None;
                if i.inst.state() == State::Master {
                    self.send_garps(k);
                }
            }
        }
    }

    fn publish(&mut self) {
        self.dirty = false;
        let v = self
            .insts
            .iter()
            .map(|i| InstanceStatus {
                name: i.spec.name.clone(),
                vrid: i.spec.cfg.vrid,
                state: i.inst.state(),
                priority: i.inst.priority(),
                master: if i.inst.state() == State::Master {
                    Some(i.spec.cfg.primary)
                } else {
                    i.inst.master_address()
                },
                transitions: i.transitions,
                adverts_sent: i.sent,
                adverts_received: i.received,
            })
            .collect();
        self.status.set_instances(v);
    }

    /// Opens the sockets `specs` needs and closes the others.
    fn sync_sockets(&mut self, specs: &[InstanceSpec]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut want: Vec<(String, u32, bool)> = Vec::new();
        for s in specs {
            match want.iter_mut().find(|w| w.0 == s.interface) {
                Some(w) => w.2 |= s.peers.is_empty(),
                None => want.push((s.interface.clone(), s.ifindex, s.peers.is_empty())),
            }
        }
        self.sockets.retain(|(n, _)| want.iter().any(|w| &w.0 == n));
        for (name, ifindex, multicast) in want {
            match self.sockets.iter_mut().find(|(n, _)| *n == name) {
                Some((_, s)) => {
                    if multicast {
                        if let Err(e) = s.join() {
                            problems.push(format!("VRRP: cannot join 224.0.0.18 on {name}: {e}"));
                        }
                    }
                }
                None => match VrrpSocket::open(&name, ifindex, multicast) {
                    Ok(s) => self.sockets.push((name, s)),
                    Err(e) => problems.push(format!("VRRP: cannot open the socket on {name}: {e}")),
                },
            }
        }
        problems
    }

    fn reconfigure(
        &mut self,
        now: Nanos,
        specs: Vec<InstanceSpec>,
        groups: SyncGroups,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        self.dirty = true;
        // Removed instances stop first: a MASTER releases (priority 0) and drops its VIPs.
        let keep: HashSet<Identity> = specs.iter().map(InstanceSpec::identity).collect();
        let mut removed = Vec::new();
        for (k, i) in self.insts.iter_mut().enumerate() {
            if !keep.contains(&i.spec.identity()) {
                i.inst.shutdown(now);
                removed.push(k);
            }
        }
        if !removed.is_empty() {
            // No sync-group following while some instances go away.
            let groups = std::mem::take(&mut self.groups);
            for i in &mut self.insts {
                i.group = None;
            }
            self.flush(now);
            self.groups = groups;
        }
        let mut old: Vec<Inst> = std::mem::take(&mut self.insts);
        for k in removed.iter().rev() {
            let mut i = old.remove(*k);
            for s in &mut i.scripts {
                if let Some((mut c, _)) = s.running.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
            lines.push(format!("VRRP instance {} removed", i.spec.name));
        }
        lines.extend(self.sync_sockets(&specs));
        let r = plan_reload(old, specs, &groups, now);
        lines.extend(r.lines);
        self.insts = r.insts;
        self.groups = r.groups;
        // VIPs given up: out of the filter first, then off the interface.
        if !r.released.is_empty() {
            if let Err(e) = self.gate.hold(&r.released, false) {
                lines.push(format!("VRRP: cannot stop steering {:?}: {e}", r.released));
            }
        }
        for &(ifindex, a, l) in &r.dropped {
            let _ = netlink::del_address(ifindex, a, l);
        }
        // Instances holding their VIPs hold the new ones too (added addresses come with the
        // gratuitous ARPs; an address already there stays).
        for k in 0..self.insts.len() {
            if self.insts[k].holding {
                let i = &self.insts[k];
                for &(a, l) in &i.spec.prefixes {
                    let _ = netlink::add_address(i.spec.ifindex, a, l);
                }
                if let Err(e) = self.gate.hold(&i.spec.cfg.vips, true) {
                    lines.push(format!("({}) cannot steer the VIPs: {e}", i.spec.name));
                }
                self.send_garps(k);
            }
        }
        self.check_links();
        self.apply_faults_and_priorities(now);
        self.flush(now);
        self.publish();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::NANOS_PER_SEC;

    fn spec(priority: u8, scripts: &[i32]) -> InstanceSpec {
        let vip: IpAddr = "198.18.0.100".parse().unwrap();
        InstanceSpec {
            name: "VI_1".into(),
            interface: "wan0".into(),
            ifindex: 2,
            mac: [2, 0, 0, 0, 0, 1],
            cfg: InstanceConfig {
                vrid: 51,
                version: Version::V3,
                priority,
                advert_interval: NANOS_PER_SEC,
                preempt: true,
                preempt_delay: 0,
                primary: "198.18.0.11".parse().unwrap(),
                vips: vec![vip],
                unicast: false,
            },
            prefixes: vec![(vip, 32)],
            peers: vec![],
            track_interfaces: vec![],
            track_scripts: scripts
                .iter()
                .map(|&weight| config::TrackScript {
                    command: "true".into(),
                    interval: Duration::from_secs(1),
                    rise: 1,
                    fall: 1,
                    weight,
                })
                .collect(),
            notify: config::Notify::default(),
        }
    }

    #[test]
    fn script_weights_move_the_priority_and_weight_zero_faults() {
        let mut i = Inst::new(spec(100, &[20, -60, 0]), 0).unwrap();
        // All up: +20 only.
        assert_eq!(i.effective_priority(), 120);
        assert!(!i.own_fault());
        i.scripts[0].up = false;
        i.scripts[1].up = false;
        assert_eq!(i.effective_priority(), 40);
        i.scripts[2].up = false;
        assert!(i.own_fault());
        // Clamped to 1..254.
        let mut low = Inst::new(spec(10, &[-60]), 0).unwrap();
        low.scripts[0].up = false;
        assert_eq!(low.effective_priority(), 1);
        let high = Inst::new(spec(250, &[20]), 0).unwrap();
        assert_eq!(high.effective_priority(), 254);
        // An owner stays 255.
        let mut owner = Inst::new(spec(255, &[-60]), 0).unwrap();
        owner.scripts[0].up = false;
        assert_eq!(owner.effective_priority(), 255);
        // A link down is a fault.
        let mut l = Inst::new(spec(100, &[]), 0).unwrap();
        l.link_down = true;
        assert!(l.own_fault());
    }

    /// An instance `name` with VRID `vrid` holding `vips` (/32 each).
    fn named(name: &str, vrid: u8, vips: &[&str]) -> InstanceSpec {
        let mut s = spec(100, &[]);
        s.name = name.into();
        s.cfg.vrid = vrid;
        s.cfg.vips = vips.iter().map(|v| v.parse().unwrap()).collect();
        s.prefixes = s.cfg.vips.iter().map(|&v| (v, 32)).collect();
        s
    }

    #[test]
    fn reload_with_an_instance_that_cannot_start_keeps_sync_groups_on_their_members() {
        // VI_0 cannot start (priority 0): it is left out, and the group still means VI_1 and
        // VI_2, not whatever sits at their positions in the file.
        let mut bad = named("VI_0", 50, &["198.18.0.100"]);
        bad.cfg.priority = 0;
        let specs = vec![
            bad,
            named("VI_1", 51, &["198.18.0.101"]),
            named("VI_2", 52, &["198.18.0.102"]),
        ];
        let r = plan_reload(Vec::new(), specs, &[vec!["VI_1".into(), "VI_2".into()]], 0);
        assert!(r
            .lines
            .iter()
            .any(|l| l.starts_with("VRRP instance VI_0: priority 0")));
        let names: Vec<&str> = r.insts.iter().map(|i| i.spec.name.as_str()).collect();
        assert_eq!(names, ["VI_1", "VI_2"]);
        assert_eq!(r.groups, vec![vec![0, 1]]);
        assert!(r.insts.iter().all(|i| i.group == Some(0)));
        let mut insts = r.insts;
        assert_eq!(group_faults(&insts, &r.groups), [false]);
        insts[1].link_down = true;
        assert_eq!(group_faults(&insts, &r.groups), [true]);
    }

    #[test]
    fn a_refused_reconfigure_keeps_the_running_spec() {
        let old = named("VI_1", 51, &["198.18.0.101"]);
        let mut i = Inst::new(old.clone(), 0).unwrap();
        i.holding = true;
        let mut new = named("VI_1", 51, &["198.18.0.101", "198.18.0.105"]);
        new.cfg.advert_interval = 5_000_000; // not a whole centisecond: refused
        let r = plan_reload(vec![i], vec![new], &[], 0);
        assert_eq!(r.insts.len(), 1);
        assert_eq!(
            r.insts[0].spec, old,
            "the spec must match what the instance runs"
        );
        assert!(r.dropped.is_empty() && r.released.is_empty());
        assert!(
            r.lines
                .iter()
                .any(|l| l.contains("VI_1") && l.contains("advert interval")),
            "{:?}",
            r.lines
        );
    }

    #[test]
    fn a_vip_moved_from_a_master_to_a_backup_instance_is_released() {
        let x: IpAddr = "198.18.0.101".parse().unwrap();
        let mut a = Inst::new(named("VI_1", 51, &["198.18.0.101", "198.18.0.102"]), 0).unwrap();
        a.holding = true;
        let b = Inst::new(named("VI_2", 52, &["198.18.0.103"]), 0).unwrap();
        let specs = vec![
            named("VI_1", 51, &["198.18.0.102"]),
            named("VI_2", 52, &["198.18.0.103", "198.18.0.101"]),
        ];
        let r = plan_reload(vec![a, b], specs, &[], 0);
        assert_eq!(r.released, [x], "no longer held: no longer steered");
        assert_eq!(r.dropped, [(2, x, 32)]);
        assert_eq!(
            r.insts[0].spec.cfg.vips,
            ["198.18.0.102".parse::<IpAddr>().unwrap()]
        );

        // Moved to another instance that holds its VIPs: it stays steered and on the interface.
        let mut a = Inst::new(named("VI_1", 51, &["198.18.0.101", "198.18.0.102"]), 0).unwrap();
        a.holding = true;
        let mut c = Inst::new(named("VI_3", 53, &["198.18.0.104"]), 0).unwrap();
        c.holding = true;
        let specs = vec![
            named("VI_1", 51, &["198.18.0.102"]),
            named("VI_3", 53, &["198.18.0.104", "198.18.0.101"]),
        ];
        let r = plan_reload(vec![a, c], specs, &[], 0);
        assert!(r.released.is_empty() && r.dropped.is_empty());
    }

    #[test]
    fn identity_is_name_interface_vrid_version() {
        let a = spec(100, &[]);
        let mut b = spec(200, &[5]);
        assert_eq!(a.identity(), b.identity());
        b.cfg.vrid = 52;
        assert_ne!(a.identity(), b.identity());
    }
}
