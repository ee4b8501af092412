//! The sync driver: one thread (`xvs-sync`, off the packet path) that owns the UDP socket and
//! the clock and feeds a [`SyncEndpoint`] (the sans-IO decisions) with `now` (nanoseconds since
//! the daemon's epoch), the local records ([`RecordSource`]: the workers' rings), and what it
//! receives; it installs peers' records through a [`RecordSink`] and dumps through a
//! [`DumpSource`].
//!
//! The socket: UDP on `sync.port`, bound to the sync interface (`SO_BINDTODEVICE`) on the
//! wildcard address (or [`DriverConfig::bind`]); IPv4 unless a peer or the multicast group is
//! IPv6 (then one dual-stack IPv6 socket, IPv4 peers as mapped addresses). With no unicast
//! peers it joins the multicast group on the interface ([`super::endpoint::MULTICAST_V4`] or
//! [`super::endpoint::MULTICAST_V6`]), sends with TTL / hop limit 1 and does not hear its own
//! messages (multicast loop off). Non-blocking; through `socket2`, so no `unsafe` here.
//!
//! Each loop: drain the rings into the endpoint, fire its due timers, receive up to
//! [`RECV_BUDGET`] datagrams, send what it queued (a socket that would block keeps the rest for
//! the next loop), log its events, publish its counters ([`SyncStatus`]) every
//! [`PUBLISH_INTERVAL`]; then sleep in `poll(2)` until a datagram, the endpoint's next timer or
//! [`TICK`] (the rings are drained at least that often; a stop is seen within it).
//!
//! The driver imports neither `control` nor `datapath`: the daemon hands it a [`DriverConfig`]
//! and the three table traits.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use super::auth::Key;
use super::endpoint::{EndpointConfig, Event, Peers, SyncEndpoint};
use super::status::{Published, SyncInfo, SyncStatus};
use super::tables::{DumpSource, RecordSink, RecordSource};
use crate::flow::Nanos;

/// The longest sleep: the rings are drained and the stop flag read at least this often.
pub const TICK: Nanos = 5_000_000;
/// How often the counters are published for `xvs ctl sync` and the metrics.
pub const PUBLISH_INTERVAL: Nanos = 100_000_000;
/// Datagrams read per loop (bounded work between two drains of the rings).
pub const RECV_BUDGET: usize = 256;
/// The receive buffer: larger than any valid message, so a longer datagram is seen as one
/// (`bad_length`) rather than cut to a valid length.
const RECV_BUF: usize = 2048;

/// What the daemon resolved from the `sync:` section.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The sync interface.
    pub interface: String,
    pub ifindex: u32,
    /// UDP port, local and the peers'.
    pub port: u16,
    /// Unicast peers; empty: multicast to `group`.
    pub peers: Vec<IpAddr>,
    /// The multicast group when `peers` is empty.
    pub group: IpAddr,
    /// The local address to bind (`None`: the wildcard, every address of the interface).
    pub bind: Option<IpAddr>,
    /// This box's sender id ([`super::endpoint::sender_id`] of its address on the interface).
    pub sender: u32,
    pub key: Key,
}

/// The box's tables as the sync thread sees them.
pub struct Tables {
    pub records: Box<dyn RecordSource + Send>,
    pub dump: Box<dyn DumpSource + Send>,
    pub sink: Box<dyn RecordSink + Send>,
}

/// Why the sync thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncDriverError {
    #[error("sync: cannot open the UDP socket on {interface} port {port}: {source}")]
    Open {
        interface: String,
        port: u16,
        source: io::Error,
    },
    #[error("sync: cannot join {group} on {interface}: {source}")]
    Join {
        group: IpAddr,
        interface: String,
        source: io::Error,
    },
    #[error("sync: cannot start the thread: {0}")]
    Thread(io::Error),
}

/// Whether the socket is IPv6 (dual-stack): a peer or the group is.
fn uses_v6(cfg: &DriverConfig) -> bool {
    cfg.peers.iter().any(IpAddr::is_ipv6)
        || (cfg.peers.is_empty() && cfg.group.is_ipv6())
        || cfg.bind.is_some_and(|b| b.is_ipv6())
}

/// Opens the socket (see the module documentation).
pub fn open_socket(cfg: &DriverConfig) -> Result<UdpSocket, SyncDriverError> {
    let open = |source| SyncDriverError::Open {
        interface: cfg.interface.clone(),
        port: cfg.port,
        source,
    };
    let v6 = uses_v6(cfg);
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(open)?;
    if v6 {
        s.set_only_v6(false).map_err(open)?;
    }
    s.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(open)?;
    s.set_nonblocking(true).map_err(open)?;
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let local = SocketAddr::new(cfg.bind.unwrap_or(any), cfg.port);
    s.bind(&local.into()).map_err(open)?;
    if cfg.peers.is_empty() {
        join(&s, cfg).map_err(|source| SyncDriverError::Join {
            group: cfg.group,
            interface: cfg.interface.clone(),
            source,
        })?;
    }
    Ok(UdpSocket::from(s))
}

/// Joins the group on the interface; TTL / hop limit 1, multicast loop off.
fn join(s: &Socket, cfg: &DriverConfig) -> io::Result<()> {
    match cfg.group {
        IpAddr::V4(g) => {
            s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(cfg.ifindex))?;
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(1)
        }
        IpAddr::V6(g) => {
            s.join_multicast_v6(&g, cfg.ifindex)?;
            s.set_multicast_if_v6(cfg.ifindex)?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(1)
        }
    }
}

/// `dst` as the socket sends to it: an IPv4 address mapped on an IPv6 socket, and the
/// interface as the scope of a link-local or multicast IPv6 one.
fn socket_addr(dst: SocketAddr, v6: bool, ifindex: u32) -> SocketAddr {
    match dst {
        SocketAddr::V4(a) if v6 => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        SocketAddr::V6(a)
            if a.scope_id() == 0 && (a.ip().is_unicast_link_local() || a.ip().is_multicast()) =>
        {
            SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, ifindex))
        }
        other => other,
    }
}

/// Wall-clock nanoseconds: this run's epoch (a restart is newer).
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Nanoseconds since `epoch`.
fn since(epoch: Instant) -> Nanos {
    Nanos::try_from(epoch.elapsed().as_nanos()).unwrap_or(Nanos::MAX)
}

/// The endpoint's peers: each unicast peer at the port, or the group.
fn endpoint_peers(cfg: &DriverConfig) -> Peers {
    if cfg.peers.is_empty() {
        Peers::Multicast(SocketAddr::new(cfg.group, cfg.port))
    } else {
        Peers::Unicast(
            (cfg.peers.iter())
                .map(|p| SocketAddr::new(*p, cfg.port))
                .collect(),
        )
    }
}

/// Starts the sync thread: opens the socket now (its errors are the caller's), then runs until
/// `stop` is set. `epoch` is the daemon's clock origin.
pub fn spawn(
    cfg: DriverConfig,
    tables: Tables,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<SyncStatus>, JoinHandle<()>), SyncDriverError> {
    let socket = open_socket(&cfg)?;
    let status = Arc::new(SyncStatus::new(
        SyncInfo {
            interface: cfg.interface.clone(),
            port: cfg.port,
        },
        epoch,
    ));
    let ecfg = EndpointConfig::new(cfg.sender, wall_clock_ns(), endpoint_peers(&cfg));
    let ep = SyncEndpoint::new(ecfg, cfg.key.clone(), since(epoch));
    let d = Driver {
        v6: uses_v6(&cfg),
        ep,
        cfg,
        socket,
        tables,
        epoch,
        status: status.clone(),
        own_sender_logged: HashSet::new(),
    };
    let thread = std::thread::Builder::new()
        .name("xvs-sync".into())
        .spawn(move || d.run(&stop))
        .map_err(SyncDriverError::Thread)?;
    Ok((status, thread))
}

struct Driver {
    cfg: DriverConfig,
    v6: bool,
    socket: UdpSocket,
    ep: SyncEndpoint,
    tables: Tables,
    epoch: Instant,
    status: Arc<SyncStatus>,
    /// Peers already logged for using this box's sender id (logged once each).
    own_sender_logged: HashSet<IpAddr>,
}

impl Driver {
    fn now(&self) -> Nanos {
        since(self.epoch)
    }

    fn run(mut self, stop: &AtomicBool) {
        log::info!(
            "Sync: on {} port {}, {}, sender id {:#010x}",
            self.cfg.interface,
            self.cfg.port,
            match self.cfg.peers.len() {
                0 => format!("multicast {}", self.cfg.group),
                n => format!("{n} unicast peer(s)"),
            },
            self.cfg.sender
        );
        let mut buf = vec![0u8; RECV_BUF];
        let mut next_publish = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            self.ep.drain(&mut *self.tables.records, now);
            self.ep.handle_timeout(now);
            self.receive(&mut buf);
            let blocked = self.send();
            self.log_events();
            if now >= next_publish {
                self.publish();
                next_publish = now + PUBLISH_INTERVAL;
            }
            self.wait(blocked);
        }
        // What is queued goes out before the thread ends (best effort, non-blocking).
        self.ep.handle_timeout(Nanos::MAX / 2);
        self.send();
        self.publish();
    }

    /// Reads up to [`RECV_BUDGET`] waiting datagrams into the endpoint.
    fn receive(&mut self, buf: &mut [u8]) {
        for _ in 0..RECV_BUDGET {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let now = self.now();
                    let t = &mut self.tables;
                    self.ep
                        .handle_datagram(now, from, &buf[..n], &mut *t.sink, &mut *t.dump);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error of an earlier send (port unreachable), an interrupted call:
                // nothing to read now; the next loop tries again.
                Err(e) => {
                    log::debug!("Sync: receive: {e}");
                    return;
                }
            }
        }
    }

    /// Sends what the endpoint queued; `true` when the socket would block (the rest waits).
    fn send(&mut self) -> bool {
        while let Some(t) = self.ep.poll_transmit() {
            let dst = socket_addr(t.dst, self.v6, self.cfg.ifindex);
            let mut r = self.socket.send_to(&t.bytes, dst);
            if matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
                // The error was an earlier datagram's (ICMP port unreachable), reported on this
                // send, which it cost: try once more.
                r = self.socket.send_to(&t.bytes, dst);
            }
            match r {
                Ok(_) => self.ep.transmitted(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => {
                    log::debug!("Sync: send to {dst}: {e}");
                    self.ep.transmitted(false);
                }
            }
        }
        false
    }

    fn log_events(&mut self) {
        while let Some(e) = self.ep.poll_event() {
            match e {
                Event::InSync(peer) => {
                    log::info!("Sync: full dump from {peer} received; in sync with it")
                }
                Event::DumpSent { peer, records } => {
                    log::info!("Sync: full dump sent to {peer} ({records} records)")
                }
                Event::GaveUp(peer) => log::warn!(
                    "Sync: no full dump from {peer} after every request; its live changes are still installed"
                ),
                Event::OwnSender(peer) => {
                    if self.own_sender_logged.insert(peer) {
                        log::warn!(
                            "Sync: {peer} sends with this box's sender id {:#010x}; its messages are dropped (own_sender): give each box its own address on the sync interface",
                            self.cfg.sender
                        );
                    }
                }
            }
        }
    }

    fn publish(&self) {
        self.status.publish(Published {
            stats: self.ep.stats(),
            ring_dropped: self.tables.records.dropped(),
        });
    }

    /// Sleeps until a datagram arrives, the endpoint's next timer or [`TICK`]; 1 ms when the
    /// socket would not take more.
    fn wait(&self, blocked: bool) {
        let now = self.now();
        let until = self
            .ep
            .poll_timeout()
            .map_or(TICK, |t| t.saturating_sub(now));
        let ns = if blocked { 1_000_000 } else { until.min(TICK) };
        // At most TICK (5 ms): fits an i32 of milliseconds.
        let ms = i32::try_from(ns.div_ceil(1_000_000)).unwrap_or(5);
        let mut fds = [libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Err(e) = crate::sys::poll(&mut fds, ms) {
            log::debug!("Sync: poll: {e}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests;
