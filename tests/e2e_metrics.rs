//! End to end, metrics: traffic through the NAT lab is counted per service and per real server,
//! the `/metrics` page parses as Prometheus text format (with the `prometheus-parse` crate), and
//! its counters match what the client sent and received, counted independently from the client
//! interface's own counters (`ip -s -j link`): connections exactly, packets and bytes within 1%.
//! `xvs ctl list --stats` shows the same numbers as the scrape. The workers' saturation metrics
//! read ≈ 0 while xvs is idle and grow under traffic; `xvs ctl stats` lists every worker.
//!
//! The lab runs `config/nat.yaml` with `poll: wakeup` and a per-test admin socket; the metrics
//! listen on the config's `127.0.0.1:9798` inside the lab's own load-balancer namespace.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::time::{Duration, Instant};

use common::{Lab, Xvs, VIP};
use prometheus_parse::{Scrape, Value};

const XVS: &str = env!("CARGO_BIN_EXE_xvs");
const HTTP_REQUESTS: u32 = 200;
const UDP_REQUESTS: u32 = 100;

struct Run {
    lab: Lab,
    xvs: Xvs,
    socket: String,
}

fn start() -> Run {
    let lab = Lab::new();
    lab.serve();
    let config = lab.example_config("nat.yaml");
    let socket = lab.admin_socket("lb").to_string_lossy().into_owned();
    let mut xvs = lab.start_xvs(&config);
    let ready = lab.wait_http_ready(Duration::from_secs(20));
    assert!(xvs.running(), "xvs exited:\n{}", xvs.log());
    assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
    Run { lab, xvs, socket }
}

/// The `/metrics` page, parsed.
fn scrape(lab: &Lab) -> Scrape {
    let body = lab.metrics();
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("unparsable /metrics ({e}):\n{body}"));
    assert!(
        scrape.samples.len() > 20,
        "too few samples in /metrics:\n{body}"
    );
    scrape
}

/// The value of the one sample of `metric` whose labels include `labels`.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> u64 {
    let found: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric}: unexpected value {other:?}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    found[0] as u64
}

/// Whether `metric` is declared a counter by its `# TYPE` line.
fn is_counter(s: &Scrape, metric: &str) -> bool {
    s.samples
        .iter()
        .any(|x| x.metric == metric && matches!(x.value, Value::Counter(_)))
}

/// (tx packets, tx bytes, rx packets, rx bytes) of the client's eth0.
fn client_link(lab: &Lab) -> [u64; 4] {
    let out = lab.exec_ok("client", &["ip", "-s", "-j", "link", "show", "dev", "eth0"]);
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).expect("ip -j output");
    let stats = &v[0]["stats64"];
    let n = |dir: &str, f: &str| {
        stats[dir][f]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats64.{dir}.{f} in {out}"))
    };
    [
        n("tx", "packets"),
        n("tx", "bytes"),
        n("rx", "packets"),
        n("rx", "bytes"),
    ]
}

fn within_1_percent(what: &str, counted: u64, independent: u64) {
    let diff = counted.abs_diff(independent) as f64;
    assert!(
        diff <= independent as f64 * 0.01,
        "{what}: xvs counted {counted}, the client interface {independent} (more than 1% apart)"
    );
}

const SERVICES: [(&str, &str, &str, [&str; 2]); 2] = [
    ("web", "80", "tcp", ["198.18.1.11:80", "198.18.1.12:80"]),
    ("dns", "53", "udp", ["198.18.1.11:5353", "198.18.1.12:5353"]),
];
const FIELDS: [&str; 4] = ["in_packets", "out_packets", "in_bytes", "out_bytes"];

/// connections and the four traffic counters of each service, and the sum over its reals.
fn service_counts(s: &Scrape) -> Vec<([u64; 5], [u64; 5])> {
    SERVICES
        .iter()
        .map(|(name, port, proto, reals)| {
            let labels = [
                ("service", *name),
                ("vip", VIP),
                ("port", *port),
                ("proto", *proto),
            ];
            let mut svc = [value(s, "xvs_service_connections_total", &labels); 5];
            for (i, f) in FIELDS.iter().enumerate() {
                svc[i + 1] = value(s, &format!("xvs_service_{f}_total"), &labels);
            }
            let mut sum = [0u64; 5];
            for real in reals {
                let labels = [("service", *name), ("real", *real)];
                sum[0] += value(s, "xvs_real_connections_total", &labels);
                for (i, f) in FIELDS.iter().enumerate() {
                    sum[i + 1] += value(s, &format!("xvs_real_{f}_total"), &labels);
                }
            }
            (svc, sum)
        })
        .collect()
}

fn delta(after: [u64; 5], before: [u64; 5]) -> [u64; 5] {
    std::array::from_fn(|i| after[i] - before[i])
}

#[test]
fn metrics_count_what_the_client_exchanged_and_ctl_stats_agree() {
    let run = start();
    let lab = &run.lab;
    let before = scrape(lab);
    for f in FIELDS {
        for level in ["service", "real"] {
            let m = format!("xvs_{level}_{f}_total");
            assert!(is_counter(&before, &m), "{m} is not a counter");
        }
    }
    let link_before = client_link(lab);
    let counts_before = service_counts(&before);

    let http = lab.http_client(HTTP_REQUESTS);
    assert_eq!(
        http.ok,
        u64::from(HTTP_REQUESTS),
        "{:?}\n{}",
        http.errors,
        run.xvs.log()
    );
    let udp = lab.udp_client(&format!("{VIP}:53"), UDP_REQUESTS);
    assert_eq!(
        udp.ok,
        u64::from(UDP_REQUESTS),
        "{:?}\n{}",
        udp.errors,
        run.xvs.log()
    );

    let link = client_link(lab);
    let after = scrape(lab);
    let counts = service_counts(&after);
    let web = delta(counts[0].0, counts_before[0].0);
    let web_reals = delta(counts[0].1, counts_before[0].1);
    let dns = delta(counts[1].0, counts_before[1].0);
    let dns_reals = delta(counts[1].1, counts_before[1].1);
    eprintln!("web {web:?} (reals {web_reals:?}), dns {dns:?} (reals {dns_reals:?})");

    // Connections: one per HTTP request, exactly; the real servers' sum to the service's.
    assert_eq!(web[0], u64::from(HTTP_REQUESTS), "web connections");
    assert_eq!(web_reals[0], web[0], "web: reals' connections sum");
    assert_eq!(dns_reals[0], dns[0], "dns: reals' connections sum");
    assert!(
        dns[0] > 0 && dns[0] <= u64::from(UDP_REQUESTS),
        "dns connections {}",
        dns[0]
    );
    // Every packet of both services went to a configured real server (no sorry server here).
    assert_eq!(web_reals, web, "web: reals' traffic sums to the service's");
    assert_eq!(dns_reals, dns, "dns: reals' traffic sums to the service's");
    // UDP: one datagram each way per request.
    assert_eq!(
        (dns[1], dns[2]),
        (u64::from(UDP_REQUESTS), u64::from(UDP_REQUESTS))
    );

    // Independently: what the client's interface sent and received (xvs counts IP lengths).
    let [tx_p, tx_b, rx_p, rx_b] = std::array::from_fn(|i| link[i] - link_before[i]);
    let (in_p, out_p) = (web[1] + dns[1], web[2] + dns[2]);
    let (in_b, out_b) = (web[3] + dns[3], web[4] + dns[4]);
    eprintln!(
        "client eth0: tx {tx_p} packets {tx_b} bytes, rx {rx_p} packets {rx_b} bytes; xvs: in {in_p} packets {in_b} bytes, out {out_p} packets {out_b} bytes"
    );
    within_1_percent("client → real packets", in_p, tx_p);
    within_1_percent("real → client packets", out_p, rx_p);
    // Observed on this kernel: the client veth's tx byte counter leaves the 14-byte Ethernet
    // header out when its peer (the load balancer's wan0) runs native XDP, its rx counter
    // includes it.
    within_1_percent("client → real bytes", in_b, tx_b);
    within_1_percent("real → client bytes", out_b + 14 * out_p, rx_b);

    // xvs ctl list --stats shows the scrape's numbers (no traffic since).
    let out = lab.exec_ok(
        "lb",
        &[XVS, "ctl", "--socket", &run.socket, "list", "--stats"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1], "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
        "{out}"
    );
    assert_eq!(lines[2], "  -> RemoteAddress:Port", "{out}");
    let numbers = |prefix: &str| -> Vec<u64> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"));
        line[prefix.len()..]
            .split_whitespace()
            .map(|n| n.parse().unwrap_or_else(|_| panic!("{line:?}")))
            .collect()
    };
    for (i, (name, port, proto, reals)) in SERVICES.iter().enumerate() {
        let svc = numbers(&format!("{}  {VIP}:{port} ", proto.to_uppercase()));
        assert_eq!(svc, counts[i].0.to_vec(), "{name}:\n{out}");
        for real in reals {
            let labels = [("service", *name), ("real", *real)];
            let mut want = vec![value(&after, "xvs_real_connections_total", &labels)];
            for f in FIELDS {
                want.push(value(&after, &format!("xvs_real_{f}_total"), &labels));
            }
            assert_eq!(numbers(&format!("  -> {real} ")), want, "{real}:\n{out}");
        }
    }
    let rate = lab.exec_ok(
        "lb",
        &[XVS, "ctl", "--socket", &run.socket, "list", "--rate"],
    );
    assert!(
        rate.lines().nth(1).is_some_and(|l| l
            == "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"),
        "{rate}"
    );
    let json = lab.exec_ok(
        "lb",
        &[
            XVS,
            "ctl",
            "--socket",
            &run.socket,
            "list",
            "--stats",
            "--json",
        ],
    );
    assert!(
        json.contains("\"in_packets\"") && json.contains("\"cps\""),
        "{json}"
    );
    eprintln!("{out}{rate}");
}

/// Every sample of `metric`, by its `queue` label, as floats.
fn per_queue(s: &Scrape, metric: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric)
        .map(|x| {
            let q = x.labels.get("queue").unwrap_or("?").to_string();
            match x.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => (q, v),
                ref other => panic!("{metric}: unexpected value {other:?}"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no {metric} sample");
    out
}

fn total(samples: &[(String, f64)]) -> f64 {
    samples.iter().map(|(_, v)| v).sum()
}

#[test]
fn worker_busy_metrics_read_zero_when_idle_and_grow_under_traffic() {
    let run = start();
    let lab = &run.lab;
    // Idle: no traffic for two whole estimator intervals (2 s each), so the last one is idle.
    let started = Instant::now();
    let before = scrape(lab);
    std::thread::sleep(Duration::from_millis(4_500));
    let idle = scrape(lab);
    let wall = started.elapsed().as_secs_f64();
    let busy_before = per_queue(&before, "xvs_worker_busy_seconds_total");
    let busy_idle = per_queue(&idle, "xvs_worker_busy_seconds_total");
    assert!(
        is_counter(&idle, "xvs_worker_busy_seconds_total"),
        "not a counter"
    );
    for ((q, b), (_, a)) in busy_before.iter().zip(&busy_idle) {
        assert!(
            a - b < 0.05 * wall,
            "queue {q}: busy {:.6} s of {wall:.3} s idle",
            a - b
        );
    }
    for (q, r) in per_queue(&idle, "xvs_worker_busy_ratio") {
        assert!((0.0..0.05).contains(&r), "queue {q}: busy ratio {r} idle");
    }
    let histogram = idle
        .samples
        .iter()
        .find(|x| x.metric == "xvs_worker_batch_frames")
        .expect("xvs_worker_batch_frames");
    match &histogram.value {
        Value::Histogram(buckets) => assert_eq!(buckets.len(), 8, "{buckets:?}"),
        other => panic!("xvs_worker_batch_frames is not a histogram: {other:?}"),
    }

    // A burst: busy time and batches grow.
    let http = lab.http_client(HTTP_REQUESTS);
    assert_eq!(http.ok, u64::from(HTTP_REQUESTS), "{:?}", http.errors);
    let burst = scrape(lab);
    let busy_burst = total(&per_queue(&burst, "xvs_worker_busy_seconds_total"));
    assert!(
        busy_burst > total(&busy_idle),
        "busy seconds did not grow: {busy_burst} after, {} before",
        total(&busy_idle)
    );
    let batches = |s: &Scrape| total(&per_queue(s, "xvs_worker_batch_frames_count"));
    let frames = |s: &Scrape| total(&per_queue(s, "xvs_worker_batch_frames_sum"));
    assert!(batches(&burst) > batches(&idle), "no batch counted");
    // Each HTTP request is at least 5 frames through the worker (SYN, ACK, request, FIN, ACK).
    assert!(
        frames(&burst) - frames(&idle) >= f64::from(HTTP_REQUESTS * 5),
        "frames per batch sum grew by {}",
        frames(&burst) - frames(&idle)
    );
    eprintln!(
        "idle {wall:.1} s: busy {:?} -> {:?}; burst of {HTTP_REQUESTS} requests: busy {busy_burst:.6} s",
        busy_before, busy_idle
    );

    // xvs ctl stats: the header and one line per worker.
    let out = lab.exec_ok("lb", &[XVS, "ctl", "--socket", &run.socket, "stats"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("xvs version "), "{out}");
    assert_eq!(
        lines[1], "Queue    RxPPS    TxPPS   Util% Frames/batch",
        "{out}"
    );
    assert_eq!(lines.len(), 2 + busy_idle.len(), "{out}");
    for (line, (q, _)) in lines[2..].iter().zip(&busy_idle) {
        assert!(line.starts_with(&format!("{q:<5}")), "{out}");
    }
    eprintln!("{out}");
}
