//! Semantic validation: ranges, cross-references and combinations that the types alone do not
//! rule out. Every rule runs; all problems are collected, each at the position of the key or
//! value it is about.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::host::Host;
use super::model::{
    CheckType, Config, Forwarding, HealthCheck, LocalAddressPool, Protocol, Queues, Scheduler,
    Service, VrrpVersion, Workers,
};
use super::positions::{Positions, Problem};
use crate::datapath::snapshot::ServiceKey;
use crate::sched::mh;

pub(crate) mod limits;
mod machine;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Longest Unix socket path (sizeof sun_path - 1).
const SUN_PATH_MAX: usize = 107;

struct Ctx<'a> {
    pos: &'a Positions,
    host: &'a dyn Host,
    /// What the rules need to know about this machine, read once.
    machine: machine::Machine,
    out: Vec<Problem>,
}

impl Ctx<'_> {
    /// A problem about the key of `path` (the key is written; the value may not be).
    fn key(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push((self.pos.key(path), msg.into()));
    }

    /// A problem about the value of `path`.
    fn value(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push((self.pos.value(path), msg.into()));
    }

    /// `line N` of the value at `path`, to name the first of two duplicates.
    fn line(&self, path: &str) -> String {
        format!("line {}", self.pos.value(path).line)
    }

    /// An interface name that Linux accepts and, if `must_exist`, that exists on this machine.
    fn ifname(&mut self, path: &str, name: &str, must_exist: bool) {
        if name.is_empty() {
            self.value(path, "interface name must not be empty");
        } else if name.len() > IFNAME_MAX {
            self.value(
                path,
                format!("interface name `{name}` is longer than {IFNAME_MAX} characters"),
            );
        } else if name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            self.value(path, format!("invalid interface name `{name}`"));
        } else if must_exist && !self.host.iface_exists(name) {
            self.value(
                path,
                format!("interface `{name}` does not exist on this machine"),
            );
        }
    }

    /// `what` must not be empty.
    fn not_empty(&mut self, path: &str, value: &str, what: &str) {
        if value.trim().is_empty() {
            self.value(path, format!("{what} must not be empty"));
        }
    }

    /// Reports the second and later occurrences of equal items, naming the first.
    fn unique<T: Eq + std::hash::Hash + Clone>(
        &mut self,
        items: impl IntoIterator<Item = (String, T)>,
        msg: impl Fn(&T, &str) -> String,
    ) {
        let mut first: HashMap<T, String> = HashMap::new();
        for (path, item) in items {
            match first.get(&item) {
                Some(p) => {
                    let m = msg(&item, &self.line(p));
                    self.value(&path, m);
                }
                None => {
                    first.insert(item, path);
                }
            }
        }
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Whether `a` can be a host's address: not unspecified, multicast or the IPv4 broadcast.
fn is_unicast(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

/// Whether the mask's one bits are contiguous from the top (255.255.255.0, not 255.0.255.0).
fn is_contiguous(mask: IpAddr) -> bool {
    let bits: u128 = match mask {
        IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
        IpAddr::V6(m) => u128::from(m),
    };
    bits.leading_ones() + bits.trailing_zeros() >= 128
}

/// Checks the whole config against the machine `host`; returns every problem found.
pub fn validate(cfg: &Config, pos: &Positions, host: &dyn Host) -> Vec<Problem> {
    let mut cx = Ctx {
        pos,
        host,
        machine: machine::Machine::of(cfg, host),
        out: Vec::new(),
    };
    global(&mut cx, cfg);
    datapath(&mut cx, cfg);
    conntrack(&mut cx, cfg);
    pools(&mut cx, cfg);
    services(&mut cx, cfg);
    vrrp(&mut cx, cfg);
    sync(&mut cx, cfg);
    machine::check(&mut cx, cfg);
    limits::check(&mut cx, cfg);
    cx.out
}

fn global(cx: &mut Ctx, cfg: &Config) {
    let g = &cfg.global;
    cx.not_empty("global.router_id", &g.router_id, "router_id");
    if !g.admin_socket.is_absolute() {
        cx.value(
            "global.admin_socket",
            "admin_socket must be an absolute path",
        );
    } else if g.admin_socket.as_os_str().len() > SUN_PATH_MAX {
        cx.value(
            "global.admin_socket",
            format!("admin_socket is longer than {SUN_PATH_MAX} bytes (the Unix socket limit)"),
        );
    }
    if g.metrics_listen.port() == 0 {
        cx.value(
            "global.metrics_listen",
            "metrics_listen needs a port other than 0",
        );
    }
}

fn datapath(cx: &mut Ctx, cfg: &Config) {
    let d = &cfg.datapath;
    if d.interfaces.is_empty() {
        cx.key(
            "datapath.interfaces",
            "datapath.interfaces must list at least one interface",
        );
    }
    for (i, itf) in d.interfaces.iter().enumerate() {
        let p = format!("datapath.interfaces[{i}]");
        cx.ifname(&format!("{p}.name"), &itf.name, true);
        if let Queues::List(qs) = &itf.queues {
            if qs.is_empty() {
                cx.value(
                    &format!("{p}.queues"),
                    "queues must list at least one queue, or be `all`",
                );
            }
            cx.unique(
                qs.iter()
                    .enumerate()
                    .map(|(k, q)| (format!("{p}.queues[{k}]"), *q)),
                |q, first| format!("queue {q} is listed twice (first at {first})"),
            );
        }
    }
    cx.unique(
        d.interfaces
            .iter()
            .enumerate()
            .map(|(i, itf)| (format!("datapath.interfaces[{i}].name"), itf.name.clone())),
        |n, first| format!("interface `{n}` is listed twice (first at {first})"),
    );
    if d.workers == Workers::Count(0) {
        cx.value("datapath.workers", "workers must be at least 1 (or `auto`)");
    }
    if !d.ring_size.is_power_of_two() || !(64..=65536).contains(&d.ring_size) {
        cx.value(
            "datapath.ring_size",
            format!(
                "ring_size {} must be a power of two between 64 and 65536",
                d.ring_size
            ),
        );
    }
    if d.frame_size != 2048 && d.frame_size != 4096 {
        cx.value(
            "datapath.frame_size",
            format!("frame_size {} must be 2048 or 4096", d.frame_size),
        );
    }
}

/// Upper bound of `conntrack.max_entries` (the table is allocated whole at start).
pub const MAX_CONNTRACK_ENTRIES: u64 = 100_000_000;

fn conntrack(cx: &mut Ctx, cfg: &Config) {
    let c = &cfg.conntrack;
    if c.max_entries == 0 {
        cx.value(
            "conntrack.max_entries",
            "max_entries must be greater than 0",
        );
    } else if c.max_entries > MAX_CONNTRACK_ENTRIES {
        // The table is allocated whole at start; past this bound the allocation alone would not
        // fit a load balancer's memory.
        cx.value(
            "conntrack.max_entries",
            format!("max_entries must be at most {MAX_CONNTRACK_ENTRIES}"),
        );
    }
    let t = &c.timeouts;
    for (name, d) in [
        ("tcp_established", t.tcp_established),
        ("tcp_syn", t.tcp_syn),
        ("tcp_fin", t.tcp_fin),
        ("tcp_close", t.tcp_close),
        ("udp", t.udp),
        ("icmp", t.icmp),
    ] {
        if d.is_zero() {
            cx.value(
                &format!("conntrack.timeouts.{name}"),
                format!("timeout {name} must be greater than 0s"),
            );
        } else if d.as_nanos() > u128::from(crate::conntrack::MAX_TIMEOUT) {
            // Entries keep their expiry in wrapping 32-bit milliseconds.
            cx.value(
                &format!("conntrack.timeouts.{name}"),
                format!("timeout {name} must be at most 24d (2^31 - 1 ms)"),
            );
        }
    }
}

/// The fewest local address:port pairs a pool must offer per connection-table shard.
pub const MIN_POOL_PORTS_PER_SHARD: usize = 16;

fn pools(cx: &mut Ctx, cfg: &Config) {
    for (i, pool) in cfg.local_addresses.iter().enumerate() {
        let p = format!("local_addresses[{i}]");
        cx.not_empty(&format!("{p}.name"), &pool.name, "pool name");
        if pool.addresses.is_empty() {
            cx.value(
                &format!("{p}.addresses"),
                "a local_addresses pool needs at least one address",
            );
        }
        for (k, a) in pool.addresses.iter().enumerate() {
            if !is_unicast(*a) {
                cx.value(
                    &format!("{p}.addresses[{k}]"),
                    format!("{a} is not a unicast address"),
                );
            } else if let Some(why) = machine::not_a_source(cx, *a) {
                cx.value(
                    &format!("{p}.addresses[{k}]"),
                    format!("local address {a} {why}"),
                );
            } else if a.is_ipv6() {
                cx.value(
                    &format!("{p}.addresses[{k}]"),
                    format!("{a}: IPv6 local addresses are not supported yet"),
                );
            } else if let Some(what) = used_elsewhere(cfg, *a) {
                cx.value(
                    &format!("{p}.addresses[{k}]"),
                    format!("local address {a} is also {what}: a pool address must be dedicated to FULLNAT sources"),
                );
            }
        }
        cx.unique(
            pool.addresses
                .iter()
                .enumerate()
                .map(|(k, a)| (format!("{p}.addresses[{k}]"), *a)),
            |a, first| format!("address {a} is listed twice (first at {first})"),
        );
        let r = pool.ports;
        if r.first == 0 {
            cx.value(&format!("{p}.ports"), "port range must start at 1 or above");
        } else if r.first > r.last {
            cx.value(
                &format!("{p}.ports"),
                format!("port range {r} is empty: the first port is above the last"),
            );
        } else {
            // Each connection-table shard owns 1/shards of every pool address's ports (see
            // conntrack::local_ports): a pool too small for that would refuse flows early.
            let shards = crate::conntrack::ConnTable::shards_for(
                usize::try_from(cfg.conntrack.max_entries).unwrap_or(usize::MAX),
            );
            // Shard `s` gets the ports `p` with `p mod shards == s`: at least
            // floor(range / shards) of each address's.
            let range = usize::from(r.last - r.first) + 1;
            let per_shard = range / shards * pool.addresses.len().max(1);
            if per_shard < MIN_POOL_PORTS_PER_SHARD {
                cx.value(
                    &format!("{p}.ports"),
                    format!(
                        "pool gives some of the connection table's {shards} shards (at max_entries {}) only {per_shard} address:port pairs, fewer than {MIN_POOL_PORTS_PER_SHARD}: each shard owns the ports p with p mod {shards} equal to its number; widen the port range or add addresses",
                        cfg.conntrack.max_entries
                    ),
                );
            }
        }
    }
    cx.unique(
        cfg.local_addresses
            .iter()
            .enumerate()
            .map(|(i, pool)| (format!("local_addresses[{i}].name"), pool.name.clone())),
        |n, first| format!("pool name `{n}` is used twice (first at {first})"),
    );
    let total: usize = cfg.local_addresses.iter().map(|p| p.addresses.len()).sum();
    if total > crate::datapath::filter::MAX_LOCAL_POOL_ADDRS {
        cx.key(
            "local_addresses",
            format!(
                "{total} local addresses in all pools; at most {} are supported",
                crate::datapath::filter::MAX_LOCAL_POOL_ADDRS
            ),
        );
    }
    // A local address belongs to one pool: its ports are allocated by that pool alone.
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for (i, pool) in cfg.local_addresses.iter().enumerate() {
        for (k, a) in pool.addresses.iter().enumerate() {
            match seen.get(a) {
                Some(other) if *other != pool.name => cx.value(
                    &format!("local_addresses[{i}].addresses[{k}]"),
                    format!("local address {a} is already in pool `{other}`: an address belongs to one pool"),
                ),
                _ => {
                    seen.insert(*a, pool.name.clone());
                }
            }
        }
    }
}

/// What else `a` is in `cfg` (a VIP, a real server, a sorry server), if anything.
fn used_elsewhere(cfg: &Config, a: IpAddr) -> Option<String> {
    for s in &cfg.services {
        if s.vip == a {
            return Some(format!("the vip of service `{}`", s.name));
        }
        if s.reals.iter().any(|r| r.address.ip() == a)
            || s.sorry_server.is_some_and(|x| x.ip() == a)
        {
            return Some(format!("a real server of service `{}`", s.name));
        }
    }
    None
}

fn services(cx: &mut Ctx, cfg: &Config) {
    let pools: HashMap<&str, &LocalAddressPool> = cfg
        .local_addresses
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    for (i, s) in cfg.services.iter().enumerate() {
        service(cx, &pools, &format!("services[{i}]"), s);
    }
    cx.unique(
        cfg.services
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("services[{i}].name"), s.name.clone())),
        |n, first| format!("service name `{n}` is used twice (first at {first})"),
    );
    // Replies of one_packet NAT services are translated back by their source alone, so that
    // source must name one service.
    let mut one_packet_reals: HashMap<(SocketAddr, Protocol), usize> = HashMap::new();
    for (i, s) in cfg.services.iter().enumerate() {
        if !s.one_packet || s.forwarding != Forwarding::Nat {
            continue;
        }
        for (j, r) in s.reals.iter().enumerate() {
            let path = format!("services[{i}].reals[{j}].address");
            match one_packet_reals.get(&(r.address, s.protocol)) {
                Some(&k) if k != i => {
                    let m = format!(
                        "real server {} is also a real server of one_packet service `{}` at {}: replies without a connection entry could not tell the services apart",
                        r.address,
                        cfg.services[k].name,
                        cx.line(&format!("services[{k}].name")),
                    );
                    cx.value(&path, m);
                }
                _ => {
                    one_packet_reals.insert((r.address, s.protocol), i);
                }
            }
        }
    }
    let mut first: HashMap<ServiceKey, usize> = HashMap::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let key = s.key();
        match first.get(&key) {
            Some(&j) => {
                let m = format!(
                    "service `{}` ({key}) is already defined by service `{}` at {}",
                    s.name,
                    cfg.services[j].name,
                    cx.line(&format!("services[{j}].vip")),
                );
                cx.value(&format!("services[{i}].vip"), m);
            }
            None => {
                first.insert(key, i);
            }
        }
    }
}

/// `mh_table_size`: only with `scheduler: mh`, a prime in range, and at least as large as the
/// number of real servers (IPVS refuses more servers than table entries).
fn mh_table_size(cx: &mut Ctx, p: &str, s: &Service) {
    let key = format!("{p}.mh_table_size");
    if let Some(size) = s.mh_table_size {
        if s.scheduler != Scheduler::Mh {
            cx.key(
                &key,
                format!(
                    "mh_table_size is only for scheduler mh, not {}",
                    s.scheduler
                ),
            );
            return;
        }
        let (min, max) = (mh::MIN_TABLE_SIZE, mh::MAX_TABLE_SIZE);
        if !(min..=max).contains(&size) {
            cx.value(
                &key,
                format!("mh_table_size {size} is out of range {min}..{max}"),
            );
            return;
        }
        if !mh::is_prime(size) {
            let below = (min..size).rev().find(|&n| mh::is_prime(n));
            let above = (size..=max).find(|&n| mh::is_prime(n));
            let hint = match (below, above) {
                (Some(b), Some(a)) => format!(" ({b} and {a} are)"),
                (Some(n), None) | (None, Some(n)) => format!(" ({n} is)"),
                (None, None) => String::new(),
            };
            cx.value(&key, format!("mh_table_size {size} is not a prime{hint}"));
            return;
        }
    }
    if s.scheduler == Scheduler::Mh && s.reals.len() > s.mh_table_size() as usize {
        let msg = format!(
            "scheduler mh with {} real servers needs an mh_table_size of at least that many (it is {})",
            s.reals.len(),
            s.mh_table_size()
        );
        if s.mh_table_size.is_some() {
            cx.value(&key, msg);
        } else {
            cx.value(&format!("{p}.scheduler"), msg);
        }
    }
}

fn service(cx: &mut Ctx, pools: &HashMap<&str, &LocalAddressPool>, p: &str, s: &Service) {
    let at = |k: &str| format!("{p}.{k}");
    cx.not_empty(&at("name"), &s.name, "service name");
    if !is_unicast(s.vip) {
        cx.value(
            &at("vip"),
            format!("vip {} is not a unicast address", s.vip),
        );
    } else if s.vip.is_loopback() {
        cx.value(
            &at("vip"),
            format!(
                "vip {} is a loopback address: no client can reach it",
                s.vip
            ),
        );
    }
    if s.port == 0 && !s.persistence.enabled() {
        cx.value(
            &at("port"),
            "port 0 (every port) needs persistence (a persistence timeout above 0s), as in IPVS",
        );
    }
    for (k, f) in s.scheduler_flags.iter().enumerate() {
        if f.scheduler() != s.scheduler {
            cx.value(
                &format!("{p}.scheduler_flags[{k}]"),
                format!(
                    "scheduler flag {} is only for scheduler {}",
                    f.name(),
                    f.scheduler()
                ),
            );
        }
    }
    cx.unique(
        s.scheduler_flags
            .iter()
            .enumerate()
            .map(|(k, f)| (format!("{p}.scheduler_flags[{k}]"), *f)),
        |f, first| {
            format!(
                "scheduler flag {} is listed twice (first at {first})",
                f.name()
            )
        },
    );
    mh_table_size(cx, p, s);

    // FULLNAT pool.
    let mut pool = None;
    match (&s.local_addresses, s.forwarding) {
        (None, Forwarding::Fullnat) => cx.value(
            &at("forwarding"),
            "forwarding fullnat needs `local_addresses` (the name of a local_addresses pool)",
        ),
        (Some(_), f) if f != Forwarding::Fullnat => cx.key(
            &at("local_addresses"),
            format!("local_addresses is only for forwarding: fullnat, not {f}"),
        ),
        (Some(name), _) => match pools.get(name.as_str()) {
            Some(p) => pool = Some(*p),
            None => cx.value(
                &at("local_addresses"),
                format!("unknown local_addresses pool `{name}`"),
            ),
        },
        (None, _) => {}
    }
    if s.toa {
        if s.forwarding != Forwarding::Fullnat {
            cx.key(&at("toa"), "toa is only for forwarding: fullnat");
        } else if s.protocol == Protocol::Udp {
            cx.key(&at("toa"), "toa is only for protocol: tcp");
        }
    }
    if let Some(m) = s.persistence.netmask {
        let np = at("persistence.netmask");
        if m.is_ipv4() != s.vip.is_ipv4() {
            cx.value(
                &np,
                format!(
                    "netmask {m} is {} but the VIP is {}",
                    family(m),
                    family(s.vip)
                ),
            );
        } else if !is_contiguous(m) {
            cx.value(&np, format!("netmask {m} is not contiguous"));
        }
    }
    if s.one_packet && s.forwarding == Forwarding::Fullnat {
        cx.key(
            &at("one_packet"),
            "one_packet is not for forwarding: fullnat (replies are matched by their connection's local address and port)",
        );
    }
    if s.one_packet && s.protocol == Protocol::Tcp {
        cx.key(&at("one_packet"), "one_packet is only for protocol: udp");
    }
    if let Some(a) = s.sorry_server {
        target(cx, s, pool, &at("sorry_server"), a, "sorry server");
    }
    if s.quorum.hysteresis > s.quorum.min_up {
        cx.value(
            &at("quorum.hysteresis"),
            format!(
                "quorum hysteresis {} must not exceed min_up {}",
                s.quorum.hysteresis, s.quorum.min_up
            ),
        );
    }
    if let Some(hc) = &s.health_check {
        health_check(cx, &at("health_check"), hc);
    }
    for (j, r) in s.reals.iter().enumerate() {
        let rp = format!("{p}.reals[{j}]");
        target(
            cx,
            s,
            pool,
            &format!("{rp}.address"),
            r.address,
            "real server",
        );
        if r.weight > 65535 {
            cx.value(
                &format!("{rp}.weight"),
                format!("weight {} is out of range 0..65535", r.weight),
            );
        }
        if r.upper_threshold != 0 && r.lower_threshold > r.upper_threshold {
            cx.value(
                &format!("{rp}.lower_threshold"),
                format!(
                    "lower_threshold {} must not exceed upper_threshold {}",
                    r.lower_threshold, r.upper_threshold
                ),
            );
        }
        if let Some(hc) = &r.health_check {
            health_check(cx, &format!("{rp}.health_check"), hc);
        }
    }
    let name = s.name.clone();
    cx.unique(
        s.reals
            .iter()
            .enumerate()
            .map(|(j, r)| (format!("{p}.reals[{j}].address"), r.address)),
        |a, first| {
            format!("real server {a} is listed twice in service `{name}` (first at {first})")
        },
    );
}

/// Rules for where a service may send packets: a real server or the sorry server.
fn target(
    cx: &mut Ctx,
    s: &Service,
    pool: Option<&LocalAddressPool>,
    path: &str,
    a: SocketAddr,
    what: &str,
) {
    let ip = a.ip();
    if !is_unicast(ip) {
        cx.value(path, format!("{what} {ip} is not a unicast address"));
        return;
    }
    if ip == s.vip {
        cx.value(path, format!("{what} {a} has the VIP's address"));
    } else if let Some(why) = machine::not_a_destination(cx, ip) {
        cx.value(path, format!("{what} {a} {why}"));
    }
    match s.forwarding {
        Forwarding::Nat | Forwarding::Dr if ip.is_ipv4() != s.vip.is_ipv4() => cx.value(
            path,
            format!(
                "{what} {a} is {} but the VIP is {}: forwarding {} cannot mix address families",
                family(ip),
                family(s.vip),
                s.forwarding
            ),
        ),
        Forwarding::Fullnat => {
            if let Some(pool) = pool {
                if !pool.addresses.iter().any(|l| l.is_ipv4() == ip.is_ipv4()) {
                    cx.value(
                        path,
                        format!(
                            "{what} {a} is {} but local_addresses pool `{}` has no {} address",
                            family(ip),
                            pool.name,
                            family(ip)
                        ),
                    );
                }
            }
        }
        _ => {}
    }
    match s.forwarding {
        Forwarding::Dr | Forwarding::Tun if a.port() != s.port => cx.value(
            path,
            format!(
                "forwarding {} keeps the destination port: {what} port {} must equal the service port {}",
                s.forwarding,
                a.port(),
                s.port
            ),
        ),
        Forwarding::Nat | Forwarding::Fullnat if a.port() == 0 && s.port != 0 => cx.value(
            path,
            format!("{what} port 0 is only allowed when the service port is 0"),
        ),
        Forwarding::Nat | Forwarding::Fullnat if a.port() != 0 && s.port == 0 => cx.value(
            path,
            format!(
                "a port-0 service keeps each connection's destination port: {what} port must be 0, not {}",
                a.port()
            ),
        ),
        _ => {}
    }
}

fn health_check(cx: &mut Ctx, p: &str, hc: &HealthCheck) {
    let at = |k: &str| format!("{p}.{k}");
    if hc.interval.is_zero() {
        cx.value(&at("interval"), "interval must be greater than 0s");
    }
    if hc.timeout.is_zero() {
        cx.value(&at("timeout"), "timeout must be greater than 0s");
    } else if hc.timeout > hc.interval && !hc.interval.is_zero() {
        cx.value(
            &at("timeout"),
            format!(
                "timeout {} must not exceed interval {} (one probe at a time per server)",
                humantime::format_duration(hc.timeout),
                humantime::format_duration(hc.interval)
            ),
        );
    }
    if hc.rise == 0 {
        cx.value(&at("rise"), "rise must be at least 1");
    }
    if hc.fall == 0 {
        cx.value(&at("fall"), "fall must be at least 1");
    }
    if hc.http.is_some() && hc.kind != CheckType::Http {
        cx.key(&at("http"), "http is only for type: http");
    }
    if hc.exec.is_some() && hc.kind != CheckType::Exec {
        cx.key(&at("exec"), "exec is only for type: exec");
    }
    if hc.kind == CheckType::Exec && hc.exec.is_none() {
        cx.value(&at("type"), "type: exec needs `exec: { command: ... }`");
    }
    if let Some(e) = &hc.exec {
        cx.not_empty(&at("exec.command"), &e.command, "exec command");
    }
    if let Some(h) = &hc.http {
        if !h.path.starts_with('/') {
            cx.value(
                &at("http.path"),
                format!("http path `{}` must start with `/`", h.path),
            );
        }
        if h.expect_status.is_empty() {
            cx.value(
                &at("http.expect_status"),
                "expect_status must list at least one status",
            );
        }
        for (k, st) in h.expect_status.iter().enumerate() {
            if !(100..=599).contains(st) {
                cx.value(
                    &format!("{p}.http.expect_status[{k}]"),
                    format!("HTTP status {st} is out of range 100..599"),
                );
            }
        }
    }
}

fn vrrp(cx: &mut Ctx, cfg: &Config) {
    let datapath_ifaces: HashSet<&str> = cfg
        .datapath
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let service_vips: HashSet<IpAddr> = cfg.services.iter().map(|s| s.vip).collect();
    let instances = &cfg.vrrp.instances;
    // (interface, vrid, IPv6?) → path of the first instance's vrid
    let mut vrids: HashMap<(&str, u8, bool), (usize, String)> = HashMap::new();
    // address → (instance index, path)
    let mut held: HashMap<IpAddr, (usize, String)> = HashMap::new();

    for (i, inst) in instances.iter().enumerate() {
        let p = format!("vrrp.instances[{i}]");
        let at = |k: &str| format!("{p}.{k}");
        cx.not_empty(&at("name"), &inst.name, "instance name");
        cx.ifname(&at("interface"), &inst.interface, true);

        let v6 = inst.vips.first().is_some_and(|v| v.addr.is_ipv6());
        if inst.vips.is_empty() {
            cx.value(
                &at("vips"),
                "an instance needs at least one address in vips",
            );
        }
        for (k, v) in inst.vips.iter().enumerate() {
            let vp = format!("{p}.vips[{k}]");
            if v.addr.is_ipv6() != v6 {
                cx.value(
                    &vp,
                    "vips mixes IPv4 and IPv6: use one instance per address family",
                );
            } else if v6 && inst.version == VrrpVersion::V2 {
                cx.value(&vp, "VRRP version 2 is IPv4 only: use version: 3 for IPv6");
            }
            if !is_unicast(v.addr) {
                cx.value(&vp, format!("{} is not a unicast address", v.addr));
            } else if v.addr.is_loopback() {
                cx.value(
                    &vp,
                    format!(
                        "{} is a loopback address: no peer or client can reach it",
                        v.addr
                    ),
                );
            }
            match held.get(&v.addr) {
                Some((j, first)) => {
                    let owner = &instances[*j].name;
                    let m = format!(
                        "address {} is already in vips of instance `{owner}` ({})",
                        v.addr,
                        cx.line(first)
                    );
                    cx.value(&vp, m);
                }
                None => {
                    held.insert(v.addr, (i, vp.clone()));
                }
            }
            if service_vips.contains(&v.addr) && !datapath_ifaces.contains(inst.interface.as_str())
            {
                cx.value(
                    &at("interface"),
                    format!(
                        "instance `{}` holds service VIP {}, so its interface `{}` must be one of datapath.interfaces",
                        inst.name, v.addr, inst.interface
                    ),
                );
            }
        }

        match vrids.get(&(inst.interface.as_str(), inst.vrid, v6)) {
            Some((j, first)) => {
                let m = format!(
                    "vrid {} is already used on interface {} by instance `{}` ({})",
                    inst.vrid,
                    inst.interface,
                    instances[*j].name,
                    cx.line(first)
                );
                cx.value(&at("vrid"), m);
            }
            None => {
                vrids.insert((inst.interface.as_str(), inst.vrid, v6), (i, at("vrid")));
            }
        }

        let ai = inst.advert_interval;
        if ai.is_zero() {
            cx.value(
                &at("advert_interval"),
                "advert_interval must be greater than 0s",
            );
        } else {
            match inst.version {
                VrrpVersion::V2 => {
                    if ai.subsec_nanos() != 0 {
                        cx.value(
                            &at("advert_interval"),
                            format!(
                                "VRRP version 2 advertises in whole seconds: advert_interval {} is not",
                                humantime::format_duration(ai)
                            ),
                        );
                    } else if ai.as_secs() > 255 {
                        cx.value(
                            &at("advert_interval"),
                            "advert_interval is at most 255s in VRRP version 2",
                        );
                    }
                }
                VrrpVersion::V3 => {
                    if ai.as_nanos() % 10_000_000 != 0 {
                        cx.value(
                            &at("advert_interval"),
                            format!(
                                "VRRP version 3 advertises in centiseconds: advert_interval {} is not a multiple of 10ms",
                                humantime::format_duration(ai)
                            ),
                        );
                    } else if ai.as_millis() > 40_950 {
                        cx.value(
                            &at("advert_interval"),
                            "advert_interval is at most 40s 950ms in VRRP version 3",
                        );
                    }
                }
            }
        }

        for (k, peer) in inst.unicast_peers.iter().enumerate() {
            if !inst.vips.is_empty() && peer.is_ipv6() != v6 {
                cx.value(
                    &format!("{p}.unicast_peers[{k}]"),
                    format!(
                        "unicast peer {peer} is {} but the instance's vips are {}",
                        family(*peer),
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
            }
        }
        cx.unique(
            inst.unicast_peers
                .iter()
                .enumerate()
                .map(|(k, a)| (format!("{p}.unicast_peers[{k}]"), *a)),
            |a, first| format!("unicast peer {a} is listed twice (first at {first})"),
        );
        for (k, t) in inst.track_interfaces.iter().enumerate() {
            cx.ifname(&format!("{p}.track_interfaces[{k}]"), t, true);
        }
        cx.unique(
            inst.track_interfaces
                .iter()
                .enumerate()
                .map(|(k, t)| (format!("{p}.track_interfaces[{k}]"), t.clone())),
            |t, first| format!("interface `{t}` is listed twice (first at {first})"),
        );
        for (k, t) in inst.track_scripts.iter().enumerate() {
            let tp = format!("{p}.track_scripts[{k}]");
            cx.not_empty(&format!("{tp}.command"), &t.command, "command");
            if t.interval.is_zero() {
                cx.value(
                    &format!("{tp}.interval"),
                    "interval must be greater than 0s",
                );
            }
            if t.rise == 0 {
                cx.value(&format!("{tp}.rise"), "rise must be at least 1");
            }
            if t.fall == 0 {
                cx.value(&format!("{tp}.fall"), "fall must be at least 1");
            }
            if !(-253..=253).contains(&t.weight) {
                cx.value(
                    &format!("{tp}.weight"),
                    format!("weight {} is out of range -253..253", t.weight),
                );
            }
        }
        for (k, cmd) in [
            ("master", &inst.notify.master),
            ("backup", &inst.notify.backup),
            ("fault", &inst.notify.fault),
        ] {
            if let Some(c) = cmd {
                cx.not_empty(&format!("{p}.notify.{k}"), c, "notify command");
            }
        }
    }
    cx.unique(
        instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (format!("vrrp.instances[{i}].name"), inst.name.clone())),
        |n, first| format!("VRRP instance name `{n}` is used twice (first at {first})"),
    );

    let names: HashSet<&str> = instances.iter().map(|i| i.name.as_str()).collect();
    // instance → (group name, path)
    let mut grouped: HashMap<&str, (&str, String)> = HashMap::new();
    for (g, group) in cfg.vrrp.sync_groups.iter().enumerate() {
        let p = format!("vrrp.sync_groups[{g}]");
        cx.not_empty(&format!("{p}.name"), &group.name, "sync group name");
        if group.instances.is_empty() {
            cx.value(
                &format!("{p}.instances"),
                "a sync group needs at least one instance",
            );
        }
        for (k, name) in group.instances.iter().enumerate() {
            let ip = format!("{p}.instances[{k}]");
            if !names.contains(name.as_str()) {
                cx.value(&ip, format!("unknown VRRP instance `{name}`"));
                continue;
            }
            match grouped.get(name.as_str()) {
                Some((other, first)) => {
                    let m = format!(
                        "instance `{name}` is already in sync group `{other}` ({})",
                        cx.line(first)
                    );
                    cx.value(&ip, m);
                }
                None => {
                    grouped.insert(name.as_str(), (group.name.as_str(), ip));
                }
            }
        }
    }
    cx.unique(
        cfg.vrrp
            .sync_groups
            .iter()
            .enumerate()
            .map(|(g, group)| (format!("vrrp.sync_groups[{g}].name"), group.name.clone())),
        |n, first| format!("sync group name `{n}` is used twice (first at {first})"),
    );
}

fn sync(cx: &mut Ctx, cfg: &Config) {
    let Some(s) = &cfg.sync else { return };
    cx.ifname("sync.interface", &s.interface, true);
    for (k, peer) in s.peers.iter().enumerate() {
        if !is_unicast(*peer) {
            cx.value(
                &format!("sync.peers[{k}]"),
                format!("peer {peer} is not a unicast address"),
            );
        }
    }
    cx.unique(
        s.peers
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("sync.peers[{k}]"), *a)),
        |a, first| format!("peer {a} is listed twice (first at {first})"),
    );
    if let Some(k) = &s.key_file {
        if k.as_os_str().is_empty() {
            cx.value("sync.key_file", "key_file must not be empty");
        }
    }
}
