//! The Prometheus endpoint (`global.metrics_listen`, `GET /metrics`, text format 0.0.4).
//!
//! Counters are read at scrape time from where the datapath keeps them: per-worker
//! [`WorkerCounters`] and their per-service/per-real traffic blocks (summed here, by
//! identity), per-real [`RealStats`](crate::sched::RealStats) and
//! per-service state behind the current snapshot, the health checks' own counters
//! ([`HealthMetrics`]), and the kernel's AF_XDP statistics. Nothing is pushed from the packet
//! path.
//!
//! # The HTTP server
//!
//! hyper's HTTP/1 server on a single-threaded tokio runtime that lives on the metrics thread
//! (nothing else in xvs is async). Connections are served concurrently, so a client that is
//! silent, slow, or never reads its reply delays nobody else, and each one is bounded
//! ([`HttpLimits`]): the request head must arrive whole within
//! [`request_deadline`](HttpLimits::request_deadline) of the connection's start (hyper's
//! `header_read_timeout`), the connection is closed [`connection_deadline`](HttpLimits::connection_deadline)
//! after it started whatever it is doing (reading, or waiting for the client to read the
//! reply), one request per connection (no keep-alive), a request head of at most
//! [`MAX_REQUEST_HEAD`] bytes, and at most [`max_connections`](HttpLimits::max_connections) at
//! once: a new connection beyond that closes the oldest one (a healthy scrape takes
//! milliseconds; the oldest is the likeliest to be stuck). When `stop` is set the thread notices
//! within [`STOP_POLL`] and returns; dropping the runtime closes every connection still open, so
//! nothing ever waits for a client.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::AbortHandle;

use crate::control::health::HealthMetrics;
use crate::control::stats::Stats;
use crate::datapath::counters::{traffic_totals, Traffic, TrafficKey, BATCH_FRAMES_LE};
use crate::datapath::xsk::{XskStatistics, XskStatsReader};
use crate::datapath::{DropReason, Service, Shared, Snapshot, WorkerCounters};
use crate::sched::RealServer;
use crate::sync::status::SyncStatus;
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
                src.shared.conntrack.local_ports_in_use(i)
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
    /// The estimator's last interval (`xvs_worker_busy_ratio`).
    pub stats: Arc<Stats>,
    /// What the connection sync thread publishes (`xvs_sync_*`), when `sync:` is configured.
    pub sync: Option<Arc<SyncStatus>>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric in the Prometheus text format: one family group after another, in the
/// order of CONTRACT.md (the golden test pins the page byte for byte).
pub fn render(src: &Sources) -> String {
    let mut o = String::with_capacity(4096);
    let snap = src.shared.snapshot.load();
    family(&mut o, "xvs_build_info", "gauge", "Build information.");
    let _ = writeln!(
        o,
        "xvs_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    render_reals(&mut o, &snap);
    render_services(&mut o, &snap, src);
    src.health.render(&mut o);
    src.vrrp.render(&mut o);
    if let Some(sync) = &src.sync {
        sync.render(&mut o);
    }
    render_conntrack(&mut o, src);
    fullnat_metrics(&mut o, src);
    neighbour_metrics(&mut o, src);
    render_workers(&mut o, src);
    render_xsk(&mut o, src);
    render_reload(&mut o, src);
    o
}

/// One sample of family `name` labelled with service `s` (and real server `real`, if any).
fn service_sample(
    o: &mut String,
    name: &str,
    s: &Service,
    real: Option<SocketAddr>,
    value: impl std::fmt::Display,
) {
    let _ = write!(
        o,
        "{name}{{service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\"",
        esc(&s.name),
        s.key.vip,
        s.key.port,
        s.key.proto
    );
    if let Some(r) = real {
        let _ = write!(o, ",real=\"{r}\"");
    }
    let _ = writeln!(o, "}} {value}");
}

/// One line of family `name` per real server of every service, valued by `get`.
fn per_real(o: &mut String, snap: &Snapshot, name: &str, get: &dyn Fn(&RealServer) -> u64) {
    for s in &snap.services {
        for r in &s.reals {
            service_sample(o, name, s, Some(r.addr), get(r));
        }
    }
}

/// `xvs_real_*`: connections, weight and health of each real server.
fn render_reals(o: &mut String, snap: &Snapshot) {
    type Get = fn(&RealServer) -> u64;
    let families: [(&str, &str, &str, Get); 5] = [
        (
            "xvs_real_connections_total",
            "counter",
            "Connections scheduled to a real server.",
            |r| r.stats.connections_total.load(Ordering::Relaxed),
        ),
        (
            "xvs_real_connections_active",
            "gauge",
            "ESTABLISHED connections of a real server.",
            |r| r.active_connections(),
        ),
        (
            "xvs_real_connections_inactive",
            "gauge",
            "Other tracked connections of a real server.",
            |r| r.inactive_connections(),
        ),
        (
            "xvs_real_weight",
            "gauge",
            "Configured weight of a real server.",
            |r| u64::from(r.weight),
        ),
        (
            "xvs_real_up",
            "gauge",
            "1 while the real server is up (health checks), 0 while they hold it down.",
            |r| u64::from(r.stats.is_up()),
        ),
    ];
    for (name, kind, help, get) in families {
        family(o, name, kind, help);
        per_real(o, snap, name, &get);
    }
}

/// `xvs_service_*` and `xvs_sorry_server_connections_total`: connections, traffic (with the
/// real servers' traffic) and quorum of each service.
fn render_services(o: &mut String, snap: &Snapshot, src: &Sources) {
    family(
        o,
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
        service_sample(o, "xvs_service_connections_total", s, None, total);
    }
    render_traffic(o, snap, src);
    family(
        o,
        "xvs_service_quorum_up",
        "gauge",
        "1 while the service has quorum (enough real servers up), 0 while it has lost it.",
    );
    for s in &snap.services {
        service_sample(
            o,
            "xvs_service_quorum_up",
            s,
            None,
            u8::from(s.state.has_quorum()),
        );
    }
    family(
        o,
        "xvs_sorry_server_connections_total",
        "counter",
        "Connections scheduled to a service's sorry server.",
    );
    for s in &snap.services {
        if let Some(r) = &s.sorry {
            service_sample(
                o,
                "xvs_sorry_server_connections_total",
                s,
                Some(r.addr),
                r.stats.connections_total.load(Ordering::Relaxed),
            );
        }
    }
}

/// `xvs_conntrack_*`: table size, capacity and evictions; the IPv6 table's size and capacity
/// as `_ipv6` series of their own (`xvs_conntrack_max_entries` is the IPv4 table's).
fn render_conntrack(o: &mut String, src: &Sources) {
    family(o, "xvs_conntrack_entries", "gauge", "Tracked connections.");
    let _ = writeln!(o, "xvs_conntrack_entries {}", src.shared.conntrack.len());
    family(
        o,
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
        o,
        "xvs_conntrack_entries_ipv6",
        "gauge",
        "Tracked IPv6 connections (a table of their own; also counted in xvs_conntrack_entries).",
    );
    let _ = writeln!(
        o,
        "xvs_conntrack_entries_ipv6 {}",
        src.shared.conntrack.len_ipv6()
    );
    family(
        o,
        "xvs_conntrack_max_entries_ipv6",
        "gauge",
        "IPv6 connection table capacity (conntrack.max_entries_ipv6; 0 without IPv6 services).",
    );
    let _ = writeln!(
        o,
        "xvs_conntrack_max_entries_ipv6 {}",
        src.shared.conntrack.capacity_ipv6()
    );
    family(
        o,
        "xvs_conntrack_evictions_total",
        "counter",
        "Half-open connections evicted from a full table to make room for a new one.",
    );
    let evicted: u64 = src
        .workers
        .iter()
        .map(|(_, c)| c.conntrack_evictions.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(
        o,
        "xvs_conntrack_evictions_total{{reason=\"half_open\"}} {evicted}"
    );
}

/// `xvs_drops_total` by reason, and the per-queue worker families.
fn render_workers(o: &mut String, src: &Sources) {
    family(o, "xvs_drops_total", "counter", "Dropped frames by reason.");
    for r in DropReason::ALL {
        let n: u64 = src.workers.iter().map(|(_, c)| c.drops(*r)).sum();
        let _ = writeln!(o, "xvs_drops_total{{reason=\"{}\"}} {n}", r.label());
    }
    type Get = fn(&WorkerCounters) -> u64;
    let counters: [(&str, &str, Get); 2] = [
        (
            "xvs_rx_packets_total",
            "Frames received by a worker.",
            |c| c.rx_packets.load(Ordering::Relaxed),
        ),
        (
            "xvs_tx_packets_total",
            "Frames transmitted by a worker.",
            |c| c.tx_packets.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        family(o, name, "counter", help);
        for (q, c) in &src.workers {
            let _ = writeln!(o, "{name}{{queue=\"{q}\"}} {}", get(c));
        }
    }
    render_busy(o, src);
}

/// Nanoseconds as decimal seconds, exactly (`12.000000345`).
fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The worker saturation families: busy seconds, the frames-per-batch histogram (cumulative
/// `le` buckets summed from the worker's per-bucket counts) and the last interval's busy share.
fn render_busy(o: &mut String, src: &Sources) {
    family(
        o,
        "xvs_worker_busy_seconds_total",
        "counter",
        "Time a worker spent in batches that had frames (rate() is its utilisation).",
    );
    for (q, c) in &src.workers {
        let busy = seconds(c.busy_ns.load(Ordering::Relaxed));
        let _ = writeln!(o, "xvs_worker_busy_seconds_total{{queue=\"{q}\"}} {busy}");
    }
    let name = "xvs_worker_batch_frames";
    family(
        o,
        name,
        "histogram",
        "Frames per batch that had frames (near the batch size: the worker is saturated).",
    );
    for (q, c) in &src.workers {
        let h = c.batch_frames.read();
        let mut cumulative = 0u64;
        for (le, n) in BATCH_FRAMES_LE.iter().zip(h.buckets) {
            cumulative = cumulative.wrapping_add(n);
            let _ = writeln!(o, "{name}_bucket{{queue=\"{q}\",le=\"{le}\"}} {cumulative}");
        }
        let (count, sum) = (h.count(), h.sum);
        let _ = writeln!(
            o,
            "{name}_bucket{{queue=\"{q}\",le=\"+Inf\"}} {count}\n{name}_sum{{queue=\"{q}\"}} {sum}\n{name}_count{{queue=\"{q}\"}} {count}"
        );
    }
    family(
        o,
        "xvs_worker_busy_ratio",
        "gauge",
        "Share of the last 2 s estimator interval a worker spent in batches that had frames.",
    );
    for w in &src.stats.loads().workers {
        let _ = writeln!(
            o,
            "xvs_worker_busy_ratio{{queue=\"{}\"}} {}",
            w.queue, w.busy_ratio
        );
    }
}

/// `xvs_xsk_*`: the kernel's AF_XDP statistics of each queue's sockets (a queue whose
/// statistics cannot be read is left out).
fn render_xsk(o: &mut String, src: &Sources) {
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
            o,
            name,
            "counter",
            "Kernel AF_XDP statistics of the queue's sockets.",
        );
        for (q, s) in &xsk {
            let _ = writeln!(o, "{name}{{queue=\"{q}\"}} {}", get(s));
        }
    }
}

/// `xvs_config_last_reload_*`: the outcome and time of the last (re)load.
fn render_reload(o: &mut String, src: &Sources) {
    family(
        o,
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
        o,
        "xvs_config_last_reload_timestamp_seconds",
        "gauge",
        "Time of the last successful (re)load.",
    );
    let _ = writeln!(
        o,
        "xvs_config_last_reload_timestamp_seconds {}",
        src.reload.timestamp_seconds.load(Ordering::Relaxed)
    );
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
            service_sample(o, &name, s, None, value(&t));
        }
        let name = format!("xvs_real_{field}_total");
        family(o, &name, "counter", &format!("{help}, per real server."));
        for s in &snap.services {
            for r in &s.reals {
                let t = get(TrafficKey {
                    service: s.key,
                    real: Some(r.addr),
                });
                service_sample(o, &name, s, Some(r.addr), value(&t));
            }
        }
    }
}

/// What bounds one connection of the HTTP server, and how many are served at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; a new connection beyond it closes the oldest.
    pub max_connections: usize,
    /// From the connection's start to the end of the request head.
    pub request_deadline: Duration,
    /// From the connection's start to the last byte of the reply: past it the connection is
    /// closed, whatever it is doing.
    pub connection_deadline: Duration,
}

/// The `/metrics` server's limits. Prometheus' default scrape timeout is 10 s.
pub const LIMITS: HttpLimits = HttpLimits {
    max_connections: 64,
    request_deadline: Duration::from_secs(2),
    connection_deadline: Duration::from_secs(10),
};

/// Longest request head read (hyper's smallest buffer limit).
pub const MAX_REQUEST_HEAD: usize = 8192;

/// How often the accept loop looks at the stop flag while no client connects.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// The answer to a request for `path` with `method`: `GET /metrics` (or `HEAD`) renders the
/// page, another method on it is 405, any other path 404.
fn metrics_response(src: &Sources, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return status_response(StatusCode::NOT_FOUND);
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = status_response(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(render(src))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn status_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Serves `GET /metrics` on `addr` until `stop` is set.
pub fn spawn_server(
    addr: SocketAddr,
    src: Arc<Sources>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    spawn_http(listener, LIMITS, stop, move |method, path| {
        metrics_response(&src, method, path)
    })
}

/// Serves HTTP/1 on `listener` with `answer` on a thread of its own until `stop` is set (see
/// the module documentation). The runtime is built and the listener registered with it here, so
/// that a failure is the caller's error, not the thread's.
pub fn spawn_http<F>(
    listener: TcpListener,
    limits: HttpLimits,
    stop: Arc<AtomicBool>,
    answer: F,
) -> std::io::Result<JoinHandle<()>>
where
    F: Fn(&Method, &str) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _in_runtime = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let answer = Arc::new(answer);
    std::thread::Builder::new()
        .name("xvs-metrics".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, limits, &stop, answer));
            // Dropping `runtime` drops every connection still open: nothing waits for a client.
        })
}

async fn accept_loop<F>(
    listener: tokio::net::TcpListener,
    limits: HttpLimits,
    stop: &AtomicBool,
    answer: Arc<F>,
) where
    F: Fn(&Method, &str) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    // The connections being served, oldest first.
    let mut live: VecDeque<AbortHandle> = VecDeque::with_capacity(limits.max_connections);
    while !stop.load(Ordering::Relaxed) {
        let stream = match tokio::time::timeout(STOP_POLL, listener.accept()).await {
            Err(_elapsed) => continue,
            Ok(Ok((stream, _))) => stream,
            Ok(Err(_)) => {
                // Out of file descriptors or the like: wait rather than spin.
                tokio::time::sleep(STOP_POLL).await;
                continue;
            }
        };
        live.retain(|c| !c.is_finished());
        while live.len() >= limits.max_connections.max(1) {
            if let Some(oldest) = live.pop_front() {
                oldest.abort();
            }
        }
        let answer = answer.clone();
        live.push_back(tokio::spawn(connection(stream, limits, answer)).abort_handle());
    }
}

/// One connection: one request, one reply, all within `limits.connection_deadline`.
async fn connection<F>(stream: tokio::net::TcpStream, limits: HttpLimits, answer: Arc<F>)
where
    F: Fn(&Method, &str) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req: Request<Incoming>| {
        std::future::ready(Ok::<_, Infallible>(answer(req.method(), req.uri().path())))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_deadline)
        .keep_alive(false)
        // A client may shut down its sending side once the request is out.
        .half_close(true)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(limits.connection_deadline, conn).await;
}

#[cfg(test)]
mod fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::testing::{assert_between, web_shared, ServerThread};
    use crate::sched::{RealServer, SchedulerKind};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// Larger than what loopback TCP buffers can hold (the send buffer grows to 4 MB and the
    /// receive buffer to 6 MB by default), so a client that never reads it stalls its sender.
    const BIG: usize = 32 << 20;

    struct Server {
        addr: SocketAddr,
        thread: ServerThread,
    }

    impl Server {
        /// An HTTP server whose every answer is a `BIG` body of `x`.
        fn start(limits: HttpLimits) -> Server {
            let body = Bytes::from(vec![b'x'; BIG]);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let thread = spawn_http(listener, limits, stop.clone(), move |_, _| {
                Response::new(Full::new(body.clone()))
            })
            .unwrap();
            Server {
                addr,
                thread: ServerThread {
                    stop,
                    thread: Some(thread),
                },
            }
        }

        /// Sets `stop` and returns how long the server thread took to end.
        fn stop(&mut self) -> Duration {
            self.thread.stop()
        }
    }

    const LONG: HttpLimits = HttpLimits {
        max_connections: 64,
        request_deadline: Duration::from_secs(20),
        connection_deadline: Duration::from_secs(30),
    };

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn request(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
    }

    /// Sends a request, reads the whole reply; returns (head, body length, time taken).
    fn get(addr: SocketAddr, path: &str) -> (String, usize, Duration) {
        let t = Instant::now();
        let mut s = connect(addr);
        s.write_all(&request(path)).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a reply head");
        let head = String::from_utf8_lossy(&reply[..split]).into_owned();
        (head, reply.len() - split - 4, t.elapsed())
    }

    /// Reads until the server closes the connection (or 10 s pass); returns the bytes read and
    /// when the close was seen.
    fn until_closed(s: &mut TcpStream) -> (usize, Instant) {
        let mut n = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (n, Instant::now()),
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (n, Instant::now())
                }
                Err(e) => panic!("still open after 10 s ({e})"),
            }
        }
    }

    #[test]
    fn silent_clients_and_one_that_never_reads_delay_no_other_request() {
        let mut server = Server::start(LONG);
        let _silent: Vec<TcpStream> = (0..20).map(|_| connect(server.addr)).collect();
        let mut stuck = connect(server.addr);
        stuck.write_all(&request("/metrics")).unwrap();
        // Let the server fill the stuck connection's buffers.
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            let (head, len, took) = get(server.addr, "/metrics");
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert_eq!(len, BIG);
            assert!(took < Duration::from_secs(1), "answered in {took:?}");
        }
        assert!(server.stop() < Duration::from_millis(500));
        // The stuck client really was stuck: the server could not hand it its whole reply
        // before it stopped.
        assert!(until_closed(&mut stuck).0 < BIG);
    }

    #[test]
    fn a_silent_client_is_closed_at_the_request_deadline() {
        let limits = HttpLimits {
            request_deadline: Duration::from_millis(300),
            ..LONG
        };
        let server = Server::start(limits);
        let t = Instant::now();
        let mut s = connect(server.addr);
        let (n, closed) = until_closed(&mut s);
        assert_eq!(n, 0);
        let (lo, hi) = (Duration::from_millis(300), Duration::from_millis(1300));
        assert_between("closed", closed - t, lo, hi);
    }

    #[test]
    fn the_request_deadline_covers_the_whole_head_not_each_read() {
        let limits = HttpLimits {
            request_deadline: Duration::from_millis(500),
            ..LONG
        };
        let server = Server::start(limits);
        let t = Instant::now();
        let mut s = connect(server.addr);
        // One byte of a never-ending head every 50 ms: each read is quick, the head never ends.
        let mut closed_after = None;
        for b in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle().take(60) {
            if s.write_all(&[*b]).is_err() {
                closed_after = Some(t.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let after = match closed_after {
            Some(a) => a,
            None => until_closed(&mut s).1 - t,
        };
        let (lo, hi) = (Duration::from_millis(500), Duration::from_millis(1500));
        assert_between("closed", after, lo, hi);
    }

    #[test]
    fn a_client_that_never_reads_is_closed_at_the_connection_deadline() {
        let limits = HttpLimits {
            connection_deadline: Duration::from_millis(500),
            ..LONG
        };
        let server = Server::start(limits);
        let t = Instant::now();
        let mut s = connect(server.addr);
        s.write_all(&request("/metrics")).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        // The server gave up at the deadline: what it had not handed to the kernel is lost.
        let (n, _) = until_closed(&mut s);
        assert!(n < BIG, "the whole reply arrived ({n} bytes)");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn past_the_connection_cap_a_new_connection_closes_the_oldest() {
        let limits = HttpLimits {
            max_connections: 2,
            ..LONG
        };
        let server = Server::start(limits);
        let mut oldest = connect(server.addr);
        let _second = connect(server.addr);
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let (head, len, _) = get(server.addr, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(len, BIG);
        let (n, closed) = until_closed(&mut oldest);
        assert_eq!(n, 0);
        assert!(closed - t < Duration::from_secs(1), "{:?}", closed - t);
    }

    #[test]
    fn stop_ends_the_thread_promptly_and_closes_stuck_connections() {
        let mut server = Server::start(LONG);
        let mut silent = connect(server.addr);
        let mut stuck = connect(server.addr);
        stuck.write_all(&request("/metrics")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let took = server.stop();
        assert!(took < STOP_POLL * 4, "stopped in {took:?}");
        assert_eq!(until_closed(&mut silent).0, 0);
        assert!(until_closed(&mut stuck).0 < BIG);
    }

    fn sources() -> Sources {
        let reals = vec![RealServer::new("198.18.1.11:80".parse().unwrap(), 1)];
        let shared = web_shared(SchedulerKind::Rr, reals);
        Sources {
            stats: Arc::new(Stats::new(shared.clone(), vec![])),
            shared,
            workers: vec![],
            xsk: vec![],
            reload: Arc::new(ReloadStatus::default()),
            health: Arc::new(HealthMetrics::default()),
            vrrp: Arc::new(VrrpStatus::default()),
            sync: None,
        }
    }

    /// The whole page for one service with two real servers and two workers with counts: the
    /// text users scrape, byte for byte (the version is masked). Regenerate the file only for a
    /// deliberate change of the metrics (CONTRACT.md).
    #[test]
    fn the_page_is_byte_identical_to_the_golden_file() {
        let reals = vec![
            RealServer::new("198.18.1.11:80".parse().unwrap(), 1),
            RealServer::new("198.18.1.12:80".parse().unwrap(), 3),
        ];
        let mut src = sources();
        src.shared = web_shared(SchedulerKind::Wrr, reals);
        let snap = src.shared.snapshot.load();
        snap.services[0].reals[1]
            .stats
            .connections_total
            .store(7, Ordering::Relaxed);
        for (q, n) in [(0u32, 5u64), (1, 9)] {
            let c = Arc::new(WorkerCounters::default());
            c.rx_packets.store(n * 10, Ordering::Relaxed);
            c.tx_packets.store(n * 9, Ordering::Relaxed);
            c.batches.store(n * 4, Ordering::Relaxed);
            c.busy_batches.store(n, Ordering::Relaxed);
            c.conntrack_evictions.store(n, Ordering::Relaxed);
            c.count_drop(DropReason::ALL[usize::try_from(q).unwrap()]);
            c.busy_ns.store(12_000_000_345, Ordering::Relaxed);
            src.workers.push((q, c));
        }
        // One 2 s estimator interval: queue 0 busy 0.5 s (batches of 1, 3 and 64 frames),
        // queue 1 busy 1.8 s (64, 64 and 100).
        src.stats = Arc::new(Stats::new(src.shared.clone(), src.workers.clone()));
        let t0 = std::time::Instant::now();
        src.stats.sample(t0);
        for ((_, c), (busy, frames)) in src
            .workers
            .iter()
            .zip([(500_000_000, [1, 3, 64]), (1_800_000_000, [64, 64, 100])])
        {
            c.busy_ns.fetch_add(busy, Ordering::Relaxed);
            for f in frames {
                c.batch_frames.record(f);
            }
        }
        src.stats.sample(t0 + Duration::from_secs(2));
        src.reload.successful.store(true, Ordering::Relaxed);
        src.reload
            .timestamp_seconds
            .store(1_700_000_000, Ordering::Relaxed);
        let page = render(&src).replace(env!("CARGO_PKG_VERSION"), "VERSION");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics_page.txt");
        if std::env::var_os("XVS_WRITE_GOLDEN").is_some() {
            std::fs::write(path, &page).unwrap();
        }
        let want = std::fs::read_to_string(path).unwrap();
        for (i, (got, want)) in page.lines().zip(want.lines()).enumerate() {
            assert_eq!(got, want, "line {}", i + 1);
        }
        assert_eq!(page, want);
    }

    /// An IPv6 service's labels: the VIP as written in the configuration (`vip="2001:2::100"`),
    /// real and sorry servers as `[ADDR]:PORT` (the form of Prometheus's own `instance` labels);
    /// the IPv6 connection table's size and capacity have series of their own.
    #[test]
    fn ipv6_services_are_labelled_as_prometheus_users_expect() {
        use crate::conntrack::Timeouts;
        use crate::datapath::nexthop::NextHopTable;
        use crate::datapath::snapshot::Forwarding;
        use crate::datapath::ServiceKey;
        use crate::flow::Proto;
        let real: SocketAddr = "[2001:2:0:1::11]:80".parse().unwrap();
        let mut web6 = Service::new(
            "web6",
            ServiceKey {
                vip: "2001:2::100".parse().unwrap(),
                port: 80,
                proto: Proto::Tcp,
            },
            Forwarding::Nat,
            SchedulerKind::Rr,
            vec![RealServer::new(real, 2)],
        );
        web6.sorry = Some(RealServer::new("[2001:2:0:1::99]:8080".parse().unwrap(), 1));
        let snap = Snapshot::new(1, vec![], vec![web6], Timeouts::default(), false);
        let shared =
            Shared::try_with_tables(snap, NextHopTable::new(vec![], []), 64, 32, &[]).unwrap();
        let src = Sources {
            shared: Arc::new(shared),
            ..sources()
        };
        let page = render(&src);
        let labels = "service=\"web6\",vip=\"2001:2::100\",port=\"80\",proto=\"tcp\"";
        for want in [
            format!("xvs_real_weight{{{labels},real=\"[2001:2:0:1::11]:80\"}} 2\n"),
            format!("xvs_service_connections_total{{{labels}}} 0\n"),
            format!(
                "xvs_sorry_server_connections_total{{{labels},real=\"[2001:2:0:1::99]:8080\"}} 0\n"
            ),
            "xvs_conntrack_entries_ipv6 0\n".to_string(),
            "xvs_conntrack_max_entries_ipv6 32\n".to_string(),
            "xvs_conntrack_max_entries 64\n".to_string(),
        ] {
            assert!(page.contains(&want), "missing {want:?} in\n{page}");
        }
    }

    #[test]
    fn metrics_is_served_at_get_metrics_only() {
        let src = sources();
        let page = render(&src);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let src = Arc::new(src);
        let h = spawn_http(listener, LIMITS, stop.clone(), move |m, p| {
            metrics_response(&src, m, p)
        })
        .unwrap();
        let (head, len, _) = get(addr, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert_eq!(len, page.len());
        assert!(page.contains(
            "xvs_real_weight{service=\"web\",vip=\"198.18.0.100\",port=\"80\",proto=\"tcp\",real=\"198.18.1.11:80\"} 1"
        ));
        let (head, len, _) = get(addr, "/");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert_eq!(len, 0);
        let mut s = connect(addr);
        s.write_all(b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\n"), "HEAD has no body: {reply}");
        let mut s = connect(addr);
        s.write_all(b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.0 405"), "{reply}");
        assert!(reply.contains("allow: GET, HEAD"), "{reply}");
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    /// With `sync:` configured the page has the `xvs_sync_*` families, every error reason at
    /// 0 before anything happened; without it, none (the golden page has no sync).
    #[test]
    fn sync_families_appear_when_sync_runs() {
        use crate::sync::status::SyncInfo;
        assert!(!render(&sources()).contains("xvs_sync_"));
        let info = SyncInfo {
            interface: "sync0".into(),
            port: 8848,
        };
        let src = Sources {
            sync: Some(Arc::new(SyncStatus::new(info, std::time::Instant::now()))),
            ..sources()
        };
        let page = render(&src);
        for e in crate::sync::SyncError::ALL {
            let want = format!("xvs_sync_errors_total{{reason=\"{}\"}} 0\n", e.label());
            assert!(page.contains(&want), "missing {want}");
        }
        for want in [
            "# TYPE xvs_sync_messages_sent_total counter\n",
            "# TYPE xvs_sync_messages_received_total counter\n",
            "xvs_sync_dropped_total{stage=\"queue\"} 0\n",
        ] {
            assert!(page.contains(want), "missing {want}");
        }
        prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap();
    }

    /// The realistic state's page (see `fixture`), byte for byte but for the sync lag's
    /// value. `XVS_WRITE_GOLDEN=1` rewrites it.
    #[test]
    fn the_realistic_page_is_the_golden_scrape() {
        let page = render(&fixture::sources()).replace(env!("CARGO_PKG_VERSION"), "VERSION");
        if std::env::var_os("XVS_WRITE_GOLDEN").is_some() {
            std::fs::create_dir_all(std::path::Path::new(fixture::GOLDEN).parent().unwrap())
                .unwrap();
            std::fs::write(fixture::GOLDEN, &page).unwrap();
        }
        let want = std::fs::read_to_string(fixture::GOLDEN).unwrap();
        let lag = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| match l.split_once("xvs_sync_peer_lag_seconds{") {
                    Some(_) => l.rsplit_once(' ').unwrap().0.to_string(),
                    None => l.to_string(),
                })
                .collect()
        };
        assert_eq!(lag(&page), lag(&want));
        prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap();
    }
}
