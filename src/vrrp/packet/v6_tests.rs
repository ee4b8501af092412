#![allow(clippy::cast_possible_truncation)] // test values are small and chosen to fit

use super::*;
use crate::vrrp::instance::rules::FamilyError;
use crate::vrrp::packet::{encode_frame, encode_message, Version};

/// A VRRPv3 advert keepalived 2.2.7 sent over IPv6 (Ethernet frame), captured with the
/// configuration beside it (`tests/fixtures/vrrp6_keepalived/capture.sh`): VRID 51, priority
/// 200, 1 s, VIPs 2001:2::100 and 2001:2::101, from fe80::ff:fe00:a (MAC 02:00:00:00:00:0a).
const KEEPALIVED_ADVERT: &[u8] =
    include_bytes!("../../../tests/fixtures/vrrp6_keepalived/advert.bin");
/// The flow label the sending kernel chose for that advert (automatic flow labels).
const KEEPALIVED_FLOW_LABEL: u32 = 0xf_ad38;
const KA_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];

fn ka_src() -> Ipv6Addr {
    "fe80::ff:fe00:a".parse().unwrap()
}

fn vips() -> [IpAddr; 2] {
    [
        "2001:2::100".parse().unwrap(),
        "2001:2::101".parse().unwrap(),
    ]
}

fn fields(addrs: &[IpAddr]) -> AdvertFields<'_> {
    AdvertFields {
        version: Version::V3,
        vrid: 51,
        priority: 200,
        interval_cs: 100,
        addresses: addrs,
    }
}

/// Straightforward RFC 1071 sum, independent of `wire::checksum`.
fn ones_complement(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut s: u32 = bytes
        .chunks(2)
        .map(|w| (u32::from(w[0]) << 8) | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[test]
fn keepalived_advert_decodes() {
    let a = parse_ipv6(&KEEPALIVED_ADVERT[14..]).unwrap();
    assert_eq!(
        a,
        Advert {
            version: Version::V3,
            vrid: 51,
            priority: 200,
            count: 2,
            auth_type: 0,
            interval_cs: 100,
            addresses: vips().to_vec(),
            src: IpAddr::V6(ka_src()),
            dst: IpAddr::V6(MULTICAST_V6),
            ttl: 255,
        }
    );
    let ip = Ipv6Packet::new_checked(&KEEPALIVED_ADVERT[14..]).unwrap();
    assert_eq!(ip.traffic_class(), TRAFFIC_CLASS);
    assert_eq!(ip.flow_label(), KEEPALIVED_FLOW_LABEL);
    assert_eq!(KEEPALIVED_ADVERT[..6], MULTICAST_MAC_V6);
}

#[test]
fn keepalived_advert_encodes_byte_exact() {
    let addrs = vips();
    let mut buf = [0u8; 128];
    let n = encode_frame(
        &mut buf,
        &fields(&addrs),
        KA_MAC,
        MULTICAST_MAC_V6,
        IpAddr::V6(ka_src()),
        IpAddr::V6(MULTICAST_V6),
    )
    .unwrap();
    // The flow label is the sending kernel's; everything else is ours.
    let m = encode_ipv6(
        &mut buf[14..],
        &fields(&addrs),
        ka_src(),
        MULTICAST_V6,
        KEEPALIVED_FLOW_LABEL,
    )
    .unwrap();
    assert_eq!(m + 14, n);
    assert_eq!(&buf[..n], KEEPALIVED_ADVERT);
}

#[test]
fn checksum_is_over_the_ipv6_pseudo_header() {
    let addrs = vips();
    let mut buf = [0u8; 64];
    let src = IpAddr::V6(ka_src());
    let dst = IpAddr::V6(MULTICAST_V6);
    let n = encode_message(&mut buf, &fields(&addrs), src, dst).unwrap();
    assert_eq!(n, 8 + 2 * 16);
    let mut msg = buf[..n].to_vec();
    msg[6] = 0;
    msg[7] = 0;
    // src, dst, 32-bit length, 3 zero bytes, next header 112.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ka_src().octets());
    pseudo.extend_from_slice(&MULTICAST_V6.octets());
    pseudo.extend_from_slice(&(n as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 112]);
    let c = ones_complement(&[&pseudo, &msg]);
    assert_eq!(&buf[6..8], &c.to_be_bytes());
}

#[test]
fn round_trip_unicast_and_multicast() {
    let addrs = vips();
    let peer: Ipv6Addr = "2001:2::2".parse().unwrap();
    for dst in [MULTICAST_V6, peer] {
        let mut buf = [0u8; 128];
        let f = fields(&addrs);
        let n = encode_ip(&mut buf, &f, IpAddr::V6(ka_src()), IpAddr::V6(dst)).unwrap();
        let a = parse_ip(&buf[..n]).unwrap();
        assert_eq!(a.dst, IpAddr::V6(dst));
        assert_eq!(a.addresses, addrs.to_vec());
        // The message alone, with the header's facts beside it (what the raw socket gives).
        let meta = Ipv6Meta {
            src: ka_src(),
            dst,
            hop_limit: 255,
        };
        assert_eq!(parse_message_v6(&buf[40..n], meta), Ok(a));
        // Another destination in the pseudo-header does not verify.
        let other = Ipv6Meta {
            dst: if dst == peer { MULTICAST_V6 } else { peer },
            ..meta
        };
        assert_eq!(
            parse_message_v6(&buf[40..n], other),
            Err(VrrpError::Checksum)
        );
    }
}

fn good() -> Vec<u8> {
    KEEPALIVED_ADVERT[14..].to_vec()
}

#[test]
fn receive_check_checksum() {
    let mut p = good();
    p[40 + 2] ^= 1; // priority changed, checksum not
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Checksum));
    let mut p = good();
    p[8 + 15] ^= 1; // source changed: in the pseudo-header
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Checksum));
    let mut p = good();
    p[40 + 8 + 15] ^= 1; // an address changed
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Checksum));
}

#[test]
fn receive_check_version_v3_only() {
    // VRRPv2 over IPv6 is undefined: refused whatever its length or checksum.
    for vt in [0x21, 0x11, 0x41, 0xf1] {
        let mut p = good();
        p[40] = vt;
        assert_eq!(parse_ipv6(&p), Err(VrrpError::Version), "{vt:#x}");
    }
    // A v2-shaped message (8 bytes of auth data after the addresses) is refused as v2 too.
    let mut p = good();
    p[40] = 0x21;
    p.extend_from_slice(&[0; 8]);
    p[5] += 8;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Version));
}

#[test]
fn receive_check_type() {
    let mut p = good();
    p[40] = 0x32;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Type));
}

#[test]
fn receive_check_length() {
    let p = good();
    for cut in 0..p.len() {
        assert_eq!(
            parse_ipv6(&p[..cut]).map(|_| ()),
            Err(VrrpError::Length),
            "{cut}"
        );
    }
    // The count says 3 addresses, two are there (payload length consistent).
    let mut p = good();
    p[40 + 3] = 3;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
    // The count says 1, two are there.
    let mut p = good();
    p[40 + 3] = 1;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
    // Cut to one address with the payload length adjusted: 16 bytes short of the count.
    let mut p = good();
    p.truncate(40 + 8 + 16);
    p[5] -= 16;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
    // Trailing bytes past the payload length (Ethernet padding) and a payload length past the
    // buffer.
    let mut p = good();
    p.extend_from_slice(&[0; 4]);
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
    let mut p = good();
    p[5] += 1;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
    // A message of IPv4-sized addresses is not an IPv6 advert.
    let mut p = good();
    p.truncate(40 + 8 + 8);
    p[5] = 16;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::Length));
}

#[test]
fn receive_check_ip_header() {
    // Not IPv6.
    let mut p = good();
    p[0] = 0x4c;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::IpHeader));
    // Another protocol.
    let mut p = good();
    p[6] = 17;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::IpHeader));
    // A fragment header (atomic fragment) before VRRP: not accepted raw.
    let mut p = good();
    p[6] = wire::ipv6::FRAGMENT;
    let frag = [PROTO_VRRP, 0, 0, 0, 0, 0, 0, 1];
    p.splice(40..40, frag);
    p[5] += 8;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::IpHeader));
    // AH before VRRP (keepalived's IPv4 AH has no IPv6 form): refused.
    let mut p = good();
    p[6] = wire::ipv6::AH;
    assert_eq!(parse_ipv6(&p), Err(VrrpError::IpHeader));
}

#[test]
fn a_destination_options_header_is_walked() {
    // The raw socket delivers the message after extension headers; parse_ipv6 does the same.
    let mut p = good();
    p[6] = wire::ipv6::DEST_OPTS;
    p.splice(40..40, [PROTO_VRRP, 0, 1, 4, 0, 0, 0, 0]);
    p[5] += 8;
    assert_eq!(parse_ipv6(&p), parse_ipv6(&good()));
}

#[test]
fn garbage_never_panics() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = [0u8; 160];
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 161) as usize;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        buf[0] = 0x60 | (buf[0] & 0x0f);
        let _ = parse_ipv6(&buf[..len]);
        let _ = parse_ip(&buf[..len]);
    }
    let good = good();
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut p = good.clone();
            p[i] = v;
            let _ = parse_ipv6(&p);
        }
    }
}

#[test]
fn encoder_refuses_what_ipv6_cannot_carry() {
    let addrs = vips();
    let v4: IpAddr = "198.18.0.1".parse().unwrap();
    let src = IpAddr::V6(ka_src());
    let dst = IpAddr::V6(MULTICAST_V6);
    let mut buf = [0u8; 128];
    let mut f = fields(&addrs);
    f.version = Version::V2;
    f.interval_cs = 100;
    assert_eq!(
        encode_message(&mut buf, &f, src, dst),
        Err(BuildError::Family(FamilyError::V2Ipv6))
    );
    let mixed = [addrs[0], v4];
    assert_eq!(
        encode_message(&mut buf, &fields(&mixed), src, dst),
        Err(BuildError::Family(FamilyError::Mixed))
    );
    assert_eq!(
        encode_message(&mut buf, &fields(&addrs), v4, dst),
        Err(BuildError::FamilyMismatch(v4))
    );
    assert_eq!(
        encode_ip(&mut buf, &fields(&addrs), src, v4),
        Err(BuildError::FamilyMismatch(v4))
    );
    assert_eq!(
        encode_ipv6(&mut buf[..60], &fields(&addrs), ka_src(), MULTICAST_V6, 0),
        Err(BuildError::BufferTooSmall { have: 60, need: 80 })
    );
}

#[test]
fn addresses_and_macs() {
    // The link-local test the receive checks and the primary use is std's, fe80::/10.
    let ll = |a: Ipv6Addr| a.is_unicast_link_local();
    assert!(ll(ka_src()));
    assert!(ll("febf::1".parse().unwrap()));
    assert!(!ll("fec0::1".parse().unwrap()));
    assert!(!ll("2001:2::1".parse().unwrap()));
    assert!(!ll(MULTICAST_V6));
    assert_eq!(virtual_mac_v6(51), [0, 0, 0x5e, 0, 2, 51]);
    let o = MULTICAST_V6.octets();
    assert_eq!(MULTICAST_MAC_V6, [0x33, 0x33, o[12], o[13], o[14], o[15]]);
    assert_eq!(Family::V6.multicast(), IpAddr::V6(MULTICAST_V6));
}
