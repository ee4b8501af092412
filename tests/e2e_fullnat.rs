//! End to end, FULLNAT mode: the lab's `fullnat` topology, whose real servers have no route back
//! to the client (only their LAN), runs the shipped `config/fullnat.yaml` (`poll: wakeup`).
//!
//! Checked: 300 HTTP requests over fresh TCP connections and a UDP request/response service work
//! through both real servers; the real servers saw only pool addresses (198.18.1.2, .3, ports
//! 20000-29999) as their peers (the lab servers log each peer); with `toa: true` a sniffer in
//! each real server's namespace (`scripts/lab-toa-sniffer.py`, AF_PACKET) reads TCP option 254
//! off every SYN and finds the client's address and port in it; `xvs ctl conns` lists the local
//! endpoints and `/metrics` the pool's ports in use; ICMP errors about FULLNAT connections reach
//! the other side translated, both ways. A lab that cannot be built fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{script, Lab, Xvs, VIP};

const POOL: [&str; 2] = ["198.18.1.2", "198.18.1.3"];
const POOL_PORTS: std::ops::RangeInclusive<u16> = 20000..=29999;
const CLIENT: &str = "198.18.0.2";

/// `config/fullnat.yaml` for the lab ([`Lab::example_config`]); it must keep `toa: true`.
fn fullnat_config(lab: &Lab) -> PathBuf {
    let text = std::fs::read_to_string(Lab::config("fullnat.yaml")).expect("config/fullnat.yaml");
    assert!(
        text.contains("toa: true"),
        "config/fullnat.yaml lost `toa: true`"
    );
    lab.example_config("fullnat.yaml")
}

fn admin_socket(lab: &Lab) -> String {
    lab.admin_socket("lb").to_string_lossy().into_owned()
}

fn start() -> (Lab, Xvs) {
    let lab = Lab::up("fullnat");
    // The topology's promise: the real servers cannot reach the client on their own.
    let routes = lab.exec_ok("r1", &["ip", "route", "show"]);
    assert!(
        !routes.contains("default"),
        "r1 has a default route: {routes}"
    );
    let ping = lab.exec("r1", &["ping", "-c", "1", "-W", "1", CLIENT]);
    assert!(
        !ping.status.success(),
        "r1 reaches the client without the LB"
    );
    lab.serve();
    let xvs = lab.start_xvs_ready(&fullnat_config(&lab));
    (lab, xvs)
}

/// The peers a lab server logged (`ADDR:PORT` per request or datagram).
fn peers(lab: &Lab, role: &str, kind: &str, port: u16) -> Vec<SocketAddrV4> {
    let path = lab.file(&format!("logs/{role}-{kind}-{port}.peers"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("{}: bad peer {l:?}", path.display()))
        })
        .collect()
}

fn assert_pool_peers(peers: &[SocketAddrV4], what: &str) {
    assert!(!peers.is_empty(), "{what}: no peers logged");
    for p in peers {
        assert!(
            POOL.contains(&p.ip().to_string().as_str()) && POOL_PORTS.contains(&p.port()),
            "{what}: a real server saw {p}, not a pool address:port"
        );
    }
}

/// A TOA sniffer running in `role`'s namespace until stopped.
struct Sniffer {
    child: Child,
    out: PathBuf,
}

impl Sniffer {
    fn start(lab: &Lab, role: &str) -> Sniffer {
        // In the lab's state directory: deleted with the lab, pass or fail.
        let out = lab.file(&format!("toa-{role}.jsonl"));
        let ready = lab.file(&format!("toa-{role}.ready"));
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(role), "python3"])
            .arg(script("lab-toa-sniffer.py"))
            .args(["--iface", "eth0", "--port", "80", "--duration", "300"])
            .arg("--out")
            .arg(&out)
            .arg("--ready")
            .arg(&ready)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the TOA sniffer");
        let end = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{role}: TOA sniffer exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < end,
                "{role}: TOA sniffer not ready after 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sniffer { child, out }
    }

    /// Stops the sniffer and returns its records: (flags, source, TOA).
    fn finish(mut self) -> Vec<(String, String, Option<String>)> {
        // `ip netns exec` execs python, so the child is the sniffer itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the sniffer");
        assert!(status.success(), "TOA sniffer failed: {status}");
        let text = std::fs::read_to_string(&self.out).expect("sniffer output");
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["flags"].as_str().unwrap().to_string(),
                    v["src"].as_str().unwrap().to_string(),
                    v["toa"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_300_fresh_connections_from_pool_addresses_with_toa() {
    let (lab, xvs) = start();
    let sniffers = [Sniffer::start(&lab, "r1"), Sniffer::start(&lab, "r2")];
    let s = lab.http_client(300);
    assert_eq!(
        s.failed,
        0,
        "failed requests: {:?}\n{}",
        s.errors,
        xvs.log()
    );
    assert_eq!(s.ok, 300);
    let (r1, r2) = (s.count("r1"), s.count("r2"));
    assert_eq!(
        r1 + r2,
        300,
        "answers from unknown servers: {:?}",
        s.by_server
    );
    assert!((140..=160).contains(&r1), "rr split {r1}/{r2}");

    // The real servers saw only pool addresses, every pool address was used.
    let mut seen = HashSet::new();
    for role in ["r1", "r2"] {
        let p = peers(&lab, role, "http", 80);
        assert_pool_peers(&p, role);
        seen.extend(p.iter().map(|a| a.ip().to_string()));
    }
    assert_eq!(seen.len(), 2, "pool addresses used: {seen:?}");

    // TOA: every SYN a real server received carries the client's address and its own port.
    let mut client_ports = HashSet::new();
    let mut syns = 0;
    let mut acks_with_toa = 0;
    for (role, sniffer) in ["r1", "r2"].into_iter().zip(sniffers) {
        for (flags, src, toa) in sniffer.finish() {
            let src: SocketAddrV4 = src.parse().unwrap();
            assert!(
                POOL.contains(&src.ip().to_string().as_str()),
                "{role}: segment from {src}"
            );
            let toa: Option<SocketAddrV4> = toa.map(|t| t.parse().unwrap());
            match flags.as_str() {
                "S" => {
                    syns += 1;
                    let toa = toa.unwrap_or_else(|| panic!("{role}: SYN from {src} without TOA"));
                    assert_eq!(toa.ip().to_string(), CLIENT, "{role}: TOA {toa}");
                    assert!(
                        !POOL_PORTS.contains(&toa.port()),
                        "TOA port {toa} is a pool port"
                    );
                    client_ports.insert(toa.port());
                }
                _ => {
                    if let Some(toa) = toa {
                        assert_eq!(toa.ip().to_string(), CLIENT, "{role}: TOA {toa}");
                        acks_with_toa += 1;
                    }
                }
            }
        }
    }
    // One SYN per connection (a retransmitted SYN repeats its port); the readiness probe adds one.
    assert!(syns >= 300, "{syns} SYNs seen for 300 connections");
    assert!(
        client_ports.len() >= 300,
        "{} distinct client ports in TOA",
        client_ports.len()
    );
    assert!(
        acks_with_toa >= 300,
        "{acks_with_toa} handshake ACKs carried TOA"
    );

    // ctl conns shows the local endpoints; the pool gauge counts them.
    let out = lab.exec_ok(
        "lb",
        &[
            env!("CARGO_BIN_EXE_xvs"),
            "ctl",
            "--socket",
            &admin_socket(&lab),
            "conns",
        ],
    );
    let header = out.lines().nth(1).unwrap_or_default();
    assert!(
        header.split_whitespace().eq([
            "pro",
            "expire",
            "state",
            "source",
            "virtual",
            "local",
            "destination"
        ]),
        "{out}"
    );
    assert!(
        out.lines()
            .skip(2)
            .all(|l| POOL.iter().any(|p| l.contains(&format!(" {p}:")))),
        "{out}"
    );
    let metrics = lab.metrics();
    let in_use: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xvs_local_address_ports_in_use{pool=\"lan-pool\"} "))
        .expect("pool gauge")
        .parse()
        .unwrap();
    // Every tracked connection is FULLNAT here and holds one pair until its entry expires (the
    // closed ones too, for tcp_close/tcp_fin), so the gauge follows the table.
    let entries: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xvs_conntrack_entries "))
        .expect("conntrack gauge")
        .parse()
        .unwrap();
    assert!(
        in_use > 0.0 && (in_use - entries).abs() <= 5.0,
        "ports in use {in_use}, connections {entries}"
    );
    let inserted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xvs_toa_inserted_total "))
        .expect("toa counter");
    assert!(
        inserted.parse::<f64>().unwrap() >= 600.0,
        "TOA inserted {inserted}"
    );
    assert!(
        metrics.contains("xvs_drops_total{reason=\"not_lb_traffic\"} 0"),
        "kernel traffic reached the sockets"
    );
    eprintln!(
        "fullnat http 300: r1 {r1}, r2 {r2}, {syns} SYNs with TOA, pool ports in use {in_use}"
    );
    xvs.stop_cleanly();
}

#[test]
fn udp_request_response_from_pool_addresses() {
    let (lab, xvs) = start();
    let s = lab.udp_client(&format!("{VIP}:53"), 200);
    assert_eq!(
        s.failed,
        0,
        "failed datagrams: {:?}\n{}",
        s.errors,
        xvs.log()
    );
    assert_eq!(s.ok, 200);
    // rr per new flow; a client port the kernel reuses within the UDP timeout finds its old
    // connection instead, so the split is not always exactly even.
    let (r1, r2) = (s.count("r1"), s.count("r2"));
    assert!(r1 + r2 == 200 && r1 >= 80 && r2 >= 80, "{:?}", s.by_server);
    for role in ["r1", "r2"] {
        assert_pool_peers(&peers(&lab, role, "udp", 5353), role);
    }
    // 4000-byte datagrams on 1500-byte links: three fragments each way; the later fragments
    // follow the first one's translation (both addresses), to the real server and back.
    let big = lab.udp_client_sized(&format!("{VIP}:53"), 20, 4000);
    assert_eq!(
        big.failed,
        0,
        "fragmented datagrams: {:?}\n{}",
        big.errors,
        xvs.log()
    );
    assert!(
        big.count("r1") > 0 && big.count("r2") > 0,
        "{:?}",
        big.by_server
    );
    // The box's own traffic from its LAN (a health check's path) still reaches the kernel, and
    // so does a connection from a pool address itself on a port outside the pool's range (the
    // kernel's ephemeral ports): the filter steers only the pool's range.
    let own = lab.http_from("lb", "http://198.18.1.11/", 5);
    assert_eq!(own.ok, 5, "the box cannot reach a real server: {own:?}");
    let from_pool = "import socket\n\
        s=socket.socket(); s.settimeout(3); s.bind(('198.18.1.2',0))\n\
        port=s.getsockname()[1]; assert not 20000<=port<=29999, port\n\
        s.connect(('198.18.1.11',80)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
        print(s.recv(4096).decode().split()[1])\n";
    let got = lab.exec_ok("lb", &["python3", "-c", from_pool]);
    assert_eq!(
        got.trim(),
        "200",
        "the box's own connection from a pool address failed"
    );
    let metrics = lab.metrics();
    assert!(
        metrics.contains("xvs_drops_total{reason=\"not_lb_traffic\"} 0"),
        "kernel traffic reached the sockets"
    );
    // Changing the pools needs a restart: a reload that does is refused, the service goes on.
    let path = lab.file("fullnat.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("20000-29999", "20000-29998")).unwrap();
    xvs.signal("HUP");
    assert!(
        xvs.wait_log(
            "local_addresses changed: restart xvs to apply it",
            0,
            Duration::from_secs(10)
        )
        .is_some(),
        "reload with changed pools not refused:\n{}",
        xvs.log()
    );
    let after = lab.udp_client(&format!("{VIP}:53"), 20);
    assert_eq!(after.ok, 20, "after the refused reload: {:?}", after.errors);
    xvs.stop_cleanly();
}

/// A raw ICMP socket in a namespace, listening (10 s at most) for one destination unreachable:
/// `finish` returns "SOURCE CODE QUOTED_SRC:PORT QUOTED_DST:PORT CHECKSUM_OK", or `None` on a
/// timeout.
struct IcmpSniffer(Child);

impl IcmpSniffer {
    fn start(lab: &Lab, role: &str) -> IcmpSniffer {
        use std::io::BufRead;
        let code = "import socket,struct,sys\n\
            def csum(b):\n\
            \x20   b=b+b'\\0'*(len(b)%2); s=sum(struct.unpack('!%dH'%(len(b)//2),b))\n\
            \x20   while s>>16: s=(s&0xffff)+(s>>16)\n\
            \x20   return s\n\
            r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP); r.settimeout(10)\n\
            print('ready',flush=True)\n\
            while True:\n\
            \x20   pkt,addr=r.recvfrom(4096)\n\
            \x20   m=pkt[(pkt[0]&15)*4:]\n\
            \x20   if m[0]!=3: continue\n\
            \x20   q=m[8:]; l=(q[0]&15)*4; sp,dp=struct.unpack('!HH',q[l:l+4])\n\
            \x20   print(addr[0],m[1],'%s:%d'%(socket.inet_ntoa(q[12:16]),sp),'%s:%d'%(socket.inet_ntoa(q[16:20]),dp),csum(m)==0xffff,flush=True)\n\
            \x20   break\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(role), "python3", "-c", code])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the ICMP sniffer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{role}: ICMP sniffer did not start");
        IcmpSniffer(child)
    }

    fn finish(mut self) -> Option<String> {
        use std::io::Read;
        let mut out = String::new();
        let _ = self.0.stdout.take().unwrap().read_to_string(&mut out);
        let ok = self.0.wait().map(|s| s.success()).unwrap_or(false);
        ok.then(|| out.trim().to_string())
    }
}

impl Drop for IcmpSniffer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ICMP errors about FULLNAT connections, both ways. The client reports a reply it cannot take
/// (port unreachable from its side, a crafted one about the reply it just got): the real server
/// that answered gets it from the pool address, quoting its reply to that pool address:port.
/// Then, with the UDP servers gone, each real server's kernel answers port unreachable to the
/// pool address: the client's connected socket sees the refusal (the error reaches it from the
/// VIP, quoting its own datagram).
#[test]
fn icmp_errors_about_fullnat_connections_reach_the_other_side() {
    let (lab, xvs) = start();
    let sniffers = [
        ("r1", IcmpSniffer::start(&lab, "r1")),
        ("r2", IcmpSniffer::start(&lab, "r2")),
    ];
    let probe = format!(
        "import socket,struct\n\
         def csum(b):\n\
         \x20   s=sum(struct.unpack('!%dH'%(len(b)//2),b))\n\
         \x20   while s>>16: s=(s&0xffff)+(s>>16)\n\
         \x20   return ~s&0xffff\n\
         u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(3)\n\
         u.connect(('{VIP}',53)); u.send(b'hello'); data=u.recv(2048)\n\
         ip=struct.pack('!BBHHHBBH4s4s',0x45,0,28+len(data),0,0x4000,63,17,0,socket.inet_aton('{VIP}'),socket.inet_aton('{CLIENT}'))\n\
         ip=ip[:10]+struct.pack('!H',csum(ip))+ip[12:]\n\
         m=struct.pack('!BBHI',3,3,0,0)+ip+struct.pack('!HHHH',53,u.getsockname()[1],8+len(data),0)\n\
         m=m[:2]+struct.pack('!H',csum(m))+m[4:]\n\
         socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP).sendto(m,('{VIP}',0))\n\
         print(data.decode().split(':')[0])\n"
    );
    let server = lab.exec_ok("client", &["python3", "-c", &probe]);
    let server = server.trim();
    let mut got = None;
    for (role, sniffer) in sniffers {
        if role == server {
            got = sniffer.finish();
        }
    }
    let got = got.unwrap_or_else(|| panic!("{server} got no ICMP error:\n{}", xvs.log()));
    // The datagram the real server answered came from this pool endpoint.
    let peer = *peers(&lab, server, "udp", 5353).last().unwrap();
    let real = if server == "r1" {
        "198.18.1.11"
    } else {
        "198.18.1.12"
    };
    assert_eq!(
        got,
        format!("{} 3 {real}:5353 {peer} True", peer.ip()),
        "{server}: the error as it arrived (source, code, quote, checksum ok)"
    );
    // From the server side: port unreachable about the datagram xvs sent from a pool address.
    lab.stop_server("r1", "udp", 5353);
    lab.stop_server("r2", "udp", 5353);
    let refused = lab.udp_refused(&format!("{VIP}:53"), 4);
    assert_eq!(
        refused,
        4,
        "the client did not see the real servers' port unreachable:\n{}",
        xvs.log()
    );
    let m = lab.metrics();
    assert!(
        m.contains("xvs_drops_total{reason=\"icmp_untracked\"} 0"),
        "untracked ICMP errors:\n{m}"
    );
    xvs.stop_cleanly();
}

/// NAT and FULLNAT services side by side on one box: the NAT lab (real servers route back through
/// the LB) plus a pool address on the LB; `web` tcp/80 is NAT, `web-fnat` tcp/8080 FULLNAT to the
/// same real servers. Both work in one run; the real servers see the client for the first and
/// the pool address for the second.
#[test]
fn nat_and_fullnat_services_share_one_box() {
    let lab = Lab::up("nat");
    lab.exec_ok("lb", &["ip", "addr", "add", "198.18.1.2/32", "dev", "lan0"]);
    lab.serve();
    let cfg = format!(
        "global:\n  admin_socket: {}\n\
         datapath:\n  interfaces:\n    - {{ name: wan0, queues: [0] }}\n    - {{ name: lan0, queues: [0] }}\n  poll: wakeup\n\
         local_addresses:\n  - {{ name: p, addresses: [198.18.1.2], ports: 20000-29999 }}\n\
         services:\n\
         \x20 - {{ name: web, vip: {VIP}, port: 80, scheduler: rr, reals: [{{ address: 198.18.1.11:80 }}, {{ address: 198.18.1.12:80 }}] }}\n\
         \x20 - {{ name: web-fnat, vip: {VIP}, port: 8080, scheduler: rr, forwarding: fullnat, local_addresses: p, reals: [{{ address: 198.18.1.11:80 }}, {{ address: 198.18.1.12:80 }}] }}\n",
        admin_socket(&lab)
    );
    let path = lab.write_config("lb", "mixed.yaml", &cfg);
    let xvs = lab.start_xvs_ready(&path);
    let nat = lab.http_client(100);
    assert_eq!(nat.ok, 100, "NAT: {:?}\n{}", nat.errors, xvs.log());
    let fnat = lab.http_client_url(&format!("http://{VIP}:8080/"), 100, 2.0);
    assert_eq!(fnat.ok, 100, "FULLNAT: {:?}\n{}", fnat.errors, xvs.log());
    assert!(
        fnat.count("r1") >= 40 && fnat.count("r2") >= 40,
        "{:?}",
        fnat.by_server
    );
    let mut from_client = 0;
    let mut from_pool = 0;
    for role in ["r1", "r2"] {
        for p in peers(&lab, role, "http", 80) {
            match p.ip().to_string().as_str() {
                CLIENT => from_client += 1,
                "198.18.1.2" => from_pool += 1,
                other => panic!("{role} saw {other}"),
            }
        }
    }
    // The readiness probe adds NAT requests.
    assert!(
        from_client >= 100 && from_pool == 100,
        "client {from_client}, pool {from_pool}"
    );
    xvs.stop_cleanly();
}
