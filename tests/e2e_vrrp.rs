//! End to end, VRRP failover on the lab's `vrrp` topology (two load balancers, lb1 and lb2, on
//! one client-side switch and one LAN switch; see `scripts/lab`), running `config/vrrp.yaml`
//! with `poll: wakeup`, lb1 at priority 200 and lb2 at 150 (VRRPv3, 100 ms adverts, VI_1 = the
//! VIP on wan0, VI_2 = the real servers' gateway on lan0, both in sync group G1).
//!
//! - `single_lb_becomes_master_and_owns_the_vip`: one box alone becomes MASTER, adds the VIP and
//!   the gateway, serves, shows its state in `xvs ctl vrrp` and the metrics, and gives both
//!   addresses back on SIGTERM.
//! - `failover_on_sigterm_and_sigkill`: lb1 master, lb2 backup (holding nothing); SIGTERM lb1 →
//!   lb2 MASTER within 100 ms (the priority-0 release); lb1 restarted → takes over again
//!   (preemption); SIGKILL lb1 → lb2 MASTER and requests resume within Master_Down_Interval +
//!   100 ms of the kill (counting only requests started once lb1's links were down, so served
//!   by lb2, never one that slipped through lb1 before it died); the killed box, restarted at a lower priority, removes the VIPs it left behind. A
//!   SIGKILLed box is a dead box here: the test takes lb1's links down right after the
//!   kill, as a power loss would (a killed process on a live box leaves its addresses and its XDP
//!   program behind, and its kernel would keep answering ARP for the VIP — keepalived has the
//!   same property).
//! - `reload_keeps_the_state_of_unchanged_instances`: a reload changes an instance's priority in
//!   place (it stays MASTER, no new transition), removes one (its address is released) and adds
//!   one (it starts); an instance whose VRID changes is a new virtual router.
//! - `unicast_tracking_notify_and_a_backup_never_forwards`: unicast peers; a client that sends
//!   straight to the backup's MAC gets no answer and the backup schedules nothing; a failing
//!   track script (weight −100) hands the sync group over and back without flapping; a tracked
//!   interface down → FAULT and the other box takes over; notify commands run.
//!
//! The figures are printed (`cargo test --release --test e2e_vrrp -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

#[path = "common/vrrp.rs"]
mod vrrp_lab;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Lab, Xvs, VIP};
use vrrp_lab::*;

const XVS: &str = env!("CARGO_BIN_EXE_xvs");

fn metric(page: &str, line_start: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric `{line_start}` in:\n{page}"))
}

#[test]
fn single_lb_becomes_master_and_owns_the_vip() {
    let lab = Lab::up("vrrp");
    lab.serve();
    let lb1 = write_config(&lab, "lb1", 200);
    let mut x = start(&lab, &lb1);
    assert!(
        wait_state(&lb1.socket, "MASTER"),
        "lb1 never became MASTER: {:?}\n{}",
        vrrp(&lb1.socket),
        x.log()
    );
    let log = x.log();
    for line in [
        "(VI_1) Entering BACKUP STATE",
        "(VI_1) Entering MASTER STATE",
        "(VI_2) Entering MASTER STATE",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }
    let addrs = addresses(&lab, "lb1");
    assert!(addrs.contains("198.18.0.100/32"), "{addrs}");
    assert!(addrs.contains("198.18.1.1/24"), "{addrs}");

    assert!(lab.wait_http_ready(Duration::from_secs(10)), "{}", x.log());
    let s = lab.http_client(20);
    assert_eq!(s.ok, 20, "{s:?}");

    let v = vrrp(&lb1.socket);
    assert!(
        v.contains(&(
            "VI_1".into(),
            "MASTER".into(),
            200,
            Some("198.18.0.11".into())
        )),
        "{v:?}"
    );
    let text = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(&lb1.socket)
        .arg("vrrp")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("VI_1") && l.contains("MASTER") && l.contains("198.18.0.11")),
        "{text}"
    );
    let page = lab.metrics_in("lb1");
    assert_eq!(
        metric(&page, "xvs_vrrp_state{instance=\"VI_1\",vrid=\"51\"}"),
        2.0
    );
    assert!(
        metric(
            &page,
            "xvs_vrrp_adverts_sent_total{instance=\"VI_1\",vrid=\"51\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &page,
            "xvs_vrrp_transitions_total{instance=\"VI_1\",vrid=\"51\"}"
        ) >= 2.0
    );
    assert_no_vrrp_errors(&page, "lb1");

    let st = x.stop();
    assert!(st.success(), "{}", x.log());
    assert!(x.log().contains("(VI_1) sent 0 priority"), "{}", x.log());
    let addrs = addresses(&lab, "lb1");
    assert!(
        !addrs.contains("198.18.0.100") && !addrs.contains("198.18.1.1/"),
        "VIPs left after a clean stop: {addrs}"
    );
}

/// The `vrrp` lab's pair serving: lb1 MASTER (priority 200), lb2 BACKUP (150), HTTP through
/// the VIP answered.
fn master_and_backup(lab: &Lab) -> (Box_, Xvs, Box_, Xvs) {
    lab.serve();
    let lb1 = write_config(lab, "lb1", 200);
    let lb2 = write_config(lab, "lb2", 150);
    let x1 = start(lab, &lb1);
    let x2 = start(lab, &lb2);
    assert!(wait_state(&lb1.socket, "MASTER"), "{}", x1.log());
    assert!(wait_state(&lb2.socket, "BACKUP"), "{}", x2.log());
    assert!(lab.wait_http_ready(Duration::from_secs(10)), "{}", x1.log());
    (lb1, x1, lb2, x2)
}

#[test]
fn failover_on_sigterm_and_sigkill() {
    let lab = Lab::up("vrrp");
    let (lb1, mut x1, lb2, x2) = master_and_backup(&lab);
    let addrs2 = addresses(&lab, "lb2");
    assert!(
        !addrs2.contains("198.18.0.100") && !addrs2.contains("198.18.1.1/"),
        "the backup holds a VIP: {addrs2}"
    );
    let v2 = vrrp(&lb2.socket);
    assert!(
        v2.iter()
            .any(|i| i.0 == "VI_1" && i.3.as_deref() == Some("198.18.0.11")),
        "the backup should name lb1 as master: {v2:?}"
    );

    // 1. SIGTERM: lb1 sends priority 0; lb2 takes over after its Skew_Time.
    let already = x2.log().matches("(VI_1) Entering MASTER STATE").count();
    let mut handover = Duration::ZERO;
    let (resume_term, gap_term) = stream_through(&lab, || {
        let at = unix_now();
        // kill(2) from here (no `kill` process spawned), and lb2's log watched every 1 ms: the
        // figure is the handover itself plus at most ~1 ms of observation.
        let t0 = x1.signal_now(libc::SIGTERM);
        let seen = x2.wait_log_every(
            "(VI_1) Entering MASTER STATE",
            already,
            Duration::from_secs(5),
            Duration::from_millis(1),
        );
        handover = seen.map_or(Duration::MAX, |t| t - t0);
        (at, at)
    });
    let st = x1.stop();
    assert!(st.success(), "{}", x1.log());
    eprintln!(
        "SIGTERM: handover {:.1} ms (signal → backup MASTER); requests resumed {resume_term:.1} ms after the signal (stream gap {gap_term:.1} ms)",
        handover.as_secs_f64() * 1000.0
    );
    assert!(
        handover <= Duration::from_millis(100),
        "SIGTERM handover took {handover:?}\nlb2:\n{}",
        x2.log()
    );
    assert!(wait_state(&lb2.socket, "MASTER"), "{}", x2.log());
    let addrs2 = addresses(&lab, "lb2");
    assert!(addrs2.contains("198.18.0.100/32"), "{addrs2}");

    // 2. lb1 comes back with the higher priority and preempts.
    let x1 = start(&lab, &lb1);
    assert!(wait_state(&lb1.socket, "MASTER"), "{}", x1.log());
    assert!(wait_state(&lb2.socket, "BACKUP"), "{}", x2.log());
    assert!(lab.wait_http_ready(Duration::from_secs(10)), "{}", x1.log());
    let s = lab.http_client(10);
    assert_eq!(s.ok, 10, "{s:?}");

    // 3. SIGKILL + links down (a dead box): lb2 takes over after Master_Down_Interval. Timed
    //    from just before kill(2) (sent from here, no `kill` process spawned); only requests
    //    that started once lb1's links were down count as resumed.
    sigkill_failover(&lab, &x1, &lb2, &x2, "vrrp lab");
    drop(x1);

    // 4. The killed box comes back (links up) with its stale VIPs still on its interfaces; xvs
    //    restarted there at a lower priority enters BACKUP and removes them.
    let addrs1 = addresses(&lab, "lb1");
    assert!(
        addrs1.contains("198.18.0.100/32"),
        "a SIGKILL leaves the VIP: {addrs1}"
    );
    for dev in ["wan0", "lan0"] {
        lab.exec_ok("lb1", &["ip", "link", "set", "dev", dev, "up"]);
    }
    let lb1_low = write_config(&lab, "lb1", 100);
    let x1 = start(&lab, &lb1_low);
    assert!(wait_state(&lb1_low.socket, "BACKUP"), "{}", x1.log());
    let addrs1 = addresses(&lab, "lb1");
    assert!(
        !addrs1.contains("198.18.0.100") && !addrs1.contains("198.18.1.1/"),
        "stale VIPs not removed: {addrs1}"
    );
    assert!(wait_state(&lb2.socket, "MASTER"), "{}", x2.log());
    assert!(lab.wait_http_ready(Duration::from_secs(5)));
    drop(x1);
}

/// The MAC an interface has now (`ip -o link show DEV`, `link/ether` field).
fn link_mac(lab: &Lab, role: &str, dev: &str) -> String {
    let out = lab.exec_ok(role, &["ip", "-o", "link", "show", "dev", dev]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "link/ether");
    words.next().unwrap_or_default().to_string()
}

/// A box whose MAC changed while it was BACKUP announces its new MAC when it takes over: the
/// datapath serves only an interface's current MAC (`not_our_mac`), so gratuitous ARPs that
/// named the MAC read at start-up would strand the VIP until the client's ARP entry expired.
#[test]
fn a_mac_changed_while_backup_is_announced_on_takeover() {
    let lab = Lab::up("vrrp");
    let (_, mut x1, _, x2) = master_and_backup(&lab);

    let new_macs = [("wan0", "02:18:00:00:71:12"), ("lan0", "02:18:00:00:71:22")];
    for (dev, mac) in new_macs {
        assert_ne!(link_mac(&lab, "lb2", dev), mac);
        lab.exec_ok("lb2", &["ip", "link", "set", "dev", dev, "address", mac]);
        assert_eq!(link_mac(&lab, "lb2", dev), mac);
    }
    // The datapath follows a MAC change within its 250 ms main-loop wake-up.
    std::thread::sleep(Duration::from_millis(600));

    let already = x2.log().matches("(VI_1) Entering MASTER STATE").count();
    let _ = x1.signal_now(libc::SIGTERM);
    assert!(
        x2.wait_log(
            "(VI_1) Entering MASTER STATE",
            already,
            Duration::from_secs(5)
        )
        .is_some(),
        "{}",
        x2.log()
    );
    assert!(x1.stop().success(), "{}", x1.log());
    // The client learns the new MAC from lb2's gratuitous ARPs (sent at once on MASTER).
    let end = Instant::now() + Duration::from_secs(2);
    let neigh = || lab.exec_ok("client", &["ip", "neigh", "show", VIP, "dev", "eth0"]);
    while Instant::now() < end && !neigh().contains(new_macs[0].1) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        neigh().contains(new_macs[0].1),
        "the client's entry for the VIP does not name lb2's new MAC: {}\nlb2:\n{}",
        neigh(),
        x2.log()
    );
    let s = lab.http_client_url(&format!("http://{VIP}/"), 10, 1.0);
    assert_eq!(
        s.ok,
        10,
        "through lb2 with its new MAC: {s:?}\n{}",
        x2.log()
    );
}

/// A config for lb1 with the given `vrrp:` section (VRRPv3, 100 ms).
fn reload_config(socket: &Path, vrrp: &str) -> String {
    format!(
        "global:\n  router_id: lb1\n  admin_socket: {}\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n    - {{ name: lan0, queues: [0] }}\n  poll: wakeup\n\
         services:\n  - name: web\n    vip: 198.18.0.100\n    port: 80\n    reals:\n      - address: 198.18.1.11:80\n\
         vrrp:\n{vrrp}",
        socket.display()
    )
}

fn ctl(socket: &Path, args: &[&str]) -> String {
    let out = Command::new(XVS)
        .args(["ctl", "--socket"])
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_instance(socket: &Path, name: &str, state: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if vrrp(socket).iter().any(|i| i.0 == name && i.1 == state) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn reload_keeps_the_state_of_unchanged_instances() {
    let lab = Lab::up("vrrp");
    let socket = lab.admin_socket("lb1");
    let config = lab.file("vrrp-reload.yaml");
    let vi1 = |prio: u32, vrid: u32| {
        format!("    - {{ name: VI_1, interface: wan0, vrid: {vrid}, priority: {prio}, advert_interval: 100ms, vips: [198.18.0.100/32] }}\n")
    };
    let vi2 = "    - { name: VI_2, interface: lan0, vrid: 52, advert_interval: 100ms, vips: [198.18.1.1/24] }\n";
    let vi3 = "    - { name: VI_3, interface: lan0, vrid: 53, advert_interval: 100ms, vips: [198.18.1.2/24] }\n";
    let first = format!("  instances:\n{}{vi2}", vi1(200, 51));
    std::fs::write(&config, reload_config(&socket, &first)).unwrap();
    let lb1 = Box_ {
        role: "lb1",
        config: config.clone(),
        socket: socket.clone(),
    };
    let x = start(&lab, &lb1);
    assert!(wait_state(&socket, "MASTER"), "{}", x.log());
    let masters = |x: &Xvs| x.log().matches("(VI_1) Entering MASTER STATE").count();
    assert_eq!(masters(&x), 1);

    // VI_1: priority changed (same identity) → stays MASTER, new priority in place.
    // VI_2 removed → releases 198.18.1.1. VI_3 added → starts (BACKUP, then MASTER alone).
    let second = format!("  instances:\n{}{vi3}", vi1(220, 51));
    std::fs::write(&config, reload_config(&socket, &second)).unwrap();
    let out = ctl(&socket, &["reload"]);
    for want in [
        "VRRP instance VI_1 changed",
        "VRRP instance VI_2 removed",
        "VRRP instance VI_3 added",
    ] {
        assert!(out.contains(want), "reload said:\n{out}");
    }
    assert!(wait_instance(&socket, "VI_3", "MASTER"), "{}", x.log());
    let v = vrrp(&socket);
    assert!(
        v.iter()
            .any(|i| i.0 == "VI_1" && i.1 == "MASTER" && i.2 == 220),
        "{v:?}"
    );
    assert!(!v.iter().any(|i| i.0 == "VI_2"), "{v:?}");
    assert_eq!(masters(&x), 1, "VI_1 left MASTER on reload:\n{}", x.log());
    let addrs = addresses(&lab, "lb1");
    assert!(addrs.contains("198.18.0.100/32"), "{addrs}");
    assert!(addrs.contains("198.18.1.2/24"), "{addrs}");
    assert!(!addrs.contains("198.18.1.1/"), "{addrs}");
    assert!(x.log().contains("(VI_2) sent 0 priority"), "{}", x.log());
    let page = lab.metrics_in("lb1");
    assert!(
        page.contains("xvs_vrrp_state{instance=\"VI_3\",vrid=\"53\"} 2"),
        "{page}"
    );
    assert!(!page.contains("instance=\"VI_2\""), "{page}");

    // VI_1 with another VRID is another virtual router: the old one stops, the new one starts.
    let third = format!("  instances:\n{}{vi3}", vi1(220, 61));
    std::fs::write(&config, reload_config(&socket, &third)).unwrap();
    let out = ctl(&socket, &["reload"]);
    assert!(
        out.contains("VRRP instance VI_1 removed") && out.contains("VRRP instance VI_1 added"),
        "reload said:\n{out}"
    );
    assert!(wait_instance(&socket, "VI_1", "MASTER"), "{}", x.log());
    assert_eq!(masters(&x), 2, "{}", x.log());
    assert!(wait_instance(&socket, "VI_3", "MASTER"));
    drop(x);
}

/// lb1/lb2 config with unicast peers, notify commands writing to `notify`, and (lb1) a track
/// script on both members of the sync group that fails while `down` exists (weight −100:
/// 200 → 100, below lb2's 150). As with keepalived, every member of a sync group tracks it: a
/// group member takes over only when all members want to.
fn unicast_config(
    socket: &Path,
    me: u8,
    priority: u8,
    notify: &Path,
    down: Option<&Path>,
) -> String {
    let peer = 3 - me;
    let n = notify.display();
    let notify = format!(
        "{{ master: \"echo $0 master >> {n}\", backup: \"echo $0 backup >> {n}\", fault: \"echo $0 fault >> {n}\" }}"
    );
    let script = down.map_or(String::new(), |d| {
        format!(
            "      track_scripts:\n        - {{ command: \"test ! -e {}\", interval: 100ms, rise: 2, fall: 2, weight: -100 }}\n",
            d.display()
        )
    });
    format!(
        "global:\n  router_id: lb{me}\n  admin_socket: {}\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n    - {{ name: lan0, queues: [0] }}\n  poll: wakeup\n\
         services:\n  - name: web\n    vip: 198.18.0.100\n    port: 80\n    reals:\n      - address: 198.18.1.11:80\n      - address: 198.18.1.12:80\n\
         vrrp:\n  instances:\n\
         \x20   - name: VI_1\n      interface: wan0\n      vrid: 51\n      priority: {priority}\n      advert_interval: 100ms\n      vips: [198.18.0.100/32]\n      unicast_peers: [198.18.0.1{peer}]\n      track_interfaces: [lan0]\n      notify: {notify}\n{script}\
         \x20   - name: VI_2\n      interface: lan0\n      vrid: 52\n      priority: {priority}\n      advert_interval: 100ms\n      vips: [198.18.1.1/24]\n      unicast_peers: [198.18.1.2{peer}]\n{script}\
         \x20 sync_groups:\n    - {{ name: G1, instances: [VI_1, VI_2] }}\n",
        socket.display()
    )
}

/// (name, state) of every instance.
fn states(socket: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = vrrp(socket).into_iter().map(|i| (i.0, i.1)).collect();
    v.sort();
    v
}

fn both(state: &str) -> Vec<(String, String)> {
    vec![
        ("VI_1".to_string(), state.to_string()),
        ("VI_2".to_string(), state.to_string()),
    ]
}

fn wait_both(socket: &Path, state: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if states(socket) == both(state) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn unicast_tracking_notify_and_a_backup_never_forwards() {
    let lab = Lab::up("vrrp");
    lab.serve();
    // The track script's flag and the notify logs live in the lab's state directory.
    let down = lab.file("track-down");
    let mut boxes = Vec::new();
    for (me, prio) in [(1u8, 200u8), (2, 150)] {
        let role: &'static str = if me == 1 { "lb1" } else { "lb2" };
        let socket = lab.admin_socket(role);
        let notify = lab.file(&format!("{role}.notify"));
        let text = unicast_config(&socket, me, prio, &notify, (me == 1).then_some(&*down));
        let config = lab.write_config(role, &format!("unicast-{role}.yaml"), &text);
        boxes.push((
            Box_ {
                role,
                config,
                socket,
            },
            notify,
        ));
    }
    let (b1, n1) = &boxes[0];
    let (b2, n2) = &boxes[1];
    let x1 = start(&lab, b1);
    assert!(wait_both(&b1.socket, "MASTER"), "{}", x1.log());
    let x2 = start(&lab, b2);
    assert!(wait_both(&b2.socket, "BACKUP"), "{}", x2.log());
    assert!(lab.wait_http_ready(Duration::from_secs(10)), "{}", x1.log());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let wait_notify = |p: &Path, want: &str| {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !read(p).contains(want) {
            std::thread::sleep(Duration::from_millis(20));
        }
        read(p).contains(want)
    };
    assert!(wait_notify(n1, "master"), "lb1 notify: {}", read(n1));
    assert!(wait_notify(n2, "backup"), "lb2 notify: {}", read(n2));

    // The backup never forwards: the client sends straight to lb2's MAC; nothing answers, and
    // lb2's datapath schedules no connection.
    lab.exec_ok(
        "client",
        &[
            "ip",
            "neigh",
            "replace",
            VIP,
            "lladdr",
            "02:18:00:00:00:12",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let s = lab.http_client_url(&format!("http://{VIP}/"), 3, 0.3);
    assert_eq!(s.ok, 0, "the backup answered for the VIP: {s:?}");
    let page2 = lab.metrics_in("lb2");
    let scheduled: f64 = page2
        .lines()
        .filter(|l| l.starts_with("xvs_service_connections_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(scheduled, 0.0, "the backup scheduled connections:\n{page2}");
    lab.exec_ok("client", &["ip", "neigh", "del", VIP, "dev", "eth0"]);
    assert!(lab.wait_http_ready(Duration::from_secs(5)));

    // Track script fails (weight −100: 200 → 100): lb2 (150) preempts; the sync group keeps
    // both instances together and stable.
    std::fs::write(&down, b"").unwrap();
    assert!(wait_both(&b2.socket, "MASTER"), "{}", x2.log());
    assert!(wait_both(&b1.socket, "BACKUP"), "{}", x1.log());
    assert!(
        x1.log()
            .contains("(VI_1) Changing effective priority from 200 to 100"),
        "{}",
        x1.log()
    );
    let masters1 = x1.log().matches("Entering MASTER STATE").count();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        x1.log().matches("Entering MASTER STATE").count(),
        masters1,
        "lb1 flapped:\n{}",
        x1.log()
    );
    assert_eq!(states(&b1.socket), both("BACKUP"));
    assert!(lab.wait_http_ready(Duration::from_secs(5)));
    // Script succeeds again: lb1 back to 200 and MASTER.
    std::fs::remove_file(&down).unwrap();
    assert!(wait_both(&b1.socket, "MASTER"), "{}", x1.log());
    assert!(wait_both(&b2.socket, "BACKUP"), "{}", x2.log());

    // A tracked interface down → FAULT (lan0: VI_2's own, tracked by VI_1); lb2 takes over.
    lab.exec_ok("lb1", &["ip", "link", "set", "dev", "lan0", "down"]);
    assert!(wait_both(&b1.socket, "FAULT"), "{}", x1.log());
    assert!(wait_both(&b2.socket, "MASTER"), "{}", x2.log());
    assert!(
        x1.log().contains("(VI_1) Entering FAULT STATE"),
        "{}",
        x1.log()
    );
    assert!(wait_notify(n1, "fault"), "lb1 notify: {}", read(n1));
    assert!(lab.wait_http_ready(Duration::from_secs(5)));
    lab.exec_ok("lb1", &["ip", "link", "set", "dev", "lan0", "up"]);
    assert!(wait_both(&b1.socket, "MASTER"), "{}", x1.log());
    assert!(wait_both(&b2.socket, "BACKUP"), "{}", x2.log());
    assert!(lab.wait_http_ready(Duration::from_secs(5)));

    for role in ["lb1", "lb2"] {
        let page = lab.metrics_in(role);
        assert_no_vrrp_errors(&page, role);
        assert!(
            metric(
                &page,
                "xvs_vrrp_adverts_received_total{instance=\"VI_1\",vrid=\"51\"}"
            ) > 0.0,
            "{role}: no unicast advert received:\n{page}"
        );
    }
    drop((x1, x2));
}
