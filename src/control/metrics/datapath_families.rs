//! The datapath's families, read at scrape time from where the workers keep them: the current
//! snapshot's services and real servers (their [`RealStats`](crate::sched::RealStats) and
//! quorum), the workers' [`WorkerCounters`] and traffic blocks (summed here, by identity), the
//! connection table, the estimator's last interval and the kernel's AF_XDP statistics.

use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{
    counter, gauge, histogram, label, label_str, seconds, Encoded, Histogram, ServiceLabels,
    NO_LABELS,
};
use super::Sources;
use crate::datapath::counters::{traffic_totals, Traffic, TrafficKey, BATCH_FRAMES_LE, TOA_SKIPS};
use crate::datapath::xsk::XskStatistics;
use crate::datapath::{DropReason, Service, Snapshot, WorkerCounters};
use crate::sched::RealServer;

/// Every real server of every service of `snap`, with its service.
fn reals(snap: &Snapshot) -> impl Iterator<Item = (&Service, &RealServer)> {
    snap.services
        .iter()
        .flat_map(|s| s.reals.iter().map(move |r| (s, r)))
}

fn real_labels<'a>(s: &'a Service, r: &RealServer) -> ServiceLabels<'a> {
    ServiceLabels {
        service: s,
        real: Some(r.addr),
    }
}

fn service_labels(s: &Service) -> ServiceLabels<'_> {
    ServiceLabels {
        service: s,
        real: None,
    }
}

/// `xvs_real_*`: connections, weight and health of each real server.
pub fn real_servers(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let snap = src.shared.snapshot.load();
    let per_real =
        |get: fn(&RealServer) -> u64| reals(&snap).map(move |(s, r)| (real_labels(s, r), get(r)));
    counter(
        e,
        "xvs_real_connections_total",
        "Connections scheduled to a real server.",
        per_real(|r| r.stats.connections_total.load(Relaxed)),
    )?;
    gauge(
        e,
        "xvs_real_connections_active",
        "ESTABLISHED connections of a real server.",
        per_real(RealServer::active_connections),
    )?;
    gauge(
        e,
        "xvs_real_connections_inactive",
        "Other tracked connections of a real server.",
        per_real(RealServer::inactive_connections),
    )?;
    gauge(
        e,
        "xvs_real_weight",
        "Configured weight of a real server.",
        per_real(|r| u64::from(r.weight)),
    )?;
    gauge(
        e,
        "xvs_real_up",
        "1 while the real server is up (health checks), 0 while they hold it down.",
        per_real(|r| u64::from(r.stats.is_up())),
    )
}

/// `xvs_service_*` and `xvs_sorry_server_connections_total`: connections, traffic (with the
/// real servers' traffic) and quorum of each service.
pub fn services(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let snap = src.shared.snapshot.load();
    counter(
        e,
        "xvs_service_connections_total",
        "Connections scheduled by a service.",
        snap.services.iter().map(|s| {
            let total: u64 = s
                .reals
                .iter()
                .chain(&s.sorry)
                .map(|r| r.stats.connections_total.load(Relaxed))
                .sum();
            (service_labels(s), total)
        }),
    )?;
    traffic(src, &snap, e)?;
    gauge(
        e,
        "xvs_service_quorum_up",
        "1 while the service has quorum (enough real servers up), 0 while it has lost it.",
        snap.services
            .iter()
            .map(|s| (service_labels(s), u64::from(s.state.has_quorum()))),
    )?;
    counter(
        e,
        "xvs_sorry_server_connections_total",
        "Connections scheduled to a service's sorry server.",
        snap.services.iter().filter_map(|s| {
            let r = s.sorry.as_ref()?;
            Some((real_labels(s, r), r.stats.connections_total.load(Relaxed)))
        }),
    )
}

/// `xvs_service_{in,out}_{packets,bytes}_total` and `xvs_real_{in,out}_{packets,bytes}_total`:
/// the workers' traffic blocks summed, for the services and real servers of `snap` (a sorry
/// server's traffic counts for its service only, as its connections do).
fn traffic(src: &Sources, snap: &Snapshot, e: &mut DescriptorEncoder) -> Encoded {
    let totals = traffic_totals(src.workers.iter().map(|(_, c)| &**c));
    let get = |service: &Service, real: Option<&RealServer>| {
        let key = TrafficKey {
            service: service.key,
            real: real.map(|r| r.addr),
        };
        totals.get(&key).copied().unwrap_or_default()
    };
    type Field = fn(&Traffic) -> u64;
    let fields: [(&str, &str, Field); 4] = [
        ("in_packets", "Packets from clients to real servers", |t| {
            t.in_packets
        }),
        ("out_packets", "Packets from real servers to clients", |t| {
            t.out_packets
        }),
        (
            "in_bytes",
            "Bytes (IP packet lengths) from clients to real servers",
            |t| t.in_bytes,
        ),
        (
            "out_bytes",
            "Bytes (IP packet lengths) from real servers to clients",
            |t| t.out_bytes,
        ),
    ];
    for (field, help, value) in fields {
        counter(
            e,
            &format!("xvs_service_{field}_total"),
            &format!("{help}, per service."),
            snap.services
                .iter()
                .map(|s| (service_labels(s), value(&get(s, None)))),
        )?;
        counter(
            e,
            &format!("xvs_real_{field}_total"),
            &format!("{help}, per real server."),
            reals(snap).map(|(s, r)| (real_labels(s, r), value(&get(s, Some(r))))),
        )?;
    }
    Ok(())
}

/// A per-worker counter summed over the workers.
fn summed(src: &Sources, get: impl Fn(&WorkerCounters) -> u64) -> u64 {
    src.workers.iter().map(|(_, c)| get(c)).sum()
}

/// `xvs_conntrack_*`: table size, capacity and evictions; the IPv6 table's size and capacity
/// as `_ipv6` series of their own (`xvs_conntrack_max_entries` is the IPv4 table's).
pub fn conntrack(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let ct = &src.shared.conntrack;
    let one = |v: usize| [(NO_LABELS, v)];
    gauge(
        e,
        "xvs_conntrack_entries",
        "Tracked connections.",
        one(ct.len()),
    )?;
    gauge(
        e,
        "xvs_conntrack_max_entries",
        "Connection table capacity.",
        one(ct.capacity()),
    )?;
    gauge(
        e,
        "xvs_conntrack_entries_ipv6",
        "Tracked IPv6 connections (a table of their own; also counted in xvs_conntrack_entries).",
        one(ct.len_ipv6()),
    )?;
    gauge(
        e,
        "xvs_conntrack_max_entries_ipv6",
        "IPv6 connection table capacity (conntrack.max_entries_ipv6; 0 without IPv6 services).",
        one(ct.capacity_ipv6()),
    )?;
    counter(
        e,
        "xvs_conntrack_evictions_total",
        "Half-open connections evicted from a full table to make room for a new one.",
        [(
            [label_str("reason", "half_open")],
            summed(src, |c| c.conntrack_evictions.load(Relaxed)),
        )],
    )
}

/// FULLNAT: local ports in use per pool (and each pool's capacity), TOA options inserted and
/// skipped. The pool families appear only when there are pools.
pub fn fullnat(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let ct = &src.shared.conntrack;
    let pools = ct.local_pools();
    if !pools.pools.is_empty() {
        gauge(
            e,
            "xvs_local_address_ports_in_use",
            "FULLNAT local address:port pairs held by connections, per local_addresses pool.",
            pools
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| ([label_str("pool", &p.name)], ct.local_ports_in_use(i))),
        )?;
        gauge(
            e,
            "xvs_local_address_ports",
            "FULLNAT local address:port pairs a local_addresses pool offers.",
            pools.pools.iter().enumerate().map(|(i, p)| {
                let addresses = u64::try_from(p.addresses.len()).unwrap_or(u64::MAX);
                let ports = pools.ports_per_address(i).saturating_mul(addresses);
                ([label_str("pool", &p.name)], ports)
            }),
        )?;
    }
    counter(
        e,
        "xvs_toa_inserted_total",
        "FULLNAT TOA options inserted (client SYNs and handshake-completing ACKs).",
        [(NO_LABELS, summed(src, |c| c.toa_inserted.load(Relaxed)))],
    )?;
    counter(
        e,
        "xvs_toa_skipped_total",
        "FULLNAT TOA options not inserted, by reason; the packet was forwarded without one.",
        TOA_SKIPS.iter().map(|skip| {
            let n = summed(src, |c| c.toa_skips(*skip));
            ([label_str("reason", skip.label())], n)
        }),
    )
}

/// Frames held while their next hop's MAC was resolved (`datapath::worker`).
pub fn neighbours(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    counter(
        e,
        "xvs_neighbour_held_total",
        "Frames held until their next hop's MAC was known; each was then sent or counted as a no_neighbour drop.",
        [(NO_LABELS, summed(src, |c| c.neighbour_held.load(Relaxed)))],
    )
}

/// `xvs_drops_total` by reason, and the per-queue worker families.
pub fn workers(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    counter(
        e,
        "xvs_drops_total",
        "Dropped frames by reason.",
        DropReason::ALL.iter().map(|r| {
            let n = summed(src, |c| c.drops(*r));
            ([label_str("reason", r.label())], n)
        }),
    )?;
    let per_queue = |get: fn(&WorkerCounters) -> u64| {
        src.workers
            .iter()
            .map(move |(q, c)| ([label("queue", q)], get(c)))
    };
    counter(
        e,
        "xvs_rx_packets_total",
        "Frames received by a worker.",
        per_queue(|c| c.rx_packets.load(Relaxed)),
    )?;
    counter(
        e,
        "xvs_tx_packets_total",
        "Frames transmitted by a worker.",
        per_queue(|c| c.tx_packets.load(Relaxed)),
    )?;
    saturation(src, e)
}

/// The frames-per-batch histogram of one worker (its per-bucket counts, the last one past
/// [`BATCH_FRAMES_LE`]'s last bound).
#[allow(clippy::cast_precision_loss)] // bucket bounds are at most 64, sums below 2^53 frames
fn batch_frames(c: &WorkerCounters) -> Histogram {
    let h = c.batch_frames.read();
    let bounds = BATCH_FRAMES_LE
        .iter()
        .map(|le| *le as f64)
        .chain([f64::INFINITY]);
    Histogram {
        buckets: bounds.zip(h.buckets).collect(),
        count: h.count(),
        sum: h.sum as f64,
    }
}

/// The worker saturation families: busy seconds, the frames-per-batch histogram and the last
/// interval's busy share.
fn saturation(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    counter(
        e,
        "xvs_worker_busy_seconds_total",
        "Time a worker spent in batches that had frames (rate() is its utilisation).",
        src.workers
            .iter()
            .map(|(q, c)| ([label("queue", q)], seconds(c.busy_ns.load(Relaxed)))),
    )?;
    histogram(
        e,
        "xvs_worker_batch_frames",
        "Frames per batch that had frames (near the batch size: the worker is saturated).",
        src.workers
            .iter()
            .map(|(q, c)| ([label("queue", q)], batch_frames(c))),
    )?;
    let loads = src.stats.loads();
    gauge(
        e,
        "xvs_worker_busy_ratio",
        "Share of the last 2 s estimator interval a worker spent in batches that had frames.",
        loads
            .workers
            .iter()
            .map(|w| ([label("queue", &w.queue)], w.busy_ratio)),
    )
}

/// `xvs_xsk_*`: the kernel's AF_XDP statistics of each queue's sockets (a queue whose
/// statistics cannot be read is left out).
pub fn xsk(src: &Sources, e: &mut DescriptorEncoder) -> Encoded {
    let xsk: Vec<(u32, XskStatistics)> = src
        .xsk
        .iter()
        .filter_map(|r| Some((r.queue(), r.read_total().ok()??)))
        .collect();
    type Get = fn(&XskStatistics) -> u64;
    let families: [(&str, Get); 4] = [
        ("xvs_xsk_rx_dropped_total", |s| s.rx_dropped),
        ("xvs_xsk_rx_ring_full_total", |s| s.rx_ring_full),
        ("xvs_xsk_fill_ring_empty_total", |s| {
            s.rx_fill_ring_empty_descs
        }),
        ("xvs_xsk_tx_invalid_total", |s| s.tx_invalid_descs),
    ];
    for (name, get) in families {
        counter(
            e,
            name,
            "Kernel AF_XDP statistics of the queue's sockets.",
            xsk.iter().map(|(q, s)| ([label("queue", q)], get(s))),
        )?;
    }
    Ok(())
}
