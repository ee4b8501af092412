//! Connection states and their transitions, after IPVS's TCP state table (`ip_vs_proto_tcp.c`),
//! reduced to the states that decide timeouts:
//!
//! | state | entered on | timeout |
//! |---|---|---|
//! | `SynRecv` | the client's initial SYN (new entry) | `tcp_syn` |
//! | `Established` | an ACK from the client while in `SynRecv` (the handshake's last step), or any segment when picked up mid-stream (`sloppy_tcp`) | `tcp_established` |
//! | `FinWait` | a FIN from either side | `tcp_fin` |
//! | `Close` | an RST from either side | `tcp_close` |
//! | `Udp` | any UDP datagram | `udp` |
//!
//! A new initial SYN from the client on an entry in `FinWait` or `Close` starts a new connection
//! (the caller reschedules it), as IPVS does with `conn_reuse_mode`.

use crate::conntrack::Timeouts;
use crate::datapath::wire::TcpFlags;
use crate::flow::Nanos;

/// Which way a packet travels relative to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → virtual service (IPVS "input").
    Original,
    /// Real server → client (IPVS "output").
    Reply,
}

/// The state of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    SynRecv,
    Established,
    FinWait,
    Close,
    Udp,
}

impl ConnState {
    /// ipvsadm's name for the state (`ipvsadm -L -c`).
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::SynRecv => "SYN_RECV",
            ConnState::Established => "ESTABLISHED",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::Udp => "UDP",
        }
    }

    /// Whether IPVS counts the connection as active (ESTABLISHED) rather than inactive.
    pub const fn is_active(self) -> bool {
        matches!(self, ConnState::Established)
    }

    /// The idle timeout of this state.
    pub fn timeout(self, t: &Timeouts) -> Nanos {
        match self {
            ConnState::SynRecv => t.tcp_syn,
            ConnState::Established => t.tcp_established,
            ConnState::FinWait => t.tcp_fin,
            ConnState::Close => t.tcp_close,
            ConnState::Udp => t.udp,
        }
    }

    /// The state after a TCP segment with `flags` travelling in `dir`.
    pub fn on_tcp(self, dir: Direction, flags: TcpFlags) -> ConnState {
        if flags.rst() {
            return ConnState::Close;
        }
        match self {
            ConnState::SynRecv if flags.fin() => ConnState::FinWait,
            ConnState::SynRecv if dir == Direction::Original && flags.ack() && !flags.syn() => {
                ConnState::Established
            }
            ConnState::Established if flags.fin() => ConnState::FinWait,
            s => s,
        }
    }

    /// Whether an initial SYN from the client on an entry in this state opens a new connection.
    pub const fn reusable_by_syn(self) -> bool {
        matches!(self, ConnState::FinWait | ConnState::Close)
    }
}

#[cfg(test)]
mod tests {
    use super::ConnState::*;
    use super::Direction::*;
    use super::*;

    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const SYNACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);
    const FINACK: TcpFlags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
    const RST: TcpFlags = TcpFlags(TcpFlags::RST);

    #[test]
    fn handshake_data_close() {
        let mut s = SynRecv;
        for (dir, f, want) in [
            (Reply, SYNACK, SynRecv),
            (Original, ACK, Established),
            (Reply, ACK, Established),
            (Original, FINACK, FinWait),
            (Reply, FINACK, FinWait),
            (Original, ACK, FinWait),
        ] {
            s = s.on_tcp(dir, f);
            assert_eq!(s, want, "{dir:?} {f:?}");
        }
    }

    #[test]
    fn rst_closes_from_any_state() {
        for s in [SynRecv, Established, FinWait] {
            assert_eq!(s.on_tcp(Reply, RST), Close);
            assert_eq!(s.on_tcp(Original, RST), Close);
        }
    }

    #[test]
    fn reply_ack_does_not_establish() {
        assert_eq!(SynRecv.on_tcp(Reply, ACK), SynRecv);
        assert_eq!(SynRecv.on_tcp(Original, SYN), SynRecv);
    }

    #[test]
    fn timeouts_follow_state() {
        let t = Timeouts {
            tcp_established: 1,
            tcp_syn: 2,
            tcp_fin: 3,
            tcp_close: 4,
            udp: 5,
            icmp: 6,
        };
        let got: Vec<_> = [Established, SynRecv, FinWait, Close, Udp]
            .iter()
            .map(|s| s.timeout(&t))
            .collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert!(Established.is_active() && !SynRecv.is_active());
    }
}
