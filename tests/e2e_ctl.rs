//! End to end, `xvs ctl`: the admin socket of a daemon running in the lab's load balancer.
//!
//! The lab test runs `config/nat.yaml` with `poll: wakeup` (as `e2e_nat.rs` does) and a per-test
//! `global.admin_socket`, then drives `xvs ctl` inside the load balancer's namespace: `list`
//! shows both services and their real servers, `conns` shows the connections of 20 requests,
//! `reload` applies a weight change and refuses a file with a syntax error (keeping the running
//! weight). The namespaces are deleted when the lab drops, pass or fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Lab, Xvs};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

struct Run {
    lab: Lab,
    xvs: Xvs,
    config: PathBuf,
    socket: PathBuf,
}

fn start() -> Run {
    let lab = Lab::new();
    lab.serve();
    // In a directory of its own that the daemon creates; inside the lab's state directory, so
    // both go with the lab.
    let socket = lab.file("ctl/admin.sock");
    let text = std::fs::read_to_string(Lab::config("nat.yaml")).expect("config/nat.yaml");
    for want in ["poll: busy", "admin_socket: /run/xvs/admin.sock"] {
        assert!(
            text.contains(want),
            "config/nat.yaml is expected to set `{want}`"
        );
    }
    let text = text.replace(
        "admin_socket: /run/xvs/admin.sock",
        &format!("admin_socket: {}", socket.display()),
    );
    let config = lab.write_config("lb", "nat.yaml", &text);
    let mut xvs = lab.start_xvs(&config);
    let ready = lab.wait_http_ready(Duration::from_secs(20));
    assert!(
        xvs.running(),
        "xvs exited:
{}",
        xvs.log()
    );
    assert!(
        ready,
        "VIP:80 never answered through xvs:
{}",
        xvs.log()
    );
    Run {
        lab,
        xvs,
        config,
        socket,
    }
}

impl Run {
    /// `xvs ctl --socket SOCKET ARGS...` in the load balancer's namespace.
    fn ctl(&self, args: &[&str]) -> Output {
        let socket = self.socket.to_string_lossy().into_owned();
        let mut cmd = vec![XVS, "ctl", "--socket", socket.as_str()];
        cmd.extend_from_slice(args);
        self.lab.exec("lb", &cmd)
    }

    /// Like `ctl` but the command must succeed; returns stdout.
    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "xvs ctl {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.xvs.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The real-server line of `addr` in `ipvsadm -L -n` layout.
fn real_line<'a>(list: &'a str, addr: &str) -> &'a str {
    list.lines()
        .find(|l| l.starts_with(&format!("  -> {addr} ")))
        .unwrap_or_else(|| panic!("no line for {addr} in:\n{list}"))
}

/// (weight, active, inactive) of a real-server line.
fn columns(line: &str) -> (u32, u64, u64) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 6, "{line:?}");
    (
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
        f[5].parse().unwrap(),
    )
}

#[test]
fn ctl_list_conns_and_reload() {
    let mut run = start();
    let mode = std::fs::metadata(&run.socket)
        .expect("the admin socket exists")
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600, "admin socket mode");

    // list: both services, their real servers and weights, ipvsadm's headers.
    let list = run.ctl_ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("xvs version "), "{list}");
    assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    );
    assert_eq!(lines[3], "TCP  198.18.0.100:80 wrr", "{list}");
    assert!(list.contains("\nUDP  198.18.0.100:53 rr\n"), "{list}");
    assert_eq!(columns(real_line(&list, "198.18.1.11:80")).0, 3);
    assert_eq!(columns(real_line(&list, "198.18.1.12:80")).0, 1);
    assert_eq!(columns(real_line(&list, "198.18.1.11:5353")).0, 1);
    assert_eq!(columns(real_line(&list, "198.18.1.12:5353")).0, 1);
    assert!(real_line(&list, "198.18.1.11:80").contains(" Masq "));

    // 20 requests: the table holds their connections (closing, inactive) for a while.
    let s = run.lab.http_client(20);
    assert_eq!(s.ok, 20, "{:?}\n{}", s.errors, run.xvs.log());
    let conns = run.ctl_ok(&["conns"]);
    let mut lines = conns.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"));
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 20, "want >= 20 entries:\n{conns}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(f.len(), 6, "{r:?}");
        assert_eq!(f[0], "TCP", "{r:?}");
        let (m, s) = f[1].split_once(':').expect("mm:ss");
        assert!(
            m.len() == 2 && s.len() == 2 && s.parse::<u32>().unwrap() < 60,
            "{r:?}"
        );
        assert!(f[3].starts_with("198.18.0."), "{r:?}");
        assert_eq!(f[4], "198.18.0.100:80", "{r:?}");
        assert!(
            f[5] == "198.18.1.11:80" || f[5] == "198.18.1.12:80",
            "{r:?}"
        );
    }
    eprintln!("{}", conns.lines().take(4).collect::<Vec<_>>().join("\n"));
    let json = run.ctl_ok(&["conns", "--json"]);
    assert!(json.contains("\"connections\""), "{json}");
    let list = run.ctl_ok(&["list"]);
    let (_, a, i) = columns(real_line(&list, "198.18.1.11:80"));
    let (_, a2, i2) = columns(real_line(&list, "198.18.1.12:80"));
    assert!(a + i + a2 + i2 >= 20, "counters of 20 requests:\n{list}");

    // A weight change is applied and described.
    let good = std::fs::read_to_string(&run.config).unwrap();
    let changed = good.replacen("        weight: 1 ", "        weight: 2 ", 1);
    assert_ne!(changed, good, "the config's .12 weight line moved");
    std::fs::write(&run.config, &changed).unwrap();
    let out = run.ctl_ok(&["reload"]);
    assert!(
        out.contains(
            "Changing weight of service [198.18.1.12]:tcp:80 in VS [198.18.0.100]:tcp:80: 1 -> 2"
        ),
        "{out}"
    );
    assert!(out.contains("Configuration reloaded (1 change)"), "{out}");
    let list = run.ctl_ok(&["list"]);
    assert_eq!(columns(real_line(&list, "198.18.1.12:80")).0, 2, "{list}");

    // A syntax error: exit 1 with FILE:LINE:COL, the running weight stays.
    std::fs::write(
        &run.config,
        changed.replacen("    scheduler: wrr", "    scheduler: [wrr", 1),
    )
    .unwrap();
    let out = run.ctl(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    let prefix = format!("{}:", run.config.display());
    let pos: Vec<&str> = first
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{first:?} does not start with {prefix}"))
        .splitn(3, ':')
        .collect();
    assert!(
        pos.len() == 3 && pos[0].parse::<u32>().is_ok() && pos[1].parse::<u32>().is_ok(),
        "want FILE:LINE:COL: message, got {first:?}"
    );
    assert!(
        stderr.contains("keeping the running configuration"),
        "{stderr}"
    );
    let list = run.ctl_ok(&["list"]);
    assert_eq!(columns(real_line(&list, "198.18.1.12:80")).0, 2, "{list}");
    eprintln!("{list}");
    // The HTTP service still works after the refused reload.
    assert_eq!(run.lab.http_client(4).ok, 4);

    let out = run.ctl_ok(&["vrrp"]);
    assert_eq!(out, "no VRRP instances\n");

    let status = run.xvs.stop();
    assert!(
        status.success(),
        "xvs did not stop cleanly:\n{}",
        run.xvs.log()
    );
    assert!(!run.socket.exists(), "the admin socket is removed on stop");
}

/// No lab needed: a socket nobody listens on.
#[test]
fn ctl_without_a_daemon_exits_1_with_one_line() {
    let socket = format!("/run/xvs-missing-{}.sock", std::process::id());
    let out = Command::new(XVS)
        .args(["ctl", "--socket", &socket, "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("xvs ctl: cannot reach the daemon at {socket}: No such file or directory\n")
    );

    // The socket named by -c FILE's global.admin_socket, for every command that needs the daemon.
    let file = common::TempPath::new("ctl-missing.yaml");
    std::fs::write(&file.0, format!("global:\n  admin_socket: {socket}\n")).unwrap();
    for cmd in [
        &["reload"][..],
        &["conns", "--json"],
        &["vrrp"],
        &["list", "--json"],
    ] {
        let out = Command::new(XVS)
            .args(["ctl", "-c"])
            .arg(&file.0)
            .args(cmd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{cmd:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("xvs ctl: cannot reach the daemon at {socket}: ")),
            "{cmd:?}: {stderr}"
        );
    }

    // `real` needs the daemon too.
    let out = Command::new(XVS)
        .args([
            "ctl",
            "--socket",
            &socket,
            "real",
            "add",
            "web",
            "198.18.1.13:80",
            "--weight",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("xvs ctl: cannot reach the daemon at {socket}: ")),
        "{stderr}"
    );
}
