//! The reply direction (real server → client) and later fragments: what is not addressed to a
//! service. A tracked reply is translated back (NAT: source → VIP:port; FULLNAT: source →
//! VIP:port and destination → client); a reply of a `one_packet` service is translated
//! statelessly; anything else is the kernel's.
//!
//! The reply's service comes from the connection entry ([`crate::conntrack::Origin`]) when it
//! still names the service the VIP:port is; else it is looked up by VIP:port (a reload moved it,
//! or it is a port-0 service). A connection whose service a reload removed is still translated,
//! gated by its VIP alone.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use super::rewrite::{rewrite_endpoint, Side};
use super::{LaterFragment, Parsed, Processor, Route, Sent};
use crate::conntrack::{Direction, Tracked};
use crate::datapath::counters::Dir;
use crate::datapath::fragments::FragmentRewrite;
use crate::datapath::fullnat;
use crate::datapath::wire::Ipv4Packet;
use crate::datapath::{DropReason, ServiceKey, Verdict};
use crate::flow::{Nanos, Proto};

impl Processor {
    /// A packet not addressed to a service: a tracked reply, a `one_packet` reply, or the
    /// kernel's.
    pub(super) fn reply(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
    ) -> Result<Verdict, DropReason> {
        let timeouts = self.snap.timeouts;
        let table = &self.shared.conntrack;
        let mut t = Tracked::EMPTY;
        if !table.lookup_into(Direction::Reply, &p.key, p.event, now, &timeouts, &mut t) {
            return self.one_packet_reply(now, buf, len, p);
        }
        let si = self.reply_service(&t, p.key.proto)?;
        let sent = match (t.vip(), t.client(), t.local()) {
            (SocketAddr::V4(vip), SocketAddr::V4(client), Some(_)) => {
                self.reply_fullnat(buf, len, p, vip, client)?
            }
            (vip, _, None) => self.reply_nat(buf, len, p, vip, t.client().ip())?,
            _ => return Ok(Verdict::Pass),
        };
        if let Verdict::Tx(_) = sent.verdict {
            if let Some(si) = si {
                self.count(si, &t, Dir::Out, p.ip_len);
            }
            // Later fragments: source back to the VIP; FULLNAT also restores the client.
            self.remember_fragments(now, p, || {
                let (vip, client) = (t.vip().ip(), t.client().ip());
                let dst = t.local().map(|_| client);
                FragmentRewrite::new(Some(vip), dst, client, true)
            });
        }
        Ok(sent.verdict)
    }

    /// A reply of a `one_packet` service: no entry by design, translated back statelessly.
    fn one_packet_reply(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
    ) -> Result<Verdict, DropReason> {
        let (proto, src, sport) = (p.key.proto, p.key.src, p.key.sport);
        let Some(vip) = self.snap.one_packet_reply(proto, src, sport) else {
            return Ok(Verdict::Pass);
        };
        let si = self.service_of_vip(vip, proto)?;
        let sent = self.reply_nat(buf, len, p, vip, p.key.dst)?;
        if let Verdict::Tx(_) = sent.verdict {
            if let Some(si) = si {
                let real = SocketAddr::new(src, sport);
                self.traffic.count(si, real, Dir::Out, u64::from(p.ip_len));
            }
            self.remember_fragments(now, p, || {
                FragmentRewrite::new(Some(vip.ip()), None, p.key.dst, true)
            });
        }
        Ok(sent.verdict)
    }

    /// NAT, reply direction: source real server → `vip`, routed to `client` (both of the
    /// packet's family: a connection's addresses are of one).
    fn reply_nat(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        vip: SocketAddr,
        client: IpAddr,
    ) -> Result<Sent, DropReason> {
        if vip.is_ipv4() != p.key.src.is_ipv4() {
            return Ok(Sent::packet(Verdict::Pass));
        }
        let v = self.route(buf, len, Route::routed(client, p.ttl), |buf, len, _| {
            rewrite_endpoint(&mut buf[..*len], p, Side::Src, vip)
        })?;
        Ok(Sent::packet(v))
    }

    /// FULLNAT, reply direction: source → VIP:port, destination → client, routed to the client.
    fn reply_fullnat(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        p: &Parsed,
        vip: SocketAddrV4,
        client: SocketAddrV4,
    ) -> Result<Sent, DropReason> {
        let route = Route::routed(*client.ip(), p.ttl);
        let v = self.route(buf, len, route, |buf, len, _| {
            let frame = &mut buf[..*len];
            let (l3, l4, proto, ttl) = (p.l3, p.l4, p.key.proto, p.ttl.saturating_sub(1));
            match fullnat::rewrite_both(frame, l3, l4, proto, ttl, vip, client) {
                true => Ok(()),
                false => Err(DropReason::TruncatedIpv4),
            }
        })?;
        Ok(Sent::packet(v))
    }

    /// The service of a reply of connection `t` (`None` if a reload removed it): the entry's
    /// origin while the service there still has the connection's exact VIP:port, else looked
    /// up; `vrrp_backup` when the VIP is managed by VRRP and not held.
    #[inline]
    fn reply_service(&self, t: &Tracked, proto: Proto) -> Result<Option<usize>, DropReason> {
        let key = ServiceKey {
            vip: t.vip().ip(),
            port: t.vip().port(),
            proto,
        };
        let si = usize::from(t.origin.service);
        match self.snap.services.get(si) {
            Some(svc) if svc.key == key => match svc.vrrp_backup() {
                true => Err(DropReason::VrrpBackup),
                false => Ok(Some(si)),
            },
            _ => self.service_of_vip(t.vip(), proto),
        }
    }

    /// The service (if it still exists) of a reply of a connection to `vip`, looked up;
    /// `vrrp_backup` when the VIP is managed by VRRP and not held.
    fn service_of_vip(&self, vip: SocketAddr, proto: Proto) -> Result<Option<usize>, DropReason> {
        let key = ServiceKey {
            vip: vip.ip(),
            port: vip.port(),
            proto,
        };
        let si = self.snap.service_for(&key);
        let backup = match si {
            Some(si) => self.snap.services[si].vrrp_backup(),
            None => self.snap.has_vrrp_gates() && self.snap.vrrp_backup_vip(vip.ip()),
        };
        match backup {
            true => Err(DropReason::VrrpBackup),
            false => Ok(si),
        }
    }

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
            let ours = self.snap.is_vip(IpAddr::V4(d.dst), d.proto)
                || self.snap.is_nat_real(IpAddr::V4(d.src), d.proto)
                || (self.shared.conntrack.local_pools())
                    .id_of(d.dst.to_bits())
                    .is_some();
            return match ours {
                true => Err(DropReason::Ipv4Fragment),
                false => Ok(Verdict::Pass),
            };
        };
        // The datagram's VIP: its destination in the original direction, the new source of a
        // reply.
        let backup = |vip| self.snap.vrrp_backup_vip(IpAddr::V4(vip));
        if self.snap.has_vrrp_gates() && (backup(d.dst) || rw.new_src.is_some_and(backup)) {
            return Err(DropReason::VrrpBackup);
        }
        let route = match rw.routed {
            true => Route::routed(rw.route_to, f.ttl),
            false => Route::unrouted(rw.route_to),
        };
        self.route(buf, len, route, |buf, len, _| {
            let ip = buf.get_mut(f.l3..*len).ok_or(DropReason::TruncatedIpv4)?;
            let mut ip = Ipv4Packet::new_checked(ip)?;
            if let Some(a) = rw.new_src {
                ip.set_src(a);
            }
            if let Some(a) = rw.new_dst {
                ip.set_dst(a);
            }
            if rw.routed {
                ip.set_ttl(f.ttl.saturating_sub(1));
            }
            Ok(())
        })
    }
}
