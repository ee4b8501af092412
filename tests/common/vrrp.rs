//! Shared by the VRRP end-to-end tests (`tests/e2e_vrrp.rs`, `tests/e2e_hub.rs`,
//! `tests/e2e_vrrp_dual_stack.rs`): the two load balancers of the `vrrp` and `vrrpdr` labs
//! (`scripts/lab`), their configs, their VRRP states, and the failover measurement.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use crate::common::unix_now;
use crate::common::{Lab, Summary, Xvs, VIP};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

/// Master_Down_Interval of lb2 (priority 150, 100 ms adverts): 3 × 100 ms + (256 − 150) ×
/// 100 ms / 256.
pub const MDI_LB2: Duration = Duration::from_nanos(300_000_000 + 106 * 100_000_000 / 256);

/// Master_Down_Interval of a VRRPv3 backup at `priority` with 100 ms adverts: 3 × 100 ms +
/// (256 − priority) × 100 ms / 256 (as [`MDI_LB2`] for 150).
pub const fn mdi_100ms(priority: u64) -> Duration {
    Duration::from_nanos(300_000_000 + (256 - priority) * 100_000_000 / 256)
}

/// One load balancer's daemon: its role, config and admin socket (both in the lab's state
/// directory, deleted with the lab).
pub struct Box_ {
    pub role: &'static str,
    pub config: PathBuf,
    pub socket: PathBuf,
}

/// `config/vrrp.yaml` for `role` (router_id) at `priority` (both instances).
pub fn write_config(lab: &Lab, role: &'static str, priority: u8) -> Box_ {
    let text = std::fs::read_to_string(Lab::config("vrrp.yaml")).unwrap();
    for want in [
        "poll: busy",
        "router_id: lb1",
        "priority: 200",
        "admin_socket: /run/xvs/admin.sock",
    ] {
        assert!(text.contains(want), "config/vrrp.yaml lost `{want}`");
    }
    let text = text
        .replace("router_id: lb1", &format!("router_id: {role}"))
        .replace("priority: 200", &format!("priority: {priority}"));
    box_config(lab, role, &format!("vrrp-{role}.yaml"), &text)
}

/// The daemon of `role` with config `text`, written as `name` by [`Lab::write_config`] (`poll:
/// wakeup`, the role's own admin socket).
pub fn box_config(lab: &Lab, role: &'static str, name: &str, text: &str) -> Box_ {
    Box_ {
        role,
        config: lab.write_config(role, name, text),
        socket: lab.admin_socket(role),
    }
}

/// `xvs ctl vrrp --json` of the daemon at `socket`: (name, state, priority, master).
pub fn vrrp(socket: &Path) -> Vec<(String, String, u64, Option<String>)> {
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .args(["vrrp", "--json"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    v["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["name"].as_str().unwrap_or("").to_string(),
                        i["state"].as_str().unwrap_or("").to_string(),
                        i["priority"].as_u64().unwrap_or(0),
                        i["master"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (10 s at most) until both instances of the daemon at `socket` (`config/vrrp.yaml`'s
/// VI_1 and VI_2) are in `state`.
pub fn wait_state(socket: &Path, state: &str) -> bool {
    wait_all(socket, state, 2)
}

/// Waits (10 s at most) until the daemon at `socket` has `instances` VRRP instances, all in
/// `state`.
pub fn wait_all(socket: &Path, state: &str, instances: usize) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let v = vrrp(socket);
        if v.len() == instances && v.iter().all(|i| i.1 == state) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `role`'s IPv4 addresses (`ip -br -4 addr show`).
pub fn addresses(lab: &Lab, role: &str) -> String {
    lab.exec_ok(role, &["ip", "-br", "-4", "addr", "show"])
}

/// Every `xvs_vrrp_errors_total` is zero.
pub fn assert_no_vrrp_errors(page: &str, who: &str) {
    let errs: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("xvs_vrrp_errors_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(errs.is_empty(), "{who}: VRRP errors counted: {errs:?}");
    assert!(
        page.contains("xvs_vrrp_errors_total{reason=\"checksum\"} 0"),
        "{who}: no error counters"
    );
}

/// Starts the daemon of `b` and waits (20 s at most) until its admin socket exists.
pub fn start(lab: &Lab, b: &Box_) -> Xvs {
    let mut x = lab.start_xvs_in(b.role, &b.config);
    let end = Instant::now() + Duration::from_secs(20);
    while !b.socket.exists() && Instant::now() < end && x.running() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(x.running(), "xvs in {} exited:\n{}", b.role, x.log());
    x
}

/// Client stream through `kill`, which returns `(at, from)` (Unix seconds): `at` the moment of
/// the kill, `from` the moment from which a request that succeeds can only have been served
/// by the box that takes over (for SIGKILL: once the killed box's links are down). Returns
/// (kill → start of the first successful request that started at `from` or later, last success
/// before the kill → that first success), in ms. A request that started between `at` and `from`
/// may have got through the dying box, so it does not count as "resumed". `kill` runs once the
/// stream is being served (20 requests answered by r1 and r2's HTTP servers, at most 2 s after
/// the client started).
pub fn stream_through(lab: &Lab, kill: impl FnOnce() -> (f64, f64)) -> (f64, f64) {
    streams_through(lab, &[&format!("http://{VIP}/")], kill)[0]
}

/// [`stream_through`] with one client stream to each of `urls` at once (e.g. an IPv4 and an
/// IPv6 VIP); returns the figures of each, in the order of `urls`.
pub fn streams_through(
    lab: &Lab,
    urls: &[&str],
    kill: impl FnOnce() -> (f64, f64),
) -> Vec<(f64, f64)> {
    let baseline = served(lab);
    let ((killed_at, counted_from), summaries) = std::thread::scope(|s| {
        let hs: Vec<_> = urls
            .iter()
            .map(|url| s.spawn(|| lab.http_stream(url, 3.0, 0.005, 0.05)))
            .collect();
        // Kill once every stream is being served (a client may take a while to start on a
        // loaded machine), at most 2 s after the start.
        let end = Instant::now() + Duration::from_secs(2);
        let started = || {
            let now = served(lab);
            urls.iter().all(|u| {
                let f = usize::from(u.contains('['));
                now[f] >= baseline[f] + 20
            })
        };
        while Instant::now() < end && !started() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let at = kill();
        let summaries: Vec<Summary> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (at, summaries)
    });
    assert!(counted_from >= killed_at);
    urls.iter()
        .zip(&summaries)
        .map(|(url, summary)| resumed(url, summary, killed_at, counted_from))
        .collect()
}

/// Requests the lab's HTTP servers on :80 (r1 and r2) have answered so far, by the family of
/// the peer they logged: [IPv4, IPv6] (NAT and DR keep the client's address).
fn served(lab: &Lab) -> [usize; 2] {
    let mut n = [0; 2];
    for role in ["r1", "r2"] {
        let path = lab.file(&format!("logs/{role}-http-80.peers"));
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            n[usize::from(line.starts_with('['))] += 1;
        }
    }
    n
}

/// (kill → start of the first success that started at `counted_from` or later, last success
/// before the kill → that first success), in ms, from one stream's trace (see
/// [`stream_through`]).
fn resumed(url: &str, summary: &Summary, killed_at: f64, counted_from: f64) -> (f64, f64) {
    let before = summary
        .trace
        .iter()
        .filter(|(t, who)| *t < killed_at && who.is_some())
        .map(|(t, _)| *t)
        .fold(f64::NAN, f64::max);
    let after = summary
        .trace
        .iter()
        .filter(|(t, who)| *t >= counted_from && who.is_some())
        .map(|(t, _)| *t)
        .fold(f64::NAN, f64::min);
    let in_between = summary
        .trace
        .iter()
        .filter(|(t, who)| (killed_at..counted_from).contains(t) && who.is_some())
        .count();
    if in_between > 0 {
        eprintln!(
            "{url}: {in_between} request(s) started in the {:.1} ms between the kill and the point from which only the new master can serve: not counted",
            (counted_from - killed_at) * 1000.0
        );
    }
    assert!(
        before.is_finite() && after.is_finite(),
        "{url}: no success before the kill or after {counted_from}: {summary:?}"
    );
    // A request in the trace is stamped when it starts; it succeeded, so the service was back.
    ((after - killed_at) * 1000.0, (after - before) * 1000.0)
}

/// The SIGKILL failover of a VRRP pair on the `vrrp` topology (lb1 MASTER and serving, lb2
/// BACKUP with `config/vrrp.yaml`'s priority 150): kills lb1 and takes its links down at once
/// (a dead box: a killed process on a live box leaves its addresses and XDP program behind),
/// while the client streams requests; asserts that requests resume at most 100 ms after
/// Master_Down_Interval from the kill, counting only requests that started once lb1's links
/// were down (so lb2 served them, never one that slipped through lb1 before it died), that lb2
/// is MASTER, serves, and counted no VRRP error. Prints and returns the outage (kill → first such
/// request), in ms; `what` names the run in the printed line.
pub fn sigkill_failover(lab: &Lab, x1: &Xvs, lb2: &Box_, x2: &Xvs, what: &str) -> f64 {
    let (resume_kill, gap_kill) = stream_through(lab, || {
        let at = unix_now();
        x1.signal_now(libc::SIGKILL);
        for dev in ["wan0", "lan0"] {
            lab.exec_ok("lb1", &["ip", "link", "set", "dev", dev, "down"]);
        }
        (at, unix_now())
    });
    let limit = MDI_LB2 + Duration::from_millis(100);
    eprintln!(
        "{what}: SIGKILL: requests resumed {resume_kill:.1} ms after the kill (stream gap {gap_kill:.1} ms); Master_Down_Interval {:.1} ms, limit {:.1} ms",
        MDI_LB2.as_secs_f64() * 1000.0,
        limit.as_secs_f64() * 1000.0
    );
    assert!(
        resume_kill <= limit.as_secs_f64() * 1000.0,
        "{what}: requests resumed {resume_kill:.1} ms after the kill, more than {limit:?}\nlb2:\n{}",
        x2.log()
    );
    assert!(wait_state(&lb2.socket, "MASTER"), "{}", x2.log());
    let s = lab.http_client(10);
    assert_eq!(s.ok, 10, "{s:?}");
    assert_no_vrrp_errors(&lab.metrics_in("lb2"), "lb2");
    resume_kill
}
