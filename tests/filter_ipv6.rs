//! The XDP filter program itself (the object xvs embeds, bit for bit) run by the kernel on
//! crafted frames with `BPF_PROG_TEST_RUN`: which frames it steers into the AF_XDP sockets and
//! which it leaves to the kernel, for IPv6 and, so that IPv4 stays proven, the IPv4 equivalents.
//!
//! How a steer is observed: the program is loaded unattached ([`FilterProgram::load_unattached`])
//! with `lo` as its only port, and a real AF_XDP socket (created, never bound: the `xsks` map
//! takes any AF_XDP socket) is registered in the slot of `lo`'s queue 0. A steered frame then
//! returns `XDP_REDIRECT` and a passed one `XDP_PASS`, from the production object with its real
//! `bpf_redirect_map` call and slot arithmetic. (A test build of the source with the redirect
//! replaced by another verdict would prove a different object, and with an empty `xsks` map a
//! steered frame and a passed one both return `XDP_PASS`.) Nothing is transmitted: the test run
//! only reports the verdict, so no interface or namespace is touched.
//!
//! Needs root (CAP_BPF, CAP_NET_RAW for the socket): fails, never skips, without it. Loading
//! the program is also the proof that the verifier accepts it.
// Test code: a failed unwrap is a failed test; casts are of test-sized values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]
// The AF_XDP socket (`socket(2)`): std has no AF_XDP.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use xvs::datapath::filter::{ifindex_of, FilterPort, FilterProgram, XdpAction};
use xvs::datapath::snapshot::{service_steering_keys, SteerKey};
use xvs::datapath::{Forwarding, ServiceKey};
use xvs::flow::Proto;

const LB_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x00, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x00, 0x02];
const POOL_PORTS: (u16, u16) = (20000, 29999);

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST: u8 = 60;
const IPV6_IN_IPV6: u8 = 41;
const IPV4_IN_IPV4: u8 = 4;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The lab's addresses (the IPv6 plan of issue 14: 198.18.X.Y ↔ 2001:2:0:X::Y), one family.
struct Lab {
    client: IpAddr,
    /// NAT service VIP, TCP 80 → r1:8080.
    vip: IpAddr,
    /// DR service VIP, all ports (TCP port 0).
    vip_all: IpAddr,
    /// FULLNAT service VIP, TCP 443, pool `pool`.
    vip_fnat: IpAddr,
    /// TUN service VIP, TCP 80.
    vip_tun: IpAddr,
    r1: IpAddr,
    /// A FULLNAT real server.
    r3: IpAddr,
    /// The box's own addresses (wan, lan; for IPv6 a link-local one too).
    wan: IpAddr,
    lan: IpAddr,
    pool: IpAddr,
}

fn lab6() -> Lab {
    Lab {
        client: v6("2001:2::2").into(),
        vip: v6("2001:2::100").into(),
        vip_all: v6("2001:2::101").into(),
        vip_fnat: v6("2001:2::102").into(),
        vip_tun: v6("2001:2:0:2::100").into(),
        r1: v6("2001:2:0:1::11").into(),
        r3: v6("2001:2:0:1::13").into(),
        wan: v6("2001:2::1").into(),
        lan: v6("2001:2:0:1::1").into(),
        pool: v6("2001:2:0:1::2").into(),
    }
}

fn lab4() -> Lab {
    Lab {
        client: v4("198.18.0.2").into(),
        vip: v4("198.18.0.100").into(),
        vip_all: v4("198.18.0.101").into(),
        vip_fnat: v4("198.18.0.102").into(),
        vip_tun: v4("198.18.2.100").into(),
        r1: v4("198.18.1.11").into(),
        r3: v4("198.18.1.13").into(),
        wan: v4("198.18.0.1").into(),
        lan: v4("198.18.1.1").into(),
        pool: v4("198.18.1.2").into(),
    }
}

/// The steering keys of both labs' services, built by the snapshot's own key builder.
fn steering_keys() -> Vec<SteerKey> {
    let mut keys = Vec::new();
    for lab in [lab4(), lab6()] {
        let svc = |vip, port| ServiceKey {
            vip,
            port,
            proto: Proto::Tcp,
        };
        let nat = [SocketAddr::new(lab.r1, 8080)];
        service_steering_keys(svc(lab.vip, 80), Forwarding::Nat, nat, &mut keys);
        service_steering_keys(svc(lab.vip_all, 0), Forwarding::Dr, [], &mut keys);
        let fnat = [SocketAddr::new(lab.r3, 443)];
        service_steering_keys(svc(lab.vip_fnat, 443), Forwarding::FullNat, fnat, &mut keys);
        service_steering_keys(svc(lab.vip_tun, 80), Forwarding::Tun, [], &mut keys);
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The filter, loaded on `lo` with an AF_XDP socket in `lo`'s queue 0 slot and both labs in
/// its maps.
struct Filter {
    prog: FilterProgram,
    lo: u32,
    _xsk: OwnedFd,
}

impl Filter {
    fn new() -> Filter {
        assert!(
            xvs::sys::is_root(),
            "the filter tests need root to load the XDP program (CI runs them as root)"
        );
        let lo = ifindex_of("lo").expect("lo");
        let prog = FilterProgram::load_unattached(&[FilterPort {
            name: "lo".into(),
            ifindex: lo,
            mac: LB_MAC,
        }])
        .expect("load the filter (the verifier accepts it)");
        // SAFETY: plain syscall; a non-negative return is a new descriptor we own.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            fd >= 0,
            "AF_XDP socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let xsk = unsafe { OwnedFd::from_raw_fd(fd) };
        prog.register_socket(0, 0, xsk.as_raw_fd())
            .expect("register");
        prog.set_steering(&steering_keys()).expect("steer");
        let mut own = Vec::new();
        let mut pools = Vec::new();
        for lab in [lab4(), lab6()] {
            own.extend([lab.wan, lab.lan, lab.pool]);
            pools.push((lab.pool, POOL_PORTS.0, POOL_PORTS.1));
        }
        own.push(v6("fe80::1").into());
        prog.set_local_addresses(&own).expect("local addresses");
        prog.set_local_pools(&pools).expect("local pools");
        Filter {
            prog,
            lo,
            _xsk: xsk,
        }
    }

    fn verdict(&self, frame: &[u8]) -> XdpAction {
        self.prog.run_once(frame, self.lo, 0).expect("test run")
    }

    #[track_caller]
    fn steers(&self, what: &str, frame: &[u8]) {
        assert_eq!(
            self.verdict(frame),
            XdpAction::Redirect,
            "{what}: not steered"
        );
    }

    #[track_caller]
    fn passes(&self, what: &str, frame: &[u8]) {
        assert_eq!(self.verdict(frame), XdpAction::Pass, "{what}: not passed");
    }
}

// ---- frame builders (checksums are not the filter's business and stay 0) ----

fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv6_packet(next: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (src, dst) else {
        panic!("IPv6 packet with IPv4 addresses")
    };
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn ipv4_packet(proto: u8, src: IpAddr, dst: IpAddr, frag: u16, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 packet with IPv6 addresses")
    };
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An IP packet of `src`'s family (IPv4 unfragmented); `next` is the (first) next header.
fn ip_packet(next: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    match src {
        IpAddr::V4(_) => ipv4_packet(next, src, dst, 0, payload),
        IpAddr::V6(_) => ipv6_packet(next, src, dst, payload),
    }
}

fn ip_frame(next: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let ethertype = if src.is_ipv4() { 0x0800 } else { 0x86dd };
    ether(ethertype, &ip_packet(next, src, dst, payload))
}

/// A TCP header (20 bytes, SYN) or a UDP header (8 bytes) with some data.
fn l4(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        h.extend_from_slice(&[0, 16, 0x12, 0x34]);
    }
    h.extend_from_slice(b"xvs test");
    h
}

fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    ip_frame(TCP, src, dst, &l4(TCP, sport, dport))
}

/// An extension header (hop-by-hop, routing or destination options) of `units` 8-byte units
/// beyond the first, followed by `rest` (whose protocol is `next`).
fn ext(next: u8, units: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, units];
    h.resize(8 * (usize::from(units) + 1), 0);
    if units == 0 {
        // PadN filling the 6 option bytes.
        h[2] = 1;
        h[3] = 4;
    }
    h.extend_from_slice(rest);
    h
}

/// A fragment header (offset in bytes, more-fragments flag) followed by `rest`.
fn frag(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

fn icmpv6(kind: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&[0, 0, 0x05, 0x00]); // unused / MTU 1280 / pointer
    m.extend_from_slice(body);
    m
}

/// An ICMP (IPv4) or ICMPv6 error from `router` to `to` quoting `quoted` (an IP packet).
/// `kind` is the ICMPv6 type; IPv4 uses the equivalent (1 → 3/1, 2 → 3/4, 3 → 11/0).
fn icmp_error(kind: u8, router: IpAddr, to: IpAddr, quoted: &[u8]) -> Vec<u8> {
    match router {
        IpAddr::V6(_) => ip_frame(ICMPV6, router, to, &icmpv6(kind, 0, quoted)),
        IpAddr::V4(_) => {
            let (t, c) = match kind {
                1 => (3, 1),
                2 => (3, 4),
                _ => (11, 0),
            };
            ip_frame(ICMP, router, to, &icmpv6(t, c, quoted))
        }
    }
}

// ---- the cases ----

/// Both families: to a service port, other ports, NAT replies, FULLNAT replies, all-port VIP.
#[test]
fn services_and_replies_both_families() {
    let f = Filter::new();
    for lab in [lab6(), lab4()] {
        let fam = if lab.client.is_ipv4() { "IPv4" } else { "IPv6" };
        let c = lab.client;
        f.steers(fam, &tcp(c, 40000, lab.vip, 80));
        f.passes(
            &format!("{fam} VIP other port"),
            &tcp(c, 40000, lab.vip, 22),
        );
        let udp = ip_frame(UDP, c, lab.vip, &l4(UDP, 40000, 80));
        f.passes(&format!("{fam} VIP other protocol"), &udp);
        f.steers(
            &format!("{fam} all-port VIP"),
            &tcp(c, 40000, lab.vip_all, 9),
        );
        f.passes(&format!("{fam} box address"), &tcp(c, 40000, lab.wan, 22));
        // NAT replies: from r1:8080, to the client; to the box itself (health check) passed.
        f.steers(&format!("{fam} NAT reply"), &tcp(lab.r1, 8080, c, 40000));
        f.passes(
            &format!("{fam} reply to box"),
            &tcp(lab.r1, 8080, lab.lan, 40000),
        );
        f.passes(&format!("{fam} r1 other port"), &tcp(lab.r1, 22, c, 40000));
        // FULLNAT replies: to the pool address, in and out of the pool's range.
        f.steers(
            &format!("{fam} FULLNAT in range"),
            &tcp(lab.r3, 443, lab.pool, 20000),
        );
        f.steers(
            &format!("{fam} FULLNAT range end"),
            &tcp(lab.r3, 443, lab.pool, 29999),
        );
        f.passes(
            &format!("{fam} FULLNAT below"),
            &tcp(lab.r3, 443, lab.pool, 19999),
        );
        f.passes(
            &format!("{fam} FULLNAT above"),
            &tcp(lab.r3, 443, lab.pool, 30000),
        );
        f.steers(
            &format!("{fam} FULLNAT VIP"),
            &tcp(c, 40000, lab.vip_fnat, 443),
        );
    }
}

/// Own frames only and VLANs, both families.
#[test]
fn other_hosts_frames_own_frames_and_vlans_pass() {
    let f = Filter::new();
    for lab in [lab6(), lab4()] {
        let good = tcp(lab.client, 40000, lab.vip, 80);
        f.steers("baseline", &good);
        let mut other = good.clone();
        other[5] ^= 0x10;
        f.passes("another host's MAC", &other);
        let mut multicast = good.clone();
        multicast[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
        f.passes("multicast", &multicast);
        let mut looped = good.clone();
        looped[6..12].copy_from_slice(&LB_MAC);
        f.passes("own source MAC", &looped);
        let mut vlan = good[..12].to_vec();
        vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        vlan.extend_from_slice(&good[12..]);
        f.passes("VLAN-tagged", &vlan);
    }
}

/// ICMPv6 informational messages and neighbour discovery are the kernel's, even to a VIP.
#[test]
fn neighbour_discovery_mld_and_echo_pass() {
    let f = Filter::new();
    let lab = lab6();
    let ll: IpAddr = v6("fe80::2").into();
    let box_ll: IpAddr = v6("fe80::1").into();
    for (what, kind, src, dst) in [
        ("echo request to a VIP", 128, lab.client, lab.vip),
        ("echo reply", 129, lab.client, lab.wan),
        ("MLD query", 130, ll, box_ll),
        ("MLD report", 131, ll, box_ll),
        ("MLDv2 report", 143, ll, box_ll),
        ("router solicitation", 133, ll, box_ll),
        ("router advertisement", 134, ll, box_ll),
        (
            "neighbour solicitation (unicast) for a VIP",
            135,
            lab.client,
            lab.vip,
        ),
        ("neighbour advertisement", 136, lab.client, lab.wan),
        ("redirect", 137, ll, box_ll),
    ] {
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&PEER_MAC);
        f.passes(what, &ip_frame(ICMPV6, src, dst, &icmpv6(kind, 0, &body)));
    }
    // Hop-by-hop (router alert) before MLD, as MLD is sent.
    let mld = ext(ICMPV6, 0, &icmpv6(143, 0, &[0u8; 20]));
    f.passes("MLD after hop-by-hop", &ip_frame(HOP, ll, box_ll, &mld));
    // IPv4: echo to a VIP.
    let l4v = lab4();
    let echo = ip_frame(ICMP, l4v.client, l4v.vip, &icmpv6(8, 0, b"ping"));
    f.passes("IPv4 echo to a VIP", &echo);
}

/// ICMPv6 (and ICMP) errors steered by the packet they quote.
#[test]
fn icmp_errors_follow_the_quoted_flow() {
    let f = Filter::new();
    for lab in [lab6(), lab4()] {
        let fam = if lab.client.is_ipv4() { "IPv4" } else { "IPv6" };
        let router: IpAddr = match lab.client {
            IpAddr::V6(_) => v6("2001:2:0:9::1").into(),
            IpAddr::V4(_) => v4("198.18.9.1").into(),
        };
        let quote = |src, sport, dst, dport| ip_packet(TCP, src, dst, &l4(TCP, sport, dport));
        for kind in [1, 2, 3] {
            let what = |s: &str| format!("{fam} error {kind} {s}");
            // About a reply the client got: the quote's source is the service.
            let q = quote(lab.vip, 80, lab.client, 40000);
            f.steers(
                &what("about a reply"),
                &icmp_error(kind, router, lab.wan, &q),
            );
            // About a packet xvs sent a NAT real server (error to the client).
            let q = quote(lab.client, 40000, lab.r1, 8080);
            f.steers(
                &what("about a NAT packet"),
                &icmp_error(kind, router, lab.client, &q),
            );
            // ... but the box's own connection to it (error to the box): the kernel's.
            let q = quote(lab.lan, 40000, lab.r1, 8080);
            f.passes(
                &what("about the box's own"),
                &icmp_error(kind, router, lab.lan, &q),
            );
            // About a packet xvs sent a FULLNAT real server from the pool (range in and out).
            let q = quote(lab.pool, 20001, lab.r3, 443);
            f.steers(
                &what("about a FULLNAT packet"),
                &icmp_error(kind, router, lab.pool, &q),
            );
            let q = quote(lab.pool, 40000, lab.r3, 443);
            f.passes(
                &what("pool, out of range"),
                &icmp_error(kind, router, lab.pool, &q),
            );
            // About nothing xvs balances.
            let q = quote(lab.wan, 40000, lab.client, 22);
            f.passes(
                &what("about the box's ssh"),
                &icmp_error(kind, router, lab.wan, &q),
            );
        }
    }
    // IPv6 only: a parameter problem (type 4) is the kernel's even about a service flow, and
    // a quote with extension headers is walked.
    let lab = lab6();
    let router: IpAddr = v6("2001:2:0:9::1").into();
    let q = ip_packet(TCP, lab.vip, lab.client, &l4(TCP, 80, 40000));
    f.passes("parameter problem", &icmp_error(4, router, lab.wan, &q));
    let q = ip_packet(DEST, lab.vip, lab.client, &ext(TCP, 0, &l4(TCP, 80, 40000)));
    f.steers(
        "quote with destination options",
        &icmp_error(1, router, lab.wan, &q),
    );
    // A fragmented error is the kernel's.
    let q = ip_packet(TCP, lab.vip, lab.client, &l4(TCP, 80, 40000));
    let fragmented = frag(ICMPV6, 0, true, &icmpv6(1, 0, &q));
    f.passes(
        "fragmented error",
        &ip_frame(FRAGMENT, router, lab.wan, &fragmented),
    );
}

/// A "packet too big" / "fragmentation needed" from inside a TUN tunnel: steered when the inner
/// destination is a service.
#[test]
fn tunnel_packet_too_big_steered_by_the_inner_packet() {
    let f = Filter::new();
    let lab = lab6();
    let router: IpAddr = v6("2001:2:0:9::1").into();
    let real: IpAddr = v6("2001:2:0:4::11").into();
    let inner = ip_packet(TCP, lab.client, lab.vip_tun, &l4(TCP, 40000, 80));
    let outer = ip_packet(IPV6_IN_IPV6, lab.lan, real, &inner);
    f.steers(
        "TUN6 packet too big",
        &icmp_error(2, router, lab.lan, &outer),
    );
    f.passes("TUN6 unreachable", &icmp_error(1, router, lab.lan, &outer));
    let inner = ip_packet(TCP, lab.client, lab.vip_tun, &l4(TCP, 40000, 81));
    let outer = ip_packet(IPV6_IN_IPV6, lab.lan, real, &inner);
    f.passes(
        "TUN6 too big, not a service",
        &icmp_error(2, router, lab.lan, &outer),
    );

    let lab = lab4();
    let router: IpAddr = v4("198.18.9.1").into();
    let real: IpAddr = v4("198.18.4.11").into();
    let inner = ip_packet(TCP, lab.client, lab.vip_tun, &l4(TCP, 40000, 80));
    let outer = ip_packet(IPV4_IN_IPV4, lab.lan, real, &inner);
    f.steers("TUN frag needed", &icmp_error(2, router, lab.lan, &outer));
    f.passes(
        "TUN host unreachable",
        &icmp_error(1, router, lab.lan, &outer),
    );
}

/// IPv6 extension headers: walked up to the parser's bounds, the kernel's beyond.
#[test]
fn extension_header_chains() {
    let f = Filter::new();
    let lab = lab6();
    let (c, vip) = (lab.client, lab.vip);
    let seg = l4(TCP, 40000, 80);
    let frame = |next, payload: &[u8]| ip_frame(next, c, vip, payload);

    f.steers(
        "hop-by-hop + dest-opts",
        &frame(HOP, &ext(DEST, 0, &ext(TCP, 0, &seg))),
    );
    f.steers("long dest-opts", &frame(DEST, &ext(TCP, 3, &seg)));
    let routing_done = {
        let mut r = ext(TCP, 0, &seg);
        r[2] = 4; // routing type 4, segments left 0
        r[3] = 0;
        r
    };
    f.steers("routing, no segments left", &frame(ROUTING, &routing_done));
    let mut routing = routing_done.clone();
    routing[3] = 1;
    f.passes("routing with segments left", &frame(ROUTING, &routing));
    // RFC 8200's full order: hop-by-hop, dest-opts, routing, fragment, dest-opts (5).
    let chain = ext(
        DEST,
        0,
        &ext(ROUTING, 0, &{
            let mut r = ext(FRAGMENT, 0, &frag(DEST, 0, false, &ext(TCP, 0, &seg)));
            r[3] = 0;
            r
        }),
    );
    f.steers("five extension headers", &frame(HOP, &chain));
    let six = ext(
        DEST,
        0,
        &ext(
            DEST,
            0,
            &ext(DEST, 0, &ext(DEST, 0, &ext(DEST, 0, &ext(TCP, 0, &seg)))),
        ),
    );
    f.passes("six extension headers", &frame(DEST, &six));
    f.passes(
        "hop-by-hop not first",
        &frame(DEST, &ext(HOP, 0, &ext(TCP, 0, &seg))),
    );
    f.passes(
        "over 512 bytes of headers",
        &frame(DEST, &ext(DEST, 63, &ext(TCP, 0, &seg))),
    );
    f.steers(
        "512 bytes of headers",
        &frame(DEST, &ext(DEST, 62, &ext(TCP, 0, &seg))),
    );
    let cut = frame(DEST, &ext(TCP, 3, &seg));
    f.passes("header cut short", &cut[..14 + 40 + 4]);
    f.passes("transport cut short", &frame(DEST, &ext(TCP, 0, &seg[..3])));
    let ah = {
        let mut a = vec![TCP, 4];
        a.resize(24, 0);
        a.extend_from_slice(&seg);
        a
    };
    f.passes("AH", &frame(51, &ah));
    f.passes("no next header", &frame(59, &[]));
    let mut bad_version = frame(TCP, &seg);
    bad_version[14] = 0x40;
    f.passes("version 4 in an IPv6 frame", &bad_version);
}

/// Fragments: a first fragment by its ports, later fragments by address, both families.
#[test]
fn fragments_by_ports_then_by_address() {
    let f = Filter::new();
    let lab = lab6();
    let c = lab.client;
    let seg = l4(TCP, 40000, 80);
    let frame = |src, dst, payload: &[u8]| ip_frame(FRAGMENT, src, dst, payload);
    f.steers(
        "first fragment",
        &frame(c, lab.vip, &frag(TCP, 0, true, &seg)),
    );
    let other = l4(TCP, 40000, 22);
    f.passes(
        "first fragment, other port",
        &frame(c, lab.vip, &frag(TCP, 0, true, &other)),
    );
    f.steers(
        "atomic fragment",
        &frame(c, lab.vip, &frag(TCP, 0, false, &seg)),
    );
    let data = [0u8; 16];
    let later = |src, dst, next| frame(src, dst, &frag(next, 1448, false, &data));
    f.steers("later fragment to a VIP", &later(c, lab.vip, TCP));
    f.passes("later fragment, other protocol", &later(c, lab.vip, UDP));
    f.passes("later fragment to the box", &later(c, lab.wan, TCP));
    f.steers("later fragment from a NAT real", &later(lab.r1, c, TCP));
    f.passes(
        "later fragment from a NAT real to the box",
        &later(lab.r1, lab.lan, TCP),
    );
    f.steers(
        "later fragment to a pool address",
        &later(lab.r3, lab.pool, TCP),
    );
    f.passes("later fragment, dest-opts next", &later(c, lab.vip, DEST));
    let dest_first = ip_frame(
        DEST,
        c,
        lab.vip,
        &ext(FRAGMENT, 0, &frag(TCP, 1448, true, &data)),
    );
    f.steers("later fragment after dest-opts", &dest_first);
    let twice = frag(FRAGMENT, 0, true, &frag(TCP, 0, true, &seg));
    f.passes("two fragment headers", &frame(c, lab.vip, &twice));

    let lab = lab4();
    let c = lab.client;
    let first = ipv4_packet(TCP, c, lab.vip, 0x2000, &seg);
    f.steers("IPv4 first fragment", &ether(0x0800, &first));
    let later = |src, dst| ether(0x0800, &ipv4_packet(TCP, src, dst, 181, &data));
    f.steers("IPv4 later fragment to a VIP", &later(c, lab.vip));
    f.passes("IPv4 later fragment to the box", &later(c, lab.wan));
    f.steers("IPv4 later fragment from a NAT real", &later(lab.r1, c));
    f.steers(
        "IPv4 later fragment to a pool address",
        &later(lab.r3, lab.pool),
    );
}

/// A steered frame on a queue without a socket falls back to the kernel.
#[test]
fn steered_frame_without_a_socket_passes() {
    let f = Filter::new();
    let lab = lab6();
    let frame = tcp(lab.client, 40000, lab.vip, 80);
    f.steers("with the socket", &frame);
    f.prog.unregister_socket(0, 0).expect("unregister");
    f.passes("without it", &frame);
}
