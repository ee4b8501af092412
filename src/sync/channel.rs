//! The two ends of the sync channel, sans-IO: a [`Sealer`] numbers and signs what this box
//! sends, an [`Opener`] checks what it receives. The sync thread moves the bytes (sockets,
//! timers); these decide.
//!
//! Invariants: every message a `Sealer` produces carries its sender id and epoch and the next
//! sequence number (numbers are used only by messages actually produced, so the receiver sees
//! no gap a failed encode made); an `Opener` checks, in order, the length and version, the tag
//! ([`SyncError::BadTag`] before any other field is trusted), type, count and records, and only
//! then the replay window, so neither a forged nor a malformed message moves a window.

use super::auth::Key;
use super::error::{EncodeError, SyncError};
use super::record::SyncRecord;
use super::replay::ReplayTable;
use super::wire::{HeaderRepr, MessageBuilder, MessageRepr, MessageType, SyncMessage};

/// The sending end: this box's id, its epoch, the next sequence number and the key.
#[derive(Clone, Debug)]
pub struct Sealer {
    key: Key,
    sender: u32,
    epoch: u64,
    next_seq: u64,
}

impl Sealer {
    /// The sender `sender` in `epoch` (chosen at start, e.g. wall-clock nanoseconds: it must be
    /// above the epoch of every earlier run, or peers refuse the messages as
    /// [`SyncError::StaleEpoch`]). Sequence numbers start at 1.
    pub fn new(key: Key, sender: u32, epoch: u64) -> Sealer {
        Sealer {
            key,
            sender,
            epoch,
            next_seq: 1,
        }
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Seals the message built in `m` as `msg_type`: header, tag, the next sequence number.
    /// Returns its length.
    pub fn seal(
        &mut self,
        m: MessageBuilder<'_>,
        msg_type: MessageType,
    ) -> Result<usize, EncodeError> {
        let header = HeaderRepr {
            msg_type,
            sender: self.sender,
            epoch: self.epoch,
            seq: self.next_seq,
        };
        let len = m.finish(&header, &self.key)?;
        self.next_seq += 1;
        Ok(len)
    }

    /// One message of `records` (all of them, or [`EncodeError::Full`]) into `buf`.
    pub fn records(
        &mut self,
        records: &[SyncRecord],
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let mut m = MessageBuilder::new(buf)?;
        for r in records {
            m.push(r)?;
        }
        self.seal(m, MessageType::Records)
    }

    /// A message without records (a dump request or a dump end) into `buf`.
    pub fn control(&mut self, msg_type: MessageType, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let m = MessageBuilder::new(buf)?;
        self.seal(m, msg_type)
    }
}

/// The receiving end: the key and every sender's replay window.
#[derive(Clone, Debug)]
pub struct Opener {
    key: Key,
    replay: ReplayTable,
}

impl Opener {
    /// A receiver that keeps replay windows for at most `max_peers` senders.
    pub fn new(key: Key, max_peers: usize) -> Opener {
        Opener {
            key,
            replay: ReplayTable::new(max_peers),
        }
    }

    /// Checks a received datagram; `Ok` is a message to act on (its records all valid, seen
    /// for the first time). `Err` is the reason to count it under.
    pub fn open<'a>(&mut self, datagram: &'a [u8]) -> Result<MessageRepr<'a>, SyncError> {
        let view = SyncMessage::new_checked(datagram)?;
        let msg = MessageRepr::parse(&view, &self.key)?;
        let h = msg.header;
        self.replay.accept(h.sender, h.epoch, h.seq)?;
        Ok(msg)
    }

    /// [`open`](Self::open) for a receiver whose own sender id is `own`: an authenticated
    /// message carrying `own` is refused as [`SyncError::OwnSender`] before it touches a
    /// window (another box uses this box's id; its messages would share one window with ours).
    pub fn open_from<'a>(
        &mut self,
        datagram: &'a [u8],
        own: u32,
    ) -> Result<MessageRepr<'a>, SyncError> {
        let view = SyncMessage::new_checked(datagram)?;
        let msg = MessageRepr::parse(&view, &self.key)?;
        let h = msg.header;
        if h.sender == own {
            return Err(SyncError::OwnSender);
        }
        self.replay.accept(h.sender, h.epoch, h.seq)?;
        Ok(msg)
    }

    /// The replay windows (what `xvs ctl sync` shows of each peer).
    pub fn replay(&self) -> &ReplayTable {
        &self.replay
    }
}
