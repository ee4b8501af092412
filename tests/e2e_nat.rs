//! End to end, NAT mode: a client in one namespace reaches the VIP through xvs running on AF_XDP
//! in the load balancer's namespace, and real HTTP/UDP servers answer from two more namespaces.
//!
//! Each test builds its own lab (unique namespace prefix, deleted on drop, pass or fail) and runs
//! the shipped `config/nat.yaml` with `poll: wakeup` (busy polling would starve the test's own
//! client and servers on a 2-core machine). A lab that cannot be built fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::time::Duration;

use common::{Lab, Xvs, VIP};

/// Lab up, servers started, xvs running and answering on VIP:80.
fn start() -> (Lab, Xvs) {
    let lab = Lab::new();
    lab.serve();
    let mut xvs = lab.start_xvs(&lab.example_config("nat.yaml"));
    let ready = lab.wait_http_ready(Duration::from_secs(20));
    assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
    assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
    (lab, xvs)
}

fn stop_cleanly(xvs: Xvs, lab: &Lab) {
    xvs.stop_cleanly();
    let links = lab.exec_ok("lb", &["ip", "-d", "link", "show"]);
    assert!(
        !links.contains("prog/xdp"),
        "an XDP program is still attached after a clean stop:\n{links}"
    );
}

#[test]
fn http_500_fresh_connections_split_3_to_1() {
    let (lab, xvs) = start();
    let s = lab.http_client(500);
    assert_eq!(
        s.failed,
        0,
        "failed requests: {:?}\n{}",
        s.errors,
        xvs.log()
    );
    assert_eq!(s.ok, 500);
    let (r1, r2) = (s.count("r1"), s.count("r2"));
    assert_eq!(
        r1 + r2,
        500,
        "answers from unknown servers: {:?}",
        s.by_server
    );
    // wrr is deterministic: with weights 3:1 IPVS's wrr picks r1, r1, r1, r2 over and over, and
    // the lab has one queue, so one worker and one scheduler see every new flow. Any 500
    // consecutive picks are 125 whole cycles, 375/125, whatever the readiness probes before
    // them consumed; ±2 leaves room for a stray extra flow (none expected).
    eprintln!("http 500: r1 {r1}, r2 {r2}");
    assert!(
        r1.abs_diff(375) <= 2 && r2.abs_diff(125) <= 2,
        "wrr 3:1 over 500 new connections gave r1 {r1}, r2 {r2} (want 375/125 ± 2)"
    );
    stop_cleanly(xvs, &lab);
}

#[test]
fn udp_service_request_response() {
    let (lab, xvs) = start();
    let s = lab.udp_client(&format!("{VIP}:53"), 200);
    assert_eq!(
        s.failed,
        0,
        "failed datagrams: {:?}\n{}",
        s.errors,
        xvs.log()
    );
    assert_eq!(s.ok, 200);
    assert!(
        s.count("r1") > 0 && s.count("r2") > 0,
        "rr must use both servers: {:?}",
        s.by_server
    );
    stop_cleanly(xvs, &lab);
}

#[test]
fn fragmented_udp_datagrams_cross_in_both_directions() {
    let (lab, xvs) = start();
    // 4000-byte datagrams on 1500-byte links: the client's kernel sends three fragments, xvs
    // forwards the first by its ports and the others by the remembered translation, r1/r2
    // reassemble and answer with a fragmented echo that comes back the same way.
    let s = lab.udp_client_sized(&format!("{VIP}:53"), 20, 4000);
    assert_eq!(s.failed, 0, "{:?}\n{}", s.errors, xvs.log());
    assert_eq!(
        (s.count("r1"), s.count("r2")),
        (10, 10),
        "{:?}",
        s.by_server
    );
    stop_cleanly(xvs, &lab);
}

#[test]
fn the_box_still_answers_ping_arp_and_kernel_tcp() {
    let (lab, xvs) = start();
    // ARP: forget the box's MAC, then ping makes the client ARP for it again.
    lab.exec_ok("client", &["ip", "neigh", "flush", "dev", "eth0"]);
    for addr in ["198.18.0.1", VIP] {
        lab.exec_ok("client", &["ping", "-c", "3", "-i", "0.2", "-W", "1", addr]);
    }
    let lb_mac = lab
        .exec_ok("lb", &["cat", "/sys/class/net/wan0/address"])
        .trim()
        .to_string();
    let neigh = lab.exec_ok("client", &["ip", "neigh", "show", "198.18.0.1"]);
    assert!(
        neigh.contains(&lb_mac),
        "ARP for the box's own address went unanswered: {neigh:?} (want {lb_mac})"
    );
    let neigh = lab.exec_ok("client", &["ip", "neigh", "show", VIP]);
    assert!(
        neigh.contains(&lb_mac),
        "ARP for the VIP went unanswered: {neigh:?}"
    );
    // TCP to a non-VIP address of the box reaches the kernel's socket.
    let listener = format!(
        "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
         s.bind(('198.18.0.1',2222));s.listen(1);s.settimeout(10);c,_=s.accept();c.sendall(b'kernel-{}');c.close()",
        lab.tag
    );
    let ns = lab.ns("lb");
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", &listener])
        .spawn()
        .unwrap();
    let connect = "import socket,time\n\
        for i in range(50):\n\
        \x20   try:\n\
        \x20       s=socket.create_connection(('198.18.0.1',2222),timeout=2); print(s.recv(64).decode()); break\n\
        \x20   except ConnectionRefusedError: time.sleep(0.1)\n";
    let got = lab.exec_ok("client", &["python3", "-c", connect]);
    let _ = server.wait();
    assert_eq!(
        got.trim(),
        format!("kernel-{}", lab.tag),
        "TCP to 198.18.0.1:2222 did not reach the kernel"
    );
    // The box's own connection to a NAT real server's service port (what a health check does):
    // the replies come from 198.18.1.11:80, a steered source, but are addressed to the box.
    let own = lab.http_from("lb", "http://198.18.1.11/", 5);
    assert_eq!(
        own.ok, 5,
        "the box cannot reach a real server's service port: {own:?}"
    );
    // The datapath saw none of this as load-balancer traffic.
    let metrics = lab.exec_ok("lb", &["python3", "-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9798/metrics').read().decode())"]);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("xvs_drops_total{reason=\"not_lb_traffic\"}"))
        .expect("drop metric");
    assert!(
        line.ends_with(" 0"),
        "kernel traffic reached the AF_XDP sockets: {line}"
    );
    stop_cleanly(xvs, &lab);
}

#[test]
fn a_second_xvs_on_the_same_interfaces_is_refused_and_the_first_keeps_working() {
    let (lab, xvs) = start();
    let cfg = lab.example_config("nat.yaml");
    let t0 = std::time::Instant::now();
    let out = lab.exec(
        "lb",
        &[
            env!("CARGO_BIN_EXE_xvs"),
            "run",
            "-c",
            cfg.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "second xvs: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // Refused at once (a live holder is not waited for), naming it.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(
        stderr.contains(&format!(
            "in use by another running xvs (pid {})",
            xvs.pid()
        )),
        "{stderr}"
    );
    let s = lab.http_client(50);
    assert_eq!(
        s.ok,
        50,
        "the first xvs stopped forwarding: {:?}\n{}",
        s.errors,
        xvs.log()
    );
    stop_cleanly(xvs, &lab);
}
