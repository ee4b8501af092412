//! IPv6-in-IPv6 tunnelling (TUN6, IPVS VS/TUN over IPv6): the client's IPv6 packet, unchanged
//! (extension headers and hop limit included), inside an outer IPv6 header (next header 41,
//! RFC 2473) from the egress port's IPv6 address ([`crate::datapath::Port::ipv6`]) to the real
//! server.
//!
//! The outer header is what IPVS writes (`ip_vs_tunnel_xmit_v6`, via
//! `ip_vs_prepare_tunneled_skb`): the traffic class copied whole from the inner header (DSCP and
//! ECN, `ipv6_change_dsfield(iph, 0, dsfield)`), the flow label 0 (IPVS clears it), the hop
//! limit copied from the inner header, payload length = the whole inner packet, no extension
//! headers (no tunnel encapsulation limit option). See [`outer_header`].
//!
//! The inner hop limit is not touched and not checked, as for IPv4 TUN's TTL and DR: xvs takes
//! the packet as IPVS's LOCAL_IN hook does, before any forwarding decrement. (Since Linux 5.3
//! IPVS decrements it in `__ip_vs_get_out_rt_v6`, `decrement_ttl`; xvs keeps one rule for TUN
//! and TUN6, the older IPVS one.) A packet with hop limit 1 is tunnelled with outer hop limit 1.
//!
//! MTU: the outer packet is the inner one plus 40 bytes; one that would exceed the egress
//! port's MTU is not sent. IPv6 has no DF and routers never fragment, so every such packet is
//! answered (no rate limit, as IPv4 TUN) with an ICMPv6 Packet Too Big (type 2, code 0, MTU =
//! port MTU − 40) from the VIP to the client, as IPVS does (`ensure_mtu_is_adequate` →
//! `icmpv6_send`, whose source is the local address the packet was sent to): see
//! [`Processor::answer_packet_too_big`] for the message. The packet is counted as `tunnel_mtu`
//! (by `process()`, since the verdict is the answer's).
//!
//! When the port's MTU less 40 is below the IPv6 minimum MTU (1280), no Packet Too Big can help:
//! a client must not shrink its packets below 1280 (RFC 8200 §5: a smaller MTU in a Packet Too
//! Big is not acted on), and one saying 1280 would be false. IPVS refuses the route then
//! (`mtu less than 1280`: every packet to that real server is dropped, small ones too); xvs
//! tunnels what fits and drops what does not, without an answer (`tunnel_mtu`). A port that
//! carries TUN6 should have an MTU of at least 1320.

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;

use super::{Inner, NotSent};
use crate::datapath::process::{emit, Processor, Route};
use crate::datapath::wire::icmpv6::{self, Icmpv6Message, Icmpv6Repr};
use crate::datapath::wire::ip6ip6::{self, OuterHeader6, OUTER_LEN};
use crate::datapath::wire::{ipv6, Ipv6Packet, Ipv6Repr};
use crate::datapath::{DropReason, Verdict};

/// Hop limit of the ICMPv6 errors xvs originates: Linux's default for `icmpv6_send` (the
/// interface's `hop_limit`, `IPV6_DEFAULT_HOPLIMIT`, 64; 255 is only for neighbour discovery).
pub const ICMPV6_HOP_LIMIT: u8 = 64;
/// The most of the offending packet a Packet Too Big quotes: what keeps the ICMPv6 packet
/// within the IPv6 minimum MTU (RFC 4443 §2.4 (c)): 1280 − 40 − 8 = 1232 bytes.
pub const MAX_PTB_QUOTE: usize = icmpv6::MAX_ERROR_LEN - icmpv6::HEADER_LEN;

/// The outer header IPVS writes around `inner` (a checked IPv6 packet) from `src` to `dst`:
/// next header 41, the inner traffic class, flow label 0, the inner hop limit, the inner
/// packet's whole length as payload length (`None` past 65535 bytes).
pub fn outer_header<T: AsRef<[u8]>>(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    inner: &Ipv6Packet<T>,
) -> Option<OuterHeader6> {
    Some(OuterHeader6 {
        src,
        dst,
        hop_limit: inner.hop_limit(),
        traffic_class: inner.traffic_class(),
        flow_label: 0,
        inner_len: u16::try_from(inner.total_len()).ok()?,
    })
}

/// The MTU a Packet Too Big announces for an egress port of MTU `port_mtu` (`port_mtu` − 40),
/// `None` when that is below the IPv6 minimum MTU (no Packet Too Big is sent then, see the
/// module documentation).
pub fn packet_too_big_mtu(port_mtu: u16) -> Option<u16> {
    ip6ip6::max_inner_len(port_mtu).filter(|&m| usize::from(m) >= icmpv6::MIN_MTU)
}

/// Whether an ICMPv6 error may be sent to `src`, the source of the packet it is about: not when
/// that does not name one node (unspecified, multicast; RFC 4443 §2.4 (e)).
fn may_answer(src: Ipv6Addr) -> bool {
    !src.is_unspecified() && !src.is_multicast()
}

impl Processor {
    /// Wraps the IPv6 packet `inner` of the frame in an outer IPv6 header ([`outer_header`]) to
    /// `real` and routes it. Refused: a packet that is not IPv6 (`bad_ip_version`), one too
    /// big for the egress port once encapsulated ([`NotSent::TooBig`]), an egress port without
    /// an IPv6 address (`no_tunnel_source`), a buffer without 40 bytes of room
    /// (`no_frame_room`); the frame is untouched then.
    pub(super) fn tunnel6(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        inner: &Inner,
        real: Ipv6Addr,
    ) -> Result<Verdict, NotSent> {
        let mut too_big = None;
        let routed = self.route(buf, len, Route::unrouted(real), |buf, len, egress| {
            let (l3, end) = (inner.l3, inner.l3 + inner.len);
            let packet = buf.get(l3..end).ok_or(DropReason::TruncatedIpv6)?;
            let ip = Ipv6Packet::new_checked(packet)?;
            if inner.len + OUTER_LEN > usize::from(egress.mtu) {
                too_big = Some(NotSent::TooBig {
                    mtu: egress.mtu,
                    df: true,
                });
                return Err(DropReason::TunnelMtu);
            }
            let src = egress.ipv6.ok_or(DropReason::NoTunnelSource)?;
            let outer = outer_header(src, real, &ip).ok_or(DropReason::NoFrameRoom)?;
            if end + OUTER_LEN > buf.len() {
                return Err(DropReason::NoFrameRoom);
            }
            buf.copy_within(l3..end, l3 + OUTER_LEN);
            // Room and length are checked above, so the header fits.
            outer.emit(&mut buf[l3..end + OUTER_LEN])?;
            *len = end + OUTER_LEN;
            Ok(())
        });
        routed.map_err(|r| too_big.unwrap_or(NotSent::Drop(r)))
    }

    /// Replaces the frame (its IP packet at `l3`) with an ICMPv6 Packet Too Big (type 2, code
    /// 0, MTU `mtu`) from `to.1` (the VIP) to `to.0` (the client), quoting the first
    /// [`MAX_PTB_QUOTE`] bytes (at most) of `buf[quote]`, and routes it there. The IPv6 header:
    /// hop limit [`ICMPV6_HOP_LIMIT`], traffic class 0, flow label 0 (Linux would set a hashed
    /// one with its default `auto_flowlabels`; 0 is "no label", RFC 6437); the ICMPv6 checksum
    /// covers the pseudo-header. The message is never longer than the packet it replaces when
    /// that packet is longer than 1280 bytes (as every packet too big for a port of MTU 1320 or
    /// more is); otherwise it must fit in `buf` (`no_frame_room`). A client address that names
    /// no single node gets no answer (`tunnel_mtu`).
    pub(in crate::datapath::process) fn answer_packet_too_big(
        &mut self,
        buf: &mut [u8],
        len: &mut usize,
        l3: usize,
        (client, vip): (Ipv6Addr, Ipv6Addr),
        quote: Range<usize>,
        mtu: u16,
    ) -> Verdict {
        if !may_answer(client) {
            return Verdict::Drop(DropReason::TunnelMtu);
        }
        let (hop, port_mac) = match self.next_hop(IpAddr::V6(client)) {
            Ok(h) => h,
            Err(r) => return Verdict::Drop(r),
        };
        let quote_len = quote.len().min(MAX_PTB_QUOTE);
        let icmp_len = icmpv6::HEADER_LEN + quote_len;
        let total = ipv6::HEADER_LEN + icmp_len;
        if l3 + total > buf.len() || quote.start + quote_len > buf.len() {
            return Verdict::Drop(DropReason::NoFrameRoom);
        }
        let header = Ipv6Repr {
            src: vip,
            dst: client,
            next_header: icmpv6::NEXT_HEADER,
            payload_len: icmp_len,
            hop_limit: ICMPV6_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        };
        let message = Icmpv6Repr {
            message: Icmpv6Message::PacketTooBig {
                mtu: u32::from(mtu),
            },
            payload_len: quote_len,
        };
        // The quote moves 48 bytes on (it may overlap itself): ahead of it go the headers.
        let quote_at = l3 + ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
        buf.copy_within(quote.start..quote.start + quote_len, quote_at);
        let ip = &mut buf[l3..l3 + total];
        let written = header
            .emit(ip)
            .and_then(|()| message.emit(&mut ip[ipv6::HEADER_LEN..], vip, client));
        if let Err(e) = written {
            return Verdict::Drop(e.into());
        }
        *len = l3 + total;
        emit(&mut buf[..*len], hop, port_mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1);
    const REAL: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 4, 0, 0, 0, 0x11);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 0x100);

    /// An inner IPv6 packet with traffic class `tc`, flow label `label`, hop limit `hop` and
    /// `payload` bytes of payload.
    fn inner(tc: u8, label: u32, hop: u8, payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 40 + payload];
        Ipv6Repr {
            src: CLIENT,
            dst: VIP,
            next_header: 6,
            payload_len: payload,
            hop_limit: hop,
            traffic_class: tc,
            flow_label: label,
        }
        .emit(&mut b)
        .unwrap();
        b
    }

    #[test]
    fn outer_header_is_ipvs_s_traffic_class_and_hop_limit_copied_flow_label_cleared() {
        let b = inner(0xb9, 0x1_2345, 7, 20);
        let ip = Ipv6Packet::new_checked(&b[..]).unwrap();
        let h = outer_header(LB, REAL, &ip).unwrap();
        assert_eq!(
            h,
            OuterHeader6 {
                src: LB,
                dst: REAL,
                hop_limit: 7,
                traffic_class: 0xb9,
                flow_label: 0,
                inner_len: 60,
            }
        );
        let mut out = vec![0u8; 100];
        h.emit(&mut out).unwrap();
        // Version 6, traffic class 0xb9 (DSCP 46, ECN 1), flow label 0; next header 41.
        assert_eq!(out[..8], [0x6b, 0x90, 0, 0, 0, 60, 41, 7]);
    }

    #[test]
    fn outer_header_keeps_hop_limit_1_and_0() {
        for hop in [0, 1] {
            let b = inner(0, 0, hop, 8);
            let ip = Ipv6Packet::new_checked(&b[..]).unwrap();
            assert_eq!(outer_header(LB, REAL, &ip).unwrap().hop_limit, hop);
        }
    }

    #[test]
    fn outer_header_refuses_an_inner_packet_past_65535_bytes() {
        let b = inner(0, 0, 64, 65535 - 40 + 1);
        let ip = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(outer_header(LB, REAL, &ip), None);
        let b = inner(0, 0, 64, 65535 - 40);
        let ip = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(outer_header(LB, REAL, &ip).unwrap().inner_len, 65535);
    }

    #[test]
    fn packet_too_big_mtu_is_port_mtu_less_40_never_below_1280() {
        assert_eq!(packet_too_big_mtu(1500), Some(1460));
        assert_eq!(packet_too_big_mtu(9000), Some(8960));
        assert_eq!(packet_too_big_mtu(1320), Some(1280));
        assert_eq!(packet_too_big_mtu(1319), None);
        assert_eq!(packet_too_big_mtu(1280), None);
        assert_eq!(packet_too_big_mtu(20), None);
    }

    #[test]
    fn quote_keeps_the_message_within_the_minimum_mtu() {
        assert_eq!(MAX_PTB_QUOTE, 1232);
        assert_eq!(40 + 8 + MAX_PTB_QUOTE, 1280);
    }

    #[test]
    fn no_answer_to_unspecified_or_multicast_sources() {
        assert!(may_answer(CLIENT));
        assert!(!may_answer(Ipv6Addr::UNSPECIFIED));
        assert!(!may_answer("ff02::1".parse().unwrap()));
    }
}
