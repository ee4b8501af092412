//! Features the parser accepts but xvs does not build yet.
//!
//! [`NOT_SUPPORTED_YET`] is the one list: `xvs check` (and every load) refuses each entry whose
//! value in the file differs from its default, with `FILE:LINE:COL: <what> is not supported yet`.
//! Nothing is silently ignored. The issue that builds a feature deletes its line here.
//!
//! Built today: `global.*`, `datapath.*`, `conntrack.*`, `local_addresses` (IPv4 or IPv6
//! pools), and services
//! with `forwarding: nat`, `dr`, `tun` or `fullnat` (with `local_addresses` and `toa`),
//! every `scheduler` (rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo, ovf, twos; `wlc` the
//! default) with its `scheduler_flags` and `mh_table_size`, `protocol: tcp | udp`, an IPv4 or
//! IPv6 `vip`, any `port` (0 = all ports, with persistence), `persistence`, `one_packet`,
//! `health_check`, `on_failure`, `quorum` and `sorry_server`, real servers with an `address`
//! of the VIP's family, a `weight`, thresholds and a `health_check`, and `vrrp.instances`
//! (IPv4, and IPv6 over VRRPv3: VRRPv2 over IPv6 is refused by `validate/vrrp.rs`, the RFCs do
//! not define it) with `vrrp.sync_groups`. The `sync` section is parsed and validated in full
//! (its key file read) and then refused by `validate/sync.rs` while the sync thread is not
//! built (issue 16). Mixed families (IPVS's IPv4-in-IPv6 tunnels,
//! DPVS's FULLNAT64) are refused by the services' own rules (`validate/services.rs`), not here:
//! they are not planned as options of an existing key.

use super::model::{Config, Real, Service};
use super::positions::{Positions, Problem};

/// Where the error points.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// The key (`toa:`), for features that are refused whatever their value.
    Key,
    /// The value (`forwarding: fullnat`), for features refused for some values.
    Value,
}

/// What a refusal says: `{subject} is not supported yet{note}`.
pub type Refusal = (String, &'static str);

/// Which part of the config an entry inspects; the function returns the refusal when the feature
/// is used (`None` = not used, or used with its default value).
#[derive(Clone, Copy)]
pub enum Check {
    Root(fn(&Config) -> Option<Refusal>),
    Service(fn(&Service) -> Option<Refusal>),
    Real(fn(&Real) -> Option<Refusal>),
}

/// One feature that is not built yet.
#[derive(Clone, Copy)]
pub struct NotYet {
    /// The key, relative to the root, to `services[i]` or to `services[i].reals[j]`.
    pub key: &'static str,
    pub at: At,
    pub check: Check,
}

/// Empty today: every key of CONTRACT.md is built (the `sync:` section last, issue 16).
pub const NOT_SUPPORTED_YET: &[NotYet] = &[];

/// Every use of a feature of [`NOT_SUPPORTED_YET`] in `cfg`.
pub fn check(cfg: &Config, pos: &Positions) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut report = |path: String, at: At, (what, note): Refusal| {
        let p = match at {
            At::Key => pos.key(&path),
            At::Value => pos.value(&path),
        };
        out.push((p, format!("{what} is not supported yet{note}")));
    };
    for nt in NOT_SUPPORTED_YET {
        match nt.check {
            Check::Root(f) => {
                if let Some(what) = f(cfg) {
                    report(nt.key.to_string(), nt.at, what);
                }
            }
            Check::Service(f) => {
                for (i, s) in cfg.services.iter().enumerate() {
                    if let Some(what) = f(s) {
                        report(format!("services[{i}].{}", nt.key), nt.at, what);
                    }
                }
            }
            Check::Real(f) => {
                for (i, s) in cfg.services.iter().enumerate() {
                    for (j, r) in s.reals.iter().enumerate() {
                        if let Some(what) = f(r) {
                            report(format!("services[{i}].reals[{j}].{}", nt.key), nt.at, what);
                        }
                    }
                }
            }
        }
    }
    out
}
