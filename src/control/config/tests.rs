//! Unit tests: parsing, defaults, and one test per validation rule.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::flow::Proto;
use crate::sched::{SchedFlags, SchedulerKind};
use crate::sync::keyfile::tests::TempDir;

fn fake_ifaces(name: &str) -> bool {
    matches!(name, "eth0" | "eth1" | "wan0" | "lan0")
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_str_named(text, "t.yaml", &fake_ifaces)
}

/// `LINE:COL: message` of every error of `text` checked against the machine `host`.
pub(super) fn errors_on(host: &dyn Host, text: &str) -> Vec<String> {
    match Config::from_str_named(text, "t.yaml", host) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect(),
    }
}

/// `LINE:COL: message` of every error.
fn errors(text: &str) -> Vec<String> {
    errors_on(&fake_ifaces, text)
}

/// Asserts that one error, against the machine `host`, is `expect` (`LINE:COL: ` + a prefix of
/// the message).
#[track_caller]
pub(super) fn assert_error_on(host: &dyn Host, text: &str, expect: &str) {
    let errs = errors_on(host, text);
    assert!(
        errs.iter().any(|e| e.starts_with(expect)),
        "expected an error `{expect}`, got {errs:#?}"
    );
}

/// Asserts that one error is `expect` (`LINE:COL: ` + a prefix of the message).
#[track_caller]
fn assert_error(text: &str, expect: &str) {
    assert_error_on(&fake_ifaces, text, expect);
}

/// Asserts that the config is valid.
#[track_caller]
fn assert_ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// A valid config: one interface and one supported service. Tests append to it or edit it.
const BASE: &str = "\
datapath:
  interfaces:
    - name: eth0
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    scheduler: wrr
    reals:
      - address: 198.18.1.11:80
        weight: 3
      - address: 198.18.1.12:80
";

/// BASE with `extra` appended to the service (indented four spaces, as a service key).
fn with_service_keys(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// BASE as an IPv6 service on the lab's IPv6 plan (same lines and columns).
fn base6() -> String {
    BASE.replace("198.18.0.100", "\"2001:2::100\"")
        .replace("198.18.1.11:80", "\"[2001:2:0:1::11]:80\"")
        .replace("198.18.1.12:80", "\"[2001:2:0:1::12]:80\"")
}

// ---- parsing and defaults -------------------------------------------------------------------

#[test]
fn base_parses_with_defaults() {
    let c = assert_ok(BASE);
    assert_eq!(c.global.router_id, "lb1");
    assert_eq!(
        c.global.admin_socket,
        std::path::PathBuf::from("/run/xvs/admin.sock")
    );
    assert_eq!(
        c.global.metrics_listen,
        "127.0.0.1:9798".parse::<SocketAddr>().unwrap()
    );
    let d = &c.datapath;
    assert_eq!(d.interfaces[0].queues, Queues::All);
    assert_eq!(d.workers, Workers::Auto);
    assert_eq!(d.poll, Poll::Busy);
    assert_eq!(d.xdp_mode, XdpMode::Auto);
    assert_eq!(d.zero_copy, ZeroCopy::Auto);
    assert_eq!((d.ring_size, d.frame_size), (2048, 4096));
    assert_eq!(c.conntrack.max_entries, 1_000_000);
    assert_eq!(c.conntrack.max_entries_ipv6, None);
    assert_eq!(c.max_entries_ipv6(), 0, "no IPv6 service, no IPv6 table");
    let t = c.conntrack.timeouts;
    assert_eq!(t.tcp_established, Duration::from_secs(900));
    assert_eq!(t.tcp_syn, Duration::from_secs(30));
    assert_eq!(t.tcp_fin, Duration::from_secs(120));
    assert_eq!(t.tcp_close, Duration::from_secs(10));
    assert_eq!(t.udp, Duration::from_secs(300));
    assert_eq!(t.icmp, Duration::from_secs(30));
    assert!(!c.conntrack.sloppy_tcp);
    assert!(c.local_addresses.is_empty());
    assert!(c.vrrp.instances.is_empty() && c.vrrp.sync_groups.is_empty());
    assert!(c.sync.is_none());

    let s = &c.services[0];
    assert_eq!(s.vip, "198.18.0.100".parse::<IpAddr>().unwrap());
    assert_eq!(s.protocol, Protocol::Tcp);
    assert_eq!(s.scheduler, Scheduler::Wrr);
    assert_eq!(s.scheduler.kind(), SchedulerKind::Wrr);
    assert_eq!(s.sched_flags(), SchedFlags::default());
    assert_eq!(s.mh_table_size, None);
    assert_eq!(s.mh_table_size(), 65537);
    assert_eq!(s.forwarding, Forwarding::Nat);
    assert_eq!(s.persistence, Persistence::default());
    assert!(!s.persistence.enabled());
    assert_eq!(
        s.persistence.effective_netmask(s.vip),
        "255.255.255.255".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        s.quorum,
        Quorum {
            min_up: 1,
            hysteresis: 0
        }
    );
    assert_eq!(s.on_failure, OnFailure::Remove);
    assert!(s.health_check.is_none() && s.sorry_server.is_none());
    assert!(!s.toa && !s.one_packet);
    assert_eq!(s.key().proto, Proto::Tcp);
    assert_eq!(s.reals[0].weight, 3);
    assert_eq!(s.reals[1].weight, 1, "default weight");
    assert_eq!(s.reals[1].upper_threshold, 0);
}

/// The full CONTRACT.md example (with interfaces this test's machine has).
const CONTRACT_EXAMPLE: &str = "\
global:
  router_id: lb1
  admin_socket: /run/xvs/admin.sock
  metrics_listen: 127.0.0.1:9798
datapath:
  interfaces:
    - name: eth0
      queues: all
    - name: eth1
      queues: [0, 1]
  workers: 4
  poll: wakeup
  xdp_mode: native
  zero_copy: on
  ring_size: 4096
  frame_size: 2048
conntrack:
  max_entries: 1000000
  timeouts: { tcp_established: 15m, tcp_syn: 30s, tcp_fin: 2m, tcp_close: 10s, udp: 5m, icmp: 30s }
  sloppy_tcp: true
local_addresses:
  - name: pool1
    addresses: [198.18.1.2, 198.18.1.3]
    ports: 1024-65535
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    protocol: tcp
    scheduler: sh
    scheduler_flags: [sh-port]
    forwarding: fullnat
    local_addresses: pool1
    toa: true
    persistence: { timeout: 5m, netmask: 255.255.255.0 }
    one_packet: false
    sorry_server: 198.18.1.99:80
    quorum: { min_up: 1, hysteresis: 0 }
    health_check:
      type: http
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
      http: { path: /health, expect_status: [200, 204], host: www.example.com }
    on_failure: drain
    reals:
      - address: 198.18.1.11:80
        weight: 1
        upper_threshold: 100
        lower_threshold: 50
        health_check: { type: exec, exec: { command: \"/bin/check %ADDR% %PORT%\" } }
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      vrid: 51
      version: 3
      priority: 100
      advert_interval: 100ms
      preempt: true
      preempt_delay: 0s
      vips: [198.18.0.100/24]
      unicast_peers: [198.18.0.2]
      track_interfaces: [eth1]
      track_scripts:
        - { command: /bin/true, interval: 2s, rise: 2, fall: 2, weight: -20 }
      notify: { master: /bin/master, backup: null, fault: null }
  sync_groups:
    - { name: G1, instances: [VI_1] }
sync:
  interface: eth1
  peers: [198.18.2.2]
  key_file: /etc/xvs/sync.key
";

#[test]
fn every_section_of_the_contract_parses() {
    // Every key is built: the whole example is accepted once its key file is one xvs accepts.
    let dir = TempDir::new("contract");
    let key = dir.file("sync.key", b"0123456789abcdef\n", 0o600);
    let text = &CONTRACT_EXAMPLE.replace("/etc/xvs/sync.key", key.to_str().unwrap());
    assert_eq!(errors(text), Vec::<String>::new());
    // Parse it once more with serde alone to check the values.
    let c: Config = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(c.datapath.interfaces[1].queues, Queues::List(vec![0, 1]));
    assert_eq!(c.datapath.workers, Workers::Count(4));
    assert_eq!(c.datapath.zero_copy, ZeroCopy::On);
    assert_eq!(
        c.local_addresses[0].ports,
        PortRange {
            first: 1024,
            last: 65535
        }
    );
    let s = &c.services[0];
    assert_eq!(s.scheduler_flags, vec![SchedulerFlag::ShPort]);
    assert_eq!(s.persistence.timeout, Duration::from_secs(300));
    let hc = s.health_check.as_ref().unwrap();
    assert_eq!(hc.kind, CheckType::Http);
    assert_eq!(hc.http.as_ref().unwrap().expect_status, vec![200, 204]);
    let v = &c.vrrp.instances[0];
    assert_eq!(v.advert_interval, Duration::from_millis(100));
    assert_eq!(v.version, VrrpVersion::V3);
    assert_eq!(v.vips[0].to_string(), "198.18.0.100/24");
    assert_eq!(v.track_scripts[0].weight, -20);
    assert_eq!(c.sync.unwrap().peers.len(), 1);
}

#[test]
fn ipv6_addresses_parse() {
    let c: Config = serde_yaml_ng::from_str(
        "services:\n  - { name: v6, vip: \"2001:db8::100\", port: 80, reals: [{ address: \"[2001:db8::11]:80\" }] }\n",
    )
    .unwrap();
    assert!(c.services[0].vip.is_ipv6());
    assert!(c.services[0].reals[0].address.is_ipv6());
}

#[test]
fn vrrp_defaults() {
    let c: Config = serde_yaml_ng::from_str(
        "vrrp:\n  instances:\n    - { name: VI_1, interface: eth0, vrid: 51, vips: [198.18.0.100] }\n",
    )
    .unwrap();
    let v = &c.vrrp.instances[0];
    assert_eq!(v.version, VrrpVersion::V3);
    assert_eq!(v.priority, 100);
    assert_eq!(v.advert_interval, Duration::from_secs(1));
    assert!(v.preempt);
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_eq!(v.vips[0].len, 32);
    assert_eq!(v.notify, Notify::default());
}

#[test]
fn health_check_defaults() {
    let h = HealthCheck::default();
    assert_eq!(h.kind, CheckType::Tcp);
    assert_eq!(
        (h.interval, h.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!((h.rise, h.fall), (2, 3));
}

#[test]
fn empty_file_needs_an_interface() {
    assert_error(
        "",
        "1:1: datapath.interfaces must list at least one interface",
    );
}

#[test]
fn display_is_file_line_col_message() {
    let e = parse("datapath:\n  interfaces: []\n  bogus: 1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:3:3: datapath: unknown field `bogus`, expected one of `interfaces`, `workers`, `cpus`, `poll`, `xdp_mode`, `zero_copy`, `ring_size`, `frame_size`"
    );
    assert_eq!(e.errors()[0].file, "t.yaml");
}

#[test]
fn unreadable_file_has_no_position() {
    let e = load(Path::new("/nonexistent/xvs.yaml"), &fake_ifaces).unwrap_err();
    assert_eq!(e.errors().len(), 1);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/xvs.yaml: cannot read: "));
}

#[test]
fn strip_location_removes_serde_positions() {
    assert_eq!(strip_location("a: bad at line 3 column 4"), "a: bad");
    assert_eq!(strip_location("x at line y"), "x at line y");
}

// ---- syntax and types -----------------------------------------------------------------------

#[test]
fn unknown_keys_are_errors_at_the_key() {
    let t = with_service_keys("    colour: blue\n");
    assert_error(&t, "13:5: services[0]: unknown field `colour`");
    assert_error(
        "global:\n  router: x\n",
        "2:3: global: unknown field `router`",
    );
    assert_error("bogus: 1\n", "1:1: unknown field `bogus`");
}

#[test]
fn misspelt_keys_and_values_name_the_closest_valid_one() {
    let t = BASE.replace("scheduler: wrr", "schedular: wrr");
    let e = parse(&t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:8:5: services[0]: unknown field `schedular` — did you mean `scheduler`?"
    );
    let t = BASE.replace("scheduler: wrr", "scheduler: wrr\n    forwarding: dsr");
    assert_error(
        &t,
        "9:17: services[0].forwarding: unknown variant `dsr` — did you mean `dr`?",
    );
    let t = BASE.replace("weight: 3", "wieght: 3");
    assert_error(
        &t,
        "11:9: services[0].reals[0]: unknown field `wieght` — did you mean `weight`?",
    );
    assert_error(
        "global:\n  router: x\n",
        "2:3: global: unknown field `router` — did you mean `router_id`?",
    );
    // Nothing close: serde's list is kept.
    let t = with_service_keys("    colour: blue\n");
    assert_error(
        &t,
        "13:5: services[0]: unknown field `colour`, expected one of `name`",
    );
}

#[test]
fn yaml_syntax_error() {
    assert_error("datapath:\n  interfaces: [eth0\n", "3:1: YAML syntax error");
}

#[test]
fn duplicate_keys() {
    assert_error(
        "datapath:\n  ring_size: 64\n  ring_size: 128\n",
        "3:3: duplicate key `ring_size` (first at line 2)",
    );
}

#[test]
fn wrong_type() {
    assert_error(
        "datapath:\n  ring_size: big\n",
        "2:14: datapath.ring_size: invalid type: string \"big\", expected u32",
    );
}

#[test]
fn missing_required_key() {
    assert_error(
        "services:\n  - name: web\n    port: 80\n",
        "2:5: services[0]: missing field `vip`",
    );
}

#[test]
fn bad_addresses() {
    let t = BASE.replace("198.18.0.100", "198.18.0.300");
    assert_error(
        &t,
        "6:10: services[0].vip: invalid IP address `198.18.0.300`",
    );
    let t = BASE.replace("198.18.1.11:80", "198.18.1.11");
    assert_error(
        &t,
        "10:18: services[0].reals[0].address: invalid address `198.18.1.11`",
    );
    // A number (YAML reads `80` as one) is refused as the text it was written as.
    for n in ["80", "1.5"] {
        assert_error(
            &BASE.replace("198.18.1.11:80", n),
            &format!("10:18: services[0].reals[0].address: invalid address `{n}`: expected an address such as `198.18.1.11:80` or `[2001:db8::11]:80`"),
        );
    }
    // IPv6: each malformed form is refused at the value, saying what is wrong.
    let v6 = |real: &str| base6().replace("\"[2001:2:0:1::11]:80\"", real);
    for (real, why) in [
        (
            "\"[2001:db8::zz]:80\"",
            "`2001:db8::zz` is not an IPv6 address",
        ),
        (
            "\"2001:db8::1:80\"",
            "an IPv6 address with a port is written in brackets",
        ),
        ("\"[2001:db8::1]\"", "the port is missing"),
    ] {
        assert_error(
            &v6(real),
            &format!(
                "10:18: services[0].reals[0].address: invalid address `{}`: {why}",
                real.trim_matches('"')
            ),
        );
    }
    assert_error(
        &base6().replace("\"2001:2::100\"", "\"2001:2::zz\""),
        "6:10: services[0].vip: invalid IP address `2001:2::zz`",
    );
}

#[test]
fn durations_need_units() {
    assert_error(
        "conntrack:\n  timeouts:\n    udp: 30\n",
        "3:10: conntrack.timeouts.udp: duration `30` needs a unit",
    );
    assert_error(
        "conntrack:\n  timeouts:\n    udp: 30 parsecs\n",
        "3:10: conntrack.timeouts.udp: invalid duration `30 parsecs`",
    );
}

#[test]
fn port_out_of_range() {
    let t = BASE.replace("port: 80", "port: 70000");
    assert_error(
        &t,
        "7:11: services[0].port: port 70000 is out of range 0..65535",
    );
}

#[test]
fn enums_are_lower_case() {
    let t = BASE.replace("scheduler: wrr", "scheduler: WRR");
    assert_error(&t, "8:16: services[0].scheduler: unknown variant `WRR`");
}

#[test]
fn queues_and_workers_forms() {
    assert_error(
        "datapath:\n  interfaces:\n    - { name: eth0, queues: some }\n",
        "3:29: datapath.interfaces[0].queues: invalid queues `some`",
    );
    assert_error(
        "datapath:\n  workers: many\n",
        "2:12: datapath.workers: invalid workers `many`",
    );
}

// ---- semantic rules -------------------------------------------------------------------------

#[test]
fn errors_are_all_collected_and_sorted() {
    let t = "\
datapath:
  interfaces:
    - name: eth0
    - name: eth0
  workers: 0
  ring_size: 1000
  frame_size: 1234
conntrack: { max_entries: 0 }
";
    assert_eq!(
        errors(t),
        vec![
            "4:13: interface `eth0` is listed twice (first at line 3)",
            "5:12: workers must be at least 1 (or `auto`)",
            "6:14: ring_size 1000 must be a power of two between 64 and 65536",
            "7:15: frame_size 1234 must be 2048 or 4096",
            "8:27: max_entries must be greater than 0",
        ]
    );
}

#[test]
fn max_entries_ipv6_is_bounded_and_defaults_by_the_services_families() {
    let t = |v: &str| {
        format!("datapath:\n  interfaces:\n    - name: eth0\nconntrack:\n  max_entries: 5000\n  max_entries_ipv6: {v}\n")
    };
    assert_error(
        &t("100000001"),
        "6:21: max_entries_ipv6 must be at most 100000000",
    );
    assert_error(&t("-1"), "6:21: ");
    let c = assert_ok(&t("0"));
    assert_eq!(c.max_entries_ipv6(), 0);
    let mut c = assert_ok(&t("2000"));
    assert_eq!(c.max_entries_ipv6(), 2000);
    // The default follows max_entries once a service is IPv6.
    c.conntrack.max_entries_ipv6 = None;
    let s = assert_ok(&base6()).services.remove(0);
    c.services.push(s);
    assert_eq!(c.max_entries_ipv6(), 5000);
    let c = assert_ok(&format!("{}conntrack:\n  max_entries: 7000\n", base6()));
    assert_eq!(c.max_entries_ipv6(), 7000);
}

#[test]
fn interfaces_must_exist() {
    assert_error(
        "datapath:\n  interfaces:\n    - name: eth9\n",
        "3:13: interface `eth9` does not exist on this machine",
    );
    assert_error(
        "datapath:\n  interfaces:\n    - name: averyveryverylongname\n",
        "3:13: interface name `averyveryverylongname` is longer than 15 characters",
    );
}

#[test]
fn queue_list_rules() {
    assert_error(
        "datapath:\n  interfaces:\n    - name: eth0\n      queues: [0, 1, 0]\n",
        "4:22: queue 0 is listed twice (first at line 4)",
    );
    assert_error(
        "datapath:\n  interfaces:\n    - name: eth0\n      queues: []\n",
        "4:15: queues must list at least one queue",
    );
}

/// A machine with interface eth0 whose process may run on `cpus`.
struct CpuHost(Vec<usize>);

impl Host for CpuHost {
    fn iface_exists(&self, name: &str) -> bool {
        name == "eth0"
    }

    fn cpus(&self) -> Option<Vec<usize>> {
        Some(self.0.clone())
    }
}

fn with_cpus(cpus: &str) -> String {
    format!("datapath:\n  interfaces: [{{ name: eth0 }}]\n  cpus: {cpus}\n")
}

#[test]
fn cpus_forms() {
    let c = assert_ok("datapath:\n  interfaces: [{ name: eth0 }]\n");
    assert_eq!(c.datapath.cpus, Cpus::Auto);
    assert_eq!(c.datapath.cpus.list(), None);
    let c = assert_ok(&with_cpus("auto"));
    assert_eq!(c.datapath.cpus, Cpus::Auto);
    let c = assert_ok(&with_cpus("[3, 2]"));
    assert_eq!(c.datapath.cpus, Cpus::List(vec![3, 2]));
    assert_eq!(c.datapath.cpus.list(), Some(vec![3, 2]));
    assert_error(
        &with_cpus("all"),
        "3:9: datapath.cpus: invalid cpus `all`: expected `auto` or a list",
    );
    assert_error(
        &with_cpus("2"),
        "3:9: datapath.cpus: invalid cpus `2`: write a list, e.g. `[2]`, or `auto`",
    );
    assert_error(
        &with_cpus("[1, -1]"),
        "3:13: datapath.cpus[1]: invalid type: integer `-1`, expected u32",
    );
}

#[test]
fn cpu_list_rules() {
    assert_error(
        &with_cpus("[]"),
        "3:9: cpus must list at least one CPU, or be `auto`",
    );
    assert_error(
        &with_cpus("[1, 0, 1]"),
        "3:16: cpu 1 is listed twice (first at line 3)",
    );
}

#[test]
fn listed_cpus_must_be_the_processs() {
    let two = CpuHost(vec![0, 1]);
    assert!(errors_on(&two, &with_cpus("[1]")).is_empty());
    assert!(errors_on(&two, &with_cpus("[0, 1]")).is_empty());
    // Pointed at the element.
    assert_eq!(
        errors_on(&two, &with_cpus("[0, 9]")),
        vec!["3:13: cpu 9: not in this process's CPUs (0-1)"]
    );
    // systemd CPUAffinity=2 3 (or a cpuset) takes CPU 0 away.
    let masked = CpuHost(vec![2, 3, 5]);
    assert_eq!(
        errors_on(&masked, &with_cpus("\n    - 2\n    - 0\n    - 4")),
        vec![
            "5:7: cpu 0: not in this process's CPUs (2-3,5)",
            "6:7: cpu 4: not in this process's CPUs (2-3,5)",
        ]
    );
    // `auto` needs nothing of the host.
    assert!(errors_on(&masked, &with_cpus("auto")).is_empty());
}

#[test]
fn zero_timeout() {
    assert_error(
        "datapath:\n  interfaces: [{ name: eth0 }]\nconntrack:\n  timeouts: { udp: 0s }\n",
        "4:20: timeout udp must be greater than 0s",
    );
}

#[test]
fn global_rules() {
    assert_error(
        "global:\n  admin_socket: run/xvs.sock\n",
        "2:17: admin_socket must be an absolute path",
    );
    assert_error(
        "global:\n  router_id: \"\"\n",
        "2:14: router_id must not be empty",
    );
}

#[test]
fn duplicate_service() {
    let t =
        format!("{BASE}  - name: web2\n    vip: 198.18.0.100\n    port: 80\n    scheduler: rr\n");
    assert_error(
        &t,
        "14:10: service `web2` ([198.18.0.100]:tcp:80) is already defined by service `web` at line 6",
    );
    // Same VIP and port over UDP is another service.
    let t = format!(
        "{BASE}  - name: web2\n    vip: 198.18.0.100\n    port: 80\n    protocol: udp\n    scheduler: rr\n"
    );
    assert_ok(&t);
}

#[test]
fn duplicate_service_name() {
    let t =
        format!("{BASE}  - name: web\n    vip: 198.18.0.101\n    port: 80\n    scheduler: rr\n");
    assert_error(
        &t,
        "13:11: service name `web` is used twice (first at line 5)",
    );
}

#[test]
fn duplicate_real() {
    let t = BASE.replace("198.18.1.12:80", "198.18.1.11:80");
    assert_error(
        &t,
        "12:18: real server 198.18.1.11:80 is listed twice in service `web` (first at line 10)",
    );
}

#[test]
fn real_rules() {
    let t = BASE.replace("weight: 3", "weight: 70000");
    assert_error(&t, "11:17: weight 70000 is out of range 0..65535");
    let t = BASE.replace("198.18.1.11:80", "198.18.0.100:80");
    assert_error(
        &t,
        "10:18: real server 198.18.0.100:80 has the VIP's address",
    );
    let t = BASE.replace("198.18.1.11:80", "198.18.1.11:0");
    assert_error(
        &t,
        "10:18: real server port 0 is only allowed when the service port is 0",
    );
    let t = BASE.replace(
        "weight: 3",
        "weight: 3\n        upper_threshold: 10\n        lower_threshold: 20",
    );
    assert_error(
        &t,
        "13:26: lower_threshold 20 must not exceed upper_threshold 10",
    );
}

#[test]
fn conntrack_timeouts_fit_the_tables_clock() {
    let t = format!("{BASE}conntrack:\n  timeouts: {{ tcp_established: 25d }}\n");
    let e = errors(&t);
    assert!(
        e.iter()
            .any(|x| x.ends_with("timeout tcp_established must be at most 24d (2^31 - 1 ms)")),
        "{e:#?}"
    );
    let t = format!("{BASE}conntrack:\n  timeouts: {{ tcp_established: 24d }}\n");
    assert_ok(&t);
}

#[test]
fn persistence_port_zero_and_one_packet_are_accepted() {
    let c = assert_ok(&with_service_keys(
        "    persistence: { timeout: 5m, netmask: 255.255.255.0 }\n",
    ));
    assert!(c.services[0].persistence.enabled());
    let t = with_service_keys("    persistence: { timeout: 5m }\n")
        .replace("port: 80", "port: 0")
        .replace(":80", ":0");
    assert_eq!(assert_ok(&t).services[0].port, 0);
    let t = with_service_keys("    protocol: udp\n    one_packet: true\n");
    assert!(assert_ok(&t).services[0].one_packet);
}

#[test]
fn port_zero_service_needs_port_zero_reals() {
    let t = with_service_keys("    persistence: { timeout: 5m }\n").replace("port: 80", "port: 0");
    assert_error(
        &t,
        "10:18: a port-0 service keeps each connection's destination port: real server port must be 0, not 80",
    );
}

#[test]
fn one_packet_reals_name_one_service() {
    let second = |one_packet: &str| {
        format!(
            "  - name: dns2\n    vip: 198.18.0.101\n    port: 53\n    protocol: udp\n{one_packet}    reals:\n      - address: 198.18.1.11:53\n"
        )
    };
    let first = BASE.replace(":80", ":53").replace("port: 80", "port: 53")
        + "    protocol: udp\n    one_packet: true\n";
    assert_error(
        &(first.clone() + &second("    one_packet: true\n")),
        "21:18: real server 198.18.1.11:53 is also a real server of one_packet service `web` at line 5: replies without a connection entry could not tell the services apart",
    );
    // Without one_packet on the second service its replies are told apart by their entries.
    assert_ok(&(first + &second("")));
}

#[test]
fn port_zero_needs_persistence() {
    let t = BASE.replace("port: 80", "port: 0").replace(":80", ":0");
    assert_error(&t, "7:11: port 0 (every port) needs persistence");
    let t = with_service_keys("    persistence: { timeout: 5m }\n")
        .replace("port: 80", "port: 0")
        .replace(":80", ":0");
    assert!(!errors(&t).iter().any(|e| e.contains("needs persistence")));
}

#[test]
fn fullnat_rules() {
    let t = BASE.replace("scheduler: wrr", "scheduler: wrr\n    forwarding: fullnat");
    assert_error(&t, "9:17: forwarding fullnat needs `local_addresses`");
    let t = BASE.replace(
        "scheduler: wrr",
        "scheduler: wrr\n    forwarding: fullnat\n    local_addresses: nope",
    );
    assert_error(&t, "10:22: unknown local_addresses pool `nope`");
    let t = BASE.replace(
        "scheduler: wrr",
        "scheduler: wrr\n    local_addresses: pool1",
    );
    assert_error(
        &t,
        "9:5: local_addresses is only for forwarding: fullnat, not nat",
    );
    let t = format!(
        "local_addresses:\n  - {{ name: p, addresses: [\"2001:2:0:1::2\"] }}\n{}",
        BASE.replace(
            "scheduler: wrr",
            "scheduler: wrr\n    forwarding: fullnat\n    local_addresses: p"
        )
    );
    assert_error(
        &t,
        "12:22: local_addresses pool `p` is IPv6 but the VIP is IPv4: a FULLNAT service's local addresses are of its VIP's family",
    );
}

#[test]
fn pool_rules() {
    let t = "local_addresses:\n  - { name: p, addresses: [], ports: 2000-1000 }\n  - { name: p, addresses: [198.18.1.2, 198.18.1.2] }\n";
    let e = errors(t);
    for want in [
        "2:27: a local_addresses pool needs at least one address",
        "2:38: port range 2000-1000 is empty",
        "3:13: pool name `p` is used twice (first at line 2)",
        "3:40: address 198.18.1.2 is listed twice (first at line 3)",
    ] {
        assert!(
            e.iter().any(|x| x.starts_with(want)),
            "missing {want} in {e:#?}"
        );
    }
    assert_error(
        "local_addresses:\n  - { name: p, addresses: [198.18.1.2], ports: 10-x }\n",
        "2:48: local_addresses[0].ports: invalid port range `10-x`",
    );
}

#[test]
fn toa_rules() {
    let t = with_service_keys("    toa: true\n");
    assert_error(&t, "13:5: toa is only for forwarding: fullnat");
    let t = format!(
        "local_addresses:\n  - {{ name: p, addresses: [198.18.1.2] }}\n{}",
        with_service_keys(
            "    toa: true\n    forwarding: fullnat\n    local_addresses: p\n    protocol: udp\n"
        )
    );
    assert_error(&t, "15:5: toa is only for protocol: tcp");
}

#[test]
fn dr_and_tun_keep_the_port() {
    let t = with_service_keys("    forwarding: dr\n").replace("198.18.1.12:80", "198.18.1.12:8080");
    assert_error(
        &t,
        "12:18: forwarding dr keeps the destination port: real server port 8080 must equal the service port 80",
    );
    let t =
        with_service_keys("    forwarding: tun\n").replace("198.18.1.12:80", "198.18.1.12:8080");
    assert_error(&t, "12:18: forwarding tun keeps the destination port");
}

#[test]
fn address_families_do_not_mix() {
    let t = BASE.replace("198.18.1.12:80", "\"[2001:db8::12]:80\"");
    assert_error(
        &t,
        "12:18: real server [2001:db8::12]:80 is IPv6 but the VIP is IPv4: forwarding nat cannot mix address families",
    );
    // Every method keeps the family: dr and tun (IPVS tunnels IPv6 in IPv4; xvs does not).
    for m in ["dr", "tun"] {
        let t = with_service_keys(&format!("    forwarding: {m}\n"))
            .replace("198.18.1.12:80", "\"[2001:db8::12]:80\"");
        assert_error(
            &t,
            &format!("12:18: real server [2001:db8::12]:80 is IPv6 but the VIP is IPv4: forwarding {m} cannot mix address families"),
        );
    }
    // The other way round, in an IPv6 service.
    let t = base6().replace("\"[2001:2:0:1::12]:80\"", "198.18.1.12:80");
    assert_error(
        &t,
        "12:18: real server 198.18.1.12:80 is IPv4 but the VIP is IPv6: forwarding nat cannot mix address families",
    );
    // An IPv6 sorry server on an IPv4 service.
    let t = with_service_keys("    sorry_server: \"[2001:db8::99]:80\"\n");
    assert_error(
        &t,
        "13:19: sorry server [2001:db8::99]:80 is IPv6 but the VIP is IPv4: forwarding nat cannot mix address families",
    );
    // FULLNAT64: an IPv6 VIP in front of IPv4 real servers, named as such.
    let pools = "local_addresses:\n  - { name: p4, addresses: [198.18.1.2] }\n";
    let t = format!(
        "{pools}{}",
        base6()
            .replace("\"[2001:2:0:1::11]:80\"", "198.18.1.11:80")
            .replace(
                "scheduler: wrr",
                "scheduler: wrr\n    forwarding: fullnat\n    local_addresses: p4"
            )
    );
    assert_error(
        &t,
        "14:18: real server 198.18.1.11:80 is IPv4 but the VIP is IPv6: FULLNAT64 (an IPv6 VIP in front of IPv4 real servers) is not supported",
    );
    // FULLNAT46 is plain mixing.
    let t = format!(
        "{pools}{}",
        BASE.replace("198.18.1.11:80", "\"[2001:2:0:1::11]:80\"")
            .replace(
                "scheduler: wrr",
                "scheduler: wrr\n    forwarding: fullnat\n    local_addresses: p4"
            )
    );
    assert_error(
        &t,
        "14:18: real server [2001:2:0:1::11]:80 is IPv6 but the VIP is IPv4: forwarding fullnat cannot mix address families",
    );
}

#[test]
fn ipv6_services_are_accepted_for_every_method_but_fullnat_pools() {
    for m in ["nat", "dr", "tun"] {
        let t = format!(
            "{}    forwarding: {m}\n    sorry_server: \"[2001:2:0:1::99]:80\"\n    persistence: {{ timeout: 5m, netmask: 64 }}\n",
            base6()
        );
        let c = assert_ok(&t);
        let s = &c.services[0];
        assert!(s.vip.is_ipv6() && s.reals.iter().all(|r| r.address.is_ipv6()));
        assert_eq!(s.key().vip, "2001:2::100".parse::<IpAddr>().unwrap());
        assert_eq!(c.max_entries_ipv6(), c.conntrack.max_entries);
    }
    // Dual stack: an IPv4 and an IPv6 service side by side.
    let dual = format!(
        "{BASE}  - name: web6\n    vip: \"2001:2::100\"\n    port: 80\n    reals:\n      - address: \"[2001:2:0:1::11]:80\"\n"
    );
    let c = assert_ok(&dual);
    assert_eq!(c.services.len(), 2);
    assert!(c.services[0].vip.is_ipv4() && c.services[1].vip.is_ipv6());
}

#[test]
fn ipv6_link_local_and_ipv4_mapped_addresses_are_refused() {
    let t = base6().replace("2001:2::100", "fe80::100");
    assert_error(&t, "6:10: vip fe80::100 is a link-local address");
    let t = base6().replace("2001:2:0:1::11", "fe80::11");
    assert_error(
        &t,
        "10:18: real server [fe80::11]:80 is a link-local address",
    );
    let t = base6().replace("2001:2:0:1::11", "::ffff:198.18.1.11");
    assert_error(
        &t,
        "10:18: real server [::ffff:198.18.1.11]:80 is an IPv4-mapped IPv6 address: write it as IPv4, `198.18.1.11`",
    );
    let t = base6().replace("2001:2::100", "::ffff:198.18.0.100");
    assert_error(
        &t,
        "6:10: vip ::ffff:198.18.0.100 is an IPv4-mapped IPv6 address",
    );
    for (vip, what) in [
        ("ff02::1", "not a unicast address"),
        ("::", "not a unicast address"),
        ("::1", "a loopback address"),
    ] {
        assert_error(
            &base6().replace("2001:2::100", vip),
            &format!("6:10: vip {vip} is {what}"),
        );
    }
    let t = base6().replace("2001:2:0:1::11", "::1");
    assert_error(&t, "10:18: real server [::1]:80 is a loopback address");
}

#[test]
fn one_packet_is_udp_only() {
    let t = with_service_keys("    one_packet: true\n");
    assert_error(&t, "13:5: one_packet is only for protocol: udp");
}

#[test]
fn sloppy_tcp_per_service_overrides_the_global_key_and_is_tcp_only() {
    assert_eq!(assert_ok(BASE).services[0].sloppy_tcp, None, "not written");
    for (v, want) in [("true", Some(true)), ("false", Some(false))] {
        let t = with_service_keys(&format!("    sloppy_tcp: {v}\n"));
        assert_eq!(assert_ok(&t).services[0].sloppy_tcp, want);
    }
    let t = with_service_keys("    protocol: udp\n    sloppy_tcp: true\n");
    assert_error(&t, "14:5: sloppy_tcp is only for protocol: tcp");
    let t = with_service_keys("    sloppy_tcp: yes please\n");
    assert!(!errors(&t).is_empty());
}

#[test]
fn persistence_netmask_rules() {
    let t = with_service_keys("    persistence: { timeout: 1m, netmask: 255.0.255.0 }\n");
    assert_error(&t, "13:42: netmask 255.0.255.0 is not contiguous");
    let t = with_service_keys("    persistence: { timeout: 1m, netmask: \"ffff::\" }\n");
    assert_error(&t, "13:42: netmask ffff:: is IPv6 but the VIP is IPv4");
    let t = with_service_keys("    persistence: { timeout: 1m, netmask: 255.255.255.0 }\n");
    assert!(!errors(&t).iter().any(|e| e.contains("netmask 2")));
}

#[test]
fn persistence_netmask_takes_a_prefix_length() {
    let v4 = |m: &str| {
        with_service_keys(&format!(
            "    persistence: {{ timeout: 1m, netmask: {m} }}\n"
        ))
    };
    let mask_of = |t: &str| {
        let c = assert_ok(t);
        c.services[0]
            .persistence
            .effective_netmask(c.services[0].vip)
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(mask_of(&v4("24")), ip("255.255.255.0"));
    assert_eq!(mask_of(&v4("\"/20\"")), ip("255.255.240.0"));
    assert_eq!(mask_of(&v4("0")), ip("0.0.0.0"));
    assert_eq!(mask_of(&v4("32")), ip("255.255.255.255"));
    assert_error(
        &v4("33"),
        "13:42: netmask /33 is longer than an IPv4 address (32 bits)",
    );
    assert_error(
        &v4("129"),
        "13:42: services[0].persistence.netmask: netmask prefix length 129 is out of range 0..128",
    );
    assert_error(
        &v4("-1"),
        "13:42: services[0].persistence.netmask: invalid netmask `-1`",
    );
    assert_error(
        &v4("abc"),
        "13:42: services[0].persistence.netmask: invalid netmask `abc`: expected a mask such as",
    );
    assert_error(
        &v4("\"/\""),
        "13:42: services[0].persistence.netmask: invalid netmask `/`",
    );
    // An IPv6 service: the prefix length is ipvsadm's `-M` (the netmask's own errors are looked
    // for among any others).
    let v6 = |m: &str| {
        v4(m)
            .replace("198.18.0.100", "\"2001:2::100\"")
            .replace("198.18.1.11:80", "\"[2001:2:0:1::11]:80\"")
            .replace("198.18.1.12:80", "\"[2001:2:0:1::12]:80\"")
    };
    let netmask_errors = |t: &str| -> Vec<String> {
        errors(t)
            .into_iter()
            .filter(|e| e.contains("netmask"))
            .collect()
    };
    for ok in ["64", "128", "0", "\"/48\"", "\"ffff:ffff:ffff:ffff::\""] {
        assert_eq!(netmask_errors(&v6(ok)), Vec::<String>::new(), "{ok}");
    }
    assert_eq!(
        netmask_errors(&v6("\"ffff::ffff\"")),
        ["13:42: netmask ffff::ffff is not contiguous"]
    );
    assert_eq!(
        netmask_errors(&v6("255.255.255.0")),
        ["13:42: netmask 255.255.255.0 is IPv4 but the VIP is IPv6"]
    );
    assert_eq!(
        netmask_errors(&v6("200")),
        ["13:42: services[0].persistence.netmask: netmask prefix length 200 is out of range 0..128"]
    );
    // The mask a prefix stands for, per family.
    let vip6 = ip("2001:2::100");
    assert_eq!(
        Netmask::Prefix(64).mask_for(vip6),
        ip("ffff:ffff:ffff:ffff::")
    );
    assert_eq!(Netmask::Prefix(0).mask_for(vip6), ip("::"));
    assert_eq!(Netmask::Prefix(128).mask_for(vip6), host_mask(vip6));
    assert_eq!(Netmask::Prefix(64).to_string(), "/64");
}

#[test]
fn scheduler_flags_belong_to_their_scheduler() {
    let t = with_service_keys("    scheduler_flags: [mh-port, mh-port]\n");
    assert_error(&t, "13:23: scheduler flag mh-port is only for scheduler mh");
    assert_error(&t, "13:32: scheduler flag mh-port is listed twice");
}

#[test]
fn quorum_hysteresis() {
    let t = with_service_keys("    quorum: { min_up: 1, hysteresis: 2 }\n");
    assert_error(&t, "13:38: quorum hysteresis 2 must not exceed min_up 1");
}

#[test]
fn health_check_rules() {
    let t = with_service_keys(
        "    health_check:\n      type: exec\n      interval: 0s\n      rise: 0\n      http: { path: health, expect_status: [999] }\n",
    );
    let e = errors(&t);
    for want in [
        "14:13: type: exec needs `exec: { command: ... }`",
        "15:17: interval must be greater than 0s",
        "16:13: rise must be at least 1",
        "17:7: http is only for type: http",
        "17:21: http path `health` must start with `/`",
        "17:45: HTTP status 999 is out of range 100..599",
    ] {
        assert!(
            e.iter().any(|x| x.starts_with(want)),
            "missing {want} in {e:#?}"
        );
    }
}

// ---- VRRP and sync --------------------------------------------------------------------------

const VRRP: &str = "\
datapath:
  interfaces: [{ name: eth0 }]
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      vrid: 51
      vips: [198.18.0.100/24]
    - name: VI_2
      interface: eth0
      vrid: 52
      vips: [198.18.0.101/24]
";

#[test]
fn vrrp_ipv4_and_ipv6_over_vrrpv3_are_accepted_and_vrrpv2_over_ipv6_is_refused() {
    assert_eq!(errors(VRRP), Vec::<String>::new());
    // A dual-stack pair: an IPv6 instance beside the IPv4 one, in one sync group, with an IPv6
    // unicast peer.
    let t = VRRP.replace("[198.18.0.101/24]", "[\"2001:2::100/64\"]")
        + "      unicast_peers: [\"fe80::2\"]\n  sync_groups:\n    - name: G\n      instances: [VI_1, VI_2]\n";
    assert_eq!(errors(&t), Vec::<String>::new());
    // VRRPv2 over IPv6 is undefined (RFC 3768 is IPv4 only): FILE:LINE:COL of the address.
    let t = VRRP.replace(
        "vrid: 52\n      vips: [198.18.0.101/24]",
        "vrid: 52\n      version: 2\n      vips: [\"2001:2::100/64\"]",
    );
    assert_error(
        &t,
        "13:14: VRRP version 2 is IPv4 only: use version: 3 for IPv6",
    );
}

#[test]
fn vrid_out_of_range() {
    let t = VRRP.replace("vrid: 52", "vrid: 256");
    assert_error(
        &t,
        "11:13: vrrp.instances[1].vrid: vrid 256 is out of range 1..255",
    );
    let t = VRRP.replace("vrid: 52", "vrid: 0");
    assert_error(
        &t,
        "11:13: vrrp.instances[1].vrid: vrid 0 is out of range 1..255",
    );
}

#[test]
fn priority_out_of_range() {
    let t = VRRP.replace("vrid: 52", "vrid: 52\n      priority: 0");
    assert_error(
        &t,
        "12:17: vrrp.instances[1].priority: priority 0 is out of range 1..255",
    );
}

#[test]
fn duplicate_instance_names_and_vrids() {
    let t = VRRP.replace("VI_2", "VI_1").replace("vrid: 52", "vrid: 51");
    assert_error(
        &t,
        "9:13: VRRP instance name `VI_1` is used twice (first at line 5)",
    );
    assert_error(
        &t,
        "11:13: vrid 51 is already used on interface eth0 by instance `VI_1` (line 7)",
    );
    // The same vrid on another interface, or for the other address family, is fine.
    let t = VRRP
        .replace("vrid: 52", "vrid: 51")
        .replace("vips: [198.18.0.101/24]", "vips: [\"2001:db8::1/64\"]");
    assert!(!errors(&t).iter().any(|e| e.contains("vrid")));
}

#[test]
fn advert_interval_rules() {
    let t = VRRP.replace(
        "vrid: 52",
        "vrid: 52\n      version: 2\n      advert_interval: 1500ms",
    );
    assert_error(
        &t,
        "13:24: VRRP version 2 advertises in whole seconds: advert_interval 1s 500ms is not",
    );
    let t = VRRP.replace("vrid: 52", "vrid: 52\n      advert_interval: 15ms");
    assert_error(&t, "12:24: VRRP version 3 advertises in centiseconds");
    let t = VRRP.replace("vrid: 52", "vrid: 52\n      advert_interval: 0s");
    assert_error(&t, "12:24: advert_interval must be greater than 0s");
    let t = VRRP.replace("vrid: 52", "vrid: 52\n      advert_interval: 41s");
    assert_error(&t, "12:24: advert_interval is at most 40s 950ms");
}

#[test]
fn vrrp_address_rules() {
    let t = VRRP.replace("198.18.0.101/24", "198.18.0.100/24");
    assert_error(
        &t,
        "12:14: address 198.18.0.100 is already in vips of instance `VI_1` (line 8)",
    );
    let t = VRRP.replace("[198.18.0.101/24]", "[198.18.0.101/24, \"2001:db8::1\"]");
    assert_error(&t, "12:31: vips mixes IPv4 and IPv6");
    let t = VRRP.replace(
        "vrid: 52",
        "vrid: 52\n      version: 2\n      unicast_peers: [\"2001:db8::2\"]",
    );
    assert_error(
        &t,
        "13:23: unicast peer 2001:db8::2 is IPv6 but the instance's vips are IPv4",
    );
    let t = VRRP.replace("[198.18.0.101/24]", "[198.18.0.101/33]");
    assert_error(
        &t,
        "12:14: vrrp.instances[1].vips[0]: invalid prefix length /33",
    );
    let t = VRRP
        .replace("[198.18.0.101/24]", "[\"2001:db8::1\"]")
        .replace("vrid: 52", "vrid: 52\n      version: 2");
    assert_error(&t, "13:14: VRRP version 2 is IPv4 only");
}

#[test]
fn vrrp_interfaces_must_exist() {
    let t = VRRP.replace(
        "interface: eth0\n      vrid: 52",
        "interface: eth7\n      vrid: 52",
    );
    assert_error(&t, "10:18: interface `eth7` does not exist on this machine");
    let t = VRRP.replace("vrid: 52", "vrid: 52\n      track_interfaces: [eth8]");
    assert_error(&t, "12:26: interface `eth8` does not exist on this machine");
}

#[test]
fn vrrp_holding_a_service_vip_needs_a_datapath_interface() {
    let t = format!(
        "{}vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth1, vrid: 1, vips: [198.18.0.100/24] }}\n",
        BASE
    );
    assert_error(
        &t,
        "15:32: instance `VI_1` holds service VIP 198.18.0.100, so its interface `eth1` must be one of datapath.interfaces",
    );
}

#[test]
fn track_script_rules() {
    let t = VRRP.replace(
        "vrid: 52",
        "vrid: 52\n      track_scripts:\n        - { command: /bin/true, weight: 300, rise: 0 }",
    );
    assert_error(&t, "13:41: weight 300 is out of range -253..253");
    assert_error(&t, "13:52: rise must be at least 1");
}

#[test]
fn sync_group_rules() {
    let t = format!(
        "{VRRP}  sync_groups:\n    - {{ name: G1, instances: [VI_1, VI_9] }}\n    - {{ name: G1, instances: [VI_1] }}\n"
    );
    assert_error(&t, "14:37: unknown VRRP instance `VI_9`");
    assert_error(
        &t,
        "15:15: sync group name `G1` is used twice (first at line 14)",
    );
    assert_error(
        &t,
        "15:31: instance `VI_1` is already in sync group `G1` (line 14)",
    );
    let ok = format!("{VRRP}  sync_groups:\n    - {{ name: G1, instances: [VI_1, VI_2] }}\n");
    assert_eq!(errors(&ok), Vec::<String>::new());
}

/// A `sync:` section on lines 3 to 6 (interface, peers, key_file), `extra` on line 7.
fn sync_section(interface: &str, peers: &str, key_file: &str, extra: &str) -> String {
    format!("datapath:\n  interfaces: [{{ name: eth0 }}]\nsync:\n  interface: {interface}\n  peers: {peers}\n  key_file: {key_file}\n{extra}")
}

#[test]
fn sync_rules() {
    let dir = TempDir::new("sync-rules");
    let good = dir.file("good.key", b"0123456789abcdef\n", 0o600);
    let good = good.to_str().unwrap();
    // Everything valid: accepted.
    let ok = sync_section(
        "eth1",
        "[198.18.2.2, \"2001:2::2\"]",
        good,
        "  port: 8849\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let c: Config = serde_yaml_ng::from_str(&ok).unwrap();
    let s = c.sync.unwrap();
    assert_eq!((s.port, s.peers.len()), (8849, 2));
    let c: Config = serde_yaml_ng::from_str(&sync_section("eth1", "[]", good, "")).unwrap();
    assert_eq!(c.sync.unwrap().port, DEFAULT_SYNC_PORT);

    let t = sync_section("eth5", "[198.18.2.2, 198.18.2.2]", good, "");
    assert_error(&t, "4:14: interface `eth5` does not exist on this machine");
    assert_error(
        &t,
        "5:23: peer 198.18.2.2 is listed twice (first at line 5)",
    );
    let t = sync_section(
        "eth1:0",
        "[224.0.0.81, 127.0.0.1, \"::1\", 0.0.0.0]",
        good,
        "  port: 0\n",
    );
    assert_error(&t, "4:14: invalid interface name `eth1:0`");
    assert_error(&t, "5:11: peer 224.0.0.81 is not a unicast address");
    assert_error(&t, "5:23: peer 127.0.0.1 is a loopback address");
    assert_error(&t, "5:34: peer ::1 is a loopback address");
    assert_error(&t, "5:41: peer 0.0.0.0 is not a unicast address");
    assert_error(&t, "7:9: port 0 is not a port");
    let many: Vec<String> = (1..=33).map(|i| format!("198.18.2.{i}")).collect();
    let t = sync_section("eth1", &format!("[{}]", many.join(", ")), good, "");
    assert_error(&t, "5:3: 33 peers; at most 32 are supported");
    assert!(
        errors(&sync_section(
            "eth1",
            &format!("[{}]", many[..32].join(", ")),
            good,
            ""
        ))
        .is_empty(),
        "32 peers are accepted"
    );
}

#[test]
fn sync_peers_are_not_this_boxs_vips() {
    let dir = TempDir::new("sync-vip");
    let key = dir.file("k", b"0123456789abcdef", 0o600);
    let t = format!(
        "{BASE}sync:\n  interface: eth1\n  peers: [198.18.0.100]\n  key_file: {}\n",
        key.display()
    );
    assert_error(&t, "15:11: peer 198.18.0.100 is the VIP of service `web`");
}

#[test]
fn sync_needs_a_key_file_xvs_accepts() {
    let dir = TempDir::new("sync-key");
    let at = |path: &str| sync_section("eth1", "[]", path, "");
    let t = "datapath:\n  interfaces: [{ name: eth0 }]\nsync:\n  interface: eth1\n";
    assert_error(
        t,
        "3:1: sync needs a key_file: every sync message is authenticated with HMAC-SHA256",
    );
    assert_error(&at("\"\""), "6:13: key_file must not be empty");
    let missing = dir.0.join("missing");
    let cases = [
        (missing, "cannot read"),
        (dir.0.clone(), "is a directory, not a regular file"),
        (
            dir.file("open", b"0123456789abcdef", 0o644),
            "has mode 0644: it must not be readable or writable by group or others",
        ),
        (
            dir.file("short", b"0123456789abcde\n", 0o600),
            "holds a 15-byte key; at least 16 bytes are required",
        ),
        (dir.file("empty", b"\n", 0o600), "is empty"),
    ];
    // A path longer than PATH_MAX is refused by the limits, and not read.
    let long = format!("/{}", "k".repeat(5000));
    let errs = errors(&at(&long));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("6:13: key_file is 5001 bytes long")),
        "{errs:#?}"
    );
    assert!(!errs.iter().any(|e| e.contains("cannot read")), "{errs:#?}");
    for (path, what) in cases {
        let p = path.display().to_string();
        assert_error(
            &at(&p),
            &format!(
                "6:13: key file {p}{}{what}",
                if what.starts_with("cannot") {
                    ": "
                } else {
                    " "
                }
            ),
        );
    }
}

// ---- not supported yet ----------------------------------------------------------------------

#[test]
fn defaults_written_out_are_accepted() {
    let t = with_service_keys(
        "    protocol: tcp\n    forwarding: nat\n    scheduler_flags: []\n    toa: false\n    persistence: { timeout: 0s, netmask: 255.255.255.255 }\n    one_packet: false\n    sorry_server: null\n    quorum: { min_up: 1, hysteresis: 0 }\n    health_check: null\n    on_failure: remove\n",
    )
    .replace(
        "weight: 3",
        "weight: 3\n        upper_threshold: 0\n        lower_threshold: 0\n        health_check: null",
    );
    let t =
        format!("{t}local_addresses: []\nvrrp: {{ instances: [], sync_groups: [] }}\nsync: null\n");
    assert_ok(&t);
}

#[test]
fn every_scheduler_is_accepted() {
    let cases = [
        ("rr", SchedulerKind::Rr),
        ("wrr", SchedulerKind::Wrr),
        ("lc", SchedulerKind::Lc),
        ("wlc", SchedulerKind::Wlc),
        ("sed", SchedulerKind::Sed),
        ("nq", SchedulerKind::Nq),
        ("lblc", SchedulerKind::Lblc),
        ("lblcr", SchedulerKind::Lblcr),
        ("dh", SchedulerKind::Dh),
        ("sh", SchedulerKind::Sh),
        ("mh", SchedulerKind::Mh),
        ("fo", SchedulerKind::Fo),
        ("ovf", SchedulerKind::Ovf),
        ("twos", SchedulerKind::Twos),
    ];
    for (name, kind) in cases {
        let c = assert_ok(&BASE.replace("scheduler: wrr", &format!("scheduler: {name}")));
        assert_eq!(c.services[0].scheduler.kind(), kind, "{name}");
        assert_eq!(kind.name(), name);
    }
}

#[test]
fn default_scheduler_is_wlc_and_accepted() {
    let c = assert_ok(&BASE.replace("    scheduler: wrr\n", ""));
    assert_eq!(c.services[0].scheduler, Scheduler::Wlc);
    assert_eq!(c.services[0].scheduler.kind(), SchedulerKind::Wlc);
}

#[test]
fn scheduler_flags_are_accepted_with_their_scheduler() {
    let cases: &[(&str, &str, SchedFlags)] = &[
        ("sh", "[]", SchedFlags::default()),
        (
            "sh",
            "[sh-port]",
            SchedFlags {
                hash_port: true,
                fallback: false,
            },
        ),
        (
            "sh",
            "[sh-fallback, sh-port]",
            SchedFlags {
                hash_port: true,
                fallback: true,
            },
        ),
        (
            "mh",
            "[mh-fallback]",
            SchedFlags {
                hash_port: false,
                fallback: true,
            },
        ),
        (
            "mh",
            "[mh-port, mh-fallback]",
            SchedFlags {
                hash_port: true,
                fallback: true,
            },
        ),
    ];
    for (sched, flags, want) in cases {
        let t = BASE.replace(
            "scheduler: wrr",
            &format!("scheduler: {sched}\n    scheduler_flags: {flags}"),
        );
        let c = assert_ok(&t);
        assert_eq!(c.services[0].sched_flags(), *want, "{sched} {flags}");
    }
    // A flag of the other hashing scheduler is refused at the flag.
    let t = BASE.replace(
        "scheduler: wrr",
        "scheduler: sh\n    scheduler_flags: [mh-port]",
    );
    assert_error(&t, "9:23: scheduler flag mh-port is only for scheduler mh");
}

#[test]
fn mh_table_size_is_a_prime_in_range_for_mh_only() {
    let mh = |size: &str| {
        BASE.replace(
            "scheduler: wrr",
            &format!("scheduler: mh\n    mh_table_size: {size}"),
        )
    };
    assert_eq!(assert_ok(&mh("251")).services[0].mh_table_size(), 251);
    assert_eq!(assert_ok(&mh("4093")).services[0].mh_table_size(), 4093);
    assert_eq!(
        assert_ok(&mh("1000003")).services[0].mh_table_size(),
        1_000_003
    );
    assert_error(
        &mh("65536"),
        "9:20: mh_table_size 65536 is not a prime (65521 and 65537 are)",
    );
    assert_error(
        &mh("1"),
        "9:20: mh_table_size 1 is out of range 251..1000003",
    );
    assert_error(
        &mh("1000033"),
        "9:20: mh_table_size 1000033 is out of range 251..1000003",
    );
    assert_error(
        &mh("-5"),
        "9:20: services[0].mh_table_size: invalid type: integer `-5`, expected u32",
    );
    // Written with another scheduler: refused at the key.
    let t = with_service_keys("    mh_table_size: 65537\n");
    assert_error(&t, "13:5: mh_table_size is only for scheduler mh, not wrr");
    let t = BASE.replace("scheduler: wrr", "scheduler: sh\n    mh_table_size: 65537");
    assert_error(&t, "9:5: mh_table_size is only for scheduler mh, not sh");
    // More real servers than table entries (IPVS refuses it too).
    let many: String = (0..252)
        .map(|i| format!("      - address: 198.18.2.{}:80\n", i))
        .collect();
    let t = format!("{}{many}", mh("251"));
    assert_error(
        &t,
        "9:20: scheduler mh with 254 real servers needs an mh_table_size of at least that many (it is 251)",
    );
}

#[test]
fn unsupported_features_are_refused_at_their_key() {
    // Every forwarding method is built: accepted (fullnat with its pool in its own tests).
    for m in ["dr", "tun"] {
        assert_ok(&with_service_keys(&format!("    forwarding: {m}\n")));
    }
    // IPv6 services are built (issue 14).
    assert!(errors(&base6()).is_empty(), "{:#?}", errors(&base6()));
    let t = BASE.replace("weight: 3", "weight: 3\n        upper_threshold: 5");
    assert!(errors(&t).is_empty(), "thresholds are built");
    // Connection sync is built (issue 16): the section is refused only for what is wrong in it.
    let t = format!("{BASE}sync:\n  interface: eth1\n");
    assert_eq!(
        errors(&t),
        vec!["13:1: sync needs a key_file: every sync message is authenticated with HMAC-SHA256 over a shared key".to_string()]
    );
}

#[test]
fn health_checks_quorum_sorry_server_and_on_failure_are_accepted() {
    let t = with_service_keys(
        "    sorry_server: 198.18.1.99:80\n    quorum: { min_up: 2, hysteresis: 1 }\n    on_failure: drain\n    health_check: { type: http, interval: 200ms, timeout: 200ms, rise: 2, fall: 2, http: { path: /health, expect_status: [200, 204], host: www.example.com } }\n",
    )
    .replace(
        "weight: 3",
        "weight: 3\n        health_check: { type: exec, exec: { command: \"/bin/check %ADDR% %PORT%\" } }",
    );
    let c = assert_ok(&t);
    let s = &c.services[0];
    assert_eq!(s.on_failure, OnFailure::Drain);
    assert_eq!(
        s.quorum,
        Quorum {
            min_up: 2,
            hysteresis: 1
        }
    );
    assert_eq!(s.sorry_server, Some("198.18.1.99:80".parse().unwrap()));
    assert_eq!(s.health_check.as_ref().unwrap().kind, CheckType::Http);
    assert_eq!(
        s.reals[0].health_check.as_ref().unwrap().kind,
        CheckType::Exec
    );
    for kind in ["tcp", "udp", "none"] {
        assert_ok(&with_service_keys(&format!(
            "    health_check: {{ type: {kind} }}\n"
        )));
    }
}

#[test]
fn health_check_timeout_must_not_exceed_interval() {
    let t = with_service_keys("    health_check: { interval: 1s, timeout: 1500ms }\n");
    assert_error(
        &t,
        "13:44: timeout 1s 500ms must not exceed interval 1s (one probe at a time per server)",
    );
    // The default timeout (1s) against a shorter interval: pointed at the check.
    let t = with_service_keys("    health_check: { interval: 500ms }\n");
    let e = errors(&t);
    assert!(
        e.iter()
            .any(|x| x.contains("timeout 1s must not exceed interval 500ms")),
        "{e:#?}"
    );
    assert_ok(&with_service_keys(
        "    health_check: { interval: 500ms, timeout: 500ms }\n",
    ));
}

#[test]
fn the_table_names_every_refused_key_once_per_level() {
    let mut seen = std::collections::HashSet::new();
    for nt in unsupported::NOT_SUPPORTED_YET {
        let level = match nt.check {
            unsupported::Check::Root(_) => "root",
            unsupported::Check::Service(_) => "service",
            unsupported::Check::Real(_) => "real",
        };
        assert!(seen.insert((level, nt.key)), "{level} {} twice", nt.key);
    }
}

// ---- FULLNAT ----------------------------------------------------------------------------------

const FULLNAT: &str = "\
datapath:
  interfaces:
    - name: eth0
local_addresses:
  - name: pool1
    addresses: [198.18.1.2, 198.18.1.3]
    ports: 20000-29999
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    forwarding: fullnat
    local_addresses: pool1
    toa: true
    reals:
      - address: 198.18.1.11:80
";

#[test]
fn fullnat_with_a_pool_and_toa_is_accepted() {
    let c = assert_ok(FULLNAT);
    assert_eq!(c.services[0].forwarding, Forwarding::Fullnat);
    assert!(c.services[0].toa);
    assert_eq!(
        c.local_addresses[0].ports,
        PortRange {
            first: 20000,
            last: 29999
        }
    );
}

#[test]
fn fullnat_pool_addresses_are_of_one_family_dedicated_and_in_one_pool() {
    let t = FULLNAT.replace(
        "[198.18.1.2, 198.18.1.3]",
        "[198.18.1.2, \"2001:2:0:1::2\"]",
    );
    assert_error(
        &t,
        "6:29: local address 2001:2:0:1::2 is IPv6 but the pool's first address 198.18.1.2 is IPv4: a local_addresses pool is of one address family",
    );
    let t = FULLNAT.replace("[198.18.1.2, 198.18.1.3]", "[198.18.1.2, 198.18.1.11]");
    assert_error(
        &t,
        "6:29: local address 198.18.1.11 is also a real server of service `web`",
    );
    let t = FULLNAT.replace("[198.18.1.2, 198.18.1.3]", "[198.18.0.100]");
    assert_error(
        &t,
        "6:17: local address 198.18.0.100 is also the vip of service `web`",
    );
    let t = FULLNAT.replace(
        "services:",
        "  - { name: pool2, addresses: [198.18.1.3] }\nservices:",
    );
    assert_error(
        &t,
        "8:32: local address 198.18.1.3 is already in pool `pool1`",
    );
}

#[test]
fn fullnat_pools_hold_at_most_1024_addresses() {
    let many: Vec<String> = (0..1025u32)
        .map(|i| format!("198.19.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let t = FULLNAT.replace(
        "[198.18.1.2, 198.18.1.3]",
        &format!("[{}]", many.join(", ")),
    );
    assert_error(
        &t,
        "4:1: 1025 local addresses in all pools; at most 1024 are supported",
    );
}

#[test]
fn fullnat_port_range_must_be_sane() {
    let t = FULLNAT.replace("20000-29999", "0-10");
    assert_error(&t, "7:12: port range must start at 1 or above");
    let t = FULLNAT.replace("20000-29999", "3000-2000");
    assert_error(&t, "7:12: port range 3000-2000 is empty");
    // max_entries 1000000: 64 shards, 16 pairs each at least. Two addresses: 7 ports of each
    // in some shards (511 / 64), then 8 (512 / 64).
    let t = FULLNAT.replace("20000-29999", "20000-20510");
    assert_error(
        &t,
        "7:12: pool gives some of the connection table's 64 shards (at max_entries 1000000) only 14 address:port pairs, fewer than 16",
    );
    assert_ok(&FULLNAT.replace("20000-29999", "20000-20511"));
    // 64 addresses × 16 ports make 1024 pairs, but a shard owns the ports p ≡ s (mod 64): most
    // shards would own none.
    let many: Vec<String> = (100..164).map(|i| format!("198.18.1.{i}")).collect();
    let t = FULLNAT
        .replace("198.18.1.2, 198.18.1.3", &many.join(", "))
        .replace("20000-29999", "20000-20015");
    assert_error(
        &t,
        "7:12: pool gives some of the connection table's 64 shards (at max_entries 1000000) only 0 address:port pairs, fewer than 16",
    );
    let small = FULLNAT.replace("20000-29999", "20000-20007").replace(
        "local_addresses:\n",
        "conntrack: { max_entries: 1000 }\nlocal_addresses:\n",
    );
    assert_ok(&small);
}

#[test]
fn fullnat_needs_its_pool_and_refuses_one_packet() {
    let t = FULLNAT.replace("    local_addresses: pool1\n", "");
    assert_error(&t, "12:17: forwarding fullnat needs `local_addresses`");
    let t = FULLNAT.replace("local_addresses: pool1", "local_addresses: nope");
    assert_error(&t, "13:22: unknown local_addresses pool `nope`");
    let t = FULLNAT
        .replace(
            "    toa: true\n",
            "    protocol: udp\n    one_packet: true\n",
        )
        .replace("port: 80", "port: 53");
    assert_error(&t, "15:5: one_packet is not for forwarding: fullnat");
}

// ---- FULLNAT6 ---------------------------------------------------------------------------------

/// FULLNAT with an IPv6 pool and an IPv6 service using it, beside the IPv4 ones.
const FULLNAT6: &str = "\
datapath:
  interfaces:
    - name: eth0
local_addresses:
  - name: pool1
    addresses: [198.18.1.2, 198.18.1.3]
    ports: 20000-29999
  - name: pool6
    addresses: [\"2001:2:0:1::2\", \"2001:2:0:1::3\"]
    ports: 20000-29999
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    forwarding: fullnat
    local_addresses: pool1
    toa: true
    reals:
      - address: 198.18.1.11:80
  - name: web6
    vip: \"2001:2::100\"
    port: 80
    forwarding: fullnat
    local_addresses: pool6
    toa: true
    reals:
      - address: \"[2001:2:0:1::11]:80\"
";

/// The errors of `t` other than the refusal of IPv6 services and reals (lifted by another
/// step of IPv6 support).
fn errors_but_ipv6_services(t: &str) -> Vec<String> {
    errors(t)
        .into_iter()
        .filter(|e| !e.contains("IPv6 is not supported yet"))
        .collect()
}

#[test]
fn an_ipv6_pool_serves_an_ipv6_fullnat_service() {
    assert_eq!(errors_but_ipv6_services(FULLNAT6), Vec::<String>::new());
    // An IPv6 pool no service uses is a valid pool on its own.
    let unused = FULLNAT6.replace("local_addresses: pool6", "local_addresses: pool1");
    let unused = unused.split("  - name: web6").next().unwrap().to_string();
    let c = assert_ok(&unused);
    assert_eq!(
        c.local_addresses[1].addresses,
        [
            "2001:2:0:1::2".parse::<IpAddr>().unwrap(),
            "2001:2:0:1::3".parse().unwrap()
        ]
    );
}

#[test]
fn a_pool_serves_only_services_of_its_family() {
    let t = FULLNAT6.replace("local_addresses: pool1", "local_addresses: pool6");
    assert_error(
        &t,
        "16:22: local_addresses pool `pool6` is IPv6 but the VIP is IPv4: a FULLNAT service's local addresses are of its VIP's family",
    );
    let t = FULLNAT6.replace("local_addresses: pool6", "local_addresses: pool1");
    assert_error(
        &t,
        "24:22: local_addresses pool `pool1` is IPv4 but the VIP is IPv6: FULLNAT64 (an IPv6 VIP in front of IPv4 real servers) is not supported",
    );
}

#[test]
fn fullnat_reals_are_of_the_vips_family_and_fullnat64_is_refused() {
    let t = FULLNAT6.replace("\"[2001:2:0:1::11]:80\"", "198.18.1.12:80");
    assert_error(
        &t,
        "27:18: real server 198.18.1.12:80 is IPv4 but the VIP is IPv6: FULLNAT64 (an IPv6 VIP in front of IPv4 real servers) is not supported",
    );
    let t = FULLNAT6.replace("198.18.1.11:80", "\"[2001:2:0:1::12]:80\"");
    assert_error(
        &t,
        "19:18: real server [2001:2:0:1::12]:80 is IPv6 but the VIP is IPv4: forwarding fullnat cannot mix address families",
    );
}

#[test]
fn a_mixed_pool_is_refused_once_at_its_odd_address() {
    let t = FULLNAT6.replace(
        "[\"2001:2:0:1::2\", \"2001:2:0:1::3\"]",
        "[\"2001:2:0:1::2\", 198.18.1.4]",
    );
    let e = errors_but_ipv6_services(&t);
    assert_eq!(
        e,
        ["9:34: local address 198.18.1.4 is IPv4 but the pool's first address 2001:2:0:1::2 is IPv6: a local_addresses pool is of one address family"],
    );
}

// ---- announce -------------------------------------------------------------------------------

#[test]
fn announce_is_off_by_default_and_takes_its_defaults() {
    assert_eq!(assert_ok(BASE).announce, None);
    let c = assert_ok(&format!("{BASE}announce: {{}}\n"));
    assert_eq!(
        c.announce,
        Some(Announce {
            table: 100,
            device: "xvs-announce".into()
        })
    );
    let c = assert_ok(&format!(
        "{BASE}announce:\n  table: 4294967295\n  device: bgp0\n"
    ));
    let a = c.announce.unwrap();
    assert_eq!((a.table, a.device.as_str()), (u32::MAX, "bgp0"));
    // The device need not exist (xvs run creates it; that it must not exist is start-up's rule).
    assert_ok(&format!("{BASE}announce: {{ device: nowhere0 }}\n"));
}

#[test]
fn announce_refuses_table_zero_the_kernels_tables_and_bad_device_names() {
    let line = BASE.lines().count() + 2;
    for (table, want) in [
        ("0", "table 0 is not a routing table"),
        ("253", "table 253 is the kernel's `default` table"),
        ("254", "table 254 is the kernel's `main` table"),
        ("255", "table 255 is the kernel's `local` table"),
    ] {
        assert_error(
            &format!("{BASE}announce:\n  table: {table}\n"),
            &format!("{line}:10: {want}"),
        );
    }
    for ok in ["1", "100", "252", "256", "1000"] {
        assert_ok(&format!("{BASE}announce:\n  table: {ok}\n"));
    }
    // Out of u32's range or negative: a type error, at the value.
    assert_error(
        &format!("{BASE}announce:\n  table: 4294967296\n"),
        &format!("{line}:10: "),
    );
    assert_error(
        &format!("{BASE}announce:\n  table: -1\n"),
        &format!("{line}:10: "),
    );
    assert_error(
        &format!("{BASE}announce:\n  device: a234567890123456\n"),
        &format!("{line}:11: interface name `a234567890123456` is longer than 15"),
    );
    assert_error(
        &format!("{BASE}announce:\n  device: \"\"\n"),
        &format!("{line}:11: interface name must not be empty"),
    );
    assert_error(
        &format!("{BASE}announce:\n  bogus: 1\n"),
        &format!("{line}:3: announce: unknown field `bogus`, expected `table` or `device`"),
    );
}

#[test]
fn announce_refuses_a_vip_that_vrrp_also_holds() {
    let vrrp = "vrrp:\n  instances:\n    - { name: VI_1, interface: eth0, vrid: 51, vips: [198.18.0.100/24] }\n";
    // Without announce, a VRRP VIP is fine; with it, the service's VIP is refused where written.
    assert_ok(&format!("{BASE}{vrrp}"));
    let errs = errors(&format!("{BASE}{vrrp}announce: {{ table: 100 }}\n"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "6:10: VIP 198.18.0.100 is also a virtual address of VRRP instance `VI_1`: with `announce:` a VIP is owned either by VRRP or by BGP, not both"
        ),
        "{errs:#?}"
    );
    // Another VIP on the instance does not clash.
    assert_ok(&format!(
        "{BASE}{}announce: {{ table: 100 }}\n",
        vrrp.replace("198.18.0.100/24", "198.18.0.200/24")
    ));
}

#[test]
fn the_contracts_announce_section_parses() {
    let c: Config =
        serde_yaml_ng::from_str(&format!("{CONTRACT_EXAMPLE}announce:\n  table: 100\n")).unwrap();
    assert_eq!(c.announce.unwrap().table, 100);
}
