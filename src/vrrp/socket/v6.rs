//! The raw IPv6 socket of protocol 112 (one per interface running an IPv6 instance).
//!
//! `socket(AF_INET6, SOCK_RAW, 112)` bound to its interface (`SO_BINDTODEVICE`). The kernel
//! writes the IPv6 header (there is no `IP_HDRINCL` to match keepalived's header byte for byte;
//! the options below make the kernel's the same): hop limit 255 for multicast and unicast
//! (`IPV6_MULTICAST_HOPS`, `IPV6_UNICAST_HOPS`), traffic class 0xc0 (`IPV6_TCLASS`, as
//! keepalived), multicast out of the interface (`IPV6_MULTICAST_IF`) and not looped back
//! (`IPV6_MULTICAST_LOOP` off), and the source given per packet (`IPV6_PKTINFO` on `sendmsg`:
//! the interface's link-local address, RFC 5798 §5.1.2.1). xvs writes the VRRP message with its
//! checksum itself (no `IPV6_CHECKSUM`, so the kernel neither fills nor checks it: a bad one is
//! counted as `checksum`, not dropped unseen).
//!
//! On receive the kernel hands over the VRRP message without its IPv6 header; `recvmsg` gives
//! the source address, and the ancillary data asked for with `IPV6_RECVHOPLIMIT` and
//! `IPV6_RECVPKTINFO` the hop limit and the destination ([`Ipv6Meta`]): the hop-limit check and
//! the pseudo-header checksum need both. Multicast instances join ff02::12 on the interface
//! (`IPV6_ADD_MEMBERSHIP`, which programs the NIC's filter with 33:33:00:00:00:12).
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{bind_to_device, family, new_socket, nothing_waiting, setsockopt, socklen};
use crate::vrrp::packet::{Ipv6Meta, MULTICAST_V6, PROTO_VRRP, TRAFFIC_CLASS, TTL};

/// Room for the ancillary data of one received message: a hop limit and a packet-info header
/// with their `cmsghdr`s.
const CONTROL_LEN: usize = 128;
/// Length of a `cmsghdr` (its data starts there, `CMSG_DATA`; `CMSG_ALIGN` is 8 bytes).
const CMSG_HDR_LEN: usize = std::mem::size_of::<libc::cmsghdr>();

/// The ancillary data `sendmsg` gets: one `IPV6_PKTINFO` message (the layout `CMSG_FIRSTHDR`
/// and `CMSG_DATA` describe: the header, then the data at `CMSG_HDR_LEN`; the struct's size is
/// `CMSG_SPACE` of the data).
#[repr(C)]
struct PktinfoCmsg {
    hdr: libc::cmsghdr,
    info: libc::in6_pktinfo,
}

/// The raw VRRP socket of one interface for IPv6.
#[derive(Debug)]
pub struct Vrrp6Socket {
    fd: OwnedFd,
    ifindex: u32,
    joined: bool,
}

fn sockaddr_in6(a: Ipv6Addr, ifindex: u32) -> libc::sockaddr_in6 {
    // A link-scope destination (link-local or ff02::/16) needs the interface as its scope.
    let link_scope = a.is_unicast_link_local() || a.segments()[0] & 0xff0f == 0xff02;
    libc::sockaddr_in6 {
        sin6_family: family(libc::AF_INET6),
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.octets(),
        },
        sin6_scope_id: if link_scope { ifindex } else { 0 },
    }
}

fn int_opt(fd: RawFd, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    setsockopt(fd, libc::IPPROTO_IPV6, name, &v)
}

impl Vrrp6Socket {
    /// Opens the socket on interface `name` (`ifindex`); joins ff02::12 there when `multicast`.
    pub fn open(name: &str, ifindex: u32, multicast: bool) -> io::Result<Vrrp6Socket> {
        let fd = new_socket(
            libc::AF_INET6,
            libc::SOCK_RAW,
            libc::c_int::from(PROTO_VRRP),
        )?;
        let raw = fd.as_raw_fd();
        bind_to_device(raw, name)?;
        let hops = libc::c_int::from(TTL);
        int_opt(raw, libc::IPV6_MULTICAST_HOPS, hops)?;
        int_opt(raw, libc::IPV6_UNICAST_HOPS, hops)?;
        int_opt(raw, libc::IPV6_TCLASS, libc::c_int::from(TRAFFIC_CLASS))?;
        int_opt(raw, libc::IPV6_MULTICAST_LOOP, 0)?;
        let index = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        int_opt(raw, libc::IPV6_MULTICAST_IF, index)?;
        int_opt(raw, libc::IPV6_RECVHOPLIMIT, 1)?;
        int_opt(raw, libc::IPV6_RECVPKTINFO, 1)?;
        let mut s = Vrrp6Socket {
            fd,
            ifindex,
            joined: false,
        };
        if multicast {
            s.join()?;
        }
        Ok(s)
    }

    /// Joins ff02::12 on the interface (idempotent).
    pub fn join(&mut self) -> io::Result<()> {
        if self.joined {
            return Ok(());
        }
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: MULTICAST_V6.octets(),
            },
            ipv6mr_interface: self.ifindex,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_ADD_MEMBERSHIP,
            &mreq,
        )?;
        self.joined = true;
        Ok(())
    }

    /// Sends one VRRP message (the kernel adds the IPv6 header) from `src` to `dst`.
    pub fn send(&self, message: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> io::Result<()> {
        let mut sa = sockaddr_in6(dst, self.ifindex);
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let mut control = PktinfoCmsg {
            hdr: libc::cmsghdr {
                cmsg_len: CMSG_HDR_LEN + std::mem::size_of::<libc::in6_pktinfo>(),
                cmsg_level: libc::IPPROTO_IPV6,
                cmsg_type: libc::IPV6_PKTINFO,
            },
            info,
        };
        let mut iov = libc::iovec {
            iov_base: message.as_ptr().cast_mut().cast(),
            iov_len: message.len(),
        };
        // SAFETY: an all-zero msghdr is a valid value; the fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut sa as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = socklen::<libc::sockaddr_in6>();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut control as *mut PktinfoCmsg).cast();
        msg.msg_controllen = std::mem::size_of::<PktinfoCmsg>();
        // SAFETY: every pointer in `msg` refers to a live local (`sa`, `iov` over `message`,
        // `control`) for the duration of the call; the kernel only reads them.
        let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one VRRP message into `buf` with what its IPv6 header said; `Ok(None)` when
    /// none is waiting. A message without the ancillary data (never, with the options set) has
    /// hop limit 0 and destination `::`, which the checks refuse (`ttl`, `checksum`).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Ipv6Meta)>> {
        // SAFETY: an all-zero sockaddr_in6 is a valid value; the kernel fills it.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut control = [0u8; CONTROL_LEN];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is a valid value; the fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = socklen::<libc::sockaddr_in6>();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = CONTROL_LEN;
        // SAFETY: every pointer in `msg` refers to a live, writable local for the duration of
        // the call, with the lengths given.
        let rc = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if rc < 0 {
            return nothing_waiting(io::Error::last_os_error());
        }
        let n = usize::try_from(rc).unwrap_or(0);
        let mut meta = Ipv6Meta {
            src: Ipv6Addr::from(from.sin6_addr.s6_addr),
            dst: Ipv6Addr::UNSPECIFIED,
            hop_limit: 0,
        };
        read_control(
            control.get(..msg.msg_controllen).unwrap_or_default(),
            &mut meta,
        );
        Ok(Some((n, meta)))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Reads the hop limit and the destination from the ancillary data `recvmsg` wrote into
/// `control` (as long as it said): each message is a `cmsghdr` (length, level, type in native
/// byte order) with its data at [`CMSG_HDR_LEN`], the next one at the length rounded up to 8
/// bytes (`CMSG_NXTHDR`). Read as bytes: nothing here can read past `control`.
fn read_control(control: &[u8], meta: &mut Ipv6Meta) {
    const LEVEL_AT: usize = std::mem::size_of::<usize>();
    let int = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .and_then(|x| <[u8; 4]>::try_from(x).ok())
            .map(i32::from_ne_bytes)
    };
    let mut rest = control;
    while rest.len() >= CMSG_HDR_LEN {
        let len = rest
            .get(..LEVEL_AT)
            .and_then(|x| <[u8; LEVEL_AT]>::try_from(x).ok())
            .map_or(0, usize::from_ne_bytes);
        let (Some(level), Some(kind)) = (int(rest, LEVEL_AT), int(rest, LEVEL_AT + 4)) else {
            return;
        };
        let Some(data) = rest.get(CMSG_HDR_LEN..len) else {
            return;
        };
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT {
            meta.hop_limit = int(data, 0).and_then(|h| u8::try_from(h).ok()).unwrap_or(0);
        } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            if let Some(a) = data.get(..16).and_then(|x| <[u8; 16]>::try_from(x).ok()) {
                meta.dst = Ipv6Addr::from(a);
            }
        }
        rest = rest.get(len.next_multiple_of(8)..).unwrap_or_default();
    }
}

impl AsRawFd for Vrrp6Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut c = (CMSG_HDR_LEN + data.len()).to_ne_bytes().to_vec();
        c.extend_from_slice(&level.to_ne_bytes());
        c.extend_from_slice(&kind.to_ne_bytes());
        c.extend_from_slice(data);
        c.resize(c.len().next_multiple_of(8), 0);
        c
    }

    #[test]
    fn ancillary_data_gives_hop_limit_and_destination() {
        let dst: Ipv6Addr = "ff02::12".parse().unwrap();
        let mut info = dst.octets().to_vec();
        info.extend_from_slice(&7u32.to_ne_bytes());
        let mut control = cmsg(
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &64i32.to_ne_bytes(),
        );
        control.extend(cmsg(libc::IPPROTO_IP, libc::IP_TTL, &1i32.to_ne_bytes()));
        control.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info));
        let mut meta = Ipv6Meta {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::UNSPECIFIED,
            hop_limit: 0,
        };
        read_control(&control, &mut meta);
        assert_eq!((meta.dst, meta.hop_limit), (dst, 64));
        // Cut anywhere, or a length running past the end: no panic, what was whole is read.
        for cut in 0..control.len() {
            read_control(&control[..cut], &mut meta);
        }
        let mut bad = control.clone();
        bad[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        read_control(&bad, &mut meta);
    }

    #[test]
    fn link_scope_destinations_carry_the_interface() {
        assert_eq!(sockaddr_in6(MULTICAST_V6, 7).sin6_scope_id, 7);
        assert_eq!(sockaddr_in6("fe80::1".parse().unwrap(), 7).sin6_scope_id, 7);
        assert_eq!(
            sockaddr_in6("2001:2::1".parse().unwrap(), 7).sin6_scope_id,
            0
        );
        assert_eq!(
            sockaddr_in6("ff05::12".parse().unwrap(), 7).sin6_scope_id,
            0
        );
    }

    /// Over the loopback interface (no namespace needed: `lo` exists everywhere, ::1 is not
    /// link-local, so unicast): a message sent is received with the hop limit and destination
    /// visible. Skipped without the privilege to open a raw socket.
    #[test]
    fn a_message_round_trips_over_loopback_with_its_header_facts() {
        let Ok(rx) = Vrrp6Socket::open("lo", 1, false) else {
            return;
        };
        let tx = Vrrp6Socket::open("lo", 1, false).unwrap();
        let msg = [0x31u8, 51, 100, 0, 0, 100, 0xab, 0xcd];
        if tx
            .send(&msg, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST)
            .is_err()
        {
            return; // no IPv6 on lo here
        }
        let mut buf = [0u8; 64];
        let mut got = None;
        for _ in 0..100 {
            if let Some(r) = rx.recv(&mut buf).unwrap() {
                got = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (n, meta) = got.expect("received");
        assert_eq!(&buf[..n], &msg);
        assert_eq!(
            meta,
            Ipv6Meta {
                src: Ipv6Addr::LOCALHOST,
                dst: Ipv6Addr::LOCALHOST,
                hop_limit: 255,
            }
        );
    }
}
