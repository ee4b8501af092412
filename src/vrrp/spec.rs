//! What the driver runs, as plain data: each instance resolved against the system (the control
//! plane builds these from the configuration and the interfaces; `vrrp` never reads either).

use std::net::IpAddr;

use super::{InstanceConfig, Version};
use crate::flow::Nanos;

/// One configured instance, resolved against the system (interface index and MAC, primary
/// address).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub name: String,
    pub interface: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub cfg: InstanceConfig,
    /// The VIPs with their prefix lengths, as added to the interface.
    pub prefixes: Vec<(IpAddr, u8)>,
    /// Unicast peers, of the instance's family (empty = multicast 224.0.0.18 / ff02::12).
    pub peers: Vec<IpAddr>,
    pub track_interfaces: Vec<String>,
    pub track_scripts: Vec<TrackScript>,
    pub notify: Notify,
}

/// A tracked script: `sh -c command` every `interval`; `fall` failures in a row mark it down,
/// `rise` successes up; `weight` 0 means down is FAULT, otherwise the weight moves the priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackScript {
    pub command: String,
    /// Nanoseconds between runs (also how long one run may take).
    pub interval: Nanos,
    pub rise: u32,
    pub fall: u32,
    pub weight: i32,
}

/// Commands run (`sh -c`) when the instance enters a state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
}

/// The sync groups, each as the names of its member instances. Names are resolved against the
/// instances that run (a member that could not start is left out), never by position.
pub type SyncGroups = Vec<Vec<String>>;

/// What makes two instances across a reload the same virtual router.
pub type Identity = (String, String, u8, Version);

impl InstanceSpec {
    /// Name, interface, VRID and version: equal identities across a reload keep their state.
    pub fn identity(&self) -> Identity {
        (
            self.name.clone(),
            self.interface.clone(),
            self.cfg.vrid,
            self.cfg.version,
        )
    }
}
