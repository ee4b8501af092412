//! End to end, VIP announcement (`announce:`): xvs in the NAT lab keeps one host route per ready
//! VIP in kernel table 100 through its TUN device `xvs-announce`, and the test reads the table
//! as BIRD would (`ip route show table 100` in the load balancer's namespace).
//!
//! One lab, phases in order: routes appear; both real servers of the IPv4 VIP down → its route
//! withdrawn (`xvs_announced` 0, log line) while the IPv6 VIP stays; back up → announced;
//! `xvs ctl drain` → withdrawn while held TCP connections keep working; `undrain` → back;
//! SIGTERM → routes and device gone; a restart, then SIGKILL → routes gone (measured).
//!
//! The lab's namespaces carry the tag prefix `xa` (`xvs-xa…-ROLE`: `scripts/lab` names them
//! `xvs-TAG-ROLE`), and are deleted when the test ends, pass or fail. Run it with
//! `taskset -c 0 nice -n 19 cargo test --profile quick --test e2e_announce -- --test-threads=1`.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/health.rs"]
mod health;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{metric, script, Lab, Xvs, VIP, VIP6};

/// The announce table of the test's config.
const TABLE: &str = "100";
/// Health checks: a real server is down 3 × 100 ms after it stops answering.
const CHECK: &str = "{ type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 3 }";
/// How long a route change may take: the health checks' detection (≈ 0.4 s) plus the main
/// loop's wake-up (at most 250 ms), with room for a loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(3);

/// The NAT lab under a tag of this test's own (`xa` + PID + counter, base 36).
fn lab() -> Lab {
    common::assert_root("e2e_announce");
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut pid = std::process::id();
    let mut digits = Vec::new();
    while pid > 0 {
        digits.push(char::from_digit(pid % 36, 36).unwrap());
        pid /= 36;
    }
    let tag: String = format!("xa{}{n}", digits.iter().rev().collect::<String>());
    assert!(tag.len() <= 8, "tag {tag} too long");
    let out = Command::new(script("lab"))
        .args(["up", "nat", &tag])
        .output()
        .expect("run scripts/lab");
    let lab = Lab { tag }; // dropped (namespaces deleted) whatever happens next
    assert!(
        out.status.success(),
        "scripts/lab up nat {}: {}",
        lab.tag,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    lab
}

fn config(lab: &Lab) -> std::path::PathBuf {
    let sections = format!(
        "\
services:
  - name: web
    vip: {VIP}
    port: 80
    scheduler: rr
    health_check: {CHECK}
    reals:
      - address: 198.18.1.11:80
      - address: 198.18.1.12:80
  - name: web6
    vip: \"{VIP6}\"
    port: 80
    scheduler: rr
    reals:
      - address: \"[2001:2:0:1::11]:80\"
      - address: \"[2001:2:0:1::12]:80\"
announce:
  table: {TABLE}
"
    );
    health::nat_config(lab, "announce.yaml", &sections)
}

/// `ip [-6] route show table 100` in the load balancer's namespace, both families. A table
/// with no route yet (or no more) is empty: the kernel then says it does not exist, which
/// `ip` reports as an error for IPv4; any other failure fails the test.
fn table(lab: &Lab) -> String {
    let show = |family: &str| {
        let out = lab.exec("lb", &["ip", family, "route", "show", "table", TABLE]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else if err.contains("FIB table does not exist") {
            String::new()
        } else {
            panic!("lb: ip {family} route show table {TABLE}: {err}")
        }
    };
    format!("{}{}", show("-4"), show("-6"))
}

/// The start of the line `ip route` prints for the route xvs installs for `vip` (IPv4 adds
/// `scope link`, IPv6 `metric 1024 pref medium`).
fn route(vip: &str) -> String {
    format!("{vip} dev xvs-announce proto 252 ")
}

fn announced(lab: &Lab, vip: &str) -> bool {
    table(lab).lines().any(|l| l.starts_with(&route(vip)))
}

/// Polls the table until `vip`'s route is there (`want`) or not, at most `limit`; returns how
/// long it took.
fn wait_route(lab: &Lab, vip: &str, want: bool, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if announced(lab, vip) == want {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn ctl(lab: &Lab, args: &[&str]) -> String {
    let socket = lab.admin_socket("lb");
    let socket = socket.to_str().unwrap();
    let mut cmd = vec![env!("CARGO_BIN_EXE_xvs"), "ctl", "--socket", socket];
    cmd.extend_from_slice(args);
    lab.exec_ok("lb", &cmd)
}

fn device_exists(lab: &Lab) -> bool {
    lab.exec("lb", &["ip", "link", "show", "dev", "xvs-announce"])
        .status
        .success()
}

fn gauge(lab: &Lab, vip: &str) -> f64 {
    metric(&lab.metrics(), &format!("xvs_announced{{vip=\"{vip}\"}}"))
}

#[track_caller]
fn assert_route(lab: &Lab, xvs: &Xvs, vip: &str, want: bool, what: &str) -> Duration {
    wait_route(lab, vip, want, BOUND).unwrap_or_else(|| {
        panic!(
            "{what}: route of {vip} {} within {BOUND:?}; table:\n{}\nlog:\n{}",
            if want {
                "not installed"
            } else {
                "not withdrawn"
            },
            table(lab),
            xvs.log()
        )
    })
}

/// Both real servers of the IPv4 VIP stop: its route goes (the IPv6 VIP's stays), then comes
/// back when they answer again.
fn quorum_phase(lab: &Lab, xvs: &Xvs) {
    lab.stop_server("r1", "http", 80);
    lab.stop_server("r2", "http", 80);
    let took = assert_route(lab, xvs, VIP, false, "both reals down");
    println!(
        "quorum lost: route withdrawn {} ms after the servers stopped",
        took.as_millis()
    );
    assert!(
        announced(lab, VIP6),
        "the IPv6 VIP has no health check: stays announced"
    );
    assert!(xvs
        .wait_log(
            &format!("announce: VIP {VIP} withdrawn (quorum lost)"),
            0,
            BOUND
        )
        .is_some());
    assert_eq!(gauge(lab, VIP), 0.0);
    assert_eq!(gauge(lab, VIP6), 1.0);
    assert!(
        ctl(lab, &["announce"]).contains("withdrawn: quorum"),
        "{}",
        ctl(lab, &["announce"])
    );
    lab.start_server("r1", "http", 80, "r1");
    lab.start_server("r2", "http", 80, "r2");
    let took = assert_route(lab, xvs, VIP, true, "reals back");
    println!(
        "quorum back: route re-installed {} ms after the servers started",
        took.as_millis()
    );
    assert!(xvs
        .wait_log(
            &format!("announce: VIP {VIP} announced in table {TABLE}"),
            1,
            BOUND
        )
        .is_some());
    assert_eq!(gauge(lab, VIP), 1.0);
}

/// `xvs ctl drain` withdraws every VIP while held connections keep working; `undrain` brings
/// them back; a route deleted by hand comes back by itself.
fn drain_phase(lab: &Lab, xvs: &Xvs) {
    let held = lab.hold(10);
    let out = ctl(lab, &["drain"]);
    assert_eq!(
        out.trim(),
        "drained: 2 VIPs withdrawn, existing flows continue"
    );
    assert!(
        !announced(lab, VIP) && !announced(lab, VIP6),
        "{}",
        table(lab)
    );
    assert_eq!(metric(&lab.metrics(), "xvs_drained "), 1.0);
    assert_eq!(gauge(lab, VIP), 0.0);
    assert!(xvs
        .wait_log(
            &format!("announce: VIP {VIP} withdrawn (drained)"),
            0,
            BOUND
        )
        .is_some());
    let json = ctl(lab, &["announce", "--json"]);
    assert!(json.contains("\"drained\": true"), "{json}");
    // Still drained a while later (the main loop does not undo it).
    std::thread::sleep(Duration::from_millis(600));
    assert!(!announced(lab, VIP));
    let answered = held.release();
    assert_eq!(
        (answered.ok, answered.failed),
        (10, 0),
        "held connections while drained: {:?}",
        answered.errors
    );
    let out = ctl(lab, &["undrain"]);
    assert_eq!(out.trim(), "undrained: 2 VIPs announced");
    assert!(
        announced(lab, VIP) && announced(lab, VIP6),
        "{}",
        table(lab)
    );
    assert_eq!(metric(&lab.metrics(), "xvs_drained "), 0.0);
    // Someone deletes a route by hand: it is back within the next resync (about a second).
    lab.exec_ok("lb", &["ip", "route", "del", VIP, "table", TABLE]);
    assert_route(lab, xvs, VIP, true, "deleted by hand");
    assert!(xvs
        .log()
        .contains("was deleted by someone else; re-installing it"));
}

#[test]
fn vips_follow_quorum_and_drain_and_go_with_the_process() {
    let lab = lab();
    lab.serve();
    let cfg = config(&lab);
    let mut xvs = lab.start_xvs_ready(&cfg);
    assert_route(&lab, &xvs, VIP, true, "start");
    assert_route(&lab, &xvs, VIP6, true, "start");
    assert!(device_exists(&lab));
    assert_eq!(gauge(&lab, VIP), 1.0);
    quorum_phase(&lab, &xvs);
    drain_phase(&lab, &xvs);

    // SIGTERM: every route withdrawn (logged), the device gone.
    let status = xvs.stop();
    assert!(status.success(), "{status}\n{}", xvs.log());
    assert_eq!(table(&lab).trim(), "", "routes left after a clean stop");
    assert!(!device_exists(&lab), "device left after a clean stop");
    assert!(xvs
        .log()
        .contains(&format!("announce: VIP {VIP} withdrawn (stopping)")));
    drop(xvs);

    // Restart, then SIGKILL: the kernel deletes the device, and its routes, with the process.
    let xvs = lab.start_xvs_ready(&cfg);
    assert_route(&lab, &xvs, VIP, true, "restart");
    let killed = xvs.signal_now(libc::SIGKILL);
    let mut gone = None;
    while killed.elapsed() < Duration::from_secs(5) {
        if !announced(&lab, VIP) && !announced(&lab, VIP6) {
            gone = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let gone =
        gone.unwrap_or_else(|| panic!("routes still there 5 s after SIGKILL:\n{}", table(&lab)));
    println!(
        "SIGKILL: routes gone from table {TABLE} {:.1} ms after the kill",
        gone.as_secs_f64() * 1000.0
    );
    assert!(gone < Duration::from_secs(1), "routes gone after {gone:?}");
    assert!(!device_exists(&lab));
}
