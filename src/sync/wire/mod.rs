//! The sync message on the wire: a checked view ([`SyncMessage`]) over a received datagram, the
//! header as values ([`HeaderRepr`]), a whole message parsed ([`MessageRepr::parse`]: tag, then
//! header, then records) and built into a caller's buffer ([`MessageBuilder`], [`emit`]).
//!
//! ```text
//!  0  version (1)             the first byte, so that the format can evolve
//!  1  type                    1 records, 2 full-dump request, 3 full-dump end
//!  2  record count (u16)      0 for types 2 and 3
//!  4  length (u16)            of the whole message, tag included = the UDP payload
//!  6  sender id (u32)         whose replay window the message belongs to
//! 10  epoch (u64)             the sender's start (wall-clock ns): a restarted sender is newer
//! 18  sequence (u64)          per sender and epoch, +1 per message
//! 26  records                 `count` records of 24 to 81 bytes each (see [`record`])
//!  …  tag (32)                HMAC-SHA256 over every byte before it
//! ```
//!
//! Integers are big-endian. A message is at most [`MAX_MESSAGE_LEN`] bytes, the UDP payload of
//! a 1500-byte IP packet over IPv6 (1500 − 40 − 8), so it never fragments over either family:
//! [`CONN_V4_PER_MESSAGE`] IPv4 connection records or [`CONN_V6_PER_MESSAGE`] IPv6 ones.
//!
//! Invariants: after [`SyncMessage::check_len`] the buffer is exactly the message its length
//! field announces (header and tag present, version known, at most [`MAX_MESSAGE_LEN`]), so no
//! accessor can panic. [`MessageRepr::parse`] verifies the tag before it reads any other field
//! than the version and the length, and accepts a message only when every record is valid, so
//! a receiver installs all of a message or none of it. Nothing here allocates.

pub mod record;

use crate::sync::auth::{Key, TAG_LEN};
use crate::sync::error::{EncodeError, SyncError};
use crate::sync::record::SyncRecord;

/// The version xvs writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 26;
/// The longest message: the UDP payload of a 1500-byte IPv6 packet.
pub const MAX_MESSAGE_LEN: usize = 1500 - 40 - 8;
/// The most record bytes one message carries.
pub const MAX_BODY_LEN: usize = MAX_MESSAGE_LEN - HEADER_LEN - TAG_LEN;
/// The most records one message can carry (IPv4 templates, the shortest records).
pub const MAX_RECORDS: usize = MAX_BODY_LEN / record::MIN_RECORD_LEN;
/// IPv4 connection records per full message (42).
pub const CONN_V4_PER_MESSAGE: usize = MAX_BODY_LEN / record::CONN_V4_LEN;
/// IPv6 connection records per full message (17).
pub const CONN_V6_PER_MESSAGE: usize = MAX_BODY_LEN / record::CONN_V6_LEN;

/// Offsets of the header fields.
mod field {
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const COUNT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const SENDER: usize = 6;
    pub const EPOCH: usize = 10;
    pub const SEQ: usize = 18;
}

/// What a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Connection and template records (live changes, or a page of a full dump).
    Records = 1,
    /// "Send me everything you own": a box that joins asks its peers for a full dump.
    DumpRequest = 2,
    /// The sender's full dump is complete (every page before it was sent).
    DumpEnd = 3,
}

impl MessageType {
    /// The type of byte `b`, if it is one.
    pub const fn from_u8(b: u8) -> Option<MessageType> {
        match b {
            1 => Some(MessageType::Records),
            2 => Some(MessageType::DumpRequest),
            3 => Some(MessageType::DumpEnd),
            _ => None,
        }
    }

    /// Whether messages of this type carry records.
    pub const fn carries_records(self) -> bool {
        matches!(self, MessageType::Records)
    }
}

/// A view over a received sync message.
#[derive(Debug)]
pub struct SyncMessage<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SyncMessage<T> {
    /// Wraps `buffer` without checking it: accessors may panic until
    /// [`check_len`](Self::check_len) passed.
    pub fn new_unchecked(buffer: T) -> Self {
        SyncMessage { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked) followed by [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, SyncError> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Checks, in this order: [`SyncError::Truncated`] (empty), [`SyncError::BadVersion`]
    /// (read first: another version may lay out the rest differently),
    /// [`SyncError::Truncated`] (shorter than a header and a tag), [`SyncError::BadLength`]
    /// (the length field is not the buffer's length, or the buffer is longer than
    /// [`MAX_MESSAGE_LEN`]).
    pub fn check_len(&self) -> Result<(), SyncError> {
        let b = self.buffer.as_ref();
        match b.first() {
            None => return Err(SyncError::Truncated),
            Some(&v) if v != VERSION => return Err(SyncError::BadVersion),
            Some(_) => {}
        }
        if b.len() < HEADER_LEN + TAG_LEN {
            return Err(SyncError::Truncated);
        }
        let length = usize::from(u16::from_be_bytes([b[field::LENGTH], b[field::LENGTH + 1]]));
        if length != b.len() || length > MAX_MESSAGE_LEN {
            return Err(SyncError::BadLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn be<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b()[at..at + N]);
        a
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VERSION]
    }

    /// The type byte (not yet known to be a [`MessageType`]).
    pub fn type_byte(&self) -> u8 {
        self.b()[field::TYPE]
    }

    pub fn count(&self) -> u16 {
        u16::from_be_bytes(self.be(field::COUNT))
    }

    /// The length field (the buffer's length, once checked).
    pub fn length(&self) -> usize {
        usize::from(u16::from_be_bytes(self.be(field::LENGTH)))
    }

    pub fn sender(&self) -> u32 {
        u32::from_be_bytes(self.be(field::SENDER))
    }

    pub fn epoch(&self) -> u64 {
        u64::from_be_bytes(self.be(field::EPOCH))
    }

    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(self.be(field::SEQ))
    }

    /// Every byte the tag covers (header and records).
    pub fn signed(&self) -> &[u8] {
        &self.b()[..self.b().len() - TAG_LEN]
    }

    /// The record bytes.
    pub fn body(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.b().len() - TAG_LEN]
    }

    pub fn tag(&self) -> &[u8] {
        &self.b()[self.b().len() - TAG_LEN..]
    }

    /// Whether the tag verifies under `key` (constant-time comparison).
    pub fn verify(&self, key: &Key) -> bool {
        key.verify(self.signed(), self.tag())
    }
}

/// The header as values (the count and the length follow from the records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRepr {
    pub msg_type: MessageType,
    pub sender: u32,
    pub epoch: u64,
    pub seq: u64,
}

/// A received message, authenticated and valid throughout.
#[derive(Clone, Debug)]
pub struct MessageRepr<'a> {
    pub header: HeaderRepr,
    /// The records, in order (valid: every one was parsed before the message was accepted).
    pub records: Records<'a>,
}

impl<'a> MessageRepr<'a> {
    /// Reads a checked message: [`SyncError::BadTag`] unless the tag verifies under `key` (no
    /// other field is looked at before), then [`SyncError::BadType`], then the count and every
    /// record ([`SyncError::BadCount`], [`SyncError::BadKind`], [`SyncError::BadFamily`],
    /// [`SyncError::BadRecord`]). Replay is the caller's ([`crate::sync::replay`]), after this.
    pub fn parse(msg: &SyncMessage<&'a [u8]>, key: &Key) -> Result<MessageRepr<'a>, SyncError> {
        if !msg.verify(key) {
            return Err(SyncError::BadTag);
        }
        let msg_type = MessageType::from_u8(msg.type_byte()).ok_or(SyncError::BadType)?;
        let count = usize::from(msg.count());
        if count > MAX_RECORDS || (!msg_type.carries_records() && count != 0) {
            return Err(SyncError::BadCount);
        }
        let b: &'a [u8] = msg.buffer;
        let body = &b[HEADER_LEN..b.len() - TAG_LEN];
        let mut at = 0;
        for _ in 0..count {
            let (_, len) = record::parse(&body[at..])?;
            at += len;
        }
        if at != body.len() {
            return Err(SyncError::BadCount);
        }
        Ok(MessageRepr {
            header: HeaderRepr {
                msg_type,
                sender: msg.sender(),
                epoch: msg.epoch(),
                seq: msg.seq(),
            },
            records: Records { body, left: count },
        })
    }
}

/// The records of a parsed message.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    body: &'a [u8],
    left: usize,
}

impl Iterator for Records<'_> {
    type Item = SyncRecord;

    fn next(&mut self) -> Option<SyncRecord> {
        if self.left == 0 {
            return None;
        }
        // Parsed once already by `MessageRepr::parse`: cannot fail here.
        let (r, len) = record::parse(self.body).ok()?;
        self.body = &self.body[len..];
        self.left -= 1;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// Builds one message into a caller's buffer, record by record, then seals it (header and tag).
///
/// Invariant: `buf[HEADER_LEN..end]` holds `count` valid records and `end + TAG_LEN <= cap`,
/// where `cap` is the buffer's length bounded by [`MAX_MESSAGE_LEN`].
#[derive(Debug)]
pub struct MessageBuilder<'a> {
    buf: &'a mut [u8],
    end: usize,
    count: u16,
    cap: usize,
}

impl<'a> MessageBuilder<'a> {
    /// An empty message in `buf`: [`EncodeError::BufferTooSmall`] when it cannot hold a header
    /// and a tag. Records are added while they fit in `buf` and in [`MAX_MESSAGE_LEN`].
    pub fn new(buf: &'a mut [u8]) -> Result<MessageBuilder<'a>, EncodeError> {
        let need = HEADER_LEN + TAG_LEN;
        if buf.len() < need {
            return Err(EncodeError::BufferTooSmall {
                have: buf.len(),
                need,
            });
        }
        let cap = buf.len().min(MAX_MESSAGE_LEN);
        Ok(MessageBuilder {
            buf,
            end: HEADER_LEN,
            count: 0,
            cap,
        })
    }

    /// Adds `r`: [`EncodeError::Full`] when it does not fit (the message is unchanged),
    /// [`EncodeError::MixedFamily`] or [`EncodeError::OutOfRange`] when the wire cannot carry it.
    pub fn push(&mut self, r: &SyncRecord) -> Result<(), EncodeError> {
        let room = self.cap - TAG_LEN;
        let len = record::emit(r, &mut self.buf[self.end..room])?;
        self.end += len;
        self.count += 1;
        Ok(())
    }

    /// Records added so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Writes the header and the tag; returns the message's length (the bytes to send are
    /// `buf[..len]`). [`EncodeError::RecordsNotAllowed`] for records in a message of a type that
    /// carries none.
    pub fn finish(self, header: &HeaderRepr, key: &Key) -> Result<usize, EncodeError> {
        if self.count != 0 && !header.msg_type.carries_records() {
            return Err(EncodeError::RecordsNotAllowed(header.msg_type));
        }
        let len = self.end + TAG_LEN;
        // `len <= cap <= MAX_MESSAGE_LEN`, which fits the 16-bit field.
        let len16 = u16::try_from(len).map_err(|_| EncodeError::Full)?;
        let h = &mut self.buf[..HEADER_LEN];
        h[field::VERSION] = VERSION;
        h[field::TYPE] = header.msg_type as u8;
        h[field::COUNT..field::COUNT + 2].copy_from_slice(&self.count.to_be_bytes());
        h[field::LENGTH..field::LENGTH + 2].copy_from_slice(&len16.to_be_bytes());
        h[field::SENDER..field::SENDER + 4].copy_from_slice(&header.sender.to_be_bytes());
        h[field::EPOCH..field::EPOCH + 8].copy_from_slice(&header.epoch.to_be_bytes());
        h[field::SEQ..field::SEQ + 8].copy_from_slice(&header.seq.to_be_bytes());
        let tag = key.sign(&self.buf[..self.end]);
        self.buf[self.end..len].copy_from_slice(&tag);
        Ok(len)
    }
}

/// Writes a whole message of `records` into `buf`; returns its length. All or nothing:
/// [`EncodeError::Full`] when they do not all fit in one message.
pub fn emit(
    header: &HeaderRepr,
    records: &[SyncRecord],
    key: &Key,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut m = MessageBuilder::new(buf)?;
    for r in records {
        m.push(r)?;
    }
    m.finish(header, key)
}

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;
