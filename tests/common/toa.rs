//! The TOA sniffer (`scripts/lab-toa-sniffer.py`) run in a real server's namespace: it reads
//! DPVS's TCP option 254 (IPv4 or IPv6 client endpoint) off every SYN and handshake-completing
//! ACK that reaches the real server. Used by `tests/e2e_ipv6.rs`.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{script, Lab};

/// One segment the sniffer recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `S` (a SYN) or `A` (a bare ACK).
    pub flags: String,
    /// The segment's source as the real server saw it.
    pub src: std::net::SocketAddr,
    /// The client endpoint the TOA option carried, if any.
    pub toa: Option<std::net::SocketAddr>,
}

/// A TOA sniffer running in a namespace until [`Sniffer::finish`] (killed on drop).
pub struct Sniffer {
    child: Child,
    out: PathBuf,
}

impl Sniffer {
    /// Starts the sniffer on `role`'s eth0 for TCP port `port`; returns once its socket is open.
    pub fn start(lab: &Lab, role: &str, port: u16) -> Sniffer {
        // In the lab's state directory: deleted with the lab, pass or fail.
        let out = lab.file(&format!("toa-{role}-{port}.jsonl"));
        let ready = lab.file(&format!("toa-{role}-{port}.ready"));
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(role), "python3"])
            .arg(script("lab-toa-sniffer.py"))
            .args(["--iface", "eth0", "--port", &port.to_string()])
            .args(["--duration", "300"])
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

    /// Stops the sniffer and returns what it recorded.
    pub fn finish(mut self) -> Vec<Segment> {
        // `ip netns exec` execs python, so the child is the sniffer itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the sniffer");
        assert!(status.success(), "TOA sniffer failed: {status}");
        let text = std::fs::read_to_string(&self.out).expect("sniffer output");
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON record");
                Segment {
                    flags: v["flags"].as_str().expect("flags").to_string(),
                    src: v["src"]
                        .as_str()
                        .expect("src")
                        .parse()
                        .expect("src ADDR:PORT"),
                    toa: v["toa"].as_str().map(|t| t.parse().expect("toa ADDR:PORT")),
                }
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
