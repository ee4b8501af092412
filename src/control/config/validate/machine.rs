//! Rules that need this machine's facts ([`Host`]):
//! - where xvs sends: a real or sorry server is never a loopback address, an address of this
//!   box (one on its interfaces, a service VIP or a VRRP address), or the network or broadcast
//!   address of a subnet connected to a datapath interface; a FULLNAT pool address (which IS the
//!   box's own) is never a loopback, network or broadcast address;
//! - the MTU of each datapath interface fits the UMEM frame (`datapath.frame_size` less the XDP
//!   headroom), or the kernel drops the longer frames before xvs sees them;
//! - the box's addresses fit the XDP filter's `local_addrs` map;
//! - every CPU of `datapath.cpus` is one the process may run on (online and inside its affinity
//!   mask).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::Ctx;
use crate::control::config::host::{Host, HostAddress, Link};
use crate::control::config::model::Config;
use crate::control::config::positions::Pos;
use crate::datapath::filter::MAX_LOCAL_ADDRS;
use crate::datapath::placement;
use crate::datapath::wire::ethernet;
use crate::datapath::xsk;

/// The machine as the rules see it, read once per validation.
pub(super) struct Machine {
    addrs: Vec<HostAddress>,
    /// Why the addresses could not be listed.
    addr_error: Option<String>,
    /// The datapath interfaces the host knows, by name.
    links: Vec<(String, Link)>,
    /// The configuration's VIPs (service and VRRP), each with what it is.
    vips: HashMap<IpAddr, String>,
    /// The CPUs the process may run on, when the host says.
    cpus: Option<Vec<usize>>,
}

impl Machine {
    pub(super) fn of(cfg: &Config, host: &dyn Host) -> Machine {
        let (addrs, addr_error) = match host.addresses() {
            Ok(a) => (a, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let links = cfg
            .datapath
            .interfaces
            .iter()
            .filter_map(|i| host.link(&i.name).map(|l| (i.name.clone(), l)))
            .collect();
        let mut vips = HashMap::new();
        for inst in &cfg.vrrp.instances {
            for v in &inst.vips {
                vips.entry(v.addr)
                    .or_insert_with(|| format!("a VRRP address of instance `{}`", inst.name));
            }
        }
        for s in &cfg.services {
            vips.insert(s.vip, format!("the VIP of service `{}`", s.name));
        }
        Machine {
            addrs,
            addr_error,
            links,
            vips,
            cpus: host.cpus(),
        }
    }

    /// The address of this box's interfaces that is `a`, if one is.
    pub(super) fn own_address(&self, a: IpAddr) -> Option<&HostAddress> {
        self.addrs.iter().find(|h| h.addr == a)
    }

    /// What `a` is when it is a VIP of the configuration (a service's or a VRRP address).
    pub(super) fn vip(&self, a: IpAddr) -> Option<&str> {
        self.vips.get(&a).map(String::as_str)
    }

    fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|(n, _)| n == name).map(|(_, l)| l)
    }

    /// `Some("the broadcast address of 198.18.1.0/24, a subnet of interface lan0")` when `a`
    /// is the network or broadcast address of an IPv4 subnet on a datapath interface (/30 or
    /// wider: /31 and /32 have neither).
    fn subnet_edge(&self, a: IpAddr) -> Option<String> {
        let IpAddr::V4(a) = a else { return None };
        self.links.iter().find_map(|(name, link)| {
            self.addrs
                .iter()
                .filter(|h| h.ifindex == link.ifindex && h.prefix_len <= 30)
                .find_map(|h| {
                    let IpAddr::V4(own) = h.addr else { return None };
                    let mask = u32::MAX << (32 - u32::from(h.prefix_len));
                    let net = own.to_bits() & mask;
                    let which = if a.to_bits() == net {
                        "network"
                    } else if a.to_bits() == net | !mask {
                        "broadcast"
                    } else {
                        return None;
                    };
                    Some(format!(
                        "is the {which} address of {}/{}, a subnet of interface {name}",
                        Ipv4Addr::from_bits(net),
                        h.prefix_len
                    ))
                })
        })
    }
}

/// Why xvs cannot send a client's packets to `a` (a real or sorry server), if it cannot.
pub(super) fn not_a_destination(cx: &Ctx, a: IpAddr) -> Option<String> {
    let m = &cx.machine;
    if a.is_loopback() {
        return Some(
            "is a loopback address: xvs sends to real servers out of the datapath's interfaces, never to this box"
                .into(),
        );
    }
    if let Some(h) = m.addrs.iter().find(|h| h.addr == a) {
        return Some(format!(
            "is an address of this box ({}/{}): xvs forwards to other hosts, never to itself",
            h.addr, h.prefix_len
        ));
    }
    if let Some(what) = m.vips.get(&a) {
        return Some(format!(
            "is {what}, an address of this box: xvs forwards to other hosts, never to itself"
        ));
    }
    m.subnet_edge(a)
}

/// Why `a` cannot be a FULLNAT pool address (the source real servers answer), if it cannot.
/// Unlike a real server, a pool address is meant to be the box's own.
pub(super) fn not_a_source(cx: &Ctx, a: IpAddr) -> Option<String> {
    if a.is_loopback() {
        return Some("is a loopback address: real servers could not answer it".into());
    }
    cx.machine.subnet_edge(a)
}

/// The rules about the machine that are not about one address.
pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    const NOWHERE: Pos = Pos { line: 0, col: 0 };
    if let Some(e) = &cx.machine.addr_error {
        let m = format!("cannot list this box's addresses (to check the real servers): {e}");
        cx.out.push((NOWHERE, m));
    }
    let mut own: Vec<IpAddr> = cx.machine.addrs.iter().map(|h| h.addr).collect();
    own.sort();
    own.dedup();
    if own.len() > MAX_LOCAL_ADDRS {
        let m = format!(
            "this box has {} addresses; the XDP filter's local_addrs map holds {MAX_LOCAL_ADDRS} (remove addresses xvs does not need)",
            own.len()
        );
        cx.out.push((NOWHERE, m));
    }
    cpus(cx, cfg);
    let frame = cfg.datapath.frame_size;
    if frame != 2048 && frame != 4096 {
        return; // refused on its own
    }
    let max_frame = xsk::max_frame_len(frame);
    #[allow(clippy::cast_possible_truncation)] // 14 bytes
    const ETHERNET_HEADER_LEN: u32 = ethernet::HEADER_LEN as u32;
    let max_mtu = max_frame - ETHERNET_HEADER_LEN;
    for (i, itf) in cfg.datapath.interfaces.iter().enumerate() {
        let Some(link) = cx.machine.link(&itf.name) else {
            continue;
        };
        if link.mtu > max_mtu {
            let m = format!(
                "interface `{}` has MTU {}, but frame_size {frame} carries frames of at most {max_frame} bytes ({frame} less {} bytes of XDP headroom), an MTU of at most {max_mtu} (less the {}-byte Ethernet header): the kernel would drop longer frames before xvs sees them; lower the MTU to {max_mtu} or less",
                itf.name,
                link.mtu,
                xsk::XDP_HEADROOM,
                ethernet::HEADER_LEN
            );
            cx.value(&format!("datapath.interfaces[{i}].name"), m);
        }
    }
}

/// Every listed CPU is one the process may run on.
fn cpus(cx: &mut Ctx, cfg: &Config) {
    let (Some(allowed), Some(listed)) = (&cx.machine.cpus, cfg.datapath.cpus.list()) else {
        return;
    };
    let allowed_text = placement::cpu_list(allowed);
    let missing: Vec<(usize, usize)> = listed
        .into_iter()
        .enumerate()
        .filter(|(_, c)| !allowed.contains(c))
        .collect();
    for (k, c) in missing {
        cx.value(
            &format!("datapath.cpus[{k}]"),
            format!("cpu {c}: not in this process's CPUs ({allowed_text})"),
        );
    }
}
