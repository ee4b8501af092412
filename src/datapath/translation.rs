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
//!
//! Family-generic: a connection's addresses are all of one family (the connection table
//! refuses others), so a translation is IPv4 (NAT, FULLNAT) or IPv6 (NAT6, FULLNAT6) throughout.

use std::net::SocketAddr;

use crate::conntrack::Tracked;

/// The original direction of a connection as each side sees it. The reply direction is the
/// reverse of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// What the client sends: (client, VIP).
    pub client_side: (SocketAddr, SocketAddr),
    /// What the real server receives: (source, real server).
    pub server_side: (SocketAddr, SocketAddr),
}

impl Translation {
    /// NAT (IPVS masquerading): only the destination changes. `None` for an entry whose
    /// addresses are not of one family (the table never holds one).
    pub fn nat(t: &Tracked) -> Option<Translation> {
        let (client, vip, real) = (t.client(), t.vip(), t.real());
        one_family(&[client, vip, real]).then_some(Translation {
            client_side: (client, vip),
            server_side: (client, real),
        })
    }

    /// FULLNAT: both ends change; the real server sees the connection's local address:port as
    /// its peer. `None` for a connection without a local endpoint (NAT), or whose addresses are
    /// not of one family.
    pub fn fullnat(t: &Tracked) -> Option<Translation> {
        let (client, vip, real, local) = (t.client(), t.vip(), t.real(), t.local()?);
        one_family(&[client, vip, real, local]).then_some(Translation {
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

/// Whether every address is of the first one's family.
fn one_family(addrs: &[SocketAddr]) -> bool {
    addrs.windows(2).all(|w| w[0].is_ipv4() == w[1].is_ipv4())
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

    fn sa(s: &str) -> SocketAddr {
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

    #[test]
    fn ipv6_connections_translate_the_same_way() {
        let (state, origin) = (ConnState::Established, crate::conntrack::Origin::UNKNOWN);
        let ends = (
            sa("[2001:2::2]:40000"),
            sa("[2001:2::100]:80"),
            sa("[2001:2:1::11]:8080"),
        );
        let nat = Translation::of(&Tracked::new(ends, None, state, origin, 0)).unwrap();
        assert_eq!(nat.server_side, (ends.0, ends.2));
        assert!(!nat.rewrites_source());
        let local = sa("[2001:2:1::2]:20000");
        let t = Tracked::new(ends, Some(local), state, origin, 0);
        let fnat = Translation::of(&t).unwrap();
        assert_eq!(fnat.client_side, (ends.0, ends.1));
        assert_eq!(fnat.server_side, (local, ends.2));
        assert!(fnat.rewrites_source());
        let mixed = Tracked::new(ends, Some(sa("198.18.1.2:20000")), state, origin, 0);
        assert_eq!(Translation::of(&mixed), None);
    }
}
