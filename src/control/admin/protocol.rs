//! The admin protocol: what `xvs ctl` and the daemon say to each other over the admin socket.
//!
//! One request per connection over the Unix socket `global.admin_socket` (mode 0600):
//! the client writes one line, a verb ([`Request`]: `list`, `conns`, `stats`, `vrrp`, `sync`,
//! `announce`, `drain`, `undrain`, `reload` or `real`), and shuts down its write side; the daemon answers with a status line, `ok` or `error`,
//! followed by the body ([`Reply`]), and closes the connection. The body of `list`, `conns`,
//! `stats`, `vrrp`, `sync` and `announce` is JSON ([`ListReply`], [`ConnsReply`], [`StatsReply`],
//! [`VrrpReply`], [`SyncReply`], [`AnnounceReply`]); the
//! body of `reload`, of `real`, of `drain`, of `undrain`
//! and of every `error` is text to show the user. The daemon sends data, the client chooses the
//! layout ([`format`](super::format)).
//!
//! Invariants: [`Request::parse`] accepts exactly what [`Request::line`] writes (surrounding
//! white space aside) and [`Reply::decode`] what [`Reply::encode`] writes; a line that is not a
//! request, or a text that is not a reply, is a typed error ([`RequestError`], [`ReplyError`]),
//! never a panic. This module is plain data: it imports nothing from the rest of the crate.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Why a line is not a request. The text is what the user sees (after `xvs: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("empty request")]
    Empty,
    /// The verb (its first 64 characters).
    #[error("unknown request {0:?} (expected list, conns, stats, vrrp, sync, announce, drain, undrain, reload or real)")]
    Unknown(String),
    #[error("real: expected `real add|edit|del ADDR:PORT WEIGHT|- SERVICE`")]
    RealUsage,
    #[error("real: unknown operation {0:?}")]
    RealOp(String),
    #[error("real: {0:?} is not ADDR:PORT")]
    RealAddr(String),
    #[error("real: weight {0:?} is not a number")]
    RealWeight(String),
}

/// Why a text is not a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The first line is neither `ok` nor `error` (its first 64 characters).
    #[error("unexpected reply {0:?}")]
    Status(String),
}

/// The first 64 characters of `s`: what an error quotes of untrusted input.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A run-time change of a real server (`xvs ctl real`), applied by the daemon's main loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealChange {
    pub op: RealChangeKind,
    /// Service name (`services[].name`).
    pub service: String,
    pub addr: SocketAddr,
    /// `add`: the weight (1 if `None`); `edit`: the new weight (required); `del`: unused.
    pub weight: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealChangeKind {
    Add,
    Edit,
    Del,
}

impl RealChangeKind {
    pub const fn name(self) -> &'static str {
        match self {
            RealChangeKind::Add => "add",
            RealChangeKind::Edit => "edit",
            RealChangeKind::Del => "del",
        }
    }
}

/// A request of the admin protocol: one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    List,
    Conns,
    /// Each worker's load over the last estimator interval.
    Stats,
    Vrrp,
    /// Connection sync: peers, messages, drops, lag.
    Sync,
    /// The announce table: each VIP's state, whether the box is drained.
    Announce,
    /// Withdraw every announced VIP; existing flows continue.
    Drain,
    /// Announce again every VIP that is ready.
    Undrain,
    Reload,
    /// `real OP ADDR:PORT WEIGHT|- SERVICE` (the service name last: it may contain spaces).
    Real(RealChange),
}

impl Request {
    /// The request line (without the newline).
    pub fn line(&self) -> String {
        match self {
            Request::List => "list".into(),
            Request::Conns => "conns".into(),
            Request::Stats => "stats".into(),
            Request::Vrrp => "vrrp".into(),
            Request::Sync => "sync".into(),
            Request::Announce => "announce".into(),
            Request::Drain => "drain".into(),
            Request::Undrain => "undrain".into(),
            Request::Reload => "reload".into(),
            Request::Real(c) => format!(
                "real {} {} {} {}",
                c.op.name(),
                c.addr,
                c.weight.map_or("-".to_string(), |w| w.to_string()),
                c.service
            ),
        }
    }

    /// Parses a request line (surrounding white space ignored).
    pub fn parse(line: &str) -> Result<Request, RequestError> {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("real ") {
            return Self::parse_real(rest);
        }
        match line {
            "list" => Ok(Request::List),
            "conns" => Ok(Request::Conns),
            "stats" => Ok(Request::Stats),
            "vrrp" => Ok(Request::Vrrp),
            "sync" => Ok(Request::Sync),
            "announce" => Ok(Request::Announce),
            "drain" => Ok(Request::Drain),
            "undrain" => Ok(Request::Undrain),
            "reload" => Ok(Request::Reload),
            "" => Err(RequestError::Empty),
            other => Err(RequestError::Unknown(clip(other))),
        }
    }

    fn parse_real(rest: &str) -> Result<Request, RequestError> {
        let mut it = rest.splitn(4, ' ');
        let (Some(op), Some(addr), Some(weight), Some(service)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(RequestError::RealUsage);
        };
        let op = match op {
            "add" => RealChangeKind::Add,
            "edit" => RealChangeKind::Edit,
            "del" => RealChangeKind::Del,
            other => return Err(RequestError::RealOp(other.to_string())),
        };
        let addr = addr
            .parse()
            .map_err(|_| RequestError::RealAddr(addr.to_string()))?;
        let weight = match weight {
            "-" => None,
            w => Some(
                w.parse()
                    .map_err(|_| RequestError::RealWeight(w.to_string()))?,
            ),
        };
        Ok(Request::Real(RealChange {
            op,
            service: service.to_string(),
            addr,
            weight,
        }))
    }
}

/// A reply of the admin protocol: a status and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    pub body: String,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            body: body.into(),
        }
    }

    pub fn error(body: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            body: body.into(),
        }
    }

    /// `ok\n` or `error\n`, then the body.
    pub fn encode(&self) -> String {
        format!("{}\n{}", if self.ok { "ok" } else { "error" }, self.body)
    }

    /// Reads an encoded reply; a first line other than `ok` or `error` is not a reply.
    pub fn decode(text: &str) -> Result<Reply, ReplyError> {
        let (status, body) = text.split_once('\n').unwrap_or((text, ""));
        match status {
            "ok" => Ok(Reply::ok(body)),
            "error" => Ok(Reply::error(body)),
            _ => Err(ReplyError::Status(clip(status))),
        }
    }
}

/// `list`: services and their real servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReply {
    /// xvs version of the daemon.
    pub version: String,
    /// Connection-table capacity (`conntrack.max_entries`).
    pub conntrack_max_entries: u64,
    pub services: Vec<ServiceInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub vip: IpAddr,
    pub port: u16,
    pub scheduler: String,
    /// `nat` (the only method built so far).
    pub forwarding: String,
    pub reals: Vec<RealInfo>,
    /// Whether the service has quorum (enough real servers up).
    #[serde(default = "yes")]
    pub quorum: bool,
    /// The sorry server (`weight` 1, `up` while it takes the new flows: quorum lost).
    #[serde(default)]
    pub sorry_server: Option<RealInfo>,
    /// Connections scheduled by the service (its real servers' and sorry server's).
    #[serde(default)]
    pub connections_total: u64,
    /// Packets and bytes of the service (ipvsadm `--stats`).
    #[serde(default)]
    pub stats: StatsInfo,
    /// Rates of the last 2-second interval (ipvsadm `--rate`).
    #[serde(default)]
    pub rate: RateInfo,
}

/// Packet and byte totals: "in" is client → real server, "out" real server → client; bytes are
/// IP packet lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsInfo {
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Per-second rates over the daemon's last 2-second sampling interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateInfo {
    /// Connections per second.
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    /// Bytes per second.
    pub in_bps: u64,
    pub out_bps: u64,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealInfo {
    pub address: SocketAddr,
    /// The configured weight.
    pub weight: u32,
    /// False while health checks hold the server down.
    #[serde(default = "yes")]
    pub up: bool,
    /// ESTABLISHED connections (ipvsadm's ActiveConn).
    pub active_connections: u64,
    /// Other tracked connections (ipvsadm's InActConn).
    pub inactive_connections: u64,
    /// Connections scheduled to this server since it was added.
    pub connections_total: u64,
    #[serde(default)]
    pub stats: StatsInfo,
    #[serde(default)]
    pub rate: RateInfo,
}

/// `conns`: the connection table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnsReply {
    pub connections: Vec<ConnInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub client: SocketAddr,
    #[serde(rename = "virtual")]
    pub vip: SocketAddr,
    pub real: SocketAddr,
    /// FULLNAT: the local address:port the real server sees as the client (absent for NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// ipvsadm's state name (`ESTABLISHED`, `SYN_RECV`, `FIN_WAIT`, `CLOSE`, `UDP`).
    pub state: String,
    /// Whole seconds of idle time left before the entry expires.
    pub expire_seconds: u64,
}

/// `stats`: each worker's load over the daemon's last estimator interval (2 s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// xvs version of the daemon.
    pub version: String,
    /// Length of the interval the figures cover, in seconds (0 until the daemon has run one
    /// interval: every figure is then 0).
    pub interval_seconds: f64,
    /// One per worker, by queue.
    pub workers: Vec<WorkerInfo>,
}

/// One worker's load over the last interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The receive queue the worker serves.
    pub queue: u32,
    /// Frames received per second.
    pub rx_pps: u64,
    /// Frames transmitted per second.
    pub tx_pps: u64,
    /// Share of the interval spent in batches that had frames, 0..=1 (`xvs_worker_busy_ratio`).
    pub busy_ratio: f64,
    /// Mean frames per batch that had frames (the batch size, 64 per interface, when saturated).
    pub frames_per_batch: f64,
}

/// `vrrp`: VRRP instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpReply {
    pub instances: Vec<VrrpInstanceInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceInfo {
    pub name: String,
    pub vrid: u8,
    pub state: String,
    pub priority: u8,
    pub master: Option<IpAddr>,
}

/// `sync`: connection sync between directors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncReply {
    /// Whether a `sync:` section runs the sync thread; everything else is absent when not.
    pub configured: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The multicast group (absent: unicast peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_group: Option<IpAddr>,
    /// This box's sender id (absent until the thread published its first counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<u32>,
    #[serde(default)]
    pub peers: Vec<SyncPeerInfo>,
    /// Local records not sent, by stage: `ring` (a worker's ring was full), `queue` (the send
    /// queue was full), `unencodable`.
    #[serde(default)]
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Received messages dropped, by reason (every reason, zeros included).
    #[serde(default)]
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Peer records installed.
    #[serde(default)]
    pub installed: u64,
    /// Peer records not installed, by reason (every reason, zeros included).
    #[serde(default)]
    pub install_refused: std::collections::BTreeMap<String, u64>,
    /// Datagrams waiting to be sent.
    #[serde(default)]
    pub queued: u64,
}

/// One sync peer (or the multicast group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncPeerInfo {
    pub address: IpAddr,
    /// The multicast group (where live records go), not a box.
    #[serde(default)]
    pub group: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<u32>,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub records_sent: u64,
    pub records_received: u64,
    /// Seconds since its last accepted message (absent: never heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Its full dump ended here (for the group: some peer's did).
    pub in_sync: bool,
    #[serde(default)]
    pub dump_requests_sent: u64,
    #[serde(default)]
    pub dumps_sent: u64,
    #[serde(default)]
    pub send_errors: u64,
}

/// `announce`: the VIPs of the announce table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceReply {
    /// Whether an `announce:` section runs the announcer; everything else is absent when not.
    pub configured: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default)]
    pub drained: bool,
    /// Every VIP of the configuration, in address order.
    #[serde(default)]
    pub vips: Vec<AnnounceVipInfo>,
}

/// One VIP: `announced`, or withdrawn and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceVipInfo {
    pub vip: IpAddr,
    /// `announced` or `withdrawn`.
    pub state: String,
    /// Why it is withdrawn: `quorum` (a service on it lost quorum), `drained`, `failed` (the
    /// kernel refused the route; see the daemon's log). Absent while announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::admin::format::tests::{lab_list, sa};

    #[test]
    fn json_round_trips_and_names_fields() {
        let r = lab_list();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"address\":\"198.18.1.11:80\""), "{text}");
        assert!(text.contains("\"vip\":\"198.18.0.100\""), "{text}");
        assert_eq!(serde_json::from_str::<ListReply>(&text).unwrap(), r);
        let c = ConnInfo {
            protocol: "tcp".into(),
            client: sa("198.18.0.2:1"),
            vip: sa("198.18.0.100:80"),
            real: sa("198.18.1.11:80"),
            local: None,
            state: "ESTABLISHED".into(),
            expire_seconds: 1,
        };
        assert!(serde_json::to_string(&c)
            .unwrap()
            .contains("\"virtual\":\"198.18.0.100:80\""));
    }

    #[test]
    fn requests_parse() {
        let real = |op, weight, service: &str| {
            Request::Real(RealChange {
                op,
                service: service.into(),
                addr: "198.18.1.13:80".parse().unwrap(),
                weight,
            })
        };
        for r in [
            Request::List,
            Request::Conns,
            Request::Stats,
            Request::Vrrp,
            Request::Sync,
            Request::Announce,
            Request::Drain,
            Request::Undrain,
            Request::Reload,
            real(RealChangeKind::Add, Some(5), "web"),
            real(RealChangeKind::Edit, Some(0), "my web service"),
            real(RealChangeKind::Del, None, "web"),
        ] {
            assert_eq!(Request::parse(&r.line()), Ok(r.clone()));
            assert_eq!(Request::parse(&format!(" {}\r\n", r.line())), Ok(r));
        }
        assert_eq!(
            real(RealChangeKind::Add, None, "web").line(),
            "real add 198.18.1.13:80 - web"
        );
        assert_eq!(Request::parse(""), Err(RequestError::Empty));
        assert_eq!(
            Request::parse("list --stats"),
            Err(RequestError::Unknown("list --stats".into()))
        );
        assert_eq!(
            Request::parse("LIST"),
            Err(RequestError::Unknown("LIST".into()))
        );
        for (bad, want) in [
            ("real add 198.18.1.13:80 -", RequestError::RealUsage),
            (
                "real move 198.18.1.13:80 - web",
                RequestError::RealOp("move".into()),
            ),
            (
                "real add 198.18.1.13 - web",
                RequestError::RealAddr("198.18.1.13".into()),
            ),
            (
                "real add 198.18.1.13:80 x web",
                RequestError::RealWeight("x".into()),
            ),
            // Trailing white space is trimmed: no service name at all.
            ("real add 198.18.1.13:80 - ", RequestError::RealUsage),
        ] {
            assert_eq!(Request::parse(bad), Err(want), "{bad}");
        }
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::ok("{\"services\":[]}"),
            Reply::error("a.yaml:3:5: bad\nsecond line"),
            Reply::ok(""),
        ] {
            assert_eq!(Reply::decode(&r.encode()), Ok(r));
        }
        assert_eq!(Reply::decode("error"), Ok(Reply::error("")));
        assert_eq!(
            Reply::decode("HTTP/1.0 200 OK\r\n"),
            Err(ReplyError::Status("HTTP/1.0 200 OK\r".into()))
        );
        assert_eq!(Reply::decode(""), Err(ReplyError::Status(String::new())));
    }

    /// The words the user reads, kept from the string errors these enums replaced.
    #[test]
    fn errors_keep_their_wording() {
        let long = "x".repeat(100);
        for (e, want) in [
            (Request::parse(""), "empty request".to_string()),
            (
                Request::parse(&long),
                format!(
                    "unknown request \"{}\" (expected list, conns, stats, vrrp, sync, announce, drain, undrain, reload or real)",
                    "x".repeat(64)
                ),
            ),
            (
                Request::parse("real add 198.18.1.13:80"),
                "real: expected `real add|edit|del ADDR:PORT WEIGHT|- SERVICE`".into(),
            ),
            (
                Request::parse("real mv 198.18.1.13:80 - web"),
                "real: unknown operation \"mv\"".into(),
            ),
            (
                Request::parse("real add nowhere - web"),
                "real: \"nowhere\" is not ADDR:PORT".into(),
            ),
            (
                Request::parse("real add 198.18.1.13:80 -1 web"),
                "real: weight \"-1\" is not a number".into(),
            ),
        ] {
            assert_eq!(e.map_err(|e| e.to_string()), Err(want));
        }
        assert_eq!(
            Reply::decode("HTTP/1.0 200 OK").map_err(|e| e.to_string()),
            Err("unexpected reply \"HTTP/1.0 200 OK\"".to_string())
        );
    }
}
