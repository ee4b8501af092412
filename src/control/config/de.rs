//! Deserializers for the config's scalar forms: durations with units, addresses, port ranges,
//! `queues: all | [..]`, `workers: auto | N`, `cpus: auto | [..]`, VRRP versions and bounded
//! integers.
//!
//! Each gives an error message that names what was expected; serde_yaml_ng adds the position and
//! the path (`services[0].vip: ...`).

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

use crate::control::config::model::Netmask;
use crate::vrrp::instance::rules;

/// Parses a duration written with a unit (`100ms`, `2s`, `15m`, `1h 30m`). A bare number is an
/// error: the unit is not guessed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration: write it with a unit, e.g. `2s`".to_string());
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "duration `{t}` needs a unit, e.g. `{t}s` or `{t}ms`"
        ));
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration `{t}`: {e}"))
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration with a unit, e.g. `100ms`, `2s` or `15m`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "duration `{v}` needs a unit, e.g. `{v}s` or `{v}ms`"
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "duration `{v}` needs a unit, e.g. `2s` (and cannot be negative)"
        )))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "duration `{v}` needs a unit, e.g. `100ms` instead of `0.1`"
        )))
    }
}

/// `#[serde(deserialize_with = "de::duration")]`
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// A value parsed from a string with [`FromStr`], with a message naming what was expected.
struct ParsedVisitor<T> {
    what: &'static str,
    example: &'static str,
    _t: PhantomData<T>,
}

impl<T: FromStr> Visitor<'_> for ParsedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} such as {}", self.what, self.example)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.trim().parse().map_err(|_| {
            E::custom(format!(
                "invalid {} `{v}`: expected {} such as {}",
                self.what, self.what, self.example
            ))
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Err(E::custom(format!(
            "invalid {} `{v}`: expected {} such as {}",
            self.what, self.what, self.example
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_u64(v.unsigned_abs())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(E::custom(format!(
            "invalid {} `{v}`: expected {} such as {}",
            self.what, self.what, self.example
        )))
    }
}

const IP_EXAMPLE: &str = "`198.18.0.100` or `2001:db8::100`";
const SOCKET_EXAMPLE: &str = "`198.18.1.11:80` or `[2001:db8::11]:80`";

fn ip_visitor() -> ParsedVisitor<IpAddr> {
    ParsedVisitor {
        what: "IP address",
        example: IP_EXAMPLE,
        _t: PhantomData,
    }
}

/// Parses `ADDR:PORT`: `198.18.1.11:80` or `[2001:db8::11]:80`. The error names what is wrong
/// where it can tell (an IPv6 address without brackets or without a port, a bad address inside
/// the brackets), after `invalid address` and the text as written.
pub fn parse_socket_addr(v: &str) -> Result<SocketAddr, String> {
    let t = v.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    let why = if let Some(rest) = t.strip_prefix('[') {
        match rest.split_once(']') {
            None => "an IPv6 address opened with `[` must be closed with `]`".to_string(),
            Some((inner, _)) if inner.parse::<std::net::Ipv6Addr>().is_err() => {
                format!("`{inner}` is not an IPv6 address")
            }
            Some((inner, "")) => {
                format!("the port is missing: write `[{inner}]:PORT`, e.g. `[{inner}]:80`")
            }
            Some((_, rest)) => match rest.strip_prefix(':') {
                Some(port) => format!("`{port}` is not a port 0..65535"),
                None => "write `:PORT` right after the closing bracket".to_string(),
            },
        }
    } else if t.parse::<std::net::Ipv6Addr>().is_ok() {
        "an IPv6 address with a port is written in brackets, `[ADDR]:PORT`, e.g. `[2001:db8::11]:80`".to_string()
    } else if t.parse::<std::net::Ipv4Addr>().is_ok() {
        format!("the port is missing: write `{t}:PORT`, e.g. `{t}:80`")
    } else {
        format!("expected an address such as {SOCKET_EXAMPLE}")
    };
    Err(format!("invalid address `{v}`: {why}"))
}

struct SocketVisitor;

impl Visitor<'_> for SocketVisitor {
    type Value = SocketAddr;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an address such as {SOCKET_EXAMPLE}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
        parse_socket_addr(v).map_err(E::custom)
    }

    // A number is never an address: the same message as for the text it was written as.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SocketAddr, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SocketAddr, E> {
        self.visit_u64(v.unsigned_abs())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<SocketAddr, E> {
        self.visit_str(&v.to_string())
    }
}

/// An IPv4 or IPv6 address.
pub fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    d.deserialize_any(ip_visitor())
}

/// An `ADDR:PORT` (IPv6 in brackets).
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    d.deserialize_any(SocketVisitor)
}

/// A wrapper so that lists and options reuse the visitors above.
struct Ip(IpAddr);

impl<'de> de::Deserialize<'de> for Ip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ip(d).map(Ip)
    }
}

struct Sock(SocketAddr);

impl<'de> de::Deserialize<'de> for Sock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        socket_addr(d).map(Sock)
    }
}

/// A list of IP addresses.
pub fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    let v: Vec<Ip> = de::Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|i| i.0).collect())
}

/// A persistence netmask: a mask, or a prefix length as an integer (`64`) or a string (`"64"`,
/// `/64`).
struct NetmaskVisitor;

const NETMASK_EXPECTED: &str =
    "a mask such as `255.255.255.0` or `ffff:ffff:ffff:ffff::`, or a prefix length 0..128 such as `64`";

impl Visitor<'_> for NetmaskVisitor {
    type Value = Netmask;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(NETMASK_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Netmask, E> {
        let t = v.trim();
        let digits = t.strip_prefix('/').unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return digits
                .parse::<u64>()
                .map_err(|_| {
                    E::custom(format!(
                        "invalid netmask `{v}`: expected {NETMASK_EXPECTED}"
                    ))
                })
                .and_then(|n| self.visit_u64(n));
        }
        t.parse().map(Netmask::Mask).map_err(|_| {
            E::custom(format!(
                "invalid netmask `{v}`: expected {NETMASK_EXPECTED}"
            ))
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Netmask, E> {
        u8::try_from(v)
            .ok()
            .filter(|&n| n <= 128)
            .map(Netmask::Prefix)
            .ok_or_else(|| E::custom(format!("netmask prefix length {v} is out of range 0..128")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Netmask, E> {
        match u64::try_from(v) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!(
                "invalid netmask `{v}`: expected {NETMASK_EXPECTED}"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Netmask, E> {
        Err(E::custom(format!(
            "invalid netmask `{v}`: expected {NETMASK_EXPECTED}"
        )))
    }
}

struct NetmaskDe(Netmask);

impl<'de> de::Deserialize<'de> for NetmaskDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NetmaskVisitor).map(NetmaskDe)
    }
}

/// An optional persistence netmask (`null` = none).
pub fn opt_netmask<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Netmask>, D::Error> {
    let v: Option<NetmaskDe> = de::Deserialize::deserialize(d)?;
    Ok(v.map(|m| m.0))
}

/// An optional `ADDR:PORT` (`null` = none).
pub fn opt_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let v: Option<Sock> = de::Deserialize::deserialize(d)?;
    Ok(v.map(|s| s.0))
}

/// An integer in `min..=max`, with a message naming the field.
struct BoundedVisitor {
    field: &'static str,
    min: u64,
    max: u64,
}

impl Visitor<'_> for BoundedVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as an integer {}..{}", self.field, self.min, self.max)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v < self.min || v > self.max {
            return Err(E::custom(format!(
                "{} {v} is out of range {}..{}",
                self.field, self.min, self.max
            )));
        }
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "{} {v} is out of range {}..{}",
                self.field, self.min, self.max
            ))),
        }
    }
}

/// An integer of type `T` in `range`, refused with a message naming the field.
fn bounded<'de, D: Deserializer<'de>, T: Copy + Into<u64> + TryFrom<u64>>(
    d: D,
    field: &'static str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, D::Error> {
    let (min, max) = ((*range.start()).into(), (*range.end()).into());
    let v = d.deserialize_any(BoundedVisitor { field, min, max })?;
    // The visitor returned a value within `range`, which fits T.
    T::try_from(v)
        .map_err(|_| de::Error::custom(format!("{field} {v} is out of range {min}..{max}")))
}

/// A port, `0..65535`.
pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    bounded(d, "port", 0..=u16::MAX)
}

/// A VRRP virtual router id, `1..255` ([`rules::VRIDS`], the instance's own range).
pub fn vrid<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    bounded(d, "vrid", rules::VRIDS)
}

/// A VRRP priority, `1..255` (255 = address owner; [`rules::PRIORITIES`], the instance's own
/// range).
pub fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    bounded(d, "priority", rules::PRIORITIES)
}

/// Implements `Deserialize` for a type through a visitor that sees any scalar or sequence.
macro_rules! any_deserialize {
    ($ty:ty, $visitor:expr) => {
        impl<'de> de::Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any($visitor)
            }
        }
    };
}

// ---- queues: all | [0, 1] -------------------------------------------------------------------

use super::model::{Cpus, IpPrefix, PortRange, Queues, VrrpVersion, Workers};

struct QueuesVisitor;

impl<'de> Visitor<'de> for QueuesVisitor {
    type Value = Queues;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`all` or a list of queue numbers such as `[0, 1]`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Queues, E> {
        if v == "all" {
            Ok(Queues::All)
        } else {
            Err(E::custom(format!(
                "invalid queues `{v}`: expected `all` or a list of queue numbers such as `[0, 1]`"
            )))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Queues, E> {
        Err(E::custom(format!(
            "invalid queues `{v}`: write a list, e.g. `[{v}]`, or `all`"
        )))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Queues, A::Error> {
        let mut v = Vec::new();
        while let Some(q) = seq.next_element::<u32>()? {
            v.push(q);
        }
        Ok(Queues::List(v))
    }
}

any_deserialize!(Queues, QueuesVisitor);

// ---- workers: auto | N ----------------------------------------------------------------------

struct WorkersVisitor;

impl Visitor<'_> for WorkersVisitor {
    type Value = Workers;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`auto` or a number of workers")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Workers, E> {
        if v == "auto" {
            Ok(Workers::Auto)
        } else {
            Err(E::custom(format!(
                "invalid workers `{v}`: expected `auto` or a number"
            )))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Workers, E> {
        u32::try_from(v)
            .map(Workers::Count)
            .map_err(|_| E::custom(format!("workers {v} is too large")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Workers, E> {
        Err(E::custom(format!(
            "invalid workers `{v}`: expected `auto` or a number of at least 1"
        )))
    }
}

any_deserialize!(Workers, WorkersVisitor);

// ---- cpus: auto | [2, 3] --------------------------------------------------------------------

struct CpusVisitor;

impl<'de> Visitor<'de> for CpusVisitor {
    type Value = Cpus;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`auto` or a list of CPU numbers such as `[2, 3]`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
        if v == "auto" {
            Ok(Cpus::Auto)
        } else {
            Err(E::custom(format!(
                "invalid cpus `{v}`: expected `auto` or a list of CPU numbers such as `[2, 3]`"
            )))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
        Err(E::custom(format!(
            "invalid cpus `{v}`: write a list, e.g. `[{v}]`, or `auto`"
        )))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cpus, A::Error> {
        let mut v = Vec::new();
        while let Some(c) = seq.next_element::<u32>()? {
            v.push(c);
        }
        Ok(Cpus::List(v))
    }
}

any_deserialize!(Cpus, CpusVisitor);

// ---- vrrp version: 2 | 3 --------------------------------------------------------------------

struct VersionVisitor;

impl Visitor<'_> for VersionVisitor {
    type Value = VrrpVersion;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("VRRP version 2 or 3")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<VrrpVersion, E> {
        match v {
            2 => Ok(VrrpVersion::V2),
            3 => Ok(VrrpVersion::V3),
            _ => Err(E::custom(format!(
                "invalid VRRP version {v}: expected 2 or 3"
            ))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<VrrpVersion, E> {
        Err(E::custom(format!(
            "invalid VRRP version {v}: expected 2 or 3"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<VrrpVersion, E> {
        Err(E::custom(format!(
            "invalid VRRP version `{v}`: expected 2 or 3"
        )))
    }
}

any_deserialize!(VrrpVersion, VersionVisitor);

// ---- ports: 1024-65535 ----------------------------------------------------------------------

struct PortRangeVisitor;

impl Visitor<'_> for PortRangeVisitor {
    type Value = PortRange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a port range such as `1024-65535`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
        let bad = || {
            E::custom(format!(
                "invalid port range `{v}`: expected FIRST-LAST such as `1024-65535`"
            ))
        };
        let (a, b) = v.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        Ok(PortRange { first, last })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
        let p = u16::try_from(v)
            .map_err(|_| E::custom(format!("port {v} is out of range 0..65535")))?;
        Ok(PortRange { first: p, last: p })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
        Err(E::custom(format!("port {v} is out of range 0..65535")))
    }
}

any_deserialize!(PortRange, PortRangeVisitor);

// ---- vips: 198.18.0.100/24 ------------------------------------------------------------------

struct PrefixVisitor;

impl Visitor<'_> for PrefixVisitor {
    type Value = IpPrefix;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an address with an optional prefix length such as `198.18.0.100/24`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IpPrefix, E> {
        v.parse().map_err(E::custom)
    }
}

any_deserialize!(IpPrefix, PrefixVisitor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("0").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn socket_addresses_of_both_families() {
        let ok = |s: &str| parse_socket_addr(s).unwrap();
        assert_eq!(ok("198.18.1.11:80").to_string(), "198.18.1.11:80");
        assert_eq!(
            ok(" [2001:2:0:1::11]:80 ").to_string(),
            "[2001:2:0:1::11]:80"
        );
        let err = |s: &str| parse_socket_addr(s).unwrap_err();
        assert_eq!(
            err("[2001:db8::zz]:80"),
            "invalid address `[2001:db8::zz]:80`: `2001:db8::zz` is not an IPv6 address"
        );
        assert_eq!(
            err("2001:db8::1:80"),
            "invalid address `2001:db8::1:80`: an IPv6 address with a port is written in brackets, `[ADDR]:PORT`, e.g. `[2001:db8::11]:80`"
        );
        assert_eq!(
            err("[2001:db8::1]"),
            "invalid address `[2001:db8::1]`: the port is missing: write `[2001:db8::1]:PORT`, e.g. `[2001:db8::1]:80`"
        );
        assert_eq!(
            err("198.18.1.11"),
            "invalid address `198.18.1.11`: the port is missing: write `198.18.1.11:PORT`, e.g. `198.18.1.11:80`"
        );
        assert!(err("[2001:db8::1]:65536").ends_with("`65536` is not a port 0..65535"));
        assert!(err("[2001:db8::1]80").ends_with("right after the closing bracket"));
        assert!(err("[2001:db8::1").ends_with("must be closed with `]`"));
        assert!(err("web:80")
            .ends_with("expected an address such as `198.18.1.11:80` or `[2001:db8::11]:80`"));
    }
}
