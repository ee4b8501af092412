//! FULLNAT rewriting (DPVS's FNAT) and TOA insertion, on a parsed TCP/UDP frame of either IP
//! family.
//!
//! Original direction: source client:cport → local address:port (from the service's
//! `local_addresses` pool), destination VIP:vport → real server. Reply direction (matched on the
//! local address:port): source real server → VIP:vport, destination local address:port →
//! client:cport. Both endpoints change, so the real server needs no route back through the load
//! balancer: it answers the pool address, which is on its LAN.
//!
//! **FULLNAT6** is the same rewrite over IPv6: a pool is of one address family, the family of
//! every service that uses it (the configuration refuses others), so an IPv6 service's
//! connections take their local endpoint from an IPv6 pool, in the IPv6 connection table (ports
//! per shard as over IPv4, see [`crate::conntrack::local_ports`]). The hop limit is the TTL,
//! IPv6 has no header checksum, and the transport checksum's incremental update covers the two
//! 16-byte addresses of the pseudo-header (RFC 8200 §8.1). Extension headers between the fixed
//! header and TCP/UDP stay as they are. FULLNAT64 (an IPv6 VIP in front of IPv4 real servers)
//! is not supported: the configuration refuses a real server of the other family.
//!
//! **TOA** (`toa: true`, TCP only): the client's address travels to the real server in a TCP
//! option, in the format of DPVS and of the LVS FULLNAT patches it comes from (`TCPOPT_ADDR` 254;
//! the length byte tells the families apart). IPv4 client (`TCPOLEN_ADDR` 8: opcode, size, port,
//! IPv4 address):
//!
//! ```text
//! byte 0    1    2..3                 4..7
//!      254  8    client port (BE)     client IPv4 address (BE)
//! ```
//!
//! IPv6 client (DPVS `struct tcpopt_ip6_addr`, `TCP_OLEN_IP6_ADDR` 20: opcode, size, port, IPv6
//! address):
//!
//! ```text
//! byte 0    1    2..3                 4..19
//!      254  20   client port (BE)     client IPv6 address (16 bytes, network order)
//! ```
//!
//! It is inserted in the client's SYN and in the client's ACK that completes the handshake
//! (the packet that moves the connection from SYN_RECV to ESTABLISHED), as DPVS does (it adds TOA
//! to the SYN and to the first packet acknowledging the server's SYN): the TOA kernel module on
//! real servers reads it from the handshake's last ACK (its `syn_recv_sock` hook), and user-space
//! readers of the SYN (e.g. with `TCP_SAVE_SYN`) find it there. Later segments carry no option.
//!
//! The option goes first, right after the fixed 20-byte header (existing options move back by
//! the option's length, so an end-of-options marker cannot hide it). The frame grows in place by
//! 8 (IPv4) or 20 (IPv6) bytes into the UMEM frame's tailroom (Ethernet padding after the IP
//! packet is dropped); the data offset and the IP length (IPv4: total length and header
//! checksum; IPv6: payload length, no header checksum, extension headers untouched) are updated,
//! and the TCP checksum incrementally: the pseudo-header length (over IPv6 the low half of its
//! 32-bit upper-layer length; the high half stays 0 below the MTU), the data-offset word and the
//! option's new words (the shifted bytes move by an even count, so they keep their 16-bit
//! alignment). Nothing is inserted — the packet is forwarded without the option and the skip
//! counted — when the TCP header has no room for the option in its 40 bytes of options (more
//! than 32 bytes of options over IPv4, more than 20 over IPv6: `no_option_space`), when the grown
//! packet would exceed the egress interface's MTU (`mtu`), when the frame buffer has no tailroom
//! (`no_room`), or when the segment is a first fragment (`fragment`; over IPv6 a packet with a
//! fragment header that is not atomic). Sequence numbers do not change (options take no sequence
//! space), so no later packet needs adjusting.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::datapath::wire::{checksum, tcp};
use crate::datapath::wire::{read_u16, write_u16, Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram};
use crate::flow::Proto;

/// TCP option kind of TOA (DPVS `TCPOPT_ADDR` / `TCP_OPT_ADDR`), for both families.
pub const TOA_KIND: u8 = 254;
/// TCP option length of the IPv4 TOA (DPVS `TCPOLEN_ADDR`).
pub const TOA_LEN: usize = 8;
/// TCP option length of the IPv6 TOA (DPVS `TCP_OLEN_IP6_ADDR`).
pub const TOA6_LEN: usize = 20;
/// [`TOA_LEN`] and [`TOA6_LEN`] as the option's length byte and as length-field increments.
const TOA_LEN_U8: u8 = 8;
const TOA_LEN_U16: u16 = 8;
const TOA6_LEN_U8: u8 = 20;
const TOA6_LEN_U16: u16 = 20;
const _: () = assert!(TOA_LEN_U8 as usize == TOA_LEN && TOA_LEN_U16 as usize == TOA_LEN);
const _: () = assert!(TOA6_LEN_U8 as usize == TOA6_LEN && TOA6_LEN_U16 as usize == TOA6_LEN);
/// Largest TCP header (data offset 15).
const MAX_TCP_HEADER: usize = 60;
/// The bytes an option replaces in the checksum (the option's words were not there: zeros).
const ZEROS: [u8; TOA6_LEN] = [0; TOA6_LEN];

/// The 8 bytes of a TOA option for the IPv4 `client`.
pub fn toa_option(client: SocketAddrV4) -> [u8; TOA_LEN] {
    let p = client.port().to_be_bytes();
    let a = client.ip().octets();
    [TOA_KIND, TOA_LEN_U8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// The 20 bytes of a TOA option for the IPv6 `client` (DPVS `struct tcpopt_ip6_addr`).
pub fn toa6_option(client: SocketAddrV6) -> [u8; TOA6_LEN] {
    let mut o = [0; TOA6_LEN];
    o[0] = TOA_KIND;
    o[1] = TOA6_LEN_U8;
    o[2..4].copy_from_slice(&client.port().to_be_bytes());
    o[4..].copy_from_slice(&client.ip().octets());
    o
}

/// Rewrites source and destination (address and port) of the IPv4 or IPv6 packet at `l3` whose
/// transport header is at `l4`, and sets its TTL or hop limit to `ttl`, keeping every checksum
/// correct (incremental updates; a UDP checksum of 0 stays 0, which over IPv6 `parse` already
/// refused; a computed 0 is sent as 0xffff). `new_src` and `new_dst` are of the packet's family.
/// The frame must have been parsed: a view that does not fit, or addresses of another family
/// than the packet's, leave the frame untouched and return `false`.
pub fn rewrite_both(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    proto: Proto,
    ttl: u8,
    new_src: SocketAddr,
    new_dst: SocketAddr,
) -> bool {
    // Every view is proved to fit before anything is written: a frame that does not is left
    // as it came.
    if l4 <= l3 || !frame.get(l4..).is_some_and(|b| transport_fits(b, proto)) {
        return false;
    }
    let Some(ip) = frame.get_mut(l3..) else {
        return false;
    };
    let ports = (new_src.port(), new_dst.port());
    match (new_src, new_dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            let Ok(mut ip) = Ipv4Packet::new_checked(ip) else {
                return false;
            };
            let old = (ip.src().octets(), ip.dst().octets());
            let new = (s.ip().octets(), d.ip().octets());
            ip.set_src(*s.ip());
            ip.set_dst(*d.ip());
            ip.set_ttl(ttl);
            let addrs = ((&old.0[..], &new.0[..]), (&old.1[..], &new.1[..]));
            rewrite_ports(&mut frame[l4..], proto, addrs, ports)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            let Ok(mut ip) = Ipv6Packet::new_checked(ip) else {
                return false;
            };
            let old = (ip.src().octets(), ip.dst().octets());
            let new = (s.ip().octets(), d.ip().octets());
            ip.set_src(*s.ip());
            ip.set_dst(*d.ip());
            ip.set_hop_limit(ttl);
            let addrs = ((&old.0[..], &new.0[..]), (&old.1[..], &new.1[..]));
            rewrite_ports(&mut frame[l4..], proto, addrs, ports)
        }
        _ => false,
    }
}

/// Whether the TCP header, or the UDP header of a whole datagram or first fragment, fits `l4`.
fn transport_fits(l4: &[u8], proto: Proto) -> bool {
    match proto {
        Proto::Tcp => TcpSegment::new_checked(l4).is_ok(),
        Proto::Udp => UdpDatagram::new_checked_first_fragment(l4).is_ok(),
    }
}

/// Old and new source and destination addresses (4 or 16 bytes each), as the pseudo-header
/// holds them.
type AddrChange<'a> = ((&'a [u8], &'a [u8]), (&'a [u8], &'a [u8]));

/// Writes the ports `ports` (source, destination) into the TCP/UDP header at the start of `l4`
/// and updates its checksum for them and for the pseudo-header's addresses changing as `addrs`
/// says. [`transport_fits`] proved the view fits (else nothing is written and the result is
/// `false`).
fn rewrite_ports(l4: &mut [u8], proto: Proto, addrs: AddrChange<'_>, ports: (u16, u16)) -> bool {
    let ((old_src, new_src), (old_dst, new_dst)) = addrs;
    let update = |c: u16, old_sport: u16, old_dport: u16| {
        let c = checksum::update_bytes(c, old_src, new_src);
        let c = checksum::update_bytes(c, old_dst, new_dst);
        let c = checksum::update_u16(c, old_sport, ports.0);
        checksum::update_u16(c, old_dport, ports.1)
    };
    match proto {
        Proto::Tcp => {
            let Ok(mut t) = TcpSegment::new_checked(l4) else {
                return false;
            };
            let (sp, dp) = (t.src_port(), t.dst_port());
            t.set_src_port(ports.0);
            t.set_dst_port(ports.1);
            let c = update(t.checksum(), sp, dp);
            t.set_checksum(c);
        }
        Proto::Udp => {
            let Ok(mut u) = UdpDatagram::new_checked_first_fragment(l4) else {
                return false;
            };
            let (sp, dp) = (u.src_port(), u.dst_port());
            u.set_src_port(ports.0);
            u.set_dst_port(ports.1);
            if u.checksum() != 0 {
                u.set_checksum(checksum::udp_field(update(u.checksum(), sp, dp)));
            }
        }
    }
    true
}

/// Why a TOA was not inserted (counted, the packet goes on unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToaSkip {
    /// The TCP header's 40 bytes of options have no room for the option (8 bytes over IPv4,
    /// 20 over IPv6).
    NoOptionSpace,
    /// The packet would exceed the egress interface's MTU.
    Mtu,
    /// The frame buffer has no tailroom for the option.
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

/// Inserts the TOA option for `client` into the TCP segment of the IPv4 or IPv6 packet at `l3`
/// (TCP header at `l4`, after any IPv6 extension headers) of the frame `buf[..len]`; `buf`
/// beyond `len` is tailroom. The option is the client's family's (8 or 20 bytes, see the module
/// documentation). Returns the new frame length. `mtu` bounds the grown IP packet. On `Err` the
/// frame is untouched.
pub fn insert_toa(
    buf: &mut [u8],
    len: usize,
    l3: usize,
    l4: usize,
    client: SocketAddr,
    mtu: u16,
) -> Result<usize, ToaSkip> {
    match client {
        SocketAddr::V4(c) => insert_toa4(buf, len, l3, l4, c, mtu),
        SocketAddr::V6(c) => insert_toa6(buf, len, l3, l4, c, mtu),
    }
}

/// [`insert_toa`] into an IPv4 packet.
fn insert_toa4(
    buf: &mut [u8],
    len: usize,
    l3: usize,
    l4: usize,
    client: SocketAddrV4,
    mtu: u16,
) -> Result<usize, ToaSkip> {
    let (total, tcp_hlen) = {
        let ip = buf.get(l3..len).ok_or(ToaSkip::NoRoom)?;
        let ip = Ipv4Packet::new_checked(ip).map_err(|_| ToaSkip::NoRoom)?;
        if l3 + ip.header_len() != l4 {
            return Err(ToaSkip::NoRoom);
        }
        let t = TcpSegment::new_checked(ip.payload()).map_err(|_| ToaSkip::NoRoom)?;
        (ip.total_len(), t.header_len())
    };
    let g = Growth::plan(buf.len(), l4, (l3 + total, total), tcp_hlen, TOA_LEN, mtu)?;
    // Within the MTU (checked by the plan), so the total length fits its 16-bit field.
    let old_total = u16::try_from(total).map_err(|_| ToaSkip::Mtu)?;
    let new_len = g.apply(buf, &toa_option(client));
    // IPv4 total length and header checksum.
    let new_total = old_total + TOA_LEN_U16;
    write_u16(buf, l3 + 2, new_total);
    let ip_c = checksum::update_u16(read_u16(buf, l3 + 10), old_total, new_total);
    write_u16(buf, l3 + 10, ip_c);
    Ok(new_len)
}

/// [`insert_toa`] into an IPv6 packet: the TCP header must be where the extension-header walk
/// ends (it is, for a parsed packet), and a packet with a fragment header that is not atomic is
/// a fragment (`parse` forwards IPv6 first fragments as flows).
fn insert_toa6(
    buf: &mut [u8],
    len: usize,
    l3: usize,
    l4: usize,
    client: SocketAddrV6,
    mtu: u16,
) -> Result<usize, ToaSkip> {
    let (payload_len, tcp_hlen) = {
        let ip = buf.get(l3..len).ok_or(ToaSkip::NoRoom)?;
        let ip = Ipv6Packet::new_checked(ip).map_err(|_| ToaSkip::NoRoom)?;
        let upper = ip.upper_layer().map_err(|_| ToaSkip::NoRoom)?;
        if upper.fragment.is_some_and(|f| !f.is_atomic()) {
            return Err(ToaSkip::Fragment);
        }
        if l3 + upper.offset != l4 {
            return Err(ToaSkip::NoRoom);
        }
        let seg = buf.get(l4..l3 + ip.total_len()).ok_or(ToaSkip::NoRoom)?;
        let t = TcpSegment::new_checked(seg).map_err(|_| ToaSkip::NoRoom)?;
        (ip.payload_len(), t.header_len())
    };
    let total = crate::datapath::wire::ipv6::HEADER_LEN + payload_len;
    let g = Growth::plan(buf.len(), l4, (l3 + total, total), tcp_hlen, TOA6_LEN, mtu)?;
    // Within the MTU (checked by the plan), so the payload length fits its 16-bit field.
    let old_payload = u16::try_from(payload_len).map_err(|_| ToaSkip::Mtu)?;
    let new_len = g.apply(buf, &toa6_option(client));
    write_u16(buf, l3 + 4, old_payload + TOA6_LEN_U16);
    Ok(new_len)
}

/// How a TOA option grows a TCP segment, worked out (and every limit checked) before anything
/// is written: [`Growth::plan`], then [`Growth::apply`].
struct Growth {
    /// The TCP header's offset in the frame.
    l4: usize,
    /// The IP packet's end in the frame (Ethernet padding after it is dropped).
    end: usize,
    /// The new data offset, in 32-bit words.
    doff: u16,
    /// The TCP segment's length (the pseudo-header's upper-layer length) before and after.
    l4_len: (u16, u16),
}

impl Growth {
    /// The growth by `n` option bytes of the TCP header at `l4` (`tcp_hlen` bytes long) of the
    /// IP packet ending at `end` and `ip_len` bytes long, in a buffer of `buf_len` bytes:
    /// `no_option_space` when the header would pass 60 bytes, `mtu` when the packet would pass
    /// `mtu`, `no_room` when the buffer would.
    fn plan(
        buf_len: usize,
        l4: usize,
        (end, ip_len): (usize, usize),
        tcp_hlen: usize,
        n: usize,
        mtu: u16,
    ) -> Result<Growth, ToaSkip> {
        if tcp_hlen + n > MAX_TCP_HEADER {
            return Err(ToaSkip::NoOptionSpace);
        }
        if ip_len + n > usize::from(mtu) {
            return Err(ToaSkip::Mtu);
        }
        // Within the MTU (checked above), so both segment lengths fit 16 bits, and the data
        // offset (at most 60 bytes, checked above) its nibble.
        let (Ok(doff), Ok(old), Ok(new)) = (
            u16::try_from((tcp_hlen + n) / 4),
            u16::try_from(end - l4),
            u16::try_from(end - l4 + n),
        ) else {
            return Err(ToaSkip::Mtu);
        };
        if end + n > buf_len {
            return Err(ToaSkip::NoRoom);
        }
        Ok(Growth {
            l4,
            end,
            doff,
            l4_len: (old, new),
        })
    }

    /// Moves everything after the fixed TCP header back by `opt.len()` bytes, writes `opt`
    /// there, and updates the data offset and the TCP checksum (pseudo-header length,
    /// data-offset word, the option's words, which replace nothing: zeros). The IP header's
    /// length fields are the caller's. Returns the new frame length (the packet's new end).
    fn apply(&self, buf: &mut [u8], opt: &[u8]) -> usize {
        let n = opt.len();
        let at = self.l4 + tcp::MIN_HEADER_LEN;
        buf.copy_within(at..self.end, at + n);
        buf[at..at + n].copy_from_slice(opt);
        // Data offset: the high nibble of byte 12 (shares a word with the flags).
        let old_word = read_u16(buf, self.l4 + 12);
        let new_word = (old_word & 0x0fff) | (self.doff << 12);
        write_u16(buf, self.l4 + 12, new_word);
        let at_c = self.l4 + tcp::CHECKSUM_AT;
        let mut c = read_u16(buf, at_c);
        c = checksum::update_u16(c, self.l4_len.0, self.l4_len.1);
        c = checksum::update_u16(c, old_word, new_word);
        c = checksum::update_bytes(c, &ZEROS[..n], opt);
        write_u16(buf, at_c, c);
        self.end + n
    }
}

/// The first option of kind [`TOA_KIND`] and length `len` in `options` (a TCP header's option
/// bytes), if the walk reaches one.
fn find_option(options: &[u8], len: usize) -> Option<&[u8]> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let l = usize::from(*options.get(i + 1)?);
                if l < 2 || i + l > options.len() {
                    return None;
                }
                if kind == TOA_KIND && l == len {
                    return options.get(i..i + l);
                }
                i += l;
            }
        }
    }
    None
}

/// The IPv4 client endpoint a TOA option carries, if `options` (a TCP header's option bytes)
/// has one: for tests and tools reading what xvs inserted.
pub fn find_toa(options: &[u8]) -> Option<SocketAddrV4> {
    let o = find_option(options, TOA_LEN)?;
    let a: [u8; 4] = o.get(4..8)?.try_into().ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::from(a),
        u16::from_be_bytes([o[2], o[3]]),
    ))
}

/// The IPv6 client endpoint an IPv6 TOA option carries, if `options` has one (as
/// [`find_toa`]).
pub fn find_toa6(options: &[u8]) -> Option<SocketAddrV6> {
    let o = find_option(options, TOA6_LEN)?;
    let a: [u8; 16] = o.get(4..20)?.try_into().ok()?;
    Some(SocketAddrV6::new(
        Ipv6Addr::from(a),
        u16::from_be_bytes([o[2], o[3]]),
        0,
        0,
    ))
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
        let n = insert_toa(&mut f, len, 14, 34, client.into(), 1500).unwrap();
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
            insert_toa(&mut full, len, 14, 34, client.into(), 1500),
            Err(ToaSkip::NoOptionSpace)
        );
        assert_eq!(full, before);
        let mut big = frame(&[], &[7; 1460]);
        let len = big.len();
        big.resize(len + 8, 0);
        assert_eq!(
            insert_toa(&mut big, len, 14, 34, client.into(), 1500),
            Err(ToaSkip::Mtu)
        );
        let mut tight = frame(&[], b"");
        let len = tight.len();
        assert_eq!(
            insert_toa(&mut tight, len, 14, 34, client.into(), 1500),
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

    // ---- IPv6 ----------------------------------------------------------------------------

    const C6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const L6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn client6() -> SocketAddrV6 {
        SocketAddrV6::new(Ipv6Addr::from(C6), 40000, 0, 0)
    }

    /// Ethernet + IPv6 (+ `ext`, extension headers whose first byte is patched to the next
    /// header, with `ext_first` the fixed header's next header) + TCP with `opts` and
    /// `payload`, checksummed from scratch.
    fn frame6(ext: &[u8], ext_first: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = (((20 + opts.len()) / 4) as u8) << 4;
        t[13] = 0x02;
        t.extend_from_slice(opts);
        t.extend_from_slice(payload);
        let s = checksum::ipv6_pseudo_header_sum(C6, L6, 6, t.len() as u32);
        let c = !checksum::fold(checksum::sum(&t, s));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0u8; 14];
        f[12] = 0x86;
        f[13] = 0xdd;
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        ip[4..6].copy_from_slice(&((ext.len() + t.len()) as u16).to_be_bytes());
        ip[6] = if ext.is_empty() { 6 } else { ext_first };
        ip.extend_from_slice(&C6);
        ip.extend_from_slice(&L6);
        f.extend_from_slice(&ip);
        f.extend_from_slice(ext);
        f.extend_from_slice(&t);
        f
    }

    /// Whether the TCP checksum of the IPv6 frame `f` (TCP at `l4`) verifies over the
    /// pseudo-header.
    fn tcp6_checksum_ok(f: &[u8], l4: usize) -> bool {
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let seg = &f[l4..14 + ip.total_len()];
        let s = checksum::ipv6_pseudo_header_sum(
            ip.src().octets(),
            ip.dst().octets(),
            6,
            seg.len() as u32,
        );
        checksum::fold(checksum::sum(seg, s)) == 0xffff
    }

    #[test]
    fn the_ipv6_toa_is_dpvs_tcpopt_ip6_addr() {
        let o = toa6_option(client6());
        assert_eq!(o.len(), 20);
        assert_eq!(&o[..4], &[254, 20, 0x9c, 0x40]);
        assert_eq!(&o[4..], &C6);
        assert_eq!(find_toa6(&o), Some(client6()));
        // Each family's reader takes only its own length.
        assert_eq!(find_toa(&o), None);
        assert_eq!(
            find_toa6(&toa_option("198.18.0.2:1".parse().unwrap())),
            None
        );
        assert_eq!(find_toa6(&[1, 1, 254, 20, 0, 1]), None, "cut short");
    }

    #[test]
    fn toa6_goes_first_and_the_payload_length_and_checksum_follow() {
        // Behind a destination options header (8 bytes: PadN), with Linux's ACK options.
        let ext = [6, 0, 1, 4, 0, 0, 0, 0];
        let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let mut f = frame6(&ext, 60, &opts, b"GET /");
        let l4 = 14 + 40 + 8;
        assert!(tcp6_checksum_ok(&f, l4));
        let len = f.len();
        f.resize(len + 64, 0xee);
        let n = insert_toa(&mut f, len, 14, l4, client6().into(), 1500).unwrap();
        assert_eq!(n, len + 20);
        let g = &f[..n];
        let ip = Ipv6Packet::new_checked(&g[14..]).unwrap();
        assert_eq!(ip.total_len(), n - 14);
        assert_eq!(&g[54..62], &ext, "extension headers stay");
        let t = TcpSegment::new_checked(&g[l4..]).unwrap();
        assert_eq!(t.header_len(), 20 + 20 + 12);
        assert_eq!(&g[l4 + 20..l4 + 40], &toa6_option(client6()));
        assert_eq!(&g[l4 + 40..l4 + 52], &opts);
        assert_eq!(&g[l4 + 52..], b"GET /");
        assert!(tcp6_checksum_ok(g, l4));
        assert_eq!(find_toa6(&g[l4 + 20..l4 + 52]), Some(client6()));
    }

    #[test]
    fn toa6_fills_the_options_exactly_and_is_skipped_past_them() {
        let c = SocketAddr::V6(client6());
        // Linux's SYN options (20 bytes): 20 + 20 + 20 = 60, the largest header.
        let syn = [
            2, 4, 5, 0xa0, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let mut f = frame6(&[], 0, &syn, b"");
        let len = f.len();
        f.resize(len + 20, 0);
        assert_eq!(insert_toa(&mut f, len, 14, 54, c, 1500), Ok(len + 20));
        assert_eq!(TcpSegment::new_checked(&f[54..]).unwrap().header_len(), 60);
        assert!(tcp6_checksum_ok(&f, 54));
        // 24 bytes of options leave 16: no room for 20.
        let mut full = frame6(&[], 0, &[1; 24], b"");
        let len = full.len();
        full.resize(len + 20, 0);
        let before = full.clone();
        assert_eq!(
            insert_toa(&mut full, len, 14, 54, c, 1500),
            Err(ToaSkip::NoOptionSpace)
        );
        assert_eq!(full, before);
        // 1440 bytes of data: 40 + 20 + 1440 = 1500, 20 more pass the MTU.
        let mut big = frame6(&[], 0, &[], &[7; 1440]);
        let len = big.len();
        big.resize(len + 20, 0);
        assert_eq!(
            insert_toa(&mut big, len, 14, 54, c, 1500),
            Err(ToaSkip::Mtu)
        );
        assert_eq!(insert_toa(&mut big, len, 14, 54, c, 1520), Ok(len + 20));
        let mut tight = frame6(&[], 0, &[], b"");
        let len = tight.len();
        tight.resize(len + 19, 0);
        assert_eq!(
            insert_toa(&mut tight, len, 14, 54, c, 1500),
            Err(ToaSkip::NoRoom)
        );
        // A TCP header elsewhere than where the extension-header walk ends: never written.
        let mut f = frame6(&[], 0, &[], b"0123456789abcdefghij");
        let len = f.len();
        f.resize(len + 20, 0);
        assert_eq!(
            insert_toa(&mut f, len, 14, 62, c, 1500),
            Err(ToaSkip::NoRoom)
        );
    }

    #[test]
    fn toa6_skips_a_first_fragment_but_not_an_atomic_one() {
        let c = SocketAddr::V6(client6());
        // Fragment header: next header TCP, offset 0, M set (then clear: atomic).
        let first = [6, 0, 0, 1, 0, 0, 0, 7];
        let mut f = frame6(&first, 44, &[], b"0123");
        let len = f.len();
        f.resize(len + 20, 0);
        assert_eq!(
            insert_toa(&mut f, len, 14, 62, c, 1500),
            Err(ToaSkip::Fragment)
        );
        let atomic = [6, 0, 0, 0, 0, 0, 0, 7];
        let mut f = frame6(&atomic, 44, &[], b"");
        let len = f.len();
        f.resize(len + 20, 0);
        assert_eq!(insert_toa(&mut f, len, 14, 62, c, 1500), Ok(len + 20));
        assert!(tcp6_checksum_ok(&f, 62));
    }

    #[test]
    fn rewrite_both_over_ipv6_keeps_the_transport_checksum_and_sets_the_hop_limit() {
        let mut f = frame6(&[], 0, &[1, 1, 1, 1], b"data");
        let src: SocketAddr = "[2001:2:1::3]:20000".parse().unwrap();
        let dst: SocketAddr = "[2001:2:1::11]:8080".parse().unwrap();
        assert!(rewrite_both(&mut f, 14, 54, Proto::Tcp, 63, src, dst));
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (
                "2001:2:1::3".parse().unwrap(),
                "2001:2:1::11".parse().unwrap(),
                63
            )
        );
        let t = TcpSegment::new_checked(&f[54..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (20000, 8080));
        assert!(tcp6_checksum_ok(&f, 54));
        // Addresses of the other family, or a transport header past the frame: untouched.
        let before = f.clone();
        let v4: SocketAddr = "198.18.1.2:1".parse().unwrap();
        assert!(!rewrite_both(&mut f, 14, 54, Proto::Tcp, 1, v4, v4));
        assert!(!rewrite_both(&mut f, 14, 54, Proto::Tcp, 1, src, v4));
        let near_end = f.len() - 4;
        assert!(!rewrite_both(&mut f, 14, near_end, Proto::Tcp, 1, src, dst));
        assert_eq!(f, before);
    }

    #[test]
    fn rewrite_both_over_ipv6_udp_never_writes_a_zero_checksum() {
        // A UDP datagram whose checksum after the rewrite would compute to 0 is sent as 0xffff:
        // search the first two payload bytes that make it so.
        let udp = |x: u16| {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&40000u16.to_be_bytes());
            u[2..4].copy_from_slice(&53u16.to_be_bytes());
            u[4..6].copy_from_slice(&12u16.to_be_bytes());
            u.extend_from_slice(&x.to_be_bytes());
            u.extend_from_slice(b"cd");
            u
        };
        let (s6, d6): (Ipv6Addr, Ipv6Addr) = (
            "2001:2:1::3".parse().unwrap(),
            "2001:2:1::11".parse().unwrap(),
        );
        let src = SocketAddr::new(s6.into(), 20000);
        let dst = SocketAddr::new(d6.into(), 5353);
        let sum_after = |x: u16| {
            let mut u = udp(x);
            u[0..2].copy_from_slice(&20000u16.to_be_bytes());
            u[2..4].copy_from_slice(&5353u16.to_be_bytes());
            let s = checksum::ipv6_pseudo_header_sum(s6.octets(), d6.octets(), 17, 12);
            !checksum::fold(checksum::sum(&u, s))
        };
        let x = (0..=u16::MAX).find(|&x| sum_after(x) == 0).unwrap();
        let mut f = vec![0u8; 14];
        f[12] = 0x86;
        f[13] = 0xdd;
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 12, 17, 64]);
        f.extend_from_slice(&C6);
        f.extend_from_slice(&L6);
        let mut u = udp(x);
        let s = checksum::ipv6_pseudo_header_sum(C6, L6, 17, 12);
        let c = checksum::udp_field(!checksum::fold(checksum::sum(&u, s)));
        u[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&u);
        assert!(rewrite_both(&mut f, 14, 54, Proto::Udp, 63, src, dst));
        assert_eq!(&f[60..62], &[0xff, 0xff]);
    }
}
