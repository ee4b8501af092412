//! ICMPv6 message view (RFC 4443) and its `Repr`.
//!
//! Invariant after [`Icmpv6Packet::check_len`]: the buffer holds at least the 8-byte header, so
//! no accessor panics. The view's buffer is the whole message (from the upper-layer offset of
//! its IPv6 packet to the packet's end): the checksum covers the IPv6 pseudo-header with that
//! length (RFC 4443 §2.3), so the checksum helpers take the packet's source and destination.
//!
//! Error messages (types below 128) quote the invoking packet: as much of it as fits in the
//! IPv6 minimum MTU ([`MAX_ERROR_LEN`], RFC 4443 §2.4 (c)). Neighbour discovery
//! ([`is_neighbour_discovery`], RFC 4861) and MLD ([`is_mld`], RFC 2710/3810) messages are the
//! kernel's; [`Icmpv6Repr`] does not describe them.

use super::checksum;
use super::ipv6::ICMPV6;
use super::{read_4, read_u16, read_u32, write_u16, Error};
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 8;
/// Next header value of ICMPv6.
pub const NEXT_HEADER: u8 = ICMPV6;
const CHECKSUM_AT: usize = 2;
/// The IPv6 minimum link MTU (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;
/// The longest ICMPv6 error message (header and quote) xvs may send: an IPv6 packet carrying
/// it must not exceed [`MIN_MTU`] (RFC 4443 §2.4 (c)), and its IPv6 header takes 40.
pub const MAX_ERROR_LEN: usize = MIN_MTU - 40;

/// ICMPv6 types xvs knows about.
pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAM_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
/// MLD: multicast listener query, report, done (RFC 2710) and MLDv2 report (RFC 3810).
pub const MLD_QUERY: u8 = 130;
pub const MLD_REPORT: u8 = 131;
pub const MLD_DONE: u8 = 132;
pub const MLDV2_REPORT: u8 = 143;
/// Neighbour discovery (RFC 4861): router solicitation and advertisement, neighbour
/// solicitation and advertisement, redirect.
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOUR_SOLICIT: u8 = 135;
pub const NEIGHBOUR_ADVERT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// Whether `t` is an error message type (high-order bit clear, RFC 4443 §2.1).
#[inline]
pub fn is_error(t: u8) -> bool {
    t & 0x80 == 0
}

/// Whether `t` is a neighbour discovery message (133 to 137).
#[inline]
pub fn is_neighbour_discovery(t: u8) -> bool {
    matches!(t, ROUTER_SOLICIT..=REDIRECT)
}

/// Whether `t` is an MLD message (130 to 132, 143).
#[inline]
pub fn is_mld(t: u8) -> bool {
    matches!(t, MLD_QUERY..=MLD_DONE | MLDV2_REPORT)
}

/// Whether a message of type `t` always belongs to the kernel: neighbour discovery (a box that
/// loses it loses IPv6) and MLD.
#[inline]
pub fn is_kernel_only(t: u8) -> bool {
    is_neighbour_discovery(t) || is_mld(t)
}

/// The ICMPv6 checksum of `msg` (its checksum field included as it is) from `src` to `dst`,
/// folded: 0xffff when it verifies.
fn folded_sum(msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Option<u16> {
    let len = u32::try_from(msg.len()).ok()?;
    let pseudo = checksum::ipv6_pseudo_header_sum(src.octets(), dst.octets(), NEXT_HEADER, len);
    Some(checksum::fold(checksum::sum(msg, pseudo)))
}

#[derive(Debug)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// [`Error::TruncatedIcmpv6`] when the buffer cannot hold the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::TruncatedIcmpv6);
        }
        Ok(())
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.b()[1]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), CHECKSUM_AT)
    }

    /// The four bytes after the checksum (MTU, pointer, identifier and sequence number, or
    /// unused).
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        read_4(self.b(), 4)
    }

    /// The MTU of a Packet Too Big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.b(), 4)
    }

    /// The pointer of a Parameter Problem message: the offset in the invoking packet of the
    /// field in error.
    #[inline]
    pub fn pointer(&self) -> u32 {
        read_u32(self.b(), 4)
    }

    /// The identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.b(), 4)
    }

    /// The sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.b(), 6)
    }

    /// What follows the header: for an error, the invoking packet (as much as fits).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }

    /// Whether the checksum over the pseudo-header for `src` → `dst` and the whole message
    /// verifies.
    pub fn checksum_ok(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        folded_sum(self.b(), src, dst) == Some(0xffff)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_AT, c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Recomputes the checksum over the pseudo-header for `src` → `dst` and the whole message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        // A message longer than 4 GiB has no checksum to fill; the field stays 0 (no buffer
        // xvs handles comes near).
        if let Some(s) = folded_sum(self.b(), src, dst) {
            self.set_checksum(!s);
        }
    }
}

/// The ICMPv6 messages xvs emits and translates, with their type-specific fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Message {
    /// Type 1 (codes 0 to 7: no route, prohibited, beyond scope, address unreachable, port
    /// unreachable, policy, reject route, source routing header).
    DestinationUnreachable { code: u8 },
    /// Type 2 with the MTU of the next hop (code 0; ignored on receipt, RFC 4443 §3.2).
    PacketTooBig { mtu: u32 },
    /// Type 3 (code 0: hop limit exceeded in transit, 1: reassembly time exceeded).
    TimeExceeded { code: u8 },
    /// Type 4 with the offset of the field in error (code 0: erroneous header field, 1:
    /// unrecognised next header, 2: unrecognised option).
    ParameterProblem { code: u8, pointer: u32 },
    /// Type 128 (code 0).
    EchoRequest { ident: u16, seq_no: u16 },
    /// Type 129 (code 0).
    EchoReply { ident: u16, seq_no: u16 },
}

impl Icmpv6Message {
    /// The type field.
    pub fn msg_type(&self) -> u8 {
        match self {
            Icmpv6Message::DestinationUnreachable { .. } => DEST_UNREACHABLE,
            Icmpv6Message::PacketTooBig { .. } => PACKET_TOO_BIG,
            Icmpv6Message::TimeExceeded { .. } => TIME_EXCEEDED,
            Icmpv6Message::ParameterProblem { .. } => PARAM_PROBLEM,
            Icmpv6Message::EchoRequest { .. } => ECHO_REQUEST,
            Icmpv6Message::EchoReply { .. } => ECHO_REPLY,
        }
    }

    /// The code field (0 for the messages that have none).
    pub fn code(&self) -> u8 {
        match *self {
            Icmpv6Message::DestinationUnreachable { code }
            | Icmpv6Message::TimeExceeded { code }
            | Icmpv6Message::ParameterProblem { code, .. } => code,
            _ => 0,
        }
    }

    /// The four bytes after the checksum.
    pub fn rest_of_header(&self) -> [u8; 4] {
        match *self {
            Icmpv6Message::DestinationUnreachable { .. } | Icmpv6Message::TimeExceeded { .. } => {
                [0; 4]
            }
            Icmpv6Message::PacketTooBig { mtu: v }
            | Icmpv6Message::ParameterProblem { pointer: v, .. } => v.to_be_bytes(),
            Icmpv6Message::EchoRequest { ident, seq_no }
            | Icmpv6Message::EchoReply { ident, seq_no } => {
                let [a, b] = ident.to_be_bytes();
                let [c, d] = seq_no.to_be_bytes();
                [a, b, c, d]
            }
        }
    }

    /// The message a checked view holds, `None` for a type this enum does not describe.
    fn read<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Option<Icmpv6Message> {
        let code = p.code();
        let (ident, seq_no) = (p.echo_ident(), p.echo_seq_no());
        Some(match p.msg_type() {
            DEST_UNREACHABLE => Icmpv6Message::DestinationUnreachable { code },
            PACKET_TOO_BIG => Icmpv6Message::PacketTooBig { mtu: p.mtu() },
            TIME_EXCEEDED => Icmpv6Message::TimeExceeded { code },
            PARAM_PROBLEM => Icmpv6Message::ParameterProblem {
                code,
                pointer: p.pointer(),
            },
            ECHO_REQUEST => Icmpv6Message::EchoRequest { ident, seq_no },
            ECHO_REPLY => Icmpv6Message::EchoReply { ident, seq_no },
            _ => return None,
        })
    }
}

/// An ICMPv6 message as values: the message and the length of the data after the header (for
/// an error, the quoted invoking packet; for echo, the echo data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Repr {
    pub message: Icmpv6Message,
    pub payload_len: usize,
}

impl Icmpv6Repr {
    /// Reads a checked message (its whole buffer is the message) sent from `src` to `dst`:
    /// [`Error::BadIcmpv6Checksum`] when the checksum does not verify, then
    /// [`Error::UnsupportedIcmpv6`] for a type [`Icmpv6Message`] does not describe (neighbour
    /// discovery, MLD, others). The code of Packet Too Big and echo is not kept.
    pub fn parse<T: AsRef<[u8]>>(
        p: &Icmpv6Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Icmpv6Repr, Error> {
        if !p.checksum_ok(src, dst) {
            return Err(Error::BadIcmpv6Checksum);
        }
        let message = Icmpv6Message::read(p).ok_or(Error::UnsupportedIcmpv6)?;
        Ok(Icmpv6Repr {
            message,
            payload_len: p.payload().len(),
        })
    }

    /// The length of the message `emit` writes (header and payload).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the 8-byte header into `buf`, whose next `payload_len` bytes already hold the
    /// payload, with the checksum over the pseudo-header for `src` → `dst` and the message.
    /// [`Error::TruncatedIcmpv6`] (and nothing written) when `buf` cannot hold header and
    /// payload. Bytes of `buf` past the message are not touched.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), Error> {
        let len = HEADER_LEN
            .checked_add(self.payload_len)
            .ok_or(Error::TruncatedIcmpv6)?;
        let m = buf.get_mut(..len).ok_or(Error::TruncatedIcmpv6)?;
        m[0] = self.message.msg_type();
        m[1] = self.message.code();
        m[4..8].copy_from_slice(&self.message.rest_of_header());
        Icmpv6Packet::new_unchecked(m).fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
#[path = "icmpv6_tests.rs"]
mod tests;
