//! Semantic validation: ranges, cross-references and combinations that the types alone do not
//! rule out. Every rule runs; all problems are collected, each at the position of the key or
//! value it is about.
//!
//! One file per section of the file, each a `check(cx, cfg)` that [`validate`] calls in turn:
//! [`global`] (`global`, `datapath`, `conntrack`), [`pools`] (`local_addresses`), [`services`]
//! (with their real and sorry servers), [`health`] (a service's or real's `health_check`),
//! [`vrrp`] (instances and sync groups), [`sync`], [`announce`], [`machine`] (what the [`Host`] says about
//! this box) and [`limits`] (bounds on sizes and on start-up memory).
//!
//! Invariants: a rule reads the [`Config`] and the [`Host`] and never changes them; it reports
//! through [`Ctx`] at the position of the key or value it is about, so the messages and their
//! `FILE:LINE:COL` do not depend on the order of the sections (problems are sorted by position).
//! A rule that another part of xvs also enforces is not repeated here: it calls that part's
//! own rule (the VRRP ones are [`crate::vrrp::instance::rules`]) and only words the message.

use std::collections::HashMap;
use std::net::IpAddr;

use super::host::Host;
use super::model::Config;
use super::positions::{Positions, Problem};

mod announce;
mod global;
mod health;
pub(crate) mod limits;
mod machine;
mod pools;
mod services;
mod sync;
mod vrrp;

pub use global::MAX_CONNTRACK_ENTRIES;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// What every rule reports through: the positions, the machine, and the problems so far.
struct Ctx<'a> {
    pos: &'a Positions,
    host: &'a dyn Host,
    /// What the rules need to know about this machine, read once.
    machine: machine::Machine,
    out: Vec<Problem>,
}

impl Ctx<'_> {
    /// A problem about the key of `path` (the key is written; the value may not be).
    fn key(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push((self.pos.key(path), msg.into()));
    }

    /// A problem about the value of `path`.
    fn value(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push((self.pos.value(path), msg.into()));
    }

    /// `line N` of the value at `path`, to name the first of two duplicates.
    fn line(&self, path: &str) -> String {
        format!("line {}", self.pos.value(path).line)
    }

    /// An interface name that Linux accepts and, if `must_exist`, that exists on this machine.
    fn ifname(&mut self, path: &str, name: &str, must_exist: bool) {
        if name.is_empty() {
            self.value(path, "interface name must not be empty");
        } else if name.len() > IFNAME_MAX {
            self.value(
                path,
                format!("interface name `{name}` is longer than {IFNAME_MAX} characters"),
            );
        } else if name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            self.value(path, format!("invalid interface name `{name}`"));
        } else if must_exist && !self.host.iface_exists(name) {
            self.value(
                path,
                format!("interface `{name}` does not exist on this machine"),
            );
        }
    }

    /// `what` must not be empty.
    fn not_empty(&mut self, path: &str, value: &str, what: &str) {
        if value.trim().is_empty() {
            self.value(path, format!("{what} must not be empty"));
        }
    }

    /// Reports the second and later occurrences of equal items, naming the first.
    fn unique<T: Eq + std::hash::Hash + Clone>(
        &mut self,
        items: impl IntoIterator<Item = (String, T)>,
        msg: impl Fn(&T, &str) -> String,
    ) {
        let mut first: HashMap<T, String> = HashMap::new();
        for (path, item) in items {
            match first.get(&item) {
                Some(p) => {
                    let m = msg(&item, &self.line(p));
                    self.value(&path, m);
                }
                None => {
                    first.insert(item, path);
                }
            }
        }
    }
}

/// Why a FULLNAT service with an IPv6 VIP cannot reach IPv4 real servers or use an IPv4 pool.
const FULLNAT64: &str = "FULLNAT64 (an IPv6 VIP in front of IPv4 real servers) is not supported";

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Whether `a` can be a host's address: not unspecified, multicast or the IPv4 broadcast.
fn is_unicast(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

/// Whether the mask's one bits are contiguous from the top (255.255.255.0, not 255.0.255.0).
fn is_contiguous(mask: IpAddr) -> bool {
    let bits: u128 = match mask {
        IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
        IpAddr::V6(m) => u128::from(m),
    };
    bits.leading_ones() + bits.trailing_zeros() >= 128
}

/// Checks the whole config against the machine `host`; returns every problem found.
pub fn validate(cfg: &Config, pos: &Positions, host: &dyn Host) -> Vec<Problem> {
    let mut cx = Ctx {
        pos,
        host,
        machine: machine::Machine::of(cfg, host),
        out: Vec::new(),
    };
    global::check(&mut cx, cfg);
    pools::check(&mut cx, cfg);
    services::check(&mut cx, cfg);
    vrrp::check(&mut cx, cfg);
    sync::check(&mut cx, cfg);
    announce::check(&mut cx, cfg);
    machine::check(&mut cx, cfg);
    limits::check(&mut cx, cfg);
    cx.out
}

#[cfg(test)]
mod tests;
