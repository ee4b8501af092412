//! `type: udp`: send one probe datagram ([`PROBE`]) from a fresh connected UDP socket and wait
//! for any reply: a reply within the timeout is up; an ICMP error (port unreachable, which a
//! connected socket reports as `ECONNREFUSED`) or no reply is down. IPv4 or IPv6 alike: the
//! socket is of the real server's family (bound to its unspecified address, so the kernel picks
//! the source), and the kernel reports an ICMPv6 destination unreachable / port unreachable
//! (type 1 code 4) to the connected socket as `ECONNREFUSED` just as it does ICMP's type 3
//! code 3; no ICMP is read here. This is keepalived's
//! `UDP_CHECK` with `require_reply` (the schema has no payload keys: the server must answer any
//! datagram, as an echo, DNS or syslog-relay health endpoint does).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::probe::{timed_out, Failure, Outcome};

/// The probe datagram's payload.
pub const PROBE: &[u8] = b"xvs-health-check\n";

pub fn probe(addr: SocketAddr, timeout: Duration) -> Outcome {
    let connect = |e: std::io::Error| Failure::Connect(e.to_string());
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let s = UdpSocket::bind(local).map_err(connect)?;
    s.connect(addr).map_err(connect)?;
    s.set_read_timeout(Some(timeout)).map_err(connect)?;
    s.send(PROBE).map_err(connect)?;
    let mut buf = [0u8; 2048];
    loop {
        match s.recv(&mut buf) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Connect(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_up_silence_is_a_timeout_and_a_closed_port_is_refused() {
        replies_silence_and_closed_port("127.0.0.1:0");
    }

    /// The same over IPv6: an IPv6 socket, and the closed port's ICMPv6 port unreachable is
    /// a refusal too.
    #[test]
    fn over_ipv6_a_reply_is_up_silence_is_a_timeout_and_icmpv6_port_unreachable_is_refused() {
        replies_silence_and_closed_port("[::1]:0");
    }

    fn replies_silence_and_closed_port(bind: &str) {
        let echo = UdpSocket::bind(bind).unwrap();
        let addr = echo.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, peer) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], peer).unwrap();
            // Second probe: received, never answered.
            echo.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(probe(addr, Duration::from_secs(2)), Ok(()));
        assert_eq!(
            probe(addr, Duration::from_millis(100)),
            Err(Failure::Timeout)
        );
        assert_eq!(server.join().unwrap(), PROBE);
        assert_eq!(addr.is_ipv6(), bind.starts_with('['));
        // The socket is closed now: the kernel answers with port unreachable.
        assert!(matches!(
            probe(addr, Duration::from_secs(2)),
            Err(Failure::Connect(_))
        ));
    }
}
