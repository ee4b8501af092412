//! Per-worker packet counters.
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer; the metrics exporter reads all
//! of them and sums at scrape time. Single-writer counters are bumped with a relaxed load+store
//! (no locked read-modify-write on the packet path).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::datapath::DropReason;

/// Counters of one worker.
#[derive(Debug)]
pub struct WorkerCounters {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Frames handed back as [`crate::datapath::Verdict::Pass`].
    pub passed: AtomicU64,
    pub new_connections: AtomicU64,
    /// Half-open entries evicted from a full connection table for a new connection.
    pub conntrack_evictions: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    /// Batches processed and batches that had at least one frame (for `xvs_worker_busy_ratio`).
    pub batches: AtomicU64,
    pub busy_batches: AtomicU64,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            new_connections: AtomicU64::new(0),
            conntrack_evictions: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            batches: AtomicU64::new(0),
            busy_batches: AtomicU64::new(0),
        }
    }
}

/// Adds `n` to a single-writer counter.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl WorkerCounters {
    /// Counts one drop. Only the owning worker may call this.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason.index()], 1);
    }

    /// Drops counted for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_are_per_reason() {
        let c = WorkerCounters::default();
        c.count_drop(DropReason::NoRoute);
        c.count_drop(DropReason::NoRoute);
        c.count_drop(DropReason::TruncatedIpv4);
        assert_eq!(c.drops(DropReason::NoRoute), 2);
        assert_eq!(c.drops(DropReason::TruncatedIpv4), 1);
        assert_eq!(c.total_drops(), 3);
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::COUNT);
    }
}
