//! Internet checksum (RFC 1071) and its incremental update (RFC 1624, eqn. 3:
//! `HC' = ~(~HC + ~m + m')`), for IPv4 header, TCP, UDP and ICMPv6 checksums.
//!
//! Over IPv6 there is no header checksum, and every upper-layer checksum (TCP, UDP, ICMPv6)
//! covers the IPv6 pseudo-header ([`ipv6_pseudo_header_sum`]); rewriting an address (NAT6) is
//! an update of eight words ([`update_ipv6_addr`]). UDP's "no checksum" (0) is not allowed
//! over IPv6, so a UDP checksum that computes to 0 is written 0xffff ([`udp_field`]).
//!
//! All functions work on 16-bit words in network order, as they appear on the wire.

/// One's-complement sum of `data` (padded with a zero byte if odd) added to `initial`, unfolded
/// (only its fold is defined: callers fold it). Summed four bytes at a time: a 32-bit big-endian
/// word is two 16-bit words, and 2^16 ≡ 1 modulo 0xffff, so the folded sum is the 16-bit one's
/// (0 only when `initial` and every byte are). Every IPv4 header ([`verifies`]) and every
/// message xvs checksums goes through here.
#[inline]
#[allow(clippy::cast_possible_truncation)] // folded to at most 0xffff_ffff before the cast
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    acc += match *words.remainder() {
        [a, b, c] => u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a] => u64::from(a) << 8,
        _ => 0,
    };
    // Fold 64 → 32 bits without losing carries (2^32 ≡ 1 modulo 0xffff too).
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)] // folded to at most 0xffff before the cast
pub fn fold(s: u32) -> u16 {
    // Two steps always suffice, without a loop: the first leaves at most 0xffff + 0xffff, the
    // second at most 0xfffe + 1; a sum already within 16 bits passes both unchanged.
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// [`verifies`] of an IPv4 header without options (20 bytes), its five 32-bit words summed
/// without a loop: what the established-flow fast path checks per frame.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)] // folded to at most 0xffff_ffff before the cast
pub fn ipv4_header_verifies(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    // At most 5 × 0xffff_ffff: two folds of the carries bring it within 32 bits.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32) == 0xffff
}

/// The checksum field value for `data` (e.g. an IPv4 header with its checksum field zeroed).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Whether `data` (including its checksum field) verifies.
#[inline]
pub fn verifies(data: &[u8]) -> bool {
    fold(sum(data, 0)) == 0xffff
}

/// Updates checksum `hc` for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!hc) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// Updates checksum `hc` for a run of bytes (even length) changing from `old` to `new`.
#[inline]
pub fn update_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut s = u32::from(!hc);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        s += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(s)
}

/// Sum of the IPv4 pseudo-header (RFC 793/768) for a transport checksum.
pub fn ipv4_pseudo_header_sum(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut s = sum(&src, 0);
    s = sum(&dst, s);
    s + u32::from(proto) + u32::from(l4_len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer checksum: source,
/// destination, the upper-layer packet length as 32 bits (the upper-layer header and data, not
/// the extension headers before it), three zero bytes and the upper-layer protocol number (not
/// the next header of the fixed header when extension headers come between). `src`/`dst` are
/// the addresses the packet carries, or for a routing header the final destination (xvs
/// refuses routing headers with segments left, so it is the fixed header's).
pub fn ipv6_pseudo_header_sum(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> u32 {
    let mut s = sum(&src, 0);
    s = sum(&dst, s);
    s = sum(&l4_len.to_be_bytes(), s);
    sum(&[0, 0, 0, next_header], s)
}

/// Updates checksum `hc` for an IPv6 address changing from `old` to `new` (RFC 1624 over its
/// eight 16-bit words): what NAT6 applies to a TCP, UDP or ICMPv6 checksum, whose
/// pseudo-header holds both addresses, without recomputing it. For UDP pass the result through
/// [`udp_field`].
#[inline]
pub fn update_ipv6_addr(hc: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    update_bytes(hc, old, new)
}

/// The UDP checksum field for a computed (or incrementally updated) checksum `c`: 0 is written
/// as 0xffff, its one's-complement equal (RFC 768), because 0 means "no checksum", which IPv6
/// forbids (RFC 8200 §8.1) and which would switch verification off over IPv4.
#[inline]
pub fn udp_field(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values: the low bits of random words
mod tests {
    use super::*;

    /// The loop [`fold`] replaced, as the reference.
    fn fold_loop(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn the_two_step_fold_equals_the_loop_and_the_header_check_equals_verifies() {
        let mut r: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        for s in [0, 1, 0xffff, 0x1_0000, 0x1_fffe, 0xffff_0000, 0xffff_ffff] {
            assert_eq!(fold(s), fold_loop(s), "{s:#x}");
        }
        for _ in 0..100_000 {
            let s = next() as u32;
            assert_eq!(fold(s), fold_loop(s), "{s:#x}");
            let mut h = [0u8; 20];
            h.iter_mut().for_each(|b| *b = next() as u8);
            if next() & 1 == 0 {
                // Half of them valid: the checksum field made to verify.
                h[10..12].fill(0);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(ipv4_header_verifies(&h), verifies(&h), "{h:?}");
        }
        let all = [0xffu8; 20];
        assert_eq!(ipv4_header_verifies(&all), verifies(&all));
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 → sum ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        data[10] = 0;
        data[11] = 0;
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&data));
        for (at, new) in [(0usize, [0xffu8, 0xff]), (12, [0, 0]), (38, [0x12, 0x34])] {
            let old = [data[at], data[at + 1]];
            let hc = u16::from_be_bytes([data[10], data[11]]);
            let hc2 = update_bytes(hc, &old, &new);
            data[at..at + 2].copy_from_slice(&new);
            data[10..12].copy_from_slice(&hc2.to_be_bytes());
            assert!(verifies(&data), "after changing bytes at {at}");
        }
    }

    #[test]
    fn update_u16_equals_update_bytes() {
        assert_eq!(
            update_u16(0x1234, 0xabcd, 0x0f0f),
            update_bytes(0x1234, &[0xab, 0xcd], &[0x0f, 0x0f])
        );
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(sum(&[0x01], 0), 0x0100);
    }

    /// A plain RFC 1071 sum, written apart from [`sum`]: one word at a time, carries folded in
    /// as they happen.
    fn plain_sum(words: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in words.chunks(2) {
            let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            s += w;
            if s > 0xffff {
                s = (s & 0xffff) + 1;
            }
        }
        u16::try_from(s).unwrap()
    }

    const SRC6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0];

    #[test]
    fn ipv6_pseudo_header_is_rfc8200_layout() {
        // RFC 8200 §8.1: src (16), dst (16), upper-layer length (4), zero (3), next header (1).
        let mut ph = Vec::new();
        ph.extend_from_slice(&SRC6);
        ph.extend_from_slice(&DST6);
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(ph.len(), 40);
        let s = ipv6_pseudo_header_sum(SRC6, DST6, 6, 0x0001_0203);
        assert_eq!(fold(s), plain_sum(&ph));
        // Lengths above 65535 (a jumbogram's) count both halves.
        assert_ne!(
            fold(ipv6_pseudo_header_sum(SRC6, DST6, 6, 0x0001_0000)),
            fold(ipv6_pseudo_header_sum(SRC6, DST6, 6, 0))
        );
    }

    #[test]
    fn ipv6_address_update_matches_full_recompute() {
        let new: [u8; 16] = [
            0x20, 0x01, 0, 2, 0, 0, 0, 4, 0xff, 0xee, 0, 0, 0x12, 0, 0, 0x11,
        ];
        let payload = [0x04u8, 0xd2, 0x00, 0x50, 1, 2, 3, 4, 5];
        let full = |dst: [u8; 16]| {
            let l = u32::try_from(payload.len()).unwrap();
            !fold(sum(&payload, ipv6_pseudo_header_sum(SRC6, dst, 6, l)))
        };
        let before = full(DST6);
        assert_eq!(update_ipv6_addr(before, &DST6, &new), full(new));
        assert_eq!(update_ipv6_addr(full(new), &new, &DST6), before);
    }

    #[test]
    fn the_four_byte_sum_folds_as_the_two_byte_sum_for_every_length_and_edge() {
        // Lengths 0..=64 (every remainder of the four-byte walk), data that verifies and data
        // that does not, all zeros (sum 0, never verifies) and all ones (verifies), from several
        // initial sums (a pseudo-header's among them).
        let mut x = 0x1234_5678u32;
        for len in 0..=64usize {
            let mut data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_be_bytes()[0]
                })
                .collect();
            let reference = |d: &[u8]| plain_sum(d) == 0xffff;
            assert_eq!(verifies(&data), reference(&data), "len {len}");
            for initial in [0, 1, 0x1_2345, 0xffff_ffff] {
                let want = fold(u32::from(plain_sum(&data)) + u32::from(fold(initial)));
                let got = fold(sum(&data, initial));
                assert_eq!(got, want, "len {len} from {initial:#x}");
            }
            if len >= 2 {
                data[0] = 0;
                data[1] = 0;
                let c = checksum(&data);
                data[..2].copy_from_slice(&c.to_be_bytes());
                assert!(verifies(&data), "len {len} with its checksum");
            }
            for fill in [0u8, 0xff] {
                let d = vec![fill; len];
                assert_eq!(verifies(&d), reference(&d), "len {len} of {fill:#x}");
                assert_eq!(fold(sum(&d, 0)), plain_sum(&d), "len {len} of {fill:#x}");
            }
        }
    }

    #[test]
    fn udp_zero_is_written_all_ones() {
        assert_eq!(udp_field(0), 0xffff);
        assert_eq!(udp_field(0xffff), 0xffff);
        assert_eq!(udp_field(0x1234), 0x1234);
    }
}
