//! VRRP failover (RFC 5798 as revised by RFC 9568, and RFC 3768), interoperable with keepalived.
//!
//! Built so far, both sans-IO (no sockets, no clock reads; the caller passes `now` and bytes):
//! - [`packet`]: the advertisement's wire format for VRRPv2 and VRRPv3 over IPv4 and VRRPv3 over
//!   IPv6 — a checked view ([`packet::VrrpPacket`], [`packet::parse_ipv4`],
//!   [`packet::parse_ipv6`], [`packet::parse_message_v6`]) and an encoder into a caller buffer
//!   of the VRRP message, the whole IP packet and the Ethernet frame of either family
//!   ([`packet::encode_frame`]), byte-compatible with what keepalived sends.
//! - [`instance`]: one virtual router as a state machine ([`instance::VrrpInstance`]): Initialize,
//!   Backup, Master (RFC 5798 §6.4) plus keepalived's Fault, driven by
//!   `handle_advert(now, ..)`, `handle_timeout(now)`, `poll_timeout()`, `poll_transmit()`,
//!   `poll_event()`, `shutdown(now)`, `set_fault(now, ..)`, `set_priority(..)`.
//! - [`VrrpError`]: every reason a received advertisement is rejected, with the stable `reason`
//!   label of `xvs_vrrp_errors_total`.
//!
//! - [`router`]: every instance of the box with its sync group, tracked scripts and tracked
//!   interfaces ([`Router`]), sans-IO too: `handle_advert`, `handle_timeout`, `handle_links`,
//!   `handle_script_result`, `reload`, `shutdown` (each with `now`), then `poll_action()`.
//! - [`spec`]: the plain data the control plane resolves from the configuration for the driver.
//! - [`driver`]: the thread that runs the instances on the box: one raw socket of protocol 112
//!   per interface and family ([`socket`]; TTL / hop limit 255, membership of 224.0.0.18 /
//!   ff02::12, or unicast peers; IPv6 from the link-local address), adverts
//!   demultiplexed to instances by VRID with every rejection counted by reason, VIPs added and
//!   removed by netlink, gratuitous ARPs ([`garp`]) and unsolicited neighbour advertisements
//!   ([`ndisc`]) with keepalived's defaults, tracked interfaces
//!   and scripts, sync groups, notify commands, the metrics and `xvs ctl vrrp` status, reloads
//!   that keep each unchanged instance's state, and the priority-0 release on a clean stop.
//! - [`gate`]: only a MASTER's VIPs are steered into the datapath.
//!
//! `vrrp` imports neither `control` nor the datapath's internals: the control plane hands it
//! [`spec::InstanceSpec`]s, a [`driver::System`] (netlink) and a [`gate::SteeringSink`] (the XDP
//! filter); the steering types come from [`crate::steer`].
//! - [`status`]: what `xvs ctl vrrp` and the `xvs_vrrp_*` metrics show.
//!
//! IPv6: VRRPv3 only (VRRPv2 over IPv6 is not defined: refused in configuration and dropped on
//! receive as `version`); one family per instance, an IPv4 and an IPv6 instance of a dual-stack
//! pair share a sync group (and may share a VRID: adverts are demultiplexed by family too).

pub mod driver;
pub mod garp;
pub mod gate;
pub mod instance;
pub mod ndisc;
pub mod packet;
pub mod router;
pub mod socket;
pub mod spec;
pub mod status;

pub use instance::{Event, InstanceConfig, State, Transmit, VrrpInstance};
pub use packet::{Advert, Version};
pub use router::Router;

macro_rules! vrrp_errors {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )*) => {
        /// Why a received advertisement was rejected (RFC 5798 §7.1, RFC 3768 §7.1, and the
        /// checks keepalived adds). `Copy`, and doubles as an index into a counter array; the
        /// label is the `reason` of `xvs_vrrp_errors_total`. Labels are stable: never renamed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum VrrpError {
            $( $(#[$doc])* $variant, )*
        }

        impl VrrpError {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [VrrpError] = &[$(VrrpError::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = VrrpError::ALL.len();

            /// The `reason` label of `xvs_vrrp_errors_total`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(VrrpError::$variant => $label,)*
                }
            }

            /// Index into a counter array.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for VrrpError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }

        impl std::error::Error for VrrpError {}
    };
}

vrrp_errors! {
    /// Not an IP header xvs accepts for VRRP: version not 4 (6), IHL below 5, protocol (the
    /// upper layer after the extension headers) not 112, an extension header xvs does not walk,
    /// or a fragment (the kernel reassembles for a raw socket; a frame seen raw is dropped).
    IpHeader => "ip_header",
    /// The packet is cut short or longer than it says: IPv4 total length not the received
    /// length, or the VRRP message not exactly 8 bytes + the addresses its count announces
    /// (+ 8 bytes of authentication data in v2). RFC: "MUST verify that the received packet
    /// contains the complete VRRP packet".
    Length => "length",
    /// The IPv4 header checksum or the VRRP checksum does not verify (v3: including the IPv4 or
    /// IPv6 pseudo-header, RFC 5798 §5.2.8).
    Checksum => "checksum",
    /// The version is not 2 or 3, not the instance's configured version, or 2 over IPv6 (which
    /// RFC 3768 does not define).
    Version => "version",
    /// The type is not 1 (ADVERTISEMENT).
    Type => "type",
    /// The IPv4 TTL or the IPv6 hop limit is not 255 (checked for multicast instances;
    /// keepalived skips it for unicast peers, which may be routed, and so does xvs).
    Ttl => "ttl",
    /// The VRID is not the instance's (the driver counts adverts for VRIDs it runs no instance
    /// for under this reason too, as the VRRP MIB's `VrIdErrors` does).
    Vrid => "vrid",
    /// The local router is the address owner (priority 255): RFC 5798 §7.1 discards every
    /// advert for the VRID. Expect a few while an owner takes over from a backup; a count that
    /// keeps growing means a second router claims the owner's VRID.
    Owner => "owner",
    /// v2: the authentication type is not 0 (none). xvs implements neither keepalived's
    /// `auth_type PASS` nor `AH` (RFC 3768 removed authentication); peers must not configure it.
    AuthType => "auth_type",
    /// v2: the advert interval differs from the configured one (RFC 3768 §7.1: MUST discard).
    IntervalMismatch => "interval_mismatch",
    /// v3: the Max Adver Int is 0, which would make a backup's Master_Down_Interval its Skew_Time.
    ZeroInterval => "zero_interval",
    /// The count of addresses differs from the instance's number of VIPs (keepalived's check).
    AddressCount => "address_count",
    /// One of the instance's VIPs is missing from the advert's address list. RFC: MAY verify;
    /// keepalived drops the advert and logs "ip address associated with VRID not present in
    /// MASTER advert", and so does xvs.
    AddressList => "address_list",
    /// IPv6, multicast: the source is not a link-local address (RFC 5798 §5.1.2.1: adverts are
    /// sent from the interface's link-local address; one from a global address has crossed a
    /// router or comes from a misconfigured peer).
    SourceNotLinkLocal => "source_not_link_local",
}

/// Why an advertisement could not be encoded or an instance not built: a caller error, never
/// the network's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("buffer of {have} bytes is too small, {need} needed")]
    BufferTooSmall { have: usize, need: usize },
    #[error("{0} addresses do not fit the 8-bit count field")]
    TooManyAddresses(usize),
    #[error("at least one virtual address is required")]
    NoAddresses,
    /// An IP source, destination or primary address not of the virtual addresses' family.
    #[error("address {0} is not of the virtual addresses' family")]
    FamilyMismatch(std::net::IpAddr),
    /// An IPv6 instance sending to ff02::12 must send from a link-local address.
    #[error("primary address {0} is not link-local (fe80::/10): IPv6 adverts to ff02::12 are sent from the interface's link-local address")]
    PrimaryNotLinkLocal(std::net::IpAddr),
    #[error("vrid 0 is out of range 1..255")]
    Vrid,
    #[error("priority 0 is reserved for the release advert; configure 1..255")]
    Priority,
    /// The virtual addresses mix families, or are IPv6 in VRRPv2 ([`instance::rules`]).
    #[error(transparent)]
    Family(#[from] instance::rules::FamilyError),
    #[error("advert interval {0} ns is out of range for this version (v2: whole seconds 1..255 s; v3: a multiple of 10 ms, 10 ms..40.95 s)")]
    Interval(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indices_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in VrrpError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(seen.insert(e.label()), "duplicate label {}", e.label());
        }
        assert_eq!(VrrpError::COUNT, VrrpError::ALL.len());
    }
}
