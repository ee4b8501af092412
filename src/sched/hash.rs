//! Hash functions shared by the hashing and locality schedulers, and the bucket table of `sh` and
//! `dh`.
//!
//! Two families, for two needs:
//! - [`hash_32`] over [`fold`]: the kernel's multiplicative `hash_32` of an address folded to 32
//!   bits, which IPVS's `sh`, `dh`, `lblc` and `lblcr` use to pick a bucket. Cheap, and even over
//!   consecutive addresses; a fixed function, so two load balancers with the same configuration
//!   map a client to the same bucket.
//! - [`hash_endpoint`]: a seeded 64-bit mix of a whole address, a port and a probe offset, for
//!   `mh`, whose Maglev permutations need two independent hashes of each real server (IPVS uses
//!   `hsiphash` with two fixed keys for the same purpose). Also fixed: the same configuration
//!   gives the same lookup table on every box and every run, so a backup that takes over keeps
//!   the mapping.

use std::net::IpAddr;

use super::RealServer;

/// The kernel's `GOLDEN_RATIO_32`, the multiplier of `hash_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// IPVS's fold of an address to 32 bits: an IPv4 address as a host-order integer, an IPv6
/// address as the XOR of its four 32-bit words.
#[inline]
// Each cast keeps the low 32 bits of a shifted word on purpose: that is the fold.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let b = u128::from(v6);
            (b as u32) ^ ((b >> 32) as u32) ^ ((b >> 64) as u32) ^ ((b >> 96) as u32)
        }
    }
}

/// The kernel's `hash_32(val, bits)`: the top `bits` bits of `val * GOLDEN_RATIO_32`, in
/// `0..2^bits`. `bits` is clamped to 1..=32.
#[inline]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    let bits = bits.clamp(1, 32);
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The splitmix64 finaliser: a bijective 64-bit mix in which every input bit affects every output
/// bit.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of (`ip`, `port`, `offset`) under `seed`. The whole address is hashed (IPv6
/// is not folded), so different seeds give independent hashes of the same endpoint.
#[inline]
// The casts split the 128-bit address into its two 64-bit halves on purpose.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn hash_endpoint(seed: u64, ip: IpAddr, port: u16, offset: u32) -> u64 {
    let h = match ip {
        IpAddr::V4(v4) => mix64(seed ^ u64::from(u32::from(v4))),
        IpAddr::V6(v6) => {
            let b = u128::from(v6);
            mix64(mix64(seed ^ (b >> 64) as u64) ^ b as u64)
        }
    };
    mix64(h ^ (u64::from(port) << 32 | u64::from(offset)))
}

/// Greatest common divisor (0 with 0 gives 0).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smallest bucket table IPVS `sh` and `dh` use (`CONFIG_IP_VS_SH_TAB_BITS` = 8).
pub(crate) const MIN_BUCKET_BITS: u32 = 8;
/// The largest (the kernel's upper bound for `CONFIG_IP_VS_SH_TAB_BITS`).
pub(crate) const MAX_BUCKET_BITS: u32 = 20;
/// Full cycles of the fill the table holds at least, below the size cap: the fill's last cycle
/// is partial, so with `C` cycles a server's share is off by at most one cycle in `C`.
pub(crate) const MIN_CYCLES: u64 = 32;

/// The bucket table of `sh` and `dh`: `2^bits` buckets, each the index of a real server,
/// filled as IPVS's `ip_vs_sh_reassign` does: the servers in list order, each taking
/// `share(server)` consecutive buckets, cycling until every bucket is taken.
///
/// Invariants: every bucket holds an index below `servers` (the length of the real-server list
/// the table was built for); the table is empty only when that list was, and otherwise has
/// exactly `2^bits` buckets.
#[derive(Debug)]
pub(crate) struct Buckets {
    slots: Box<[u32]>,
    bits: u32,
    servers: usize,
}

impl Buckets {
    /// Fills a table for `reals`; `share(r)` is how many consecutive buckets `r` takes per cycle
    /// (at least 1 is used even when it returns 0, as IPVS does).
    ///
    /// Size: the smallest power of two that is at least 256 (IPVS's table) and holds
    /// [`MIN_CYCLES`] cycles, capped at 2^20 buckets. When a cycle does not fit that cap
    /// [`MIN_CYCLES`] times, shares are scaled down in proportion (each keeps at least 1).
    pub(crate) fn fill(reals: &[RealServer], share: impl Fn(&RealServer) -> u64) -> Buckets {
        if reals.is_empty() {
            return Buckets {
                slots: Box::new([]),
                bits: MIN_BUCKET_BITS,
                servers: 0,
            };
        }
        let mut shares: Vec<u64> = reals.iter().map(|r| share(r).max(1)).collect();
        let max_cycle = (1u64 << MAX_BUCKET_BITS) / MIN_CYCLES;
        let cycle: u64 = shares.iter().sum();
        if cycle > max_cycle {
            for s in &mut shares {
                *s = (*s * max_cycle / cycle).max(1);
            }
        }
        let cycle: u64 = shares.iter().sum();
        let wanted = (cycle * MIN_CYCLES).next_power_of_two();
        let bits = wanted
            .trailing_zeros()
            .clamp(MIN_BUCKET_BITS, MAX_BUCKET_BITS);
        let size = 1usize << bits;
        // Server ids in list order with their shares (every share is at least 1, so the cycle
        // always moves on; the list is far shorter than 2^32).
        let order: Vec<(u32, u64)> = (0u32..).zip(shares).collect();
        let slots: Box<[u32]> = order
            .iter()
            .cycle()
            .flat_map(|&(id, n)| std::iter::repeat_n(id, usize::try_from(n).unwrap_or(size)))
            .take(size)
            .collect();
        Buckets {
            slots,
            bits,
            servers: reals.len(),
        }
    }

    /// log2 of the number of buckets.
    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    /// Number of buckets (0 when built for no server).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// [`Buckets::len`] as a `u32` (it is 0 or `2^bits`, at most 2^20).
    pub(crate) fn count(&self) -> u32 {
        if self.slots.is_empty() {
            0
        } else {
            1 << self.bits
        }
    }

    /// The server of bucket `b` (taken modulo the table size); `None` when the table is empty.
    #[inline]
    pub(crate) fn get(&self, b: u32) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        self.slots.get(b as usize & mask).map(|&s| s as usize)
    }

    /// Whether the table was built for a list of `n` servers.
    pub(crate) fn fits(&self, n: usize) -> bool {
        self.servers == n
    }

    /// Buckets per server, for tests.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.servers];
        for &s in self.slots.iter() {
            c[s as usize] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::reals;

    #[test]
    fn hash_32_is_the_kernels() {
        // hash_32(1, 8) = 0x61C88647 >> 24
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        assert!(hash_32(u32::MAX, 20) < 1 << 20);
    }

    #[test]
    fn fold_xors_ipv6_words() {
        assert_eq!(fold("1.2.3.4".parse().unwrap()), 0x0102_0304);
        assert_eq!(fold("0:0:0:1:0:0:0:2".parse().unwrap()), 1 ^ 2);
        assert_eq!(fold("::1:0:0:2".parse().unwrap()), 0x0001_0000 ^ 2);
    }

    #[test]
    fn hash_endpoint_depends_on_every_input() {
        let a: IpAddr = "198.18.1.1".parse().unwrap();
        let b: IpAddr = "198.18.1.2".parse().unwrap();
        let h = hash_endpoint(1, a, 80, 0);
        assert_ne!(h, hash_endpoint(2, a, 80, 0));
        assert_ne!(h, hash_endpoint(1, b, 80, 0));
        assert_ne!(h, hash_endpoint(1, a, 81, 0));
        assert_ne!(h, hash_endpoint(1, a, 80, 1));
        assert_eq!(h, hash_endpoint(1, a, 80, 0));
    }

    #[test]
    fn buckets_cycle_through_servers_by_share() {
        let r = reals(&[2, 1]);
        let t = Buckets::fill(&r, |r| u64::from(r.weight));
        // Cycle 3, at least 32 cycles: 96 -> 128 -> raised to 256.
        assert_eq!(t.len(), 256);
        assert_eq!(
            (0..6).map(|b| t.get(b).unwrap()).collect::<Vec<_>>(),
            [0, 0, 1, 0, 0, 1]
        );
        // 85 full cycles and one bucket: 171 and 85.
        assert_eq!(t.counts(), [171, 85]);
    }

    #[test]
    fn buckets_grow_with_the_cycle_and_stay_capped() {
        let r = reals(&[1; 100]);
        let t = Buckets::fill(&r, |_| 1);
        assert_eq!(t.len(), 4096, "100 * 32 = 3200 -> 4096");
        let big: Vec<u32> = (0..200).map(|i| 60_000 + i).collect();
        let r = reals(&big);
        let t = Buckets::fill(&r, |r| u64::from(r.weight));
        assert_eq!(t.len(), 1 << MAX_BUCKET_BITS);
        let c = t.counts();
        assert!(
            c.iter().all(|&n| n > 0),
            "scaled, every server keeps a share"
        );
        let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        assert!(*max as f64 / *min as f64 <= 1.05, "{min} {max}");
    }

    #[test]
    fn empty_buckets_give_nothing() {
        let t = Buckets::fill(&[], |_| 1);
        assert_eq!(t.get(7), None);
        assert!(t.fits(0));
    }
}
