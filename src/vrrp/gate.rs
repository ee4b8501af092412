//! How the datapath treats VRRP-managed VIPs: only the MASTER forwards for them.
//!
//! As with IPVS and keepalived, a BACKUP box does not own the VIP: the address is not on its
//! interface, so its kernel answers no ARP for it and drops whatever still arrives for it
//! (`ip_forward=0`). On top of that, the XDP filter steers a VRRP-managed VIP's traffic into
//! xvs only while an instance holding it is MASTER: [`VipGate`] removes the `Dst` and
//! `DstFragments` steering keys of every managed VIP that is not held, so a backup that still
//! receives a frame for the VIP (a neighbour's stale ARP entry) never forwards it. The replies
//! of NAT real servers (`Src` keys) stay steered: a backup has no connection for them and drops
//! them (`no_connection`), and they only reach it while it holds the real servers' gateway
//! address anyway.
//!
//! The main thread sets the snapshot's keys ([`VipGate::set_keys`] at start-up and when draining
//! ends; [`VipGate::update`] on a reload, keys and managed VIPs in one write, so a VIP that
//! becomes VRRP-managed is never steered before an instance holds it); the VRRP thread opens and
//! closes VIPs ([`VipGate::hold`]). Every call writes the filter under the gate's lock, so the
//! filter always holds the keys of the latest call.
//!
//! The filter's keys alone are not enough: a frame may still reach a worker (a `Src` key, a
//! FULLNAT pool address, an ICMP error, a frame steered just before the key went away), and a
//! box that was MASTER keeps its connection entries. So the gate also keeps one "held" flag per
//! managed VIP ([`HeldFlags`], shared with every datapath snapshot through
//! [`crate::datapath::Snapshot::with_vrrp_gates`]): while it is false, `process()` forwards
//! nothing of the VIP's services, in either direction (`vrrp_backup`).
//!
//! Invariant: the held set is a subset of the managed set, a managed VIP that is not held has no
//! `Dst`/`DstFragments` key in the filter, and every VIP's flag is true exactly while it is in
//! the held set.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::steer::{SteerKey, VrrpHeld};

/// Why the sink refused the keys (the daemon's filter error, boxed: `vrrp` does not know the
/// datapath's types).
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where the gated keys go: the XDP filter's `steer` map in the daemon.
pub trait SteeringSink: Send + Sync {
    fn set_steering(&self, keys: &[SteerKey]) -> Result<(), SinkError>;
}

/// Why the gate could not apply a change. The held flags follow VRRP even then (see
/// [`VipGate::hold`]); only the filter's keys may lag.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The filter's `steer` map could not be written; the message is the sink's own.
    #[error(transparent)]
    Steering(SinkError),
}

#[derive(Default)]
struct Inner {
    keys: Vec<SteerKey>,
    managed: HashSet<IpAddr>,
    held: HashSet<IpAddr>,
}

/// The steering keys with the VIPs of non-MASTER instances taken out.
pub struct VipGate {
    sink: Box<dyn SteeringSink>,
    inner: Mutex<Inner>,
    flags: Arc<HeldFlags>,
}

/// The "held" flag of each VRRP-managed VIP, read by the workers (see the module documentation).
/// Created before the gate (the first snapshot needs its flags), written only by the gate.
#[derive(Debug, Default)]
pub struct HeldFlags {
    flags: Mutex<HashMap<IpAddr, VrrpHeld>>,
}

impl HeldFlags {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VrrpHeld>> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flags of `managed` (every VIP of every VRRP instance of a configuration), for a new
    /// snapshot. A VIP seen for the first time gets a flag that is false: it is not held (the
    /// gate only holds managed VIPs, and it had none), so a VIP that becomes VRRP-managed is
    /// never forwarded before an instance holds it.
    pub fn for_vips(&self, managed: &HashSet<IpAddr>) -> HashMap<IpAddr, VrrpHeld> {
        let mut flags = self.lock();
        managed
            .iter()
            .map(|a| (*a, flags.entry(*a).or_default().clone()))
            .collect()
    }

    /// Sets every flag from `held`, creating those of `managed` VIPs not seen yet. A VIP that is
    /// no longer managed keeps its flag (false, as it is not held), so a snapshot restored by a
    /// failed reload still shares its flags with the gate; there are only as many as VIPs ever
    /// managed.
    fn publish(&self, managed: &HashSet<IpAddr>, held: &HashSet<IpAddr>) {
        let mut flags = self.lock();
        for a in managed {
            flags.entry(*a).or_default();
        }
        for (a, f) in flags.iter() {
            f.store(held.contains(a), Ordering::Relaxed);
        }
    }

    /// Whether `addr`'s flag exists and is set (for tests and logs).
    pub fn is_held(&self, addr: IpAddr) -> bool {
        self.lock()
            .get(&addr)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// `keys` without the destination keys of managed addresses that are not held.
pub fn gated(
    keys: &[SteerKey],
    managed: &HashSet<IpAddr>,
    held: &HashSet<IpAddr>,
) -> Vec<SteerKey> {
    keys.iter()
        .filter(|k| match k {
            SteerKey::Dst { addr, .. } | SteerKey::DstFragments { addr, .. } => {
                !managed.contains(addr) || held.contains(addr)
            }
            SteerKey::Src { .. } | SteerKey::SrcFragments { .. } => true,
        })
        .copied()
        .collect()
}

impl VipGate {
    /// A gate that manages `managed` (every VIP of every VRRP instance), none held yet, and
    /// keeps `flags` (those of the snapshots' services) in step.
    pub fn new(
        sink: Box<dyn SteeringSink>,
        managed: HashSet<IpAddr>,
        flags: Arc<HeldFlags>,
    ) -> VipGate {
        flags.publish(&managed, &HashSet::new());
        VipGate {
            sink,
            inner: Mutex::new(Inner {
                managed,
                ..Inner::default()
            }),
            flags,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the filter's keys for `i` (the callers publish the held flags).
    fn apply(&self, i: &Inner) -> Result<(), GateError> {
        self.sink
            .set_steering(&gated(&i.keys, &i.managed, &i.held))
            .map_err(GateError::Steering)
    }

    /// The snapshot's steering keys changed (start-up, reload, draining finished).
    pub fn set_keys(&self, keys: Vec<SteerKey>) -> Result<(), GateError> {
        let mut i = self.lock();
        let old = std::mem::replace(&mut i.keys, keys);
        let r = self.apply(&i);
        if r.is_err() {
            i.keys = old;
        }
        r
    }

    /// A reload: the snapshot's steering keys and the set of VRRP-managed VIPs change in one
    /// write of the filter. Held addresses no longer managed are forgotten. On error nothing
    /// changed.
    pub fn update(&self, keys: Vec<SteerKey>, managed: HashSet<IpAddr>) -> Result<(), GateError> {
        let mut i = self.lock();
        let old_keys = std::mem::replace(&mut i.keys, keys);
        let old_managed = std::mem::replace(&mut i.managed, managed);
        let old_held = i.held.clone();
        let Inner { managed, held, .. } = &mut *i;
        held.retain(|a| managed.contains(a));
        let r = self.apply(&i);
        if r.is_err() {
            i.keys = old_keys;
            i.managed = old_managed;
            i.held = old_held;
        }
        // Once, with the outcome: a failed reload never flips a flag.
        self.flags.publish(&i.managed, &i.held);
        r
    }

    /// An instance holding `addrs` entered MASTER (`true`) or left it (`false`). Addresses that
    /// are not managed are steered by their keys alone and are not recorded as held.
    pub fn hold(&self, addrs: &[IpAddr], held: bool) -> Result<(), GateError> {
        let mut i = self.lock();
        for a in addrs {
            if held {
                if i.managed.contains(a) {
                    i.held.insert(*a);
                }
            } else {
                i.held.remove(a);
            }
        }
        // The flags first (a new MASTER's first steered frames find it open) and whatever the
        // filter says: they follow VRRP, and they are what `process()` obeys.
        self.flags.publish(&i.managed, &i.held);
        self.apply(&i)
    }

    /// Whether `addr` is steered now (for tests and logs).
    pub fn is_open(&self, addr: IpAddr) -> bool {
        let i = self.lock();
        !i.managed.contains(&addr) || i.held.contains(&addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;
    use std::sync::{Arc, Mutex as M};

    struct Rec(Arc<M<Vec<SteerKey>>>);
    impl SteeringSink for Rec {
        fn set_steering(&self, keys: &[SteerKey]) -> Result<(), SinkError> {
            *self.0.lock().unwrap() = keys.to_vec();
            Ok(())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn backup_vips_are_not_steered_until_held() {
        let seen = Arc::new(M::new(Vec::new()));
        let vip = ip("198.18.0.100");
        let other = ip("198.18.0.200");
        let real = ip("198.18.1.11");
        let g = VipGate::new(
            Box::new(Rec(seen.clone())),
            [vip].into_iter().collect(),
            Arc::default(),
        );
        let keys = vec![
            SteerKey::Dst {
                addr: vip,
                port: 80,
                proto: Proto::Tcp,
            },
            SteerKey::DstFragments {
                addr: vip,
                proto: Proto::Tcp,
            },
            SteerKey::Dst {
                addr: other,
                port: 80,
                proto: Proto::Tcp,
            },
            SteerKey::Src {
                addr: real,
                port: 80,
                proto: Proto::Tcp,
            },
        ];
        g.set_keys(keys.clone()).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![keys[2], keys[3]]);
        assert!(!g.is_open(vip) && g.is_open(other));
        g.hold(&[vip], true).unwrap();
        assert_eq!(*seen.lock().unwrap(), keys);
        g.hold(&[vip], false).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![keys[2], keys[3]]);
        // No longer managed: steered like any service VIP.
        g.update(keys.clone(), HashSet::new()).unwrap();
        assert_eq!(*seen.lock().unwrap(), keys);
    }

    /// Records every write of the filter.
    struct Log(Arc<M<Vec<Vec<SteerKey>>>>);
    impl SteeringSink for Log {
        fn set_steering(&self, keys: &[SteerKey]) -> Result<(), SinkError> {
            self.0.lock().unwrap().push(keys.to_vec());
            Ok(())
        }
    }

    #[test]
    fn a_vip_that_becomes_managed_on_reload_is_never_steered_before_it_is_held() {
        let writes = Arc::new(M::new(Vec::new()));
        let vip = ip("198.18.0.100");
        let dst = SteerKey::Dst {
            addr: vip,
            port: 80,
            proto: Proto::Tcp,
        };
        let g = VipGate::new(
            Box::new(Log(writes.clone())),
            HashSet::new(),
            Arc::default(),
        );
        g.set_keys(Vec::new()).unwrap();
        writes.lock().unwrap().clear();
        // The reload adds a service on the VIP and a VRRP instance for it: one write, the VIP
        // gated.
        g.update(vec![dst], [vip].into_iter().collect()).unwrap();
        assert_eq!(*writes.lock().unwrap(), vec![Vec::<SteerKey>::new()]);
        assert!(!g.is_open(vip));
        g.hold(&[vip], true).unwrap();
        assert!(g.is_open(vip));
        assert_eq!(writes.lock().unwrap().last().unwrap(), &vec![dst]);
        // Holding an unmanaged address records nothing: a later reload that manages it gates it.
        let other = ip("198.18.0.200");
        g.hold(&[other], true).unwrap();
        g.update(vec![dst], [vip, other].into_iter().collect())
            .unwrap();
        assert!(!g.is_open(other) && g.is_open(vip));
    }

    struct Failing(Arc<M<bool>>);
    impl SteeringSink for Failing {
        fn set_steering(&self, _: &[SteerKey]) -> Result<(), SinkError> {
            if *self.0.lock().unwrap() {
                Err("map full".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn held_flags_follow_the_held_set_and_start_false() {
        let vip = ip("198.18.0.100");
        let other = ip("198.18.0.200");
        let flags = Arc::new(HeldFlags::default());
        let managed: HashSet<IpAddr> = [vip].into_iter().collect();
        // The first snapshot takes its flags before the gate exists: not held.
        let snap = flags.for_vips(&managed);
        assert!(!snap[&vip].load(Ordering::Relaxed));
        let fail = Arc::new(M::new(false));
        let g = VipGate::new(Box::new(Failing(fail.clone())), managed, flags.clone());
        g.hold(&[vip], true).unwrap();
        assert!(
            snap[&vip].load(Ordering::Relaxed),
            "the snapshot's own flag"
        );
        // The flag follows VRRP even when the filter cannot be written.
        *fail.lock().unwrap() = true;
        let e = g.hold(&[vip], false).unwrap_err();
        assert!(matches!(e, GateError::Steering(_)));
        assert_eq!(e.to_string(), "map full", "the sink's message, as it was");
        assert!(!snap[&vip].load(Ordering::Relaxed));
        *fail.lock().unwrap() = false;
        g.hold(&[vip], true).unwrap();
        // A reload makes `other` managed: its flag, taken for the new snapshot before the gate
        // hears of it, is false, and an unmanaged hold never sets it.
        let both: HashSet<IpAddr> = [vip, other].into_iter().collect();
        let snap2 = flags.for_vips(&both);
        assert!(!snap2[&other].load(Ordering::Relaxed));
        assert!(Arc::ptr_eq(&snap[&vip], &snap2[&vip]), "one flag per VIP");
        g.hold(&[other], true).unwrap();
        assert!(!snap2[&other].load(Ordering::Relaxed));
        g.update(Vec::new(), both.clone()).unwrap();
        assert!(!flags.is_held(other) && flags.is_held(vip));
        g.hold(&[other], true).unwrap();
        assert!(snap2[&other].load(Ordering::Relaxed));
        // A failed reload that would stop managing `vip` leaves its flag as it was, and the
        // restored snapshot's flags are still the gate's.
        *fail.lock().unwrap() = true;
        assert!(g.update(Vec::new(), [other].into_iter().collect()).is_err());
        *fail.lock().unwrap() = false;
        assert!(snap[&vip].load(Ordering::Relaxed));
        g.hold(&[vip], false).unwrap();
        assert!(!snap[&vip].load(Ordering::Relaxed));
        // No longer managed: forgotten as held, its flag false.
        g.hold(&[vip], true).unwrap();
        g.update(Vec::new(), [other].into_iter().collect()).unwrap();
        assert!(!snap[&vip].load(Ordering::Relaxed));
    }
}
