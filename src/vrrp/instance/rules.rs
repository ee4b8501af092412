//! The rules a virtual router's configuration must keep, as plain values and pure functions, so
//! that [`super::validate`] (what an instance accepts) and the config file's validation
//! (`control::config`, which reports each at its `FILE:LINE:COL`) apply the same ones. Nothing
//! here knows the config file: callers pass numbers, addresses and [`Version`]s.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::super::packet::{Version, NANOS_PER_CENTISECOND};
use crate::flow::NANOS_PER_SEC;

/// The VRIDs a virtual router may have (0 is not one: RFC 5798 §5.2.3).
pub const VRIDS: RangeInclusive<u8> = 1..=255;

/// The priorities that can be configured: 0 is reserved for the release advert (RFC 5798
/// §5.2.4), 255 is the address owner ([`OWNER_PRIORITY`]).
pub const PRIORITIES: RangeInclusive<u8> = 1..=255;

/// The address owner's priority: it goes straight to Master and its priority never moves.
pub const OWNER_PRIORITY: u8 = 255;

/// The effective priorities of an instance that does not own the addresses: track-script
/// weights move its priority within these.
pub const BACKUP_PRIORITIES: RangeInclusive<u8> = 1..=254;

/// The largest track-script weight, either sign: one weight can move a priority from one end
/// of [`BACKUP_PRIORITIES`] to the other and no further.
pub const MAX_TRACK_WEIGHT: i32 = 253;

/// The most virtual addresses one advertisement carries (its count field is 8 bits); an
/// instance has at least one.
pub const MAX_ADDRESSES: usize = u8::MAX as usize;

/// Why an advertisement interval cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalError {
    /// 0: a backup's Master_Down_Interval would be its Skew_Time alone.
    Zero,
    /// v2 advertises whole seconds (RFC 3768 §5.3.7).
    NotWholeSeconds,
    /// v3 advertises centiseconds (RFC 5798 §5.2.7).
    NotCentiseconds,
    /// Longer than the field holds: v2 255 s (8 bits), v3 40.95 s (12 bits of centiseconds).
    TooLong,
}

/// The advertisement interval of `nanos` nanoseconds as the version carries it, in
/// centiseconds (v2: a multiple of 100). The checks run in the order of [`IntervalError`].
pub fn advert_interval_cs(version: Version, nanos: u128) -> Result<u16, IntervalError> {
    if nanos == 0 {
        return Err(IntervalError::Zero);
    }
    let (unit, not_a_multiple) = match version {
        Version::V2 => (NANOS_PER_SEC, IntervalError::NotWholeSeconds),
        Version::V3 => (NANOS_PER_CENTISECOND, IntervalError::NotCentiseconds),
    };
    if !nanos.is_multiple_of(u128::from(unit)) {
        return Err(not_a_multiple);
    }
    // A non-zero multiple of the unit: only the upper bound can fail from here.
    u16::try_from(nanos / u128::from(NANOS_PER_CENTISECOND))
        .ok()
        .filter(|&cs| version.interval_ok(cs))
        .ok_or(IntervalError::TooLong)
}

/// Why an address cannot be one of an instance's virtual addresses next to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FamilyError {
    /// One advertisement carries one family: an IPv4 and an IPv6 address need two instances.
    #[error("the virtual addresses mix IPv4 and IPv6")]
    Mixed,
    /// VRRPv2 (RFC 3768) is IPv4 only.
    #[error("VRRP version 2 is IPv4 only")]
    V2Ipv6,
}

/// Whether `addr` can be a virtual address of a `version` instance whose first virtual address
/// is `first` (the first fixes the instance's family).
pub fn address_family(version: Version, first: IpAddr, addr: IpAddr) -> Result<(), FamilyError> {
    if addr.is_ipv6() != first.is_ipv6() {
        Err(FamilyError::Mixed)
    } else if addr.is_ipv6() && version == Version::V2 {
        Err(FamilyError::V2Ipv6)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;

    #[test]
    fn intervals_follow_each_versions_field() {
        use IntervalError::*;
        let v2 = |ns| advert_interval_cs(Version::V2, ns);
        let v3 = |ns| advert_interval_cs(Version::V3, ns);
        assert_eq!(v2(0), Err(Zero));
        assert_eq!(v3(0), Err(Zero));
        assert_eq!(v2(S), Ok(100));
        assert_eq!(v2(255 * S), Ok(25_500));
        assert_eq!(v2(256 * S), Err(TooLong));
        assert_eq!(v2(1_500 * MS), Err(NotWholeSeconds));
        assert_eq!(v2(10 * MS), Err(NotWholeSeconds));
        assert_eq!(v3(10 * MS), Ok(1));
        assert_eq!(v3(40_950 * MS), Ok(4095));
        assert_eq!(v3(40_960 * MS), Err(TooLong));
        assert_eq!(v3(5 * MS), Err(NotCentiseconds));
        // Longer than u64 nanoseconds or u16 centiseconds: "too long", never a wrap.
        assert_eq!(v3((u128::from(u64::MAX) / S + 1) * S), Err(TooLong));
        assert_eq!(v3(u128::from(u16::MAX) * 10 * MS + 10 * MS), Err(TooLong));
    }

    #[test]
    fn one_family_per_instance_and_v2_is_ipv4_only() {
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(address_family(Version::V2, v4, v4), Ok(()));
        assert_eq!(address_family(Version::V3, v6, v6), Ok(()));
        assert_eq!(address_family(Version::V3, v4, v6), Err(FamilyError::Mixed));
        assert_eq!(address_family(Version::V3, v6, v4), Err(FamilyError::Mixed));
        assert_eq!(
            address_family(Version::V2, v6, v6),
            Err(FamilyError::V2Ipv6)
        );
    }

    #[test]
    fn a_track_weight_spans_the_backup_priorities_exactly() {
        let span = i32::from(*BACKUP_PRIORITIES.end()) - i32::from(*BACKUP_PRIORITIES.start());
        assert_eq!(MAX_TRACK_WEIGHT, span);
        assert_eq!(*PRIORITIES.end(), OWNER_PRIORITY);
        assert_eq!(*BACKUP_PRIORITIES.end(), OWNER_PRIORITY - 1);
    }
}
