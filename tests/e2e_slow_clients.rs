//! End to end: clients that connect and stay silent, or ask for a large reply and never read it,
//! delay neither `xvs ctl`, nor a scrape, nor a reload, nor SIGTERM.
//!
//! The daemon runs in the NAT lab with `config/nat.yaml` plus 80 services of 100 real servers
//! each, so that both replies are far larger than the socket buffers: the `/metrics` page is
//! checked to exceed the lab namespace's largest TCP send buffer (`net.ipv4.tcp_wmem`) with
//! the reader's receive buffer shrunk to 4 KiB, and the `list` reply to exceed twice the Unix
//! socket send buffer xvs has (`net.core.wmem_default`). Then, with 20 silent admin clients and 20 silent
//! `/metrics` clients connected, plus one client of each asking for that large reply and never
//! reading it:
//!
//! - `xvs ctl list` and a scrape each answer within 1 s (run side by side), and the silent
//!   clients are checked to be still connected and unanswered afterwards (so the answers did
//!   come while they were holding on);
//! - `xvs ctl reload` answers within 1 s;
//! - with fresh silent clients connected again, SIGTERM stops xvs within 1 s, cleanly;
//! - the non-reading clients were really stuck: the daemon's side of the /metrics one had data
//!   waiting to be sent just before SIGTERM, and the admin one never got its whole reply.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{in_netns, Lab, VIP};
use prometheus_parse::Scrape;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
const METRICS: &str = "127.0.0.1:9798";
const SILENT: usize = 20;
const BULK_SERVICES: u16 = 80;
const REALS_PER_SERVICE: u16 = 100;
const BOUND: Duration = Duration::from_secs(1);

/// `config/nat.yaml` (for the lab's own web service) and `BULK_SERVICES` more services, each
/// with the same `REALS_PER_SERVICE` real servers (ports of r1 and r2 nothing listens on).
fn big_config(lab: &Lab) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(Lab::config("nat.yaml")).expect("config/nat.yaml");
    let reals: Vec<String> = (0..REALS_PER_SERVICE)
        .map(|i| {
            let host = if i % 2 == 0 { 11 } else { 12 };
            format!("{{ address: 198.18.1.{host}:{} }}", 10000 + i / 2)
        })
        .collect();
    let reals = reals.join(", ");
    for i in 0..BULK_SERVICES {
        text.push_str(&format!(
            "  - {{ name: bulk{i}, vip: {VIP}, port: {}, scheduler: rr, reals: [{reals}] }}\n",
            1000 + i
        ));
    }
    lab.write_config("lb", "big.yaml", &text)
}

/// A sysctl's numbers as seen inside the namespace `ns`.
fn sysctl(ns: &str, name: &str) -> Vec<usize> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    in_netns(ns, || std::fs::read_to_string(&path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{path}: {n}: {e}")))
        .collect()
}

/// Sets `s`'s receive buffer size (SO_RCVBUF; the kernel doubles it for its bookkeeping).
#[allow(unsafe_code)] // setsockopt(2) SO_RCVBUF: std has no wrapper
fn set_receive_buffer(s: &TcpStream, size: libc::c_int) {
    // SAFETY: setsockopt(2) on an open socket, reading `size_of::<c_int>()` bytes from a live
    // c_int.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: lb\r\n\r\n";

/// One scrape from inside `ns`: the body (the status must be 200) and the time it took.
fn scrape(ns: &str) -> (String, Duration) {
    in_netns(ns, || {
        let t = Instant::now();
        let mut s = TcpStream::connect(METRICS).expect("connect to /metrics");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(GET_METRICS).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).expect("read the /metrics reply");
        let took = t.elapsed();
        let reply = String::from_utf8(reply).expect("UTF-8 reply");
        let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        assert_eq!(head.split_whitespace().nth(1), Some("200"), "{head}");
        (body.to_string(), took)
    })
}

/// The raw admin reply to `line`.
fn admin_reply(socket: &Path, line: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect to the admin socket");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read the admin reply");
    reply
}

/// `xvs ctl --socket SOCKET ARGS...`: stdout (it must succeed) and the time it took.
fn ctl(socket: &Path, args: &[&str]) -> (String, Duration) {
    let t = Instant::now();
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .args(args)
        .output()
        .expect("run xvs ctl");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "xvs ctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// Silent clients: connected, sending nothing.
struct Silent {
    admin: Vec<UnixStream>,
    metrics: Vec<TcpStream>,
}

fn connect_silent(ns: &str, socket: &Path) -> Silent {
    let admin = (0..SILENT)
        .map(|_| UnixStream::connect(socket).expect("connect to the admin socket"))
        .collect();
    let metrics = in_netns(ns, || {
        (0..SILENT)
            .map(|_| TcpStream::connect(METRICS).expect("connect to /metrics"))
            .collect()
    });
    Silent { admin, metrics }
}

impl Silent {
    /// Asserts that every one is still connected and has received nothing.
    fn assert_unanswered(&self) {
        let idle =
            |r: std::io::Result<usize>| matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock);
        let mut buf = [0u8; 64];
        for (i, mut s) in self.admin.iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            assert!(
                idle(s.read(&mut buf)),
                "silent admin client {i} was answered or closed"
            );
        }
        for (i, mut s) in self.metrics.iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            assert!(
                idle(s.read(&mut buf)),
                "silent /metrics client {i} was answered or closed"
            );
        }
    }
}

/// The Send-Q (bytes sent but not yet acknowledged) of the daemon's side of the /metrics
/// connection whose client port is `port`.
fn metrics_send_queue(lab: &Lab, port: u16) -> usize {
    let out = lab.exec_ok(
        "lb",
        &["ss", "-tnH", "state", "established", "( sport = :9798 )"],
    );
    let peer = format!(":{port}");
    let line = out
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|p| p.ends_with(&peer))
        })
        .unwrap_or_else(|| panic!("no /metrics connection from port {port}:\n{out}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no Send-Q in {line:?}"))
}

/// Reads what `s` still gets until the peer is gone; returns the byte count.
fn drain(mut s: impl Read) -> usize {
    let mut n = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return n,
        }
    }
}

#[test]
fn silent_and_non_reading_clients_delay_neither_ctl_nor_scrapes_nor_reloads_nor_sigterm() {
    let lab = Lab::new();
    lab.serve();
    let config = big_config(&lab);
    let socket = lab.admin_socket("lb");
    let ns = lab.ns("lb");
    let mut xvs = lab.start_xvs_ready(&config);
    // The bulk services' and the example's own real servers (counted in the file: the example
    // has IPv4 and IPv6 services).
    let example = std::fs::read_to_string(Lab::config("nat.yaml")).expect("config/nat.yaml");
    let own = example
        .lines()
        .filter(|l| l.trim_start().starts_with("- address:"))
        .count();
    let reals = usize::from(BULK_SERVICES) * usize::from(REALS_PER_SERVICE) + own;

    // The replies are larger than the socket buffers can hold.
    let (page, _) = scrape(&ns);
    let tcp_wmem_max = sysctl(&ns, "net.ipv4.tcp_wmem")[2];
    assert!(
        page.len() > tcp_wmem_max + (64 << 10),
        "/metrics is {} bytes, not more than the largest TCP send buffer ({tcp_wmem_max}) + 64 KiB",
        page.len()
    );
    let list_len = admin_reply(&socket, "list\n").len();
    // xvs leaves its Unix sockets' send buffer at the default.
    let unix_wmem = sysctl(&ns, "net.core.wmem_default")[0];
    assert!(
        list_len > 2 * unix_wmem,
        "the list reply is {list_len} bytes, not more than twice net.core.wmem_default ({unix_wmem})"
    );
    eprintln!(
        "/metrics: {} bytes (tcp_wmem max {tcp_wmem_max}); list reply: {list_len} bytes (wmem_default {unix_wmem})",
        page.len()
    );

    // One client of each server asks for the large reply and never reads it.
    let mut stuck_admin = UnixStream::connect(&socket).unwrap();
    stuck_admin.write_all(b"list\n").unwrap();
    let stuck_metrics = in_netns(&ns, || {
        let s = TcpStream::connect(METRICS).unwrap();
        set_receive_buffer(&s, 4096);
        s
    });
    (&stuck_metrics).write_all(GET_METRICS).unwrap();
    let silent = connect_silent(&ns, &socket);
    std::thread::sleep(Duration::from_millis(200));

    // `ctl list` and a scrape, side by side.
    let scraper = {
        let ns = ns.clone();
        std::thread::spawn(move || scrape(&ns))
    };
    let (list, list_took) = ctl(&socket, &["list"]);
    let (page, scrape_took) = scraper.join().unwrap();
    silent.assert_unanswered();
    eprintln!("with silent and stuck clients: ctl list {list_took:?}, scrape {scrape_took:?}");
    assert!(list_took < BOUND, "ctl list took {list_took:?}");
    assert!(scrape_took < BOUND, "the scrape took {scrape_took:?}");
    assert!(
        list.contains("TCP  198.18.0.100:1079 rr\n"),
        "{}",
        &list[..list.len().min(500)]
    );
    assert_eq!(
        list.lines()
            .filter(|l| l.starts_with("  -> 198.18.") || l.starts_with("  -> [2001:2:"))
            .count(),
        reals
    );
    let parsed = Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).expect("parsable /metrics");
    assert_eq!(
        parsed
            .samples
            .iter()
            .filter(|s| s.metric == "xvs_real_weight")
            .count(),
        reals
    );

    let (out, reload_took) = ctl(&socket, &["reload"]);
    eprintln!("reload: {reload_took:?}");
    assert!(out.contains("Configuration reloaded"), "{out}");
    assert!(reload_took < BOUND, "ctl reload took {reload_took:?}");
    drop(silent);

    // SIGTERM with fresh silent clients and the stuck ones still connected.
    let silent = connect_silent(&ns, &socket);
    std::thread::sleep(Duration::from_millis(200));
    silent.assert_unanswered();
    // The non-reading /metrics client holds its connection up: the daemon's side has a full
    // window of data waiting (and, the page being larger than any buffer, more to send).
    let queued = metrics_send_queue(&lab, stuck_metrics.local_addr().unwrap().port());
    assert!(
        queued > 0,
        "nothing waits to be sent to the non-reading client"
    );
    let sent = xvs.signal_now(libc::SIGTERM);
    while xvs.running() && sent.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop_took = sent.elapsed();
    eprintln!(
        "SIGTERM to exit: {stop_took:?} ({queued} bytes queued to the non-reading /metrics client)"
    );
    assert!(!xvs.running(), "xvs still runs 10 s after SIGTERM");
    assert!(
        stop_took < BOUND,
        "xvs took {stop_took:?} to stop after SIGTERM"
    );
    let log = xvs.log();
    xvs.stop_cleanly();
    assert!(log.contains("xvs stopped"), "{log}");

    // The non-reading clients never got their whole reply: they really held their servers up.
    stuck_metrics
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stuck_admin
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let got = drain(&mut stuck_admin);
    assert!(got < list_len, "the stuck admin client got {got} bytes");
}
