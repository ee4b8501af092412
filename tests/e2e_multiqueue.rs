//! End to end, multi-queue: a lab whose veths have 2 RX and 2 TX queues (`scripts/lab up TOPO TAG
//! --queues 2`), xvs with `queues: all` and `workers: auto` (one AF_XDP socket per interface and
//! queue, one worker per queue: 2), NAT (`config/nat.yaml`) and FULLNAT (`config/fullnat.yaml`),
//! each with `queues: [0]` made `queues: all` and `poll: wakeup`.
//!
//! The directions are steered (`scripts/lab steer`): every frame from the client reaches the
//! load balancer's wan0 on queue 0 (so worker 0 sees every packet of the original direction),
//! every frame from the real servers reaches its lan0 on queue 1 (worker 1 sees every reply). A
//! connection is inserted by worker 0; its replies must find the entry from worker 1, in the one
//! shared connection table.
//!
//! Checked, under concurrent load (2 clients of 100 fresh HTTP connections each, one of 100 over
//! IPv6, and 2 clients of 250 UDP request/responses each, a fresh socket and source port per
//! datagram, all at once): every request answered; the steering held (the veths' per-queue XDP
//! counters: nothing reached wan0 on queue 1 or lan0 on queue 0); both workers received and
//! transmitted (forward frames on queue 0, replies on queue 1); no drop of any reason, above all
//! none for a missing entry (`no_connection`: an original-direction segment without one;
//! `not_lb_traffic`: a reply that found no entry is the kernel's, which AF_XDP cannot hand
//! back), and the kernel dropped nothing in the sockets' rings. FULLNAT: the real servers saw
//! pool addresses only. A lab that cannot be built fails the test.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Lab, Summary, Xvs, VIP, VIP6};

/// Queues of every veth end, and so workers.
const QUEUES: u32 = 2;
/// The queue of the original direction (client → load balancer).
const FORWARD: u32 = 0;
/// The queue of the replies (real servers → load balancer).
const REPLY: u32 = 1;

const HTTP_CLIENTS: u32 = 2;
const HTTP_EACH: u32 = 100;
const HTTP6_EACH: u32 = 100;
const UDP_CLIENTS: u32 = 2;
const UDP_EACH: u32 = 250;

/// The example `config/NAME` for the lab's lb with every queue (`queues: all`) instead of the
/// one-queue lab's `[0]`, `poll: wakeup` and the lab's admin socket.
fn all_queues_config(lab: &Lab, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(Lab::config(name)).expect("example config");
    assert_eq!(
        text.matches("queues: [0]").count(),
        2,
        "config/{name} is expected to list queue 0 of wan0 and lan0"
    );
    assert!(text.contains("poll: busy"), "config/{name}: poll: busy");
    assert!(
        !text.contains("workers:") || text.contains("workers: auto"),
        "config/{name}: workers other than auto"
    );
    lab.write_config("lb", name, &text.replace("queues: [0]", "queues: all"))
}

/// Lab `topology` with 2 queues, servers up, directions steered, xvs answering on VIP:80.
fn start(topology: &str, config: &str) -> (Lab, Xvs) {
    let lab = Lab::up_with_queues(topology, QUEUES);
    for (role, dev) in [("lb", "wan0"), ("lb", "lan0")] {
        let queues = lab.exec_ok(role, &["ls", &format!("/sys/class/net/{dev}/queues")]);
        for q in 0..QUEUES {
            assert!(
                queues.contains(&format!("rx-{q}")) && queues.contains(&format!("tx-{q}")),
                "{role} {dev} queues: {queues}"
            );
        }
    }
    lab.serve();
    lab.steer("client", "eth0", FORWARD);
    lab.steer("sw", "p-lb", REPLY);
    let xvs = lab.start_xvs_ready(&all_queues_config(&lab, config));
    // IPv6 too (the client's neighbour entry in xvs is then resolved for both families).
    let url6 = format!("http://[{VIP6}]/");
    assert!(
        lab.wait_url_ready(&url6, Duration::from_secs(10)),
        "{url6} never answered through xvs:\n{}",
        xvs.log()
    );
    let workers = worker_threads(&xvs);
    assert_eq!(
        workers,
        (0..QUEUES).map(|q| format!("xvs-q{q}")).collect::<Vec<_>>(),
        "one worker per queue"
    );
    (lab, xvs)
}

/// The names of the daemon's worker threads (`xvs-qN`), sorted.
fn worker_threads(xvs: &Xvs) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", xvs.pid()))
        .expect("the daemon's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.starts_with("xvs-q"))
        .collect();
    names.sort();
    names
}

/// Every sample of the metric family `name`, by its label set (`{queue="0"}`; "" without one).
fn family(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None; // another family with this prefix
            }
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// What the test compares before and after the load.
struct Counters {
    drops: BTreeMap<String, f64>,
    rx: BTreeMap<String, f64>,
    tx: BTreeMap<String, f64>,
    xsk_dropped: BTreeMap<String, f64>,
    xsk_ring_full: BTreeMap<String, f64>,
    /// (interface, queue) → frames the lb's veth handed to XDP on that RX queue.
    veth_rx: BTreeMap<(String, u32), u64>,
}

impl Counters {
    fn read(lab: &Lab) -> Counters {
        let m = lab.metrics();
        let mut veth_rx = BTreeMap::new();
        for dev in ["wan0", "lan0"] {
            let stats = lab.ethtool_stats("lb", dev);
            for q in 0..QUEUES {
                let key = format!("rx_queue_{q}_xdp_packets");
                let n = *stats
                    .get(&key)
                    .unwrap_or_else(|| panic!("lb {dev}: no {key} in {stats:?}"));
                veth_rx.insert((dev.to_string(), q), n);
            }
        }
        Counters {
            drops: family(&m, "xvs_drops_total"),
            rx: family(&m, "xvs_rx_packets_total"),
            tx: family(&m, "xvs_tx_packets_total"),
            xsk_dropped: family(&m, "xvs_xsk_rx_dropped_total"),
            xsk_ring_full: family(&m, "xvs_xsk_rx_ring_full_total"),
            veth_rx,
        }
    }
}

/// `after - before` of every sample (a sample missing before counts from 0).
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

fn queue(q: u32) -> String {
    format!("{{queue=\"{q}\"}}")
}

/// The concurrent load: HTTP over IPv4 and IPv6 and UDP clients, all at once.
fn load(lab: &Lab) -> Vec<(String, u32, Summary)> {
    let url = format!("http://{VIP}/");
    let url6 = format!("http://[{VIP6}]/");
    let udp = format!("{VIP}:53");
    let mut jobs: Vec<(String, u32)> = Vec::new();
    for _ in 0..HTTP_CLIENTS {
        jobs.push((url.clone(), HTTP_EACH));
    }
    jobs.push((url6, HTTP6_EACH));
    for _ in 0..UDP_CLIENTS {
        jobs.push((udp.clone(), UDP_EACH));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(target, n)| {
                s.spawn(move || {
                    let summary = if target.starts_with("http") {
                        lab.http_client_url(&target, n, 2.0)
                    } else {
                        lab.udp_client(&target, n)
                    };
                    (target, n, summary)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Runs the load through `topology` and checks everything the module doc promises; returns the
/// lab for topology-specific checks.
fn replies_on_the_other_queue(topology: &str, config: &str) -> (Lab, Xvs) {
    let (lab, xvs) = start(topology, config);
    let before = Counters::read(&lab);
    let results = load(&lab);
    let after = Counters::read(&lab);
    let log = xvs.log();

    let (mut tcp, mut udp) = (0u64, 0u64);
    for (target, n, s) in &results {
        assert_eq!(
            (s.ok, s.failed),
            (u64::from(*n), 0),
            "{target}: {:?}\n{log}",
            s.errors
        );
        assert!(
            s.count("r1") > 0 && s.count("r2") > 0,
            "{target}: answered by {:?}",
            s.by_server
        );
        if target.starts_with("http") {
            tcp += u64::from(*n);
        } else {
            udp += u64::from(*n);
        }
    }

    // The steering held: every frame from the client on queue 0, every reply on queue 1.
    let veth = |dev: &str, q: u32| {
        let k = (dev.to_string(), q);
        after.veth_rx[&k] - before.veth_rx[&k]
    };
    eprintln!(
        "{topology}: wan0 rx q0 {} q1 {}, lan0 rx q0 {} q1 {}",
        veth("wan0", 0),
        veth("wan0", 1),
        veth("lan0", 0),
        veth("lan0", 1)
    );
    assert_eq!(
        veth("wan0", REPLY),
        0,
        "client frames on wan0's queue {REPLY}"
    );
    assert_eq!(
        veth("lan0", FORWARD),
        0,
        "replies on lan0's queue {FORWARD}"
    );

    // Each TCP connection sends at least SYN, ACK + request, and gets SYN-ACK + response; each
    // datagram is one frame each way.
    let forward_min = (3 * tcp + udp) as f64;
    let reply_min = (2 * tcp + udp) as f64;
    let rx = delta(&before.rx, &after.rx);
    let tx = delta(&before.tx, &after.tx);
    eprintln!("{topology}: xvs rx {rx:?}, tx {tx:?}");
    for (what, counts, q, min) in [
        ("received", &rx, FORWARD, forward_min),
        ("transmitted", &tx, FORWARD, forward_min),
        ("received", &rx, REPLY, reply_min),
        ("transmitted", &tx, REPLY, reply_min),
    ] {
        let n = counts.get(&queue(q)).copied().unwrap_or(0.0);
        assert!(
            n >= min,
            "worker of queue {q} {what} {n} frames, expected at least {min}: {counts:?}"
        );
    }

    // Nothing dropped: no reply missed its entry, no other reason either.
    let drops = delta(&before.drops, &after.drops);
    for reason in ["no_connection", "not_lb_traffic"] {
        let n = drops
            .get(&format!("{{reason=\"{reason}\"}}"))
            .copied()
            .unwrap_or_else(|| panic!("no xvs_drops_total{{reason=\"{reason}\"}}"));
        assert_eq!(
            n, 0.0,
            "{n} frames dropped as {reason} (a missing entry)\n{log}"
        );
    }
    let dropped: Vec<_> = drops.iter().filter(|(_, n)| **n != 0.0).collect();
    assert!(
        dropped.is_empty(),
        "drops during the load: {dropped:?}\n{log}"
    );
    for (name, d) in [
        (
            "xvs_xsk_rx_dropped_total",
            delta(&before.xsk_dropped, &after.xsk_dropped),
        ),
        (
            "xvs_xsk_rx_ring_full_total",
            delta(&before.xsk_ring_full, &after.xsk_ring_full),
        ),
    ] {
        assert!(d.values().all(|n| *n == 0.0), "{name}: {d:?}");
    }
    (lab, xvs)
}

#[test]
fn nat_two_queues_replies_on_the_other_queue() {
    let (_lab, xvs) = replies_on_the_other_queue("nat", "nat.yaml");
    xvs.stop_cleanly();
}

#[test]
fn fullnat_two_queues_replies_on_the_other_queue() {
    let (lab, xvs) = replies_on_the_other_queue("fullnat", "fullnat.yaml");
    // FULLNAT indeed: the real servers saw only pool addresses.
    for role in ["r1", "r2"] {
        for kind_port in [("http", 80), ("udp", 5353)] {
            let peers = lab.peers(role, kind_port.0, kind_port.1);
            assert!(!peers.is_empty(), "{role} {kind_port:?}: no peers");
            for p in peers {
                let ip = p.ip().to_string();
                assert!(
                    ["198.18.1.2", "198.18.1.3", "2001:2:0:1::2", "2001:2:0:1::3"]
                        .contains(&ip.as_str()),
                    "{role} {kind_port:?} saw {p}, not a pool address"
                );
            }
        }
    }
    xvs.stop_cleanly();
}
