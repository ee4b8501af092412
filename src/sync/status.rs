//! What the sync thread publishes: the endpoint's counters for `xvs ctl sync` and the
//! `xvs_sync_*` metrics. Written by the driver ([`super::driver`]) every
//! [`super::driver::PUBLISH_INTERVAL`] and when it stops, read by the admin socket and the
//! exporter; a lag is computed at read time from the driver's clock epoch, so it keeps growing
//! while a peer is silent.

use std::sync::Mutex;
use std::time::Instant;

use super::endpoint::EndpointStats;
use super::error::SyncError;
use super::tables::InstallRefusal;
use crate::flow::Nanos;

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

    /// What was published last, all zeros before the thread's first publication, and the
    /// driver's clock now (a peer's lag is `now` minus its `last_received`).
    pub fn current(&self) -> (Published, Nanos) {
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
        (p, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_before_the_first_publication_then_what_was_published() {
        let epoch = Instant::now();
        let info = SyncInfo {
            interface: "sync0".into(),
            port: 8848,
        };
        let st = SyncStatus::new(info, epoch);
        let (p, _) = st.current();
        assert!(p.stats.peers.is_empty());
        assert_eq!(p.stats.errors, [0; SyncError::COUNT]);
        assert_eq!(p.ring_dropped, 0);
        let mut published = p.clone();
        published.ring_dropped = 9;
        published.stats.installed = 80;
        st.publish(published.clone());
        let (p, now) = st.current();
        assert_eq!(p, published);
        assert!(now <= Nanos::try_from(epoch.elapsed().as_nanos()).unwrap());
    }
}
