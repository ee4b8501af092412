//! End to end, health checks: xvs in the NAT lab checks its real servers and takes a failed one
//! out of (and back into) rotation, applies `on_failure`, and falls back to a sorry server.
//!
//! Each test builds its own lab (unique namespace prefix, deleted on drop, pass or fail), writes
//! its own config next to the test's log (`poll: wakeup`: busy polling would starve the test's
//! client and servers on a 2-core machine), and fails when the lab cannot be built.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Lab, Xvs, VIP};

/// Health-check interval and fall of the HTTP check in [`http_check_config`].
const INTERVAL: Duration = Duration::from_millis(200);
const FALL: u32 = 2;
const RISE: u32 = 2;

/// Writes `services` (YAML, indented as list items under `services:`) into a config for `lab`.
fn config(lab: &Lab, services: &str) -> PathBuf {
    let text = format!(
        "\
global:
  admin_socket: /run/xvs/admin.sock
datapath:
  interfaces:
    - {{ name: wan0, queues: [0] }}
    - {{ name: lan0, queues: [0] }}
  poll: wakeup
services:
{services}"
    );
    lab.write_config("lb", "health.yaml", &text)
}

fn start(lab: &Lab, services: &str) -> Xvs {
    let mut xvs = lab.start_xvs(&config(lab, services));
    let ready = lab.wait_http_ready(Duration::from_secs(20));
    assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
    assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
    xvs
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The value of the metric line starting with `prefix` (name and labels).
fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no metric {prefix} in\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Flag files that the exec checks of [`exec_services`] read: a real server whose file exists
/// fails its check. In the lab's state directory (deleted with the lab); removed on drop too.
struct Flags(String);

impl Flags {
    fn new(lab: &Lab) -> Flags {
        Flags(lab.file("down-").to_string_lossy().into_owned())
    }
    fn command(&self) -> String {
        format!("test ! -e {}%ADDR%", self.0)
    }
    fn down(&self, ip: &str) {
        std::fs::write(format!("{}{ip}", self.0), b"").unwrap();
    }
    fn up(&self, ip: &str) {
        let _ = std::fs::remove_file(format!("{}{ip}", self.0));
    }
}

impl Drop for Flags {
    fn drop(&mut self) {
        self.up("198.18.1.11");
        self.up("198.18.1.12");
    }
}

#[test]
fn stopping_a_real_servers_http_takes_it_out_within_interval_times_fall_and_starting_it_brings_it_back(
) {
    let lab = Lab::new();
    lab.serve();
    let xvs = start(
        &lab,
        &format!(
            "  - name: web
    vip: {VIP}
    port: 80
    scheduler: rr
    health_check:
      type: http
      interval: {interval}ms
      timeout: {interval}ms
      rise: {RISE}
      fall: {FALL}
      http: {{ path: /, expect_status: [200] }}
    reals:
      - address: 198.18.1.11:80
      - address: 198.18.1.12:80
  - name: dns
    vip: {VIP}
    port: 53
    protocol: udp
    scheduler: rr
    health_check: {{ type: udp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2 }}
    reals:
      - address: 198.18.1.11:5353
      - address: 198.18.1.12:5353
",
            interval = INTERVAL.as_millis()
        ),
    );
    let deadline = INTERVAL.as_secs_f64() * f64::from(FALL) + 1.0;
    let removing = "Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80";
    let adding = "Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80";

    let (stream, t_stop, t_gone, t_start, detect, recover) = std::thread::scope(|sc| {
        // A request every 20 ms (a fresh connection each) for the whole test.
        let stream = sc.spawn(|| lab.http_stream(&format!("http://{VIP}/"), 9.0, 0.02, 1.0));
        std::thread::sleep(Duration::from_millis(1500));
        let t_stop = unix_now();
        let stopped = Instant::now();
        lab.stop_server("r2", "http", 80);
        // The server answers until it has shut down (up to its 0.2 s poll).
        let t_gone = unix_now();
        let down = xvs.wait_log(removing, 0, Duration::from_secs(5));
        let detect = down.map(|t| t - stopped);
        std::thread::sleep(Duration::from_millis(3500).saturating_sub(stopped.elapsed()));
        let t_start = unix_now();
        let started = Instant::now();
        lab.start_server("r2", "http", 80, "r2");
        let up = xvs.wait_log(adding, 0, Duration::from_secs(5));
        let recover = up.map(|t| t - started);
        (
            stream.join().unwrap(),
            t_stop,
            t_gone,
            t_start,
            detect,
            recover,
        )
    });
    let log = xvs.log();
    let detect = detect.unwrap_or_else(|| panic!("r2 was never taken out:\n{log}"));
    let recover = recover.unwrap_or_else(|| panic!("r2 never came back:\n{log}"));
    assert!(
        log.contains("Error connecting server [198.18.1.12]:tcp:80.")
            || log.contains("Timeout WEB read server [198.18.1.12]:tcp:80.")
            || log.contains("Read, no data received from server [198.18.1.12]:tcp:80."),
        "no probe failure logged:\n{log}"
    );
    assert!(log.contains(&format!(
        "Check on service [198.18.1.12]:tcp:80 failed after {} retry.",
        FALL - 1
    )));
    assert!(log.contains("HTTP status code success to [198.18.1.12]:tcp:80 url(/)"));

    let mut before = (0, 0);
    let mut window_failures = 0;
    let mut last_failure = None;
    let mut r2_after_start = 0;
    for (t, who) in &stream.trace {
        let (t, who) = (*t, who.as_deref());
        if t < t_stop {
            assert!(
                who.is_some(),
                "a request failed before r2 was stopped: {stream:?}"
            );
            match who {
                Some("r1") => before.0 += 1,
                Some("r2") => before.1 += 1,
                _ => {}
            }
        } else if t < t_stop + deadline {
            if who.is_none() {
                window_failures += 1;
                last_failure = Some(t - t_stop);
            }
            assert!(
                who != Some("r2") || t < t_gone,
                "r2 answered a request {:.3} s after it was stopped",
                t - t_gone
            );
        } else if t < t_start {
            assert_eq!(
                who,
                Some("r1"),
                "{:.3} s after the stop (deadline {deadline} s), a request went elsewhere than r1",
                t - t_stop
            );
        } else {
            assert!(
                who.is_some(),
                "a request failed {:.3} s after r2 restarted\n{log}",
                t - t_start
            );
            if who == Some("r2") {
                r2_after_start += 1;
            }
        }
    }
    assert!(
        before.0 > 10 && before.1 > 10,
        "both servers before the stop: {before:?}"
    );
    assert!(
        detect.as_secs_f64() < deadline,
        "r2 taken out {detect:?} after its server stopped (deadline {deadline} s)"
    );
    assert!(
        r2_after_start > 10,
        "r2 gets traffic again after rise checks: {r2_after_start} requests\n{log}"
    );
    assert!(
        recover < Duration::from_secs(2),
        "r2 back {recover:?} after its server started (rise {RISE} × {INTERVAL:?})"
    );
    eprintln!(
        "health e2e: {} requests ({} before the stop: r1 {}, r2 {}); r2 out {:.0} ms after its HTTP server stopped (deadline {:.0} ms); {} requests failed in that window, the last started {:.0} ms after the stop; r2 back {:.0} ms after its server started, then {} requests to it",
        stream.trace.len(),
        before.0 + before.1,
        before.0,
        before.1,
        detect.as_secs_f64() * 1000.0,
        deadline * 1000.0,
        window_failures,
        last_failure.unwrap_or(0.0) * 1000.0,
        recover.as_secs_f64() * 1000.0,
        r2_after_start
    );

    for l in log.lines().filter(|l| l.contains("[198.18.1.12]:tcp:80")) {
        eprintln!("  xvs: {l}");
    }

    // The UDP check keeps the DNS servers up, and the metrics tell the story.
    let s = lab.udp_client(&format!("{VIP}:53"), 20);
    assert_eq!(s.ok, 20, "{:?}", s.errors);
    let m = lab.metrics();
    for real in ["198.18.1.11:80", "198.18.1.12:80"] {
        assert_eq!(
            metric(&m, &format!("xvs_real_up{{service=\"web\",vip=\"{VIP}\",port=\"80\",proto=\"tcp\",real=\"{real}\"}}")),
            1.0
        );
    }
    for real in ["198.18.1.11:5353", "198.18.1.12:5353"] {
        assert_eq!(
            metric(&m, &format!("xvs_real_up{{service=\"dns\",vip=\"{VIP}\",port=\"53\",proto=\"udp\",real=\"{real}\"}}")),
            1.0
        );
        assert!(
            metric(
                &m,
                &format!(
                    "xvs_health_checks_total{{service=\"dns\",real=\"{real}\",result=\"success\"}}"
                )
            ) > 0.0
        );
    }
    assert!(
        metric(
            &m,
            "xvs_health_checks_total{service=\"web\",real=\"198.18.1.12:80\",result=\"failure\"}"
        ) >= f64::from(FALL)
    );
    assert!(metric(&m, "xvs_health_check_duration_seconds_count{type=\"http\"}") > 10.0);
}

/// The services of the `on_failure` test: the same two real servers behind port 80
/// (`on_failure: remove`) and port 81 (`drain`), checked by an exec check reading [`Flags`].
fn exec_services(flags: &Flags) -> String {
    let mut out = String::new();
    for (name, port, on_failure) in [("web-remove", 80, "remove"), ("web-drain", 81, "drain")] {
        out.push_str(&format!(
            "  - name: {name}
    vip: {VIP}
    port: {port}
    scheduler: rr
    on_failure: {on_failure}
    health_check:
      type: exec
      interval: 200ms
      timeout: 200ms
      rise: 2
      fall: 2
      exec: {{ command: \"{cmd}\" }}
    reals:
      - address: 198.18.1.11:80
      - address: 198.18.1.12:80
",
            cmd = flags.command()
        ));
    }
    out
}

/// Opens two idle connections to each of VIP:80 and VIP:81 from the client, and sends their
/// requests when told to (a line on stdin). Prints the local ports first, then per connection
/// `[port, local port, answering server or null]`.
const HOLD: &str = r#"
import json, socket, sys
conns = []
for port in (80, 80, 81, 81):
    s = socket.create_connection(("198.18.0.100", port), timeout=3)
    conns.append((port, s))
print(json.dumps([[p, s.getsockname()[1]] for p, s in conns]), flush=True)
sys.stdin.readline()
out = []
for port, s in conns:
    who = None
    try:
        s.settimeout(1.5)
        s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        if b"\r\n\r\n" in data:
            who = data.split(b"\r\n\r\n", 1)[1].decode().strip() or None
    except OSError:
        pass
    out.append([port, s.getsockname()[1], who])
print(json.dumps(out), flush=True)
"#;

#[test]
fn on_failure_remove_ends_the_down_servers_connections_and_drain_keeps_them() {
    let lab = Lab::new();
    lab.serve();
    let flags = Flags::new(&lab);
    let xvs = start(&lab, &exec_services(&flags));
    let mut hold = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "python3", "-c", HOLD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(hold.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let opened: Vec<(u16, u16)> = serde_json::from_str(&line).expect("ports");
    assert_eq!(opened.len(), 4, "{line}");
    // Which real server each connection went to (rr: one of each per service).
    let conns = Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "conns", "--json", "--socket"])
        .arg(lab.admin_socket("lb"))
        .output()
        .unwrap();
    let conns: serde_json::Value = serde_json::from_slice(&conns.stdout)
        .unwrap_or_else(|e| panic!("ctl conns: {e}: {}", String::from_utf8_lossy(&conns.stderr)));
    let real_of = |local: u16| -> String {
        conns["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["client"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&format!(":{local}")))
            })
            .unwrap_or_else(|| panic!("connection from port {local} not tracked: {conns}"))["real"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for port in [80, 81] {
        let mut reals: Vec<String> = opened
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, l)| real_of(*l))
            .collect();
        reals.sort();
        assert_eq!(reals, ["198.18.1.11:80", "198.18.1.12:80"], "port {port}");
    }

    flags.down("198.18.1.12");
    let remove = "Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80";
    // `Removed N connections of …`: the held one, and any closed one still tracked.
    let removed = "of service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80";
    let disable = "Disabling service [198.18.1.12]:tcp:80 of VS [198.18.0.100]:tcp:81";
    for l in [remove, removed, disable] {
        assert!(
            xvs.wait_log(l, 0, Duration::from_secs(5)).is_some(),
            "no `{l}` in\n{}",
            xvs.log()
        );
    }
    assert!(xvs.log().contains(
        "Misc check for [[198.18.1.12]:tcp:80 VS [198.18.0.100]:tcp:80] by [test] failed (exited with status 1)."
    ));
    hold.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = hold.wait();
    let answers: Vec<(u16, u16, Option<String>)> = serde_json::from_str(&line).expect("answers");
    for (port, local, who) in &answers {
        let real = real_of(*local);
        let want = match (port, real.as_str()) {
            (80, "198.18.1.12:80") => None,
            (_, r) => Some(if r == "198.18.1.11:80" { "r1" } else { "r2" }),
        };
        assert_eq!(
            who.as_deref(),
            want,
            "port {port}, connection to {real}: remove ends it, drain keeps it\n{}",
            xvs.log()
        );
    }
    // New connections avoid r2 on both services.
    for port in [80, 81] {
        let s = lab.http_client_url(&format!("http://{VIP}:{port}/"), 10, 2.0);
        assert_eq!((s.ok, s.count("r1")), (10, 10), "port {port}: {:?}", s);
    }
    flags.up("198.18.1.12");
    assert!(xvs
        .wait_log(
            "Enabling service [198.18.1.12]:tcp:80 of VS [198.18.0.100]:tcp:81",
            0,
            Duration::from_secs(5)
        )
        .is_some());
    assert!(xvs
        .wait_log(
            "Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80",
            0,
            Duration::from_secs(5)
        )
        .is_some());
    let s = lab.http_client_url(&format!("http://{VIP}:81/"), 10, 2.0);
    assert_eq!((s.ok, s.count("r2")), (10, 5), "{s:?}");
}

#[test]
fn the_sorry_server_takes_new_flows_while_quorum_is_lost_and_when_both_reals_are_down() {
    let lab = Lab::new();
    lab.serve();
    lab.start_server("r1", "http", 8080, "sorry");
    let flags = Flags::new(&lab);
    let xvs = start(
        &lab,
        &format!(
            "  - name: web
    vip: {VIP}
    port: 80
    scheduler: rr
    sorry_server: 198.18.1.11:8080
    quorum: {{ min_up: 2, hysteresis: 0 }}
    health_check:
      type: exec
      interval: 200ms
      timeout: 200ms
      rise: 2
      fall: 2
      exec: {{ command: \"{}\" }}
    reals:
      - address: 198.18.1.11:80
      - address: 198.18.1.12:80
",
            flags.command()
        ),
    );
    let url = format!("http://{VIP}/");
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.count("r1"), s.count("r2")), (10, 10), "{s:?}");

    // One server down: 1 < min_up 2, quorum lost, the sorry server takes every new flow.
    flags.down("198.18.1.12");
    for l in [
        "Lost quorum 2-0=2 > 1 for VS [198.18.0.100]:tcp:80",
        "Adding sorry server [198.18.1.11]:tcp:8080 to VS [198.18.0.100]:tcp:80",
    ] {
        assert!(
            xvs.wait_log(l, 0, Duration::from_secs(5)).is_some(),
            "no `{l}` in\n{}",
            xvs.log()
        );
    }
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.ok, s.count("sorry")), (20, 20), "{s:?}\n{}", xvs.log());
    let list = Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "list", "--socket"])
        .arg(lab.admin_socket("lb"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("  -> 198.18.1.11:8080             Masq    1 "),
        "{list}"
    );
    assert!(
        list.contains("  -> 198.18.1.12:80               Masq    0 "),
        "{list}"
    );

    // Both down: still the sorry server.
    flags.down("198.18.1.11");
    assert!(xvs
        .wait_log(
            "Removing service [198.18.1.11]:tcp:80 from VS [198.18.0.100]:tcp:80",
            0,
            Duration::from_secs(5)
        )
        .is_some());
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.ok, s.count("sorry")), (20, 20), "{s:?}");
    // A reload keeps the servers' and the service's state: still down, still the sorry server.
    xvs.signal("HUP");
    assert!(xvs
        .wait_log("Configuration reloaded", 0, Duration::from_secs(5))
        .is_some());
    let s = lab.http_client_url(&url, 10, 2.0);
    assert_eq!((s.ok, s.count("sorry")), (10, 10), "after a reload: {s:?}");
    assert!(!xvs.log().contains("Adding service"), "{}", xvs.log());
    let m = lab.metrics();
    assert_eq!(
        metric(
            &m,
            &format!(
                "xvs_service_quorum_up{{service=\"web\",vip=\"{VIP}\",port=\"80\",proto=\"tcp\"}}"
            )
        ),
        0.0
    );
    assert!(
        metric(
            &m,
            &format!("xvs_sorry_server_connections_total{{service=\"web\",vip=\"{VIP}\",port=\"80\",proto=\"tcp\",real=\"198.18.1.11:8080\"}}")
        ) >= 50.0
    );

    // Both back: quorum gained at 2, the sorry server leaves.
    flags.up("198.18.1.11");
    flags.up("198.18.1.12");
    for l in [
        "Gained quorum 2+0=2 <= 2 for VS [198.18.0.100]:tcp:80",
        "Removing sorry server [198.18.1.11]:tcp:8080 from VS [198.18.0.100]:tcp:80",
    ] {
        assert!(
            xvs.wait_log(l, 0, Duration::from_secs(5)).is_some(),
            "no `{l}` in\n{}",
            xvs.log()
        );
    }
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.count("r1"), s.count("r2")), (10, 10), "{s:?}");
}
