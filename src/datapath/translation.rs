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
//! [`Translation::of`] picks by the connection entry (a local endpoint means FULLNAT).
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
        let (client, vip, real) = (v4(t.client())?, v4(t.vip())?, v4(t.real())?);
        Some(Translation {
            client_side: (client, vip),
            server_side: (client, real),
        })
    }

    /// FULLNAT: both ends change; the real server sees the connection's local address:port as
    /// its peer. `None` for a connection without a local endpoint (NAT) or an IPv6 one.
    pub fn fullnat(t: &Tracked) -> Option<Translation> {
        let v4 = |a: std::net::SocketAddr| match a {
            std::net::SocketAddr::V4(a) => Some(a),
            std::net::SocketAddr::V6(_) => None,
        };
        let (client, vip, real, local) = (
            v4(t.client())?,
            v4(t.vip())?,
            v4(t.real())?,
            v4(t.local()?)?,
        );
        Some(Translation {
            client_side: (client, vip),
            server_side: (local, real),
        })
    }

    /// The translation of a connection of a NAT or FULLNAT service: FULLNAT when the entry
    /// carries a local endpoint (a connection keeps the method it was created with, even when a
    /// reload switched its service between NAT and FULLNAT), NAT otherwise.
    pub fn of(t: &Tracked) -> Option<Translation> {
        match t.local() {
            Some(_) => Translation::fullnat(t),
            None => Translation::nat(t),
        }
    }

    /// Whether the source changes too (FULLNAT), so the server side must not see the client.
    pub fn rewrites_source(&self) -> bool {
        self.client_side.0 != self.server_side.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConnState;

    fn tracked(local: Option<&str>) -> Tracked {
        let sa = |s: &str| -> std::net::SocketAddr { s.parse().unwrap() };
        let ends = (
            sa("198.18.0.2:40000"),
            sa("198.18.0.100:80"),
            sa("198.18.1.11:8080"),
        );
        let (state, origin) = (ConnState::Established, crate::conntrack::Origin::UNKNOWN);
        Tracked::new(ends, local.map(sa), state, origin, 0)
    }

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn nat_changes_the_destination_only() {
        let t = Translation::of(&tracked(None)).unwrap();
        assert_eq!(t, Translation::nat(&tracked(None)).unwrap());
        assert_eq!(
            t.client_side,
            (sa("198.18.0.2:40000"), sa("198.18.0.100:80"))
        );
        assert_eq!(
            t.server_side,
            (sa("198.18.0.2:40000"), sa("198.18.1.11:8080"))
        );
        assert!(!t.rewrites_source());
    }

    #[test]
    fn fullnat_server_side_comes_from_the_local_endpoint() {
        let c = tracked(Some("198.18.1.2:20000"));
        let t = Translation::of(&c).unwrap();
        assert_eq!(
            t.client_side,
            (sa("198.18.0.2:40000"), sa("198.18.0.100:80"))
        );
        assert_eq!(
            t.server_side,
            (sa("198.18.1.2:20000"), sa("198.18.1.11:8080"))
        );
        assert!(t.rewrites_source());
        assert_eq!(Translation::fullnat(&tracked(None)), None);
    }
}
