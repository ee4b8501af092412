//! End to end, DR mode (`scripts/lab up dr`, `config/dr.yaml`): the client reaches the VIP
//! through a router; xvs, on the real servers' LAN, forwards each request by MAC to a real
//! server holding the VIP on lo, which answers the client directly through the router. One
//! run also mixes methods: DR, TUN and FULLNAT services on one load balancer.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

#[path = "common/routed.rs"]
mod routed;

use routed::*;

#[test]
fn dr_http_and_udp_through_two_real_servers_replies_bypass_the_lb() {
    let (lab, xvs) = start("dr", "dr.yaml");
    let url = format!("http://{ROUTED_VIP}/");
    let udp = format!("{ROUTED_VIP}:5353");
    let mut http = None;
    let mut dns = None;
    // Requests reach the lb through the switch port p-lb: its tx counter is what the lb got.
    assert_replies_bypass_the_lb(&lab, ("sw", "p-lb"), 600, || {
        http = Some(lab.http_client_url(&url, 300, 2.0));
        dns = Some(lab.udp_client(&udp, 100));
    });
    let (http, dns) = (http.unwrap(), dns.unwrap());
    assert_eq!(http.ok, 300, "{:?}\n{}", http.errors, xvs.log());
    // rr alternates; a client port the kernel reuses while its entry lives keeps its server,
    // so a little imbalance is allowed.
    assert_balanced(&http, 300);
    assert_eq!(dns.ok, 100, "{:?}\n{}", dns.errors, xvs.log());
    assert_balanced(&dns, 100);
    // 4000-byte datagrams: three fragments each way; xvs sends the first by its ports and the
    // others after it by MAC, the real server reassembles and answers the client directly.
    let big = lab.udp_client_sized(&udp, 10, 4000);
    assert_eq!(big.ok, 10, "{:?}\n{}", big.errors, xvs.log());
    assert_vip_answers_ping(&lab);
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    xvs.stop_cleanly();
}

/// The FULLNAT pool address the mixed test gives the load balancer on its LAN.
const POOL_ADDR: &str = "198.18.1.2";

#[test]
fn dr_tun_and_fullnat_services_on_one_load_balancer() {
    // config/dr.yaml with its UDP service switched to TUN (the dr lab's real servers also
    // decapsulate IP-in-IP) and a FULLNAT service added (tcp/8080 to the real servers' :8080,
    // from a pool address the load balancer holds on its LAN, which the real servers reach
    // on-link): one xvs serves HTTP by DR, UDP by TUN and HTTP by FULLNAT to the same servers.
    let lab = common::Lab::up("dr");
    lab.exec_ok(
        "lb",
        &[
            "ip",
            "addr",
            "add",
            &format!("{POOL_ADDR}/32"),
            "dev",
            "lan0",
        ],
    );
    lab.serve();
    for r in ["r1", "r2"] {
        lab.start_server(r, "http", 8080, r);
        // The real servers answer the pool address on-link (their LAN), not via the router.
        let route = lab.exec_ok(r, &["ip", "route", "get", POOL_ADDR]);
        assert!(
            route.contains("dev eth0") && !route.contains(" via "),
            "{r}: {route}"
        );
    }
    let path = lab.example_config("dr.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, services) = text.split_at(text.find("services:").expect("services"));
    let (web, dns) = services.split_at(services.find("  - name: dns").expect("dns service"));
    let mixed = format!(
        "{head}local_addresses:\n  - {{ name: lan-pool, addresses: [{POOL_ADDR}], ports: 20000-29999 }}\n\n\
         {web}{}\n\
         \x20 - name: web-fnat\n\
         \x20   vip: {ROUTED_VIP}\n\
         \x20   port: 8080\n\
         \x20   protocol: tcp\n\
         \x20   scheduler: rr\n\
         \x20   forwarding: fullnat\n\
         \x20   local_addresses: lan-pool\n\
         \x20   reals:\n\
         \x20     - address: 198.18.1.11:8080\n\
         \x20     - address: 198.18.1.12:8080\n",
        // The dns service (the first after web) becomes TUN; web6 after it stays DR.
        dns.replacen("forwarding: dr", "forwarding: tun", 1)
    );
    assert_eq!(mixed.matches("forwarding: tun").count(), 1, "{mixed}");
    // web and the example's IPv6 service web6.
    assert_eq!(mixed.matches("forwarding: dr").count(), 2, "{mixed}");
    std::fs::write(&path, &mixed).unwrap();
    let mut xvs = lab.start_xvs(&path);
    let url = format!("http://{ROUTED_VIP}/");
    let mut ready = false;
    for _ in 0..100 {
        ready = lab.http_client_url(&url, 1, 0.5).ok == 1;
        if ready {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(ready && xvs.running(), "xvs never answered:\n{}", xvs.log());
    // DR and TUN first: their replies go from the real servers through the router, never
    // through the load balancer (FULLNAT's would, so it runs after this check).
    let mut http = None;
    let mut dns = None;
    assert_replies_bypass_the_lb(&lab, ("sw", "p-lb"), 600, || {
        http = Some(lab.http_client_url(&url, 100, 2.0));
        dns = Some(lab.udp_client(&format!("{ROUTED_VIP}:5353"), 100));
    });
    let (http, dns) = (http.unwrap(), dns.unwrap());
    assert_eq!(http.ok, 100, "{:?}\n{}", http.errors, xvs.log());
    assert_eq!(dns.ok, 100, "{:?}\n{}", dns.errors, xvs.log());
    assert!(
        http.count("r1") > 0 && http.count("r2") > 0,
        "{:?}",
        http.by_server
    );
    assert!(
        dns.count("r1") > 0 && dns.count("r2") > 0,
        "{:?}",
        dns.by_server
    );
    // FULLNAT: requests succeed through both servers, which saw only the pool address (at a
    // pool port) as their peer, and whose replies came back through xvs.
    let fnat = lab.http_client_url(&format!("http://{ROUTED_VIP}:8080/"), 100, 2.0);
    assert_eq!(fnat.ok, 100, "FULLNAT: {:?}\n{}", fnat.errors, xvs.log());
    assert!(
        fnat.count("r1") > 0 && fnat.count("r2") > 0,
        "{:?}",
        fnat.by_server
    );
    let mut peers = 0;
    for r in ["r1", "r2"] {
        let log = lab.file(&format!("logs/{r}-http-8080.peers"));
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let peer: std::net::SocketAddrV4 = line.parse().unwrap();
            assert!(
                peer.ip().to_string() == POOL_ADDR && (20000..=29999).contains(&peer.port()),
                "{r} saw {peer}, not a pool address:port"
            );
            peers += 1;
        }
    }
    assert_eq!(peers, 100, "FULLNAT requests the real servers logged");
    let m = lab.metrics();
    assert!(
        metric(&m, "xvs_service_out_packets_total{service=\"web-fnat\"") >= 300.0,
        "xvs did not carry the FULLNAT replies:\n{m}"
    );
    // `ctl list` shows each service with its method (ipvsadm's Route and Tunnel).
    let list = lab.exec_ok(
        "lb",
        &[
            env!("CARGO_BIN_EXE_xvs"),
            "ctl",
            "--socket",
            &lab.admin_socket("lb").to_string_lossy(),
            "list",
        ],
    );
    assert!(
        list.contains("Route") && list.contains("Tunnel") && list.contains("FullNat"),
        "{list}"
    );
    xvs.stop_cleanly();
}
