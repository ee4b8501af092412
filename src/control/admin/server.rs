//! The admin Unix socket (`global.admin_socket`): the daemon's side of `xvs ctl`, as a server.
//!
//! An accept thread hands each connection to a thread of its own, which reads one request line
//! and writes one reply (the [`protocol`](super::protocol)); what the reply says is
//! [`answer`](super::answer)'s business, this module only moves the bytes and bounds the time.
//!
//! No client can hold up another, a reload or shutdown ([`AdminLimits`]): the request line must
//! arrive whole within [`request_deadline`](AdminLimits::request_deadline) of the connection's
//! start, the reply must be taken whole within [`reply_deadline`](AdminLimits::reply_deadline)
//! (each a deadline for the whole transfer, not for each read or write), and at most
//! [`max_connections`](AdminLimits::max_connections) are served at once: one more closes the
//! oldest connection that is reading its request or writing its reply (one whose request is
//! being answered, e.g. waiting for a reload, is kept; if every one is, newcomers wait in the
//! listen backlog until one is done, which takes at most the reload wait). When `stop` is set,
//! the accept thread shuts down every connection that is reading or writing (a blocked read or
//! write returns at once), leaves those being answered to say that the daemon is stopping, and
//! returns without waiting for any client.
//!
//! The socket is created mode 0600 (bound under a temporary name, restricted, then renamed into
//! place, so it is never connectable by others), its parent directory is created if missing, a
//! stale socket file is replaced, a live one (another daemon answering) is an error, and the file
//! is removed when the server stops.
//!
//! Imports: [`answer`](super::answer) and [`protocol`](super::protocol); the poll wrapper of the
//! VRRP socket module for the accept loop.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::answer::{handle, AdminError, AdminState};
use crate::vrrp::socket::poll_readable;

/// Longest request line read.
const MAX_REQUEST: usize = 1024;
/// How often the accept thread looks at the stop flag while no client connects.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What bounds one admin connection, and how many are served at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections served at once (see the module documentation for what happens beyond it).
    pub max_connections: usize,
    /// From the connection's start to the end of its request line.
    pub request_deadline: Duration,
    /// From the first byte of the reply to the last.
    pub reply_deadline: Duration,
}

/// The admin socket's limits. `xvs ctl` writes its request at once and reads its reply to the
/// end, so these only ever cut off a client that is stuck or gone.
pub const LIMITS: AdminLimits = AdminLimits {
    max_connections: 32,
    request_deadline: Duration::from_secs(2),
    reply_deadline: Duration::from_secs(10),
};

fn timed_out(what: &str, limit: Duration) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::TimedOut,
        format!("{what} within {} ms", limit.as_millis()),
    )
}

/// Reads the request line (up to and including its newline, at most [`MAX_REQUEST`] bytes, or
/// what came before the client shut down its side) within `limit` of `started`, whatever the
/// client's pace.
fn read_request(
    mut conn: &UnixStream,
    started: Instant,
    limit: Duration,
) -> std::io::Result<String> {
    let deadline = started + limit;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    while buf.len() < MAX_REQUEST && !buf.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("no whole request line", limit));
        }
        conn.set_read_timeout(Some(left))?;
        let want = chunk.len().min(MAX_REQUEST - buf.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out("no whole request line", limit))
            }
            Err(e) => return Err(e),
        }
    }
    let end = buf
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |i| i + 1);
    buf.truncate(end);
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "the request is not UTF-8"))
}

/// Writes `bytes` whole within `limit` from now, whatever the client's pace.
fn write_reply(mut conn: &UnixStream, mut bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + limit;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("the reply was not taken", limit));
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out("the reply was not taken", limit))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection: its request line, the answer, the reply, each bounded by `limits`.
/// `answering(true)` and `answering(false)` bracket the time its request is being answered;
/// `answering(true)` is `false` if the connection was closed meanwhile (its request, cut short
/// by the close, is then not run).
fn serve(
    conn: &UnixStream,
    state: &AdminState,
    stop: &AtomicBool,
    limits: AdminLimits,
    started: Instant,
    answering: impl Fn(bool) -> bool,
) {
    let _ = conn.set_nonblocking(false);
    let reply = match read_request(conn, started, limits.request_deadline) {
        Ok(line) => {
            if !answering(true) {
                return;
            }
            let reply = handle(state, &line, stop);
            answering(false);
            reply
        }
        Err(e) => AdminError::ReadRequest(e).reply(),
    };
    let _ = write_reply(conn, reply.encode().as_bytes(), limits.reply_deadline);
}

/// The connections being served, oldest first, each with a handle on its socket (shutting it
/// down makes the serving thread's blocked read or write return at once).
#[derive(Default)]
struct Connections {
    inner: Mutex<ConnectionsInner>,
}

#[derive(Default)]
struct ConnectionsInner {
    next_id: u64,
    live: VecDeque<Live>,
}

struct Live {
    id: u64,
    socket: UnixStream,
    /// Its request is being answered (e.g. waiting for a reload): not closed to make room.
    answering: bool,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection below `max`, shutting down the oldest ones that are
    /// not being answered; `false` if every one is.
    fn make_room(&self, max: usize) -> bool {
        let mut c = self.lock();
        while c.live.len() >= max.max(1) {
            let Some(oldest) = c.live.iter().position(|l| !l.answering) else {
                return false;
            };
            if let Some(l) = c.live.remove(oldest) {
                let _ = l.socket.shutdown(Shutdown::Both);
            }
        }
        true
    }

    /// Registers `socket`, a handle on a new connection's socket.
    fn register(&self, socket: UnixStream) -> u64 {
        let mut c = self.lock();
        let id = c.next_id;
        c.next_id += 1;
        c.live.push_back(Live {
            id,
            socket,
            answering: false,
        });
        id
    }

    /// Marks connection `id` as being answered or not; `false` if it is no longer served
    /// (closed to make room, or the server is stopping).
    fn set_answering(&self, id: u64, answering: bool) -> bool {
        match self.lock().live.iter_mut().find(|l| l.id == id) {
            Some(l) => {
                l.answering = answering;
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().live.retain(|l| l.id != id);
    }

    /// At stop: shuts down every connection that is reading its request or writing its reply
    /// (its thread then ends at once) and forgets them all. One whose request is being answered
    /// is left to answer: its request sees `stop` (a reload waiting for the main loop gives up
    /// within 100 ms and says the daemon is stopping) and its reply is bounded by the reply
    /// deadline; nobody waits for it.
    fn stop(&self) {
        for l in self.lock().live.drain(..) {
            if !l.answering {
                let _ = l.socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Removes its connection from [`Connections`] when the serving thread ends, however it ends.
struct Registered {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

/// Hands `conn` to a thread of its own.
fn dispatch(
    conn: UnixStream,
    state: &Arc<AdminState>,
    stop: &Arc<AtomicBool>,
    conns: &Arc<Connections>,
    limits: AdminLimits,
) {
    let started = Instant::now();
    let Ok(handle) = conn.try_clone() else {
        return;
    };
    let id = conns.register(handle);
    let registered = Registered {
        conns: conns.clone(),
        id,
    };
    let (state, stop) = (state.clone(), stop.clone());
    // If no thread can be started, the closure is dropped: the connection is closed and
    // unregistered.
    let _ = std::thread::Builder::new()
        .name("xvs-admin-conn".into())
        .spawn(move || {
            let r = registered;
            serve(&conn, &state, &stop, limits, started, |answering| {
                r.conns.set_answering(r.id, answering)
            });
        });
}

/// A socket file bound by this process; removed on drop if it is still ours.
struct Bound {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// Binds `path` mode 0600 (see the module documentation).
fn bind(path: &Path) -> std::io::Result<(UnixListener, Bound)> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io_err(
                    "another process (an xvs daemon already running?) answers on this socket"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| io_err(format!("cannot remove the stale socket: {e}")))?;
        }
        Ok(_) => return Err(io_err("exists and is not a socket".into())),
        Err(_) => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let listener = if tmp.as_os_str().len() <= SUN_PATH_MAX {
        let _ = std::fs::remove_file(&tmp);
        let l = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        l
    } else {
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        l
    };
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        Bound {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// Starts the admin server on `path`; it stops (and removes the socket) when `stop` is set.
pub fn spawn_server(
    path: &Path,
    state: AdminState,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    spawn_server_with(path, state, stop, LIMITS)
}

/// [`spawn_server`] with other limits.
pub fn spawn_server_with(
    path: &Path,
    state: AdminState,
    stop: Arc<AtomicBool>,
    limits: AdminLimits,
) -> std::io::Result<JoinHandle<()>> {
    let (listener, bound) = bind(path)?;
    listener.set_nonblocking(true)?;
    let state = Arc::new(state);
    std::thread::Builder::new()
        .name("xvs-admin".into())
        .spawn(move || {
            let conns = Arc::new(Connections::default());
            let fd = [listener.as_raw_fd()];
            let mut ready = Vec::with_capacity(1);
            let poll_ms = i32::try_from(STOP_POLL.as_millis()).unwrap_or(50);
            while !stop.load(Ordering::Relaxed) {
                match poll_readable(&fd, poll_ms, &mut ready) {
                    Ok(()) if ready.is_empty() => continue,
                    Ok(()) => {}
                    Err(_) => {
                        std::thread::sleep(STOP_POLL);
                        continue;
                    }
                }
                // A client is waiting to be accepted.
                if !conns.make_room(limits.max_connections) {
                    // Every connection is being answered (each for a bounded time): newcomers
                    // wait in the listen backlog meanwhile.
                    std::thread::sleep(STOP_POLL);
                    continue;
                }
                match listener.accept() {
                    Ok((conn, _)) => dispatch(conn, &state, &stop, &conns, limits),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // Out of file descriptors or the like: wait rather than spin.
                    Err(_) => std::thread::sleep(STOP_POLL),
                }
            }
            drop(listener);
            drop(bound);
            conns.stop();
        })
}

#[cfg(test)]
mod tests;
