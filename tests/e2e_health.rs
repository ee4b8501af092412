//! End to end, health checks: xvs in the NAT lab checks its real servers and takes a failed one
//! out of (and back into) rotation, applies `on_failure`, and falls back to a sorry server.
//!
//! Each test builds its own lab (unique namespace prefix, deleted on drop, pass or fail), writes
//! its own config next to the test's log (`poll: wakeup`: busy polling would starve the test's
//! client and servers on a 2-core machine), and fails when the lab cannot be built.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/health.rs"]
mod health;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{metric, unix_now, Lab, VIP};
use health::{split, PortGate, FALL, INTERVAL, MARGIN, RISE, TIMEOUT};

/// The VIP's HTTP service.
fn url() -> String {
    format!("http://{VIP}/")
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
fn http_check_takes_a_stopped_server_out_within_fall_intervals_and_timeout_and_back_within_rise_intervals(
) {
    let lab = Lab::new();
    lab.serve();
    let xvs = health::start(
        &lab,
        &format!(
            "  - name: web
    vip: {VIP}
    port: 80
    scheduler: rr
    health_check:
      type: http
      interval: {interval}ms
      timeout: {timeout}ms
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
            interval = INTERVAL.as_millis(),
            timeout = TIMEOUT.as_millis(),
        ),
        &url(),
    );
    // See MARGIN for both bounds.
    let down_bound = INTERVAL * FALL + TIMEOUT + MARGIN;
    let up_bound = INTERVAL * RISE + MARGIN;
    let deadline = down_bound.as_secs_f64();
    let removing = "Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80";
    let adding = "Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80";
    let mut gate = PortGate::new(&lab, "r2", 80);
    let every = Duration::from_millis(1);

    let (stream, t_stop, t_refusing, t_start, detect, recover) = std::thread::scope(|sc| {
        // A request every 20 ms (a fresh connection each) for the whole test.
        let stream = sc.spawn(|| lab.http_stream(&format!("http://{VIP}/"), 9.0, 0.02, 1.0));
        std::thread::sleep(Duration::from_millis(1500));
        // r2 stops answering: its port refuses new connections from this moment (requests in
        // progress finish), then its server is stopped for good.
        let t_stop = unix_now();
        let stopped = gate.close();
        let t_refusing = unix_now();
        let down = xvs.wait_log_every(removing, 0, Duration::from_secs(5), every);
        let detect = down.map(|t| t - stopped);
        lab.stop_server("r2", "http", 80);
        std::thread::sleep(Duration::from_millis(3500).saturating_sub(stopped.elapsed()));
        // r2 starts: a new server, answering from the moment its port stops refusing (so the
        // Python start-up is not counted as xvs's recovery time).
        lab.start_server("r2", "http", 80, "r2");
        let t_start = unix_now();
        let started = gate.open();
        let up = xvs.wait_log_every(adding, 0, Duration::from_secs(5), every);
        let recover = up.map(|t| t - started);
        (
            stream.join().unwrap(),
            t_stop,
            t_refusing,
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

    let s = split(&stream.trace, [t_stop, t_refusing, t_start], deadline, &log);
    eprintln!(
        "health e2e: {} requests ({} before the stop: r1 {}, r2 {}); r2 out {:.0} ms after its HTTP server stopped answering (bound {:.0} ms = fall {FALL} × {INTERVAL:?} + timeout {TIMEOUT:?} + {MARGIN:?}); {} requests failed in that window, the last started {:.0} ms after the stop; r2 back {:.0} ms after its server answered again (bound {:.0} ms = rise {RISE} × {INTERVAL:?} + {MARGIN:?}), then {} requests to it",
        stream.trace.len(),
        s.before.0 + s.before.1,
        s.before.0,
        s.before.1,
        detect.as_secs_f64() * 1000.0,
        down_bound.as_secs_f64() * 1000.0,
        s.window_failures,
        s.last_failure.unwrap_or(0.0) * 1000.0,
        recover.as_secs_f64() * 1000.0,
        up_bound.as_secs_f64() * 1000.0,
        s.r2_after_start
    );
    assert!(
        s.before.0 > 10 && s.before.1 > 10,
        "both servers before the stop: {:?}",
        s.before
    );
    assert!(
        detect <= down_bound,
        "r2 taken out {detect:?} after its server stopped answering (bound {down_bound:?})\n{log}"
    );
    assert!(
        s.r2_after_start > 10,
        "r2 gets traffic again after rise checks: {} requests\n{log}",
        s.r2_after_start
    );
    assert!(
        recover <= up_bound,
        "r2 back {recover:?} after its server answered again (bound {up_bound:?})\n{log}"
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
    let xvs = health::start(&lab, &exec_services(&flags), &url());
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
    // rr alternates: 5 of 10 each. One either way is allowed: the exec checks run with a 200 ms
    // timeout, and on a loaded CI machine checks may time out and take a server out for a
    // moment, moving a request (a CI run once saw 4/6 with every request answered).
    let s = lab.http_client_url(&format!("http://{VIP}:81/"), 10, 2.0);
    let (r1, r2) = (s.count("r1"), s.count("r2"));
    assert!(
        s.ok == 10 && r1 + r2 == 10 && (4..=6).contains(&r2),
        "{s:?}\n{}",
        xvs.log()
    );
}

#[test]
fn the_sorry_server_takes_new_flows_while_quorum_is_lost_and_when_both_reals_are_down() {
    let lab = Lab::new();
    lab.serve();
    lab.start_server("r1", "http", 8080, "sorry");
    let flags = Flags::new(&lab);
    let xvs = health::start(
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
        &url(),
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
