//! The VRRP driver's syscall wrappers: the raw IPv4 socket of protocol 112 (one per interface),
//! its IPv6 counterpart ([`Vrrp6Socket`], in `v6.rs`) and the packet socket that sends
//! gratuitous ARPs and unsolicited neighbour advertisements.
//!
//! - [`VrrpSocket`]: `socket(AF_INET, SOCK_RAW, 112)` bound to its interface
//!   (`SO_BINDTODEVICE`), with `IP_HDRINCL` (the driver writes the IPv4 header as keepalived does:
//!   TOS 0xc0, TTL 255, [`super::packet::encode_ipv4`]), `IP_MULTICAST_IF` on the interface,
//!   `IP_MULTICAST_LOOP` off (a router never hears its own adverts), and, for multicast
//!   instances, membership of 224.0.0.18 on the interface (`IP_ADD_MEMBERSHIP`), which programs
//!   the NIC's filter with 01:00:5e:00:00:12. Non-blocking: the driver polls.
//! - [`ArpSocket`]: `socket(AF_PACKET, SOCK_RAW, 0)` (protocol 0: it receives nothing) that sends
//!   whole Ethernet frames out of a given interface.
//! - [`Waker`]: an eventfd in the driver's poll set, so a stop or a reload is seen at once.
//!
//! Every `unsafe` block is a plain syscall on a descriptor this module owns, with arguments that
//! live across the call.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::packet::{MULTICAST_V4, PROTO_VRRP};

mod v6;
pub use v6::Vrrp6Socket;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The size of `T` as a socket length.
// A socket option or address structure is a few dozen bytes: it fits a socklen_t (u32).
#[allow(clippy::cast_possible_truncation)]
const fn socklen<T>() -> libc::socklen_t {
    std::mem::size_of::<T>() as libc::socklen_t
}

/// An address family constant as the `sa_family_t` (u16) of a socket address.
// The AF_* constants are small (AF_INET 2, AF_PACKET 17): they fit a u16.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
const fn family(af: libc::c_int) -> libc::sa_family_t {
    af as libc::sa_family_t
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size passed; the kernel only reads it.
    let rc = unsafe { libc::setsockopt(fd, level, name, (val as *const T).cast(), socklen::<T>()) };
    cvt(rc).map(|_| ())
}

fn new_socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the returned descriptor is owned by the OwnedFd below.
    let fd = cvt(unsafe {
        libc::socket(
            domain,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to interface `name` (`SO_BINDTODEVICE`; a name is at most `IFNAMSIZ` − 1 bytes,
/// a longer one is cut there and names no interface).
fn bind_to_device(fd: RawFd, name: &str) -> io::Result<()> {
    let mut dev = [0u8; libc::IFNAMSIZ];
    let n = name.len().min(libc::IFNAMSIZ - 1);
    dev[..n].copy_from_slice(&name.as_bytes()[..n]);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &dev)
}

/// A receive's error `e`: `Ok(None)` when it only says nothing is waiting (a non-blocking
/// socket's `EAGAIN`, or `EINTR`), else `e`.
fn nothing_waiting<T>(e: io::Error) -> io::Result<Option<T>> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: family(libc::AF_INET),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// The raw VRRP socket of one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    ifindex: u32,
    joined: bool,
}

impl VrrpSocket {
    /// Opens the socket on interface `name` (`ifindex`); joins 224.0.0.18 there when `multicast`.
    pub fn open(name: &str, ifindex: u32, multicast: bool) -> io::Result<VrrpSocket> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, libc::c_int::from(PROTO_VRRP))?;
        let raw = fd.as_raw_fd();
        bind_to_device(raw, name)?;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_HDRINCL, &1 as &libc::c_int)?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            &0 as &libc::c_int,
        )?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL,
            &255 as &libc::c_int,
        )?;
        let mreq_if = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: ifindex as libc::c_int,
        };
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq_if)?;
        let mut s = VrrpSocket {
            fd,
            ifindex,
            joined: false,
        };
        if multicast {
            s.join()?;
        }
        Ok(s)
    }

    /// Joins 224.0.0.18 on the interface (idempotent).
    pub fn join(&mut self) -> io::Result<()> {
        if self.joined {
            return Ok(());
        }
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from_ne_bytes(MULTICAST_V4.octets()),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: self.ifindex as libc::c_int,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreq,
        )?;
        self.joined = true;
        Ok(())
    }

    /// Sends one whole IPv4 packet (header included) to `dst`.
    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let sa = sockaddr_in(dst);
        // SAFETY: `packet` and `sa` live across the call; the lengths are theirs.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                socklen::<libc::sockaddr_in>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one IPv4 packet (header included) into `buf`; `Ok(None)` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is writable for its length and lives across the call.
        let rc = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if rc < 0 {
            return nothing_waiting(io::Error::last_os_error());
        }
        Ok(Some(rc as usize))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sends Ethernet frames (gratuitous ARPs, unsolicited neighbour advertisements) out of any
/// interface.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
}

impl ArpSocket {
    pub fn open() -> io::Result<ArpSocket> {
        Ok(ArpSocket {
            fd: new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?,
        })
    }

    /// Sends `frame` (a whole Ethernet frame) out of interface `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_ll is a valid value; the fields are set below.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = family(libc::AF_PACKET);
        sa.sll_ifindex = ifindex as libc::c_int;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
        // SAFETY: `frame` and `sa` live across the call; the lengths are theirs.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes; returns the readable ones'
/// positions in `ready` (cleared first).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32, ready: &mut Vec<usize>) -> io::Result<()> {
    ready.clear();
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    crate::sys::poll(&mut p, timeout_ms)?;
    ready.extend(
        p.iter()
            .enumerate()
            .filter(|(_, x)| x.revents != 0)
            .map(|(i, _)| i),
    );
    Ok(())
}

/// Wakes the VRRP thread out of `poll(2)` (an eventfd in its poll set): a stop or a reload is
/// acted on at once instead of at the next timer.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain eventfd(2); the descriptor is owned by the OwnedFd below.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Makes the descriptor readable.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call. A full counter
        // (EAGAIN) means a wake-up is already pending, which is all that is wanted.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into `v`, which lives across the call.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
