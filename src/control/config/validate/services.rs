//! The `services` section: each virtual service, its scheduler, forwarding method, FULLNAT
//! pool, real servers and sorry server, and the rules across services.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::{family, health, is_contiguous, is_unicast, machine, Ctx, FULLNAT64};
use crate::control::config::model::{
    Config, Forwarding, LocalAddressPool, Netmask, Protocol, Scheduler, Service,
};
use crate::datapath::snapshot::ServiceKey;
use crate::sched::mh;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
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
    one_packet_reals(cx, cfg);
    one_service_per_key(cx, cfg);
}

/// Replies of one_packet NAT services are translated back by their source alone, so that
/// source must name one service.
fn one_packet_reals(cx: &mut Ctx, cfg: &Config) {
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
}

/// Two services never share a VIP, protocol and port.
fn one_service_per_key(cx: &mut Ctx, cfg: &Config) {
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

/// One service at `p`, its real servers and its sorry server.
fn service(cx: &mut Ctx, pools: &HashMap<&str, &LocalAddressPool>, p: &str, s: &Service) {
    basics(cx, p, s);
    scheduler_flags(cx, p, s);
    mh_table_size(cx, p, s);
    fullnat_pool(cx, pools, p, s);
    options(cx, p, s);
    let at = |k: &str| format!("{p}.{k}");
    if let Some(a) = s.sorry_server {
        target(cx, s, &at("sorry_server"), a, "sorry server");
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
        health::check(cx, &at("health_check"), hc);
    }
    reals(cx, p, s);
}

/// The name, VIP and port.
fn basics(cx: &mut Ctx, p: &str, s: &Service) {
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
    } else if let Some(why) = not_routable(s.vip) {
        cx.value(&at("vip"), format!("vip {} {why}", s.vip));
    }
    if s.port == 0 && !s.persistence.enabled() {
        cx.value(
            &at("port"),
            "port 0 (every port) needs persistence (a persistence timeout above 0s), as in IPVS",
        );
    }
}

/// Each scheduler flag belongs to the service's scheduler, once.
fn scheduler_flags(cx: &mut Ctx, p: &str, s: &Service) {
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
}

/// The FULLNAT pool the service names: named by a fullnat service and only there, and one that
/// exists (its family is checked with the pools, see `pools.rs`).
fn fullnat_pool(cx: &mut Ctx, pools: &HashMap<&str, &LocalAddressPool>, p: &str, s: &Service) {
    let at = |k: &str| format!("{p}.{k}");
    match (&s.local_addresses, s.forwarding) {
        (None, Forwarding::Fullnat) => cx.value(
            &at("forwarding"),
            "forwarding fullnat needs `local_addresses` (the name of a local_addresses pool)",
        ),
        (Some(_), f) if f != Forwarding::Fullnat => cx.key(
            &at("local_addresses"),
            format!("local_addresses is only for forwarding: fullnat, not {f}"),
        ),
        (Some(name), _) if !pools.contains_key(name.as_str()) => cx.value(
            &at("local_addresses"),
            format!("unknown local_addresses pool `{name}`"),
        ),
        _ => {}
    }
}

/// `toa`, `persistence.netmask`, `one_packet` and `sloppy_tcp`: each only where the forwarding method and
/// protocol allow it.
fn options(cx: &mut Ctx, p: &str, s: &Service) {
    let at = |k: &str| format!("{p}.{k}");
    if s.toa {
        if s.forwarding != Forwarding::Fullnat {
            cx.key(&at("toa"), "toa is only for forwarding: fullnat");
        } else if s.protocol == Protocol::Udp {
            cx.key(&at("toa"), "toa is only for protocol: tcp");
        }
    }
    match s.persistence.netmask {
        Some(Netmask::Mask(m)) => netmask(cx, &at("persistence.netmask"), m, s.vip),
        Some(Netmask::Prefix(n)) => {
            let width = if s.vip.is_ipv4() { 32 } else { 128 };
            if n > width {
                cx.value(
                    &at("persistence.netmask"),
                    format!(
                        "netmask /{n} is longer than an {} address ({width} bits)",
                        family(s.vip)
                    ),
                );
            }
        }
        None => {}
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
    if s.sloppy_tcp.is_some() && s.protocol == Protocol::Udp {
        cx.key(&at("sloppy_tcp"), "sloppy_tcp is only for protocol: tcp");
    }
}

/// A persistence netmask written as a mask, at `np`: of the VIP's family, contiguous.
fn netmask(cx: &mut Ctx, np: &str, m: IpAddr, vip: IpAddr) {
    if m.is_ipv4() != vip.is_ipv4() {
        cx.value(
            np,
            format!(
                "netmask {m} is {} but the VIP is {}",
                family(m),
                family(vip)
            ),
        );
    } else if !is_contiguous(m) {
        cx.value(np, format!("netmask {m} is not contiguous"));
    }
}

/// The real servers of the service at `p`.
fn reals(cx: &mut Ctx, p: &str, s: &Service) {
    for (j, r) in s.reals.iter().enumerate() {
        let rp = format!("{p}.reals[{j}]");
        target(cx, s, &format!("{rp}.address"), r.address, "real server");
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
            health::check(cx, &format!("{rp}.health_check"), hc);
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

/// Why a real or sorry server of another family than its VIP is refused: every method keeps
/// the family (as IPVS does for NAT and DR; IPVS's mixed-family tunnels and DPVS's FULLNAT64 are
/// not built).
fn mixed_families(s: &Service, a: SocketAddr, what: &str) -> String {
    let (fam, vip_fam) = (family(a.ip()), family(s.vip));
    let why = if s.forwarding == Forwarding::Fullnat && s.vip.is_ipv6() {
        FULLNAT64.to_string()
    } else {
        format!("forwarding {} cannot mix address families", s.forwarding)
    };
    format!("{what} {a} is {fam} but the VIP is {vip_fam}: {why}")
}

/// Why an IPv6 address cannot stand for a host xvs forwards to or answers for, if it cannot: a
/// link-local address only means something with an interface (which the configuration has no
/// place for), and an IPv4-mapped one is an IPv4 address written as IPv6.
pub(super) fn not_routable(a: IpAddr) -> Option<String> {
    let IpAddr::V6(v6) = a else { return None };
    if v6.is_unicast_link_local() {
        Some("is a link-local address: use a global (or unique local) address".to_string())
    } else {
        v6.to_ipv4_mapped()
            .map(|v4| format!("is an IPv4-mapped IPv6 address: write it as IPv4, `{v4}`"))
    }
}

/// Rules for where a service may send packets: a real server or the sorry server.
fn target(cx: &mut Ctx, s: &Service, path: &str, a: SocketAddr, what: &str) {
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
    if let Some(why) = not_routable(ip) {
        cx.value(path, format!("{what} {a} {why}"));
    }
    if ip.is_ipv4() != s.vip.is_ipv4() {
        cx.value(path, mixed_families(s, a, what));
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
