//! Shared by the DR and TUN end-to-end tests (`tests/e2e_dr.rs`, `tests/e2e_tun.rs`): the
//! routed labs (`scripts/lab up dr|tun`), their example config, and the checks that replies
//! bypass the load balancer. `tests/e2e_ipv6.rs` uses it for DR6 and TUN6.

use std::time::{Duration, Instant};

pub use crate::common::metric;
use crate::common::{Lab, Xvs};

/// The VIP of the dr and tun topologies.
pub const ROUTED_VIP: &str = "198.18.2.100";

/// Builds `topology`, starts the servers and xvs with `config/CONFIG`, waits until the VIP
/// answers HTTP through it.
pub fn start(topology: &str, config: &str) -> (Lab, Xvs) {
    let lab = Lab::up(topology);
    lab.serve();
    let mut xvs = lab.start_xvs(&lab.example_config(config));
    let url = format!("http://{ROUTED_VIP}/");
    let end = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while Instant::now() < end && !ready {
        ready = lab.http_client_url(&url, 1, 0.5).ok == 1;
        if !ready {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
    assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
    (lab, xvs)
}

/// A kernel packet counter of `dev` in `role`'s namespace (`rx_packets`, `tx_packets`).
pub fn link_counter(lab: &Lab, role: &str, dev: &str, which: &str) -> u64 {
    lab.exec_ok(
        role,
        &["cat", &format!("/sys/class/net/{dev}/statistics/{which}")],
    )
    .trim()
    .parse()
    .expect("a counter")
}

/// Runs `traffic` (which makes the client send requests and receive their replies) and checks
/// that the replies did not pass through the load balancer: the frames delivered to it (counted
/// by the kernel on `to_lb` = (role, device), the peer of the load balancer's port) grew by at
/// most the client's own sent packets (plus a margin for ARP), while the client received at
/// least `min_replies` packets; and xvs counted no reply packet for any service.
pub fn assert_replies_bypass_the_lb(
    lab: &Lab,
    to_lb: (&str, &str),
    min_replies: u64,
    traffic: impl FnOnce(),
) {
    let lb_before = link_counter(lab, to_lb.0, to_lb.1, "tx_packets");
    let sent_before = link_counter(lab, "client", "eth0", "tx_packets");
    let got_before = link_counter(lab, "client", "eth0", "rx_packets");
    traffic();
    let lb = link_counter(lab, to_lb.0, to_lb.1, "tx_packets") - lb_before;
    let sent = link_counter(lab, "client", "eth0", "tx_packets") - sent_before;
    let got = link_counter(lab, "client", "eth0", "rx_packets") - got_before;
    eprintln!("client sent {sent} and received {got} packets; the lb was handed {lb}");
    assert!(got >= min_replies, "the client received only {got} packets");
    assert!(
        lb <= sent + 20,
        "the load balancer was handed {lb} frames for the client's {sent} (+{got} replies): replies passed through it"
    );
    let m = lab.metrics();
    for line in m.lines() {
        if line.starts_with("xvs_service_out_packets_total{")
            || line.starts_with("xvs_real_out_packets_total{")
        {
            assert!(line.ends_with(" 0"), "xvs forwarded replies: {line}");
        }
    }
    assert!(
        metric(&m, "xvs_service_in_packets_total{service=\"web\"") >= 300.0,
        "xvs counted too few requests:\n{m}"
    );
}

/// Both real servers answered, `total` in all, each within 10 % of half.
pub fn assert_balanced(s: &crate::common::Summary, total: u64) {
    let (r1, r2) = (s.count("r1"), s.count("r2"));
    assert_eq!(r1 + r2, total, "{:?}", s.by_server);
    assert!(r1.abs_diff(r2) <= total / 10, "rr split {:?}", s.by_server);
}

/// The client pings the VIP: the load balancer's kernel answers (the filter passes ICMP echo).
pub fn assert_vip_answers_ping(lab: &Lab) {
    let out = lab.exec_ok(
        "client",
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", ROUTED_VIP],
    );
    assert!(out.contains("3 received"), "{out}");
}
