//! `type: tcp`: the server is up when a TCP connection to its address and port completes within
//! the timeout (keepalived's `TCP_CHECK`). The connection is closed at once. IPv4 or IPv6 alike:
//! the socket is of the real server's family, its source address the kernel's choice.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::probe::{timed_out, Failure, Outcome};

pub fn probe(addr: SocketAddr, timeout: Duration) -> Outcome {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Ok(()),
        Err(e) if timed_out(&e) => Err(Failure::ConnectTimeout),
        Err(e) => Err(Failure::Connect(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn a_listening_port_is_up_and_a_closed_one_is_refused() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let l = TcpListener::bind(bind).unwrap();
            let addr = l.local_addr().unwrap();
            assert_eq!(probe(addr, T), Ok(()), "{addr}");
            drop(l);
            assert!(matches!(probe(addr, T), Err(Failure::Connect(_))), "{addr}");
        }
    }
}
