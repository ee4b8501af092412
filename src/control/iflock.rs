//! One exclusive lock per attached interface, so that a second `xvs run` on the same interfaces
//! fails before it touches the XDP program of the running one.
//!
//! The lock is an `flock` on `DIR/net<NETNS>-if<IFINDEX>.lock` (`/run/xvs/locks/` in the daemon);
//! the holder writes its PID into the file. The kernel releases the lock when the holder's last
//! file reference goes, however it exits, so a crash never leaves a stale lock. But a process
//! killed with SIGKILL releases its files only when its exit is complete (AF_XDP teardown takes
//! tens of milliseconds), so a start right after the kill would find the lock still held. So,
//! when the lock is busy:
//!
//! - a holder that is **alive** (not exiting, no SIGKILL pending) is refused at once (looked at
//!   twice, [`RECHECK`] apart, so a SIGKILL just sent is seen);
//! - a holder that is **dead or exiting** (zombie, `PF_EXITING`, SIGKILL pending, or gone) is
//!   waited for, polling every [`POLL`], at most the given bound.
//!
//! On a clean release the file is removed while still locked, then closed. A waiter that got the
//! lock of a file removed meanwhile checks, after locking, that the path still names the inode it
//! locked, and otherwise starts over on the new file: two processes can never both hold "the"
//! lock of an interface.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long apart a busy lock's holder is looked at twice before it is called alive.
pub const RECHECK: Duration = Duration::from_millis(20);
/// How often a lock held by an exiting process is tried again.
pub const POLL: Duration = Duration::from_millis(5);
/// How long a lock file without a readable PID (a holder between locking and writing it) is
/// waited for before its holder is called alive.
const NO_PID_GRACE: Duration = Duration::from_millis(200);

/// `PF_EXITING` of `linux/sched.h`: the task is in `do_exit`.
const PF_EXITING: u64 = 0x4;
/// SIGKILL's bit in the pending-signal masks of `/proc/PID/status`.
const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

/// Why an interface could not be locked; each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("interface {iface} is in use by another running xvs{}", holder_text(*.pid))]
    InUse { iface: String, pid: Option<u32> },
    #[error("interface {iface} is still held by an exiting xvs{} after {waited:?}", holder_text(*.pid))]
    StillExiting {
        iface: String,
        pid: Option<u32>,
        waited: Duration,
    },
    #[error("cannot create {}: {source}", .path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// What a busy lock's recorded holder is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Running normally.
    Alive,
    /// Zombie, in `do_exit`, or with SIGKILL pending: its files go soon.
    Exiting,
    /// No such process (visible here).
    Gone,
}

/// What `/proc/PID/stat` and `/proc/PID/status` say about a process. Pure, so it is unit tested:
/// `stat` is the one line of `/proc/PID/stat`, `status` the text of `/proc/PID/status`.
pub fn holder_from_proc(stat: &str, status: &str) -> Holder {
    // The command name (field 2) is in parentheses and may contain anything: parse after the
    // last ')'. Then: state (field 3) ... flags (field 9).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Holder::Alive;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    if matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0 {
        return Holder::Exiting;
    }
    let killed = status.lines().any(|l| {
        let mask = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    });
    if killed {
        Holder::Exiting
    } else {
        Holder::Alive
    }
}

/// What process `pid` is doing, from /proc.
pub fn holder_state(pid: u32) -> Holder {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return Holder::Gone,
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    holder_from_proc(&stat, &status)
}

/// One held lock: removed and released on drop.
#[derive(Debug)]
struct Held {
    path: PathBuf,
    file: File,
}

/// An interface whose lock was held by an exiting process when it was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waited {
    pub iface: String,
    /// The exiting holder, as its lock file named it.
    pub pid: Option<u32>,
    /// How long it took to get the lock.
    pub waited: Duration,
}

/// The locks of every attached interface; released (files removed) when dropped.
#[derive(Debug)]
pub struct InterfaceLocks {
    held: Vec<Held>,
    waited: Vec<Waited>,
}

impl InterfaceLocks {
    /// The lock files held.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.held.iter().map(|h| h.path.as_path())
    }

    /// The interfaces whose lock had to be waited for (an xvs killed just before was exiting).
    pub fn waited(&self) -> &[Waited] {
        &self.waited
    }
}

impl Drop for InterfaceLocks {
    fn drop(&mut self) {
        for h in self.held.drain(..) {
            // Removed while still locked: a waiter that gets this inode afterwards sees that the
            // path no longer names it and starts over.
            let _ = std::fs::remove_file(&h.path);
            drop(h.file);
        }
    }
}

/// Whether `path` still names the file `file` has open.
fn names(path: &Path, file: &File) -> io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == open.dev() && m.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// A lock taken, and whom it was waited for (`None`: it was free).
type Locked = (File, Option<Waited>);

/// Locks `path` for interface `iface` (see the module documentation); waits at most `wait` for a
/// holder that is exiting.
pub fn lock_file(path: &Path, iface: &str, wait: Duration) -> Result<File, LockError> {
    lock_file_with(path, iface, wait, &holder_state).map(|(f, _)| f)
}

fn lock_file_with(
    path: &Path,
    iface: &str,
    wait: Duration,
    state_of: &dyn Fn(u32) -> Holder,
) -> Result<Locked, LockError> {
    let io_err = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let started = Instant::now();
    let deadline = started + wait;
    let mut alive_since: Option<Instant> = None;
    let mut exiting: Option<Option<u32>> = None;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        // Poll this inode until it is ours, its holder turns out alive, or time is up.
        loop {
            match file.try_lock() {
                Ok(()) => {
                    if !names(path, &file).map_err(io_err)? {
                        break; // released and removed by a clean stop: try the new file
                    }
                    file.set_len(0).map_err(io_err)?;
                    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
                        .map_err(io_err)?;
                    let waited = exiting.map(|pid| Waited {
                        iface: iface.to_string(),
                        pid,
                        waited: started.elapsed(),
                    });
                    return Ok((file, waited));
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
            }
            let pid = read_pid(&file);
            let now = Instant::now();
            let state = match pid {
                Some(p) => state_of(p),
                // A holder between locking and writing its PID, for a moment; after that, one
                // that never writes it (not this version): alive.
                None if now.duration_since(started) < NO_PID_GRACE => Holder::Exiting,
                None => Holder::Alive,
            };
            match state {
                Holder::Alive => match alive_since {
                    // Looked alive twice, RECHECK apart: refused.
                    Some(t) if now.duration_since(t) >= RECHECK => {
                        return Err(LockError::InUse {
                            iface: iface.to_string(),
                            pid,
                        })
                    }
                    Some(_) => {}
                    None => alive_since = Some(now),
                },
                // A holder this process cannot see (another PID namespace) or one that just
                // finished: the next try tells; the deadline bounds the wait.
                Holder::Exiting | Holder::Gone => {
                    alive_since = None;
                    exiting = Some(pid);
                }
            }
            if now >= deadline {
                let iface = iface.to_string();
                return Err(match state {
                    // Gone but still holding: a process of another PID namespace.
                    Holder::Alive | Holder::Gone => LockError::InUse { iface, pid },
                    Holder::Exiting => LockError::StillExiting {
                        iface,
                        pid,
                        waited: now.duration_since(started),
                    },
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Locks every interface of `ifaces` (`(name, ifindex)`) in `dir` (created if needed), for the
/// network namespace `netns` (its inode number); waits at most `wait` in all for holders that
/// are exiting.
pub fn lock_interfaces(
    dir: &Path,
    netns: &str,
    ifaces: &[(String, u32)],
    wait: Duration,
) -> Result<InterfaceLocks, LockError> {
    std::fs::create_dir_all(dir).map_err(|source| LockError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let deadline = Instant::now() + wait;
    let mut locks = InterfaceLocks {
        held: Vec::with_capacity(ifaces.len()),
        waited: Vec::new(),
    };
    for (name, ifindex) in ifaces {
        let path = dir.join(format!("net{netns}-if{ifindex}.lock"));
        let left = deadline.saturating_duration_since(Instant::now());
        // On error, `locks` drops: the interfaces locked so far are released.
        let (file, waited) = lock_file_with(&path, name, left, &holder_state)?;
        locks.held.push(Held { path, file });
        locks.waited.extend(waited);
    }
    Ok(locks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn stat(state: &str, flags: u64) -> String {
        format!("4242 (xvs (q0) :)) {state} 1 4242 4242 0 -1 {flags} 0 0 0 0 1 2 0 0 20 0 3 0")
    }

    const STATUS: &str = "Name:\txvs\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000100\n";

    #[test]
    fn holder_states_from_proc() {
        assert_eq!(
            holder_from_proc(&stat("S", 0x400040), STATUS),
            Holder::Alive
        );
        assert_eq!(holder_from_proc(&stat("R", 0), STATUS), Holder::Alive);
        assert_eq!(
            holder_from_proc(&stat("Z", 0x400044), STATUS),
            Holder::Exiting
        );
        assert_eq!(holder_from_proc(&stat("X", 0), STATUS), Holder::Exiting);
        assert_eq!(
            holder_from_proc(&stat("D", 0x400044), STATUS),
            Holder::Exiting
        );
        // SIGKILL pending (shared or per thread); SIGKILL merely blocked (SigBlk) is not.
        let shd = STATUS.replace("ShdPnd:\t0000000000000000", "ShdPnd:\t0000000000000100");
        assert_eq!(holder_from_proc(&stat("S", 0), &shd), Holder::Exiting);
        let sig = STATUS.replace("SigPnd:\t0000000000000000", "SigPnd:\t0000000000004100");
        assert_eq!(holder_from_proc(&stat("S", 0), &sig), Holder::Exiting);
        let term = STATUS.replace("ShdPnd:\t0000000000000000", "ShdPnd:\t0000000000004000");
        assert_eq!(holder_from_proc(&stat("S", 0), &term), Holder::Alive);
        // Garbage: alive (never wait on what cannot be read).
        assert_eq!(holder_from_proc("", ""), Holder::Alive);
        // This very process is alive; a PID that cannot exist is gone.
        assert_eq!(holder_state(std::process::id()), Holder::Alive);
        assert_eq!(holder_state(u32::MAX), Holder::Gone);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xvs-iflock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lock_writes_the_pid_and_release_removes_the_file() {
        let dir = temp_dir("release");
        let ifaces = [("wan0".to_string(), 2), ("lan0".to_string(), 3)];
        let locks = lock_interfaces(&dir, "77", &ifaces, Duration::ZERO).unwrap();
        assert!(locks.waited().is_empty());
        let paths: Vec<PathBuf> = locks.paths().map(Path::to_path_buf).collect();
        assert_eq!(
            paths,
            vec![dir.join("net77-if2.lock"), dir.join("net77-if3.lock")]
        );
        for p in &paths {
            let text = std::fs::read_to_string(p).unwrap();
            assert_eq!(text, format!("{}\n", std::process::id()));
        }
        // Held: a second taker is refused at once (this process is alive), naming the PID.
        let t0 = Instant::now();
        let err = lock_interfaces(&dir, "77", &ifaces, Duration::from_secs(5)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert_eq!(
            err.to_string(),
            format!(
                "interface wan0 is in use by another running xvs (pid {})",
                std::process::id()
            )
        );
        drop(locks);
        for p in &paths {
            assert!(!p.exists(), "{} left behind", p.display());
        }
        assert!(lock_interfaces(&dir, "77", &ifaces, Duration::ZERO).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_lock_releases_the_ones_taken() {
        let dir = temp_dir("partial");
        let lan = [("lan0".to_string(), 3)];
        let held = lock_interfaces(&dir, "1", &lan, Duration::ZERO).unwrap();
        let both = [("wan0".to_string(), 2), ("lan0".to_string(), 3)];
        assert!(lock_interfaces(&dir, "1", &both, Duration::ZERO).is_err());
        // wan0 was locked and released (and its file removed) by the failed attempt.
        assert!(!dir.join("net1-if2.lock").exists());
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_exiting_holder_is_waited_for_within_the_bound() {
        let dir = temp_dir("exiting");
        let path = dir.join("x.lock");
        let holder = lock_file(&path, "wan0", Duration::ZERO).unwrap();
        // The holder "exits" (as the kernel releases a killed process's files) after 100 ms.
        let exiting = |_pid: u32| Holder::Exiting;
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(holder);
        });
        let t0 = Instant::now();
        let (file, waited) =
            lock_file_with(&path, "wan0", Duration::from_secs(5), &exiting).unwrap();
        let took = t0.elapsed();
        releaser.join().unwrap();
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let waited = waited.expect("reported as waited for");
        assert_eq!(waited.pid, Some(std::process::id()));
        assert!(waited.waited >= Duration::from_millis(90));
        drop(file);
        // Still held when the bound passes: a clear error, after the bound and not much later.
        let _holder = lock_file(&path, "wan0", Duration::ZERO).unwrap();
        let t0 = Instant::now();
        let err = lock_file_with(&path, "wan0", Duration::from_millis(150), &exiting).unwrap_err();
        let took = t0.elapsed();
        assert!(matches!(err, LockError::StillExiting { .. }), "{err}");
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(1),
            "{took:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_alive_holder_is_looked_at_twice_then_refused() {
        let dir = temp_dir("alive");
        let path = dir.join("x.lock");
        let _holder = lock_file(&path, "wan0", Duration::ZERO).unwrap();
        let looks = Cell::new(0);
        let alive = |_pid: u32| {
            looks.set(looks.get() + 1);
            Holder::Alive
        };
        let t0 = Instant::now();
        let err = lock_file_with(&path, "wan0", Duration::from_secs(5), &alive).unwrap_err();
        assert!(matches!(err, LockError::InUse { .. }), "{err}");
        assert!(looks.get() >= 2);
        assert!(t0.elapsed() >= RECHECK && t0.elapsed() < Duration::from_secs(1));
        // SIGKILL just sent: alive at the first look, exiting at the second: waited for.
        let looks = Cell::new(0);
        let dying = |_pid: u32| {
            looks.set(looks.get() + 1);
            if looks.get() == 1 {
                Holder::Alive
            } else {
                Holder::Exiting
            }
        };
        let err = lock_file_with(&path, "wan0", Duration::from_millis(100), &dying).unwrap_err();
        assert!(matches!(err, LockError::StillExiting { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_waiter_whose_file_was_removed_locks_the_new_one() {
        let dir = temp_dir("unlink");
        let ifaces = [("wan0".to_string(), 9)];
        let first = lock_interfaces(&dir, "5", &ifaces, Duration::ZERO).unwrap();
        let path = dir.join("net5-if9.lock");
        // A waiter (told the holder is exiting) opens the file and polls; the holder then stops
        // cleanly: the file is removed, then released.
        let exiting = |_pid: u32| Holder::Exiting;
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                lock_file_with(&path, "wan0", Duration::from_secs(5), &exiting)
                    .unwrap()
                    .0
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        let file = waiter.join().unwrap();
        // It holds the file the path names now, not the removed one nobody else would see.
        assert!(
            names(&path, &file).unwrap(),
            "the waiter locked a removed file"
        );
        assert_eq!(read_pid(&file), Some(std::process::id()));
        assert!(matches!(
            lock_file(&path, "wan0", Duration::ZERO),
            Err(LockError::InUse { .. })
        ));
        drop(file);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
