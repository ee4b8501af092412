//! `vrrp_script`, `vrrp_instance` and `vrrp_sync_group` → `vrrp.instances[]` and
//! `vrrp.sync_groups[]`.
//!
//! An instance's `version` is always written: keepalived's default is `vrrp_version` of
//! `global_defs`, else 2 (3 for IPv6 addresses), where xvs's is 3. A `vrrp_script` becomes a
//! `track_scripts` entry of every instance that tracks it (with the instance's weight if it
//! gives one); scripts no instance tracks are not run by keepalived and are not written.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::{addr, arg, dur, int, parse_ip, timer, uint, uint32, Ctx};
use crate::import::parser::Node;
use crate::import::yaml::{quote, Item, MapBuilder, Value};
use crate::import::ImportError;

/// A `vrrp_script` block.
#[derive(Clone, Debug)]
pub struct Script {
    pub command: Option<String>,
    pub interval: Duration,
    pub weight: i64,
    /// `weight N reverse`.
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
    /// Statements with no equivalent (`timeout`, `user`, `init_fail`, ...).
    pub extras: Vec<Node>,
}

/// Every `vrrp_script` of the top level, by name.
pub fn scripts(tree: &[Node]) -> Result<HashMap<String, Script>, ImportError> {
    let mut out = HashMap::new();
    for n in tree.iter().filter(|n| n.keyword == "vrrp_script") {
        let mut s = Script {
            command: None,
            interval: Duration::from_secs(1),
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            extras: Vec::new(),
        };
        for k in n.kids() {
            match k.keyword.as_str() {
                "script" => {
                    arg(k, 0)?;
                    s.command = Some(k.args.join(" "));
                }
                "interval" => s.interval = timer(k, 0, 86_400)?,
                "weight" => {
                    s.weight = int(k, 0, -253, 253)?;
                    s.reverse = k.args.get(1).is_some_and(|a| a == "reverse");
                }
                "rise" => s.rise = uint32(k, 0, 1, u32::MAX)?,
                "fall" => s.fall = uint32(k, 0, 1, u32::MAX)?,
                _ => s.extras.push(k.clone()),
            }
        }
        out.insert(arg(n, 0)?.to_string(), s);
    }
    Ok(out)
}

/// One `vrrp_instance` being converted.
struct Inst<'a> {
    name: String,
    b: MapBuilder,
    iface: Option<String>,
    vrid: Option<u8>,
    priority: u8,
    advert: Option<(Duration, &'a Node)>,
    preempt: bool,
    preempt_delay: Option<Duration>,
    version: Option<u8>,
    vips: Vec<(IpAddr, u8)>,
    vip_opts: Vec<&'a Node>,
    peers: Vec<String>,
    track_ifs: Vec<String>,
    track_scripts: Vec<Item>,
    notify: [Option<String>; 3],
    generic_notify: Option<(&'a Node, String)>,
}

/// A key never written: comments filed under it go after the mapping's last entry.
pub const AT_END: &str = "";

const STATES: [&str; 3] = ["master", "backup", "fault"];

/// Converts one `vrrp_instance`; returns its item and its interface.
pub fn instance(
    n: &Node,
    cx: &mut Ctx,
    scripts: &HashMap<String, Script>,
    default_version: Option<u8>,
) -> Result<(Item, String), ImportError> {
    let mut i = Inst {
        name: arg(n, 0)?.to_string(),
        b: MapBuilder::default(),
        iface: None,
        vrid: None,
        priority: 100,
        advert: None,
        preempt: true,
        preempt_delay: None,
        version: None,
        vips: Vec::new(),
        vip_opts: Vec::new(),
        peers: Vec::new(),
        track_ifs: Vec::new(),
        track_scripts: Vec::new(),
        notify: [None, None, None],
        generic_notify: None,
    };
    for k in n.kids() {
        i.statement(k, cx, scripts)?;
    }
    let Some(iface) = i.iface.clone() else {
        return Err(ImportError::at(
            &n.at,
            format!("vrrp_instance {} has no `interface`: xvs needs one", i.name),
        ));
    };
    let Some(vrid) = i.vrid else {
        return Err(ImportError::at(
            &n.at,
            format!("vrrp_instance {} has no `virtual_router_id`", i.name),
        ));
    };
    let item = i.finish(cx, &iface, vrid, default_version);
    Ok((item, iface))
}

impl<'a> Inst<'a> {
    fn statement(
        &mut self,
        k: &'a Node,
        cx: &mut Ctx,
        scripts: &HashMap<String, Script>,
    ) -> Result<(), ImportError> {
        match k.keyword.as_str() {
            "state" => match arg(k, 0)? {
                "BACKUP" => {}
                "MASTER" => {
                    let c = cx.left_out_why(
                        k,
                        "xvs starts every instance as BACKUP and lets the priority elect the master (priority 255 starts as MASTER)",
                    );
                    self.b.note("priority", c);
                }
                other => {
                    return Err(ImportError::at(
                        &k.at,
                        format!("bad state `{other}`: expected MASTER or BACKUP"),
                    ))
                }
            },
            "interface" => self.iface = Some(arg(k, 0)?.to_string()),
            "virtual_router_id" => self.vrid = Some(small(uint(k, 0, 1, 255)?)),
            "priority" => self.priority = small(uint(k, 0, 1, 255)?),
            "advert_int" => self.advert = Some((timer(k, 0, 255)?, k)),
            "nopreempt" => self.preempt = false,
            "preempt" => self.preempt = true,
            "preempt_delay" => self.preempt_delay = Some(timer(k, 0, 1000)?),
            "version" => self.version = Some(small(uint(k, 0, 2, 3)?)),
            "virtual_ipaddress" => self.vips(k)?,
            "unicast_peer" => {
                for p in k.kids() {
                    let a = parse_ip(p, &p.keyword)?;
                    self.peers.push(addr(a));
                    if !p.args.is_empty() {
                        let c = cx.approx(p, "xvs accepts adverts from a unicast peer with TTL 255 only (no min_ttl/max_ttl)");
                        self.b.note("unicast_peers", c);
                    }
                }
            }
            "track_interface" => {
                for t in k.kids() {
                    if t.args.is_empty() {
                        self.track_ifs.push(quote(&t.keyword));
                    } else {
                        let c = cx.left_out_why(t, "xvs tracks an interface without a weight (down means FAULT): not tracked");
                        self.b.note("track_interfaces", c);
                    }
                }
            }
            "track_script" => {
                for t in k.kids() {
                    self.track_script(t, cx, scripts)?;
                }
            }
            "notify_master" | "notify_backup" | "notify_fault" => self.notify_one(k, cx)?,
            // xvs's fixed gratuitous ARP timings are keepalived's defaults.
            "garp_master_delay" | "garp_master_repeat" if k.args == ["5"] => {}
            "notify" => {
                arg(k, 0)?;
                self.generic_notify = Some((k, k.args[0].clone()));
            }
            _ => {
                let c = cx.left_out(k);
                self.b.note(AT_END, c);
            }
        }
        Ok(())
    }

    fn vips(&mut self, k: &'a Node) -> Result<(), ImportError> {
        for v in k.kids() {
            let (a, l) = match v.keyword.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (v.keyword.as_str(), None),
            };
            let ip = parse_ip(v, a)?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match l {
                None => max,
                Some(l) => match l.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => {
                        return Err(ImportError::at(
                            &v.at,
                            format!("bad prefix length `/{l}` for {a}: at most /{max}"),
                        ))
                    }
                },
            };
            self.vips.push((ip, len));
            if !v.args.is_empty() {
                self.vip_opts.push(v);
            }
        }
        Ok(())
    }

    fn track_script(
        &mut self,
        t: &Node,
        cx: &mut Ctx,
        scripts: &HashMap<String, Script>,
    ) -> Result<(), ImportError> {
        let Some(s) = scripts.get(&t.keyword) else {
            let c = cx.left_out_why(t, "no vrrp_script of this name");
            self.b.note("track_scripts", c);
            return Ok(());
        };
        let mut weight = s.weight;
        let mut reverse = s.reverse;
        if t.args.first().is_some_and(|a| a == "weight") {
            weight = int(t, 1, -253, 253)?;
            reverse = t.args.get(2).is_some_and(|a| a == "reverse");
        }
        let Some(command) = &s.command else {
            let c = cx.left_out_why(t, "its vrrp_script has no `script`");
            self.b.note("track_scripts", c);
            return Ok(());
        };
        if reverse {
            let c = cx.left_out_why(t, "xvs has no reverse weights: not tracked");
            self.b.note("track_scripts", c);
            return Ok(());
        }
        for e in &s.extras {
            let c = cx.left_out(e);
            self.b.note("track_scripts", c);
        }
        let mut m = MapBuilder::default();
        m.string("command", command);
        m.scalar("interval", dur(s.interval));
        m.scalar("rise", s.rise);
        m.scalar("fall", s.fall);
        m.scalar("weight", weight);
        self.track_scripts.push(Item {
            comments: Vec::new(),
            value: Some(Value::Map(m.finish())),
        });
        Ok(())
    }

    fn notify_one(&mut self, k: &Node, cx: &mut Ctx) -> Result<(), ImportError> {
        let cmd = arg(k, 0)?.to_string();
        if k.args.len() > 1 {
            let c = cx.approx(k, "xvs runs notify commands as its own user");
            self.b.note("notify", c);
        }
        let slot = match k.keyword.as_str() {
            "notify_master" => 0,
            "notify_backup" => 1,
            _ => 2,
        };
        self.notify[slot] = Some(cmd);
        Ok(())
    }

    /// The instance's mapping.
    fn finish(mut self, cx: &mut Ctx, iface: &str, vrid: u8, default_version: Option<u8>) -> Item {
        let v6 = self.vips.first().is_some_and(|(a, _)| a.is_ipv6());
        let version = match self.version.or(default_version).unwrap_or(2) {
            2 if !v6 => 2,
            _ => 3,
        };
        for v in std::mem::take(&mut self.vip_opts) {
            if v.args != ["dev", iface] {
                let c = cx.approx(
                    v,
                    "xvs adds the address to the instance's interface, with no other options",
                );
                self.b.note("vips", c);
            }
        }
        let advert = self.advert_interval(cx, version);
        if let Some((cmd_node, cmd)) = self.generic_notify.take() {
            let c = cx.approx(cmd_node, "xvs has no generic notify: it runs after notify.master/backup/fault with INSTANCE, the name, the state and the configured priority");
            self.b.note("notify", c);
            let name = shell_word(&self.name);
            for (slot, state) in STATES.iter().enumerate() {
                let call = format!(
                    "{cmd} INSTANCE {name} {} {}",
                    state.to_ascii_uppercase(),
                    self.priority
                );
                self.notify[slot] = Some(match self.notify[slot].take() {
                    Some(first) => format!("{first}; {call}"),
                    None => call,
                });
            }
        }
        let mut b = std::mem::take(&mut self.b);
        b.string("name", &self.name);
        b.string("interface", iface);
        b.scalar("vrid", vrid);
        b.scalar("version", version);
        b.scalar("priority", self.priority);
        b.scalar("advert_interval", dur(advert));
        b.scalar("preempt", self.preempt);
        if let Some(d) = self.preempt_delay {
            b.scalar("preempt_delay", dur(d));
        }
        let vips = self.vips.iter().map(|(a, l)| prefix(*a, *l)).collect();
        b.put("vips", Value::Flow(vips));
        if !self.peers.is_empty() {
            b.put(
                "unicast_peers",
                Value::Flow(std::mem::take(&mut self.peers)),
            );
        }
        if !self.track_ifs.is_empty() {
            b.put(
                "track_interfaces",
                Value::Flow(std::mem::take(&mut self.track_ifs)),
            );
        }
        if !self.track_scripts.is_empty() {
            b.put(
                "track_scripts",
                Value::Seq(std::mem::take(&mut self.track_scripts)),
            );
        }
        if self.notify.iter().any(Option::is_some) {
            let mut m = MapBuilder::default();
            for (slot, state) in STATES.iter().enumerate() {
                if let Some(c) = &self.notify[slot] {
                    m.string(state, c);
                }
            }
            b.put("notify", Value::Map(m.finish()));
        }
        Item {
            comments: Vec::new(),
            value: Some(Value::Map(b.finish())),
        }
    }

    /// `advert_int` as xvs can hold it: v2 in whole seconds 1..255, v3 in centiseconds up to
    /// 40.95 s (rounded, with a comment when that changes it).
    fn advert_interval(&mut self, cx: &mut Ctx, version: u8) -> Duration {
        let Some((d, node)) = self.advert else {
            return Duration::from_secs(1);
        };
        let fitted = if version == 2 {
            let secs = (d.as_millis() + 500) / 1000;
            Duration::from_secs(u64::try_from(secs.clamp(1, 255)).unwrap_or(255))
        } else {
            let cs = (d.as_micros() + 5_000) / 10_000;
            Duration::from_millis(u64::try_from(cs.clamp(1, 4095) * 10).unwrap_or(40_950))
        };
        if fitted != d {
            let why = format!(
                "VRRPv{version} advertises {}: written as {}",
                if version == 2 {
                    "whole seconds 1..255"
                } else {
                    "centiseconds up to 40.95s"
                },
                dur(fitted)
            );
            let c = cx.approx(node, &why);
            self.b.note("advert_interval", c);
        }
        fitted
    }
}

/// `addr/len` as a YAML scalar.
fn prefix(a: IpAddr, len: u8) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}/{len}"),
        IpAddr::V6(a) => format!("\"{a}/{len}\""),
    }
}

/// `s` as one shell word: as is when it is plain, else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A value already bounded to 0..=255.
fn small(v: u64) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

/// `vrrp_sync_group NAME { group { A B } }` → `{ name, instances }`; the group's other
/// statements (notify scripts, tracking, smtp_alert) have no xvs equivalent.
pub fn sync_group(n: &Node, cx: &mut Ctx) -> Result<Item, ImportError> {
    let mut b = MapBuilder::default();
    let mut members = Vec::new();
    for k in n.kids() {
        if k.keyword == "group" {
            for m in k.kids() {
                members.push(quote(&m.keyword));
                // Several names on one line are several members.
                members.extend(m.args.iter().map(|a| quote(a)));
            }
        } else {
            let c = cx.left_out(k);
            b.note(AT_END, c);
        }
    }
    b.string("name", arg(n, 0)?);
    b.put("instances", Value::Flow(members));
    Ok(Item {
        comments: Vec::new(),
        value: Some(Value::Map(b.finish())),
    })
}
