//! End to end, a VRRP pair of xvs boxes on a LAN that floods like a hub (`scripts/lab hub`:
//! bridge `ageing_time 0` and no learning, so every frame reaches every port whatever its
//! destination MAC; a hub, a switch whose MAC table overflowed, the seconds after a port went
//! down). Only the frames addressed to a box may act on it: a Linux host drops the others
//! (PACKET_OTHERHOST), and so must xvs.
//!
//! - `dr_behind_vrrp_on_a_hub_only_the_master_forwards`: a DR service (`config/dr.yaml`) behind
//!   the VRRP address 198.18.1.1 (the router's route to the VIP), `scripts/lab up vrrpdr`: 200
//!   HTTP requests all succeed; the BACKUP, although the hub hands it every request, transmits
//!   nothing; the MASTER forwards each client segment once at most.
//! - `nat_behind_vrrp_on_a_hub_only_the_master_forwards`: the same with `config/vrrp.yaml`'s NAT
//!   service on `scripts/lab up vrrp`.
//! - `syns_to_a_foreign_broadcast_or_multicast_mac_are_never_forwarded`: raw SYNs to the VIP
//!   from the client, to a foreign unicast, the broadcast, a multicast (VRRP's group) and the
//!   BACKUP's MAC: no real server receives one, no connection entry is made; the same SYN to
//!   the MASTER's MAC is forwarded (the frames are well formed and the counting works).
//! - `frames_xvs_sent_never_come_back_through_it`: the DR lab on a hub that also echoes every
//!   frame to its sender (hairpin): every frame the MASTER transmits comes back to it and
//!   reaches the BACKUP, DR keeps the VIP as destination, and yet no frame is forwarded twice:
//!   the real servers receive exactly the segments xvs transmitted, no more than the client sent.
//! - `failover_on_a_hub_within_master_down_interval`: the SIGKILL failover of `e2e_vrrp`
//!   measured on the hub: requests resume within Master_Down_Interval + 100 ms.
//!
//! The figures are printed (`cargo test --release --test e2e_hub -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

#[path = "common/vrrp.rs"]
mod vrrp_lab;

#[allow(dead_code)] // the routed labs' helpers this file does not use
#[path = "common/routed.rs"]
mod routed;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Lab, Xvs, VIP};
use routed::{link_counter, ROUTED_VIP};
use vrrp_lab::*;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

/// Requests per run, sent in batches: the counters are checked after each batch, so a run that
/// loops fails at the first batch instead of spinning through all of them.
const REQUESTS: u32 = 200;
const BATCH: u32 = 50;

/// The MAC addresses of the `vrrp` lab's load balancers on the client side (wan0).
const LB1_WAN_MAC: &str = "02:18:00:00:00:11";
const LB2_WAN_MAC: &str = "02:18:00:00:00:12";

/// Sum of every sample of the metric family `name` on a `/metrics` page.
fn total(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The non-zero `xvs_drops_total` reasons of a `/metrics` page.
fn drops(page: &str) -> BTreeMap<String, u64> {
    page.lines()
        .filter_map(|l| l.strip_prefix("xvs_drops_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            let n = rest.trim().parse::<f64>().ok()? as u64;
            (n > 0).then(|| (reason.to_string(), n))
        })
        .collect()
}

/// TCP segments `role`'s kernel received and sent (retransmissions included), from
/// `/proc/net/snmp` (per network namespace). A segment received is one the kernel accepted as
/// addressed to this host: frames for another MAC never get this far.
fn tcp_segments(lab: &Lab, role: &str) -> (u64, u64) {
    let snmp = lab.exec_ok(role, &["cat", "/proc/net/snmp"]);
    let mut rows = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
    let field = |name: &str| -> u64 {
        let i = names
            .split_whitespace()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{role}: no Tcp {name} in /proc/net/snmp:\n{snmp}"));
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    };
    (field("InSegs"), field("OutSegs") + field("RetransSegs"))
}

/// What the run's parties counted, at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// TCP segments the client sent (all of them to a VIP) and received.
    client_sent: u64,
    client_got: u64,
    /// TCP segments r1 and r2 received (accepted as theirs) and sent, together.
    servers_got: u64,
    servers_sent: u64,
    /// Frames xvs transmitted (`xvs_tx_packets_total`) on lb1 and lb2.
    xvs_tx: [u64; 2],
    /// Frames xvs transmitted on lb2 since it started (the BACKUP must never transmit).
    backup_tx_ever: u64,
    /// Frames the LAN switch `sw` handed to lb1 and lb2 (its ports' `tx_packets`).
    lan_handed: [u64; 2],
    /// Frames the client-side switch `wsw` handed to lb1 and lb2 (`vrrp` lab only).
    wan_handed: [u64; 2],
}

impl Counts {
    fn take(lab: &Lab, wan_switch: bool) -> Counts {
        let (client_got, client_sent) = tcp_segments(lab, "client");
        let (g1, s1) = tcp_segments(lab, "r1");
        let (g2, s2) = tcp_segments(lab, "r2");
        let handed = |sw: &str| {
            [
                link_counter(lab, sw, "p-lb1", "tx_packets"),
                link_counter(lab, sw, "p-lb2", "tx_packets"),
            ]
        };
        let xvs_tx = [
            total(&lab.metrics_in("lb1"), "xvs_tx_packets_total"),
            total(&lab.metrics_in("lb2"), "xvs_tx_packets_total"),
        ];
        Counts {
            client_sent,
            client_got,
            servers_got: g1 + g2,
            servers_sent: s1 + s2,
            xvs_tx,
            backup_tx_ever: xvs_tx[1],
            lan_handed: handed("sw"),
            wan_handed: if wan_switch { handed("wsw") } else { [0, 0] },
        }
    }

    /// [`Counts::take`] once the TCP and xvs counts stand still (two readings 200 ms apart
    /// agree; 3 s at most): the last segments of a request (FIN, ACK) may still be on their way
    /// when the client returns, and a reading in their midst could see one counted on one side
    /// but not yet on the other.
    fn settled(lab: &Lab, wan_switch: bool) -> Counts {
        let key = |c: &Counts| {
            (
                c.client_sent,
                c.client_got,
                c.servers_got,
                c.servers_sent,
                c.xvs_tx,
            )
        };
        let mut last = Counts::take(lab, wan_switch);
        for _ in 0..15 {
            std::thread::sleep(Duration::from_millis(200));
            let now = Counts::take(lab, wan_switch);
            if key(&now) == key(&last) {
                return now;
            }
            last = now;
        }
        last
    }

    /// The counts since `before` (`backup_tx_ever` stays lb2's total since it started).
    fn since(&self, before: &Counts) -> Counts {
        let d = |a: [u64; 2], b: [u64; 2]| [a[0] - b[0], a[1] - b[1]];
        Counts {
            client_sent: self.client_sent - before.client_sent,
            client_got: self.client_got - before.client_got,
            servers_got: self.servers_got - before.servers_got,
            servers_sent: self.servers_sent - before.servers_sent,
            xvs_tx: d(self.xvs_tx, before.xvs_tx),
            backup_tx_ever: self.backup_tx_ever,
            lan_handed: d(self.lan_handed, before.lan_handed),
            wan_handed: d(self.wan_handed, before.wan_handed),
        }
    }
}

/// lb1 MASTER and lb2 BACKUP, started in that order, with configs `b1`, `b2` of `instances`
/// VRRP instances each.
fn start_pair(lab: &Lab, b1: &Box_, b2: &Box_, instances: usize) -> (Xvs, Xvs) {
    let x1 = start(lab, b1);
    assert!(
        wait_all(&b1.socket, "MASTER", instances),
        "lb1 never became MASTER:\n{}",
        x1.log()
    );
    let x2 = start(lab, b2);
    assert!(
        wait_all(&b2.socket, "BACKUP", instances),
        "lb2 never became BACKUP:\n{}",
        x2.log()
    );
    (x1, x2)
}

/// `config/dr.yaml` for `role` of the `vrrpdr` lab behind VI_1 (lan0, VRID 51, 100 ms adverts,
/// the address 198.18.1.1 the router sends the VIP to) at `priority`.
fn dr_box(lab: &Lab, role: &'static str, priority: u8) -> Box_ {
    let text = std::fs::read_to_string(Lab::config("dr.yaml")).unwrap();
    assert!(
        text.contains("router_id: lb1") && text.contains("forwarding: dr"),
        "config/dr.yaml changed"
    );
    let text = format!(
        "{}\nvrrp:\n  instances:\n    - {{ name: VI_1, interface: lan0, vrid: 51, priority: {priority}, advert_interval: 100ms, vips: [198.18.1.1/24] }}\n",
        text.replace("router_id: lb1", &format!("router_id: {role}"))
    );
    box_config(lab, role, &format!("dr-vrrp-{role}.yaml"), &text)
}

/// One run of `REQUESTS` HTTP requests to `url` through the pair (lb1 MASTER, lb2 BACKUP),
/// sent from the client in batches of `BATCH`. After every batch (so that a run that loops
/// fails at the first one instead of spinning through all of them) it asserts that the BACKUP
/// transmitted nothing since it started (`xvs_tx_packets_total` = 0) and that `bounds` (the
/// counts since the run began; `Err` = why a bound is broken) holds. At the end: every request
/// answered, by both real servers; the MASTER forwarded at least `min_frames_per_request`
/// frames per request (it did the work); the BACKUP scheduled no connection. Prints the
/// figures (`what` names the run) and returns the counts of the run.
fn run_through_the_pair(
    lab: &Lab,
    what: &str,
    url: &str,
    wan_switch: bool,
    min_frames_per_request: u64,
    bounds: impl Fn(&Counts) -> Result<(), &'static str>,
) -> Counts {
    let before = Counts::settled(lab, wan_switch);
    let report = |c: &Counts| {
        format!(
            "{what}: client sent {} TCP segments and received {}; the real servers received {} and sent {}; xvs transmitted lb1 {} lb2 {} frames (lb2 since it started: {}); the hub handed lb1 {} lb2 {} frames on the LAN, {} and {} on the client side; drops lb1 {:?} lb2 {:?}",
            c.client_sent,
            c.client_got,
            c.servers_got,
            c.servers_sent,
            c.xvs_tx[0],
            c.xvs_tx[1],
            c.backup_tx_ever,
            c.lan_handed[0],
            c.lan_handed[1],
            c.wan_handed[0],
            c.wan_handed[1],
            drops(&lab.metrics_in("lb1")),
            drops(&lab.metrics_in("lb2")),
        )
    };
    let (mut ok, mut failed, mut by, mut errors) = (0, 0, BTreeMap::new(), Vec::new());
    let mut c = Counts::default();
    for n in 1..=REQUESTS / BATCH {
        let s = lab.http_client_url(url, BATCH, 2.0);
        ok += s.ok;
        failed += s.failed;
        for (k, v) in s.by_server {
            *by.entry(k).or_insert(0u64) += v;
        }
        errors.extend(s.errors);
        c = Counts::settled(lab, wan_switch).since(&before);
        let broken = if c.backup_tx_ever != 0 {
            Err("the BACKUP transmitted")
        } else {
            bounds(&c)
        };
        if let Err(why) = broken {
            panic!("after {} requests: {why}\n{}", n * BATCH, report(&c));
        }
    }
    eprintln!("{}", report(&c));
    assert_eq!(
        (ok, failed),
        (u64::from(REQUESTS), 0),
        "{what}: {errors:?}\n{}",
        report(&c)
    );
    assert!(
        by.get("r1").copied().unwrap_or(0) > 0 && by.get("r2").copied().unwrap_or(0) > 0,
        "{what}: {by:?}"
    );
    assert!(
        c.xvs_tx[0] >= min_frames_per_request * u64::from(REQUESTS),
        "{what}: lb1 forwarded only {} frames\n{}",
        c.xvs_tx[0],
        report(&c)
    );
    let page2 = lab.metrics_in("lb2");
    assert_eq!(
        total(&page2, "xvs_service_connections_total"),
        0,
        "{what}: the BACKUP scheduled connections:\n{page2}"
    );
    assert_no_vrrp_errors(&lab.metrics_in("lb1"), "lb1");
    assert_no_vrrp_errors(&page2, "lb2");
    c
}

/// The DR service behind VRRP on a hub (`echo`: one that also sends every frame back to its
/// sender): [`run_through_the_pair`] with the bounds, after every batch:
///
/// - the MASTER transmitted no more than the client sent: in DR each client segment crosses the
///   MASTER once, towards a real server, and the replies bypass it (the client's TCP segments,
///   retransmissions included, all go to the VIP);
/// - the real servers received exactly what xvs transmitted (nothing forwarded twice, nothing
///   else reached them).
///
/// And that the hub handed the BACKUP every frame of the LAN: the requests the router sent to
/// the MASTER's MAC, the MASTER's output and the replies to the router (a learning switch would
/// have handed it none of them: without that the test would prove nothing). With `echo`, that
/// the MASTER was handed its own output back too, which DR leaves addressed to the VIP:
/// forwarding it again would loop.
fn dr_behind_vrrp_on_a_hub(echo: bool) {
    let what = if echo { "DR, echoing hub" } else { "DR, hub" };
    let lab = Lab::up("vrrpdr");
    lab.hub(echo);
    lab.serve();
    let (b1, b2) = (dr_box(&lab, "lb1", 200), dr_box(&lab, "lb2", 150));
    let (x1, x2) = start_pair(&lab, &b1, &b2, 1);
    let url = format!("http://{ROUTED_VIP}/");
    assert!(
        lab.wait_url_ready(&url, Duration::from_secs(20)),
        "the VIP never answered:\nlb1:\n{}\nlb2:\n{}",
        x1.log(),
        x2.log()
    );
    // Each request is at least SYN, request, ACK of the answer and FIN from the client.
    let c = run_through_the_pair(&lab, what, &url, false, 4, |c| {
        if c.xvs_tx[0] > c.client_sent {
            Err("the MASTER transmitted more frames than the client sent")
        } else if c.servers_got != c.xvs_tx[0] {
            Err("the real servers did not receive exactly the frames xvs transmitted")
        } else {
            Ok(())
        }
    });
    let lan = c.client_sent + c.xvs_tx[0] + c.servers_sent;
    assert!(
        c.lan_handed[1] >= lan,
        "{what}: the hub did not flood: {c:?}"
    );
    if echo {
        assert!(
            c.lan_handed[0] >= lan,
            "{what}: the hub did not echo: {c:?}"
        );
    }
    x1.stop_cleanly();
    x2.stop_cleanly();
}

#[test]
fn dr_behind_vrrp_on_a_hub_only_the_master_forwards() {
    dr_behind_vrrp_on_a_hub(false);
}

#[test]
fn frames_xvs_sent_never_come_back_through_it() {
    dr_behind_vrrp_on_a_hub(true);
}

/// The `vrrp` lab on a hub, lb1 MASTER and lb2 BACKUP with `config/vrrp.yaml` (NAT), serving.
fn nat_pair_on_a_hub() -> (Lab, Box_, Xvs, Box_, Xvs) {
    let lab = Lab::up("vrrp");
    lab.hub(false);
    lab.serve();
    let (b1, b2) = (
        write_config(&lab, "lb1", 200),
        write_config(&lab, "lb2", 150),
    );
    let (x1, x2) = start_pair(&lab, &b1, &b2, 2);
    assert!(
        lab.wait_http_ready(Duration::from_secs(20)),
        "the VIP never answered:\nlb1:\n{}\nlb2:\n{}",
        x1.log(),
        x2.log()
    );
    (lab, b1, x1, b2, x2)
}

/// The NAT service behind VRRP on a hub: [`run_through_the_pair`] with the bounds, after every
/// batch: the MASTER transmitted no more than the requests need — in NAT each segment of the
/// client crosses it once towards a real server and each segment of a real server once towards
/// the client, so at most client-sent + servers-sent frames; the real servers received no more
/// than the client sent and the client no more than the real servers sent (nothing twice). And
/// that the hub handed the BACKUP the client's requests (on wan0) and the real servers'
/// replies (on lan0), all addressed to the MASTER.
#[test]
fn nat_behind_vrrp_on_a_hub_only_the_master_forwards() {
    let (lab, _b1, x1, _b2, x2) = nat_pair_on_a_hub();
    let url = format!("http://{VIP}/");
    // Each request is at least 4 segments each way.
    let c = run_through_the_pair(&lab, "NAT, hub", &url, true, 8, |c| {
        if c.xvs_tx[0] > c.client_sent + c.servers_sent {
            Err("the MASTER transmitted more than the client and the real servers sent")
        } else if c.servers_got > c.client_sent || c.client_got > c.servers_sent {
            Err("a segment was delivered twice")
        } else {
            Ok(())
        }
    });
    assert!(
        c.wan_handed[1] >= c.client_sent && c.lan_handed[1] >= c.servers_sent,
        "the hub did not flood: {c:?}"
    );
    x1.stop_cleanly();
    x2.stop_cleanly();
}

/// Sends one raw TCP SYN per source port in `ports` from the client's eth0 (AF_PACKET): from
/// the client (MAC and 198.18.0.2) to VIP:80, Ethernet destination `dst_mac`, checksums right.
fn send_syns(lab: &Lab, dst_mac: &str, ports: std::ops::Range<u16>) {
    let script = r#"
import socket, struct, sys
dst_mac, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src_mac = "02:18:00:00:00:02"
src, dst = socket.inet_aton("198.18.0.2"), socket.inet_aton(sys.argv[4])
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for port in range(first, last):
    tcp = struct.pack("!HHIIBBHHH", port, 80, 0x1000 + port, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), port, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + tcp)
"#;
    lab.exec_ok(
        "client",
        &[
            "python3",
            "-c",
            script,
            dst_mac,
            &ports.start.to_string(),
            &ports.end.to_string(),
            VIP,
        ],
    );
}

/// The client ports of `socket`'s connection table (`xvs ctl conns --json`).
fn conn_client_ports(socket: &Path) -> Vec<u16> {
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .args(["conns", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl conns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let client: std::net::SocketAddr = c["client"].as_str().unwrap().parse().unwrap();
            client.port()
        })
        .collect()
}

/// SYNs to the VIP whose Ethernet destination is not the MASTER's own MAC — a foreign unicast,
/// the broadcast, a multicast MAC (VRRP's group 224.0.0.18, which the boxes' kernels listen to)
/// and the BACKUP's MAC — reach both boxes on the hub and are never forwarded: the real servers
/// receive no TCP segment and neither box makes a connection entry. The same SYN to the
/// MASTER's MAC afterwards is forwarded and tracked: the frames are well formed and the
/// counting sees a forwarded one.
#[test]
fn syns_to_a_foreign_broadcast_or_multicast_mac_are_never_forwarded() {
    let (lab, b1, x1, b2, x2) = nat_pair_on_a_hub();
    let targets = [
        ("a foreign unicast MAC", "02:18:00:00:00:99", 41000..41010),
        ("the broadcast MAC", "ff:ff:ff:ff:ff:ff", 41010..41020),
        ("a multicast MAC", "01:00:5e:00:00:12", 41020..41030),
        ("the BACKUP's MAC", LB2_WAN_MAC, 41030..41040),
    ];
    let servers_got = |lab: &Lab| tcp_segments(lab, "r1").0 + tcp_segments(lab, "r2").0;
    let connections = |role: &str| total(&lab.metrics_in(role), "xvs_service_connections_total");
    let (conns1, conns2) = (connections("lb1"), connections("lb2"));
    let got_before = servers_got(&lab);
    let handed = |lab: &Lab| {
        [
            link_counter(lab, "wsw", "p-lb1", "tx_packets"),
            link_counter(lab, "wsw", "p-lb2", "tx_packets"),
        ]
    };
    let handed_before = handed(&lab);
    for (_, mac, ports) in &targets {
        send_syns(&lab, mac, ports.clone());
    }
    // Long enough for a forwarded SYN, its SYN-ACK and the client's RST.
    std::thread::sleep(Duration::from_millis(1000));
    let got = servers_got(&lab) - got_before;
    let h = handed(&lab);
    let handed = [h[0] - handed_before[0], h[1] - handed_before[1]];
    let (ports1, ports2) = (conn_client_ports(&b1.socket), conn_client_ports(&b2.socket));
    let entries = |ports: &[u16], range: &std::ops::Range<u16>| {
        ports.iter().filter(|p| range.contains(p)).count()
    };
    let mut wrong = Vec::new();
    for (what, _, range) in &targets {
        let (e1, e2) = (entries(&ports1, range), entries(&ports2, range));
        if e1 + e2 > 0 {
            wrong.push(format!(
                "SYNs to {what}: {e1} connection entries on lb1, {e2} on lb2"
            ));
        }
    }
    eprintln!(
        "40 SYNs to other MACs: the hub handed lb1 {} and lb2 {} frames; the real servers received {got} TCP segments; drops lb1 {:?} lb2 {:?}; {wrong:?}",
        handed[0],
        handed[1],
        drops(&lab.metrics_in("lb1")),
        drops(&lab.metrics_in("lb2")),
    );
    assert!(
        handed[0] >= 40 && handed[1] >= 40,
        "the SYNs did not reach both boxes: {handed:?}"
    );
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(got, 0, "the real servers received forwarded SYNs");
    assert_eq!(
        (connections("lb1"), connections("lb2")),
        (conns1, conns2),
        "a box scheduled a connection"
    );

    // The same SYN to the MASTER's own MAC is forwarded: a real server receives it and lb1
    // tracks the connection.
    send_syns(&lab, LB1_WAN_MAC, 41100..41101);
    let end = Instant::now() + Duration::from_secs(3);
    while servers_got(&lab) == got_before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        servers_got(&lab) > got_before,
        "a SYN to the MASTER's MAC never reached a real server:\n{}",
        x1.log()
    );
    assert!(
        conn_client_ports(&b1.socket).contains(&41100),
        "lb1 has no entry for the SYN to its MAC"
    );
    assert_eq!(connections("lb1"), conns1 + 1);
    x1.stop_cleanly();
    x2.stop_cleanly();
}

/// The SIGKILL failover of `tests/e2e_vrrp.rs` (`sigkill_failover`) on the hub: frames for the
/// dead MASTER's MAC keep reaching the BACKUP, which must not serve them; the clients follow the
/// new MASTER's gratuitous ARP, and requests resume within Master_Down_Interval + 100 ms.
#[test]
fn failover_on_a_hub_within_master_down_interval() {
    let (lab, _b1, x1, b2, x2) = nat_pair_on_a_hub();
    let s = lab.http_client(10);
    assert_eq!(s.ok, 10, "{s:?}");
    sigkill_failover(&lab, &x1, &b2, &x2, "hub");
    drop(x1);
    x2.stop_cleanly();
}
