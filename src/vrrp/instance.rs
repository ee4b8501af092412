//! One VRRP virtual router as a sans-IO state machine: RFC 5798 §6.4 (Initialize, Backup,
//! Master) with keepalived's Fault state, for VRRPv3 and VRRPv2 (RFC 3768 §6.4).
//!
//! The driver owns sockets and the clock. It calls [`VrrpInstance::handle_advert`] with each
//! parsed advert ([`super::packet::parse_ipv4`], [`super::packet::parse_message_v6`]) for this VRID and [`VrrpInstance::handle_timeout`]
//! when [`VrrpInstance::poll_timeout`] is reached, then drains [`VrrpInstance::poll_transmit`]
//! (adverts to send, encoded with [`VrrpInstance::advert_fields`]) and [`VrrpInstance::poll_event`]
//! (state changes: add the VIPs and send gratuitous ARPs on [`Event::BecomeMaster`], remove them
//! when leaving Master). Nothing here reads a clock: every time is the caller's `now`.
//!
//! Timing (all in [`Nanos`], computed exactly in integer nanoseconds, rounded down):
//! - v3: `Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256`,
//!   `Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time`; a backup adopts the
//!   interval of the master it accepts as `Master_Adver_Interval` (RFC 5798 §6.4.2) and falls back
//!   to its own interval when it (re)enters Backup otherwise.
//! - v2: `Skew_Time = (256 − Priority) / 256` s and `Master_Down_Interval = 3 ×
//!   Advertisement_Interval + Skew_Time`, with the configured interval (RFC 3768 §6.1; keepalived
//!   scales the v2 skew by the interval too, which differs only for intervals above 1 s).
//! - `Priority` is the local (effective) priority.
//!
//! Decisions, each as RFC 5798 §6.4 says unless noted:
//! - Priority 255 (address owner) goes straight to Master at startup; every other priority starts
//!   in Backup with `Master_Down_Timer = Master_Down_Interval`.
//! - Backup: priority 0 → `Master_Down_Timer = Skew_Time`; an advert with priority ≥ ours, or any
//!   advert when preempt is off, resets the timer; a lower one is discarded (so a higher-priority
//!   backup takes over when the timer runs out, a Master_Down_Interval after the last advert it
//!   accepted). Equal priorities are accepted in Backup whatever the address.
//! - Master: priority 0 → send an advert at once and reset the Adver_Timer; a higher priority, or
//!   an equal one from a higher primary address (compared as unsigned integers), → Backup; a lower
//!   one is discarded (keepalived answers it with an advert, "forcing a new election"; the RFC
//!   discards it and xvs follows the RFC).
//! - `preempt_delay` (keepalived): while it runs, lower-priority adverts are accepted like a
//!   master's instead of discarded. It starts at startup (until `now + preempt_delay`); an advert
//!   with priority ≥ ours stops it, and the next lower-priority advert starts it again; leaving
//!   Fault clears it, so it starts again at the first lower-priority advert. Once it has run out,
//!   lower adverts are discarded and the backup takes over a Master_Down_Interval after the last
//!   one it accepted.
//! - Fault (keepalived, for tracked interfaces and scripts): [`VrrpInstance::set_fault`] with
//!   `true` leaves Master with a priority-0 advert, stops all timers and ignores adverts; with
//!   `false` the instance starts again as at startup (owner → Master, else Backup).
//! - [`VrrpInstance::shutdown`]: a Master sends a priority-0 advert so a backup takes over after
//!   its Skew_Time; every state then goes to Initialize and stays there.
//! - A received advert passes every check of RFC 5798 §7.1 / RFC 3768 §7.1 (and keepalived's
//!   address checks) before it can change anything; a rejection is a [`VrrpError`] for the
//!   driver to count, and leaves the instance untouched.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::packet::{Advert, AdvertFields, Version, NANOS_PER_CENTISECOND, TTL};
use super::{BuildError, VrrpError};
use crate::flow::{Nanos, NANOS_PER_SEC};

pub mod rules;

/// What one instance needs of the configuration (the driver maps `vrrp.instances[]` onto it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceConfig {
    /// 1..=255.
    pub vrid: u8,
    pub version: Version,
    /// 1..=255; 255 = address owner.
    pub priority: u8,
    /// Advertisement_Interval. v2: whole seconds 1..=255 s; v3: a multiple of 10 ms up to 40.95 s.
    pub advert_interval: Nanos,
    pub preempt: bool,
    /// keepalived's `preempt_delay` (0 = none); see the module documentation.
    pub preempt_delay: Nanos,
    /// The local primary address: the source of our adverts and the tie-break of equal
    /// priorities (compared as unsigned integers of their family). IPv6: the interface's
    /// link-local address.
    pub primary: IpAddr,
    /// The virtual addresses, in advert order (at least one, at most 255, one family).
    pub vips: Vec<IpAddr>,
    /// Adverts go to unicast peers instead of 224.0.0.18 / ff02::12; the TTL (hop limit) and
    /// link-local source checks are then skipped, as keepalived does (unicast adverts may be
    /// routed).
    pub unicast: bool,
}

/// The protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before startup or after [`VrrpInstance::shutdown`].
    Initialize,
    Backup,
    Master,
    /// keepalived's FAULT: a tracked interface or script is down.
    Fault,
}

impl State {
    /// keepalived's name of the state, for `(VI_1) Entering MASTER STATE` log lines.
    pub const fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// A state change for the driver to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Entered Master: add the VIPs, send gratuitous ARPs (the advert is already queued).
    BecomeMaster,
    /// Entered Backup (at startup, from Master or from Fault): make sure the VIPs are not held.
    BecomeBackup,
    /// Entered Fault: make sure the VIPs are not held.
    BecomeFault,
    /// Entered Initialize after [`VrrpInstance::shutdown`]: remove the VIPs if held.
    Stopped,
}

impl Event {
    /// The state entered.
    pub const fn state(self) -> State {
        match self {
            Event::BecomeMaster => State::Master,
            Event::BecomeBackup => State::Backup,
            Event::BecomeFault => State::Fault,
            Event::Stopped => State::Initialize,
        }
    }
}

/// An advert to send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The priority to advertise: the instance's, or 0 when it releases mastership.
    pub priority: u8,
}

/// One virtual router.
///
/// Invariants: `timer` is `Some` exactly in Backup (Master_Down_Timer) and Master (Adver_Timer);
/// `priority` is 1..=255 and 255 only when the configured priority is 255.
#[derive(Debug)]
pub struct VrrpInstance {
    cfg: InstanceConfig,
    /// Advertisement_Interval in centiseconds (v2: a multiple of 100).
    interval_cs: u16,
    /// Effective priority (configured, changed by [`VrrpInstance::set_priority`]).
    priority: u8,
    state: State,
    /// Master_Adver_Interval in centiseconds.
    master_adver_cs: u16,
    timer: Option<Nanos>,
    /// While `now` is before this, lower-priority adverts are accepted (preempt_delay).
    preempt_until: Option<Nanos>,
    fault: bool,
    /// Source address of the last advert accepted from a master.
    master: Option<IpAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Checks an instance's configuration (what [`VrrpInstance::new`] and
/// [`VrrpInstance::reconfigure`] accept) against the [`rules`]: VRID and priority in range,
/// 1..=255 addresses of one family (IPv6 only in v3), a primary address of that family (for
/// IPv6 multicast a link-local one, RFC 5798 §5.1.2.1), and an advert interval the version can
/// carry. Returns the interval in centiseconds.
pub fn validate(cfg: &InstanceConfig) -> Result<u16, BuildError> {
    if !rules::VRIDS.contains(&cfg.vrid) {
        return Err(BuildError::Vrid);
    }
    if !rules::PRIORITIES.contains(&cfg.priority) {
        return Err(BuildError::Priority);
    }
    if cfg.vips.is_empty() {
        return Err(BuildError::NoAddresses);
    }
    if cfg.vips.len() > rules::MAX_ADDRESSES {
        return Err(BuildError::TooManyAddresses(cfg.vips.len()));
    }
    if let Some(&first) = cfg.vips.first() {
        for &a in &cfg.vips {
            rules::address_family(cfg.version, first, a)?;
        }
    }
    if cfg
        .vips
        .first()
        .is_some_and(|v| v.is_ipv6() != cfg.primary.is_ipv6())
    {
        return Err(BuildError::FamilyMismatch(cfg.primary));
    }
    if let IpAddr::V6(p) = cfg.primary {
        if !cfg.unicast && !p.is_unicast_link_local() {
            return Err(BuildError::PrimaryNotLinkLocal(cfg.primary));
        }
    }
    rules::advert_interval_cs(cfg.version, u128::from(cfg.advert_interval))
        .map_err(|_| BuildError::Interval(cfg.advert_interval))
}

impl VrrpInstance {
    /// Checks the configuration and starts the instance at `now` (RFC 5798 §6.4.1 Startup):
    /// an address owner enters Master and queues its first advert, any other enters Backup.
    pub fn new(cfg: InstanceConfig, now: Nanos) -> Result<VrrpInstance, BuildError> {
        let interval_cs = validate(&cfg)?;
        let mut inst = VrrpInstance {
            priority: cfg.priority,
            interval_cs,
            master_adver_cs: interval_cs,
            state: State::Initialize,
            timer: None,
            preempt_until: None,
            fault: false,
            master: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        };
        inst.start(now, true);
        Ok(inst)
    }

    /// Startup (or leaving Fault): owner → Master, else Backup.
    fn start(&mut self, now: Nanos, at_startup: bool) {
        self.preempt_until = (at_startup && self.cfg.preempt_delay > 0)
            .then(|| now.saturating_add(self.cfg.preempt_delay));
        if self.priority == rules::OWNER_PRIORITY {
            self.become_master(now);
        } else {
            self.become_backup(now);
        }
    }

    fn become_master(&mut self, now: Nanos) {
        self.state = State::Master;
        self.master = None;
        self.transmits.push_back(Transmit {
            priority: self.priority,
        });
        self.timer = Some(now.saturating_add(self.advert_interval()));
        self.events.push_back(Event::BecomeMaster);
    }

    /// Enters Backup with `Master_Adver_Interval` already set by the caller.
    fn become_backup(&mut self, now: Nanos) {
        self.state = State::Backup;
        self.timer = Some(now.saturating_add(self.master_down_interval()));
        self.events.push_back(Event::BecomeBackup);
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// The effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The address of the master this backup last accepted an advert from.
    pub fn master_address(&self) -> Option<IpAddr> {
        self.master
    }

    /// Advertisement_Interval (our own).
    pub fn advert_interval(&self) -> Nanos {
        Nanos::from(self.interval_cs) * NANOS_PER_CENTISECOND
    }

    /// Master_Adver_Interval: v3 the interval of the master last accepted (our own before);
    /// v2 always our own.
    pub fn master_adver_interval(&self) -> Nanos {
        match self.cfg.version {
            Version::V2 => self.advert_interval(),
            Version::V3 => Nanos::from(self.master_adver_cs) * NANOS_PER_CENTISECOND,
        }
    }

    /// Skew_Time for the effective priority.
    pub fn skew_time(&self) -> Nanos {
        let base = match self.cfg.version {
            Version::V2 => NANOS_PER_SEC,
            Version::V3 => self.master_adver_interval(),
        };
        // ≤ 255 × 40.95 s in ns: far below u64::MAX.
        (256 - Nanos::from(self.priority)) * base / 256
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Nanos {
        3 * self.master_adver_interval() + self.skew_time()
    }

    /// When [`VrrpInstance::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.timer
    }

    /// The next advert to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next state change.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What to encode for `t` ([`super::packet::encode_frame`]).
    pub fn advert_fields(&self, t: &Transmit) -> AdvertFields<'_> {
        AdvertFields {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority: t.priority,
            interval_cs: self.interval_cs,
            addresses: &self.cfg.vips,
        }
    }

    /// Fires the timer if `now` has reached it: in Backup the Master_Down_Timer (→ Master, first
    /// advert queued), in Master the Adver_Timer (advert queued, timer reset to
    /// `now + Advertisement_Interval`). Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Nanos) {
        let Some(t) = self.timer else { return };
        if now < t {
            return;
        }
        match self.state {
            State::Backup => self.become_master(now),
            State::Master => {
                self.transmits.push_back(Transmit {
                    priority: self.priority,
                });
                self.timer = Some(now.saturating_add(self.advert_interval()));
            }
            State::Initialize | State::Fault => self.timer = None,
        }
    }

    /// The receive checks that depend on the instance, in the order keepalived applies them.
    fn check(&self, a: &Advert) -> Result<(), VrrpError> {
        if !self.cfg.unicast && a.ttl != TTL {
            return Err(VrrpError::Ttl);
        }
        if let IpAddr::V6(src) = a.src {
            if !self.cfg.unicast && !src.is_unicast_link_local() {
                return Err(VrrpError::SourceNotLinkLocal);
            }
        }
        if a.version != self.cfg.version {
            return Err(VrrpError::Version);
        }
        if a.vrid != self.cfg.vrid {
            return Err(VrrpError::Vrid);
        }
        match self.cfg.version {
            Version::V2 => {
                if a.auth_type != 0 {
                    return Err(VrrpError::AuthType);
                }
                if a.interval_cs != self.interval_cs {
                    return Err(VrrpError::IntervalMismatch);
                }
            }
            Version::V3 => {
                if a.interval_cs == 0 {
                    return Err(VrrpError::ZeroInterval);
                }
            }
        }
        if usize::from(a.count) != self.cfg.vips.len() || a.addresses.len() != self.cfg.vips.len() {
            return Err(VrrpError::AddressCount);
        }
        if !self.cfg.vips.iter().all(|v| a.addresses.contains(v)) {
            return Err(VrrpError::AddressList);
        }
        if self.priority == rules::OWNER_PRIORITY {
            return Err(VrrpError::Owner);
        }
        Ok(())
    }

    /// Handles an advert received at `now` for this instance. A rejected advert changes nothing
    /// and returns the reason to count; an accepted or (per the RFC) discarded one returns `Ok`.
    /// In Initialize and Fault valid adverts are ignored.
    pub fn handle_advert(&mut self, now: Nanos, a: &Advert) -> Result<(), VrrpError> {
        self.check(a)?;
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_rx(now, a),
            State::Master => self.master_rx(now, a),
        }
        Ok(())
    }

    fn backup_rx(&mut self, now: Nanos, a: &Advert) {
        if a.priority == 0 {
            self.timer = Some(now.saturating_add(self.skew_time()));
            return;
        }
        let delay = self.cfg.preempt_delay;
        let delaying = delay > 0 && self.preempt_until.is_none_or(|until| now < until);
        if !self.cfg.preempt || a.priority >= self.priority || delaying {
            self.master_adver_cs = a.interval_cs;
            self.master = Some(a.src);
            self.timer = Some(now.saturating_add(self.master_down_interval()));
            if delay > 0 {
                if a.priority >= self.priority {
                    self.preempt_until = None;
                } else if self.preempt_until.is_none() {
                    self.preempt_until = Some(now.saturating_add(delay));
                }
            }
        }
        // else: lower priority and free to preempt: discard; the Master_Down_Timer runs on.
    }

    fn master_rx(&mut self, now: Nanos, a: &Advert) {
        if a.priority == 0 {
            self.transmits.push_back(Transmit {
                priority: self.priority,
            });
            self.timer = Some(now.saturating_add(self.advert_interval()));
            return;
        }
        let higher =
            a.priority > self.priority || (a.priority == self.priority && a.src > self.cfg.primary);
        if higher {
            self.master_adver_cs = a.interval_cs;
            self.master = Some(a.src);
            self.become_backup(now);
        }
        // else: discard.
    }

    /// Stops the instance (RFC 5798 §6.4.3 Shutdown): a Master queues a priority-0 advert so the
    /// backup takes over after its Skew_Time. Every state goes to Initialize ([`Event::Stopped`])
    /// and stays there; adverts are then ignored.
    pub fn shutdown(&mut self, _now: Nanos) {
        if self.state == State::Initialize {
            return;
        }
        if self.state == State::Master {
            self.transmits.push_back(Transmit { priority: 0 });
        }
        self.state = State::Initialize;
        self.timer = None;
        self.events.push_back(Event::Stopped);
    }

    /// A tracked interface or script went down (`true`) or came back (`false`). Entering Fault
    /// from Master queues a priority-0 advert; leaving Fault starts the instance again (owner →
    /// Master, else Backup with its own interval and no preempt delay running). Ignored after
    /// [`VrrpInstance::shutdown`].
    pub fn set_fault(&mut self, now: Nanos, fault: bool) {
        if self.fault == fault || self.state == State::Initialize {
            self.fault = fault;
            return;
        }
        self.fault = fault;
        if fault {
            if self.state == State::Master {
                self.transmits.push_back(Transmit { priority: 0 });
            }
            self.state = State::Fault;
            self.timer = None;
            self.master = None;
            self.events.push_back(Event::BecomeFault);
        } else {
            self.master_adver_cs = self.interval_cs;
            self.start(now, false);
        }
    }

    /// A sync group member changed state: follow it into Master (from Backup) or into Backup
    /// (from Master). Any other combination changes nothing (Fault and Initialize are left by
    /// [`VrrpInstance::set_fault`] and never by a sync group). keepalived's `vrrp_sync_group`.
    pub fn follow(&mut self, now: Nanos, target: State) {
        match (self.state, target) {
            (State::Backup, State::Master) => self.become_master(now),
            (State::Master, State::Backup) => {
                self.master_adver_cs = self.interval_cs;
                self.become_backup(now);
            }
            _ => {}
        }
    }

    /// Sync groups: a BACKUP whose Master_Down_Timer ran out while another member of its group
    /// still hears a master waits until `until` instead of taking over alone (keepalived only
    /// lets a group member become master when every member wants to, which avoids thrashing).
    /// Only moves the timer of a BACKUP; ignored in any other state.
    pub fn defer_takeover(&mut self, until: Nanos) {
        if self.state == State::Backup {
            self.timer = Some(until);
        }
    }

    /// Applies a changed configuration of the same virtual router (same VRID and version; a
    /// reload): the state, the running timer and the master seen are kept; the new interval,
    /// priority, preempt settings, addresses and peers apply from the next advert or timer. The
    /// effective priority becomes the configured one (the driver re-applies track weights).
    pub fn reconfigure(&mut self, cfg: InstanceConfig) -> Result<(), BuildError> {
        if cfg.vrid != self.cfg.vrid {
            return Err(BuildError::Vrid);
        }
        if cfg.version != self.cfg.version {
            return Err(BuildError::Interval(cfg.advert_interval));
        }
        let interval_cs = validate(&cfg)?;
        let version = cfg.version;
        self.interval_cs = interval_cs;
        if self.state != State::Backup || version == Version::V2 {
            self.master_adver_cs = interval_cs;
        }
        self.priority = cfg.priority;
        if cfg.preempt_delay == 0 {
            self.preempt_until = None;
        }
        self.cfg = cfg;
        Ok(())
    }

    /// Sets the effective priority (track-script weights), clamped to 1..=254, or 1..=255 for a
    /// configured address owner. The next advert carries it and the next Skew_Time uses it; a
    /// running timer is not moved.
    pub fn set_priority(&mut self, priority: u8) {
        let range = if self.cfg.priority == rules::OWNER_PRIORITY {
            rules::PRIORITIES
        } else {
            rules::BACKUP_PRIORITIES
        };
        self.priority = priority.clamp(*range.start(), *range.end());
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;
