//! The admin Unix socket (`global.admin_socket`): the daemon's side of `xvs ctl`.
//!
//! An accept thread hands each connection to a thread of its own, which reads one request line
//! and writes one reply (the protocol is described in [`ctl`](crate::control::ctl)). `list`,
//! `conns` and `vrrp` are answered there from the shared state ([`Shared`]: the current snapshot,
//! the per-real counters, the connection table). A `reload` must run on the daemon's main
//! thread, which owns the running configuration: it is sent over a channel ([`ReloadRequest`])
//! that the main loop drains at every wake-up, and the connection's thread waits (bounded) for
//! the outcome text.
//!
//! No client can hold up another, a reload or shutdown ([`AdminLimits`]): the request line must
//! arrive whole within [`request_deadline`](AdminLimits::request_deadline) of the connection's
//! start, the reply must be taken whole within [`reply_deadline`](AdminLimits::reply_deadline)
//! (each a deadline for the whole transfer, not for each read or write), and at most
//! [`max_connections`](AdminLimits::max_connections) are served at once: one more closes the
//! oldest connection that is reading its request or writing its reply (one whose request is
//! being answered, e.g. waiting for a reload, is kept; if every one is, newcomers wait in the
//! listen backlog until one is done, which takes at most the reload wait). When `stop` is set,
//! the accept thread shuts down every connection that is reading or writing (a blocked read or
//! write returns at once), leaves those being answered to say that the daemon is stopping, and
//! returns without waiting for any client.
//!
//! The socket is created mode 0600 (bound under a temporary name, restricted, then renamed into
//! place, so it is never connectable by others), its parent directory is created if missing, a
//! stale socket file is replaced, a live one (another daemon answering) is an error, and the file
//! is removed when the server stops.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::control::ctl::{
    ConnInfo, ConnsReply, ListReply, RateInfo, RealChange, RealInfo, Reply, Request, ServiceInfo,
    StatsInfo, VrrpInstanceInfo, VrrpReply,
};
use crate::control::stats::{self, Rates, Stats};
use crate::datapath::counters::{Traffic, TrafficKey};
use crate::datapath::snapshot::Forwarding;
use crate::datapath::{ServiceKey, Shared};
use crate::flow::{Nanos, NANOS_PER_SEC};
use crate::sched::RealServer;
use crate::vrrp::driver::VrrpStatus;
use crate::vrrp::socket::poll_readable;

/// What a reload did (`Ok`: the lines describing the changes) or why the file was refused.
pub type ReloadOutcome = Result<String, String>;

/// What the main loop is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MainOp {
    /// Reload the configuration file.
    Reload,
    /// Apply a run-time real-server change (`xvs ctl real`).
    Real(RealChange),
}

/// A reload or real-server change asked for over the admin socket; the daemon's main loop runs
/// it and responds.
#[derive(Debug)]
pub struct ReloadRequest {
    pub op: MainOp,
    reply: Sender<ReloadOutcome>,
}

impl ReloadRequest {
    /// Hands the outcome back to the waiting admin connection (ignored if it gave up).
    pub fn respond(self, outcome: ReloadOutcome) {
        let _ = self.reply.send(outcome);
    }
}

/// The channel from the admin thread to the main loop.
pub fn reload_channel() -> (Sender<ReloadRequest>, Receiver<ReloadRequest>) {
    channel::bounded(4)
}

/// What the admin thread reads and where it sends reloads.
pub struct AdminState {
    pub shared: Arc<Shared>,
    /// The workers' clock epoch: connection-table times are nanoseconds since it.
    pub epoch: Instant,
    pub reloads: Sender<ReloadRequest>,
    /// Packet/byte totals and rates (`list`).
    pub stats: Arc<Stats>,
    /// What the VRRP thread publishes (`vrrp`).
    pub vrrp: Arc<VrrpStatus>,
}

/// The `vrrp` reply: every instance with its state, effective priority and master.
pub fn vrrp_reply(status: &VrrpStatus) -> VrrpReply {
    VrrpReply {
        instances: status
            .instances()
            .into_iter()
            .map(|i| VrrpInstanceInfo {
                name: i.name,
                vrid: i.vrid,
                state: i.state.name().to_string(),
                priority: i.priority,
                master: i.master,
            })
            .collect(),
    }
}

/// How long a `reload` request waits for the main loop.
const RELOAD_WAIT: Duration = Duration::from_secs(15);
/// Longest request line read.
const MAX_REQUEST: usize = 1024;
/// How often the accept thread looks at the stop flag while no client connects.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What bounds one admin connection, and how many are served at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections served at once (see the module documentation for what happens beyond it).
    pub max_connections: usize,
    /// From the connection's start to the end of its request line.
    pub request_deadline: Duration,
    /// From the first byte of the reply to the last.
    pub reply_deadline: Duration,
}

/// The admin socket's limits. `xvs ctl` writes its request at once and reads its reply to the
/// end, so these only ever cut off a client that is stuck or gone.
pub const LIMITS: AdminLimits = AdminLimits {
    max_connections: 32,
    request_deadline: Duration::from_secs(2),
    reply_deadline: Duration::from_secs(10),
};

/// The traffic and rates `list` reports, by identity.
#[derive(Default)]
pub struct ListCounters {
    pub traffic: hashbrown::HashMap<TrafficKey, Traffic>,
    pub rates: hashbrown::HashMap<TrafficKey, Rates>,
}

impl ListCounters {
    /// What `stats` holds now.
    pub fn read(stats: &Stats) -> ListCounters {
        ListCounters {
            traffic: stats.traffic(),
            rates: (*stats.rates()).clone(),
        }
    }

    fn stats(&self, k: &TrafficKey) -> StatsInfo {
        let t = self.traffic.get(k).copied().unwrap_or_default();
        StatsInfo {
            in_packets: t.in_packets,
            out_packets: t.out_packets,
            in_bytes: t.in_bytes,
            out_bytes: t.out_bytes,
        }
    }

    fn rate(&self, k: &TrafficKey) -> RateInfo {
        let r = self.rates.get(k).copied().unwrap_or_default();
        RateInfo {
            cps: r.cps,
            in_pps: r.in_pps,
            out_pps: r.out_pps,
            in_bps: r.in_bps,
            out_bps: r.out_bps,
        }
    }
}

/// `list`: the current snapshot's services and real servers with their counters.
pub fn list(shared: &Shared, counters: &ListCounters) -> ListReply {
    let snap = shared.snapshot.load();
    ListReply {
        version: env!("CARGO_PKG_VERSION").to_string(),
        conntrack_max_entries: shared.conntrack.capacity() as u64,
        services: snap
            .services
            .iter()
            .map(|s| ServiceInfo {
                connections_total: s
                    .reals
                    .iter()
                    .chain(&s.sorry)
                    .map(|r| r.stats.connections_total.load(Ordering::Relaxed))
                    .sum(),
                stats: counters.stats(&stats::service_key(s.key)),
                rate: counters.rate(&stats::service_key(s.key)),
                name: s.name.clone(),
                protocol: s.key.proto.name().to_string(),
                vip: s.key.vip,
                port: s.key.port,
                scheduler: s.scheduler.name().to_string(),
                forwarding: match s.forwarding {
                    Forwarding::Nat => "nat".to_string(),
                    Forwarding::Dr => "dr".to_string(),
                    Forwarding::Tun => "tun".to_string(),
                    Forwarding::FullNat => "fullnat".to_string(),
                },
                reals: s
                    .reals
                    .iter()
                    .map(|r| real_info(r, s.key, counters))
                    .collect(),
                quorum: s.state.has_quorum(),
                sorry_server: s.sorry.as_ref().map(|r| RealInfo {
                    up: !s.state.has_quorum(),
                    ..real_info(r, s.key, counters)
                }),
            })
            .collect(),
    }
}

fn real_info(r: &RealServer, service: ServiceKey, counters: &ListCounters) -> RealInfo {
    let key = stats::real_key(service, r.addr);
    RealInfo {
        stats: counters.stats(&key),
        rate: counters.rate(&key),
        address: r.addr,
        weight: r.weight,
        up: r.stats.is_up(),
        active_connections: r.active_connections(),
        inactive_connections: r.inactive_connections(),
        connections_total: r.stats.connections_total.load(Ordering::Relaxed),
    }
}

/// `conns`: every live connection at `now` (nanoseconds since the workers' epoch), sorted by
/// protocol, client and virtual address. Entries already past their expiry but not yet swept
/// are left out (a packet would find them gone).
pub fn conns(shared: &Shared, now: Nanos) -> ConnsReply {
    let rows: Vec<_> = shared.conntrack.rows(now).into_iter().collect();
    let mut connections: Vec<ConnInfo> = rows
        .into_iter()
        .map(|r| ConnInfo {
            protocol: r.proto.name().to_string(),
            client: r.client,
            vip: r.vip,
            real: r.real,
            local: r.local,
            state: r.state.name().to_string(),
            expire_seconds: (r.expires - now) / NANOS_PER_SEC,
        })
        .collect();
    // Persistence templates, as ipvsadm lists them: state NONE, the client network with port 0,
    // the service port (0 for an all-port service).
    connections.extend(
        shared
            .persistence
            .rows()
            .into_iter()
            .filter(|t| t.expires > now)
            .map(|t| ConnInfo {
                protocol: t.key.proto.name().to_string(),
                client: SocketAddr::new(t.key.client_net, 0),
                vip: SocketAddr::new(t.key.vip, t.key.vport),
                real: t.real,
                local: None,
                state: "NONE".to_string(),
                expire_seconds: (t.expires - now) / NANOS_PER_SEC,
            }),
    );
    connections.sort_by(|a, b| {
        (&a.protocol, a.client, a.vip, &a.state).cmp(&(&b.protocol, b.client, b.vip, &b.state))
    });
    ConnsReply { connections }
}

fn json<T: serde::Serialize>(v: &T) -> Reply {
    match serde_json::to_string(v) {
        Ok(s) => Reply::ok(s),
        Err(e) => Reply::error(format!("xvs: cannot encode the reply: {e}")),
    }
}

/// Asks the main loop to reload (or apply a real-server change) and waits for the outcome
/// (bounded; gives up if `stop` is set).
fn reload(state: &AdminState, op: MainOp, stop: &AtomicBool) -> Reply {
    let (tx, rx) = channel::bounded(1);
    match state.reloads.try_send(ReloadRequest { op, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Reply::error("xvs: reload refused: other reloads are already waiting")
        }
        Err(TrySendError::Disconnected(_)) => return Reply::error("xvs: the daemon is stopping"),
    }
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(text)) => return Reply::ok(text),
            Ok(Err(text)) => return Reply::error(text),
            Err(RecvTimeoutError::Disconnected) => {
                return Reply::error("xvs: the daemon is stopping; the reload did not run")
            }
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                return Reply::error("xvs: the daemon is stopping; the reload did not run")
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                return Reply::error(format!(
                    "xvs: the main loop did not answer within {}s; the reload may still run (see the daemon's log)",
                    RELOAD_WAIT.as_secs()
                ))
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Answers one request line.
pub fn handle(state: &AdminState, line: &str, stop: &AtomicBool) -> Reply {
    match Request::parse(line) {
        Err(e) => Reply::error(format!("xvs: {e}")),
        Ok(Request::List) => json(&list(&state.shared, &ListCounters::read(&state.stats))),
        Ok(Request::Conns) => {
            let now = u64::try_from(state.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            json(&conns(&state.shared, now))
        }
        Ok(Request::Vrrp) => json(&vrrp_reply(&state.vrrp)),
        Ok(Request::Reload) => reload(state, MainOp::Reload, stop),
        Ok(Request::Real(change)) => reload(state, MainOp::Real(change), stop),
    }
}

fn timed_out(what: &str, limit: Duration) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::TimedOut,
        format!("{what} within {} ms", limit.as_millis()),
    )
}

/// Reads the request line (up to and including its newline, at most [`MAX_REQUEST`] bytes, or
/// what came before the client shut down its side) within `limit` of `started`, whatever the
/// client's pace.
fn read_request(
    mut conn: &UnixStream,
    started: Instant,
    limit: Duration,
) -> std::io::Result<String> {
    let deadline = started + limit;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    while buf.len() < MAX_REQUEST && !buf.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("no whole request line", limit));
        }
        conn.set_read_timeout(Some(left))?;
        let want = chunk.len().min(MAX_REQUEST - buf.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out("no whole request line", limit))
            }
            Err(e) => return Err(e),
        }
    }
    let end = buf
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |i| i + 1);
    buf.truncate(end);
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "the request is not UTF-8"))
}

/// Writes `bytes` whole within `limit` from now, whatever the client's pace.
fn write_reply(mut conn: &UnixStream, mut bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + limit;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("the reply was not taken", limit));
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out("the reply was not taken", limit))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection: its request line, the answer, the reply, each bounded by `limits`.
/// `answering(true)` and `answering(false)` bracket the time its request is being answered;
/// `answering(true)` is `false` if the connection was closed meanwhile (its request, cut short
/// by the close, is then not run).
fn serve(
    conn: &UnixStream,
    state: &AdminState,
    stop: &AtomicBool,
    limits: AdminLimits,
    started: Instant,
    answering: impl Fn(bool) -> bool,
) {
    let _ = conn.set_nonblocking(false);
    let reply = match read_request(conn, started, limits.request_deadline) {
        Ok(line) => {
            if !answering(true) {
                return;
            }
            let reply = handle(state, &line, stop);
            answering(false);
            reply
        }
        Err(e) => Reply::error(format!("xvs: cannot read the request: {e}")),
    };
    let _ = write_reply(conn, reply.encode().as_bytes(), limits.reply_deadline);
}

/// The connections being served, oldest first, each with a handle on its socket (shutting it
/// down makes the serving thread's blocked read or write return at once).
#[derive(Default)]
struct Connections {
    inner: Mutex<ConnectionsInner>,
}

#[derive(Default)]
struct ConnectionsInner {
    next_id: u64,
    live: VecDeque<Live>,
}

struct Live {
    id: u64,
    socket: UnixStream,
    /// Its request is being answered (e.g. waiting for a reload): not closed to make room.
    answering: bool,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection below `max`, shutting down the oldest ones that are
    /// not being answered; `false` if every one is.
    fn make_room(&self, max: usize) -> bool {
        let mut c = self.lock();
        while c.live.len() >= max.max(1) {
            let Some(oldest) = c.live.iter().position(|l| !l.answering) else {
                return false;
            };
            if let Some(l) = c.live.remove(oldest) {
                let _ = l.socket.shutdown(Shutdown::Both);
            }
        }
        true
    }

    /// Registers `socket`, a handle on a new connection's socket.
    fn register(&self, socket: UnixStream) -> u64 {
        let mut c = self.lock();
        let id = c.next_id;
        c.next_id += 1;
        c.live.push_back(Live {
            id,
            socket,
            answering: false,
        });
        id
    }

    /// Marks connection `id` as being answered or not; `false` if it is no longer served
    /// (closed to make room, or the server is stopping).
    fn set_answering(&self, id: u64, answering: bool) -> bool {
        match self.lock().live.iter_mut().find(|l| l.id == id) {
            Some(l) => {
                l.answering = answering;
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().live.retain(|l| l.id != id);
    }

    /// At stop: shuts down every connection that is reading its request or writing its reply
    /// (its thread then ends at once) and forgets them all. One whose request is being answered
    /// is left to answer: its request sees `stop` (a reload waiting for the main loop gives up
    /// within 100 ms and says the daemon is stopping) and its reply is bounded by the reply
    /// deadline; nobody waits for it.
    fn stop(&self) {
        for l in self.lock().live.drain(..) {
            if !l.answering {
                let _ = l.socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Removes its connection from [`Connections`] when the serving thread ends, however it ends.
struct Registered {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

/// Hands `conn` to a thread of its own.
fn dispatch(
    conn: UnixStream,
    state: &Arc<AdminState>,
    stop: &Arc<AtomicBool>,
    conns: &Arc<Connections>,
    limits: AdminLimits,
) {
    let started = Instant::now();
    let Ok(handle) = conn.try_clone() else {
        return;
    };
    let id = conns.register(handle);
    let registered = Registered {
        conns: conns.clone(),
        id,
    };
    let (state, stop) = (state.clone(), stop.clone());
    // If no thread can be started, the closure is dropped: the connection is closed and
    // unregistered.
    let _ = std::thread::Builder::new()
        .name("xvs-admin-conn".into())
        .spawn(move || {
            let r = registered;
            serve(&conn, &state, &stop, limits, started, |answering| {
                r.conns.set_answering(r.id, answering)
            });
        });
}

/// A socket file bound by this process; removed on drop if it is still ours.
struct Bound {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// Binds `path` mode 0600 (see the module documentation).
fn bind(path: &Path) -> std::io::Result<(UnixListener, Bound)> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io_err(
                    "another process (an xvs daemon already running?) answers on this socket"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| io_err(format!("cannot remove the stale socket: {e}")))?;
        }
        Ok(_) => return Err(io_err("exists and is not a socket".into())),
        Err(_) => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let listener = if tmp.as_os_str().len() <= SUN_PATH_MAX {
        let _ = std::fs::remove_file(&tmp);
        let l = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        l
    } else {
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        l
    };
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        Bound {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// Starts the admin server on `path`; it stops (and removes the socket) when `stop` is set.
pub fn spawn_server(
    path: &Path,
    state: AdminState,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    spawn_server_with(path, state, stop, LIMITS)
}

/// [`spawn_server`] with other limits.
pub fn spawn_server_with(
    path: &Path,
    state: AdminState,
    stop: Arc<AtomicBool>,
    limits: AdminLimits,
) -> std::io::Result<JoinHandle<()>> {
    let (listener, bound) = bind(path)?;
    listener.set_nonblocking(true)?;
    let state = Arc::new(state);
    std::thread::Builder::new()
        .name("xvs-admin".into())
        .spawn(move || {
            let conns = Arc::new(Connections::default());
            let fd = [listener.as_raw_fd()];
            let mut ready = Vec::with_capacity(1);
            let poll_ms = i32::try_from(STOP_POLL.as_millis()).unwrap_or(50);
            while !stop.load(Ordering::Relaxed) {
                match poll_readable(&fd, poll_ms, &mut ready) {
                    Ok(()) if ready.is_empty() => continue,
                    Ok(()) => {}
                    Err(_) => {
                        std::thread::sleep(STOP_POLL);
                        continue;
                    }
                }
                // A client is waiting to be accepted.
                if !conns.make_room(limits.max_connections) {
                    // Every connection is being answered (each for a bounded time): newcomers
                    // wait in the listen backlog meanwhile.
                    std::thread::sleep(STOP_POLL);
                    continue;
                }
                match listener.accept() {
                    Ok((conn, _)) => dispatch(conn, &state, &stop, &conns, limits),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // Out of file descriptors or the like: wait rather than spin.
                    Err(_) => std::thread::sleep(STOP_POLL),
                }
            }
            drop(listener);
            drop(bound);
            conns.stop();
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{ConnState, NewConn};
    use crate::control::ctl::{self, CtlCommand};
    use crate::control::testing::{assert_between, web_shared, ServerThread};
    use crate::flow::Proto;
    use crate::sched::{RealServer, SchedulerKind};
    use std::net::SocketAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn shared() -> Arc<Shared> {
        web_shared(
            SchedulerKind::Wrr,
            vec![
                RealServer::new(sa("198.18.1.11:80"), 3),
                RealServer::new(sa("198.18.1.12:80"), 1),
            ],
        )
    }

    fn insert(sh: &Shared, client: &str, real_index: usize, state: ConnState, now: Nanos) {
        let snap = sh.snapshot.load();
        let r = &snap.services[0].reals[real_index];
        r.stats.connections_total.fetch_add(1, Ordering::Relaxed);
        sh.conntrack
            .insert(
                NewConn {
                    proto: Proto::Tcp,
                    client: sa(client),
                    vip: sa("198.18.0.100:80"),
                    real: r.addr,
                    state,
                    stats: r.stats.clone(),
                },
                now,
                &snap.timeouts,
            )
            .unwrap();
    }

    #[test]
    fn list_reads_the_snapshot_and_counters() {
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        insert(&sh, "198.18.0.2:1001", 0, ConnState::SynRecv, 0);
        let l = list(&sh, &ListCounters::default());
        assert_eq!(l.conntrack_max_entries, 64);
        assert_eq!(l.services.len(), 1);
        let s = &l.services[0];
        assert_eq!(
            (s.protocol.as_str(), s.port, s.scheduler.as_str()),
            ("tcp", 80, "wrr")
        );
        assert_eq!(s.reals[0].weight, 3);
        assert_eq!(
            (
                s.reals[0].active_connections,
                s.reals[0].inactive_connections
            ),
            (1, 1)
        );
        assert_eq!(s.reals[0].connections_total, 2);
        assert_eq!(s.reals[1].weight, 1);
    }

    #[test]
    fn conns_show_time_left_and_skip_expired_entries() {
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        insert(&sh, "198.18.0.3:1000", 1, ConnState::SynRecv, 0);
        let now = 10 * NANOS_PER_SEC + 1;
        let c = conns(&sh, now);
        assert_eq!(c.connections.len(), 2);
        assert_eq!(c.connections[0].client, sa("198.18.0.2:1000"));
        assert_eq!(c.connections[0].state, "ESTABLISHED");
        // 15m timeout, 10 s and 1 ns gone: 889 whole seconds left.
        assert_eq!(c.connections[0].expire_seconds, 889);
        assert_eq!(c.connections[1].real, sa("198.18.1.12:80"));
        assert_eq!(c.connections[1].expire_seconds, 19);
        // Past the 30 s SYN timeout the second entry is gone.
        let c = conns(&sh, 31 * NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 1);
    }

    #[test]
    fn conns_list_persistence_templates_as_ipvsadm_does() {
        use crate::sched::persist::TemplateKey;
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        let key = TemplateKey::new(
            Proto::Tcp,
            "198.18.0.100".parse().unwrap(),
            80,
            "198.18.0.2".parse().unwrap(),
            "255.255.255.0".parse().unwrap(),
        );
        sh.persistence
            .schedule(key, 0, 360 * NANOS_PER_SEC, |_| Some(sa("198.18.1.11:80")))
            .unwrap();
        let c = conns(&sh, NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 2);
        let t = &c.connections[0];
        assert_eq!(
            (t.client, t.vip, t.real, t.state.as_str(), t.expire_seconds),
            (
                sa("198.18.0.0:0"),
                sa("198.18.0.100:80"),
                sa("198.18.1.11:80"),
                "NONE",
                359
            )
        );
        // Past its 360 s the template is gone; the connection (15 min) stays.
        let c = conns(&sh, 361 * NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 1);
        assert_eq!(c.connections[0].state, "ESTABLISHED");
    }

    fn temp_socket(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("xvs-admin-test-{}-{name}", std::process::id()))
            .join("admin.sock")
    }

    #[test]
    fn server_answers_ctl_and_relays_reloads_to_the_main_loop() {
        let path = temp_socket("serve");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        let (tx, rx) = reload_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let state = AdminState {
            shared: sh.clone(),
            epoch: Instant::now(),
            reloads: tx,
            stats: Arc::new(Stats::new(sh.clone(), vec![])),
            vrrp: Arc::new(VrrpStatus::default()),
        };
        let h = spawn_server(&path, state, stop.clone()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // The "main loop": answers two reloads, one accepted and one refused.
        let main = std::thread::spawn(move || {
            let outcomes: [ReloadOutcome; 2] = [
                Ok("Changing weight of service [198.18.1.12]:tcp:80 in VS [198.18.0.100]:tcp:80: 1 -> 2".to_string()),
                Err("f.yaml:3:5: did not find expected key".to_string()),
            ];
            for o in outcomes {
                let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                req.respond(o);
            }
        });

        let out = ctl::execute(
            &path,
            &CtlCommand::List {
                stats: false,
                rate: false,
                json: false,
            },
        );
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout.contains("TCP  198.18.0.100:80 wrr\n"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains("  -> 198.18.1.11:80               Masq    3      1          0"),
            "{}",
            out.stdout
        );
        let out = ctl::execute(
            &path,
            &CtlCommand::List {
                stats: false,
                rate: false,
                json: true,
            },
        );
        let v: ListReply = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v.services[0].reals[0].active_connections, 1);

        let out = ctl::execute(&path, &CtlCommand::Conns { json: false });
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout.contains("TCP 14:5") && out.stdout.contains("ESTABLISHED 198.18.0.2:1000"),
            "{}",
            out.stdout
        );
        let out = ctl::execute(&path, &CtlCommand::Vrrp { json: false });
        assert_eq!((out.code, out.stdout.as_str()), (0, "no VRRP instances\n"));

        let out = ctl::execute(&path, &CtlCommand::Reload { json: false });
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("1 -> 2"), "{}", out.stdout);
        let out = ctl::execute(&path, &CtlCommand::Reload { json: false });
        assert_eq!(out.code, 1);
        assert_eq!(out.stderr, "f.yaml:3:5: did not find expected key\n");
        main.join().unwrap();

        let unknown = {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"frobnicate\n").unwrap();
            let mut t = String::new();
            s.read_to_string(&mut t).unwrap();
            t
        };
        assert!(
            unknown.starts_with("error\nxvs: unknown request"),
            "{unknown}"
        );

        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(!path.exists(), "the socket is removed on stop");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn stale_socket_is_replaced_and_a_live_one_refused() {
        let path = temp_socket("stale");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A socket file nobody listens on.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (tx, _rx) = reload_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let state = || {
            let shared = shared();
            AdminState {
                stats: Arc::new(Stats::new(shared.clone(), vec![])),
                shared,
                epoch: Instant::now(),
                reloads: tx.clone(),
                vrrp: Arc::new(VrrpStatus::default()),
            }
        };
        let h = spawn_server(&path, state(), stop.clone()).unwrap();
        let e = spawn_server(&path, state(), Arc::new(AtomicBool::new(false))).unwrap_err();
        assert!(e.to_string().contains("answers on this socket"), "{e}");
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(!path.exists());
        std::fs::write(&path, "not a socket").unwrap();
        let e = spawn_server(&path, state(), Arc::new(AtomicBool::new(false))).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    fn admin_state(sh: &Arc<Shared>, reloads: Sender<ReloadRequest>) -> AdminState {
        AdminState {
            shared: sh.clone(),
            epoch: Instant::now(),
            reloads,
            stats: Arc::new(Stats::new(sh.clone(), vec![])),
            vrrp: Arc::new(VrrpStatus::default()),
        }
    }

    /// One service with `n` real servers (a `list` reply of some 300 bytes per real server).
    fn shared_with_reals(n: u16) -> Arc<Shared> {
        let reals = (1..=n)
            .map(|port| RealServer::new(SocketAddr::new("198.18.1.11".parse().unwrap(), port), 1))
            .collect();
        web_shared(SchedulerKind::Rr, reals)
    }

    /// An admin server in a directory of its own, stopped and removed on drop.
    struct Server {
        path: PathBuf,
        thread: ServerThread,
        /// The "main loop" end of the reload channel.
        reloads: Receiver<ReloadRequest>,
        /// Length of the encoded `list` reply.
        list_len: usize,
    }

    impl Server {
        fn start(name: &str, sh: Arc<Shared>, limits: AdminLimits) -> Server {
            let path = temp_socket(name);
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
            let (tx, reloads) = reload_channel();
            let stop = Arc::new(AtomicBool::new(false));
            let state = admin_state(&sh, tx);
            let list_len = handle(&state, "list\n", &stop).encode().len();
            let thread = spawn_server_with(&path, state, stop.clone(), limits).unwrap();
            Server {
                path,
                thread: ServerThread {
                    stop,
                    thread: Some(thread),
                },
                reloads,
                list_len,
            }
        }

        fn connect(&self) -> UnixStream {
            let s = UnixStream::connect(&self.path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        }

        /// Sends `line`, reads the whole reply; returns it and the time taken.
        fn ask(&self, line: &str) -> (String, Duration) {
            let t = Instant::now();
            let mut s = self.connect();
            s.write_all(line.as_bytes()).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            (reply, t.elapsed())
        }

        /// Sets `stop`; returns how long the accept thread took to end.
        fn stop(&mut self) -> Duration {
            self.thread.stop()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.thread.stop();
            let _ = std::fs::remove_dir_all(self.path.parent().unwrap());
        }
    }

    /// Reads until the server closes the connection (10 s at most); returns the bytes read
    /// and when the close was seen.
    fn until_closed(s: &mut UnixStream) -> (Vec<u8>, Instant) {
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("still open after 10 s ({e}), {} bytes read", got.len()),
        }
        (got, Instant::now())
    }

    const LONG: AdminLimits = AdminLimits {
        max_connections: 64,
        request_deadline: Duration::from_secs(20),
        reply_deadline: Duration::from_secs(30),
    };

    #[test]
    fn silent_clients_and_one_that_never_reads_delay_neither_requests_nor_reloads() {
        let mut server = Server::start("silent", shared_with_reals(5000), LIMITS);
        // Far more than a Unix socket buffers (net.core.wmem_max is 208 KiB by default).
        assert!(server.list_len > 1 << 20, "{}", server.list_len);
        let _silent: Vec<UnixStream> = (0..20).map(|_| server.connect()).collect();
        let mut stuck = server.connect();
        stuck.write_all(b"list\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));

        let (reply, took) = server.ask("list\n");
        assert!(
            reply.starts_with("ok\n"),
            "{}",
            &reply[..reply.len().min(200)]
        );
        assert_eq!(reply.len(), server.list_len);
        assert!(took < Duration::from_secs(1), "list answered in {took:?}");
        let main = {
            let rx = server.reloads.clone();
            std::thread::spawn(move || {
                let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                assert_eq!(req.op, MainOp::Reload);
                req.respond(Ok("reloaded".to_string()));
            })
        };
        let (reply, took) = server.ask("reload\n");
        assert_eq!(reply, "ok\nreloaded");
        assert!(took < Duration::from_secs(1), "reload answered in {took:?}");
        main.join().unwrap();

        assert!(server.stop() < Duration::from_millis(500));
        // The stuck client really was stuck: its reply had not all been handed over.
        assert!(until_closed(&mut stuck).0.len() < server.list_len);
    }

    #[test]
    fn a_silent_client_is_answered_with_an_error_at_the_request_deadline() {
        let limits = AdminLimits {
            request_deadline: Duration::from_millis(300),
            ..LONG
        };
        let server = Server::start("deadline", shared(), limits);
        let t = Instant::now();
        let mut s = server.connect();
        let (reply, closed) = until_closed(&mut s);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "error\nxvs: cannot read the request: no whole request line within 300 ms"
        );
        let (lo, hi) = (Duration::from_millis(300), Duration::from_millis(1300));
        assert_between("answered", closed - t, lo, hi);
    }

    #[test]
    fn the_request_deadline_covers_the_whole_line_not_each_read() {
        let limits = AdminLimits {
            request_deadline: Duration::from_millis(500),
            ..LONG
        };
        let server = Server::start("drip", shared(), limits);
        let t = Instant::now();
        let mut s = server.connect();
        // One byte every 50 ms, never a newline: each read is quick, the line never ends.
        for b in b"list".iter().cycle().take(40) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (reply, closed) = until_closed(&mut s);
        assert!(
            String::from_utf8_lossy(&reply).contains("no whole request line within 500 ms"),
            "{reply:?}"
        );
        let (lo, hi) = (Duration::from_millis(500), Duration::from_millis(1500));
        assert_between("answered", closed - t, lo, hi);
    }

    #[test]
    fn a_client_that_never_reads_is_cut_off_at_the_reply_deadline() {
        let limits = AdminLimits {
            reply_deadline: Duration::from_millis(500),
            ..LONG
        };
        let server = Server::start("noread", shared_with_reals(5000), limits);
        let mut s = server.connect();
        s.write_all(b"list\n").unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        let (got, _) = until_closed(&mut s);
        assert!(got.starts_with(b"ok\n"));
        assert!(
            got.len() < server.list_len,
            "the whole reply arrived ({} bytes)",
            got.len()
        );
    }

    #[test]
    fn past_the_cap_the_oldest_idle_connection_is_closed_and_an_answered_one_kept() {
        let limits = AdminLimits {
            max_connections: 2,
            ..LONG
        };
        let server = Server::start("cap", shared(), limits);
        // The oldest waits for a reload: it is being answered and must be kept.
        let mut reloading = server.connect();
        reloading.write_all(b"reload\n").unwrap();
        let req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut silent = server.connect();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let (reply, _) = server.ask("list\n");
        assert!(reply.starts_with("ok\n{"), "{reply}");
        let (got, closed) = until_closed(&mut silent);
        assert!(got.is_empty(), "{got:?}");
        assert!(closed - t < Duration::from_secs(1));
        req.respond(Ok("reloaded".to_string()));
        assert_eq!(
            String::from_utf8_lossy(&until_closed(&mut reloading).0),
            "ok\nreloaded"
        );
    }

    #[test]
    fn with_every_connection_being_answered_a_newcomer_waits_its_turn() {
        let limits = AdminLimits {
            max_connections: 1,
            ..LONG
        };
        let server = Arc::new(Server::start("full", shared(), limits));
        let mut reloading = server.connect();
        reloading.write_all(b"reload\n").unwrap();
        let req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
        let newcomer = {
            let server = server.clone();
            std::thread::spawn(move || server.ask("list\n").0)
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!newcomer.is_finished(), "served past the cap");
        req.respond(Ok("reloaded".to_string()));
        assert_eq!(
            String::from_utf8_lossy(&until_closed(&mut reloading).0),
            "ok\nreloaded"
        );
        let reply = newcomer.join().unwrap();
        assert!(reply.starts_with("ok\n{"), "{reply}");
    }

    #[test]
    fn a_connection_closed_to_make_room_does_not_run_its_cut_short_request() {
        let limits = AdminLimits {
            max_connections: 1,
            ..LONG
        };
        let server = Server::start("cut", shared(), limits);
        // "reload" without its newline: not a whole line yet, so the connection is idle.
        let mut partial = server.connect();
        partial.write_all(b"reload").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (reply, _) = server.ask("vrrp\n");
        assert!(reply.starts_with("ok\n"), "{reply}");
        assert!(until_closed(&mut partial).0.is_empty());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            server.reloads.try_recv().is_err(),
            "the closed connection's request ran"
        );
    }

    #[test]
    fn stop_ends_the_server_promptly_and_closes_stuck_connections() {
        let mut server = Server::start("stop", shared_with_reals(5000), LONG);
        let mut silent = server.connect();
        let mut stuck = server.connect();
        stuck.write_all(b"list\n").unwrap();
        // A reload the main loop never answers.
        let mut reloading = server.connect();
        reloading.write_all(b"reload\n").unwrap();
        let _req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let took = server.stop();
        assert!(took < Duration::from_millis(500), "stopped in {took:?}");
        assert!(!server.path.exists(), "the socket is removed on stop");
        let t = Instant::now();
        assert!(until_closed(&mut silent).0.is_empty());
        assert!(until_closed(&mut stuck).0.len() < server.list_len);
        let (reply, _) = until_closed(&mut reloading);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "error\nxvs: the daemon is stopping; the reload did not run"
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
