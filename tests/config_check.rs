//! `xvs check -c FILE` end to end: every file in `tests/configs/bad/` is refused with the error
//! its first line announces (`# expect: LINE:COL: message prefix`), every file in
//! `tests/configs/good/` passes, and every example in `config/` passes in a network namespace
//! that has the lab's interfaces (`wan0`, `lan0`). The namespace test needs root; it fails,
//! never skips, when it cannot build the namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

#[test]
fn bad_configs_are_refused_at_the_expected_position() {
    let files = yaml_files(&root().join("tests/configs/bad"));
    assert!(
        files.len() >= 20,
        "expected at least 20 bad configs, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let content = fs::read_to_string(f).unwrap();
        let first = content.lines().next().unwrap_or("");
        let Some(expect) = first.strip_prefix("# expect: ") else {
            failures.push(format!(
                "{}: first line must be `# expect: LINE:COL: message`",
                f.display()
            ));
            continue;
        };
        let out = check(&[], f);
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
    for f in &files {
        let out = check(&[], f);
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

/// A network namespace, deleted when dropped (pass or fail).
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        Netns(name)
    }
}

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

#[test]
fn example_configs_pass_in_the_lab_namespace() {
    let files = yaml_files(&root().join("config"));
    assert!(
        files.iter().any(|f| f.ends_with("nat.yaml")),
        "config/nat.yaml is missing"
    );
    let ns = Netns::new(format!("xvsc{}", std::process::id()));
    add_link(&ns.0, "wan0");
    add_link(&ns.0, "lan0");
    for f in &files {
        let out = check(&["ip", "netns", "exec", &ns.0], f);
        assert_accepted(&out, f);
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
