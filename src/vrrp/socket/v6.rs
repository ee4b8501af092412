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

use super::{family, new_socket, setsockopt, socklen};
use crate::vrrp::packet::{is_link_local, Ipv6Meta, MULTICAST_V6, PROTO_VRRP, TRAFFIC_CLASS, TTL};

/// Room for the ancillary data of one message: a hop limit and a packet-info header with
/// their `cmsghdr`s, 8-byte aligned.
const CONTROL_WORDS: usize = 16;

/// The raw VRRP socket of one interface for IPv6.
#[derive(Debug)]
pub struct Vrrp6Socket {
    fd: OwnedFd,
    ifindex: u32,
    joined: bool,
}

fn sockaddr_in6(a: Ipv6Addr, ifindex: u32) -> libc::sockaddr_in6 {
    // A link-scope destination (link-local or ff02::/16) needs the interface as its scope.
    let link_scope = is_link_local(a) || a.segments()[0] & 0xff0f == 0xff02;
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
        let mut dev = [0u8; libc::IFNAMSIZ];
        let n = name.len().min(libc::IFNAMSIZ - 1);
        dev[..n].copy_from_slice(&name.as_bytes()[..n]);
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &dev)?;
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
        let mut control = [0u64; CONTROL_WORDS];
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
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(socklen::<libc::in6_pktinfo>()) };
        msg.msg_controllen = space as usize;
        // SAFETY: `msg` describes `control` (CONTROL_WORDS × 8 bytes, more than `space`), so the
        // first header and its data lie inside it; the write is unaligned-safe.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = libc::IPV6_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(socklen::<libc::in6_pktinfo>()) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
        }
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
        let mut control = [0u64; CONTROL_WORDS];
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
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` refers to a live, writable local for the duration of
        // the call, with the lengths given.
        let rc = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = usize::try_from(rc).unwrap_or(0);
        let mut meta = Ipv6Meta {
            src: Ipv6Addr::from(from.sin6_addr.s6_addr),
            dst: Ipv6Addr::UNSPECIFIED,
            hop_limit: 0,
        };
        read_control(&msg, &mut meta);
        Ok(Some((n, meta)))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Reads the hop limit and the destination from the ancillary data the kernel put in `msg`.
fn read_control(msg: &libc::msghdr, meta: &mut Ipv6Meta) {
    // SAFETY: `msg` was filled by recvmsg: `msg_control`/`msg_controllen` describe the
    // ancillary data the kernel wrote into a live buffer, which CMSG_FIRSTHDR/CMSG_NXTHDR walk
    // within those bounds; each data item is read unaligned, with its type's size only after
    // checking the header says it holds that type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::IPPROTO_IPV6 {
                let data = libc::CMSG_DATA(c);
                if h.cmsg_type == libc::IPV6_HOPLIMIT {
                    let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    meta.hop_limit = u8::try_from(v).unwrap_or(0);
                } else if h.cmsg_type == libc::IPV6_PKTINFO {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    meta.dst = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
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
