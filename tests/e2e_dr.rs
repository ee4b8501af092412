//! End to end, DR mode (`scripts/lab up dr`, `config/dr.yaml`): the client reaches the VIP
//! through a router; xvs, on the real servers' LAN, forwards each request by MAC to a real
//! server holding the VIP on lo, which answers the client directly through the router.

mod common;

#[path = "common/routed.rs"]
mod routed;

use common::Xvs;
use routed::*;

fn stop_cleanly(mut xvs: Xvs) {
    let status = xvs.stop();
    assert!(status.success(), "xvs did not stop cleanly:\n{}", xvs.log());
}

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
    stop_cleanly(xvs);
}

#[test]
fn dr_and_tun_services_on_one_load_balancer() {
    // config/dr.yaml with its UDP service switched to TUN: the dr lab's real servers also
    // decapsulate IP-in-IP, so one xvs serves HTTP by DR and UDP by TUN to the same servers.
    let lab = common::Lab::up("dr");
    lab.serve();
    let path = lab_config(&lab, "dr.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (web, dns) = text.split_at(text.find("  - name: dns").expect("dns service"));
    let mixed = format!("{web}{}", dns.replace("forwarding: dr", "forwarding: tun"));
    assert_eq!(mixed.matches("forwarding: tun").count(), 1, "{mixed}");
    std::fs::write(&path, mixed).unwrap();
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
    let http = lab.http_client_url(&url, 100, 2.0);
    let dns = lab.udp_client(&format!("{ROUTED_VIP}:5353"), 100);
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
    // `ctl list` shows each service with its method (ipvsadm's Route and Tunnel).
    let list = lab.exec_ok(
        "lb",
        &[
            env!("CARGO_BIN_EXE_xvs"),
            "ctl",
            "--socket",
            &format!("/run/xvs-{}.sock", lab.tag),
            "list",
        ],
    );
    assert!(list.contains("Route") && list.contains("Tunnel"), "{list}");
    stop_cleanly(xvs);
}
