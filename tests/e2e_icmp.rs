//! End to end, ICMP errors through NAT (`scripts/lab up nat`, `config/nat.yaml`): a real
//! server's "port unreachable" about a datagram xvs sent it reaches the client translated (from
//! the VIP, quoting client → VIP:53), so the client's connected UDP socket sees the refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::time::Duration;

use common::{Lab, VIP};

#[test]
fn port_unreachable_from_a_real_server_reaches_the_client_translated() {
    let lab = Lab::new();
    lab.serve();
    let cfg = lab.example_config("nat.yaml");
    let mut xvs = lab.start_xvs(&cfg);
    assert!(
        lab.wait_http_ready(Duration::from_secs(20)),
        "xvs never answered:\n{}",
        xvs.log()
    );
    // The DNS service answers while its servers run...
    assert_eq!(lab.udp_client(&format!("{VIP}:53"), 4).ok, 4);
    // ...and once they are gone, each real server's kernel answers port unreachable.
    lab.stop_server("r1", "udp", 5353);
    lab.stop_server("r2", "udp", 5353);
    let refused = lab.udp_refused(&format!("{VIP}:53"), 4);
    assert_eq!(
        refused,
        4,
        "the client did not see the real servers' port unreachable:\n{}",
        xvs.log()
    );
    let m = lab.metrics();
    let untracked = m
        .lines()
        .find(|l| l.starts_with("xvs_drops_total{reason=\"icmp_untracked\"}"))
        .expect("icmp_untracked metric");
    assert!(untracked.ends_with(" 0"), "{untracked}");
    assert!(xvs.stop().success(), "{}", xvs.log());
}
