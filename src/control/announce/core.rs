//! The announcer's decisions, sans IO: which VIPs should have a route ([`wanted`]), and what to
//! add or delete to get there from what is installed ([`Core::plan`]).
//!
//! Invariants: `installed` is what the kernel's table holds as far as the core knows: it
//! changes only when the caller reports an action done ([`Core::applied`]) or what the kernel
//! really holds ([`Core::resync`]). A plan never adds a VIP that is not ready, deletes every
//! installed VIP that is not (or that the configuration no longer has), and is empty once the
//! table matches. Nothing here reads a clock or makes a syscall.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Why a VIP is not announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A service on the VIP has lost quorum (as the health checks count it).
    Quorum,
    /// `xvs ctl drain`.
    Drained,
    /// The daemon is stopping.
    Stopping,
    /// No service has this VIP any more (a reload removed it).
    Removed,
    /// Ready, but the kernel refused the route (the log says why; retried at each evaluation).
    Failed,
}

impl Reason {
    /// The word `xvs ctl announce` and its JSON show (`withdrawn: quorum`).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Quorum => "quorum",
            Reason::Drained => "drained",
            Reason::Stopping => "stopping",
            Reason::Removed => "removed",
            Reason::Failed => "failed",
        }
    }

    /// The words of the log line (`withdrawn (quorum lost)`).
    pub fn log_words(self) -> &'static str {
        match self {
            Reason::Quorum => "quorum lost",
            Reason::Drained => "drained",
            Reason::Stopping => "stopping",
            Reason::Removed => "removed from the configuration",
            Reason::Failed => "route refused by the kernel",
        }
    }
}

/// Each VIP of the configuration with `None` when it is ready (every service on it has
/// quorum and the box is not drained), else why not. `services` yields each service's VIP and
/// whether it has quorum; a VIP with several services (ports, protocols) is ready only when all
/// of them are: a router sends the VIP's whole traffic to the box, not one port's. Quorum lost
/// wins over drained as the reason (undraining would not bring that VIP back).
pub fn wanted(
    services: impl IntoIterator<Item = (IpAddr, bool)>,
    drained: bool,
) -> BTreeMap<IpAddr, Option<Reason>> {
    let mut out: BTreeMap<IpAddr, Option<Reason>> = BTreeMap::new();
    for (vip, quorum) in services {
        let slot = out.entry(vip).or_insert(None);
        if !quorum {
            *slot = Some(Reason::Quorum);
        }
    }
    if drained {
        for slot in out.values_mut() {
            slot.get_or_insert(Reason::Drained);
        }
    }
    out
}

/// One change to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add(IpAddr),
    Del(IpAddr, Reason),
}

/// What is installed, and whether the box is drained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Core {
    installed: BTreeSet<IpAddr>,
    drained: bool,
}

impl Core {
    pub fn new() -> Core {
        Core::default()
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// `xvs ctl drain` (true) or `undrain` (false); the next plan follows.
    pub fn set_drained(&mut self, drained: bool) {
        self.drained = drained;
    }

    pub fn is_installed(&self, vip: IpAddr) -> bool {
        self.installed.contains(&vip)
    }

    /// The changes that make the table match `wanted` ([`wanted`]'s map): deletions first
    /// (a withdrawal is never held up by an addition that fails), each set in address order.
    pub fn plan(&self, wanted: &BTreeMap<IpAddr, Option<Reason>>) -> Vec<Action> {
        let dels = self
            .installed
            .iter()
            .filter_map(|vip| match wanted.get(vip) {
                None => Some(Action::Del(*vip, Reason::Removed)),
                Some(Some(why)) => Some(Action::Del(*vip, *why)),
                Some(None) => None,
            });
        let adds = wanted
            .iter()
            .filter(|(vip, why)| why.is_none() && !self.installed.contains(vip))
            .map(|(vip, _)| Action::Add(*vip));
        dels.chain(adds).collect()
    }

    /// Every installed VIP deleted, for a clean stop.
    pub fn plan_stop(&self) -> Vec<Action> {
        self.installed
            .iter()
            .map(|vip| Action::Del(*vip, Reason::Stopping))
            .collect()
    }

    /// The caller did `a` (the kernel acknowledged it).
    pub fn applied(&mut self, a: Action) {
        match a {
            Action::Add(vip) => self.installed.insert(vip),
            Action::Del(vip, _) => self.installed.remove(&vip),
        };
    }

    /// What the kernel's table really holds (through the announcer's device) becomes what is
    /// installed. Returns the VIPs the core had installed that are gone (someone deleted the
    /// route by hand): the next plan adds them back if they are still ready.
    pub fn resync(&mut self, kernel: BTreeSet<IpAddr>) -> Vec<IpAddr> {
        let lost = self.installed.difference(&kernel).copied().collect();
        self.installed = kernel;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const A: &str = "198.18.0.100";
    const B: &str = "198.18.0.101";
    const C: &str = "2001:2::100";

    /// Applies every action of the plan, as a kernel that accepts them all would.
    fn run(core: &mut Core, wanted: &BTreeMap<IpAddr, Option<Reason>>) -> Vec<Action> {
        let plan = core.plan(wanted);
        for a in &plan {
            core.applied(*a);
        }
        assert_eq!(core.plan(wanted), vec![], "a second plan is empty");
        plan
    }

    #[test]
    fn a_vip_is_ready_only_while_every_service_on_it_has_quorum() {
        let w = wanted(
            [(ip(A), true), (ip(A), false), (ip(B), true), (ip(C), true)],
            false,
        );
        assert_eq!(
            w,
            BTreeMap::from([(ip(A), Some(Reason::Quorum)), (ip(B), None), (ip(C), None)])
        );
        // Drained: every VIP withdrawn; quorum stays the reason where it is lost too.
        let w = wanted([(ip(A), false), (ip(B), true)], true);
        assert_eq!(
            w,
            BTreeMap::from([
                (ip(A), Some(Reason::Quorum)),
                (ip(B), Some(Reason::Drained))
            ])
        );
        assert!(wanted([], true).is_empty());
    }

    #[test]
    fn plans_add_what_is_ready_and_delete_what_is_not() {
        let mut core = Core::new();
        let all_up = wanted([(ip(A), true), (ip(B), true), (ip(C), true)], false);
        assert_eq!(
            run(&mut core, &all_up),
            vec![Action::Add(ip(A)), Action::Add(ip(B)), Action::Add(ip(C))]
        );
        // B loses quorum: only B is withdrawn, with that reason.
        let b_down = wanted([(ip(A), true), (ip(B), false), (ip(C), true)], false);
        assert_eq!(
            run(&mut core, &b_down),
            vec![Action::Del(ip(B), Reason::Quorum)]
        );
        assert!(!core.is_installed(ip(B)) && core.is_installed(ip(A)));
        // Back up: announced again.
        assert_eq!(run(&mut core, &all_up), vec![Action::Add(ip(B))]);
        // A reload removes C: withdrawn as removed.
        let no_c = wanted([(ip(A), true), (ip(B), true)], false);
        assert_eq!(
            run(&mut core, &no_c),
            vec![Action::Del(ip(C), Reason::Removed)]
        );
    }

    #[test]
    fn drain_withdraws_everything_and_undrain_brings_back_what_is_ready() {
        let mut core = Core::new();
        let services = [(ip(A), true), (ip(B), true)];
        run(&mut core, &wanted(services, false));
        core.set_drained(true);
        assert_eq!(
            run(&mut core, &wanted(services, true)),
            vec![
                Action::Del(ip(A), Reason::Drained),
                Action::Del(ip(B), Reason::Drained)
            ]
        );
        // While drained, a quorum change adds nothing.
        assert_eq!(
            run(&mut core, &wanted([(ip(A), false), (ip(B), true)], true)),
            vec![]
        );
        core.set_drained(false);
        // Undrained while A has no quorum: only B comes back.
        assert_eq!(
            run(&mut core, &wanted([(ip(A), false), (ip(B), true)], false)),
            vec![Action::Add(ip(B))]
        );
    }

    #[test]
    fn a_failed_action_is_planned_again_and_deletions_come_first() {
        let mut core = Core::new();
        let w = wanted([(ip(A), true), (ip(B), true)], false);
        let plan = core.plan(&w);
        // The kernel refused B: only A is installed, and B is in the next plan.
        core.applied(plan[0]);
        assert_eq!(core.plan(&w), vec![Action::Add(ip(B))]);
        let w2 = wanted([(ip(A), false), (ip(B), true)], false);
        assert_eq!(
            core.plan(&w2),
            vec![Action::Del(ip(A), Reason::Quorum), Action::Add(ip(B))]
        );
    }

    #[test]
    fn resync_reports_routes_deleted_by_hand_and_forgets_them_so_they_come_back() {
        let mut core = Core::new();
        let w = wanted([(ip(A), true), (ip(B), true)], false);
        run(&mut core, &w);
        let lost = core.resync(BTreeSet::from([ip(A)]));
        assert_eq!(lost, vec![ip(B)]);
        assert_eq!(core.plan(&w), vec![Action::Add(ip(B))]);
        // A route someone added through the device for an address xvs does not announce is
        // deleted.
        let lost = core.resync(BTreeSet::from([ip(A), ip(B), ip(C)]));
        assert!(lost.is_empty());
        assert_eq!(core.plan(&w), vec![Action::Del(ip(C), Reason::Removed)]);
    }

    #[test]
    fn stop_deletes_every_installed_route() {
        let mut core = Core::new();
        run(&mut core, &wanted([(ip(A), true), (ip(C), true)], false));
        assert_eq!(
            core.plan_stop(),
            vec![
                Action::Del(ip(A), Reason::Stopping),
                Action::Del(ip(C), Reason::Stopping)
            ]
        );
        assert_eq!(Core::new().plan_stop(), vec![]);
    }
}
