//! The threads `xvs run` starts, as one guard: whatever start-up has spawned so far is stopped
//! and joined when the guard drops (a failed start-up unwinds through it), or by
//! [`Threads::stop`] at shutdown, which also reports how they ended.
//!
//! Invariants: every thread watches the one stop flag; the stop order is flag → VRRP wake-up (a
//! MASTER's priority-0 release goes out at once) → workers → VRRP thread → auxiliary threads →
//! servers, and servers are joined with a bound ([`SERVER_STOP_WAIT`]) so no client can hold the
//! stop up. Stopping twice is harmless: the second time there is nothing left to join.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::DaemonError;
use crate::datapath::worker::WorkerError;
use crate::vrrp::driver::VrrpHandle;

/// How long shutdown waits for the metrics and admin servers' threads. They notice `stop`
/// within 50 ms and never wait for a client, so this only bounds a bug.
const SERVER_STOP_WAIT: Duration = Duration::from_millis(500);

/// Every thread the daemon runs, and the flag that stops them.
pub(super) struct Threads {
    stop: Arc<AtomicBool>,
    pub(super) workers: Vec<JoinHandle<Result<(), WorkerError>>>,
    /// The VRRP thread and the daemon's handle on it (woken at stop).
    pub(super) vrrp: Option<(VrrpHandle, JoinHandle<()>)>,
    /// Neighbour refresher, expiry janitor, health checks, rate estimator.
    pub(super) aux: Vec<JoinHandle<()>>,
    /// The metrics and admin servers, by name: joined with a bound.
    pub(super) servers: Vec<(&'static str, JoinHandle<()>)>,
}

/// How the threads ended: a worker's own error, and a thread that panicked.
pub(super) struct Joined {
    pub(super) worker_error: Option<WorkerError>,
    pub(super) failure: Option<DaemonError>,
}

impl Threads {
    /// No thread yet; a new stop flag, clear.
    pub(super) fn new() -> Threads {
        Threads {
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            vrrp: None,
            aux: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// The stop flag, for a thread about to be spawned.
    pub(super) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The daemon's handle on the VRRP thread, once started.
    pub(super) fn vrrp(&self) -> Option<&VrrpHandle> {
        self.vrrp.as_ref().map(|(h, _)| h)
    }

    /// A worker or the VRRP thread ended on its own: the daemon cannot go on.
    pub(super) fn failed(&self) -> Option<DaemonError> {
        if self.workers.iter().any(|h| h.is_finished()) {
            return Some(DaemonError::ThreadStopped("a worker"));
        }
        if self.vrrp.as_ref().is_some_and(|(_, t)| t.is_finished()) {
            return Some(DaemonError::ThreadStopped("the VRRP thread"));
        }
        None
    }

    /// Sets the stop flag and joins every thread (see the module's stop order).
    pub(super) fn stop(&mut self) -> Joined {
        self.stop.store(true, Ordering::Relaxed);
        let vrrp = self.vrrp.take();
        if let Some((handle, _)) = &vrrp {
            handle.wake();
        }
        let mut joined = Joined {
            worker_error: None,
            failure: None,
        };
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => joined.worker_error = Some(e),
                Err(_) => joined.failure = Some(DaemonError::ThreadPanicked("a worker")),
            }
        }
        if let Some((_, thread)) = vrrp {
            if thread.join().is_err() {
                joined.failure = Some(DaemonError::ThreadPanicked("the VRRP thread"));
            }
        }
        for h in self.aux.drain(..) {
            let _ = h.join();
        }
        join_servers(std::mem::take(&mut self.servers));
        joined
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Joins the server threads, waiting at most [`SERVER_STOP_WAIT`] in all: a thread still
/// running then is left behind (it ends with the process) rather than delaying the stop.
fn join_servers(servers: Vec<(&'static str, JoinHandle<()>)>) {
    let deadline = Instant::now() + SERVER_STOP_WAIT;
    for (name, h) in servers {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            log::warn!(
                "The {name} server did not stop within {} ms; not waiting for it",
                SERVER_STOP_WAIT.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that runs until the flag is set, then records that it saw it.
    fn watcher(stop: Arc<AtomicBool>, saw: Arc<AtomicBool>) -> JoinHandle<()> {
        std::thread::spawn(move || {
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    saw.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }

    #[test]
    fn dropping_the_guard_stops_and_joins_what_was_started() {
        let saw = Arc::new(AtomicBool::new(false));
        let stop;
        {
            let mut t = Threads::new();
            stop = t.stop_flag();
            t.aux.push(watcher(t.stop_flag(), saw.clone()));
            t.servers
                .push(("metrics", watcher(t.stop_flag(), saw.clone())));
            // An early return of start-up drops the guard here.
        }
        assert!(stop.load(Ordering::Relaxed));
        assert!(
            saw.load(Ordering::Relaxed),
            "the thread ended before the stop"
        );
    }

    #[test]
    fn stop_reports_a_worker_error_and_a_panic() {
        let mut t = Threads::new();
        t.workers.push(std::thread::spawn(|| {
            Err(WorkerError::Spawn {
                queue: 3,
                source: std::io::Error::from_raw_os_error(libc::EAGAIN),
            })
        }));
        t.workers.push(std::thread::spawn(|| panic!("worker bug")));
        let deadline = Instant::now() + Duration::from_secs(5);
        while t.workers.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(matches!(
            t.failed(),
            Some(DaemonError::ThreadStopped("a worker"))
        ));
        let joined = t.stop();
        assert!(matches!(
            joined.worker_error,
            Some(WorkerError::Spawn { queue: 3, .. })
        ));
        assert!(matches!(
            joined.failure,
            Some(DaemonError::ThreadPanicked("a worker"))
        ));
        assert!(t.stop().failure.is_none(), "nothing left to join");
    }
}
