//! How a tracked connection's packets look on each side of the load balancer: a forwarding
//! method's address rewrite, as data.
//!
//! The packet path rewrites packets with per-method code; code that must apply "the same
//! rewrite as the flow" to something else — the packet quoted inside an ICMP error — reads it
//! from a [`Translation`] instead, so a new method plugs in by building one:
//!
//! | method | client side (original direction) | server side (original direction) |
//! |---|---|---|
//! | NAT | client → VIP | client → real server |
//! | FULLNAT | client → VIP | local address:port → real server |
//!
//! DR and TUN rewrite no address (the real server sees the client side), so they need none.

use std::net::SocketAddrV4;

use crate::conntrack::Tracked;

/// The original direction of a connection as each side sees it. The reply direction is the
/// reverse of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// What the client sends: (client, VIP).
    pub client_side: (SocketAddrV4, SocketAddrV4),
    /// What the real server receives: (source, real server).
    pub server_side: (SocketAddrV4, SocketAddrV4),
}

impl Translation {
    /// NAT (IPVS masquerading): only the destination changes. `None` for an IPv6 connection.
    pub fn nat(t: &Tracked) -> Option<Translation> {
        let v4 = |a: std::net::SocketAddr| match a {
            std::net::SocketAddr::V4(a) => Some(a),
            std::net::SocketAddr::V6(_) => None,
        };
        let (client, vip, real) = (v4(t.client)?, v4(t.vip)?, v4(t.real)?);
        Some(Translation {
            client_side: (client, vip),
            server_side: (client, real),
        })
    }

    /// Whether the source changes too (FULLNAT), so the server side must not see the client.
    pub fn rewrites_source(&self) -> bool {
        self.client_side.0 != self.server_side.0
    }
}
