//! The `vrrp` section: the instances (keepalived's `vrrp_instance`) and the sync groups.
//!
//! The rules a virtual router itself keeps (VRID and priority ranges, the advert interval each
//! version carries, one address family per instance, the track-weight bound, the address
//! count) are [`crate::vrrp::instance::rules`]'s: this file calls them and words the message; it
//! only adds what needs the whole file (an address or VRID used twice, a service VIP held by an
//! instance outside the datapath).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{family, is_unicast, Ctx};
use crate::control::config::model::{Config, VrrpInstance, VrrpVersion};
use crate::vrrp::instance::rules::{self, FamilyError, IntervalError};

/// What the instances' rules need of the rest of the file, and what the instances already
/// seen hold, to name the first of two.
struct Seen<'a> {
    /// Every service's VIP.
    service_vips: HashSet<IpAddr>,
    /// The names of `datapath.interfaces`.
    datapath_ifaces: HashSet<&'a str>,
    /// (interface, vrid, IPv6?) → (instance index, path of its vrid).
    vrids: HashMap<(&'a str, u8, bool), (usize, String)>,
    /// Address → (instance index, path of its entry in vips).
    held: HashMap<IpAddr, (usize, String)>,
}

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    let mut seen = Seen {
        service_vips: cfg.services.iter().map(|s| s.vip).collect(),
        datapath_ifaces: cfg
            .datapath
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect(),
        vrids: HashMap::new(),
        held: HashMap::new(),
    };
    for (i, inst) in cfg.vrrp.instances.iter().enumerate() {
        instance(cx, cfg, &mut seen, i, inst);
    }
    cx.unique(
        cfg.vrrp
            .instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (format!("vrrp.instances[{i}].name"), inst.name.clone())),
        |n, first| format!("VRRP instance name `{n}` is used twice (first at {first})"),
    );
    sync_groups(cx, cfg);
}

/// The instance `i`.
fn instance<'a>(
    cx: &mut Ctx,
    cfg: &'a Config,
    seen: &mut Seen<'a>,
    i: usize,
    inst: &'a VrrpInstance,
) {
    let p = format!("vrrp.instances[{i}]");
    let at = |k: &str| format!("{p}.{k}");
    cx.not_empty(&at("name"), &inst.name, "instance name");
    cx.ifname(&at("interface"), &inst.interface, true);
    let v6 = inst.vips.first().is_some_and(|v| v.addr.is_ipv6());
    vips(cx, cfg, seen, i, inst);
    let key = (inst.interface.as_str(), inst.vrid, v6);
    match seen.vrids.get(&key) {
        Some((j, first)) => {
            let m = format!(
                "vrid {} is already used on interface {} by instance `{}` ({})",
                inst.vrid,
                inst.interface,
                cfg.vrrp.instances[*j].name,
                cx.line(first)
            );
            cx.value(&at("vrid"), m);
        }
        None => {
            seen.vrids.insert(key, (i, at("vrid")));
        }
    }
    advert_interval(cx, &at("advert_interval"), inst);
    peers(cx, &p, inst, v6);
    tracks(cx, &p, inst);
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

/// The virtual addresses of instance `i`: one family the version carries, unicast, held by one
/// instance, and a service VIP only on a datapath interface.
fn vips<'a>(cx: &mut Ctx, cfg: &Config, seen: &mut Seen<'a>, i: usize, inst: &'a VrrpInstance) {
    let p = format!("vrrp.instances[{i}]");
    if inst.vips.is_empty() {
        cx.value(
            &format!("{p}.vips"),
            "an instance needs at least one address in vips",
        );
    }
    let first = inst.vips.first().map(|v| v.addr);
    for (k, v) in inst.vips.iter().enumerate() {
        let vp = format!("{p}.vips[{k}]");
        if let Some(first) = first {
            match rules::address_family(inst.version.into(), first, v.addr) {
                Err(FamilyError::Mixed) => cx.value(
                    &vp,
                    "vips mixes IPv4 and IPv6: use one instance per address family",
                ),
                Err(FamilyError::V2Ipv6) => {
                    cx.value(&vp, "VRRP version 2 is IPv4 only: use version: 3 for IPv6")
                }
                Ok(()) => {}
            }
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
        match seen.held.get(&v.addr) {
            Some((j, first)) => {
                let owner = &cfg.vrrp.instances[*j].name;
                let m = format!(
                    "address {} is already in vips of instance `{owner}` ({})",
                    v.addr,
                    cx.line(first)
                );
                cx.value(&vp, m);
            }
            None => {
                seen.held.insert(v.addr, (i, vp.clone()));
            }
        }
        // An instance that holds a service's VIP runs on one of the datapath's interfaces.
        if seen.service_vips.contains(&v.addr)
            && !seen.datapath_ifaces.contains(inst.interface.as_str())
        {
            cx.value(
                &format!("{p}.interface"),
                format!(
                    "instance `{}` holds service VIP {}, so its interface `{}` must be one of datapath.interfaces",
                    inst.name, v.addr, inst.interface
                ),
            );
        }
    }
}

/// `advert_interval`: what the instance's version can advertise.
fn advert_interval(cx: &mut Ctx, path: &str, inst: &VrrpInstance) {
    let ai = inst.advert_interval;
    let Err(e) = rules::advert_interval_cs(inst.version.into(), ai.as_nanos()) else {
        return;
    };
    let shown = humantime::format_duration(ai);
    let m = match (e, inst.version) {
        (IntervalError::Zero, _) => "advert_interval must be greater than 0s".to_string(),
        (IntervalError::NotWholeSeconds, _) => format!(
            "VRRP version 2 advertises in whole seconds: advert_interval {shown} is not"
        ),
        (IntervalError::NotCentiseconds, _) => format!(
            "VRRP version 3 advertises in centiseconds: advert_interval {shown} is not a multiple of 10ms"
        ),
        (IntervalError::TooLong, VrrpVersion::V2) => {
            "advert_interval is at most 255s in VRRP version 2".to_string()
        }
        (IntervalError::TooLong, VrrpVersion::V3) => {
            "advert_interval is at most 40s 950ms in VRRP version 3".to_string()
        }
    };
    cx.value(path, m);
}

/// `unicast_peers`: the instance's family, each once.
fn peers(cx: &mut Ctx, p: &str, inst: &VrrpInstance, v6: bool) {
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
}

/// `track_interfaces` and `track_scripts`.
fn tracks(cx: &mut Ctx, p: &str, inst: &VrrpInstance) {
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
    let max = rules::MAX_TRACK_WEIGHT;
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
        if !(-max..=max).contains(&t.weight) {
            cx.value(
                &format!("{tp}.weight"),
                format!("weight {} is out of range -{max}..{max}", t.weight),
            );
        }
    }
}

/// `sync_groups`: named, not empty, known instances, each in one group.
fn sync_groups(cx: &mut Ctx, cfg: &Config) {
    let names: HashSet<&str> = cfg.vrrp.instances.iter().map(|i| i.name.as_str()).collect();
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
