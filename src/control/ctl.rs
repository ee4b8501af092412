//! `xvs ctl`: the client of the admin socket, the admin protocol, and the output formats.
//!
//! # Protocol
//!
//! One request per connection over the Unix socket `global.admin_socket` (mode 0600):
//! the client writes one line, a verb ([`Request`]: `list`, `conns`, `vrrp` or `reload`), and shuts
//! down its write side; the daemon answers with a status line, `ok` or `error`, followed by the
//! body, and closes the connection. The body of `list`, `conns` and `vrrp` is JSON
//! ([`ListReply`], [`ConnsReply`], [`VrrpReply`]); the body of `reload` and of every `error` is
//! text to show the user. The daemon sends data, the client chooses the layout: `--json` prints
//! the JSON (pretty), otherwise the ipvsadm layouts below.
//!
//! # Layouts
//!
//! Matched against ipvsadm 1.2x's `print_title`, `print_service_entry`, `list_conn` and
//! `print_conn` (`ipvsadm -L -n` and `ipvsadm -L -n -c`):
//!
//! - header lines `Prot LocalAddress:Port Scheduler Flags` and
//!   `  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn`, verbatim;
//! - a service line is `"%s  %s %s"` (protocol in capitals, two spaces, `VIP:PORT`, scheduler);
//! - a real-server line is `"  -> %-28s %-7s %-6d %-10u %-10u"` (address, forwarding name —
//!   `Masq` for NAT —, weight, active and inactive connections), trailing padding included;
//! - services are sorted by family, protocol, address and port, real servers by address and
//!   port, as ipvsadm sorts them without `--nosort`;
//! - health checks: the Weight column is the weight IPVS would hold under keepalived with
//!   `inhibit_on_failure`, i.e. 0 for a real server that takes no new flows because health checks
//!   hold it down, or because its service lost quorum and the sorry server took over; the sorry
//!   server then has its own line (weight 1), as keepalived adds it to IPVS. `--json` keeps the
//!   configured `weight` and says `up`, `quorum` and `sorry_server`;
//! - connections: `IPVS connection entries`, then `"pro expire %-11s %-18s %-18s %s"` with
//!   `state source virtual destination`, and each entry as `"%-3s %-6s %-11s %-18s %-18s %s"`,
//!   expire being `mm:ss` of idle time left (rounded down, as `/proc/net/ip_vs_conn` does).
//!
//! One departure: ipvsadm's first line, `IP Virtual Server version 1.2.1 (size=4096)`, names the
//! kernel's IPVS version and connection hash size; xvs prints `xvs version X.Y.Z (size=N)`, N
//! being `conntrack.max_entries`, so that no number on the screen is made up.
//!
//! `list --stats` and `list --rate` are ipvsadm's `FMT_STATS` and `FMT_RATE` layouts (see
//! [`format_list_stats`], [`format_list_rate`]): header
//! `"%-33s %8s %8s %8s %8s %8s"` then `  -> RemoteAddress:Port`, a service line of its
//! `PROT  ADDR:PORT` padded to 33 then five numbers, a real-server line of `  -> ADDR:PORT`
//! padded to 28 then five numbers; numbers in ipvsadm's `print_largenum` format (no `--exact`).
//! Whatever the flag, `--json` prints the whole `list` reply, counters and rates included.
//!
//! # Not supported yet (exit 1, one line, nothing made up)
//!
//! - `real add|edit|del SERVICE ADDR:PORT [--weight N]`: a run-time change applied by the
//!   daemon's main loop like a reload (validated first, keepalived-worded change lines back).
//!
//! `vrrp` lists each VRRP instance: name, VRID, state (keepalived's names: MASTER, BACKUP,
//! FAULT, INIT), effective priority and the current master's address.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

/// Where the daemon listens unless the config says otherwise (CONTRACT.md).
pub const DEFAULT_SOCKET: &str = "/run/xvs/admin.sock";

/// How long the client waits for each read or write of a reply (a reload waits for the daemon's
/// main loop, which answers within a second or two).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// `xvs ctl` subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CtlCommand {
    /// Services and real servers, in `ipvsadm -L -n` layout.
    List {
        /// ipvsadm's `--stats`: connections, packets and bytes of each service and real server.
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// ipvsadm's `--rate`: per-second rates over the daemon's last 2-second interval.
        #[arg(long)]
        rate: bool,
        /// JSON instead of the ipvsadm layout.
        #[arg(long)]
        json: bool,
    },
    /// The connection table, in `ipvsadm -L -n -c` layout.
    Conns {
        #[arg(long)]
        json: bool,
    },
    /// Change a real server at run time, without touching the file (a reload of the file
    /// replaces such changes): `add`, `edit --weight N`, `del` (drains: no new flows, its
    /// connections continue until they end).
    Real {
        #[command(subcommand)]
        op: RealOp,
    },
    /// VRRP instances: name, vrid, state, priority, master address.
    Vrrp {
        #[arg(long)]
        json: bool,
    },
    /// Reload the configuration file, like SIGHUP; prints what changed or why the file was refused.
    Reload {
        /// The change lines as JSON (`{"changes": [...]}`); a refusal stays text on stderr.
        #[arg(long)]
        json: bool,
    },
}

/// `xvs ctl real` operations.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum RealOp {
    Add(RealArgs),
    Edit(RealArgs),
    /// Removes the real server; its connections drain (they continue until they end).
    Del(RealArgs),
}

impl RealOp {
    pub fn args(&self) -> &RealArgs {
        match self {
            RealOp::Add(a) | RealOp::Edit(a) | RealOp::Del(a) => a,
        }
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RealArgs {
    /// Service name (`services[].name`).
    pub service: String,
    /// Real server, ADDR:PORT.
    pub addr: SocketAddr,
    /// Weight (`add`: default 1; `edit`: required).
    #[arg(long)]
    pub weight: Option<u32>,
    /// The changes as JSON (`{"changes": [...]}`).
    #[arg(long)]
    pub json: bool,
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
    Vrrp,
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
            Request::Vrrp => "vrrp".into(),
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
    pub fn parse(line: &str) -> Result<Request, String> {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("real ") {
            return Self::parse_real(rest);
        }
        match line {
            "list" => Ok(Request::List),
            "conns" => Ok(Request::Conns),
            "vrrp" => Ok(Request::Vrrp),
            "reload" => Ok(Request::Reload),
            "" => Err("empty request".to_string()),
            other => Err(format!(
                "unknown request {:?} (expected list, conns, vrrp, reload or real)",
                other.chars().take(64).collect::<String>()
            )),
        }
    }

    fn parse_real(rest: &str) -> Result<Request, String> {
        let mut it = rest.splitn(4, ' ');
        let (Some(op), Some(addr), Some(weight), Some(service)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err("real: expected `real add|edit|del ADDR:PORT WEIGHT|- SERVICE`".into());
        };
        let op = match op {
            "add" => RealChangeKind::Add,
            "edit" => RealChangeKind::Edit,
            "del" => RealChangeKind::Del,
            other => return Err(format!("real: unknown operation {other:?}")),
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("real: {addr:?} is not ADDR:PORT"))?;
        let weight = match weight {
            "-" => None,
            w => Some(
                w.parse()
                    .map_err(|_| format!("real: weight {w:?} is not a number"))?,
            ),
        };
        if service.is_empty() {
            return Err("real: the service name is empty".into());
        }
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

    pub fn decode(text: &str) -> Result<Reply, String> {
        let (status, body) = text.split_once('\n').unwrap_or((text, ""));
        match status {
            "ok" => Ok(Reply::ok(body)),
            "error" => Ok(Reply::error(body)),
            _ => Err(format!(
                "unexpected reply {:?}",
                status.chars().take(64).collect::<String>()
            )),
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

/// ipvsadm's name for a forwarding method (`fwd_name`).
fn forward_name(forwarding: &str) -> &str {
    match forwarding {
        "nat" => "Masq",
        "dr" => "Route",
        "tun" => "Tunnel",
        "fullnat" => "FullNat",
        other => other,
    }
}

fn proto_number(p: &str) -> u8 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        _ => u8::MAX,
    }
}

/// The `ipvsadm -L -n` layout (see the module documentation).
pub fn format_list(r: &ListReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xvs version {} (size={})",
        r.version, r.conntrack_max_entries
    );
    o.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    o.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in sorted_services(r) {
        let _ = writeln!(
            o,
            "{}  {} {}",
            s.protocol.to_uppercase(),
            SocketAddr::new(s.vip, s.port),
            s.scheduler
        );
        for (rs, weight) in shown_reals(s) {
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                rs.address.to_string(),
                forward_name(&s.forwarding),
                weight,
                rs.active_connections,
                rs.inactive_connections
            );
        }
    }
    o
}

/// Services in ipvsadm's order (family, protocol, address, port).
fn sorted_services(r: &ListReply) -> Vec<&ServiceInfo> {
    let mut services: Vec<&ServiceInfo> = r.services.iter().collect();
    services.sort_by_key(|s| (s.vip.is_ipv6(), proto_number(&s.protocol), s.vip, s.port));
    services
}

/// The real-server lines of a service, in ipvsadm's order, with the weight IPVS would hold.
fn shown_reals(s: &ServiceInfo) -> Vec<(&RealInfo, u32)> {
    // keepalived replaces the real servers by the sorry server while quorum is lost.
    let sorry_in = !s.quorum && s.sorry_server.is_some();
    let mut reals: Vec<(&RealInfo, u32)> = s
        .reals
        .iter()
        .map(|r| (r, if r.up && !sorry_in { r.weight } else { 0 }))
        .chain(s.sorry_server.iter().filter(|_| sorry_in).map(|r| (r, 1)))
        .collect();
    reals.sort_by_key(|(r, _)| (r.address.is_ipv6(), r.address.ip(), r.address.port()));
    reals
}

/// ipvsadm's `print_largenum` without `--exact`: 9 columns, right-aligned; from 100 million on,
/// 8 columns and a K, M, G or T suffix (thousands, millions, ... rounded down).
pub fn largenum(i: u64) -> String {
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1_000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// ipvsadm's service column of `--stats` and `--rate`: `PROT  ADDR:PORT`, cut at 33 characters
/// (IPv4; ipvsadm does not cut IPv6 names), padded to 33.
fn stats_service_name(s: &ServiceInfo) -> String {
    let mut name = format!(
        "{}  {}",
        s.protocol.to_uppercase(),
        SocketAddr::new(s.vip, s.port)
    );
    if s.vip.is_ipv4() {
        name.truncate(33);
    }
    format!("{name:<33}")
}

/// ipvsadm's real-server column of `--stats` and `--rate`: `  -> ADDR:PORT` padded to 28 (cut
/// at 28 for IPv4).
fn stats_real_name(r: &RealInfo) -> String {
    let mut name = r.address.to_string();
    if r.address.is_ipv4() {
        name.truncate(28);
    }
    format!("  -> {name:<28}")
}

/// The `ipvsadm -L -n --stats` layout: ipvsadm's `print_title` and `print_service_entry` with
/// `FMT_STATS` (the service's and each real server's Conns, InPkts, OutPkts, InBytes and
/// OutBytes, each in [`largenum`] format).
pub fn format_list_stats(r: &ListReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xvs version {} (size={})",
        r.version, r.conntrack_max_entries
    );
    let _ = writeln!(
        o,
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
        "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
    );
    let nums = |conns: u64, st: &StatsInfo| {
        [
            conns,
            st.in_packets,
            st.out_packets,
            st.in_bytes,
            st.out_bytes,
        ]
        .map(largenum)
        .concat()
    };
    for s in sorted_services(r) {
        let _ = writeln!(
            o,
            "{}{}",
            stats_service_name(s),
            nums(s.connections_total, &s.stats)
        );
        for (rs, _) in shown_reals(s) {
            let _ = writeln!(
                o,
                "{}{}",
                stats_real_name(rs),
                nums(rs.connections_total, &rs.stats)
            );
        }
    }
    o
}

/// The `ipvsadm -L -n --rate` layout: ipvsadm's `FMT_RATE` (CPS, InPPS, OutPPS, InBPS, OutBPS;
/// a real server's first three as plain `%8u` columns, as ipvsadm prints them).
pub fn format_list_rate(r: &ListReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xvs version {} (size={})",
        r.version, r.conntrack_max_entries
    );
    let _ = writeln!(
        o,
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
        "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
    );
    for s in sorted_services(r) {
        let t = &s.rate;
        let nums = [t.cps, t.in_pps, t.out_pps, t.in_bps, t.out_bps]
            .map(largenum)
            .concat();
        let _ = writeln!(o, "{}{nums}", stats_service_name(s));
        for (rs, _) in shown_reals(s) {
            let t = &rs.rate;
            let _ = writeln!(
                o,
                "{} {:>8} {:>8} {:>8}{}{}",
                stats_real_name(rs),
                t.cps,
                t.in_pps,
                t.out_pps,
                largenum(t.in_bps),
                largenum(t.out_bps)
            );
        }
    }
    o
}

/// The `ipvsadm -L -n -c` layout (see the module documentation).
pub fn format_conns(r: &ConnsReply) -> String {
    let mut o = String::from("IPVS connection entries\n");
    // With FULLNAT connections, a `local` column (the pool address:port the real server sees as
    // the client) goes between virtual and destination, as DPVS's ipvsadm shows it; NAT rows
    // have `-` there.
    let fullnat = r.connections.iter().any(|c| c.local.is_some());
    if fullnat {
        let _ = writeln!(
            o,
            "pro expire {:<11} {:<18} {:<18} {:<18} destination",
            "state", "source", "virtual", "local"
        );
    } else {
        let _ = writeln!(
            o,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in &r.connections {
        let expire = format!("{:02}:{:02}", c.expire_seconds / 60, c.expire_seconds % 60);
        if fullnat {
            let local = c.local.map_or("-".to_string(), |l| l.to_string());
            let _ = writeln!(
                o,
                "{:<3} {:<6} {:<11} {:<18} {:<18} {:<18} {}",
                c.protocol.to_uppercase(),
                expire,
                c.state,
                c.client.to_string(),
                c.vip.to_string(),
                local,
                c.real
            );
            continue;
        }
        let _ = writeln!(
            o,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol.to_uppercase(),
            expire,
            c.state,
            c.client.to_string(),
            c.vip.to_string(),
            c.real
        );
    }
    o
}

/// The `vrrp` text.
pub fn format_vrrp(r: &VrrpReply) -> String {
    if r.instances.is_empty() {
        return "no VRRP instances\n".to_string();
    }
    let mut o = format!(
        "{:<16} {:<5} {:<8} {:<8} master\n",
        "instance", "vrid", "state", "priority"
    );
    for i in &r.instances {
        let _ = writeln!(
            o,
            "{:<16} {:<5} {:<8} {:<8} {}",
            i.name,
            i.vrid,
            i.state,
            i.priority,
            i.master.map_or("-".to_string(), |m| m.to_string())
        );
    }
    o
}

/// What `xvs ctl` prints and its exit status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn ok(stdout: String) -> Output {
        Output {
            code: 0,
            stdout,
            stderr: String::new(),
        }
    }

    fn fail(line: impl Into<String>) -> Output {
        let mut stderr = line.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Output {
            code: 1,
            stdout: String::new(),
            stderr,
        }
    }
}

/// An I/O error without Rust's ` (os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Why a request got no reply.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The socket could not be connected to.
    Unreachable(String),
    /// Connected, but the exchange failed or the reply was not understood.
    BadReply(String),
}

/// Sends `req` to the daemon at `socket` and returns its reply.
pub fn request(socket: &Path, req: Request) -> Result<Reply, RequestError> {
    let mut stream =
        UnixStream::connect(socket).map_err(|e| RequestError::Unreachable(io_reason(&e)))?;
    let bad = |e: std::io::Error| RequestError::BadReply(io_reason(&e));
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(bad)?;
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .map_err(bad)?;
    stream
        .write_all(format!("{}\n", req.line()).as_bytes())
        .map_err(bad)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(bad)?;
    Reply::decode(&text).map_err(RequestError::BadReply)
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| format!("unreadable reply from the daemon: {e}"))
}

fn to_json<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Renders a data reply as JSON or as text.
fn render<T, F>(body: &str, json: bool, text: F) -> Output
where
    T: Serialize + for<'de> Deserialize<'de>,
    F: Fn(&T) -> String,
{
    match parse_json::<T>(body) {
        Ok(v) if json => Output::ok(to_json(&v)),
        Ok(v) => Output::ok(text(&v)),
        Err(e) => Output::fail(format!("xvs ctl: {e}")),
    }
}

/// The change lines of a reload or `real` change as `{"changes": [...]}`.
fn changes_json(body: &str) -> Output {
    let lines: Vec<&str> = body.lines().collect();
    Output::ok(to_json(&serde_json::json!({ "changes": lines })))
}

/// Runs one `xvs ctl` command against the daemon at `socket`.
pub fn execute(socket: &Path, cmd: &CtlCommand) -> Output {
    let req = match cmd {
        CtlCommand::Real { op } => {
            let (kind, a) = match op {
                RealOp::Add(a) => (RealChangeKind::Add, a),
                RealOp::Edit(a) => (RealChangeKind::Edit, a),
                RealOp::Del(a) => (RealChangeKind::Del, a),
            };
            Request::Real(RealChange {
                op: kind,
                service: a.service.clone(),
                addr: a.addr,
                weight: a.weight,
            })
        }
        CtlCommand::List { .. } => Request::List,
        CtlCommand::Conns { .. } => Request::Conns,
        CtlCommand::Vrrp { .. } => Request::Vrrp,
        CtlCommand::Reload { .. } => Request::Reload,
    };
    let reply = match request(socket, req) {
        Ok(r) => r,
        Err(RequestError::Unreachable(why)) => {
            return Output::fail(format!(
                "xvs ctl: cannot reach the daemon at {}: {why}",
                socket.display()
            ))
        }
        Err(RequestError::BadReply(why)) => {
            return Output::fail(format!(
                "xvs ctl: no usable answer from the daemon at {}: {why}",
                socket.display()
            ))
        }
    };
    if !reply.ok {
        return Output::fail(reply.body);
    }
    match *cmd {
        CtlCommand::List {
            json, stats: true, ..
        } => render(&reply.body, json, format_list_stats),
        CtlCommand::List {
            json, rate: true, ..
        } => render(&reply.body, json, format_list_rate),
        CtlCommand::List { json, .. } => render(&reply.body, json, format_list),
        CtlCommand::Conns { json } => render(&reply.body, json, format_conns),
        CtlCommand::Vrrp { json } => render(&reply.body, json, format_vrrp),
        CtlCommand::Reload { json: true } => changes_json(&reply.body),
        CtlCommand::Real { ref op } if op.args().json => changes_json(&reply.body),
        _ => {
            let mut out = reply.body;
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            Output::ok(out)
        }
    }
}

/// The socket to talk to: `--socket`, else `global.admin_socket` of `-c FILE`, else the default.
///
/// The file is read leniently (only `global.admin_socket` is looked at), so that `xvs ctl -c
/// FILE reload` still reaches the daemon when FILE has a validation error elsewhere — the daemon
/// then says what is wrong with it. A file that is not YAML at all is refused here, asking for
/// `--socket PATH`.
pub fn socket_path(socket: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    let Some(file) = config else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("xvs ctl: cannot read {}: {}", file.display(), io_reason(&e)))?;
    admin_socket_of(&text).map_err(|why| {
        format!(
            "xvs ctl: cannot read global.admin_socket from {}: {why} (give the socket with --socket PATH)",
            file.display()
        )
    })
}

/// `global.admin_socket` of a config text, or the default when the key is absent.
fn admin_socket_of(text: &str) -> Result<PathBuf, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    match doc.get("global").and_then(|g| g.get("admin_socket")) {
        None | Some(serde_yaml_ng::Value::Null) => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(serde_yaml_ng::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err("it is not a path".to_string()),
    }
}

/// `xvs ctl`: prints the outcome and returns the exit status.
pub fn main(socket: Option<&Path>, config: Option<&Path>, cmd: &CtlCommand) -> u8 {
    let out = match socket_path(socket, config) {
        Ok(path) => execute(&path, cmd),
        Err(line) => Output::fail(line),
    };
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    out.code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn real(addr: &str, weight: u32, active: u64, inactive: u64) -> RealInfo {
        RealInfo {
            address: sa(addr),
            weight,
            up: true,
            active_connections: active,
            inactive_connections: inactive,
            connections_total: active + inactive,
            stats: StatsInfo::default(),
            rate: RateInfo::default(),
        }
    }

    fn lab_list() -> ListReply {
        ListReply {
            version: "0.1.0".into(),
            conntrack_max_entries: 1_000_000,
            services: vec![
                // Config order differs from ipvsadm's sort order on purpose.
                ServiceInfo {
                    name: "dns".into(),
                    protocol: "udp".into(),
                    vip: "198.18.0.100".parse().unwrap(),
                    port: 53,
                    scheduler: "rr".into(),
                    forwarding: "nat".into(),
                    reals: vec![
                        real("198.18.1.12:5353", 1, 0, 7),
                        real("198.18.1.11:5353", 1, 0, 8),
                    ],
                    quorum: true,
                    sorry_server: None,
                    connections_total: 0,
                    stats: StatsInfo::default(),
                    rate: RateInfo::default(),
                },
                ServiceInfo {
                    name: "web".into(),
                    protocol: "tcp".into(),
                    vip: "198.18.0.100".parse().unwrap(),
                    port: 80,
                    scheduler: "wrr".into(),
                    forwarding: "nat".into(),
                    reals: vec![
                        real("198.18.1.11:80", 3, 12, 3),
                        real("198.18.1.12:80", 1, 4, 1),
                    ],
                    quorum: true,
                    sorry_server: None,
                    connections_total: 0,
                    stats: StatsInfo::default(),
                    rate: RateInfo::default(),
                },
            ],
        }
    }

    #[test]
    fn list_matches_ipvsadm_layout() {
        let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:80               Masq    3      12         3         
  -> 198.18.1.12:80               Masq    1      4          1         
UDP  198.18.0.100:53 rr
  -> 198.18.1.11:5353             Masq    1      0          8         
  -> 198.18.1.12:5353             Masq    1      0          7         
";
        assert_eq!(format_list(&lab_list()), want);
    }

    #[test]
    fn list_shows_down_servers_at_weight_0_and_the_sorry_server_while_quorum_is_lost() {
        let mut l = lab_list();
        let web = &mut l.services[1];
        web.reals[1].up = false;
        web.sorry_server = Some(real("198.18.1.11:8080", 1, 0, 2));
        let text = format_list(&l);
        assert!(
            text.contains("  -> 198.18.1.11:80               Masq    3 "),
            "{text}"
        );
        assert!(
            text.contains("  -> 198.18.1.12:80               Masq    0 "),
            "{text}"
        );
        assert!(
            !text.contains("8080"),
            "quorum kept: no sorry server line\n{text}"
        );
        let web = &mut l.services[1];
        web.reals[0].up = false;
        web.quorum = false;
        let text = format_list(&l);
        let want = "\
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:80               Masq    0      12         3         
  -> 198.18.1.11:8080             Masq    1      0          2         
  -> 198.18.1.12:80               Masq    0      4          1         
";
        assert!(text.contains(want), "{text}");
        // An older daemon's JSON without the new fields reads as up and with quorum.
        let old: RealInfo = serde_json::from_str(
            r#"{"address":"198.18.1.11:80","weight":1,"active_connections":0,"inactive_connections":0,"connections_total":0}"#,
        )
        .unwrap();
        assert!(old.up);
    }

    #[test]
    fn list_columns_line_up_with_the_headers() {
        let text = format_list(&lab_list());
        let lines: Vec<&str> = text.lines().collect();
        let header = lines[2];
        let row = lines[4];
        for col in ["Forward", "Weight", "ActiveConn", "InActConn"] {
            let at = header.find(col).unwrap();
            assert_ne!(
                &row[at..at + 1],
                " ",
                "{col} column starts at {at} in {row:?}"
            );
            assert_eq!(&row[at - 1..at], " ", "{col} column at {at} in {row:?}");
        }
    }

    #[test]
    fn list_without_services_prints_the_headers() {
        let r = ListReply {
            version: "0.1.0".into(),
            conntrack_max_entries: 10,
            services: vec![],
        };
        assert_eq!(
            format_list(&r),
            "xvs version 0.1.0 (size=10)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        );
    }

    #[test]
    fn conns_match_ipvsadm_layout() {
        let r = ConnsReply {
            connections: vec![
                ConnInfo {
                    protocol: "tcp".into(),
                    client: sa("198.18.0.2:40312"),
                    vip: sa("198.18.0.100:80"),
                    real: sa("198.18.1.11:80"),
                    local: None,
                    state: "ESTABLISHED".into(),
                    expire_seconds: 899,
                },
                ConnInfo {
                    protocol: "tcp".into(),
                    client: sa("198.18.0.2:40314"),
                    vip: sa("198.18.0.100:80"),
                    real: sa("198.18.1.12:80"),
                    local: None,
                    state: "CLOSE".into(),
                    expire_seconds: 9,
                },
                ConnInfo {
                    protocol: "udp".into(),
                    client: sa("198.18.0.2:51000"),
                    vip: sa("198.18.0.100:53"),
                    real: sa("198.18.1.12:5353"),
                    local: None,
                    state: "UDP".into(),
                    expire_seconds: 299,
                },
            ],
        };
        let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.18.0.2:40312   198.18.0.100:80    198.18.1.11:80
TCP 00:09  CLOSE       198.18.0.2:40314   198.18.0.100:80    198.18.1.12:80
UDP 04:59  UDP         198.18.0.2:51000   198.18.0.100:53    198.18.1.12:5353
";
        assert_eq!(format_conns(&r), want);
    }

    #[test]
    fn fullnat_conns_get_a_local_column() {
        let conn = |client: &str, real: &str, local: Option<&str>| ConnInfo {
            protocol: "tcp".into(),
            client: sa(client),
            vip: sa("198.18.0.100:80"),
            real: sa(real),
            local: local.map(sa),
            state: "ESTABLISHED".into(),
            expire_seconds: 899,
        };
        let r = ConnsReply {
            connections: vec![
                conn(
                    "198.18.0.2:40312",
                    "198.18.1.11:80",
                    Some("198.18.1.2:20000"),
                ),
                conn("198.18.0.2:40313", "198.18.1.12:80", None),
            ],
        };
        let want = "\
IPVS connection entries
pro expire state       source             virtual            local              destination
TCP 14:59  ESTABLISHED 198.18.0.2:40312   198.18.0.100:80    198.18.1.2:20000   198.18.1.11:80
TCP 14:59  ESTABLISHED 198.18.0.2:40313   198.18.0.100:80    -                  198.18.1.12:80
";
        assert_eq!(format_conns(&r), want);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"local\":\"198.18.1.2:20000\""), "{json}");
        assert_eq!(
            json.matches("\"local\"").count(),
            1,
            "NAT rows have no local: {json}"
        );
    }

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
    fn vrrp_without_instances() {
        assert_eq!(
            format_vrrp(&VrrpReply { instances: vec![] }),
            "no VRRP instances\n"
        );
    }

    #[test]
    fn vrrp_lists_name_vrid_state_priority_master() {
        let r = VrrpReply {
            instances: vec![
                VrrpInstanceInfo {
                    name: "VI_1".into(),
                    vrid: 51,
                    state: "MASTER".into(),
                    priority: 200,
                    master: Some("198.18.0.11".parse().unwrap()),
                },
                VrrpInstanceInfo {
                    name: "VI_2".into(),
                    vrid: 52,
                    state: "FAULT".into(),
                    priority: 100,
                    master: None,
                },
            ],
        };
        assert_eq!(
            format_vrrp(&r),
            "instance         vrid  state    priority master\n\
             VI_1             51    MASTER   200      198.18.0.11\n\
             VI_2             52    FAULT    100      -\n"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"master\":\"198.18.0.11\""), "{json}");
        assert!(json.contains("\"master\":null"), "{json}");
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
            Request::Vrrp,
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
        assert!(Request::parse("").unwrap_err().contains("empty"));
        assert!(Request::parse("list --stats")
            .unwrap_err()
            .contains("unknown request"));
        assert!(Request::parse("LIST").is_err());
        for bad in [
            "real add 198.18.1.13:80 -",
            "real move 198.18.1.13:80 - web",
            "real add 198.18.1.13 - web",
            "real add 198.18.1.13:80 x web",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
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
        assert!(Reply::decode("HTTP/1.0 200 OK\r\n").is_err());
        assert!(Reply::decode("").is_err());
    }

    #[test]
    fn unreachable_daemon_is_one_line_and_exit_1() {
        let path = std::env::temp_dir().join(format!("xvs-ctl-none-{}.sock", std::process::id()));
        let out = execute(
            &path,
            &CtlCommand::List {
                stats: false,
                rate: false,
                json: false,
            },
        );
        assert_eq!(out.code, 1);
        assert!(out.stdout.is_empty());
        assert_eq!(
            out.stderr,
            format!(
                "xvs ctl: cannot reach the daemon at {}: No such file or directory\n",
                path.display()
            )
        );
    }

    /// `lab_list` with counters: web 200 connections, dns 100; big numbers on .11:80.
    fn lab_list_with_stats() -> ListReply {
        let mut l = lab_list();
        let st = |ip: u64, op: u64, ib: u64, ob: u64| StatsInfo {
            in_packets: ip,
            out_packets: op,
            in_bytes: ib,
            out_bytes: ob,
        };
        let dns = &mut l.services[0];
        dns.connections_total = 100;
        dns.stats = st(100, 100, 3_800, 5_000);
        dns.reals[0].connections_total = 50;
        dns.reals[0].stats = st(50, 50, 1_900, 2_500);
        dns.reals[1].connections_total = 50;
        dns.reals[1].stats = st(50, 50, 1_900, 2_500);
        dns.rate = RateInfo {
            cps: 5,
            in_pps: 5,
            out_pps: 5,
            in_bps: 190,
            out_bps: 250,
        };
        // reals[1] is .11 (config order is not ipvsadm's order).
        dns.reals[1].rate = RateInfo {
            cps: 3,
            in_pps: 3,
            out_pps: 3,
            in_bps: 114,
            out_bps: 150,
        };
        let web = &mut l.services[1];
        web.connections_total = 200;
        web.stats = st(123_456_789, 1_400, 98_765_432_109, 250_000_000_000_000);
        web.reals[0].connections_total = 150;
        web.reals[0].stats = st(123_456_000, 1_050, 98_765_000_000, 249_999_999_999_999);
        web.reals[1].connections_total = 50;
        web.reals[1].stats = st(789, 350, 432_109, 1);
        web.rate = RateInfo {
            cps: 1234,
            in_pps: 123_456_789,
            out_pps: 99_999_999,
            in_bps: 1_000_000_000,
            out_bps: 7,
        };
        web.reals[0].rate = RateInfo {
            cps: 1000,
            in_pps: 123_456_789,
            out_pps: 99_999_999,
            in_bps: 1_000_000_000,
            out_bps: 7,
        };
        l
    }

    #[test]
    fn largenum_matches_ipvsadm() {
        for (n, want) in [
            (0, "        0"),
            (99_999_999, " 99999999"),
            (100_000_000, "  100000K"),
            (999_999_999, "  999999K"),
            (1_000_000_000, "    1000M"),
            (99_999_999_999, "   99999M"),
            (100_000_000_000, "     100G"),
            (99_999_999_999_999, "   99999G"),
            (100_000_000_000_000, "     100T"),
            (u64::MAX, "18446744T"),
        ] {
            assert_eq!(largenum(n), want, "{n}");
        }
    }

    #[test]
    fn list_stats_matches_ipvsadm_layout() {
        let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                   200  123456K     1400   98765M     250T
  -> 198.18.1.11:80                    150  123456K     1050   98765M     249T
  -> 198.18.1.12:80                     50      789      350   432109        1
UDP  198.18.0.100:53                   100      100      100     3800     5000
  -> 198.18.1.11:5353                   50       50       50     1900     2500
  -> 198.18.1.12:5353                   50       50       50     1900     2500
";
        assert_eq!(format_list_stats(&lab_list_with_stats()), want);
    }

    #[test]
    fn list_rate_matches_ipvsadm_layout() {
        // A real server's CPS, InPPS and OutPPS are plain `%8u` columns in ipvsadm.
        let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.0.100:80                  1234  123456K 99999999    1000M        7
  -> 198.18.1.11:80                   1000 123456789 99999999    1000M        7
  -> 198.18.1.12:80                      0        0        0        0        0
UDP  198.18.0.100:53                     5        5        5      190      250
  -> 198.18.1.11:5353                    3        3        3      114      150
  -> 198.18.1.12:5353                    0        0        0        0        0
";
        assert_eq!(format_list_rate(&lab_list_with_stats()), want);
    }

    #[test]
    fn stats_columns_line_up_and_long_names_are_cut() {
        let text = format_list_stats(&lab_list_with_stats());
        let lines: Vec<&str> = text.lines().collect();
        // Every number ends under the last letter of its header, as ipvsadm's do.
        let header = lines[1];
        for row in &lines[3..] {
            assert_eq!(row.len(), header.len(), "{row:?}");
        }
        let mut l = lab_list_with_stats();
        l.services[1].sorry_server = Some(real("198.18.1.13:8080", 1, 0, 0));
        l.services[1].quorum = false;
        let text = format_list_stats(&l);
        assert!(
            text.contains("\n  -> 198.18.1.13:8080                    0        0        0"),
            "{text}"
        );
        // IPv6 names are not cut (ipvsadm cuts IPv4 names only).
        let mut l = lab_list_with_stats();
        l.services[0].vip = "2001:db8:ffff:ffff:ffff:ffff:ffff:1".parse().unwrap();
        let text = format_list_stats(&l);
        assert!(
            text.contains("UDP  [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:53      100"),
            "{text}"
        );
    }

    #[test]
    fn every_command_asks_the_daemon() {
        let path = Path::new("/nonexistent/xvs.sock");
        let cmd = CtlCommand::Real {
            op: RealOp::Del(RealArgs {
                service: "web".into(),
                addr: sa("198.18.1.11:80"),
                weight: None,
                json: false,
            }),
        };
        let out = execute(path, &cmd);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.starts_with("xvs ctl: cannot reach the daemon"),
            "{:?}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1);
        // --stats and --rate are supported: they ask the daemon (absent here).
        for (stats, rate) in [(true, false), (false, true)] {
            let out = execute(
                path,
                &CtlCommand::List {
                    stats,
                    rate,
                    json: false,
                },
            );
            assert!(
                out.stderr.starts_with("xvs ctl: cannot reach the daemon"),
                "{:?}",
                out.stderr
            );
        }
    }

    #[test]
    fn socket_path_precedence() {
        let explicit = Path::new("/tmp/explicit.sock");
        assert_eq!(socket_path(Some(explicit), None).unwrap(), explicit);
        assert_eq!(socket_path(None, None).unwrap(), Path::new(DEFAULT_SOCKET));
        let dir = std::env::temp_dir();
        let file = dir.join(format!("xvs-ctl-cfg-{}.yaml", std::process::id()));
        std::fs::write(
            &file,
            "global:\n  admin_socket: /run/xvs-test.sock\nservices: [oops\n",
        )
        .unwrap();
        // A syntax error elsewhere: the lenient reader still needs a parsable document.
        assert!(socket_path(None, Some(&file))
            .unwrap_err()
            .contains("--socket PATH"));
        std::fs::write(
            &file,
            "global:\n  admin_socket: /run/xvs-test.sock\n  bogus_key: 1\n",
        )
        .unwrap();
        assert_eq!(
            socket_path(None, Some(&file)).unwrap(),
            Path::new("/run/xvs-test.sock")
        );
        assert_eq!(socket_path(Some(explicit), Some(&file)).unwrap(), explicit);
        std::fs::write(&file, "datapath: {}\n").unwrap();
        assert_eq!(
            socket_path(None, Some(&file)).unwrap(),
            Path::new(DEFAULT_SOCKET)
        );
        std::fs::remove_file(&file).unwrap();
        assert!(socket_path(None, Some(&file))
            .unwrap_err()
            .starts_with("xvs ctl: cannot read "));
    }
}
