//! The daemon's signal policy: SIGTERM/SIGINT stop it, SIGHUP reloads. The three are blocked in
//! every thread (block them before spawning any) and received synchronously by the main thread
//! (`sigtimedwait`, through [`crate::sys::SignalSet`]), so no async-signal-safety rules apply to
//! what the daemon does when one arrives.

use std::io;
use std::time::Duration;

use crate::sys::SignalSet;

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
    set: SignalSet,
}

impl DaemonSignals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; threads spawned afterwards inherit
    /// the mask.
    pub fn block() -> io::Result<DaemonSignals> {
        let set = SignalSet::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
        set.block()?;
        Ok(DaemonSignals { set })
    }

    /// Waits up to `timeout` for one of the blocked signals.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        match self.set.wait(timeout)? {
            libc::SIGHUP => Some(Signal::Reload),
            sig @ (libc::SIGTERM | libc::SIGINT) => Some(Signal::Stop(sig)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_is_received_synchronously() {
        let s = DaemonSignals::block().unwrap();
        assert_eq!(s.wait(Duration::from_millis(1)), None);
        // Raising a signal that is blocked in this thread only marks it pending; `wait` then
        // consumes it.
        crate::sys::signal_own_thread(libc::SIGHUP).unwrap();
        assert_eq!(s.wait(Duration::from_secs(1)), Some(Signal::Reload));
    }
}
