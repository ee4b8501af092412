//! A reload, decided without IO: which instances stop, which keep their state and take new
//! values in place, which start, and which addresses the box gives up.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{held_by, kill_runs, scripts_of, Member, Router};
use crate::flow::Nanos;
use crate::vrrp::spec::{Identity, InstanceSpec};

/// What a reload changed that the driver must carry out (besides the queued actions).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Addresses (interface index, VIP, prefix length) that instances holding them no longer
    /// have and no other holding instance has: to remove from the interface.
    pub dropped: Vec<(u32, IpAddr, u8)>,
    /// VIPs that instances holding them no longer have and no other holding instance has: to
    /// stop steering (a VIP moved from a MASTER instance to a BACKUP one).
    pub released: Vec<IpAddr>,
    /// `VRRP instance X removed`, one line per instance dropped.
    pub removed: Vec<String>,
    /// One line per other change (`VRRP instance X added`, `... changed`, refusals).
    pub lines: Vec<String>,
}

impl Router {
    /// First step of a reload: the instances `specs` no longer has shut down (a MASTER queues
    /// its priority-0 advert and releases its VIPs), with no sync-group following while they
    /// go. Carry out the queued actions, then call [`Router::reload`].
    pub fn stop_removed(&mut self, now: Nanos, specs: &[InstanceSpec]) {
        let keep: HashSet<Identity> = specs.iter().map(InstanceSpec::identity).collect();
        let mut any = false;
        for m in &mut self.members {
            if !keep.contains(&m.spec.identity()) {
                m.inst.shutdown(now);
                any = true;
            }
        }
        if any {
            let groups = std::mem::take(&mut self.groups);
            self.flush(now);
            self.groups = groups;
        }
    }

    /// Second step: the instances not in `specs` are dropped (their scripts killed); a kept one
    /// (same identity) takes its new configuration in place (or, if refused, keeps running its
    /// old one), a new one starts (or is left out, with a line). Sync groups are resolved by
    /// member name against the instances that run, so a member that did not start never
    /// shifts the others. Faults and priorities apply at the next `handle_*`.
    pub fn reload(
        &mut self,
        now: Nanos,
        specs: Vec<InstanceSpec>,
        groups: &[Vec<String>],
    ) -> Reload {
        self.dirty = true;
        let mut removed = Vec::new();
        let mut lines = Vec::new();
        let keep: HashSet<Identity> = specs.iter().map(InstanceSpec::identity).collect();
        let mut old = std::mem::take(&mut self.members);
        for mut m in old.extract_if(.., |m| !keep.contains(&m.spec.identity())) {
            kill_runs(&mut m.scripts, &mut self.actions);
            removed.push(format!("VRRP instance {} removed", m.spec.name));
        }
        let mut given_up: Vec<(u32, IpAddr, u8)> = Vec::new();
        for spec in specs {
            let found = old
                .iter()
                .position(|m| m.spec.identity() == spec.identity());
            let m = match found {
                Some(p) => self.keep(old.remove(p), spec, now, &mut given_up, &mut lines),
                None => start(spec, now, &mut lines),
            };
            self.members.extend(m);
        }
        self.set_groups(groups);
        let dropped: Vec<(u32, IpAddr, u8)> = given_up
            .iter()
            .copied()
            .filter(|&(x, a, l)| !held_by(&self.members, Some(x), a, Some(l)))
            .collect();
        let mut released: Vec<IpAddr> = given_up
            .iter()
            .map(|&(_, a, _)| a)
            .filter(|&a| !held_by(&self.members, None, a, None))
            .collect();
        released.sort();
        released.dedup();
        Reload {
            dropped,
            released,
            removed,
            lines,
        }
    }

    /// A kept instance takes `spec` in place; the addresses it held and no longer has go to
    /// `given_up`. Refused: it keeps its old spec, with a line.
    fn keep(
        &mut self,
        mut m: Member,
        spec: InstanceSpec,
        now: Nanos,
        given_up: &mut Vec<(u32, IpAddr, u8)>,
        lines: &mut Vec<String>,
    ) -> Option<Member> {
        if m.spec == spec {
            return Some(m);
        }
        if let Err(e) = m.inst.reconfigure(spec.cfg.clone()) {
            lines.push(format!(
                "VRRP instance {}: {e}; it keeps running its previous configuration",
                spec.name
            ));
            return Some(m);
        }
        lines.push(format!("VRRP instance {} changed", spec.name));
        if m.holding {
            for &(a, l) in &m.spec.prefixes {
                if !spec.prefixes.contains(&(a, l)) {
                    given_up.push((m.spec.ifindex, a, l));
                }
            }
        }
        if m.spec.track_scripts != spec.track_scripts {
            kill_runs(&mut m.scripts, &mut self.actions);
            m.scripts = scripts_of(&spec, now);
        }
        m.spec = spec;
        Some(m)
    }

    /// The groups by member name, as indices into the members that run.
    fn set_groups(&mut self, groups: &[Vec<String>]) {
        self.groups = groups
            .iter()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| self.members.iter().position(|m| &m.spec.name == n))
                    .collect()
            })
            .collect();
        for m in &mut self.members {
            m.group = None;
        }
        for (g, members) in self.groups.iter().enumerate() {
            for &k in members {
                if let Some(m) = self.members.get_mut(k) {
                    m.group = Some(g);
                }
            }
        }
    }
}

/// A new instance, or `None` with a line when it cannot start.
fn start(spec: InstanceSpec, now: Nanos, lines: &mut Vec<String>) -> Option<Member> {
    let name = spec.name.clone();
    match Member::new(spec, now) {
        Ok(m) => {
            lines.push(format!("VRRP instance {name} added"));
            Some(m)
        }
        Err(e) => {
            lines.push(format!("VRRP instance {name}: {e}; it is not started"));
            None
        }
    }
}
