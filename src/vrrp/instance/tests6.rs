//! An IPv6 instance: the same state machine, its configuration rules and every receive check
//! that depends on the instance (RFC 5798 §7.1), one test each.

use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::vrrp::packet::{encode_ipv6, parse_ipv6, MULTICAST_V6};

const S: Nanos = NANOS_PER_SEC;
const T0: Nanos = 1_000 * S;

fn ll(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last))
}

fn vip() -> IpAddr {
    "2001:2::100".parse().unwrap()
}

fn cfg(priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: S,
        preempt: true,
        preempt_delay: 0,
        primary: ll(10),
        vips: vec![vip()],
        unicast: false,
    }
}

/// A valid advert for VRID 51 carrying the VIP, as [`parse_ipv6`] returns it from the wire.
fn advert(priority: u8, src: IpAddr) -> Advert {
    let IpAddr::V6(s) = src else {
        panic!("IPv6 source expected")
    };
    let vips = [vip()];
    let f = AdvertFields {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 100,
        addresses: &vips,
    };
    let mut buf = [0u8; 128];
    let n = encode_ipv6(&mut buf, &f, s, MULTICAST_V6, 0).unwrap();
    parse_ipv6(&buf[..n]).unwrap()
}

fn backup() -> VrrpInstance {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    while i.poll_event().is_some() {}
    i
}

fn master(priority: u8) -> VrrpInstance {
    let mut i = VrrpInstance::new(cfg(priority), T0).unwrap();
    i.handle_timeout(T0 + 10 * S);
    assert_eq!(i.state(), State::Master);
    while i.poll_event().is_some() {}
    while i.poll_transmit().is_some() {}
    i
}

/// `edit` applied to a good advert is rejected by a backup as `want`, which changes nothing.
fn rejected(edit: impl FnOnce(&mut Advert), want: VrrpError) {
    let mut i = backup();
    let timer = i.poll_timeout();
    let mut a = advert(200, ll(20));
    edit(&mut a);
    assert_eq!(i.handle_advert(T0 + S, &a), Err(want));
    assert_eq!(i.poll_timeout(), timer, "a rejected advert moves no timer");
    assert_eq!(i.master_address(), None);
}

#[test]
fn an_ipv6_instance_runs_the_same_state_machine() {
    let mut i = backup();
    assert_eq!(i.state(), State::Backup);
    // Heard: the Master_Down_Timer restarts from the advert.
    i.handle_advert(T0 + S, &advert(200, ll(20))).unwrap();
    assert_eq!(i.master_address(), Some(ll(20)));
    assert_eq!(i.poll_timeout(), Some(T0 + S + i.master_down_interval()));
    // Silence: MASTER, and its advert is an IPv6 one.
    i.handle_timeout(T0 + 10 * S);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.poll_event(), Some(Event::BecomeMaster));
    let t = i.poll_transmit().unwrap();
    assert_eq!(i.advert_fields(&t).message_len(), 8 + 16);
    // A higher priority takes it back to BACKUP.
    i.handle_advert(T0 + 11 * S, &advert(200, ll(20))).unwrap();
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn equal_priorities_are_broken_by_the_higher_ipv6_address() {
    // Our primary is fe80::10: fe80::20 is higher, fe80::5 lower; and a difference in the first
    // bytes outweighs the last (compared as unsigned 128-bit integers).
    let mut i = master(100);
    i.handle_advert(T0 + 11 * S, &advert(100, ll(5))).unwrap();
    assert_eq!(i.state(), State::Master, "lower address: discarded");
    i.handle_advert(T0 + 11 * S, &advert(100, ll(0x20)))
        .unwrap();
    assert_eq!(i.state(), State::Backup, "higher address: BACKUP");
    assert_eq!(i.master_address(), Some(ll(0x20)));
    let mut i = master(100);
    let high: IpAddr = "fe80::1:0:0:1".parse().unwrap();
    i.handle_advert(T0 + 11 * S, &advert(100, high)).unwrap();
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn receive_check_hop_limit() {
    for h in [0, 1, 64, 254] {
        rejected(|a| a.ttl = h, VrrpError::Ttl);
    }
    // Unicast peers may be routed: the hop limit is not checked.
    let mut c = cfg(100);
    c.unicast = true;
    let mut i = VrrpInstance::new(c, T0).unwrap();
    let mut a = advert(200, ll(20));
    a.ttl = 63;
    assert_eq!(i.handle_advert(T0 + S, &a), Ok(()));
}

#[test]
fn receive_check_source_must_be_link_local_for_multicast() {
    for src in ["2001:2::20", "fec0::20", "::1", "ff02::1"] {
        let src: IpAddr = src.parse().unwrap();
        rejected(|a| a.src = src, VrrpError::SourceNotLinkLocal);
    }
    // A unicast peer may send from a global address.
    let mut c = cfg(100);
    c.unicast = true;
    let mut i = VrrpInstance::new(c, T0).unwrap();
    let a = advert(200, "2001:2::20".parse().unwrap());
    assert_eq!(i.handle_advert(T0 + S, &a), Ok(()));
    assert_eq!(i.master_address(), Some("2001:2::20".parse().unwrap()));
}

#[test]
fn receive_check_version() {
    rejected(|a| a.version = Version::V2, VrrpError::Version);
}

#[test]
fn receive_check_vrid() {
    rejected(|a| a.vrid = 52, VrrpError::Vrid);
}

#[test]
fn receive_check_zero_interval() {
    rejected(|a| a.interval_cs = 0, VrrpError::ZeroInterval);
}

#[test]
fn receive_check_address_count() {
    let other: IpAddr = "2001:2::101".parse().unwrap();
    rejected(
        |a| {
            a.addresses.push(other);
            a.count = 2;
        },
        VrrpError::AddressCount,
    );
}

#[test]
fn receive_check_address_list() {
    let other: IpAddr = "2001:2::101".parse().unwrap();
    rejected(|a| a.addresses = vec![other], VrrpError::AddressList);
    // An IPv4 advert of the same VRID carries no IPv6 VIP.
    rejected(
        |a| a.addresses = vec!["198.18.0.100".parse().unwrap()],
        VrrpError::AddressList,
    );
}

#[test]
fn receive_check_owner() {
    let mut i = master(255);
    assert_eq!(
        i.handle_advert(T0 + 11 * S, &advert(200, ll(20))),
        Err(VrrpError::Owner)
    );
}

#[test]
fn configuration_rules_of_an_ipv6_instance() {
    let err = |edit: fn(&mut InstanceConfig)| {
        let mut c = cfg(100);
        edit(&mut c);
        validate(&c)
    };
    assert_eq!(err(|_| {}), Ok(100));
    assert_eq!(
        err(|c| c.primary = "198.18.0.1".parse().unwrap()),
        Err(BuildError::FamilyMismatch("198.18.0.1".parse().unwrap()))
    );
    assert_eq!(
        err(|c| c.primary = "2001:2::1".parse().unwrap()),
        Err(BuildError::PrimaryNotLinkLocal(
            "2001:2::1".parse().unwrap()
        ))
    );
    // Unicast: a global source is allowed.
    assert_eq!(
        err(|c| {
            c.primary = "2001:2::1".parse().unwrap();
            c.unicast = true;
        }),
        Ok(100)
    );
    assert_eq!(
        err(|c| c.version = Version::V2),
        Err(BuildError::Family(rules::FamilyError::V2Ipv6))
    );
    assert_eq!(
        err(|c| c.vips.push("198.18.0.100".parse().unwrap())),
        Err(BuildError::Family(rules::FamilyError::Mixed))
    );
}
