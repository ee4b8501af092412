//! End-to-end test of the AF_XDP datapath: the XDP filter, the shared-UMEM sockets and the worker
//! loop, on veth pairs in network namespaces.
//!
//! Needs root, `ip`, `ethtool`, `ping`, `arping` and `clang`. A test that cannot build its lab
//! fails; it never skips. Every namespace is named `xvsx<pid>-<tag>-<role>` and deleted when the
//! test ends, pass or fail (a Drop guard); addresses come from 198.18.0.0/15.
//!
//! ```text
//!  client ns            lb ns (xvs)                     real-server ns
//!  eth0 198.18.0.2 ── wan0 198.18.0.1 | lan0 198.18.1.1 ── eth0 198.18.1.2
//!                     VIP 198.18.0.100:5000/udp  →  RS 198.18.1.2:5000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "fixtures/bpf.rs"]
mod bpf;
mod common;

use common::in_netns;

use xvs::datapath::filter::{
    attached_programs, ifindex_of, AttachMode, FilterError, FilterPort, FilterProgram, XdpMode,
    PROGRAM_NAME,
};
use xvs::datapath::snapshot::SteerKey;
use xvs::datapath::worker::{spawn_workers, FrameHandler, PollMode, WorkerConfig};
use xvs::datapath::xsk::{QueueIo, XskConfig};
use xvs::datapath::{DropReason, PortId, Verdict, WorkerCounters};
use xvs::flow::{Nanos, Proto};

const WAN_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x00, 0x01];
const CL_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x00, 0x02];
const LAN_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x01, 0x01];
const RS_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x01, 0x02];
const WAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const LAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const RS_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const PORT: u16 = 5000;

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command; panics with its output if it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ns_run(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// The namespaces of one test; deleted on drop, pass or fail.
struct Lab {
    lb: String,
    cl: String,
    rs: String,
    created: Vec<String>,
    files: Vec<PathBuf>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Deletes namespaces left by earlier runs of this test binary whose process is gone.
fn remove_orphaned_namespaces() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("xvsx") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

impl Lab {
    fn new(tag: &str) -> Lab {
        remove_orphaned_namespaces();
        let prefix = format!("xvsx{}-{tag}", std::process::id());
        let mut lab = Lab {
            lb: format!("{prefix}-lb"),
            cl: format!("{prefix}-cl"),
            rs: format!("{prefix}-rs"),
            created: Vec::new(),
            files: Vec::new(),
        };
        for ns in [lab.lb.clone(), lab.cl.clone(), lab.rs.clone()] {
            lab.created.push(ns.clone());
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let (lb, cl, rs) = (lab.lb.as_str(), lab.cl.as_str(), lab.rs.as_str());
        for (lb_dev, lb_mac, peer_ns, peer_mac) in
            [("wan0", WAN_MAC, cl, CL_MAC), ("lan0", LAN_MAC, rs, RS_MAC)]
        {
            run(&[
                "ip",
                "link",
                "add",
                lb_dev,
                "address",
                &mac_str(lb_mac),
                "netns",
                lb,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &mac_str(peer_mac),
                "netns",
                peer_ns,
            ]);
        }
        run(&[
            "ip",
            "-n",
            lb,
            "addr",
            "add",
            &format!("{WAN_IP}/24"),
            "dev",
            "wan0",
        ]);
        run(&[
            "ip",
            "-n",
            lb,
            "addr",
            "add",
            &format!("{LAN_IP}/24"),
            "dev",
            "lan0",
        ]);
        run(&[
            "ip",
            "-n",
            cl,
            "addr",
            "add",
            &format!("{CL_IP}/24"),
            "dev",
            "eth0",
        ]);
        run(&[
            "ip",
            "-n",
            rs,
            "addr",
            "add",
            &format!("{RS_IP}/24"),
            "dev",
            "eth0",
        ]);
        // Senders compute full checksums, so user-space rewrites start from valid ones.
        ns_run(cl, &["ethtool", "-K", "eth0", "tx", "off"]);
        ns_run(rs, &["ethtool", "-K", "eth0", "tx", "off"]);
        ns_run(lb, &["ethtool", "-K", "wan0", "tx", "off"]);
        ns_run(lb, &["ethtool", "-K", "lan0", "tx", "off"]);
        for (ns, dev) in [(lb, "wan0"), (lb, "lan0"), (cl, "eth0"), (rs, "eth0")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&[
            "ip",
            "-n",
            rs,
            "route",
            "add",
            "default",
            "via",
            &LAN_IP.to_string(),
        ]);
        // Nobody answers ARP for the VIP in this lab (VRRP would): point it at wan0.
        run(&[
            "ip",
            "-n",
            cl,
            "neigh",
            "replace",
            &VIP.to_string(),
            "lladdr",
            &mac_str(WAN_MAC),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        lab
    }

    fn lb_ports(&self) -> Vec<FilterPort> {
        in_netns(&self.lb, || {
            [("wan0", WAN_MAC), ("lan0", LAN_MAC)]
                .into_iter()
                .map(|(name, mac)| FilterPort {
                    name: name.to_string(),
                    ifindex: ifindex_of(name).expect(name),
                    mac,
                })
                .collect()
        })
    }
}

fn csum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of a UDP datagram over IPv4 (checksum field included as found).
fn udp_sum(src: &[u8], dst: &[u8], udp: &[u8]) -> u16 {
    let mut sum = csum_add(0, src);
    sum = csum_add(sum, dst);
    sum += 17 + udp.len() as u32;
    csum_fold(csum_add(sum, udp))
}

/// Forwards UDP for VIP:PORT from WAN to the real server on LAN, and the real server's replies
/// back with the VIP as source (a minimal NAT), rewriting MACs and checksums in place.
struct SwapHandler {
    counters: Arc<WorkerCounters>,
    bad_checksums: Arc<AtomicU64>,
}

impl FrameHandler for SwapHandler {
    fn begin_batch(&mut self, _now: Nanos) {}

    fn process(
        &mut self,
        _now: Nanos,
        ingress: PortId,
        buf: &mut [u8],
        len: &mut usize,
    ) -> Verdict {
        let frame = &mut buf[..*len];
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            return Verdict::Pass;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let l4 = 14 + ihl;
        if frame.len() < l4 + 8 {
            return Verdict::Drop(DropReason::TruncatedUdp);
        }
        let udp_len = usize::from(u16::from_be_bytes([frame[l4 + 4], frame[l4 + 5]]));
        if udp_len < 8 || frame.len() < l4 + udp_len {
            return Verdict::Drop(DropReason::BadUdpLength);
        }
        if frame[l4 + 6..l4 + 8] != [0, 0]
            && udp_sum(&frame[26..30], &frame[30..34], &frame[l4..l4 + udp_len]) != 0
        {
            self.bad_checksums.fetch_add(1, Ordering::Relaxed);
        }
        let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        let sport = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
        let dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
        let egress = if ingress == 0 && dst == VIP && dport == PORT {
            frame[0..6].copy_from_slice(&RS_MAC);
            frame[6..12].copy_from_slice(&LAN_MAC);
            frame[30..34].copy_from_slice(&RS_IP.octets());
            1
        } else if ingress == 1 && src == RS_IP && sport == PORT {
            frame[0..6].copy_from_slice(&CL_MAC);
            frame[6..12].copy_from_slice(&WAN_MAC);
            frame[26..30].copy_from_slice(&VIP.octets());
            0
        } else {
            return Verdict::Pass;
        };
        frame[24..26].copy_from_slice(&[0, 0]);
        let ip_sum = csum_fold(csum_add(0, &frame[14..14 + ihl]));
        frame[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        frame[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        let (ip, udp) = frame.split_at_mut(l4);
        let mut sum = udp_sum(&ip[26..30], &ip[30..34], &udp[..udp_len]);
        if sum == 0 {
            sum = 0xffff;
        }
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        Verdict::Tx(egress)
    }

    fn counters(&self) -> &WorkerCounters {
        &self.counters
    }
}

fn steering() -> Vec<SteerKey> {
    vec![
        SteerKey::Dst {
            addr: VIP.into(),
            port: PORT,
            proto: Proto::Udp,
        },
        SteerKey::Src {
            addr: RS_IP.into(),
            port: PORT,
            proto: Proto::Udp,
        },
    ]
}

/// Sends `payload` from `from` to `to` until `at` receives it (at most 5 tries, 1 s each).
fn exchange(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, payload: &[u8]) -> SocketAddr {
    at.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        from.send_to(payload, to).expect("send_to");
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match at.recv_from(&mut buf) {
                Ok((n, peer)) if &buf[..n] == payload => return peer,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    panic!(
        "datagram {:?} to {to} never arrived",
        String::from_utf8_lossy(payload)
    );
}

/// Stops the worker even if an assertion fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn programs(ifindex: u32) -> Vec<(u32, String, AttachMode)> {
    attached_programs(ifindex)
        .expect("query XDP programs")
        .into_iter()
        .map(|p| (p.id, p.name, p.mode))
        .collect()
}

/// (a) a steered UDP datagram crosses WAN→LAN (and its reply LAN→WAN) through the shared UMEM,
/// (b) ping and ARP to the namespace's own addresses are answered by the kernel while attached,
/// (c) after `detach` no XDP program remains.
#[test]
fn steered_udp_crosses_the_shared_umem_and_kernel_traffic_still_passes() {
    let lab = Lab::new("a");
    let ports = lab.lb_ports();
    let (wan, lan) = (ports[0].ifindex, ports[1].ifindex);

    let counters = Arc::new(WorkerCounters::default());
    let bad_checksums = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let (filter, workers, stats) = in_netns(&lab.lb, || {
        let filter = FilterProgram::attach(&ports, XdpMode::Auto).expect("attach");
        // veth supports native XDP.
        assert_eq!(filter.attach_mode(0), Some(AttachMode::Native));
        assert_eq!(filter.attach_mode(1), Some(AttachMode::Native));
        assert_eq!(
            programs(wan),
            vec![(
                filter.program_id(),
                PROGRAM_NAME.to_string(),
                AttachMode::Native
            )]
        );

        // Steering sync: insert, idempotent, delete stale.
        let mut keys = steering();
        assert_eq!(filter.set_steering(&keys).unwrap(), (2, 0));
        assert_eq!(filter.set_steering(&keys).unwrap(), (0, 0));
        keys.push(SteerKey::Dst {
            addr: VIP.into(),
            port: 80,
            proto: Proto::Tcp,
        });
        assert_eq!(filter.set_steering(&keys).unwrap(), (1, 0));
        assert_eq!(filter.set_steering(&steering()).unwrap(), (0, 1));

        let cfg = XskConfig {
            ring_size: 512,
            ..XskConfig::default()
        };
        let io = QueueIo::open(&["wan0", "lan0"], 0, &cfg).expect("open AF_XDP sockets");
        // veth has no zero-copy support: auto falls back to copy mode.
        assert!(!io.is_zero_copy());
        for (port, fd) in io.socket_fds() {
            filter
                .register_socket(port, 0, fd)
                .expect("register socket");
        }
        let stats = io.stats_reader();
        let handler = SwapHandler {
            counters: counters.clone(),
            bad_checksums: bad_checksums.clone(),
        };
        let workers = spawn_workers(
            vec![(io, handler)],
            WorkerConfig::new(PollMode::Wakeup, Instant::now()),
            stop.clone(),
        )
        .expect("spawn worker");
        (filter, workers, stats)
    });

    let stop_guard = StopOnDrop(stop.clone());

    // (a) client → VIP crosses WAN→LAN to the real server; its reply crosses LAN→WAN.
    let rs_sock = in_netns(&lab.rs, || UdpSocket::bind((RS_IP, PORT)).expect("bind rs"));
    let cl_sock = in_netns(&lab.cl, || {
        UdpSocket::bind((CL_IP, 0)).expect("bind client")
    });
    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, PORT));
    let client_seen = exchange(&cl_sock, vip, &rs_sock, b"xvs-e2e request");
    assert_eq!(client_seen, cl_sock.local_addr().unwrap());
    let reply_from = exchange(&rs_sock, client_seen, &cl_sock, b"xvs-e2e reply");
    assert_eq!(
        reply_from, vip,
        "the reply must come from the VIP (source rewritten)"
    );

    // A burst of more datagrams than the UMEM has frames (2 ports x 512 x 2 + 128 = 2176): frames must
    // come back from the completion rings, or the exchange after it cannot work.
    for i in 0..5000u32 {
        let _ = cl_sock.send_to(&i.to_be_bytes(), vip);
    }
    exchange(&cl_sock, vip, &rs_sock, b"xvs-e2e after burst");
    exchange(
        &rs_sock,
        client_seen,
        &cl_sock,
        b"xvs-e2e reply after burst",
    );

    // (b) the kernel still answers ping and ARP on both sides while attached.
    ns_run(
        &lab.cl,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            &WAN_IP.to_string(),
        ],
    );
    ns_run(
        &lab.rs,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            &LAN_IP.to_string(),
        ],
    );
    ns_run(
        &lab.cl,
        &[
            "arping",
            "-c",
            "1",
            "-w",
            "3",
            "-I",
            "eth0",
            &WAN_IP.to_string(),
        ],
    );
    ns_run(
        &lab.rs,
        &[
            "arping",
            "-c",
            "1",
            "-w",
            "3",
            "-I",
            "eth0",
            &LAN_IP.to_string(),
        ],
    );

    let totals = stats
        .read_total()
        .expect("xdp statistics")
        .expect("sockets open");
    eprintln!("xsk statistics while running: {totals:?}");
    assert_eq!(totals.tx_invalid_descs, 0);
    assert_eq!(totals.rx_invalid_descs, 0);

    drop(stop_guard);
    for w in workers {
        w.join().expect("worker thread").expect("worker loop");
    }
    assert_eq!(
        stats.read().unwrap(),
        None,
        "sockets closed with the worker"
    );

    assert!(counters.rx_packets.load(Ordering::Relaxed) >= 2);
    assert!(counters.tx_packets.load(Ordering::Relaxed) >= 2);
    assert!(
        counters.batches.load(Ordering::Relaxed) >= counters.busy_batches.load(Ordering::Relaxed)
    );
    assert!(counters.busy_batches.load(Ordering::Relaxed) >= 1);
    // The filter steered nothing but the service's traffic: ping, ARP and IPv6 ND passed.
    assert_eq!(counters.drops(DropReason::NotLoadBalancerTraffic), 0);
    // Only a full TX ring may have dropped frames (during the burst).
    assert_eq!(
        counters.total_drops(),
        counters.drops(DropReason::TxRingFull)
    );
    // With TX checksum offload off, user space saw complete checksums.
    assert_eq!(bad_checksums.load(Ordering::Relaxed), 0);

    // (c) detach leaves no XDP program.
    in_netns(&lab.lb, || {
        filter.detach().expect("detach");
        assert_eq!(programs(wan), vec![]);
        assert_eq!(programs(lan), vec![]);
    });
}

/// (d) an `xvs_filter` left attached by a crashed xvs is replaced on the next attach.
#[test]
fn stale_filter_is_replaced_on_next_attach() {
    let lab = Lab::new("d");
    let ports = lab.lb_ports();
    let (wan, lan) = (ports[0].ifindex, ports[1].ifindex);
    in_netns(&lab.lb, || {
        let crashed = FilterProgram::attach(&ports, XdpMode::Skb).expect("first attach");
        assert_eq!(crashed.attach_mode(0), Some(AttachMode::Skb));
        let stale_id = crashed.program_id();
        // A crash: no detach, no drop.
        std::mem::forget(crashed);
        let stale = vec![(stale_id, PROGRAM_NAME.to_string(), AttachMode::Skb)];
        assert_eq!(programs(wan), stale);
        assert_eq!(programs(lan), stale);

        let filter = FilterProgram::attach(&ports, XdpMode::Auto).expect("attach over stale");
        let id = filter.program_id();
        assert_ne!(id, stale_id);
        let ours = vec![(id, PROGRAM_NAME.to_string(), AttachMode::Native)];
        assert_eq!(programs(wan), ours);
        assert_eq!(programs(lan), ours);

        filter.detach().expect("detach");
        assert_eq!(programs(wan), vec![]);
        assert_eq!(programs(lan), vec![]);
    });
}

/// (e) a foreign XDP program makes attach fail with a one-line error, and nothing of ours is
/// left attached anywhere.
#[test]
fn foreign_program_refuses_attach_and_leaves_nothing_attached() {
    let mut lab = Lab::new("e");
    let obj = std::env::temp_dir().join(format!("xvs-test-{}-xdp_pass.o", std::process::id()));
    lab.files.push(obj.clone());
    bpf::build_test_program("xdp_pass", &obj);
    // On the second interface, so the pre-flight must look at all of them before attaching any.
    bpf::attach_foreign(&lab.lb, "lan0", &obj);

    let ports = lab.lb_ports();
    let (wan, lan) = (ports[0].ifindex, ports[1].ifindex);
    in_netns(&lab.lb, || {
        let foreign = programs(lan);
        assert_eq!(foreign.len(), 1);
        let (id, ref name, _) = foreign[0];
        assert_eq!(name, "xdp_pass");

        let err = FilterProgram::attach(&ports, XdpMode::Auto).expect_err("must refuse");
        match &err {
            FilterError::ForeignProgram {
                iface,
                id: eid,
                name,
            } => {
                assert_eq!(iface, "lan0");
                assert_eq!(*eid, id);
                assert_eq!(name, "xdp_pass");
            }
            other => panic!("unexpected error: {other}"),
        }
        let msg = err.to_string();
        assert!(!msg.contains('\n'));
        assert_eq!(
            msg,
            format!("interface lan0 already has XDP program {id} (xdp_pass) attached; xvs will not replace it")
        );
        assert_eq!(programs(wan), vec![], "nothing attached on wan0");
        assert_eq!(programs(lan), foreign, "the foreign program is untouched");
    });
}

/// A UDP datagram client:40000 → VIP:PORT carrying `payload`, in an Ethernet frame from `src`
/// to `dst` (checksums by etherparse).
fn udp_to_vip(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> String {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv4(CL_IP.octets(), VIP.octets(), 64)
        .udp(40000, PORT)
        .write(&mut f, payload)
        .unwrap();
    f.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends raw Ethernet frames (hex), in order, on the client's eth0 (AF_PACKET, from Python:
/// no unsafe code here).
fn send_raw(lab: &Lab, frames: &[String]) {
    const SEND: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind(('eth0', 0))\n\
        for h in sys.argv[1:]:\n    s.send(bytes.fromhex(h))\n";
    let mut args = vec!["python3", "-c", SEND];
    args.extend(frames.iter().map(String::as_str));
    ns_run(&lab.cl, &args);
}

/// Reads datagrams on `sock` until `payload` arrives (at most 3 s); returns every other
/// payload that arrived first.
fn others_before(sock: &UdpSocket, payload: &[u8]) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut others = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if &buf[..n] == payload => return others,
            Ok((n, _)) => others.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => continue,
        }
    }
    panic!(
        "datagram {:?} never arrived",
        String::from_utf8_lossy(payload)
    );
}

/// (f) own frames only: the filter steers a frame for VIP:PORT only when its destination is the
/// receiving port's own MAC and its source is none of the box's MACs; everything else goes to
/// the kernel (which, not being the VIP's owner nor a router here, drops it). After the port's
/// MAC changes (`ip link set ... address`, then `set_port_macs`) the new MAC is steered and the
/// old one is not.
#[test]
fn the_filter_steers_only_frames_addressed_to_the_ports_own_mac() {
    let lab = Lab::new("f");
    let ports = lab.lb_ports();
    let counters = Arc::new(WorkerCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (filter, workers) = in_netns(&lab.lb, || {
        let filter = FilterProgram::attach(&ports, XdpMode::Auto).expect("attach");
        filter.set_steering(&steering()).unwrap();
        let cfg = XskConfig {
            ring_size: 512,
            ..XskConfig::default()
        };
        let io = QueueIo::open(&["wan0", "lan0"], 0, &cfg).expect("open AF_XDP sockets");
        for (port, fd) in io.socket_fds() {
            filter
                .register_socket(port, 0, fd)
                .expect("register socket");
        }
        let handler = SwapHandler {
            counters: counters.clone(),
            bad_checksums: Arc::new(AtomicU64::new(0)),
        };
        let workers = spawn_workers(
            vec![(io, handler)],
            WorkerConfig::new(PollMode::Wakeup, Instant::now()),
            stop.clone(),
        )
        .expect("spawn worker");
        (filter, workers)
    });
    let stop_guard = StopOnDrop(stop.clone());
    let rs_sock = in_netns(&lab.rs, || UdpSocket::bind((RS_IP, PORT)).expect("bind rs"));
    let rx = || counters.rx_packets.load(Ordering::Relaxed);

    // Addressed to wan0: steered, and the handler forwards it to the real server.
    send_raw(&lab, &[udp_to_vip(WAN_MAC, CL_MAC, b"to wan0")]);
    assert!(others_before(&rs_sock, b"to wan0").is_empty());
    assert_eq!(rx(), 1);

    let not_ours = [
        ("another host's MAC", [0x02, 0x78, 0x76, 0, 0, 0x99], CL_MAC),
        ("broadcast", [0xff; 6], CL_MAC),
        ("IPv4 multicast", [0x01, 0x00, 0x5e, 0, 0, 0x12], CL_MAC),
        ("IPv6 multicast", [0x33, 0x33, 0, 0, 0, 1], CL_MAC),
        ("lan0's MAC, received on wan0", LAN_MAC, CL_MAC),
        ("from lan0's MAC (sent by xvs)", WAN_MAC, LAN_MAC),
        ("from wan0's MAC (sent by xvs)", WAN_MAC, WAN_MAC),
    ];
    let mut frames: Vec<String> = not_ours
        .iter()
        .map(|(what, dst, src)| udp_to_vip(*dst, *src, what.as_bytes()))
        .collect();
    // Last, on the same queue: once it has arrived, the others were decided.
    frames.push(udp_to_vip(WAN_MAC, CL_MAC, b"control"));
    send_raw(&lab, &frames);
    assert_eq!(others_before(&rs_sock, b"control"), Vec::<String>::new());
    assert_eq!(rx(), 2, "only the control frame reached the socket");

    // wan0 gets a new MAC; the control plane tells the filter.
    let new_wan: [u8; 6] = [0x02, 0x78, 0x76, 0x00, 0x00, 0x11];
    ns_run(
        &lab.lb,
        &["ip", "link", "set", "wan0", "address", &mac_str(new_wan)],
    );
    filter
        .set_port_macs(&[new_wan, LAN_MAC])
        .expect("set port MACs");
    send_raw(
        &lab,
        &[
            udp_to_vip(WAN_MAC, CL_MAC, b"to the old MAC"),
            udp_to_vip(new_wan, new_wan, b"from the new MAC"),
            udp_to_vip(new_wan, CL_MAC, b"to the new MAC"),
        ],
    );
    assert_eq!(
        others_before(&rs_sock, b"to the new MAC"),
        Vec::<String>::new()
    );
    assert_eq!(rx(), 3);

    drop(stop_guard);
    for w in workers {
        w.join().expect("worker thread").expect("worker loop");
    }
    in_netns(&lab.lb, || filter.detach().expect("detach"));
}
