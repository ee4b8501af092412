//! IPv6 header view (RFC 8200), its `Repr`, and the bounded extension-header walk.
//!
//! Invariant after [`Ipv6Packet::check_len`]: the buffer holds the 40-byte fixed header, the
//! version is 6 and `40 + payload_len <= buffer length`, so no accessor panics. Bytes past the
//! payload length (Ethernet padding) are not part of the packet. IPv6 has no header checksum:
//! the setters write in place, and the transport checksums (which cover the addresses through
//! the pseudo-header, see [`checksum::ipv6_pseudo_header_sum`](super::checksum)) are the
//! caller's business. Jumbograms (payload length 0 with a jumbo option, RFC 2675) are not
//! supported: a payload length of 0 is an empty payload.
//!
//! # Extension-header policy
//!
//! [`Ipv6Packet::upper_layer`] walks the extension headers to the upper-layer header (TCP, UDP,
//! ICMPv6, IPv6-in-IPv6, or anything else that is not an extension header: its number is
//! reported, and what to do with it is the caller's decision). The walk is bounded so a
//! crafted chain costs a fixed, small amount of work:
//!
//! - recognised and skipped: hop-by-hop options (0; only right after the fixed header, else
//!   [`Error::Ipv6HopByHopNotFirst`]), routing (43; only with segments left 0, else
//!   [`Error::Ipv6RoutingSegmentsLeft`]: the VIP is not the final destination), destination
//!   options (60) and fragment (44; 8 bytes, at most one, else
//!   [`Error::Ipv6RepeatedFragmentHeader`]);
//! - refused: AH (51), ESP (50) and the other extension headers of IANA's list that xvs does
//!   not parse (mobility 135, HIP 139, shim6 140, experimental 253 and 254):
//!   [`Error::Ipv6UnsupportedNextHeader`];
//! - at most [`MAX_EXT_HEADERS`] (5) extension headers, the most a chain in RFC 8200 §4.1's
//!   order holds without AH/ESP (hop-by-hop, destination options, routing, fragment,
//!   destination options): one more is [`Error::Ipv6TooManyExtHeaders`], so a loop of
//!   destination options ends after five;
//! - at most [`MAX_EXT_LEN`] (512) bytes of extension headers together, checked as soon as a
//!   header's length byte is read: beyond is [`Error::Ipv6ExtHeadersTooLong`] (one header may
//!   announce up to 2048 bytes);
//! - every header lies inside the payload length, else [`Error::Ipv6ExtHeaderTruncated`]; in a
//!   first fragment this includes the whole chain up to the upper-layer header (RFC 7112);
//! - a fragment header gives the [`Fragment`] facts. A later fragment (offset != 0) is not
//!   walked further: its data is not headers; its fragment header's next header is reported as
//!   the protocol (refused as above if it is one xvs does not walk or hop-by-hop). A fragment
//!   with more to come must carry a multiple of 8 bytes
//!   ([`Error::Ipv6FragmentLenNotMultipleOf8`]) and no fragment may reach past a 65535-byte
//!   reassembled payload ([`Error::Ipv6FragmentPastMaxLen`]), both RFC 8200 §4.5.
//!
//! The walk reads each header's first bytes only (next header, length; segments left of a
//! routing header; the fragment header's 8 bytes): options are not interpreted.
//!
//! [`quoted_upper_layer`] walks the packet an ICMPv6 error quotes under the same policy, bounded
//! by the quote (which usually ends before the quoted payload length says), without the
//! fragment length rules (the quote, not the sender, cut the fragment's data).

use std::net::Ipv6Addr;

use super::{read_16, read_u16, read_u32, write_u16, write_u32, Error};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The most extension headers [`Ipv6Packet::upper_layer`] walks.
pub const MAX_EXT_HEADERS: usize = 5;
/// The most bytes of extension headers [`Ipv6Packet::upper_layer`] walks.
pub const MAX_EXT_LEN: usize = 512;

/// Next header values (IANA "Assigned Internet Protocol Numbers") the walk knows.
pub const HOP_BY_HOP: u8 = 0;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// IPv6-in-IPv6 (RFC 2473).
pub const IPV6_IN_IPV6: u8 = 41;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const ESP: u8 = 50;
pub const AH: u8 = 51;
pub const ICMPV6: u8 = 58;
pub const NO_NEXT_HEADER: u8 = 59;
pub const DEST_OPTS: u8 = 60;
/// Extension headers of IANA's list the walk does not parse, besides AH and ESP.
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;
const EXPERIMENT_1: u8 = 253;
const EXPERIMENT_2: u8 = 254;

/// Length of a fragment header.
const FRAGMENT_LEN: usize = 8;
/// The most a payload may be, reassembled or not.
const MAX_PAYLOAD: usize = 65535;

/// A view of an IPv6 packet. See the module documentation for its invariant.
#[derive(Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

checked_view!(Ipv6Packet);

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it: accessors may panic until [`check_len`](Self::check_len)
    /// passed.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Validates the fixed header against the buffer, in this order: [`Error::TruncatedIpv6`],
    /// [`Error::BadIpVersion`], [`Error::Ipv6PayloadLenPastEnd`]. Extension headers are not
    /// looked at (see [`upper_layer`](Self::upper_layer)).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TruncatedIpv6);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::BadIpVersion);
        }
        if HEADER_LEN + usize::from(read_u16(b, 4)) > b.len() {
            return Err(Error::Ipv6PayloadLenPastEnd);
        }
        Ok(())
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// The traffic class byte (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.b()[0] << 4) | (self.b()[1] >> 4)
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.b(), 0) & 0x000f_ffff
    }

    /// The payload length field: extension headers and upper layer, without the fixed header.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.b(), 4))
    }

    /// The packet's length: fixed header plus payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// The next header of the fixed header (the first extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }

    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_16(self.b(), 8))
    }

    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_16(self.b(), 24))
    }

    /// What follows the fixed header: extension headers and upper layer (without padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.total_len()]
    }

    /// Walks the extension headers to the upper layer under the module's policy. Reads at most
    /// [`MAX_EXT_HEADERS`] headers; each error is a distinct [`Error`] variant (see the module
    /// documentation). `offset` of the result is at most [`total_len`](Self::total_len).
    pub fn upper_layer(&self) -> Result<UpperLayer, Error> {
        walk(
            &self.b()[..self.total_len()],
            self.next_header(),
            Walk::Packet,
        )
    }
}

/// The packet quoted in an ICMPv6 error (RFC 4443 §2.4 (c)): `quote` starts with its fixed
/// header and holds as much of the rest as the error carries, so its payload length may run
/// past `quote`. Walks its extension headers under the module's policy, bounded by what is
/// quoted (and by its payload length, if the quote holds more): [`Error::TruncatedIpv6`] when
/// the fixed header is cut, [`Error::BadIpVersion`] when it is not IPv6,
/// [`Error::Ipv6ExtHeaderTruncated`] when an extension header runs past the quote. A quoted
/// fragment header's length rules ([`Error::Ipv6FragmentLenNotMultipleOf8`],
/// [`Error::Ipv6FragmentPastMaxLen`]) are not checked: its data is cut by the quote, not by the
/// sender. The result's `offset` is at most `quote.len()`; the upper-layer header there may be
/// cut short (the caller checks the bytes it needs).
pub fn quoted_upper_layer(quote: &[u8]) -> Result<UpperLayer, Error> {
    if quote.len() < HEADER_LEN {
        return Err(Error::TruncatedIpv6);
    }
    if quote[0] >> 4 != 6 {
        return Err(Error::BadIpVersion);
    }
    let end = quote
        .len()
        .min(HEADER_LEN + usize::from(read_u16(quote, 4)));
    walk(&quote[..end], quote[6], Walk::Quote)
}

/// What [`walk`] walks: a whole packet (every rule) or the quote of an ICMPv6 error (its end is
/// the quote's, so the fragment length rules do not apply).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Packet,
    Quote,
}

/// The walk of [`Ipv6Packet::upper_layer`] and [`quoted_upper_layer`] over `b` (fixed header
/// included, ending where the packet or quote ends), whose fixed header names `next`.
fn walk(b: &[u8], mut next: u8, mode: Walk) -> Result<UpperLayer, Error> {
    let mut at = HEADER_LEN;
    let mut fragment = None;
    for count in 0..=MAX_EXT_HEADERS {
        let Some(kind) = ext_kind(next)? else {
            return Ok(UpperLayer {
                protocol: next,
                offset: at,
                fragment,
            });
        };
        if kind == Ext::HopByHop && count != 0 {
            return Err(Error::Ipv6HopByHopNotFirst);
        }
        if count == MAX_EXT_HEADERS {
            return Err(Error::Ipv6TooManyExtHeaders);
        }
        let len = ext_len(b, at, kind)?;
        match kind {
            Ext::Routing if b[at + 3] != 0 => return Err(Error::Ipv6RoutingSegmentsLeft),
            Ext::Fragment if fragment.is_some() => return Err(Error::Ipv6RepeatedFragmentHeader),
            Ext::Fragment => {
                let f = match mode {
                    Walk::Packet => Fragment::read(b, at)?,
                    Walk::Quote => Fragment::read_unchecked(b, at),
                };
                fragment = Some(f);
                if !f.is_first() {
                    return later_fragment(b[at], at + FRAGMENT_LEN, f);
                }
            }
            _ => {}
        }
        next = b[at];
        at += len;
    }
    // The loop returns by its last round (count == MAX_EXT_HEADERS) at the latest.
    Err(Error::Ipv6TooManyExtHeaders)
}

/// What [`Ipv6Packet::upper_layer`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (6 TCP, 17 UDP, 58 ICMPv6, 41 IPv6, 59 no next header, or any
    /// other non-extension value). For a later fragment: its fragment header's next header,
    /// which may also be a destination options header of the fragmentable part.
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header (for a later
    /// fragment: of the fragment's data). `40 <= offset <= 40 + payload_len`.
    pub offset: usize,
    /// The fragment header's facts, if the packet has one.
    pub fragment: Option<Fragment>,
}

/// A fragment header's facts (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in the original packet's fragmentable part, in bytes.
    pub offset: usize,
    /// The M flag: more fragments follow.
    pub more_fragments: bool,
    /// Identification shared by the fragments of one packet.
    pub identification: u32,
    /// Length of the fragment's data (what follows the fragment header).
    pub data_len: usize,
}

impl Fragment {
    /// Whether this fragment starts the packet (offset 0): it holds the upper-layer header.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// An atomic fragment (offset 0, no more fragments, RFC 6946): a whole packet with a
    /// fragment header.
    #[inline]
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_fragments
    }

    /// Reads the fragment header at `b[at..at + 8]` (the caller proved it fits; `b` ends at the
    /// packet's end) and checks its length rules: [`Error::Ipv6FragmentLenNotMultipleOf8`],
    /// [`Error::Ipv6FragmentPastMaxLen`].
    fn read(b: &[u8], at: usize) -> Result<Fragment, Error> {
        let f = Fragment::read_unchecked(b, at);
        if f.more_fragments && !f.data_len.is_multiple_of(8) {
            return Err(Error::Ipv6FragmentLenNotMultipleOf8);
        }
        // The reassembled payload: the extension headers before this one (the fragment header
        // itself is not kept), then offset + data (RFC 8200 §4.5, PL.orig).
        if (at - HEADER_LEN) + f.offset + f.data_len > MAX_PAYLOAD {
            return Err(Error::Ipv6FragmentPastMaxLen);
        }
        Ok(f)
    }

    /// The fragment header at `b[at..at + 8]` (the caller proved it fits) without its length
    /// rules: `data_len` is what `b` holds after it.
    fn read_unchecked(b: &[u8], at: usize) -> Fragment {
        let word = read_u16(b, at + 2);
        Fragment {
            offset: usize::from(word & 0xfff8),
            more_fragments: word & 1 != 0,
            identification: read_u32(b, at + 4),
            data_len: b.len() - (at + FRAGMENT_LEN),
        }
    }
}

/// The extension headers the walk skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    Fragment,
}

/// What next header `next` is to the walk: an extension header it skips, `None` for an upper
/// layer, or [`Error::Ipv6UnsupportedNextHeader`].
#[inline]
fn ext_kind(next: u8) -> Result<Option<Ext>, Error> {
    match next {
        HOP_BY_HOP => Ok(Some(Ext::HopByHop)),
        ROUTING => Ok(Some(Ext::Routing)),
        DEST_OPTS => Ok(Some(Ext::DestOpts)),
        FRAGMENT => Ok(Some(Ext::Fragment)),
        ESP | AH | MOBILITY | HIP | SHIM6 | EXPERIMENT_1 | EXPERIMENT_2 => {
            Err(Error::Ipv6UnsupportedNextHeader)
        }
        _ => Ok(None),
    }
}

/// The length of the extension header at `b[at..]` (`b` ends at the packet's end, `at >= 40`):
/// 8 for a fragment header, `(hdr ext len + 1) * 8` for the others, checked against
/// [`MAX_EXT_LEN`] first ([`Error::Ipv6ExtHeadersTooLong`]) and the packet's end then
/// ([`Error::Ipv6ExtHeaderTruncated`]).
#[inline]
fn ext_len(b: &[u8], at: usize, kind: Ext) -> Result<usize, Error> {
    let len = match kind {
        Ext::Fragment => FRAGMENT_LEN,
        _ => {
            let units = b.get(at + 1).ok_or(Error::Ipv6ExtHeaderTruncated)?;
            (usize::from(*units) + 1) * 8
        }
    };
    if at - HEADER_LEN + len > MAX_EXT_LEN {
        return Err(Error::Ipv6ExtHeadersTooLong);
    }
    if at + len > b.len() {
        return Err(Error::Ipv6ExtHeaderTruncated);
    }
    Ok(len)
}

/// The result for a later fragment whose fragment header names `next` and whose data starts at
/// `data`: `next` must not be hop-by-hop or a header the walk refuses.
fn later_fragment(next: u8, data: usize, f: Fragment) -> Result<UpperLayer, Error> {
    if ext_kind(next)? == Some(Ext::HopByHop) {
        return Err(Error::Ipv6HopByHopNotFirst);
    }
    Ok(UpperLayer {
        protocol: next,
        offset: data,
        fragment: Some(f),
    })
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source address (no header checksum to update; transport checksums are the
    /// caller's, see [`checksum::update_ipv6_addr`](super::checksum::update_ipv6_addr)).
    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.b_mut()[8..24].copy_from_slice(&a.octets());
    }

    /// Sets the destination address (as [`set_src`](Self::set_src)).
    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.b_mut()[24..40].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.b_mut()[7] = h;
    }

    /// The payload (extension headers and upper layer), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.b_mut()[HEADER_LEN..end]
    }
}

/// A fixed IPv6 header as values: what xvs reads from a header and writes for one it builds (a
/// TUN6 outer header, an ICMPv6 error). Extension headers, if any, are part of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The fixed header's next header.
    pub next_header: u8,
    /// Length of what follows the fixed header.
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// The flow label: 20 bits.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header of a checked packet. Nothing is left to verify (no checksum).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// The bytes `emit` needs in its buffer: the 40-byte header and the payload after it.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the 40-byte header into `buf[..40]`. `buf` must have room for the payload too
    /// (written before or after): [`Error::TruncatedIpv6`] when it cannot hold the header,
    /// [`Error::Ipv6PayloadLenPastEnd`] when it cannot hold the payload or the payload exceeds
    /// 65535, [`Error::Ipv6FlowLabelTooBig`] for a flow label beyond 20 bits; nothing is
    /// written then. On success `Ipv6Packet::new_checked(buf)` accepts the result.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::TruncatedIpv6);
        }
        let payload_len = u16::try_from(self.payload_len)
            .ok()
            .filter(|_| self.buffer_len() <= buf.len())
            .ok_or(Error::Ipv6PayloadLenPastEnd)?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Ipv6FlowLabelTooBig);
        }
        let h = &mut buf[..HEADER_LEN];
        let first = (6 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label;
        write_u32(h, 0, first);
        write_u16(h, 4, payload_len);
        h[6] = self.next_header;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src.octets());
        h[24..40].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

#[cfg(test)]
#[path = "ipv6_tests.rs"]
mod tests;
