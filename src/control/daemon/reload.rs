//! What the running daemon does between start and stop: reloads (SIGHUP, `xvs ctl reload`),
//! run-time real-server changes (`xvs ctl real`), and the periodic syncs of the filter with the
//! kernel (local addresses, port MACs) and of draining real servers.
//!
//! Invariant: a reload or change that fails leaves the running configuration, snapshot and
//! steering exactly as they were.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{build_snapshot, real_addresses, steering_keys, unix_now, DaemonError, Running};
use crate::control::admin;
use crate::control::config::{self, Config};
use crate::control::ctl::{RealChange, RealChangeKind};
use crate::control::vrrp_spec as vrrp;
use crate::control::{health, netlink, snapshot};
use crate::sys;

/// `02:18:00:01:00:01`.
fn mac_text(m: &[u8; 6]) -> String {
    let h: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    h.join(":")
}

/// Why `new` cannot replace `old` on reload because a service kept its identity (VIP, port,
/// protocol) but changed its forwarding method, if it did. Connection entries do not record
/// their method (IPVS's do), so the open connections of such a service would be forwarded the
/// new way while their replies still come back the old way.
fn forwarding_changes(old: &Config, new: &Config) -> Option<DaemonError> {
    new.services.iter().find_map(|n| {
        let o = old.services.iter().find(|o| o.key() == n.key())?;
        (o.forwarding != n.forwarding).then(|| DaemonError::ForwardingChanged {
            service: n.name.clone(),
            from: o.forwarding,
            to: n.forwarding,
        })
    })
}

/// The settings only a restart applies, by name, with whether `old` and `new` differ in it.
fn restart_only_changes(old: &Config, new: &Config) -> Option<DaemonError> {
    let checks = [
        ("datapath section", new.datapath != old.datapath),
        // The connection table owns the pools' ports (and live connections hold some).
        (
            "local_addresses",
            new.local_addresses != old.local_addresses,
        ),
        (
            "conntrack.max_entries",
            new.conntrack.max_entries != old.conntrack.max_entries,
        ),
        // Compared by effective value: an IPv6 service added to an IPv4-only file changes the
        // default from 0 to `max_entries`, and the IPv6 table is allocated at start only.
        (
            "conntrack.max_entries_ipv6",
            new.max_entries_ipv6() != old.max_entries_ipv6(),
        ),
        (
            "global.metrics_listen",
            new.global.metrics_listen != old.global.metrics_listen,
        ),
        (
            "global.admin_socket",
            new.global.admin_socket != old.global.admin_socket,
        ),
        // The sync thread, its socket, key and the workers' rings are set up at start only.
        ("sync section", new.sync != old.sync),
        // The announcer's device and table are set up at start only.
        ("announce section", new.announce != old.announce),
    ];
    checks
        .into_iter()
        .find(|(_, changed)| *changed)
        .map(|(what, _)| DaemonError::RestartNeeded(what))
}

impl Running {
    /// Forgets the draining real servers whose last connection ended and stops steering their
    /// replies.
    pub(super) fn finish_draining(&mut self) {
        let before = self.draining.len();
        self.draining.retain(|d| {
            let done = d.is_drained();
            if done {
                log::info!(
                    "Service [{}]:{}:{} of VS {} drained",
                    d.addr.ip(),
                    d.service.proto,
                    d.addr.port(),
                    d.service
                );
            }
            !done
        });
        if self.draining.len() != before {
            let keys = steering_keys(&self.shared.snapshot.load(), &self.draining);
            if let Err(e) = self.gate.set_keys(keys) {
                log::error!("Cannot update the XDP filter's steering: {e}");
            }
        }
    }

    /// Re-syncs the filter's `local_addrs` map with the kernel's addresses (an address added by
    /// an operator or by VRRP). Errors are logged, never fatal.
    pub(super) fn sync_local_addresses(&mut self) {
        let result = netlink::dump_addresses()
            .map_err(|e| e.to_string())
            .and_then(|a| {
                self.filter
                    .set_local_addresses(&a)
                    .map_err(|e| e.to_string())
            });
        match (result, self.address_sync_failing) {
            (Ok(_), true) => {
                log::info!("Local addresses synced again");
                self.address_sync_failing = false;
            }
            (Err(e), false) => {
                log::error!("Cannot sync local addresses to the XDP filter: {e}");
                self.address_sync_failing = true;
            }
            _ => {}
        }
    }

    /// Re-reads each port's MAC (an operator's `ip link set dev X address ...`, a bond's new
    /// active slave): the filter's `ports` and `own_macs` maps follow, and so does the snapshot
    /// (the ingress check of `process()` and the source MAC of transmitted frames). Errors are
    /// logged, never fatal.
    pub(super) fn sync_port_macs(&mut self) {
        let mut macs: Vec<[u8; 6]> = self.ports.iter().map(|p| p.mac).collect();
        for (port, mac) in self.ports.iter().zip(macs.iter_mut()) {
            match netlink::link_by_name(&port.name) {
                Ok(link) if link.ifindex == port.ifindex => *mac = link.mac,
                // Gone or replaced by another interface of that name: xvs cannot follow that
                // (its sockets are bound to the old one); keep what it had.
                Ok(_) | Err(_) => {}
            }
        }
        if self.ports.iter().zip(&macs).all(|(p, m)| p.mac == *m) {
            return;
        }
        if let Err(e) = self.filter.set_port_macs(&macs) {
            log::error!("Cannot update the XDP filter's interface MACs: {e}");
            return;
        }
        for (port, mac) in self.ports.iter_mut().zip(&macs) {
            if port.mac != *mac {
                log::info!(
                    "Interface {}: MAC changed from {} to {}",
                    port.name,
                    mac_text(&port.mac),
                    mac_text(mac)
                );
                port.mac = *mac;
            }
        }
        let old = self.shared.snapshot.load_full();
        let new = build_snapshot(
            &self.cfg,
            self.ports.clone(),
            old.generation + 1,
            Some(&old),
            &self.held,
        );
        self.shared.snapshot.store(Arc::new(new));
    }

    /// `xvs ctl real add|edit|del`: changes the running configuration (not the file), validated
    /// like a load, applied like a reload. A deleted real server drains.
    pub(super) fn real_change(&mut self, c: &RealChange) -> admin::ReloadOutcome {
        let mut cfg = self.cfg.clone();
        let what = format!("real {} {} in service `{}`", c.op.name(), c.addr, c.service);
        let Some(svc) = cfg.services.iter_mut().find(|s| s.name == c.service) else {
            return Err(format!("xvs: {what}: no service named `{}`", c.service));
        };
        let at = svc.reals.iter().position(|r| r.address == c.addr);
        match (c.op, at) {
            (RealChangeKind::Add, Some(_)) => {
                return Err(format!(
                    "xvs: {what}: {} is already a real server of it",
                    c.addr
                ))
            }
            (RealChangeKind::Add, None) => svc.reals.push(config::Real {
                address: c.addr,
                weight: c.weight.unwrap_or(1),
                upper_threshold: 0,
                lower_threshold: 0,
                health_check: None,
            }),
            (_, None) => {
                return Err(format!(
                    "xvs: {what}: {} is not a real server of it",
                    c.addr
                ))
            }
            (RealChangeKind::Edit, Some(i)) => match c.weight {
                Some(w) => svc.reals[i].weight = w,
                None => return Err(format!("xvs: {what}: nothing to change (give --weight N)")),
            },
            (RealChangeKind::Del, Some(i)) => {
                svc.reals.remove(i);
            }
        }
        if let Err(problems) = config::validate_runtime(&cfg, &config::SystemHost::running()) {
            return Err(format!("xvs: {what} refused: {}", problems.join("; ")));
        }
        log::info!("Run-time change: {what}");
        match self.apply(cfg) {
            Ok(changes) => {
                for l in &changes {
                    log::info!("{l}");
                }
                if changes.is_empty() {
                    Ok("No change".to_string())
                } else {
                    Ok(changes.join("\n"))
                }
            }
            Err(e) => {
                let msg = e.report();
                log::error!("{msg}");
                Err(msg)
            }
        }
    }

    /// Applies the file again; on any error the running configuration stays. Logs as it goes and
    /// returns what changed, or why the file was refused (for `xvs ctl reload`).
    pub(super) fn reload(&mut self) -> admin::ReloadOutcome {
        sys::sd_notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            sys::monotonic_usec()
        ));
        log::info!("Reloading configuration file {}", self.path.display());
        let outcome = match self.try_reload() {
            Ok(changes) => {
                for c in &changes {
                    log::info!("{c}");
                }
                let done = format!(
                    "Configuration reloaded ({} change{})",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                );
                log::info!("{done}");
                self.reload.successful.store(true, Ordering::Relaxed);
                self.reload
                    .timestamp_seconds
                    .store(unix_now(), Ordering::Relaxed);
                let mut text = changes;
                text.push(done);
                Ok(text.join("\n"))
            }
            Err(e) => {
                let msg = e.report();
                let kept = "Configuration reload failed; keeping the running configuration";
                log::error!("{msg}");
                log::error!("{kept}");
                self.reload.successful.store(false, Ordering::Relaxed);
                Err(format!("{msg}\n{kept}"))
            }
        };
        sys::sd_notify("READY=1");
        outcome
    }

    fn try_reload(&mut self) -> Result<Vec<String>, DaemonError> {
        let cfg = config::load(&self.path, &config::SystemHost::running())
            .map_err(DaemonError::Config)?;
        if let Some(e) = restart_only_changes(&self.cfg, &cfg) {
            return Err(e);
        }
        if let Some(e) = forwarding_changes(&self.cfg, &cfg) {
            return Err(e);
        }
        // Resolved before anything changes: a VRRP instance that cannot run refuses the file.
        let (specs, groups) = vrrp::specs(&cfg).map_err(|e| DaemonError::Vrrp(e.into()))?;
        let mut changes = self.apply(cfg)?;
        if let Some(v) = self.threads.vrrp() {
            changes.extend(
                v.reconfigure(specs, groups)
                    .unwrap_or_else(|e| vec![e.to_string()]),
            );
        }
        Ok(changes)
    }

    /// Makes `cfg` (validated) the running configuration: a new snapshot swapped in, steering,
    /// next hops and health checks updated. Returns the change lines; on error nothing changed.
    fn apply(&mut self, cfg: Config) -> Result<Vec<String>, DaemonError> {
        let old = self.shared.snapshot.load_full();
        let new = build_snapshot(
            &cfg,
            self.ports.clone(),
            old.generation + 1,
            Some(&old),
            &self.held,
        );
        let changes = snapshot::describe_changes(&old, &new);
        let mut draining = self.draining.clone();
        for d in snapshot::removed_with_connections(&old, &new) {
            if !draining.iter().any(|x| Arc::ptr_eq(&x.stats, &d.stats)) {
                draining.push(d);
            }
        }
        let keys = steering_keys(&new, &draining);
        let new = Arc::new(new);
        // Swap first, then steer: a new service's first packets only reach the sockets once the
        // workers already know it. A removed service's packets that arrive in between are passed
        // (and counted as `not_lb_traffic`), never mis-forwarded.
        self.shared.snapshot.store(new.clone());
        // Keys and VRRP-managed VIPs in one write: a VIP that becomes managed is never steered
        // before its instance is MASTER.
        if let Err(e) = self.gate.update(keys, vrrp::managed_vips(&cfg)) {
            // Keep the promise of a failed reload: the running configuration stays, whole.
            self.shared.snapshot.store(old.clone());
            let _ = self.gate.update(
                steering_keys(&old, &self.draining),
                vrrp::managed_vips(&self.cfg),
            );
            return Err(DaemonError::Steering(e.into()));
        }
        for d in &draining[self.draining.len()..] {
            log::info!(
                "Draining service [{}]:{}:{} of VS {} ({} connections left)",
                d.addr.ip(),
                d.service.proto,
                d.addr.port(),
                d.service,
                d.stats.total_connections()
            );
        }
        self.draining = draining;
        for ip in real_addresses(&cfg) {
            let _ = self.shared.neighbour_misses.push(ip);
        }
        self.health.update(health::plan(&cfg, &new));
        self.cfg = cfg;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_may_not_change_a_kept_services_forwarding() {
        let cfg = |web: &str, dns: &str| {
            let text = format!(
                "datapath:\n  interfaces:\n    - name: eth0\nservices:\n\
                 \x20 - {{ name: web, vip: 198.18.2.100, port: 80, forwarding: {web}, reals: [{{ address: 198.18.1.11:80 }}] }}\n\
                 \x20 - {{ name: dns, vip: {dns}, port: 53, protocol: udp, forwarding: tun, reals: [{{ address: 198.18.1.11:53 }}] }}\n"
            );
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let old = cfg("dr", "198.18.2.100");
        assert!(forwarding_changes(&old, &old).is_none());
        let msg = forwarding_changes(&old, &cfg("tun", "198.18.2.100"))
            .unwrap()
            .to_string();
        assert!(
            msg.starts_with("service `web`: forwarding changed from dr to tun;"),
            "{msg}"
        );
        // A service with a new identity (another VIP) is a new service: its method is free.
        assert!(forwarding_changes(&old, &cfg("dr", "198.18.2.101")).is_none());
    }

    #[test]
    fn a_reload_that_changes_the_effective_ipv6_table_size_needs_a_restart() {
        let cfg = |conntrack: &str| {
            let text = format!(
                "datapath:\n  interfaces:\n    - name: eth0\nconntrack: {{ max_entries: 1000{conntrack} }}\nservices:\n\
                 \x20 - {{ name: web, vip: 198.18.2.100, port: 80, forwarding: dr, reals: [{{ address: 198.18.1.11:80 }}] }}\n"
            );
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let changed =
            |old: &Config, new: &Config| restart_only_changes(old, new).map(|e| e.to_string());
        let old = cfg("");
        assert_eq!(old.max_entries_ipv6(), 0);
        // Writing out the effective value changes nothing.
        assert_eq!(changed(&old, &cfg(", max_entries_ipv6: 0")), None);
        assert_eq!(
            changed(&old, &cfg(", max_entries_ipv6: 500")).as_deref(),
            Some("conntrack.max_entries_ipv6 changed: restart xvs to apply it")
        );
        // An IPv6 service turns the default from 0 into max_entries. (The configuration does
        // not take IPv6 services yet: the model is changed directly.)
        let mut with_v6 = old.clone();
        with_v6.services[0].vip = "2001:2::100".parse().unwrap();
        assert_eq!(with_v6.max_entries_ipv6(), 1000);
        assert_eq!(
            changed(&old, &with_v6).as_deref(),
            Some("conntrack.max_entries_ipv6 changed: restart xvs to apply it")
        );
        let mut pinned = with_v6.clone();
        pinned.conntrack.max_entries_ipv6 = Some(1000);
        assert_eq!(changed(&with_v6, &pinned), None);
    }

    #[test]
    fn a_reload_that_adds_removes_or_changes_sync_needs_a_restart() {
        let dir = crate::sync::keyfile::tests::TempDir::new("reload-sync");
        let key = dir.file("k", b"0123456789abcdef", 0o600);
        let cfg = |sync: &str| {
            let sync = sync.replace("/k", key.to_str().unwrap());
            let text = format!("datapath:\n  interfaces:\n    - name: eth0\n{sync}");
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let changed =
            |old: &Config, new: &Config| restart_only_changes(old, new).map(|e| e.to_string());
        let none = cfg("");
        let on = cfg("sync: { interface: sync0, peers: [198.18.9.2], key_file: /k }\n");
        let other = cfg("sync: { interface: sync0, peers: [198.18.9.3], key_file: /k }\n");
        let msg = Some("sync section changed: restart xvs to apply it".to_string());
        assert_eq!(changed(&none, &on), msg);
        assert_eq!(changed(&on, &none), msg);
        assert_eq!(changed(&on, &other), msg);
        assert_eq!(changed(&on, &on.clone()), None);
    }

    #[test]
    fn a_reload_that_adds_removes_or_changes_announce_needs_a_restart() {
        let cfg = |announce: &str| {
            let text = format!("datapath:\n  interfaces:\n    - name: eth0\n{announce}");
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let changed =
            |old: &Config, new: &Config| restart_only_changes(old, new).map(|e| e.to_string());
        let none = cfg("");
        let on = cfg("announce: { table: 100 }\n");
        let msg = Some("announce section changed: restart xvs to apply it".to_string());
        assert_eq!(changed(&none, &on), msg);
        assert_eq!(changed(&on, &none), msg);
        assert_eq!(changed(&on, &cfg("announce: { table: 101 }\n")), msg);
        assert_eq!(changed(&on, &cfg("announce: { device: bgp0 }\n")), msg);
        // The defaults written out are no change.
        assert_eq!(
            changed(
                &on,
                &cfg("announce: { table: 100, device: xvs-announce }\n")
            ),
            None
        );
    }

    #[test]
    fn a_reload_that_changes_the_workers_cpus_needs_a_restart() {
        let cfg = |cpus: &str| {
            let text = format!("datapath:\n  interfaces:\n    - name: eth0\n  cpus: {cpus}\n");
            Config::from_str_named(&text, "t.yaml", &|_: &str| true).unwrap()
        };
        let changed =
            |old: &Config, new: &Config| restart_only_changes(old, new).map(|e| e.to_string());
        assert_eq!(changed(&cfg("[1]"), &cfg("[1]")), None);
        for (old, new) in [("auto", "[1]"), ("[1]", "[0]"), ("[0]", "auto")] {
            assert_eq!(
                changed(&cfg(old), &cfg(new)).as_deref(),
                Some("datapath section changed: restart xvs to apply it"),
                "{old} -> {new}"
            );
        }
    }
}
