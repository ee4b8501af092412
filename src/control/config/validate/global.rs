//! The machine-wide sections: `global`, `datapath` and `conntrack`.

use super::Ctx;
use crate::control::config::model::{Config, Cpus, Queues, Workers};

/// Longest Unix socket path (sizeof sun_path - 1).
const SUN_PATH_MAX: usize = 107;

/// Upper bound of `conntrack.max_entries` (the table is allocated whole at start).
pub const MAX_CONNTRACK_ENTRIES: u64 = 100_000_000;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    global(cx, cfg);
    datapath(cx, cfg);
    conntrack(cx, cfg);
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
    if let Cpus::List(cpus) = &d.cpus {
        if cpus.is_empty() {
            cx.value(
                "datapath.cpus",
                "cpus must list at least one CPU, or be `auto`",
            );
        }
        cx.unique(
            cpus.iter()
                .enumerate()
                .map(|(k, c)| (format!("datapath.cpus[{k}]"), *c)),
            |c, first| format!("cpu {c} is listed twice (first at {first})"),
        );
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
    if let Some(n) = c.max_entries_ipv6 {
        if n > MAX_CONNTRACK_ENTRIES {
            cx.value(
                "conntrack.max_entries_ipv6",
                format!("max_entries_ipv6 must be at most {MAX_CONNTRACK_ENTRIES}"),
            );
        }
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
