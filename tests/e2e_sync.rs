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

#[path = "common/held.rs"]
mod held;
#[path = "common/vrrp.rs"]
mod vrrp_lab;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Lab, Xvs, VIP};
use held::{EchoServers, Held};
use vrrp_lab::{box_config, start, wait_all, Box_};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
/// The `vrrpdr` lab's VIP (routed by its router via the VRRP address 198.18.1.1).
const ROUTED_VIP: &str = "198.18.2.100";
/// Held connections per service.
const CONNS: usize = 50;
/// At least this many of each [`CONNS`] must survive each failover.
const MUST_SURVIVE: usize = 49;

// ---- the held connections --------------------------------------------------------------------

/// [`CONNS`] connections from the client to `to`, each doing one request/response every 100 ms
/// with the echo servers (5 s to answer) until dropped.
fn hold(lab: &Lab, what: &str, to: SocketAddr) -> Held {
    Held::open(lab, what, to, CONNS, Duration::from_millis(100))
}

/// Waits (10 s at most) until every connection of `held` that has not failed has answered `n`
/// times since `t`.
fn wait_answers(held: &Held, t: Instant, n: usize) {
    held.wait_answers(t, n, Duration::from_secs(10));
}

/// After a kill at `t`: how many connections kept working (no error, 5 answers after `t`),
/// printed with the failover times; asserts at least [`MUST_SURVIVE`].
fn survivors(held: &Held, t: Instant, run: &str, logs: &str) -> usize {
    let s = held.survivors(t, 5);
    eprintln!(
        "{run}: {}: {} of {} connections survived; first answer after the kill: median {} ms, slowest {} ms",
        held.what,
        s.alive,
        s.total,
        s.median.as_millis(),
        s.slowest.as_millis(),
    );
    assert!(
        s.alive >= MUST_SURVIVE,
        "{run}: {}: only {} of {} survived; errors {:?}\n{logs}",
        held.what,
        s.alive,
        s.total,
        s.errors
    );
    s.alive
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
    let _servers = EchoServers::start(&lab, &["r1", "r2"], &[7000, 7001]);
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
    let nat = hold(&lab, "NAT", vip(7000));
    let fnat = hold(&lab, "FULLNAT", vip(7001));
    let t0 = Instant::now();
    wait_answers(&nat, t0, 3);
    wait_answers(&fnat, t0, 3);
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
    survivors(&nat, t, "failover to lb2", &all);
    survivors(&fnat, t, "failover to lb2", &all);
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
    survivors(&nat, t, "failover back to lb1", &all);
    survivors(&fnat, t, "failover back to lb1", &all);
    let page = lab.metrics_in("lb1");
    assert!(page.contains("xvs_sync_installed_total"), "{page}");
}

#[test]
fn dr_with_persistence_survives_a_failover_and_keeps_the_real_server() {
    let lab = Lab::up("vrrpdr");
    let _servers = EchoServers::start(&lab, &["r1", "r2"], &[7000]);
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
    let dr = hold(&lab, "DR", vip);
    wait_answers(&dr, Instant::now(), 3);
    let servers = dr.servers();
    assert_eq!(servers.len(), 1, "persistence: one real server");
    std::thread::sleep(Duration::from_millis(300));

    let links = ["lan0", "sync0"];
    let t = kill_box(&lab, &x1, "lb1", &links);
    wait_vrrp(&b2, "MASTER", 1, &x2);
    survivors(&dr, t, "DR failover to lb2", &x2.log());
    // New connections of the client: the synced template keeps them on the same server.
    let fresh = hold(&lab, "DR new", vip);
    wait_answers(&fresh, Instant::now(), 2);
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
    survivors(&dr, t, "DR failover back to lb1", &x1.log());
    let fresh = hold(&lab, "DR new", vip);
    wait_answers(&fresh, Instant::now(), 2);
    assert_eq!(fresh.servers(), servers, "the template was not in the dump");
}
