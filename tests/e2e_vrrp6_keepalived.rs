//! End to end, interoperability with keepalived over IPv6 (Debian's package, installed by
//! `scripts/install-deps`): xvs and keepalived as the two routers of IPv6 VRID 51 (VRRPv3,
//! 100 ms adverts to ff02::12 from each side's link-local address), VIP 2001:2::100/64 on wan0.
//!
//! Its own two namespaces, `xvs-v6cap-x<pid>` (xvs) and `xvs-v6cap-k<pid>` (keepalived), joined
//! by a veth pair, duplicate address detection off so the link-local addresses are usable at
//! once; both are deleted when the test ends, pass or fail (a guard's `Drop`). Steps:
//! 1. xvs 200 alone: MASTER, the VIP on its wan0 (not tentative: added with `nodad`).
//! 2. keepalived 100 starts: it stays BACKUP (it hears xvs).
//! 3. SIGTERM xvs: keepalived takes over on xvs's priority-0 release, and holds the VIP.
//! 4. xvs starts again: BACKUP behind keepalived first, then it preempts; keepalived follows.
//! 5. Neither side counted an error: every `xvs_vrrp_errors_total` of xvs is 0 and it received
//!    adverts; keepalived's statistics (`SIGUSR2`, in its `TMPDIR`) show 0 in every error line
//!    and adverts received, and its log has no line about a packet it did not like.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/keepalived.rs"]
mod keepalived;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
const LIMIT: Duration = Duration::from_secs(4);

/// The two namespaces and the test's files; everything is removed on drop.
struct Lab6 {
    x: String,
    k: String,
    dir: PathBuf,
    children: Vec<Child>,
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab6 {
    fn up() -> Lab6 {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("xvs-v6cap-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab6 {
            x: format!("xvs-v6cap-x{id}"),
            k: format!("xvs-v6cap-k{id}"),
            dir,
            children: Vec::new(),
        };
        let (x, k) = (lab.x.as_str(), lab.k.as_str());
        for ns in [x, k] {
            run(&["ip", "netns", "add", ns]);
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
            ]);
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_dad=0",
            ]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip",
            "-n",
            x,
            "link",
            "add",
            "wan0",
            "address",
            "02:00:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "wan0",
            "netns",
            k,
            "address",
            "02:00:00:00:00:02",
        ]);
        for (ns, a) in [(x, "2001:2::1/64"), (k, "2001:2::2/64")] {
            run(&["ip", "-n", ns, "addr", "add", a, "dev", "wan0", "nodad"]);
            run(&["ip", "-n", ns, "link", "set", "wan0", "up"]);
        }
        lab
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn holds_vip(&self, ns: &str) -> bool {
        let a = run(&["ip", "-n", ns, "-6", "addr", "show", "dev", "wan0"]);
        a.lines()
            .any(|l| l.contains("2001:2::100/64") && !l.contains("tentative"))
    }
}

impl Drop for Lab6 {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.x, &self.k] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn xvs_config(lab: &Lab6) -> PathBuf {
    let text = format!(
        "global:\n  router_id: lb1\n  admin_socket: {}\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n  poll: wakeup\n\
         vrrp:\n  instances:\n    - name: VI_6\n      interface: wan0\n      vrid: 51\n      \
         priority: 200\n      advert_interval: 100ms\n      vips: [\"2001:2::100/64\"]\n",
        lab.file("admin.sock").display()
    );
    let path = lab.file("xvs.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_xvs(lab: &mut Lab6, config: &Path, log: &str) -> usize {
    let out = std::fs::File::create(lab.file(log)).unwrap();
    let c = Command::new("ip")
        .args(["netns", "exec", &lab.x, XVS, "run", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    lab.children.push(c);
    lab.children.len() - 1
}

fn start_keepalived(lab: &mut Lab6) -> usize {
    let conf = lab.file("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  router_id ka\n  vrrp_version 3\n}\n\
         vrrp_instance VI_6 {\n  state BACKUP\n  interface wan0\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 0.1\n  virtual_ipaddress {\n    2001:2::100/64 dev wan0\n  }\n}\n",
    )
    .unwrap();
    let out = std::fs::File::create(lab.file("keepalived.log")).unwrap();
    let c = Command::new("ip")
        .env("TMPDIR", &lab.dir)
        .args([
            "netns",
            "exec",
            &lab.k,
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-G",
            "--vrrp",
            "-f",
        ])
        .arg(&conf)
        .arg("-p")
        .arg(lab.file("keepalived.pid"))
        .arg("-r")
        .arg(lab.file("vrrp.pid"))
        .arg("-c")
        .arg(lab.file("checkers.pid"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start keepalived (scripts/install-deps installs it)");
    lab.children.push(c);
    lab.children.len() - 1
}

fn signal(lab: &Lab6, k: usize, sig: &str) {
    let pid = lab.children[k].id().to_string();
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .output();
}

fn stop(lab: &mut Lab6, k: usize) {
    signal(lab, k, "TERM");
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(Some(_)) = lab.children[k].try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = lab.children[k].kill();
    let _ = lab.children[k].wait();
}

fn xvs_state(lab: &Lab6) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.x, XVS, "ctl", "--socket"])
        .arg(lab.file("admin.sock"))
        .arg("vrrp")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("VI_6"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_string()
}

fn ka_entered(lab: &Lab6, state: &str) -> usize {
    std::fs::read_to_string(lab.file("keepalived.log"))
        .unwrap_or_default()
        .matches(&format!("(VI_6) Entering {state} STATE"))
        .count()
}

fn wait(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn logs(lab: &Lab6) -> String {
    let read = |n: &str| std::fs::read_to_string(lab.file(n)).unwrap_or_default();
    format!(
        "---- xvs ----\n{}{}---- keepalived ----\n{}",
        read("xvs-1.log"),
        read("xvs-2.log"),
        read("keepalived.log")
    )
}

fn metrics(lab: &Lab6) -> String {
    run(&[
        "ip", "netns", "exec", &lab.x, "python3", "-c",
        "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9798/metrics').read().decode())",
    ])
}

/// keepalived's non-zero error lines and its adverts received, from its statistics file.
fn keepalived_stats(lab: &Lab6, k: usize) -> (Vec<String>, u64) {
    let stats = lab.file("keepalived.stats");
    let sig = run(&["keepalived", "--signum=STATS"]);
    signal(lab, k, sig.trim());
    assert!(
        wait(Duration::from_secs(5), || std::fs::read_to_string(&stats)
            .is_ok_and(|s| s.contains("Priority Zero"))),
        "no statistics"
    );
    keepalived::errors(&std::fs::read_to_string(&stats).unwrap())
}

#[test]
fn xvs_and_keepalived_share_an_ipv6_vrid() {
    let mut lab = Lab6::up();
    let config = xvs_config(&lab);
    let (x, k) = (lab.x.clone(), lab.k.clone());

    // 1. xvs alone becomes MASTER and holds the VIP.
    let xvs1 = start_xvs(&mut lab, &config, "xvs-1.log");
    assert!(
        wait(LIMIT, || xvs_state(&lab) == "MASTER"),
        "1\n{}",
        logs(&lab)
    );
    assert!(wait(LIMIT, || lab.holds_vip(&x)), "1: VIP\n{}", logs(&lab));

    // 2. keepalived 100 stays BACKUP: it hears xvs.
    let ka = start_keepalived(&mut lab);
    assert!(
        wait(LIMIT, || ka_entered(&lab, "BACKUP") > 0),
        "2\n{}",
        logs(&lab)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ka_entered(&lab, "MASTER"), 0, "2\n{}", logs(&lab));
    assert!(!lab.holds_vip(&k));

    // 3. xvs stops (priority-0 release): keepalived takes over at once.
    stop(&mut lab, xvs1);
    assert!(
        wait(LIMIT, || ka_entered(&lab, "MASTER") == 1),
        "3\n{}",
        logs(&lab)
    );
    assert!(wait(LIMIT, || lab.holds_vip(&k)), "3: VIP\n{}", logs(&lab));
    assert!(!lab.holds_vip(&x), "3: xvs released the VIP");

    // 4. xvs again: it hears keepalived's lower priority and preempts.
    start_xvs(&mut lab, &config, "xvs-2.log");
    assert!(
        wait(LIMIT, || xvs_state(&lab) == "MASTER"),
        "4\n{}",
        logs(&lab)
    );
    assert!(
        wait(LIMIT, || ka_entered(&lab, "BACKUP") == 2),
        "4\n{}",
        logs(&lab)
    );
    assert!(wait(LIMIT, || !lab.holds_vip(&k)), "4: VIP\n{}", logs(&lab));
    assert!(lab.holds_vip(&x));
    std::thread::sleep(Duration::from_millis(500));

    // 5. No errors on either side, and both heard the other.
    let page = metrics(&lab);
    let errs: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("xvs_vrrp_errors_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(errs.is_empty(), "xvs counted {errs:?}\n{}", logs(&lab));
    assert!(page.contains("xvs_vrrp_errors_total{reason=\"source_not_link_local\"} 0"));
    let received = page
        .lines()
        .find(|l| l.starts_with("xvs_vrrp_adverts_received_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(received > 0, "xvs received no adverts\n{page}");
    let (bad, ka_received) = keepalived_stats(&lab, ka);
    assert!(bad.is_empty(), "keepalived counted {bad:?}\n{}", logs(&lab));
    assert!(ka_received > 0, "keepalived received no adverts");
    let ka_log = std::fs::read_to_string(lab.file("keepalived.log")).unwrap();
    let problems = keepalived::log_problems(&ka_log);
    assert!(problems.is_empty(), "keepalived complained: {problems:?}");
}
