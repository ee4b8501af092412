//! Replay protection: per sender, its epoch and a sliding window over its sequence numbers.
//!
//! A sender picks its epoch when it starts (wall-clock nanoseconds, so a restarted sender is
//! newer) and numbers its messages 1, 2, 3… within it. The receiver keeps, per sender id, the
//! newest epoch seen, the highest sequence number accepted in it and which of the
//! [`WINDOW`] numbers up to that one it accepted (RFC 4303 §3.4.3's window, as IPsec does):
//! - a newer epoch resets the window (the sender restarted);
//! - an older epoch is refused ([`SyncError::StaleEpoch`]);
//! - a number above the highest slides the window; one inside it is accepted once;
//!   a duplicate, or a number [`WINDOW`] or more below the highest, is refused
//!   ([`SyncError::Replayed`]).
//!
//! Invariant: a window is only ever touched for an authenticated message (the receiver
//! verifies the tag first, [`crate::sync::channel::Opener`]), so a forger cannot move it.
//! The table is bounded ([`ReplayTable::new`]'s `max_peers`): memory does not grow with the
//! number of sender ids seen.

use std::collections::HashMap;

use super::error::SyncError;

/// Sequence numbers a window covers.
pub const WINDOW: u64 = 1024;
/// The most peers a box syncs with: the bound on `sync.peers` and on the senders a receiver
/// keeps a window for (multicast peers are not listed, so the receiver bounds them).
pub const MAX_PEERS: usize = 32;
const WORDS: usize = 16;
const _: () = assert!(WORDS as u64 * 64 == WINDOW);

/// One sender's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    epoch: u64,
    /// The highest sequence number accepted in `epoch`.
    top: u64,
    /// Bit `s % WINDOW` is set when `s` (in `top - WINDOW + 1 ..= top`) was accepted.
    seen: [u64; WORDS],
}

impl Window {
    /// The window after a first message (`epoch`, `seq`).
    pub fn new(epoch: u64, seq: u64) -> Window {
        let mut w = Window {
            epoch,
            top: seq,
            seen: [0; WORDS],
        };
        w.mark(seq);
        w
    }

    /// Accepts (`epoch`, `seq`) once, or says why not.
    pub fn accept(&mut self, epoch: u64, seq: u64) -> Result<(), SyncError> {
        if epoch < self.epoch {
            return Err(SyncError::StaleEpoch);
        }
        if epoch > self.epoch {
            *self = Window::new(epoch, seq);
            return Ok(());
        }
        if seq > self.top {
            self.slide(seq);
            self.mark(seq);
            return Ok(());
        }
        if self.top - seq >= WINDOW || self.is_marked(seq) {
            return Err(SyncError::Replayed);
        }
        self.mark(seq);
        Ok(())
    }

    /// The sender's epoch and the highest sequence number accepted in it.
    pub fn position(&self) -> (u64, u64) {
        (self.epoch, self.top)
    }

    /// Moves the top to `seq` (above it), forgetting the numbers that leave the window.
    fn slide(&mut self, seq: u64) {
        let gap = seq - self.top;
        if gap >= WINDOW {
            self.seen = [0; WORDS];
        } else {
            for s in self.top + 1..=seq {
                self.clear(s);
            }
        }
        self.top = seq;
    }

    #[allow(clippy::cast_possible_truncation)] // below WORDS (16)
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn mark(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        self.seen[w] |= m;
    }

    fn clear(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        self.seen[w] &= !m;
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (w, m) = Self::bit(seq);
        self.seen[w] & m != 0
    }
}

/// The windows of every sender, by sender id, at most `max_peers` of them.
#[derive(Clone, Debug)]
pub struct ReplayTable {
    peers: HashMap<u32, Window>,
    max_peers: usize,
}

impl ReplayTable {
    /// An empty table that keeps windows for at most `max_peers` senders.
    pub fn new(max_peers: usize) -> ReplayTable {
        ReplayTable {
            peers: HashMap::with_capacity(max_peers),
            max_peers,
        }
    }

    /// Accepts message (`epoch`, `seq`) of `sender` once, or says why not
    /// ([`SyncError::TooManyPeers`] for a new sender beyond the bound).
    pub fn accept(&mut self, sender: u32, epoch: u64, seq: u64) -> Result<(), SyncError> {
        if let Some(w) = self.peers.get_mut(&sender) {
            return w.accept(epoch, seq);
        }
        if self.peers.len() >= self.max_peers {
            return Err(SyncError::TooManyPeers);
        }
        self.peers.insert(sender, Window::new(epoch, seq));
        Ok(())
    }

    /// The window of `sender`, if one was opened.
    pub fn window(&self, sender: u32) -> Option<&Window> {
        self.peers.get(&sender)
    }

    /// Senders with a window.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_out_of_order_and_duplicates() {
        let mut w = Window::new(7, 1);
        assert_eq!(
            w.accept(7, 1),
            Err(SyncError::Replayed),
            "duplicate of the first"
        );
        assert_eq!(w.accept(7, 3), Ok(()));
        assert_eq!(w.accept(7, 2), Ok(()), "late but inside the window");
        assert_eq!(w.accept(7, 2), Err(SyncError::Replayed));
        assert_eq!(w.accept(7, 3), Err(SyncError::Replayed));
        assert_eq!(w.accept(7, 4), Ok(()));
        assert_eq!(w.position(), (7, 4));
    }

    #[test]
    fn the_window_edge() {
        let mut w = Window::new(1, 5000);
        // 5000 - 1023 is the oldest number still inside; 5000 - 1024 is out.
        assert_eq!(w.accept(1, 5000 - 1023), Ok(()));
        assert_eq!(
            w.accept(1, 5000 - 1024),
            Err(SyncError::Replayed),
            "too old"
        );
        assert_eq!(w.accept(1, 0), Err(SyncError::Replayed), "far too old");
        // Sliding by less than the window keeps what is still inside, forgets the rest.
        assert_eq!(w.accept(1, 5500), Ok(()));
        assert_eq!(
            w.accept(1, 5000),
            Err(SyncError::Replayed),
            "still remembered"
        );
        assert_eq!(w.accept(1, 5499), Ok(()), "never seen, inside");
        // A jump of more than the window forgets everything below.
        assert_eq!(w.accept(1, 1_000_000), Ok(()));
        assert_eq!(w.accept(1, 5500), Err(SyncError::Replayed));
        assert_eq!(w.accept(1, 1_000_000 - 1), Ok(()));
        // A bit that wraps round the ring is cleared when the window slides over it.
        let mut w = Window::new(1, 10);
        assert_eq!(w.accept(1, 10 + WINDOW), Ok(()));
        assert_eq!(w.accept(1, 11 + WINDOW), Ok(()));
        assert_eq!(w.accept(1, 12), Ok(()), "12 is inside, never seen");
    }

    #[test]
    fn epochs() {
        let mut w = Window::new(100, 50);
        assert_eq!(w.accept(99, 51), Err(SyncError::StaleEpoch), "older epoch");
        assert_eq!(w.accept(99, 1), Err(SyncError::StaleEpoch));
        assert_eq!(
            w.accept(101, 1),
            Ok(()),
            "newer epoch: the sender restarted"
        );
        assert_eq!(w.position(), (101, 1));
        assert_eq!(w.accept(101, 1), Err(SyncError::Replayed));
        assert_eq!(
            w.accept(100, 51),
            Err(SyncError::StaleEpoch),
            "the old run is gone"
        );
        assert_eq!(w.accept(101, 2), Ok(()));
    }

    #[test]
    fn the_table_keeps_one_window_per_sender_and_is_bounded() {
        let mut t = ReplayTable::new(2);
        assert!(t.is_empty());
        assert_eq!(t.accept(1, 10, 1), Ok(()));
        assert_eq!(t.accept(2, 10, 1), Ok(()), "another sender, its own window");
        assert_eq!(t.accept(1, 10, 1), Err(SyncError::Replayed));
        assert_eq!(t.accept(3, 10, 1), Err(SyncError::TooManyPeers));
        assert_eq!(t.len(), 2);
        assert_eq!(t.window(2).map(Window::position), Some((10, 1)));
        assert!(t.window(3).is_none());
    }
}
