//! Real-server health checks, `on_failure`, quorum and the sorry server (keepalived's checker).
//!
//! - **What is checked.** The effective check of a real server is its own `health_check`, else
//!   its service's, else none; `type: none` is none too. A real server without a check is always
//!   up. Probe types, one file each: [`tcp`] (connect), [`http`] (GET, status line against
//!   `expect_status`), [`udp`] (probe datagram, any reply), [`exec`] (`sh -c`, exit 0).
//! - **When.** Every check runs every `interval`; checks are spread over the interval when they
//!   start (target *i* of *n* new ones first runs *i*/*n* of its interval from now) and then keep
//!   their phase (each run is due one interval after the previous one was due). A target never has
//!   two probes in flight. Probes run on a small pool of control threads (at most
//!   [`runner::MAX_PROBES_IN_FLIGHT`], started as needed), never on the workers.
//! - **State.** [`RiseFall`]: a server goes down after `fall` consecutive failures and comes back
//!   after `rise` consecutive successes. It starts **up** (keepalived's default without `alpha`),
//!   so starting xvs or adding a server never holds traffic back until a first check. The state
//!   lives in the server's [`RealStats`] (`set_up`), which every scheduler reads
//!   ([`RealServer::is_available`](crate::sched::RealServer::is_available)): a server that goes
//!   down takes no new flow from the next packet on.
//! - **`on_failure`.** `remove` (default): the server's connections are removed from the
//!   connection table as well (their next packets find no connection); `drain`: they continue.
//! - **Quorum and sorry server** (per service, [`state::quorum_after`]): counting the servers that
//!   are up with a weight above 0, quorum is lost when none is or fewer than
//!   `min_up - hysteresis` are, and gained again at `min_up + hysteresis` (and at least one). While
//!   quorum is lost, a service with a `sorry_server` sends every new flow to it (keepalived
//!   replaces the real servers by the sorry server); without one the servers still up keep taking
//!   flows. The datapath also uses the sorry server whenever no real server can take a flow
//!   (all down, quiescent or overloaded). Existing connections keep their server either way. The
//!   quorum lives in the service's [`ServiceState`], read lock-free by the workers.
//! - **Reload.** [`Checks::update`] takes the new [`Plan`]: a (service, real server) pair whose
//!   effective check is unchanged keeps its state, counts and phase; a changed check restarts its
//!   counts (keeping up/down); removed pairs are no longer checked.
//!
//! - **IPv6.** Every check type works against IPv6 real servers as against IPv4 ones: the
//!   probe's socket is of the real server's family (source address the kernel's choice), the
//!   HTTP `Host:` header brackets an IPv6 literal (`[2001:2:0:1::11]`, [`http`]), a UDP probe
//!   sees an ICMPv6 port unreachable as a refusal ([`udp`]), and exec's `%ADDR%` is the bare
//!   address (`2001:2:0:1::11`, no brackets; `%PORT%` apart, [`exec`]). An IPv6 service takes
//!   an IPv6 sorry server (the config refuses mixing families).
//!
//! Log lines use keepalived's wording: `TCP connection to [198.18.1.12]:tcp:80 failed.`,
//! `Check on service [198.18.1.12]:tcp:80 failed after 2 retry.`,
//! `Removing service [198.18.1.12]:tcp:80 from VS [198.18.0.100]:tcp:80` (with `drain`:
//! `Disabling service … of VS …`), `Adding service … to VS …` (`Enabling service … of VS …`),
//! `Lost quorum 1-0=1 > 0 for VS …`, `Adding sorry server … to VS …`, `Gained quorum …`. A probe
//! failure is logged only while the server is up (at most `fall` lines per down transition).
//! IPv6 addresses appear in the same brackets: `Removing service [2001:2:0:1::12]:tcp:80 from
//! VS [2001:2::100]:tcp:80`.
//!
//! Everything that decides ([`Checks`], [`state`]) is plain code driven by `now`; the threads are
//! in [`runner`].

mod exec;
mod http;
pub mod metrics;
mod probe;
pub mod runner;
pub mod state;
mod tcp;
mod udp;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::conntrack::ConnTable;
use crate::control::config::{self, CheckType, Config, HealthCheck, OnFailure, Quorum};
use crate::datapath::snapshot::ServiceState;
use crate::datapath::{ServiceKey, Snapshot};
use crate::flow::Nanos;
use crate::sched::RealStats;
use crate::sync::ring::SyncProducer;

pub use metrics::{CheckCounts, Durations, HealthMetrics};
pub use probe::{Failure, Job, Outcome};
pub use runner::{spawn, HealthHandle};
pub use state::RiseFall;

/// One real server of a [`ServicePlan`].
#[derive(Clone, Debug)]
pub struct RealPlan {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Where its up/down state lives (shared with the datapath, kept across reloads).
    pub stats: Arc<RealStats>,
    /// Its effective check; `None` = not checked (always up).
    pub check: Option<HealthCheck>,
}

/// One service as the health checks see it.
#[derive(Clone, Debug)]
pub struct ServicePlan {
    pub name: String,
    pub key: ServiceKey,
    pub on_failure: OnFailure,
    pub quorum: Quorum,
    pub sorry: Option<SocketAddr>,
    /// Where its quorum lives (shared with the datapath, kept across reloads).
    pub state: Arc<ServiceState>,
    pub reals: Vec<RealPlan>,
}

/// Everything to check, for one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
}

/// The check that applies to real server `r` of service `s`: its own, else the service's;
/// `None` when that is absent or `type: none`.
pub fn effective_check(s: &config::Service, r: &config::Real) -> Option<HealthCheck> {
    r.health_check
        .as_ref()
        .or(s.health_check.as_ref())
        .filter(|c| c.kind != CheckType::None)
        .cloned()
}

/// The plan for `snap`, built from `cfg` (the configuration `snap` was built from).
pub fn plan(cfg: &Config, snap: &Snapshot) -> Plan {
    let services = cfg
        .services
        .iter()
        .filter_map(|s| {
            let svc = &snap.services[snap.service_index(&s.key())?];
            let reals = s
                .reals
                .iter()
                .filter_map(|r| {
                    let rs = svc.reals.iter().find(|x| x.addr == r.address)?;
                    Some(RealPlan {
                        addr: rs.addr,
                        weight: rs.weight,
                        stats: rs.stats.clone(),
                        check: effective_check(s, r),
                    })
                })
                .collect();
            Some(ServicePlan {
                name: s.name.clone(),
                key: svc.key,
                on_failure: s.on_failure,
                quorum: s.quorum,
                sorry: svc.sorry.as_ref().map(|r| r.addr),
                state: svc.state.clone(),
                reals,
            })
        })
        .collect();
    Plan { services }
}

/// The name of a check type (the `type` label of the duration histogram).
pub fn kind_name(k: CheckType) -> &'static str {
    match k {
        CheckType::Tcp => "tcp",
        CheckType::Http => "http",
        CheckType::Udp => "udp",
        CheckType::Exec => "exec",
        CheckType::None => "none",
    }
}

fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// keepalived's notation of a real server in a service: `[198.18.1.11]:tcp:80`.
fn rs_id(s: &ServicePlan, addr: SocketAddr) -> String {
    format!("[{}]:{}:{}", addr.ip(), s.key.proto, addr.port())
}

/// The line logged for a failed probe of a server that is up (keepalived's checkers' wording).
fn failure_line(c: &HealthCheck, rs: &str, vs: &ServiceKey, f: &Failure) -> String {
    use Failure as F;
    match c.kind {
        CheckType::Tcp => match f {
            F::ConnectTimeout => format!("TCP connection to {rs} timeout."),
            _ => format!("TCP connection to {rs} failed."),
        },
        CheckType::Http => match f {
            F::Connect(_) => format!("Error connecting server {rs}."),
            F::ConnectTimeout => format!("Timeout connecting server {rs}."),
            F::Timeout => format!("Timeout WEB read server {rs}."),
            F::NoData => format!("Read, no data received from server {rs}."),
            F::Status(code) => {
                format!("HTTP status code error to server {rs} (status {code}).")
            }
            F::BadResponse => {
                format!("HTTP status code error to server {rs} (not an HTTP status line).")
            }
            _ => format!("Read error with server {rs}."),
        },
        CheckType::Udp => match f {
            F::Timeout => format!("UDP connection to {rs} timeout."),
            _ => format!("UDP connection to {rs} failed."),
        },
        CheckType::Exec => {
            let how = match f {
                F::Exit(code) => format!("failed (exited with status {code})"),
                F::Signal(sig) => format!("failed (due to signal {sig})"),
                F::ExecTimeout => "timed out".to_string(),
                F::Spawn(e) => format!("failed (cannot run: {e})"),
                _ => "failed".to_string(),
            };
            format!(
                "Misc check for [{rs} VS {vs}] by [{}] {how}.",
                exec_program(c)
            )
        }
        CheckType::None => format!("Check on service {rs} failed."),
    }
}

/// The line logged when a server comes back up.
fn success_line(c: &HealthCheck, rs: &str, vs: &ServiceKey) -> String {
    match c.kind {
        CheckType::Tcp => format!("TCP connection to {rs} success."),
        CheckType::Http => format!(
            "HTTP status code success to {rs} url({})",
            c.http.as_ref().map_or("/", |h| h.path.as_str())
        ),
        CheckType::Udp => format!("UDP connection to {rs} success."),
        CheckType::Exec => format!(
            "Misc check for [{rs} VS {vs}] by [{}] succeeded.",
            exec_program(c)
        ),
        CheckType::None => format!("Check on service {rs} succeeded."),
    }
}

fn exec_program(c: &HealthCheck) -> &str {
    c.exec.as_ref().map_or("", |e| exec::program(&e.command))
}

/// `Adding service … to VS …` / `Removing service … from VS …` (`remove`), or keepalived's
/// `inhibit_on_failure` wording `Enabling`/`Disabling service … of VS …` (`drain`).
fn pool_line(s: &ServicePlan, rs: &str, up: bool) -> String {
    match (s.on_failure, up) {
        (OnFailure::Remove, true) => format!("Adding service {rs} to VS {}", s.key),
        (OnFailure::Remove, false) => format!("Removing service {rs} from VS {}", s.key),
        (OnFailure::Drain, true) => format!("Enabling service {rs} of VS {}", s.key),
        (OnFailure::Drain, false) => format!("Disabling service {rs} of VS {}", s.key),
    }
}

/// Real servers of `s` that count for its quorum: up, with a weight above 0.
fn servers_up(s: &ServicePlan) -> u32 {
    let n = s
        .reals
        .iter()
        .filter(|r| r.weight > 0 && r.stats.is_up())
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Re-evaluates the quorum of `s` (`start`: the service was not checked before), stores it in its
/// [`ServiceState`] and returns the log lines of a change.
fn evaluate_quorum(s: &ServicePlan, start: bool) -> Vec<String> {
    let up = servers_up(s);
    let q = s.quorum;
    let has = s.state.has_quorum();
    let next = if start {
        state::quorum_at_start(up, q)
    } else {
        state::quorum_after(has, up, q)
    };
    s.state.set_quorum(next);
    let vs = s.key;
    let sorry = s.sorry.map(|a| rs_id(s, a));
    let mut lines = Vec::new();
    if start {
        if !next {
            lines.push(format!(
                "Starting with quorum down {}+{}={} > {up} for VS {vs}",
                q.min_up,
                q.hysteresis,
                state::gain_threshold(q)
            ));
            if let Some(ss) = sorry {
                lines.push(format!("Adding sorry server {ss} to VS {vs}"));
            }
        }
        return lines;
    }
    if next == has {
        return lines;
    }
    if next {
        lines.push(format!(
            "Gained quorum {}+{}={} <= {up} for VS {vs}",
            q.min_up,
            q.hysteresis,
            state::gain_threshold(q)
        ));
        if let Some(ss) = sorry {
            lines.push(format!("Removing sorry server {ss} from VS {vs}"));
            lines.push(format!("Adding alive servers to the pool for VS {vs}"));
        }
    } else {
        lines.push(format!(
            "Lost quorum {}-{}={} > {up} for VS {vs}",
            q.min_up,
            q.hysteresis,
            state::loss_threshold(q)
        ));
        if let Some(ss) = sorry {
            lines.push(format!("Adding sorry server {ss} to VS {vs}"));
            lines.push(format!("Removing alive servers from the pool for VS {vs}"));
        }
    }
    lines
}

/// One checked (service, real server) pair.
#[derive(Debug)]
struct Target {
    /// Unique per target and per check definition: results of an older definition's probe are
    /// ignored.
    id: u64,
    /// Index of its service in [`Checks::services`] and of the real server in it.
    service: usize,
    real: usize,
    check: Arc<HealthCheck>,
    state: RiseFall,
    due: Nanos,
    in_flight: bool,
}

/// The health-check state of every checked real server: which probe is due when, what the
/// results mean, and what a transition does. Driven by its caller with `now` (nanoseconds on the
/// caller's monotonic clock); no I/O except through the connection table it is handed.
#[derive(Debug, Default)]
pub struct Checks {
    services: Vec<ServicePlan>,
    targets: HashMap<(ServiceKey, SocketAddr), Target>,
    by_id: HashMap<u64, (ServiceKey, SocketAddr)>,
    next_id: u64,
    metrics: Arc<HealthMetrics>,
    /// Connection sync's ring for the connections `on_failure: remove` deletes (`None`: sync
    /// off), so the peers delete them too.
    sync: Option<SyncProducer>,
}

impl Checks {
    /// No targets yet; counts probes into `metrics`.
    pub fn new(metrics: Arc<HealthMetrics>) -> Checks {
        Checks {
            metrics,
            ..Checks::default()
        }
    }

    /// Enqueues the Deletes of the connections `on_failure: remove` removes on `ring` (`None`:
    /// connection sync is off).
    pub fn set_sync(&mut self, ring: Option<SyncProducer>) {
        self.sync = ring;
    }

    /// Number of checked real servers.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Makes `plan` the set of checks (see the module documentation for what a reload keeps) and
    /// re-evaluates every service's quorum. Returns the log lines.
    pub fn update(&mut self, plan: Plan, now: Nanos) -> Vec<String> {
        let mut lines = Vec::new();
        let known: HashSet<ServiceKey> = self.services.iter().map(|s| s.key).collect();
        let mut old = std::mem::take(&mut self.targets);
        let mut fresh = Vec::new();
        for (si, s) in plan.services.iter().enumerate() {
            for (ri, r) in s.reals.iter().enumerate() {
                let k = (s.key, r.addr);
                let previous = old.remove(&k);
                let Some(check) = &r.check else {
                    // Not checked (any more): up.
                    if r.stats.set_up(true) {
                        lines.push(pool_line(s, &rs_id(s, r.addr), true));
                    }
                    continue;
                };
                let target = match previous {
                    Some(mut t) if *t.check == *check => {
                        t.service = si;
                        t.real = ri;
                        t
                    }
                    _ => {
                        self.next_id += 1;
                        fresh.push(k);
                        Target {
                            id: self.next_id,
                            service: si,
                            real: ri,
                            check: Arc::new(check.clone()),
                            state: RiseFall::new(r.stats.is_up()),
                            due: now,
                            in_flight: false,
                        }
                    }
                };
                self.targets.insert(k, target);
            }
        }
        // Spread the new checks over their interval.
        let n = fresh.len() as u128;
        for (i, k) in fresh.iter().enumerate() {
            if let Some(t) = self.targets.get_mut(k) {
                let offset = u128::from(nanos(t.check.interval)) * i as u128 / n;
                t.due = now.saturating_add(u64::try_from(offset).unwrap_or(u64::MAX));
            }
        }
        self.by_id = self.targets.iter().map(|(k, t)| (t.id, *k)).collect();
        self.services = plan.services;
        let names: HashMap<ServiceKey, &str> = self
            .services
            .iter()
            .map(|s| (s.key, s.name.as_str()))
            .collect();
        self.metrics
            .retain(|s, r| self.targets.contains_key(&(*s, *r)));
        for (s, r) in self.targets.keys() {
            self.metrics
                .ensure(*s, names.get(s).copied().unwrap_or(""), *r);
        }
        for s in &self.services {
            lines.extend(evaluate_quorum(s, !known.contains(&s.key)));
        }
        lines
    }

    /// The probes due at `now`, oldest first; each is marked in flight until its
    /// [`complete`](Self::complete).
    pub fn due(&mut self, now: Nanos) -> Vec<Job> {
        let mut due: Vec<(Nanos, Job)> = self
            .targets
            .iter_mut()
            .filter(|(_, t)| !t.in_flight && t.due <= now)
            .map(|((_, addr), t)| {
                t.in_flight = true;
                (
                    t.due,
                    Job {
                        id: t.id,
                        addr: *addr,
                        check: t.check.clone(),
                    },
                )
            })
            .collect();
        due.sort_by_key(|(d, j)| (*d, j.id));
        due.into_iter().map(|(_, j)| j).collect()
    }

    /// When the next probe is due (`None`: nothing to check, or everything in flight).
    pub fn next_due(&self) -> Option<Nanos> {
        self.targets
            .values()
            .filter(|t| !t.in_flight)
            .map(|t| t.due)
            .min()
    }

    /// Takes the result of probe `id` (which took `took`) at `now`: counts it, advances the
    /// server's state, and on a transition marks it up or down, applies `on_failure` to
    /// `conns`, and re-evaluates its service's quorum. Returns the log lines. A result of a
    /// target that no longer exists (or whose check changed) is ignored.
    pub fn complete(
        &mut self,
        id: u64,
        now: Nanos,
        outcome: &Outcome,
        took: Duration,
        conns: &ConnTable,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(k) = self.by_id.get(&id) else {
            return lines;
        };
        let Some(t) = self.targets.get_mut(k) else {
            return lines;
        };
        let s = &self.services[t.service];
        let r = &s.reals[t.real];
        let c = &t.check;
        t.in_flight = false;
        t.due = t.due.saturating_add(nanos(c.interval)).max(now);
        self.metrics.record(
            s.key,
            &s.name,
            r.addr,
            kind_name(c.kind),
            outcome.is_ok(),
            took,
        );
        let rs = rs_id(s, r.addr);
        if let Err(f) = outcome {
            if t.state.is_up() {
                lines.push(failure_line(c, &rs, &s.key, f));
            }
        }
        let Some(up) = t.state.record(outcome.is_ok(), c.rise, c.fall) else {
            return lines;
        };
        if up {
            lines.push(success_line(c, &rs, &s.key));
        } else if c.fall > 1 {
            lines.push(format!(
                "Check on service {rs} failed after {} retry.",
                c.fall - 1
            ));
        }
        r.stats.set_up(up);
        lines.push(pool_line(s, &rs, up));
        if !up && s.on_failure == OnFailure::Remove {
            let n = match &mut self.sync {
                None => conns.remove_real(&r.stats),
                Some(ring) => conns.remove_real_with(&r.stats, now, |rec| {
                    ring.push(crate::sync::SyncRecord::Conn(rec));
                }),
            };
            if n > 0 {
                lines.push(format!(
                    "Removed {n} connection{} of service {rs} from VS {}",
                    if n == 1 { "" } else { "s" },
                    s.key
                ));
            }
        }
        lines.extend(evaluate_quorum(s, false));
        lines
    }
}

#[cfg(test)]
mod tests;
