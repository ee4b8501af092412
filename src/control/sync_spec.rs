//! The `sync:` section resolved for the sync thread ([`crate::sync::driver`]): the interface's
//! index and addresses (netlink), the key (the key file's rules), the multicast group when
//! `peers` is empty, and this box's sender id.
//!
//! Choices (README, `### sync`):
//! - **Family**: unicast peers name theirs; with no peers, IPv4 multicast
//!   ([`MULTICAST_V4`], 224.0.0.81) when the sync interface has an IPv4 address, else IPv6
//!   ([`MULTICAST_V6`], ff02::8848).
//! - **Sender id**: [`sender_id`] of this box's address on the sync interface, of the family
//!   in use (IPv4 whenever an IPv4 peer or IPv4 multicast is used: the address itself, unique on
//!   the link; else the first global IPv6 address, or the link-local one, hashed). Two boxes
//!   with one id would share a replay window: a box drops messages carrying its own id
//!   (`own_sender`) and says so in its log.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::control::config::StateSync;
use crate::control::netlink::{self, NetlinkError};
use crate::datapath::Shared;
use crate::sync::auth::Key;
use crate::sync::driver::{self, DriverConfig, SyncDriverError, Tables};
use crate::sync::endpoint::{sender_id, MULTICAST_V4, MULTICAST_V6};
use crate::sync::keyfile::{self, KeyFileError};
use crate::sync::ring::SyncConsumer;
use crate::sync::status::SyncStatus;

/// Why the sync thread cannot start with this section.
#[derive(Debug, thiserror::Error)]
pub enum SyncSpecError {
    #[error("sync.interface {name}: {source}")]
    Interface { name: String, source: NetlinkError },
    #[error("sync.interface {interface} has no {family} address to sync from (the sender id is derived from it)")]
    NoAddress {
        interface: String,
        family: &'static str,
    },
    #[error("sync.key_file: {0}")]
    Key(#[from] KeyFileError),
    #[error("sync needs a key_file")]
    NoKey,
    #[error(transparent)]
    Driver(#[from] SyncDriverError),
}

/// The driver's configuration of section `s` on interface `ifindex` with `addrs` (address,
/// prefix length) and `key`.
pub fn resolve(
    s: &StateSync,
    ifindex: u32,
    addrs: &[(IpAddr, u8)],
    key: Key,
) -> Result<DriverConfig, SyncSpecError> {
    let has_v4 = addrs.iter().any(|(a, _)| a.is_ipv4());
    let v4 = if s.peers.is_empty() {
        has_v4
    } else {
        s.peers.iter().any(IpAddr::is_ipv4)
    };
    let own = if v4 {
        addrs.iter().map(|(a, _)| *a).find(IpAddr::is_ipv4)
    } else {
        let v6 = || {
            addrs.iter().filter_map(|(a, _)| match a {
                IpAddr::V6(a) if !a.is_loopback() && !a.is_multicast() => Some(*a),
                _ => None,
            })
        };
        v6().find(|a| !a.is_unicast_link_local())
            .or_else(|| v6().next())
            .map(IpAddr::V6)
    };
    let own = own.ok_or_else(|| SyncSpecError::NoAddress {
        interface: s.interface.clone(),
        family: if v4 { "IPv4" } else { "IPv6" },
    })?;
    Ok(DriverConfig {
        interface: s.interface.clone(),
        ifindex,
        port: s.port,
        peers: s.peers.clone(),
        group: if v4 {
            MULTICAST_V4.into()
        } else {
            MULTICAST_V6.into()
        },
        bind: None,
        sender: sender_id(own),
        key,
    })
}

/// Reads the interface and the key, then starts the sync thread with `tables`.
pub fn spawn(
    s: &StateSync,
    tables: Tables,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<SyncStatus>, JoinHandle<()>), SyncSpecError> {
    let iface = |source| SyncSpecError::Interface {
        name: s.interface.clone(),
        source,
    };
    let link = netlink::link_by_name(&s.interface).map_err(iface)?;
    let addrs = netlink::interface_addresses(link.ifindex).map_err(iface)?;
    let key = keyfile::load(s.key_file.as_deref().ok_or(SyncSpecError::NoKey)?)?;
    let cfg = resolve(s, link.ifindex, &addrs, key)?;
    Ok(driver::spawn(cfg, tables, epoch, stop)?)
}

/// The tables the sync thread runs with: the workers' rings (and the health checker's, whose
/// `on_failure: remove` deletes are synced too) as the records to send, and `shared`, the
/// very tables the workers use (a reload swaps the snapshot inside it, never the tables), as
/// the dump and the sink of peers' records.
pub fn tables(shared: &Arc<Shared>, rings: Vec<SyncConsumer>) -> Tables {
    Tables {
        records: Box::new(rings),
        dump: Box::new(shared.clone()),
        sink: Box::new(shared.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::DEFAULT_SYNC_PORT;

    fn section(peers: &[&str]) -> StateSync {
        StateSync {
            interface: "sync0".into(),
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            port: DEFAULT_SYNC_PORT,
            key_file: None,
        }
    }

    fn key() -> Key {
        Key::new(b"sync-spec-key-0123456789").unwrap()
    }

    fn a(s: &str) -> (IpAddr, u8) {
        (s.parse().unwrap(), 24)
    }

    #[test]
    fn family_group_and_sender_id_follow_the_peers_and_the_interface() {
        let dual = [a("fe80::1"), a("2001:2::1"), a("198.18.3.1")];
        // Unicast IPv4 peers: the IPv4 address is the id.
        let c = resolve(&section(&["198.18.3.2"]), 7, &dual, key()).unwrap();
        assert_eq!((c.sender, c.ifindex, c.port), (0xc612_0301, 7, 8848));
        // IPv6 peers: the global address, hashed.
        let c = resolve(&section(&["2001:2::2"]), 7, &dual, key()).unwrap();
        assert_eq!(c.sender, sender_id("2001:2::1".parse().unwrap()));
        // Multicast: IPv4 when the interface has an IPv4 address, else IPv6 (link-local id).
        let c = resolve(&section(&[]), 7, &dual, key()).unwrap();
        assert_eq!(c.group, IpAddr::V4(MULTICAST_V4));
        let c = resolve(&section(&[]), 7, &[a("fe80::1")], key()).unwrap();
        assert_eq!(c.group, IpAddr::V6(MULTICAST_V6));
        assert_eq!(c.sender, sender_id("fe80::1".parse().unwrap()));
        let e = resolve(&section(&["198.18.3.2"]), 7, &[a("fe80::1")], key()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sync.interface sync0 has no IPv4 address to sync from (the sender id is derived from it)"
        );
    }
}
