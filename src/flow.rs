//! Types shared by the datapath, the connection table and the schedulers: the flow key, the
//! transport protocol and the monotonic time unit.
//!
//! Addresses are [`IpAddr`] everywhere so that IPv6 needs no new key types.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Monotonic nanoseconds since an arbitrary epoch chosen by the caller (the worker loop reads the
/// clock once per batch; tests use a simulated clock).
pub type Nanos = u64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: Nanos = 1_000_000_000;

/// An address and port in 20 bytes (a [`SocketAddr`] takes 32 for the IPv6 flow label and scope
/// id, which xvs never uses). What the connection table hands the packet path is built of these,
/// so that it stays small enough to be copied in registers rather than by `memcpy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub const fn new(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint { ip, port }
    }
}

impl From<SocketAddr> for Endpoint {
    #[inline]
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::new(a.ip(), a.port())
    }
}

impl From<Endpoint> for SocketAddr {
    #[inline]
    fn from(e: Endpoint) -> SocketAddr {
        SocketAddr::new(e.ip, e.port)
    }
}

/// A transport protocol xvs balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The protocol for an IP protocol number, if xvs balances it.
    pub const fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    /// Lower-case name as in the config and in metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 5-tuple of one direction of a flow, as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: Proto,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl FlowKey {
    /// The key of the opposite direction.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}
