//! Shared by the health-check end-to-end tests (`tests/e2e_health.rs`, `tests/e2e_health6.rs`):
//! the detection tests' check timings and their bounds' margin, xvs started in the NAT lab (its
//! config, [`nat_config`], also `tests/e2e_announce.rs`'s), and [`PortGate`], a lab namespace's
//! TCP port made to refuse new connections at a known moment, as a stopped server's closed port
//! does. The gate's rule is of nftables' `inet` family, so it refuses IPv4 and IPv6 connections
//! alike.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Lab, Xvs};

/// Interval, timeout, fall and rise of the HTTP check of the detection tests. Three probes each
/// way and a timeout of half an interval keep the bounds below twice the time xvs needs, so a
/// checker that probed half as often would miss them.
pub const INTERVAL: Duration = Duration::from_millis(200);
pub const TIMEOUT: Duration = Duration::from_millis(100);
pub const FALL: u32 = 3;
pub const RISE: u32 = 3;

/// The worst case of the checker (`src/control/health/`): a probe starts every interval (each
/// one due an interval after the previous one was due; a probe that took at most its timeout,
/// which is at most the interval, never delays the next), a server changes state on the probe
/// that completes its `fall` (`rise`) run, and that probe's result is applied and logged at
/// once. So after the server stops answering at t0, the first probe that can fail starts before
/// t0 + interval (an earlier one may have connected before t0 and succeeded), the fall-th before
/// t0 + fall × interval, and it fails within its timeout: **down within fall × interval +
/// timeout**. After the server answers again at t1, the first probe that can succeed starts
/// before t1 + interval, the rise-th before t1 + rise × interval, and it succeeds as soon as the
/// server answers its GET: **up within rise × interval + that probe's run time**.
///
/// On top of each bound, this margin, for what the formulas leave out: the health thread and a
/// probe thread each wake up once per probe (two thread wake-ups, then the log line is written),
/// the test polls the log every millisecond, the nft rule that stops or restarts the server
/// takes effect within about a millisecond of the test's timestamp (an nft shell already running
/// in r2's namespace, [`PortGate`]), and, for recovery, the last probe's own run (connect, GET
/// and status line on a veth: milliseconds). On a 2-core machine shared with builds and other
/// tests, a thread that becomes runnable waits for a CPU for up to a few scheduler slices
/// (EEVDF's base slice is 3 ms): 100 ms covers tens of such waits, and is half an interval.
pub const MARGIN: Duration = Duration::from_millis(100);

/// Writes the load balancer's config `name` for the NAT lab into the lab's state directory: the
/// admin socket, wan0 and lan0 with one queue each and `poll: wakeup` (busy polling would starve
/// the test's client and servers on a 2-core machine), then `sections` (YAML top-level sections
/// such as `services:`).
pub fn nat_config(lab: &Lab, name: &str, sections: &str) -> PathBuf {
    let text = format!(
        "\
global:
  admin_socket: /run/xvs/admin.sock
datapath:
  interfaces:
    - {{ name: wan0, queues: [0] }}
    - {{ name: lan0, queues: [0] }}
  poll: wakeup
{sections}"
    );
    lab.write_config("lb", name, &text)
}

/// Starts xvs in the NAT lab with `services` (YAML, indented as list items under `services:`)
/// in its [`nat_config`], and waits until `url` answers HTTP through it.
pub fn start(lab: &Lab, services: &str, url: &str) -> Xvs {
    let config = nat_config(lab, "health.yaml", &format!("services:\n{services}"));
    let mut xvs = lab.start_xvs(&config);
    let ready = lab.wait_url_ready(url, Duration::from_secs(20));
    assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
    assert!(ready, "{url} never answered through xvs:\n{}", xvs.log());
    xvs
}

/// What the request stream saw, split at the outage's moments (Unix seconds).
#[derive(Debug, Default)]
pub struct Split {
    /// Answered before the stop, by r1 and by r2.
    pub before: (u64, u64),
    /// Failed between the stop and the detection bound; the last one's start after the stop.
    pub window_failures: u64,
    pub last_failure: Option<f64>,
    /// The last request r2 answered that started after the stop (before its port refused).
    pub last_r2: Option<f64>,
    /// Answered by r1 between the detection bound and the restart.
    pub r1_only: u64,
    /// Answered by r2 after the restart.
    pub r2_after_start: u64,
}

/// Checks every request of the stream against the outage (`t_stop`: the port about to refuse,
/// `t_refusing`: refusing, `deadline`: the detection bound in seconds, `t_start`: the server
/// about to answer again) and counts them.
pub fn split(trace: &[(f64, Option<String>)], t: [f64; 3], deadline: f64, log: &str) -> Split {
    let [t_stop, t_refusing, t_start] = t;
    let mut s = Split::default();
    // A request's start is taken before it connects: one started just before the stop may send
    // its SYN after it and be refused (100 ms is far more than that takes).
    let grace = 0.1;
    for (at, who) in trace {
        let (at, who) = (*at, who.as_deref());
        if at < t_stop {
            assert!(
                who.is_some() || at >= t_stop - grace,
                "a request failed {:.3} s before r2 was stopped",
                t_stop - at
            );
            match who {
                Some("r1") => s.before.0 += 1,
                Some("r2") => s.before.1 += 1,
                _ => {}
            }
        } else if at < t_stop + deadline {
            if who.is_none() {
                s.window_failures += 1;
                s.last_failure = Some(at - t_stop);
            }
            if who == Some("r2") {
                s.last_r2 = Some(at - t_stop);
            }
            assert!(
                who != Some("r2") || at < t_refusing,
                "r2 answered a request started {:.3} s after its port refused connections",
                at - t_refusing
            );
        } else if at < t_start {
            assert_eq!(
                who,
                Some("r1"),
                "{:.3} s after the stop (deadline {deadline} s), a request went elsewhere than r1\n{log}",
                at - t_stop
            );
            s.r1_only += 1;
        } else {
            assert!(
                who.is_some(),
                "a request failed {:.3} s after r2 restarted\n{log}",
                at - t_start
            );
            if who == Some("r2") {
                s.r2_after_start += 1;
            }
        }
    }
    s
}

/// Makes a lab namespace refuse new TCP connections to a port, as a stopped server's closed port
/// does (a reset to the SYN), at a known moment: an `nft -i` shell runs in the namespace, so a
/// rule goes in or out within about a millisecond of the command instead of the tens of
/// milliseconds a fresh `ip netns exec nft` takes on a loaded machine. Connections already open
/// are left alone (only initial SYNs match). The rules live in the namespace, deleted with the
/// lab; the shell ends when its stdin closes (on drop).
pub struct PortGate {
    shell: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    port: u16,
}

impl PortGate {
    pub fn new(lab: &Lab, role: &str, port: u16) -> PortGate {
        let mut shell = Command::new("ip")
            .args(["netns", "exec", &lab.ns(role), "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nft -i (scripts/install-deps installs nftables)");
        let input = shell.stdin.take().unwrap();
        let output = BufReader::new(shell.stdout.take().unwrap());
        let mut gate = PortGate {
            shell,
            input,
            output,
            port,
        };
        gate.run("add table inet xvs_test_gate");
        gate.run("add chain inet xvs_test_gate input { type filter hook input priority 0 ; }");
        gate
    }

    /// Runs `cmd`, then waits until the shell has applied it: it answers a listing of the
    /// table sent after it (commands run in order). Returns the moment just before `cmd` was
    /// sent, and the listing.
    fn run(&mut self, cmd: &str) -> (Instant, String) {
        let at = Instant::now();
        writeln!(self.input, "{cmd}\nlist table inet xvs_test_gate").unwrap();
        self.input.flush().unwrap();
        let mut listing = String::new();
        loop {
            let n = self.output.read_line(&mut listing).unwrap();
            assert!(n > 0, "nft -i ended after `{cmd}`");
            // The listing's last line closes the table (inner blocks close indented).
            if listing.ends_with("\n}\n") {
                return (at, listing);
            }
        }
    }

    /// From now on the port refuses new connections; returns the moment before the rule went in.
    pub fn close(&mut self) -> Instant {
        let rule = format!(
            "add rule inet xvs_test_gate input tcp dport {} tcp flags & (syn | ack) == syn reject with tcp reset",
            self.port
        );
        let (at, listing) = self.run(&rule);
        assert!(
            listing.contains("reject with tcp reset"),
            "nft refused `{rule}`:\n{listing}"
        );
        at
    }

    /// From now on the port accepts connections again; returns the moment before the rule went.
    pub fn open(&mut self) -> Instant {
        let (at, listing) = self.run("flush chain inet xvs_test_gate input");
        assert!(!listing.contains("reject"), "the rule stayed:\n{listing}");
        at
    }
}

impl Drop for PortGate {
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}
