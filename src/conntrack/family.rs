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

    /// A hash of a flow key (`src`, `dst`, and the ports and protocol packed in `rest`) under
    /// `seed`.
    fn hash_key(seed: &ahash::RandomState, src: Self::Addr, dst: Self::Addr, rest: u64) -> u64;
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

    #[inline]
    fn hash_key(seed: &ahash::RandomState, src: u32, dst: u32, rest: u64) -> u64 {
        seed.hash_one(((u64::from(src) << 32) | u64::from(dst), rest))
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
    fn hash_key(seed: &ahash::RandomState, src: u128, dst: u128, rest: u64) -> u64 {
        seed.hash_one((src, dst, rest))
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
    fn keys_that_differ_anywhere_hash_apart() {
        let seed = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let a = V6::from_ip(ip("2001:2::2")).unwrap();
        let b = V6::from_ip(ip("2001:2:0:1::2")).unwrap();
        let h = |s, d, r| V6::hash_key(&seed, s, d, r);
        assert_ne!(h(a, b, 1), h(b, a, 1));
        assert_ne!(h(a, b, 1), h(a, b, 2));
        assert_ne!(h(a, a, 1), h(a, b, 1));
    }
}
