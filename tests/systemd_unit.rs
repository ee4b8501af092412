//! `dist/xvs.service`: the settings the daemon relies on, and `systemd-analyze verify` (a test
//! machine without it fails: `scripts/install-deps` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn unit() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/xvs.service"))
        .expect("dist/xvs.service")
}

/// `section → key → values` (a key may repeat).
fn parse(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone())
            .or_default()
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    out
}

#[test]
fn unit_runs_xvs_as_a_notify_reload_service_after_checking_its_file() {
    let u = parse(&unit());
    let svc = &u["Service"];
    let one = |k: &str| -> &str {
        let v = svc
            .get(k)
            .unwrap_or_else(|| panic!("[Service] {k} missing"));
        assert_eq!(v.len(), 1, "{k} set {} times", v.len());
        &v[0]
    };
    assert_eq!(one("Type"), "notify-reload");
    assert_eq!(one("ReloadSignal"), "SIGHUP");
    assert_eq!(one("KillSignal"), "SIGTERM");
    let run = one("ExecStart");
    let check = one("ExecStartPre");
    let config = run
        .strip_prefix("/usr/local/bin/xvs run -c ")
        .expect("ExecStart runs xvs run -c FILE");
    assert_eq!(check, format!("/usr/local/bin/xvs check -c {config}"));
    let caps: Vec<&str> = one("CapabilityBoundingSet").split_whitespace().collect();
    for need in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK"] {
        assert!(caps.contains(&need), "{need} missing from {caps:?}");
    }
    assert_eq!(one("AmbientCapabilities"), one("CapabilityBoundingSet"));
    assert_eq!(one("LimitMEMLOCK"), "infinity", "UMEM must be lockable");
    assert_eq!(
        one("RuntimeDirectory"),
        "xvs",
        "/run/xvs holds the admin socket and locks"
    );
    assert_eq!(u["Install"]["WantedBy"], ["multi-user.target"]);
}

/// Runs `tool args`, failing the test with a clear message when the tool is not installed:
/// `scripts/install-deps` installs it (Debian package `systemd`), so a missing tool is a broken
/// test machine, not a reason to check less.
fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool} ({e}): it comes with the Debian package `systemd`, which \
             scripts/install-deps installs (make deps)"
        )
    })
}

#[test]
fn systemd_analyze_finds_nothing_else_to_say() {
    let version = run_tool("systemd-analyze", &["--version".as_ref()]);
    let version = String::from_utf8_lossy(&version.stdout);
    // `systemd 252 (252.38-1~deb12u1)`
    let major: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("systemd-analyze --version: unexpected output {version:?}"));
    // Point the unit at the binary under test so that the executable check is real.
    let dir = std::env::temp_dir().join(format!("xvs-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("xvs.service");
    std::fs::write(
        &path,
        unit().replace("/usr/local/bin/xvs", env!("CARGO_BIN_EXE_xvs")),
    )
    .unwrap();
    let out = run_tool(
        "systemd-analyze",
        &["verify".as_ref(), "--man=no".as_ref(), path.as_os_str()],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let unexplained: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        // systemd before 253 does not know notify-reload (nor its ReloadSignal=).
        .filter(|l| !(major < 253 && (l.contains("notify-reload") || l.contains("'ReloadSignal'"))))
        .collect();
    assert!(
        out.status.success() && unexplained.is_empty(),
        "systemd-analyze verify (systemd {major}) exited with {}:\n{}",
        out.status,
        unexplained.join("\n")
    );
}
