//! The `local_addresses` section: the FULLNAT pools of source addresses and ports.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{is_unicast, machine, Ctx};
use crate::control::config::model::{Config, LocalAddressPool};

/// The fewest local address:port pairs a pool must offer per connection-table shard.
pub const MIN_POOL_PORTS_PER_SHARD: usize = 16;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    for (i, pool) in cfg.local_addresses.iter().enumerate() {
        let p = format!("local_addresses[{i}]");
        cx.not_empty(&format!("{p}.name"), &pool.name, "pool name");
        addresses(cx, cfg, &p, pool);
        ports(cx, cfg, &p, pool);
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
    one_pool_per_address(cx, cfg);
}

/// The addresses of the pool at `p`: unicast, usable as a source, IPv4, dedicated, listed once.
fn addresses(cx: &mut Ctx, cfg: &Config, p: &str, pool: &LocalAddressPool) {
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
}

/// The port range of the pool at `p`: not empty, and wide enough for every shard.
fn ports(cx: &mut Ctx, cfg: &Config, p: &str, pool: &LocalAddressPool) {
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

/// A local address belongs to one pool: its ports are allocated by that pool alone.
fn one_pool_per_address(cx: &mut Ctx, cfg: &Config) {
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
