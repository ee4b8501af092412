//! The state machine driven by a simulated clock: every time asserted is exact to the
//! nanosecond.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::vrrp::packet::{encode_ipv4, parse_ipv4, MULTICAST_V4};

const S: Nanos = NANOS_PER_SEC;
const T0: Nanos = 1_000 * S;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
}

fn vip() -> IpAddr {
    ip(100)
}

fn cfg(priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: S,
        preempt: true,
        preempt_delay: 0,
        primary: ip(10),
        vips: vec![vip()],
        unicast: false,
    }
}

/// A valid v3 advert for VRID 51 carrying the VIP.
fn advert(priority: u8, src: IpAddr) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        count: 1,
        auth_type: 0,
        interval_cs: 100,
        addresses: vec![vip()],
        src,
        dst: IpAddr::V4(MULTICAST_V4),
        ttl: 255,
    }
}

fn events(i: &mut VrrpInstance) -> Vec<Event> {
    std::iter::from_fn(|| i.poll_event()).collect()
}

fn transmits(i: &mut VrrpInstance) -> Vec<u8> {
    std::iter::from_fn(|| i.poll_transmit())
        .map(|t| t.priority)
        .collect()
}

/// (256 − 100) × 1 s / 256.
const SKEW_100: Nanos = 609_375_000;
/// 3 × 1 s + SKEW_100.
const MDI_100: Nanos = 3 * S + SKEW_100;

#[test]
fn rfc_timing_formulas() {
    let i = VrrpInstance::new(cfg(100), T0).unwrap();
    assert_eq!(i.skew_time(), SKEW_100);
    assert_eq!(i.master_down_interval(), MDI_100);
    let i = VrrpInstance::new(cfg(254), T0).unwrap();
    assert_eq!(i.skew_time(), 2 * S / 256);
    // v3 with 50 cs: skew scales with the interval.
    let mut c = cfg(100);
    c.advert_interval = S / 2;
    let i = VrrpInstance::new(c, T0).unwrap();
    assert_eq!(i.skew_time(), 156 * (S / 2) / 256);
    assert_eq!(i.master_down_interval(), 3 * (S / 2) + 156 * (S / 2) / 256);
    // v2 with 3 s: Skew_Time = (256 − Priority)/256 s, not scaled by the interval.
    let mut c = cfg(100);
    c.version = Version::V2;
    c.advert_interval = 3 * S;
    let i = VrrpInstance::new(c, T0).unwrap();
    assert_eq!(i.skew_time(), SKEW_100);
    assert_eq!(i.master_down_interval(), 9 * S + SKEW_100);
}

#[test]
fn startup_as_owner() {
    let mut i = VrrpInstance::new(cfg(255), T0).unwrap();
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.state().name(), "MASTER");
    assert_eq!(events(&mut i), [Event::BecomeMaster]);
    assert_eq!(transmits(&mut i), [255]);
    assert_eq!(i.poll_timeout(), Some(T0 + S));
    i.handle_timeout(T0 + S - 1);
    assert_eq!(transmits(&mut i), [] as [u8; 0]);
    i.handle_timeout(T0 + S);
    assert_eq!(transmits(&mut i), [255]);
    assert_eq!(i.poll_timeout(), Some(T0 + 2 * S));
    assert_eq!(events(&mut i), []);
}

#[test]
fn startup_as_backup() {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.state().name(), "BACKUP");
    assert_eq!(events(&mut i), [Event::BecomeBackup]);
    assert_eq!(transmits(&mut i), [] as [u8; 0]);
    assert_eq!(i.poll_timeout(), Some(T0 + MDI_100));
}

#[test]
fn master_death_takeover_exactly_at_master_down_interval() {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    events(&mut i);
    let t1 = T0 + S / 3;
    i.handle_advert(t1, &advert(200, ip(1))).unwrap();
    assert_eq!(i.master_address(), Some(ip(1)));
    assert_eq!(i.poll_timeout(), Some(t1 + MDI_100));
    // The master dies: no more adverts.
    i.handle_timeout(t1 + MDI_100 - 1);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(transmits(&mut i), [] as [u8; 0]);
    i.handle_timeout(t1 + MDI_100);
    assert_eq!(i.state(), State::Master);
    assert_eq!(events(&mut i), [Event::BecomeMaster]);
    assert_eq!(transmits(&mut i), [100]);
    assert_eq!(i.poll_timeout(), Some(t1 + MDI_100 + S));
}

#[test]
fn each_advert_restarts_the_master_down_timer() {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    for k in 1..=10 {
        i.handle_timeout(T0 + k * S - 1);
        i.handle_advert(T0 + k * S, &advert(150, ip(1))).unwrap();
        assert_eq!(i.poll_timeout(), Some(T0 + k * S + MDI_100));
    }
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn v3_backup_adopts_the_masters_interval() {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    let mut a = advert(200, ip(1));
    a.interval_cs = 25;
    i.handle_advert(T0, &a).unwrap();
    let mai = S / 4;
    assert_eq!(i.master_adver_interval(), mai);
    let mdi = 3 * mai + 156 * mai / 256;
    assert_eq!(i.master_down_interval(), mdi);
    assert_eq!(i.poll_timeout(), Some(T0 + mdi));
    // Our own adverts keep our own interval once we are master.
    i.handle_timeout(T0 + mdi);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.poll_timeout(), Some(T0 + mdi + S));
    let t = i.poll_transmit().unwrap();
    assert_eq!(i.advert_fields(&t).interval_cs, 100);
}

#[test]
fn priority_zero_release_takeover_at_skew_time() {
    let mut i = VrrpInstance::new(cfg(100), T0).unwrap();
    i.handle_advert(T0, &advert(200, ip(1))).unwrap();
    let t2 = T0 + S / 2;
    i.handle_advert(t2, &advert(0, ip(1))).unwrap();
    assert_eq!(i.poll_timeout(), Some(t2 + SKEW_100));
    i.handle_timeout(t2 + SKEW_100 - 1);
    assert_eq!(i.state(), State::Backup);
    i.handle_timeout(t2 + SKEW_100);
    assert_eq!(i.state(), State::Master);
    assert_eq!(transmits(&mut i), [100]);
}

#[test]
fn shutdown_of_a_master_releases_and_the_backup_takes_over_at_skew_time() {
    let mut m = VrrpInstance::new(cfg(255), T0).unwrap();
    let mut b = VrrpInstance::new(cfg(100), T0).unwrap();
    events(&mut m);
    events(&mut b);
    // Wire the two through real bytes: m's adverts reach b.
    let deliver = |from: &mut VrrpInstance, to: &mut VrrpInstance, now: Nanos| {
        while let Some(t) = from.poll_transmit() {
            let mut buf = [0u8; 64];
            let n = encode_ipv4(
                &mut buf,
                &from.advert_fields(&t),
                ip(1),
                IpAddr::V4(MULTICAST_V4),
            )
            .unwrap();
            let a = parse_ipv4(&buf[..n]).unwrap();
            to.handle_advert(now, &a).unwrap();
        }
    };
    deliver(&mut m, &mut b, T0);
    assert_eq!(b.poll_timeout(), Some(T0 + MDI_100));
    let t = T0 + S / 2;
    m.shutdown(t);
    assert_eq!(m.state(), State::Initialize);
    assert_eq!(m.state().name(), "INIT");
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(events(&mut m), [Event::Stopped]);
    deliver(&mut m, &mut b, t);
    assert_eq!(b.poll_timeout(), Some(t + SKEW_100));
    b.handle_timeout(t + SKEW_100);
    assert_eq!(b.state(), State::Master);
    // A stopped instance stays stopped.
    m.handle_timeout(t + 10 * S);
    m.shutdown(t + 10 * S);
    assert_eq!(m.state(), State::Initialize);
    assert_eq!(events(&mut m), []);
    assert_eq!(transmits(&mut m), [] as [u8; 0]);
}

#[test]
fn shutdown_of_a_backup_sends_nothing() {
    let mut b = VrrpInstance::new(cfg(100), T0).unwrap();
    events(&mut b);
    b.shutdown(T0);
    assert_eq!(transmits(&mut b), [] as [u8; 0]);
    assert_eq!(events(&mut b), [Event::Stopped]);
    b.handle_advert(T0, &advert(200, ip(1))).unwrap();
    assert_eq!(b.state(), State::Initialize);
}

/// A master (after its Master_Down_Timer ran out) with priority `p`.
fn master(p: u8) -> VrrpInstance {
    let mut i = VrrpInstance::new(cfg(p), T0).unwrap();
    let mdi = i.master_down_interval();
    i.handle_timeout(T0 + mdi);
    assert_eq!(i.state(), State::Master);
    events(&mut i);
    transmits(&mut i);
    i
}

#[test]
fn master_preempted_by_a_higher_priority() {
    let mut m = master(100);
    let t = T0 + 10 * S;
    m.handle_advert(t, &advert(200, ip(1))).unwrap();
    assert_eq!(m.state(), State::Backup);
    assert_eq!(events(&mut m), [Event::BecomeBackup]);
    assert_eq!(transmits(&mut m), [] as [u8; 0]);
    assert_eq!(m.poll_timeout(), Some(t + MDI_100));
}

#[test]
fn master_receiving_priority_zero_advertises_at_once() {
    let mut m = master(100);
    let t = T0 + 10 * S + 7;
    m.handle_advert(t, &advert(0, ip(1))).unwrap();
    assert_eq!(m.state(), State::Master);
    assert_eq!(transmits(&mut m), [100]);
    assert_eq!(m.poll_timeout(), Some(t + S));
}

#[test]
fn master_discards_a_lower_priority() {
    let mut m = master(100);
    let before = m.poll_timeout();
    m.handle_advert(T0 + 10 * S, &advert(99, ip(200))).unwrap();
    assert_eq!(m.state(), State::Master);
    assert_eq!(transmits(&mut m), [] as [u8; 0]);
    assert_eq!(m.poll_timeout(), before);
}

#[test]
fn equal_priority_tie_broken_by_the_higher_primary_address() {
    // Our primary is 198.18.0.10.
    let mut m = master(100);
    m.handle_advert(T0 + 10 * S, &advert(100, ip(9))).unwrap();
    assert_eq!(m.state(), State::Master, "lower address loses");
    m.handle_advert(T0 + 10 * S, &advert(100, ip(10))).unwrap();
    assert_eq!(m.state(), State::Master, "same address is not higher");
    m.handle_advert(T0 + 10 * S, &advert(100, ip(11))).unwrap();
    assert_eq!(m.state(), State::Backup, "higher address wins");
    // Compared as unsigned integers: 198.18.1.0 > 198.18.0.255.
    let mut m = master(100);
    m.handle_advert(T0, &advert(100, "198.18.1.0".parse().unwrap()))
        .unwrap();
    assert_eq!(m.state(), State::Backup);
    // In Backup an equal priority is accepted whatever the address.
    let mut b = VrrpInstance::new(cfg(100), T0).unwrap();
    b.handle_advert(T0 + S, &advert(100, ip(1))).unwrap();
    assert_eq!(b.poll_timeout(), Some(T0 + S + MDI_100));
}

#[test]
fn higher_priority_backup_preempts_after_master_down_interval() {
    // A 200 backup starts next to a 100 master: every advert is lower, so discarded.
    let mut b = VrrpInstance::new(cfg(200), T0).unwrap();
    let mdi = b.master_down_interval();
    assert_eq!(mdi, 3 * S + 56 * S / 256);
    for k in 0..3 {
        b.handle_advert(T0 + k * S + 1, &advert(100, ip(1)))
            .unwrap();
        assert_eq!(b.poll_timeout(), Some(T0 + mdi));
    }
    b.handle_timeout(T0 + mdi - 1);
    assert_eq!(b.state(), State::Backup);
    b.handle_timeout(T0 + mdi);
    assert_eq!(b.state(), State::Master);
    // The old master then steps down on our advert.
    let mut old = master(100);
    old.handle_advert(T0 + mdi, &advert(200, ip(20))).unwrap();
    assert_eq!(old.state(), State::Backup);
}

#[test]
fn no_preempt_keeps_a_lower_master() {
    let mut c = cfg(200);
    c.preempt = false;
    let mut b = VrrpInstance::new(c, T0).unwrap();
    for k in 0..100 {
        let t = T0 + k * S;
        b.handle_timeout(t);
        b.handle_advert(t, &advert(100, ip(1))).unwrap();
        assert_eq!(b.poll_timeout(), Some(t + b.master_down_interval()));
    }
    assert_eq!(b.state(), State::Backup);
    // But it still takes over when that master dies.
    let last = T0 + 99 * S;
    b.handle_timeout(last + b.master_down_interval());
    assert_eq!(b.state(), State::Master);
}

#[test]
fn preempt_delay_holds_preemption_after_startup() {
    let mut c = cfg(200);
    c.preempt_delay = 10 * S;
    let mut b = VrrpInstance::new(c, T0).unwrap();
    let mdi = b.master_down_interval();
    // A lower master advertises every second from T0 + 0.5 s. Until T0 + 10 s the adverts are
    // accepted (the timer restarts); from T0 + 10 s on they are discarded.
    let mut last_accepted = 0;
    for k in 0..20 {
        let t = T0 + k * S + S / 2;
        b.handle_timeout(t);
        if b.state() == State::Master {
            break;
        }
        b.handle_advert(t, &advert(100, ip(1))).unwrap();
        if t < T0 + 10 * S {
            assert_eq!(b.poll_timeout(), Some(t + mdi), "accepted at {k}");
            last_accepted = t;
        } else {
            assert_eq!(
                b.poll_timeout(),
                Some(last_accepted + mdi),
                "discarded at {k}"
            );
        }
    }
    assert_eq!(last_accepted, T0 + 9 * S + S / 2);
    assert_eq!(b.state(), State::Master);
    assert_eq!(events(&mut b), [Event::BecomeBackup, Event::BecomeMaster]);
}

#[test]
fn preempt_delay_boundary_is_exact() {
    let mut c = cfg(200);
    c.preempt_delay = 10 * S;
    let mut b = VrrpInstance::new(c, T0).unwrap();
    let mdi = b.master_down_interval();
    b.handle_advert(T0 + 10 * S - 1, &advert(100, ip(1)))
        .unwrap();
    assert_eq!(
        b.poll_timeout(),
        Some(T0 + 10 * S - 1 + mdi),
        "1 ns before: accepted"
    );
    b.handle_advert(T0 + 10 * S, &advert(100, ip(1))).unwrap();
    assert_eq!(
        b.poll_timeout(),
        Some(T0 + 10 * S - 1 + mdi),
        "at the end: discarded"
    );
}

#[test]
fn preempt_delay_stops_on_a_higher_master_and_restarts_on_a_lower_one() {
    let mut c = cfg(200);
    c.preempt_delay = 10 * S;
    let mut b = VrrpInstance::new(c, T0).unwrap();
    let mdi = b.master_down_interval();
    b.handle_advert(T0 + S, &advert(250, ip(1))).unwrap(); // stops the delay
    let t = T0 + 20 * S; // later than the startup delay
    b.handle_advert(t, &advert(100, ip(2))).unwrap(); // starts it: accepted until t + 10 s
    assert_eq!(b.poll_timeout(), Some(t + mdi));
    b.handle_advert(t + 2 * S, &advert(100, ip(2))).unwrap();
    assert_eq!(b.poll_timeout(), Some(t + 2 * S + mdi));
    b.handle_advert(t + 10 * S, &advert(100, ip(2))).unwrap();
    assert_eq!(
        b.poll_timeout(),
        Some(t + 2 * S + mdi),
        "discarded once it ran out"
    );
}

#[test]
fn fault_leaves_master_with_a_release_and_comes_back_as_backup() {
    let mut m = master(100);
    let t = T0 + 10 * S;
    m.set_fault(t, true);
    assert_eq!(m.state(), State::Fault);
    assert_eq!(m.state().name(), "FAULT");
    assert_eq!(transmits(&mut m), [0]);
    assert_eq!(events(&mut m), [Event::BecomeFault]);
    assert_eq!(m.poll_timeout(), None);
    m.set_fault(t, true);
    assert_eq!(events(&mut m), []);
    m.handle_advert(t, &advert(200, ip(1))).unwrap();
    m.handle_timeout(t + 100 * S);
    assert_eq!(m.state(), State::Fault);
    m.set_fault(t + S, false);
    assert_eq!(m.state(), State::Backup);
    assert_eq!(events(&mut m), [Event::BecomeBackup]);
    assert_eq!(m.poll_timeout(), Some(t + S + MDI_100));
    // An owner comes back straight as master.
    let mut o = VrrpInstance::new(cfg(255), T0).unwrap();
    o.set_fault(T0, true);
    o.set_fault(T0 + S, false);
    assert_eq!(o.state(), State::Master);
    assert_eq!(transmits(&mut o), [255, 0, 255]);
}

#[test]
fn set_priority_clamps_and_changes_adverts_and_skew() {
    let mut m = master(100);
    m.set_priority(0);
    assert_eq!(m.priority(), 1);
    m.set_priority(255);
    assert_eq!(m.priority(), 254);
    m.set_priority(156);
    assert_eq!(m.skew_time(), 100 * S / 256);
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    assert_eq!(transmits(&mut m), [156]);
}

#[test]
fn new_and_reconfigure_refuse_the_same_bad_configuration() {
    // One `validate` for both: a reload is refused for exactly what a start is, and a refused
    // reconfigure leaves the running instance as it was.
    let bad = |f: fn(&mut InstanceConfig)| {
        let mut c = cfg(100);
        f(&mut c);
        let e = VrrpInstance::new(c.clone(), T0).unwrap_err();
        assert_eq!(super::validate(&c), Err(e.clone()));
        let mut m = master(100);
        let before = (
            m.state(),
            m.priority(),
            m.advert_interval(),
            m.poll_timeout(),
        );
        if c.vrid != 0 {
            assert_eq!(m.reconfigure(c), Err(e.clone()));
        }
        let after = (
            m.state(),
            m.priority(),
            m.advert_interval(),
            m.poll_timeout(),
        );
        assert_eq!(before, after);
        e
    };
    assert_eq!(bad(|c| c.vrid = 0), BuildError::Vrid);
    assert_eq!(bad(|c| c.priority = 0), BuildError::Priority);
    assert_eq!(bad(|c| c.vips.clear()), BuildError::NoAddresses);
    assert_eq!(
        bad(|c| c.vips = vec!["2001:2::1".parse().unwrap()]),
        BuildError::FamilyMismatch(ip(10))
    );
    assert_eq!(
        bad(|c| c.advert_interval = 5_000_000),
        BuildError::Interval(5_000_000)
    );
    assert_eq!(
        bad(|c| c.advert_interval = 41 * S),
        BuildError::Interval(41 * S)
    );
    assert_eq!(
        bad(|c| {
            c.version = Version::V2;
            c.advert_interval = 1_500_000_000;
        }),
        BuildError::Interval(1_500_000_000)
    );
    assert_eq!(
        bad(|c| {
            c.version = Version::V2;
            c.advert_interval = 256 * S;
        }),
        BuildError::Interval(256 * S)
    );
}

// ---- receive checks: each rejects, is labelled, and leaves the instance untouched -------------

/// Applies `edit` to a good advert and checks that a backup rejects it with `want` and that
/// nothing changed.
fn rejects(c: InstanceConfig, edit: impl Fn(&mut Advert), want: VrrpError) {
    let mut b = VrrpInstance::new(c.clone(), T0).unwrap();
    events(&mut b);
    let before = b.poll_timeout();
    let mut a = advert(200, ip(1));
    a.version = c.version;
    if c.version == Version::V2 {
        a.interval_cs = 100;
    }
    // Sanity: unedited it is accepted.
    let mut ok = VrrpInstance::new(c, T0).unwrap();
    ok.handle_advert(T0 + S, &a).unwrap();
    edit(&mut a);
    assert_eq!(b.handle_advert(T0 + S, &a), Err(want));
    assert_eq!(b.poll_timeout(), before);
    assert_eq!(b.state(), State::Backup);
    assert_eq!(events(&mut b), []);
}

fn v2() -> InstanceConfig {
    let mut c = cfg(100);
    c.version = Version::V2;
    c
}

#[test]
fn receive_check_ttl() {
    rejects(cfg(100), |a| a.ttl = 254, VrrpError::Ttl);
    assert_eq!(VrrpError::Ttl.label(), "ttl");
    // Unicast: keepalived skips the TTL check, so does xvs.
    let mut c = cfg(100);
    c.unicast = true;
    let mut b = VrrpInstance::new(c, T0).unwrap();
    let mut a = advert(200, ip(1));
    a.ttl = 64;
    b.handle_advert(T0, &a).unwrap();
    assert_eq!(b.poll_timeout(), Some(T0 + MDI_100));
}

#[test]
fn receive_check_version() {
    rejects(cfg(100), |a| a.version = Version::V2, VrrpError::Version);
    rejects(v2(), |a| a.version = Version::V3, VrrpError::Version);
}

#[test]
fn receive_check_vrid() {
    rejects(cfg(100), |a| a.vrid = 52, VrrpError::Vrid);
}

#[test]
fn receive_check_v2_auth_type() {
    rejects(v2(), |a| a.auth_type = 1, VrrpError::AuthType);
    rejects(v2(), |a| a.auth_type = 2, VrrpError::AuthType);
}

#[test]
fn receive_check_v2_interval_mismatch() {
    rejects(v2(), |a| a.interval_cs = 200, VrrpError::IntervalMismatch);
}

#[test]
fn receive_check_v3_zero_interval() {
    rejects(cfg(100), |a| a.interval_cs = 0, VrrpError::ZeroInterval);
}

#[test]
fn receive_check_address_count() {
    rejects(
        cfg(100),
        |a| {
            a.count = 2;
            a.addresses.push(ip(101));
        },
        VrrpError::AddressCount,
    );
    rejects(
        cfg(100),
        |a| {
            a.count = 0;
            a.addresses.clear();
        },
        VrrpError::AddressCount,
    );
}

#[test]
fn receive_check_address_list() {
    rejects(
        cfg(100),
        |a| a.addresses = vec![ip(99)],
        VrrpError::AddressList,
    );
    // Order does not matter.
    let mut c = cfg(100);
    c.vips = vec![ip(100), ip(101)];
    let mut b = VrrpInstance::new(c, T0).unwrap();
    let mut a = advert(200, ip(1));
    a.count = 2;
    a.addresses = vec![ip(101), ip(100)];
    b.handle_advert(T0, &a).unwrap();
}

#[test]
fn receive_check_owner_discards() {
    let mut o = VrrpInstance::new(cfg(255), T0).unwrap();
    transmits(&mut o);
    assert_eq!(
        o.handle_advert(T0, &advert(0, ip(1))),
        Err(VrrpError::Owner)
    );
    assert_eq!(
        o.handle_advert(T0, &advert(255, ip(200))),
        Err(VrrpError::Owner)
    );
    assert_eq!(o.state(), State::Master);
    assert_eq!(transmits(&mut o), [] as [u8; 0]);
}

#[test]
fn receive_checks_on_the_wire_for_v2() {
    // A v2 advert from keepalived's defaults (auth none, 1 s) parses and is accepted.
    let mut b = VrrpInstance::new(v2(), T0).unwrap();
    let vips = [vip()];
    let f = AdvertFields {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        addresses: &vips,
    };
    let mut buf = [0u8; 64];
    let n = encode_ipv4(&mut buf, &f, ip(1), IpAddr::V4(MULTICAST_V4)).unwrap();
    let a = parse_ipv4(&buf[..n]).unwrap();
    b.handle_advert(T0, &a).unwrap();
    assert_eq!(b.poll_timeout(), Some(T0 + MDI_100));
    // Auth type 1 (keepalived `auth_type PASS`) on the wire: checksum fixed up, then refused.
    buf[20 + 4] = 1;
    buf[26] = 0;
    buf[27] = 0;
    let c = !crate::wire::checksum::fold(crate::wire::checksum::sum(&buf[20..n], 0));
    buf[26..28].copy_from_slice(&c.to_be_bytes());
    let a = parse_ipv4(&buf[..n]).unwrap();
    assert_eq!(b.handle_advert(T0, &a), Err(VrrpError::AuthType));
}

#[test]
fn sync_group_follow_moves_backup_to_master_and_master_to_backup() {
    let t = T0 + S;
    let mut b = VrrpInstance::new(cfg(100), T0).unwrap();
    events(&mut b);
    b.follow(t, State::Master);
    assert_eq!(b.state(), State::Master);
    assert_eq!(events(&mut b), [Event::BecomeMaster]);
    assert_eq!(transmits(&mut b), [100]);
    assert_eq!(b.poll_timeout(), Some(t + S));
    b.follow(t + 1, State::Master); // already there: nothing
    assert_eq!(events(&mut b), [] as [Event; 0]);
    b.follow(t + 2, State::Backup);
    assert_eq!(b.state(), State::Backup);
    assert_eq!(events(&mut b), [Event::BecomeBackup]);
    assert_eq!(b.poll_timeout(), Some(t + 2 + MDI_100));
    // Fault is never left by following.
    b.set_fault(t + 3, true);
    events(&mut b);
    b.follow(t + 4, State::Master);
    assert_eq!(b.state(), State::Fault);
}

#[test]
fn reconfigure_keeps_state_and_timer_and_applies_the_new_values() {
    let mut m = master(100);
    let timer = m.poll_timeout();
    let mut c = cfg(150);
    c.advert_interval = 2 * S;
    c.vips = vec![vip(), ip(101)];
    m.reconfigure(c).unwrap();
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.poll_timeout(), timer, "the running timer is kept");
    assert_eq!(m.priority(), 150);
    assert_eq!(m.advert_interval(), 2 * S);
    let t = timer.unwrap();
    m.handle_timeout(t);
    assert_eq!(transmits(&mut m), [150]);
    assert_eq!(m.poll_timeout(), Some(t + 2 * S));
    let tx = Transmit { priority: 150 };
    assert_eq!(m.advert_fields(&tx).addresses.len(), 2);
    // Another VRID or version is not the same router.
    let mut other = cfg(150);
    other.vrid = 52;
    assert_eq!(m.reconfigure(other), Err(BuildError::Vrid));
    let mut v2 = cfg(150);
    v2.version = Version::V2;
    assert!(m.reconfigure(v2).is_err());
    assert_eq!(m.state(), State::Master);
}

#[test]
fn defer_takeover_moves_only_a_backups_timer() {
    let mut b = VrrpInstance::new(cfg(100), T0).unwrap();
    events(&mut b);
    b.defer_takeover(T0 + 10 * S);
    assert_eq!(b.poll_timeout(), Some(T0 + 10 * S));
    b.handle_timeout(T0 + MDI_100);
    assert_eq!(b.state(), State::Backup, "deferred");
    b.handle_timeout(T0 + 10 * S);
    assert_eq!(b.state(), State::Master);
    let timer = b.poll_timeout();
    b.defer_takeover(T0 + 20 * S);
    assert_eq!(
        b.poll_timeout(),
        timer,
        "a master's Adver_Timer is not moved"
    );
}
