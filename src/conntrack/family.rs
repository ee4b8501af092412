//! Address families of the connection table: the per-family address type its entries, keys and
//! pools store, and the conversions from and to [`IpAddr`].
//!
//! Invariants:
//! - [`Family`] is sealed: [`V4`] (`u32`, the address's bits) and [`V6`] (`u128`, the address's
//!   bits) are its only implementations, so an entry of either stays the size its const assert
//!   says.
//! - [`Family::from_ip`] accepts exactly the addresses of its family: a key, connection or pool
//!   address of the other family is `None`, never converted (no IPv4-mapped IPv6 translation).
//! - The all-zero address is never a pool address (the config refuses unspecified addresses), so
//!   the table may use it as "no local address".

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::V4 {}
    impl Sealed for super::V6 {}
}

/// An address family the connection table stores (see the module documentation).
pub trait Family: sealed::Sealed + Copy + Eq + Debug + Send + Sync + 'static {
    /// The stored form of an address.
    type Addr: Copy + Eq + Ord + Hash + Debug + Default + Send + Sync + 'static;

    /// The address, if it is of this family.
    fn from_ip(ip: IpAddr) -> Option<Self::Addr>;

    /// The address as an [`IpAddr`].
    fn to_ip(a: Self::Addr) -> IpAddr;

    /// A hash of an endpoint's address `addr` and the ports and protocol packed in `rest`
    /// (below 2^40) under `seed`: what the connection table's index hashes (see `Key::hash`).
    fn hash_endpoint(seed: &ahash::RandomState, addr: Self::Addr, rest: u64) -> u64;
}

/// IPv4: addresses as their 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4;

/// IPv6: addresses as their 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6;

impl Family for V4 {
    type Addr = u32;

    #[inline]
    fn from_ip(ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(a) => Some(a.to_bits()),
            IpAddr::V6(_) => None,
        }
    }

    #[inline]
    fn to_ip(a: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from_bits(a))
    }

    /// One 128-bit word: the address above the 40 bits of `rest`.
    #[inline]
    fn hash_endpoint(seed: &ahash::RandomState, addr: u32, rest: u64) -> u64 {
        seed.hash_one((u128::from(addr) << 64) | u128::from(rest))
    }
}

impl Family for V6 {
    type Addr = u128;

    #[inline]
    fn from_ip(ip: IpAddr) -> Option<u128> {
        match ip {
            IpAddr::V6(a) => Some(a.to_bits()),
            IpAddr::V4(_) => None,
        }
    }

    #[inline]
    fn to_ip(a: u128) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from_bits(a))
    }

    #[inline]
    fn hash_endpoint(seed: &ahash::RandomState, addr: u128, rest: u64) -> u64 {
        seed.hash_one((addr, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_family_takes_only_its_own_addresses_and_round_trips() {
        let a4 = ip("198.18.0.2");
        let a6 = ip("2001:2::2");
        assert_eq!(V4::from_ip(a4).map(V4::to_ip), Some(a4));
        assert_eq!(V6::from_ip(a6).map(V6::to_ip), Some(a6));
        assert_eq!(V4::from_ip(a6), None);
        assert_eq!(V6::from_ip(a4), None);
        // An IPv4-mapped IPv6 address stays IPv6.
        assert_eq!(V4::from_ip(ip("::ffff:198.18.0.2")), None);
    }

    #[test]
    fn endpoints_that_differ_anywhere_hash_apart() {
        let seed = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let a = V6::from_ip(ip("2001:2::2")).unwrap();
        let b = V6::from_ip(ip("2001:2:0:1::2")).unwrap();
        let h6 = |a, r| V6::hash_endpoint(&seed, a, r);
        assert_ne!(h6(a, 1), h6(b, 1));
        assert_ne!(h6(a, 1), h6(a, 2));
        let c = V4::from_ip(ip("198.18.0.2")).unwrap();
        let d = V4::from_ip(ip("198.18.0.3")).unwrap();
        let h4 = |a, r| V4::hash_endpoint(&seed, a, r);
        assert_ne!(h4(c, 1), h4(d, 1));
        assert_ne!(h4(c, 1 << 8), h4(c, 2 << 8));
        assert_ne!(h4(c, 6), h4(c, 17));
        assert_ne!(h4(c, 1 << 24), h4(c, 2 << 24));
        assert_ne!(h4(c, (1 << 24) | (2 << 8)), h4(c, (2 << 24) | (1 << 8)));
    }
}
