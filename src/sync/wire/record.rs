//! One record on the wire: a [`SyncRecord`] in a fixed number of bytes per kind and family.
//!
//! ```text
//! connection (33 bytes IPv4, 81 IPv6)          template (24 bytes IPv4, 60 IPv6)
//!  0  kind | family (0x14, 0x16)                0  kind | family (0x24, 0x26)
//!  1  op (1 create, 2 update, 3 delete)         1  op
//!  2  protocol (6 TCP, 17 UDP)                  2  protocol
//!  3  state (ConnState's byte)                  3  reserved, 0
//!  4  timeout_ms (u32)                          4  timeout_ms (u32)
//!  8  flags (bit 0: local endpoint present)     8  VIP address, service port
//!  9  client address, port                      .  client network address
//!  .  VIP address, port                         .  real server address, port
//!  .  real server address, port
//!  .  local address, port (zeros without the flag)
//! ```
//!
//! Integers are big-endian; an address is 4 or 16 bytes (the record's family), a port 2.
//! Invariants: [`emit`] writes exactly [`len_of`] bytes and [`parse`] accepts what [`emit`]
//! wrote, giving back the same record; [`parse`] reads only inside the length it proved and
//! refuses every byte no record could have written (reserved bytes and absent local endpoints
//! must be zero), so one record has one encoding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conntrack::ConnState;
use crate::flow::{Endpoint, Proto};
use crate::sched::persist::TemplateKey;
use crate::sync::error::{EncodeError, SyncError};
use crate::sync::record::{ConnRecord, SyncOp, SyncRecord, TemplateRecord};

/// Kind nibble of a connection record.
pub const KIND_CONN: u8 = 0x10;
/// Kind nibble of a persistence template record.
pub const KIND_TEMPLATE: u8 = 0x20;
/// Family nibble of an IPv4 record.
pub const FAMILY_V4: u8 = 0x04;
/// Family nibble of an IPv6 record.
pub const FAMILY_V6: u8 = 0x06;
/// Connection flag: the local (FULLNAT) endpoint is present.
pub const FLAG_LOCAL: u8 = 0x01;

/// Length of an IPv4 connection record.
pub const CONN_V4_LEN: usize = 9 + 4 * 6;
/// Length of an IPv6 connection record.
pub const CONN_V6_LEN: usize = 9 + 4 * 18;
/// Length of an IPv4 template record.
pub const TEMPLATE_V4_LEN: usize = 8 + 6 + 4 + 6;
/// Length of an IPv6 template record.
pub const TEMPLATE_V6_LEN: usize = 8 + 18 + 16 + 18;
/// The shortest record (what bounds the record count of a message).
pub const MIN_RECORD_LEN: usize = TEMPLATE_V4_LEN;

/// The longest timeout a record carries: the connection table's longest, 2^31 − 1 ms.
pub const MAX_TIMEOUT_MS: u32 = 0x7fff_ffff;

/// The length of the record that starts with `first` (its kind and family byte).
pub fn len_of(first: u8) -> Result<usize, SyncError> {
    let conn = match first & 0xf0 {
        KIND_CONN => true,
        KIND_TEMPLATE => false,
        _ => return Err(SyncError::BadKind),
    };
    let v6 = match first & 0x0f {
        FAMILY_V4 => false,
        FAMILY_V6 => true,
        _ => return Err(SyncError::BadFamily),
    };
    Ok(match (conn, v6) {
        (true, false) => CONN_V4_LEN,
        (true, true) => CONN_V6_LEN,
        (false, false) => TEMPLATE_V4_LEN,
        (false, true) => TEMPLATE_V6_LEN,
    })
}

/// The first byte and length `r` takes on the wire; [`EncodeError::MixedFamily`] when its
/// addresses are not all of one family.
pub fn shape(r: &SyncRecord) -> Result<(u8, usize), EncodeError> {
    let (kind, v6, ips): (u8, bool, [Option<IpAddr>; 4]) = match r {
        SyncRecord::Conn(c) => (
            KIND_CONN,
            c.vip.ip.is_ipv6(),
            [
                Some(c.client.ip),
                Some(c.real.ip),
                c.local.map(|l| l.ip),
                None,
            ],
        ),
        SyncRecord::Template(t) => (
            KIND_TEMPLATE,
            t.key.vip.is_ipv6(),
            [Some(t.key.client_net), Some(t.real.ip), None, None],
        ),
    };
    if ips.iter().flatten().any(|ip| ip.is_ipv6() != v6) {
        return Err(EncodeError::MixedFamily);
    }
    let first = kind | if v6 { FAMILY_V6 } else { FAMILY_V4 };
    let len = len_of(first).map_err(|_| EncodeError::MixedFamily)?;
    Ok((first, len))
}

/// Writes `r` at the start of `buf`; returns its length. [`EncodeError::Full`] when `buf` is
/// shorter than the record (nothing written then).
pub fn emit(r: &SyncRecord, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let (first, len) = shape(r)?;
    let Some(out) = buf.get_mut(..len) else {
        return Err(EncodeError::Full);
    };
    let (op, proto, state, timeout_ms) = match r {
        SyncRecord::Conn(c) => (c.op, c.proto, c.state as u8, c.timeout_ms),
        SyncRecord::Template(t) => (t.op, t.key.proto, 0, t.timeout_ms),
    };
    if timeout_ms > MAX_TIMEOUT_MS {
        return Err(EncodeError::OutOfRange);
    }
    out.fill(0);
    let mut w = Cursor { b: out, at: 0 };
    w.put(&[first, op as u8, proto.number(), state]);
    w.put(&timeout_ms.to_be_bytes());
    match r {
        SyncRecord::Conn(c) => {
            w.put(&[if c.local.is_some() { FLAG_LOCAL } else { 0 }]);
            for ep in [c.client, c.vip, c.real] {
                w.endpoint(ep);
            }
            if let Some(local) = c.local {
                w.endpoint(local);
            }
        }
        SyncRecord::Template(t) => {
            w.endpoint(Endpoint::new(t.key.vip, t.key.vport));
            w.ip(t.key.client_net);
            w.endpoint(t.real);
        }
    }
    Ok(len)
}

/// Reads the record at the start of `b`; returns it and its length. Errors:
/// [`SyncError::BadKind`], [`SyncError::BadFamily`], [`SyncError::BadCount`] when `b` is
/// shorter than the record, [`SyncError::BadRecord`] for a field out of range.
pub fn parse(b: &[u8]) -> Result<(SyncRecord, usize), SyncError> {
    let first = *b.first().ok_or(SyncError::BadCount)?;
    let len = len_of(first)?;
    let b = b.get(..len).ok_or(SyncError::BadCount)?;
    let v6 = first & 0x0f == FAMILY_V6;
    let op = op_of(b[1]).ok_or(SyncError::BadRecord)?;
    let proto = Proto::from_number(b[2]).ok_or(SyncError::BadRecord)?;
    let timeout_ms = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    if timeout_ms > MAX_TIMEOUT_MS {
        return Err(SyncError::BadRecord);
    }
    let mut r = Reader { b, at: 8, v6 };
    let record = if first & 0xf0 == KIND_CONN {
        let state = ConnState::from_u8(b[3]).ok_or(SyncError::BadRecord)?;
        if (state == ConnState::Udp) != (proto == Proto::Udp) {
            return Err(SyncError::BadRecord);
        }
        let flags = r.byte();
        if flags & !FLAG_LOCAL != 0 {
            return Err(SyncError::BadRecord);
        }
        let (client, vip, real) = (r.endpoint(), r.endpoint(), r.endpoint());
        let local = r.endpoint();
        let local = if flags & FLAG_LOCAL != 0 {
            Some(local)
        } else if b[len - r.ep_len()..].iter().any(|&x| x != 0) {
            return Err(SyncError::BadRecord);
        } else {
            None
        };
        SyncRecord::Conn(ConnRecord {
            op,
            proto,
            state,
            client,
            vip,
            real,
            local,
            timeout_ms,
        })
    } else {
        if b[3] != 0 {
            return Err(SyncError::BadRecord);
        }
        let vip = r.endpoint();
        let client_net = r.ip();
        let real = r.endpoint();
        SyncRecord::Template(TemplateRecord {
            op,
            key: TemplateKey {
                proto,
                vip: vip.ip,
                vport: vip.port,
                client_net,
            },
            real,
            timeout_ms,
        })
    };
    Ok((record, len))
}

fn op_of(b: u8) -> Option<SyncOp> {
    match b {
        1 => Some(SyncOp::Create),
        2 => Some(SyncOp::Update),
        3 => Some(SyncOp::Delete),
        _ => None,
    }
}

/// Writes fields in turn. Only [`emit`] uses it, on a slice of exactly the record's length,
/// with the fields that length was computed for: no write can run past the end.
struct Cursor<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.b[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.put(&a.octets()),
            IpAddr::V6(a) => self.put(&a.octets()),
        }
    }

    fn endpoint(&mut self, ep: Endpoint) {
        self.ip(ep.ip);
        self.put(&ep.port.to_be_bytes());
    }
}

/// Reads fields in turn. Only [`parse`] uses it, on a slice it proved to be the record's
/// length for its kind and family: no read can run past the end.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    v6: bool,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        self.at += 1;
        self.b[self.at - 1]
    }

    fn ip(&mut self) -> IpAddr {
        if self.v6 {
            let mut a = [0u8; 16];
            a.copy_from_slice(&self.b[self.at..self.at + 16]);
            self.at += 16;
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let a = [
                self.b[self.at],
                self.b[self.at + 1],
                self.b[self.at + 2],
                self.b[self.at + 3],
            ];
            self.at += 4;
            IpAddr::V4(Ipv4Addr::from(a))
        }
    }

    fn endpoint(&mut self) -> Endpoint {
        let ip = self.ip();
        let port = u16::from_be_bytes([self.b[self.at], self.b[self.at + 1]]);
        self.at += 2;
        Endpoint::new(ip, port)
    }

    fn ep_len(&self) -> usize {
        if self.v6 {
            18
        } else {
            6
        }
    }
}
