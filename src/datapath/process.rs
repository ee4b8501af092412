//! `process()`: classify, look up or schedule, rewrite, pick the next hop (work in progress).

use std::sync::Arc;

use crate::datapath::{PortId, Verdict, WorkerCounters};
use crate::flow::Nanos;

/// State shared by all workers and the control plane.
pub struct Shared {}

/// One worker's packet processor.
pub struct Processor {
    pub counters: Arc<WorkerCounters>,
}

impl Processor {
    /// Called once per batch before any `process`: loads the current snapshot and next-hop table
    /// and does a bounded amount of connection expiry.
    pub fn begin_batch(&mut self, _now: Nanos) {}

    /// Decides about one frame received on `ingress`, rewriting it in place.
    pub fn process(&mut self, _now: Nanos, _ingress: PortId, _frame: &mut [u8]) -> Verdict {
        Verdict::Pass
    }
}
