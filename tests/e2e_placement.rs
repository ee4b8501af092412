//! End to end, worker placement (`datapath.cpus`): by default the worker runs off CPU 0 and no
//! other thread of xvs may run on the worker's CPU; `cpus: [0]` puts the worker on CPU 0 (and
//! the control threads on the others); `xvs check` refuses a CPU the process cannot use at the
//! list element's `FILE:LINE:COL`.
//!
//! The threads are read from `/proc/PID/task/*/{comm,status}` (`Cpus_allowed_list`). The test
//! may itself run under `taskset -c 0`: it gives xvs every online CPU (its own thread's mask,
//! widened while it starts xvs, then restored), as a daemon started by systemd would have.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Lab, Xvs};
use xvs::datapath::placement::cpu_list;
use xvs::sys;

/// `Cpus_allowed_list` of each thread of `pid`, by thread name (`comm`), sorted.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_else(|| panic!("no Cpus_allowed_list in {}", dir.display()))
            .trim()
            .to_string();
        out.push((comm.trim().to_string(), cpus));
    }
    out.sort();
    out
}

/// The CPUs of the kernel's list format `0-1,4`.
fn parse_list(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
            None => r.parse().unwrap()..=r.parse().unwrap(),
        })
        .collect()
}

/// Starts xvs on `config` with every online CPU allowed (see the module documentation) and
/// waits until VIP:80 answers through it; returns it with the CPUs it was given.
fn start_on_every_cpu(lab: &Lab, config: &std::path::Path) -> (Xvs, Vec<usize>) {
    let own = sys::thread_cpus().unwrap();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    sys::set_thread_cpus(&parse_list(online.trim())).unwrap();
    let given = sys::thread_cpus().unwrap();
    let xvs = lab.start_xvs(config);
    sys::set_thread_cpus(&own).unwrap();
    let ready = lab.wait_http_ready(Duration::from_secs(20));
    assert!(ready, "VIP:80 never answered through xvs:\n{}", xvs.log());
    (xvs, given)
}

/// Asserts that every worker thread (`xvs-q*`) may run on `worker` only and that no other
/// thread may run on it; returns the other threads' CPUs.
#[track_caller]
fn assert_placed(xvs: &Xvs, worker: usize) -> Vec<(String, String)> {
    let all = threads(xvs.pid());
    let (workers, others): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .partition(|(n, _)| n.starts_with("xvs-q"));
    assert!(!workers.is_empty(), "no worker thread in {all:?}");
    for (name, cpus) in &workers {
        assert_eq!(cpus, &worker.to_string(), "{name} in {all:?}");
    }
    assert!(others.len() >= 5, "too few control threads: {all:?}");
    for (name, cpus) in &others {
        assert!(
            !parse_list(cpus).contains(&worker),
            "{name} may run on the worker's CPU {worker}: {all:?}"
        );
    }
    others
}

#[test]
fn the_default_keeps_the_worker_off_cpu_0_and_the_control_threads_off_the_worker() {
    let lab = Lab::new();
    lab.serve();
    let (xvs, given) = start_on_every_cpu(&lab, &lab.example_config("nat.yaml"));
    assert!(
        given.len() > 1,
        "this test needs a machine with two CPUs or more (xvs was given {given:?})"
    );
    let worker = given[1];
    let others = assert_placed(&xvs, worker);
    let control: Vec<usize> = given.iter().copied().filter(|&c| c != worker).collect();
    for (name, cpus) in &others {
        assert_eq!(parse_list(cpus), control, "{name}");
    }
    let line = format!(
        "Workers: queue 0 on CPU {worker}; control threads on CPU{} {}",
        if control.len() == 1 { "" } else { "s" },
        cpu_list(&control)
    );
    assert!(xvs.log().contains(&line), "no `{line}` in:\n{}", xvs.log());
    xvs.stop_cleanly();
}

#[test]
fn a_cpu_list_is_honoured() {
    let lab = Lab::new();
    lab.serve();
    let text = std::fs::read_to_string(Lab::config("nat.yaml"))
        .unwrap()
        .replace("  cpus: auto\n", "  cpus: [0]\n");
    assert!(text.contains("  cpus: [0]\n"));
    let config = lab.write_config("lb", "nat-cpu0.yaml", &text);
    let (xvs, given) = start_on_every_cpu(&lab, &config);
    let others = assert_placed(&xvs, 0);
    if given.len() > 1 {
        for (name, cpus) in &others {
            assert_eq!(parse_list(cpus), given[1..], "{name}");
        }
    }
    assert!(
        xvs.log()
            .contains("Workers: queue 0 on CPU 0; control threads on CPU"),
        "{}",
        xvs.log()
    );
    xvs.stop_cleanly();
}

#[test]
fn check_refuses_a_cpu_the_process_cannot_use_at_its_element() {
    let lab = Lab::new();
    let text = std::fs::read_to_string(Lab::config("nat.yaml"))
        .unwrap()
        .replace("  cpus: auto\n", "  cpus: [0, 9]\n");
    let config = lab.write_config("lb", "nat-cpu9.yaml", &text);
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("[0, 9]").map(|c| (i + 1, c + 5)))
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_xvs");
    let path = config.to_str().unwrap();
    let out = lab.exec("lb", &[bin, "check", "-c", path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // `xvs check` has the test's CPUs (all of them, or just CPU 0 under `taskset -c 0`).
    let own = sys::thread_cpus().unwrap();
    assert!(!own.contains(&9), "this test needs a machine without CPU 9");
    let cpus = cpu_list(&own);
    let want = format!("{path}:{line}:{col}: cpu 9: not in this process's CPUs ({cpus})");
    assert!(
        stderr.lines().any(|l| l == want),
        "want `{want}` in:\n{stderr}"
    );
}
