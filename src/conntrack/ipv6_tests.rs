//! IPv6 connections: their own table and bound next to the IPv4 one, both directions, expiry,
//! half-open eviction, FULLNAT6 local endpoints from IPv6 pools, mixed families refused.

use std::sync::Arc;

use super::tests::{keys, sa};
use super::*;
use crate::wire::TcpFlags;

const S: Nanos = crate::flow::NANOS_PER_SEC;
const SYN: Event = Event::Tcp(TcpFlags(TcpFlags::SYN));
const ACK: Event = Event::Tcp(TcpFlags(TcpFlags::ACK));
const SYNACK: Event = Event::Tcp(TcpFlags(TcpFlags::SYN | TcpFlags::ACK));

/// An IPv6 connection from client port `port` of `2001:2::2` to `[2001:2::100]:80`.
fn conn6(port: u16, stats: &Arc<RealStats>) -> NewConn {
    NewConn {
        proto: Proto::Tcp,
        client: SocketAddr::new("2001:2::2".parse().unwrap(), port),
        vip: sa("[2001:2::100]:80"),
        real: sa("[2001:2:0:1::11]:8080"),
        state: ConnState::SynRecv,
        stats: stats.clone(),
    }
}

/// The same connection over IPv4 (same ports).
fn conn4(port: u16, stats: &Arc<RealStats>) -> NewConn {
    NewConn {
        client: SocketAddr::new("198.18.0.2".parse().unwrap(), port),
        vip: sa("198.18.0.100:80"),
        real: sa("198.18.1.11:8080"),
        ..conn6(port, stats)
    }
}

fn established6(port: u16, stats: &Arc<RealStats>) -> NewConn {
    NewConn {
        state: ConnState::Established,
        ..conn6(port, stats)
    }
}

fn pool(name: &str, first: u16, last: u16, addrs: &[&str]) -> LocalPool {
    LocalPool {
        name: name.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        first_port: first,
        last_port: last,
    }
}

#[test]
fn both_directions_find_an_ipv6_connection_and_state_advances() {
    let t = ConnTable::with_families(100, 100, 4, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let c = conn6(40000, &stats);
    let (o, r) = keys(&c);
    let ins = t.insert(c.clone(), 0, &to).unwrap();
    assert_eq!((ins.conn.client(), ins.conn.real()), (c.client, c.real));
    assert_eq!((t.len(), t.len_ipv6()), (1, 1));
    let got = t.lookup(Direction::Reply, &r, SYNACK, S, &to).unwrap();
    assert_eq!((got.vip(), got.state), (c.vip, ConnState::SynRecv));
    let got = t.lookup(Direction::Original, &o, ACK, 2 * S, &to).unwrap();
    assert_eq!((got.real(), got.state), (c.real, ConnState::Established));
    assert!(got.handshake_completed);
    assert_eq!(stats.active.load(Ordering::Relaxed), 1);
    assert_eq!(
        t.peek(Direction::Reply, &r, 3 * S).map(|t| t.client()),
        Some(c.client)
    );
    // A key only matches in its own direction.
    assert!(t.lookup(Direction::Original, &r, ACK, 3 * S, &to).is_none());
    assert!(t.lookup(Direction::Reply, &o, ACK, 3 * S, &to).is_none());
    let rows = t.rows(3 * S);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].client, rows[0].local), (c.client, None));
}

#[test]
fn ipv4_and_ipv6_connections_with_the_same_ports_live_side_by_side() {
    let t = ConnTable::with_families(10, 10, 1, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let (c4, c6) = (conn4(5000, &stats), conn6(5000, &stats));
    t.insert(c4.clone(), 0, &to).unwrap();
    t.insert(c6.clone(), 0, &to).unwrap();
    assert_eq!((t.len(), t.len_ipv6()), (2, 1));
    for c in [&c4, &c6] {
        let (o, r) = keys(c);
        assert_eq!(
            t.lookup(Direction::Original, &o, ACK, S, &to)
                .unwrap()
                .real(),
            c.real
        );
        assert_eq!(
            t.lookup(Direction::Reply, &r, ACK, S, &to).unwrap().vip(),
            c.vip
        );
    }
    let rows = t.rows(S);
    assert_eq!(
        rows.iter().map(|r| r.client).collect::<Vec<_>>(),
        [c4.client, c6.client]
    );
    // remove_real covers both tables.
    assert_eq!(t.remove_real(&stats), 2);
    assert!(t.is_empty());
    assert_eq!(stats.total_connections(), 0);
}

#[test]
fn keys_and_connections_that_mix_families_are_refused_without_panicking() {
    let t = ConnTable::with_families(10, 10, 1, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let c = conn6(6000, &stats);
    t.insert(c.clone(), 0, &to).unwrap();
    let (o, _) = keys(&c);
    for (src, dst) in [("198.18.0.2", "2001:2::100"), ("2001:2::2", "198.18.0.100")] {
        let k = FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ..o
        };
        assert!(t.lookup(Direction::Original, &k, ACK, S, &to).is_none());
        assert!(t.peek(Direction::Reply, &k, S).is_none());
    }
    for mixed in [
        NewConn {
            real: sa("198.18.1.11:8080"),
            ..conn6(6001, &stats)
        },
        NewConn {
            vip: sa("198.18.0.100:80"),
            ..conn6(6001, &stats)
        },
        NewConn {
            client: sa("198.18.0.2:6001"),
            ..conn6(6001, &stats)
        },
    ] {
        assert_eq!(
            t.insert(mixed.clone(), 0, &to),
            Err(InsertError::MixedFamilies)
        );
        assert_eq!(
            t.insert_fullnat(mixed, 0, 0, &to),
            Err(InsertError::MixedFamilies)
        );
    }
    assert_eq!(t.len(), 1);
    assert_eq!(stats.inactive.load(Ordering::Relaxed), 1);
}

#[test]
fn ipv6_entries_expire_lazily_and_by_sweep() {
    let t = ConnTable::with_families(100, 100, 1, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    for p in 0..10 {
        t.insert(conn6(40000 + p, &stats), 0, &to).unwrap();
    }
    let (o, _) = keys(&conn6(40000, &stats));
    assert!(t
        .lookup(Direction::Original, &o, ACK, 29 * S, &to)
        .is_some());
    // Port 40000 is ESTABLISHED now (15 min); the 9 others expire at 30 s.
    assert_eq!(t.expire(31 * S, 4), 4, "sweep is bounded by its budget");
    assert_eq!(t.expire(31 * S, 100), 5);
    assert_eq!(t.len_ipv6(), 1);
    assert!(t
        .lookup(Direction::Original, &o, ACK, 930 * S, &to)
        .is_none());
    assert!(t.is_empty());
    assert_eq!(stats.total_connections(), 0);
}

#[test]
fn a_full_ipv6_table_evicts_half_open_then_refuses_and_leaves_ipv4_alone() {
    let t = ConnTable::with_families(4, 8, 1, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    for p in 0..4 {
        t.insert(conn4(100 + p, &stats), 0, &to).unwrap();
        t.insert(established6(1000 + p, &stats), 0, &to).unwrap();
    }
    // A SYN flood over IPv6: half-open entries created at 1..=4 s, the oldest evicted first.
    for p in 0..4u16 {
        t.insert(conn6(2000 + p, &stats), (1 + u64::from(p)) * S, &to)
            .unwrap();
    }
    let ins = t.insert(conn6(3000, &stats), 5 * S, &to).unwrap();
    assert!(ins.evicted_half_open);
    let (oldest, _) = keys(&conn6(2000, &stats));
    assert!(t
        .lookup(Direction::Original, &oldest, ACK, 6 * S, &to)
        .is_none());
    assert_eq!((t.len_ipv6(), t.len()), (8, 12));
    // The IPv4 table, full itself, is untouched by the IPv6 flood.
    for p in 0..4 {
        let (o, _) = keys(&conn4(100 + p, &stats));
        assert!(t.peek(Direction::Original, &o, 6 * S).is_some());
    }
    // Full of established entries: refused.
    let full = ConnTable::with_families(1, 2, 1, &[]);
    full.insert(established6(1, &stats), 0, &to).unwrap();
    full.insert(established6(2, &stats), 0, &to).unwrap();
    assert_eq!(
        full.insert(conn6(3, &stats), S, &to),
        Err(InsertError::Full)
    );
    assert_eq!(full.capacity_ipv6(), 2);
}

#[test]
fn fullnat6_takes_its_local_endpoint_from_the_ipv6_addresses_of_its_pool() {
    // Pool 0 is IPv4, pool 1 IPv6: indices are shared, addresses split by family.
    let pools = [
        pool("v4", 5000, 5003, &["198.18.1.2"]),
        pool("v6", 6000, 6003, &["2001:2:0:2::2", "2001:2:0:2::3"]),
    ];
    let t = ConnTable::with_families(100, 100, 2, &pools);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let mut taken = Vec::new();
    for p in 0..8u16 {
        let c = conn6(40000 + p, &stats);
        match t.insert_fullnat(c.clone(), 1, 0, &to) {
            Ok(ins) => {
                let local = ins.conn.local().unwrap();
                assert!(local.is_ipv6() && (6000..=6003).contains(&local.port()));
                // The reply comes back to the local endpoint and finds the connection.
                let r = FlowKey {
                    proto: Proto::Tcp,
                    src: c.real.ip(),
                    sport: c.real.port(),
                    dst: local.ip(),
                    dport: local.port(),
                };
                let got = t.lookup(Direction::Reply, &r, SYNACK, S, &to).unwrap();
                assert_eq!((got.client(), got.local()), (c.client, Some(local)));
                taken.push(local);
            }
            Err(e) => assert_eq!(e, InsertError::LocalPortsExhausted),
        }
    }
    assert!(!taken.is_empty());
    let unique: std::collections::HashSet<_> = taken.iter().collect();
    assert_eq!(
        unique.len(),
        taken.len(),
        "a local endpoint handed out twice"
    );
    assert_eq!(t.local_ports_in_use(1), taken.len() as u64);
    assert_eq!(t.local_ports_in_use(0), 0);
    let pools6 = t.local_pools_v6().unwrap();
    assert!(pools6.id_of(V6::from_ip(taken[0].ip()).unwrap()).is_some());
    // The IPv4 pool has no IPv6 address: nothing to hand out.
    assert_eq!(
        t.insert_fullnat(conn6(50000, &stats), 0, 0, &to),
        Err(InsertError::LocalPortsExhausted)
    );
    // An IPv4 connection from the IPv4 pool still works.
    let ins = t.insert_fullnat(conn4(50000, &stats), 0, 0, &to).unwrap();
    assert_eq!(
        ins.conn.local().unwrap().ip(),
        "198.18.1.2".parse::<IpAddr>().unwrap()
    );
    assert_eq!(t.local_ports_in_use(0), 1);
    // Removal gives every port back.
    assert_eq!(t.remove_real(&stats), taken.len() + 1);
    assert_eq!(t.local_ports_in_use(1) + t.local_ports_in_use(0), 0);
    assert!(t.local_port_bytes() >= 2 * (4 + 8));
}

#[test]
fn pool_addresses_and_endpoints_are_looked_up_in_their_family_s_pools() {
    let pools = [
        pool("v4", 5000, 5003, &["198.18.1.2"]),
        pool("v6", 6000, 6003, &["2001:2:0:2::2"]),
    ];
    let t = ConnTable::with_families(10, 10, 1, &pools);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for (addr, port) in [("198.18.1.2", 5000), ("2001:2:0:2::2", 6003)] {
        assert!(t.is_pool_address(ip(addr)), "{addr}");
        assert!(t.is_pool_endpoint(ip(addr), port), "{addr} {port}");
    }
    // Ports outside the range are the box's own; other addresses are no pool's.
    assert!(!t.is_pool_endpoint(ip("198.18.1.2"), 5004));
    assert!(!t.is_pool_endpoint(ip("2001:2:0:2::2"), 5999));
    assert!(!t.is_pool_address(ip("198.18.1.3")));
    assert!(!t.is_pool_address(ip("2001:2:0:2::3")));
    assert!(!t.is_pool_endpoint(ip("::ffff:198.18.1.2"), 5000));
    // Without an IPv6 table, no IPv6 address is a pool's.
    let v4_only = ConnTable::with_pools(10, 1, &pools);
    assert!(!v4_only.is_pool_address(ip("2001:2:0:2::2")));
}

#[test]
fn a_reopening_syn_and_a_duplicate_insert_behave_as_over_ipv4() {
    let t = ConnTable::with_families(10, 10, 1, &[]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let c = established6(7000, &stats);
    let (o, _) = keys(&c);
    t.insert(c.clone(), 0, &to).unwrap();
    let other = NewConn {
        real: sa("[2001:2:0:1::12]:8080"),
        ..c.clone()
    };
    assert_eq!(t.insert(other, 0, &to).unwrap().conn.real(), c.real);
    let rst = Event::Tcp(TcpFlags(TcpFlags::RST));
    assert_eq!(
        t.lookup(Direction::Original, &o, rst, S, &to)
            .unwrap()
            .state,
        ConnState::Close
    );
    assert!(t.lookup(Direction::Original, &o, SYN, 2 * S, &to).is_none());
    assert!(t.is_empty());
}

#[test]
fn no_ipv6_capacity_reserves_no_memory() {
    let v4_only = ConnTable::new(100_000);
    let dual = ConnTable::with_families(100_000, 0, 0, &[]);
    assert_eq!(dual.allocated_bytes(), v4_only.allocated_bytes());
    assert_eq!(ConnTable::bytes_needed_ipv6(0), 0);
    for n in [1, 4095, 100_000, 262_144] {
        let t = ConnTable::with_families(10, n, 0, &[]);
        assert_eq!(
            t.allocated_bytes(),
            ConnTable::bytes_needed(10) + ConnTable::bytes_needed_ipv6(n),
            "{n}"
        );
    }
}

#[test]
fn an_ipv6_connection_costs_at_most_104_bytes_with_its_index() {
    // Entry (80 bytes: three 16-byte addresses) + both directions' index buckets at 75 % load,
    // the same for NAT and FULLNAT6 entries; the IPv6 table is the only one with a capacity.
    assert_eq!(std::mem::size_of::<Entry<V6>>(), 80);
    let t = ConnTable::with_families(0, 1_000_000, 0, &[]);
    let base = ConnTable::new(0).allocated_bytes();
    let per = (t.allocated_bytes() - base) as f64 / 1_000_000.0;
    assert!(per <= 104.0, "{per} bytes per IPv6 connection");
    assert!(
        per > 100.0,
        "{per}: the measurement counts entries and index"
    );
    println!("{per:.1} bytes per IPv6 connection");
}
