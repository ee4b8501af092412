//! The connection table (work in progress in this commit).

use crate::flow::Nanos;

/// Idle timeouts per protocol state, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: Nanos,
    pub tcp_syn: Nanos,
    pub tcp_fin: Nanos,
    pub tcp_close: Nanos,
    pub udp: Nanos,
    pub icmp: Nanos,
}
