//! Connection states and their transitions: IPVS's TCP state table (`tcp_states` in
//! `ip_vs_proto_tcp.c`, the "normal" table without `secure_tcp`), for a director that sees both
//! directions (NAT, FULLNAT).
//!
//! A segment is classified by its most significant flag, in IPVS's order: RST, else SYN, else
//! FIN, else ACK; a segment with none of them changes nothing. The next state is
//! `TABLE[direction][flag][state]`:
//!
//! | from → | NO | ES | SS | SR | FW | TW | CL | CW | LA | SA |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | client SYN | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR |
//! | client FIN | CL | CW | SS | TW | TW | TW | CL | CW | LA | TW |
//! | client ACK | ES | ES | SS | ES | FW | TW | CL | CW | CL | ES |
//! | client RST | CL | CL | CL | SR | CL | CL | CL | CL | LA | SR |
//! | server SYN | SS | ES | SS | SR | SS | SS | SS | SS | SS | SR |
//! | server FIN | TW | FW | SS | TW | FW | TW | CL | TW | LA | TW |
//! | server ACK | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES |
//! | server RST | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL |
//!
//! (NO = none, ES = ESTABLISHED, SS = SYN_SENT, SR = SYN_RECV, FW = FIN_WAIT, TW = TIME_WAIT,
//! CL = CLOSE, CW = CLOSE_WAIT, LA = LAST_ACK, SA = SYNACK; xvs has no LISTEN entries.)
//! Note IPVS's quirk kept here: an RST from the client while in SYN_RECV leaves the state, so a
//! spoofed RST cannot close a half-open entry early.
//!
//! Timeouts (config keys; IPVS's own defaults in brackets): ESTABLISHED `tcp_established` [15m];
//! SYN_SENT, SYN_RECV, SYNACK `tcp_syn` [2m, 1m, 2m]; FIN_WAIT, TIME_WAIT, CLOSE_WAIT, LAST_ACK
//! `tcp_fin` [2m, 2m, 1m, 30s]; CLOSE `tcp_close` [10s]; UDP `udp` [5m].
//!
//! A new initial SYN from the client on an entry in FIN_WAIT, TIME_WAIT or CLOSE starts a new
//! connection (the caller reschedules it), as IPVS does with `conn_reuse_mode`.

use crate::conntrack::Timeouts;
use crate::flow::Nanos;
use crate::wire::TcpFlags;

/// Which way a packet travels relative to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → virtual service (IPVS "input").
    Original,
    /// Real server → client (IPVS "output").
    Reply,
}

/// The state of a tracked connection (one byte in the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// TCP, before the first segment decided anything (only as a table column).
    NoState,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    SynAck,
    /// Any UDP flow.
    Udp,
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, NoState as NO,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `TABLE[direction][flag]` indexed by [`ConnState::column`]; see the module documentation.
const TABLE: [[[ConnState; 10]; 4]; 2] = [
    // client → service
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR], // SYN
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, TW], // FIN
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, ES], // ACK
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, SR], // RST
    ],
    // server → client
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, SR], // SYN
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, TW], // FIN
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES], // ACK
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL], // RST
    ],
];

impl ConnState {
    /// ipvsadm's name for the state (`ipvsadm -L -c`).
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::NoState => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// Every state, in the order of their `u8` representation.
    pub const ALL: [ConnState; 11] = [NO, ES, SS, SR, FW, TW, CL, CW, LA, SA, ConnState::Udp];

    /// The state stored as `b` (`None` for a byte no state has).
    pub fn from_u8(b: u8) -> Option<ConnState> {
        Self::ALL.get(usize::from(b)).copied()
    }

    /// Whether IPVS counts the connection as active (ESTABLISHED) rather than inactive.
    pub const fn is_active(self) -> bool {
        matches!(self, ConnState::Established)
    }

    /// Whether the connection is closing (a FIN or RST was seen): FIN_WAIT, TIME_WAIT, CLOSE,
    /// CLOSE_WAIT, LAST_ACK. A change into one of these is worth telling a sync peer.
    pub const fn is_closing(self) -> bool {
        matches!(
            self,
            ConnState::FinWait
                | ConnState::TimeWait
                | ConnState::Close
                | ConnState::CloseWait
                | ConnState::LastAck
        )
    }

    /// Whether the connection is half-open (its handshake not complete): what a full table may
    /// evict to make room, never an established connection.
    pub const fn is_half_open(self) -> bool {
        matches!(
            self,
            ConnState::SynRecv | ConnState::SynSent | ConnState::SynAck
        )
    }

    /// The idle timeout of this state.
    pub fn timeout(self, t: &Timeouts) -> Nanos {
        match self {
            ConnState::Established => t.tcp_established,
            ConnState::NoState | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck => {
                t.tcp_syn
            }
            ConnState::FinWait
            | ConnState::TimeWait
            | ConnState::CloseWait
            | ConnState::LastAck => t.tcp_fin,
            ConnState::Close => t.tcp_close,
            ConnState::Udp => t.udp,
        }
    }

    /// The column of this state in [`TABLE`] (UDP has none).
    const fn column(self) -> Option<usize> {
        match self {
            ConnState::Udp => None,
            s => Some(s as usize),
        }
    }

    /// The state after a TCP segment with `flags` travelling in `dir`.
    pub fn on_tcp(self, dir: Direction, flags: TcpFlags) -> ConnState {
        let flag = if flags.rst() {
            3
        } else if flags.syn() {
            0
        } else if flags.fin() {
            1
        } else if flags.ack() {
            2
        } else {
            return self;
        };
        let Some(col) = self.column() else {
            return self;
        };
        let d = match dir {
            Direction::Original => 0,
            Direction::Reply => 1,
        };
        TABLE[d][flag][col]
    }

    /// Whether an initial SYN from the client on an entry in this state opens a new connection.
    pub const fn reusable_by_syn(self) -> bool {
        matches!(
            self,
            ConnState::FinWait | ConnState::TimeWait | ConnState::Close
        )
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
    const PSH: TcpFlags = TcpFlags(0x08);

    fn walk(mut s: ConnState, steps: &[(Direction, TcpFlags, ConnState)]) {
        for (dir, f, want) in steps {
            s = s.on_tcp(*dir, *f);
            assert_eq!(s, *want, "{dir:?} {f:?}");
        }
    }

    #[test]
    fn handshake_data_and_client_first_close() {
        walk(
            SynRecv,
            &[
                (Reply, SYNACK, SynRecv),
                (Original, ACK, Established),
                (Reply, ACK, Established),
                (Original, FINACK, CloseWait),
                (Reply, ACK, CloseWait),
                (Reply, FINACK, TimeWait),
                (Original, ACK, TimeWait),
            ],
        );
    }

    #[test]
    fn server_first_close() {
        walk(
            Established,
            &[
                (Reply, FINACK, FinWait),
                (Original, ACK, FinWait),
                (Original, FINACK, TimeWait),
            ],
        );
    }

    #[test]
    fn rst_closes_except_a_client_rst_in_syn_recv() {
        for s in [Established, FinWait, CloseWait, TimeWait] {
            assert_eq!(s.on_tcp(Original, RST), Close, "{s:?}");
        }
        for s in [SynRecv, Established, FinWait, CloseWait] {
            assert_eq!(s.on_tcp(Reply, RST), Close, "{s:?}");
        }
        assert_eq!(SynRecv.on_tcp(Original, RST), SynRecv);
    }

    #[test]
    fn reply_ack_and_flagless_segments_do_not_establish() {
        assert_eq!(SynRecv.on_tcp(Reply, ACK), Established.on_tcp(Reply, ACK));
        assert_eq!(SynRecv.on_tcp(Original, SYN), SynRecv);
        assert_eq!(SynRecv.on_tcp(Original, PSH), SynRecv);
        assert_eq!(Udp.on_tcp(Original, RST), Udp);
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
        let got: Vec<_> = ConnState::ALL.iter().map(|s| s.timeout(&t)).collect();
        assert_eq!(got, [2, 1, 2, 2, 3, 3, 4, 3, 3, 2, 5]);
        assert!(Established.is_active() && !SynRecv.is_active());
        assert!(SynRecv.is_half_open() && !Established.is_half_open());
    }

    #[test]
    fn states_round_trip_through_their_byte() {
        for s in ConnState::ALL {
            assert_eq!(ConnState::from_u8(s as u8), Some(s));
        }
        assert_eq!(ConnState::from_u8(11), None);
    }
}
