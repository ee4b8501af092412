//! The lab benchmark's load generator (`scripts/bench-lab`): blasts 64-byte UDP frames (60 bytes
//! without the FCS) out of one interface for a fixed time and reports what it offered.
//!
//! Frames go to `--dst` `--dport` from `--src`, over `--flows` flows (source ports
//! `--sport-base`, `--sport-base + 1`, ... rotating, so a connection table holds `--flows`
//! entries), or with `--new-flows` every frame a flow never sent before (source port and source
//! address both move, the address through `--new-src`/16 of 198.18.0.0/15, so 2^32 frames
//! pass before a flow repeats): the load for connections per second.
//!
//! I/O: an `AF_PACKET` raw socket with `PACKET_QDISC_BYPASS` (the frame goes from `sendmmsg`
//! straight to the driver's transmit, no qdisc) and `sendmmsg` of `--batch` frames per call,
//! each pointing at a frame built once (no copy in user space). Every frame is built with xvs's
//! own wire emitters; `--new-flows` rewrites the source address and port of each frame before
//! it is sent, updating both checksums incrementally.
//!
//! Output (stdout, one line, `key=value`): `sent=N seconds=S offered_pps=R errors=E`.
//!
//! Example (as `scripts/bench-lab` runs it, inside the client namespace, on CPU 0):
//! `taskset -c 0 loadgen --iface eth0 --src-mac 02:18:00:00:00:02 --dst-mac 02:18:00:00:00:01
//! --src 198.18.0.2 --dst 198.18.0.100 --dport 5353 --flows 1024 --seconds 5`
#![allow(unsafe_code)] // the AF_PACKET socket: socket, setsockopt, bind, sendmmsg

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use xvs::wire::checksum;
use xvs::wire::ethernet::{EtherType, EthernetRepr};
use xvs::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use xvs::wire::udp::{UdpDatagram, UdpRepr};

/// `linux/if_packet.h`: transmit without the qdisc layer (not in the libc crate).
const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// Ethernet + IPv4 + UDP headers and 18 bytes of payload: a minimum-size (64-byte) frame on the
/// wire once the FCS is added.
const FRAME_LEN: usize = 60;
const ETH_LEN: usize = xvs::wire::ethernet::HEADER_LEN;
const IP_LEN: usize = xvs::wire::ipv4::MIN_HEADER_LEN;
const UDP_LEN: usize = xvs::wire::udp::HEADER_LEN;
const PAYLOAD_LEN: usize = FRAME_LEN - ETH_LEN - IP_LEN - UDP_LEN;
/// Source ports `--new-flows` cycles through before it moves to the next source address.
const NEW_FLOW_PORTS: u32 = 65536 - 1024;

#[derive(Parser, Debug)]
#[command(about = "64-byte UDP load over AF_PACKET (xvs lab benchmark)")]
struct Args {
    /// Interface to send on (in the namespace the generator runs in).
    #[arg(long)]
    iface: String,
    /// Source MAC of every frame (the interface's own).
    #[arg(long, value_parser = parse_mac)]
    src_mac: [u8; 6],
    /// Destination MAC (the load balancer's interface, or the next hop).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: [u8; 6],
    #[arg(long)]
    src: Ipv4Addr,
    #[arg(long)]
    dst: Ipv4Addr,
    #[arg(long, default_value_t = 5353)]
    dport: u16,
    /// Distinct flows (source ports from --sport-base) the load rotates over.
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    #[arg(long, default_value_t = 1024)]
    sport_base: u16,
    /// Every frame a new flow (ignores --flows and --src: source addresses from --new-src/16).
    #[arg(long)]
    new_flows: bool,
    /// First source address of --new-flows (a /16 inside 198.18.0.0/15).
    #[arg(long, default_value = "198.19.0.0")]
    new_src: Ipv4Addr,
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts
            .next()
            .ok_or_else(|| format!("{s}: not a MAC address"))?;
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s}: not a MAC address"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s}: not a MAC address"));
    }
    Ok(mac)
}

/// One complete frame from `src:sport` to `dst:dport`, checksums included.
fn build_frame(a: &Args, src: Ipv4Addr, sport: u16) -> Result<[u8; FRAME_LEN], String> {
    let mut f = [0u8; FRAME_LEN];
    let err = |e| format!("building a frame: {e:?}");
    EthernetRepr {
        src: a.src_mac,
        dst: a.dst_mac,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .map_err(err)?;
    Ipv4Repr {
        src,
        dst: a.dst,
        protocol: xvs::wire::udp::PROTOCOL,
        payload_len: UDP_LEN + PAYLOAD_LEN,
        tos: 0,
        ttl: 64,
        identification: 0,
        dont_fragment: true,
    }
    .emit(&mut f[ETH_LEN..])
    .map_err(err)?;
    UdpRepr {
        src_port: sport,
        dst_port: a.dport,
        payload_len: PAYLOAD_LEN,
    }
    .emit(&mut f[ETH_LEN + IP_LEN..], src, a.dst)
    .map_err(err)?;
    Ok(f)
}

/// Rewrites `frame`'s source address and port, updating the IPv4 and UDP checksums (the UDP
/// checksum covers the source address through the pseudo-header).
fn retarget(frame: &mut [u8; FRAME_LEN], src: Ipv4Addr, sport: u16) {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..]);
    let old_src = ip.src();
    ip.set_src(src);
    let mut udp = UdpDatagram::new_unchecked(&mut frame[ETH_LEN + IP_LEN..]);
    let old_sport = udp.src_port();
    let c = checksum::update_bytes(udp.checksum(), &old_src.octets(), &src.octets());
    let c = checksum::update_u16(c, old_sport, sport);
    udp.set_src_port(sport);
    udp.set_checksum(checksum::udp_field(c));
}

/// The raw socket: `AF_PACKET`, bound to `iface`, receiving nothing (protocol 0), transmitting
/// past the qdisc.
fn open_socket(iface: &str) -> io::Result<OwnedFd> {
    let ifindex = xvs::sys::if_nametoindex(iface)?;
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int that outlives the call, with its size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            size_of_socklen::<libc::c_int>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET)
        .map_err(|_| io::Error::other("AF_PACKET does not fit sa_family_t"))?;
    sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::other("ifindex too large"))?;
    // SAFETY: `sll` is a valid sockaddr_ll that outlives the call, with its size given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of_socklen::<libc::sockaddr_ll>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

fn size_of_socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// Sends `frames[first..first + n]` (wrapping around) in one `sendmmsg`; returns the frames the
/// kernel took. `iov` and `msgs` are scratch of at least `n` entries.
fn send_batch(
    fd: &OwnedFd,
    frames: &[[u8; FRAME_LEN]],
    first: usize,
    iov: &mut [libc::iovec],
    msgs: &mut [libc::mmsghdr],
) -> io::Result<usize> {
    let n = iov.len().min(msgs.len());
    for i in 0..n {
        let f = &frames[(first + i) % frames.len()];
        // The kernel only reads through iov_base (sendmmsg), so the const-to-mut cast is sound.
        iov[i].iov_base = f.as_ptr().cast_mut().cast();
        iov[i].iov_len = FRAME_LEN;
    }
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()).take(n) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let vlen = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
    // SAFETY: `msgs[..n]` are initialised headers whose single iovec points at a live frame of
    // FRAME_LEN bytes; all of them outlive the call, which only reads them.
    let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), vlen, 0) };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// Everything the send loop keeps between batches.
struct Generator {
    frames: Vec<[u8; FRAME_LEN]>,
    /// Index of the next frame to send.
    next: usize,
    /// `--new-flows`: frames sent so far (each one a new flow).
    new_flow: Option<u64>,
    new_base: u32,
}

impl Generator {
    fn new(a: &Args) -> Result<Generator, String> {
        let mut frames = Vec::new();
        if a.new_flows {
            // One frame per source port; the address changes each time the ports wrap around.
            for i in 0..NEW_FLOW_PORTS {
                let sport = u16::try_from(1024 + i).map_err(|e| e.to_string())?;
                frames.push(build_frame(a, a.new_src, sport)?);
            }
        } else {
            for i in 0..a.flows.max(1) {
                let sport = u32::from(a.sport_base) + i;
                let sport = u16::try_from(sport)
                    .map_err(|_| format!("--sport-base + --flows passes port 65535 ({sport})"))?;
                frames.push(build_frame(a, a.src, sport)?);
            }
        }
        Ok(Generator {
            frames,
            next: 0,
            new_flow: a.new_flows.then_some(0),
            new_base: u32::from(a.new_src),
        })
    }

    /// Readies the next `n` frames: with `--new-flows`, gives each a flow never sent before.
    #[allow(clippy::cast_possible_truncation)] // port and address indexes are below 65536 (% and &)
    fn prepare(&mut self, n: usize) {
        let Some(count) = self.new_flow.as_mut() else {
            return;
        };
        for i in 0..n {
            let flow = *count + i as u64;
            let port_index = flow % u64::from(NEW_FLOW_PORTS);
            // The /16 holds 65536 addresses; after 2^32 frames flows repeat.
            let addr_index = (flow / u64::from(NEW_FLOW_PORTS)) & 0xffff;
            let src = Ipv4Addr::from(self.new_base.wrapping_add(addr_index as u32));
            let sport = 1024 + port_index as u16;
            let idx = (self.next + i) % self.frames.len();
            retarget(&mut self.frames[idx], src, sport);
        }
        *count += n as u64;
    }
}

fn run(a: &Args) -> Result<(), String> {
    let fd = open_socket(&a.iface).map_err(|e| format!("{}: AF_PACKET socket: {e}", a.iface))?;
    let mut g = Generator::new(a)?;
    let batch = a.batch.clamp(1, 1024);
    // SAFETY: `iovec` and `mmsghdr` are plain old data; all-zero is a valid value of each.
    let mut iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; batch];
    // SAFETY: as above.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; batch];
    let limit = Duration::from_secs_f64(a.seconds.max(0.0));
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < limit {
        g.prepare(batch);
        match send_batch(&fd, &g.frames, g.next, &mut iov, &mut msgs) {
            Ok(n) => {
                sent += n as u64;
                g.next = (g.next + n) % g.frames.len();
                if let Some(c) = g.new_flow.as_mut() {
                    // Frames prepared but not taken are prepared again (same flows) next time.
                    *c -= (batch - n) as u64;
                }
            }
            // A full socket buffer or a busy device: count it and keep going.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {
                errors += 1;
                if let Some(c) = g.new_flow.as_mut() {
                    *c -= batch as u64;
                }
            }
            Err(e) => return Err(format!("{}: sendmmsg: {e}", a.iface)),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let pps = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
    println!("sent={sent} seconds={secs:.3} offered_pps={pps:.0} errors={errors}");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(new_flows: bool) -> Args {
        Args::parse_from([
            "loadgen",
            "--iface",
            "lo",
            "--src-mac",
            "02:18:00:00:00:02",
            "--dst-mac",
            "02:18:00:00:00:01",
            "--src",
            "198.18.0.2",
            "--dst",
            "198.18.0.100",
            "--flows",
            "4",
        ])
        .with_new_flows(new_flows)
    }

    impl Args {
        fn with_new_flows(mut self, on: bool) -> Args {
            self.new_flows = on;
            self
        }
    }

    #[test]
    fn frames_are_64_bytes_on_the_wire_with_valid_checksums() {
        let a = args(false);
        let g = Generator::new(&a).unwrap();
        assert_eq!(g.frames.len(), 4);
        for (i, f) in g.frames.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&f[ETH_LEN..]).unwrap();
            assert!(ip.checksum_ok());
            let udp = UdpDatagram::new_unchecked(&f[ETH_LEN + IP_LEN..]);
            assert_eq!(usize::from(udp.src_port()), 1024 + i);
            assert_eq!(udp.dst_port(), 5353);
            assert!(udp.checksum_ok(ip.src(), ip.dst()));
        }
    }

    #[test]
    fn new_flows_rewrite_source_and_keep_checksums_valid() {
        let a = args(true);
        let mut g = Generator::new(&a).unwrap();
        g.next = 5;
        g.new_flow = Some(u64::from(NEW_FLOW_PORTS) * 3 + 5);
        g.prepare(2);
        for (k, idx) in [5usize, 6].into_iter().enumerate() {
            let f = &g.frames[idx];
            let ip = Ipv4Packet::new_checked(&f[ETH_LEN..]).unwrap();
            assert!(ip.checksum_ok());
            assert_eq!(ip.src(), Ipv4Addr::new(198, 19, 0, 3));
            let udp = UdpDatagram::new_unchecked(&f[ETH_LEN + IP_LEN..]);
            assert_eq!(usize::from(udp.src_port()), 1024 + 5 + k);
            assert!(udp.checksum_ok(ip.src(), ip.dst()));
        }
        assert_eq!(g.new_flow, Some(u64::from(NEW_FLOW_PORTS) * 3 + 7));
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("02:18:00:00:00:0a"), Ok([2, 0x18, 0, 0, 0, 10]));
        assert!(parse_mac("02:18:00:00:00").is_err());
        assert!(parse_mac("02:18:00:00:00:00:00").is_err());
        assert!(parse_mac("zz:18:00:00:00:00").is_err());
    }
}
