//! `virtual_server` → `services[]`, `real_server` → `reals[]`, DPVS's `local_address_group`
//! → `local_addresses[]`.
//!
//! A virtual server's own settings are read first, whatever their place in the block, since
//! keepalived applies its `delay_loop`, `connect_timeout`, `retry`, `inhibit_on_failure` and
//! `virtualhost` to every real server (which may override them, and its checkers in turn).
//! When every real server ends up with the same check, it is written once as the service's
//! `health_check`. A `virtual_server fwmark N` or `group NAME`, or one with `protocol SCTP`,
//! has no xvs equivalent and is left out whole.
//!
//! Names: `snmp_name` if given, else `tcp_198.18.0.100_80`, made unique with `_2`, `_3`...

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use super::checks::{self, Check, Defaults};
use super::vrrp::AT_END;
use super::{addr, arg, dur, parse_ip, socket, timer, uint, uint32, Ctx};
use crate::import::parser::Node;
use crate::import::yaml::{Item, MapBuilder, Value};
use crate::import::ImportError;

/// The schedulers keepalived names (`lb_algo`, `lvs_sched`).
const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// A forwarding method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Nat,
    Dr,
    Tun,
    Fullnat,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Nat => "nat",
            Method::Dr => "dr",
            Method::Tun => "tun",
            Method::Fullnat => "fullnat",
        }
    }
}

/// `lb_kind`/`lvs_method`: NAT, DR, TUN, and DPVS's FNAT (also FULLNAT); anything else is an
/// error. TUN's `type gue|gre` has no equivalent (xvs tunnels IP-in-IP).
fn method(k: &Node, cx: &mut Ctx, notes: &mut Vec<String>) -> Result<Method, ImportError> {
    let m = match arg(k, 0)?.to_ascii_uppercase().as_str() {
        "NAT" => Method::Nat,
        "DR" => Method::Dr,
        "TUN" => Method::Tun,
        "FNAT" | "FULLNAT" => Method::Fullnat,
        other => {
            return Err(ImportError::at(
                &k.at,
                format!(
                    "unknown {} `{other}`: expected NAT, DR, TUN or FNAT",
                    k.keyword
                ),
            ))
        }
    };
    if m == Method::Tun && k.args.len() > 1 && k.args[1..] != ["type", "ipip"] {
        notes.push(cx.left_out_why(k, "xvs tunnels with IP-in-IP only"));
    }
    Ok(m)
}

/// DPVS's `local_address_group NAME { ADDR [DEV] ... }` blocks → `local_addresses` pools.
/// `a.b.c.d-e` ranges are expanded.
pub fn pools(tree: &[Node], cx: &mut Ctx) -> Result<Vec<Item>, ImportError> {
    let mut out = Vec::new();
    for n in tree.iter().filter(|n| n.keyword == "local_address_group") {
        let mut b = MapBuilder::default();
        let mut addrs = Vec::new();
        for a in n.kids() {
            addrs.extend(range(a)?.into_iter().map(addr));
            if !a.args.is_empty() {
                let why = "xvs uses a pool's addresses on whichever interface holds them";
                b.note("addresses", cx.left_out_why(a, why));
            }
        }
        b.string("name", arg(n, 0)?);
        b.put("addresses", Value::Flow(addrs));
        out.push(Item {
            comments: Vec::new(),
            value: Some(Value::Map(b.finish())),
        });
    }
    Ok(out)
}

/// `198.18.1.2` or `198.18.1.2-9` (the last octet's range).
fn range(a: &Node) -> Result<Vec<IpAddr>, ImportError> {
    let Some((first, last)) = a.keyword.split_once('-') else {
        return Ok(vec![parse_ip(a, &a.keyword)?]);
    };
    let IpAddr::V4(first) = parse_ip(a, first)? else {
        return Err(ImportError::at(
            &a.at,
            format!("bad address range `{}`", a.keyword),
        ));
    };
    let [o0, o1, o2, lo] = first.octets();
    match last.parse::<u8>() {
        Ok(hi) if hi >= lo => Ok((lo..=hi).map(|o| IpAddr::from([o0, o1, o2, o])).collect()),
        _ => Err(ImportError::at(
            &a.at,
            format!("bad address range `{}`", a.keyword),
        )),
    }
}

/// One virtual server being converted.
struct Vs<'a> {
    b: MapBuilder,
    vip: IpAddr,
    port: u16,
    proto: &'static str,
    sched: &'static str,
    flags: Vec<&'a Node>,
    sched_flags: Vec<String>,
    method: Method,
    persistence: Option<Duration>,
    netmask: Option<(String, &'a Node)>,
    quorum: Option<(u32, &'a Node)>,
    hysteresis: Option<(u32, &'a Node)>,
    sorry: Option<String>,
    one_packet: bool,
    pool: Option<String>,
    name: Option<String>,
    d: Defaults,
    reals: Vec<&'a Node>,
}

/// Converts one `virtual_server`: its item in `services` (only comments when it is left out).
pub fn service(n: &Node, cx: &mut Ctx, names: &mut HashSet<String>) -> Result<Item, ImportError> {
    let first = arg(n, 0)?;
    if first == "fwmark" || first == "group" {
        let why = "xvs services are an address, a port and a protocol";
        return Ok(comment_item(cx.left_out_why(n, why)));
    }
    let vip = parse_ip(n, first)?;
    let port = match n.args.get(1) {
        Some(_) => port(n, 1)?,
        None => 0,
    };
    if let Some(p) = n.kids().iter().find(|k| k.keyword == "protocol") {
        if arg(p, 0)?.eq_ignore_ascii_case("sctp") {
            let why = "xvs balances TCP and UDP: the virtual server is left out";
            return Ok(comment_item(cx.left_out_why(p, why)));
        }
    }
    let mut vs = Vs {
        b: MapBuilder::default(),
        vip,
        port,
        proto: "tcp",
        sched: "wlc",
        flags: Vec::new(),
        sched_flags: Vec::new(),
        method: Method::Nat,
        persistence: None,
        netmask: None,
        quorum: None,
        hysteresis: None,
        sorry: None,
        one_packet: false,
        pool: None,
        name: None,
        d: Defaults::default(),
        reals: Vec::new(),
    };
    for k in n.kids() {
        vs.statement(k, cx)?;
    }
    vs.scheduler_flags(cx);
    let reals = vs
        .reals
        .clone()
        .into_iter()
        .map(|r| vs.real(r, cx))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vs.finish(reals, cx, names))
}

fn comment_item(c: String) -> Item {
    Item {
        comments: vec![c],
        value: None,
    }
}

fn port(n: &Node, i: usize) -> Result<u16, ImportError> {
    Ok(u16::try_from(uint(n, i, 0, 65535)?).unwrap_or(0))
}

impl<'a> Vs<'a> {
    fn statement(&mut self, k: &'a Node, cx: &mut Ctx) -> Result<(), ImportError> {
        if self.d.apply(k)? {
            return Ok(());
        }
        match k.keyword.as_str() {
            "real_server" => self.reals.push(k),
            "protocol" => {
                self.proto = match arg(k, 0)?.to_ascii_uppercase().as_str() {
                    "TCP" => "tcp",
                    "UDP" => "udp",
                    other => {
                        return Err(ImportError::at(
                            &k.at,
                            format!("unknown protocol `{other}`: expected TCP, UDP or SCTP"),
                        ))
                    }
                }
            }
            "lb_algo" | "lvs_sched" => {
                let s = arg(k, 0)?;
                self.sched = SCHEDULERS.iter().find(|x| **x == s).ok_or_else(|| {
                    ImportError::at(&k.at, format!("unknown scheduler `{s}` for {}", k.keyword))
                })?;
            }
            "lb_kind" | "lvs_method" => {
                let mut notes = Vec::new();
                self.method = method(k, cx, &mut notes)?;
                notes.into_iter().for_each(|c| self.b.note("forwarding", c));
            }
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" | "hashed" => self.flags.push(k),
            "ops" => self.one_packet = true,
            "persistence_timeout" => {
                self.persistence = Some(match k.args.first() {
                    Some(_) => timer(k, 0, 31 * 86_400)?,
                    None => Duration::from_secs(360),
                });
            }
            "persistence_granularity" => self.netmask = Some((netmask(k)?, k)),
            "quorum" => self.quorum = Some((uint32(k, 0, 1, u32::MAX)?, k)),
            "hysteresis" => self.hysteresis = Some((uint32(k, 0, 0, u32::MAX)?, k)),
            "sorry_server" => {
                let a = parse_ip(k, arg(k, 0)?)?;
                let p = match k.args.get(1) {
                    Some(_) => port(k, 1)?,
                    None => self.port,
                };
                self.sorry = Some(socket(a, p));
            }
            "laddr_group_name" => self.pool = Some(arg(k, 0)?.to_string()),
            "snmp_name" if self.name.is_none() => self.name = Some(arg(k, 0)?.to_string()),
            _ => {
                let c = cx.left_out(k);
                self.b.note(AT_END, c);
            }
        }
        Ok(())
    }

    /// `sh-port` & co, `flag-1`/`flag-2` (the fallback and port flags of `sh` and `mh`).
    fn scheduler_flags(&mut self, cx: &mut Ctx) {
        let mut out: Vec<String> = Vec::new();
        for k in std::mem::take(&mut self.flags) {
            let flag = match (self.sched, k.keyword.as_str()) {
                ("sh", "flag-1" | "sh-fallback") => Some("sh-fallback"),
                ("sh", "flag-2" | "sh-port") => Some("sh-port"),
                ("mh", "flag-1" | "mh-fallback") => Some("mh-fallback"),
                ("mh", "flag-2" | "mh-port") => Some("mh-port"),
                _ => None,
            };
            match flag {
                Some(f) if !out.iter().any(|o| o == f) => out.push(f.to_string()),
                Some(_) => {}
                None => {
                    let why = format!("no such flag for scheduler {}", self.sched);
                    let c = cx.left_out_why(k, &why);
                    self.b.note("scheduler_flags", c);
                }
            }
        }
        self.sched_flags = out;
    }
}

/// `persistence_granularity`: a mask (`255.255.255.0`) or a prefix length (`64`).
fn netmask(k: &Node) -> Result<String, ImportError> {
    let s = arg(k, 0)?;
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(addr(a));
    }
    match s.trim_start_matches('/').parse::<u8>() {
        Ok(n) if n <= 128 => Ok(n.to_string()),
        _ => Err(ImportError::at(
            &k.at,
            format!("bad persistence_granularity `{s}`: expected a netmask or a prefix length"),
        )),
    }
}

/// A converted real server.
struct RealOut {
    address: String,
    weight: u32,
    upper: u32,
    lower: u32,
    check: Option<Check>,
    inhibit: bool,
    comments: Vec<String>,
    node: Node,
}

impl Vs<'_> {
    fn real(&self, r: &Node, cx: &mut Ctx) -> Result<RealOut, ImportError> {
        let ip = parse_ip(r, arg(r, 0)?)?;
        let mut p = match r.args.get(1) {
            Some(_) => port(r, 1)?,
            None => self.port,
        };
        let mut out = RealOut {
            address: String::new(),
            weight: 1,
            upper: 0,
            lower: 0,
            check: None,
            inhibit: false,
            comments: Vec::new(),
            node: r.clone(),
        };
        if matches!(self.method, Method::Dr | Method::Tun) && p != self.port {
            let why = format!(
                "with {} the real server's port is the service's: written as {}",
                self.method.name(),
                self.port
            );
            out.comments.push(cx.approx(r, &why));
            p = self.port;
        }
        let mut d = self.d.clone();
        let mut checkers = Vec::new();
        for k in r.kids() {
            if d.apply(k)? {
                continue;
            }
            match k.keyword.as_str() {
                "weight" => out.weight = uint32(k, 0, 0, 65535)?,
                "uthreshold" => out.upper = uint32(k, 0, 0, u32::MAX)?,
                "lthreshold" => out.lower = uint32(k, 0, 0, u32::MAX)?,
                "lvs_method" => {
                    let mut notes = Vec::new();
                    if method(k, cx, &mut notes)? != self.method {
                        notes.push(cx.left_out_why(k, "xvs has one forwarding method per service"));
                    }
                    out.comments.extend(notes);
                }
                kw if checks::CHECKERS.contains(&kw) => checkers.push(k),
                _ => out.comments.push(cx.left_out(k)),
            }
        }
        for k in checkers {
            if out.check.is_some() {
                let why = "xvs runs one check per real server";
                out.comments.push(cx.left_out_why(k, why));
                continue;
            }
            let (c, comments) = checks::checker(k, &d, (ip, p), cx)?;
            out.check = c;
            out.comments.extend(comments);
        }
        out.inhibit = d.inhibit;
        out.address = socket(ip, p);
        Ok(out)
    }
}

impl Vs<'_> {
    /// The service's mapping.
    fn finish(
        mut self,
        mut reals: Vec<RealOut>,
        cx: &mut Ctx,
        names: &mut HashSet<String>,
    ) -> Item {
        let mut b = std::mem::take(&mut self.b);
        b.string("name", &self.unique_name(names));
        b.scalar("vip", addr(self.vip));
        b.scalar("port", self.port);
        b.scalar("protocol", self.proto);
        b.scalar("scheduler", self.sched);
        if !self.sched_flags.is_empty() {
            b.put(
                "scheduler_flags",
                Value::Flow(std::mem::take(&mut self.sched_flags)),
            );
        }
        b.scalar("forwarding", self.method.name());
        if let Some(p) = &self.pool {
            b.string("local_addresses", p);
        }
        if let Some(t) = self.persistence.filter(|t| !t.is_zero()) {
            let mut m = MapBuilder::default();
            m.scalar("timeout", dur(t));
            if let Some((n, _)) = &self.netmask {
                m.scalar("netmask", n);
            }
            b.put("persistence", Value::Map(m.finish()));
        } else if let Some((_, k)) = self.netmask {
            let why = "the service is not persistent (no persistence_timeout)";
            b.note(AT_END, cx.left_out_why(k, why));
        }
        if self.one_packet {
            b.scalar("one_packet", true);
        }
        if let Some(s) = &self.sorry {
            b.scalar("sorry_server", s);
        }
        self.quorum(&mut b, &reals, cx);
        let shared = shared_check(&reals);
        if let Some(c) = &shared {
            b.put("health_check", c.value());
        }
        on_failure(&mut b, &mut reals, cx);
        let items = reals
            .into_iter()
            .map(|r| real_item(r, shared.is_some()))
            .collect();
        b.put("reals", Value::Seq(items));
        Item {
            comments: Vec::new(),
            value: Some(Value::Map(b.finish())),
        }
    }

    fn unique_name(&self, names: &mut HashSet<String>) -> String {
        let base = match &self.name {
            Some(n) if !n.is_empty() && n.len() <= 60 && !n.chars().any(char::is_control) => {
                n.clone()
            }
            _ => format!("{}_{}_{}", self.proto, self.vip, self.port),
        };
        let mut name = base.clone();
        let mut i = 2;
        while !names.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }

    /// keepalived's quorum counts the weight of the live real servers: lost below `quorum -
    /// hysteresis`, gained at `quorum + hysteresis`; xvs counts the real servers up (weight
    /// above 0): lost below `min_up - hysteresis`, gained at `min_up + hysteresis`. When every
    /// real server has the same weight w, that is `min_up - h = ⌈(q - h) / w⌉` and `min_up + h =
    /// ⌈(q + h) / w⌉`, exact when their sum is even; otherwise the weights are written as counts.
    fn quorum(&self, b: &mut MapBuilder, reals: &[RealOut], cx: &mut Ctx) {
        let node = match (self.quorum, self.hysteresis) {
            (None, None) => return,
            (Some((_, n)), _) | (None, Some((_, n))) => n,
        };
        let q = i64::from(self.quorum.map_or(1, |(q, _)| q));
        let h = i64::from(self.hysteresis.map_or(0, |(h, _)| h));
        let mut weights = reals.iter().map(|r| r.weight).filter(|w| *w > 0);
        let w = i64::from(weights.next().unwrap_or(1));
        let same = weights.all(|x| i64::from(x) == w);
        let ceil = |n: i64| if n <= 0 { 0 } else { (n + w - 1) / w };
        let (lo, hi) = (ceil(q - h), ceil(q + h));
        let (min_up, hyst) = if same && (lo + hi) % 2 == 0 {
            ((lo + hi) / 2, (hi - lo) / 2)
        } else {
            let why = "keepalived counts the weight of live real servers, xvs counts real servers up: the weights are written as counts";
            b.note("quorum", cx.approx(node, why));
            (q, h.min(q))
        };
        let mut m = MapBuilder::default();
        m.scalar("min_up", min_up);
        m.scalar("hysteresis", hyst);
        b.put("quorum", Value::Map(m.finish()));
    }
}

/// The check every real server has, if they all have the same one.
fn shared_check(reals: &[RealOut]) -> Option<Check> {
    let first = reals.first()?.check.clone()?;
    reals
        .iter()
        .all(|r| r.check.as_ref() == Some(&first))
        .then_some(first)
}

/// `inhibit_on_failure` → `on_failure: drain` when every checked real server has it; a mix
/// has no equivalent (xvs decides per service).
fn on_failure(b: &mut MapBuilder, reals: &mut [RealOut], cx: &mut Ctx) {
    let checked: Vec<bool> = reals
        .iter()
        .filter(|r| r.check.is_some())
        .map(|r| r.inhibit)
        .collect();
    if !checked.is_empty() && checked.iter().all(|i| *i) {
        b.scalar("on_failure", "drain");
        return;
    }
    for r in reals.iter_mut().filter(|r| r.inhibit && r.check.is_some()) {
        let why = "xvs sets on_failure for the whole service (here remove)";
        let c = cx.left_out_text(&r.node.at, "inhibit_on_failure", Some(why));
        r.comments.push(c);
    }
}

fn real_item(r: RealOut, shared: bool) -> Item {
    let mut m = MapBuilder::default();
    m.scalar("address", &r.address);
    m.scalar("weight", r.weight);
    if r.upper > 0 || r.lower > 0 {
        m.scalar("upper_threshold", r.upper);
        m.scalar("lower_threshold", r.lower.min(r.upper));
    }
    if !shared {
        if let Some(c) = &r.check {
            m.put("health_check", c.value());
        }
    }
    for c in r.comments {
        m.note(AT_END, c);
    }
    Item {
        comments: Vec::new(),
        value: Some(Value::Map(m.finish())),
    }
}
