//! A realistic daemon state for the exporter's tests, built without the network: four
//! services (NAT with a sorry server and a real server held down, DR/UDP without quorum,
//! FULLNAT with a local address pool and TOA, IPv6 NAT with a name that needs escaping),
//! three workers with traffic, drops of several reasons, TOA and neighbour counters and batch
//! histograms, an estimator interval, health checks of two types, two VRRP instances with
//! rejected adverts, connection sync with a unicast peer and a multicast group, and a reload.
//!
//! `tests/golden/metrics/scrape.txt` is the page the hand-written renderer made of this state
//! (the version masked as `VERSION`), kept as it was: the exporter's tests compare what they
//! render now with it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ReloadStatus, Sources};
use crate::conntrack::{LocalPool, Timeouts};
use crate::control::health::HealthMetrics;
use crate::control::stats::Stats;
use crate::datapath::counters::{Dir, TrafficBlock, TOA_SKIPS};
use crate::datapath::nexthop::NextHopTable;
use crate::datapath::snapshot::Forwarding;
use crate::datapath::{DropReason, Service, ServiceKey, Shared, Snapshot, WorkerCounters};
use crate::flow::Proto;
use crate::sched::{RealServer, SchedulerKind};
use crate::sync::endpoint::{EndpointStats, PeerStats};
use crate::sync::status::{Published, SyncInfo, SyncStatus};
use crate::sync::tables::InstallRefusal;
use crate::sync::SyncError;
use crate::vrrp::status::{InstanceStatus, VrrpStatus};
use crate::vrrp::{State, VrrpError};

/// Where the hand-written renderer's page of [`sources`] is kept.
pub const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/metrics/scrape.txt"
);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn key(vip: &str, port: u16, proto: Proto) -> ServiceKey {
    ServiceKey {
        vip: vip.parse().unwrap(),
        port,
        proto,
    }
}

/// A real server with `total` connections scheduled, `active`/`inactive` tracked, up or not.
fn real(addr: &str, weight: u32, counts: [u64; 3], up: bool) -> RealServer {
    let r = RealServer::new(sa(addr), weight);
    r.stats.connections_total.store(counts[0], Relaxed);
    r.stats.active.store(counts[1], Relaxed);
    r.stats.inactive.store(counts[2], Relaxed);
    r.stats.set_up(up);
    r
}

fn services() -> Vec<Service> {
    let mut web = Service::new(
        "web",
        key("198.18.0.100", 80, Proto::Tcp),
        Forwarding::Nat,
        SchedulerKind::Wrr,
        vec![
            real("198.18.1.11:80", 1, [120, 7, 2], true),
            real("198.18.1.12:80", 3, [361, 20, 5], true),
            real("198.18.1.13:80", 2, [17, 0, 0], false),
        ],
    );
    web.sorry = Some(real("198.18.1.99:8080", 1, [4, 0, 1], true));
    let dns = Service::new(
        "dns",
        key("198.18.0.100", 53, Proto::Udp),
        Forwarding::Dr,
        SchedulerKind::Rr,
        vec![
            real("198.18.1.11:53", 1, [5000, 0, 12], false),
            real("198.18.1.12:53", 1, [4990, 0, 9], false),
        ],
    );
    dns.state.set_quorum(false);
    let mut api = Service::new(
        "api",
        key("198.18.0.101", 443, Proto::Tcp),
        Forwarding::FullNat,
        SchedulerKind::Lc,
        vec![
            real("198.18.1.21:8443", 10, [900, 31, 4], true),
            real("198.18.1.22:8443", 10, [899, 30, 6], true),
        ],
    );
    api.local_pool = Some(0);
    api.toa = true;
    let mut shop = Service::new(
        "shop \"eu\" \\ v6",
        key("2001:2::100", 80, Proto::Tcp),
        Forwarding::Nat,
        SchedulerKind::Sh,
        vec![real("[2001:2:0:1::11]:80", 5, [42, 3, 1], true)],
    );
    shop.sorry = Some(real("[2001:2:0:1::99]:8080", 1, [0, 0, 0], true));
    vec![web, dns, api, shop]
}

fn shared() -> Arc<Shared> {
    let pool = LocalPool {
        name: "lp1".into(),
        addresses: vec!["198.18.2.1".parse().unwrap(), "198.18.2.2".parse().unwrap()],
        first_port: 1024,
        last_port: 65535,
    };
    let snap = Snapshot::new(7, vec![], services(), Timeouts::default(), false);
    let shared =
        Shared::try_with_tables(snap, NextHopTable::new(vec![], []), 4096, 1024, &[pool]).unwrap();
    shared.conntrack.local_pools().in_use[0].store(61, Relaxed);
    Arc::new(shared)
}

/// Worker `q`'s counters, with traffic counted into a block of `snap`.
fn worker(q: u32, snap: &Arc<Snapshot>) -> Arc<WorkerCounters> {
    let c = Arc::new(WorkerCounters::default());
    let n = u64::from(q) + 1;
    c.traffic
        .store(Arc::new(TrafficBlock::new(snap.clone(), None)));
    let block = c.traffic.load();
    for (si, s) in snap.services.iter().enumerate() {
        for (ri, r) in s.reals.iter().chain(&s.sorry).enumerate() {
            let k = n * (ri as u64 + 1) * (si as u64 + 2);
            for _ in 0..k {
                block.count(si, r.addr, Dir::In, 60 + k);
            }
            if s.forwarding.replies_return() {
                for _ in 0..k / 2 {
                    block.count(si, r.addr, Dir::Out, 1400);
                }
            }
        }
    }
    c.rx_packets.store(100_000 * n, Relaxed);
    c.tx_packets.store(99_000 * n, Relaxed);
    c.conntrack_evictions.store(n - 1, Relaxed);
    c.toa_inserted.store(500 * n, Relaxed);
    c.neighbour_held.store(3 * n, Relaxed);
    c.busy_ns.store(12_000_000_345 * n, Relaxed);
    for (i, r) in DropReason::ALL
        .iter()
        .enumerate()
        .skip(q as usize)
        .step_by(3)
    {
        for _ in 0..(i % 5 + 1) {
            c.count_drop(*r);
        }
    }
    for _ in 0..n {
        c.count_toa_skip(TOA_SKIPS[q as usize % TOA_SKIPS.len()]);
    }
    c
}

/// Two estimator samples 2 s apart, the workers busy and batching in between.
fn estimate(stats: &Stats, workers: &[(u32, Arc<WorkerCounters>)]) {
    let t0 = Instant::now();
    stats.sample(t0);
    let loads: [(u64, &[usize]); 3] = [
        (500_000_000, &[1, 3, 64, 2, 2]),
        (1_800_000_000, &[64, 64, 100, 33]),
        (0, &[]),
    ];
    for ((_, c), (busy, frames)) in workers.iter().zip(loads) {
        c.busy_ns.fetch_add(busy, Relaxed);
        for f in frames {
            c.batch_frames.record(*f);
        }
    }
    stats.sample(t0 + Duration::from_secs(2));
}

fn health(snap: &Snapshot) -> Arc<HealthMetrics> {
    let h = Arc::new(HealthMetrics::default());
    let ms = Duration::from_millis;
    for s in &snap.services {
        for (i, r) in s.reals.iter().enumerate() {
            h.ensure(s.key, &s.name, r.addr);
            let kind = if s.key.proto == Proto::Udp {
                "udp"
            } else {
                "http"
            };
            for k in 0..(i as u64 + 2) {
                let up = r.stats.is_up() || k == 0;
                h.record(s.key, &s.name, r.addr, kind, up, ms(k * 7 + 1));
            }
        }
    }
    let tcp = snap.services[2].reals[0].addr;
    h.record(snap.services[2].key, "api", tcp, "tcp", true, ms(3000));
    h
}

fn vrrp() -> Arc<VrrpStatus> {
    let v = Arc::new(VrrpStatus::default());
    let instance = |name: &str, vrid, state, n| InstanceStatus {
        name: name.into(),
        vrid,
        state,
        priority: 100,
        master: None,
        transitions: n,
        adverts_sent: n * 1000,
        adverts_received: n * 10,
    };
    v.set_instances(vec![
        instance("VI_1", 51, State::Master, 3),
        instance("VI_6", 52, State::Backup, 2),
        instance("VI_dr", 53, State::Fault, 1),
    ]);
    for e in VrrpError::ALL.iter().step_by(4) {
        v.count_error(*e);
    }
    v.count_error(VrrpError::ALL[0]);
    v
}

/// A peer's counters; `heard` is when it was last heard on the sync clock, if ever.
fn peer(address: &str, group: bool, n: u64, heard: Option<u64>) -> PeerStats {
    PeerStats {
        address: address.parse().unwrap(),
        group,
        sender: Some(7),
        messages_sent: n,
        records_sent: n * 30,
        messages_received: n + 1,
        records_received: n * 29,
        last_received: heard,
        in_sync: heard.is_some(),
        dump_requests_sent: 1,
        dumps_sent: u64::from(!group),
        send_errors: n / 10,
    }
}

/// Sync publishing three peers: one heard 2 s before the scrape (`xvs_sync_peer_lag_seconds`
/// is the only time-dependent value of the page: about 2), the multicast group, and one never
/// heard.
fn sync() -> Arc<SyncStatus> {
    let info = SyncInfo {
        interface: "sync0".into(),
        port: 8848,
    };
    let epoch = Instant::now().checked_sub(Duration::from_secs(3)).unwrap();
    let st = Arc::new(SyncStatus::new(info, epoch));
    let mut errors = [0; SyncError::COUNT];
    errors[SyncError::ALL[1].index()] = 2;
    errors[SyncError::ALL[3].index()] = 9;
    let mut refused = [0; InstallRefusal::COUNT];
    refused[InstallRefusal::ALL[0].index()] = 4;
    st.publish(Published {
        stats: EndpointStats {
            sender: 1,
            epoch: 2,
            multicast: None,
            peers: vec![
                peer("198.18.0.2", false, 120, Some(1_000_000_000)),
                peer("224.0.0.81", true, 40, None),
                peer("2001:2::2", false, 0, None),
            ],
            errors,
            refused,
            installed: 3480,
            dropped: 5,
            unencodable: 1,
            queued: 2,
        },
        ring_dropped: 11,
    });
    st
}

/// The realistic state (see the module documentation).
pub fn sources() -> Sources {
    let shared = shared();
    let snap = shared.snapshot.load_full();
    let workers: Vec<(u32, Arc<WorkerCounters>)> = (0..3).map(|q| (q, worker(q, &snap))).collect();
    let stats = Arc::new(Stats::new(shared.clone(), workers.clone()));
    estimate(&stats, &workers);
    let reload = Arc::new(ReloadStatus::default());
    reload.successful.store(true, Relaxed);
    reload.timestamp_seconds.store(1_700_000_000, Relaxed);
    Sources {
        health: health(&snap),
        shared,
        workers,
        xsk: vec![],
        reload,
        vrrp: vrrp(),
        stats,
        sync: Some(sync()),
        announce: None,
    }
}
