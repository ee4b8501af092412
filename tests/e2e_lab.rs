//! The test lab itself, without xvs: the topology is wired as documented, the lab servers answer,
//! and the load balancer's kernel does not forward (only xvs may).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use common::{Lab, VIP};

#[test]
fn nat_lab_works_without_xvs() {
    let lab = Lab::new();
    lab.serve();
    // The servers answer in their own namespace and across the LAN switch.
    let s = lab.http_from("r1", "http://198.18.1.11/", 5);
    assert_eq!(s.ok, 5, "{s:?}");
    for (addr, name) in [("198.18.1.11", "r1"), ("198.18.1.12", "r2")] {
        let s = lab.http_from("lb", &format!("http://{addr}/"), 20);
        assert_eq!((s.ok, s.count(name)), (20, 20), "{s:?}");
    }
    let udp = lab.udp_from("lb", "198.18.1.12:5353", 10);
    assert_eq!(udp.count("r2"), 10, "{udp:?}");

    // The VIP lives on the load balancer's WAN side: the kernel answers ping for it.
    lab.exec_ok("client", &["ping", "-c", "1", "-W", "2", VIP]);
    // But nothing forwards: the VIP port is closed and the real servers are unreachable.
    let s = lab.http_client_url(&format!("http://{VIP}/"), 2, 0.5);
    assert_eq!((s.ok, s.failed), (0, 2), "{s:?}");
    let s = lab.http_client_url("http://198.18.1.11/", 1, 0.5);
    assert_eq!((s.ok, s.failed), (0, 1), "{s:?}");
    let fwd = lab.exec_ok("lb", &["sysctl", "-n", "net.ipv4.ip_forward"]);
    assert_eq!(fwd.trim(), "0");
}

#[test]
fn tags_are_unique_and_short() {
    let a = common::unique_tag();
    let b = common::unique_tag();
    assert_ne!(a, b);
    assert!(a.len() <= 8 && a.chars().all(|c| c.is_ascii_alphanumeric()));
}
