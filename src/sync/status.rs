//! What the sync thread publishes: the endpoint's counters for `xvs ctl sync` and the
//! `xvs_sync_*` metrics. Written by the driver ([`super::driver`]) every
//! [`super::driver::PUBLISH_INTERVAL`] and when it stops, read by the admin socket and the
//! exporter; a lag is computed at read time from the driver's clock epoch, so it keeps growing
//! while a peer is silent.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use super::endpoint::{EndpointStats, PeerStats};
use super::error::SyncError;
use super::tables::InstallRefusal;
use crate::flow::{Nanos, NANOS_PER_SEC};

/// The sync thread's settings as `xvs ctl sync` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncInfo {
    pub interface: String,
    pub port: u16,
}

/// The endpoint's counters, the rings' drops, and when they were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub stats: EndpointStats,
    /// Records the workers' rings dropped (full).
    pub ring_dropped: u64,
}

/// What the sync thread publishes.
#[derive(Debug)]
pub struct SyncStatus {
    pub info: SyncInfo,
    /// The driver's clock: `Nanos` of the stats count from here.
    epoch: Instant,
    published: Mutex<Option<Published>>,
}

impl SyncStatus {
    pub fn new(info: SyncInfo, epoch: Instant) -> SyncStatus {
        SyncStatus {
            info,
            epoch,
            published: Mutex::new(None),
        }
    }

    /// Replaces what is published.
    pub fn publish(&self, p: Published) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// What was published last (`None` before the thread's first publication), and the
    /// driver's clock now.
    pub fn read(&self) -> (Option<Published>, Nanos) {
        let p = self
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Nanos::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(Nanos::MAX);
        (p, now)
    }

    /// The `xvs_sync_*` families in the Prometheus text format (every error and refusal
    /// reason present, zeros included).
    pub fn render(&self, o: &mut String) {
        let (p, now) = self.read();
        let p = p.unwrap_or_else(|| Published {
            stats: EndpointStats {
                sender: 0,
                epoch: 0,
                multicast: None,
                peers: Vec::new(),
                errors: [0; SyncError::COUNT],
                refused: [0; InstallRefusal::COUNT],
                installed: 0,
                dropped: 0,
                unencodable: 0,
                queued: 0,
            },
            ring_dropped: 0,
        });
        render_peers(o, &p.stats.peers, now);
        let s = &p.stats;
        family(
            o,
            "xvs_sync_errors_total",
            "counter",
            "Received sync messages dropped, by reason.",
        );
        for e in SyncError::ALL {
            let _ = writeln!(
                o,
                "xvs_sync_errors_total{{reason=\"{}\"}} {}",
                e.label(),
                s.errors[e.index()]
            );
        }
        family(
            o,
            "xvs_sync_dropped_total",
            "counter",
            "Local records not sent, by stage: ring (a worker's ring was full), queue (the send queue was full), unencodable (the wire cannot carry it).",
        );
        for (stage, n) in [
            ("ring", p.ring_dropped),
            ("queue", s.dropped),
            ("unencodable", s.unencodable),
        ] {
            let _ = writeln!(o, "xvs_sync_dropped_total{{stage=\"{stage}\"}} {n}");
        }
        family(
            o,
            "xvs_sync_installed_total",
            "counter",
            "Peer records installed into this box's tables.",
        );
        let _ = writeln!(o, "xvs_sync_installed_total {}", s.installed);
        family(
            o,
            "xvs_sync_install_refused_total",
            "counter",
            "Peer records this box did not install, by reason.",
        );
        for r in InstallRefusal::ALL {
            let _ = writeln!(
                o,
                "xvs_sync_install_refused_total{{reason=\"{}\"}} {}",
                r.label(),
                s.refused[r.index()]
            );
        }
        family(
            o,
            "xvs_sync_queue_datagrams",
            "gauge",
            "Sync datagrams waiting to be sent.",
        );
        let _ = writeln!(o, "xvs_sync_queue_datagrams {}", s.queued);
    }
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Seconds of `ns`, for a gauge.
fn seconds(ns: Nanos) -> String {
    format!(
        "{}.{:03}",
        ns / NANOS_PER_SEC,
        ns % NANOS_PER_SEC / 1_000_000
    )
}

/// The per-peer families (the multicast group is a peer label of its own).
fn render_peers(o: &mut String, peers: &[PeerStats], now: Nanos) {
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
        family(o, name, "counter", help);
        for p in peers {
            let _ = writeln!(o, "{name}{{peer=\"{}\"}} {}", p.address, get(p));
        }
    }
    family(
        o,
        "xvs_sync_peer_in_sync",
        "gauge",
        "1 once the peer's full dump ended here (for the multicast group: some peer's).",
    );
    for p in peers {
        let _ = writeln!(
            o,
            "xvs_sync_peer_in_sync{{peer=\"{}\"}} {}",
            p.address,
            u8::from(p.in_sync)
        );
    }
    family(
        o,
        "xvs_sync_peer_lag_seconds",
        "gauge",
        "Time since the peer's last accepted message (peers heard from only).",
    );
    for p in peers {
        if let Some(t) = p.last_received {
            let lag = seconds(now.saturating_sub(t));
            let _ = writeln!(
                o,
                "xvs_sync_peer_lag_seconds{{peer=\"{}\"}} {lag}",
                p.address
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_rendered_and_peers_are_labelled() {
        let st = SyncStatus::new(
            SyncInfo {
                interface: "sync0".into(),
                port: 8848,
            },
            Instant::now(),
        );
        let mut o = String::new();
        st.render(&mut o);
        assert!(
            o.contains("xvs_sync_errors_total{reason=\"bad_tag\"} 0"),
            "{o}"
        );
        let peer = PeerStats {
            address: "198.18.0.2".parse().unwrap(),
            group: false,
            sender: Some(7),
            messages_sent: 3,
            records_sent: 90,
            messages_received: 4,
            records_received: 80,
            last_received: Some(0),
            in_sync: true,
            dump_requests_sent: 1,
            dumps_sent: 1,
            send_errors: 0,
        };
        let mut errors = [0; SyncError::COUNT];
        errors[SyncError::Replayed.index()] = 2;
        st.publish(Published {
            stats: EndpointStats {
                sender: 1,
                epoch: 2,
                multicast: None,
                peers: vec![peer.clone()],
                errors,
                refused: [0; InstallRefusal::COUNT],
                installed: 80,
                dropped: 5,
                unencodable: 0,
                queued: 1,
            },
            ring_dropped: 9,
        });
        let mut o = String::new();
        st.render(&mut o);
        for want in [
            "xvs_sync_messages_sent_total{peer=\"198.18.0.2\"} 3",
            "xvs_sync_messages_received_total{peer=\"198.18.0.2\"} 4",
            "xvs_sync_errors_total{reason=\"replayed\"} 2",
            "xvs_sync_errors_total{reason=\"unknown_peer\"} 0",
            "xvs_sync_dropped_total{stage=\"ring\"} 9",
            "xvs_sync_dropped_total{stage=\"queue\"} 5",
            "xvs_sync_install_refused_total{reason=\"unknown_service\"} 0",
            "xvs_sync_peer_in_sync{peer=\"198.18.0.2\"} 1",
            "xvs_sync_peer_lag_seconds{peer=\"198.18.0.2\"} ",
            "# TYPE xvs_sync_errors_total counter",
        ] {
            assert!(o.contains(want), "missing {want} in\n{o}");
        }
        assert_eq!(seconds(1_234_567_890), "1.234");
    }
}
