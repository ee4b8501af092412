//! Test helpers shared by the control plane's unit tests (compiled for tests only).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::conntrack::Timeouts;
use crate::datapath::nexthop::NextHopTable;
use crate::datapath::snapshot::Forwarding;
use crate::datapath::{Service, ServiceKey, Shared, Snapshot};
use crate::flow::Proto;
use crate::sched::{RealServer, SchedulerKind};

/// Shared state with one NAT service, `web` (198.18.0.100:80/tcp), of `reals`, and a
/// 64-entry connection table.
pub fn web_shared(scheduler: SchedulerKind, reals: Vec<RealServer>) -> Arc<Shared> {
    let web = Service::new(
        "web",
        ServiceKey {
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
        },
        Forwarding::Nat,
        scheduler,
        reals,
    );
    let snap = Snapshot::new(1, vec![], vec![web], Timeouts::default(), false);
    Arc::new(Shared::new(snap, NextHopTable::new(vec![], []), 64))
}

/// A server thread that ends when its `stop` flag is set; stopped on drop.
pub struct ServerThread {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Sets `stop` and returns how long the thread took to end.
    pub fn stop(&mut self) -> Duration {
        let t = Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            h.join().unwrap();
        }
        t.elapsed()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asserts `lo <= d < hi`.
pub fn assert_between(what: &str, d: Duration, lo: Duration, hi: Duration) {
    assert!(
        d >= lo && d < hi,
        "{what} after {d:?}, not in [{lo:?}, {hi:?})"
    );
}
