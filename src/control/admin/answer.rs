//! The daemon's answers to admin requests: `list`, `conns`, `stats`, `vrrp` and `sync` built
//! from the shared state, `announce` from what the announcer publishes, `reload`, `real`,
//! `drain` and `undrain` relayed to the main loop.
//!
//! `list`, `conns`, `stats` and `vrrp` are answered on the connection's own thread from [`AdminState`]
//! (the current snapshot, the per-real counters, the connection table, the VRRP status): reads
//! only, nothing here changes the running configuration. A `reload` or `real` change must run
//! on the daemon's main thread, which owns the running configuration: it is sent over a channel
//! ([`ReloadRequest`]) that the main loop drains at every wake-up, and the connection's thread
//! waits (bounded by [`RELOAD_WAIT`], and giving up when `stop` is set) for the outcome text.
//! Every failure is an [`AdminError`], whose text is the `error` reply's body.
//!
//! Imports: [`protocol`](super::protocol) for the request and reply types, the datapath's shared
//! state and counters, and the VRRP status; no socket code (that is [`server`](super::server)).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::protocol::{
    AnnounceReply, AnnounceVipInfo, ConnInfo, ConnsReply, ListReply, RateInfo, RealChange,
    RealInfo, Reply, Request, RequestError, ServiceInfo, StatsInfo, StatsReply, SyncPeerInfo,
    SyncReply, VrrpInstanceInfo, VrrpReply, WorkerInfo,
};
use crate::control::announce::AnnounceStatus;
use crate::control::stats::{self, Rates, Stats};
use crate::datapath::counters::{Traffic, TrafficKey};
use crate::datapath::snapshot::Forwarding;
use crate::datapath::{ServiceKey, Shared};
use crate::flow::{Nanos, NANOS_PER_SEC};
use crate::sched::RealServer;
use crate::sync::endpoint::PeerStats;
use crate::sync::status::SyncStatus;
use crate::sync::tables::InstallRefusal;
use crate::sync::SyncError;
use crate::vrrp::driver::VrrpStatus;

/// Why a request got an `error` reply. The text is the reply's body, shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("xvs: {0}")]
    Request(#[from] RequestError),
    /// The request line did not arrive whole (see [`server`](super::server)).
    #[error("xvs: cannot read the request: {0}")]
    ReadRequest(#[source] std::io::Error),
    #[error("xvs: cannot encode the reply: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("xvs: reload refused: other reloads are already waiting")]
    Busy,
    #[error("xvs: the daemon is stopping")]
    Stopping,
    #[error("xvs: the daemon is stopping; the reload did not run")]
    StoppedBeforeReload,
    #[error(
        "xvs: the main loop did not answer within {}s; the reload may still run (see the daemon's log)",
        .0.as_secs()
    )]
    NoAnswer(Duration),
    /// The main loop refused the reload or change: its text.
    #[error("{0}")]
    Refused(String),
}

impl AdminError {
    /// The `error` reply that says this.
    pub fn reply(&self) -> Reply {
        Reply::error(self.to_string())
    }
}

pub type ReloadOutcome = Result<String, String>;

/// What the main loop is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MainOp {
    /// Reload the configuration file.
    Reload,
    /// Apply a run-time real-server change (`xvs ctl real`).
    Real(RealChange),
    /// `xvs ctl drain` (`true`) or `undrain` (`false`).
    Drain(bool),
}

/// A reload or real-server change asked for over the admin socket; the daemon's main loop runs
/// it and responds.
#[derive(Debug)]
pub struct ReloadRequest {
    pub op: MainOp,
    reply: Sender<ReloadOutcome>,
}

impl ReloadRequest {
    /// Hands the outcome back to the waiting admin connection (ignored if it gave up).
    pub fn respond(self, outcome: ReloadOutcome) {
        let _ = self.reply.send(outcome);
    }
}

/// The channel from the admin thread to the main loop.
pub fn reload_channel() -> (Sender<ReloadRequest>, Receiver<ReloadRequest>) {
    channel::bounded(4)
}

/// What the admin thread reads and where it sends reloads.
pub struct AdminState {
    pub shared: Arc<Shared>,
    /// The workers' clock epoch: connection-table times are nanoseconds since it.
    pub epoch: Instant,
    pub reloads: Sender<ReloadRequest>,
    /// Packet/byte totals and rates (`list`).
    pub stats: Arc<Stats>,
    /// What the VRRP thread publishes (`vrrp`).
    pub vrrp: Arc<VrrpStatus>,
    /// What the sync thread publishes (`sync`), when `sync:` is configured.
    pub sync: Option<Arc<SyncStatus>>,
    /// What the announcer publishes (`announce`), when `announce:` is configured.
    pub announce: Option<Arc<AnnounceStatus>>,
}

/// The `announce` reply: `configured: false` without an announcer; else its table, device,
/// drained flag and every VIP's state.
pub fn announce_reply(status: Option<&AnnounceStatus>) -> AnnounceReply {
    let Some(status) = status else {
        return AnnounceReply {
            configured: false,
            table: None,
            device: None,
            drained: false,
            vips: Vec::new(),
        };
    };
    let p = status.read();
    AnnounceReply {
        configured: true,
        table: Some(status.table),
        device: Some(status.device.clone()),
        drained: p.drained,
        vips: p
            .vips
            .iter()
            .map(|v| AnnounceVipInfo {
                vip: v.vip,
                state: if v.announced {
                    "announced"
                } else {
                    "withdrawn"
                }
                .to_string(),
                reason: v.reason.map(|r| r.label().to_string()),
            })
            .collect(),
    }
}

/// The `sync` reply: `configured: false` without a sync thread; else its settings, each peer
/// with its counters and lag (at `now` of the thread's clock), drops, errors and refusals.
pub fn sync_reply(status: Option<&SyncStatus>) -> SyncReply {
    let mut r = SyncReply {
        configured: status.is_some(),
        interface: None,
        port: None,
        multicast_group: None,
        sender_id: None,
        peers: Vec::new(),
        dropped: BTreeMap::new(),
        errors: BTreeMap::new(),
        installed: 0,
        install_refused: BTreeMap::new(),
        queued: 0,
    };
    let Some(status) = status else { return r };
    r.interface = Some(status.info.interface.clone());
    r.port = Some(status.info.port);
    let (published, now) = status.read();
    let Some(p) = published else { return r };
    let s = p.stats;
    r.multicast_group = s.multicast.map(|g| g.ip());
    r.sender_id = Some(s.sender);
    r.peers = s.peers.iter().map(|p| sync_peer(p, now)).collect();
    r.dropped = [
        ("ring", p.ring_dropped),
        ("queue", s.dropped),
        ("unencodable", s.unencodable),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    r.errors = SyncError::ALL
        .iter()
        .map(|e| (e.label().to_string(), s.errors[e.index()]))
        .collect();
    r.installed = s.installed;
    r.install_refused = InstallRefusal::ALL
        .iter()
        .map(|e| (e.label().to_string(), s.refused[e.index()]))
        .collect();
    r.queued = s.queued as u64;
    r
}

fn sync_peer(p: &PeerStats, now: Nanos) -> SyncPeerInfo {
    SyncPeerInfo {
        address: p.address,
        group: p.group,
        sender_id: p.sender,
        messages_sent: p.messages_sent,
        messages_received: p.messages_received,
        records_sent: p.records_sent,
        records_received: p.records_received,
        // Milliseconds: what a lag is worth showing.
        lag_seconds: p
            .last_received
            .map(|t| (now.saturating_sub(t) / 1_000_000) as f64 / 1000.0),
        in_sync: p.in_sync,
        dump_requests_sent: p.dump_requests_sent,
        dumps_sent: p.dumps_sent,
        send_errors: p.send_errors,
    }
}

/// The `vrrp` reply: every instance with its state, effective priority and master.
pub fn vrrp_reply(status: &VrrpStatus) -> VrrpReply {
    VrrpReply {
        instances: status
            .instances()
            .into_iter()
            .map(|i| VrrpInstanceInfo {
                name: i.name,
                vrid: i.vrid,
                state: i.state.name().to_string(),
                priority: i.priority,
                master: i.master,
            })
            .collect(),
    }
}

/// The traffic and rates `list` reports, by identity.
#[derive(Default)]
pub struct ListCounters {
    pub traffic: hashbrown::HashMap<TrafficKey, Traffic>,
    pub rates: hashbrown::HashMap<TrafficKey, Rates>,
}

impl ListCounters {
    /// What `stats` holds now.
    pub fn read(stats: &Stats) -> ListCounters {
        ListCounters {
            traffic: stats.traffic(),
            rates: (*stats.rates()).clone(),
        }
    }

    fn stats(&self, k: &TrafficKey) -> StatsInfo {
        let t = self.traffic.get(k).copied().unwrap_or_default();
        StatsInfo {
            in_packets: t.in_packets,
            out_packets: t.out_packets,
            in_bytes: t.in_bytes,
            out_bytes: t.out_bytes,
        }
    }

    fn rate(&self, k: &TrafficKey) -> RateInfo {
        let r = self.rates.get(k).copied().unwrap_or_default();
        RateInfo {
            cps: r.cps,
            in_pps: r.in_pps,
            out_pps: r.out_pps,
            in_bps: r.in_bps,
            out_bps: r.out_bps,
        }
    }
}

/// `list`: the current snapshot's services and real servers with their counters.
pub fn list(shared: &Shared, counters: &ListCounters) -> ListReply {
    let snap = shared.snapshot.load();
    ListReply {
        version: env!("CARGO_PKG_VERSION").to_string(),
        conntrack_max_entries: shared.conntrack.capacity() as u64,
        services: snap
            .services
            .iter()
            .map(|s| ServiceInfo {
                connections_total: s
                    .reals
                    .iter()
                    .chain(&s.sorry)
                    .map(|r| r.stats.connections_total.load(Ordering::Relaxed))
                    .sum(),
                stats: counters.stats(&stats::service_key(s.key)),
                rate: counters.rate(&stats::service_key(s.key)),
                name: s.name.clone(),
                protocol: s.key.proto.name().to_string(),
                vip: s.key.vip,
                port: s.key.port,
                scheduler: s.scheduler.name().to_string(),
                forwarding: match s.forwarding {
                    Forwarding::Nat => "nat".to_string(),
                    Forwarding::Dr => "dr".to_string(),
                    Forwarding::Tun => "tun".to_string(),
                    Forwarding::FullNat => "fullnat".to_string(),
                },
                reals: s
                    .reals
                    .iter()
                    .map(|r| real_info(r, s.key, counters))
                    .collect(),
                quorum: s.state.has_quorum(),
                sorry_server: s.sorry.as_ref().map(|r| RealInfo {
                    up: !s.state.has_quorum(),
                    ..real_info(r, s.key, counters)
                }),
            })
            .collect(),
    }
}

fn real_info(r: &RealServer, service: ServiceKey, counters: &ListCounters) -> RealInfo {
    let key = stats::real_key(service, r.addr);
    RealInfo {
        stats: counters.stats(&key),
        rate: counters.rate(&key),
        address: r.addr,
        weight: r.weight,
        up: r.stats.is_up(),
        active_connections: r.active_connections(),
        inactive_connections: r.inactive_connections(),
        connections_total: r.stats.connections_total.load(Ordering::Relaxed),
    }
}

/// `stats`: each worker's load over the estimator's last interval, by queue.
pub fn stats_reply(stats: &Stats) -> StatsReply {
    let loads = stats.loads();
    let mut workers: Vec<WorkerInfo> = loads
        .workers
        .iter()
        .map(|w| WorkerInfo {
            queue: w.queue,
            rx_pps: w.rx_pps,
            tx_pps: w.tx_pps,
            busy_ratio: w.busy_ratio,
            frames_per_batch: w.frames_per_batch,
        })
        .collect();
    workers.sort_by_key(|w| w.queue);
    StatsReply {
        version: env!("CARGO_PKG_VERSION").to_string(),
        interval_seconds: loads.interval.as_secs_f64(),
        workers,
    }
}

/// `conns`: every live connection at `now` (nanoseconds since the workers' epoch), sorted by
/// protocol, client and virtual address. Entries already past their expiry but not yet swept
/// are left out (a packet would find them gone).
pub fn conns(shared: &Shared, now: Nanos) -> ConnsReply {
    let rows: Vec<_> = shared.conntrack.rows(now).into_iter().collect();
    let mut connections: Vec<ConnInfo> = rows
        .into_iter()
        .map(|r| ConnInfo {
            protocol: r.proto.name().to_string(),
            client: r.client,
            vip: r.vip,
            real: r.real,
            local: r.local,
            state: r.state.name().to_string(),
            expire_seconds: (r.expires - now) / NANOS_PER_SEC,
        })
        .collect();
    // Persistence templates, as ipvsadm lists them: state NONE, the client network with port 0,
    // the service port (0 for an all-port service).
    connections.extend(
        shared
            .persistence
            .rows()
            .into_iter()
            .filter(|t| t.expires > now)
            .map(|t| ConnInfo {
                protocol: t.key.proto.name().to_string(),
                client: SocketAddr::new(t.key.client_net, 0),
                vip: SocketAddr::new(t.key.vip, t.key.vport),
                real: t.real,
                local: None,
                state: "NONE".to_string(),
                expire_seconds: (t.expires - now) / NANOS_PER_SEC,
            }),
    );
    connections.sort_by(|a, b| {
        (&a.protocol, a.client, a.vip, &a.state).cmp(&(&b.protocol, b.client, b.vip, &b.state))
    });
    ConnsReply { connections }
}

/// How long a `reload` request waits for the main loop.
pub const RELOAD_WAIT: Duration = Duration::from_secs(15);

fn json<T: serde::Serialize>(v: &T) -> Result<String, AdminError> {
    serde_json::to_string(v).map_err(AdminError::Encode)
}

/// Asks the main loop to reload (or apply a real-server change) and waits for the outcome
/// (bounded; gives up if `stop` is set).
fn reload(state: &AdminState, op: MainOp, stop: &AtomicBool) -> Result<String, AdminError> {
    let (tx, rx) = channel::bounded(1);
    match state.reloads.try_send(ReloadRequest { op, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(AdminError::Busy),
        Err(TrySendError::Disconnected(_)) => return Err(AdminError::Stopping),
    }
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(outcome) => return outcome.map_err(AdminError::Refused),
            Err(RecvTimeoutError::Disconnected) => return Err(AdminError::StoppedBeforeReload),
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                return Err(AdminError::StoppedBeforeReload)
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                return Err(AdminError::NoAnswer(RELOAD_WAIT))
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The body of the `ok` reply to one request line, or why it is an `error`.
pub fn answer(state: &AdminState, line: &str, stop: &AtomicBool) -> Result<String, AdminError> {
    match Request::parse(line)? {
        Request::List => json(&list(&state.shared, &ListCounters::read(&state.stats))),
        Request::Conns => {
            let now = u64::try_from(state.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            json(&conns(&state.shared, now))
        }
        Request::Stats => json(&stats_reply(&state.stats)),
        Request::Vrrp => json(&vrrp_reply(&state.vrrp)),
        Request::Sync => json(&sync_reply(state.sync.as_deref())),
        Request::Announce => json(&announce_reply(state.announce.as_deref())),
        Request::Drain => reload(state, MainOp::Drain(true), stop),
        Request::Undrain => reload(state, MainOp::Drain(false), stop),
        Request::Reload => reload(state, MainOp::Reload, stop),
        Request::Real(change) => reload(state, MainOp::Real(change), stop),
    }
}

/// Answers one request line.
pub fn handle(state: &AdminState, line: &str, stop: &AtomicBool) -> Reply {
    match answer(state, line, stop) {
        Ok(body) => Reply::ok(body),
        Err(e) => e.reply(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::conntrack::{ConnState, NewConn};
    use crate::control::admin::format::tests::sa;
    use crate::control::testing::web_shared;
    use crate::flow::Proto;
    use crate::sched::SchedulerKind;

    /// One TCP service, 198.18.0.100:80, wrr over .11:80 (weight 3) and .12:80 (weight 1).
    pub(crate) fn shared() -> Arc<Shared> {
        web_shared(
            SchedulerKind::Wrr,
            vec![
                RealServer::new(sa("198.18.1.11:80"), 3),
                RealServer::new(sa("198.18.1.12:80"), 1),
            ],
        )
    }

    /// A connection from `client` to real server `real_index`, as a worker would insert it.
    pub(crate) fn insert(
        sh: &Shared,
        client: &str,
        real_index: usize,
        state: ConnState,
        now: Nanos,
    ) {
        let snap = sh.snapshot.load();
        let r = &snap.services[0].reals[real_index];
        r.stats.connections_total.fetch_add(1, Ordering::Relaxed);
        sh.conntrack
            .insert(
                NewConn {
                    proto: Proto::Tcp,
                    client: sa(client),
                    vip: sa("198.18.0.100:80"),
                    real: r.addr,
                    state,
                    stats: r.stats.clone(),
                },
                now,
                &snap.timeouts,
            )
            .unwrap();
    }

    #[test]
    fn list_reads_the_snapshot_and_counters() {
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        insert(&sh, "198.18.0.2:1001", 0, ConnState::SynRecv, 0);
        let l = list(&sh, &ListCounters::default());
        assert_eq!(l.conntrack_max_entries, 64);
        assert_eq!(l.services.len(), 1);
        let s = &l.services[0];
        assert_eq!(
            (s.protocol.as_str(), s.port, s.scheduler.as_str()),
            ("tcp", 80, "wrr")
        );
        assert_eq!(s.reals[0].weight, 3);
        assert_eq!(
            (
                s.reals[0].active_connections,
                s.reals[0].inactive_connections
            ),
            (1, 1)
        );
        assert_eq!(s.reals[0].connections_total, 2);
        assert_eq!(s.reals[1].weight, 1);
    }

    #[test]
    fn conns_show_time_left_and_skip_expired_entries() {
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        insert(&sh, "198.18.0.3:1000", 1, ConnState::SynRecv, 0);
        let now = 10 * NANOS_PER_SEC + 1;
        let c = conns(&sh, now);
        assert_eq!(c.connections.len(), 2);
        assert_eq!(c.connections[0].client, sa("198.18.0.2:1000"));
        assert_eq!(c.connections[0].state, "ESTABLISHED");
        // 15m timeout, 10 s and 1 ns gone: 889 whole seconds left.
        assert_eq!(c.connections[0].expire_seconds, 889);
        assert_eq!(c.connections[1].real, sa("198.18.1.12:80"));
        assert_eq!(c.connections[1].expire_seconds, 19);
        // Past the 30 s SYN timeout the second entry is gone.
        let c = conns(&sh, 31 * NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 1);
    }

    #[test]
    fn conns_list_persistence_templates_as_ipvsadm_does() {
        use crate::sched::persist::TemplateKey;
        let sh = shared();
        insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
        let key = TemplateKey::new(
            Proto::Tcp,
            "198.18.0.100".parse().unwrap(),
            80,
            "198.18.0.2".parse().unwrap(),
            "255.255.255.0".parse().unwrap(),
        );
        sh.persistence
            .schedule(key, 0, 360 * NANOS_PER_SEC, |_| Some(sa("198.18.1.11:80")))
            .unwrap();
        let c = conns(&sh, NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 2);
        let t = &c.connections[0];
        assert_eq!(
            (t.client, t.vip, t.real, t.state.as_str(), t.expire_seconds),
            (
                sa("198.18.0.0:0"),
                sa("198.18.0.100:80"),
                sa("198.18.1.11:80"),
                "NONE",
                359
            )
        );
        // Past its 360 s the template is gone; the connection (15 min) stays.
        let c = conns(&sh, 361 * NANOS_PER_SEC);
        assert_eq!(c.connections.len(), 1);
        assert_eq!(c.connections[0].state, "ESTABLISHED");
    }

    /// An [`AdminState`] over `sh` that sends reloads to `reloads`.
    pub(crate) fn admin_state(sh: &Arc<Shared>, reloads: Sender<ReloadRequest>) -> AdminState {
        AdminState {
            shared: sh.clone(),
            epoch: Instant::now(),
            reloads,
            stats: Arc::new(Stats::new(sh.clone(), vec![])),
            vrrp: Arc::new(VrrpStatus::default()),
            sync: None,
            announce: None,
        }
    }

    #[test]
    fn announce_reply_says_each_vips_state_and_drain_goes_to_the_main_loop() {
        use crate::control::announce::{core::Reason, Published, VipState};
        let sh = shared();
        let (tx, rx) = reload_channel();
        let mut state = admin_state(&sh, tx);
        let stop = AtomicBool::new(false);
        let off: AnnounceReply =
            serde_json::from_str(&answer(&state, "announce", &stop).unwrap()).unwrap();
        assert!(!off.configured && off.vips.is_empty() && off.table.is_none());
        let status = Arc::new(AnnounceStatus::new(100, "xvs-announce"));
        status.publish(Published {
            drained: true,
            vips: vec![
                VipState {
                    vip: "198.18.0.100".parse().unwrap(),
                    announced: false,
                    reason: Some(Reason::Drained),
                },
                VipState {
                    vip: "198.18.0.101".parse().unwrap(),
                    announced: true,
                    reason: None,
                },
            ],
        });
        state.announce = Some(status);
        let body = answer(&state, "announce", &stop).unwrap();
        assert!(
            body.contains(
                "{\"vip\":\"198.18.0.100\",\"state\":\"withdrawn\",\"reason\":\"drained\"}"
            ),
            "{body}"
        );
        let r: AnnounceReply = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (r.table, r.device.as_deref(), r.drained),
            (Some(100), Some("xvs-announce"), true)
        );
        assert_eq!(
            (r.vips[1].state.as_str(), r.vips[1].reason.as_deref()),
            ("announced", None)
        );
        // drain and undrain run on the main loop, which answers with its text.
        std::thread::scope(|sc| {
            let main = sc.spawn(|| {
                for want in [MainOp::Drain(true), MainOp::Drain(false)] {
                    let req = rx.recv().unwrap();
                    assert_eq!(req.op, want);
                    req.respond(Ok(format!("{want:?}")));
                }
            });
            assert_eq!(answer(&state, "drain", &stop).unwrap(), "Drain(true)");
            assert_eq!(answer(&state, "undrain", &stop).unwrap(), "Drain(false)");
            main.join().unwrap();
        });
    }

    #[test]
    fn stats_reports_each_workers_last_interval_by_queue() {
        use crate::datapath::WorkerCounters;
        let sh = shared();
        let (q1, q0) = (
            Arc::new(WorkerCounters::default()),
            Arc::new(WorkerCounters::default()),
        );
        let stats = Stats::new(sh.clone(), vec![(1, q1.clone()), (0, q0.clone())]);
        let r = stats_reply(&stats);
        assert_eq!(r.interval_seconds, 0.0);
        assert_eq!(
            r.workers
                .iter()
                .map(|w| (w.queue, w.rx_pps))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 0)],
            "a zero row per worker before the first interval, by queue"
        );
        let t0 = Instant::now();
        stats.sample(t0);
        q1.rx_packets.store(4_000, Ordering::Relaxed);
        q1.tx_packets.store(3_000, Ordering::Relaxed);
        q1.busy_ns.store(1_000_000_000, Ordering::Relaxed);
        for _ in 0..100 {
            q1.batch_frames.record(40);
        }
        stats.sample(t0 + Duration::from_secs(2));
        let r = stats_reply(&stats);
        assert_eq!(r.interval_seconds, 2.0);
        let w = r.workers[1];
        assert_eq!(
            (
                w.queue,
                w.rx_pps,
                w.tx_pps,
                w.busy_ratio,
                w.frames_per_batch
            ),
            (1, 2_000, 1_500, 0.5, 40.0)
        );
        assert_eq!(r.workers[0].busy_ratio, 0.0);
        let (tx, _rx) = reload_channel();
        let mut state = admin_state(&sh, tx);
        state.stats = Arc::new(stats);
        let body = answer(&state, "stats", &AtomicBool::new(false)).unwrap();
        assert_eq!(serde_json::from_str::<StatsReply>(&body).unwrap(), r);
    }

    #[test]
    fn sync_reply_says_when_sync_is_off_and_reads_what_the_thread_published() {
        use crate::sync::endpoint::EndpointStats;
        use crate::sync::status::{Published, SyncInfo};
        let sh = shared();
        let (tx, _rx) = reload_channel();
        let mut state = admin_state(&sh, tx);
        let body = answer(&state, "sync", &AtomicBool::new(false)).unwrap();
        assert_eq!(
            serde_json::from_str::<SyncReply>(&body).unwrap(),
            sync_reply(None)
        );
        assert!(!sync_reply(None).configured);
        let info = SyncInfo {
            interface: "sync0".into(),
            port: 8848,
        };
        let status = Arc::new(SyncStatus::new(info, Instant::now()));
        let r = sync_reply(Some(&status));
        assert_eq!(
            (r.configured, r.sender_id, r.port),
            (true, None, Some(8848))
        );
        let mut peer = PeerStats {
            address: "198.18.3.2".parse().unwrap(),
            group: false,
            sender: Some(9),
            messages_sent: 5,
            records_sent: 100,
            messages_received: 4,
            records_received: 80,
            last_received: Some(0),
            in_sync: true,
            dump_requests_sent: 1,
            dumps_sent: 0,
            send_errors: 0,
        };
        let mut errors = [0; SyncError::COUNT];
        errors[SyncError::BadTag.index()] = 2;
        let stats = EndpointStats {
            sender: 0xc612_0301,
            epoch: 1,
            multicast: None,
            peers: vec![peer.clone()],
            errors,
            refused: [0; InstallRefusal::COUNT],
            installed: 80,
            dropped: 1,
            unencodable: 0,
            queued: 2,
        };
        status.publish(Published {
            stats,
            ring_dropped: 4,
        });
        state.sync = Some(status);
        let body = answer(&state, "sync", &AtomicBool::new(false)).unwrap();
        let r: SyncReply = serde_json::from_str(&body).unwrap();
        assert_eq!(r.sender_id, Some(0xc612_0301));
        assert_eq!(r.errors.len(), SyncError::COUNT);
        assert_eq!(
            (r.errors["bad_tag"], r.dropped["ring"], r.dropped["queue"]),
            (2, 4, 1)
        );
        assert_eq!(r.install_refused.len(), InstallRefusal::COUNT);
        let p = &r.peers[0];
        assert_eq!(
            (p.messages_sent, p.records_received, p.in_sync),
            (5, 80, true)
        );
        assert!(p.lag_seconds.is_some_and(|l| l >= 0.0));
        peer.last_received = None;
        assert_eq!(sync_peer(&peer, 0).lag_seconds, None);
    }

    #[test]
    fn reload_errors_are_typed_and_keep_their_wording() {
        let sh = shared();
        let (tx, rx) = reload_channel();
        let state = admin_state(&sh, tx);
        let go = AtomicBool::new(false);
        let bad = answer(&state, "frobnicate", &go).unwrap_err();
        assert!(
            matches!(bad, AdminError::Request(RequestError::Unknown(_))),
            "{bad:?}"
        );
        assert_eq!(handle(&state, "", &go), Reply::error("xvs: empty request"));
        // The main loop refuses: its text is the reply, as is.
        let main = {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                req.respond(Err("f.yaml:1:1: bad".to_string()));
            })
        };
        let e = answer(&state, "reload", &go).unwrap_err();
        assert!(
            matches!(&e, AdminError::Refused(t) if t == "f.yaml:1:1: bad"),
            "{e:?}"
        );
        main.join().unwrap();
        // A stop while waiting: the reload is left unrun.
        let stopping = AtomicBool::new(true);
        let e = answer(&state, "reload", &stopping).unwrap_err();
        assert!(matches!(e, AdminError::StoppedBeforeReload), "{e:?}");
        assert_eq!(
            e.reply().encode(),
            "error\nxvs: the daemon is stopping; the reload did not run"
        );
        // Four waiting already (the one above and three more): the fifth is refused at once.
        for _ in 0..3 {
            assert!(matches!(
                answer(&state, "reload", &stopping),
                Err(AdminError::StoppedBeforeReload)
            ));
        }
        assert_eq!(
            handle(&state, "reload", &go),
            Reply::error("xvs: reload refused: other reloads are already waiting")
        );
        drop(rx);
        assert_eq!(
            handle(&state, "real del 198.18.1.11:80 - web", &go),
            Reply::error("xvs: the daemon is stopping")
        );
        assert_eq!(
            AdminError::NoAnswer(RELOAD_WAIT).to_string(),
            "xvs: the main loop did not answer within 15s; the reload may still run (see the daemon's log)"
        );
    }
}
