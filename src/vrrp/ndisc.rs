//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6): the IPv6 counterpart of
//! [`super::garp`], the frame a new master multicasts for each IPv6 VIP so that neighbours
//! (clients, routers, real servers) point their neighbour caches at it at once.
//!
//! Frame, as keepalived builds it: Ethernet to 33:33:00:00:00:01 from the interface's MAC; IPv6
//! from the VIP itself to all-nodes ff02::1, hop limit 255 (RFC 4861 §7.1.2: a receiver drops
//! any other), traffic class and flow label 0; a neighbour advertisement with target = the VIP,
//! Override set (replace the cached link-layer address), Solicited clear, Router set only when
//! the box forwards IPv6 on the interface (keepalived reads the interface's `forwarding`
//! sysctl: a neighbour that had the address as a router keeps it as one), and the target
//! link-layer address option with the interface's MAC. Every header is written by the wire
//! layer's `Repr`s ([`EthernetRepr`], [`Ipv6Repr`], [`NeighbourAdvertRepr`]).
//!
//! Schedule: keepalived's gratuitous-ARP settings apply to neighbour advertisements too
//! (`vrrp_garp_master_repeat 5`, `vrrp_garp_master_delay 5`): [`super::garp::MASTER_REPEAT`] per
//! VIP on entering MASTER and as many again [`super::garp::MASTER_DELAY`] later if still master.

use std::net::Ipv6Addr;

use crate::wire::ndisc::{self, NeighbourAdvertRepr};
use crate::wire::{ethernet, ipv6, EtherType, EthernetRepr, Ipv6Repr};

/// Length of the frame (no padding needed: above the 60-byte minimum).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndisc::LEN_WITH_MAC;

/// The unsolicited neighbour advertisement for `vip` from `mac`; `router` sets the R flag.
pub fn frame(mac: [u8; 6], vip: Ipv6Addr, router: bool) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let na = NeighbourAdvertRepr {
        router,
        solicited: false,
        override_cache: true,
        target: vip,
        target_mac: Some(mac),
    };
    let ip = Ipv6Repr {
        src: vip,
        dst: ndisc::ALL_NODES,
        next_header: ipv6::ICMPV6,
        payload_len: na.buffer_len(),
        hop_limit: ndisc::HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    };
    let ethernet = EthernetRepr {
        src: mac,
        dst: ndisc::ALL_NODES_MAC,
        ethertype: EtherType::IPV6,
    };
    let (eth, rest) = f.split_at_mut(ethernet::HEADER_LEN);
    // FRAME_LEN is exactly the three headers, so no emit can find its buffer short.
    let written = ethernet
        .emit(eth)
        .and_then(|()| ip.emit(rest))
        .and_then(|()| na.emit(&mut rest[ipv6::HEADER_LEN..], vip, ndisc::ALL_NODES));
    debug_assert_eq!(written, Ok(()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unsolicited neighbour advertisement keepalived 2.2.7 sent on entering MASTER, captured
    /// with `tests/fixtures/vrrp6_keepalived/capture.sh`: VIP 2001:2::100, MAC
    /// 02:00:00:00:00:0a, IPv6 forwarding off.
    const KEEPALIVED_NA: &[u8] = include_bytes!("../../tests/fixtures/vrrp6_keepalived/na.bin");

    #[test]
    fn byte_exact_with_keepalived() {
        let f = frame([2, 0, 0, 0, 0, 0x0a], "2001:2::100".parse().unwrap(), false);
        assert_eq!(&f[..], KEEPALIVED_NA);
    }

    #[test]
    fn the_router_flag_follows_forwarding() {
        let vip: Ipv6Addr = "2001:2::100".parse().unwrap();
        let f = frame([2, 0, 0, 0, 0, 0x0a], vip, true);
        let p = crate::wire::Icmpv6Packet::new_checked(&f[54..]).unwrap();
        let na = NeighbourAdvertRepr::parse(&p, vip, ndisc::ALL_NODES).unwrap();
        assert!(na.router && na.override_cache && !na.solicited);
        assert_eq!(na.target, vip);
        assert_eq!(f[14 + 7], 255, "hop limit");
    }
}
