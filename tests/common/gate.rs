//! A lab namespace's TCP port made to refuse new connections at a known moment ([`PortGate`]),
//! as a stopped server's closed port does: shared by the health-check end-to-end tests
//! (`tests/e2e_health.rs`, `tests/e2e_health6.rs`). The rule is of nftables' `inet` family, so
//! it refuses IPv4 and IPv6 connections alike.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use crate::common::Lab;

/// Makes a lab namespace refuse new TCP connections to a port, as a stopped server's closed port
/// does (a reset to the SYN), at a known moment: an `nft -i` shell runs in the namespace, so a
/// rule goes in or out within about a millisecond of the command instead of the tens of
/// milliseconds a fresh `ip netns exec nft` takes on a loaded machine. Connections already open
/// are left alone (only initial SYNs match). The rules live in the namespace, deleted with the
/// lab; the shell ends when its stdin closes (on drop).
pub struct PortGate {
    shell: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    port: u16,
}

impl PortGate {
    pub fn new(lab: &Lab, role: &str, port: u16) -> PortGate {
        let mut shell = Command::new("ip")
            .args(["netns", "exec", &lab.ns(role), "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nft -i (scripts/install-deps installs nftables)");
        let input = shell.stdin.take().unwrap();
        let output = BufReader::new(shell.stdout.take().unwrap());
        let mut gate = PortGate {
            shell,
            input,
            output,
            port,
        };
        gate.run("add table inet xvs_test_gate");
        gate.run("add chain inet xvs_test_gate input { type filter hook input priority 0 ; }");
        gate
    }

    /// Runs `cmd`, then waits until the shell has applied it: it answers a listing of the
    /// table sent after it (commands run in order). Returns the moment just before `cmd` was
    /// sent, and the listing.
    fn run(&mut self, cmd: &str) -> (Instant, String) {
        let at = Instant::now();
        writeln!(self.input, "{cmd}\nlist table inet xvs_test_gate").unwrap();
        self.input.flush().unwrap();
        let mut listing = String::new();
        loop {
            let n = self.output.read_line(&mut listing).unwrap();
            assert!(n > 0, "nft -i ended after `{cmd}`");
            // The listing's last line closes the table (inner blocks close indented).
            if listing.ends_with("\n}\n") {
                return (at, listing);
            }
        }
    }

    /// From now on the port refuses new connections; returns the moment before the rule went in.
    pub fn close(&mut self) -> Instant {
        let rule = format!(
            "add rule inet xvs_test_gate input tcp dport {} tcp flags & (syn | ack) == syn reject with tcp reset",
            self.port
        );
        let (at, listing) = self.run(&rule);
        assert!(
            listing.contains("reject with tcp reset"),
            "nft refused `{rule}`:\n{listing}"
        );
        at
    }

    /// From now on the port accepts connections again; returns the moment before the rule went.
    pub fn open(&mut self) -> Instant {
        let (at, listing) = self.run("flush chain inet xvs_test_gate input");
        assert!(!listing.contains("reject"), "the rule stayed:\n{listing}");
        at
    }
}

impl Drop for PortGate {
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}
