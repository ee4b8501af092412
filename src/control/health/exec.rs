//! `type: exec`: run `sh -c COMMAND` with `%ADDR%` and `%PORT%` replaced by the real server's
//! address and port; exit status 0 is up, anything else down (keepalived's `MISC_CHECK`). The
//! command runs in its own process group with stdin, stdout and stderr on `/dev/null`; past the
//! timeout (or when the daemon stops) the whole group is killed (SIGKILL) and the check fails.
//!
//! **`%ADDR%` and `%PORT%`.** `%ADDR%` is the bare address in its usual text form, for IPv6
//! too: `198.18.1.11`, `2001:2:0:1::11` (RFC 5952's compressed form; no brackets, no zone, no
//! port), the form `ping -6 %ADDR%`, `nc -6 %ADDR% %PORT%`, `dig @%ADDR%` or a script's own
//! argument parsing take; `%PORT%` is the port alone (`80`). A command that needs an IPv6
//! literal inside a URL adds the brackets itself (`curl -g http://[%ADDR%]:%PORT%/health` in an
//! IPv6 service's check). Neither form holds a shell metacharacter (digits, `.`, `:` and hex
//! letters only), so both are safe unquoted in the `sh -c` line.

use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::probe::{Failure, Outcome};
use crate::sys;

/// How often a running command is polled for its exit.
const POLL: Duration = Duration::from_millis(5);

/// `command` with `%ADDR%` replaced by `addr`'s bare address (IPv6 without brackets or zone)
/// and `%PORT%` by its port.
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

    fn addr6() -> SocketAddr {
        "[2001:2:0:1::11]:8080".parse().unwrap()
    }

    #[test]
    fn placeholders_are_replaced() {
        assert_eq!(
            expand("/bin/check %ADDR% %PORT% %ADDR%", addr()),
            "/bin/check 198.18.1.11 8080 198.18.1.11"
        );
        // IPv6: the bare address, compressed, without brackets; the port apart.
        assert_eq!(
            expand("ping -6 -c1 -W1 %ADDR%", addr6()),
            "ping -6 -c1 -W1 2001:2:0:1::11"
        );
        assert_eq!(
            expand("curl -g http://[%ADDR%]:%PORT%/", addr6()),
            "curl -g http://[2001:2:0:1::11]:8080/"
        );
        let long: SocketAddr = "[2001:0002:0000:0001:0000:0000:0000:0011]:80"
            .parse()
            .unwrap();
        assert_eq!(expand("%ADDR%", long), "2001:2:0:1::11");
        // No zone: it is this box's interface index, meaningless to the command.
        let ip: std::net::Ipv6Addr = "fe80::11".parse().unwrap();
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(ip, 80, 0, 3));
        assert_eq!(expand("%ADDR% %PORT%", scoped), "fe80::11 80");
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

    /// An IPv6 real server's command gets the bare address and the port as separate words,
    /// unquoted through `sh -c`.
    #[test]
    fn an_ipv6_command_sees_the_bare_address_and_the_port() {
        let cmd = "test %ADDR% = 2001:2:0:1::11 && test %PORT% = 8080 && test $# = 0 \
                   && set -- %ADDR% %PORT% && test $# = 2";
        assert_eq!(probe(addr6(), cmd, T, &GO), Ok(()));
        assert_eq!(
            probe(addr6(), "case %ADDR% in *[][]*) exit 1;; esac", T, &GO),
            Ok(())
        );
        assert_eq!(
            probe(addr6(), "test %ADDR% = 198.18.1.11", T, &GO),
            Err(Failure::Exit(1))
        );
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
