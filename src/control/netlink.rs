//! Synchronous rtnetlink queries the control plane needs: an interface's index, MAC, MTU and
//! state; the main routing table; the neighbour (ARP/NDP) cache; and asking the kernel to resolve
//! a neighbour. The announcer's changes too: an interface set up, host routes added to,
//! deleted from and read back from a table of its own ([`add_route`], [`del_route`],
//! [`host_routes`]). Plus a [`Subscription`] to the kernel's neighbour and route change notifications
//! (`RTNLGRP_NEIGH`, `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`), read without blocking.
//!
//! Every call opens its own `NETLINK_ROUTE` socket in the calling thread's network namespace, sends
//! one request and reads the reply to the end; nothing is cached. Calls happen a few times a
//! second at most, never on the packet path.
//!
//! Resolving a neighbour ([`solicit`]) uses the kernel's own machinery: an `RTM_NEWNEIGH` with the
//! `NTF_USE` flag (what `ip neigh replace ADDR dev DEV use` sends). The kernel creates the entry if
//! needed and runs ARP/NDP for it on that device exactly as if a packet were waiting, so retries,
//! `STALE` → `REACHABLE` probing and `FAILED` timers follow the interface's sysctls. No packet is
//! sent to the neighbour itself. Should the kernel refuse that request (very old kernels), a UDP
//! datagram to the neighbour's discard port (9) is sent instead, which makes the kernel resolve the
//! next hop of its own route to that address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NlAddr};

use crate::datapath::Mac;

/// Errors of the netlink queries. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: cannot open socket: {0}")]
    Socket(#[source] io::Error),
    #[error("netlink {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netlink {op}: kernel refused: {source}")]
    Kernel {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netlink {op}: undecodable reply: {msg}")]
    Decode { op: &'static str, msg: String },
    #[error("netlink {op}: no reply from the kernel")]
    NoReply { op: &'static str },
    #[error("interface {0:?} not found")]
    NoSuchInterface(String),
    #[error("invalid interface name {0:?} (1 to 15 characters, no '/' or whitespace)")]
    BadInterfaceName(String),
    #[error("interface {0:?} has no Ethernet address")]
    NotEthernet(String),
}

/// What the datapath needs to know about an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub mac: Mac,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`) and with carrier (`IFF_RUNNING`).
    pub up: bool,
}

/// A unicast route of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination network (`0.0.0.0` / `::` for a default route).
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// Output interface; 0 when the route names none (e.g. a nexthop-object route).
    pub oif: u32,
    /// `None` for an on-link (connected) route.
    pub gateway: Option<IpAddr>,
}

/// The kernel's main routing table id (`RT_TABLE_MAIN`).
const RT_TABLE_MAIN: u32 = 254;

/// Neighbour states whose link-layer address can be used to send (`NUD_VALID` minus nothing:
/// REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP).
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80 | 0x40;

/// Whether a neighbour entry in `state` has a MAC the datapath may use.
pub fn state_is_usable(state: NeighbourState) -> bool {
    u16::from(state) & NUD_USABLE != 0
}

fn check_ifname(name: &str) -> Result<(), NetlinkError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(NetlinkError::BadInterfaceName(name.to_string()))
    }
}

/// One request/response exchange on a fresh `NETLINK_ROUTE` socket.
///
/// Returns every inner message of the reply. `flags` adds to `NLM_F_REQUEST`; with `NLM_F_DUMP`
/// the reply is read up to `NLMSG_DONE`, with `NLM_F_ACK` up to the acknowledgement, otherwise up
/// to the first message. A kernel error becomes [`NetlinkError::Kernel`]. Inner messages this crate
/// version cannot decode are skipped (a dump stays usable when the kernel adds an attribute).
fn request(
    op: &'static str,
    msg: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    socket.bind_auto().map_err(NetlinkError::Socket)?;
    socket
        .connect(&NlAddr::new(0, 0))
        .map_err(NetlinkError::Socket)?;

    const SEQ: u32 = 1;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = SEQ;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket
        .send(&buf, 0)
        .map_err(|source| NetlinkError::Io { op, source })?;

    let multi = flags & (NLM_F_DUMP | NLM_F_ACK) != 0;
    let mut out = Vec::new();
    loop {
        let (data, _) = socket
            .recv_from_full()
            .map_err(|source| NetlinkError::Io { op, source })?;
        if data.is_empty() {
            return Err(NetlinkError::NoReply { op });
        }
        let mut off = 0;
        while off + 16 <= data.len() {
            let len = u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                as usize;
            if len < 16 || off + len > data.len() {
                return Err(NetlinkError::Decode {
                    op,
                    msg: format!("message length {len} at offset {off} of {}", data.len()),
                });
            }
            let seq =
                u32::from_ne_bytes([data[off + 8], data[off + 9], data[off + 10], data[off + 11]]);
            let chunk = &data[off..off + len];
            off += (len + 3) & !3;
            if seq != SEQ {
                continue; // not ours (cannot happen on a connected private socket; be safe)
            }
            let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk) {
                Ok(m) => m,
                Err(_) => {
                    // Distinguish a bad control message from an inner message we cannot decode.
                    let kind = u16::from_ne_bytes([chunk[4], chunk[5]]);
                    if kind < 16 {
                        return Err(NetlinkError::Decode {
                            op,
                            msg: format!("control message type {kind}"),
                        });
                    }
                    if !multi {
                        return Ok(out);
                    }
                    continue;
                }
            };
            match parsed.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    if e.code.is_none() {
                        return Ok(out); // the acknowledgement
                    }
                    let source = e.to_io();
                    return Err(NetlinkError::Kernel { op, source });
                }
                NetlinkPayload::InnerMessage(m) => {
                    out.push(m);
                    if !multi {
                        return Ok(out);
                    }
                }
                NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                _ => {}
            }
        }
    }
}

/// A [`request`] whose only reply is the acknowledgement, where a kernel error with an errno in
/// `done` means the state asked for is already there (an address that exists, a route that is
/// gone) and so is success.
fn request_ack(
    op: &'static str,
    msg: RouteNetlinkMessage,
    flags: u16,
    done: &[i32],
) -> Result<(), NetlinkError> {
    match request(op, msg, flags | NLM_F_ACK) {
        Err(NetlinkError::Kernel { source, .. })
            if source.raw_os_error().is_some_and(|e| done.contains(&e)) =>
        {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

/// Looks an interface up by name in the calling thread's network namespace.
pub fn link_by_name(name: &str) -> Result<LinkInfo, NetlinkError> {
    check_ifname(name)?;
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    let reply = match request("get link", RouteNetlinkMessage::GetLink(msg), 0) {
        Err(NetlinkError::Kernel { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            return Err(NetlinkError::NoSuchInterface(name.to_string()))
        }
        other => other?,
    };
    let link = reply
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .ok_or(NetlinkError::NoReply { op: "get link" })?;
    link_info(name, &link)
}

fn link_info(name: &str, link: &LinkMessage) -> Result<LinkInfo, NetlinkError> {
    let mut mac = None;
    let mut mtu = 0;
    for a in &link.attributes {
        match a {
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(bytes);
                mac = Some(m);
            }
            LinkAttribute::Mtu(v) => mtu = *v,
            _ => {}
        }
    }
    let flags = link.header.flags;
    Ok(LinkInfo {
        ifindex: link.header.index,
        mac: mac.ok_or_else(|| NetlinkError::NotEthernet(name.to_string()))?,
        mtu,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Converts one route message; `None` when it is not a unicast route of the main table, or is
/// a cached clone (an IPv6 route exception, e.g. a learnt path MTU: `RTM_F_CLONED`), which
/// only repeats a route of the table. IPv4 and IPv6 routes are read alike; an IPv6 gateway may
/// be link-local (`default via fe80::1 dev wan0`, what router advertisements install): it is a
/// neighbour on the route's own interface, which the next-hop table keys by port.
fn kernel_route(m: &RouteMessage) -> Option<KernelRoute> {
    if m.header.kind != RouteType::Unicast || m.header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut oif = 0;
    let mut gateway = None;
    let mut first_hop = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_ip(d),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::MultiPath(hops) => first_hop = hops.first(),
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    // ECMP routes carry their next hops in RTA_MULTIPATH: the datapath uses the first one.
    if oif == 0 {
        if let Some(h) = first_hop {
            oif = h.interface_index;
            gateway = h.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => route_ip(g),
                _ => None,
            });
        }
    }
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some(KernelRoute {
        dst,
        prefix_len: m.header.destination_prefix_length,
        oif,
        gateway,
    })
}

/// Sends one dump request per address family (IPv4, then IPv6; an AF_UNSPEC dump would mix in
/// other tables) and returns every reply message.
fn dump_per_family(
    op: &'static str,
    request_for: impl Fn(AddressFamily) -> RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        out.extend(request(op, request_for(family), NLM_F_DUMP)?);
    }
    Ok(out)
}

/// One address of an interface: what `ip addr` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// Every address of every interface in this network namespace, IPv4 then IPv6, in the kernel's
/// order (for IPv4 the primary address of each subnet comes before its secondaries).
pub fn dump_interface_addresses() -> Result<Vec<InterfaceAddress>, NetlinkError> {
    let replies = dump_per_family("dump addresses", |family| {
        let mut msg = AddressMessage::default();
        msg.header.family = family;
        RouteNetlinkMessage::GetAddress(msg)
    })?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            // IFA_LOCAL is the local end (IFA_ADDRESS is the peer on point-to-point links); IPv6
            // has only IFA_ADDRESS.
            RouteNetlinkMessage::NewAddress(a) => {
                let find = |want_local: bool| {
                    a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Local(ip) if want_local => Some(*ip),
                        AddressAttribute::Address(ip) if !want_local => Some(*ip),
                        _ => None,
                    })
                };
                find(true)
                    .or_else(|| find(false))
                    .map(|addr| InterfaceAddress {
                        ifindex: a.header.index,
                        addr,
                        prefix_len: a.header.prefix_len,
                    })
            }
            _ => None,
        })
        .collect())
}

/// Every address configured on this network namespace's interfaces (IPv4 and IPv6, the VIPs
/// included): the box's own addresses.
pub fn dump_addresses() -> Result<Vec<IpAddr>, NetlinkError> {
    let mut out: Vec<IpAddr> = dump_interface_addresses()?
        .into_iter()
        .map(|a| a.addr)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Dumps the routes of every table (IPv4, then IPv6) and keeps those `read` turns into a `T`.
fn dump_routes_as<T>(read: impl Fn(&RouteMessage) -> Option<T>) -> Result<Vec<T>, NetlinkError> {
    let replies = dump_per_family("dump routes", |family| {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        RouteNetlinkMessage::GetRoute(msg)
    })?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => read(r),
            _ => None,
        })
        .collect())
}

/// The unicast routes of the main table, IPv4 then IPv6.
pub fn dump_routes() -> Result<Vec<KernelRoute>, NetlinkError> {
    dump_routes_as(kernel_route)
}

/// Converts one neighbour entry; `None` unless it is an IP neighbour in a usable state with an
/// Ethernet address.
fn usable_neighbour(m: &NeighbourMessage) -> Option<(u32, IpAddr, Mac)> {
    if !state_is_usable(m.header.state) || m.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(b);
                mac = Some(m);
            }
            _ => {}
        }
    }
    Some((m.header.ifindex, ip?, mac?))
}

/// The IPv4 (ARP) and IPv6 (NDP) neighbours whose MAC is usable: `(ifindex, address, mac)`.
pub fn dump_neighbours() -> Result<Vec<(u32, IpAddr, Mac)>, NetlinkError> {
    let replies = dump_per_family("dump neighbours", |family| {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        RouteNetlinkMessage::GetNeighbour(msg)
    })?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) => usable_neighbour(n),
            _ => None,
        })
        .collect())
}

/// The address of a neighbour message, if it is an IP neighbour.
fn neighbour_ip(m: &NeighbourMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// A change the kernel announced on a [`Subscription`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// IP neighbour `ip` on interface `ifindex` now has the usable MAC `mac`; `None`: it is gone
    /// or has no usable MAC any more (`INCOMPLETE`, `FAILED`).
    Neighbour {
        ifindex: u32,
        ip: IpAddr,
        mac: Option<Mac>,
    },
    /// A unicast route of the main table was added, changed or removed: read the routes again.
    Routes,
    /// The kernel dropped notifications (the socket's buffer overflowed): read everything again.
    Lost,
}

/// What a [`Subscription`] listens to, as rtnetlink multicast groups: neighbours of both
/// families (`RTNLGRP_NEIGH` carries every neighbour table's changes, ARP and NDP alike, and
/// bridge FDB entries, which [`changes_in`] skips) and both routing tables (one group per
/// family).
const SUBSCRIBED_GROUPS: [u32; 3] = [
    libc::RTNLGRP_NEIGH,
    libc::RTNLGRP_IPV4_ROUTE,
    libc::RTNLGRP_IPV6_ROUTE,
];
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`); a burst that overflows
/// it is [`Change::Lost`], answered by a full re-read.
const SUBSCRIPTION_RCVBUF: usize = 1 << 20;

/// The changes announced by the notifications in `data` (one datagram), appended to `out`.
/// Pure: unit tested with crafted messages. Neighbours that are proxy entries or not IP (bridge
/// FDB entries share the group), routes of other tables and anything undecodable are ignored.
pub fn changes_in(data: &[u8], out: &mut Vec<Change>) {
    let mut off = 0;
    while off + 16 <= data.len() {
        let len =
            u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        if len < 16 || off + len > data.len() {
            return;
        }
        let chunk = &data[off..off + len];
        off += (len + 3) & !3;
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk) else {
            continue;
        };
        let NetlinkPayload::InnerMessage(inner) = msg.payload else {
            continue;
        };
        let change = match &inner {
            RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n)
                if n.header.flags.contains(NeighbourFlags::Proxy) =>
            {
                None
            }
            RouteNetlinkMessage::NewNeighbour(n) => neighbour_ip(n).map(|ip| Change::Neighbour {
                ifindex: n.header.ifindex,
                ip,
                mac: usable_neighbour(n).map(|(_, _, mac)| mac),
            }),
            RouteNetlinkMessage::DelNeighbour(n) => neighbour_ip(n).map(|ip| Change::Neighbour {
                ifindex: n.header.ifindex,
                ip,
                mac: None,
            }),
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                kernel_route(r).map(|_| Change::Routes)
            }
            _ => None,
        };
        out.extend(change);
    }
}

/// A `NETLINK_ROUTE` socket subscribed to neighbour and route notifications, in the network
/// namespace of the thread that opened it. Never blocks: wait for [`fd`](Self::fd) to be
/// readable (e.g. with `poll`), then [`read`](Self::read).
pub struct Subscription {
    socket: Socket,
    buf: Vec<u8>,
}

impl Subscription {
    pub fn open() -> Result<Subscription, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        for group in SUBSCRIBED_GROUPS {
            socket.add_membership(group).map_err(NetlinkError::Socket)?;
        }
        // A bigger buffer only makes overflows rarer; the default still works.
        let _ = socket.set_rx_buf_sz(SUBSCRIPTION_RCVBUF);
        socket
            .set_non_blocking(true)
            .map_err(NetlinkError::Socket)?;
        Ok(Subscription {
            socket,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// The socket, readable when notifications are pending.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads every pending notification and appends what changed to `out`; returns at once when
    /// none is pending. An overflow of the socket's buffer is reported as [`Change::Lost`].
    pub fn read(&mut self, out: &mut Vec<Change>) -> Result<(), NetlinkError> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => changes_in(&self.buf, out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(Change::Lost),
                Err(source) => {
                    return Err(NetlinkError::Io {
                        op: "read notifications",
                        source,
                    })
                }
            }
        }
    }
}

fn use_request(ip: IpAddr, ifindex: u32) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.ifindex = ifindex;
    // NUD_NONE: the state is not applied with NTF_USE, and a new entry stays garbage-collectable.
    msg.header.state = NeighbourState::None;
    msg.header.flags = NeighbourFlags::Use;
    msg.attributes
        .push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    msg
}

/// Makes the kernel resolve `ip` as a neighbour on interface `ifindex` (ARP or NDP); returns at
/// once. The MAC appears in [`dump_neighbours`] when the neighbour answers.
pub fn solicit(ip: IpAddr, ifindex: u32) -> Result<(), NetlinkError> {
    let msg = RouteNetlinkMessage::NewNeighbour(use_request(ip, ifindex));
    match request("solicit neighbour", msg, NLM_F_CREATE | NLM_F_ACK) {
        Ok(_) => Ok(()),
        Err(NetlinkError::Kernel { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            solicit_by_datagram(ip, ifindex)
        }
        Err(e) => Err(e),
    }
}

/// Fallback: one empty UDP datagram to the discard port makes the kernel resolve the next hop of
/// its route to `ip`.
fn solicit_by_datagram(ip: IpAddr, ifindex: u32) -> Result<(), NetlinkError> {
    let op = "solicit neighbour (udp)";
    let (bind, to): (SocketAddr, SocketAddr) = match ip {
        IpAddr::V4(_) => ((Ipv4Addr::UNSPECIFIED, 0).into(), SocketAddr::new(ip, 9)),
        IpAddr::V6(v6) => {
            // A link-local neighbour needs the interface as scope.
            let scope = if v6.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(v6, 9, 0, scope).into(),
            )
        }
    };
    let sock = UdpSocket::bind(bind).map_err(|source| NetlinkError::Io { op, source })?;
    match sock.send_to(&[], to) {
        Ok(_) => Ok(()),
        // The first datagram may be refused while resolution is pending; resolution still started.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(()),
        Err(source) => Err(NetlinkError::Io { op, source }),
    }
}

/// The addresses configured on interface `ifindex`, each with its prefix length, in the kernel's
/// order (for IPv4 the primary address of each subnet comes before its secondaries).
pub fn interface_addresses(ifindex: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
    Ok(dump_interface_addresses()?
        .into_iter()
        .filter(|a| a.ifindex == ifindex)
        .map(|a| (a.addr, a.prefix_len))
        .collect())
}

fn address_message(ifindex: u32, ip: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.prefix_len = prefix_len;
    msg.header.index = ifindex;
    if ip.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(ip));
    }
    msg.attributes.push(AddressAttribute::Address(ip));
    if ip.is_ipv6() {
        // IFA_F_NODAD (`ip addr add ... nodad`): a VIP taken over from a failed master is
        // usable at once, not tentative for the second of duplicate address detection (and
        // never marked "dadfailed" when the old master still answers a probe).
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

/// Adds `ip/prefix_len` to interface `ifindex` (what `ip addr add` does; VRRP adds its VIPs so).
/// An address already there is not an error.
pub fn add_address(ifindex: u32, ip: IpAddr, prefix_len: u8) -> Result<(), NetlinkError> {
    let msg = RouteNetlinkMessage::NewAddress(address_message(ifindex, ip, prefix_len));
    request_ack(
        "add address",
        msg,
        NLM_F_CREATE | NLM_F_EXCL,
        &[libc::EEXIST],
    )
}

/// Removes `ip/prefix_len` from interface `ifindex` (`ip addr del`). An address that is not
/// there is not an error.
pub fn del_address(ifindex: u32, ip: IpAddr, prefix_len: u8) -> Result<(), NetlinkError> {
    let msg = RouteNetlinkMessage::DelAddress(address_message(ifindex, ip, prefix_len));
    request_ack(
        "delete address",
        msg,
        0,
        &[libc::EADDRNOTAVAIL, libc::ENODEV],
    )
}

/// A host route of an announce table: `dst/32` (IPv6 `/128`) through interface `oif`, with
/// route protocol `proto`, in routing table `table` (what [`add_route`] installs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpAddr,
    pub table: u32,
    pub oif: u32,
    pub proto: u8,
}

/// The route message for `r`: unicast, scope link (a device route, no gateway), the full
/// prefix of its family. The table goes in `RTA_TABLE` always, and in the header too when it
/// fits a byte (a table above 255 has `RT_TABLE_UNSPEC` there, as `ip route` sends it).
fn host_route_message(r: &HostRoute) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let (family, len, dst) = match r.dst {
        IpAddr::V4(v4) => (AddressFamily::Inet, 32, RouteAddress::Inet(v4)),
        IpAddr::V6(v6) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(v6)),
    };
    msg.header.address_family = family;
    msg.header.destination_prefix_length = len;
    msg.header.table = u8::try_from(r.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    msg.header.protocol = RouteProtocol::from(r.proto);
    msg.header.scope = RouteScope::Link;
    msg.header.kind = RouteType::Unicast;
    msg.attributes.push(RouteAttribute::Destination(dst));
    msg.attributes.push(RouteAttribute::Oif(r.oif));
    msg.attributes.push(RouteAttribute::Table(r.table));
    msg
}

/// Installs `r` (`ip route replace DST dev OIF table T proto P`): a route to the same
/// destination already in that table is replaced, so adding twice is not an error.
pub fn add_route(r: &HostRoute) -> Result<(), NetlinkError> {
    let msg = RouteNetlinkMessage::NewRoute(host_route_message(r));
    request_ack("add route", msg, NLM_F_CREATE | NLM_F_REPLACE, &[])
}

/// Deletes `r` (`ip route del DST dev OIF table T proto P`). A route that is not there (or
/// whose interface is gone, taking its routes with it) is not an error.
pub fn del_route(r: &HostRoute) -> Result<(), NetlinkError> {
    let msg = RouteNetlinkMessage::DelRoute(host_route_message(r));
    request_ack("delete route", msg, 0, &[libc::ESRCH, libc::ENODEV])
}

/// Reads one dumped route as a [`HostRoute`]: `None` unless it is a unicast host route (full
/// prefix) with a destination and an output interface.
fn host_route(m: &RouteMessage) -> Option<HostRoute> {
    let full = match m.header.address_family {
        AddressFamily::Inet => 32,
        AddressFamily::Inet6 => 128,
        _ => return None,
    };
    if m.header.kind != RouteType::Unicast
        || m.header.destination_prefix_length != full
        || m.header.flags.contains(RouteFlags::Cloned)
    {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let (mut dst, mut oif) = (None, None);
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_ip(d),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    Some(HostRoute {
        dst: dst?,
        table,
        oif: oif?,
        proto: u8::from(m.header.protocol),
    })
}

/// The host routes of routing table `table` (IPv4 then IPv6) that go out of interface `oif`:
/// what an announcer has installed there, whoever else added or deleted some.
pub fn host_routes(table: u32, oif: u32) -> Result<Vec<HostRoute>, NetlinkError> {
    dump_routes_as(|m| host_route(m).filter(|r| r.table == table && r.oif == oif))
}

/// Sets interface `ifindex` administratively up (`ip link set dev X up`).
pub fn set_link_up(ifindex: u32) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    request_ack("set link up", RouteNetlinkMessage::SetLink(msg), 0, &[])
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_route::route::RouteNextHop;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn usable_states() {
        for s in [
            NeighbourState::Reachable,
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
            NeighbourState::Noarp,
        ] {
            assert!(state_is_usable(s), "{s}");
        }
        for s in [
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::None,
        ] {
            assert!(!state_is_usable(s), "{s}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("lan0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", "a/b", "a b", "..", "."] {
            assert!(
                matches!(check_ifname(bad), Err(NetlinkError::BadInterfaceName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            link_by_name("no/such"),
            Err(NetlinkError::BadInterfaceName(_))
        ));
    }

    fn route_msg(family: AddressFamily, table: u8, kind: RouteType) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.table = table;
        m.header.kind = kind;
        m
    }

    #[test]
    fn connected_and_default_routes() {
        let mut m = route_msg(AddressFamily::Inet, 254, RouteType::Unicast);
        m.header.destination_prefix_length = 24;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "198.18.1.0".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Oif(3));
        assert_eq!(
            kernel_route(&m),
            Some(KernelRoute {
                dst: ip("198.18.1.0"),
                prefix_len: 24,
                oif: 3,
                gateway: None
            })
        );

        let mut d = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        d.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(
                "2001:db8::1".parse().unwrap(),
            )));
        d.attributes.push(RouteAttribute::Oif(2));
        assert_eq!(
            kernel_route(&d),
            Some(KernelRoute {
                dst: ip("::"),
                prefix_len: 0,
                oif: 2,
                gateway: Some(ip("2001:db8::1"))
            })
        );
    }

    #[test]
    fn other_tables_and_types_are_ignored() {
        let mut local = route_msg(AddressFamily::Inet, 255, RouteType::Local);
        local.attributes.push(RouteAttribute::Oif(2));
        assert_eq!(kernel_route(&local), None);
        let blackhole = route_msg(AddressFamily::Inet, 254, RouteType::BlackHole);
        assert_eq!(kernel_route(&blackhole), None);
        // A table above 255 is announced as RT_TABLE_COMPAT in the header, the real id in RTA_TABLE.
        let mut high = route_msg(AddressFamily::Inet, 252, RouteType::Unicast);
        high.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(kernel_route(&high), None);
        let mut main = route_msg(AddressFamily::Inet, 252, RouteType::Unicast);
        main.attributes.push(RouteAttribute::Table(254));
        main.attributes.push(RouteAttribute::Oif(7));
        assert_eq!(kernel_route(&main).map(|r| r.oif), Some(7));
    }

    #[test]
    fn multipath_uses_first_hop() {
        let mut m = route_msg(AddressFamily::Inet, 254, RouteType::Unicast);
        let hop = |oif, gw: &str| {
            let mut h = RouteNextHop::default();
            h.interface_index = oif;
            h.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(
                gw.parse().unwrap(),
            ))];
            h
        };
        m.attributes.push(RouteAttribute::MultiPath(vec![
            hop(4, "198.18.0.254"),
            hop(5, "198.18.0.253"),
        ]));
        let r = kernel_route(&m).unwrap();
        assert_eq!((r.oif, r.gateway), (4, Some(ip("198.18.0.254"))));
        assert_eq!(r.dst, ip("0.0.0.0"));
    }

    fn neigh(state: NeighbourState, dst: NeighbourAddress, lladdr: &[u8]) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.ifindex = 9;
        m.header.state = state;
        m.attributes.push(NeighbourAttribute::Destination(dst));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(lladdr.to_vec()));
        m
    }

    #[test]
    fn neighbour_filter() {
        let mac = [2, 0x18, 0, 1, 0, 0xb];
        let v4 = || NeighbourAddress::Inet("198.18.1.11".parse().unwrap());
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Stale, v4(), &mac)),
            Some((9, ip("198.18.1.11"), mac))
        );
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Reachable, v4(), &mac)),
            Some((9, ip("198.18.1.11"), mac))
        );
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Incomplete, v4(), &mac)),
            None
        );
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Failed, v4(), &mac)),
            None
        );
        // Not an Ethernet address.
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Reachable, v4(), &[1, 2, 3, 4])),
            None
        );
        let v6 = NeighbourAddress::Inet6("fe80::18:ff:fe01:b".parse().unwrap());
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Delay, v6, &mac)),
            Some((9, ip("fe80::18:ff:fe01:b"), mac))
        );
        let mut proxy = neigh(NeighbourState::Permanent, v4(), &mac);
        proxy.header.flags = NeighbourFlags::Proxy;
        assert_eq!(usable_neighbour(&proxy), None);
    }

    /// `msg` as the kernel would send it in a notification.
    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut packet = NetlinkMessage::new(NetlinkHeader::default(), m.into());
            packet.finalize();
            let mut buf = vec![0u8; packet.buffer_len()];
            packet.serialize(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn notifications_become_changes() {
        let mac = [2, 0x18, 0, 0, 0, 0x96];
        let v4 = |state| {
            let mut m = neigh(
                state,
                NeighbourAddress::Inet("198.18.0.150".parse().unwrap()),
                &mac,
            );
            m.header.family = AddressFamily::Inet;
            m
        };
        let reachable = v4(NeighbourState::Reachable);
        let mut incomplete = v4(NeighbourState::Incomplete);
        incomplete
            .attributes
            .retain(|a| !matches!(a, NeighbourAttribute::LinkLayerAddress(_)));
        let failed = v4(NeighbourState::Failed);
        let mut proxy = v4(NeighbourState::Permanent);
        proxy.header.flags = NeighbourFlags::Proxy;
        let mut fdb = NeighbourMessage::default(); // a bridge FDB entry: no IP destination
        fdb.header.family = AddressFamily::Bridge;
        fdb.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        let mut main = route_msg(AddressFamily::Inet, 254, RouteType::Unicast);
        main.attributes.push(RouteAttribute::Oif(3));
        let local = route_msg(AddressFamily::Inet, 255, RouteType::Local);
        let data = datagram(vec![
            RouteNetlinkMessage::NewNeighbour(incomplete),
            RouteNetlinkMessage::NewNeighbour(reachable.clone()),
            RouteNetlinkMessage::NewNeighbour(proxy),
            RouteNetlinkMessage::NewNeighbour(fdb),
            RouteNetlinkMessage::NewNeighbour(failed),
            RouteNetlinkMessage::DelNeighbour(reachable),
            RouteNetlinkMessage::NewRoute(local.clone()),
            RouteNetlinkMessage::DelRoute(local),
            RouteNetlinkMessage::NewRoute(main.clone()),
            RouteNetlinkMessage::DelRoute(main),
        ]);
        let mut out = Vec::new();
        changes_in(&data, &mut out);
        let n = |mac| Change::Neighbour {
            ifindex: 9,
            ip: ip("198.18.0.150"),
            mac,
        };
        assert_eq!(
            out,
            vec![
                n(None),
                n(Some(mac)),
                n(None),
                n(None),
                Change::Routes,
                Change::Routes
            ]
        );
        // A truncated datagram yields what it holds whole, and never panics.
        let mut cut = Vec::new();
        changes_in(&data[..data.len() - 3], &mut cut);
        assert_eq!(cut[..], out[..out.len() - 1]);
        for len in 0..40.min(data.len()) {
            changes_in(&data[..len], &mut Vec::new());
        }
    }

    fn v6(s: &str) -> RouteAddress {
        RouteAddress::Inet6(s.parse().unwrap())
    }

    #[test]
    fn ipv6_connected_gateway_and_link_local_routes() {
        let mut lan = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        lan.header.destination_prefix_length = 64;
        lan.attributes
            .push(RouteAttribute::Destination(v6("2001:2:0:1::")));
        lan.attributes.push(RouteAttribute::Oif(3));
        assert_eq!(
            kernel_route(&lan),
            Some(KernelRoute {
                dst: ip("2001:2:0:1::"),
                prefix_len: 64,
                oif: 3,
                gateway: None
            })
        );
        // Every interface has its fe80::/64 in the main table: kept, per interface.
        let mut ll = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        ll.header.destination_prefix_length = 64;
        ll.attributes
            .push(RouteAttribute::Destination(v6("fe80::")));
        ll.attributes.push(RouteAttribute::Oif(2));
        assert_eq!(kernel_route(&ll).map(|r| r.oif), Some(2));
        // A default route through a link-local router (what router advertisements install).
        let mut dflt = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        dflt.attributes.push(RouteAttribute::Gateway(v6("fe80::1")));
        dflt.attributes.push(RouteAttribute::Oif(2));
        dflt.attributes.push(RouteAttribute::Priority(1024));
        assert_eq!(
            kernel_route(&dflt),
            Some(KernelRoute {
                dst: ip("::"),
                prefix_len: 0,
                oif: 2,
                gateway: Some(ip("fe80::1"))
            })
        );
        // A cached clone (a route exception, e.g. a learnt path MTU) repeats its route: skipped.
        let mut clone = dflt.clone();
        clone.header.flags = RouteFlags::Cloned;
        assert_eq!(kernel_route(&clone), None);
        // The local table's local, anycast and multicast routes are not next hops.
        for kind in [RouteType::Local, RouteType::Anycast, RouteType::Multicast] {
            let mut m = route_msg(AddressFamily::Inet6, 255, kind);
            m.attributes.push(RouteAttribute::Oif(2));
            assert_eq!(kernel_route(&m), None, "{kind:?}");
        }
        let mut unreachable = route_msg(AddressFamily::Inet6, 254, RouteType::Unreachable);
        unreachable.attributes.push(RouteAttribute::Oif(1));
        assert_eq!(kernel_route(&unreachable), None);
    }

    #[test]
    fn ipv6_multipath_uses_first_hop() {
        let mut m = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        let hop = |oif, gw: &str| {
            let mut h = RouteNextHop::default();
            h.interface_index = oif;
            h.attributes = vec![RouteAttribute::Gateway(v6(gw))];
            h
        };
        m.attributes.push(RouteAttribute::MultiPath(vec![
            hop(4, "fe80::1"),
            hop(5, "fe80::2"),
        ]));
        let r = kernel_route(&m).unwrap();
        assert_eq!((r.oif, r.gateway), (4, Some(ip("fe80::1"))));
        assert_eq!(r.dst, ip("::"));
    }

    #[test]
    fn ipv6_neighbours_are_filtered_like_ipv4() {
        let mac = [2, 0x18, 0, 1, 0, 0x11];
        let global = || NeighbourAddress::Inet6("2001:2:0:1::11".parse().unwrap());
        let mut router = neigh(NeighbourState::Reachable, global(), &mac);
        router.header.family = AddressFamily::Inet6;
        router.header.flags = NeighbourFlags::Router; // an IPv6 router is still a neighbour
        assert_eq!(
            usable_neighbour(&router),
            Some((9, ip("2001:2:0:1::11"), mac))
        );
        for state in [
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
        ] {
            assert!(usable_neighbour(&neigh(state, global(), &mac)).is_some());
        }
        for state in [
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::None,
        ] {
            assert_eq!(usable_neighbour(&neigh(state, global(), &mac)), None);
        }
        let mut proxy = neigh(NeighbourState::Permanent, global(), &mac);
        proxy.header.flags = NeighbourFlags::Proxy; // `ip -6 neigh add proxy`
        assert_eq!(usable_neighbour(&proxy), None);
        // An Infiniband-style 20-byte address is not Ethernet.
        assert_eq!(
            usable_neighbour(&neigh(NeighbourState::Reachable, global(), &[7; 20])),
            None
        );
    }

    #[test]
    fn ipv6_notifications_become_changes() {
        let mac = [2, 0x18, 0, 0, 0, 1];
        let router = |state| {
            let mut m = neigh(
                state,
                NeighbourAddress::Inet6("fe80::1".parse().unwrap()),
                &mac,
            );
            m.header.family = AddressFamily::Inet6;
            m.header.flags = NeighbourFlags::Router;
            m
        };
        let reachable = router(NeighbourState::Reachable);
        let mut main = route_msg(AddressFamily::Inet6, 254, RouteType::Unicast);
        main.attributes.push(RouteAttribute::Oif(3));
        let mut clone = main.clone();
        clone.header.flags = RouteFlags::Cloned;
        let multicast = route_msg(AddressFamily::Inet6, 255, RouteType::Multicast);
        let data = datagram(vec![
            RouteNetlinkMessage::NewNeighbour(router(NeighbourState::Incomplete)),
            RouteNetlinkMessage::NewNeighbour(reachable.clone()),
            RouteNetlinkMessage::DelNeighbour(reachable),
            RouteNetlinkMessage::NewRoute(clone),
            RouteNetlinkMessage::NewRoute(multicast),
            RouteNetlinkMessage::NewRoute(main.clone()),
            RouteNetlinkMessage::DelRoute(main),
        ]);
        let mut out = Vec::new();
        changes_in(&data, &mut out);
        let n = |mac| Change::Neighbour {
            ifindex: 9,
            ip: ip("fe80::1"),
            mac,
        };
        assert_eq!(
            out,
            vec![
                n(None),
                n(Some(mac)),
                n(None),
                Change::Routes,
                Change::Routes
            ]
        );
    }

    #[test]
    fn use_request_encodes_ntf_use_for_ipv6() {
        let m = use_request(ip("2001:2:0:1::11"), 4);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        assert_eq!(buf[0], libc::AF_INET6 as u8);
        assert_eq!(u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]), 4);
        assert_eq!(buf[10], 0x01); // NTF_USE
                                   // NDA_DST: 4-byte attribute header, then the 16 address bytes.
        let want: Ipv6Addr = "2001:2:0:1::11".parse().unwrap();
        assert_eq!(&buf[buf.len() - 16..], &want.octets());
        assert_eq!(u16::from_ne_bytes([buf[12], buf[13]]), 20);
    }

    #[test]
    fn use_request_encodes_ntf_use() {
        let m = use_request(ip("198.18.1.11"), 4);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        // struct ndmsg: family, pad[3], ifindex(u32), state(u16), flags(u8), type(u8)
        assert_eq!(buf[0], libc::AF_INET as u8);
        assert_eq!(u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]), 4);
        assert_eq!(u16::from_ne_bytes([buf[8], buf[9]]), 0);
        assert_eq!(buf[10], 0x01); // NTF_USE
        assert_eq!(&buf[buf.len() - 4..], &[198, 18, 1, 11]);
    }

    #[test]
    fn host_routes_encode_table_protocol_and_scope_and_read_back() {
        for (dst, table, header_table) in [
            ("198.18.0.100", 100u32, 100u8),
            ("2001:2::100", 100, 100),
            ("198.18.0.101", 1000, 0),
            ("198.18.0.102", u32::MAX, 0),
        ] {
            let r = HostRoute {
                dst: ip(dst),
                table,
                oif: 7,
                proto: 252,
            };
            let m = host_route_message(&r);
            assert_eq!(m.header.table, header_table, "{dst}");
            assert_eq!(u8::from(m.header.protocol), 252);
            assert_eq!(m.header.scope, RouteScope::Link);
            assert_eq!(
                m.header.destination_prefix_length,
                if r.dst.is_ipv4() { 32 } else { 128 }
            );
            assert!(m.attributes.contains(&RouteAttribute::Table(table)));
            // On the wire and back, as a dump returns it.
            let buf = datagram(vec![RouteNetlinkMessage::NewRoute(m)]);
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(back)) = parsed.payload
            else {
                panic!("not a route: {parsed:?}")
            };
            assert_eq!(host_route(&back), Some(r));
        }
        // Not a host route, not unicast, or no interface: not one of an announcer's.
        let base = host_route_message(&HostRoute {
            dst: ip("198.18.0.100"),
            table: 100,
            oif: 7,
            proto: 252,
        });
        let mut net = base.clone();
        net.header.destination_prefix_length = 24;
        assert_eq!(host_route(&net), None);
        let mut blackhole = base.clone();
        blackhole.header.kind = RouteType::BlackHole;
        assert_eq!(host_route(&blackhole), None);
        let mut no_oif = base;
        no_oif
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Oif(_)));
        assert_eq!(host_route(&no_oif), None);
    }

    #[test]
    fn errors_are_one_line() {
        let errs = [
            NetlinkError::NoSuchInterface("lan0".into()),
            NetlinkError::Kernel {
                op: "solicit neighbour",
                source: io::Error::from_raw_os_error(libc::EPERM),
            },
            NetlinkError::NotEthernet("tun0".into()),
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
    }

    #[test]
    fn ipv6_addresses_are_added_without_duplicate_address_detection() {
        let m = address_message(2, ip("2001:2::100"), 64);
        assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
        let m = address_message(2, ip("198.18.0.100"), 32);
        assert_eq!(m.header.flags, AddressHeaderFlags::empty());
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Flags(_))));
    }
}
