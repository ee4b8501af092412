//! The two-endpoint harness: endpoints over a simulated network in memory (delivery in order,
//! optional loss), a clock the test advances, and fake tables (a sink that keeps what it is
//! given, a dump of a fixed list).

use std::net::SocketAddrV4;

use super::*;
use crate::conntrack::ConnState;
use crate::flow::{Endpoint, Proto};
use crate::sync::record::{ConnRecord, SyncOp};
use crate::sync::wire::CONN_V4_PER_MESSAGE;

const PORT: u16 = 8848;

fn key() -> Key {
    Key::new(b"endpoint-test-key-0123456789").unwrap()
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, last), PORT))
}

/// Connection `i` owned by box `owner` (distinct client ports).
fn conn(owner: u8, i: usize) -> SyncRecord {
    #[allow(clippy::cast_possible_truncation)] // test values are small
    let port = 1024 + i as u16;
    let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(198, 18, 1, last));
    SyncRecord::Conn(ConnRecord {
        op: SyncOp::Create,
        proto: Proto::Tcp,
        state: ConnState::Established,
        client: Endpoint::new(ip(owner), port),
        vip: Endpoint::new(ip(100), 80),
        real: Endpoint::new(ip(11), 80),
        local: None,
        timeout_ms: 60_000,
    })
}

/// A fake table: what it owns (its dump) and what peers installed.
#[derive(Default)]
struct Table {
    owned: Vec<SyncRecord>,
    installed: Vec<SyncRecord>,
    refuse: Option<InstallRefusal>,
}

impl RecordSink for Table {
    fn install(&mut self, r: &SyncRecord, _: Nanos) -> Result<(), InstallRefusal> {
        if let Some(why) = self.refuse {
            return Err(why);
        }
        self.installed.push(*r);
        Ok(())
    }
}

impl DumpSource for Table {
    fn dump(&mut self, _: Nanos) -> Box<dyn Iterator<Item = SyncRecord> + Send> {
        Box::new(self.owned.clone().into_iter())
    }
}

struct Node {
    addr: SocketAddr,
    ep: SyncEndpoint,
    table: Table,
    up: bool,
}

/// A datagram the network carried: from, to, bytes, time.
type Sent = (SocketAddr, SocketAddr, Vec<u8>);

struct Net {
    nodes: Vec<Node>,
    now: Nanos,
    /// Drop every k-th datagram (0: none).
    lose_every: usize,
    carried: usize,
    lost: usize,
    /// Every datagram sent, delivered or not.
    log: Vec<Sent>,
}

fn config(me: u8, peers: &[u8]) -> EndpointConfig {
    let p = Peers::Unicast(peers.iter().map(|&p| addr(p)).collect());
    EndpointConfig::new(sender_id(addr(me).ip()), 1_000 + u64::from(me), p)
}

impl Net {
    fn new() -> Net {
        Net {
            nodes: Vec::new(),
            now: 0,
            lose_every: 0,
            carried: 0,
            lost: 0,
            log: Vec::new(),
        }
    }

    /// Adds box `me` (198.18.0.me) with `cfg` and `key`; returns its index.
    fn add(&mut self, me: u8, cfg: EndpointConfig, key: Key) -> usize {
        self.nodes.push(Node {
            addr: addr(me),
            ep: SyncEndpoint::new(cfg, key, self.now),
            table: Table::default(),
            up: true,
        });
        self.nodes.len() - 1
    }

    /// Box `me` with the test key, unicast to `peers`.
    fn unicast(&mut self, me: u8, peers: &[u8]) -> usize {
        self.add(me, config(me, peers), key())
    }

    /// Timers, then every queued datagram delivered (and what it provokes), in order.
    fn step(&mut self) {
        for n in &mut self.nodes {
            if n.up {
                n.ep.handle_timeout(self.now);
            }
        }
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].ep.poll_transmit().cloned() {
                    self.nodes[i].ep.transmitted(true);
                    moved = true;
                    self.carry(i, t);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settles");
    }

    fn carry(&mut self, from: usize, t: Transmit) {
        let src = self.nodes[from].addr;
        self.log.push((src, t.dst, t.bytes.clone()));
        self.carried += 1;
        if self.lose_every > 0 && self.carried.is_multiple_of(self.lose_every) {
            self.lost += 1;
            return;
        }
        let now = self.now;
        for (j, n) in self.nodes.iter_mut().enumerate() {
            let to_it = t.dst == n.addr || (t.dst.ip().is_multicast() && j != from);
            if to_it && n.up {
                let mut dump = n.table.clone_dump();
                n.ep.handle_datagram(now, src, &t.bytes, &mut n.table, &mut dump);
            }
        }
    }

    /// Advances the clock by `ms` milliseconds, one step per millisecond.
    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += MS;
            self.step();
        }
    }

    fn stats(&self, node: usize) -> EndpointStats {
        self.nodes[node].ep.stats()
    }

    /// Node `node`'s view of peer `last` (198.18.0.last).
    fn peer(&self, node: usize, last: u8) -> PeerStats {
        let ip = addr(last).ip();
        self.stats(node)
            .peers
            .into_iter()
            .find(|p| p.address == ip && !p.group)
            .unwrap()
    }
}

impl Table {
    /// The dump side as a separate value (the sink is borrowed at the same time).
    fn clone_dump(&self) -> Table {
        Table {
            owned: self.owned.clone(),
            ..Table::default()
        }
    }
}

fn errors(s: &EndpointStats, e: SyncError) -> u64 {
    s.errors[e.index()]
}

#[test]
fn sender_ids() {
    assert_eq!(sender_id("198.18.0.1".parse().unwrap()), 0xc612_0001);
    let a = sender_id("2001:2::1".parse().unwrap());
    let b = sender_id("2001:2::2".parse().unwrap());
    assert_ne!(a, b);
    assert_eq!(a, sender_id("2001:2::1".parse().unwrap()));
}

#[test]
fn records_from_a_reach_bs_sink_in_order_in_full_messages() {
    let mut net = Net::new();
    let a = net.unicast(1, &[2]);
    let b = net.unicast(2, &[1]);
    net.run_ms(5);
    let sent: Vec<SyncRecord> = (0..100).map(|i| conn(1, i)).collect();
    for r in &sent {
        assert!(net.nodes[a].ep.push_local(*r, net.now));
    }
    // Two full messages went at once; the rest waits for the flush interval.
    net.step();
    assert_eq!(net.nodes[b].table.installed.len(), 2 * CONN_V4_PER_MESSAGE);
    net.run_ms(19);
    assert_eq!(net.nodes[b].table.installed.len(), 2 * CONN_V4_PER_MESSAGE);
    net.run_ms(1);
    assert_eq!(net.nodes[b].table.installed, sent);
    let ab = net.peer(a, 2);
    let ba = net.peer(b, 1);
    assert_eq!(ab.records_sent, 100);
    assert_eq!(ba.records_received, 100);
    // The dump request and its answer (an empty dump: its end only) came first.
    assert_eq!(ab.messages_sent, 1 + 1 + 3);
    assert_eq!(ba.messages_received, ab.messages_sent);
    assert!(ab.in_sync && ba.in_sync);
    assert_eq!(ba.sender, Some(sender_id(addr(1).ip())));
    assert_eq!(net.stats(b).installed, 100);
    assert_eq!(net.stats(b).errors, [0; SyncError::COUNT]);
}

#[test]
fn both_directions_at_once() {
    let mut net = Net::new();
    let a = net.unicast(1, &[2]);
    let b = net.unicast(2, &[1]);
    for i in 0..50 {
        net.nodes[a].ep.push_local(conn(1, i), net.now);
        net.nodes[b].ep.push_local(conn(2, i), net.now);
    }
    net.run_ms(25);
    let mine = |owner| (0..50).map(|i| conn(owner, i)).collect::<Vec<_>>();
    assert_eq!(net.nodes[b].table.installed, mine(1));
    assert_eq!(net.nodes[a].table.installed, mine(2));
}

#[test]
fn a_joiner_gets_a_full_dump_in_bounded_bursts_then_is_in_sync() {
    let mut net = Net::new();
    let mut cfg = config(1, &[2]);
    cfg.dump_burst = 4;
    cfg.dump_pause = 2 * MS;
    let a = net.add(1, cfg, key());
    let n = CONN_V4_PER_MESSAGE * 30 + 5; // 31 record messages and the dump end
    net.nodes[a].table.owned = (0..n).map(|i| conn(1, i)).collect();
    // A runs alone for a while (its requests to B go nowhere), then B joins.
    net.run_ms(100);
    let b = net.unicast(2, &[1]);
    let before = net.log.len();
    net.step();
    assert!(!net.peer(b, 1).in_sync);
    // Each step (1 ms), at most one burst goes from A to B.
    let mut bursts = 0;
    for _ in 0..200 {
        let start = net.log.len();
        net.run_ms(1);
        let from_a = net.log[start..]
            .iter()
            .filter(|(s, d, _)| *s == addr(1) && *d == addr(2))
            .count();
        assert!(from_a <= 4, "{from_a} messages in one step");
        if from_a > 0 {
            bursts += 1;
        }
        if net.peer(b, 1).in_sync {
            break;
        }
    }
    // 32 messages in bursts of 4, one burst every 2 ms (the first at once).
    assert!(net.log.len() > before);
    assert!(bursts >= 7, "{bursts} bursts");
    assert!(net.peer(b, 1).in_sync);
    assert_eq!(net.nodes[b].table.installed, net.nodes[a].table.owned);
    assert_eq!(net.peer(a, 2).dumps_sent, 1);
    assert_eq!(net.peer(b, 1).dump_requests_sent, 1);
    // In sync: no more requests.
    net.run_ms(3000);
    assert_eq!(net.peer(b, 1).dump_requests_sent, 1);
    assert_eq!(net.nodes[b].table.installed.len(), n);
}

#[test]
fn a_dump_leaves_room_for_live_records() {
    let mut net = Net::new();
    let mut cfg = config(1, &[2]);
    cfg.queue_limit = 16;
    cfg.dump_burst = 64;
    let a = net.add(1, cfg, key());
    net.nodes[a].table.owned = (0..CONN_V4_PER_MESSAGE * 100).map(|i| conn(1, i)).collect();
    let b = net.unicast(2, &[1]);
    // B's request reaches A, which starts the dump; the queue is not drained yet.
    net.nodes[b].ep.handle_timeout(net.now);
    let req = net.nodes[b].ep.poll_transmit().cloned().unwrap();
    net.nodes[b].ep.transmitted(true);
    let node = &mut net.nodes[a];
    node.ep.handle_datagram(
        net.now,
        addr(2),
        &req.bytes,
        &mut Table::default(),
        &mut node.table.clone_dump(),
    );
    // The dump took half the queue; live records still fit in the other half.
    assert_eq!(node.ep.stats().queued, 8);
    for i in 0..CONN_V4_PER_MESSAGE * 8 {
        assert!(node.ep.push_local(conn(9, i), net.now));
    }
    assert_eq!(node.ep.stats().queued, 16);
    assert_eq!(node.ep.stats().dropped, 0);
}

#[test]
fn lost_datagrams_are_counted_and_wedge_nothing() {
    let mut net = Net::new();
    // Every 5th datagram (not 2 or 3: a round of requests and dumps is 24 datagrams, and a
    // loss period dividing it would hit the same dump end every round).
    net.lose_every = 5;
    let a = net.unicast(1, &[2]);
    let b = net.unicast(2, &[1]);
    net.nodes[a].table.owned = (0..CONN_V4_PER_MESSAGE * 10).map(|i| conn(1, i)).collect();
    net.nodes[b].table.owned = (0..CONN_V4_PER_MESSAGE * 10).map(|i| conn(2, i)).collect();
    for round in 0..20 {
        for i in 0..CONN_V4_PER_MESSAGE {
            net.nodes[a]
                .ep
                .push_local(conn(3, round * 100 + i), net.now);
        }
        net.run_ms(50);
    }
    // Dump requests are repeated until a dump end gets through (lost ones are retried).
    net.run_ms(12_000);
    assert!(net.lost > 0);
    assert!(net.peer(a, 2).in_sync && net.peer(b, 1).in_sync);
    // What was lost is what one side sent and the other did not receive.
    let lost_ab = net.peer(a, 2).messages_sent - net.peer(b, 1).messages_received;
    let lost_ba = net.peer(b, 1).messages_sent - net.peer(a, 2).messages_received;
    assert_eq!(usize::try_from(lost_ab + lost_ba).unwrap(), net.lost);
    // Nothing wedged: without loss, new records get through at once.
    net.lose_every = 0;
    let got = net.nodes[b].table.installed.len();
    net.nodes[a].ep.push_local(conn(4, 1), net.now);
    net.run_ms(20);
    assert_eq!(net.nodes[b].table.installed.len(), got + 1);
    assert_eq!(net.nodes[b].table.installed.last(), Some(&conn(4, 1)));
    assert_eq!(net.stats(b).errors, [0; SyncError::COUNT]);
}

#[test]
fn a_replayed_datagram_is_counted_and_not_installed() {
    let mut net = Net::new();
    let a = net.unicast(1, &[2]);
    let b = net.unicast(2, &[1]);
    net.run_ms(1);
    net.nodes[a].ep.push_local(conn(1, 0), net.now);
    net.run_ms(20);
    assert_eq!(net.nodes[b].table.installed.len(), 1);
    let (_, _, bytes) = net
        .log
        .iter()
        .rev()
        .find(|(s, _, _)| *s == addr(1))
        .cloned()
        .unwrap();
    let node = &mut net.nodes[b];
    node.ep.handle_datagram(
        net.now,
        addr(1),
        &bytes,
        &mut node.table,
        &mut Table::default(),
    );
    assert_eq!(node.table.installed.len(), 1);
    assert_eq!(errors(&node.ep.stats(), SyncError::Replayed), 1);
}

#[test]
fn a_peer_with_the_wrong_key_is_counted_as_bad_tag() {
    let mut net = Net::new();
    let b = net.unicast(2, &[1]);
    let a = net.add(
        1,
        config(1, &[2]),
        Key::new(b"another-key-0123456789").unwrap(),
    );
    net.nodes[a].ep.push_local(conn(1, 0), net.now);
    net.run_ms(25);
    assert!(net.nodes[b].table.installed.is_empty());
    // The dump request and the record message: both refused.
    assert_eq!(errors(&net.stats(b), SyncError::BadTag), 2);
    assert!(!net.peer(b, 1).in_sync);
    assert_eq!(net.peer(b, 1).messages_received, 0);
}

#[test]
fn unknown_sources_and_our_own_sender_id_are_refused() {
    let mut net = Net::new();
    let b = net.unicast(2, &[1]);
    // Box 3 is not B's peer.
    let _c = net.unicast(3, &[2]);
    net.run_ms(5);
    assert_eq!(errors(&net.stats(b), SyncError::UnknownPeer), 1);
    // Box 1 uses B's sender id.
    let mut cfg = config(1, &[2]);
    cfg.sender = sender_id(addr(2).ip());
    let _a = net.add(1, cfg, key());
    net.run_ms(5);
    assert_eq!(errors(&net.stats(b), SyncError::OwnSender), 1);
    let events: Vec<Event> = std::iter::from_fn(|| net.nodes[b].ep.poll_event()).collect();
    assert!(
        events.contains(&Event::OwnSender(addr(1).ip())),
        "{events:?}"
    );
}

#[test]
fn a_full_queue_drops_and_counts_local_records() {
    let mut cfg = config(1, &[2]);
    cfg.queue_limit = 4;
    let mut ep = SyncEndpoint::new(cfg, key(), 0);
    let total = CONN_V4_PER_MESSAGE * 10;
    let kept = (0..total).filter(|&i| ep.push_local(conn(1, i), 0)).count();
    // Four messages queued and one full batch waiting; the rest dropped.
    assert_eq!(kept, CONN_V4_PER_MESSAGE * 5);
    let s = ep.stats();
    assert_eq!((s.queued, s.dropped), (4, (total - kept) as u64));
    // Sending frees room: the waiting batch goes at the next timeout.
    while ep.poll_transmit().is_some() {
        ep.transmitted(true);
    }
    ep.handle_timeout(20 * MS);
    assert_eq!(
        ep.stats().queued,
        2,
        "the waiting batch and the dump request"
    );
    assert!(ep.push_local(conn(1, 0), 20 * MS));
}

#[test]
fn install_refusals_and_unencodable_records_are_counted() {
    let mut net = Net::new();
    let a = net.unicast(1, &[2]);
    let b = net.unicast(2, &[1]);
    net.nodes[b].table.refuse = Some(InstallRefusal::UnknownService);
    let SyncRecord::Conn(c) = conn(1, 0) else {
        unreachable!()
    };
    let mixed = SyncRecord::Conn(ConnRecord {
        real: Endpoint::new("2001:2::9".parse().unwrap(), 80),
        ..c
    });
    assert!(!net.nodes[a].ep.push_local(mixed, 0));
    net.nodes[a].ep.push_local(conn(1, 1), 0);
    net.run_ms(25);
    assert_eq!(net.stats(a).unencodable, 1);
    let s = net.stats(b);
    assert_eq!(s.refused[InstallRefusal::UnknownService.index()], 1);
    assert_eq!(s.installed, 0);
}

#[test]
fn dump_requests_are_repeated_a_bounded_number_of_times() {
    let mut net = Net::new();
    let b = net.unicast(2, &[1]);
    // Peer 1 never answers.
    net.run_ms(20_000);
    let p = net.peer(b, 1);
    assert_eq!(p.dump_requests_sent, 10);
    assert!(!p.in_sync);
    assert_eq!(net.nodes[b].ep.poll_timeout(), None, "nothing left to do");
    let events: Vec<Event> = std::iter::from_fn(|| net.nodes[b].ep.poll_event()).collect();
    assert_eq!(events, vec![Event::GaveUp(addr(1).ip())]);
}

#[test]
fn multicast_peers_are_learnt_and_each_answers_the_groups_dump_request() {
    let group = SocketAddr::new(IpAddr::V4(MULTICAST_V4), PORT);
    let mut net = Net::new();
    let mcast = |me: u8| EndpointConfig::new(sender_id(addr(me).ip()), 7, Peers::Multicast(group));
    let a = net.add(1, mcast(1), key());
    let c = net.add(3, mcast(3), key());
    net.nodes[a].table.owned = (0..100).map(|i| conn(1, i)).collect();
    net.nodes[c].table.owned = (0..10).map(|i| conn(3, i)).collect();
    net.run_ms(10);
    let b = net.add(2, mcast(2), key());
    net.run_ms(10);
    // B asked the group once; A and C each sent their dump to B alone.
    let mut got = net.nodes[b].table.installed.clone();
    got.sort_by_key(|r| match r {
        SyncRecord::Conn(c) => (c.client.ip, c.client.port),
        SyncRecord::Template(_) => unreachable!(),
    });
    let mut want = net.nodes[a].table.owned.clone();
    want.extend(net.nodes[c].table.owned.clone());
    assert_eq!(got, want);
    assert!(net.peer(b, 1).in_sync && net.peer(b, 3).in_sync);
    let s = net.stats(b);
    assert_eq!(s.multicast, Some(group));
    assert!(s.peers[0].group && s.peers[0].in_sync);
    assert_eq!(s.peers[0].dump_requests_sent, 1);
    // Live records go once, to the group, and reach both.
    net.nodes[b].ep.push_local(conn(2, 0), net.now);
    net.run_ms(20);
    assert_eq!(net.nodes[a].table.installed.last(), Some(&conn(2, 0)));
    assert_eq!(net.nodes[c].table.installed.last(), Some(&conn(2, 0)));
    assert_eq!(net.stats(b).peers[0].records_sent, 1);
}

#[test]
fn a_repeated_request_is_ignored_while_its_dump_runs_and_a_restart_starts_over() {
    let mut cfg = config(1, &[2]);
    cfg.dump_burst = 1;
    cfg.request_tries = 0;
    let mut a = SyncEndpoint::new(cfg, key(), 0);
    let mut table = Table {
        owned: (0..CONN_V4_PER_MESSAGE * 3).map(|i| conn(1, i)).collect(),
        ..Table::default()
    };
    let request = |epoch: u64, seq: u64| {
        let mut s = Sealer::new(key(), sender_id(addr(2).ip()), epoch);
        for _ in 1..seq {
            s.control(MessageType::DumpRequest, &mut [0; 64]).unwrap();
        }
        let mut buf = [0u8; 64];
        let len = s.control(MessageType::DumpRequest, &mut buf).unwrap();
        buf[..len].to_vec()
    };
    let mut sink = Table::default();
    a.handle_datagram(0, addr(2), &request(5, 1), &mut sink, &mut table);
    assert_eq!(a.stats().queued, 1, "one message: the burst");
    a.handle_datagram(0, addr(2), &request(5, 2), &mut sink, &mut table);
    assert_eq!(a.stats().queued, 1, "the repeat is ignored");
    a.handle_timeout(2 * MS);
    assert_eq!(a.stats().queued, 2);
    // The requester restarted (a newer epoch): its dump starts over.
    a.handle_datagram(2 * MS, addr(2), &request(6, 1), &mut sink, &mut table);
    assert_eq!(a.stats().queued, 3);
    let mut seen = Vec::new();
    let mut rx = Opener::new(key(), 4);
    let mut now = 2 * MS;
    for _ in 0..20 {
        now += 2 * MS;
        a.handle_timeout(now);
        while let Some(t) = a.poll_transmit().cloned() {
            a.transmitted(true);
            let m = rx.open(&t.bytes).unwrap();
            seen.push((m.header.msg_type, m.records.len()));
        }
    }
    let full = (MessageType::Records, CONN_V4_PER_MESSAGE);
    // The old dump's two messages, then the whole new dump and its end.
    assert_eq!(
        seen,
        vec![full, full, full, full, full, (MessageType::DumpEnd, 0)]
    );
    assert_eq!(a.stats().peers[0].dumps_sent, 1);
}
