//! [`SyncError`]: every reason a received sync message is dropped, one variant per reason of
//! `xvs_sync_errors_total{reason}`; and [`EncodeError`], what the sending side can get wrong.

macro_rules! sync_errors {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )*) => {
        /// Why a received sync message was dropped. `Copy`, and doubles as an index into a
        /// counter array; the label is the `reason` of `xvs_sync_errors_total`. Labels are
        /// stable: never renamed. The receive checks run in the order of the variants below
        /// (each message is counted once, under the first check it fails).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum SyncError {
            $( $(#[$doc])* $variant, )*
        }

        impl SyncError {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [SyncError] = &[$(SyncError::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = SyncError::ALL.len();

            /// The `reason` label of `xvs_sync_errors_total`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(SyncError::$variant => $label,)*
                }
            }

            /// Index into a counter array.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for SyncError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }

        impl std::error::Error for SyncError {}
    };
}

sync_errors! {
    /// Unicast mode: the datagram's source is none of `sync.peers` (checked by the endpoint,
    /// [`super::endpoint`], before anything is read).
    UnknownPeer => "unknown_peer",
    /// Shorter than a header and a tag (an empty datagram included).
    Truncated => "truncated",
    /// The version byte (the first) is not one xvs reads ([`super::wire::VERSION`]).
    BadVersion => "bad_version",
    /// The length field is not the datagram's length, or is beyond
    /// [`super::wire::MAX_MESSAGE_LEN`].
    BadLength => "bad_length",
    /// The HMAC-SHA256 tag does not verify: another key, a changed byte, or not a sync message.
    BadTag => "bad_tag",
    /// The message type is not one of [`super::wire::MessageType`].
    BadType => "bad_type",
    /// The record count does not match the records: above the most a message can hold,
    /// non-zero in a message type that carries none, or the records it announces do not fill
    /// the body exactly (too few bytes for them, or bytes left over).
    BadCount => "bad_count",
    /// A record of a kind xvs does not know (neither a connection nor a template).
    BadKind => "bad_kind",
    /// A record whose family is neither IPv4 nor IPv6.
    BadFamily => "bad_family",
    /// A record field out of range: operation, protocol, connection state (or one of the other
    /// protocol), flags, a reserved byte not zero, or a timeout beyond the table's longest.
    BadRecord => "bad_record",
    /// An authenticated message that carries this box's own sender id: another box uses the
    /// same id (two boxes sharing one would share a replay window), checked after the tag and
    /// before the replay window ([`super::channel::Opener::open_from`]).
    OwnSender => "own_sender",
    /// A sequence number already seen from this sender in this epoch, or older than the
    /// replay window.
    Replayed => "replayed",
    /// An epoch older than the one already seen from this sender (a captured message of an
    /// earlier run of the peer).
    StaleEpoch => "stale_epoch",
    /// A sender that would exceed the receiver's bound on peers it keeps a window for.
    TooManyPeers => "too_many_peers",
}

/// Why a message could not be encoded: a caller error or a full message, never the network's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The buffer cannot hold even an empty message.
    #[error("buffer of {have} bytes is too small, {need} needed")]
    BufferTooSmall { have: usize, need: usize },
    /// The record does not fit in what is left of the message (start another one).
    #[error("the message is full")]
    Full,
    /// A record whose addresses are not all of one family (the wire carries one per record).
    #[error("a record mixes IPv4 and IPv6 addresses")]
    MixedFamily,
    /// A record field the wire cannot carry (a timeout beyond the table's longest).
    #[error("a record field is out of range")]
    OutOfRange,
    /// Records in a message type that carries none (a dump request or a dump end).
    #[error("a {0:?} message carries no records")]
    RecordsNotAllowed(super::wire::MessageType),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indices_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in SyncError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(seen.insert(e.label()), "duplicate label {}", e.label());
            assert_eq!(e.to_string(), e.label());
        }
        assert_eq!(SyncError::COUNT, SyncError::ALL.len());
    }
}
