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
//! Invariant: the held set is a subset of the managed set, and a managed VIP that is not held
//! has no `Dst`/`DstFragments` key in the filter.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::datapath::snapshot::SteerKey;

/// Where the gated keys go: the XDP filter's `steer` map in the daemon.
pub trait SteeringSink: Send + Sync {
    fn set_steering(&self, keys: &[SteerKey]) -> Result<(), String>;
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
    /// A gate that manages `managed` (every VIP of every VRRP instance), none held yet.
    pub fn new(sink: Box<dyn SteeringSink>, managed: HashSet<IpAddr>) -> VipGate {
        VipGate {
            sink,
            inner: Mutex::new(Inner {
                managed,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, i: &Inner) -> Result<(), String> {
        self.sink.set_steering(&gated(&i.keys, &i.managed, &i.held))
    }

    /// The snapshot's steering keys changed (start-up, reload, draining finished).
    pub fn set_keys(&self, keys: Vec<SteerKey>) -> Result<(), String> {
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
    pub fn update(&self, keys: Vec<SteerKey>, managed: HashSet<IpAddr>) -> Result<(), String> {
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
        r
    }

    /// An instance holding `addrs` entered MASTER (`true`) or left it (`false`). Addresses that
    /// are not managed are steered by their keys alone and are not recorded as held.
    pub fn hold(&self, addrs: &[IpAddr], held: bool) -> Result<(), String> {
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
        fn set_steering(&self, keys: &[SteerKey]) -> Result<(), String> {
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
        let g = VipGate::new(Box::new(Rec(seen.clone())), [vip].into_iter().collect());
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
        fn set_steering(&self, keys: &[SteerKey]) -> Result<(), String> {
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
        let g = VipGate::new(Box::new(Log(writes.clone())), HashSet::new());
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
}
