//! End to end, TUN mode (`scripts/lab up tun`, `config/tun.yaml`): xvs wraps each request in
//! IP-in-IP to a real server on another subnet behind the router; the real server decapsulates
//! it (an XDP helper, `tests/bpf/ipip_decap.c`: this kernel has no ipip module), holds the VIP
//! on lo and answers the client directly through the router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

#[path = "common/routed.rs"]
mod routed;

use routed::*;

#[test]
fn tun_http_and_udp_through_two_real_servers_replies_bypass_the_lb() {
    let (lab, xvs) = start("tun", "tun.yaml");
    let url = format!("http://{ROUTED_VIP}/");
    let udp = format!("{ROUTED_VIP}:5353");
    let mut http = None;
    let mut dns = None;
    // The lb's only link is to the router's lan0: what the router sent it is all it got.
    assert_replies_bypass_the_lb(&lab, ("rt", "lan0"), 600, || {
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
    // The real servers sit on 198.18.4.0/24, which the router reaches only by their own
    // addresses: a request arrived only if it was tunnelled to them (the router sends the
    // VIP itself back to the lb).
    assert_vip_answers_ping(&lab);
    xvs.stop_cleanly();
}

/// Python for the client: sends one UDP datagram of `payload` bytes with DF to VIP:5353 and
/// prints the path MTU the kernel then records for the VIP (waits up to 5 s for a change).
fn pmtu_probe(payload: usize) -> String {
    format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP,10,2)\n\
         s.connect(('{ROUTED_VIP}',5353))\n\
         s.send(b'x'*{payload})\n\
         mtu=0\n\
         for i in range(50):\n\
         \x20   time.sleep(0.1)\n\
         \x20   mtu=s.getsockopt(socket.IPPROTO_IP,14)\n\
         \x20   if mtu!=1500: break\n\
         print(mtu)\n"
    )
}

#[test]
fn tun_relays_fragmentation_needed_from_inside_the_tunnel() {
    let (lab, xvs) = start("tun", "tun.yaml");
    // 1450 bytes with DF: 1470 encapsulated fits the lb's link (1500) but not the server
    // subnet (1400). The router answers the lb "fragmentation needed, MTU 1400"; xvs tells the
    // client "fragmentation needed, MTU 1380" from the VIP.
    let mtu = lab.exec_ok("client", &["python3", "-c", &pmtu_probe(1450 - 28)]);
    assert_eq!(mtu.trim(), "1380", "path MTU to the VIP:\n{}", xvs.log());
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"icmp_untracked\"}"),
        0.0,
        "{m}"
    );
    xvs.stop_cleanly();
}

#[test]
fn tun_answers_too_big_df_packets_with_fragmentation_needed() {
    let (lab, xvs) = start("tun", "tun.yaml");
    // A 1500-byte UDP datagram with DF to the VIP: 1520 bytes once encapsulated, over lan0's
    // MTU of 1500. xvs answers ICMP fragmentation needed with MTU 1480, which the client's
    // kernel records as the path MTU to the VIP.
    let mtu = lab.exec_ok("client", &["python3", "-c", &pmtu_probe(1472)]);
    assert_eq!(mtu.trim(), "1480", "path MTU to the VIP:\n{}", xvs.log());
    let m = lab.metrics();
    assert_eq!(
        metric(&m, "xvs_drops_total{reason=\"tunnel_mtu\"}"),
        1.0,
        "{m}"
    );
    xvs.stop_cleanly();
}
