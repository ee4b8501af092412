//! End to end, connection sync between two directors (issue 16) on the lab's `vrrp` and
//! `vrrpdr` topologies (`scripts/lab`), whose lb1 and lb2 are also joined by a third link,
//! `sync0` (198.18.9.1 ── 198.18.9.2), where they sync over unicast with a key file of mode
//! 0600 made by the test. lb1 is MASTER (priority 200), lb2 BACKUP (150); every instance has
//! 100 ms adverts.
//!
//! - `nat_and_fullnat_connections_survive_a_failover_and_a_failover_back`: a sync group of a
//!   WAN instance (the VIP) and a LAN instance (the real servers' gateway and the FULLNAT pool
//!   address); 50 held TCP connections through a NAT service and 50 through a FULLNAT service
//!   (same `max_entries` and pool on both boxes), each doing one request/response every 100 ms
//!   with a line echo server on r1 and r2 (the test's own, answering with its name). SIGKILL
//!   of lb1 and its links down (a dead box, as in `e2e_vrrp`): at least 49 of each 50 keep
//!   working through lb2, on the same real server. lb1 restarts as BACKUP (priority 100), asks
//!   lb2 for a full dump (`xvs ctl sync` shows lb2 in sync), and a SIGKILL of lb2 moves them
//!   back to lb1: again at least 49 of each 50 keep working.
//! - `dr_with_persistence_survives_a_failover_and_keeps_the_real_server`: the same with a DR
//!   service with persistence on `vrrpdr` (one LAN instance holding the router's next hop for
//!   the VIP): the 50 connections of the client all go to one real server; after each failover
//!   at least 49 keep working, and new connections of the client still go to that server (the
//!   template was synced).
//!
//! The figures are printed (`cargo test --test e2e_sync -- --nocapture`): connections that
//! survived, and the failover time (the kill → each connection's first answer after it; the
//! median and the slowest).
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/vrrp.rs"]
mod vrrp_lab;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{in_netns, Lab, Xvs, VIP};
use vrrp_lab::{box_config, start, wait_all, Box_};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
/// The `vrrpdr` lab's VIP (routed by its router via the VRRP address 198.18.1.1).
const ROUTED_VIP: &str = "198.18.2.100";
/// Held connections per service.
const CONNS: usize = 50;
/// At least this many of each [`CONNS`] must survive each failover.
const MUST_SURVIVE: usize = 49;

// ---- the echo servers ------------------------------------------------------------------------

/// Line echo servers in the lab's real servers: each answers a line with `NAME LINE`. They run
/// on the test's threads, their sockets in the real servers' namespaces; stopped on drop.
struct EchoServers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServers {
    /// A server on every port of `ports` (all addresses: DR's VIP on lo too) in r1 and r2.
    fn start(lab: &Lab, ports: &[u16]) -> EchoServers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for role in ["r1", "r2"] {
            for &port in ports {
                let listener = in_netns(&lab.ns(role), || {
                    TcpListener::bind(("0.0.0.0", port)).unwrap()
                });
                listener.set_nonblocking(true).unwrap();
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || {
                    accept_loop(&listener, role, &stop)
                }));
            }
        }
        EchoServers { stop, threads }
    }
}

impl Drop for EchoServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, name: &'static str, stop: &Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let stop = stop.clone();
                std::thread::spawn(move || echo(s, name, &stop));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn echo(s: TcpStream, name: &str, stop: &AtomicBool) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if w.write_all(format!("{name} {line}").as_bytes()).is_err() {
                    return;
                }
                line.clear();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

// ---- the held connections --------------------------------------------------------------------

/// One held connection's record: when each answer came, from which server, and its error.
#[derive(Default)]
struct Record {
    answers: Mutex<Vec<Instant>>,
    server: Mutex<Option<String>>,
    error: Mutex<Option<String>>,
}

impl Record {
    fn ok_since(&self, t: Instant) -> usize {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| **a >= t)
            .count()
    }

    fn first_since(&self, t: Instant) -> Option<Duration> {
        let a = self.answers.lock().unwrap();
        a.iter().find(|a| **a >= t).map(|a| *a - t)
    }

    fn failed(&self) -> bool {
        self.error.lock().unwrap().is_some()
    }
}

/// [`CONNS`] connections from the client to `to`, each doing one request/response every
/// 100 ms (5 s timeouts) on a thread of its own until dropped.
struct Held {
    what: String,
    records: Vec<Arc<Record>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Held {
    fn open(lab: &Lab, what: &str, to: SocketAddr) -> Held {
        let streams: Vec<TcpStream> = in_netns(&lab.ns("client"), || {
            (0..CONNS)
                .map(|i| {
                    TcpStream::connect_timeout(&to, Duration::from_secs(3))
                        .unwrap_or_else(|e| panic!("{what}: connection {i} to {to}: {e}"))
                })
                .collect()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut records = Vec::new();
        let mut threads = Vec::new();
        for (i, s) in streams.into_iter().enumerate() {
            let rec = Arc::new(Record::default());
            records.push(rec.clone());
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || converse(s, i, &rec, &stop)));
        }
        Held {
            what: what.into(),
            records,
            stop,
            threads,
        }
    }

    /// Waits (10 s at most) until every connection that has not failed has answered `n` times
    /// since `t`.
    fn wait_answers(&self, t: Instant, n: usize) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end
            && self
                .records
                .iter()
                .any(|r| !r.failed() && r.ok_since(t) < n)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The servers the connections talk to, each once.
    fn servers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.server.lock().unwrap().clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// After a kill at `t`: how many connections kept working (no error, answers after `t`),
    /// printed with the failover times; asserts at least [`MUST_SURVIVE`].
    fn survivors(&self, t: Instant, run: &str, logs: &str) -> usize {
        self.wait_answers(t, 5);
        let alive: Vec<&Arc<Record>> = self
            .records
            .iter()
            .filter(|r| !r.failed() && r.ok_since(t) >= 5)
            .collect();
        let mut gaps: Vec<Duration> = alive.iter().filter_map(|r| r.first_since(t)).collect();
        gaps.sort();
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        eprintln!(
            "{run}: {}: {} of {} connections survived; first answer after the kill: median {:.0} ms, slowest {:.0} ms",
            self.what,
            alive.len(),
            self.records.len(),
            ms(gaps.get(gaps.len() / 2)),
            ms(gaps.last()),
        );
        let errors: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.error.lock().unwrap().clone())
            .collect();
        assert!(
            alive.len() >= MUST_SURVIVE,
            "{run}: {}: only {} of {} survived; errors {errors:?}\n{logs}",
            self.what,
            alive.len(),
            self.records.len()
        );
        alive.len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One connection's loop: `ping N` → `SERVER ping N`, every 100 ms; the server must not change.
fn converse(s: TcpStream, i: usize, rec: &Record, stop: &AtomicBool) {
    let fail = |e: String| *rec.error.lock().unwrap() = Some(format!("connection {i}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if let Err(e) = w.write_all(format!("ping {n}\n").as_bytes()) {
            return fail(format!("write: {e}"));
        }
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return fail("closed".into()),
            Err(e) => return fail(format!("read: {e}")),
            Ok(_) => {}
        }
        let Some((server, rest)) = line.trim_end().split_once(' ') else {
            return fail(format!("bad answer {line:?}"));
        };
        if rest != format!("ping {n}") {
            return fail(format!("answer {line:?} to ping {n}"));
        }
        let mut known = rec.server.lock().unwrap();
        match known.as_deref() {
            None => *known = Some(server.to_string()),
            Some(k) if k != server => return fail(format!("moved from {k} to {server}")),
            Some(_) => {}
        }
        drop(known);
        rec.answers.lock().unwrap().push(Instant::now());
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- the directors ---------------------------------------------------------------------------

/// The sync key, mode 0600, in the lab's state directory.
fn key_file(lab: &Lab) -> PathBuf {
    let path = lab.file("sync.key");
    std::fs::write(&path, b"e2e-sync-key-0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The `global`, `datapath` and `sync` sections of `role` (peer: the other box's sync0).
fn common_sections(role: &str, interfaces: &[&str], key: &Path) -> String {
    let peer = if role == "lb1" {
        "198.18.9.2"
    } else {
        "198.18.9.1"
    };
    let ifaces: String = interfaces
        .iter()
        .map(|i| format!("    - {{ name: {i}, queues: [0] }}\n"))
        .collect();
    format!(
        "global:\n  router_id: {role}\n  admin_socket: /run/xvs/admin.sock\n  metrics_listen: 127.0.0.1:9798\n\
         datapath:\n  interfaces:\n{ifaces}  poll: wakeup\n\
         conntrack:\n  max_entries: 65536\n\
         sync:\n  interface: sync0\n  peers: [{peer}]\n  key_file: {}\n",
        key.display()
    )
}

/// NAT on VIP:7000 and FULLNAT on VIP:7001 (pool 198.18.1.2, a VRRP address of VI_2, so the
/// MASTER answers ARP for it), behind a sync group of VI_1 (wan0) and VI_2 (lan0).
fn nat_config(lab: &Lab, role: &'static str, priority: u8, key: &Path) -> Box_ {
    let text = format!(
        "{}local_addresses:\n  - {{ name: pool, addresses: [198.18.1.2], ports: 20000-29999 }}\n\
         services:\n\
         \x20 - {{ name: nat, vip: {VIP}, port: 7000, scheduler: rr, reals: [{{ address: 198.18.1.11:7000 }}, {{ address: 198.18.1.12:7000 }}] }}\n\
         \x20 - {{ name: fnat, vip: {VIP}, port: 7001, scheduler: rr, forwarding: fullnat, local_addresses: pool, reals: [{{ address: 198.18.1.11:7001 }}, {{ address: 198.18.1.12:7001 }}] }}\n\
         vrrp:\n  instances:\n\
         \x20   - {{ name: VI_1, interface: wan0, vrid: 51, priority: {priority}, advert_interval: 100ms, vips: [{VIP}/32], track_interfaces: [lan0] }}\n\
         \x20   - {{ name: VI_2, interface: lan0, vrid: 52, priority: {priority}, advert_interval: 100ms, vips: [198.18.1.1/24, 198.18.1.2/32], track_interfaces: [wan0] }}\n\
         \x20 sync_groups:\n    - {{ name: G1, instances: [VI_1, VI_2] }}\n",
        common_sections(role, &["wan0", "lan0"], key)
    );
    box_config(lab, role, &format!("sync-{role}-{priority}.yaml"), &text)
}

/// DR with persistence on the routed VIP:7000, behind VI_1 (lan0: the router's next hop).
fn dr_config(lab: &Lab, role: &'static str, priority: u8, key: &Path) -> Box_ {
    let text = format!(
        "{}services:\n\
         \x20 - {{ name: dr, vip: {ROUTED_VIP}, port: 7000, scheduler: rr, forwarding: dr, persistence: {{ timeout: 10m }}, reals: [{{ address: 198.18.1.11:7000 }}, {{ address: 198.18.1.12:7000 }}] }}\n\
         vrrp:\n  instances:\n\
         \x20   - {{ name: VI_1, interface: lan0, vrid: 51, priority: {priority}, advert_interval: 100ms, vips: [198.18.1.1/24] }}\n\
         \x20 sync_groups:\n    - {{ name: G1, instances: [VI_1] }}\n",
        common_sections(role, &["lan0"], key)
    );
    box_config(lab, role, &format!("sync-{role}-{priority}.yaml"), &text)
}

/// `xvs ctl sync` of the daemon at `socket`.
fn ctl_sync(socket: &Path) -> String {
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .arg("sync")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (10 s at most) until `xvs ctl sync` at `socket` shows `peer` in sync (its full dump
/// ended here); returns the last text.
fn wait_in_sync(socket: &Path, peer: &str) -> (bool, String) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = ctl_sync(socket);
        let yes = text.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&peer) && w.get(1) == Some(&"yes")
        });
        if yes || Instant::now() >= end {
            return (yes, text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `installed N` of `xvs ctl sync`'s last line.
fn installed(text: &str) -> u64 {
    text.split("installed ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// SIGKILLs `x` in `role` and takes its links down at once (a dead box); returns the moment.
fn kill_box(lab: &Lab, x: &Xvs, role: &str, links: &[&str]) -> Instant {
    let t = x.signal_now(libc::SIGKILL);
    for dev in links {
        lab.exec_ok(role, &["ip", "link", "set", "dev", dev, "down"]);
    }
    t
}

fn links_up(lab: &Lab, role: &str, links: &[&str]) {
    for dev in links {
        lab.exec_ok(role, &["ip", "link", "set", "dev", dev, "up"]);
    }
}

fn logs(xs: &[&Xvs]) -> String {
    xs.iter()
        .map(|x| x.log())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Waits until the daemon at `b.socket` has `n` instances, all in `state`.
fn wait_vrrp(b: &Box_, state: &str, n: usize, x: &Xvs) {
    assert!(
        wait_all(&b.socket, state, n),
        "{} never {state}:\n{}",
        b.role,
        x.log()
    );
}

#[test]
fn nat_and_fullnat_connections_survive_a_failover_and_a_failover_back() {
    let lab = Lab::up("vrrp");
    let _servers = EchoServers::start(&lab, &[7000, 7001]);
    let key = key_file(&lab);
    let (b1, b2) = (
        nat_config(&lab, "lb1", 200, &key),
        nat_config(&lab, "lb2", 150, &key),
    );
    let x1 = start(&lab, &b1);
    wait_vrrp(&b1, "MASTER", 2, &x1);
    let x2 = start(&lab, &b2);
    wait_vrrp(&b2, "BACKUP", 2, &x2);
    let (ok, text) = wait_in_sync(&b2.socket, "198.18.9.1");
    assert!(ok, "lb2 never got lb1's dump:\n{text}\n{}", x2.log());
    let vip = |port| SocketAddr::new(VIP.parse().unwrap(), port);
    let nat = Held::open(&lab, "NAT", vip(7000));
    let fnat = Held::open(&lab, "FULLNAT", vip(7001));
    let t0 = Instant::now();
    nat.wait_answers(t0, 3);
    fnat.wait_answers(t0, 3);
    assert_eq!(nat.servers().len(), 2, "rr spreads the NAT connections");
    // Let the ESTABLISHED updates reach lb2 (drained every 5 ms, flushed within 20 ms).
    std::thread::sleep(Duration::from_millis(300));
    let text = ctl_sync(&b2.socket);
    assert!(installed(&text) >= 2 * CONNS as u64, "lb2:\n{text}");

    // 1. lb1 dies: lb2 takes over with the synced connections.
    let links = ["wan0", "lan0", "sync0"];
    let t = kill_box(&lab, &x1, "lb1", &links);
    wait_vrrp(&b2, "MASTER", 2, &x2);
    let all = logs(&[&x2]);
    nat.survivors(t, "failover to lb2", &all);
    fnat.survivors(t, "failover to lb2", &all);
    drop(x1);

    // 2. lb1 comes back as BACKUP and gets lb2's full dump.
    links_up(&lab, "lb1", &links);
    let b1_low = nat_config(&lab, "lb1", 100, &key);
    let x1 = start(&lab, &b1_low);
    wait_vrrp(&b1_low, "BACKUP", 2, &x1);
    let (ok, text) = wait_in_sync(&b1_low.socket, "198.18.9.2");
    assert!(ok, "lb1 never got lb2's dump:\n{text}\n{}", x1.log());
    eprintln!(
        "lb1 restarted: in sync with lb2, {} records installed",
        installed(&text)
    );
    assert!(installed(&text) >= 2 * CONNS as u64 - 2, "lb1:\n{text}");

    // 3. lb2 dies: back to lb1.
    let t = kill_box(&lab, &x2, "lb2", &links);
    wait_vrrp(&b1_low, "MASTER", 2, &x1);
    let all = logs(&[&x1]);
    nat.survivors(t, "failover back to lb1", &all);
    fnat.survivors(t, "failover back to lb1", &all);
    let page = lab.metrics_in("lb1");
    assert!(page.contains("xvs_sync_installed_total"), "{page}");
}

#[test]
fn dr_with_persistence_survives_a_failover_and_keeps_the_real_server() {
    let lab = Lab::up("vrrpdr");
    let _servers = EchoServers::start(&lab, &[7000]);
    let key = key_file(&lab);
    let (b1, b2) = (
        dr_config(&lab, "lb1", 200, &key),
        dr_config(&lab, "lb2", 150, &key),
    );
    let x1 = start(&lab, &b1);
    wait_vrrp(&b1, "MASTER", 1, &x1);
    let x2 = start(&lab, &b2);
    wait_vrrp(&b2, "BACKUP", 1, &x2);
    let (ok, text) = wait_in_sync(&b2.socket, "198.18.9.1");
    assert!(ok, "lb2 never got lb1's dump:\n{text}\n{}", x2.log());
    let vip = SocketAddr::new(ROUTED_VIP.parse().unwrap(), 7000);
    let dr = Held::open(&lab, "DR", vip);
    dr.wait_answers(Instant::now(), 3);
    let servers = dr.servers();
    assert_eq!(servers.len(), 1, "persistence: one real server");
    std::thread::sleep(Duration::from_millis(300));

    let links = ["lan0", "sync0"];
    let t = kill_box(&lab, &x1, "lb1", &links);
    wait_vrrp(&b2, "MASTER", 1, &x2);
    dr.survivors(t, "DR failover to lb2", &x2.log());
    // New connections of the client: the synced template keeps them on the same server.
    let fresh = Held::open(&lab, "DR new", vip);
    fresh.wait_answers(Instant::now(), 2);
    assert_eq!(fresh.servers(), servers, "the template was not synced");
    drop(fresh);
    drop(x1);

    links_up(&lab, "lb1", &links);
    let b1_low = dr_config(&lab, "lb1", 100, &key);
    let x1 = start(&lab, &b1_low);
    wait_vrrp(&b1_low, "BACKUP", 1, &x1);
    let (ok, text) = wait_in_sync(&b1_low.socket, "198.18.9.2");
    assert!(ok, "lb1 never got lb2's dump:\n{text}\n{}", x1.log());
    let t = kill_box(&lab, &x2, "lb2", &links);
    wait_vrrp(&b1_low, "MASTER", 1, &x1);
    dr.survivors(t, "DR failover back to lb1", &x1.log());
    let fresh = Held::open(&lab, "DR new", vip);
    fresh.wait_answers(Instant::now(), 2);
    assert_eq!(fresh.servers(), servers, "the template was not in the dump");
}
