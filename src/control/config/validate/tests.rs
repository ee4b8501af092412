//! The config file and the VRRP instance accept the same values: validation calls the
//! instance's own rules ([`crate::vrrp::instance::rules`]) instead of repeating them.

use std::net::IpAddr;

use super::super::tests::errors_on;
use crate::vrrp::instance::{self, InstanceConfig};
use crate::vrrp::Version;

fn fake_ifaces(name: &str) -> bool {
    name == "eth0"
}

/// One instance on eth0 with `keys` (YAML `key: value` lines) added.
fn instance_yaml(keys: &str) -> String {
    format!(
        "datapath:\n  interfaces: [{{ name: eth0 }}]\nvrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      vips: [198.18.0.100/24]\n{keys}"
    )
}

/// Whether the config file accepts the instance.
fn file_accepts(keys: &str) -> bool {
    errors_on(&fake_ifaces, &instance_yaml(keys)).is_empty()
}

/// Whether the VRRP instance accepts the same values.
fn instance_accepts(vrid: u8, priority: u8, version: Version, interval_ns: u64) -> bool {
    let cfg = InstanceConfig {
        vrid,
        version,
        priority,
        advert_interval: interval_ns,
        preempt: true,
        preempt_delay: 0,
        primary: IpAddr::from([198, 18, 0, 1]),
        vips: vec![IpAddr::from([198, 18, 0, 100])],
        unicast: false,
    };
    instance::validate(&cfg).is_ok()
}

#[test]
fn file_and_instance_agree_on_advert_intervals() {
    let ms = [
        0u64, 5, 10, 15, 100, 990, 999, 1000, 1500, 2000, 40_950, 40_955, 40_960, 41_000, 255_000,
        255_500, 256_000,
    ];
    let mut accepted = [0usize; 2];
    for (n, (version, number)) in [(Version::V2, 2), (Version::V3, 3)].into_iter().enumerate() {
        for &m in &ms {
            let keys =
                format!("      vrid: 51\n      version: {number}\n      advert_interval: {m}ms\n");
            let file = file_accepts(&keys);
            assert_eq!(
                file,
                instance_accepts(51, 100, version, m * 1_000_000),
                "v{number} advert_interval {m}ms: the file says {file}"
            );
            accepted[n] += usize::from(file);
        }
    }
    // Both sides refuse some and accept some of each version's (the test sees both answers).
    assert_eq!(accepted, [4, 7]);
}

#[test]
fn file_and_instance_agree_on_vrid_and_priority() {
    for v in [0u16, 1, 2, 254, 255, 256] {
        let as_u8 = u8::try_from(v).ok();
        let vrid_ok = file_accepts(&format!("      vrid: {v}\n"));
        assert_eq!(
            vrid_ok,
            as_u8.is_some_and(|id| instance_accepts(id, 100, Version::V3, 1_000_000_000)),
            "vrid {v}"
        );
        let priority_ok = file_accepts(&format!("      vrid: 51\n      priority: {v}\n"));
        assert_eq!(
            priority_ok,
            as_u8.is_some_and(|p| instance_accepts(51, p, Version::V3, 1_000_000_000)),
            "priority {v}"
        );
        assert_eq!(vrid_ok, (1..=255).contains(&v), "vrid {v}");
        assert_eq!(priority_ok, vrid_ok, "priority {v}");
    }
}
