//! The driver over real sockets on the loopback interface, inside the test's own process: two
//! sync threads on 127.0.0.2 and 127.0.0.3 (both on `lo`), fake tables shared with the test.

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::conntrack::ConnState;
use crate::flow::{Endpoint, Proto};
use crate::sync::endpoint::sender_id;
use crate::sync::record::{ConnRecord, SyncOp, SyncRecord};
use crate::sync::tables::InstallRefusal;

/// A fake table both threads' traits and the test share: records to send, records installed,
/// records to dump.
#[derive(Clone, Default)]
struct Fake {
    outbox: Arc<Mutex<Vec<SyncRecord>>>,
    installed: Arc<Mutex<Vec<SyncRecord>>>,
    owned: Arc<Vec<SyncRecord>>,
}

impl RecordSource for Fake {
    fn drain_into(&mut self, out: &mut Vec<SyncRecord>, max: usize) -> usize {
        let mut o = self.outbox.lock().unwrap();
        let n = o.len().min(max);
        out.extend(o.drain(..n));
        n
    }

    fn dropped(&self) -> u64 {
        3
    }
}

impl RecordSink for Fake {
    fn install(&mut self, r: &SyncRecord, _: Nanos) -> Result<(), InstallRefusal> {
        self.installed.lock().unwrap().push(*r);
        Ok(())
    }
}

impl DumpSource for Fake {
    fn dump(&mut self, _: Nanos) -> Box<dyn Iterator<Item = SyncRecord> + Send> {
        Box::new(Vec::clone(&self.owned).into_iter())
    }
}

fn conn(owner: u8, i: u16) -> SyncRecord {
    let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(198, 18, 1, last));
    SyncRecord::Conn(ConnRecord {
        op: SyncOp::Create,
        proto: Proto::Tcp,
        state: ConnState::Established,
        client: Endpoint::new(ip(owner), 1024 + i),
        vip: Endpoint::new(ip(100), 80),
        real: Endpoint::new(ip(11), 80),
        local: None,
        timeout_ms: 60_000,
    })
}

fn start(
    me: IpAddr,
    peer: IpAddr,
    port: u16,
    fake: &Fake,
    stop: &Arc<AtomicBool>,
) -> (Arc<SyncStatus>, JoinHandle<()>) {
    let cfg = DriverConfig {
        interface: "lo".into(),
        ifindex: crate::sys::if_nametoindex("lo").unwrap(),
        port,
        peers: vec![peer],
        group: IpAddr::V4(crate::sync::endpoint::MULTICAST_V4),
        bind: Some(me),
        sender: sender_id(me),
        key: Key::new(b"driver-test-key-0123456789").unwrap(),
    };
    let tables = Tables {
        records: Box::new(fake.clone()),
        dump: Box::new(fake.clone()),
        sink: Box::new(fake.clone()),
    };
    spawn(cfg, tables, Instant::now(), stop.clone()).unwrap()
}

/// Waits (at most 10 s) until `done` holds.
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_threads_over_loopback_dump_and_sync_both_ways() {
    let ip_a: IpAddr = "127.0.0.2".parse().unwrap();
    let ip_b: IpAddr = "127.0.0.3".parse().unwrap();
    // A port of the dynamic range unlikely to be in use; the bind says if it is.
    let port = 40_000 + u16::try_from(std::process::id() % 20_000).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let a = Fake {
        owned: Arc::new((0..500).map(|i| conn(1, i)).collect()),
        ..Fake::default()
    };
    let b = Fake::default();
    let (sa, ta) = start(ip_a, ip_b, port, &a, &stop);
    let (sb, tb) = start(ip_b, ip_a, port, &b, &stop);
    // B gets A's full dump (whichever started first, a request is repeated until answered).
    until("A's dump at B", || b.installed.lock().unwrap().len() == 500);
    // Live records both ways.
    a.outbox
        .lock()
        .unwrap()
        .extend((1000..1100).map(|i| conn(1, i)));
    b.outbox.lock().unwrap().extend((0..10).map(|i| conn(2, i)));
    until("A's live records at B", || {
        b.installed.lock().unwrap().len() == 600
    });
    until("B's live records at A", || {
        a.installed.lock().unwrap().len() == 10
    });
    until("published counters", || {
        let (p, _) = sb.read();
        p.is_some_and(|p| p.stats.peers[0].in_sync && p.stats.peers[0].records_received == 600)
    });
    stop.store(true, Ordering::Relaxed);
    ta.join().unwrap();
    tb.join().unwrap();
    let (p, _) = sa.read();
    let p = p.unwrap();
    assert_eq!(p.ring_dropped, 3);
    assert_eq!(p.stats.peers[0].records_sent, 600);
    assert_eq!(p.stats.peers[0].records_received, 10);
    assert_eq!(p.stats.errors.iter().sum::<u64>(), 0);
    let mut want = a.owned.to_vec();
    want.extend((1000..1100).map(|i| conn(1, i)));
    assert_eq!(*b.installed.lock().unwrap(), want);
}

#[test]
fn a_socket_that_cannot_open_is_a_typed_error() {
    let cfg = DriverConfig {
        interface: "xvs-no-such0".into(),
        ifindex: 0,
        port: 8848,
        peers: vec!["198.18.0.2".parse().unwrap()],
        group: IpAddr::V4(crate::sync::endpoint::MULTICAST_V4),
        bind: None,
        sender: 1,
        key: Key::new(b"driver-test-key-0123456789").unwrap(),
    };
    let e = open_socket(&cfg).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("sync: cannot open the UDP socket on xvs-no-such0 port 8848: "),
        "{e}"
    );
}

#[test]
fn destinations_as_the_socket_sends_to_them() {
    let v4: SocketAddr = "198.18.0.2:8848".parse().unwrap();
    assert_eq!(socket_addr(v4, false, 3), v4);
    assert_eq!(
        socket_addr(v4, true, 3),
        "[::ffff:198.18.0.2]:8848".parse().unwrap()
    );
    let group: SocketAddr = "[ff02::8848]:8848".parse().unwrap();
    let SocketAddr::V6(g) = socket_addr(group, true, 3) else {
        panic!()
    };
    assert_eq!(g.scope_id(), 3);
    let global: SocketAddr = "[2001:2::2]:8848".parse().unwrap();
    assert_eq!(socket_addr(global, true, 3), global);
}
