//! The first reply to a client the load balancer has never talked to: no `no_neighbour` drop,
//! no TCP retransmission.
//!
//! The client namespace of the `nat` lab gets 100 fresh addresses (198.18.0.140-239, secondary
//! addresses of its interface); the box's kernel has never seen them (checked), so the reply to
//! each one's first SYN (the real server's SYN-ACK, translated by xvs) has a next hop whose MAC
//! nobody knows. xvs holds that frame, the kernel resolves the client (ARP), its notification
//! reaches the datapath, and the SYN-ACK leaves. Checked directly: every request answered in
//! well under the 1 s initial retransmission timeout, no TCP segment retransmitted by the client
//! or the real servers (their kernels' `RetransSegs`), `xvs_drops_total{reason="no_neighbour"}`
//! unchanged, and `xvs_neighbour_held_total` up by at least 100 (every client really was unknown).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::time::Duration;

use common::{Lab, VIP};

const CLIENTS: u32 = 100;
const FIRST: u32 = 140;
/// A request whose SYN or SYN-ACK was lost takes at least the 1 s initial RTO; an answer within
/// half of that had no retransmission.
const WITHOUT_RETRANSMISSION: Duration = Duration::from_millis(500);

/// A counter of the `/metrics` page (a line `NAME VALUE`).
fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{name}: {e}")) as u64
}

/// The kernel's count of retransmitted TCP segments (SYNs and SYN-ACKs included) in `role`'s
/// namespace (`Tcp: RetransSegs` of /proc/net/snmp).
fn retransmitted(lab: &Lab, role: &str) -> u64 {
    let snmp = lab.exec_ok(role, &["cat", "/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .expect("RetransSegs in /proc/net/snmp");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn addresses() -> Vec<String> {
    (FIRST..FIRST + CLIENTS)
        .map(|i| format!("198.18.0.{i}"))
        .collect()
}

#[test]
fn first_reply_to_100_new_clients_needs_no_retransmission() {
    let lab = Lab::new();
    lab.serve();
    let xvs = lab.start_xvs_ready(&lab.example_config("nat.yaml"));

    let addrs = addresses();
    let batch = lab.file("client-addresses.batch");
    let lines: String = addrs
        .iter()
        .map(|a| format!("addr add {a}/24 dev eth0\n"))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    lab.exec_ok("client", &["ip", "-batch", batch.to_str().unwrap()]);

    // Honest: the box's kernel knows none of them (so neither does xvs).
    let known = lab.exec_ok("lb", &["ip", "-4", "neigh", "show"]);
    for a in &addrs {
        assert!(
            !known
                .lines()
                .any(|l| l.split_whitespace().next() == Some(a)),
            "the load balancer already knows {a}:\n{known}"
        );
    }

    let before = lab.metrics();
    let retrans_before: Vec<u64> = ["client", "r1", "r2"]
        .iter()
        .map(|r| retransmitted(&lab, r))
        .collect();

    // One HTTP request from each address in turn, a fresh connection each; prints one line per
    // request: ADDRESS MILLISECONDS SERVER (or ADDRESS - ERROR).
    let probe = format!(
        "import http.client, time\n\
         for i in range({FIRST}, {FIRST} + {CLIENTS}):\n\
         \x20   a = '198.18.0.%d' % i\n\
         \x20   t = time.monotonic()\n\
         \x20   try:\n\
         \x20       c = http.client.HTTPConnection('{VIP}', 80, timeout=3, source_address=(a, 0))\n\
         \x20       c.request('GET', '/')\n\
         \x20       body = c.getresponse().read().decode().strip()\n\
         \x20       c.close()\n\
         \x20       print(a, round((time.monotonic() - t) * 1000, 2), body.split()[0] if body else '?')\n\
         \x20   except Exception as e:\n\
         \x20       print(a, '-', repr(e).replace(' ', '_'))\n"
    );
    let out = lab.exec_ok("client", &["python3", "-c", &probe]);

    let after = lab.metrics();
    let retrans: Vec<u64> = ["client", "r1", "r2"]
        .iter()
        .zip(&retrans_before)
        .map(|(r, b)| retransmitted(&lab, r) - b)
        .collect();

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.get(1).and_then(|ms| ms.parse::<f64>().ok()) {
            Some(ms) => latencies.push((ms, f[0].to_string())),
            None => failures.push(line.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "requests failed: {failures:#?}\n{}",
        xvs.log()
    );
    assert_eq!(latencies.len(), CLIENTS as usize, "{out}");
    latencies.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, worst) = (latencies[latencies.len() / 2].0, latencies.last().unwrap());
    let held =
        metric(&after, "xvs_neighbour_held_total") - metric(&before, "xvs_neighbour_held_total");
    let dropped = metric(&after, "xvs_drops_total{reason=\"no_neighbour\"}")
        - metric(&before, "xvs_drops_total{reason=\"no_neighbour\"}");
    eprintln!(
        "{CLIENTS} new clients: first answer median {median} ms, worst {} ms ({}); \
         frames held for a MAC: {held}; no_neighbour drops: {dropped}; \
         TCP retransmissions (client, r1, r2): {retrans:?}",
        worst.0, worst.1
    );

    assert!(
        worst.0 < WITHOUT_RETRANSMISSION.as_secs_f64() * 1000.0,
        "{} waited {} ms for its first answer",
        worst.1,
        worst.0
    );
    assert_eq!(retrans, vec![0, 0, 0], "TCP segments were retransmitted");
    assert_eq!(dropped, 0, "no_neighbour drops");
    assert!(
        held >= u64::from(CLIENTS),
        "only {held} frames waited for a MAC: the clients were not all new to the box"
    );
    // The kernel resolved each of them (xvs asked it to).
    let known = lab.exec_ok("lb", &["ip", "-4", "neigh", "show", "dev", "wan0"]);
    let resolved = addrs
        .iter()
        .filter(|a| {
            known
                .lines()
                .any(|l| l.split_whitespace().next() == Some(a.as_str()))
        })
        .count();
    assert_eq!(resolved, CLIENTS as usize, "{known}");
    xvs.stop_cleanly();
}
