//! Gratuitous ARP: the frame a new master broadcasts for each VIP so that neighbours (clients,
//! routers, real servers using the VIP as gateway) point their ARP caches at it at once, and
//! when to send them (keepalived's defaults).
//!
//! Frame: Ethernet broadcast from the interface's MAC, ARP request (op 1) with sender = target =
//! the VIP, sender hardware address = the interface's MAC, target hardware address zero (an ARP
//! announcement, RFC 5227 §3). Linux updates an existing neighbour entry from such a frame
//! whatever its lock time (`arp_is_garp`).
//!
//! Schedule (keepalived's defaults, `vrrp_garp_master_delay 5`, `vrrp_garp_master_repeat 5`,
//! `vrrp_garp_interval 0`, `vrrp_garp_master_refresh 0`): on entering MASTER a burst of
//! [`MASTER_REPEAT`] ARPs per VIP at once, and a second burst [`MASTER_DELAY`] later if still
//! master; no periodic refresh.

use std::net::Ipv4Addr;

use crate::flow::{Nanos, NANOS_PER_SEC};
use crate::wire::{arp, ethernet, ArpRepr, EtherType, EthernetRepr};

/// Gratuitous ARPs per VIP in each burst (keepalived `garp_master_repeat`, default 5).
pub const MASTER_REPEAT: usize = 5;
/// Delay of the second burst after entering MASTER (keepalived `garp_master_delay`, default 5 s).
pub const MASTER_DELAY: Nanos = 5 * NANOS_PER_SEC;
/// Length of the frame (no padding; the NIC pads to 60 bytes).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + arp::LEN;

/// The gratuitous ARP for `vip` from `mac`: Ethernet broadcast, ARP announcement.
pub fn frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let ethernet = EthernetRepr {
        src: mac,
        dst: [0xff; 6],
        ethertype: EtherType::ARP,
    };
    let (header, arp) = f.split_at_mut(ethernet::HEADER_LEN);
    // FRAME_LEN is exactly the two headers, so neither emit can find its buffer short.
    let written = ethernet
        .emit(header)
        .and_then(|()| ArpRepr::announcement(mac, vip).emit(arp));
    debug_assert_eq!(written, Ok(()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_gratuitous_arp() {
        let f = frame([2, 0x18, 0, 0, 0, 0x0b], Ipv4Addr::new(198, 18, 0, 100));
        let want: [u8; FRAME_LEN] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x18, 0, 0, 0, 0x0b, 0x08,
            0x06, // Ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, // ARP request, Ethernet/IPv4
            2, 0x18, 0, 0, 0, 0x0b, 198, 18, 0, 100, // sender
            0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // target
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn keepalived_defaults() {
        assert_eq!(MASTER_REPEAT, 5);
        assert_eq!(MASTER_DELAY, 5 * NANOS_PER_SEC);
    }
}
