//! `xvs run` refuses to start, with one clear line on stderr and exit status 1, and leaves no XDP
//! program attached: without root, with a missing interface, and on an interface another XDP
//! program owns.
//!
//! Each test builds its own namespace (`xvsr<pid>-<n>`, deleted on drop, pass or fail) with veth
//! interfaces named like the lab's (`wan0`, `lan0`). A namespace that cannot be built fails the
//! test.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

#[path = "fixtures/bpf.rs"]
mod bpf;
mod common;

use common::TempPath;

struct Netns(String);

impl Netns {
    /// A namespace with veth pairs `wan0`/`wan0p` and `lan0`/`lan0p` (only the named ones).
    fn with(links: &[&str]) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = Netns(format!(
            "xvsr{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        ns.ok(&["ip", "netns", "add", &ns.0], false);
        ns.ok(&["ip", "link", "set", "lo", "up"], true);
        for (i, l) in links.iter().enumerate() {
            ns.ok(
                &[
                    "ip",
                    "link",
                    "add",
                    l,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &format!("{l}p"),
                ],
                true,
            );
            ns.ok(&["ip", "link", "set", l, "up"], true);
            ns.ok(&["ip", "link", "set", &format!("{l}p"), "up"], true);
            ns.ok(
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("198.18.{}.1/24", 40 + i),
                    "dev",
                    l,
                ],
                true,
            );
        }
        ns
    }

    fn run(&self, cmd: &[&str], inside: bool) -> Output {
        let mut c = if inside {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.0]).args(cmd);
            c
        } else {
            let mut c = Command::new(cmd[0]);
            c.args(&cmd[1..]);
            c
        };
        c.output()
            .unwrap_or_else(|e| panic!("{}: {e}", cmd.join(" ")))
    }

    fn ok(&self, cmd: &[&str], inside: bool) -> String {
        let out = self.run(cmd, inside);
        assert!(
            out.status.success(),
            "cannot build the test namespace ({}): {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -d link show` of the namespace.
    fn links(&self) -> String {
        self.ok(&["ip", "-d", "link", "show"], true)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

fn xvs() -> &'static str {
    env!("CARGO_BIN_EXE_xvs")
}

/// `config/nat.yaml` with `poll: wakeup`, in a temp file of `ns`'s test (removed on drop).
fn config(ns: &Netns) -> TempPath {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/nat.yaml")).unwrap();
    let file = TempPath::new(&format!("{}.yaml", ns.0));
    std::fs::write(&file.0, text.replace("poll: busy", "poll: wakeup")).unwrap();
    file
}

/// [`config`] with the first `from` replaced by `to` (which must be there).
fn config_with(ns: &Netns, from: &str, to: &str) -> TempPath {
    let cfg = config(ns);
    let text = std::fs::read_to_string(&cfg.0).unwrap();
    let changed = text.replacen(from, to, 1);
    assert_ne!(changed, text, "config/nat.yaml has no {from:?} any more");
    std::fs::write(&cfg.0, changed).unwrap();
    cfg
}

/// Asserts exit status 1 and exactly one line on stderr containing `want`; returns the line.
fn one_line_failure(out: &Output, want: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line on stderr, got:\n{stderr}");
    assert!(
        lines[0].contains(want),
        "stderr {:?} does not mention {want:?}",
        lines[0]
    );
    lines[0].to_string()
}

fn assert_root() {
    // The effective uid, from /proc/self/status (no libc call needed).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(2),
        Some("0"),
        "these tests need root to build network namespaces"
    );
}

#[test]
fn without_root() {
    assert_root();
    let ns = Netns::with(&["wan0", "lan0"]);
    let cfg = config(&ns);
    let cfg_s = cfg.0.to_str().unwrap();
    let out = ns.run(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            xvs(),
            "run",
            "-c",
            cfg_s,
        ],
        true,
    );
    let line = one_line_failure(&out, "must run as root");
    eprintln!("{line}");
    assert!(!ns.links().contains("prog/xdp"));
}

#[test]
fn with_a_missing_interface() {
    assert_root();
    let ns = Netns::with(&["wan0"]);
    let cfg = config(&ns);
    let out = ns.run(&[xvs(), "run", "-c", cfg.0.to_str().unwrap()], true);
    let line = one_line_failure(&out, "lan0");
    eprintln!("{line}");
    // The line of lan0's entry in the example (found in the file, not hard-coded: the example's
    // comments change).
    let text = std::fs::read_to_string(&cfg.0).unwrap();
    let at = 1 + text
        .lines()
        .position(|l| l.trim_start().starts_with("- name: lan0"))
        .expect("config/nat.yaml names lan0");
    assert!(
        line.contains(&format!(":{at}:")),
        "the error names the config line {at}: {line}"
    );
    assert!(
        !ns.links().contains("prog/xdp"),
        "an XDP program was left attached:\n{}",
        ns.links()
    );
}

#[test]
fn on_an_interface_owned_by_another_xdp_program() {
    assert_root();
    let ns = Netns::with(&["wan0", "lan0"]);
    // A foreign program: the tests' own xdp_pass, built from source here.
    let obj = TempPath::new(&format!("{}-xdp_pass.o", ns.0));
    bpf::build_test_program("xdp_pass", &obj.0);
    bpf::attach_foreign(&ns.0, "lan0", &obj.0);
    let cfg = config(&ns);
    let out = ns.run(&[xvs(), "run", "-c", cfg.0.to_str().unwrap()], true);
    let line = one_line_failure(&out, "lan0");
    eprintln!("{line}");
    assert!(line.contains("XDP program"), "{line}");
    let links = ns.links();
    let wan = links.split("lan0").next().unwrap_or_default().to_string();
    assert!(
        !wan.contains("xvs_filter"),
        "xvs attached to wan0 anyway:\n{links}"
    );
    assert!(
        !links.contains("xvs_filter"),
        "xvs left its program attached:\n{links}"
    );
    assert!(
        links.contains("prog/xdp"),
        "the foreign program must stay:\n{links}"
    );
}

#[test]
fn with_a_connection_table_beyond_the_memory_limit() {
    assert_root();
    let ns = Netns::with(&["wan0", "lan0"]);
    let cfg = config_with(&ns, "max_entries: 1000000 ", "max_entries: 20000000");
    // 2 * 10^7 entries need about 1.5 GiB; the address space is limited to 1 GiB. Before the
    // check, the allocation failed and the process aborted (SIGABRT).
    let out = ns.run(
        &[
            "prlimit",
            "--as=1073741824",
            "--",
            xvs(),
            "run",
            "-c",
            cfg.0.to_str().unwrap(),
        ],
        true,
    );
    let line = one_line_failure(&out, "max_entries 20000000 needs ");
    eprintln!("{line}");
    assert!(line.contains("(RLIMIT_AS 1.0 GiB less the "), "{line}");
    assert!(
        !ns.links().contains("prog/xdp"),
        "an XDP program was left attached:\n{}",
        ns.links()
    );
}

/// The last step of start-up fails (the metrics server cannot listen on an address the box does
/// not have), after the workers, the VRRP thread and the other threads have started: the daemon
/// stops them, detaches its XDP program and exits 1 with the error as its last line, never
/// having said it started.
#[test]
fn when_the_metrics_server_cannot_listen_after_every_thread_started() {
    assert_root();
    let ns = Netns::with(&["wan0", "lan0"]);
    let cfg = config_with(
        &ns,
        "metrics_listen: 127.0.0.1:9798",
        "metrics_listen: 198.18.99.99:9798",
    );
    let out = ns.run(&[xvs(), "run", "-c", cfg.0.to_str().unwrap()], true);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("xvs: global.metrics_listen 198.18.99.99:9798: "),
        "last line {last:?}; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("started ("), "{stderr}");
    assert!(
        !ns.links().contains("prog/xdp"),
        "an XDP program was left attached:\n{}",
        ns.links()
    );
}

/// `xvs run ARGS` started in `ns` with `cfg` until it is ready (it tells systemd `READY=1`, right
/// after its "started" line), then stopped with SIGTERM; returns its exit status and stderr.
fn run_until_ready(ns: &Netns, cfg: &TempPath, args: &[&str]) -> (Option<i32>, String) {
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};

    /// Kills the daemon if the test fails before stopping it.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let tag = format!("{}-{}", ns.0, args.join(""));
    let notify = TempPath::new(&format!("{tag}.notify"));
    let sock = UnixDatagram::bind(&notify.0).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stderr = TempPath::new(&format!("{tag}.stderr"));
    let file = std::fs::File::create(&stderr.0).unwrap();
    let mut xvs = Running(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, xvs(), "run", "-c"])
            .arg(&cfg.0)
            .args(args)
            .env("NOTIFY_SOCKET", &notify.0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start xvs"),
    );
    let log = || std::fs::read_to_string(&stderr.0).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 512];
    loop {
        assert!(Instant::now() < deadline, "xvs never got ready:\n{}", log());
        if let Some(st) = xvs.0.try_wait().unwrap() {
            panic!("xvs exited ({st}) before it was ready:\n{}", log());
        }
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
    }
    let pid = xvs.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = xvs.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "xvs ignored SIGTERM:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), log())
}

/// `--log-level warn` drops the info lines and keeps the errors: a start that fails still says
/// why in its one line, and a start and stop that succeed log none of the lines they log at the
/// default level ("started", "Received signal", "stopped"), only that run's warnings if any.
#[test]
fn log_level_warn_keeps_errors_and_drops_info_lines() {
    assert_root();
    let ns = Netns::with(&["wan0"]);
    let cfg = config(&ns);
    let out = ns.run(
        &[
            xvs(),
            "run",
            "-c",
            cfg.0.to_str().unwrap(),
            "--log-level",
            "warn",
        ],
        true,
    );
    let line = one_line_failure(&out, "lan0");
    eprintln!("at warn: {line}");
    drop(ns);

    let ns = Netns::with(&["wan0", "lan0"]);
    let cfg = config(&ns);
    let admin = TempPath::new(&format!("{}.sock", ns.0));
    let text = std::fs::read_to_string(&cfg.0).unwrap();
    let own_socket = text.replace(
        "admin_socket: /run/xvs/admin.sock",
        &format!("admin_socket: {}", admin.0.display()),
    );
    assert_ne!(
        own_socket, text,
        "config/nat.yaml's admin_socket line moved"
    );
    std::fs::write(&cfg.0, own_socket).unwrap();

    let (code, info) = run_until_ready(&ns, &cfg, &[]);
    assert_eq!(code, Some(0), "at the default level:\n{info}");
    for want in [" started (lb1): ", "Received signal", "xvs stopped"] {
        assert!(info.contains(want), "default level lacks {want:?}:\n{info}");
    }
    let (code, warn) = run_until_ready(&ns, &cfg, &["--log-level", "warn"]);
    assert_eq!(code, Some(0), "at warn:\n{warn}");
    for line in warn.lines() {
        assert!(
            !line.contains("started (")
                && !line.contains("Received signal")
                && line != "xvs stopped",
            "an info line at warn: {line:?}\n{warn}"
        );
        assert!(
            info.lines().any(|l| l == line),
            "a line at warn that the default level did not log: {line:?}"
        );
    }
    eprintln!("at info:\n{info}at warn:\n{warn}");
}
