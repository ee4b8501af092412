//! Signal handling for the daemon, as a thin syscall wrapper: SIGTERM/SIGINT/SIGHUP are blocked
//! in every thread (block them before spawning any) and received synchronously by the main
//! thread with `sigtimedwait`, so no async-signal-safety rules apply to what the daemon does
//! when one arrives.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

/// A signal the daemon acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop cleanly.
    Stop(i32),
    /// SIGHUP: reload the configuration.
    Reload,
}

/// The blocked set of daemon signals.
pub struct DaemonSignals {
    set: libc::sigset_t,
}

impl DaemonSignals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; threads spawned afterwards inherit
    /// the mask.
    pub fn block() -> io::Result<DaemonSignals> {
        // SAFETY: `sigset_t` is plain data; sigemptyset initialises it before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(DaemonSignals { set })
    }

    /// Waits up to `timeout` for one of the blocked signals.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `self.set` is an initialised sigset_t, `ts` a valid timespec, and a null siginfo
        // pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        match sig {
            libc::SIGHUP => Some(Signal::Reload),
            libc::SIGTERM | libc::SIGINT => Some(Signal::Stop(sig)),
            _ => None,
        }
    }
}

/// Sends SIGKILL to every process of process group `pgid` (a health-check command started as
/// its own group leader, with whatever it started). Errors (the group is already gone) are
/// ignored.
pub fn kill_process_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // 0 would be our own group, 1 (as -1) every process we may signal.
        return;
    }
    // SAFETY: kill has no memory preconditions; a negative pid addresses the process group
    // `pgid` only, and pgid > 1 was checked above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// The effective user id is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tells systemd (`Type=notify-reload`) about the daemon's state, if `NOTIFY_SOCKET` is set.
/// Failures are ignored: notification is best effort and must not stop the daemon.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name) {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), std::path::Path::new(&path));
    }
}

/// CLOCK_MONOTONIC in microseconds (for `MONOTONIC_USEC=` in reload notifications).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_is_received_synchronously() {
        let s = DaemonSignals::block().unwrap();
        assert_eq!(s.wait(Duration::from_millis(1)), None);
        // SAFETY: raising a signal that is blocked in this thread only marks it pending for the
        // process; `wait` then consumes it.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
        assert_eq!(s.wait(Duration::from_secs(1)), Some(Signal::Reload));
    }
}
