//! The netlink queries and the neighbour table against a real kernel, in two network namespaces
//! of the test's own joined by a veth pair:
//!
//! ```text
//!   xvs-nlPID-a: veth0 198.19.200.1/24 2001:2::1/64 ──veth── veth1 198.19.200.2/24 2001:2::2/64 :xvs-nlPID-b
//! ```
//!
//! The checks run on a thread that entered namespace `a` (network namespaces are per thread).
//! Needs root; skipped (with a message) otherwise. The namespaces are deleted pass or fail.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use xvs::control::neighbours::{build_table, prime, spawn_refresher};
use xvs::control::netlink::{
    dump_neighbours, dump_routes, link_by_name, solicit, Change, KernelRoute, NetlinkError,
    Subscription,
};
use xvs::datapath::nexthop::NextHop;
use xvs::datapath::Port;

const MAC_A: [u8; 6] = [0x02, 0x19, 0xc8, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0x19, 0xc8, 0, 0, 2];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The test's namespaces; deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(names: &[&str]) -> Self {
        let ns = Namespaces(names.iter().map(|s| s.to_string()).collect());
        for n in names {
            // A leftover from an aborted run with the same PID would make `add` fail.
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            run(&["netns", "add", n]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[allow(unsafe_code)] // setns(2): std has no wrapper
fn enter_netns(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: `f` is an open namespace file descriptor that outlives the call; setns with
    // CLONE_NEWNET moves only the calling thread into that network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `limit`.
fn wait_for<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for_every(limit, Duration::from_millis(20), f)
}

/// [`wait_for`] polling every `every` (1 ms for latency measurements).
fn wait_for_every<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

fn neighbour_mac(ifindex: u32, addr: IpAddr) -> Option<[u8; 6]> {
    dump_neighbours()
        .unwrap()
        .into_iter()
        .find(|&(i, a, _)| i == ifindex && a == addr)
        .map(|(_, _, m)| m)
}

#[test]
fn netlink_queries_in_a_namespace() {
    assert!(
        is_root(),
        "netlink_queries_in_a_namespace needs root to build its namespaces"
    );
    let a = format!("xvs-nl{}-a", std::process::id());
    let b = format!("xvs-nl{}-b", std::process::id());
    let guard = Namespaces::new(&[&a, &b]);

    run(&["-n", &a, "link", "set", "lo", "up"]);
    run(&["-n", &b, "link", "set", "lo", "up"]);
    run(&[
        "-n",
        &a,
        "link",
        "add",
        "veth0",
        "address",
        "02:19:c8:00:00:01",
        "type",
        "veth",
        "peer",
        "name",
        "veth1",
        "address",
        "02:19:c8:00:00:02",
        "netns",
        &b,
    ]);
    run(&["-n", &a, "addr", "add", "198.19.200.1/24", "dev", "veth0"]);
    run(&["-n", &b, "addr", "add", "198.19.200.2/24", "dev", "veth1"]);
    run(&[
        "-n",
        &a,
        "addr",
        "add",
        "2001:2::1/64",
        "dev",
        "veth0",
        "nodad",
    ]);
    run(&[
        "-n",
        &b,
        "addr",
        "add",
        "2001:2::2/64",
        "dev",
        "veth1",
        "nodad",
    ]);
    run(&["-n", &a, "link", "set", "veth0", "up"]);
    run(&["-n", &b, "link", "set", "veth1", "up"]);
    run(&[
        "-n",
        &a,
        "route",
        "add",
        "198.19.201.0/24",
        "via",
        "198.19.200.2",
    ]);

    let a2 = a.clone();
    let res = std::thread::spawn(move || checks(&a2)).join();
    drop(guard);
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

fn checks(ns_a: &str) {
    enter_netns(ns_a);

    // link_by_name
    let link = wait_for(Duration::from_secs(3), || {
        let l = link_by_name("veth0").unwrap();
        l.up.then_some(l)
    })
    .expect("veth0 never came up");
    assert!(link.ifindex > 0);
    assert_eq!(link.mac, MAC_A);
    assert_eq!(link.mtu, 1500);
    assert!(matches!(
        link_by_name("nosuch0"),
        Err(NetlinkError::NoSuchInterface(_))
    ));
    let lo = link_by_name("lo").unwrap();
    assert_eq!(lo.ifindex, 1);

    // dump_routes: connected routes (v4, v6) and the route via a gateway.
    let routes = dump_routes().unwrap();
    let want = [
        KernelRoute {
            dst: ip("198.19.200.0"),
            prefix_len: 24,
            oif: link.ifindex,
            gateway: None,
        },
        KernelRoute {
            dst: ip("198.19.201.0"),
            prefix_len: 24,
            oif: link.ifindex,
            gateway: Some(ip("198.19.200.2")),
        },
        KernelRoute {
            dst: ip("2001:2::"),
            prefix_len: 64,
            oif: link.ifindex,
            gateway: None,
        },
    ];
    for w in want {
        assert!(routes.contains(&w), "{w:?} missing from {routes:#?}");
    }
    // Local-table routes (the interface's own address) are not in the main table.
    assert!(!routes.iter().any(|r| r.dst == ip("198.19.200.1")));

    // solicit + dump_neighbours, IPv4 (ARP) and IPv6 (NDP).
    for peer in [ip("198.19.200.2"), ip("2001:2::2")] {
        assert_eq!(
            neighbour_mac(link.ifindex, peer),
            None,
            "{peer} known early"
        );
        // As the refresher does for a miss: solicit again every 500 ms until it resolves (a first
        // probe sent before the peer's link had carrier is simply lost).
        let mut last_solicit: Option<Instant> = None;
        let mac = wait_for(Duration::from_secs(5), || {
            if last_solicit.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
                solicit(peer, link.ifindex).unwrap();
                last_solicit = Some(Instant::now());
            }
            neighbour_mac(link.ifindex, peer)
        });
        let table = Command::new("ip")
            .args(["neigh", "show", "dev", "veth0"])
            .output()
            .unwrap();
        assert_eq!(
            mac,
            Some(MAC_B),
            "{peer} not resolved; kernel neighbours: {}",
            String::from_utf8_lossy(&table.stdout)
        );
    }

    // build_table resolves the peer directly and as the gateway of 198.19.201.0/24.
    let ports = vec![Port {
        name: "veth0".into(),
        ifindex: link.ifindex,
        mac: link.mac,
        ipv4: None,
        ipv6: None,
        mtu: u16::try_from(link.mtu).unwrap_or(u16::MAX),
    }];
    let table = build_table(&ports).unwrap();
    let hop = NextHop {
        port: 0,
        mac: MAC_B,
    };
    assert_eq!(table.resolve(ip("198.19.200.2")), Ok(hop));
    assert_eq!(table.resolve(ip("198.19.201.7")), Ok(hop));
    assert_eq!(table.resolve(ip("2001:2::2")), Ok(hop));
    assert!(table.resolve(ip("198.19.202.1")).is_err());

    // The refresher resolves a posted miss and swaps the table in.
    run(&["-n", ns_a, "neigh", "flush", "dev", "veth0"]);
    let empty = build_table(&ports).unwrap();
    assert!(empty.resolve(ip("198.19.200.2")).is_err());
    let shared = Arc::new(ArcSwap::from_pointee(empty));
    let misses = Arc::new(ArrayQueue::new(64));
    let stop = Arc::new(AtomicBool::new(false));
    let handle =
        spawn_refresher(ports.clone(), shared.clone(), misses.clone(), stop.clone()).unwrap();
    misses.push(ip("198.19.200.2")).unwrap();
    let resolved = wait_for(Duration::from_secs(3), || {
        shared.load().resolve(ip("198.19.200.2")).ok()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
    assert_eq!(resolved, Some(hop), "refresher did not resolve the miss");

    // Notifications: the subscription reports a neighbour the kernel learnt, and the refresher
    // applies added, changed and deleted neighbours within milliseconds (its full re-read runs
    // only every 5 s; polling, its fallback, every 250 ms).
    let mut sub = Subscription::open().unwrap();
    let other = ip("198.19.200.77");
    let set = |mac: &str| {
        run(&[
            "-n",
            ns_a,
            "neigh",
            "replace",
            "198.19.200.77",
            "lladdr",
            mac,
            "dev",
            "veth0",
            "nud",
            "reachable",
        ])
    };
    set("02:19:c8:00:00:77");
    let mut changes = Vec::new();
    let seen = wait_for(Duration::from_secs(2), || {
        sub.read(&mut changes).unwrap();
        changes.iter().find_map(|c| match *c {
            Change::Neighbour { ifindex, ip, mac } if ip == other => Some((ifindex, mac)),
            _ => None,
        })
    });
    assert_eq!(
        seen,
        Some((link.ifindex, Some([0x02, 0x19, 0xc8, 0, 0, 0x77]))),
        "{changes:?}"
    );
    drop(sub);
    let stop = Arc::new(AtomicBool::new(false));
    let handle =
        spawn_refresher(ports.clone(), shared.clone(), misses.clone(), stop.clone()).unwrap();
    // Let it subscribe and finish its first full read.
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    let mut follow = |what: &str, want: Option<[u8; 6]>, change: &dyn Fn()| {
        let t0 = Instant::now();
        change();
        let got = wait_for_every(Duration::from_secs(3), Duration::from_millis(1), || {
            let mac = shared.load().resolve(other).ok().map(|h| h.mac);
            (mac == want).then_some(())
        });
        let took = t0.elapsed();
        assert!(got.is_some(), "{what}: the table never followed");
        worst = worst.max(took);
        eprintln!("refresher followed `{what}` in {took:?}");
    };
    // Six changes: polling (every 250 ms) would take over 100 ms for at least one of them
    // with a probability of 1 - 0.4^6, over 99.5 %.
    for i in 0..6u8 {
        if i % 2 == 0 {
            let mac = [2, 0x19, 0xc8, 0, 0, 0x80 + i];
            let text = format!("02:19:c8:00:00:{:02x}", 0x80 + i);
            follow("neigh replace", Some(mac), &|| set(&text));
        } else {
            follow("neigh del", None, &|| {
                run(&["-n", ns_a, "neigh", "del", "198.19.200.77", "dev", "veth0"])
            });
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
    assert!(
        worst < Duration::from_millis(100),
        "the refresher took {worst:?} to follow a neighbour change (notifications should take milliseconds)"
    );

    // prime: resolves what answers, reports what does not, within its time bound.
    run(&["-n", ns_a, "neigh", "flush", "dev", "veth0"]);
    let started = Instant::now();
    let primed = prime(
        &ports,
        &[ip("198.19.200.2"), ip("198.19.200.99"), ip("198.19.250.1")],
        Duration::from_millis(1500),
    )
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(primed.table.resolve(ip("198.19.200.2")), Ok(hop));
    assert_eq!(
        primed.unresolved,
        vec![ip("198.19.200.99"), ip("198.19.250.1")]
    );
}
