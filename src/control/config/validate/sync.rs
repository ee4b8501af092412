//! The `sync` section (connection synchronisation between load balancers).
//!
//! Every key is checked where it is written: the interface (a name Linux accepts, that exists),
//! the port (not 0), the peers (unicast, not loopback, not this box's own address or one of the
//! configuration's VIPs, each once, at most [`MAX_PEERS`]) and the key file, which is read here
//! with the sync layer's own rules ([`crate::sync::keyfile::load`]), so `xvs check` refuses a
//! missing, empty, too short or too open key before a daemon tries to start.

use std::net::IpAddr;

use super::limits::MAX_PATH_LEN;
use super::{is_unicast, Ctx};
use crate::control::config::model::{Config, StateSync};
use crate::sync::keyfile;
use crate::sync::replay::MAX_PEERS;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    let Some(s) = &cfg.sync else { return };
    cx.ifname("sync.interface", &s.interface, true);
    if s.port == 0 {
        cx.value(
            "sync.port",
            "port 0 is not a port sync messages can be sent to",
        );
    }
    peers(cx, s);
    key_file(cx, s);
}

fn peers(cx: &mut Ctx, s: &StateSync) {
    if s.peers.len() > MAX_PEERS {
        cx.key(
            "sync.peers",
            format!("{} peers; at most {MAX_PEERS} are supported", s.peers.len()),
        );
    }
    for (k, peer) in s.peers.iter().enumerate() {
        if let Some(why) = not_a_peer(cx, *peer) {
            cx.value(&format!("sync.peers[{k}]"), format!("peer {peer} {why}"));
        }
    }
    cx.unique(
        s.peers
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("sync.peers[{k}]"), *a)),
        |a, first| format!("peer {a} is listed twice (first at {first})"),
    );
}

/// Why `a` cannot be a sync peer, if it cannot.
fn not_a_peer(cx: &Ctx, a: IpAddr) -> Option<String> {
    if !is_unicast(a) {
        return Some("is not a unicast address".into());
    }
    if a.is_loopback() {
        return Some("is a loopback address: a peer is another director".into());
    }
    if let Some(h) = cx.machine.own_address(a) {
        return Some(format!(
            "is an address of this box ({}/{}): a peer is another director",
            h.addr, h.prefix_len
        ));
    }
    cx.machine
        .vip(a)
        .map(|what| format!("is {what}: a peer is another director's own address"))
}

fn key_file(cx: &mut Ctx, s: &StateSync) {
    let Some(path) = &s.key_file else {
        cx.key(
            "sync",
            "sync needs a key_file: every sync message is authenticated with HMAC-SHA256 over a shared key",
        );
        return;
    };
    if path.as_os_str().is_empty() {
        cx.value("sync.key_file", "key_file must not be empty");
    } else if path.as_os_str().len() <= MAX_PATH_LEN {
        // (A longer path is refused by the limits.)
        if let Err(e) = keyfile::load(path) {
            cx.value("sync.key_file", e.to_string());
        }
    }
}
