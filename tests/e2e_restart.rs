//! Restart right after a crash: `xvs run` started the moment the previous xvs was SIGKILLed (no
//! sleep) starts and forwards, although the killed process still holds its interface locks for
//! the tens of milliseconds its exit takes; and a clean stop leaves no lock file behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Lab;

/// Kills and restarts this many times in a row.
const ROUNDS: usize = 3;

/// The lock files of the load balancer's namespace (`/run/xvs/locks/net<NETNS>-if*.lock`).
fn lock_files(lab: &Lab) -> Vec<PathBuf> {
    let ns = lab.exec_ok("lb", &["readlink", "/proc/self/ns/net"]);
    let ns: String = ns.chars().filter(char::is_ascii_digit).collect();
    assert!(!ns.is_empty(), "no network namespace inode");
    let prefix = format!("net{ns}-if");
    let mut out: Vec<PathBuf> = std::fs::read_dir("/run/xvs/locks")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".lock"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_start_right_after_sigkill_succeeds_and_forwards_and_a_clean_stop_leaves_no_lock() {
    let lab = Lab::new();
    lab.serve();
    let cfg = lab.example_config("nat.yaml");
    let mut xvs = lab.start_xvs_ready(&cfg);
    let mut waited_rounds = 0;
    for round in 1..=ROUNDS {
        let old = xvs.pid();
        xvs.signal_now(libc::SIGKILL);
        // At once: no sleep, no wait for the old process to be gone.
        let started = Instant::now();
        let mut next = lab.start_xvs(&cfg);
        let ready = next.wait_log("started (", 0, Duration::from_secs(10));
        let log = next.log();
        assert!(
            ready.is_some() && next.running(),
            "round {round}: the xvs started right after SIGKILL did not start:\n{log}"
        );
        let waited = log.contains(&format!("still held by an exiting xvs (pid {old})"));
        waited_rounds += usize::from(waited);
        eprintln!(
            "round {round}: started {:?} after the SIGKILL; {}",
            started.elapsed(),
            log.lines()
                .filter(|l| l.contains("still held"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        drop(xvs); // reaps the killed one
        xvs = next;
        let s = lab.http_client(20);
        assert_eq!(s.ok, 20, "round {round}: {:?}\n{}", s.errors, xvs.log());
        // The lock files name the running xvs.
        let locks = lock_files(&lab);
        assert_eq!(locks.len(), 2, "one lock per interface: {locks:?}");
        for l in &locks {
            let pid = std::fs::read_to_string(l).unwrap();
            assert_eq!(pid.trim(), xvs.pid().to_string(), "{}", l.display());
        }
    }
    // The race this test is about really happened (the start overlapped the killed process's
    // exit), or the test proved nothing.
    assert!(
        waited_rounds > 0,
        "no start overlapped the killed xvs's exit in {ROUNDS} rounds"
    );
    // (A second xvs while one runs is still refused at once: `e2e_nat`.)
    xvs.stop_cleanly();
    let left = lock_files(&lab);
    assert!(
        left.is_empty(),
        "lock files left after a clean stop: {left:?}"
    );
}
