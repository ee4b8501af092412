//! The lab benchmark's floor (`scripts/bench-lab`): a do-nothing AF_XDP forwarder built from
//! xvs's own I/O ([`QueueIo`]) and XDP filter ([`FilterProgram`]), with none of xvs's work.
//!
//! It opens one socket per interface on queue 0 (`--in` is port 0, `--out` port 1, one UMEM),
//! attaches xvs's filter steering `--vip:--port` (UDP or TCP) into the sockets, and busy-polls
//! as an xvs worker does: reap completions and refill, take a batch from each RX ring, rewrite
//! only the Ethernet addresses (source: the egress interface's MAC; destination: `--out-mac`
//! for frames from `--in`, `--in-mac` for frames from `--out`), queue each frame on the other
//! port's TX ring, kick TX. No parsing, no lookup, no clock on the path: what copy-mode AF_XDP
//! alone costs on this machine, the ceiling for xvs's own forwarding here.
//!
//! Runs until SIGINT/SIGTERM or `--seconds`; prints `forwarded=N` and the sockets' mode.
//! Pin it yourself (`taskset`): the benchmark places it where xvs's worker runs.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use xvs::datapath::filter::{ifindex_of, FilterPort, FilterProgram, XdpMode};
use xvs::datapath::worker::{Disposition, Rings, Step};
use xvs::datapath::xsk::{QueueIo, XskConfig};
use xvs::datapath::{Mac, PortId};
use xvs::flow::Proto;
use xvs::steer::SteerKey;

#[derive(Parser, Debug)]
#[command(about = "Do-nothing AF_XDP forwarder on xvs's QueueIo (the lab benchmark's floor)")]
struct Args {
    /// Interface the load arrives on (port 0).
    #[arg(long = "in")]
    in_iface: String,
    /// Interface frames leave by (port 1).
    #[arg(long = "out")]
    out_iface: String,
    /// Destination address of the steered load.
    #[arg(long)]
    vip: IpAddr,
    #[arg(long, default_value_t = 5353)]
    port: u16,
    /// Steer TCP instead of UDP.
    #[arg(long)]
    tcp: bool,
    /// Destination MAC of frames sent out of --out (the real server's).
    #[arg(long, value_parser = parse_mac)]
    out_mac: Mac,
    /// Destination MAC of frames sent out of --in (the client's; nothing is steered that way
    /// unless a reply matches).
    #[arg(long, value_parser = parse_mac, default_value = "ff:ff:ff:ff:ff:ff")]
    in_mac: Mac,
    /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
}

fn parse_mac(s: &str) -> Result<Mac, String> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
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

fn filter_port(name: &str) -> Result<FilterPort, String> {
    let ifindex = ifindex_of(name).map_err(|e| format!("{name}: {e}"))?;
    let path = format!("/sys/class/net/{name}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(FilterPort {
        name: name.to_string(),
        ifindex,
        mac: parse_mac(&text)?,
    })
}

/// Rewrites the Ethernet addresses of `buf` (nothing else) and names the egress port.
#[inline]
fn forward(buf: &mut [u8], len: usize, dst: &Mac, src: &Mac, out: PortId) -> Disposition {
    match buf.get_mut(..12) {
        Some(h) if len >= 14 => {
            h[..6].copy_from_slice(dst);
            h[6..].copy_from_slice(src);
            Disposition::Tx(out)
        }
        _ => Disposition::Recycle,
    }
}

/// The busy-poll loop; returns the frames forwarded.
fn forward_loop(
    io: &mut QueueIo,
    macs: [(Mac, Mac); 2],
    stop: &AtomicBool,
) -> Result<u64, std::io::Error> {
    let mut forwarded = 0u64;
    while !stop.load(Ordering::Relaxed) {
        io.reap_and_refill()?;
        let mut received = 0;
        for (port, (dst, src)) in macs.iter().enumerate() {
            let (port, out) = if port == 0 { (0, 1) } else { (1, 0) };
            received += io.receive(port, 64, |step, buf, len| match step {
                // A do-nothing forwarder has no pre-pass.
                Step::Look => Disposition::Recycle,
                Step::Decide => forward(buf, *len, dst, src, out),
            });
        }
        forwarded += io.flush_tx()?.sent;
        if received == 0 {
            std::hint::spin_loop();
        }
    }
    Ok(forwarded)
}

fn run(a: &Args) -> Result<(), String> {
    let ports = [filter_port(&a.in_iface)?, filter_port(&a.out_iface)?];
    let names = [a.in_iface.as_str(), a.out_iface.as_str()];
    let mut io = QueueIo::open(&names, 0, &XskConfig::default()).map_err(|e| e.to_string())?;
    let filter = FilterProgram::attach(&ports, XdpMode::Auto).map_err(|e| e.to_string())?;
    let proto = if a.tcp { Proto::Tcp } else { Proto::Udp };
    filter
        .set_steering(&[SteerKey::Dst {
            addr: a.vip,
            port: a.port,
            proto,
        }])
        .map_err(|e| e.to_string())?;
    for (port, fd) in io.socket_fds().collect::<Vec<_>>() {
        filter
            .register_socket(port, 0, fd)
            .map_err(|e| e.to_string())?;
    }
    let modes: Vec<String> = (0..2u8)
        .map(|p| filter.attach_mode(p).map_or("?", |m| m.name()).to_string())
        .collect();
    eprintln!(
        "xsk_floor: {} -> {} ({} XDP, {} AF_XDP), steering {}:{} {:?}",
        a.in_iface,
        a.out_iface,
        modes.join("/"),
        if io.is_zero_copy() {
            "zero-copy"
        } else {
            "copy-mode"
        },
        a.vip,
        a.port,
        proto
    );

    let signals = xvs::sys::SignalSet::new(&[libc::SIGINT, libc::SIGTERM])
        .and_then(|s| s.block().map(|()| s))
        .map_err(|e| format!("signals: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    // Port 0's frames leave by port 1 towards --out-mac, port 1's by port 0 towards --in-mac.
    let macs = [(a.out_mac, ports[1].mac), (a.in_mac, ports[0].mac)];
    let worker = std::thread::Builder::new()
        .name("xsk-floor".into())
        .spawn(move || forward_loop(&mut io, macs, &thread_stop))
        .map_err(|e| format!("spawn: {e}"))?;
    let end = (a.seconds > 0.0).then(|| Instant::now() + Duration::from_secs_f64(a.seconds));
    while !worker.is_finished() && end.is_none_or(|t| Instant::now() < t) {
        if signals.wait(Duration::from_millis(100)).is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let forwarded = worker
        .join()
        .map_err(|_| "the forwarding thread panicked".to_string())?
        .map_err(|e| format!("forwarding: {e}"))?;
    filter.detach().map_err(|e| e.to_string())?;
    println!("forwarded={forwarded}");
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsk_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ethernet_addresses_change() {
        let mut f = [0xaau8; 60];
        let before = f;
        let d = forward(&mut f, 60, &[1, 2, 3, 4, 5, 6], &[7, 8, 9, 10, 11, 12], 1);
        assert_eq!(d, Disposition::Tx(1));
        assert_eq!(&f[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(&f[12..], &before[12..]);
        assert_eq!(
            forward(&mut f, 13, &[0; 6], &[0; 6], 0),
            Disposition::Recycle
        );
    }
}
