//! Long-lived TCP connections through a lab's VIP and the line echo servers they talk to
//! (`tests/e2e_sync.rs`, `tests/e2e_ecmp.rs`), with the count and the pace as parameters and one
//! thread for all the connections instead of one each, so that hundreds of them cost the shared
//! CPU little: each connection sends `ping N` at a steady pace, waits for `SERVER ping N`, and
//! records when each answer came and from which server; a connection whose server changes, that
//! is closed or reset, or that waits more than 5 s for an answer has failed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{in_netns, Lab};

/// How long a connection may wait for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The pollers' pause between rounds.
const TICK: Duration = Duration::from_millis(5);

/// Line echo servers in the lab's real servers: each answers a line with `NAME LINE`. One
/// thread per server (nonblocking sockets, polled), its sockets in the real server's
/// namespace; stopped on drop.
pub struct EchoServers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServers {
    /// A server on every port of `ports` (all addresses: DR's VIP on lo too) in each of `roles`.
    pub fn start(lab: &Lab, roles: &[&'static str], ports: &[u16]) -> EchoServers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &role in roles {
            for &port in ports {
                let listener = in_netns(&lab.ns(role), || {
                    TcpListener::bind(("0.0.0.0", port)).unwrap()
                });
                listener.set_nonblocking(true).unwrap();
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || serve(&listener, role, &stop)));
            }
        }
        EchoServers { stop, threads }
    }
}

impl Drop for EchoServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Accepts and echoes on every accepted connection, round after round, until `stop`.
fn serve(listener: &TcpListener, name: &'static str, stop: &AtomicBool) {
    let mut conns: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        while let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true).unwrap();
            conns.push((s, Vec::new()));
        }
        conns.retain_mut(|(s, pending)| loop {
            match s.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break echo_lines(s, pending, name),
                Err(_) => return false,
            }
        });
        std::thread::sleep(TICK);
    }
}

/// Answers every complete line of `pending` on `s`; false when the connection is gone.
fn echo_lines(s: &mut TcpStream, pending: &mut Vec<u8>, name: &str) -> bool {
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let mut answer = format!("{name} ").into_bytes();
        answer.extend_from_slice(&line);
        // A few dozen bytes into an empty socket buffer: written whole or the peer is gone.
        if s.write_all(&answer).is_err() {
            return false;
        }
    }
    true
}

/// One held connection's record: when each answer came, from which server, and its error.
#[derive(Default)]
pub struct Record {
    answers: Mutex<Vec<Instant>>,
    server: Mutex<Option<String>>,
    error: Mutex<Option<String>>,
}

impl Record {
    /// Answers received at or after `t`.
    pub fn ok_since(&self, t: Instant) -> usize {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| **a >= t)
            .count()
    }

    /// How long after `t` the first answer at or after `t` came.
    pub fn first_since(&self, t: Instant) -> Option<Duration> {
        let a = self.answers.lock().unwrap();
        a.iter().find(|a| **a >= t).map(|a| *a - t)
    }

    pub fn failed(&self) -> bool {
        self.error.lock().unwrap().is_some()
    }
}

/// What [`Held::survivors`] found.
#[derive(Debug)]
pub struct Survival {
    /// Connections without an error that answered at least the required times since `t`.
    pub alive: usize,
    pub total: usize,
    /// The first answer after `t` of each survivor: the median and the slowest.
    pub median: Duration,
    pub slowest: Duration,
    /// The errors of the connections that failed.
    pub errors: Vec<String>,
}

/// Connections from the client to one address, each doing one request/response every `every`,
/// driven by one thread until dropped.
pub struct Held {
    pub what: String,
    pub records: Vec<Arc<Record>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Held {
    /// Opens `count` connections from the client's namespace to `to` (3 s to connect each).
    pub fn open(lab: &Lab, what: &str, to: SocketAddr, count: usize, every: Duration) -> Held {
        let streams: Vec<TcpStream> = in_netns(&lab.ns("client"), || {
            (0..count)
                .map(|i| {
                    TcpStream::connect_timeout(&to, Duration::from_secs(3))
                        .unwrap_or_else(|e| panic!("{what}: connection {i} to {to}: {e}"))
                })
                .collect()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let records: Vec<Arc<Record>> = (0..count).map(|_| Arc::default()).collect();
        let conns: Vec<Conn> = streams
            .into_iter()
            .zip(&records)
            .map(|(s, rec)| {
                s.set_nonblocking(true).unwrap();
                Conn::new(s, rec.clone())
            })
            .collect();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || drive(conns, &stop, every))
        };
        Held {
            what: what.into(),
            records,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (at most `limit`) until every connection that has not failed has answered `n`
    /// times since `t`.
    pub fn wait_answers(&self, t: Instant, n: usize, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end
            && self
                .records
                .iter()
                .any(|r| !r.failed() && r.ok_since(t) < n)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The servers the connections talk to, each once.
    pub fn servers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.server.lock().unwrap().clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The connections that kept working after an event at `t`: no error, and `n` answers since
    /// `t` (waited for, 10 s at most).
    pub fn survivors(&self, t: Instant, n: usize) -> Survival {
        self.wait_answers(t, n, Duration::from_secs(10));
        let alive: Vec<&Arc<Record>> = self
            .records
            .iter()
            .filter(|r| !r.failed() && r.ok_since(t) >= n)
            .collect();
        let mut gaps: Vec<Duration> = alive.iter().filter_map(|r| r.first_since(t)).collect();
        gaps.sort();
        Survival {
            alive: alive.len(),
            total: self.records.len(),
            median: gaps.get(gaps.len() / 2).copied().unwrap_or_default(),
            slowest: gaps.last().copied().unwrap_or_default(),
            errors: self
                .records
                .iter()
                .filter_map(|r| r.error.lock().unwrap().clone())
                .collect(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection as the driver sees it.
struct Conn {
    s: TcpStream,
    rec: Arc<Record>,
    /// The last request's number.
    n: u64,
    /// When the last request went out, while its answer is awaited.
    asked: Option<Instant>,
    /// When the next request is due.
    due: Instant,
    pending: Vec<u8>,
}

impl Conn {
    fn new(s: TcpStream, rec: Arc<Record>) -> Conn {
        Conn {
            s,
            rec,
            n: 0,
            asked: None,
            due: Instant::now(),
            pending: Vec::new(),
        }
    }

    fn fail(&mut self, e: String) {
        *self.rec.error.lock().unwrap() = Some(format!("ping {}: {e}", self.n));
    }

    /// One round: the answer read if it came, the next request sent when due. False once the
    /// connection has failed.
    fn step(&mut self, now: Instant, every: Duration) -> bool {
        match self.asked {
            Some(at) => self.receive(now, at, every),
            None if now >= self.due => {
                self.n += 1;
                match self.s.write_all(format!("ping {}\n", self.n).as_bytes()) {
                    Ok(()) => {
                        self.asked = Some(now);
                        true
                    }
                    Err(e) => {
                        self.fail(format!("write: {e}"));
                        false
                    }
                }
            }
            None => true,
        }
    }

    fn receive(&mut self, now: Instant, at: Instant, every: Duration) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => {
                    self.fail("closed".into());
                    return false;
                }
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.fail(format!("read: {e}"));
                    return false;
                }
            }
        }
        let Some(end) = self.pending.iter().position(|&b| b == b'\n') else {
            if now - at > ANSWER_TIMEOUT {
                self.fail("no answer within 5 s".into());
                return false;
            }
            return true;
        };
        let line: Vec<u8> = self.pending.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let Some((server, rest)) = line.trim_end().split_once(' ') else {
            self.fail(format!("bad answer {line:?}"));
            return false;
        };
        if rest != format!("ping {}", self.n) {
            self.fail(format!("answer {line:?}"));
            return false;
        }
        let mut known = self.rec.server.lock().unwrap();
        match known.as_deref() {
            None => *known = Some(server.to_string()),
            Some(k) if k != server => {
                let e = format!("moved from {k} to {server}");
                drop(known);
                self.fail(e);
                return false;
            }
            Some(_) => {}
        }
        drop(known);
        self.rec.answers.lock().unwrap().push(now);
        self.asked = None;
        self.due = now + every;
        true
    }
}

/// Drives every connection, round after round, until `stop`; a failed one is dropped.
fn drive(mut conns: Vec<Conn>, stop: &AtomicBool, every: Duration) {
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        conns.retain_mut(|c| c.step(now, every));
        std::thread::sleep(TICK);
    }
}
