//! End to end, IPv6 (issue 14): the lab's dual-stack topologies (`scripts/lab`: every subnet
//! 198.18.X.0/24 also carries 2001:2:0:X::/64, host 198.18.X.Y also holds 2001:2:0:X::Y) and xvs
//! forwarding to IPv6 VIPs by every method.
//!
//! Two groups, each test with its own lab (unique tag, deleted on drop, pass or fail):
//! - `lab_*`: the lab itself, kernel only (no xvs): the IPv6 addresses, routes and sysctls, the
//!   servers on their IPv6 addresses, DR6 real servers never advertising the VIP6, the real
//!   servers' IPv6-in-IPv6 decapsulation, the TOA sniffer reading an IPv6 TOA.
//! - `nat6_*`, `dr6_*`, `tun6_*`, `fullnat6_*`, `dual_stack_*`: xvs with IPv6 services (configs
//!   written here, `poll: wakeup`): 300 HTTP requests over fresh TCP connections to the VIP6
//!   through both real servers and a UDP6 service; DR6/TUN6 replies bypass the lb; FULLNAT6 real
//!   servers see only pool addresses and recover the client's IPv6 address from TOA; one xvs
//!   with an IPv4 and an IPv6 service at once while ping6 and ND of the box's own addresses keep
//!   working.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[allow(dead_code)] // the routed labs' helpers this file does not use
#[path = "common/routed.rs"]
mod routed;

#[path = "common/toa.rs"]
mod toa;

use std::collections::HashSet;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{script, Lab, Summary, Xvs, CLIENT6, VIP, VIP6};
use routed::{assert_balanced, assert_replies_bypass_the_lb, metric, ROUTED_VIP};
use toa::{Segment, Sniffer};

/// The IPv6 VIP of the dr and tun topologies (on the lb's lan0 and the real servers' lo; the
/// router routes it via the lb's 2001:2:0:1::1).
const ROUTED_VIP6: &str = "2001:2:0:2::100";
/// The real servers of nat, fullnat and dr (on the lb's LAN).
const LAN_REALS6: [&str; 2] = ["2001:2:0:1::11", "2001:2:0:1::12"];
const LAN_REALS: [&str; 2] = ["198.18.1.11", "198.18.1.12"];
/// The real servers of tun (behind the router).
const TUN_REALS6: [&str; 2] = ["2001:2:0:4::11", "2001:2:0:4::12"];
/// The fullnat topology's IPv6 pool addresses (on the lb's lan0).
const POOL6: [&str; 2] = ["2001:2:0:1::2", "2001:2:0:1::3"];
const POOL_PORTS: RangeInclusive<u16> = 20000..=29999;
/// The lb's (nat) or router's (dr, tun) IPv6 address on the client's subnet.
const WAN6_GW: &str = "2001:2::1";
/// The lb's IPv6 address on its LAN.
const LB_LAN6: &str = "2001:2:0:1::1";

/// `[ADDR]:PORT` for an IPv6 address, `ADDR:PORT` for an IPv4 one.
fn hostport(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn url(addr: &str, port: u16) -> String {
    format!("http://{}/", hostport(addr, port))
}

fn ip(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

/// One service of a test config.
struct Svc<'a> {
    name: &'a str,
    vip: &'a str,
    port: u16,
    protocol: &'a str,
    forwarding: &'a str,
    reals: &'a [&'a str],
    real_port: u16,
    /// More keys, each line indented by four spaces (`local_addresses`, `toa`).
    extra: &'a str,
}

impl Svc<'_> {
    fn yaml(&self) -> String {
        let mut y = format!(
            "  - name: {}\n    vip: \"{}\"\n    port: {}\n    protocol: {}\n    scheduler: rr\n    forwarding: {}\n{}    reals:\n",
            self.name, self.vip, self.port, self.protocol, self.forwarding, self.extra
        );
        for r in self.reals {
            y += &format!("      - address: \"{}\"\n", hostport(r, self.real_port));
        }
        y
    }
}

/// The HTTP service `web` (port 80) and the UDP service `dns` (`udp_port`, to the real servers'
/// 5353) on `vip`, both with `forwarding` to `reals`.
fn web_and_dns<'a>(
    vip: &'a str,
    udp_port: u16,
    forwarding: &'a str,
    reals: &'a [&'a str],
    extra: &'a str,
) -> [Svc<'a>; 2] {
    [
        Svc {
            name: "web",
            vip,
            port: 80,
            protocol: "tcp",
            forwarding,
            reals,
            real_port: 80,
            extra,
        },
        Svc {
            name: "dns",
            vip,
            port: udp_port,
            protocol: "udp",
            forwarding,
            reals,
            real_port: 5353,
            extra: "",
        },
    ]
}

/// Writes the lb's config into the lab's state directory: `interfaces` (queue 0 each),
/// `poll: wakeup`, the lab's admin socket, `top` (e.g. `local_addresses`), `services`.
fn write_config(
    lab: &Lab,
    name: &str,
    interfaces: &[&str],
    top: &str,
    services: &[Svc],
) -> PathBuf {
    let mut text = format!(
        "global:\n  admin_socket: {}\ndatapath:\n  interfaces:\n",
        lab.admin_socket("lb").display()
    );
    for i in interfaces {
        text += &format!("    - {{ name: {i}, queues: [0] }}\n");
    }
    text += "  poll: wakeup\n";
    text += top;
    text += "services:\n";
    for s in services {
        text += &s.yaml();
    }
    lab.write_config("lb", name, &text)
}

/// Starts xvs with `config` and waits (20 s at most) until each of `urls` answers through it;
/// fails at once if xvs exits.
fn start_xvs(lab: &Lab, config: &Path, urls: &[&str]) -> Xvs {
    let mut xvs = lab.start_xvs(config);
    let end = Instant::now() + Duration::from_secs(20);
    for u in urls {
        let mut ready = false;
        while !ready && Instant::now() < end {
            assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
            ready = lab.http_client_url(u, 1, 0.5).ok == 1;
            if !ready {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        assert!(ready, "{u} never answered through xvs:\n{}", xvs.log());
    }
    xvs
}

fn assert_all_ok(s: &Summary, n: u64, what: &str, xvs: &Xvs) {
    assert_eq!(
        (s.ok, s.failed),
        (n, 0),
        "{what}: {:?}\n{}",
        s.errors,
        xvs.log()
    );
}

/// `count` pings from `role` to `addr` (IPv6 or IPv4) all answered.
fn assert_ping(lab: &Lab, role: &str, addr: &str, count: u32) {
    let family = if addr.contains(':') { "-6" } else { "-4" };
    let n = count.to_string();
    let out = lab.exec(
        role,
        &["ping", family, "-c", &n, "-i", "0.2", "-W", "1", addr],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{count} received")),
        "{role}: ping {addr}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A counter of `/proc/net/snmp6` in `role`'s namespace.
fn snmp6(lab: &Lab, role: &str, name: &str) -> u64 {
    lab.exec_ok(role, &["cat", "/proc/net/snmp6"])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{role}: no {name} in /proc/net/snmp6"))
}

fn lab_python(lab: &Lab, role: &str, script_name: &str, args: &[&str]) -> String {
    let s = script(script_name);
    let mut cmd = vec!["python3", s.as_str()];
    cmd.extend_from_slice(args);
    lab.exec_ok(role, &cmd)
}

// ---------------------------------------------------------------------------------------------
// The lab itself, kernel only.

/// The nat topology's IPv6 side, without xvs: the plan's addresses (nodad: none tentative),
/// no router advertisements taken, IPv6 forwarding off on the lb; ping6 across both subnets; the
/// servers answer on their IPv6 addresses (logging `[ADDR]:PORT` peers) and still on IPv4
/// (logging plain `A.B.C.D:PORT`); the lb's kernel answers the VIP6 but forwards nothing.
#[test]
fn lab_nat_is_dual_stack_without_xvs() {
    let lab = Lab::up("nat");
    lab.serve();
    for (role, dev, want) in [
        ("client", "eth0", &["2001:2::2/64"][..]),
        ("lb", "wan0", &["2001:2::1/64", "2001:2::100/128"][..]),
        ("lb", "lan0", &["2001:2:0:1::1/64"][..]),
        ("r1", "eth0", &["2001:2:0:1::11/64"][..]),
        ("r2", "eth0", &["2001:2:0:1::12/64"][..]),
    ] {
        let addrs = lab.exec_ok(role, &["ip", "-6", "addr", "show", "dev", dev]);
        for w in want {
            assert!(addrs.contains(w), "{role} {dev}: no {w}:\n{addrs}");
        }
        assert!(!addrs.contains("tentative"), "{role} {dev}:\n{addrs}");
        let ra = lab.exec_ok(
            role,
            &["sysctl", "-n", &format!("net.ipv6.conf.{dev}.accept_ra")],
        );
        assert_eq!(ra.trim(), "0", "{role} {dev} accepts router advertisements");
    }
    let fwd = lab.exec_ok("lb", &["sysctl", "-n", "net.ipv6.conf.all.forwarding"]);
    assert_eq!(fwd.trim(), "0", "the lb forwards IPv6");
    for (role, addr) in [
        ("client", WAN6_GW),
        ("client", VIP6),
        ("r1", LAN_REALS6[1]),
        ("r2", LB_LAN6),
    ] {
        assert_ping(&lab, role, addr, 2);
    }
    // The servers, on their IPv6 addresses and on IPv4, from the lb.
    for (i, role) in ["r1", "r2"].into_iter().enumerate() {
        let s = lab.http_from("lb", &url(LAN_REALS6[i], 80), 20);
        assert_eq!((s.ok, s.count(role)), (20, 20), "{s:?}");
        let s = lab.udp_from("lb", &hostport(LAN_REALS6[i], 5353), 10);
        assert_eq!((s.ok, s.count(role)), (10, 10), "{s:?}");
        let s = lab.http_from("lb", &url(LAN_REALS[i], 80), 5);
        assert_eq!((s.ok, s.count(role)), (5, 5), "{s:?}");
        let peers = lab.peers(role, "http", 80);
        assert_eq!(peers.len(), 25, "{peers:?}");
        assert!(
            peers[..20].iter().all(|p| p.ip() == ip(LB_LAN6)),
            "{peers:?}"
        );
        assert!(
            peers[20..].iter().all(|p| p.ip() == ip("198.18.1.1")),
            "{peers:?}"
        );
        let udp = lab.peers(role, "udp", 5353);
        assert!(udp.iter().all(|p| p.ip() == ip(LB_LAN6)), "{udp:?}");
    }
    // Nothing forwards: the VIP6's port is closed, the real servers are out of reach.
    let s = lab.http_client_url(&url(VIP6, 80), 2, 0.5);
    assert_eq!((s.ok, s.failed), (0, 2), "{s:?}");
    let s = lab.http_client_url(&url(LAN_REALS6[0], 80), 1, 0.5);
    assert_eq!((s.ok, s.failed), (0, 1), "{s:?}");
    // ND resolved the lb for the client.
    let neigh = lab.exec_ok("client", &["ip", "-6", "neigh", "show", WAN6_GW]);
    assert!(neigh.contains(&lab.mac("lb", "wan0")), "{neigh}");
    // `scripts/lab status` shows the IPv6 addresses and neighbours.
    let out = Command::new(script("lab"))
        .args(["status", &lab.tag])
        .output()
        .expect("scripts/lab status");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("2001:2::100/128") && status.contains("neigh6 2001:2::1 "),
        "{status}"
    );
}

/// The dr topology: a real server holds the VIP6 on lo and never answers a neighbour
/// solicitation for it on eth0 (Linux answers only for the receiving interface's addresses),
/// though it receives the solicitation and answers one for its own address; the lb, which
/// holds the VIP6 on lan0, does answer. The router routes the VIP6 via the lb.
#[test]
fn lab_dr_real_servers_never_advertise_the_vip6() {
    let lab = Lab::up("dr");
    let ns = |dmac: &str, target: &str| {
        lab_python(
            &lab,
            "rt",
            "lab-craft.py",
            &[
                "ns",
                "--iface",
                "lan0",
                "--dmac",
                dmac,
                "--src",
                "2001:2:0:1::254",
                "--target",
                target,
            ],
        )
    };
    for (i, role) in ["r1", "r2"].into_iter().enumerate() {
        let mac = lab.mac(role, "eth0");
        let before = snmp6(&lab, role, "Icmp6InNeighborSolicits");
        let vip = ns(&mac, ROUTED_VIP6);
        assert!(
            vip.contains("done") && !vip.contains("NA "),
            "{role} advertised the VIP6: {vip}"
        );
        assert!(
            snmp6(&lab, role, "Icmp6InNeighborSolicits") > before,
            "{role} never received the solicitation"
        );
        let own = ns(&mac, LAN_REALS6[i]);
        assert!(own.contains(&format!("NA {mac}")), "{role}: {own}");
        let lo = lab.exec_ok(role, &["ip", "-6", "addr", "show", "dev", "lo"]);
        assert!(lo.contains(&format!("{ROUTED_VIP6}/128")), "{role}: {lo}");
    }
    let lb_mac = lab.mac("lb", "lan0");
    let lb = ns(&lb_mac, ROUTED_VIP6);
    assert!(lb.contains(&format!("NA {lb_mac}")), "lb: {lb}");
    let route = lab.exec_ok("rt", &["ip", "-6", "route", "get", ROUTED_VIP6]);
    assert!(route.contains(&format!("via {LB_LAN6}")), "{route}");
    // The client reaches the real servers' own addresses through the router, and the VIP6 on
    // the lb (whose kernel answers it).
    assert_ping(&lab, "client", LAN_REALS6[0], 2);
    assert_ping(&lab, "client", ROUTED_VIP6, 2);
}

/// Sends, from the router, a UDP datagram client:`sport` -> `vip`:5353 tunnelled to `real`
/// (IPv6-in-IPv6 or IP-in-IP by the family) and returns what the client then received at
/// `sport` within 3 s ("got NAME:PAYLOAD from ADDR", or "nothing").
fn tunnel_probe(lab: &Lab, real: &str, client: &str, vip: &str, sport: u16) -> String {
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "python3"])
        .arg(script("lab-craft.py"))
        .args(["listen-udp", "--bind", client, "--port", &sport.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the UDP listener");
    let mut out = std::io::BufReader::new(listener.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the listener did not start");
    lab_python(
        lab,
        "rt",
        "lab-craft.py",
        &[
            "tunnel",
            "--real",
            real,
            "--src",
            &hostport(client, sport),
            "--dst",
            &hostport(vip, 5353),
            "--payload",
            "tunnelled",
        ],
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = listener.wait();
    line.trim().to_string()
}

/// The tun topology: each real server's XDP helper strips an outer IPv6 header (next header
/// 41) addressed to it and the kernel delivers the inner datagram to the UDP server on the
/// VIP6, which answers the client directly; IP-in-IP still works; an IPv6-in-IPv6 packet that
/// reaches a real server's MAC for another address is left alone (not delivered). The lb's own
/// traffic to the server subnet leaves from lan0's address, not from the VIP6 the real servers
/// hold themselves.
#[test]
fn lab_tun_real_servers_decapsulate_ipv6_in_ipv6() {
    let lab = Lab::up("tun");
    lab.serve();
    for (i, role) in ["r1", "r2"].into_iter().enumerate() {
        let port = 40001 + 2 * i as u16;
        let got = tunnel_probe(&lab, TUN_REALS6[i], CLIENT6, ROUTED_VIP6, port);
        assert_eq!(got, format!("got {role}:tunnelled from {ROUTED_VIP6}"));
        let real4 = format!("198.18.4.{}", 11 + i);
        let got = tunnel_probe(&lab, &real4, "198.18.0.2", ROUTED_VIP, port + 1);
        assert_eq!(got, format!("got {role}:tunnelled from {ROUTED_VIP}"));
    }
    let r1_mac = lab.mac("r1", "eth0");
    lab.exec_ok(
        "rt",
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            "2001:2:0:4::99",
            "lladdr",
            &r1_mac,
            "dev",
            "srv0",
        ],
    );
    let got = tunnel_probe(&lab, "2001:2:0:4::99", CLIENT6, ROUTED_VIP6, 40009);
    assert_eq!(
        got, "nothing",
        "r1 decapsulated a packet for another address"
    );
    let route = lab.exec_ok("lb", &["ip", "-6", "route", "get", TUN_REALS6[1]]);
    assert!(route.contains(&format!("src {LB_LAN6}")), "{route}");
    assert_ping(&lab, "lb", TUN_REALS6[1], 2);
    let mtu = lab.exec_ok("r1", &["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1400");
}

/// The fullnat topology: the real servers have no IPv6 route to the client; the TOA sniffer
/// reads crafted segments off r1's eth0: an IPv6 SYN and handshake ACK with DPVS's IPv6 TOA
/// (length 20), an IPv4 SYN with the IPv4 one (length 8), an IPv6 SYN without TOA.
#[test]
fn lab_fullnat_sniffer_reads_crafted_ipv6_toa() {
    let lab = Lab::up("fullnat");
    let routes = lab.exec_ok("r1", &["ip", "-6", "route", "show"]);
    assert!(!routes.contains("default"), "r1: {routes}");
    let ping = lab.exec("r1", &["ping", "-6", "-c", "1", "-W", "1", CLIENT6]);
    assert!(
        !ping.status.success(),
        "r1 reaches the client without the lb"
    );
    assert_ping(&lab, "r1", POOL6[1], 1);
    let route = lab.exec_ok("lb", &["ip", "-6", "route", "get", LAN_REALS6[1]]);
    assert!(route.contains(&format!("src {LB_LAN6}")), "{route}");

    let sniffer = Sniffer::start(&lab, "r1", 80);
    let r1_mac = lab.mac("r1", "eth0");
    let real6 = hostport(LAN_REALS6[0], 80);
    let toa6 = hostport(CLIENT6, 40000);
    let sends: [&[&str]; 4] = [
        &[
            "--src",
            "[2001:2:0:1::2]:20001",
            "--dst",
            &real6,
            "--toa",
            &toa6,
        ],
        &[
            "--src",
            "[2001:2:0:1::2]:20001",
            "--dst",
            &real6,
            "--toa",
            &toa6,
            "--ack",
        ],
        &[
            "--src",
            "198.18.1.2:20002",
            "--dst",
            "198.18.1.11:80",
            "--toa",
            "198.18.0.2:40001",
        ],
        &["--src", "[2001:2:0:1::3]:20003", "--dst", &real6],
    ];
    for args in sends {
        let mut a = vec!["syn", "--iface", "lan0", "--dmac", &r1_mac];
        a.extend_from_slice(args);
        lab_python(&lab, "lb", "lab-craft.py", &a);
    }
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<Segment> = sniffer
        .finish()
        .into_iter()
        .filter(|s| (20001..=20003).contains(&s.src.port()))
        .collect();
    let seg = |flags: &str, src: &str, toa: Option<&str>| Segment {
        flags: flags.to_string(),
        src: src.parse().unwrap(),
        toa: toa.map(|t| t.parse().unwrap()),
    };
    assert_eq!(
        got,
        [
            seg("S", "[2001:2:0:1::2]:20001", Some("[2001:2::2]:40000")),
            seg("A", "[2001:2:0:1::2]:20001", Some("[2001:2::2]:40000")),
            seg("S", "198.18.1.2:20002", Some("198.18.0.2:40001")),
            seg("S", "[2001:2:0:1::3]:20003", None),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// xvs with IPv6 services.

/// The requests' peers as the real servers logged them all came from `want`.
fn assert_peers_from(lab: &Lab, kind: &str, port: u16, want: &[&str]) -> Vec<SocketAddr> {
    let mut all = Vec::new();
    for role in ["r1", "r2"] {
        let peers = lab.peers(role, kind, port);
        assert!(!peers.is_empty(), "{role}: no {kind} peers logged");
        for p in &peers {
            assert!(
                want.iter().any(|w| p.ip() == ip(w)),
                "{role} saw {p}, want one of {want:?}"
            );
        }
        all.extend(peers);
    }
    all
}

/// NAT6: 300 HTTP requests over fresh connections and 100 UDP6 requests to the VIP6, both
/// real servers answering; NAT keeps the client's address, so the real servers saw the
/// client's IPv6 address.
#[test]
fn nat6_http_and_udp_through_two_real_servers() {
    let lab = Lab::up("nat");
    lab.serve();
    let cfg = write_config(
        &lab,
        "nat6.yaml",
        &["wan0", "lan0"],
        "",
        &web_and_dns(VIP6, 53, "nat", &LAN_REALS6, ""),
    );
    let xvs = start_xvs(&lab, &cfg, &[&url(VIP6, 80)]);
    let http = lab.http_client_url(&url(VIP6, 80), 300, 2.0);
    assert_all_ok(&http, 300, "NAT6 HTTP", &xvs);
    assert_balanced(&http, 300);
    let dns = lab.udp_client(&hostport(VIP6, 53), 100);
    assert_all_ok(&dns, 100, "NAT6 UDP", &xvs);
    assert_balanced(&dns, 100);
    assert_peers_from(&lab, "http", 80, &[CLIENT6]);
    assert_peers_from(&lab, "udp", 5353, &[CLIENT6]);
    // The kernel still answers ping6 for the VIP6.
    assert_ping(&lab, "client", VIP6, 3);
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    xvs.stop_cleanly();
}

/// DR6 (`dr` or TUN6 `tun` topology): HTTP and UDP6 to the routed VIP6 through both real
/// servers, replies bypassing the lb (`to_lb`: the port that hands the lb its frames).
fn routed6(topology: &str, forwarding: &str, reals: &[&str], to_lb: (&str, &str)) {
    let lab = Lab::up(topology);
    lab.serve();
    let cfg = write_config(
        &lab,
        &format!("{forwarding}6.yaml"),
        &["lan0"],
        "",
        &web_and_dns(ROUTED_VIP6, 5353, forwarding, reals, ""),
    );
    let xvs = start_xvs(&lab, &cfg, &[&url(ROUTED_VIP6, 80)]);
    let mut http = None;
    let mut dns = None;
    assert_replies_bypass_the_lb(&lab, to_lb, 600, || {
        http = Some(lab.http_client_url(&url(ROUTED_VIP6, 80), 300, 2.0));
        dns = Some(lab.udp_client(&hostport(ROUTED_VIP6, 5353), 100));
    });
    let (http, dns) = (http.unwrap(), dns.unwrap());
    assert_all_ok(&http, 300, "HTTP", &xvs);
    assert_balanced(&http, 300);
    assert_all_ok(&dns, 100, "UDP", &xvs);
    assert_balanced(&dns, 100);
    // The real servers saw the client itself.
    assert_peers_from(&lab, "http", 80, &[CLIENT6]);
    assert_peers_from(&lab, "udp", 5353, &[CLIENT6]);
    assert_ping(&lab, "client", ROUTED_VIP6, 3);
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    xvs.stop_cleanly();
}

/// DR6: xvs, on the real servers' LAN, forwards by MAC; the real servers hold the VIP6 on lo
/// and answer through the router. The lb's frames come from the switch port p-lb.
#[test]
fn dr6_http_and_udp_replies_bypass_the_lb() {
    routed6("dr", "dr", &LAN_REALS6, ("sw", "p-lb"));
}

/// TUN6: xvs wraps each request in IPv6-in-IPv6 to a real server on 2001:2:0:4::/64, which
/// decapsulates it (tests/bpf/ipip_decap.c) and answers through the router. The lb's only link
/// is to the router's lan0.
#[test]
fn tun6_http_and_udp_replies_bypass_the_lb() {
    routed6("tun", "tun", &TUN_REALS6, ("rt", "lan0"));
}

/// FULLNAT6: the real servers (no IPv6 route to the client) see only pool addresses at pool
/// ports; with `toa: true` every SYN and handshake ACK they receive carries the client's IPv6
/// address (DPVS's IPv6 TOA, length 20).
#[test]
fn fullnat6_pool_addresses_and_toa() {
    let lab = Lab::up("fullnat");
    let routes = lab.exec_ok("r1", &["ip", "-6", "route", "show"]);
    assert!(!routes.contains("default"), "r1: {routes}");
    lab.serve();
    let pool = format!(
        "local_addresses:\n  - {{ name: lan-pool6, addresses: [\"{}\", \"{}\"], ports: 20000-29999 }}\n",
        POOL6[0], POOL6[1]
    );
    let extra = "    local_addresses: lan-pool6\n    toa: true\n";
    let mut services = web_and_dns(VIP6, 53, "fullnat", &LAN_REALS6, extra);
    services[1].extra = "    local_addresses: lan-pool6\n";
    let cfg = write_config(&lab, "fullnat6.yaml", &["wan0", "lan0"], &pool, &services);
    let xvs = start_xvs(&lab, &cfg, &[&url(VIP6, 80)]);
    let sniffers = [
        Sniffer::start(&lab, "r1", 80),
        Sniffer::start(&lab, "r2", 80),
    ];
    let http = lab.http_client_url(&url(VIP6, 80), 300, 2.0);
    assert_all_ok(&http, 300, "FULLNAT6 HTTP", &xvs);
    assert_balanced(&http, 300);
    let dns = lab.udp_client(&hostport(VIP6, 53), 100);
    assert_all_ok(&dns, 100, "FULLNAT6 UDP", &xvs);
    assert_balanced(&dns, 100);

    let mut used = HashSet::new();
    for kind_port in [("http", 80), ("udp", 5353)] {
        for p in assert_peers_from(&lab, kind_port.0, kind_port.1, &POOL6) {
            assert!(
                POOL_PORTS.contains(&p.port()),
                "peer {p} not at a pool port"
            );
            used.insert(p.ip());
        }
    }
    assert_eq!(used.len(), 2, "pool addresses used: {used:?}");

    // TOA: every SYN carries the client's IPv6 address and its own (non-pool) port.
    let client = ip(CLIENT6);
    let mut syns = 0;
    let mut client_ports = HashSet::new();
    let mut acks_with_toa = 0;
    for (role, sniffer) in ["r1", "r2"].into_iter().zip(sniffers) {
        for s in sniffer.finish() {
            assert!(POOL6.iter().any(|p| s.src.ip() == ip(p)), "{role}: {s:?}");
            match (s.flags.as_str(), s.toa) {
                ("S", Some(toa)) => {
                    assert_eq!(toa.ip(), client, "{role}: {s:?}");
                    assert!(!POOL_PORTS.contains(&toa.port()), "{role}: {s:?}");
                    syns += 1;
                    client_ports.insert(toa.port());
                }
                ("S", None) => panic!("{role}: a SYN without TOA: {s:?}"),
                (_, Some(toa)) => {
                    assert_eq!(toa.ip(), client, "{role}: {s:?}");
                    acks_with_toa += 1;
                }
                (_, None) => {}
            }
        }
    }
    assert!(syns >= 300, "{syns} SYNs seen for 300 connections");
    assert!(
        client_ports.len() >= 300,
        "{} client ports",
        client_ports.len()
    );
    assert!(
        acks_with_toa >= 300,
        "{acks_with_toa} handshake ACKs carried TOA"
    );
    let m = lab.metrics();
    assert!(
        metric(&m, "xvs_toa_inserted_total") >= 600.0,
        "TOA insertions:\n{m}"
    );
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    xvs.stop_cleanly();
}

/// Dual stack: one xvs with an IPv4 and an IPv6 NAT service (VIP and VIP6, HTTP and UDP each)
/// serving both at once; meanwhile ping6 of the lb's own IPv6 addresses works and ND resolves
/// them (the client's and a real server's neighbour entry for the lb), as ping and ARP do.
#[test]
fn dual_stack_ipv4_and_ipv6_services_at_once_with_ping6_and_nd() {
    let lab = Lab::up("nat");
    lab.serve();
    let [web4, dns4] = web_and_dns(VIP, 53, "nat", &LAN_REALS, "");
    let [mut web6, mut dns6] = web_and_dns(VIP6, 53, "nat", &LAN_REALS6, "");
    web6.name = "web6";
    dns6.name = "dns6";
    let cfg = write_config(
        &lab,
        "dual.yaml",
        &["wan0", "lan0"],
        "",
        &[web4, dns4, web6, dns6],
    );
    let xvs = start_xvs(&lab, &cfg, &[&url(VIP, 80), &url(VIP6, 80)]);
    let (h4, h6, u4, u6) = std::thread::scope(|s| {
        let h4 = s.spawn(|| lab.http_client_url(&url(VIP, 80), 300, 2.0));
        let h6 = s.spawn(|| lab.http_client_url(&url(VIP6, 80), 300, 2.0));
        let u4 = s.spawn(|| lab.udp_client(&hostport(VIP, 53), 100));
        let u6 = s.spawn(|| lab.udp_client(&hostport(VIP6, 53), 100));
        (
            h4.join().unwrap(),
            h6.join().unwrap(),
            u4.join().unwrap(),
            u6.join().unwrap(),
        )
    });
    assert_all_ok(&h4, 300, "IPv4 HTTP", &xvs);
    assert_all_ok(&h6, 300, "IPv6 HTTP", &xvs);
    assert_all_ok(&u4, 100, "IPv4 UDP", &xvs);
    assert_all_ok(&u6, 100, "IPv6 UDP", &xvs);
    for s in [&h4, &h6, &u4, &u6] {
        assert!(s.count("r1") > 0 && s.count("r2") > 0, "{:?}", s.by_server);
    }
    let peers = assert_peers_from(&lab, "http", 80, &["198.18.0.2", CLIENT6]);
    let v6 = peers.iter().filter(|p| p.is_ipv6()).count();
    assert!(v6 >= 300 && peers.len() - v6 >= 300, "{peers:?}");

    // The box's own addresses while xvs runs: ping6 answered, ND resolved afresh.
    let wan_mac = lab.mac("lb", "wan0");
    let lan_mac = lab.mac("lb", "lan0");
    lab.exec_ok("client", &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    lab.exec_ok("r1", &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    for (role, addr) in [
        ("client", WAN6_GW),
        ("client", VIP6),
        ("r1", LB_LAN6),
        ("client", "198.18.0.1"),
    ] {
        assert_ping(&lab, role, addr, 3);
    }
    for (role, addr, mac) in [("client", WAN6_GW, &wan_mac), ("r1", LB_LAN6, &lan_mac)] {
        let neigh = lab.exec_ok(role, &["ip", "-6", "neigh", "show", addr]);
        assert!(
            neigh.contains(mac.as_str())
                && ["REACHABLE", "STALE", "DELAY"]
                    .iter()
                    .any(|s| neigh.contains(s)),
            "{role}: ND for {addr}: {neigh:?} (want {mac})"
        );
    }
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    xvs.stop_cleanly();
}
