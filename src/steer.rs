//! What the XDP filter steers and which VRRP-managed VIPs this box holds: the two types the
//! datapath, the control plane and VRRP's gate all name, kept here so that none of them imports
//! another's internals for them (`vrrp` imports neither `control` nor `datapath` for these).
//!
//! Plain data only: no I/O, no logic beyond the type definitions.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::flow::Proto;

/// A key the XDP filter program matches to steer a frame into the AF_XDP sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SteerKey {
    /// Frames whose destination is this address/port/protocol (a virtual service).
    Dst {
        addr: IpAddr,
        port: u16,
        proto: Proto,
    },
    /// Frames whose source is this address/port/protocol (replies of a NAT real server).
    Src {
        addr: IpAddr,
        port: u16,
        proto: Proto,
    },
    /// Later fragments (no ports) whose destination is this address (a VIP).
    DstFragments { addr: IpAddr, proto: Proto },
    /// Later fragments whose source is this address (a NAT real server).
    SrcFragments { addr: IpAddr, proto: Proto },
}

/// The "held" flag of one VRRP-managed VIP: `true` while an instance of this box holding the VIP
/// is MASTER. One flag per VIP, shared by every snapshot and the control plane's `VipGate`
/// (its only writer), so a VRRP transition takes effect at the next packet without a new
/// snapshot.
pub type VrrpHeld = Arc<AtomicBool>;
