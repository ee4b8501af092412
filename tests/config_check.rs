//! `xvs check -c FILE` end to end: every file in `tests/configs/bad/` is refused with the error
//! its first line announces (`# expect: LINE:COL: message prefix`), every file in
//! `tests/configs/good/` passes, and every example in `config/` passes. Hostile files are refused
//! at once with one clear line: a FIFO, a directory, a device, a file over the size cap, a
//! 10 MB name, more services than the XDP filter's steer map holds, and a connection table the
//! process's memory limit cannot hold (set with `prlimit` on the child).
//!
//! Every check runs in a network namespace of its own ([`CheckNs`]), which looks like the lab's
//! load balancer: `wan0` 198.18.0.1/24 and `lan0` 198.18.1.1/24 (so `tests/configs/bad/` can
//! name the box's own addresses and its subnets' network and broadcast addresses), `jumbo0` at
//! MTU 9000, and `lo` at MTU 1500 (the default 65536 is more than a UMEM frame carries, which
//! `check` refuses, and the test configs use `lo` as an interface every machine has). Building
//! it needs root; the tests fail, never skip, when it cannot be built.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::TempPath;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.yaml` files of a directory, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    v.sort();
    v
}

fn check(prefix: &[&str], file: &Path) -> Output {
    let mut cmd = if prefix.is_empty() {
        Command::new(XVS)
    } else {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..]).arg(XVS);
        c
    };
    cmd.arg("check")
        .arg("-c")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xvs: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A network namespace, deleted when dropped (pass or fail).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs `ip ARGS`; panics (the test fails) if it does not succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip`: {e} (this test needs iproute2 and root)"));
    assert!(
        out.status.success(),
        "`ip {}` failed (this test needs root): {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// Adds an interface `name` to namespace `ns`: a dummy interface, or where the kernel has no
/// dummy driver, one end of a veth pair.
fn add_link(ns: &str, name: &str) {
    let dummy = Command::new("ip")
        .args(["-n", ns, "link", "add", name, "type", "dummy"])
        .output()
        .expect("cannot run `ip`");
    if !dummy.status.success() {
        let peer = format!("{name}p");
        ip(&[
            "-n", ns, "link", "add", name, "type", "veth", "peer", "name", &peer,
        ]);
    }
}

/// The namespace `xvs check` runs in (see the module documentation).
struct CheckNs(Netns);

impl CheckNs {
    fn new() -> CheckNs {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "xvsc{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = CheckNs(Netns(name));
        let n = ns.0 .0.as_str();
        ip(&["-n", n, "link", "set", "lo", "mtu", "1500"]);
        for (link, addr) in [("wan0", "198.18.0.1/24"), ("lan0", "198.18.1.1/24")] {
            add_link(n, link);
            ip(&["-n", n, "addr", "add", addr, "dev", link]);
        }
        add_link(n, "jumbo0");
        ip(&["-n", n, "link", "set", "jumbo0", "mtu", "9000"]);
        // The sync link of `config/vrrp-sync.yaml`.
        add_link(n, "sync0");
        ip(&["-n", n, "addr", "add", "198.18.9.1/24", "dev", "sync0"]);
        ns
    }

    /// `xvs check -c FILE` inside, under `prefix` (e.g. `prlimit --as=N`).
    fn check_with(&self, prefix: &[&str], file: &Path) -> Output {
        let mut p = vec!["ip", "netns", "exec", self.0 .0.as_str()];
        p.extend_from_slice(prefix);
        check(&p, file)
    }

    fn check(&self, file: &Path) -> Output {
        self.check_with(&[], file)
    }

    /// `xvs check -c FILE` inside, killed (and the test failed) if it has not ended within
    /// `limit`: what a check that hangs on its input would do.
    fn check_within(&self, file: &Path, limit: Duration) -> (Output, Duration) {
        let start = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0 .0, XVS, "check", "-c"])
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run xvs");
        while child.try_wait().expect("wait for xvs").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "xvs check -c {} still running after {limit:?}",
                    file.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = start.elapsed();
        (child.wait_with_output().expect("xvs output"), took)
    }
}

/// Exit 1 and exactly one line on stderr, `FILE: ` or `FILE:LINE:COL: ` then something that
/// contains `want`; returns the line.
#[track_caller]
fn one_line_refusal(out: &Output, file: &Path, want: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line on stderr, got:\n{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:", file.display())) && lines[0].contains(want),
        "stderr {:?} is not `{}: …{want}…`",
        lines[0],
        file.display()
    );
    lines[0].to_string()
}

#[test]
fn bad_configs_are_refused_at_the_expected_position() {
    let files = yaml_files(&root().join("tests/configs/bad"));
    assert!(
        files.len() >= 20,
        "expected at least 20 bad configs, found {}",
        files.len()
    );
    let ns = CheckNs::new();
    let mut failures = Vec::new();
    for f in &files {
        // Lossy: one file holds a byte that is not UTF-8 on purpose.
        let content = text(&fs::read(f).unwrap());
        let first = content.lines().next().unwrap_or("");
        let first = first.strip_prefix('\u{feff}').unwrap_or(first);
        let Some(expect) = first.strip_prefix("# expect: ") else {
            failures.push(format!(
                "{}: first line must be `# expect: LINE:COL: message`",
                f.display()
            ));
            continue;
        };
        let out = ns.check(f);
        let stderr = text(&out.stderr);
        let want = format!("{}:{expect}", f.display());
        if out.status.code() != Some(1) || !stderr.contains(&want) {
            failures.push(format!(
                "{}: want exit 1 and `{want}`; got {:?}, stderr:\n{stderr}stdout:\n{}",
                f.display(),
                out.status.code(),
                text(&out.stdout)
            ));
        }
        for line in stderr.lines() {
            if !line.starts_with(&format!("{}:", f.display())) {
                failures.push(format!(
                    "{}: stderr line not in FILE:LINE:COL form: {line}",
                    f.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn good_test_configs_pass() {
    let files = yaml_files(&root().join("tests/configs/good"));
    assert!(!files.is_empty());
    let ns = CheckNs::new();
    for f in &files {
        let out = ns.check(f);
        assert_accepted(&out, f);
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn unreadable_file_is_one_line() {
    let f = root().join("tests/configs/no-such-file.yaml");
    let out = check(&[], &f);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}: cannot read: ", f.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn example_configs_pass_in_the_lab_namespace() {
    let files = yaml_files(&root().join("config"));
    assert!(
        files.iter().any(|f| f.ends_with("nat.yaml")),
        "config/nat.yaml is missing"
    );
    let ns = CheckNs::new();
    let dir = temp_dir("examples");
    let key = dir.0.join("sync.key");
    fs::write(&key, b"example-sync-key-0123456789\n").unwrap();
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for f in &files {
        // An example with connection sync names /etc/xvs/sync.key: checked with a key of the
        // test's (xvs check reads it), the rest of the file as shipped.
        let text = fs::read_to_string(f).unwrap();
        let f = if text.contains("key_file: /etc/xvs/sync.key") {
            let copy = dir.0.join(f.file_name().unwrap());
            let text = text.replace("/etc/xvs/sync.key", key.to_str().unwrap());
            fs::write(&copy, text).unwrap();
            copy
        } else {
            f.clone()
        };
        let out = ns.check(&f);
        assert_accepted(&out, &f);
    }
    // Outside the namespace the lab's interfaces do not exist (unless this machine is the lab),
    // so the same check names them.
    let nat = root().join("config/nat.yaml");
    if !Path::new("/sys/class/net/wan0").exists() {
        let out = check(&[], &nat);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("interface `wan0` does not exist on this machine"));
    }
}

/// `xvs check` accepted `f`: exit 0 and `FILE: OK` on stdout.
fn assert_accepted(out: &std::process::Output, f: &std::path::Path) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} was refused:\n{}",
        f.display(),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), format!("{}: OK\n", f.display()));
}

/// An empty directory of a test (removed with everything in it when dropped).
fn temp_dir(name: &str) -> TempPath {
    let dir = TempPath::new(name);
    fs::create_dir(&dir.0).unwrap_or_else(|e| panic!("{}: {e}", dir.0.display()));
    dir
}

/// A minimal valid config on `lan0`, with `extra` appended.
fn minimal(extra: &str) -> String {
    format!("datapath:\n  interfaces:\n    - name: lan0\n{extra}")
}

#[test]
fn a_fifo_a_directory_and_devices_are_refused_at_once() {
    let ns = CheckNs::new();
    let dir = temp_dir("not-regular");
    let fifo = dir.0.join("fifo.yaml");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success(), "mkfifo failed");
    for (path, kind) in [
        (fifo, "is a FIFO (named pipe), not a regular file"),
        (dir.0.clone(), "is a directory, not a regular file"),
        // /dev/zero once ate 2 GB; /dev/urandom is endless too.
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (
            PathBuf::from("/dev/urandom"),
            "is a character device, not a regular file",
        ),
    ] {
        // Nobody writes to the FIFO: a check that opened it blocking would hang here.
        let (out, took) = ns.check_within(&path, Duration::from_secs(10));
        let line = one_line_refusal(&out, &path, kind);
        eprintln!("{line} ({took:?})");
    }
}

#[test]
fn a_file_over_the_size_cap_is_refused_without_reading_it() {
    let ns = CheckNs::new();
    let dir = temp_dir("size-cap");
    const CAP: u64 = 16 * 1024 * 1024;
    // Exactly at the cap: read and parsed (a comment, then a valid config).
    let at_cap = dir.0.join("at-cap.yaml");
    let body = minimal("");
    let pad = "#".repeat(CAP as usize - body.len() - 1) + "\n";
    fs::write(&at_cap, format!("{pad}{body}")).unwrap();
    assert_eq!(fs::metadata(&at_cap).unwrap().len(), CAP);
    let (out, _) = ns.check_within(&at_cap, Duration::from_secs(60));
    assert_accepted(&out, &at_cap);
    // One byte more: refused before parsing.
    let over = dir.0.join("over-cap.yaml");
    fs::write(&over, format!("{pad}#{body}")).unwrap();
    let (out, _) = ns.check_within(&over, Duration::from_secs(10));
    one_line_refusal(
        &out,
        &over,
        "is 16777217 bytes; a configuration file may be at most 16777216 bytes (16 MiB)",
    );
    // A sparse 2 GiB file: refused at once, never read.
    let huge = dir.0.join("huge.yaml");
    fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap();
    let (out, took) = ns.check_within(&huge, Duration::from_secs(10));
    one_line_refusal(&out, &huge, "is 2147483648 bytes");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_ten_megabyte_router_id_is_refused_at_its_position() {
    let ns = CheckNs::new();
    let f = TempPath::new("long-router-id.yaml");
    let id = "x".repeat(10_000_000);
    fs::write(&f.0, minimal(&format!("global:\n  router_id: {id}\n"))).unwrap();
    let (out, took) = ns.check_within(&f.0, Duration::from_secs(30));
    let line = one_line_refusal(
        &out,
        &f.0,
        "5:14: router_id is 10000000 bytes long; at most 64 are allowed",
    );
    eprintln!("{} ({took:?})", &line[..line.len().min(200)]);
}

/// A config with `n` DR services, each on a VIP of its own (from 198.18.128.0 up): 2 steer
/// keys each.
fn services(n: usize) -> String {
    let mut t = minimal("services:\n");
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 128, 0));
    for i in 0..n {
        let vip = std::net::Ipv4Addr::from(base + i as u32);
        t += &format!("  - {{ name: s{i}, vip: {vip}, port: 80, forwarding: dr }}\n");
    }
    t
}

#[test]
fn more_services_than_the_steer_map_holds_are_refused_at_the_first_one_over() {
    let ns = CheckNs::new();
    let dir = temp_dir("steer");
    // 65536 keys: the map's capacity, accepted.
    let full = dir.0.join("full.yaml");
    fs::write(&full, services(32_768)).unwrap();
    assert_accepted(&ns.check(&full), &full);
    // One service more, and the 100k: refused at service 32768 (line 5 + 32768).
    for n in [32_769, 100_000] {
        let f = dir.0.join(format!("{n}.yaml"));
        fs::write(&f, services(n)).unwrap();
        let out = ns.check(&f);
        let line = one_line_refusal(
            &out,
            &f,
            &format!(
                ":32773:5: the XDP filter's steer map holds 65536 keys, and the services up to `s32768` (32769 of {n}) already need 65538; all of them need {}",
                2 * n
            ),
        );
        eprintln!("{line}");
    }
}

/// A config on `lan0`, one queue, with `conntrack.max_entries: n` at line 6.
fn max_entries(n: u64) -> String {
    format!(
        "datapath:\n  interfaces:\n    - name: lan0\n      queues: [0]\nconntrack:\n  max_entries: {n}\n"
    )
}

#[test]
fn a_connection_table_beyond_the_address_space_limit_is_refused() {
    let ns = CheckNs::new();
    let dir = temp_dir("memory-as");
    let limit = ["prlimit", "--as=536870912", "--"];
    // 10^7 entries need about 865 MiB; the limit is 512 MiB.
    let f = dir.0.join("big.yaml");
    fs::write(&f, max_entries(10_000_000)).unwrap();
    let out = ns.check_with(&limit, &f);
    let line = one_line_refusal(&out, &f, "6:16: max_entries 10000000 needs ");
    eprintln!("{line}");
    assert!(line.contains("(RLIMIT_AS 512.0 MiB less the "), "{line}");
    // The hint fits under the same limit; twice as much does not.
    let fit: u64 = line
        .rsplit_once("; max_entries ")
        .and_then(|(_, r)| r.strip_suffix(" would fit"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no hint: {line}"));
    let ok = dir.0.join("fits.yaml");
    fs::write(&ok, max_entries(fit)).unwrap();
    assert_accepted(&ns.check_with(&limit, &ok), &ok);
    fs::write(&ok, max_entries(2 * fit)).unwrap();
    one_line_refusal(&ns.check_with(&limit, &ok), &ok, "6:16: max_entries ");
    // Without the limit the same file passes (this machine has the memory).
    assert_accepted(&ns.check(&f), &f);
}

#[test]
fn a_connection_table_beyond_the_data_limit_is_refused() {
    let ns = CheckNs::new();
    let f = TempPath::new("memory-data.yaml");
    fs::write(&f.0, max_entries(10_000_000)).unwrap();
    let out = ns.check_with(&["prlimit", "--data=268435456", "--"], &f.0);
    let line = one_line_refusal(&out, &f.0, "6:16: max_entries 10000000 needs ");
    assert!(line.contains("(RLIMIT_DATA 256.0 MiB less the "), "{line}");
}
