//! `xvs run`: start the appliance, serve until SIGTERM/SIGINT, reload on SIGHUP.
//!
//! Start-up order (each step undone if a later one fails, so a failed start leaves no XDP program
//! attached): check privileges → load and validate the config → look up the interfaces → build
//! the snapshot and next-hop table → attach the XDP filter (refusing interfaces owned by another
//! program) → open the AF_XDP sockets and register them → steer the services → resolve the real
//! (and sorry) servers' MACs → start workers, neighbour refresher, expiry janitor, health checks,
//! metrics, the VRRP thread and the admin socket → `READY=1`. Every steering change goes through
//! the VRRP [`VipGate`]: a VIP held by a VRRP instance is steered only while that instance is
//! MASTER (`src/vrrp/gate.rs`).
//!
//! A reload builds a new snapshot off the packet path and swaps it in whole, then hands the health
//! checks their new plan (pairs kept across the reload keep their state); a file that does not
//! validate, or that changes what needs a restart (the `datapath` section, `conntrack.max_entries`, `local_addresses`,
//! `global.metrics_listen`, `global.admin_socket`, the `sync` and `announce` sections), is refused and the running configuration stays.
//! VRRP instances are resolved first (a reload whose instance cannot run is refused whole), then
//! handed to the VRRP thread, which keeps the state of every instance whose identity did not
//! change. `xvs ctl reload` reaches the same code: the admin thread hands the request to the main loop,
//! which drains it at every wake-up (at most 250 ms) and answers with the outcome.
//!
//! With `announce:`, the announcer's TUN device is created right after the interface locks are
//! taken, and the main loop makes the announce table follow the services' quorum and the
//! drained flag at every wake-up (`control::announce`); a clean stop withdraws every VIP before
//! anything else stops.
//!
//! SIGTERM/SIGINT: the main loop (woken at once) sets the stop flag every thread watches, sends
//! the VRRP release, and joins the threads. The metrics and admin servers notice the flag within
//! 50 ms and close their connections without waiting for any client (a silent one, or one that
//! never reads its reply); their threads are joined with a bound all the same
//! (500 ms, see `threads.rs`), so no client can hold the stop up.
//!
//! Layout: [`run`] is `startup::start` (each step a typed [`DaemonError`]; what it set up is undone
//! by dropping it: the `Threads` guard, then the filter, then the interface locks), then
//! `Running::serve` (the main loop), then `Running::shutdown`. `reload.rs` holds what the main
//! loop does in between (reloads, `xvs ctl real`, syncs with the kernel).

mod error;
mod reload;
mod startup;
mod threads;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::Receiver;

pub use error::{DaemonError, SubsystemError};

use crate::control::admin::{self, ReloadRequest};
use crate::control::announce::Announcer;
use crate::control::config::Config;
use crate::control::health::HealthHandle;
use crate::control::iflock::InterfaceLocks;
use crate::control::metrics::ReloadStatus;
use crate::control::signals::{DaemonSignals, Signal};
use crate::control::snapshot;
use crate::control::vrrp_spec as vrrp;
use crate::datapath::filter::FilterProgram;
use crate::datapath::{Port, Shared, Snapshot};
use crate::steer::SteerKey;
use crate::sys;
use crate::vrrp::gate::{HeldFlags, VipGate};
use threads::Threads;

/// How often the filter's copy of the box's own addresses is re-synced from the kernel.
const ADDRESS_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long the main loop sleeps at most between wake-ups (signals wake it at once).
const MAIN_LOOP_WAKEUP: Duration = Duration::from_millis(250);

/// Runs the daemon until SIGTERM/SIGINT. `Err` carries what to print ([`DaemonError::report`]).
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let mut daemon = startup::start(path)?;
    let failure = daemon.serve();
    daemon.shutdown(failure)
}

/// Everything the running daemon holds. Fields drop in declaration order: the threads are
/// stopped and joined first, the filter is detached after them, the interface locks go last.
struct Running {
    threads: Threads,
    signals: DaemonSignals,
    /// `xvs ctl reload` and `xvs ctl real` requests from the admin thread.
    requests: Receiver<ReloadRequest>,
    path: PathBuf,
    cfg: Config,
    ports: Vec<Port>,
    shared: Arc<Shared>,
    filter: Arc<FilterProgram>,
    /// Every steering change goes through it: VRRP VIPs are steered only while MASTER.
    gate: Arc<VipGate>,
    /// The "held" flags of the VRRP-managed VIPs, which the gate sets and every snapshot's
    /// services read.
    held: Arc<HeldFlags>,
    reload: Arc<ReloadStatus>,
    health: HealthHandle,
    /// The last local-address sync failed (logged once until it works again).
    address_sync_failing: bool,
    /// Real servers removed by a reload whose connections have not all ended: their replies
    /// stay steered to the workers until then.
    draining: Vec<snapshot::DrainingReal>,
    /// The VIP announcer (`announce:`); `None` without that section. Dropping it closes its
    /// device, which deletes its routes; a clean stop withdraws them first, logging each.
    announcer: Option<Announcer>,
    /// Held until the filter is detached; dropping them removes their files.
    _locks: InterfaceLocks,
}

impl Running {
    /// The main loop: acts on signals and admin requests, keeps the filter in sync with the
    /// kernel, and watches the threads. Returns on SIGTERM/SIGINT (`None`) or when a worker or
    /// the VRRP thread ended on its own (why).
    fn serve(&mut self) -> Option<DaemonError> {
        let mut last_address_sync = Instant::now();
        loop {
            match self.signals.wait(MAIN_LOOP_WAKEUP) {
                Some(Signal::Stop(sig)) => {
                    log::info!("Received signal {sig}, stopping");
                    return None;
                }
                Some(Signal::Reload) => {
                    let _ = self.reload();
                }
                None => {
                    if let Some(failure) = self.threads.failed() {
                        return Some(failure);
                    }
                }
            }
            let resync = last_address_sync.elapsed() >= ADDRESS_SYNC_INTERVAL;
            if resync {
                last_address_sync = Instant::now();
                self.sync_local_addresses();
                self.finish_draining();
            }
            // At every wake-up (at most 250 ms): a changed MAC is followed well within a second.
            self.sync_port_macs();
            // `xvs ctl reload`: run here, where the running configuration lives.
            while let Ok(req) = self.requests.try_recv() {
                let outcome = match &req.op {
                    admin::MainOp::Reload => self.reload(),
                    admin::MainOp::Real(change) => self.real_change(change),
                    admin::MainOp::Drain(drained) => self.drain(*drained),
                };
                req.respond(outcome);
            }
            // After any reload or drain of this wake-up: the table follows at once.
            if let Some(a) = &mut self.announcer {
                a.evaluate(&self.shared.snapshot.load(), resync);
            }
        }
    }

    /// `xvs ctl drain` (`true`) / `undrain`: every VIP withdrawn (announced again when ready);
    /// the datapath is untouched, so existing flows continue. The flag lives here, not in the
    /// configuration: a reload keeps it.
    fn drain(&mut self, drained: bool) -> admin::ReloadOutcome {
        let Some(a) = &mut self.announcer else {
            return Err(
                "xvs: announce is not configured (no `announce:` section): there is nothing to drain or undrain"
                    .to_string(),
            );
        };
        let n = a.set_drained(drained, &self.shared.snapshot.load());
        let vips = if n == 1 { "VIP" } else { "VIPs" };
        Ok(if drained {
            format!("drained: {n} {vips} withdrawn, existing flows continue")
        } else {
            format!("undrained: {n} {vips} announced")
        })
    }

    /// Stops every thread (a MASTER's priority-0 release goes out first), detaches the filter
    /// and reports the first reason to fail: a worker's error, a thread that panicked, then
    /// `failure` (why the main loop ended).
    fn shutdown(mut self, failure: Option<DaemonError>) -> Result<(), DaemonError> {
        sys::sd_notify("STOPPING=1");
        // Withdrawn first, while the box still forwards: the routers move the traffic away
        // before the workers stop.
        if let Some(a) = self.announcer.take() {
            a.stop();
        }
        let joined = self.threads.stop();
        // Every thread holding the gate (and so the filter) has ended.
        drop(self.gate);
        match Arc::try_unwrap(self.filter) {
            Ok(f) => f.detach()?,
            Err(_) => {
                log::warn!(
                    "XDP filter still referenced at exit; it is detached when the process ends"
                )
            }
        }
        log::info!("xvs stopped");
        if let Some(e) = joined.worker_error {
            return Err(e.into());
        }
        joined.failure.or(failure).map_or(Ok(()), Err)
    }
}

/// Snapshot `generation` of `cfg` on `ports` (see [`snapshot::build`]), its services on
/// VRRP-managed VIPs gated by their "held" flags: never forwarded while not MASTER.
fn build_snapshot(
    cfg: &Config,
    ports: Vec<Port>,
    generation: u64,
    previous: Option<&Snapshot>,
    held: &HeldFlags,
) -> Snapshot {
    snapshot::build(cfg, ports, generation, previous)
        .with_vrrp_gates(held.for_vips(&vrrp::managed_vips(cfg)))
}

/// What the filter steers: the snapshot's keys and those of the real servers still draining.
fn steering_keys(snap: &Snapshot, draining: &[snapshot::DrainingReal]) -> Vec<SteerKey> {
    let mut keys = snap.steering_keys();
    keys.extend(draining.iter().flat_map(|d| d.steering_keys()));
    keys.sort();
    keys.dedup();
    keys
}

/// Every real and sorry server address of `cfg`, sorted, once each.
fn real_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = cfg
        .services
        .iter()
        .flat_map(|s| {
            s.reals
                .iter()
                .map(|r| r.address.ip())
                .chain(s.sorry_server.map(|a| a.ip()))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    use crate::vrrp::gate::{SinkError, SteeringSink};

    #[test]
    fn snapshots_gate_the_services_of_vrrp_managed_vips_closed_until_held() {
        struct Nowhere;
        impl SteeringSink for Nowhere {
            fn set_steering(&self, _: &[SteerKey]) -> Result<(), SinkError> {
                Ok(())
            }
        }
        let cfg = |vips: &str| {
            let mut text = "datapath:\n  interfaces:\n    - name: eth0\nservices:\n\
                 \x20 - { name: web, vip: 198.18.0.100, port: 80, reals: [{ address: 198.18.1.11:80 }] }\n\
                 \x20 - { name: dns, vip: 198.18.0.101, port: 53, protocol: udp, reals: [{ address: 198.18.1.11:53 }] }\n"
                .to_string();
            if !vips.is_empty() {
                text += &format!(
                    "vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth0, vrid: 51, priority: 100, vips: [{vips}] }}\n"
                );
            }
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let gate_of = |snap: &Snapshot, name: &str| {
            let s = snap.services.iter().find(|s| s.name == name).unwrap();
            s.vrrp.as_ref().map(|f| f.load(Ordering::Relaxed))
        };
        let held = Arc::new(HeldFlags::default());
        let plain = build_snapshot(&cfg(""), Vec::new(), 1, None, &held);
        assert_eq!(gate_of(&plain, "web"), None);
        // A reload puts web's VIP behind VRRP: closed before any instance holds it.
        let c2 = cfg("198.18.0.100/32");
        let gate = VipGate::new(Box::new(Nowhere), vrrp::managed_vips(&c2), held.clone());
        let s2 = build_snapshot(&c2, Vec::new(), 2, Some(&plain), &held);
        assert_eq!(gate_of(&s2, "web"), Some(false));
        assert!(s2.services[0].vrrp_backup());
        assert_eq!(gate_of(&s2, "dns"), None, "not VRRP-managed");
        gate.hold(&["198.18.0.100".parse().unwrap()], true).unwrap();
        assert_eq!(gate_of(&s2, "web"), Some(true));
        // The next reload also manages dns's VIP: web stays open, dns starts closed.
        let c3 = cfg("198.18.0.100/32, 198.18.0.101/32");
        let s3 = build_snapshot(&c3, Vec::new(), 3, Some(&s2), &held);
        gate.update(Vec::new(), vrrp::managed_vips(&c3)).unwrap();
        assert_eq!(gate_of(&s3, "web"), Some(true));
        assert_eq!(gate_of(&s3, "dns"), Some(false));
    }
}
