//! The decisions of the VRRP driver, sans-IO: every instance of the box with its sync group,
//! tracked scripts and tracked interfaces ([`Router`]).
//!
//! The driver ([`super::driver`]) owns the sockets, the clock, netlink and the child processes;
//! it feeds the router what happened (`handle_advert`, `handle_timeout`, `handle_links`,
//! `handle_script_result`, `reload`, `shutdown`, each with `now`) and carries out the
//! [`Action`]s it then polls ([`Router::poll_action`]): send an advert, act on a state change,
//! start or kill a script, repeat the gratuitous ARPs. Nothing here reads a clock, a socket or
//! the system, so tests drive it with a simulated clock (see `tests.rs`, whose two-router
//! harness exchanges real encoded adverts over an in-memory link).
//!
//! Decisions kept here:
//! - Sync groups (keepalived's `vrrp_sync_group`): a member entering MASTER takes the other
//!   members from BACKUP to MASTER, one leaving MASTER for BACKUP takes them to BACKUP, a fault
//!   of one member is a fault of all, and a BACKUP member takes over only when every BACKUP
//!   member of the group wants to (no thrashing while one member still hears a master).
//! - Track scripts: run every `interval`, killed and counted as a failure if still running at
//!   the next run; `fall` failures in a row mark one down, `rise` successes up; a script starts
//!   up. Down with weight 0 → FAULT; otherwise the effective priority is the configured one
//!   plus the weights of the positive-weight scripts that are up and of the negative-weight ones
//!   that are down, clamped to 1..254 (an owner's 255 never changes).
//! - Tracked interfaces (the instance's own included): any down → FAULT.
//!
//! Invariants: `groups` holds indices into `members`, and a member's `group` is the index of
//! the one group listing it; a member `holding` its VIPs has had [`Event::BecomeMaster`] as its
//! last event; every running script has a [`RunId`] no other run had.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::garp;
use super::spec::{InstanceSpec, TrackScript};
use super::status::InstanceStatus;
use super::{Advert, BuildError, Event, State, Transmit, VrrpError, VrrpInstance};
use crate::flow::Nanos;

#[cfg(test)]
mod pair;
mod reload;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

pub use reload::Reload;

/// Rounds of sync-group following per settle (each round can only move members that have not
/// moved yet in the same direction; bounded so a bug can never spin).
const FOLLOW_ROUNDS: usize = 8;

/// One run of a track script, as the driver knows it: reported back with its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunId(u64);

/// What the driver must do now, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this advert of member `inst` (to the multicast group, or to each unicast peer).
    Transmit { inst: usize, transmit: Transmit },
    /// Member `inst` changed state: on [`Event::BecomeMaster`] take the VIPs (interface, gate,
    /// first gratuitous ARPs), on any other event release them; log and run the notify command.
    Event { inst: usize, event: Event },
    /// Start `sh -c command`; report its exit with [`Router::handle_script_result`].
    RunScript { run: RunId, command: String },
    /// The run is overdue (its failure is already counted) or no longer wanted: kill it.
    KillScript { run: RunId },
    /// The second burst of gratuitous ARPs of member `inst` (still MASTER) is due.
    Garp { inst: usize },
}

#[derive(Debug)]
struct Script {
    spec: TrackScript,
    next_run: Nanos,
    /// The run going on and when it started.
    running: Option<(RunId, Nanos)>,
    up: bool,
    successes: u32,
    failures: u32,
}

impl Script {
    fn new(spec: TrackScript, now: Nanos) -> Script {
        Script {
            spec,
            next_run: now,
            running: None,
            up: true,
            successes: 0,
            failures: 0,
        }
    }

    /// Counts one result; logs (keepalived's wording) when the script goes up or down.
    fn record(&mut self, ok: bool) {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.up && self.successes >= self.spec.rise {
                self.up = true;
                log::info!("VRRP_Script({}) succeeded", self.spec.command);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.up && self.failures >= self.spec.fall {
                self.up = false;
                log::info!("VRRP_Script({}) failed", self.spec.command);
            }
        }
    }
}

/// One instance with the conditions around it.
#[derive(Debug)]
pub struct Member {
    pub(super) spec: InstanceSpec,
    pub(super) inst: VrrpInstance,
    /// VIPs added to the interface and open in the gate.
    pub(super) holding: bool,
    /// When the second gratuitous-ARP burst is due.
    garp_at: Option<Nanos>,
    scripts: Vec<Script>,
    /// Own or tracked interface down.
    link_down: bool,
    group: Option<usize>,
    transitions: u64,
    sent: u64,
    received: u64,
}

impl Member {
    fn new(spec: InstanceSpec, now: Nanos) -> Result<Member, BuildError> {
        let inst = VrrpInstance::new(spec.cfg.clone(), now)?;
        let scripts = scripts_of(&spec, now);
        Ok(Member {
            spec,
            inst,
            holding: false,
            garp_at: None,
            scripts,
            link_down: false,
            group: None,
            transitions: 0,
            sent: 0,
            received: 0,
        })
    }

    /// The resolved configuration it runs.
    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    /// The state machine.
    pub fn instance(&self) -> &VrrpInstance {
        &self.inst
    }

    /// Own reasons to be in FAULT: a link down or a weight-0 script down.
    fn own_fault(&self) -> bool {
        self.link_down || self.scripts.iter().any(|s| s.spec.weight == 0 && !s.up)
    }

    /// Configured priority adjusted by the script weights.
    fn effective_priority(&self) -> u8 {
        let base = self.spec.cfg.priority;
        if base == 255 {
            return 255;
        }
        let adj: i32 = self
            .scripts
            .iter()
            .map(|s| match (s.spec.weight, s.up) {
                (w, true) if w > 0 => w,
                (w, false) if w < 0 => w,
                _ => 0,
            })
            .sum();
        let p = (i32::from(base) + adj).clamp(1, 254);
        u8::try_from(p).unwrap_or(254)
    }

    fn status(&self) -> InstanceStatus {
        let state = self.inst.state();
        InstanceStatus {
            name: self.spec.name.clone(),
            vrid: self.spec.cfg.vrid,
            state,
            priority: self.inst.priority(),
            master: if state == State::Master {
                Some(self.spec.cfg.primary)
            } else {
                self.inst.master_address()
            },
            transitions: self.transitions,
            adverts_sent: self.sent,
            adverts_received: self.received,
        }
    }
}

fn scripts_of(spec: &InstanceSpec, now: Nanos) -> Vec<Script> {
    spec.track_scripts
        .iter()
        .map(|t| Script::new(t.clone(), now))
        .collect()
}

/// Every instance of the box (see the module documentation).
#[derive(Debug, Default)]
pub struct Router {
    members: Vec<Member>,
    /// The sync groups as indices into `members`.
    groups: Vec<Vec<usize>>,
    actions: VecDeque<Action>,
    next_run: u64,
    /// Something the status shows changed since [`Router::take_dirty`].
    dirty: bool,
}

impl Router {
    /// A router with no instance (a [`Router::reload`] adds them).
    pub fn new() -> Router {
        Router::default()
    }

    /// The instances, in configuration order (the `inst` of an [`Action`] indexes this).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Router::handle_timeout`] must be called next: an instance timer, a script run or
    /// a second gratuitous-ARP burst.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.members
            .iter()
            .flat_map(|m| {
                m.inst
                    .poll_timeout()
                    .into_iter()
                    .chain(m.garp_at)
                    .chain(m.scripts.iter().map(|s| s.next_run))
            })
            .min()
    }

    /// Whether the status changed since the last call (and clears it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// What `xvs ctl vrrp` and the metrics show.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.members.iter().map(Member::status).collect()
    }

    /// `n` adverts of member `inst` went out (one per destination).
    pub fn note_sent(&mut self, inst: usize, n: u64) {
        if let Some(m) = self.members.get_mut(inst) {
            m.sent += n;
            self.dirty = true;
        }
    }

    /// An advert arrived on `interface`: handed to the instance of its VRID and address family
    /// there (an IPv4 and an IPv6 virtual router may share a VRID: RFC 5798 §7.3 gives them
    /// different MACs). No such instance is a [`VrrpError::Vrid`]; the instance's own rejections
    /// are returned as they are.
    pub fn handle_advert(
        &mut self,
        now: Nanos,
        interface: &str,
        advert: &Advert,
    ) -> Result<(), VrrpError> {
        self.dirty = true;
        let m = self
            .members
            .iter_mut()
            .find(|m| {
                m.spec.interface == interface
                    && m.spec.cfg.vrid == advert.vrid
                    && m.spec.cfg.primary.is_ipv6() == advert.src.is_ipv6()
            })
            .ok_or(VrrpError::Vrid)?;
        m.inst.handle_advert(now, advert)?;
        m.received += 1;
        self.settle(now);
        Ok(())
    }

    /// Time passed: sync-group takeovers deferred, instance timers fired, scripts started or
    /// found overdue, second gratuitous ARPs due; then faults, priorities and state changes.
    pub fn handle_timeout(&mut self, now: Nanos) {
        self.defer_group_takeovers(now);
        for m in &mut self.members {
            m.inst.handle_timeout(now);
        }
        self.schedule_scripts(now);
        for (k, m) in self.members.iter_mut().enumerate() {
            if m.garp_at.is_some_and(|t| now >= t) {
                m.garp_at = None;
                if m.inst.state() == State::Master {
                    self.actions.push_back(Action::Garp { inst: k });
                }
            }
        }
        self.settle(now);
    }

    /// The interfaces were checked: `up(name)` says whether one is up. A member with its own
    /// or a tracked interface down is in FAULT until all are up again.
    pub fn handle_links(&mut self, now: Nanos, mut up: impl FnMut(&str) -> bool) {
        for m in &mut self.members {
            let down: Vec<&str> = std::iter::once(&m.spec.interface)
                .chain(&m.spec.track_interfaces)
                .map(String::as_str)
                .filter(|n| !up(n))
                .collect();
            let now_down = !down.is_empty();
            if now_down != m.link_down {
                if now_down {
                    log::info!("({}) Netlink reports {} down", m.spec.name, down.join(", "));
                } else {
                    log::info!("({}) Netlink reports interfaces up", m.spec.name);
                }
                m.link_down = now_down;
            }
        }
        self.settle(now);
    }

    /// A script run ended: `ok` is a zero exit status. A run the router no longer knows (killed
    /// as overdue, or its instance reloaded away) is ignored.
    pub fn handle_script_result(&mut self, now: Nanos, run: RunId, ok: bool) {
        let Some(s) = self
            .members
            .iter_mut()
            .flat_map(|m| m.scripts.iter_mut())
            .find(|s| s.running.is_some_and(|(r, _)| r == run))
        else {
            return;
        };
        s.running = None;
        s.record(ok);
        self.settle(now);
    }

    /// Stops every instance (a MASTER sends its priority-0 advert and releases its VIPs) and
    /// kills the running scripts.
    pub fn shutdown(&mut self, now: Nanos) {
        for m in &mut self.members {
            m.inst.shutdown(now);
        }
        self.flush(now);
        for m in &mut self.members {
            kill_runs(&mut m.scripts, &mut self.actions);
        }
    }

    /// Starts the scripts that are due, and fails and kills those still running at their next
    /// run.
    fn schedule_scripts(&mut self, now: Nanos) {
        for m in &mut self.members {
            for s in &mut m.scripts {
                if let Some((run, started)) = s.running {
                    if now.saturating_sub(started) < s.spec.interval {
                        continue;
                    }
                    s.running = None;
                    self.actions.push_back(Action::KillScript { run });
                    s.record(false);
                }
                if now >= s.next_run {
                    s.next_run = now + s.spec.interval;
                    let run = RunId(self.next_run);
                    self.next_run += 1;
                    s.running = Some((run, now));
                    self.actions.push_back(Action::RunScript {
                        run,
                        command: s.spec.command.clone(),
                    });
                }
            }
        }
    }

    /// A BACKUP member of a sync group takes over only when every other BACKUP member of the
    /// group wants to as well (its Master_Down_Timer ran out too); until then it waits for the
    /// earliest of their timers. A member that keeps hearing a master so keeps the whole group
    /// BACKUP, instead of the group thrashing between the two boxes.
    fn defer_group_takeovers(&mut self, now: Nanos) {
        for g in &self.groups {
            let waiting: Option<Nanos> = g
                .iter()
                .filter_map(|&k| self.members.get(k))
                .filter(|m| m.inst.state() == State::Backup)
                .filter_map(|m| m.inst.poll_timeout())
                .filter(|&t| t > now)
                .min();
            let Some(until) = waiting else { continue };
            for &k in g {
                if let Some(m) = self.members.get_mut(k) {
                    let due = m.inst.state() == State::Backup
                        && m.inst.poll_timeout().is_some_and(|t| t <= now);
                    if due {
                        m.inst.defer_takeover(until);
                    }
                }
            }
        }
    }

    /// Faults and priorities applied, then every resulting advert and state change queued.
    pub fn settle(&mut self, now: Nanos) {
        self.apply_faults_and_priorities(now);
        self.flush(now);
    }

    fn apply_faults_and_priorities(&mut self, now: Nanos) {
        let group_fault: Vec<bool> = self
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|&k| self.members.get(k))
                    .any(Member::own_fault)
            })
            .collect();
        for m in &mut self.members {
            let fault = m.own_fault()
                || m.group
                    .is_some_and(|g| group_fault.get(g).copied().unwrap_or(false));
            m.inst.set_fault(now, fault);
            let p = m.effective_priority();
            if p != m.inst.priority() {
                log::info!(
                    "({}) Changing effective priority from {} to {p}",
                    m.spec.name,
                    m.inst.priority()
                );
                m.inst.set_priority(p);
                self.dirty = true;
            }
        }
    }

    /// Queues the adverts and state changes of every member, and has the other members of a
    /// group follow each change (which can cause more; bounded).
    fn flush(&mut self, now: Nanos) {
        for _ in 0..FOLLOW_ROUNDS {
            let mut follow: Vec<(usize, State)> = Vec::new();
            for k in 0..self.members.len() {
                self.drain_member(k, now, &mut follow);
            }
            if follow.is_empty() {
                return;
            }
            for (k, s) in follow {
                if let Some(m) = self.members.get_mut(k) {
                    m.inst.follow(now, s);
                }
            }
        }
    }

    /// Member `k`'s adverts and events into the action queue; the group members to move into
    /// `follow`.
    fn drain_member(&mut self, k: usize, now: Nanos, follow: &mut Vec<(usize, State)>) {
        let Some(m) = self.members.get_mut(k) else {
            return;
        };
        while let Some(transmit) = m.inst.poll_transmit() {
            self.actions
                .push_back(Action::Transmit { inst: k, transmit });
            self.dirty = true;
        }
        while let Some(event) = m.inst.poll_event() {
            self.dirty = true;
            m.transitions += 1;
            m.holding = event == Event::BecomeMaster;
            m.garp_at = m.holding.then_some(now + garp::MASTER_DELAY);
            self.actions.push_back(Action::Event { inst: k, event });
            if let Some(g) = m.group.and_then(|g| self.groups.get(g)) {
                follow.extend(g.iter().filter(|&&o| o != k).map(|&o| (o, event.state())));
            }
        }
    }
}

/// Kill actions for the runs of `scripts` going on (they are forgotten).
fn kill_runs(scripts: &mut [Script], actions: &mut VecDeque<Action>) {
    for s in scripts {
        if let Some((run, _)) = s.running.take() {
            actions.push_back(Action::KillScript { run });
        }
    }
}

/// The VIPs with prefix lengths held by holding members (what a reload keeps on the interface).
fn held_by(members: &[Member], ifindex: Option<u32>, a: IpAddr, l: Option<u8>) -> bool {
    members.iter().any(|m| {
        m.holding
            && ifindex.is_none_or(|x| x == m.spec.ifindex)
            && m.spec
                .prefixes
                .iter()
                .any(|&(b, n)| b == a && l.is_none_or(|l| l == n))
    })
}
