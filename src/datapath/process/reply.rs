//! The reply direction (real server → client): what is not addressed to a service (later
//! fragments are `fragments.rs`'s). A tracked reply is translated back (NAT: source →
//! VIP:port; FULLNAT: source → VIP:port and destination → client); a reply of a `one_packet`
//! service is translated statelessly; anything else is the kernel's.
//!
//! The reply's service comes from the connection entry ([`crate::conntrack::Origin`]) when it
//! still names the service the VIP:port is; else it is looked up by VIP:port (a reload moved it,
//! or it is a port-0 service). A connection whose service a reload removed is still translated,
//! gated by its VIP alone.

use std::net::{IpAddr, SocketAddr};

use super::rewrite::{rewrite_endpoint, Side};
use super::{Parsed, Processor, Route, Sent};
use crate::conntrack::{Direction, Origin, Tracked};
use crate::datapath::counters::Dir;
use crate::datapath::fragments::FragmentRewrite;
use crate::datapath::fullnat;
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
        let probe = self.probe(Direction::Reply, &p.key);
        let hit = table.lookup_probe(probe, p.event, now, &timeouts, &mut t);
        if self.sync.is_some() {
            self.sync_lookup(p.key.proto, &t);
        }
        if !hit {
            return self.one_packet_reply(now, buf, len, p);
        }
        let si = self.reply_service(&t, p.key.proto)?;
        let sent = match (t.vip(), t.client(), t.local()) {
            // A connection's addresses are of one family, the packet's.
            (vip, client, Some(_)) => self.reply_fullnat(buf, len, p, vip, client)?,
            (vip, client, None) => self.reply_nat(buf, len, p, vip, client.ip())?,
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
        vip: SocketAddr,
        client: SocketAddr,
    ) -> Result<Sent, DropReason> {
        let route = Route::routed(client.ip(), p.ttl);
        let v = self.route(buf, len, route, |buf, len, _| {
            let frame = &mut buf[..*len];
            let (l3, l4, proto, ttl) = (p.l3, p.l4, p.key.proto, p.ttl.saturating_sub(1));
            match fullnat::rewrite_both(frame, l3, l4, proto, ttl, vip, client) {
                true => Ok(()),
                false => Err(super::original::fullnat_truncated(p)),
            }
        })?;
        Ok(Sent::packet(v))
    }

    /// The service of a reply of connection `t` (`None` if a reload removed it): the entry's
    /// origin while the service there still has the connection's exact VIP:port, else looked
    /// up; `vrrp_backup` when the VIP is managed by VRRP and not held.
    #[inline]
    fn reply_service(&self, t: &Tracked, proto: Proto) -> Result<Option<usize>, DropReason> {
        self.reply_service_of(t.origin, t.vip(), proto)
    }

    /// [`Processor::reply_service`] of a connection to `vip` scheduled at `origin`.
    #[inline]
    pub(super) fn reply_service_of(
        &self,
        origin: Origin,
        vip: SocketAddr,
        proto: Proto,
    ) -> Result<Option<usize>, DropReason> {
        let key = ServiceKey {
            vip: vip.ip(),
            port: vip.port(),
            proto,
        };
        let si = usize::from(origin.service);
        match self.snap.services.get(si) {
            Some(svc) if svc.key == key => match svc.vrrp_backup() {
                true => Err(DropReason::VrrpBackup),
                false => Ok(Some(si)),
            },
            _ => self.service_of_vip(vip, proto),
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
        self.reply_gate(si, vip.ip())?;
        Ok(si)
    }

    /// The VRRP gate of a reply whose service is `si` (`None`: removed by a reload) to `vip`:
    /// `vrrp_backup` while the service's VIP (or, without a service, `vip`) is managed by VRRP
    /// and not held.
    #[inline]
    pub(super) fn reply_gate(&self, si: Option<usize>, vip: IpAddr) -> Result<(), DropReason> {
        let backup = match si {
            Some(si) => self.snap.services.get(si).is_some_and(|s| s.vrrp_backup()),
            None => self.snap.has_vrrp_gates() && self.snap.vrrp_backup_vip(vip),
        };
        match backup {
            true => Err(DropReason::VrrpBackup),
            false => Ok(()),
        }
    }
}
