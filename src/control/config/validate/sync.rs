//! The `sync` section (connection synchronisation between load balancers).

use super::{is_unicast, Ctx};
use crate::control::config::model::Config;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    let Some(s) = &cfg.sync else { return };
    cx.ifname("sync.interface", &s.interface, true);
    for (k, peer) in s.peers.iter().enumerate() {
        if !is_unicast(*peer) {
            cx.value(
                &format!("sync.peers[{k}]"),
                format!("peer {peer} is not a unicast address"),
            );
        }
    }
    cx.unique(
        s.peers
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("sync.peers[{k}]"), *a)),
        |a, first| format!("peer {a} is listed twice (first at {first})"),
    );
    if let Some(k) = &s.key_file {
        if k.as_os_str().is_empty() {
            cx.value("sync.key_file", "key_file must not be empty");
        }
    }
}
