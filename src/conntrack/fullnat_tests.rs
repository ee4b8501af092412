//! FULLNAT connections in the table: local endpoints from the pools, reply lookup by them,
//! collision-free allocation under concurrent inserts, ports returned on removal.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::wire::TcpFlags;

const S: Nanos = crate::flow::NANOS_PER_SEC;
const SYN: Event = Event::Tcp(TcpFlags(0x02));
const ACK: Event = Event::Tcp(TcpFlags(0x10));

fn pool(first: u16, last: u16, addrs: &[&str]) -> LocalPool {
    LocalPool {
        name: "pool1".into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        first_port: first,
        last_port: last,
    }
}

fn conn(client: u32, port: u16, stats: &Arc<RealStats>) -> NewConn {
    NewConn {
        proto: Proto::Tcp,
        client: SocketAddr::from((Ipv4Addr::from_bits(client), port)),
        vip: "198.18.0.100:80".parse().unwrap(),
        real: "198.18.1.11:80".parse().unwrap(),
        state: ConnState::SynRecv,
        stats: stats.clone(),
    }
}

fn reply_key(t: &Tracked) -> FlowKey {
    let local = t.local().unwrap();
    FlowKey {
        proto: Proto::Tcp,
        src: t.real().ip(),
        sport: t.real().port(),
        dst: local.ip(),
        dport: local.port(),
    }
}

#[test]
fn a_fullnat_connection_is_found_by_its_local_endpoint_and_not_by_the_client() {
    let t = ConnTable::with_pools(1000, 4, &[pool(5000, 5999, &["198.18.1.2"])]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let c = conn(0xc612_0002, 40000, &stats);
    let ins = t.insert_fullnat(c.clone(), 0, 0, &to).unwrap().conn;
    let local = ins.local().expect("a local endpoint");
    assert_eq!(local.ip(), "198.18.1.2".parse::<IpAddr>().unwrap());
    assert!((5000..=5999).contains(&local.port()));
    // The NAT reply key (real → client) does not match a FULLNAT entry.
    let nat_reply = FlowKey {
        proto: Proto::Tcp,
        src: c.real.ip(),
        sport: 80,
        dst: c.client.ip(),
        dport: c.client.port(),
    };
    assert!(t
        .lookup(Direction::Reply, &nat_reply, ACK, S, &to)
        .is_none());
    let got = t
        .lookup(
            Direction::Reply,
            &reply_key(&ins),
            Event::Tcp(TcpFlags(0x12)),
            S,
            &to,
        )
        .expect("reply found by local endpoint");
    assert_eq!(
        (got.client(), got.vip(), got.local()),
        (c.client, c.vip, Some(local))
    );
    let orig = FlowKey {
        proto: Proto::Tcp,
        src: c.client.ip(),
        sport: c.client.port(),
        dst: c.vip.ip(),
        dport: 80,
    };
    let got = t.lookup(Direction::Original, &orig, ACK, S, &to).unwrap();
    assert_eq!(got.local(), Some(local));
    assert!(
        got.handshake_completed,
        "SYN_RECV → ESTABLISHED on the client's ACK"
    );
    let again = t.lookup(Direction::Original, &orig, ACK, S, &to).unwrap();
    assert!(!again.handshake_completed);
    assert_eq!(t.rows(S)[0].local, Some(local));
}

#[test]
fn ports_come_back_on_expiry_and_removal_and_exhaustion_is_reported() {
    // One shard, 4 ports on one address: the fifth concurrent connection is refused.
    let t = ConnTable::with_pools(100, 1, &[pool(7000, 7003, &["198.18.1.2"])]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    for i in 0..4 {
        t.insert_fullnat(conn(0xc612_0002, 1000 + i, &stats), 0, 0, &to)
            .unwrap();
    }
    assert_eq!(t.local_pools().ports_in_use(0), 4);
    assert_eq!(
        t.insert_fullnat(conn(0xc612_0002, 2000, &stats), 0, 0, &to),
        Err(InsertError::LocalPortsExhausted)
    );
    // Expiry returns them (SYN_RECV times out after tcp_syn).
    let later = to.tcp_syn + S;
    while t.expire(later, 64) > 0 {}
    assert!(t.is_empty());
    assert_eq!(t.local_pools().ports_in_use(0), 0);
    let c = t
        .insert_fullnat(conn(0xc612_0002, 2000, &stats), 0, later, &to)
        .unwrap();
    assert!(c.conn.local.is_some());
    // remove_real returns them too.
    assert_eq!(t.remove_real(&stats), 1);
    assert_eq!(t.local_pools().ports_in_use(0), 0);
    // And a SYN that reopens a closing connection frees the old port.
    let mut closing = conn(0xc612_0002, 3000, &stats);
    closing.state = ConnState::Close;
    let c = t.insert_fullnat(closing, 0, later, &to).unwrap();
    assert_eq!(t.local_pools().ports_in_use(0), 1);
    let orig = FlowKey {
        proto: Proto::Tcp,
        src: c.conn.client().ip(),
        sport: 3000,
        dst: c.conn.vip().ip(),
        dport: 80,
    };
    assert!(t
        .lookup(Direction::Original, &orig, SYN, later, &to)
        .is_none());
    assert_eq!(t.local_pools().ports_in_use(0), 0);
}

#[test]
fn concurrent_inserts_never_share_a_local_endpoint_and_every_port_returns() {
    // 4 threads (workers) insert distinct clients into a 16-shard table whose pool has 2
    // addresses x 2048 ports = 4096 endpoints, more flows than endpoints: every allocated
    // endpoint is unique among live connections, the excess is refused as exhausted, and once
    // everything expires every port is free again.
    let t = Arc::new(ConnTable::with_pools(
        20_000,
        16,
        &[pool(30000, 32047, &["198.18.1.2", "198.18.1.3"])],
    ));
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let handles: Vec<_> = (0..4u32)
        .map(|w| {
            let t = t.clone();
            let stats = stats.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut refused = 0;
                for i in 0..1500u32 {
                    let client = 0xc612_0000 + w * 0x1_0000 + i;
                    match t.insert_fullnat(conn(client, 40000, &stats), 0, 0, &to) {
                        Ok(ins) => got.push(ins.conn.local().unwrap()),
                        Err(InsertError::LocalPortsExhausted) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (got, refused)
            })
        })
        .collect();
    let mut all = HashSet::new();
    let mut refused = 0;
    for h in handles {
        let (got, r) = h.join().unwrap();
        refused += r;
        for l in got {
            assert!(all.insert(l), "local endpoint {l} handed out twice");
        }
    }
    assert_eq!(all.len() + refused, 6000);
    assert_eq!(t.len(), all.len());
    assert!(
        all.len() > 3900,
        "only {} of 4096 endpoints used",
        all.len()
    );
    assert_eq!(t.local_pools().ports_in_use(0), all.len() as u64);
    // Every live connection is found by its reply key.
    for row in t.rows(0) {
        let local = row.local.unwrap();
        let k = FlowKey {
            proto: Proto::Tcp,
            src: row.real.ip(),
            sport: 80,
            dst: local.ip(),
            dport: local.port(),
        };
        assert!(t.lookup(Direction::Reply, &k, ACK, 0, &to).is_some());
    }
    let later = to.tcp_established + S;
    for _ in 0..1000 {
        if t.is_empty() {
            break;
        }
        t.expire(later, 4096);
    }
    assert!(t.is_empty());
    assert_eq!(t.local_pools().ports_in_use(0), 0);
}

#[test]
fn nat_entries_are_unaffected_by_pools() {
    let t = ConnTable::with_pools(100, 2, &[pool(5000, 5001, &["198.18.1.2"])]);
    let to = Timeouts::default();
    let stats = Arc::new(RealStats::default());
    let ins = t.insert(conn(0xc612_0002, 4000, &stats), 0, &to).unwrap();
    assert_eq!(ins.conn.local, None);
    let k = FlowKey {
        proto: Proto::Tcp,
        src: ins.conn.real().ip(),
        sport: 80,
        dst: ins.conn.client().ip(),
        dport: 4000,
    };
    assert!(t.lookup(Direction::Reply, &k, ACK, 0, &to).is_some());
}

#[test]
fn fullnat_connection_memory_stays_within_64_bytes() {
    // Entry + both directions' index buckets, the same for NAT and FULLNAT entries; the pool's
    // free-port rings (2 bytes per pool port, allocated once) are reported separately.
    let t = ConnTable::with_pools(
        1_000_000,
        0,
        &[pool(1024, 65535, &["198.18.1.2", "198.18.1.3"])],
    );
    let per = t.allocated_bytes() as f64 / 1_000_000.0;
    assert!(per <= 64.0, "{per} bytes per connection");
    let rings = 2 * 64512 * 2;
    let b = t.local_port_bytes();
    assert!(
        b >= rings && b <= rings + 2 * t.shards(),
        "{b} bytes of port rings"
    );
    println!("{per:.1} bytes per connection, {b} bytes of port rings");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// A new FULLNAT connection from client port `0`.
        Insert(u16),
        /// Time passes by this many seconds, then an expiry sweep.
        Expire(u8),
        /// Health checks remove every connection of the real server.
        RemoveReal,
        /// A SYN reopening the connection of this client port, if it is closed.
        Close(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..200).prop_map(Op::Insert),
            2 => any::<u8>().prop_map(Op::Expire),
            1 => Just(Op::RemoveReal),
            2 => (0u16..200).prop_map(Op::Close),
        ]
    }

    proptest! {
        /// Whatever happens, the live connections' local endpoints are distinct, inside the
        /// pool, in the shard their port names, and the in-use gauge equals the live count.
        #[test]
        fn local_endpoints_stay_unique_and_accounted(ops in proptest::collection::vec(op(), 1..300)) {
            let t = ConnTable::with_pools(400, 4, &[pool(40000, 40031, &["198.18.1.2", "198.18.1.3"])]);
            let to = Timeouts {
                tcp_syn: 20 * S,
                tcp_close: 5 * S,
                ..Timeouts::default()
            };
            let stats = Arc::new(RealStats::default());
            let mut now = S;
            for op in ops {
                match op {
                    Op::Insert(port) => {
                        match t.insert_fullnat(conn(0xc612_0002, 10_000 + port, &stats), 0, now, &to) {
                            Ok(_) | Err(InsertError::LocalPortsExhausted) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    Op::Expire(secs) => {
                        now += u64::from(secs) * S;
                        t.expire(now, 64);
                    }
                    Op::RemoveReal => {
                        t.remove_real(&stats);
                    }
                    Op::Close(port) => {
                        let k = FlowKey {
                            proto: Proto::Tcp,
                            src: "198.18.0.2".parse().unwrap(),
                            sport: 10_000 + port,
                            dst: "198.18.0.100".parse().unwrap(),
                            dport: 80,
                        };
                        t.lookup(Direction::Original, &k, Event::Tcp(TcpFlags(0x14)), now, &to);
                        t.lookup(Direction::Original, &k, SYN, now, &to);
                    }
                }
                let rows = t.rows(0);
                let mut seen = HashSet::new();
                let mut live = 0u64;
                for s in 0..t.shards() {
                    let shard = t.v4.shards.lock(s);
                    for e in shard.slots.iter().filter(|e| e.is_live()) {
                        live += 1;
                        prop_assert!(e.lid != NO_LOCAL);
                        prop_assert!((40000..=40031).contains(&e.lport));
                        prop_assert_eq!(local_ports::shard_of_reply(e.lport, t.shards()), s);
                        prop_assert!(seen.insert((e.local(&shard.pools), e.lport)), "endpoint used twice");
                    }
                }
                prop_assert_eq!(t.local_pools().ports_in_use(0), live);
                prop_assert!(rows.len() as u64 <= live);
            }
        }
    }
}
