//! `global_defs`: `router_id` (or its old name `lvs_id`) becomes `global.router_id`;
//! `vrrp_version` is the default version of the VRRP instances; every other statement has no
//! xvs equivalent (mail alerts, script security, namespaces, global gratuitous ARP timings...).

use super::{arg, uint, Ctx};
use crate::import::parser::Node;
use crate::import::yaml::{Map, MapBuilder};
use crate::import::ImportError;

/// What `global_defs` gave.
#[derive(Debug)]
pub struct Global {
    /// The `global:` mapping.
    pub map: Map,
    /// `vrrp_version`: the VRRP instances' default (keepalived's own default is 2).
    pub vrrp_version: Option<u8>,
}

/// Converts every `global_defs` block of the top level.
pub fn convert(tree: &[Node], cx: &mut Ctx) -> Result<Global, ImportError> {
    let mut b = MapBuilder::default();
    let mut vrrp_version = None;
    for n in tree
        .iter()
        .filter(|n| n.keyword == "global_defs")
        .flat_map(Node::kids)
    {
        match n.keyword.as_str() {
            "router_id" | "lvs_id" if !b.has("router_id") => {
                let id = arg(n, 0)?;
                if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
                    return Err(ImportError::at(
                        &n.at,
                        format!(
                            "`{}` must be 1 to 64 bytes without control characters",
                            n.keyword
                        ),
                    ));
                }
                b.string("router_id", id);
            }
            "router_id" | "lvs_id" => b.comment(cx.left_out_why(n, "router_id is already set")),
            // xvs's fixed gratuitous ARP timings are keepalived's defaults.
            "vrrp_garp_master_delay" | "vrrp_garp_master_repeat" if n.args == ["5"] => {}
            "vrrp_version" => vrrp_version = Some(if uint(n, 0, 2, 3)? == 2 { 2 } else { 3 }),
            _ => b.comment(cx.left_out(n)),
        }
    }
    Ok(Global {
        map: b.finish(),
        vrrp_version,
    })
}
