//! End to end, interoperability with keepalived (Debian's package, installed by
//! `scripts/install-deps`): xvs in lb1 and keepalived in lb2 as the two routers of VRID 51 on the
//! lab's `vrrp` topology, VIP 198.18.0.100 on wan0, for VRRPv3 (100 ms adverts) and VRRPv2 (1 s).
//!
//! Each version walks the same steps, checking who holds the VIP (`xvs ctl vrrp`, keepalived's
//! `Entering ... STATE` lines, and the address on each box's wan0):
//! 1. xvs 200 MASTER, then keepalived 100 starts: it stays BACKUP (it hears xvs).
//! 2. SIGTERM xvs: keepalived takes over (xvs's priority-0 release).
//! 3. xvs starts again: it preempts, keepalived goes back to BACKUP.
//! 4. keepalived restarted with priority 250: it preempts, xvs follows to BACKUP.
//! 5. SIGTERM keepalived: xvs takes over (keepalived's priority-0 release).
//!
//! Then neither side counted an error: every `xvs_vrrp_errors_total` of xvs is 0, and
//! keepalived's own statistics (`SIGUSR2`, the signal `keepalived --signum=STATS` names, written
//! to `$TMPDIR/keepalived.stats`, `/tmp` by default) show 0 in every "Packet Errors" and "Authentication Errors" line
//! and a non-zero count of adverts received, and its log has no line about a packet it did not
//! like ("invalid", "error", "mismatch", "not present", ...). keepalived runs in the foreground
//! (`-n -l -D -G`) with its configuration, pid files and statistics (`TMPDIR` set to a directory
//! of the test, so nothing lands in `/tmp` and parallel runs do not share one file) in the lab's
//! state directory, next to xvs's configuration; it is killed, and the directory removed, when
//! the lab drops (`scripts/lab down`), pass or fail. The two versions run one after the other (less load on the timed steps).
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/keepalived.rs"]
mod keepalived;
#[path = "common/vrrp.rs"]
mod vrrp_lab;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Lab, Xvs};

/// keepalived's statistics file, in `$TMPDIR`.
const STATS: &str = "keepalived.stats";
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Keepalived {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Keepalived {
    fn start(lab: &Lab, dir: &Path, version: u8, priority: u8, advert_int: &str) -> Keepalived {
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id ka\n  vrrp_version {version}\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  interface wan0\n  virtual_router_id 51\n  \
                 priority {priority}\n  advert_int {advert_int}\n  virtual_ipaddress {{\n    198.18.0.100/32 dev wan0\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("keepalived-{priority}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            // keepalived writes its statistics (and other temporary files) to $TMPDIR.
            .env("TMPDIR", dir)
            .args(["netns", "exec", &lab.ns("lb2"), "keepalived"])
            .args(["-n", "-l", "-D", "-G", "--vrrp", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .arg("-c")
            .arg(dir.join("checkers.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start keepalived (scripts/install-deps installs it)");
        Keepalived {
            child,
            dir: dir.to_path_buf(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, state: &str) -> usize {
        self.log()
            .matches(&format!("(VI_1) Entering {state} STATE"))
            .count()
    }

    fn wait(&self, state: &str, more_than: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.count(state) > more_than {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .output();
    }

    /// keepalived's statistics file, freshly written.
    fn stats(&self) -> String {
        let stats = self.dir.join(STATS);
        let _ = std::fs::remove_file(&stats);
        let sig = Command::new("keepalived")
            .arg("--signum=STATS")
            .output()
            .unwrap();
        let sig = String::from_utf8_lossy(&sig.stdout).trim().to_string();
        self.signal(&sig);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(s) = std::fs::read_to_string(&stats) {
                if s.contains("Priority Zero") {
                    return s;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("keepalived wrote no {}:\n{}", stats.display(), self.log());
    }

    fn stop(&mut self) {
        self.signal("TERM");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- keepalived log ----\n{}------", self.log());
        }
        let _ = std::fs::remove_file(self.dir.join("keepalived.pid"));
    }
}

fn xvs_config(lab: &Lab, version: u8, priority: u8, interval: &str) -> (PathBuf, PathBuf) {
    let socket = lab.admin_socket("lb1");
    let text = format!(
        "global:\n  router_id: lb1\n  admin_socket: {}\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n    - {{ name: lan0, queues: [0] }}\n  poll: wakeup\n\
         services:\n  - name: web\n    vip: 198.18.0.100\n    port: 80\n    reals:\n      - address: 198.18.1.11:80\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: wan0\n      vrid: 51\n      version: {version}\n      \
         priority: {priority}\n      advert_interval: {interval}\n      vips: [198.18.0.100/32]\n",
        socket.display()
    );
    (lab.write_config("lb1", "ka-xvs.yaml", &text), socket)
}

/// The state of the first VRRP instance of the daemon at `socket` (`""` if it does not answer).
fn xvs_state(socket: &Path) -> String {
    vrrp_lab::vrrp(socket)
        .into_iter()
        .next()
        .map(|i| i.1)
        .unwrap_or_default()
}

fn wait_xvs(socket: &Path, state: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if xvs_state(socket) == state {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn holds_vip(lab: &Lab, role: &str) -> bool {
    lab.exec_ok(role, &["ip", "-br", "-4", "addr", "show", "dev", "wan0"])
        .contains("198.18.0.100/32")
}

fn start_xvs(lab: &Lab, config: &Path, socket: &Path) -> Xvs {
    let mut x = lab.start_xvs_in("lb1", config);
    let end = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < end && x.running() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(x.running(), "xvs exited:\n{}", x.log());
    x
}

fn interop(version: u8) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("vrrp");
    // keepalived's files (its TMPDIR) in the lab's state directory: deleted with the lab.
    let dir = lab.file("keepalived");
    std::fs::create_dir_all(&dir).unwrap();
    let (interval, ka_int, limit) = match version {
        3 => ("100ms", "0.1", Duration::from_secs(3)),
        _ => ("1s", "1", Duration::from_secs(8)),
    };
    let (config, socket) = xvs_config(&lab, version, 200, interval);

    // 1. xvs 200 wins over keepalived 100.
    let mut x = start_xvs(&lab, &config, &socket);
    assert!(
        wait_xvs(&socket, "MASTER", limit),
        "v{version} step 1 xvs:\n{}",
        x.log()
    );
    let mut ka = Keepalived::start(&lab, &dir, version, 100, ka_int);
    assert!(ka.wait("BACKUP", 0, limit), "{}", ka.log());
    // Longer than keepalived's Master_Down_Interval: it stays BACKUP because it hears xvs.
    std::thread::sleep(limit / 2);
    assert_eq!(
        ka.count("MASTER"),
        0,
        "keepalived became master:\n{}",
        ka.log()
    );
    assert!(holds_vip(&lab, "lb1") && !holds_vip(&lab, "lb2"));

    // 2. SIGTERM xvs: keepalived takes over.
    x.stop();
    assert!(
        ka.wait("MASTER", 0, limit),
        "v{version} step 2:\n{}",
        ka.log()
    );
    assert!(holds_vip(&lab, "lb2") && !holds_vip(&lab, "lb1"));

    // 3. xvs back: preempts keepalived.
    let backups = ka.count("BACKUP");
    let mut x = start_xvs(&lab, &config, &socket);
    assert!(
        wait_xvs(&socket, "MASTER", limit),
        "v{version} step 3 xvs:\n{}",
        x.log()
    );
    assert!(
        ka.wait("BACKUP", backups, limit),
        "v{version} step 3:\n{}",
        ka.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(holds_vip(&lab, "lb1") && !holds_vip(&lab, "lb2"));
    let ka_stats_1 = ka.stats();
    let ka_log_1 = ka.log();

    // 4. keepalived again with 250: it preempts, xvs follows.
    ka.stop();
    drop(ka);
    let ka = Keepalived::start(&lab, &dir, version, 250, ka_int);
    assert!(
        ka.wait("MASTER", 0, limit),
        "v{version} step 4:\n{}",
        ka.log()
    );
    assert!(
        wait_xvs(&socket, "BACKUP", limit),
        "v{version} step 4 xvs:\n{}",
        x.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(holds_vip(&lab, "lb2") && !holds_vip(&lab, "lb1"));
    let ka_stats_2 = ka.stats();
    let ka_log_2 = ka.log();

    // 5. SIGTERM keepalived: xvs takes over.
    drop(ka);
    assert!(
        wait_xvs(&socket, "MASTER", limit),
        "v{version} step 5 xvs:\n{}",
        x.log()
    );
    assert!(holds_vip(&lab, "lb1"));
    assert!(
        x.log().contains("(VI_1) Entering BACKUP STATE")
            && x.log().contains("(VI_1) Entering MASTER STATE")
    );

    // No errors on either side.
    let page = lab.metrics_in("lb1");
    let errs: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("xvs_vrrp_errors_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(errs.is_empty(), "v{version}: xvs counted {errs:?}");
    let received = page
        .lines()
        .find(|l| l.starts_with("xvs_vrrp_adverts_received_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        received > 0,
        "xvs received no advert from keepalived:\n{page}"
    );
    for log in [&ka_log_1, &ka_log_2] {
        let bad = keepalived::log_problems(log);
        assert!(bad.is_empty(), "v{version}: keepalived logged {bad:?}");
    }
    for (i, s) in [ka_stats_1, ka_stats_2].iter().enumerate() {
        let (bad, got) = keepalived::errors(s);
        assert!(
            bad.is_empty(),
            "v{version}: keepalived counted {bad:?}\n{s}"
        );
        assert!(
            got > 0,
            "v{version}: keepalived {i} received no advert:\n{s}"
        );
    }
    eprintln!("v{version}: xvs and keepalived agreed at every step; xvs received {received} adverts, 0 errors on both sides");
    let st = x.stop();
    assert!(st.success(), "{}", x.log());
}

#[test]
fn interop_with_keepalived_vrrp_v3() {
    interop(3);
}

#[test]
fn interop_with_keepalived_vrrp_v2() {
    interop(2);
}
