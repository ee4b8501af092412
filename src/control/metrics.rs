//! The Prometheus endpoint (`global.metrics_listen`, `GET /metrics`).
//!
//! # The page
//!
//! Encoded by `prometheus-client` from custom [`Collector`]s that read, at scrape time, where
//! the datapath and the control threads keep their counts ([`datapath_families`],
//! [`control_families`]): per-worker [`WorkerCounters`](crate::datapath::WorkerCounters) and
//! their per-service/per-real traffic blocks (summed by identity), per-real
//! [`RealStats`](crate::sched::RealStats) and per-service state behind the current snapshot,
//! the health checks' own counters, what the VRRP and sync threads publish, and the kernel's
//! AF_XDP statistics. Nothing is pushed from
//! the packet path and nothing is registered per packet: the registry holds one collector per
//! group of families ([`GROUPS`]), made once.
//!
//! The format follows the request's `Accept` header ([`Format::negotiate`]): OpenMetrics 1.0
//! (`application/openmetrics-text`, ending in `# EOF`; counter families named without
//! `_total`, their samples with it) when the client prefers it, as Prometheus does; otherwise
//! the Prometheus text format 0.0.4 (`text/plain`), where every name is what CONTRACT.md lists.
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

mod control_families;
mod datapath_families;
mod encode;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE, VARY};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text, DescriptorEncoder};
use prometheus_client::registry::Registry;
use tokio::task::AbortHandle;

use crate::control::announce::AnnounceStatus;
use crate::control::health::HealthMetrics;
use crate::control::stats::Stats;
use crate::datapath::xsk::XskStatsReader;
use crate::datapath::{Shared, WorkerCounters};
use crate::sync::status::SyncStatus;
use crate::vrrp::driver::VrrpStatus;

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
    /// What the announcer publishes (`xvs_announced`, `xvs_drained`), when `announce:` is
    /// configured.
    pub announce: Option<Arc<AnnounceStatus>>,
}

/// Encodes one group of families from the sources.
type Encode = fn(&Sources, &mut DescriptorEncoder) -> encode::Encoded;

/// The groups of families, in the page's order (the hand-written renderer's). A new family is
/// a block in one of these functions; a new group, a function and a row here.
pub const GROUPS: [(&str, Encode); 13] = [
    ("build", control_families::build_info),
    ("reals", datapath_families::real_servers),
    ("services", datapath_families::services),
    ("health", control_families::health),
    ("vrrp", control_families::vrrp),
    ("sync", control_families::sync),
    ("announce", control_families::announce),
    ("conntrack", datapath_families::conntrack),
    ("fullnat", datapath_families::fullnat),
    ("neighbours", datapath_families::neighbours),
    ("workers", datapath_families::workers),
    ("xsk", datapath_families::xsk),
    ("reload", control_families::reload),
];

/// One group of families, encoded from the sources at each scrape.
struct Group {
    name: &'static str,
    src: Arc<Sources>,
    encode: Encode,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("name", &self.name).finish()
    }
}

impl Collector for Group {
    fn encode(&self, mut e: DescriptorEncoder) -> encode::Encoded {
        (self.encode)(&self.src, &mut e)
    }
}

/// The registry of every group of families over `src`.
pub fn registry(src: Arc<Sources>) -> Registry {
    let mut r = Registry::default();
    for (name, encode) in GROUPS {
        r.register_collector(Box::new(Group {
            name,
            src: src.clone(),
            encode,
        }));
    }
    r
}

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain`), the default.
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a weight above that of `text/plain` (or, when
    /// `text/plain` is not named, at least that of a `*/*` or `text/*`); the text format
    /// otherwise, and without the header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut om, mut plain, mut wild) = (0.0f32, None::<f32>, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" => plain = Some(plain.unwrap_or(0.0).max(q)),
                "*/*" | "text/*" => wild = wild.max(q),
                _ => {}
            }
        }
        let open_metrics = match plain {
            Some(plain) => om > plain,
            None => om > 0.0 && om >= wild,
        };
        if open_metrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The reply's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The page in `format`.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut page = String::with_capacity(16 << 10);
    let encoded = match format {
        Format::Text => prometheus_text::encode(&mut page, registry),
        Format::OpenMetrics => text::encode(&mut page, registry),
    };
    // Writing to a `String` fails only if a value's own formatting does, which ours never do.
    debug_assert!(encoded.is_ok());
    page
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

/// The answer to `req`: `GET /metrics` (or `HEAD`) encodes the page in the format its
/// `Accept` header asks for, another method on it is 405, any other path 404.
fn metrics_response(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return status_response(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = status_response(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut r = Response::new(Full::new(Bytes::from(render(registry, format))));
    let headers = r.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept"));
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
    let registry = registry(src);
    spawn_http(listener, LIMITS, stop, move |req| {
        metrics_response(&registry, req)
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
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
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
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
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
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req: Request<Incoming>| {
        std::future::ready(Ok::<_, Infallible>(answer(&req)))
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
mod scrape_diff;

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
            let thread = spawn_http(listener, limits, stop.clone(), move |_| {
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
            announce: None,
        }
    }

    fn page(src: Sources, format: Format) -> String {
        render(&registry(Arc::new(src)), format)
    }

    /// An IPv6 service's labels: the VIP as written in the configuration (`vip="2001:2::100"`),
    /// real and sorry servers as `[ADDR]:PORT` (the form of Prometheus's own `instance` labels);
    /// the IPv6 connection table's size and capacity have series of their own.
    #[test]
    fn ipv6_services_are_labelled_as_prometheus_users_expect() {
        use crate::conntrack::Timeouts;
        use crate::datapath::nexthop::NextHopTable;
        use crate::datapath::snapshot::Forwarding;
        use crate::datapath::{Service, ServiceKey, Snapshot};
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
        let page = page(src, Format::Text);
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

    /// Sends `GET /metrics` with `headers`; returns the reply's head and body.
    fn get_with(addr: SocketAddr, headers: &str) -> (String, String) {
        let mut s = connect(addr);
        let req = format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[test]
    fn metrics_is_served_at_get_metrics_only_in_the_format_asked_for() {
        let text = page(sources(), Format::Text);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut thread = ServerThread {
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        let registry = registry(Arc::new(sources()));
        let answer = move |req: &Request<Incoming>| metrics_response(&registry, req);
        thread.thread = Some(spawn_http(listener, LIMITS, thread.stop.clone(), answer).unwrap());
        let (head, len, _) = get(addr, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(head.contains("vary: Accept"), "{head}");
        assert_eq!(len, text.len());
        assert!(text.contains(
            "xvs_real_weight{service=\"web\",vip=\"198.18.0.100\",port=\"80\",proto=\"tcp\",real=\"198.18.1.11:80\"} 1"
        ));
        assert!(!text.contains("# EOF"));
        // Prometheus 3's Accept header: OpenMetrics first.
        let (head, body) = get_with(addr, "Accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1\r\n");
        assert!(
            head.contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
            ),
            "{head}"
        );
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert!(
            body.contains("# TYPE xvs_service_connections counter\n"),
            "{body}"
        );
        let (head, body) = get_with(addr, "Accept: text/plain;version=0.0.4\r\n");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert_eq!(body, text);
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
    }

    #[test]
    fn accept_headers_choose_the_format() {
        use Format::{OpenMetrics as Om, Text};
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"), Text),
            (Some("application/openmetrics-text"), Om),
            (Some("application/openmetrics-text; version=1.0.0"), Om),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;q=0.2, */*"), Text),
            (Some("application/openmetrics-text, */*"), Om),
            // A tie with text/plain named: the text format, the default.
            (Some("text/plain, application/openmetrics-text"), Text),
            // Prometheus 2's default.
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Om),
            // Prometheus with `scrape_protocols: [PrometheusText0.0.4]`.
            (Some("text/plain;version=0.0.4;q=0.2,*/*;q=0.1"), Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    /// With `announce:` configured the page has `xvs_announced{vip}` and `xvs_drained`;
    /// without it, neither (the golden page has no announce).
    #[test]
    fn announce_families_appear_when_announce_is_configured() {
        use crate::control::announce::{Published, VipState};
        let without = page(sources(), Format::Text);
        assert!(!without.contains("xvs_announced") && !without.contains("xvs_drained"));
        let status = Arc::new(AnnounceStatus::new(100, "xvs-announce"));
        status.publish(Published {
            drained: false,
            vips: vec![VipState {
                vip: "198.18.0.100".parse().unwrap(),
                announced: true,
                reason: None,
            }],
        });
        let src = Sources {
            announce: Some(status),
            ..sources()
        };
        let page = page(src, Format::Text);
        for want in [
            "# TYPE xvs_announced gauge\n",
            "xvs_announced{vip=\"198.18.0.100\"} 1\n",
            "# TYPE xvs_drained gauge\n",
            "xvs_drained 0\n",
        ] {
            assert!(page.contains(want), "missing {want} in\n{page}");
        }
        prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap();
    }

    /// With `sync:` configured the page has the `xvs_sync_*` families, every error reason at
    /// 0 before anything happened; without it, none.
    #[test]
    fn sync_families_appear_when_sync_runs() {
        use crate::sync::status::SyncInfo;
        assert!(!page(sources(), Format::Text).contains("xvs_sync_"));
        let info = SyncInfo {
            interface: "sync0".into(),
            port: 8848,
        };
        let src = Sources {
            sync: Some(Arc::new(SyncStatus::new(info, std::time::Instant::now()))),
            ..sources()
        };
        let page = page(src, Format::Text);
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
}
