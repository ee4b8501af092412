//! The control plane's families, read at scrape time from what its threads publish: the
//! build, the health checks' counters and durations ([`HealthMetrics`](crate::control::health::HealthMetrics)),
//! the VRRP instances ([`VrrpStatus`](crate::vrrp::status::VrrpStatus)), connection sync
//! ([`SyncStatus`](crate::sync::status::SyncStatus)) and the last (re)load.

use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{
    counter, gauge, histogram, info, label, label_str, Encoded, Histogram, Value, NO_LABELS,
};
use super::Sources;
use crate::control::announce::AnnounceStatus;
use crate::control::health::metrics::BUCKETS;
use crate::control::health::Durations;
use crate::flow::NANOS_PER_SEC;
use crate::sync::endpoint::PeerStats;
use crate::sync::status::SyncStatus;
use crate::sync::tables::InstallRefusal;
use crate::sync::SyncError;
use crate::vrrp::status::{state_gauge, InstanceStatus};

/// `xvs_build_info{version}`: always 1 (a gauge in the text format, as before; an `info`
/// family in OpenMetrics).
pub fn build_info(_: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    info(
        e,
        "xvs_build_info",
        "Build information.",
        [label_str("version", env!("CARGO_PKG_VERSION"))],
    )
}

/// One check type's durations as a histogram (the observations past the last bound in `+Inf`).
fn durations(d: &Durations) -> Histogram {
    let within: u64 = d.buckets.iter().sum();
    let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
    let counts = d
        .buckets
        .iter()
        .copied()
        .chain([d.count.saturating_sub(within)]);
    Histogram {
        buckets: bounds.zip(counts).collect(),
        count: d.count,
        sum: d.sum,
    }
}

/// `xvs_health_checks_total{service,real,result}` and
/// `xvs_health_check_duration_seconds{type}`.
pub fn health(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let checks = src.health.checks();
    counter(
        e,
        "xvs_health_checks_total",
        "Health-check probes of a real server by result.",
        checks.iter().flat_map(|c| {
            [("success", c.success), ("failure", c.failure)].map(|(result, n)| {
                let labels = [
                    label_str("service", &c.service),
                    label("real", &c.real),
                    label_str("result", result),
                ];
                (labels, n)
            })
        }),
    )?;
    let kinds = src.health.durations();
    histogram(
        e,
        "xvs_health_check_duration_seconds",
        "How long a health-check probe took, by check type.",
        kinds
            .iter()
            .map(|d| ([label_str("type", d.kind)], durations(d))),
    )
}

/// `xvs_vrrp_*`: each instance's state and counters, rejected adverts by reason.
pub fn vrrp(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let insts = src.vrrp.instances();
    let per = |get: fn(&InstanceStatus) -> u64| {
        insts.iter().map(move |i| {
            let labels = [label_str("instance", &i.name), label("vrid", &i.vrid)];
            (labels, get(i))
        })
    };
    gauge(
        e,
        "xvs_vrrp_state",
        "VRRP instance state: 0 init, 1 backup, 2 master, 3 fault.",
        per(|i| u64::from(state_gauge(i.state))),
    )?;
    counter(
        e,
        "xvs_vrrp_transitions_total",
        "VRRP state changes of the instance.",
        per(|i| i.transitions),
    )?;
    counter(
        e,
        "xvs_vrrp_adverts_sent_total",
        "VRRP advertisements sent (each unicast peer counts once).",
        per(|i| i.adverts_sent),
    )?;
    counter(
        e,
        "xvs_vrrp_adverts_received_total",
        "VRRP advertisements received that passed every check.",
        per(|i| i.adverts_received),
    )?;
    let errors = src.vrrp.errors();
    counter(
        e,
        "xvs_vrrp_errors_total",
        "Received VRRP packets rejected, by reason.",
        errors.iter().map(|(r, n)| ([label_str("reason", r)], *n)),
    )
}

/// `xvs_sync_*`, when `sync:` is configured (every error and refusal reason present, zeros
/// included).
pub fn sync(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    match &src.sync {
        Some(sync) => sync_families(sync, e),
        None => Ok(()),
    }
}

fn sync_families(sync: &SyncStatus, e: &mut DescriptorEncoder) -> Encoded {
    let (p, now) = sync.current();
    sync_peers(&p.stats.peers, now, e)?;
    let s = &p.stats;
    counter(
        e,
        "xvs_sync_errors_total",
        "Received sync messages dropped, by reason.",
        SyncError::ALL
            .iter()
            .map(|r| ([label_str("reason", r.label())], s.errors[r.index()])),
    )?;
    counter(
        e,
        "xvs_sync_dropped_total",
        "Local records not sent, by stage: ring (a worker's ring was full), queue (the send queue was full), unencodable (the wire cannot carry it).",
        [
            ("ring", p.ring_dropped),
            ("queue", s.dropped),
            ("unencodable", s.unencodable),
        ]
        .map(|(stage, n)| ([label_str("stage", stage)], n)),
    )?;
    counter(
        e,
        "xvs_sync_installed_total",
        "Peer records installed into this box's tables.",
        [(NO_LABELS, s.installed)],
    )?;
    counter(
        e,
        "xvs_sync_install_refused_total",
        "Peer records this box did not install, by reason.",
        InstallRefusal::ALL
            .iter()
            .map(|r| ([label_str("reason", r.label())], s.refused[r.index()])),
    )?;
    gauge(
        e,
        "xvs_sync_queue_datagrams",
        "Sync datagrams waiting to be sent.",
        [(NO_LABELS, s.queued)],
    )
}

/// `xvs_announced{vip}` (1 while the VIP's route is in the announce table) and `xvs_drained`,
/// when `announce:` is configured.
pub fn announce(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    match &src.announce {
        Some(a) => announce_families(a, e),
        None => Ok(()),
    }
}

fn announce_families(a: &AnnounceStatus, e: &mut DescriptorEncoder) -> Encoded {
    let p = a.read();
    gauge(
        e,
        "xvs_announced",
        "1 while the VIP's route is in the announce table (announce.table), 0 while it is withdrawn.",
        p.vips
            .iter()
            .map(|v| ([label("vip", &v.vip)], u64::from(v.announced))),
    )?;
    gauge(
        e,
        "xvs_drained",
        "1 while the box is drained (xvs ctl drain): every VIP withdrawn, existing flows continue.",
        [(NO_LABELS, u64::from(p.drained))],
    )
}

/// Milliseconds of `ns` as seconds (the lag's resolution), for a gauge.
#[allow(clippy::cast_precision_loss)] // below 2^53 ms
fn lag_seconds(ns: u64) -> f64 {
    (ns / (NANOS_PER_SEC / 1000)) as f64 / 1e3
}

/// A peer's label.
fn peer(p: &PeerStats) -> [(&'static str, Value<'_>); 1] {
    [label("peer", &p.address)]
}

/// The per-peer families (the multicast group is a peer label of its own).
fn sync_peers(peers: &[PeerStats], now: u64, e: &mut DescriptorEncoder) -> Encoded {
    type Get = fn(&PeerStats) -> u64;
    let counters: [(&str, &str, Get); 7] = [
        (
            "xvs_sync_messages_sent_total",
            "Sync messages sent to the peer (or the multicast group).",
            |p| p.messages_sent,
        ),
        (
            "xvs_sync_messages_received_total",
            "Sync messages from the peer that passed every check.",
            |p| p.messages_received,
        ),
        (
            "xvs_sync_records_sent_total",
            "Connection and template records sent to the peer.",
            |p| p.records_sent,
        ),
        (
            "xvs_sync_records_received_total",
            "Connection and template records received from the peer.",
            |p| p.records_received,
        ),
        (
            "xvs_sync_send_errors_total",
            "Sync datagrams to the peer the socket refused.",
            |p| p.send_errors,
        ),
        (
            "xvs_sync_dump_requests_sent_total",
            "Full-dump requests sent to the peer (or the group).",
            |p| p.dump_requests_sent,
        ),
        (
            "xvs_sync_dumps_sent_total",
            "Full dumps sent to the peer.",
            |p| p.dumps_sent,
        ),
    ];
    for (name, help, get) in counters {
        counter(e, name, help, peers.iter().map(|p| (peer(p), get(p))))?;
    }
    gauge(
        e,
        "xvs_sync_peer_in_sync",
        "1 once the peer's full dump ended here (for the multicast group: some peer's).",
        peers.iter().map(|p| (peer(p), u64::from(p.in_sync))),
    )?;
    gauge(
        e,
        "xvs_sync_peer_lag_seconds",
        "Time since the peer's last accepted message (peers heard from only).",
        peers.iter().filter_map(|p| {
            let heard = p.last_received?;
            Some((peer(p), lag_seconds(now.saturating_sub(heard))))
        }),
    )
}

/// `xvs_config_last_reload_*`: the outcome and time of the last (re)load.
pub fn reload(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    gauge(
        e,
        "xvs_config_last_reload_successful",
        "1 if the last configuration (re)load succeeded.",
        [(NO_LABELS, u64::from(src.reload.successful.load(Relaxed)))],
    )?;
    gauge(
        e,
        "xvs_config_last_reload_timestamp_seconds",
        "Time of the last successful (re)load.",
        [(NO_LABELS, src.reload.timestamp_seconds.load(Relaxed))],
    )
}
