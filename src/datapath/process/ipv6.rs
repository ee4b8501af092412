//! IPv6 parsing: an Ethernet payload of EtherType 0x86DD into the packet the pipeline handles,
//! the same [`Parsed`] flow as IPv4's (a [`FlowKey`] of IPv6 addresses), so NAT6 and DR6 go
//! through the same original/reply/route steps as IPv4.
//!
//! - The fixed header is checked ([`Ipv6Packet::new_checked`]) and the extension headers walked
//!   under the wire layer's bounded policy ([`Ipv6Packet::upper_layer`]); every malformation is
//!   a drop reason of its own (`truncated_ipv6`, `ipv6_ext_header_chain`, ...).
//! - TCP and UDP become a flow; the transport header starts after the extension headers. A UDP
//!   checksum of 0 is not allowed over IPv6 (RFC 8200 §8.1): dropped as `udp_zero_checksum_ipv6`
//!   (the rest of the checksum is not verified, as over IPv4: the incremental update keeps a bad
//!   one bad).
//! - Fragments: a first fragment (offset 0) of a TCP/UDP datagram is a flow when its transport
//!   header is there (RFC 7112 wants the whole header chain in the first fragment; a transport
//!   header cut short is dropped as over IPv4), and one with more to come is remembered under
//!   its fragment header's identification; an atomic fragment (offset 0, no more) is a whole
//!   packet. A later fragment (offset > 0) whose fragment header names TCP, UDP or destination
//!   options (which may precede the transport header in the fragmentable part) follows its
//!   first fragment as over IPv4 (`process/fragments.rs`; `ipv6_fragment` when it belongs to a
//!   service and its first fragment was not forwarded); other later fragments are the kernel's.
//! - ICMPv6: errors about tracked flows (destination unreachable, packet too big, time
//!   exceeded) are translated as ICMP errors are (`process/icmp6.rs`). Neighbour discovery,
//!   router solicitations and advertisements, MLD, echo (to a VIP or anything else) and the
//!   other errors are the kernel's (a box that loses ND loses IPv6): passed. ICMPv6 in a
//!   fragmented packet is the kernel's too. An ICMPv6 header cut short is `truncated_icmpv6`.
//! - Anything else (IPv6-in-IPv6, no next header, other protocols) is the kernel's.

use std::net::IpAddr;

use super::{icmp6, ports, transport, LaterFragment, Packet, Parsed};
use crate::datapath::fragments::DatagramId;
use crate::datapath::wire::{ipv6, Ipv6Packet};
use crate::datapath::{DropReason, Snapshot};
use crate::flow::{FlowKey, Proto};

/// The IPv6 packet `packet` (at frame offset `l3`). `Ok(None)`: the kernel's (see the module
/// documentation).
#[inline(never)]
pub(super) fn parse(packet: &[u8], l3: usize) -> Result<Option<Packet>, DropReason> {
    let ip = Ipv6Packet::new_checked(packet)?;
    let upper = ip.upper_layer()?;
    let fragment = upper.fragment;
    if let Some(f) = fragment.filter(|f| !f.is_first()) {
        return Ok(later_fragment(&ip, l3, upper.protocol, f.identification));
    }
    let Some(proto) = Proto::from_number(upper.protocol) else {
        if upper.protocol == ipv6::ICMPV6 && fragment.is_none() {
            let msg = packet.get(upper.offset..ip.total_len()).unwrap_or_default();
            return icmp6::parse(&ip, msg, l3, l3 + upper.offset);
        }
        return Ok(None);
    };
    // `upper_layer` keeps the offset inside the packet.
    let l4 = packet.get(upper.offset..ip.total_len()).unwrap_or_default();
    let first_fragment = fragment
        .filter(|f| f.more_fragments)
        .map(|f| f.identification);
    let event = transport(l4, proto, first_fragment.is_some(), true)?;
    let (sport, dport) = ports(l4);
    let dst = ip.dst();
    let service = Snapshot::service_word(IpAddr::V6(dst), dport, proto);
    Ok(Some(Packet::Flow(Parsed {
        l3,
        l4: l3 + upper.offset,
        key: FlowKey {
            proto,
            src: IpAddr::V6(ip.src()),
            dst: IpAddr::V6(dst),
            sport,
            dport,
        },
        event,
        ttl: ip.hop_limit(),
        ip_len: u16::try_from(ip.total_len()).unwrap_or(u16::MAX),
        first_fragment,
        service,
    })))
}

/// A later fragment (identification `id`) of the IPv6 packet `ip` at frame offset `l3`, whose
/// fragment header names `next`: one xvs may follow (TCP, UDP, or destination options hiding
/// which), else the kernel's.
#[cold]
fn later_fragment(ip: &Ipv6Packet<&[u8]>, l3: usize, next: u8, id: u32) -> Option<Packet> {
    let proto = match next {
        ipv6::DEST_OPTS => None,
        n => Some(Proto::from_number(n)?),
    };
    Some(Packet::LaterFragment(LaterFragment {
        l3,
        datagram: DatagramId::V6 {
            src: ip.src(),
            dst: ip.dst(),
            id,
        },
        proto,
        ttl: ip.hop_limit(),
    }))
}
