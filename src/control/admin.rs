//! The admin Unix socket (`global.admin_socket`): the daemon's side of `xvs ctl`.
//!
//! A thread accepts one connection at a time (non-blocking accept and a short sleep, so that it
//! notices the stop flag), reads one request line and writes one reply (the protocol is described
//! in [`ctl`](crate::control::ctl)). `list`, `conns` and `vrrp` are answered here from the shared
//! state ([`Shared`]: the current snapshot, the per-real counters, the connection table). A
//! `reload` must run on the daemon's main thread, which owns the running configuration: it is
//! sent over a channel ([`ReloadRequest`]) that the main loop drains at every wake-up, and the
//! thread waits (bounded) for the outcome text.
//!
//! The socket is created mode 0600 (bound under a temporary name, restricted, then renamed into
//! place, so it is never connectable by others), its parent directory is created if missing, a
//! stale socket file is replaced, a live one (another daemon answering) is an error, and the file
//! is removed when the server stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line read.
const MAX_REQUEST: u64 = 1024;
/// Accept poll interval while idle.
const IDLE_SLEEP: Duration = Duration::from_millis(50);

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

fn serve(conn: UnixStream, state: &AdminState, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut line = String::new();
    let reply = match BufReader::new((&conn).take(MAX_REQUEST)).read_line(&mut line) {
        Ok(_) => handle(state, &line, stop),
        Err(e) => Reply::error(format!("xvs: cannot read the request: {e}")),
    };
    let mut w = &conn;
    let _ = w.write_all(reply.encode().as_bytes());
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
    let (listener, bound) = bind(path)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("xvs-admin".into())
        .spawn(move || {
            let _bound = bound;
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => serve(conn, &state, &stop),
                    Err(_) => std::thread::sleep(IDLE_SLEEP),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{ConnState, NewConn, Timeouts};
    use crate::control::ctl::{self, CtlCommand};
    use crate::datapath::nexthop::NextHopTable;
    use crate::datapath::{Service, Snapshot};
    use crate::flow::Proto;
    use crate::sched::{RealServer, SchedulerKind};
    use std::net::SocketAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn shared() -> Arc<Shared> {
        let web = Service::new(
            "web",
            ServiceKey {
                vip: "198.18.0.100".parse().unwrap(),
                port: 80,
                proto: Proto::Tcp,
            },
            Forwarding::Nat,
            SchedulerKind::Wrr,
            vec![
                RealServer::new(sa("198.18.1.11:80"), 3),
                RealServer::new(sa("198.18.1.12:80"), 1),
            ],
        );
        let snap = Snapshot::new(1, vec![], vec![web], Timeouts::default(), false);
        Arc::new(Shared::new(snap, NextHopTable::new(vec![], []), 64))
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
}
