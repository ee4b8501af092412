//! The established-flow fast path (`process/fast.rs`) decides every frame as the general
//! pipeline does: two processors, each over a table of its own, one with the fast path (the
//! default) and one without, are handed the same frames — new and established NAT flows in both
//! directions, TCP and UDP (checksum 0 included), every TCP flag combination, TTLs around 1, IP
//! options, fragments, bad checksums, cut frames, other MACs, DR flows — and must give the same
//! verdict, length and bytes for each, and end with the same table and counters. Two workers
//! over one table, one caching a flow's hit while the other changes, removes or expires its
//! connection, decide as two workers without the fast path.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use xvs::datapath::snapshot::Forwarding;
use xvs::datapath::wire::checksum;
use xvs::datapath::{PortId, Processor, Verdict};

#[path = "fixtures/nat_lab.rs"]
mod nat_lab;
#[path = "fixtures/routed_lab.rs"]
mod routed_lab;

const T0: u64 = 1_000_000_000;

/// What a test frame carries; `frame()` builds it with valid checksums, then `mangle` may break
/// it.
#[derive(Clone, Copy)]
struct Spec {
    eth: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    udp: bool,
    flags: u8,
    ttl: u8,
    /// IPv4 flags and fragment offset word.
    frag: u16,
    /// 4 bytes of IP options (IHL 6).
    options: bool,
    /// UDP: send checksum 0.
    no_udp_sum: bool,
}

impl Spec {
    fn tcp(eth: ([u8; 6], [u8; 6]), src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Spec {
        Spec {
            eth,
            src,
            dst,
            udp: false,
            flags,
            ttl: 64,
            frag: 0x4000,
            options: false,
            no_udp_sum: false,
        }
    }

    fn frame(&self) -> Vec<u8> {
        let ihl = if self.options { 24 } else { 20 };
        let l4_len = if self.udp { 8 + 12 } else { 20 + 12 };
        let total = ihl + l4_len;
        let mut f = vec![0u8; 14 + total];
        f[0..6].copy_from_slice(&self.eth.0);
        f[6..12].copy_from_slice(&self.eth.1);
        f[12] = 0x08;
        let (s, d) = (self.src.0, self.dst.0);
        let proto = if self.udp { 17 } else { 6 };
        let ip = &mut f[14..14 + ihl];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&7u16.to_be_bytes());
        ip[6..8].copy_from_slice(&self.frag.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&s);
        ip[16..20].copy_from_slice(&d);
        let c = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = 14 + ihl;
        f[l4..l4 + 2].copy_from_slice(&self.src.1.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&self.dst.1.to_be_bytes());
        for (i, b) in f[l4 + l4_len - 12..].iter_mut().enumerate() {
            *b = i as u8 * 7;
        }
        let sum_at = if self.udp {
            f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4 + 6
        } else {
            f[l4 + 12] = 5 << 4;
            f[l4 + 13] = self.flags;
            l4 + 16
        };
        if !(self.udp && self.no_udp_sum) {
            let pseudo = checksum::ipv4_pseudo_header_sum(s, d, proto, l4_len as u16);
            let c = !checksum::fold(checksum::sum(&f[l4..], pseudo));
            f[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f
    }
}

/// Decides `frames` (each with its ingress) on both processors in one batch, the pre-pass run
/// over all of them first on both; checks that each frame gets the same verdict and bytes and
/// returns the fast one's decisions.
fn both(
    (fast, slow): (&mut Processor, &mut Processor),
    now: u64,
    frames: &[(PortId, Vec<u8>)],
) -> Vec<(Verdict, Vec<u8>)> {
    for p in [&mut *fast, &mut *slow] {
        p.begin_batch(now);
        for (_, f) in frames {
            p.prefetch(f);
        }
    }
    let run = |p: &mut Processor, ingress: PortId, frame: &[u8]| {
        nat_lab::decide_copy(p, now, ingress, frame)
    };
    (frames.iter().enumerate())
        .map(|(i, (ingress, f))| {
            let a = run(fast, *ingress, f);
            let b = run(slow, *ingress, f);
            assert_eq!(a, b, "frame {i}: {f:02x?}");
            a
        })
        .collect()
}

/// A processor's traffic counters, one line per slot.
fn traffic(p: &Processor) -> Vec<String> {
    let mut v = Vec::new();
    (p.counters.traffic.load()).for_each(|k, t| v.push(format!("{k:?} {t:?}")));
    v
}

/// Two processors end with the same table (its rows at `now`) and the same traffic counters.
fn assert_same_state(a: &Processor, b: &Processor, now: u64) {
    let (ra, rb) = (
        a.shared().conntrack.rows(now),
        b.shared().conntrack.rows(now),
    );
    assert_eq!(ra, rb, "the tables");
    assert_eq!(traffic(a), traffic(b), "traffic counters");
}

fn pair(make: impl Fn() -> Processor) -> (Processor, Processor) {
    let (fast, mut slow) = (make(), make());
    slow.set_fast_path(false);
    (fast, slow)
}

/// Every variation of an established flow's frame the fast path must take or leave alike.
fn variations(base: Spec) -> Vec<Spec> {
    let mut out = vec![base];
    for flags in 0..=0xffu8 {
        out.push(Spec { flags, ..base });
    }
    for ttl in [0, 1, 2, 255] {
        out.push(Spec { ttl, ..base });
    }
    for frag in [0, 0x2000, 0x0001, 0x6000, 0x1fff] {
        out.push(Spec { frag, ..base });
    }
    out.push(Spec {
        options: true,
        ..base
    });
    out
}

/// The ways a built frame is broken after the fact.
fn mangled(f: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for at in [0, 6, 12, 14, 16, 17, 24, 25, 46, 47, 50] {
        let mut g = f.to_vec();
        if at < g.len() {
            g[at] ^= 0x5a;
            out.push(g);
        }
    }
    for cut in [13, 33, 41, 47, 53, f.len() - 1] {
        out.push(f[..cut.min(f.len())].to_vec());
    }
    out
}

#[test]
fn the_fast_path_decides_every_nat_frame_as_the_pipeline() {
    use nat_lab::{CLIENT, CLIENT_MAC, LAN_MAC, R1, R1_MAC, R2_MAC, VIP, WAN_MAC};
    let (mut fast, mut slow) = pair(|| nat_lab::processor(10_000));
    let mut now = T0;
    let to_lb = (WAN_MAC, CLIENT_MAC);
    let client = |port: u16, udp: bool, flags: u8| Spec {
        udp,
        ..Spec::tcp(
            to_lb,
            (CLIENT, port),
            (VIP, if udp { 53 } else { 80 }),
            flags,
        )
    };
    // Open TCP and UDP flows (SYN, first datagram), with the UDP checksum on and off.
    let mut opened = Vec::new();
    for i in 0..8u16 {
        opened.push(client(20000 + i, false, 0x02));
        opened.push(Spec {
            no_udp_sum: i % 2 == 0,
            ..client(21000 + i, true, 0)
        });
    }
    let frames: Vec<_> = opened.iter().map(|s| (0, s.frame())).collect();
    let out = both((&mut fast, &mut slow), now, &frames);
    assert!(out.iter().all(|(v, _)| *v == Verdict::Tx(1)), "{out:?}");
    // Where each flow went, and its reply.
    let replies: Vec<Spec> = (opened.iter().zip(&out))
        .map(|(s, (_, f))| {
            let real: [u8; 4] = f[30..34].try_into().unwrap();
            let rport = u16::from_be_bytes([f[36], f[37]]);
            let mac = if real == R1 { R1_MAC } else { R2_MAC };
            Spec {
                eth: (LAN_MAC, mac),
                src: (real, rport),
                dst: s.src,
                flags: 0x12,
                ..*s
            }
        })
        .collect();
    // Handshakes completed, then every variation of both directions, twice (the first pass
    // may change states the second finds).
    for round in 0..3 {
        now += 1_000_000;
        let mut frames: Vec<(PortId, Vec<u8>)> = Vec::new();
        for (s, r) in opened.iter().zip(&replies) {
            match round {
                0 => {
                    frames.push((1, r.frame()));
                    frames.push((0, Spec { flags: 0x10, ..*s }.frame()));
                }
                _ => {
                    for v in variations(Spec { flags: 0x10, ..*s }) {
                        frames.push((0, v.frame()));
                    }
                    for v in variations(Spec { flags: 0x10, ..*r }) {
                        frames.push((1, v.frame()));
                    }
                    for g in mangled(&Spec { flags: 0x18, ..*s }.frame()) {
                        frames.push((0, g));
                    }
                    // The wrong port: another MAC.
                    frames.push((1, Spec { flags: 0x10, ..*s }.frame()));
                }
            }
        }
        both((&mut fast, &mut slow), now, &frames);
    }
    let (a, b) = (fast.shared().conntrack.len(), slow.shared().conntrack.len());
    assert_eq!(a, b, "entries");
    let now = now + 1000;
    assert_same_state(&fast, &slow, now);
}

#[test]
fn the_fast_path_decides_every_dr_frame_as_the_pipeline() {
    use routed_lab::{CLIENT, LAN_MAC, ROUTER_MAC, VIP};
    let (mut fast, mut slow) = pair(|| routed_lab::processor(Forwarding::Dr));
    let mut now = T0;
    let from_router = (LAN_MAC, ROUTER_MAC);
    let flows: Vec<Spec> = (0..8u16)
        .map(|i| Spec::tcp(from_router, (CLIENT, 30000 + i), (VIP, 80), 0x02))
        .collect();
    let frames: Vec<_> = flows.iter().map(|s| (0, s.frame())).collect();
    let out = both((&mut fast, &mut slow), now, &frames);
    assert!(out.iter().all(|(v, _)| *v == Verdict::Tx(0)), "{out:?}");
    for _ in 0..2 {
        now += 1_000_000;
        let mut frames = Vec::new();
        for s in &flows {
            for v in variations(Spec { flags: 0x10, ..*s }) {
                frames.push((0, v.frame()));
            }
            for g in mangled(&Spec { flags: 0x10, ..*s }.frame()) {
                frames.push((0, g));
            }
        }
        both((&mut fast, &mut slow), now, &frames);
    }
    let now = now + 1000;
    assert_eq!(
        fast.shared().conntrack.rows(now),
        slow.shared().conntrack.rows(now)
    );
}

/// Two workers over one table, as `xvs` runs them: `fast` with the fast path (and its flow
/// cache), `slow` without; each pair is (worker 0, worker 1).
struct Workers {
    fast: (Processor, Processor),
    slow: (Processor, Processor),
}

impl Workers {
    fn new() -> Workers {
        let make = |fast_path: bool| {
            let mut a = nat_lab::processor(10_000);
            let mut b = Processor::new(a.shared().clone());
            a.set_fast_path(fast_path);
            b.set_fast_path(fast_path);
            (a, b)
        };
        Workers {
            fast: make(true),
            slow: make(false),
        }
    }

    /// Worker `w` of both pairs decides `frame` (received on `ingress`) in a batch of its own
    /// at `now`; both must decide alike. Returns the decision.
    fn step(&mut self, w: usize, now: u64, ingress: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let Workers { fast, slow } = self;
        let (f, s) = if w == 0 {
            (&mut fast.0, &mut slow.0)
        } else {
            (&mut fast.1, &mut slow.1)
        };
        let out = both((f, s), now, &[(ingress, frame.to_vec())]);
        out.into_iter().next().unwrap()
    }

    /// Both tables and both pairs' traffic counters are the same.
    fn check(&self, now: u64) {
        assert_same_state(&self.fast.0, &self.slow.0, now);
        assert_eq!(
            traffic(&self.fast.1),
            traffic(&self.slow.1),
            "traffic counters"
        );
    }
}

#[test]
fn a_flow_cached_by_one_worker_follows_what_the_other_worker_changes() {
    use nat_lab::{CLIENT, CLIENT_MAC, LAN_MAC, R1, R1_MAC, R2_MAC, VIP, WAN_MAC};
    let mut w = Workers::new();
    let to_lb = (WAN_MAC, CLIENT_MAC);
    let mut now = T0;
    for (round, port) in (0..4).zip(22000u16..) {
        let client = |flags| Spec::tcp(to_lb, (CLIENT, port), (VIP, 80), flags);
        // Worker 0 opens the flow; worker 1 carries the real server's SYN-ACK.
        let (v, out) = w.step(0, now, 0, &client(0x02).frame());
        assert_eq!(v, Verdict::Tx(1));
        let real: [u8; 4] = out[30..34].try_into().unwrap();
        let mac = if real == R1 { R1_MAC } else { R2_MAC };
        let reply = |flags| Spec::tcp((LAN_MAC, mac), (real, 80), (CLIENT, port), flags);
        w.step(1, now, 1, &reply(0x12).frame());
        // Worker 0's ACKs: the first completes the handshake, the next ones are cached.
        for _ in 0..3 {
            assert_eq!(w.step(0, now, 0, &client(0x10).frame()).0, Verdict::Tx(1));
        }
        // Worker 1 changes the connection in the same tick; worker 0's next packet must see it.
        match round {
            0 => {
                w.step(1, now, 0, &client(0x11).frame()); // the client's FIN
            }
            1 => {
                // The server's RST, then the client's SYN reopening the connection (the old entry
                // removed, a new one scheduled in SYN_RECV, which worker 0's ACK completes).
                w.step(1, now, 1, &reply(0x14).frame());
                w.step(1, now, 0, &client(0x02).frame());
            }
            2 => {
                // Idle past the established timeout; worker 1's batches sweep the table.
                now += 16 * 60 * 1_000_000_000;
                for _ in 0..256 {
                    now += 1000;
                    w.step(
                        1,
                        now,
                        0,
                        &Spec::tcp(to_lb, (CLIENT, 1), (VIP, 81), 0x10).frame(),
                    );
                }
            }
            _ => {
                // Another flow of the same shard opened and closed by worker 1 (the version
                // moves; this flow's own hit still stands).
                for flags in [0x02, 0x04] {
                    w.step(
                        1,
                        now,
                        0,
                        &Spec::tcp(to_lb, (CLIENT, port + 100), (VIP, 80), flags).frame(),
                    );
                }
            }
        }
        for flags in [0x10, 0x18, 0x10] {
            w.step(0, now, 0, &client(flags).frame());
        }
        w.check(now + 1000);
        now += 2_000_000;
    }
}

#[test]
fn a_cached_flow_follows_a_changed_next_hop() {
    use nat_lab::{CLIENT, CLIENT_MAC, LAN_MAC, R1, R1_MAC, R2_MAC, VIP, WAN_MAC};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    let (mut fast, mut slow) = pair(|| nat_lab::processor(1000));
    let now = T0;
    let client = |flags| Spec::tcp((WAN_MAC, CLIENT_MAC), (CLIENT, 23000), (VIP, 80), flags);
    let out = both((&mut fast, &mut slow), now, &[(0, client(0x02).frame())]);
    let real: [u8; 4] = out[0].1[30..34].try_into().unwrap();
    let mac = if real == R1 { R1_MAC } else { R2_MAC };
    let reply = Spec::tcp((LAN_MAC, mac), (real, 80), (CLIENT, 23000), 0x12);
    let acks: Vec<_> = (0..3).map(|_| (0, client(0x10).frame())).collect();
    both((&mut fast, &mut slow), now, &[(1, reply.frame())]);
    let out = both((&mut fast, &mut slow), now, &acks);
    assert!(
        out.iter().all(|(_, f)| f[..6] == mac),
        "to the real server's MAC"
    );
    // The real server's MAC changes, then is forgotten: the cached flow follows each table.
    let moved = [0x02, 0, 0, 0, 0x01, 0x99];
    for (new, expect) in [(Some(moved), Some(moved)), (None, None)] {
        for p in [&fast, &slow] {
            let mut t = nat_lab::nexthops();
            t.set_neighbour(1, IpAddr::V4(Ipv4Addr::from(real)), new);
            p.shared().nexthops.store(Arc::new(t));
        }
        let out = both((&mut fast, &mut slow), now, &acks);
        for (v, f) in &out {
            match expect {
                Some(m) => assert_eq!((*v, &f[..6]), (Verdict::Tx(1), &m[..])),
                None => assert!(matches!(v, Verdict::Drop(_)), "{v:?}"),
            }
        }
    }
}

/// A VRRP-gated NAT lab (the VIP's held flag `held`): the fast and slow processors with one
/// connection from client port `cport` through its handshake, and frames of it from the client
/// and from its real server (each with its ingress) for TCP flags.
struct GatedFlow {
    fast: Processor,
    slow: Processor,
    client: Spec,
    reply: Spec,
}

impl GatedFlow {
    fn open(held: &std::sync::Arc<std::sync::atomic::AtomicBool>, cport: u16) -> GatedFlow {
        use nat_lab::{CLIENT, CLIENT_MAC, LAN_MAC, R1, R1_MAC, R2_MAC, VIP, WAN_MAC};
        use std::sync::Arc;
        use xvs::datapath::Shared;
        let (mut fast, mut slow) = pair(|| {
            let snap = nat_lab::snapshot(1, (3, 1), false).with_vrrp_gates(gates(held));
            Processor::new(Arc::new(Shared::new(snap, nat_lab::nexthops(), 1000)))
        });
        let client = Spec::tcp((WAN_MAC, CLIENT_MAC), (CLIENT, cport), (VIP, 80), 0x02);
        let out = both((&mut fast, &mut slow), T0, &[(0, client.frame())]);
        let real: [u8; 4] = out[0].1[30..34].try_into().unwrap();
        let mac = if real == R1 { R1_MAC } else { R2_MAC };
        let reply = Spec::tcp((LAN_MAC, mac), (real, 80), (CLIENT, cport), 0x12);
        both((&mut fast, &mut slow), T0, &[(1, reply.frame())]);
        GatedFlow {
            fast,
            slow,
            client,
            reply,
        }
    }

    /// `frames` go out while the VIP is held, are dropped as `vrrp_backup` once it is lost, go
    /// out again once it is back; both processors alike, ending in the same state.
    fn follow_the_gate(
        &mut self,
        held: &std::sync::atomic::AtomicBool,
        frames: &[(PortId, Vec<u8>)],
    ) {
        use std::sync::atomic::Ordering;
        use xvs::datapath::DropReason;
        for (state, expect) in [
            (true, None),
            (false, Some(DropReason::VrrpBackup)),
            (true, None),
        ] {
            held.store(state, Ordering::Relaxed);
            for (v, _) in both((&mut self.fast, &mut self.slow), T0, frames) {
                match expect {
                    Some(r) => assert_eq!(v, Verdict::Drop(r)),
                    None => assert!(matches!(v, Verdict::Tx(_)), "{v:?}"),
                }
            }
        }
        assert_same_state(&self.fast, &self.slow, T0);
    }
}

/// The VRRP gates of the NAT lab's VIP, held while `held` is.
fn gates(
    held: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> [(
    std::net::IpAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
); 1] {
    [(std::net::IpAddr::from(nat_lab::VIP), held.clone())]
}

#[test]
fn a_cached_flow_of_a_vrrp_service_stops_the_moment_the_vip_is_lost() {
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut flow = GatedFlow::open(&held, 23100);
    // Both directions cached (each frame twice, routes included) before the VIP goes.
    let (client, reply) = (
        Spec {
            flags: 0x10,
            ..flow.client
        },
        Spec {
            flags: 0x10,
            ..flow.reply
        },
    );
    let frames: Vec<_> = (0..2)
        .flat_map(|_| [(0, client.frame()), (1, reply.frame())])
        .collect();
    flow.follow_the_gate(&held, &frames);
}

#[test]
fn a_cached_reply_whose_service_a_reload_removed_is_gated_by_its_vip() {
    use std::sync::Arc;
    use xvs::datapath::Snapshot;
    let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut flow = GatedFlow::open(&held, 23200);
    // A reload removes `web` (the connection stays): its replies are gated by the VIP alone,
    // and counted on no service.
    for p in [&flow.fast, &flow.slow] {
        let lab = nat_lab::snapshot(2, (3, 1), false);
        let services = lab.services.into_iter().filter(|s| s.name != "web");
        let snap = Snapshot::new(2, lab.ports, services.collect(), lab.timeouts, false)
            .with_vrrp_gates(gates(&held));
        p.shared().snapshot.store(Arc::new(snap));
    }
    let reply = Spec {
        flags: 0x10,
        ..flow.reply
    };
    let replies: Vec<_> = (0..3).map(|_| (1, reply.frame())).collect();
    flow.follow_the_gate(&held, &replies);
}
