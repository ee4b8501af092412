//! One probe of one real server: what it found ([`Outcome`]) and the dispatch to the probe of
//! each check type ([`run`]). Probes block (each within its `timeout`) and run on the health
//! pool's threads, never on a worker.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{exec, http, tcp, udp};
use crate::control::config::{CheckType, HealthCheck};

/// Why a probe failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection (TCP) was refused or could not be made, or the datagram (UDP) was
    /// answered with an ICMP error. Carries the system's reason.
    Connect(String),
    /// TCP: no connection within the timeout.
    ConnectTimeout,
    /// No answer within the timeout (HTTP status line, UDP reply).
    Timeout,
    /// Sending or reading failed after the connection was made.
    Io(String),
    /// HTTP: the connection was closed before any byte of an answer.
    NoData,
    /// HTTP: the answer does not start with an HTTP status line.
    BadResponse,
    /// HTTP: a status not in `expect_status`.
    Status(u16),
    /// exec: the command exited with this status (not 0).
    Exit(i32),
    /// exec: the command was killed by this signal.
    Signal(i32),
    /// exec: the command ran longer than the timeout and was killed.
    ExecTimeout,
    /// exec: the command could not be started.
    Spawn(String),
}

/// What one probe found: `Ok` = the server passed.
pub type Outcome = Result<(), Failure>;

/// A probe to run: which target (by its id in [`Checks`](super::Checks)), where, and how.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: u64,
    pub addr: SocketAddr,
    pub check: Arc<HealthCheck>,
}

/// Runs the probe of `job.check` against `job.addr`; returns what it found and how long it took.
/// An exec probe gives up (killing its command) as soon as `stop` is set.
pub fn run(job: &Job, stop: &AtomicBool) -> (Outcome, Duration) {
    let start = Instant::now();
    let c = &job.check;
    let outcome = match c.kind {
        CheckType::Tcp => tcp::probe(job.addr, c.timeout),
        CheckType::Http => http::probe(job.addr, &c.http.clone().unwrap_or_default(), c.timeout),
        CheckType::Udp => udp::probe(job.addr, c.timeout),
        CheckType::Exec => match &c.exec {
            Some(e) => exec::probe(job.addr, &e.command, c.timeout, stop),
            None => Err(Failure::Spawn("no exec command".into())),
        },
        // Never scheduled: a real server without a check is up.
        CheckType::None => Ok(()),
    };
    (outcome, start.elapsed())
}

/// Whether an I/O error is a timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO` report `WouldBlock`).
pub(super) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The time left until `deadline`, or `None` when it has passed (socket timeouts must not be 0).
pub(super) fn left(deadline: Instant) -> Option<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    (!d.is_zero()).then_some(d)
}
