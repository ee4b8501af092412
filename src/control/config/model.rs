//! The typed configuration: one struct per YAML mapping of CONTRACT.md, with its documented
//! defaults. Every mapping rejects unknown keys.
//!
//! Durations are [`Duration`]s (written with units in YAML), addresses are [`IpAddr`] /
//! [`SocketAddr`] (IPv4 or IPv6).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use crate::datapath::snapshot::ServiceKey;
use crate::flow::Proto;
use crate::sched::{mh, SchedFlags, SchedulerKind};

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub global: Global,
    pub datapath: Datapath,
    pub conntrack: Conntrack,
    /// FULLNAT source address pools.
    pub local_addresses: Vec<LocalAddressPool>,
    pub services: Vec<Service>,
    pub vrrp: Vrrp,
    /// Connection state sync between directors; `None` = off.
    pub sync: Option<StateSync>,
    /// VIP routes in a kernel table for a routing daemon to announce; `None` = nothing announced.
    pub announce: Option<Announce>,
}

// ---- global ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Global {
    /// Name of this box in logs and metrics. Default `lb1`.
    pub router_id: String,
    /// The admin Unix socket `xvs ctl` talks to. Default `/run/xvs/admin.sock`.
    pub admin_socket: PathBuf,
    /// Prometheus text format at `/metrics`. Default `127.0.0.1:9798`.
    #[serde(deserialize_with = "de::socket_addr")]
    pub metrics_listen: SocketAddr,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            router_id: "lb1".to_string(),
            admin_socket: PathBuf::from("/run/xvs/admin.sock"),
            metrics_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9798)),
        }
    }
}

// ---- datapath -------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Datapath {
    /// Every interface the datapath attaches to (at least one).
    pub interfaces: Vec<Interface>,
    pub workers: Workers,
    /// The CPUs the workers run on. Default `auto`.
    pub cpus: Cpus,
    pub poll: Poll,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Entries of each AF_XDP ring; a power of two. Default 2048.
    pub ring_size: u32,
    /// Bytes of each UMEM frame: 2048 or 4096. Default 4096.
    pub frame_size: u32,
}

impl Default for Datapath {
    fn default() -> Datapath {
        Datapath {
            interfaces: Vec::new(),
            workers: Workers::Auto,
            cpus: Cpus::Auto,
            poll: Poll::Busy,
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            ring_size: 2048,
            frame_size: 4096,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub queues: Queues,
}

/// Which RX queues of an interface get an AF_XDP socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Queues {
    /// Every queue the NIC has.
    #[default]
    All,
    /// These queue ids.
    List(Vec<u32>),
}

/// How many worker threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Workers {
    /// One pinned worker per queue.
    #[default]
    Auto,
    /// This many (at least 1).
    Count(u32),
}

/// Which CPUs the workers run on (see [`crate::datapath::placement`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cpus {
    /// Inside the process's affinity mask, never CPU 0 when another CPU is allowed.
    #[default]
    Auto,
    /// These CPUs, taken round-robin by the workers (validated: non-empty, no duplicates,
    /// each in the process's affinity mask).
    List(Vec<u32>),
}

impl Cpus {
    /// The list as CPU numbers; `None` for `auto`.
    pub fn list(&self) -> Option<Vec<usize>> {
        match self {
            Cpus::Auto => None,
            Cpus::List(l) => Some(
                l.iter()
                    .map(|&c| usize::try_from(c).unwrap_or(usize::MAX))
                    .collect(),
            ),
        }
    }
}

/// How a worker waits for packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Poll {
    /// Spin on the rings: lowest latency, one core at 100% per worker.
    #[default]
    Busy,
    /// Sleep in `poll(2)` until the kernel signals work.
    Wakeup,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native if the driver supports it, else generic (skb).
    #[default]
    Auto,
    Native,
    Skb,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy if the driver supports it, else copy mode.
    #[default]
    Auto,
    On,
    Off,
}

// ---- conntrack ------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conntrack {
    /// Hard bound on tracked IPv4 connections. Default 1000000.
    pub max_entries: u64,
    /// Hard bound on tracked IPv6 connections (a table of their own). `None` (the default) =
    /// `max_entries` when a service has an IPv6 VIP, else 0 (no memory reserved). See
    /// [`Config::max_entries_ipv6`].
    pub max_entries_ipv6: Option<u64>,
    pub timeouts: ConntrackTimeouts,
    /// Pick up TCP flows mid-stream (IPVS `sloppy_tcp`). Default false.
    pub sloppy_tcp: bool,
}

impl Default for Conntrack {
    fn default() -> Conntrack {
        Conntrack {
            max_entries: 1_000_000,
            max_entries_ipv6: None,
            timeouts: ConntrackTimeouts::default(),
            sloppy_tcp: false,
        }
    }
}

impl Config {
    /// The IPv6 connection table's capacity: `conntrack.max_entries_ipv6`, or by default
    /// `conntrack.max_entries` when a service has an IPv6 VIP and 0 when none has (an
    /// IPv4-only box reserves no memory for IPv6 connections).
    pub fn max_entries_ipv6(&self) -> u64 {
        self.conntrack.max_entries_ipv6.unwrap_or_else(|| {
            match self.services.iter().any(|s| s.vip.is_ipv6()) {
                true => self.conntrack.max_entries,
                false => 0,
            }
        })
    }
}

/// Idle timeouts per protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackTimeouts {
    /// Default 15m.
    #[serde(deserialize_with = "de::duration")]
    pub tcp_established: Duration,
    /// Default 30s.
    #[serde(deserialize_with = "de::duration")]
    pub tcp_syn: Duration,
    /// Default 2m.
    #[serde(deserialize_with = "de::duration")]
    pub tcp_fin: Duration,
    /// Default 10s.
    #[serde(deserialize_with = "de::duration")]
    pub tcp_close: Duration,
    /// Default 5m.
    #[serde(deserialize_with = "de::duration")]
    pub udp: Duration,
    /// Default 30s.
    #[serde(deserialize_with = "de::duration")]
    pub icmp: Duration,
}

impl Default for ConntrackTimeouts {
    fn default() -> ConntrackTimeouts {
        ConntrackTimeouts {
            tcp_established: Duration::from_secs(15 * 60),
            tcp_syn: Duration::from_secs(30),
            tcp_fin: Duration::from_secs(2 * 60),
            tcp_close: Duration::from_secs(10),
            udp: Duration::from_secs(5 * 60),
            icmp: Duration::from_secs(30),
        }
    }
}

// ---- local_addresses ------------------------------------------------------------------------

/// A FULLNAT source address pool.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAddressPool {
    pub name: String,
    #[serde(deserialize_with = "de::ip_list")]
    pub addresses: Vec<IpAddr>,
    /// Source ports to use. Default `1024-65535`.
    #[serde(default)]
    pub ports: PortRange,
}

/// An inclusive port range, written `FIRST-LAST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> PortRange {
        PortRange {
            first: 1024,
            last: 65535,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

// ---- services -------------------------------------------------------------------------------

/// A virtual service and its real servers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(deserialize_with = "de::ip")]
    pub vip: IpAddr,
    /// 0 = every port of the VIP (needs persistence, as in IPVS).
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// Default `wlc`, as in IPVS.
    #[serde(default)]
    pub scheduler: Scheduler,
    #[serde(default)]
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// `mh` only: entries of the Maglev lookup table, a prime; `None` = not written (the
    /// default, [`crate::sched::mh::DEFAULT_TABLE_SIZE`]).
    #[serde(default)]
    pub mh_table_size: Option<u32>,
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Name of a `local_addresses` pool (fullnat only).
    #[serde(default)]
    pub local_addresses: Option<String>,
    /// FULLNAT/TCP: client address in TCP option 254.
    #[serde(default)]
    pub toa: bool,
    #[serde(default)]
    pub persistence: Persistence,
    /// UDP: schedule every datagram, keep no entry.
    #[serde(default)]
    pub one_packet: bool,
    /// TCP: pick up flows mid-stream for this service (IPVS `sloppy_tcp`); `None` (not
    /// written) = `conntrack.sloppy_tcp`.
    #[serde(default)]
    pub sloppy_tcp: Option<bool>,
    /// Used while no real server is up.
    #[serde(default, deserialize_with = "de::opt_socket_addr")]
    pub sorry_server: Option<SocketAddr>,
    #[serde(default)]
    pub quorum: Quorum,
    /// Default check of every real server of the service; `None` (the default) = not checked:
    /// every real server without its own check counts as up.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub reals: Vec<Real>,
}

impl Service {
    /// What a client addresses: VIP, port, protocol.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            vip: self.vip,
            port: self.port,
            proto: self.protocol.proto(),
        }
    }

    /// The scheduler flags as the schedulers see them (validation keeps each flag with its
    /// scheduler, so `sh-port` and `mh-port` never meet).
    pub fn sched_flags(&self) -> SchedFlags {
        let has = |a, b| self.scheduler_flags.iter().any(|f| *f == a || *f == b);
        SchedFlags {
            hash_port: has(SchedulerFlag::ShPort, SchedulerFlag::MhPort),
            fallback: has(SchedulerFlag::ShFallback, SchedulerFlag::MhFallback),
        }
    }

    /// The Maglev table size: the written one or the default.
    pub fn mh_table_size(&self) -> u32 {
        self.mh_table_size.unwrap_or(mh::DEFAULT_TABLE_SIZE)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub const fn proto(self) -> Proto {
        match self {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
        }
    }
}

/// The 14 IPVS scheduler names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    #[default]
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl Scheduler {
    /// The scheduler of this name.
    pub const fn kind(self) -> SchedulerKind {
        match self {
            Scheduler::Rr => SchedulerKind::Rr,
            Scheduler::Wrr => SchedulerKind::Wrr,
            Scheduler::Lc => SchedulerKind::Lc,
            Scheduler::Wlc => SchedulerKind::Wlc,
            Scheduler::Sed => SchedulerKind::Sed,
            Scheduler::Nq => SchedulerKind::Nq,
            Scheduler::Lblc => SchedulerKind::Lblc,
            Scheduler::Lblcr => SchedulerKind::Lblcr,
            Scheduler::Dh => SchedulerKind::Dh,
            Scheduler::Sh => SchedulerKind::Sh,
            Scheduler::Mh => SchedulerKind::Mh,
            Scheduler::Fo => SchedulerKind::Fo,
            Scheduler::Ovf => SchedulerKind::Ovf,
            Scheduler::Twos => SchedulerKind::Twos,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Twos => "twos",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IPVS scheduler flags (`ipvsadm -b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerFlag {
    ShPort,
    ShFallback,
    MhPort,
    MhFallback,
}

impl SchedulerFlag {
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerFlag::ShPort => "sh-port",
            SchedulerFlag::ShFallback => "sh-fallback",
            SchedulerFlag::MhPort => "mh-port",
            SchedulerFlag::MhFallback => "mh-fallback",
        }
    }

    /// The scheduler the flag belongs to.
    pub const fn scheduler(self) -> Scheduler {
        match self {
            SchedulerFlag::ShPort | SchedulerFlag::ShFallback => Scheduler::Sh,
            SchedulerFlag::MhPort | SchedulerFlag::MhFallback => Scheduler::Mh,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    #[default]
    Nat,
    Dr,
    Tun,
    Fullnat,
}

impl Forwarding {
    /// The datapath's name for the method.
    pub const fn datapath(self) -> crate::datapath::Forwarding {
        match self {
            Forwarding::Nat => crate::datapath::Forwarding::Nat,
            Forwarding::Dr => crate::datapath::Forwarding::Dr,
            Forwarding::Tun => crate::datapath::Forwarding::Tun,
            Forwarding::Fullnat => crate::datapath::Forwarding::FullNat,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tun => "tun",
            Forwarding::Fullnat => "fullnat",
        }
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Client affinity (IPVS `-p` / `-M`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Persistence {
    /// 0s = off (the default).
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Clients whose addresses agree under this mask share a real server. `None` (the default)
    /// = the whole address: 255.255.255.255 for IPv4, all ones for IPv6.
    #[serde(deserialize_with = "de::opt_netmask")]
    pub netmask: Option<Netmask>,
}

/// A persistence netmask as written: a mask (`255.255.255.0`, `ffff:ffff:ffff:ffff::`) or a
/// prefix length (`64`, `/64`: ipvsadm's `-M` for IPv6 services).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netmask {
    Mask(IpAddr),
    /// At most 128 (the parser refuses more); validation bounds it by the VIP's family.
    Prefix(u8),
}

impl Netmask {
    /// The mask for a VIP of `vip`'s family: a mask as written, or the prefix's leading ones
    /// (a prefix longer than the family's width is the whole address; validation refuses it).
    pub fn mask_for(self, vip: IpAddr) -> IpAddr {
        match (self, vip) {
            (Netmask::Mask(m), _) => m,
            (Netmask::Prefix(n), IpAddr::V4(_)) => {
                let bits = u32::MAX.checked_shl(32u32.saturating_sub(u32::from(n)));
                IpAddr::V4(Ipv4Addr::from_bits(bits.unwrap_or(0)))
            }
            (Netmask::Prefix(n), IpAddr::V6(_)) => {
                let bits = u128::MAX.checked_shl(128u32.saturating_sub(u32::from(n)));
                IpAddr::V6(Ipv6Addr::from_bits(bits.unwrap_or(0)))
            }
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::Mask(m) => write!(f, "{m}"),
            Netmask::Prefix(n) => write!(f, "/{n}"),
        }
    }
}

impl Persistence {
    /// Whether persistence is on.
    pub fn enabled(&self) -> bool {
        !self.timeout.is_zero()
    }

    /// The mask for a service whose VIP is `vip` (the default mask is of `vip`'s family).
    pub fn effective_netmask(&self, vip: IpAddr) -> IpAddr {
        self.netmask.map_or(host_mask(vip), |m| m.mask_for(vip))
    }
}

/// The all-ones mask of `addr`'s family (255.255.255.255 or ffff:…:ffff).
pub fn host_mask(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

/// keepalived's quorum, counted in real servers (up, weight above 0): lost below
/// `min_up - hysteresis`, gained at `min_up + hysteresis`; while lost, new flows go to the
/// sorry server if there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quorum {
    /// Default 1.
    pub min_up: u32,
    /// Default 0.
    pub hysteresis: u32,
}

impl Default for Quorum {
    fn default() -> Quorum {
        Quorum {
            min_up: 1,
            hysteresis: 0,
        }
    }
}

/// A health check (run by `control::health`). Written as a mapping, every key takes the default
/// shown: `health_check: {}` is a TCP connect check every 2s.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// Default 2s.
    #[serde(deserialize_with = "de::duration")]
    pub interval: Duration,
    /// Default 1s.
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Consecutive successes to mark up. Default 2.
    pub rise: u32,
    /// Consecutive failures to mark down. Default 3.
    pub fall: u32,
    /// Only with `type: http`.
    pub http: Option<HttpCheck>,
    /// Required with `type: exec`.
    pub exec: Option<ExecCheck>,
}

impl Default for HealthCheck {
    fn default() -> HealthCheck {
        HealthCheck {
            kind: CheckType::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            http: None,
            exec: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    #[default]
    Tcp,
    Http,
    Udp,
    Exec,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpCheck {
    /// Default `/`.
    pub path: String,
    /// Default `[200]`.
    pub expect_status: Vec<u16>,
    /// `Host:` header; default none (the real server's address).
    pub host: Option<String>,
}

impl Default for HttpCheck {
    fn default() -> HttpCheck {
        HttpCheck {
            path: "/".to_string(),
            expect_status: vec![200],
            host: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    /// `%ADDR%` and `%PORT%` are replaced by the real server's.
    pub command: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Take the real server out of the scheduler and remove its connections.
    #[default]
    Remove,
    /// As weight 0: no new flows, existing flows continue.
    Drain,
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Real {
    #[serde(deserialize_with = "de::socket_addr")]
    pub address: SocketAddr,
    /// 0 = quiescent: no new flows, existing flows continue. Default 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// 0 = none; above it no new flows (IPVS -x).
    #[serde(default)]
    pub upper_threshold: u32,
    /// IPVS -y.
    #[serde(default)]
    pub lower_threshold: u32,
    /// Override of the service's check.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

// ---- vrrp -----------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vrrp {
    pub instances: Vec<VrrpInstance>,
    pub sync_groups: Vec<SyncGroup>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    #[serde(deserialize_with = "de::vrid")]
    pub vrid: u8,
    /// Default 3.
    #[serde(default)]
    pub version: VrrpVersion,
    /// 1..254; 255 = address owner. Default 100.
    #[serde(default = "default_priority", deserialize_with = "de::priority")]
    pub priority: u8,
    /// Default 1s. v2: whole seconds; v3: centiseconds.
    #[serde(default = "one_second", deserialize_with = "de::duration")]
    pub advert_interval: Duration,
    /// Default true.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// Default 0s.
    #[serde(default, deserialize_with = "de::duration")]
    pub preempt_delay: Duration,
    pub vips: Vec<IpPrefix>,
    /// Empty = multicast 224.0.0.18 / ff02::12.
    #[serde(default, deserialize_with = "de::ip_list")]
    pub unicast_peers: Vec<IpAddr>,
    /// Going down → FAULT.
    #[serde(default)]
    pub track_interfaces: Vec<String>,
    #[serde(default)]
    pub track_scripts: Vec<TrackScript>,
    #[serde(default)]
    pub notify: Notify,
}

fn default_priority() -> u8 {
    100
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, advert interval in whole seconds.
    V2,
    /// RFC 5798/9568: IPv4 and IPv6, advert interval in centiseconds.
    #[default]
    V3,
}

impl From<VrrpVersion> for crate::vrrp::Version {
    /// The version as the VRRP instance knows it.
    fn from(v: VrrpVersion) -> crate::vrrp::Version {
        match v {
            VrrpVersion::V2 => crate::vrrp::Version::V2,
            VrrpVersion::V3 => crate::vrrp::Version::V3,
        }
    }
}

/// An address with a prefix length (`198.18.0.100/24`); without `/N` the whole address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for IpPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<IpPrefix, String> {
        let bad = || {
            format!("invalid address `{s}`: expected an address with an optional prefix length such as `198.18.0.100/24`")
        };
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l.trim().parse::<u8>().map_err(|_| bad())?,
        };
        if len > max {
            return Err(format!(
                "invalid prefix length /{len} in `{s}`: at most /{max}"
            ));
        }
        Ok(IpPrefix { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A script whose result changes the instance's priority (keepalived `vrrp_script`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScript {
    pub command: String,
    /// Default 1s.
    #[serde(default = "one_second", deserialize_with = "de::duration")]
    pub interval: Duration,
    /// Default 1.
    #[serde(default = "one")]
    pub rise: u32,
    /// Default 1.
    #[serde(default = "one")]
    pub fall: u32,
    /// Added to the priority while the script succeeds (> 0) or subtracted while it fails (< 0);
    /// 0 (the default) = failure means FAULT. -253..253.
    #[serde(default)]
    pub weight: i32,
}

/// Commands run on a state transition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
}

/// Instances that fail over together.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    pub name: String,
    pub instances: Vec<String>,
}

// ---- sync -----------------------------------------------------------------------------------

/// Connection state sync between directors (the `sync:` section). Validation
/// (`validate/sync.rs`) checks every key, the key file included; `xvs run` starts the sync
/// thread with it (a reload that changes it needs a restart).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSync {
    /// The interface the sync messages are sent and received on.
    pub interface: String,
    /// Unicast peers; empty = multicast.
    #[serde(default, deserialize_with = "de::ip_list")]
    pub peers: Vec<IpAddr>,
    /// The UDP port sync messages are sent to and received on. Default 8848, IPVS's.
    #[serde(default = "sync_port")]
    pub port: u16,
    /// The shared secret messages are authenticated with (HMAC-SHA256): required; the rules
    /// are [`crate::sync::keyfile`]'s. `Option` so that its absence is reported at its place.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The default sync port: IPVS's sync daemon's (`IP_VS_SYNC_PORT`).
pub const DEFAULT_SYNC_PORT: u16 = 8848;

fn sync_port() -> u16 {
    DEFAULT_SYNC_PORT
}

// ---- announce -------------------------------------------------------------------------------

/// VIPs announced through a kernel routing table (the `announce:` section): one host route per
/// ready VIP in `table`, through the TUN device `device` that lives exactly as long as the
/// daemon (see `control::announce`). Validation (`validate/announce.rs`) refuses table 0 and the
/// kernel's own tables (253 default, 254 main, 255 local); start-up refuses a `device` that
/// already exists. A reload that changes the section needs a restart.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Announce {
    /// The kernel routing table the routes go in (1..=2^32-1, not 253, 254 or 255). Default 100.
    pub table: u32,
    /// The TUN device the routes point at. Default `xvs-announce`.
    pub device: String,
}

/// The default `announce.table`.
pub const DEFAULT_ANNOUNCE_TABLE: u32 = 100;
/// The default `announce.device`.
pub const DEFAULT_ANNOUNCE_DEVICE: &str = "xvs-announce";

impl Default for Announce {
    fn default() -> Announce {
        Announce {
            table: DEFAULT_ANNOUNCE_TABLE,
            device: DEFAULT_ANNOUNCE_DEVICE.to_string(),
        }
    }
}
