//! Later fragments of IPv4 and IPv6 datagrams (offset > 0, no transport header): translated
//! like their first fragment if that was forwarded and remembered, else dropped when they
//! belong to a service, a NAT real server or a FULLNAT local address (`ipv4_fragment`,
//! `ipv6_fragment`), else the kernel's. The policy and the table are
//! [`crate::datapath::fragments`]'s.
//!
//! The rewrite is the first fragment's at the IP level only: the addresses (IPv4: the header
//! checksum follows each field; IPv6 has none, and no transport header here to update) and,
//! when xvs routes the datagram (NAT, FULLNAT), the TTL or hop limit. IPv6 extension headers,
//! the fragment header included, are left as they are.

use super::rewrite::{IpHeader, Side};
use super::{LaterFragment, Processor, Route};
use crate::datapath::fragments::DatagramId;
use crate::datapath::{DropReason, Verdict};
use crate::flow::{Nanos, Proto};

impl Processor {
    /// A later fragment: translated like its first fragment if that was forwarded, dropped if it
    /// belongs to a service, a NAT real server or a FULLNAT local address, else the kernel's.
    pub(super) fn later_fragment(
        &self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        f: &LaterFragment,
    ) -> Result<Verdict, DropReason> {
        let d = &f.datagram;
        let Some(rw) = self.shared.fragments.find(d, now) else {
            return match self.fragment_is_ours(d, f.proto) {
                true => Err(match d {
                    DatagramId::V4 { .. } => DropReason::Ipv4Fragment,
                    DatagramId::V6 { .. } => DropReason::Ipv6Fragment,
                }),
                false => Ok(Verdict::Pass),
            };
        };
        // The datagram's VIP: its destination in the original direction, the new source of a
        // reply.
        let backup = |vip| self.snap.vrrp_backup_vip(vip);
        if self.snap.has_vrrp_gates() && (backup(d.dst()) || rw.new_src.is_some_and(backup)) {
            return Err(DropReason::VrrpBackup);
        }
        let route = match rw.routed {
            true => Route::routed(rw.route_to, f.ttl),
            false => Route::unrouted(rw.route_to),
        };
        self.route(buf, len, route, |buf, len, _| {
            let packet = buf.get_mut(f.l3..*len).ok_or(DropReason::TruncatedIpv4)?;
            let mut ip = IpHeader::new(packet, d.src())?;
            if let Some(a) = rw.new_src {
                ip.set_addr(Side::Src, a)?;
            }
            if let Some(a) = rw.new_dst {
                ip.set_addr(Side::Dst, a)?;
            }
            if rw.routed {
                ip.set_hop_limit(f.ttl.saturating_sub(1));
            }
            Ok(())
        })
    }

    /// Whether a later fragment of datagram `d` (protocol `proto`, unknown behind IPv6
    /// destination options) is xvs's: to a VIP, from a NAT real server, or to a FULLNAT local
    /// address.
    fn fragment_is_ours(&self, d: &DatagramId, proto: Option<Proto>) -> bool {
        let of = |proto| self.snap.is_vip(d.dst(), proto) || self.snap.is_nat_real(d.src(), proto);
        let service = match proto {
            Some(p) => of(p),
            None => of(Proto::Tcp) || of(Proto::Udp),
        };
        service || self.shared.conntrack.is_pool_address(d.dst())
    }
}
