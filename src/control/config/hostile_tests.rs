//! Unit tests of the rules against hostile files: a byte order mark, addresses xvs cannot send
//! to, an MTU the frames cannot carry, the filter's map capacities, memory, and length limits.
//! A fake [`Host`] stands for the machine.

use std::net::IpAddr;

use super::host::{HostAddress, Link};
use super::tests::{assert_error_on, errors_on};
use super::validate::limits::{MAX_NAME_LEN, MAX_REALS_PER_SERVICE, MAX_VRRP_VIPS};
use super::*;
use crate::control::memory::{Budget, StartupMemory, RESERVE};

/// lo (1) 127.0.0.1/8, lan0 (2) 198.18.1.1/24 + 198.18.3.1/31, eth0 (3) 192.0.2.2/24; lan0's
/// MTU is `mtu`; the process can get `memory` bytes, if set.
struct FakeHost {
    mtu: u32,
    memory: Option<u64>,
}

const HOST: FakeHost = FakeHost {
    mtu: 1500,
    memory: None,
};

impl Host for FakeHost {
    fn iface_exists(&self, name: &str) -> bool {
        matches!(name, "lo" | "lan0" | "eth0")
    }

    fn link(&self, name: &str) -> Option<Link> {
        let (ifindex, mtu) = match name {
            "lo" => (1, 65536),
            "lan0" => (2, self.mtu),
            "eth0" => (3, 1500),
            _ => return None,
        };
        Some(Link {
            ifindex,
            mtu,
            rx_queues: 2,
        })
    }

    fn addresses(&self) -> Result<Vec<HostAddress>, String> {
        let a = |ifindex, addr: &str, prefix_len| HostAddress {
            ifindex,
            addr: addr.parse::<IpAddr>().unwrap(),
            prefix_len,
        };
        Ok(vec![
            a(1, "127.0.0.1", 8),
            a(2, "198.18.1.1", 24),
            a(2, "198.18.3.1", 31),
            a(3, "192.0.2.2", 24),
        ])
    }

    fn memory(&self) -> Option<Budget> {
        self.memory.map(|bytes| Budget {
            bytes,
            source: "a test budget".into(),
        })
    }
}

#[track_caller]
fn assert_ok_on(host: &dyn Host, text: &str) {
    let errs = errors_on(host, text);
    assert!(errs.is_empty(), "expected a valid config, got {errs:#?}");
}

/// A NAT service on lan0 with one real server, written as `real`, and `extra` appended to the
/// service (indented by 4).
fn service_with(real: &str, extra: &str) -> String {
    format!(
        "datapath:\n  interfaces:\n    - name: lan0\nservices:\n  - name: web\n    vip: 198.18.0.100\n    port: 80\n    reals:\n      - address: {real}\n{extra}"
    )
}

#[test]
fn a_byte_order_mark_is_ignored_and_positions_stay_right() {
    let text = "global: {router_id: \"\"}\ndatapath:\n  interfaces:\n    - name: lan0\n";
    let with_bom = format!("\u{feff}{text}");
    let want = vec!["1:21: router_id must not be empty".to_string()];
    assert_eq!(errors_on(&HOST, text), want);
    assert_eq!(errors_on(&HOST, &with_bom), want);
    // A BOM before a document marker, or before a comment, is no second document.
    assert_ok_on(
        &HOST,
        "\u{feff}---\ndatapath:\n  interfaces:\n    - name: lan0\n",
    );
    assert_ok_on(
        &HOST,
        "\u{feff}# c\ndatapath:\n  interfaces:\n    - name: lan0\n",
    );
}

#[test]
fn real_servers_are_never_loopback_the_box_itself_or_a_subnet_edge() {
    assert_ok_on(&HOST, &service_with("198.18.1.11:80", ""));
    for (real, want) in [
        ("127.0.0.1:80", "9:18: real server 127.0.0.1:80 is a loopback address"),
        ("127.9.9.9:80", "9:18: real server 127.9.9.9:80 is a loopback address"),
        ("198.18.1.1:80", "9:18: real server 198.18.1.1:80 is an address of this box (198.18.1.1/24)"),
        // An address on an interface the datapath does not use is the box's all the same.
        ("192.0.2.2:80", "9:18: real server 192.0.2.2:80 is an address of this box"),
        ("198.18.1.255:80", "9:18: real server 198.18.1.255:80 is the broadcast address of 198.18.1.0/24, a subnet of interface lan0"),
        ("198.18.1.0:80", "9:18: real server 198.18.1.0:80 is the network address of 198.18.1.0/24, a subnet of interface lan0"),
        ("224.0.0.1:80", "9:18: real server 224.0.0.1 is not a unicast address"),
        ("0.0.0.0:80", "9:18: real server 0.0.0.0 is not a unicast address"),
    ] {
        assert_error_on(&HOST, &service_with(real, ""), want);
    }
    // A /31 has neither a network nor a broadcast address; eth0 is not a datapath interface.
    assert_ok_on(&HOST, &service_with("198.18.3.0:80", ""));
    assert_ok_on(&HOST, &service_with("192.0.2.255:80", ""));
    // Another service's VIP, or a VRRP address, is this box's too.
    let two = format!(
        "{}  - {{ name: dns, vip: 198.18.0.53, port: 53, protocol: udp, reals: [{{ address: 198.18.1.11:53 }}] }}\n",
        service_with("198.18.0.53:80", "")
    );
    assert_error_on(
        &HOST,
        &two,
        "9:18: real server 198.18.0.53:80 is the VIP of service `dns`",
    );
    let vrrp = format!(
        "{}vrrp:\n  instances:\n    - {{ name: VI_1, interface: lan0, vrid: 1, vips: [198.18.1.254/24] }}\n",
        service_with("198.18.1.254:80", "")
    );
    assert_error_on(
        &HOST,
        &vrrp,
        "9:18: real server 198.18.1.254:80 is a VRRP address of instance `VI_1`",
    );
}

#[test]
fn sorry_servers_follow_the_real_server_rules() {
    for (sorry, want) in [
        (
            "127.0.0.1:80",
            "10:19: sorry server 127.0.0.1:80 is a loopback address",
        ),
        (
            "198.18.1.1:80",
            "10:19: sorry server 198.18.1.1:80 is an address of this box",
        ),
        (
            "198.18.1.255:80",
            "10:19: sorry server 198.18.1.255:80 is the broadcast address",
        ),
    ] {
        let t = service_with("198.18.1.11:80", &format!("    sorry_server: {sorry}\n"));
        assert_error_on(&HOST, &t, want);
    }
}

#[test]
fn pool_addresses_may_be_the_boxs_own_but_not_loopback_or_a_subnet_edge() {
    let pool = |addr: &str| {
        format!(
            "datapath:\n  interfaces:\n    - name: lan0\nlocal_addresses:\n  - name: p\n    addresses: [{addr}]\n    ports: 20000-29999\n"
        )
    };
    assert_ok_on(&HOST, &pool("198.18.1.1"));
    assert_ok_on(&HOST, &pool("198.18.1.2"));
    assert_error_on(
        &HOST,
        &pool("127.0.0.2"),
        "6:17: local address 127.0.0.2 is a loopback address",
    );
    assert_error_on(
        &HOST,
        &pool("198.18.1.255"),
        "6:17: local address 198.18.1.255 is the broadcast address of 198.18.1.0/24",
    );
    assert_error_on(
        &HOST,
        &pool("198.18.1.0"),
        "6:17: local address 198.18.1.0 is the network address of 198.18.1.0/24",
    );
}

#[test]
fn vips_are_never_loopback_broadcast_multicast_or_unspecified() {
    let vip = |v: &str| service_with("198.18.1.11:80", "").replace("198.18.0.100", v);
    assert_error_on(
        &HOST,
        &vip("127.0.0.1"),
        "6:10: vip 127.0.0.1 is a loopback address",
    );
    for v in ["255.255.255.255", "224.0.0.5", "0.0.0.0"] {
        assert_error_on(
            &HOST,
            &vip(v),
            &format!("6:10: vip {v} is not a unicast address"),
        );
    }
    let vrrp = "datapath:\n  interfaces:\n    - name: lan0\nvrrp:\n  instances:\n    - name: VI_1\n      interface: lan0\n      vrid: 1\n      vips: [127.0.0.5/8]\n";
    assert_error_on(&HOST, vrrp, "9:14: 127.0.0.5 is a loopback address");
}

#[test]
fn an_mtu_the_frame_size_cannot_carry_is_refused_with_the_numbers() {
    let t =
        |frame: u32| format!("datapath:\n  interfaces:\n    - name: lan0\n  frame_size: {frame}\n");
    // 4096 - 256 (XDP headroom) - 14 (Ethernet) = 3826.
    assert_ok_on(
        &FakeHost {
            mtu: 3826,
            memory: None,
        },
        &t(4096),
    );
    assert_error_on(
        &FakeHost { mtu: 3827, memory: None },
        &t(4096),
        "3:13: interface `lan0` has MTU 3827, but frame_size 4096 carries frames of at most 3840 bytes (4096 less 256 bytes of XDP headroom), an MTU of at most 3826",
    );
    assert_ok_on(
        &FakeHost {
            mtu: 1778,
            memory: None,
        },
        &t(2048),
    );
    assert_error_on(
        &FakeHost { mtu: 9000, memory: None },
        &t(2048),
        "3:13: interface `lan0` has MTU 9000, but frame_size 2048 carries frames of at most 1792 bytes",
    );
    // Loopback's 64 KiB MTU is no exception.
    assert_error_on(
        &HOST,
        "datapath:\n  interfaces:\n    - name: lo\n",
        "3:13: interface `lo` has MTU 65536",
    );
}

#[test]
fn max_entries_must_fit_the_memory_the_process_can_get() {
    let t = |n: u64| {
        format!("datapath:\n  interfaces:\n    - name: lan0\n      queues: [0]\nconntrack:\n  max_entries: {n}\n")
    };
    // One queue, one interface, ring 2048, 4 KiB frames: 16 MiB of UMEM.
    let need = |n: u64| StartupMemory::new(n, 0, 0, 16 << 20).total() + RESERVE;
    let budget = need(10_000_000) - 1;
    let host = FakeHost {
        mtu: 1500,
        memory: Some(budget),
    };
    let errs = errors_on(&host, &t(10_000_000));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert!(
        e.starts_with("6:16: max_entries 10000000 needs ") && e.contains("(connection table "),
        "{e}"
    );
    assert!(
        e.contains("but this process can get") && e.contains("(a test budget)"),
        "{e}"
    );
    // The hint is the exact largest value that fits.
    let fit: u64 = e
        .rsplit_once("max_entries ")
        .and_then(|(_, rest)| rest.strip_suffix(" would fit"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no hint in {e}"));
    assert!(fit < 10_000_000 && fit > 9_000_000, "{fit}");
    assert_ok_on(&host, &t(fit));
    assert_error_on(&host, &t(fit + 1), "6:16: max_entries");
    // Not checked without a budget (a reload: the tables already exist).
    assert_ok_on(&HOST, &t(100_000_000));
}

#[test]
fn the_ipv6_table_counts_in_the_memory_the_tables_need() {
    let t = |v6: u64| {
        format!("datapath:\n  interfaces:\n    - name: lan0\n      queues: [0]\nconntrack:\n  max_entries: 1000000\n  max_entries_ipv6: {v6}\n")
    };
    // About 16.5 MiB of UMEM: a MiB of slack, far below the IPv6 table's 97 MiB.
    let need = |v6: u64| StartupMemory::new(1_000_000, v6, 0, 16 << 20).total() + RESERVE;
    let host = FakeHost {
        mtu: 1500,
        memory: Some(need(0) + (1 << 20)),
    };
    assert_ok_on(&host, &t(0));
    let errs = errors_on(&host, &t(1_000_000));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(", IPv6 connection table "), "{}", errs[0]);
}

#[test]
fn names_have_a_length_limit_and_no_control_characters() {
    let t = |id: &str| {
        format!("global:\n  router_id: \"{id}\"\ndatapath:\n  interfaces:\n    - name: lan0\n")
    };
    assert_ok_on(&HOST, &t(&"x".repeat(MAX_NAME_LEN)));
    assert_error_on(
        &HOST,
        &t(&"x".repeat(MAX_NAME_LEN + 1)),
        "2:14: router_id is 65 bytes long; at most 64 are allowed",
    );
    assert_error_on(
        &HOST,
        &t("lb1\\nxvs_build_info 1"),
        "2:14: router_id must not contain control characters",
    );
    let svc = service_with("198.18.1.11:80", "").replace("name: web", "name: \"web\\u0007\"");
    assert_error_on(
        &HOST,
        &svc,
        "5:11: service name must not contain control characters",
    );
}

#[test]
fn commands_and_http_checks_are_bounded() {
    let exec = |cmd: &str| {
        service_with(
            "198.18.1.11:80",
            &format!("    health_check: {{ type: exec, exec: {{ command: \"{cmd}\" }} }}\n"),
        )
    };
    assert_ok_on(&HOST, &exec(&"a".repeat(4096)));
    assert_error_on(
        &HOST,
        &exec(&"a".repeat(4097)),
        "10:50: exec command is 4097 bytes long",
    );
    assert_error_on(
        &HOST,
        &exec("check\\0 %ADDR%"),
        "10:50: exec command must not contain a NUL",
    );
    let http = |path: &str| {
        service_with(
            "198.18.1.11:80",
            &format!("    health_check: {{ type: http, http: {{ path: \"{path}\" }} }}\n"),
        )
    };
    assert_ok_on(&HOST, &http("/health?x=%20"));
    assert_error_on(
        &HOST,
        &http("/ HTTP/1.0\\r\\nX-Injected: 1"),
        "10:47: http path must not contain spaces or control characters",
    );
}

#[test]
fn lists_have_limits() {
    let reals: String = (0..=MAX_REALS_PER_SERVICE)
        .map(|i| {
            format!(
                "      - address: 198.18.{}.{}:80\n",
                10 + i / 200,
                2 + i % 200
            )
        })
        .collect();
    let t = format!(
        "datapath:\n  interfaces:\n    - name: lan0\nservices:\n  - name: web\n    vip: 198.18.0.100\n    port: 80\n    forwarding: dr\n    reals:\n{reals}"
    );
    assert_error_on(
        &HOST,
        &t,
        "9:5: 4097 real servers in service `web`; at most 4096 are supported",
    );
    let vips: Vec<String> = (0..=MAX_VRRP_VIPS)
        .map(|i| format!("198.18.{}.{}/32", 100 + i / 200, 1 + i % 200))
        .collect();
    let t = format!(
        "datapath:\n  interfaces:\n    - name: lan0\nvrrp:\n  instances:\n    - name: VI_1\n      interface: lan0\n      vrid: 1\n      vips: [{}]\n",
        vips.join(", ")
    );
    assert_error_on(
        &HOST,
        &t,
        "9:7: 256 vips (the advertisement's address count is 8 bits) in instance `VI_1`",
    );
}

#[test]
fn the_xdp_filters_maps_bound_interfaces_and_queues() {
    let ifaces: String = (0..17).map(|i| format!("    - name: x{i}\n")).collect();
    assert_error_on(
        &HOST,
        &format!("datapath:\n  interfaces:\n{ifaces}"),
        "2:3: 17 interfaces (the XDP filter's ports map); at most 16 are supported",
    );
    assert_error_on(
        &HOST,
        "datapath:\n  interfaces:\n    - name: lan0\n      queues: [0, 64]\n",
        "4:19: queue 64: the XDP filter serves queues 0..63 of each interface",
    );
}

#[test]
fn a_sync_peer_is_not_an_address_of_this_box() {
    let dir = crate::sync::keyfile::tests::TempDir::new("sync-own");
    let key = dir.file("k", b"0123456789abcdef", 0o600);
    let t = format!(
        "datapath:\n  interfaces:\n    - name: lan0\nsync:\n  interface: eth0\n  peers: [192.0.2.2, 198.18.1.1, 198.18.1.2]\n  key_file: {}\n",
        key.display()
    );
    assert_error_on(
        &HOST,
        &t,
        "6:11: peer 192.0.2.2 is an address of this box (192.0.2.2/24): a peer is another director",
    );
    assert_error_on(&HOST, &t, "6:22: peer 198.18.1.1 is an address of this box");
    let errs = errors_on(&HOST, &t);
    assert!(!errs.iter().any(|e| e.contains("198.18.1.2")), "{errs:#?}");
    assert_eq!(errs.len(), 2, "{errs:#?}");
}
