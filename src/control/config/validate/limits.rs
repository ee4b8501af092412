//! Bounds on everything a file can make large, each refused at its position:
//! - lengths of names, commands and paths, and of lists that nothing else bounds;
//! - what the XDP filter's maps hold: interfaces ([`MAX_PORTS`]), queue ids
//!   ([`QUEUES_PER_PORT`]) and the `steer` keys the snapshot would install ([`MAX_STEER_KEYS`];
//!   the FULLNAT pools' bound is checked with the pools);
//! - the memory start-up allocates ([`StartupMemory`]) against what the process can get
//!   ([`crate::control::memory::budget`], through the [`super::Host`]).

use std::collections::HashSet;

use super::Ctx;
use crate::control::config::model::{Config, HealthCheck, Queues};
use crate::control::memory::{Bytes, StartupMemory, RESERVE};
use crate::datapath::filter::{MAX_PORTS, MAX_STEER_KEYS, QUEUES_PER_PORT};
use crate::datapath::snapshot::service_steering_keys;
use crate::datapath::xsk;

/// Longest name (router_id, service, pool, VRRP instance, sync group), in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest command (health check `exec`, `track_scripts`, `notify`), in bytes.
pub const MAX_COMMAND_LEN: usize = 4096;
/// Longest file path (`sync.key_file`), in bytes (PATH_MAX less the NUL).
pub const MAX_PATH_LEN: usize = 4095;
/// Longest HTTP health-check path, and host name.
pub const MAX_HTTP_PATH_LEN: usize = 1024;
pub const MAX_HTTP_HOST_LEN: usize = 255;
/// Real servers per service: lc, wlc, sed and nq look at each one for every new connection.
pub const MAX_REALS_PER_SERVICE: usize = 4096;
/// Addresses per VRRP instance: the advertisement's count field is 8 bits (the instance's own
/// bound).
pub const MAX_VRRP_VIPS: usize = crate::vrrp::instance::rules::MAX_ADDRESSES;
/// Unicast peers per VRRP instance (one advertisement each per interval).
pub const MAX_VRRP_PEERS: usize = 255;
/// Tracked interfaces, and tracked scripts, per VRRP instance.
pub const MAX_VRRP_TRACKS: usize = 64;
/// Statuses an HTTP check may expect (100..599).
pub const MAX_EXPECT_STATUS: usize = 500;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    names(cx, cfg);
    commands_and_paths(cx, cfg);
    lists(cx, cfg);
    filter_maps(cx, cfg);
    memory(cx, cfg);
}

/// A name: at most [`MAX_NAME_LEN`] bytes, no control characters (names go into log lines,
/// metric labels and `xvs ctl` tables).
fn name(cx: &mut Ctx, path: &str, value: &str, what: &str) {
    if value.len() > MAX_NAME_LEN {
        cx.value(
            path,
            format!(
                "{what} is {} bytes long; at most {MAX_NAME_LEN} are allowed",
                value.len()
            ),
        );
    } else if value.chars().any(char::is_control) {
        cx.value(
            path,
            format!("{what} must not contain control characters (such as a newline)"),
        );
    }
}

fn names(cx: &mut Ctx, cfg: &Config) {
    name(cx, "global.router_id", &cfg.global.router_id, "router_id");
    for (i, p) in cfg.local_addresses.iter().enumerate() {
        name(
            cx,
            &format!("local_addresses[{i}].name"),
            &p.name,
            "pool name",
        );
    }
    for (i, s) in cfg.services.iter().enumerate() {
        name(cx, &format!("services[{i}].name"), &s.name, "service name");
    }
    for (i, inst) in cfg.vrrp.instances.iter().enumerate() {
        name(
            cx,
            &format!("vrrp.instances[{i}].name"),
            &inst.name,
            "instance name",
        );
    }
    for (i, g) in cfg.vrrp.sync_groups.iter().enumerate() {
        name(
            cx,
            &format!("vrrp.sync_groups[{i}].name"),
            &g.name,
            "sync group name",
        );
    }
}

fn bounded(cx: &mut Ctx, path: &str, value: &str, max: usize, what: &str) {
    if value.len() > max {
        cx.value(
            path,
            format!(
                "{what} is {} bytes long; at most {max} are allowed",
                value.len()
            ),
        );
    } else if value.contains('\0') {
        cx.value(path, format!("{what} must not contain a NUL character"));
    }
}

fn health_check_strings(cx: &mut Ctx, p: &str, hc: &HealthCheck) {
    if let Some(e) = &hc.exec {
        bounded(
            cx,
            &format!("{p}.exec.command"),
            &e.command,
            MAX_COMMAND_LEN,
            "exec command",
        );
    }
    if let Some(h) = &hc.http {
        let path = format!("{p}.http.path");
        if h.path.len() > MAX_HTTP_PATH_LEN {
            cx.value(
                &path,
                format!(
                    "http path is {} bytes long; at most {MAX_HTTP_PATH_LEN} are allowed",
                    h.path.len()
                ),
            );
        } else if h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.value(
                &path,
                "http path must not contain spaces or control characters (encode them as %20, ...)",
            );
        }
        if let Some(host) = &h.host {
            let path = format!("{p}.http.host");
            if host.len() > MAX_HTTP_HOST_LEN {
                cx.value(
                    &path,
                    format!(
                        "http host is {} bytes long; at most {MAX_HTTP_HOST_LEN} are allowed",
                        host.len()
                    ),
                );
            } else if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.value(
                    &path,
                    "http host must not contain spaces or control characters",
                );
            }
        }
        if h.expect_status.len() > MAX_EXPECT_STATUS {
            cx.value(
                &format!("{p}.http.expect_status"),
                format!(
                    "expect_status lists {} statuses; at most {MAX_EXPECT_STATUS} are allowed",
                    h.expect_status.len()
                ),
            );
        }
    }
}

fn commands_and_paths(cx: &mut Ctx, cfg: &Config) {
    for (i, s) in cfg.services.iter().enumerate() {
        if let Some(hc) = &s.health_check {
            health_check_strings(cx, &format!("services[{i}].health_check"), hc);
        }
        for (j, r) in s.reals.iter().enumerate() {
            if let Some(hc) = &r.health_check {
                health_check_strings(cx, &format!("services[{i}].reals[{j}].health_check"), hc);
            }
        }
    }
    for (i, inst) in cfg.vrrp.instances.iter().enumerate() {
        let p = format!("vrrp.instances[{i}]");
        for (k, t) in inst.track_scripts.iter().enumerate() {
            bounded(
                cx,
                &format!("{p}.track_scripts[{k}].command"),
                &t.command,
                MAX_COMMAND_LEN,
                "command",
            );
        }
        for (k, cmd) in [
            ("master", &inst.notify.master),
            ("backup", &inst.notify.backup),
            ("fault", &inst.notify.fault),
        ] {
            if let Some(c) = cmd {
                bounded(
                    cx,
                    &format!("{p}.notify.{k}"),
                    c,
                    MAX_COMMAND_LEN,
                    "notify command",
                );
            }
        }
    }
    if let Some(key) = cfg.sync.as_ref().and_then(|s| s.key_file.as_ref()) {
        let len = key.as_os_str().len();
        if len > MAX_PATH_LEN {
            cx.value(
                "sync.key_file",
                format!("key_file is {len} bytes long; at most {MAX_PATH_LEN} are allowed"),
            );
        }
    }
}

fn too_many(cx: &mut Ctx, path: &str, n: usize, max: usize, what: &str) {
    if n > max {
        cx.key(path, format!("{n} {what}; at most {max} are supported"));
    }
}

fn lists(cx: &mut Ctx, cfg: &Config) {
    for (i, s) in cfg.services.iter().enumerate() {
        too_many(
            cx,
            &format!("services[{i}].reals"),
            s.reals.len(),
            MAX_REALS_PER_SERVICE,
            &format!("real servers in service `{}`", s.name),
        );
    }
    for (i, inst) in cfg.vrrp.instances.iter().enumerate() {
        let p = format!("vrrp.instances[{i}]");
        let what = |w: &str| format!("{w} in instance `{}`", inst.name);
        too_many(
            cx,
            &format!("{p}.vips"),
            inst.vips.len(),
            MAX_VRRP_VIPS,
            &what("vips (the advertisement's address count is 8 bits)"),
        );
        too_many(
            cx,
            &format!("{p}.unicast_peers"),
            inst.unicast_peers.len(),
            MAX_VRRP_PEERS,
            &what("unicast_peers"),
        );
        too_many(
            cx,
            &format!("{p}.track_interfaces"),
            inst.track_interfaces.len(),
            MAX_VRRP_TRACKS,
            &what("track_interfaces"),
        );
        too_many(
            cx,
            &format!("{p}.track_scripts"),
            inst.track_scripts.len(),
            MAX_VRRP_TRACKS,
            &what("track_scripts"),
        );
    }
}

/// What the XDP filter's maps hold: interfaces, queue ids and the `steer` keys.
fn filter_maps(cx: &mut Ctx, cfg: &Config) {
    let d = &cfg.datapath;
    too_many(
        cx,
        "datapath.interfaces",
        d.interfaces.len(),
        MAX_PORTS,
        "interfaces (the XDP filter's ports map)",
    );
    for (i, itf) in d.interfaces.iter().enumerate() {
        if let Queues::List(qs) = &itf.queues {
            for (k, q) in qs.iter().enumerate() {
                if *q >= QUEUES_PER_PORT {
                    cx.value(
                        &format!("datapath.interfaces[{i}].queues[{k}]"),
                        format!(
                            "queue {q}: the XDP filter serves queues 0..{} of each interface",
                            QUEUES_PER_PORT - 1
                        ),
                    );
                }
            }
        }
    }
    // The keys the snapshot installs, counted the same way, service by service: the first
    // service that takes the count past the map's capacity is the one named.
    let mut keys = HashSet::new();
    let mut scratch = Vec::new();
    let mut over = None;
    for (i, s) in cfg.services.iter().enumerate() {
        scratch.clear();
        let targets = s.reals.iter().map(|r| r.address).chain(s.sorry_server);
        service_steering_keys(s.key(), s.forwarding.datapath(), targets, &mut scratch);
        keys.extend(scratch.drain(..));
        if over.is_none() && keys.len() > MAX_STEER_KEYS {
            over = Some((i, keys.len()));
        }
    }
    if let Some((i, at)) = over {
        let m = format!(
            "the XDP filter's steer map holds {MAX_STEER_KEYS} keys, and the services up to `{}` ({} of {}) already need {at}; all of them need {} (2 per service, and 2 per real or sorry server of a NAT service)",
            cfg.services[i].name,
            i + 1,
            cfg.services.len(),
            keys.len()
        );
        cx.key(&format!("services[{i}]"), m);
    }
}

/// The IPv6 table's capacity when the IPv4 one is `max_entries`: the file's
/// `max_entries_ipv6`, or by default `max_entries` itself when a service is IPv6 (see
/// [`Config::max_entries_ipv6`]).
fn ipv6_entries(cfg: &Config, max_entries: u64) -> u64 {
    let default_follows = cfg.conntrack.max_entries_ipv6.is_none() && cfg.max_entries_ipv6() > 0;
    match default_follows {
        true => max_entries,
        false => cfg.max_entries_ipv6(),
    }
}

/// What start-up allocates for `max_entries` (and the IPv6 table that goes with it) with this
/// file's pools and UMEM.
fn startup_memory(cfg: &Config, max_entries: u64, queues: u32) -> StartupMemory {
    let d = &cfg.datapath;
    let pool_ports: u64 = cfg
        .local_addresses
        .iter()
        .map(|p| {
            let ports = u64::from(p.ports.last.saturating_sub(p.ports.first)) + 1;
            ports.saturating_mul(u64::try_from(p.addresses.len()).unwrap_or(u64::MAX))
        })
        .fold(0, u64::saturating_add);
    // Counts past u32 saturate: the memory then cannot fit, which is the right answer.
    let ports = u32::try_from(d.interfaces.len()).unwrap_or(u32::MAX);
    let umem = u64::from(queues).saturating_mul(xsk::umem_bytes(ports, d.ring_size, d.frame_size));
    StartupMemory::new(
        max_entries,
        ipv6_entries(cfg, max_entries),
        pool_ports,
        umem,
    )
}

/// The connection table and the rest of start-up's allocations must fit the memory the
/// process can get.
fn memory(cx: &mut Ctx, cfg: &Config) {
    let Some(budget) = cx.host.memory() else {
        return;
    };
    let max = cfg.conntrack.max_entries;
    if max == 0 || max > super::MAX_CONNTRACK_ENTRIES {
        return; // refused on its own
    }
    if cfg.max_entries_ipv6() > super::MAX_CONNTRACK_ENTRIES {
        return; // refused on its own
    }
    // The queues `xvs run` opens: the list, or every receive queue of the first interface.
    let queues = match cfg.datapath.interfaces.first().map(|i| &i.queues) {
        Some(Queues::List(l)) => u32::try_from(l.len()).unwrap_or(u32::MAX),
        Some(Queues::All) => cfg
            .datapath
            .interfaces
            .first()
            .and_then(|i| cx.host.link(&i.name))
            .map_or(1, |l| l.rx_queues.max(1)),
        None => 0,
    };
    let fits = |n: u64| {
        startup_memory(cfg, n, queues)
            .total()
            .saturating_add(RESERVE)
            <= budget.bytes
    };
    if fits(max) {
        return;
    }
    let need = startup_memory(cfg, max, queues);
    // The largest max_entries that fits (the need grows with it).
    let (mut lo, mut hi) = (0u64, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let hint = if lo == 0 {
        "nothing fits: free memory or raise the limit".to_string()
    } else {
        format!("max_entries {lo} would fit")
    };
    cx.value(
        "conntrack.max_entries",
        format!(
            "max_entries {max} needs {} at start ({need}) plus {} for the rest of xvs, but this process can get {} ({}); {hint}",
            Bytes(need.total()),
            Bytes(RESERVE),
            Bytes(budget.bytes),
            budget.source
        ),
    );
}
