//! End to end: the load balancer's interface gets a new MAC while xvs runs (`ip link set dev
//! wan0 address ...`). xvs balances only frames addressed to the receiving interface's own MAC,
//! so it must follow: within about a second the new MAC is served (XDP filter and `process()`),
//! the old one is not any more, and xvs's own frames leave from the new MAC.
//!
//! The `nat` lab (`scripts/lab`), the shipped `config/nat.yaml` with `poll: wakeup`. A lab that
//! cannot be built fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lab, VIP};

const NEW_MAC: &str = "02:18:00:00:77:01";

/// Captures, on the client's eth0, the first TCP segment from VIP:80 and prints its source
/// MAC; gives up after 5 s.
const SNIFF: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(('eth0', 0))
s.settimeout(0.2)
vip = bytes(int(x) for x in sys.argv[1].split('.'))
print('ready', flush=True)
end = time.time() + 5
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    ihl = (f[14] & 15) * 4
    if f[23] == 6 and f[26:30] == vip and f[14 + ihl:16 + ihl] == (80).to_bytes(2, 'big'):
        print(':'.join('%02x' % b for b in f[6:12]), flush=True)
        sys.exit(0)
print('none', flush=True)
"#;

/// The source MAC of the first segment from VIP:80 the client receives during one request.
fn reply_source_mac(lab: &Lab) -> String {
    use std::io::BufRead;
    let mut sniffer = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "python3", "-c", SNIFF])
        .arg(VIP)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the sniffer");
    let mut out = std::io::BufReader::new(sniffer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let s = lab.http_client_url(&format!("http://{VIP}/"), 1, 2.0);
    assert_eq!(s.ok, 1, "the request failed: {:?}", s.errors);
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = sniffer.wait();
    line.trim().to_string()
}

#[test]
fn a_new_interface_mac_is_followed_within_a_second() {
    let lab = Lab::new();
    lab.serve();
    let xvs = lab.start_xvs_ready(&lab.example_config("nat.yaml"));
    let old_mac = lab.exec_ok("lb", &["cat", "/sys/class/net/wan0/address"]);
    let old_mac = old_mac.trim().to_string();
    assert_eq!(reply_source_mac(&lab), old_mac);

    let changed = Instant::now();
    lab.exec_ok(
        "lb",
        &["ip", "link", "set", "dev", "wan0", "address", NEW_MAC],
    );
    // The client learns the new MAC (the load balancer's kernel answers ARP for the VIP).
    lab.exec_ok("client", &["ip", "neigh", "flush", "dev", "eth0"]);
    let mut served = None;
    while changed.elapsed() < Duration::from_secs(5) {
        if lab.http_client_url(&format!("http://{VIP}/"), 1, 0.3).ok == 1 {
            served = Some(changed.elapsed());
            break;
        }
    }
    let served = served.unwrap_or_else(|| panic!("the new MAC was never served:\n{}", xvs.log()));
    eprintln!("new MAC served {served:.2?} after the change");
    assert!(
        served < Duration::from_millis(1500),
        "the new MAC took {served:?} to be served"
    );
    assert!(
        xvs.log().contains(&format!(
            "Interface wan0: MAC changed from {old_mac} to {NEW_MAC}"
        )),
        "{}",
        xvs.log()
    );
    // xvs's replies to the client leave wan0 from the new MAC.
    assert_eq!(reply_source_mac(&lab), NEW_MAC);
    // Frames to the old MAC are another host's now: not balanced.
    let pin = format!("ip neigh replace {VIP} lladdr {old_mac} dev eth0 nud permanent");
    lab.exec_ok("client", &pin.split(' ').collect::<Vec<_>>());
    let s = lab.http_client_url(&format!("http://{VIP}/"), 3, 0.5);
    assert_eq!(s.ok, 0, "the old MAC is still served");
    lab.exec_ok("client", &["ip", "neigh", "del", VIP, "dev", "eth0"]);
    let s = lab.http_client_url(&format!("http://{VIP}/"), 20, 2.0);
    assert_eq!(s.failed, 0, "{:?}\n{}", s.errors, xvs.log());
    xvs.stop_cleanly();
}
