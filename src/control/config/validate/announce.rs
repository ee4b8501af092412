//! The `announce` section (VIP routes in a kernel table for BIRD/FRR to announce over BGP).
//!
//! Checked where written: `table` is not 0 (no such table) nor one the kernel itself uses
//! (253 `default`, 254 `main`, 255 `local`: a host route there would steer the box's own traffic);
//! `device` is a name Linux accepts (that it does not exist yet is checked when `xvs run` creates
//! it, since a running daemon's own device exists); and no service VIP is also a VRRP virtual
//! address: a VIP is owned either by VRRP (one active box) or by BGP (every box active), never
//! both.

use super::Ctx;
use crate::control::config::model::Config;

pub(super) fn check(cx: &mut Ctx, cfg: &Config) {
    let Some(a) = &cfg.announce else { return };
    if let Some(why) = reserved_table(a.table) {
        cx.value("announce.table", why);
    }
    cx.ifname("announce.device", &a.device, false);
    for (i, s) in cfg.services.iter().enumerate() {
        let vrrp = cfg.vrrp.instances.iter().find_map(|inst| {
            inst.vips
                .iter()
                .any(|v| v.addr == s.vip)
                .then_some(&inst.name)
        });
        if let Some(name) = vrrp {
            cx.value(
                &format!("services[{i}].vip"),
                format!(
                    "VIP {} is also a virtual address of VRRP instance `{name}`: with `announce:` a VIP is owned either by VRRP or by BGP, not both (remove it from the instance, or announce another VIP)",
                    s.vip
                ),
            );
        }
    }
}

/// Why xvs may not put its routes in `table`, if it may not.
fn reserved_table(table: u32) -> Option<String> {
    let name = match table {
        0 => return Some("table 0 is not a routing table (tables are 1 to 4294967295)".into()),
        253 => "default",
        254 => "main",
        255 => "local",
        _ => return None,
    };
    Some(format!(
        "table {table} is the kernel's `{name}` table: xvs's host routes there would steer the box's own traffic; use a table of its own, e.g. 100"
    ))
}
