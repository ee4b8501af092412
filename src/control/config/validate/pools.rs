//! The `local_addresses` section: the FULLNAT pools of source addresses and ports.
//!
//! A pool is of one address family, IPv4 or IPv6 (each family's connection table hands out the
//! ports of its own addresses, see [`crate::conntrack::local_ports`]), and every fullnat service
//! that names it is of that family: an IPv6 service's connections leave from IPv6 pool
//! addresses. FULLNAT64 (an IPv6 VIP in front of IPv4 real servers, through an IPv4 pool) is not
//! supported.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{family, is_unicast, machine, Ctx, FULLNAT64};
use crate::control::config::model::{Config, Forwarding, LocalAddressPool};

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
    services_of_the_pools_family(cx, cfg);
}

/// The family of the pool's addresses, if it has some and they are of one family.
fn pool_family(pool: &LocalAddressPool) -> Option<IpAddr> {
    let first = *pool.addresses.first()?;
    let one = pool
        .addresses
        .iter()
        .all(|a| a.is_ipv4() == first.is_ipv4());
    one.then_some(first)
}

/// A pool of one family serves services of that family only (a mixed pool is refused on its
/// own, see [`addresses`]).
fn services_of_the_pools_family(cx: &mut Ctx, cfg: &Config) {
    for (i, s) in cfg.services.iter().enumerate() {
        let Some(name) = s.local_addresses.as_ref() else {
            continue;
        };
        let pool = cfg.local_addresses.iter().find(|p| p.name == *name);
        let Some(first) = pool.and_then(pool_family) else {
            continue; // unknown (refused with the service) or mixed (refused with the pool)
        };
        if s.forwarding != Forwarding::Fullnat || first.is_ipv4() == s.vip.is_ipv4() {
            continue;
        }
        let why = match s.vip.is_ipv6() {
            true => FULLNAT64,
            false => "a FULLNAT service's local addresses are of its VIP's family",
        };
        cx.value(
            &format!("services[{i}].local_addresses"),
            format!(
                "local_addresses pool `{name}` is {} but the VIP is {}: {why}",
                family(first),
                family(s.vip)
            ),
        );
    }
}

/// The addresses of the pool at `p`: unicast, usable as a source, dedicated, listed once, all of
/// the family of the first.
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
        } else if let Some(first) = pool
            .addresses
            .first()
            .filter(|f| f.is_ipv4() != a.is_ipv4())
        {
            cx.value(
                &format!("{p}.addresses[{k}]"),
                format!(
                    "local address {a} is {} but the pool's first address {first} is {}: a local_addresses pool is of one address family",
                    family(*a),
                    family(*first)
                ),
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
