//! A fixed open-addressing map for the packet path's per-packet lookups by address: a service
//! by (VIP, port, protocol), a neighbour's MAC by (port, address).
//!
//! A general hash map costs more there than its probe: the key (an [`IpAddr`] in a struct) is
//! built on the stack field by field and read back wide by the hasher and the comparison (a
//! store-forwarding stall), and the hasher makes several passes. Here a key is two machine
//! words made from the values in registers ([`WordKey::new`]), hashed by one multiplication.
//!
//! Invariants:
//! - Built whole off the packet path ([`WordMap::build`]) and read-only after: a change is a new
//!   map (services change with a snapshot, neighbours with a next-hop table).
//! - At most half the buckets are used (the bucket count is a power of two at least twice the
//!   number of keys, at least 8), so a probe run always ends at an empty bucket.
//! - A used bucket's key has [`WordKey::USED`] set in `rest`; the empty bucket is all zeros, so
//!   no key compares equal to it.
//! - Keys are unique: a later duplicate replaces the earlier value (as a map's insert would).

use std::net::IpAddr;

/// A lookup key: an address's bits, and a word of the rest (family, port, protocol or port id)
/// with [`WordKey::USED`] set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WordKey {
    addr: u128,
    rest: u32,
}

impl WordKey {
    /// Marks a used bucket's key.
    const USED: u32 = 1 << 31;
    /// Marks an IPv6 address (so that an IPv4 address never equals an IPv6 one).
    const V6: u32 = 1 << 30;

    /// The key of `ip` with `extra` (at most 30 bits: ports, protocol, port id).
    #[inline(always)]
    pub fn new(ip: IpAddr, extra: u32) -> WordKey {
        debug_assert!(extra < WordKey::V6);
        match ip {
            IpAddr::V4(a) => WordKey {
                addr: u128::from(a.to_bits()),
                rest: WordKey::USED | extra,
            },
            IpAddr::V6(a) => WordKey {
                addr: a.to_bits(),
                rest: WordKey::USED | WordKey::V6 | extra,
            },
        }
    }

    /// [`WordKey::new`] of the address whose bits are `bits` (IPv4: the low 32) and family
    /// `v6`.
    #[inline(always)]
    pub fn from_bits(v6: bool, bits: u128, extra: u32) -> WordKey {
        debug_assert!(extra < WordKey::V6);
        let family = if v6 { WordKey::V6 } else { 0 };
        WordKey {
            addr: bits,
            rest: WordKey::USED | family | extra,
        }
    }

    /// The key with the bits of `extra` outside `keep` cleared (the family stays).
    #[inline(always)]
    pub fn keep(self, keep: u32) -> WordKey {
        WordKey {
            addr: self.addr,
            rest: self.rest & (WordKey::USED | WordKey::V6 | keep),
        }
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        // Truncation keeps the low 64 bits on purpose: the high ones are folded in separately.
        #[allow(clippy::cast_possible_truncation)]
        let (lo, hi) = (self.addr as u64, (self.addr >> 64) as u64);
        let x = lo ^ hi.rotate_left(29) ^ (u64::from(self.rest) << 32);
        // Fibonacci hashing: the high bits of the product are well mixed.
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct WordMap<V: Copy + Default> {
    keys: Box<[WordKey]>,
    values: Box<[V]>,
    /// 64 − log2(buckets): the shift that takes a hash's high bits as the home bucket.
    shift: u32,
}

impl<V: Copy + Default> Default for WordMap<V> {
    fn default() -> Self {
        WordMap::build(std::iter::empty())
    }
}

impl<V: Copy + Default> WordMap<V> {
    /// A map of `entries` (a later duplicate key replaces an earlier one).
    pub fn build(entries: impl IntoIterator<Item = (WordKey, V)>) -> WordMap<V> {
        let entries: Vec<(WordKey, V)> = entries.into_iter().collect();
        let n = (entries.len() * 2).next_power_of_two().max(8);
        let mut map = WordMap {
            keys: vec![WordKey::default(); n].into_boxed_slice(),
            values: vec![V::default(); n].into_boxed_slice(),
            shift: 64 - n.trailing_zeros(),
        };
        for (k, v) in entries {
            let i = map.position(&k);
            map.keys[i] = k;
            map.values[i] = v;
        }
        map
    }

    /// The bucket holding `k`, or the empty bucket ending its probe run.
    #[inline(always)]
    fn position(&self, k: &WordKey) -> usize {
        let mask = self.keys.len() - 1;
        // The shift leaves log2(buckets) bits, which fit a usize.
        #[allow(clippy::cast_possible_truncation)]
        let mut i = (k.hash() >> self.shift) as usize;
        loop {
            match self.keys.get(i & mask) {
                Some(b) if b.rest != 0 && b != k => i += 1,
                _ => return i & mask,
            }
        }
    }

    /// The value of `k`.
    #[inline(always)]
    pub fn get(&self, k: WordKey) -> Option<V> {
        let i = self.position(&k);
        match self.keys.get(i) {
            Some(b) if *b == k => self.values.get(i).copied(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<WordKey> = (0..300u32)
            .flat_map(|i| {
                let v4 = IpAddr::V4(std::net::Ipv4Addr::from_bits(0xc612_0000 + i));
                let v6 = IpAddr::V6(std::net::Ipv6Addr::from_bits(
                    0x2001_0002_u128 << 96 | u128::from(i),
                ));
                [WordKey::new(v4, i % 7), WordKey::new(v6, i % 7)]
            })
            .collect();
        let map = WordMap::build(keys.iter().enumerate().map(|(i, k)| (*k, i + 1)));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(*k), Some(i + 1), "{k:?}");
        }
        assert_eq!(map.get(WordKey::new(ip("198.18.0.1"), 9)), None);
        assert_eq!(map.get(WordKey::new(ip("198.18.200.1"), 0)), None);
        assert_eq!(WordMap::<u8>::default().get(keys[0]), None);
    }

    #[test]
    fn families_and_extras_are_part_of_the_key() {
        // ::c612:1 has the bits of 198.18.0.1: still another key.
        let (a4, a6) = (ip("198.18.0.1"), ip("::c612:1"));
        let map = WordMap::build([(WordKey::new(a4, 80), 1u8), (WordKey::new(a4, 81), 2)]);
        assert_eq!(map.get(WordKey::new(a4, 80)), Some(1));
        assert_eq!(map.get(WordKey::new(a4, 81)), Some(2));
        assert_eq!(map.get(WordKey::new(a6, 80)), None);
        assert_eq!(
            WordKey::from_bits(false, 0xc612_0001, 80),
            WordKey::new(a4, 80)
        );
        assert_eq!(
            WordKey::from_bits(true, 0xc612_0001, 80),
            WordKey::new(a6, 80)
        );
        assert_eq!(
            WordKey::new(a4, 80 << 8 | 6).keep(0xff),
            WordKey::new(a4, 6)
        );
        let dup = WordMap::build([(WordKey::new(a4, 1), 1u8), (WordKey::new(a4, 1), 2)]);
        assert_eq!(
            dup.get(WordKey::new(a4, 1)),
            Some(2),
            "a later duplicate wins"
        );
    }
}
