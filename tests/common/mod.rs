//! Helpers for the end-to-end tests: a lab of network namespaces (`scripts/lab`), lab servers,
//! the xvs daemon inside the lab's load balancer, and the lab client.
//!
//! ```ignore
//! let lab = Lab::new(); // fails the test when the lab cannot be built (e.g. not root)
//! lab.serve();
//! let xvs = lab.start_xvs(&Lab::config("nat.yaml"));
//! assert!(lab.wait_http_ready(Duration::from_secs(20)));
//! let s = lab.http_client(300);
//! ```
//!
//! Every `Lab` has a unique TAG (PID + counter), so tests run in parallel; dropping it stops
//! everything inside and deletes its namespaces and its state directory, pass or fail. A test's
//! files (configs from [`Lab::write_config`], admin sockets, sniffer output, flag files) go in
//! that directory ([`Lab::file`]), so they go with the lab; a test without a lab keeps its files
//! in a [`TempPath`].
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The VIP of the lab topologies.
pub const VIP: &str = "198.18.0.100";

/// The IPv6 VIP of the `nat` and `fullnat` topologies (on the load balancer's wan0).
pub const VIP6: &str = "2001:2::100";

/// The client's IPv6 address in every dual-stack topology.
pub const CLIENT6: &str = "2001:2::2";

/// Fails the test unless it runs as root: the e2e tests build network namespaces, and a test
/// that cannot build its lab must fail, never skip.
pub fn assert_root(test: &str) {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    assert!(
        root,
        "{test} needs root to build its network namespaces (run `make test` as root)"
    );
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// A lab TAG unique on this machine for this process: a prefix + PID + counter, at most 8
/// characters. The prefix is `e`, or `$XVS_LAB_TAG_PREFIX` (1 to 3 characters [A-Za-z0-9]: a
/// session may own only tags with its own prefix; a 3-character one fits while PIDs stay below
/// 36⁴, e.g. the default `pid_max` of 32768).
pub fn unique_tag() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let prefix = std::env::var("XVS_LAB_TAG_PREFIX").unwrap_or_else(|_| "e".to_string());
    assert!(
        (1..=3).contains(&prefix.len()) && prefix.chars().all(|c| c.is_ascii_alphanumeric()),
        "XVS_LAB_TAG_PREFIX must be 1 to 3 characters [A-Za-z0-9], got {prefix:?}"
    );
    let tag = format!(
        "{prefix}{}{}",
        base36(u64::from(std::process::id())),
        base36(u64::from(n))
    );
    assert!(tag.len() <= 8, "tag {tag} too long");
    tag
}

/// Wall-clock now, in Unix seconds (the lab client stamps its trace with it).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The value of the metric line that starts with `prefix` (labels included).
pub fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no metric {prefix} in:\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Absolute path of a file under `scripts/`, as a string for command lines.
pub fn script(name: &str) -> String {
    repo()
        .join("scripts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn lab_script() -> PathBuf {
    repo().join("scripts/lab")
}

/// The JSON summary printed by `scripts/lab-client.py`.
#[derive(Debug, Deserialize)]
pub struct Summary {
    pub ok: u64,
    pub failed: u64,
    pub by_server: BTreeMap<String, u64>,
    pub errors: Vec<String>,
    /// With `--trace`: each request's start (Unix seconds) and who answered (`None`: failed).
    #[serde(default)]
    pub trace: Vec<(f64, Option<String>)>,
}

impl Summary {
    /// Requests answered by `server`.
    pub fn count(&self, server: &str) -> u64 {
        self.by_server.get(server).copied().unwrap_or(0)
    }
}

/// A running lab; torn down on drop.
pub struct Lab {
    pub tag: String,
}

impl Lab {
    /// Brings up the `nat` topology; fails the test when that is impossible (not root, ...).
    pub fn new() -> Lab {
        Lab::up("nat")
    }

    /// Brings up `topology` under a fresh TAG; panics (fails the test) if it cannot.
    pub fn up(topology: &str) -> Lab {
        Lab::up_with_queues(topology, 1)
    }

    /// [`Lab::up`] with `queues` RX and TX queues on every veth end (`scripts/lab up TOPO TAG
    /// --queues N`; 1 is the lab's default).
    pub fn up_with_queues(topology: &str, queues: u32) -> Lab {
        assert_root("the lab");
        let tag = unique_tag();
        let mut cmd = Command::new(lab_script());
        cmd.args(["up", topology, &tag]);
        if queues != 1 {
            cmd.args(["--queues", &queues.to_string()]);
        }
        let out = cmd.output().expect("run scripts/lab");
        // Constructed before the check so that a failed `up` is still cleaned up.
        let lab = Lab { tag };
        assert!(
            out.status.success(),
            "scripts/lab up {topology} {}: {}",
            lab.tag,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        lab
    }

    /// Path of an example config in `config/`.
    pub fn config(name: &str) -> PathBuf {
        repo().join("config").join(name)
    }

    /// The lab's state directory (`$XVS_LAB_STATE/TAG`, `/run/xvs-lab/TAG` by default), made by
    /// `scripts/lab up`. `scripts/lab down`, run when the `Lab` drops (pass or fail), deletes it
    /// with everything in it: every file a test makes for its lab goes here ([`Lab::file`]).
    pub fn state_dir(&self) -> PathBuf {
        std::env::var_os("XVS_LAB_STATE")
            .map_or_else(|| PathBuf::from("/run/xvs-lab"), PathBuf::from)
            .join(&self.tag)
    }

    /// `NAME` in the lab's state directory: a test's file, deleted with the lab.
    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    /// The admin socket of the daemon in `role`'s namespace, in the state directory (so a
    /// daemon that dies without removing it leaves nothing behind).
    pub fn admin_socket(&self, role: &str) -> PathBuf {
        self.file(&format!("{role}.sock"))
    }

    /// Writes a config for the daemon in `role`'s namespace into the state directory as
    /// `NAME` and returns its path: `text` with `poll: busy` made `poll: wakeup` (busy polling
    /// would starve the test's own clients and servers) and the shipped admin socket
    /// (`/run/xvs/admin.sock`) made [`Lab::admin_socket`] (the tests run in parallel).
    pub fn write_config(&self, role: &str, name: &str, text: &str) -> PathBuf {
        let text = text.replace("poll: busy", "poll: wakeup").replace(
            "admin_socket: /run/xvs/admin.sock",
            &format!("admin_socket: {}", self.admin_socket(role).display()),
        );
        let path = self.file(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// [`Lab::write_config`] of the example `config/NAME` for the daemon in `lb`, as `NAME`;
    /// asserts that the example sets `poll: busy` and the shipped admin socket (the rewrite
    /// must not be a silent no-op).
    pub fn example_config(&self, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(Lab::config(name))
            .unwrap_or_else(|e| panic!("config/{name}: {e}"));
        for want in ["poll: busy", "admin_socket: /run/xvs/admin.sock"] {
            assert!(
                text.contains(want),
                "config/{name} is expected to set `{want}`"
            );
        }
        self.write_config("lb", name, &text)
    }

    /// The namespace of `role`.
    pub fn ns(&self, role: &str) -> String {
        format!("xvs-{}-{role}", self.tag)
    }

    /// Runs `cmd` inside `role`'s namespace and returns its output (whatever the exit status).
    pub fn exec(&self, role: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Like [`exec`](Self::exec) but panics unless `cmd` succeeds; returns its stdout.
    pub fn exec_ok(&self, role: &str, cmd: &[&str]) -> String {
        let out = self.exec(role, cmd);
        assert!(
            out.status.success(),
            "{role}: {}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the lab servers: HTTP on :80 and UDP on :5353 in r1 and r2.
    pub fn serve(&self) {
        let out = Command::new(lab_script())
            .args(["serve", &self.tag])
            .output()
            .expect("run scripts/lab serve");
        assert!(
            out.status.success(),
            "scripts/lab serve {}: {}",
            self.tag,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Starts one more lab server in `role` (`kind` `http` or `udp`) on `port`, answering with
    /// `name`; returns once it listens.
    pub fn start_server(&self, role: &str, kind: &str, port: u16, name: &str) {
        let out = Command::new(lab_script())
            .args([
                "start-server",
                &self.tag,
                role,
                kind,
                &port.to_string(),
                name,
            ])
            .output()
            .expect("run scripts/lab start-server");
        assert!(
            out.status.success(),
            "scripts/lab start-server {} {role} {kind} {port}: {}",
            self.tag,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Stops one lab server (started by [`serve`](Self::serve) or
    /// [`start_server`](Self::start_server)); returns once it is gone.
    pub fn stop_server(&self, role: &str, kind: &str, port: u16) {
        let out = Command::new(lab_script())
            .args(["stop-server", &self.tag, role, kind, &port.to_string()])
            .output()
            .expect("run scripts/lab stop-server");
        assert!(
            out.status.success(),
            "scripts/lab stop-server {} {role} {kind} {port}: {}",
            self.tag,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// The peers a lab server logged, one per request or datagram (`A.B.C.D:PORT` or
    /// `[IPV6]:PORT`, see `scripts/lab`): `role`'s `kind` (`http`, `udp`) server on `port`.
    pub fn peers(&self, role: &str, kind: &str, port: u16) -> Vec<std::net::SocketAddr> {
        let path = self.file(&format!("logs/{role}-{kind}-{port}.peers"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| {
                l.parse()
                    .unwrap_or_else(|_| panic!("{}: bad peer {l:?}", path.display()))
            })
            .collect()
    }

    /// The MAC address of `dev` in `role`'s namespace.
    pub fn mac(&self, role: &str, dev: &str) -> String {
        self.exec_ok(role, &["cat", &format!("/sys/class/net/{dev}/address")])
            .trim()
            .to_string()
    }

    /// The daemon's `/metrics` page, fetched inside the load balancer's namespace.
    pub fn metrics(&self) -> String {
        self.metrics_in("lb")
    }

    /// The `/metrics` page of the daemon in `role`'s namespace.
    pub fn metrics_in(&self, role: &str) -> String {
        self.exec_ok(
            role,
            &[
                "python3",
                "-c",
                "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9798/metrics').read().decode())",
            ],
        )
    }

    /// [`start_xvs`](Self::start_xvs), then waits until VIP:80 answers through it (20 s at
    /// most); panics with the daemon's log if it exited or never answered.
    pub fn start_xvs_ready(&self, config: &Path) -> Xvs {
        let mut xvs = self.start_xvs(config);
        let ready = self.wait_http_ready(Duration::from_secs(20));
        assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
        assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
        xvs
    }

    /// Starts `xvs run -c CONFIG` in the load balancer's namespace. Output goes to a log file
    /// ([`Xvs::log`]); the daemon is stopped with SIGTERM when the guard drops.
    pub fn start_xvs(&self, config: &Path) -> Xvs {
        self.start_xvs_in("lb", config)
    }

    /// [`start_xvs`](Self::start_xvs) in `role`'s namespace (the `vrrp` topology has two load
    /// balancers, `lb1` and `lb2`).
    pub fn start_xvs_in(&self, role: &str, config: &Path) -> Xvs {
        let log_path = std::env::temp_dir().join(format!("xvs-lab-{}-{role}.log", self.tag));
        let log = std::fs::File::create(&log_path).expect("create xvs log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(role),
                env!("CARGO_BIN_EXE_xvs"),
                "run",
                "-c",
            ])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start xvs");
        Xvs {
            child,
            log_path,
            status: None,
        }
    }

    fn client(&self, args: &[&str]) -> Summary {
        self.client_in("client", args)
    }

    /// Runs the lab client in `role`'s namespace and parses its summary.
    fn client_in(&self, role: &str, args: &[&str]) -> Summary {
        let script = script("lab-client.py");
        let mut cmd = vec!["python3", script.as_str()];
        cmd.extend_from_slice(args);
        let out = self.exec(role, &cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // JSON is YAML: no extra dependency needed to read the summary.
        serde_yaml_ng::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "lab-client {}: unreadable summary ({e}): {stdout} {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Sequential HTTP requests from the client to `url` for `duration_s` seconds, one every
    /// `interval_s` at most, a fresh connection each, every request in the summary's trace.
    pub fn http_stream(
        &self,
        url: &str,
        duration_s: f64,
        interval_s: f64,
        timeout_s: f64,
    ) -> Summary {
        self.client(&[
            "http",
            "--url",
            url,
            "--duration",
            &duration_s.to_string(),
            "--interval",
            &interval_s.to_string(),
            "--timeout",
            &timeout_s.to_string(),
            "--trace",
        ])
    }

    /// Opens `count` TCP connections from the client to VIP:80 and holds them (nothing sent)
    /// until [`Held::release`].
    pub fn hold(&self, count: u32) -> Held {
        use std::io::BufRead;
        let trigger = std::env::temp_dir().join(format!("xvs-e2e-hold-{}", self.tag));
        let _ = std::fs::remove_file(&trigger);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns("client"), "python3"])
            .arg(script("lab-client.py"))
            .args(["hold", "--addr", &format!("{VIP}:80"), "--count"])
            .arg(count.to_string())
            .arg("--trigger")
            .arg(&trigger)
            .args(["--wait", "120", "--timeout", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the lab client");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let held = Held { child, trigger };
        assert_eq!(
            first.trim(),
            format!("{{\"opened\": {count}}}"),
            "not every held connection opened"
        );
        held
    }

    /// `count` sequential HTTP requests from the client to `http://VIP/`, a fresh connection each.
    pub fn http_client(&self, count: u32) -> Summary {
        self.http_client_url(&format!("http://{VIP}/"), count, 2.0)
    }

    pub fn http_client_url(&self, url: &str, count: u32, timeout_s: f64) -> Summary {
        self.client(&[
            "http",
            "--url",
            url,
            "--count",
            &count.to_string(),
            "--timeout",
            &timeout_s.to_string(),
        ])
    }

    /// `count` sequential HTTP requests to `url` from `role`'s namespace (e.g. the load balancer
    /// itself), a fresh connection each.
    pub fn http_from(&self, role: &str, url: &str, count: u32) -> Summary {
        self.client_in(role, &["http", "--url", url, "--count", &count.to_string()])
    }

    /// `count` UDP requests from `role`'s namespace to `addr` (`HOST:PORT`), a fresh socket each.
    pub fn udp_from(&self, role: &str, addr: &str, count: u32) -> Summary {
        self.client_in(
            role,
            &["udp", "--addr", addr, "--count", &count.to_string()],
        )
    }

    /// `count` UDP requests from the client to `addr` (`HOST:PORT`), a fresh socket each.
    pub fn udp_client(&self, addr: &str, count: u32) -> Summary {
        self.client(&["udp", "--addr", addr, "--count", &count.to_string()])
    }

    /// Sends `count` datagrams from the client, each from a fresh connected socket to `addr`
    /// (`HOST:PORT`), and returns how many of them saw ECONNREFUSED (an ICMP port unreachable
    /// reached the client's socket) within 2 s.
    pub fn udp_refused(&self, addr: &str, count: u32) -> u32 {
        let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
        let probe = format!(
            "import socket\n\
             refused=0\n\
             for i in range({count}):\n\
             \x20   s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             \x20   s.settimeout(2)\n\
             \x20   s.connect(('{host}',{port}))\n\
             \x20   s.send(b'anyone?')\n\
             \x20   try:\n\
             \x20       s.recv(100)\n\
             \x20   except ConnectionRefusedError:\n\
             \x20       refused+=1\n\
             \x20   except socket.timeout:\n\
             \x20       pass\n\
             print(refused)\n"
        );
        let out = self.exec_ok("client", &["python3", "-c", &probe]);
        out.trim().parse().expect("probe prints a count")
    }

    /// Like [`udp_client`](Self::udp_client) with every datagram padded to `size` bytes.
    pub fn udp_client_sized(&self, addr: &str, count: u32, size: usize) -> Summary {
        self.client(&[
            "udp",
            "--addr",
            addr,
            "--count",
            &count.to_string(),
            "--size",
            &size.to_string(),
        ])
    }

    /// Polls `http://VIP/` from the client until one request succeeds or `limit` passes.
    pub fn wait_http_ready(&self, limit: Duration) -> bool {
        self.wait_url_ready(&format!("http://{VIP}/"), limit)
    }

    /// Polls `url` from the client until one request succeeds or `limit` passes.
    pub fn wait_url_ready(&self, url: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.http_client_url(url, 1, 0.5).ok == 1 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Frames leaving `dev` in `role`'s namespace use TX queue `queue`, so the veth peer
    /// receives them on its RX queue `queue` (`scripts/lab steer`). Fails the test if it cannot.
    pub fn steer(&self, role: &str, dev: &str, queue: u32) {
        let out = Command::new(lab_script())
            .args(["steer", &self.tag, role, dev, &queue.to_string()])
            .output()
            .expect("run scripts/lab steer");
        assert!(
            out.status.success(),
            "scripts/lab steer {} {role} {dev} {queue}: {}",
            self.tag,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// The driver statistics of `dev` in `role`'s namespace (`ethtool -S`), by name (a veth's
    /// include `rx_queue_N_xdp_packets`, counted while an XDP program is attached).
    pub fn ethtool_stats(&self, role: &str, dev: &str) -> BTreeMap<String, u64> {
        self.exec_ok(role, &["ethtool", "-S", dev])
            .lines()
            .filter_map(|l| {
                let (name, value) = l.trim().split_once(':')?;
                Some((name.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Makes every switch of the lab flood like a hub (`scripts/lab hub TAG [echo]`: ageing 0,
    /// no learning), so every frame reaches every port whatever its destination MAC; with
    /// `echo`, also back out of the port it came in by (hairpin), so every box receives its own
    /// frames. Fails the test if the switches cannot be changed.
    pub fn hub(&self, echo: bool) {
        let mut args = vec!["hub", self.tag.as_str()];
        if echo {
            args.push("echo");
        }
        let out = Command::new(lab_script())
            .args(&args)
            .output()
            .expect("run scripts/lab hub");
        assert!(
            out.status.success(),
            "scripts/lab {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(lab_script())
            .args(["down", &self.tag])
            .stdin(Stdio::null())
            .output();
    }
}

/// The xvs daemon running in a lab; SIGTERM (then SIGKILL after 5 s) on drop.
pub struct Xvs {
    child: Child,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Xvs {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (polling every 10 ms, at most `limit`) until the log has a line containing `needle`
    /// more than `already` times; returns when it saw it, `None` on timeout.
    pub fn wait_log(&self, needle: &str, already: usize, limit: Duration) -> Option<Instant> {
        self.wait_log_every(needle, already, limit, Duration::from_millis(10))
    }

    /// [`Xvs::wait_log`] polling every `every` (1 ms for a timing measurement: the `Instant`
    /// returned is then at most ~1 ms after the line was written).
    pub fn wait_log_every(
        &self,
        needle: &str,
        already: usize,
        limit: Duration,
        every: Duration,
    ) -> Option<Instant> {
        let end = Instant::now() + limit;
        loop {
            if self.log().lines().filter(|l| l.contains(needle)).count() > already {
                return Some(Instant::now());
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(every);
        }
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) with kill(2) from this process, no `kill` command
    /// spawned, and returns the moment just before the call (for timing measurements).
    #[allow(unsafe_code)] // kill(2): the one way to signal the child without spawning `kill`
    pub fn signal_now(&self, sig: libc::c_int) -> Instant {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        let at = Instant::now();
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
        // child, not yet reaped (so not a recycled pid).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
        at
    }

    /// Sends a signal (e.g. `"HUP"`, `"TERM"`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .output();
    }

    /// Stops xvs with SIGTERM and fails the test unless it exits 0.
    pub fn stop_cleanly(mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "xvs did not stop cleanly ({status}):\n{}",
            self.log()
        );
    }

    /// SIGTERM, then waits (5 s, then SIGKILL) and returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        if let Ok(Some(s)) = self.child.try_wait() {
            self.status = Some(s);
            return s;
        }
        self.signal("TERM");
        let end = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().expect("wait for xvs");
                }
            }
        };
        self.status = Some(status);
        status
    }
}

impl Drop for Xvs {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- xvs log ----\n{}-----------------", self.log());
        }
        let _ = std::fs::remove_file(&self.log_path);
        remove_dead_locks(self.pid());
    }
}

/// Removes the interface lock files (`/run/xvs/locks/*.lock`) that still name `pid`: a daemon
/// that was SIGKILLed cannot remove its own (a clean stop does), and its lab namespace is gone
/// with the test, so nothing else would. Called once the process has been reaped.
fn remove_dead_locks(pid: u32) {
    let Ok(dir) = std::fs::read_dir("/run/xvs/locks") else {
        return;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        if holder.trim() == pid.to_string() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Connections held open by the lab client's `hold` mode (see [`Lab::hold`]).
pub struct Held {
    child: std::process::Child,
    trigger: PathBuf,
}

impl Held {
    /// Releases the connections: each sends one HTTP request now. Returns the summary of their
    /// answers (a connection reset or closed while held is a failure).
    pub fn release(mut self) -> Summary {
        std::fs::write(&self.trigger, b"go").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut rest).unwrap();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.trigger);
        serde_yaml_ng::from_str(rest.trim()).unwrap_or_else(|e| panic!("{e}: {rest}"))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Released or not, the client must not outlive the test.
        let _ = std::fs::write(&self.trigger, b"go");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.trigger);
    }
}

/// A file or directory of a test that has no lab (a lab's files go in [`Lab::state_dir`]):
/// removed when the guard drops, pass or fail.
pub struct TempPath(pub PathBuf);

impl TempPath {
    /// `NAME` in the system's temp directory, prefixed with `xvs-` and this process's id.
    pub fn new(name: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("xvs-{}-{name}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Runs `f` on a thread that entered the network namespace `ns` (e.g. [`Lab::ns`]). Sockets it
/// creates stay in `ns` wherever they are used afterwards; threads it spawns inherit `ns`.
#[allow(unsafe_code)] // setns(2): std has no wrapper
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("cannot open netns {ns}: {e}"));
            // SAFETY: setns(2) on a namespace file descriptor that is open for the whole call;
            // with CLONE_NEWNET it moves only the calling thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}
