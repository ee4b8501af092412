//! Building the datapath's [`Snapshot`] from a validated [`Config`], and describing what a reload
//! changed.
//!
//! Real-server counters ([`RealStats`]) belong to a (service, real server) pair, not to a
//! snapshot: a reload that keeps the pair keeps its counters, so connection counts and totals
//! survive reloads (as with `ipvsadm` edits), and so does the up/down state the health checks
//! keep in them. Likewise a service's [`ServiceState`] (its quorum) and its sorry server's
//! counters belong to the service key (and the sorry server's address).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::conntrack::{LocalPool, Timeouts};
use crate::control::config::Config;
use crate::datapath::snapshot::SteerKey;
use crate::datapath::snapshot::{Persistence, ServiceState};
use crate::datapath::{Port, Service, ServiceKey, Snapshot};
use crate::sched::{self, RealServer, RealStats};

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The connection-table timeouts of the config.
pub fn timeouts(cfg: &Config) -> Timeouts {
    let t = &cfg.conntrack.timeouts;
    Timeouts {
        tcp_established: nanos(t.tcp_established),
        tcp_syn: nanos(t.tcp_syn),
        tcp_fin: nanos(t.tcp_fin),
        tcp_close: nanos(t.tcp_close),
        udp: nanos(t.udp),
        icmp: nanos(t.icmp),
    }
}

/// Whether two real-server lists have the same addresses and weights in the same order (what
/// the scheduler tables are computed from).
fn same_servers(a: &[RealServer], b: &[RealServer]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.addr == y.addr && x.weight == y.weight)
}

/// Builds snapshot `generation` for `cfg` on `ports`, reusing the real-server counters of
/// `previous` for every (service, real) pair both have, and its scheduler tables for every
/// service whose scheduler, flags, table size, servers and weights are unchanged. The tables
/// of `sh`, `dh` and `mh` are computed here (for 1000 servers, a Maglev table of 65537 entries
/// takes a few milliseconds; see the README's performance section).
///
/// `cfg` must have passed validation (including the not-supported-yet table): services use NAT.
pub fn build(
    cfg: &Config,
    ports: Vec<Port>,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Snapshot {
    let mut old_stats: HashMap<(ServiceKey, SocketAddr), Arc<RealStats>> = HashMap::new();
    let mut old_sorry: HashMap<(ServiceKey, SocketAddr), Arc<RealStats>> = HashMap::new();
    let mut old_state: HashMap<ServiceKey, Arc<ServiceState>> = HashMap::new();
    if let Some(prev) = previous {
        for s in &prev.services {
            for r in &s.reals {
                old_stats.insert((s.key, r.addr), r.stats.clone());
            }
            if let Some(r) = &s.sorry {
                old_sorry.insert((s.key, r.addr), r.stats.clone());
            }
            old_state.insert(s.key, s.state.clone());
        }
    }
    let services = cfg
        .services
        .iter()
        .map(|s| {
            let key = s.key();
            let forwarding = s.forwarding.datapath();
            let reals: Vec<RealServer> = s
                .reals
                .iter()
                .map(|r| {
                    let stats: Arc<RealStats> = old_stats
                        .get(&(key, r.address))
                        .cloned()
                        .unwrap_or_default();
                    stats.set_thresholds(r.upper_threshold, r.lower_threshold);
                    RealServer {
                        addr: r.address,
                        weight: r.weight,
                        stats,
                    }
                })
                .collect();
            let scheduler = s.scheduler.kind();
            let (flags, mh_size) = (s.sched_flags(), s.mh_table_size());
            // The scheduler's tables (sh, dh, mh) are computed here, off the packet path. A
            // service whose scheduler inputs did not change keeps its tables (same `Arc`).
            let tables = previous
                .and_then(|prev| prev.service_index(&key).map(|i| &prev.services[i]))
                .filter(|old| {
                    old.scheduler == scheduler
                        && old.tables.flags() == flags
                        && old.tables.mh_table_size() == mh_size
                        && same_servers(&old.reals, &reals)
                })
                .map(|old| old.tables.clone())
                .unwrap_or_else(|| sched::prepare(scheduler, flags, &reals, mh_size));
            let mut svc = Service::new(s.name.clone(), key, forwarding, scheduler, reals);
            svc.tables = tables;
            if s.persistence.enabled() {
                svc.persistence = Some(Persistence {
                    timeout: nanos(s.persistence.timeout),
                    netmask: s.persistence.effective_netmask(s.vip),
                });
            }
            svc.sorry = s.sorry_server.map(|addr| RealServer {
                addr,
                weight: 1,
                stats: old_sorry.get(&(key, addr)).cloned().unwrap_or_default(),
            });
            svc.state = old_state.get(&key).cloned().unwrap_or_default();
            svc.one_packet = s.one_packet;
            svc.sloppy_tcp = s.sloppy_tcp;
            // Pools are fixed for the daemon's life (a change needs a restart), so a pool's
            // index in the file is its index in the connection table.
            svc.local_pool = s.local_addresses.as_ref().and_then(|name| {
                cfg.local_addresses
                    .iter()
                    .position(|p| &p.name == name)
                    // Fits: validation caps the pools' addresses (so the pools) far below 2^16.
                    .and_then(|i| u16::try_from(i).ok())
            });
            svc.toa = s.toa;
            svc
        })
        .collect();
    Snapshot::new(
        generation,
        ports,
        services,
        timeouts(cfg),
        cfg.conntrack.sloppy_tcp,
    )
}

/// The FULLNAT pools of `cfg` for the connection table, in file order (validated: each pool's
/// addresses are of one family; each family's table takes its own).
pub fn local_pools(cfg: &Config) -> Vec<LocalPool> {
    cfg.local_addresses
        .iter()
        .map(|p| LocalPool {
            name: p.name.clone(),
            addresses: p.addresses.clone(),
            first_port: p.ports.first,
            last_port: p.ports.last,
        })
        .collect()
}

/// A real server a reload removed while it still had connections: its replies must keep
/// reaching the workers (its steering keys stay) until its last connection ends. IPVS keeps a
/// removed destination in its trash list the same way while connections use it.
#[derive(Clone, Debug)]
pub struct DrainingReal {
    pub service: ServiceKey,
    pub addr: SocketAddr,
    pub stats: Arc<RealStats>,
}

impl DrainingReal {
    /// Whether its last connection has ended.
    pub fn is_drained(&self) -> bool {
        self.stats.total_connections() == 0
    }

    /// What the filter must keep steering for its replies.
    pub fn steering_keys(&self) -> [SteerKey; 2] {
        [
            SteerKey::Src {
                addr: self.addr.ip(),
                port: self.addr.port(),
                proto: self.service.proto,
            },
            SteerKey::SrcFragments {
                addr: self.addr.ip(),
                proto: self.service.proto,
            },
        ]
    }
}

/// The (service, real server) pairs of `old` that `new` no longer has (the real server or its
/// whole service removed) and that still have connections; the sorry server counts as a real
/// server here.
pub fn removed_with_connections(old: &Snapshot, new: &Snapshot) -> Vec<DrainingReal> {
    let mut out = Vec::new();
    for s in &old.services {
        let kept = find(new, &s.key);
        for r in s.reals.iter().chain(&s.sorry) {
            let still = kept.is_some_and(|n| {
                n.reals
                    .iter()
                    .chain(&n.sorry)
                    .any(|x| Arc::ptr_eq(&x.stats, &r.stats))
            });
            if !still && r.stats.total_connections() > 0 {
                out.push(DrainingReal {
                    service: s.key,
                    addr: r.addr,
                    stats: r.stats.clone(),
                });
            }
        }
    }
    out
}

/// Log lines describing the change from `old` to `new`, in keepalived's wording
/// (`Adding service [198.18.1.11]:tcp:80 to VS [198.18.0.100]:tcp:80`).
fn find<'a>(snap: &'a Snapshot, key: &ServiceKey) -> Option<&'a Service> {
    snap.service_index(key).map(|i| &snap.services[i])
}

pub fn describe_changes(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    let real_id = |s: &Service, r: &RealServer| {
        format!("[{}]:{}:{}", r.addr.ip(), s.key.proto, r.addr.port())
    };
    for s in &old.services {
        match find(new, &s.key) {
            None => lines.push(format!("Removing Virtual Server {}", s.key)),
            Some(n) => {
                for r in &s.reals {
                    if !n.reals.iter().any(|x| x.addr == r.addr) {
                        lines.push(format!(
                            "Removing service {} from VS {}",
                            real_id(s, r),
                            s.key
                        ));
                    }
                }
                if n.scheduler != s.scheduler {
                    lines.push(format!(
                        "VS {}: scheduler {} -> {}",
                        s.key, s.scheduler, n.scheduler
                    ));
                }
                let sorry = |x: &Service| {
                    x.sorry
                        .as_ref()
                        .map_or("none".to_string(), |r| real_id(x, r))
                };
                if sorry(n) != sorry(s) {
                    lines.push(format!(
                        "VS {}: sorry server {} -> {}",
                        s.key,
                        sorry(s),
                        sorry(n)
                    ));
                }
            }
        }
    }
    for s in &new.services {
        let old_s = find(old, &s.key);
        if old_s.is_none() {
            lines.push(format!(
                "Adding Virtual Server {} ({}, {})",
                s.key, s.name, s.scheduler
            ));
        }
        for r in &s.reals {
            match old_s.and_then(|o| o.reals.iter().find(|x| x.addr == r.addr)) {
                None => lines.push(format!("Adding service {} to VS {}", real_id(s, r), s.key)),
                Some(o) if o.weight != r.weight => lines.push(format!(
                    "Changing weight of service {} in VS {}: {} -> {}",
                    real_id(s, r),
                    s.key,
                    o.weight,
                    r.weight
                )),
                Some(_) => {}
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const BASE: &str = "
datapath:
  interfaces: [{ name: wan0, queues: [0] }]
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    protocol: tcp
    scheduler: wrr
    forwarding: nat
    reals:
      - { address: 198.18.1.11:80, weight: 3 }
      - { address: 198.18.1.12:80, weight: 1 }
";

    fn cfg(text: &str) -> Config {
        Config::from_str_named(text, "test.yaml", &|_: &str| true).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn builds_services_and_keeps_counters_across_reloads() {
        let a = build(&cfg(BASE), vec![], 1, None);
        assert_eq!(a.services.len(), 1);
        assert_eq!(a.services[0].reals[0].weight, 3);
        a.services[0].reals[0]
            .stats
            .connections_total
            .fetch_add(5, Ordering::Relaxed);
        let changed = BASE
            .replace("weight: 1", "weight: 2")
            .replace("198.18.1.11:80, weight: 3", "198.18.1.13:80, weight: 3");
        let b = build(
            &cfg(&BASE.replace("weight: 1", "weight: 2")),
            vec![],
            2,
            Some(&a),
        );
        assert_eq!(
            b.services[0].reals[0]
                .stats
                .connections_total
                .load(Ordering::Relaxed),
            5
        );
        let c = build(&cfg(&changed), vec![], 3, Some(&b));
        assert_eq!(
            c.services[0].reals[0]
                .stats
                .connections_total
                .load(Ordering::Relaxed),
            0,
            "new real, new counters"
        );
        assert_eq!(
            describe_changes(&b, &c),
            [
                "Removing service [198.18.1.11]:tcp:80 from VS [198.18.0.100]:tcp:80",
                "Adding service [198.18.1.13]:tcp:80 to VS [198.18.0.100]:tcp:80",
            ]
        );
        assert_eq!(
            describe_changes(&a, &b),
            ["Changing weight of service [198.18.1.12]:tcp:80 in VS [198.18.0.100]:tcp:80: 1 -> 2"]
        );
    }

    #[test]
    fn a_service_sloppy_tcp_overrides_the_global_one() {
        let global = BASE.replace("services:", "conntrack: { sloppy_tcp: true }\nservices:");
        let s = build(&cfg(&global), vec![], 1, None);
        assert!(s.sloppy_tcp && s.services[0].sloppy_tcp.is_none());
        assert!(s.services[0].picks_up_mid_stream(s.sloppy_tcp));
        let off = global.replace("forwarding: nat", "forwarding: nat\n    sloppy_tcp: false");
        let s = build(&cfg(&off), vec![], 2, None);
        assert_eq!(s.services[0].sloppy_tcp, Some(false));
        assert!(!s.services[0].picks_up_mid_stream(s.sloppy_tcp));
        let on = BASE.replace("forwarding: nat", "forwarding: nat\n    sloppy_tcp: true");
        let s = build(&cfg(&on), vec![], 3, None);
        assert!(!s.sloppy_tcp && s.services[0].picks_up_mid_stream(s.sloppy_tcp));
    }

    #[test]
    fn sorry_server_and_service_state_are_built_kept_across_reloads_and_steered() {
        use crate::datapath::snapshot::SteerKey;
        let with_sorry = BASE.replace(
            "    reals:\n",
            "    sorry_server: 198.18.1.13:8080\n    reals:\n",
        );
        let a = build(&cfg(&with_sorry), vec![], 1, None);
        let web = &a.services[0];
        let sorry = web.sorry.as_ref().unwrap();
        assert_eq!(sorry.addr, "198.18.1.13:8080".parse().unwrap());
        assert!(web.state.has_quorum());
        assert!(a.steering_keys().contains(&SteerKey::Src {
            addr: "198.18.1.13".parse().unwrap(),
            port: 8080,
            proto: crate::flow::Proto::Tcp,
        }));
        web.state.set_quorum(false);
        sorry
            .stats
            .connections_total
            .fetch_add(7, Ordering::Relaxed);
        let b = build(&cfg(&with_sorry), vec![], 2, Some(&a));
        assert!(Arc::ptr_eq(&b.services[0].state, &web.state));
        assert!(
            !b.services[0].state.has_quorum(),
            "quorum survives a reload"
        );
        assert!(Arc::ptr_eq(
            &b.services[0].sorry.as_ref().unwrap().stats,
            &sorry.stats
        ));
        let c = build(&cfg(BASE), vec![], 3, Some(&b));
        assert!(c.services[0].sorry.is_none());
        assert_eq!(
            describe_changes(&b, &c),
            ["VS [198.18.0.100]:tcp:80: sorry server [198.18.1.13]:tcp:8080 -> none"]
        );
        assert_eq!(
            c.steering_keys().len(),
            6,
            "VIP and two reals, each also for later fragments"
        );
    }

    #[test]
    fn scheduler_tables_are_built_here_and_kept_while_their_inputs_do_not_change() {
        let mh = BASE.replace(
            "scheduler: wrr",
            "scheduler: mh\n    scheduler_flags: [mh-fallback]\n    mh_table_size: 4093",
        );
        let a = build(&cfg(&mh), vec![], 1, None);
        let t = &a.services[0].tables;
        assert_eq!(a.services[0].scheduler, sched::SchedulerKind::Mh);
        assert_eq!(t.table_len(), 4093);
        assert!(t.flags().fallback && !t.flags().hash_port);
        // Health and counters are not inputs: an identical reload keeps the same table.
        a.services[0].reals[0].stats.set_up(false);
        let b = build(&cfg(&mh), vec![], 2, Some(&a));
        assert!(b.services[0].tables.shares_table_with(t));
        // A weight, a server, the size or a flag changed: a new table.
        for changed in [
            mh.replace("weight: 1", "weight: 2"),
            mh.replace("198.18.1.12:80", "198.18.1.13:80"),
            mh.replace("4093", "8191"),
            mh.replace("[mh-fallback]", "[mh-port]"),
        ] {
            let c = build(&cfg(&changed), vec![], 3, Some(&b));
            assert!(!c.services[0].tables.shares_table_with(t), "{changed}");
        }
        let sh = build(
            &cfg(&BASE.replace("scheduler: wrr", "scheduler: sh")),
            vec![],
            4,
            Some(&b),
        );
        assert_eq!(sh.services[0].tables.table_len(), 256);
        assert_eq!(a.services[0].tables.mh_table_size(), 4093);
        let wrr = build(&cfg(BASE), vec![], 5, Some(&sh));
        assert_eq!(wrr.services[0].tables.table_len(), 0);
    }

    #[test]
    fn removed_real_servers_with_connections_drain() {
        let a = build(&cfg(BASE), vec![], 1, None);
        let r2 = a.services[0].reals[1].clone();
        r2.stats.active.store(2, Ordering::Relaxed);
        let without_r2 = BASE.replace("      - { address: 198.18.1.12:80, weight: 1 }\n", "");
        assert_ne!(without_r2, BASE, "BASE lists 198.18.1.12:80 with weight 1");
        let b = build(&cfg(&without_r2), vec![], 2, Some(&a));
        let d = removed_with_connections(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].addr, r2.addr);
        assert!(!d[0].is_drained());
        assert!(d[0]
            .steering_keys()
            .iter()
            .all(|k| !b.steering_keys().contains(k)));
        // A real server without connections, or one the new snapshot keeps, does not drain.
        assert!(removed_with_connections(&a, &build(&cfg(BASE), vec![], 2, Some(&a))).is_empty());
        r2.stats.active.store(0, Ordering::Relaxed);
        assert!(d[0].is_drained());
        assert!(removed_with_connections(&a, &b).is_empty());
    }

    #[test]
    fn timeouts_come_from_the_config() {
        let c = cfg(&format!(
            "{BASE}conntrack:\n  timeouts: {{ tcp_syn: 5s, udp: 100ms }}\n"
        ));
        let t = timeouts(&c);
        assert_eq!(t.tcp_syn, 5_000_000_000);
        assert_eq!(t.udp, 100_000_000);
        assert_eq!(t.tcp_established, 900_000_000_000);
    }
}
