//! `type: http`: `GET path` over a fresh TCP connection (HTTP/1.1, `Connection: close`); the
//! server is up when the status line arrives within the timeout (connect, send and read all
//! count against it) with a status in `expect_status` (keepalived's `HTTP_GET` with
//! `status_code`). Only the status line is read; the connection is closed after it.
//!
//! The `Host:` header is `http.host` when set, else the real server's address (with the port
//! unless it is 80), as an HTTP client addressing the server directly would send: an IPv6
//! address in brackets (RFC 3986's IP-literal, which RFC 9110's `Host` takes), without a zone
//! (`Host: [2001:2:0:1::11]`, `Host: [2001:2:0:1::11]:8080`). The probe itself is
//! family-neutral: the connection is made to the real server's address, IPv4 or IPv6, from the
//! address the kernel chooses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::probe::{left, timed_out, Failure, Outcome};
use crate::control::config::HttpCheck;

/// Longest status line read; an answer without a line end by then is not HTTP.
const MAX_STATUS_LINE: usize = 1024;

pub fn probe(addr: SocketAddr, http: &HttpCheck, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if timed_out(&e) => return Err(Failure::ConnectTimeout),
        Err(e) => return Err(Failure::Connect(e.to_string())),
    };
    let host = http.host.clone().unwrap_or_else(|| host_header(addr));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xvs-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        http.path
    );
    let io = |e: std::io::Error| {
        if timed_out(&e) {
            Failure::Timeout
        } else {
            Failure::Io(e.to_string())
        }
    };
    s.set_write_timeout(Some(left(deadline).ok_or(Failure::Timeout)?))
        .map_err(io)?;
    s.write_all(request.as_bytes()).map_err(io)?;
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    while !buf[..len].contains(&b'\n') && len < buf.len() {
        s.set_read_timeout(Some(left(deadline).ok_or(Failure::Timeout)?))
            .map_err(io)?;
        match s.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    if len == 0 {
        return Err(Failure::NoData);
    }
    let status = parse_status_line(&buf[..len]).ok_or(Failure::BadResponse)?;
    if http.expect_status.contains(&status) {
        Ok(())
    } else {
        Err(Failure::Status(status))
    }
}

/// The default `Host:` value for a server at `addr`: `198.18.1.11`, `198.18.1.11:8080`,
/// `[2001:2:0:1::11]`, `[2001:2:0:1::11]:8080`. An IPv6 zone (scope id) is never sent: it means
/// something only on this box (`SocketAddrV6`'s own notation would append `%N`).
fn host_header(addr: SocketAddr) -> String {
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    match addr.port() {
        80 => host,
        port => format!("{host}:{port}"),
    }
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`), if `head` starts with a complete
/// one.
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end])
        .ok()?
        .trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::mpsc;

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503\r\nX: y"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\n"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), None, "incomplete");
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 abc OK\r\n"), None);
        assert_eq!(parse_status_line(b"\xff\xfe\r\n"), None);
    }

    #[test]
    fn default_host_header() {
        assert_eq!(
            host_header("198.18.1.11:80".parse().unwrap()),
            "198.18.1.11"
        );
        assert_eq!(
            host_header("198.18.1.11:8080".parse().unwrap()),
            "198.18.1.11:8080"
        );
        assert_eq!(
            host_header("[2001:2:0:1::11]:80".parse().unwrap()),
            "[2001:2:0:1::11]"
        );
        assert_eq!(
            host_header("[2001:2:0:1::11]:8080".parse().unwrap()),
            "[2001:2:0:1::11]:8080"
        );
        // A zone stays on this box; flow info is not part of the address.
        let ip: std::net::Ipv6Addr = "fe80::11".parse().unwrap();
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(ip, 8080, 7, 3));
        assert_eq!(scoped.to_string(), "[fe80::11%3]:8080");
        assert_eq!(host_header(scoped), "[fe80::11]:8080");
        let scoped80 = SocketAddr::V6(std::net::SocketAddrV6::new(ip, 80, 0, 3));
        assert_eq!(host_header(scoped80), "[fe80::11]");
    }

    /// A one-shot server on 127.0.0.1 answering `reply`; sends the request head it received.
    fn serve_once(reply: &'static [u8]) -> (SocketAddr, mpsc::Receiver<String>) {
        serve_once_on("127.0.0.1:0", reply)
    }

    /// [`serve_once`] listening on `bind` (e.g. `[::1]:0`).
    fn serve_once_on(bind: &str, reply: &'static [u8]) -> (SocketAddr, mpsc::Receiver<String>) {
        let l = TcpListener::bind(bind).unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = tx.send(head);
            let mut c = c;
            let _ = c.write_all(reply);
        });
        (addr, rx)
    }

    fn check(path: &str, expect: &[u16], host: Option<&str>) -> HttpCheck {
        HttpCheck {
            path: path.into(),
            expect_status: expect.to_vec(),
            host: host.map(str::to_string),
        }
    }

    #[test]
    fn expected_status_is_up_and_the_request_names_path_and_host() {
        let (addr, head) = serve_once(b"HTTP/1.0 204 No Content\r\n\r\n");
        let c = check("/health?x=1", &[200, 204], Some("www.example.com"));
        assert_eq!(probe(addr, &c, T), Ok(()));
        let head = head.recv().unwrap();
        assert!(head.starts_with("GET /health?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Host: www.example.com\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        let (addr, head) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(probe(addr, &HttpCheck::default(), T), Ok(()));
        let want = format!("Host: 127.0.0.1:{}\r\n", addr.port());
        assert!(head.recv().unwrap().contains(&want));
    }

    #[test]
    fn other_status_bad_answer_no_answer_and_closed_port_fail() {
        let (addr, _) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(
            probe(addr, &HttpCheck::default(), T),
            Err(Failure::Status(503))
        );
        let (addr, _) = serve_once(b"SSH-2.0-nope\r\n");
        assert_eq!(
            probe(addr, &HttpCheck::default(), T),
            Err(Failure::BadResponse)
        );
        let (addr, _) = serve_once(b"");
        assert_eq!(probe(addr, &HttpCheck::default(), T), Err(Failure::NoData));
        // Accepts, never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let start = Instant::now();
        assert_eq!(
            probe(addr, &HttpCheck::default(), Duration::from_millis(200)),
            Err(Failure::Timeout)
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(l);
        assert!(matches!(
            probe(addr, &HttpCheck::default(), T),
            Err(Failure::Connect(_))
        ));
    }

    /// Over IPv6 (loopback): the GET goes to `[::1]:port` with the bracketed Host header, the
    /// status decides, and a closed port is refused.
    #[test]
    fn ipv6_server_bracketed_host_status_and_closed_port() {
        let (addr, head) = serve_once_on("[::1]:0", b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(addr.is_ipv6());
        assert_eq!(probe(addr, &HttpCheck::default(), T), Ok(()));
        let head = head.recv().unwrap();
        assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
        let want = format!("Host: [::1]:{}\r\n", addr.port());
        assert!(head.contains(&want), "{head}");
        let (addr, _) = serve_once_on("[::1]:0", b"HTTP/1.1 500 Oops\r\n\r\n");
        assert_eq!(
            probe(addr, &check("/", &[200], None), T),
            Err(Failure::Status(500))
        );
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(matches!(
            probe(addr, &HttpCheck::default(), T),
            Err(Failure::Connect(_))
        ));
    }
}
