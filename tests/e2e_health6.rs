//! End to end, health checks over IPv6 (issue 19): xvs in the NAT lab checks IPv6 real servers
//! (`[2001:2:0:1::11]:80`, `[2001:2:0:1::12]:80`, the lab's IPv6 plan) with every check type,
//! takes a failed one out of (and back into) rotation of an IPv6 service, and falls back to an
//! IPv6 sorry server when every IPv6 real server is down.
//!
//! Each test builds its own lab (unique namespace prefix, deleted on drop, pass or fail), writes
//! its own config into the lab's state directory (`poll: wakeup`), and fails when the lab cannot
//! be built. The timing bounds and their margin are those of `tests/e2e_health.rs` (IPv4),
//! whose way of measuring this file follows: an nft rule in r2 ([`PortGate`]) makes the outage
//! start and end at known moments, and the bounds come from the checker's worst case.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/health.rs"]
mod health;

use std::time::{Duration, Instant};

use common::{metric, unix_now, Lab, Xvs, CLIENT6, VIP6};
use health::{split, PortGate, FALL, INTERVAL, MARGIN, RISE, TIMEOUT};

/// The IPv6 real servers of the nat topology.
const R1: &str = "2001:2:0:1::11";
const R2: &str = "2001:2:0:1::12";

fn url6(addr: &str, port: u16) -> String {
    format!("http://[{addr}]:{port}/")
}

fn wait_logged(xvs: &Xvs, lines: &[&str], limit: Duration) {
    for l in lines {
        assert!(
            xvs.wait_log(l, 0, limit).is_some(),
            "no `{l}` in\n{}",
            xvs.log()
        );
    }
}

/// The services of the detection test: `web6` (VIP6:80, the HTTP check under test), `web6-tcp`
/// (VIP6:81 to the same servers, a TCP check) and `dns6` (VIP6:53 to their UDP :5353, a UDP
/// check).
fn detection_services() -> String {
    format!(
        "  - name: web6
    vip: \"{VIP6}\"
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
      - address: \"[{R1}]:80\"
      - address: \"[{R2}]:80\"
  - name: web6-tcp
    vip: \"{VIP6}\"
    port: 81
    scheduler: rr
    health_check: {{ type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2 }}
    reals:
      - address: \"[{R1}]:80\"
      - address: \"[{R2}]:80\"
  - name: dns6
    vip: \"{VIP6}\"
    port: 53
    protocol: udp
    scheduler: rr
    health_check: {{ type: udp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2 }}
    reals:
      - address: \"[{R1}]:5353\"
      - address: \"[{R2}]:5353\"
",
        interval = INTERVAL.as_millis(),
        timeout = TIMEOUT.as_millis(),
    )
}

/// An IPv6 NAT service with an HTTP check: r2's HTTP server stops answering (its port refuses
/// new connections, then the server is stopped): within fall × interval + timeout (+ margin,
/// well inside interval × fall + 1 s) r2 is out and no new IPv6 request goes to it; its server
/// starts again: after rise checks r2 is back and takes new requests. Meanwhile the TCP check
/// of a second IPv6 service sees the same outage, and the UDP check keeps the UDP6 servers up.
#[test]
fn http6_check_takes_a_stopped_ipv6_server_out_within_fall_intervals_and_back_after_rise_checks() {
    let lab = Lab::new();
    lab.serve();
    let xvs = health::start(&lab, &detection_services(), &url6(VIP6, 80));
    let down_bound = INTERVAL * FALL + TIMEOUT + MARGIN;
    let up_bound = INTERVAL * RISE + MARGIN;
    let task_bound = INTERVAL * FALL + Duration::from_secs(1);
    let removing = format!("Removing service [{R2}]:tcp:80 from VS [{VIP6}]:tcp:80");
    let adding = format!("Adding service [{R2}]:tcp:80 to VS [{VIP6}]:tcp:80");
    let mut gate = PortGate::new(&lab, "r2", 80);
    let every = Duration::from_millis(1);

    let (stream, t, detect, recover) = std::thread::scope(|sc| {
        // A request every 20 ms to the VIP6 (a fresh connection each) for the whole test.
        let stream = sc.spawn(|| lab.http_stream(&url6(VIP6, 80), 9.0, 0.02, 1.0));
        std::thread::sleep(Duration::from_millis(1500));
        let t_stop = unix_now();
        let stopped = gate.close();
        let t_refusing = unix_now();
        let down = xvs.wait_log_every(&removing, 0, Duration::from_secs(5), every);
        let detect = down.map(|t| t - stopped);
        lab.stop_server("r2", "http", 80);
        std::thread::sleep(Duration::from_millis(3500).saturating_sub(stopped.elapsed()));
        lab.start_server("r2", "http", 80, "r2");
        let t_start = unix_now();
        let started = gate.open();
        let up = xvs.wait_log_every(&adding, 0, Duration::from_secs(5), every);
        let recover = up.map(|t| t - started);
        (
            stream.join().unwrap(),
            [t_stop, t_refusing, t_start],
            detect,
            recover,
        )
    });
    let log = xvs.log();
    let detect = detect.unwrap_or_else(|| panic!("r2 was never taken out:\n{log}"));
    let recover = recover.unwrap_or_else(|| panic!("r2 never came back:\n{log}"));
    for l in [
        format!(
            "Check on service [{R2}]:tcp:80 failed after {} retry.",
            FALL - 1
        ),
        format!("HTTP status code success to [{R2}]:tcp:80 url(/)"),
    ] {
        assert!(log.contains(&l), "no `{l}` in\n{log}");
    }
    let s = split(&stream.trace, t, down_bound.as_secs_f64(), &log);
    eprintln!(
        "health6 e2e: {} IPv6 requests ({} before the stop: r1 {}, r2 {}); r2 out {:.0} ms after its HTTP server stopped answering (bound {:.0} ms = fall {FALL} × {INTERVAL:?} + timeout {TIMEOUT:?} + {MARGIN:?}; the issue's interval × fall + 1 s = {:.0} ms); last request r2 answered after the stop: {}; {} requests failed in the window, the last started {:.0} ms after the stop; {} requests to r1 only until the restart; r2 back {:.0} ms after its server answered again (bound {:.0} ms = rise {RISE} × {INTERVAL:?} + {MARGIN:?}), then {} requests to it",
        stream.trace.len(),
        s.before.0 + s.before.1,
        s.before.0,
        s.before.1,
        detect.as_secs_f64() * 1000.0,
        down_bound.as_secs_f64() * 1000.0,
        task_bound.as_secs_f64() * 1000.0,
        s.last_r2.map_or("none".to_string(), |t| format!(
            "started {:.0} ms after it",
            t * 1000.0
        )),
        s.window_failures,
        s.last_failure.unwrap_or(0.0) * 1000.0,
        s.r1_only,
        recover.as_secs_f64() * 1000.0,
        up_bound.as_secs_f64() * 1000.0,
        s.r2_after_start
    );
    assert!(down_bound < task_bound);
    assert!(
        s.before.0 > 10 && s.before.1 > 10,
        "both servers before the stop: {:?}",
        s.before
    );
    assert!(
        s.r1_only > 10,
        "requests between detection and restart: {s:?}"
    );
    assert!(
        detect <= down_bound,
        "r2 taken out {detect:?} after its server stopped answering (bound {down_bound:?})\n{log}"
    );
    assert!(
        s.r2_after_start > 10,
        "r2 gets IPv6 traffic again after rise checks: {s:?}\n{log}"
    );
    assert!(
        recover <= up_bound,
        "r2 back {recover:?} after its server answered again (bound {up_bound:?})\n{log}"
    );
    for l in log
        .lines()
        .filter(|l| l.contains(&format!("[{R2}]:tcp:80")))
    {
        eprintln!("  xvs: {l}");
    }
    // The TCP check of VIP6:81 saw the same outage of [r2]:80 and its end.
    wait_logged(
        &xvs,
        &[
            &format!("TCP connection to [{R2}]:tcp:80 failed."),
            &format!("Removing service [{R2}]:tcp:80 from VS [{VIP6}]:tcp:81"),
            &format!("Adding service [{R2}]:tcp:80 to VS [{VIP6}]:tcp:81"),
        ],
        Duration::from_secs(5),
    );
    // The log line comes when the control plane re-adds r2; the workers take the new
    // snapshot at their next batch: wait (bounded) until one request reaches r2, then rr
    // alternates exactly.
    let back = (0..50).any(|_| lab.http_client_url(&url6(VIP6, 81), 1, 2.0).count("r2") == 1);
    assert!(back, "r2 never answered on VIP6:81 after it was re-added");
    let s = lab.http_client_url(&url6(VIP6, 81), 20, 2.0);
    assert_eq!((s.count("r1"), s.count("r2")), (10, 10), "{s:?}");
    after_the_outage(&lab);
}

/// After the detection test: every IPv6 real server is up, and the UDP6 service answered
/// throughout (its check kept both up).
fn after_the_outage(lab: &Lab) {
    let s = lab.udp_client(&format!("[{VIP6}]:53"), 20);
    assert_eq!((s.ok, s.count("r1"), s.count("r2")), (20, 10, 10), "{s:?}");
    let m = lab.metrics();
    let vs = format!("vip=\"{VIP6}\"");
    for (service, port, proto, real_port) in [
        ("web6", 80, "tcp", 80),
        ("web6-tcp", 81, "tcp", 80),
        ("dns6", 53, "udp", 5353),
    ] {
        for r in [R1, R2] {
            let real = format!("[{r}]:{real_port}");
            assert_eq!(
                metric(
                    &m,
                    &format!("xvs_real_up{{service=\"{service}\",{vs},port=\"{port}\",proto=\"{proto}\",real=\"{real}\"}}")
                ),
                1.0,
                "{service} {real}"
            );
            assert!(
                metric(
                    &m,
                    &format!("xvs_health_checks_total{{service=\"{service}\",real=\"{real}\",result=\"success\"}}")
                ) > 0.0,
                "{service} {real}"
            );
        }
    }
    assert!(
        metric(
            &m,
            &format!(
                "xvs_health_checks_total{{service=\"web6\",real=\"[{R2}]:80\",result=\"failure\"}}"
            )
        ) >= f64::from(FALL)
    );
    for kind in ["http", "tcp", "udp"] {
        assert!(
            metric(
                &m,
                &format!("xvs_health_check_duration_seconds_count{{type=\"{kind}\"}}")
            ) > 5.0,
            "{kind}"
        );
    }
}

/// Makes `role` drop (or, with `false`, again answer) ICMPv6 echo requests: its IPv6 address no
/// longer answers `ping -6`, everything else keeps working.
fn block_ping6(lab: &Lab, role: &str, block: bool) {
    let cmd = if block {
        "add table inet xvs_test_ping\n\
         add chain inet xvs_test_ping input { type filter hook input priority 0 ; }\n\
         add rule inet xvs_test_ping input icmpv6 type echo-request drop\n"
    } else {
        "delete table inet xvs_test_ping\n"
    };
    lab.exec_ok(role, &["nft", cmd]);
}

/// An IPv6 service whose real servers are checked by an exec check with `%ADDR%`
/// (`ping -6 -c1 -W1 %ADDR%`: it passes only when the command gets the bare IPv6 address):
/// both up while they answer ping6; when neither does, both go down, the quorum is lost and the
/// IPv6 sorry server (`[2001:2:0:1::11]:8080`) takes every new flow; when they answer again they
/// are back and the sorry server leaves.
#[test]
fn exec6_check_with_addr_and_the_ipv6_sorry_server_takes_new_flows_when_every_real_is_down() {
    let lab = Lab::new();
    lab.serve();
    lab.start_server("r1", "http", 8080, "sorry");
    let xvs = health::start(
        &lab,
        &format!(
            "  - name: web6
    vip: \"{VIP6}\"
    port: 80
    scheduler: rr
    sorry_server: \"[{R1}]:8080\"
    health_check:
      type: exec
      interval: 500ms
      timeout: 500ms
      rise: 2
      fall: 2
      exec: {{ command: \"ping -6 -c1 -W1 %ADDR%\" }}
    reals:
      - address: \"[{R1}]:80\"
      - address: \"[{R2}]:80\"
"
        ),
        &url6(VIP6, 80),
    );
    let url = url6(VIP6, 80);
    // Give the checks time for a few runs: a wrong %ADDR% would have taken both down by now.
    std::thread::sleep(Duration::from_millis(1500));
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!(
        (s.count("r1"), s.count("r2")),
        (10, 10),
        "{s:?}\n{}",
        xvs.log()
    );
    assert!(!xvs.log().contains("Misc check"), "{}", xvs.log());

    let t0 = Instant::now();
    block_ping6(&lab, "r1", true);
    block_ping6(&lab, "r2", true);
    let vs = format!("[{VIP6}]:tcp:80");
    wait_logged(
        &xvs,
        &[
            &format!("Removing service [{R1}]:tcp:80 from VS {vs}"),
            &format!("Removing service [{R2}]:tcp:80 from VS {vs}"),
            &format!("Lost quorum 1-0=1 > 0 for VS {vs}"),
            &format!("Adding sorry server [{R1}]:tcp:8080 to VS {vs}"),
        ],
        Duration::from_secs(5),
    );
    eprintln!(
        "health6 e2e: both IPv6 reals down and the sorry server in {:.0} ms after ping6 stopped",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let log = xvs.log();
    let misc = format!("Misc check for [[{R2}]:tcp:80 VS {vs}] by [ping] ");
    assert!(
        log.contains(&format!("{misc}timed out."))
            || log.contains(&format!("{misc}failed (exited with status 1).")),
        "{log}"
    );
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.ok, s.count("sorry")), (20, 20), "{s:?}\n{log}");
    let peers = lab.peers("r1", "http", 8080);
    assert!(
        peers.len() >= 20 && peers.iter().all(|p| p.ip().to_string() == CLIENT6),
        "the sorry server saw {peers:?}"
    );
    let m = lab.metrics();
    assert_eq!(
        metric(
            &m,
            &format!(
                "xvs_service_quorum_up{{service=\"web6\",vip=\"{VIP6}\",port=\"80\",proto=\"tcp\"}}"
            )
        ),
        0.0
    );
    assert!(
        metric(
            &m,
            &format!("xvs_sorry_server_connections_total{{service=\"web6\",vip=\"{VIP6}\",port=\"80\",proto=\"tcp\",real=\"[{R1}]:8080\"}}")
        ) >= 20.0
    );

    block_ping6(&lab, "r1", false);
    block_ping6(&lab, "r2", false);
    wait_logged(
        &xvs,
        &[
            &format!("Misc check for [[{R1}]:tcp:80 VS {vs}] by [ping] succeeded."),
            &format!("Adding service [{R1}]:tcp:80 to VS {vs}"),
            &format!("Gained quorum 1+0=1 <= 1 for VS {vs}"),
            &format!("Removing sorry server [{R1}]:tcp:8080 from VS {vs}"),
            &format!("Adding service [{R2}]:tcp:80 to VS {vs}"),
        ],
        Duration::from_secs(5),
    );
    let s = lab.http_client_url(&url, 20, 2.0);
    assert_eq!((s.count("r1"), s.count("r2")), (10, 10), "{s:?}");
    xvs.stop_cleanly();
}
