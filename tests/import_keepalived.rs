//! `xvs import keepalived FILE` end to end: every fixture in `tests/fixtures/keepalived/`
//! converts; its output loads with the code `xvs check` runs (`Config::from_str_named`, with a
//! host on which every interface exists, so no network namespace is needed), with the
//! services, real servers, weights, schedulers and VRRP instances the keepalived file has; every
//! statement without an equivalent is a `# keepalived:` comment and a stderr line, and the exit
//! status is 2 then (0 when all converted); malformed files (`bad/`) are refused with exit 1 and
//! `FILE:LINE: message`, nothing on stdout.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use xvs::control::config::{
    CheckType, Config, Forwarding, OnFailure, Protocol, Scheduler, SchedulerFlag, Service,
    VrrpVersion,
};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
const DIR: &str = "tests/fixtures/keepalived";

/// What one run printed.
struct Run {
    yaml: String,
    stderr: String,
    code: i32,
}

impl Run {
    /// The stderr lines.
    fn lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// The `# keepalived:` comment lines of the output, trimmed.
    fn comments(&self) -> Vec<&str> {
        self.yaml
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("# keepalived:"))
            .collect()
    }
}

/// `xvs import keepalived DIR/NAME ARGS`, run from the crate root (paths print relative).
fn import(name: &str, args: &[&str]) -> Run {
    let out = Command::new(XVS)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["import", "keepalived", &format!("{DIR}/{name}")])
        .args(args)
        .output()
        .unwrap();
    Run {
        yaml: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code().unwrap(),
    }
}

/// The output as `xvs check` loads it: parsed and validated in full, every interface existing.
fn load(run: &Run, name: &str) -> Config {
    let exists = |_: &str| true;
    match Config::from_str_named(&run.yaml, name, &exists) {
        Ok(c) => c,
        Err(e) => panic!(
            "{name}: the output does not load:\n{e}\n--- output:\n{}",
            run.yaml
        ),
    }
}

/// Converts `name`, checks the exit status and that every stderr line has its comment (and the
/// other way round), and loads the output.
fn convert(name: &str, want_code: i32) -> (Run, Config) {
    let run = import(name, &[]);
    assert_eq!(
        run.code, want_code,
        "{name}: exit status\n--- stderr:\n{}\n--- stdout:\n{}",
        run.stderr, run.yaml
    );
    assert_comments_match_stderr(&run);
    let cfg = load(&run, name);
    (run, cfg)
}

/// `run` printed one stderr line per entry of `want`, each containing every fragment of its
/// entry (an empty entry: any line).
#[track_caller]
fn assert_stderr(run: &Run, want: &[&[&str]]) {
    let lines = run.lines();
    assert_eq!(lines.len(), want.len(), "{}", run.stderr);
    for (line, fragments) in lines.iter().zip(want) {
        for f in *fragments {
            assert!(line.contains(f), "no `{f}` in `{line}`:\n{}", run.stderr);
        }
    }
}

/// Each `FILE:LINE: WHAT has no xvs equivalent...` line on stderr is a comment
/// `# keepalived: WHAT (FILE:LINE) has no...` in the output, and each comment a line.
fn assert_comments_match_stderr(run: &Run) {
    let mut from_comments: Vec<String> = run
        .comments()
        .iter()
        .map(|c| {
            let c = c.trim_start_matches("# keepalived: ");
            let open = c.find(" (").unwrap();
            let close = open + c[open..].find(") ").unwrap();
            format!("{}: {}{}", &c[open + 2..close], &c[..open], &c[close + 1..])
        })
        .collect();
    from_comments.sort();
    from_comments.dedup();
    let mut lines: Vec<String> = run
        .lines()
        .into_iter()
        .filter(|l| !l.contains("matches no file") && !l.contains("no vrrp_instance names"))
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        from_comments, lines,
        "comments and stderr differ:\n{}",
        run.yaml
    );
}

fn service<'a>(cfg: &'a Config, vip: &str, port: u16, proto: Protocol) -> &'a Service {
    let vip: IpAddr = vip.parse().unwrap();
    cfg.services
        .iter()
        .find(|s| s.vip == vip && s.port == port && s.protocol == proto)
        .unwrap_or_else(|| panic!("no service {vip}:{port} {proto:?}"))
}

/// The names of the datapath's interfaces.
fn interfaces(cfg: &Config) -> Vec<&str> {
    cfg.datapath
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect()
}

/// The (address, weight) pairs of a service.
fn reals(s: &Service) -> Vec<(SocketAddr, u32)> {
    s.reals.iter().map(|r| (r.address, r.weight)).collect()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn nat_two_arms_with_a_sync_group() {
    let (run, cfg) = convert("nat.conf", 0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(cfg.global.router_id, "LVS_NAT_1");
    assert_eq!(interfaces(&cfg), ["wan0", "lan0"]);
    let web = service(&cfg, "198.18.0.100", 80, Protocol::Tcp);
    assert_eq!(web.scheduler, Scheduler::Wrr);
    assert_eq!(web.forwarding, Forwarding::Nat);
    assert_eq!(
        reals(web),
        [(sa("198.18.1.11:8080"), 3), (sa("198.18.1.12:8080"), 1)]
    );
    let hc = web.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.kind, hc.interval, hc.timeout, hc.rise, hc.fall),
        (CheckType::Tcp, secs(6), secs(3), 1, 3)
    );
    let dns = service(&cfg, "198.18.0.100", 53, Protocol::Udp);
    assert!(dns.one_packet);
    assert!(dns.health_check.is_none());
    assert_eq!(cfg.vrrp.instances.len(), 2);
    let wan = &cfg.vrrp.instances[0];
    assert_eq!(
        (
            wan.name.as_str(),
            wan.interface.as_str(),
            wan.vrid,
            wan.priority
        ),
        ("VI_WAN", "wan0", 51, 150)
    );
    // keepalived's default VRRP version is 2, xvs's 3: written explicitly.
    assert_eq!(wan.version, VrrpVersion::V2);
    assert_eq!(wan.vips[0].to_string(), "198.18.0.100/24");
    assert_eq!(cfg.vrrp.sync_groups.len(), 1);
    assert_eq!(cfg.vrrp.sync_groups[0].instances, ["VI_WAN", "VI_LAN"]);
}

#[test]
fn dr_with_http_checks_and_left_out_options() {
    let (run, cfg) = convert("dr.conf", 2);
    let s = service(&cfg, "198.18.0.50", 80, Protocol::Tcp);
    assert_eq!(s.forwarding, Forwarding::Dr);
    assert_eq!(s.scheduler, Scheduler::Wlc);
    assert_eq!(s.persistence.timeout, secs(9600));
    assert_eq!(
        reals(s),
        [
            (sa("198.18.0.61:80"), 2),
            (sa("198.18.0.62:80"), 2),
            (sa("198.18.0.63:80"), 1)
        ]
    );
    // The three identical checks are one service check: nb_get_retry 3 → fall 4.
    let hc = s.health_check.as_ref().unwrap();
    assert_eq!(hc.kind, CheckType::Http);
    assert_eq!((hc.interval, hc.timeout, hc.fall), (secs(10), secs(3), 4));
    let http = hc.http.as_ref().unwrap();
    assert_eq!(
        (http.path.as_str(), http.expect_status.as_slice()),
        ("/healthz", &[200][..])
    );
    assert!(s.reals.iter().all(|r| r.health_check.is_none()));
    assert_eq!(cfg.vrrp.instances[0].vips[0].to_string(), "198.18.0.50/32");
    let lines = run.lines();
    for want in [
        "dr.conf:4: notification_email {…} has no xvs equivalent",
        "dr.conf:14: state MASTER has no xvs equivalent",
        "dr.conf:19: authentication {…} has no xvs equivalent",
        "dr.conf:44: delay_before_retry 3 has no xvs equivalent",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(want)),
            "no `{want}` in:\n{}",
            run.stderr
        );
    }
    assert_eq!(lines.len(), 9, "{}", run.stderr);
}

#[test]
fn tun_with_scheduler_flags_and_v3_adverts() {
    let (run, cfg) = convert("tun.conf", 0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let s = service(&cfg, "198.18.0.70", 443, Protocol::Tcp);
    assert_eq!(s.forwarding, Forwarding::Tun);
    assert_eq!(s.scheduler, Scheduler::Sh);
    assert_eq!(
        s.scheduler_flags,
        [SchedulerFlag::ShPort, SchedulerFlag::ShFallback]
    );
    assert_eq!(
        reals(s),
        [(sa("198.19.10.1:443"), 1), (sa("198.19.10.2:443"), 1)]
    );
    let vi = &cfg.vrrp.instances[0];
    assert_eq!(vi.version, VrrpVersion::V3);
    assert_eq!(vi.advert_interval, Duration::from_millis(500));
}

#[test]
fn persistence_granularity_and_an_all_ports_service() {
    let (_, cfg) = convert("persistence.conf", 0);
    let shop = service(&cfg, "198.18.0.10", 443, Protocol::Tcp);
    assert_eq!(shop.scheduler, Scheduler::Lc);
    assert_eq!(shop.persistence.timeout, secs(1800));
    assert_eq!(
        shop.persistence.effective_netmask(shop.vip).to_string(),
        "255.255.255.0"
    );
    // No port: every port, persistent for keepalived's default 6 minutes.
    let all = service(&cfg, "198.18.0.11", 0, Protocol::Tcp);
    assert_eq!(all.persistence.timeout, secs(360));
    assert_eq!(
        reals(all),
        [(sa("198.18.1.21:0"), 1), (sa("198.18.1.22:0"), 1)]
    );
}

#[test]
fn quorum_sorry_server_and_inhibit_on_failure() {
    let (_, cfg) = convert("quorum.conf", 0);
    let s = service(&cfg, "198.18.0.20", 80, Protocol::Tcp);
    // Every weight is 1: keepalived's weight quorum is a count of servers.
    assert_eq!((s.quorum.min_up, s.quorum.hysteresis), (2, 1));
    assert_eq!(s.sorry_server, Some(sa("198.18.1.99:8080")));
    assert_eq!(s.on_failure, OnFailure::Drain);
    // The virtual server's connect_timeout and retry reach every real server's check.
    let hc = s.health_check.as_ref().unwrap();
    assert_eq!((hc.interval, hc.timeout, hc.fall), (secs(4), secs(2), 3));
    assert_eq!(s.reals.len(), 3);
}

#[test]
fn quorum_in_weights() {
    let (run, cfg) = convert("quorum_weights.conf", 2);
    // Weight 2 each: lost below (4 - 2) / 2 = 1 server, gained at (4 + 2) / 2 = 3.
    let even = service(&cfg, "198.18.0.22", 80, Protocol::Tcp);
    assert_eq!((even.quorum.min_up, even.quorum.hysteresis), (2, 1));
    // Weights 3 and 1: no count of servers says the same.
    let mixed = service(&cfg, "198.18.0.22", 81, Protocol::Tcp);
    assert_eq!((mixed.quorum.min_up, mixed.quorum.hysteresis), (3, 0));
    assert_stderr(
        &run,
        &[&["quorum_weights.conf:30: quorum 3 converted approximately"]],
    );
}

#[test]
fn every_checker_type() {
    let (run, cfg) = convert("checkers.conf", 2);
    let web = service(&cfg, "198.18.0.30", 80, Protocol::Tcp);
    assert!(
        web.health_check.is_none(),
        "the checks differ: one per real server"
    );
    let kinds: Vec<Option<CheckType>> = web
        .reals
        .iter()
        .map(|r| r.health_check.as_ref().map(|h| h.kind))
        .collect();
    use CheckType::{Exec, Http, Tcp, Udp};
    assert_eq!(
        kinds,
        [
            Some(Tcp),
            Some(Http),
            Some(Http),
            Some(Exec),
            Some(Tcp),
            Option::None,
            Option::None
        ]
    );
    let h1 = web.reals[1]
        .health_check
        .as_ref()
        .unwrap()
        .http
        .clone()
        .unwrap();
    assert_eq!(h1.path, "/status");
    assert_eq!(h1.expect_status, [200, 201, 202, 203, 204, 301]);
    assert_eq!(h1.host.as_deref(), Some("status.example.com"));
    // Inherited host, keepalived's default statuses 200-299.
    let h2 = web.reals[2]
        .health_check
        .as_ref()
        .unwrap()
        .http
        .clone()
        .unwrap();
    assert_eq!(h2.host.as_deref(), Some("www.example.com"));
    assert_eq!(h2.expect_status, (200..=299).collect::<Vec<u16>>());
    let misc = web.reals[3].health_check.as_ref().unwrap();
    assert_eq!(
        misc.exec.as_ref().unwrap().command,
        "/usr/local/bin/check_web 198.18.1.44"
    );
    // MISC_CHECK's retry default is 0: down at the first failure.
    assert_eq!((misc.timeout, misc.fall), (secs(3), 1));
    let dns = service(&cfg, "198.18.0.30", 53, Protocol::Udp);
    assert_eq!(dns.reals[0].health_check.as_ref().unwrap().kind, Udp);
    assert!(dns.reals[1].health_check.is_none());
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{}", run.stderr);
    for (kw, how) in [
        ("SSL_GET", "converted approximately"),
        ("PING_CHECK", "has no xvs equivalent"),
        ("SMTP_CHECK", "has no xvs equivalent"),
        ("DNS_CHECK", "has no xvs equivalent"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(kw) && l.contains(how)),
            "{kw}: {}",
            run.stderr
        );
    }
}

#[test]
fn sync_groups() {
    let (run, cfg) = convert("sync_groups.conf", 2);
    let groups: Vec<(&str, Vec<&str>)> = cfg
        .vrrp
        .sync_groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.instances.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("WEB", vec!["VI_WEB_WAN", "VI_WEB_LAN"]),
            ("DB", vec!["VI_DB_WAN", "VI_DB_LAN"])
        ]
    );
    assert_eq!(cfg.vrrp.instances.len(), 4);
    // A group's notify script has no equivalent (xvs notifies per instance).
    assert_eq!(run.lines().len(), 2, "{}", run.stderr);
    assert!(run.stderr.contains("sync_groups.conf:11: notify_master"));
}

#[test]
fn unicast_peers_ipv4_and_ipv6() {
    let (run, cfg) = convert("unicast.conf", 2);
    let v4 = &cfg.vrrp.instances[0];
    let peers: Vec<String> = v4.unicast_peers.iter().map(IpAddr::to_string).collect();
    assert_eq!(peers, ["198.18.0.3", "198.18.0.4"]);
    assert_eq!(v4.version, VrrpVersion::V2);
    let v6 = &cfg.vrrp.instances[1];
    assert_eq!(v6.version, VrrpVersion::V3, "IPv6 is VRRPv3");
    assert_eq!(v6.unicast_peers[0].to_string(), "2001:2::3");
    assert_eq!(v6.vips[0].to_string(), "2001:2::80/64");
    let s = service(&cfg, "2001:2::80", 80, Protocol::Tcp);
    assert_eq!(s.scheduler, Scheduler::Mh);
    assert_eq!(s.scheduler_flags, [SchedulerFlag::MhFallback]);
    assert_eq!(
        reals(s),
        [(sa("[2001:2::11]:80"), 5), (sa("[2001:2::12]:80"), 5)]
    );
    assert_eq!(run.lines(), ["tests/fixtures/keepalived/unicast.conf:12: unicast_src_ip 198.18.0.2 has no xvs equivalent: xvs sends adverts from the interface's primary address"]);
}

#[test]
fn nopreempt_preempt_delay_and_track_scripts() {
    let (run, cfg) = convert("preempt.conf", 2);
    let vi1 = &cfg.vrrp.instances[0];
    assert!(!vi1.preempt);
    assert_eq!(vi1.advert_interval, secs(2));
    assert_eq!(vi1.track_interfaces, ["lan0"]);
    let ts: Vec<(&str, Duration, u32, u32, i32)> = vi1
        .track_scripts
        .iter()
        .map(|t| (t.command.as_str(), t.interval, t.rise, t.fall, t.weight))
        .collect();
    assert_eq!(
        ts,
        [
            ("/usr/bin/killall -0 haproxy", secs(2), 3, 2, -30),
            // The instance's weight replaces the script's.
            ("/usr/local/bin/check-uplink", secs(5), 1, 1, 10),
        ]
    );
    let vi2 = &cfg.vrrp.instances[1];
    assert!(vi2.preempt);
    assert_eq!(vi2.preempt_delay, secs(30));
    assert_eq!(vi2.track_scripts.len(), 1);
    // The script's `timeout` is reported once though two instances track it.
    assert_stderr(
        &run,
        &[&[], &["preempt.conf:13: timeout 1 has no xvs equivalent"]],
    );
}

#[test]
fn notify_scripts() {
    let (run, cfg) = convert("notify.conf", 2);
    let n1 = &cfg.vrrp.instances[0].notify;
    assert_eq!(
        n1.master.as_deref(),
        Some("/etc/keepalived/to_master.sh VI_1")
    );
    assert_eq!(n1.backup.as_deref(), Some("/etc/keepalived/to_backup.sh"));
    assert_eq!(n1.fault.as_deref(), Some("/etc/keepalived/to_fault.sh"));
    // keepalived's generic notify gets INSTANCE, the name, the state and the priority.
    let n2 = &cfg.vrrp.instances[1].notify;
    assert_eq!(
        n2.master.as_deref(),
        Some("/etc/keepalived/notify.sh INSTANCE VI_2 MASTER 90")
    );
    assert_eq!(
        n2.fault.as_deref(),
        Some("/etc/keepalived/notify.sh INSTANCE VI_2 FAULT 90")
    );
    assert_stderr(
        &run,
        &[
            &["notify.conf:13: notify_fault", "own user"],
            &["notify.conf:24: notify ", "approximately"],
        ],
    );
}

#[test]
fn includes_with_a_glob() {
    let (run, cfg) = convert("includes/keepalived.conf", 0);
    assert_eq!(cfg.global.router_id, "split-lb");
    let ports: Vec<u16> = cfg.services.iter().map(|s| s.port).collect();
    assert_eq!(ports, [80, 25], "conf.d/*.conf in name order");
    assert_eq!(cfg.services[1].scheduler, Scheduler::Lc);
    let vi = &cfg.vrrp.instances[0];
    // The peers come from a file included inside the vrrp_instance block.
    assert_eq!(vi.unicast_peers[0].to_string(), "198.18.0.12");
    // A glob that matches nothing is a note, not an omission.
    assert_eq!(
        run.lines(),
        ["tests/fixtures/keepalived/includes/keepalived.conf:8: include optional.d/*.conf matches no file"]
    );
}

#[test]
fn options_without_an_equivalent() {
    let (run, cfg) = convert("unsupported.conf", 2);
    // The fwmark and SCTP virtual servers are left out whole; the real server whose check
    // probes another port is not checked.
    assert_eq!(cfg.services.len(), 1);
    let s = &cfg.services[0];
    assert!(s.health_check.is_none() && s.reals[0].health_check.is_none());
    assert_eq!(cfg.vrrp.instances[0].vips.len(), 1);
    let lines = run.lines();
    let at = |line: u32, what: &str| {
        let prefix = format!("tests/fixtures/keepalived/unsupported.conf:{line}: {what}");
        assert!(
            lines.iter().any(|l| l.starts_with(&prefix)),
            "no `{prefix}` in:\n{}",
            run.stderr
        );
        // And as a comment in the YAML.
        let comment = format!("({}:{line})", "tests/fixtures/keepalived/unsupported.conf");
        assert!(run.yaml.contains(&comment), "no comment {comment}");
    };
    at(4, "notification_email {…} has no xvs equivalent");
    at(7, "vrrp_garp_master_delay 10 has no xvs equivalent");
    at(8, "vrrp_strict has no xvs equivalent");
    at(11, "static_ipaddress {…} has no xvs equivalent");
    at(20, "garp_master_delay 10 has no xvs equivalent");
    at(21, "authentication {…} has no xvs equivalent");
    at(26, "198.18.0.99/24 label wan0:vip converted approximately");
    at(28, "virtual_ipaddress_excluded {…} has no xvs equivalent");
    at(33, "virtual_server fwmark 1 {…} has no xvs equivalent");
    at(44, "alpha has no xvs equivalent");
    at(
        45,
        "quorum_up \"/usr/local/bin/quorum up\" has no xvs equivalent",
    );
    at(
        48,
        "notify_down /usr/local/bin/down.sh has no xvs equivalent",
    );
    at(
        49,
        "TCP_CHECK {…} has no xvs equivalent: it probes port 8080",
    );
    at(56, "protocol SCTP has no xvs equivalent");
    assert_eq!(lines.len(), 14, "{}", run.stderr);
    // stderr is in file order.
    let nums: Vec<u32> = lines
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[0] <= w[1]), "{nums:?}");
}

#[test]
fn fullnat_with_a_local_address_group() {
    let (_, cfg) = convert("fullnat.conf", 0);
    assert_eq!(cfg.local_addresses.len(), 1);
    let pool = &cfg.local_addresses[0];
    assert_eq!(pool.name, "laddr_g1");
    let addrs: Vec<String> = pool.addresses.iter().map(IpAddr::to_string).collect();
    assert_eq!(addrs, ["198.18.1.200", "198.18.1.201", "198.18.1.202"]);
    let s = &cfg.services[0];
    assert_eq!(s.forwarding, Forwarding::Fullnat);
    assert_eq!(s.local_addresses.as_deref(), Some("laddr_g1"));
    assert_eq!(s.on_failure, OnFailure::Drain);
    assert_eq!(
        reals(s),
        [(sa("198.18.1.71:80"), 100), (sa("198.18.1.72:80"), 100)]
    );
}

/// `twos` is mapped by name; the scheduler itself is another branch's work, so only the text
/// is checked here.
#[test]
fn twos_scheduler_is_mapped() {
    let run = import("twos.conf", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.yaml.contains("    scheduler: twos\n"), "{}", run.yaml);
}

#[test]
fn interface_option_replaces_the_derived_interfaces() {
    let args = [
        "--interface",
        "lan0",
        "--interface",
        "wan0",
        "--interface",
        "bond0",
    ];
    let run = import("nat.conf", &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cfg = load(&run, "nat.conf");
    assert_eq!(interfaces(&cfg), ["lan0", "wan0", "bond0"]);
}

#[test]
fn every_fixture_loads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut n = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.extension().is_none_or(|x| x != "conf") || name == "twos.conf" {
            continue;
        }
        let run = import(&name, &[]);
        assert!(run.code == 0 || run.code == 2, "{name}: {}", run.stderr);
        assert_comments_match_stderr(&run);
        load(&run, &name);
        n += 1;
    }
    assert!(n >= 12, "only {n} fixtures");
}

/// `bad/NAME` is refused: exit 1, `FILE:LINE: message` on stderr, nothing on stdout.
fn refused(name: &str, want: &str) {
    let run = import(&format!("bad/{name}"), &[]);
    assert_eq!(run.code, 1, "{name}: {}", run.stderr);
    assert!(run.yaml.is_empty(), "{name}: printed {}", run.yaml);
    assert!(
        run.stderr.starts_with(want),
        "{name}: want `{want}…`, got `{}`",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn malformed_files_are_refused_at_their_line() {
    for (name, want) in [
        (
            "unbalanced.conf",
            "unbalanced.conf:1: unbalanced braces: this `{` is never closed",
        ),
        (
            "extra_close.conf",
            "extra_close.conf:4: unbalanced braces: `}` closes no block",
        ),
        (
            "missing_include.conf",
            "missing_include.conf:4: cannot include /nonexistent/xvs-keepalived-missing.conf",
        ),
        (
            "cycle_a.conf",
            "cycle_b.conf:3: include cycle: tests/fixtures/keepalived/bad/cycle_a.conf",
        ),
        (
            "bad_number.conf",
            "bad_number.conf:3: bad number `300` for `virtual_router_id`",
        ),
        (
            "bad_lb_kind.conf",
            "bad_lb_kind.conf:3: unknown lb_kind `NATT`",
        ),
        (
            "bad_weight.conf",
            "bad_weight.conf:3: bad number `heavy` for `weight`",
        ),
        (
            "unterminated_quote.conf",
            "unterminated_quote.conf:2: unterminated quote",
        ),
    ] {
        refused(name, &format!("tests/fixtures/keepalived/bad/{want}"));
    }
}

#[test]
fn unreadable_file() {
    let run = import("does-not-exist.conf", &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("tests/fixtures/keepalived/does-not-exist.conf: cannot read:"),
        "{}",
        run.stderr
    );
    assert!(run.yaml.is_empty());
}
