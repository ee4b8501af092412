//! Internet checksum (RFC 1071) and its incremental update (RFC 1624, eqn. 3:
//! `HC' = ~(~HC + ~m + m')`), for IPv4 header, TCP and UDP checksums.
//!
//! All functions work on 16-bit words in network order, as they appear on the wire.

/// One's-complement sum of `data` (padded with a zero byte if odd) added to `initial`, unfolded.
#[allow(clippy::cast_possible_truncation)] // folded to at most 0xffff_ffff before the cast
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    // Fold 64 → 32 bits without losing carries.
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline]
#[allow(clippy::cast_possible_truncation)] // folded to at most 0xffff before the cast
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum field value for `data` (e.g. an IPv4 header with its checksum field zeroed).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Whether `data` (including its checksum field) verifies.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
