//! End to end, the dual-stack VRRP pair on the lab's `vrrp` topology (`scripts/lab`: lb1 and lb2
//! on one client-side switch and one LAN switch, every host dual-stack): two xvs, lb1 at
//! priority 200 and lb2 at 100, four VRRPv3 instances with 100 ms adverts in one sync group —
//! the usual dual-stack NAT pair:
//!
//! | instance | interface | VRID | address |
//! |---|---|---|---|
//! | VI_1  | wan0 | 51 | the VIP 198.18.0.100/32 |
//! | VI_2  | lan0 | 52 | the real servers' gateway 198.18.1.1/24 |
//! | VI6_1 | wan0 | 51 | the VIP6 2001:2::100/128 (adverts from wan0's link-local address to ff02::12) |
//! | VI6_2 | lan0 | 52 | the real servers' IPv6 gateway 2001:2:0:1::1/64 |
//!
//! and an IPv4 and an IPv6 NAT service (port 80, r1 and r2, `rr`).
//!
//! `sigkill_of_the_master_moves_both_families`: requests of both families work through lb1
//! (lb2, BACKUP, holds no address and names lb1's link-local address as the IPv6 master); then
//! lb1 is SIGKILLed and its links taken down at once (a dead box, as in `tests/e2e_vrrp.rs`)
//! while the client streams requests to both VIPs (a fresh connection every 5 ms, 50 ms timeout,
//! one stream per family): lb2 enters MASTER for all four instances, and requests of each family
//! resume through it, within Master_Down_Interval + 100 ms of the kill (lb2's
//! Master_Down_Interval at priority 100 is 360.9 ms). Only requests that started once lb1's
//! links were down count as resumed. Then lb2 holds both IPv6 addresses, the client's and the
//! real servers' neighbour entries name lb2's MACs (its unsolicited neighbour advertisements
//! overrode lb1's), `xvs ctl vrrp` shows the IPv6 instances MASTER with lb2's link-local
//! addresses, and lb2 counted no VRRP error.
//!
//! The figures are printed (`-- --nocapture`).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/vrrp.rs"]
mod vrrp_lab;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Lab, Xvs, CLIENT6, VIP, VIP6};
use vrrp_lab::*;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

/// The real servers' IPv6 gateway, a VRRP address (VI6_2).
const GATEWAY6: &str = "2001:2:0:1::1";

/// The four instances of the sync group.
const INSTANCES: [&str; 4] = ["VI_1", "VI_2", "VI6_1", "VI6_2"];

/// lb2's priority, and its Master_Down_Interval with 100 ms adverts.
const LB2_PRIORITY: u8 = 100;
const MDI: Duration = mdi_100ms(LB2_PRIORITY as u64);

/// The dual-stack pair's config for `role` at `priority` (all four instances).
fn write_dual_stack(lab: &Lab, role: &'static str, priority: u8) -> Box_ {
    let inst = |name: &str, dev: &str, vrid: u8, vip: &str| {
        format!(
            "    - {{ name: {name}, interface: {dev}, vrid: {vrid}, priority: {priority}, advert_interval: 100ms, vips: [\"{vip}\"] }}\n"
        )
    };
    let text = format!(
        "global:\n  router_id: {role}\n  admin_socket: {socket}\n  metrics_listen: 127.0.0.1:9798\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n    - {{ name: lan0, queues: [0] }}\n  poll: wakeup\n\
         services:\n\
         \x20 - name: web\n    vip: {VIP}\n    port: 80\n    scheduler: rr\n    reals:\n      - address: 198.18.1.11:80\n      - address: 198.18.1.12:80\n\
         \x20 - name: web6\n    vip: \"{VIP6}\"\n    port: 80\n    scheduler: rr\n    reals:\n      - address: \"[2001:2:0:1::11]:80\"\n      - address: \"[2001:2:0:1::12]:80\"\n\
         vrrp:\n  instances:\n{}{}{}{}\
         \x20 sync_groups:\n    - {{ name: G1, instances: [{}] }}\n",
        inst("VI_1", "wan0", 51, &format!("{VIP}/32")),
        inst("VI_2", "lan0", 52, "198.18.1.1/24"),
        inst("VI6_1", "wan0", 51, &format!("{VIP6}/128")),
        inst("VI6_2", "lan0", 52, &format!("{GATEWAY6}/64")),
        INSTANCES.join(", "),
        socket = lab.admin_socket(role).display(),
    );
    box_config(lab, role, &format!("dual-stack-{role}.yaml"), &text)
}

fn url4() -> String {
    format!("http://{VIP}/")
}

fn url6() -> String {
    format!("http://[{VIP6}]/")
}

/// `role`'s IPv6 addresses (`ip -br -6 addr show`).
fn addresses6(lab: &Lab, role: &str) -> String {
    lab.exec_ok(role, &["ip", "-br", "-6", "addr", "show"])
}

/// The link-local address of `dev` in `role` (what VRRPv3 over IPv6 advertises from).
fn link_local(lab: &Lab, role: &str, dev: &str) -> String {
    let out = lab.exec_ok(
        role,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
        ],
    );
    let mut words = out.split_whitespace();
    words.find(|w| *w == "inet6");
    let addr = words.next().unwrap_or_default();
    let addr = addr.split('/').next().unwrap_or_default().to_string();
    assert!(addr.starts_with("fe80:"), "{role} {dev}: {out}");
    addr
}

/// `xvs ctl vrrp` (the text) of the daemon at `socket`.
fn ctl_vrrp(socket: &Path) -> String {
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .arg("vrrp")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The neighbour entry of `addr` on `role`'s `dev` (`ip -6 neigh show ADDR dev DEV`).
fn neigh6(lab: &Lab, role: &str, addr: &str, dev: &str) -> String {
    lab.exec_ok(role, &["ip", "-6", "neigh", "show", addr, "dev", dev])
}

/// Polls `x`'s log every 1 ms (at most `limit`) and returns, for each of [`INSTANCES`], the
/// Unix time at which a new `(NAME) Entering MASTER STATE` line (beyond `already[i]`) was first
/// seen (`NaN`: never).
fn watch_masters(x: &Xvs, already: [usize; 4], limit: Duration) -> [f64; 4] {
    let mut seen = [f64::NAN; 4];
    let end = Instant::now() + limit;
    while Instant::now() < end && seen.iter().any(|t| t.is_nan()) {
        let log = x.log();
        for (i, name) in INSTANCES.iter().enumerate() {
            let line = format!("({name}) Entering MASTER STATE");
            if seen[i].is_nan() && log.matches(&line).count() > already[i] {
                seen[i] = unix_now();
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    seen
}

/// lb1 MASTER (200) and lb2 BACKUP (100) for all four instances, both VIPs answering through
/// lb1, by both real servers.
fn pair_serving(lab: &Lab) -> (Xvs, Box_, Xvs) {
    lab.serve();
    let lb1 = write_dual_stack(lab, "lb1", 200);
    let lb2 = write_dual_stack(lab, "lb2", LB2_PRIORITY);
    let x1 = start(lab, &lb1);
    assert!(wait_all(&lb1.socket, "MASTER", 4), "{}", x1.log());
    let x2 = start(lab, &lb2);
    assert!(wait_all(&lb2.socket, "BACKUP", 4), "{}", x2.log());
    for url in [url4(), url6()] {
        assert!(
            lab.wait_url_ready(&url, Duration::from_secs(10)),
            "{url} never answered through lb1:\n{}",
            x1.log()
        );
        let s = lab.http_client_url(&url, 20, 2.0);
        assert_eq!(s.ok, 20, "{url}: {s:?}");
        assert!(s.count("r1") > 0 && s.count("r2") > 0, "{url}: {s:?}");
    }
    // NAT6 keeps the client's address: the real servers saw 2001:2::2.
    let client6: std::net::IpAddr = CLIENT6.parse().unwrap();
    assert!(
        lab.peers("r1", "http", 80)
            .iter()
            .any(|p| p.ip() == client6),
        "r1 never saw the IPv6 client"
    );
    (x1, lb2, x2)
}

#[test]
fn sigkill_of_the_master_moves_both_families() {
    let lab = Lab::up("vrrp");
    let (x1, lb2, x2) = pair_serving(&lab);

    // The backup holds no address of either family and names lb1 as the master of each.
    let a2 = addresses6(&lab, "lb2");
    assert!(
        !a2.contains(VIP6) && !a2.contains(&format!("{GATEWAY6}/")),
        "the backup holds an IPv6 VRRP address: {a2}"
    );
    let a2 = addresses(&lab, "lb2");
    assert!(
        !a2.contains(VIP) && !a2.contains("198.18.1.1/"),
        "the backup holds an IPv4 VRRP address: {a2}"
    );
    let lb1_wan_ll = link_local(&lab, "lb1", "wan0");
    let v2 = vrrp(&lb2.socket);
    assert!(
        v2.iter()
            .any(|i| i.0 == "VI6_1" && i.1 == "BACKUP" && i.3.as_deref() == Some(&lb1_wan_ll)),
        "lb2 should name lb1 ({lb1_wan_ll}) as VI6_1's master: {v2:?}"
    );

    // SIGKILL + links down (a dead box) while both families stream.
    let log = x2.log();
    let already = INSTANCES.map(|n| log.matches(&format!("({n}) Entering MASTER STATE")).count());
    let (u4, u6) = (url4(), url6());
    let mut killed_at = f64::NAN;
    let (figures, masters) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_masters(&x2, already, Duration::from_secs(8)));
        let figures = streams_through(&lab, &[&u4, &u6], || {
            let at = unix_now();
            x1.signal_now(libc::SIGKILL);
            for dev in ["wan0", "lan0"] {
                lab.exec_ok("lb1", &["ip", "link", "set", "dev", dev, "down"]);
            }
            killed_at = at;
            (at, unix_now())
        });
        (figures, watcher.join().unwrap())
    });
    let limit = MDI + Duration::from_millis(100);
    let limit_ms = limit.as_secs_f64() * 1000.0;
    eprintln!(
        "dual-stack SIGKILL: Master_Down_Interval {:.1} ms, limit {limit_ms:.1} ms",
        MDI.as_secs_f64() * 1000.0
    );
    let mut late = Vec::new();
    for (name, t) in INSTANCES.iter().zip(masters) {
        let ms = (t - killed_at) * 1000.0;
        eprintln!("  {name}: lb2 MASTER {ms:.1} ms after the kill");
        if ms.is_nan() || ms > limit_ms {
            late.push(format!("{name} MASTER after {ms:.1} ms"));
        }
    }
    for (family, (resume, gap)) in ["IPv4", "IPv6"].iter().zip(&figures) {
        eprintln!(
            "  {family}: requests resumed {resume:.1} ms after the kill (stream gap {gap:.1} ms)"
        );
        if resume.is_nan() || *resume > limit_ms {
            late.push(format!("{family} requests resumed after {resume:.1} ms"));
        }
    }
    assert!(
        late.is_empty(),
        "over {limit_ms:.1} ms: {late:?}\nlb2:\n{}",
        x2.log()
    );
    drop(x1);

    // lb2 serves both families and holds both families' addresses.
    assert!(wait_all(&lb2.socket, "MASTER", 4), "{}", x2.log());
    for url in [url4(), url6()] {
        let s = lab.http_client_url(&url, 10, 2.0);
        assert_eq!(s.ok, 10, "{url} through lb2: {s:?}\n{}", x2.log());
    }
    let a2 = addresses6(&lab, "lb2");
    assert!(
        a2.contains(&format!("{VIP6}/128")) && a2.contains(&format!("{GATEWAY6}/64")),
        "{a2}"
    );
    let a2 = addresses(&lab, "lb2");
    assert!(
        a2.contains(&format!("{VIP}/32")) && a2.contains("198.18.1.1/24"),
        "{a2}"
    );
    // Its unsolicited neighbour advertisements moved the client's and the real servers' entries.
    let n = neigh6(&lab, "client", VIP6, "eth0");
    assert!(n.contains(&lab.mac("lb2", "wan0")), "client: {n}");
    for r in ["r1", "r2"] {
        let n = neigh6(&lab, r, GATEWAY6, "eth0");
        assert!(n.contains(&lab.mac("lb2", "lan0")), "{r}: {n}");
    }

    // `xvs ctl vrrp`: every instance MASTER, the IPv6 ones with lb2's link-local addresses.
    let text = ctl_vrrp(&lb2.socket);
    let lb2_ll = [
        ("VI_1", "198.18.0.12".to_string()),
        ("VI_2", "198.18.1.22".to_string()),
        ("VI6_1", link_local(&lab, "lb2", "wan0")),
        ("VI6_2", link_local(&lab, "lb2", "lan0")),
    ];
    for (name, master) in &lb2_ll {
        assert!(
            text.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(name)
                    && w.contains(&"MASTER")
                    && w.last() == Some(&master.as_str())
            }),
            "no `{name} … MASTER … {master}` in:\n{text}"
        );
    }
    eprintln!("lb2 `xvs ctl vrrp`:\n{text}");
    assert_no_vrrp_errors(&lab.metrics_in("lb2"), "lb2");
    drop(x2);
}
