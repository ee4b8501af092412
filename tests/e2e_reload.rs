//! End to end in the NAT lab (as root): hitless reloads.
//!
//! 20 reloads — weight changes, a real server removed and added back — while the client holds
//! 50 established TCP connections and a request stream runs: no held connection breaks (the
//! ones on a removed real server drain: its replies stay steered until they end), no request
//! fails. A reload with a broken file changes nothing and is reported; so is one with a hostile
//! path (a FIFO nobody writes, `/dev/zero`), which never blocks the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn socket(lab: &Lab) -> PathBuf {
    lab.admin_socket("lb")
}

fn config_path(lab: &Lab) -> PathBuf {
    lab.file("reload.yaml")
}

/// `config/nat.yaml` with `poll: wakeup`, this lab's admin socket, and web's two real servers
/// given by `reals` (lines of `- address: …` entries).
fn write_config(lab: &Lab, reals: &str) {
    let base = std::fs::read_to_string(Lab::config("nat.yaml")).unwrap();
    let web_reals = "      - address: 198.18.1.11:80       # ADDR:PORT; with nat the port may differ from the VIP's
        weight: 3                     # relative share of new connections; 0 = no new flows
      - address: 198.18.1.12:80
        weight: 1                     # (1 is the default)
";
    assert!(
        base.contains(web_reals),
        "config/nat.yaml's web reals moved"
    );
    let path = lab.write_config("lb", "reload.yaml", &base.replace(web_reals, reals));
    assert_eq!(path, config_path(lab));
}

fn reals(w1: u32, w2: Option<u32>) -> String {
    let mut s = format!("      - address: 198.18.1.11:80\n        weight: {w1}\n");
    if let Some(w2) = w2 {
        s += &format!("      - address: 198.18.1.12:80\n        weight: {w2}\n");
    }
    s
}

fn ctl(lab: &Lab, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "--socket"])
        .arg(socket(lab))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn twenty_reloads_under_load_break_nothing_and_a_broken_file_changes_nothing() {
    let lab = Lab::new();
    lab.serve();
    write_config(&lab, &reals(1, Some(1)));
    let xvs = lab.start_xvs_ready(&config_path(&lab));
    let held = lab.hold(50);

    // The plan: weights, r2 removed (with held connections on it) and added back; the last
    // reload removes r2, so the held connections on it answer while it drains.
    let plan: Vec<(u32, Option<u32>)> = (0..20)
        .map(|i| match (i + 3) % 5 {
            0 => (3, Some(1)),
            1 => (1, Some(2)),
            2 => (2, None),
            3 => (1, Some(1)),
            _ => (1, Some(3)),
        })
        .collect();
    let stream = std::thread::scope(|s| {
        let stream = s.spawn(|| lab.http_stream(&format!("http://{VIP}/"), 9.0, 0.02, 2.0));
        std::thread::sleep(Duration::from_millis(500));
        for (i, (w1, w2)) in plan.iter().enumerate() {
            write_config(&lab, &reals(*w1, *w2));
            let out = ctl(&lab, &["reload"]);
            assert!(
                out.status.success(),
                "reload {i} refused: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        // A broken file: refused with FILE:LINE:COL, the running configuration stays.
        let before = ctl(&lab, &["list"]);
        let good = std::fs::read_to_string(config_path(&lab)).unwrap();
        std::fs::write(
            config_path(&lab),
            good.replacen("    scheduler: wrr", "    scheduler: [wrr", 1),
        )
        .unwrap();
        let out = ctl(&lab, &["reload"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(&format!("{}:", config_path(&lab).display())),
            "{err}"
        );
        assert!(err.contains("keeping the running configuration"), "{err}");
        let after = ctl(&lab, &["list"]);
        assert_eq!(
            String::from_utf8_lossy(&before.stdout),
            String::from_utf8_lossy(&after.stdout),
            "a refused reload changed the running configuration"
        );
        stream.join().unwrap()
    });
    assert_eq!(
        stream.failed,
        0,
        "requests failed during reloads: {:?}\n{}",
        stream.errors,
        xvs.log()
    );
    assert!(stream.ok >= 100, "only {} requests in 9 s", stream.ok);
    let log = xvs.log();
    assert_eq!(log.matches("Configuration reloaded").count(), 20, "{log}");
    assert!(
        log.contains("Draining service [198.18.1.12]:tcp:80"),
        "{log}"
    );

    assert_eq!(plan[19].1, None, "the last reload removes r2");
    // Every held connection still works, on whatever server it had (r2's while it drains).
    let held = held.release();
    assert_eq!(
        held.failed, 0,
        "held connections broke: {:?}\n{log}",
        held.errors
    );
    assert_eq!(held.ok, 50);
    assert!(
        held.count("r2") > 0,
        "some held connections were on r2: {:?}",
        held.by_server
    );
    drop(xvs);
}

#[test]
fn ctl_real_adds_edits_and_deletes_a_real_server_at_run_time() {
    let lab = Lab::new();
    lab.serve();
    write_config(&lab, &reals(1, None));
    let xvs = lab.start_xvs_ready(&config_path(&lab));
    let real = |args: &[&str]| {
        let mut a = vec!["real"];
        a.extend_from_slice(args);
        ctl(&lab, &a)
    };
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Only r1 at first.
    assert_eq!(lab.http_client(20).count("r2"), 0);

    let out = ok(real(&["add", "web", "198.18.1.12:80", "--weight", "1"]));
    assert!(
        out.contains("Adding service [198.18.1.12]:tcp:80 to VS [198.18.0.100]:tcp:80"),
        "{out}"
    );
    let s = lab.http_client(40);
    assert_eq!(
        (s.failed, s.count("r1"), s.count("r2")),
        (0, 20, 20),
        "{s:?}"
    );

    let out = ok(real(&[
        "edit",
        "web",
        "198.18.1.12:80",
        "--weight",
        "3",
        "--json",
    ]));
    let json: serde_json::Value = serde_json::from_str(&out).expect("--json parses");
    assert!(
        json["changes"][0]
            .as_str()
            .unwrap()
            .contains("Changing weight of service [198.18.1.12]:tcp:80"),
        "{json}"
    );
    let s = lab.http_client(40);
    assert_eq!(
        (s.failed, s.count("r1"), s.count("r2")),
        (0, 10, 30),
        "{s:?}"
    );

    // Refusals: one line, exit 1, nothing changed.
    for (args, says) in [
        (
            &["add", "web", "198.18.1.12:80"][..],
            "already a real server",
        ),
        (
            &["edit", "web", "198.18.1.99:80", "--weight", "2"][..],
            "is not a real server",
        ),
        (&["edit", "web", "198.18.1.12:80"][..], "give --weight N"),
        (
            &["del", "nosuch", "198.18.1.12:80"][..],
            "no service named `nosuch`",
        ),
        (
            &["add", "web", "198.18.0.100:80"][..],
            "has the VIP's address",
        ),
        (&["add", "web", "127.0.0.1:80"][..], "is a loopback address"),
        (
            &["add", "web", "198.18.1.1:80"][..],
            "is an address of this box (198.18.1.1/24)",
        ),
        (
            &["add", "web", "198.18.1.255:80"][..],
            "is the broadcast address of 198.18.1.0/24, a subnet of interface lan0",
        ),
    ] {
        let out = real(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // del drains: a held connection on r2 still completes, new ones avoid r2.
    let held = lab.hold(8);
    let out = ok(real(&["del", "web", "198.18.1.12:80"]));
    assert!(
        out.contains("Removing service [198.18.1.12]:tcp:80"),
        "{out}"
    );
    let s = lab.http_client(20);
    assert_eq!((s.failed, s.count("r2")), (0, 0), "{s:?}");
    let held = held.release();
    assert_eq!(held.failed, 0, "{:?}\n{}", held.errors, xvs.log());
    assert!(held.count("r2") > 0, "{:?}", held.by_server);
    assert!(
        xvs.log().contains("Draining service [198.18.1.12]:tcp:80"),
        "{}",
        xvs.log()
    );
    // Reloading the file replaces run-time changes; --json lists the change lines.
    ok(real(&["add", "web", "198.18.1.13:80"]));
    let out = ok(ctl(&lab, &["reload", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&out).expect("reload --json parses");
    let lines: Vec<&str> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"Removing service [198.18.1.13]:tcp:80 from VS [198.18.0.100]:tcp:80"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last(),
        Some(&"Configuration reloaded (1 change)"),
        "{lines:?}"
    );
    drop(xvs);
}

/// `xvs ctl ARGS`, failing the test if it has not answered within `limit`.
fn ctl_within(lab: &Lab, args: &[&str], limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvs"))
        .args(["ctl", "--socket"])
        .arg(socket(lab))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xvs ctl {args:?} did not answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fifo_or_a_device_at_the_config_path_is_refused_and_sigterm_still_stops_xvs() {
    let lab = Lab::new();
    lab.serve();
    write_config(&lab, &reals(1, Some(1)));
    let mut xvs = lab.start_xvs_ready(&config_path(&lab));
    let before = ctl(&lab, &["list"]);
    assert!(before.status.success());

    // A FIFO nobody writes, swapped in at the config path, then SIGHUP: refused at once.
    let path = config_path(&lab);
    std::fs::remove_file(&path).unwrap();
    let st = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
    let hup = xvs.signal_now(libc::SIGHUP);
    let refused = xvs
        .wait_log(
            "is a FIFO (named pipe), not a regular file",
            0,
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("the FIFO was not refused:\n{}", xvs.log()));
    assert!(
        xvs.wait_log(
            "keeping the running configuration",
            0,
            Duration::from_secs(2)
        )
        .is_some(),
        "{}",
        xvs.log()
    );
    eprintln!("FIFO refused {:?} after SIGHUP", refused - hup);
    // `xvs ctl reload` gets the same one-line answer, promptly.
    let out = ctl_within(&lab, &["reload"], Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "{}: is a FIFO (named pipe), not a regular file",
            path.display()
        )) && err.contains("keeping the running configuration"),
        "{err}"
    );

    // /dev/zero (it once ate 2 GB) behind a symlink at the config path.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let out = ctl_within(&lab, &["reload"], Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a character device, not a regular file"),
        "{err}"
    );

    // The running configuration stayed, and serves.
    let after = ctl(&lab, &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&before.stdout),
        String::from_utf8_lossy(&after.stdout),
        "a refused reload changed the running configuration"
    );
    let s = lab.http_client(20);
    assert_eq!((s.ok, s.failed), (20, 0), "{:?}\n{}", s.errors, xvs.log());

    // SIGTERM stops it promptly, the FIFO still at the config path.
    std::fs::remove_file(&path).unwrap();
    let st = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(st.success());
    let term = xvs.signal_now(libc::SIGTERM);
    while xvs.running() && term.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = term.elapsed();
    assert!(!xvs.running(), "xvs ignored SIGTERM:\n{}", xvs.log());
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    xvs.stop_cleanly();
}
