//! The configuration's VRRP section resolved against the system into the plain data the VRRP
//! driver runs ([`InstanceSpec`]), and the driver's view of the interfaces over netlink
//! ([`NetlinkSystem`]). This is where `control` meets `vrrp`: `vrrp` never imports `control`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::config::{self, Config, VrrpVersion};
use crate::control::netlink::{self, NetlinkError};
use crate::flow::Nanos;
use crate::vrrp::driver::{self, DriverError, System, SystemError, VrrpHandle};
use crate::vrrp::gate::VipGate;
use crate::vrrp::spec::{InstanceSpec, Notify, SyncGroups, TrackScript};
use crate::vrrp::{BuildError, InstanceConfig, Version};

/// Why an instance of the configuration cannot run on this box (`vrrp instance `NAME`: ...`).
#[derive(Debug, thiserror::Error)]
pub enum VrrpSpecError {
    #[error("vrrp instance `{instance}`: interface {interface}: {source}")]
    Interface {
        instance: String,
        interface: String,
        source: NetlinkError,
    },
    #[error("vrrp instance `{instance}`: {source}")]
    Addresses {
        instance: String,
        source: NetlinkError,
    },
    /// `what` is "IPv4 address" or "IPv6 link-local address".
    #[error("vrrp instance `{instance}`: interface {interface} has no {what} of its own to send adverts from")]
    NoPrimary {
        instance: String,
        interface: String,
        what: &'static str,
    },
    #[error("vrrp instance `{instance}`: unicast peer {peer} is not of the family of its virtual addresses")]
    PeerFamily { instance: String, peer: IpAddr },
    #[error("vrrp instance `{instance}`: {source}")]
    Invalid {
        instance: String,
        source: BuildError,
    },
}

/// The configuration's instances and sync groups, resolved: every interface must exist and have
/// an address of its own of the instance's family (the primary address adverts are sent from:
/// for IPv4 the first one that is not a VIP of any instance, for IPv6 the first link-local one,
/// RFC 5798 §5.1.2.1, as keepalived), and every instance's values must be ones it can run
/// ([`crate::vrrp::instance::validate`]), so a reload is refused before anything changes.
pub fn specs(cfg: &Config) -> Result<(Vec<InstanceSpec>, SyncGroups), VrrpSpecError> {
    let all_vips = managed_vips(cfg);
    let out = cfg
        .vrrp
        .instances
        .iter()
        .map(|i| resolve(i, &all_vips))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = cfg
        .vrrp
        .sync_groups
        .iter()
        .map(|g| g.instances.clone())
        .collect();
    Ok((out, groups))
}

/// Starts the VRRP thread with `specs` (from [`specs`]), its interfaces over netlink.
pub fn spawn(
    specs: Vec<InstanceSpec>,
    groups: SyncGroups,
    gate: Arc<VipGate>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(VrrpHandle, JoinHandle<()>), DriverError> {
    driver::spawn(specs, groups, gate, Box::new(NetlinkSystem), epoch, stop)
}

/// Every VIP of every VRRP instance of `cfg` (what the `VipGate` manages: steered only while
/// held by a MASTER).
pub fn managed_vips(cfg: &Config) -> HashSet<IpAddr> {
    cfg.vrrp
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().map(|v| v.addr))
        .collect()
}

/// Nanoseconds of `d`, saturating (a value that large is refused by the instance's checks).
fn nanos(d: Duration) -> Nanos {
    Nanos::try_from(d.as_nanos()).unwrap_or(Nanos::MAX)
}

fn resolve(
    i: &config::VrrpInstance,
    all_vips: &HashSet<IpAddr>,
) -> Result<InstanceSpec, VrrpSpecError> {
    let instance = || i.name.clone();
    let link = netlink::link_by_name(&i.interface).map_err(|source| VrrpSpecError::Interface {
        instance: instance(),
        interface: i.interface.clone(),
        source,
    })?;
    let v6 = i.vips.first().is_some_and(|v| v.addr.is_ipv6());
    let primary = netlink::interface_addresses(link.ifindex)
        .map_err(|source| VrrpSpecError::Addresses {
            instance: instance(),
            source,
        })?
        .into_iter()
        .map(|(a, _)| a)
        .find(|&a| primary_candidate(a, v6) && !all_vips.contains(&a))
        .ok_or_else(|| VrrpSpecError::NoPrimary {
            instance: instance(),
            interface: i.interface.clone(),
            what: if v6 {
                "IPv6 link-local address"
            } else {
                "IPv4 address"
            },
        })?;
    if let Some(&peer) = i.unicast_peers.iter().find(|p| p.is_ipv6() != v6) {
        return Err(VrrpSpecError::PeerFamily {
            instance: instance(),
            peer,
        });
    }
    let peers = i.unicast_peers.clone();
    let cfg = InstanceConfig {
        vrid: i.vrid,
        version: match i.version {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        },
        priority: i.priority,
        advert_interval: nanos(i.advert_interval),
        preempt: i.preempt,
        preempt_delay: nanos(i.preempt_delay),
        primary,
        vips: i.vips.iter().map(|v| v.addr).collect(),
        unicast: !peers.is_empty(),
    };
    crate::vrrp::instance::validate(&cfg).map_err(|source| VrrpSpecError::Invalid {
        instance: instance(),
        source,
    })?;
    Ok(InstanceSpec {
        name: i.name.clone(),
        interface: i.interface.clone(),
        ifindex: link.ifindex,
        mac: link.mac,
        cfg,
        prefixes: i.vips.iter().map(|v| (v.addr, v.len)).collect(),
        peers,
        track_interfaces: i.track_interfaces.clone(),
        track_scripts: i.track_scripts.iter().map(track_script).collect(),
        notify: notify(&i.notify),
    })
}

/// Whether `a` can be the primary address of an instance of the family `v6` says: any IPv4
/// address, or an IPv6 link-local one.
fn primary_candidate(a: IpAddr, v6: bool) -> bool {
    match a {
        IpAddr::V4(_) => !v6,
        IpAddr::V6(a) => v6 && a.is_unicast_link_local(),
    }
}

fn track_script(t: &config::TrackScript) -> TrackScript {
    TrackScript {
        command: t.command.clone(),
        interval: nanos(t.interval),
        rise: t.rise,
        fall: t.fall,
        weight: t.weight,
    }
}

fn notify(n: &config::Notify) -> Notify {
    Notify {
        master: n.master.clone(),
        backup: n.backup.clone(),
        fault: n.fault.clone(),
    }
}

/// The VRRP driver's interfaces, over netlink.
pub struct NetlinkSystem;

impl System for NetlinkSystem {
    fn is_up(&self, name: &str) -> bool {
        netlink::link_by_name(name).is_ok_and(|l| l.up)
    }

    fn mac(&self, name: &str) -> Option<[u8; 6]> {
        netlink::link_by_name(name).ok().map(|l| l.mac)
    }

    fn ipv6_forwarding(&self, name: &str) -> bool {
        // The name was checked as an interface name by the configuration (no '/').
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/forwarding"))
            .is_ok_and(|v| v.trim() == "1")
    }

    fn add_address(&self, ifindex: u32, addr: IpAddr, len: u8) -> Result<(), SystemError> {
        Ok(netlink::add_address(ifindex, addr, len)?)
    }

    fn del_address(&self, ifindex: u32, addr: IpAddr, len: u8) -> Result<(), SystemError> {
        Ok(netlink::del_address(ifindex, addr, len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_keep_the_wording_users_see() {
        let e = VrrpSpecError::NoPrimary {
            instance: "VI_1".into(),
            interface: "eth0".into(),
            what: "IPv4 address",
        };
        assert_eq!(
            e.to_string(),
            "vrrp instance `VI_1`: interface eth0 has no IPv4 address of its own to send adverts from"
        );
        let e = VrrpSpecError::PeerFamily {
            instance: "VI_6".into(),
            peer: "198.18.0.2".parse().unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "vrrp instance `VI_6`: unicast peer 198.18.0.2 is not of the family of its virtual addresses"
        );
        let e = VrrpSpecError::Invalid {
            instance: "VI_1".into(),
            source: BuildError::Priority,
        };
        assert_eq!(
            e.to_string(),
            "vrrp instance `VI_1`: priority 0 is reserved for the release advert; configure 1..255"
        );
    }

    #[test]
    fn the_primary_of_an_ipv6_instance_is_a_link_local_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(primary_candidate(ip("198.18.0.1"), false));
        assert!(!primary_candidate(ip("198.18.0.1"), true));
        assert!(primary_candidate(ip("fe80::1"), true));
        assert!(!primary_candidate(ip("2001:2::1"), true));
        assert!(!primary_candidate(ip("fe80::1"), false));
    }
}
