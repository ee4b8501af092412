//! `type: exec`: run `sh -c COMMAND` with `%ADDR%` and `%PORT%` replaced by the real server's
//! address and port; exit status 0 is up, anything else down (keepalived's `MISC_CHECK`). The
//! command runs in its own process group with stdin, stdout and stderr on `/dev/null`; past the
//! timeout (or when the daemon stops) the whole group is killed (SIGKILL) and the check fails.

use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::probe::{Failure, Outcome};
use crate::sys;

/// How often a running command is polled for its exit.
const POLL: Duration = Duration::from_millis(5);

/// `command` with `%ADDR%` and `%PORT%` replaced.
pub fn expand(command: &str, addr: SocketAddr) -> String {
    command
        .replace("%ADDR%", &addr.ip().to_string())
        .replace("%PORT%", &addr.port().to_string())
}

/// The program name of `command` for log lines (its first word).
pub fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or("")
}

pub fn probe(addr: SocketAddr, command: &str, timeout: Duration, stop: &AtomicBool) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(expand(command, addr))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Spawn(e.to_string()))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match (status.code(), status.signal()) {
                    (Some(0), _) => Ok(()),
                    (Some(c), _) => Err(Failure::Exit(c)),
                    (None, Some(s)) => Err(Failure::Signal(s)),
                    (None, None) => Err(Failure::Exit(-1)),
                };
            }
            Ok(None) if Instant::now() < deadline && !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(POLL)
            }
            Ok(None) => {
                sys::kill_process_group(child.id());
                let _ = child.wait();
                return Err(Failure::ExecTimeout);
            }
            Err(e) => {
                sys::kill_process_group(child.id());
                let _ = child.wait();
                return Err(Failure::Spawn(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);
    static GO: AtomicBool = AtomicBool::new(false);

    fn addr() -> SocketAddr {
        "198.18.1.11:8080".parse().unwrap()
    }

    #[test]
    fn placeholders_are_replaced() {
        assert_eq!(
            expand("/bin/check %ADDR% %PORT% %ADDR%", addr()),
            "/bin/check 198.18.1.11 8080 198.18.1.11"
        );
        assert_eq!(
            expand("c %ADDR%", "[2001:db8::1]:80".parse().unwrap()),
            "c 2001:db8::1"
        );
        assert_eq!(program("  /usr/bin/check --x 1"), "/usr/bin/check");
    }

    #[test]
    fn exit_status_decides() {
        assert_eq!(probe(addr(), "true", T, &GO), Ok(()));
        assert_eq!(probe(addr(), "exit 3", T, &GO), Err(Failure::Exit(3)));
        assert_eq!(
            probe(
                addr(),
                "test %ADDR% = 198.18.1.11 && test %PORT% = 8080",
                T,
                &GO
            ),
            Ok(())
        );
        assert_eq!(probe(addr(), "kill -9 $$", T, &GO), Err(Failure::Signal(9)));
    }

    #[test]
    fn a_stop_kills_the_command_at_once() {
        let stop = AtomicBool::new(true);
        let start = Instant::now();
        assert_eq!(
            probe(addr(), "sleep 5", T, &stop),
            Err(Failure::ExecTimeout)
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_command_past_the_timeout_is_killed_with_its_children() {
        let marker = std::env::temp_dir().join(format!("xvs-exec-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let start = Instant::now();
        let cmd = format!("(sleep 1; touch {}) & sleep 5", marker.display());
        assert_eq!(
            probe(addr(), &cmd, Duration::from_millis(200), &GO),
            Err(Failure::ExecTimeout)
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(1200));
        assert!(
            !marker.exists(),
            "the command's background child outlived the timeout"
        );
    }
}
