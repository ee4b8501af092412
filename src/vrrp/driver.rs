//! The VRRP driver: one thread (`xvs-vrrp`, off the packet path) that owns the raw sockets,
//! the clock, the child processes and the system calls, and feeds a [`Router`] (the sans-IO
//! decisions: sync groups, track scripts, tracked interfaces) with `now` from the monotonic
//! clock (nanoseconds since the daemon's epoch).
//!
//! Sockets: one raw socket of protocol 112 per interface and address family in use
//! ([`VrrpSocket`] for IPv4, [`Vrrp6Socket`] for IPv6: adverts from the interface's link-local
//! address, hop limit 255, the received hop limit and destination read from ancillary data).
//!
//! Each loop: take reload commands; receive every waiting advert on each interface's socket and
//! hand it to the router (no instance for its VRID → counted as `vrid`; any rejection counted
//! by reason in `xvs_vrrp_errors_total`); report the scripts that ended; fire due timers; check
//! tracked interfaces (every [`LINK_CHECK_INTERVAL`], the instance's own interface included, as
//! keepalived does); then carry out the router's actions in order:
//! - send the adverts queued;
//! - MASTER: add the VIPs to the interface ([`System`], netlink in the daemon; IPv6 ones
//!   without duplicate address detection), open them in the XDP filter
//!   ([`super::gate::VipGate`]), send gratuitous ARPs for IPv4 VIPs ([`super::garp`]) and
//!   unsolicited neighbour advertisements for IPv6 ones ([`super::ndisc`]): 5 per VIP now, 5
//!   more 5 s later, run `notify.master`;
//! - BACKUP / FAULT / stopped: close the VIPs in the filter, remove them from the interface, run
//!   `notify.backup` / `notify.fault`. A BACKUP at start-up removes VIPs a previous run may have
//!   left behind (a crash);
//! - start (`sh -c COMMAND`) or kill track scripts.
//!
//! It sleeps in `poll(2)` until the next timer, packet or wake-up ([`VrrpHandle::wake`]), at most
//! [`MAX_WAIT`]: on stop every instance shuts down (a MASTER sends its priority-0 advert and
//! releases its VIPs) before the thread ends.
//!
//! Log lines use keepalived's wording: `(VI_1) Entering MASTER STATE`,
//! `(VI_1) Entering BACKUP STATE`, `(VI_1) Entering FAULT STATE`, `(VI_1) sent 0 priority`.
//!
//! The driver imports neither `control` nor `datapath`: it receives plain [`InstanceSpec`]s, a
//! [`System`] for the interfaces and a [`VipGate`].

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::gate::VipGate;
use super::packet::{
    encode_ipv4, encode_message, parse_ipv4, parse_message_v6, AdvertFields, Family,
};
use super::router::{Action, RunId};
use super::socket::{poll_readable, ArpSocket, Vrrp6Socket, VrrpSocket, Waker};
pub use super::spec::{InstanceSpec, Notify, SyncGroups, TrackScript};
pub use super::status::{state_gauge, InstanceStatus, VrrpStatus};
use super::{garp, ndisc, BuildError, Event, Router, VrrpError};
use crate::flow::Nanos;

/// How often tracked interfaces (and each instance's own) are checked.
pub const LINK_CHECK_INTERVAL: Nanos = 100_000_000;
/// The longest sleep (a stop or a reload also wakes the thread at once, [`VrrpHandle::wake`]).
pub const MAX_WAIT: Duration = Duration::from_millis(10);
/// The longest sleep while no instance is configured (a reload may add some).
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Adverts read per socket per wake-up (bounded work per loop).
const RECV_BUDGET: usize = 64;

/// Why the system refused a change of an interface's addresses (the daemon's netlink error,
/// boxed: `vrrp` does not know `control`'s types).
pub type SystemError = Box<dyn std::error::Error + Send + Sync>;

/// The interfaces as the driver sees them: implemented over netlink by the control plane.
pub trait System: Send {
    /// Whether interface `name` exists and is up.
    fn is_up(&self, name: &str) -> bool;
    /// The MAC of interface `name` now, if it can be read.
    fn mac(&self, name: &str) -> Option<[u8; 6]>;
    /// Adds `addr/len` to interface `ifindex` (already there is success).
    fn add_address(&self, ifindex: u32, addr: IpAddr, len: u8) -> Result<(), SystemError>;
    /// Removes `addr/len` from interface `ifindex` (already gone is success).
    fn del_address(&self, ifindex: u32, addr: IpAddr, len: u8) -> Result<(), SystemError>;
    /// Whether interface `name` forwards IPv6 (its `forwarding` sysctl): the Router flag of
    /// the unsolicited neighbour advertisements, as keepalived sets it. Default: no.
    fn ipv6_forwarding(&self, _name: &str) -> bool {
        false
    }
}

/// Why the driver could not start, open a socket, or apply a reload.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The packet socket for gratuitous ARPs.
    #[error(transparent)]
    ArpSocket(io::Error),
    /// The eventfd that wakes the thread.
    #[error(transparent)]
    Waker(io::Error),
    /// The thread itself.
    #[error(transparent)]
    Thread(io::Error),
    #[error("VRRP: cannot open the socket on {interface}: {source}")]
    OpenSocket {
        interface: String,
        source: io::Error,
    },
    #[error("VRRP: cannot join {group} on {interface}: {source}")]
    Join {
        group: IpAddr,
        interface: String,
        source: io::Error,
    },
    #[error("VRRP thread is not running; VRRP changes not applied")]
    NotRunning,
    #[error("VRRP thread did not answer; VRRP changes not applied")]
    NoAnswer,
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
    /// Returns the change lines, or why the thread could not apply them.
    pub fn reconfigure(
        &self,
        specs: Vec<InstanceSpec>,
        groups: SyncGroups,
    ) -> Result<Vec<String>, DriverError> {
        let (reply, rx) = mpsc::channel();
        let cmd = Command::Reconfigure {
            specs,
            groups,
            reply,
        };
        self.tx.send(cmd).map_err(|_| DriverError::NotRunning)?;
        self.waker.wake();
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| DriverError::NoAnswer)
    }
}

/// Starts the VRRP thread with `specs` (resolved by the control plane).
pub fn spawn(
    specs: Vec<InstanceSpec>,
    groups: SyncGroups,
    gate: Arc<VipGate>,
    system: Box<dyn System>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(VrrpHandle, JoinHandle<()>), DriverError> {
    let status = Arc::new(VrrpStatus::default());
    let arp = ArpSocket::open().map_err(DriverError::ArpSocket)?;
    let (tx, rx) = mpsc::channel();
    let waker = Arc::new(Waker::new().map_err(DriverError::Waker)?);
    let mut d = Driver {
        waker: waker.clone(),
        epoch,
        router: Router::new(),
        sockets: Vec::new(),
        arp,
        gate,
        system,
        status: status.clone(),
        scripts: Vec::new(),
        children: Vec::new(),
        next_link_check: 0,
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
        .spawn(move || d.run(&rx, &stop))
        .map_err(DriverError::Thread)?;
    Ok((VrrpHandle { tx, waker, status }, thread))
}

struct Driver {
    epoch: Instant,
    /// In the poll set after the sockets: a stop or a command is waiting.
    waker: Arc<Waker>,
    router: Router,
    /// One socket per interface and family in use: (interface, family, socket).
    sockets: Vec<(String, Family, Sock)>,
    arp: ArpSocket,
    gate: Arc<VipGate>,
    system: Box<dyn System>,
    status: Arc<VrrpStatus>,
    /// Track-script runs going on.
    scripts: Vec<(RunId, Child)>,
    /// Notify commands still running (reaped each loop).
    children: Vec<Child>,
    next_link_check: Nanos,
}

/// The raw VRRP socket of one interface for one family.
#[derive(Debug)]
enum Sock {
    V4(VrrpSocket),
    V6(Vrrp6Socket),
}

/// Why one advert could not go out.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot encode an advert: {0}")]
    Encode(#[from] BuildError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Sock {
    fn open(name: &str, ifindex: u32, family: Family, multicast: bool) -> io::Result<Sock> {
        Ok(match family {
            Family::V4 => Sock::V4(VrrpSocket::open(name, ifindex, multicast)?),
            Family::V6 => Sock::V6(Vrrp6Socket::open(name, ifindex, multicast)?),
        })
    }

    fn join(&mut self) -> io::Result<()> {
        match self {
            Sock::V4(s) => s.join(),
            Sock::V6(s) => s.join(),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Sock::V4(s) => s.as_raw_fd(),
            Sock::V6(s) => s.as_raw_fd(),
        }
    }

    /// Receives and parses one advert: `None` when none is waiting.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Result<super::Advert, VrrpError>>> {
        Ok(match self {
            Sock::V4(s) => s
                .recv(buf)?
                .map(|n| parse_ipv4(buf.get(..n).unwrap_or_default())),
            Sock::V6(s) => s
                .recv(buf)?
                .map(|(n, meta)| parse_message_v6(buf.get(..n).unwrap_or_default(), meta)),
        })
    }

    /// Encodes the advert `f` from `src` to `dst` into `buf` and sends it.
    fn send(
        &self,
        buf: &mut [u8],
        f: &AdvertFields<'_>,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(), SendError> {
        match (self, src, dst) {
            (Sock::V4(s), _, IpAddr::V4(d)) => {
                let n = encode_ipv4(buf, f, src, dst)?;
                Ok(s.send(buf.get(..n).unwrap_or_default(), d)?)
            }
            (Sock::V6(s), IpAddr::V6(s6), IpAddr::V6(d6)) => {
                let n = encode_message(buf, f, src, dst)?;
                Ok(s.send(buf.get(..n).unwrap_or_default(), s6, d6)?)
            }
            _ => Err(BuildError::FamilyMismatch(dst).into()),
        }
    }
}

fn shell(cmd: &str) -> io::Result<Child> {
    Process::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
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
            while let Ok(Command::Reconfigure {
                specs,
                groups,
                reply,
            }) = rx.try_recv()
            {
                let _ = reply.send(self.reconfigure(now, specs, groups));
            }
            if stop.load(Ordering::Relaxed) {
                self.router.shutdown(now);
                self.act(now);
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
            self.reap_scripts(now);
            self.router.handle_timeout(now);
            if now >= self.next_link_check {
                self.next_link_check = now + LINK_CHECK_INTERVAL;
                self.check_links(now);
            }
            self.act(now);
            self.children
                .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            if self.router.take_dirty() {
                self.publish();
            }
            self.sleep(&mut ready);
        }
    }

    /// Waits in `poll(2)` for a packet, a wake-up or the next deadline.
    fn sleep(&self, ready: &mut Vec<usize>) {
        let cap = if self.router.members().is_empty() {
            IDLE_WAIT
        } else {
            MAX_WAIT
        };
        let next = self
            .router
            .poll_timeout()
            .map_or(self.next_link_check, |t| t.min(self.next_link_check));
        let wait = Duration::from_nanos(next.saturating_sub(self.now())).min(cap);
        // Round up to whole milliseconds so that a timer is never polled early (at most
        // IDLE_WAIT, so it fits an i32).
        let ms = i32::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        let fds: Vec<_> = self
            .sockets
            .iter()
            .map(|(_, _, s)| s.fd())
            .chain(std::iter::once(self.waker.as_raw_fd()))
            .collect();
        if let Err(e) = poll_readable(&fds, ms, ready) {
            log::error!("VRRP: poll failed: {e}");
            std::thread::sleep(MAX_WAIT);
        }
    }

    fn receive(&mut self, k: usize, now: Nanos, buf: &mut [u8]) {
        for _ in 0..RECV_BUDGET {
            let Some((iface, _, sock)) = self.sockets.get(k) else {
                return;
            };
            let parsed = match sock.recv(buf) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    log::error!("VRRP: receive on {iface} failed: {e}");
                    return;
                }
            };
            let r = parsed.and_then(|a| self.router.handle_advert(now, iface, &a));
            if let Err(e) = r {
                self.status.count_error(e);
            }
        }
    }

    /// Reports the track scripts that ended.
    fn reap_scripts(&mut self, now: Nanos) {
        let mut ended = Vec::new();
        self.scripts.retain_mut(|(run, c)| match c.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                ended.push((*run, st.success()));
                false
            }
            Err(_) => {
                ended.push((*run, false));
                false
            }
        });
        for (run, ok) in ended {
            self.router.handle_script_result(now, run, ok);
        }
    }

    fn check_links(&mut self, now: Nanos) {
        let mut cache: HashMap<String, bool> = HashMap::new();
        let system = &self.system;
        self.router.handle_links(now, |name| {
            *cache
                .entry(name.to_string())
                .or_insert_with(|| system.is_up(name))
        });
    }

    /// Carries out the router's actions, in order, until none is left.
    fn act(&mut self, now: Nanos) {
        while let Some(a) = self.router.poll_action() {
            match a {
                Action::Transmit { inst, transmit } => self.send_advert(inst, transmit.priority),
                Action::Event { inst, event } => self.on_event(inst, event),
                Action::Garp { inst } => self.send_garps(inst),
                Action::RunScript { run, command } => match shell(&command) {
                    Ok(c) => self.scripts.push((run, c)),
                    Err(e) => {
                        log::error!("VRRP_Script({command}) cannot start: {e}");
                        self.router.handle_script_result(now, run, false);
                    }
                },
                Action::KillScript { run } => {
                    if let Some(p) = self.scripts.iter().position(|(r, _)| *r == run) {
                        kill(self.scripts.swap_remove(p).1);
                    }
                }
            }
        }
    }

    fn send_advert(&mut self, k: usize, priority: u8) {
        let mut buf = [0u8; 1100];
        let Some(m) = self.router.members().get(k) else {
            return;
        };
        let spec = m.spec();
        let family = Family::of(spec.cfg.primary);
        let Some((_, _, sock)) = self
            .sockets
            .iter()
            .find(|(n, f, _)| *n == spec.interface && *f == family)
        else {
            return;
        };
        if priority == 0 {
            log::info!("({}) sent 0 priority", spec.name);
        }
        let fields = m.instance().advert_fields(&super::Transmit { priority });
        let multicast = [family.multicast()];
        let dsts: &[IpAddr] = if spec.peers.is_empty() {
            &multicast
        } else {
            &spec.peers
        };
        let mut sent = 0;
        for &dst in dsts {
            match sock.send(&mut buf, &fields, spec.cfg.primary, dst) {
                Ok(()) => sent += 1,
                Err(e) => log::error!("({}) cannot send an advert to {dst}: {e}", spec.name),
            }
        }
        self.router.note_sent(k, sent);
    }

    fn on_event(&mut self, k: usize, e: Event) {
        let Some(spec) = self.router.members().get(k).map(|m| m.spec().clone()) else {
            return;
        };
        let name = &spec.name;
        match e {
            Event::Stopped => log::info!("({name}) Stopped"),
            _ => log::info!("({name}) Entering {} STATE", e.state().name()),
        }
        let notify = match e {
            Event::BecomeMaster => spec.notify.master.as_ref(),
            Event::BecomeBackup => spec.notify.backup.as_ref(),
            Event::BecomeFault => spec.notify.fault.as_ref(),
            Event::Stopped => None,
        };
        if e == Event::BecomeMaster {
            self.take_vips(&spec);
            self.send_garps(k);
        } else {
            self.release_vips(&spec);
        }
        if let Some(cmd) = notify {
            match shell(cmd) {
                Ok(c) => self.children.push(c),
                Err(e) => log::error!("({name}) cannot run notify command: {e}"),
            }
        }
    }

    fn take_vips(&self, spec: &InstanceSpec) {
        for &(addr, len) in &spec.prefixes {
            if let Err(e) = self.system.add_address(spec.ifindex, addr, len) {
                log::error!(
                    "({}) cannot add {addr}/{len} to {}: {e}",
                    spec.name,
                    spec.interface
                );
            }
        }
        if let Err(e) = self.gate.hold(&spec.cfg.vips, true) {
            log::error!("({}) cannot steer the VIPs: {e}", spec.name);
        }
    }

    fn release_vips(&self, spec: &InstanceSpec) {
        // Close the filter first: from here on the datapath does not forward for the VIPs.
        if let Err(e) = self.gate.hold(&spec.cfg.vips, false) {
            log::error!("({}) cannot stop steering the VIPs: {e}", spec.name);
        }
        // Also at start-up (not holding): a previous run may have left them behind.
        for &(addr, len) in &spec.prefixes {
            if let Err(e) = self.system.del_address(spec.ifindex, addr, len) {
                log::error!(
                    "({}) cannot remove {addr}/{len} from {}: {e}",
                    spec.name,
                    spec.interface
                );
            }
        }
    }

    fn send_garps(&self, k: usize) {
        let Some(spec) = self.router.members().get(k).map(|m| m.spec()) else {
            return;
        };
        // The interface's MAC now, not the one read at start-up: after `ip link set dev X
        // address ...` the datapath serves only the new MAC (frames to the old one are
        // `not_our_mac`), so announcing the old one would strand the VIP until the neighbours'
        // ARP entries expire. Falls back to the start-up MAC if the link cannot be read.
        let mac = self.system.mac(&spec.interface).unwrap_or(spec.mac);
        let router = spec.cfg.primary.is_ipv6() && self.system.ipv6_forwarding(&spec.interface);
        for vip in &spec.cfg.vips {
            let (frame, what): (&[u8], _) = match vip {
                IpAddr::V4(v4) => (&garp::frame(mac, *v4), "gratuitous ARP"),
                IpAddr::V6(v6) => (&ndisc::frame(mac, *v6, router), "neighbour advertisement"),
            };
            for _ in 0..garp::MASTER_REPEAT {
                if let Err(e) = self.arp.send(spec.ifindex, frame) {
                    log::error!("({}) cannot send {what} for {vip}: {e}", spec.name);
                    break;
                }
            }
        }
    }

    fn publish(&mut self) {
        self.status.set_instances(self.router.status());
    }

    /// Opens the sockets `specs` needs (one per interface and family) and closes the others.
    fn sync_sockets(&mut self, specs: &[InstanceSpec]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut want: Vec<(String, Family, u32, bool)> = Vec::new();
        for s in specs {
            let family = Family::of(s.cfg.primary);
            let multicast = s.peers.is_empty();
            match want
                .iter_mut()
                .find(|w| w.0 == s.interface && w.1 == family)
            {
                Some(w) => w.3 |= multicast,
                None => want.push((s.interface.clone(), family, s.ifindex, multicast)),
            }
        }
        self.sockets
            .retain(|(n, f, _)| want.iter().any(|w| &w.0 == n && w.1 == *f));
        for (interface, family, ifindex, multicast) in want {
            let have = self
                .sockets
                .iter_mut()
                .find(|(n, f, _)| *n == interface && *f == family);
            let e = match have {
                Some((_, _, s)) if multicast => s.join().err().map(|source| DriverError::Join {
                    group: family.multicast(),
                    interface: interface.clone(),
                    source,
                }),
                Some(_) => None,
                None => match Sock::open(&interface, ifindex, family, multicast) {
                    Ok(s) => {
                        self.sockets.push((interface, family, s));
                        None
                    }
                    Err(source) => Some(DriverError::OpenSocket { interface, source }),
                },
            };
            problems.extend(e.map(|e| e.to_string()));
        }
        problems
    }

    fn reconfigure(
        &mut self,
        now: Nanos,
        specs: Vec<InstanceSpec>,
        groups: SyncGroups,
    ) -> Vec<String> {
        // Removed instances stop first: a MASTER releases (priority 0) and drops its VIPs.
        self.router.stop_removed(now, &specs);
        self.act(now);
        let sockets = self.sync_sockets(&specs);
        let r = self.router.reload(now, specs, &groups);
        let mut lines = r.removed;
        lines.extend(sockets);
        lines.extend(r.lines);
        // VIPs given up: out of the filter first, then off the interface.
        if !r.released.is_empty() {
            if let Err(e) = self.gate.hold(&r.released, false) {
                lines.push(format!("VRRP: cannot stop steering {:?}: {e}", r.released));
            }
        }
        for &(ifindex, a, l) in &r.dropped {
            let _ = self.system.del_address(ifindex, a, l);
        }
        // Instances holding their VIPs hold the new ones too (added addresses come with the
        // gratuitous ARPs; an address already there stays).
        for k in 0..self.router.members().len() {
            let Some(m) = self.router.members().get(k).filter(|m| m.holding) else {
                continue;
            };
            let spec = m.spec();
            for &(a, l) in &spec.prefixes {
                let _ = self.system.add_address(spec.ifindex, a, l);
            }
            if let Err(e) = self.gate.hold(&spec.cfg.vips, true) {
                lines.push(format!("({}) cannot steer the VIPs: {e}", spec.name));
            }
            self.send_garps(k);
        }
        self.check_links(now);
        self.act(now);
        self.publish();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_without_the_thread_is_a_typed_error_with_the_old_wording() {
        let (tx, rx) = mpsc::channel();
        let h = VrrpHandle {
            tx,
            waker: Arc::new(Waker::new().unwrap()),
            status: Arc::default(),
        };
        drop(rx);
        let e = h.reconfigure(Vec::new(), Vec::new()).unwrap_err();
        assert!(matches!(e, DriverError::NotRunning));
        assert_eq!(
            e.to_string(),
            "VRRP thread is not running; VRRP changes not applied"
        );
        let e = DriverError::Join {
            group: IpAddr::V4(crate::vrrp::packet::MULTICAST_V4),
            interface: "wan0".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert!(e
            .to_string()
            .starts_with("VRRP: cannot join 224.0.0.18 on wan0: "));
        let e = DriverError::Join {
            group: IpAddr::V6(crate::vrrp::packet::MULTICAST_V6),
            interface: "wan0".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert!(e
            .to_string()
            .starts_with("VRRP: cannot join ff02::12 on wan0: "));
    }
}
