//! The Prometheus endpoint (`global.metrics_listen`, `GET /metrics`, text format 0.0.4).
//!
//! Counters are read at scrape time from where the datapath keeps them: per-worker
//! [`WorkerCounters`] and their per-service/per-real traffic blocks (summed here, by
//! identity), per-real [`RealStats`](crate::sched::RealStats) and
//! per-service state behind the current snapshot, the health checks' own counters
//! ([`HealthMetrics`]), and the kernel's AF_XDP statistics. Nothing is pushed from the packet
//! path.
//! The server is a plain blocking `TcpListener` on its own thread: one scrape at a time is enough
//! for Prometheus.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::health::HealthMetrics;
use crate::datapath::counters::{traffic_totals, Traffic, TrafficKey};
use crate::datapath::xsk::{XskStatistics, XskStatsReader};
use crate::datapath::{DropReason, Shared, Snapshot, WorkerCounters};
use crate::vrrp::driver::VrrpStatus;

/// FULLNAT: local ports in use per pool (and each pool's capacity), TOA options inserted and
/// skipped.
fn fullnat_metrics(o: &mut String, src: &Sources) {
    use std::sync::atomic::Ordering::Relaxed;
    let pools = src.shared.conntrack.local_pools();
    if !pools.pools.is_empty() {
        family(
            o,
            "xvs_local_address_ports_in_use",
            "gauge",
            "FULLNAT local address:port pairs held by connections, per local_addresses pool.",
        );
        for (i, p) in pools.pools.iter().enumerate() {
            let _ = writeln!(
                o,
                "xvs_local_address_ports_in_use{{pool=\"{}\"}} {}",
                p.name,
                pools.ports_in_use(i)
            );
        }
        family(
            o,
            "xvs_local_address_ports",
            "gauge",
            "FULLNAT local address:port pairs a local_addresses pool offers.",
        );
        for (i, p) in pools.pools.iter().enumerate() {
            let _ = writeln!(
                o,
                "xvs_local_address_ports{{pool=\"{}\"}} {}",
                p.name,
                pools.ports_per_address(i) * p.addresses.len() as u64
            );
        }
    }
    family(
        o,
        "xvs_toa_inserted_total",
        "counter",
        "FULLNAT TOA options inserted (client SYNs and handshake-completing ACKs).",
    );
    let inserted: u64 = src
        .workers
        .iter()
        .map(|(_, c)| c.toa_inserted.load(Relaxed))
        .sum();
    let _ = writeln!(o, "xvs_toa_inserted_total {inserted}");
    family(
        o,
        "xvs_toa_skipped_total",
        "counter",
        "FULLNAT TOA options not inserted, by reason; the packet was forwarded without one.",
    );
    for skip in crate::datapath::counters::TOA_SKIPS {
        let n: u64 = src.workers.iter().map(|(_, c)| c.toa_skips(skip)).sum();
        let _ = writeln!(
            o,
            "xvs_toa_skipped_total{{reason=\"{}\"}} {n}",
            skip.label()
        );
    }
}

/// Frames held while their next hop's MAC was resolved (`datapath::worker`).
fn neighbour_metrics(o: &mut String, src: &Sources) {
    family(
        o,
        "xvs_neighbour_held_total",
        "counter",
        "Frames held until their next hop's MAC was known; each was then sent or counted as a no_neighbour drop.",
    );
    let held: u64 = src
        .workers
        .iter()
        .map(|(_, c)| c.neighbour_held.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(o, "xvs_neighbour_held_total {held}");
}

/// Outcome of the last (re)load, for `xvs_config_last_reload_*`.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    pub successful: AtomicBool,
    pub timestamp_seconds: AtomicU64,
}

/// Everything the exporter reads.
pub struct Sources {
    pub shared: Arc<Shared>,
    /// (queue, counters) of each worker.
    pub workers: Vec<(u32, Arc<WorkerCounters>)>,
    /// Kernel AF_XDP statistics of each queue's sockets.
    pub xsk: Vec<XskStatsReader>,
    pub reload: Arc<ReloadStatus>,
    pub health: Arc<HealthMetrics>,
    /// The VRRP thread's instances and error counters.
    pub vrrp: Arc<VrrpStatus>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric in the Prometheus text format.
pub fn render(src: &Sources) -> String {
    let mut o = String::with_capacity(4096);
    let snap = src.shared.snapshot.load();
    family(&mut o, "xvs_build_info", "gauge", "Build information.");
    let _ = writeln!(
        o,
        "xvs_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    family(
        &mut o,
        "xvs_real_connections_total",
        "counter",
        "Connections scheduled to a real server.",
    );
    let mut svc_lines = String::new();
    let per_real = |o: &mut String, name: &str, get: &dyn Fn(&crate::sched::RealServer) -> u64| {
        for s in &snap.services {
            for r in &s.reals {
                let _ = writeln!(
                    o,
                    "{name}{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\",real=\"{}\"}} {}",
                    esc(&s.name),
                    s.key.vip,
                    s.key.port,
                    s.key.proto,
                    r.addr,
                    get(r)
                );
            }
        }
    };
    per_real(&mut o, "xvs_real_connections_total", &|r| {
        r.stats.connections_total.load(Ordering::Relaxed)
    });
    family(
        &mut o,
        "xvs_real_connections_active",
        "gauge",
        "ESTABLISHED connections of a real server.",
    );
    per_real(&mut o, "xvs_real_connections_active", &|r| {
        r.active_connections()
    });
    family(
        &mut o,
        "xvs_real_connections_inactive",
        "gauge",
        "Other tracked connections of a real server.",
    );
    per_real(&mut o, "xvs_real_connections_inactive", &|r| {
        r.inactive_connections()
    });
    family(
        &mut o,
        "xvs_real_weight",
        "gauge",
        "Configured weight of a real server.",
    );
    per_real(&mut o, "xvs_real_weight", &|r| u64::from(r.weight));
    family(
        &mut o,
        "xvs_real_up",
        "gauge",
        "1 while the real server is up (health checks), 0 while they hold it down.",
    );
    per_real(&mut o, "xvs_real_up", &|r| u64::from(r.stats.is_up()));
    family(
        &mut o,
        "xvs_service_connections_total",
        "counter",
        "Connections scheduled by a service.",
    );
    for s in &snap.services {
        let total: u64 = s
            .reals
            .iter()
            .chain(&s.sorry)
            .map(|r| r.stats.connections_total.load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(
            svc_lines,
            "xvs_service_connections_total{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\"}} {total}",
            esc(&s.name),
            s.key.vip,
            s.key.port,
            s.key.proto
        );
    }
    o.push_str(&svc_lines);
    render_traffic(&mut o, &snap, src);
    family(
        &mut o,
        "xvs_service_quorum_up",
        "gauge",
        "1 while the service has quorum (enough real servers up), 0 while it has lost it.",
    );
    for s in &snap.services {
        let _ = writeln!(
            o,
            "xvs_service_quorum_up{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\"}} {}",
            esc(&s.name),
            s.key.vip,
            s.key.port,
            s.key.proto,
            u8::from(s.state.has_quorum())
        );
    }
    family(
        &mut o,
        "xvs_sorry_server_connections_total",
        "counter",
        "Connections scheduled to a service's sorry server.",
    );
    for s in &snap.services {
        if let Some(r) = &s.sorry {
            let _ = writeln!(
                o,
                "xvs_sorry_server_connections_total{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\",real=\"{}\"}} {}",
                esc(&s.name),
                s.key.vip,
                s.key.port,
                s.key.proto,
                r.addr,
                r.stats.connections_total.load(Ordering::Relaxed)
            );
        }
    }
    src.health.render(&mut o);
    src.vrrp.render(&mut o);

    family(
        &mut o,
        "xvs_conntrack_entries",
        "gauge",
        "Tracked connections.",
    );
    let _ = writeln!(o, "xvs_conntrack_entries {}", src.shared.conntrack.len());
    family(
        &mut o,
        "xvs_conntrack_max_entries",
        "gauge",
        "Connection table capacity.",
    );
    let _ = writeln!(
        o,
        "xvs_conntrack_max_entries {}",
        src.shared.conntrack.capacity()
    );

    family(
        &mut o,
        "xvs_conntrack_evictions_total",
        "counter",
        "Half-open connections evicted from a full table to make room for a new one.",
    );
    let evicted: u64 = src
        .workers
        .iter()
        .map(|(_, c)| {
            c.conntrack_evictions
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let _ = writeln!(
        o,
        "xvs_conntrack_evictions_total{{reason=\"half_open\"}} {evicted}"
    );

    fullnat_metrics(&mut o, src);
    neighbour_metrics(&mut o, src);

    family(
        &mut o,
        "xvs_drops_total",
        "counter",
        "Dropped frames by reason.",
    );
    for r in DropReason::ALL {
        let n: u64 = src.workers.iter().map(|(_, c)| c.drops(*r)).sum();
        let _ = writeln!(o, "xvs_drops_total{{reason=\"{}\"}} {n}", r.label());
    }
    let per_queue = |o: &mut String,
                     name: &str,
                     help: &str,
                     kind: &str,
                     get: &dyn Fn(&WorkerCounters) -> u64| {
        family(o, name, kind, help);
        for (q, c) in &src.workers {
            let _ = writeln!(o, "{name}{{queue=\"{q}\"}} {}", get(c));
        }
    };
    per_queue(
        &mut o,
        "xvs_rx_packets_total",
        "Frames received by a worker.",
        "counter",
        &|c| c.rx_packets.load(Ordering::Relaxed),
    );
    per_queue(
        &mut o,
        "xvs_tx_packets_total",
        "Frames transmitted by a worker.",
        "counter",
        &|c| c.tx_packets.load(Ordering::Relaxed),
    );
    family(
        &mut o,
        "xvs_worker_busy_ratio",
        "gauge",
        "Share of a worker's batches that had frames to process.",
    );
    for (q, c) in &src.workers {
        let b = c.batches.load(Ordering::Relaxed);
        let busy = c.busy_batches.load(Ordering::Relaxed);
        let ratio = if b == 0 { 0.0 } else { busy as f64 / b as f64 };
        let _ = writeln!(o, "xvs_worker_busy_ratio{{queue=\"{q}\"}} {ratio}");
    }
    let xsk: Vec<(u32, XskStatistics)> = src
        .xsk
        .iter()
        .filter_map(|r| Some((r.queue(), r.read_total().ok()??)))
        .collect();
    for (name, get) in [
        (
            "xvs_xsk_rx_dropped_total",
            (|s: &XskStatistics| s.rx_dropped) as fn(&XskStatistics) -> u64,
        ),
        ("xvs_xsk_rx_ring_full_total", |s| s.rx_ring_full),
        ("xvs_xsk_fill_ring_empty_total", |s| {
            s.rx_fill_ring_empty_descs
        }),
        ("xvs_xsk_tx_invalid_total", |s| s.tx_invalid_descs),
    ] {
        family(
            &mut o,
            name,
            "counter",
            "Kernel AF_XDP statistics of the queue's sockets.",
        );
        for (q, s) in &xsk {
            let _ = writeln!(o, "{name}{{queue=\"{q}\"}} {}", get(s));
        }
    }
    family(
        &mut o,
        "xvs_config_last_reload_successful",
        "gauge",
        "1 if the last configuration (re)load succeeded.",
    );
    let _ = writeln!(
        o,
        "xvs_config_last_reload_successful {}",
        u8::from(src.reload.successful.load(Ordering::Relaxed))
    );
    family(
        &mut o,
        "xvs_config_last_reload_timestamp_seconds",
        "gauge",
        "Time of the last successful (re)load.",
    );
    let _ = writeln!(
        o,
        "xvs_config_last_reload_timestamp_seconds {}",
        src.reload.timestamp_seconds.load(Ordering::Relaxed)
    );
    o
}

/// `xvs_service_{in,out}_{packets,bytes}_total` and `xvs_real_{in,out}_{packets,bytes}_total`:
/// the workers' traffic blocks summed, for the services and real servers of `snap` (a sorry
/// server's traffic counts for its service only, as its connections do).
fn render_traffic(o: &mut String, snap: &Snapshot, src: &Sources) {
    let traffic = traffic_totals(src.workers.iter().map(|(_, c)| &**c));
    let get = |k: TrafficKey| traffic.get(&k).copied().unwrap_or_default();
    type Field = fn(&Traffic) -> u64;
    let fields: [(&str, &str, Field); 4] = [
        ("in_packets", "Packets from clients to real servers", |t| {
            t.in_packets
        }),
        ("out_packets", "Packets from real servers to clients", |t| {
            t.out_packets
        }),
        (
            "in_bytes",
            "Bytes (IP packet lengths) from clients to real servers",
            |t| t.in_bytes,
        ),
        (
            "out_bytes",
            "Bytes (IP packet lengths) from real servers to clients",
            |t| t.out_bytes,
        ),
    ];
    for (field, help, value) in fields {
        let name = format!("xvs_service_{field}_total");
        family(o, &name, "counter", &format!("{help}, per service."));
        for s in &snap.services {
            let t = get(TrafficKey {
                service: s.key,
                real: None,
            });
            let _ = writeln!(
                o,
                "{name}{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\"}} {}",
                esc(&s.name),
                s.key.vip,
                s.key.port,
                s.key.proto,
                value(&t)
            );
        }
        let name = format!("xvs_real_{field}_total");
        family(o, &name, "counter", &format!("{help}, per real server."));
        for s in &snap.services {
            for r in &s.reals {
                let t = get(TrafficKey {
                    service: s.key,
                    real: Some(r.addr),
                });
                let _ = writeln!(
                    o,
                    "{name}{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\",real=\"{}\"}} {}",
                    esc(&s.name),
                    s.key.vip,
                    s.key.port,
                    s.key.proto,
                    r.addr,
                    value(&t)
                );
            }
        }
    }
}

/// Serves `GET /metrics` on `addr` until `stop` is set.
pub fn spawn_server(
    addr: SocketAddr,
    src: Arc<Sources>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("xvs-metrics".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let (mut conn, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(_) => continue,
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let resp = if req.starts_with("GET /metrics ") || req.starts_with("GET /metrics?") {
                let body = render(&src);
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    })
}
