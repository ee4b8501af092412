//! FULLNAT rewriting (DPVS's FNAT) and TOA insertion, on a parsed IPv4 TCP/UDP frame.
//!
//! Original direction: source client:cport → local address:port (from the service's
//! `local_addresses` pool), destination VIP:vport → real server. Reply direction (matched on the
//! local address:port): source real server → VIP:vport, destination local address:port →
//! client:cport. Both endpoints change, so the real server needs no route back through the load
//! balancer: it answers the pool address, which is on its LAN.
//!
//! **TOA** (`toa: true`, TCP only): the client's address travels to the real server in a TCP
//! option, in the format of DPVS and of the LVS FULLNAT patches it comes from (`TCPOPT_ADDR` 254,
//! `TCPOLEN_ADDR` 8: opcode, size, port, IPv4 address):
//!
//! ```text
//! byte 0    1    2..3                 4..7
//!      254  8    client port (BE)     client IPv4 address (BE)
//! ```
//!
//! It is inserted in the client's SYN and in the client's ACK that completes the handshake
//! (the packet that moves the connection from SYN_RECV to ESTABLISHED), as DPVS does (it adds TOA
//! to the SYN and to the first packet acknowledging the server's SYN): the TOA kernel module on
//! real servers reads it from the handshake's last ACK (its `syn_recv_sock` hook), and user-space
//! readers of the SYN (e.g. with `TCP_SAVE_SYN`) find it there. Later segments carry no option.
//!
//! The option goes first, right after the fixed 20-byte header (existing options move 8 bytes
//! back, so an end-of-options marker cannot hide it). The frame grows in place by 8 bytes into
//! the UMEM frame's tailroom (Ethernet padding after the IP packet is dropped); the data offset,
//! IP total length, IP checksum and TCP checksum are updated (the TCP checksum incrementally: the
//! pseudo-header length, the data-offset word and the four new words; the shifted bytes keep their
//! 16-bit alignment). Nothing is inserted — the packet is forwarded without the option and the
//! skip counted — when the TCP header has no 8 bytes of option space left (`no_option_space`),
//! when the grown packet would exceed the egress interface's MTU (`mtu`), when the frame buffer
//! has no tailroom (`no_room`), or when the segment is a first fragment (`fragment`). Sequence
//! numbers do not change (options take no sequence space), so no later packet needs adjusting.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::datapath::wire::checksum;
use crate::datapath::wire::{read_u16, write_u16, Ipv4Packet, TcpSegment, UdpDatagram};
use crate::flow::Proto;

/// TCP option kind of TOA (DPVS `TCPOPT_ADDR`).
pub const TOA_KIND: u8 = 254;
/// TCP option length of the IPv4 TOA (DPVS `TCPOLEN_ADDR`).
pub const TOA_LEN: usize = 8;
/// [`TOA_LEN`] as the option's length byte and as a length field.
const TOA_LEN_U8: u8 = 8;
const TOA_LEN_U16: u16 = 8;
const _: () = assert!(TOA_LEN_U8 as usize == TOA_LEN && TOA_LEN_U16 as usize == TOA_LEN);
/// Largest TCP header (data offset 15).
const MAX_TCP_HEADER: usize = 60;

/// The 8 bytes of a TOA option for `client`.
pub fn toa_option(client: SocketAddrV4) -> [u8; TOA_LEN] {
    let p = client.port().to_be_bytes();
    let a = client.ip().octets();
    [TOA_KIND, TOA_LEN_U8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// Rewrites source and destination (address and port) of the IPv4 packet at `l3` whose
/// transport header is at `l4`, and sets its TTL to `ttl`, keeping every checksum correct
/// (incremental updates; a UDP checksum of 0 stays 0). The frame must have been parsed: a view
/// that does not fit leaves the frame untouched and returns `false`.
pub fn rewrite_both(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    proto: Proto,
    ttl: u8,
    new_src: SocketAddrV4,
    new_dst: SocketAddrV4,
) -> bool {
    // Every view is proved to fit before anything is written: a frame that does not is left
    // as it came.
    let fits = match (frame.get(l3..), frame.get(l4..)) {
        (Some(ip), Some(l4b)) => {
            Ipv4Packet::new_checked(ip).is_ok()
                && match proto {
                    Proto::Tcp => TcpSegment::new_checked(l4b).is_ok(),
                    Proto::Udp => UdpDatagram::new_checked_first_fragment(l4b).is_ok(),
                }
        }
        _ => false,
    };
    if !fits {
        return false;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[l3..]) else {
        return false;
    };
    let (old_src, old_dst) = (ip.src(), ip.dst());
    ip.set_src(*new_src.ip());
    ip.set_dst(*new_dst.ip());
    ip.set_ttl(ttl);
    let update = |c: u16, old_sport: u16, old_dport: u16| {
        let c = checksum::update_bytes(c, &old_src.octets(), &new_src.ip().octets());
        let c = checksum::update_bytes(c, &old_dst.octets(), &new_dst.ip().octets());
        let c = checksum::update_u16(c, old_sport, new_src.port());
        checksum::update_u16(c, old_dport, new_dst.port())
    };
    let l4b = &mut frame[l4..];
    match proto {
        Proto::Tcp => {
            let Ok(mut t) = TcpSegment::new_checked(l4b) else {
                return false;
            };
            let (sp, dp) = (t.src_port(), t.dst_port());
            t.set_src_port(new_src.port());
            t.set_dst_port(new_dst.port());
            let c = update(t.checksum(), sp, dp);
            t.set_checksum(c);
        }
        Proto::Udp => {
            let Ok(mut u) = UdpDatagram::new_checked_first_fragment(l4b) else {
                return false;
            };
            let (sp, dp) = (u.src_port(), u.dst_port());
            u.set_src_port(new_src.port());
            u.set_dst_port(new_dst.port());
            if u.checksum() != 0 {
                let c = update(u.checksum(), sp, dp);
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
        }
    }
    true
}

/// Why a TOA was not inserted (counted, the packet goes on unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToaSkip {
    /// The TCP header already has more than 32 bytes of options.
    NoOptionSpace,
    /// The packet would exceed the egress interface's MTU.
    Mtu,
    /// The frame buffer has no 8 bytes of tailroom.
    NoRoom,
    /// The segment is the first fragment of a fragmented datagram (its checksum covers later
    /// fragments too, and growing it would shift them).
    Fragment,
}

impl ToaSkip {
    /// The `reason` label of `xvs_toa_skipped_total`.
    pub const fn label(self) -> &'static str {
        match self {
            ToaSkip::NoOptionSpace => "no_option_space",
            ToaSkip::Mtu => "mtu",
            ToaSkip::NoRoom => "no_room",
            ToaSkip::Fragment => "fragment",
        }
    }
}

/// Inserts the TOA option for `client` into the TCP segment of the IPv4 packet at `l3` (TCP
/// header at `l4`) of the frame `buf[..len]`; `buf` beyond `len` is tailroom. Returns the new
/// frame length. `mtu` bounds the grown IP packet. On `Err` the frame is untouched.
pub fn insert_toa(
    buf: &mut [u8],
    len: usize,
    l3: usize,
    l4: usize,
    client: SocketAddrV4,
    mtu: u16,
) -> Result<usize, ToaSkip> {
    let (total, tcp_hlen) = {
        let Ok(ip) = Ipv4Packet::new_checked(&buf[l3..len]) else {
            return Err(ToaSkip::NoRoom);
        };
        let Ok(t) = TcpSegment::new_checked(ip.payload()) else {
            return Err(ToaSkip::NoRoom);
        };
        (ip.total_len(), t.header_len())
    };
    if tcp_hlen + TOA_LEN > MAX_TCP_HEADER {
        return Err(ToaSkip::NoOptionSpace);
    }
    if total + TOA_LEN > usize::from(mtu) {
        return Err(ToaSkip::Mtu);
    }
    // Within the MTU (checked above), so every length fits its 16-bit field, and the data
    // offset (at most 60 bytes, checked above) its nibble.
    let (Ok(old_total), Ok(ip_hlen), Ok(new_doff)) = (
        u16::try_from(total),
        u16::try_from(l4 - l3),
        u16::try_from((tcp_hlen + TOA_LEN) / 4),
    ) else {
        return Err(ToaSkip::Mtu);
    };
    let end = l3 + total;
    let new_len = end + TOA_LEN;
    if new_len > buf.len() {
        return Err(ToaSkip::NoRoom);
    }
    let at = l4 + 20;
    buf.copy_within(at..end, at + TOA_LEN);
    let opt = toa_option(client);
    buf[at..at + TOA_LEN].copy_from_slice(&opt);
    // Data offset: the high nibble of byte 12 (shares a word with the flags).
    let old_word = read_u16(buf, l4 + 12);
    let new_word = (old_word & 0x0fff) | (new_doff << 12);
    write_u16(buf, l4 + 12, new_word);
    // IPv4 total length and header checksum.
    let new_total = old_total + TOA_LEN_U16;
    write_u16(buf, l3 + 2, new_total);
    let ip_c = checksum::update_u16(read_u16(buf, l3 + 10), old_total, new_total);
    write_u16(buf, l3 + 10, ip_c);
    // TCP checksum: pseudo-header length, data-offset word, four new words (old value 0).
    let old_l4 = old_total - ip_hlen;
    let mut c = read_u16(buf, l4 + 16);
    c = checksum::update_u16(c, old_l4, old_l4 + TOA_LEN_U16);
    c = checksum::update_u16(c, old_word, new_word);
    c = checksum::update_bytes(c, &[0; TOA_LEN], &opt);
    write_u16(buf, l4 + 16, c);
    Ok(new_len)
}

/// The client endpoint a TOA option carries, if `options` (a TCP header's option bytes) has one:
/// for tests and tools reading what xvs inserted.
pub fn find_toa(options: &[u8]) -> Option<SocketAddrV4> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                if kind == TOA_KIND && len == TOA_LEN {
                    let o = &options[i..i + len];
                    return Some(SocketAddrV4::new(
                        Ipv4Addr::new(o[4], o[5], o[6], o[7]),
                        u16::from_be_bytes([o[2], o[3]]),
                    ));
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and fixed
mod tests {
    use super::*;

    /// A minimal Ethernet + IPv4 + TCP frame with `opts` options and `payload`.
    fn frame(opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + opts.len();
        let total = 20 + tcp_len + payload.len();
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2, 198, 18, 1, 11,
        ];
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = 0x10;
        t.extend_from_slice(opts);
        t.extend_from_slice(payload);
        let s =
            checksum::ipv4_pseudo_header_sum([198, 18, 1, 2], [198, 18, 1, 11], 6, t.len() as u16);
        let c = checksum::fold(checksum::sum(&t, s));
        let c = !c;
        t[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&t);
        f
    }

    fn tcp_checksum_ok(f: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let seg = ip.payload();
        let s = checksum::ipv4_pseudo_header_sum(
            ip.src().octets(),
            ip.dst().octets(),
            6,
            seg.len() as u16,
        );
        checksum::fold(checksum::sum(seg, s)) == 0xffff
    }

    #[test]
    fn toa_goes_first_and_every_length_and_checksum_follows() {
        let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let mut f = frame(&opts, b"GET /");
        assert!(tcp_checksum_ok(&f));
        let len = f.len();
        f.resize(len + 64, 0xee);
        let client = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
        let n = insert_toa(&mut f, len, 14, 34, client, 1500).unwrap();
        assert_eq!(n, len + 8);
        let g = &f[..n];
        let ip = Ipv4Packet::new_checked(&g[14..]).unwrap();
        assert!(ip.checksum_ok());
        assert_eq!(ip.total_len(), n - 14);
        let t = TcpSegment::new_checked(ip.payload()).unwrap();
        assert_eq!(t.header_len(), 40);
        assert_eq!(&g[54..62], &[254, 8, 0x9c, 0x40, 198, 18, 0, 2]);
        assert_eq!(&g[62..74], &opts);
        assert_eq!(&g[74..], b"GET /");
        assert!(tcp_checksum_ok(g));
        assert_eq!(find_toa(&g[54..74]), Some(client));
    }

    #[test]
    fn toa_is_skipped_without_option_space_mtu_or_room() {
        let client = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 1);
        let mut full = frame(&[1; 36], b"");
        let len = full.len();
        full.resize(len + 8, 0);
        let before = full.clone();
        assert_eq!(
            insert_toa(&mut full, len, 14, 34, client, 1500),
            Err(ToaSkip::NoOptionSpace)
        );
        assert_eq!(full, before);
        let mut big = frame(&[], &[7; 1460]);
        let len = big.len();
        big.resize(len + 8, 0);
        assert_eq!(
            insert_toa(&mut big, len, 14, 34, client, 1500),
            Err(ToaSkip::Mtu)
        );
        let mut tight = frame(&[], b"");
        let len = tight.len();
        assert_eq!(
            insert_toa(&mut tight, len, 14, 34, client, 1500),
            Err(ToaSkip::NoRoom)
        );
    }

    #[test]
    fn find_toa_walks_options() {
        assert_eq!(find_toa(&[1, 1, 2, 4, 5, 0xb4]), None);
        assert_eq!(
            find_toa(&[1, 254, 8, 0, 80, 10, 0, 0, 1]),
            Some("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(find_toa(&[254, 8, 0]), None);
    }
}
