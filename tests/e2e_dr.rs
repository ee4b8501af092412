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
    assert_eq!(
        (http.count("r1"), http.count("r2")),
        (150, 150),
        "{:?}",
        http.by_server
    );
    assert_eq!(dns.ok, 100, "{:?}\n{}", dns.errors, xvs.log());
    assert_eq!(
        (dns.count("r1"), dns.count("r2")),
        (50, 50),
        "{:?}",
        dns.by_server
    );
    assert_vip_answers_ping(&lab);
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"not_lb_traffic\"}"),
        0.0
    );
    stop_cleanly(xvs);
}
