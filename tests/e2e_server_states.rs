//! End to end in the NAT lab (as root): server states and affinity across reloads.
//!
//! 1. Weight 0 is quiescent: TCP connections held open to a real server keep working after a
//!    reload sets its weight to 0, while every new connection goes elsewhere.
//! 2. A port-0 (all-port) persistent service with a /24 netmask sends every connection of the
//!    client to one server, through the XDP filter's port-0 steering.
//! 3. A `one_packet` UDP service schedules each datagram on its own and still gets its replies
//!    back to the client (stateless reply translation).
//!
//! The daemon runs `config/nat.yaml` with `poll: wakeup`; each phase rewrites the file and
//! reloads it with `xvs ctl reload`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn write_config(lab: &Lab, text: &str) -> PathBuf {
    lab.write_config("lb", "states.yaml", text)
}

fn socket(lab: &Lab) -> PathBuf {
    lab.admin_socket("lb")
}

/// `xvs ctl reload`; panics unless the daemon accepted the file. Returns its output.
fn reload(lab: &Lab, xvs: &Xvs) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "--socket"])
        .arg(socket(lab))
        .arg("reload")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reload refused: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        xvs.log()
    );
    text
}

fn nat_yaml() -> String {
    std::fs::read_to_string(Lab::config("nat.yaml")).unwrap()
}

#[test]
fn quiescent_server_keeps_its_connections_and_affinity_services_work() {
    let lab = Lab::new();
    lab.serve();
    let base = nat_yaml();
    assert!(base.contains("        weight: 1                     # (1 is the default)"));
    let config = write_config(&lab, &base);
    let xvs = lab.start_xvs_ready(&config);

    // ---- 1. weight 0 holds existing connections, takes no new ones --------------------------
    let held = lab.hold(20);
    let quiesced = base.replacen(
        "        weight: 1                     # (1 is the default)",
        "        weight: 0",
        1,
    );
    write_config(&lab, &quiesced);
    let out = reload(&lab, &xvs);
    assert!(
        out.contains(
            "Changing weight of service [198.18.1.12]:tcp:80 in VS [198.18.0.100]:tcp:80: 1 -> 0"
        ),
        "{out}"
    );
    let fresh = lab.http_client(100);
    assert_eq!(fresh.failed, 0, "{:?}", fresh.errors);
    assert_eq!(
        (fresh.count("r1"), fresh.count("r2")),
        (100, 0),
        "new connections while r2 is quiescent"
    );
    let held = held.release();
    assert_eq!(held.failed, 0, "held connections broke: {:?}", held.errors);
    assert_eq!(held.ok, 20);
    assert!(
        held.count("r2") >= 4,
        "wrr 3:1 put about a quarter of the held connections on r2 before the change: {:?}",
        held.by_server
    );

    // ---- 2. port 0 + persistence: one server per client network -----------------------------
    let web =
        "  - name: web                         # used by `xvs ctl real add web ...` and in metrics
    vip: 198.18.0.100
    port: 80
";
    assert!(base.contains(web));
    let all_ports = quiesced
        .replace(
            web,
            "  - name: web\n    vip: 198.18.0.100\n    port: 0\n    persistence: { timeout: 5m, netmask: 255.255.255.0 }\n",
        )
        .replace("198.18.1.11:80", "198.18.1.11:0")
        .replace("198.18.1.12:80", "198.18.1.12:0")
        .replacen("        weight: 0", "        weight: 1", 1)
        .replace("scheduler: wrr", "scheduler: rr");
    write_config(&lab, &all_ports);
    reload(&lab, &xvs);
    let s = lab.http_client(60);
    assert_eq!(s.failed, 0, "{:?}\n{}", s.errors, xvs.log());
    assert_eq!(
        s.by_server.len(),
        1,
        "one client network, one server while the template lives: {:?}",
        s.by_server
    );

    // ---- 3. one_packet UDP ------------------------------------------------------------------
    let ops = all_ports.replacen(
        "    protocol: udp\n",
        "    protocol: udp\n    one_packet: true\n",
        1,
    );
    assert_ne!(ops, all_ports);
    write_config(&lab, &ops);
    reload(&lab, &xvs);
    let u = lab.udp_client(&format!("{VIP}:53"), 40);
    assert_eq!(u.failed, 0, "{:?}\n{}", u.errors, xvs.log());
    assert_eq!(
        (u.count("r1"), u.count("r2")),
        (20, 20),
        "rr over datagrams: {:?}",
        u.by_server
    );
    let conns = Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "--socket"])
        .arg(socket(&lab))
        .arg("conns")
        .output()
        .unwrap();
    let conns = String::from_utf8_lossy(&conns.stdout);
    assert!(
        !conns.lines().any(|l| l.starts_with("UDP")),
        "one_packet keeps no UDP entry:\n{conns}"
    );
    drop(xvs);
}
