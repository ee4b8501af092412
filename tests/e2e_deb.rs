//! `make deb` end to end (root): `scripts/build-deb` packages the binary this test was built
//! with (`CARGO_BIN_EXE_xvs`; the release binary under `make test`), `dpkg-deb --info` and
//! `--contents` show the control fields, conffiles, unit, example config and man page, and
//! `dpkg --root` installs the package into a fresh root (an empty dpkg database of its own, so
//! this machine's packages are neither read nor touched): `--force-depends` because that root
//! holds no libc6, `--force-script-chrootless` because it has no shell to chroot into (the
//! maintainer scripts see `DPKG_ROOT` and leave this machine's systemd alone). From there the
//! installed `xvs --version` runs, the installed unit runs `/usr/sbin/xvs`, the installed example
//! config passes `xvs check` once its interfaces are edited (as the operator would), and removing
//! the package keeps the edited conffile. No network namespace; a few seconds.
//!
//! The interface the example is edited to: the first of this machine's interfaces (from
//! /sys/class/net, loopback excluded) whose MTU fits a 4096-byte UMEM frame. Not `lo`: its MTU
//! of 65536 is more than a UMEM frame carries, which `xvs check` rightly refuses.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::TempPath;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, failing the test with its output unless it exits 0; returns stdout.
#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A non-loopback interface of this machine whose MTU fits a 4096-byte frame less XDP's
/// headroom (see the module documentation).
fn small_mtu_interface() -> String {
    let mut names: Vec<(String, u32)> = fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let mtu = fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?;
            Some((name, mtu.trim().parse().ok()?))
        })
        .filter(|(name, mtu)| name != "lo" && (576..=3000).contains(mtu))
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .map(|(n, _)| n)
        .expect("no interface with an MTU of 576..3000 to edit the example config to")
}

/// Builds the package into `dir`; returns its path.
fn build_deb(dir: &Path) -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    let out = ok(Command::new(script)
        .arg("--binary")
        .arg(XVS)
        .arg("--out")
        .arg(dir));
    PathBuf::from(out.trim())
}

fn check_info(deb: &Path) {
    let info = ok(Command::new("dpkg-deb").arg("--info").arg(deb));
    for want in [
        "Package: xvs".to_string(),
        format!("Version: {VERSION}"),
        "Installed-Size: ".to_string(),
        " conffiles".to_string(),
        " postinst".to_string(),
    ] {
        assert!(
            info.contains(&want),
            "dpkg-deb --info lacks {want:?}:\n{info}"
        );
    }
    let depends = info
        .lines()
        .find_map(|l| l.strip_prefix(" Depends: "))
        .unwrap_or_else(|| panic!("no Depends:\n{info}"));
    for lib in ["libc6", "libelf1", "zlib1g"] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("--info")
        .arg(deb)
        .arg("conffiles"));
    assert!(
        conffiles.lines().any(|l| l == "/etc/xvs/xvs.yaml"),
        "{conffiles}"
    );
}

fn check_contents(deb: &Path) {
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for path in [
        "./usr/sbin/xvs",
        "./lib/systemd/system/xvs.service",
        "./etc/xvs/xvs.yaml",
        "./usr/share/man/man1/xvs.1.gz",
        "./usr/share/doc/xvs/copyright",
        "./usr/share/doc/xvs/README",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "dpkg-deb --contents lacks {path}:\n{contents}"
        );
    }
    let bird = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/bird/xvs.conf");
    assert_eq!(
        contents
            .lines()
            .any(|l| l.ends_with("./etc/bird/xvs.conf.example")),
        bird.exists(),
        "the BIRD snippet is packaged exactly when dist/bird/xvs.conf exists"
    );
    assert!(
        contents.lines().all(|l| l.contains(" root/root ")),
        "every file owned by root:\n{contents}"
    );
}

/// A fresh root with an empty dpkg database.
fn fresh_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        .arg("--force-depends");
    c
}

fn check_installed(root: &Path) {
    let status = ok(dpkg(root).args(["--status", "xvs"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    let version = ok(Command::new(root.join("usr/sbin/xvs")).arg("--version"));
    assert_eq!(version.trim(), format!("xvs {VERSION}"));
    let unit = fs::read_to_string(root.join("lib/systemd/system/xvs.service")).unwrap();
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/sbin/xvs run -c /etc/xvs/xvs.yaml"),
        "{unit}"
    );
    assert!(
        unit.lines()
            .any(|l| l == "ExecStartPre=/usr/sbin/xvs check -c /etc/xvs/xvs.yaml"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/bin"), "{unit}");
    let mut man = String::new();
    let gz = fs::File::open(root.join("usr/share/man/man1/xvs.1.gz")).unwrap();
    let mut gunzip = Command::new("gunzip")
        .arg("-c")
        .stdin(gz)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    gunzip
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut man)
        .unwrap();
    assert!(gunzip.wait().unwrap().success());
    assert!(man.starts_with(".ie") || man.contains(".TH xvs 1"), "{man}");
    for sub in ["check", "run", "ctl"] {
        assert!(man.contains(sub), "the man page lacks `{sub}`:\n{man}");
    }
}

/// Edits the installed example to this machine's interface, as an operator would, and checks it.
fn check_example(root: &Path) {
    let path = root.join("etc/xvs/xvs.yaml");
    let iface = small_mtu_interface();
    let original = fs::read_to_string(&path).unwrap();
    let edited: String = original
        .lines()
        .filter(|l| !l.contains("- name: eth1"))
        .map(|l| l.replace("- name: eth0", &format!("- name: {iface}")) + "\n")
        .collect();
    assert_ne!(edited, original, "the example names eth0 and eth1");
    fs::write(&path, &edited).unwrap();
    let out = ok(Command::new(root.join("usr/sbin/xvs"))
        .args(["check", "-c"])
        .arg(&path));
    assert_eq!(out.trim(), format!("{}: OK", path.display()));
}

#[test]
fn make_deb_builds_a_package_that_installs_into_a_fresh_root_and_runs() {
    common::assert_root("e2e_deb");
    let dir = TempPath::new("deb");
    fs::create_dir_all(&dir.0).unwrap();
    let arch = ok(Command::new("dpkg").arg("--print-architecture"));
    let deb = build_deb(&dir.0);
    assert_eq!(
        deb,
        dir.0.join(format!("xvs_{VERSION}_{}.deb", arch.trim())),
        "package name"
    );
    check_info(&deb);
    check_contents(&deb);
    let root = fresh_root(&dir.0);
    ok(dpkg(&root).arg("--install").arg(&deb));
    check_installed(&root);
    check_example(&root);
    // Removal takes the binary and keeps the edited conffile (a purge would take it).
    ok(dpkg(&root).args(["--remove", "xvs"]));
    assert!(!root.join("usr/sbin/xvs").exists());
    assert!(root.join("etc/xvs/xvs.yaml").exists());
    ok(dpkg(&root).args(["--purge", "xvs"]));
    assert!(!root.join("etc/xvs/xvs.yaml").exists());
}
