//! The admin server over a real socket: answers, relays, and the bounds on slow or silent
//! clients.

use super::*;
use crate::conntrack::ConnState;
use crate::control::admin::answer::tests::{admin_state, insert, shared};
use crate::control::admin::answer::{reload_channel, MainOp, ReloadOutcome, ReloadRequest};
use crate::control::admin::client::{self as ctl, CtlCommand};
use crate::control::admin::protocol::ListReply;
use crate::control::stats::Stats;
use crate::control::testing::{assert_between, web_shared, ServerThread};
use crate::datapath::Shared;
use crate::sched::{RealServer, SchedulerKind};
use crate::vrrp::driver::VrrpStatus;
use crossbeam::channel::Receiver;
use std::net::SocketAddr;

fn temp_socket(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("xvs-admin-test-{}-{name}", std::process::id()))
        .join("admin.sock")
}

fn list_command(json: bool) -> CtlCommand {
    CtlCommand::List {
        stats: false,
        rate: false,
        json,
    }
}

#[test]
fn server_socket_is_private_and_removed_on_stop() {
    let mut server = Server::start("mode", shared(), LIMITS);
    let mode = std::fs::metadata(&server.path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    server.stop();
    assert!(!server.path.exists(), "the socket is removed on stop");
}

#[test]
fn server_answers_ctl_list_conns_and_vrrp() {
    let sh = shared();
    insert(&sh, "198.18.0.2:1000", 0, ConnState::Established, 0);
    let server = Server::start("serve", sh, LIMITS);
    let path = &server.path;
    let out = ctl::execute(path, &list_command(false));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("TCP  198.18.0.100:80 wrr\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  -> 198.18.1.11:80               Masq    3      1          0"),
        "{}",
        out.stdout
    );
    let out = ctl::execute(path, &list_command(true));
    let v: ListReply = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.services[0].reals[0].active_connections, 1);

    let out = ctl::execute(path, &CtlCommand::Conns { json: false });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("TCP 14:5") && out.stdout.contains("ESTABLISHED 198.18.0.2:1000"),
        "{}",
        out.stdout
    );
    let out = ctl::execute(path, &CtlCommand::Vrrp { json: false });
    assert_eq!((out.code, out.stdout.as_str()), (0, "no VRRP instances\n"));

    let (unknown, _) = server.ask("frobnicate\n");
    assert!(
        unknown.starts_with("error\nxvs: unknown request"),
        "{unknown}"
    );
}

#[test]
fn server_relays_reloads_to_the_main_loop() {
    let server = Server::start("reload", shared(), LIMITS);
    // The "main loop": answers two reloads, one accepted and one refused.
    let main = {
        let rx = server.reloads.clone();
        std::thread::spawn(move || {
            let outcomes: [ReloadOutcome; 2] = [
                Ok("Changing weight of service [198.18.1.12]:tcp:80 in VS [198.18.0.100]:tcp:80: 1 -> 2".to_string()),
                Err("f.yaml:3:5: did not find expected key".to_string()),
            ];
            for o in outcomes {
                let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                assert_eq!(req.op, MainOp::Reload);
                req.respond(o);
            }
        })
    };
    let out = ctl::execute(&server.path, &CtlCommand::Reload { json: false });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("1 -> 2"), "{}", out.stdout);
    let out = ctl::execute(&server.path, &CtlCommand::Reload { json: false });
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "f.yaml:3:5: did not find expected key\n");
    main.join().unwrap();
}

#[test]
fn stale_socket_is_replaced_and_a_live_one_refused() {
    let path = temp_socket("stale");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A socket file nobody listens on.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (tx, _rx) = reload_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let state = || {
        let shared = shared();
        AdminState {
            stats: Arc::new(Stats::new(shared.clone(), vec![])),
            shared,
            epoch: Instant::now(),
            reloads: tx.clone(),
            vrrp: Arc::new(VrrpStatus::default()),
            sync: None,
            announce: None,
        }
    };
    let h = spawn_server(&path, state(), stop.clone()).unwrap();
    let e = spawn_server(&path, state(), Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(e.to_string().contains("answers on this socket"), "{e}");
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert!(!path.exists());
    std::fs::write(&path, "not a socket").unwrap();
    let e = spawn_server(&path, state(), Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// One service with `n` real servers (a `list` reply of some 300 bytes per real server).
fn shared_with_reals(n: u16) -> Arc<Shared> {
    let reals = (1..=n)
        .map(|port| RealServer::new(SocketAddr::new("198.18.1.11".parse().unwrap(), port), 1))
        .collect();
    web_shared(SchedulerKind::Rr, reals)
}

/// An admin server in a directory of its own, stopped and removed on drop.
struct Server {
    path: PathBuf,
    thread: ServerThread,
    /// The "main loop" end of the reload channel.
    reloads: Receiver<ReloadRequest>,
    /// Length of the encoded `list` reply.
    list_len: usize,
}

impl Server {
    fn start(name: &str, sh: Arc<Shared>, limits: AdminLimits) -> Server {
        let path = temp_socket(name);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let (tx, reloads) = reload_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let state = admin_state(&sh, tx);
        let list_len = handle(&state, "list\n", &stop).encode().len();
        let thread = spawn_server_with(&path, state, stop.clone(), limits).unwrap();
        Server {
            path,
            thread: ServerThread {
                stop,
                thread: Some(thread),
            },
            reloads,
            list_len,
        }
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `line`, reads the whole reply; returns it and the time taken.
    fn ask(&self, line: &str) -> (String, Duration) {
        let t = Instant::now();
        let mut s = self.connect();
        s.write_all(line.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        (reply, t.elapsed())
    }

    /// Sets `stop`; returns how long the accept thread took to end.
    fn stop(&mut self) -> Duration {
        self.thread.stop()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.thread.stop();
        let _ = std::fs::remove_dir_all(self.path.parent().unwrap());
    }
}

/// Reads until the server closes the connection (10 s at most); returns the bytes read
/// and when the close was seen.
fn until_closed(s: &mut UnixStream) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open after 10 s ({e}), {} bytes read", got.len()),
    }
    (got, Instant::now())
}

const LONG: AdminLimits = AdminLimits {
    max_connections: 64,
    request_deadline: Duration::from_secs(20),
    reply_deadline: Duration::from_secs(30),
};

#[test]
fn silent_clients_and_one_that_never_reads_delay_neither_requests_nor_reloads() {
    let mut server = Server::start("silent", shared_with_reals(5000), LIMITS);
    // Far more than a Unix socket buffers (net.core.wmem_max is 208 KiB by default).
    assert!(server.list_len > 1 << 20, "{}", server.list_len);
    let _silent: Vec<UnixStream> = (0..20).map(|_| server.connect()).collect();
    let mut stuck = server.connect();
    stuck.write_all(b"list\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (reply, took) = server.ask("list\n");
    assert!(
        reply.starts_with("ok\n"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert_eq!(reply.len(), server.list_len);
    assert!(took < Duration::from_secs(1), "list answered in {took:?}");
    let main = {
        let rx = server.reloads.clone();
        std::thread::spawn(move || {
            let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(req.op, MainOp::Reload);
            req.respond(Ok("reloaded".to_string()));
        })
    };
    let (reply, took) = server.ask("reload\n");
    assert_eq!(reply, "ok\nreloaded");
    assert!(took < Duration::from_secs(1), "reload answered in {took:?}");
    main.join().unwrap();

    assert!(server.stop() < Duration::from_millis(500));
    // The stuck client really was stuck: its reply had not all been handed over.
    assert!(until_closed(&mut stuck).0.len() < server.list_len);
}

#[test]
fn a_silent_client_is_answered_with_an_error_at_the_request_deadline() {
    let limits = AdminLimits {
        request_deadline: Duration::from_millis(300),
        ..LONG
    };
    let server = Server::start("deadline", shared(), limits);
    let t = Instant::now();
    let mut s = server.connect();
    let (reply, closed) = until_closed(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "error\nxvs: cannot read the request: no whole request line within 300 ms"
    );
    let (lo, hi) = (Duration::from_millis(300), Duration::from_millis(1300));
    assert_between("answered", closed - t, lo, hi);
}

#[test]
fn the_request_deadline_covers_the_whole_line_not_each_read() {
    let limits = AdminLimits {
        request_deadline: Duration::from_millis(500),
        ..LONG
    };
    let server = Server::start("drip", shared(), limits);
    let t = Instant::now();
    let mut s = server.connect();
    // One byte every 50 ms, never a newline: each read is quick, the line never ends.
    for b in b"list".iter().cycle().take(40) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (reply, closed) = until_closed(&mut s);
    assert!(
        String::from_utf8_lossy(&reply).contains("no whole request line within 500 ms"),
        "{reply:?}"
    );
    let (lo, hi) = (Duration::from_millis(500), Duration::from_millis(1500));
    assert_between("answered", closed - t, lo, hi);
}

#[test]
fn a_client_that_never_reads_is_cut_off_at_the_reply_deadline() {
    let limits = AdminLimits {
        reply_deadline: Duration::from_millis(500),
        ..LONG
    };
    let server = Server::start("noread", shared_with_reals(5000), limits);
    let mut s = server.connect();
    s.write_all(b"list\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let (got, _) = until_closed(&mut s);
    assert!(got.starts_with(b"ok\n"));
    assert!(
        got.len() < server.list_len,
        "the whole reply arrived ({} bytes)",
        got.len()
    );
}

#[test]
fn past_the_cap_the_oldest_idle_connection_is_closed_and_an_answered_one_kept() {
    let limits = AdminLimits {
        max_connections: 2,
        ..LONG
    };
    let server = Server::start("cap", shared(), limits);
    // The oldest waits for a reload: it is being answered and must be kept.
    let mut reloading = server.connect();
    reloading.write_all(b"reload\n").unwrap();
    let req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut silent = server.connect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let (reply, _) = server.ask("list\n");
    assert!(reply.starts_with("ok\n{"), "{reply}");
    let (got, closed) = until_closed(&mut silent);
    assert!(got.is_empty(), "{got:?}");
    assert!(closed - t < Duration::from_secs(1));
    req.respond(Ok("reloaded".to_string()));
    assert_eq!(
        String::from_utf8_lossy(&until_closed(&mut reloading).0),
        "ok\nreloaded"
    );
}

#[test]
fn with_every_connection_being_answered_a_newcomer_waits_its_turn() {
    let limits = AdminLimits {
        max_connections: 1,
        ..LONG
    };
    let server = Arc::new(Server::start("full", shared(), limits));
    let mut reloading = server.connect();
    reloading.write_all(b"reload\n").unwrap();
    let req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
    let newcomer = {
        let server = server.clone();
        std::thread::spawn(move || server.ask("list\n").0)
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!newcomer.is_finished(), "served past the cap");
    req.respond(Ok("reloaded".to_string()));
    assert_eq!(
        String::from_utf8_lossy(&until_closed(&mut reloading).0),
        "ok\nreloaded"
    );
    let reply = newcomer.join().unwrap();
    assert!(reply.starts_with("ok\n{"), "{reply}");
}

#[test]
fn a_connection_closed_to_make_room_does_not_run_its_cut_short_request() {
    let limits = AdminLimits {
        max_connections: 1,
        ..LONG
    };
    let server = Server::start("cut", shared(), limits);
    // "reload" without its newline: not a whole line yet, so the connection is idle.
    let mut partial = server.connect();
    partial.write_all(b"reload").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (reply, _) = server.ask("vrrp\n");
    assert!(reply.starts_with("ok\n"), "{reply}");
    assert!(until_closed(&mut partial).0.is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.reloads.try_recv().is_err(),
        "the closed connection's request ran"
    );
}

#[test]
fn stop_ends_the_server_promptly_and_closes_stuck_connections() {
    let mut server = Server::start("stop", shared_with_reals(5000), LONG);
    let mut silent = server.connect();
    let mut stuck = server.connect();
    stuck.write_all(b"list\n").unwrap();
    // A reload the main loop never answers.
    let mut reloading = server.connect();
    reloading.write_all(b"reload\n").unwrap();
    let _req = server.reloads.recv_timeout(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let took = server.stop();
    assert!(took < Duration::from_millis(500), "stopped in {took:?}");
    assert!(!server.path.exists(), "the socket is removed on stop");
    let t = Instant::now();
    assert!(until_closed(&mut silent).0.is_empty());
    assert!(until_closed(&mut stuck).0.len() < server.list_len);
    let (reply, _) = until_closed(&mut reloading);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "error\nxvs: the daemon is stopping; the reload did not run"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}
