//! From keepalived's tree to xvs's YAML: [`global`] (`global_defs`), [`vrrp`] (`vrrp_script`,
//! `vrrp_instance`, `vrrp_sync_group`) and [`services`] (`virtual_server`, its real servers
//! and checkers, DPVS's `local_address_group`).
//!
//! Each converter walks the statements of its block and, for each one, writes its xvs key, or
//! files a comment through [`Ctx`] (which also records the stderr line), or returns an
//! [`ImportError`] for a value that does not parse. A statement is never skipped without one of
//! the three. keepalived's defaults that differ from xvs's (VRRP version 2, `delay_loop` 60 s,
//! `connect_timeout` 5 s, `retry` 1, `persistence_timeout` 6 min) are written explicitly.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use super::parser::Node;
use super::yaml::{self, Item, MapBuilder, Value};
use super::{ImportError, Options, Outcome, Pos};

pub mod checks;
pub mod global;
pub mod services;
pub mod vrrp;

/// The comments and stderr lines of one conversion.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The stderr lines and where each points, each once.
    lines: Vec<(Option<Pos>, String)>,
    seen: HashSet<String>,
}

impl Ctx {
    fn record(&mut self, at: Option<&Pos>, line: String) {
        if self.seen.insert(line.clone()) {
            self.lines.push((at.cloned(), line));
        }
    }

    /// The stderr lines in input order: files in the order they were first named, then by
    /// line (the converters visit some sections before others).
    fn finish(self) -> Vec<String> {
        let mut files: Vec<std::rc::Rc<str>> = Vec::new();
        for (at, _) in &self.lines {
            if let Some(p) = at {
                if !files.contains(&p.file) {
                    files.push(p.file.clone());
                }
            }
        }
        let mut lines = self.lines;
        lines.sort_by_key(|(at, _)| {
            at.as_ref().map_or((usize::MAX, 0), |p| {
                let f = files.iter().position(|f| *f == p.file).unwrap_or(0);
                (f, p.line)
            })
        });
        lines.into_iter().map(|(_, l)| l).collect()
    }

    /// `n` has no xvs equivalent: records it, returns the comment.
    pub fn left_out(&mut self, n: &Node) -> String {
        self.left_out_text(&n.at, &n.text(), reason(&n.keyword))
    }

    /// `n` has no xvs equivalent, for this reason.
    pub fn left_out_why(&mut self, n: &Node, why: &str) -> String {
        self.left_out_text(&n.at, &n.text(), Some(why))
    }

    /// `what` (at `at`) has no xvs equivalent (for reason `why`).
    pub fn left_out_text(&mut self, at: &Pos, what: &str, why: Option<&str>) -> String {
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        self.record(Some(at), format!("{at}: {what} has no xvs equivalent{why}"));
        format!("keepalived: {what} ({at}) has no xvs equivalent{why}")
    }

    /// `n` is converted, but xvs only comes close: records it, returns the comment.
    pub fn approx(&mut self, n: &Node, why: &str) -> String {
        let what = n.text();
        let at = &n.at;
        self.record(
            Some(at),
            format!("{at}: {what} converted approximately: {why}"),
        );
        format!("keepalived: {what} ({at}) converted approximately: {why}")
    }
}

/// Why a common keepalived statement has no xvs equivalent, for the comment.
fn reason(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "delay_before_retry" => "xvs retries one interval apart",
        "alpha" => "xvs starts every real server up",
        "authentication" => "xvs speaks VRRP as RFC 3768/5798 define it, without authentication",
        "unicast_src_ip" | "mcast_src_ip" => {
            "xvs sends adverts from the interface's primary address"
        }
        "virtual_ipaddress_excluded" => "every xvs VIP is in the adverts: add them to vips",
        "notify_up" | "notify_down" | "quorum_up" | "quorum_down" => {
            "xvs runs no scripts on real server or quorum changes: see its log and metrics"
        }
        k if k.starts_with("garp_") || k.starts_with("vrrp_garp_") => {
            "xvs sends its gratuitous ARPs and neighbour adverts on becoming MASTER (5, and 5 more after 5s)"
        }
        k if k.starts_with("notification_email") || k.starts_with("smtp_") => {
            "xvs sends no mail: see its log and metrics"
        }
        _ => return None,
    })
}

/// Converts the whole tree of the file `main` (see the module documentation).
pub fn convert(tree: &[Node], main: &str, opts: &Options) -> Result<Outcome, ImportError> {
    let mut cx = Ctx::default();
    let global = global::convert(tree, &mut cx)?;
    let scripts = vrrp::scripts(tree)?;
    let pools = services::pools(tree, &mut cx)?;
    let mut top = Vec::new();
    let mut svcs = Vec::new();
    let mut names = HashSet::new();
    let mut instances = Vec::new();
    let mut ifaces: Vec<String> = Vec::new();
    let mut groups = Vec::new();
    for n in tree {
        match n.keyword.as_str() {
            "global_defs" | "vrrp_script" | "local_address_group" => {}
            "vrrp_instance" => {
                let (item, iface) = vrrp::instance(n, &mut cx, &scripts, global.vrrp_version)?;
                if !ifaces.contains(&iface) {
                    ifaces.push(iface);
                }
                instances.push(item);
            }
            "vrrp_sync_group" => groups.push(vrrp::sync_group(n, &mut cx)?),
            "virtual_server" => svcs.push(services::service(n, &mut cx, &mut names)?),
            _ => top.push(cx.left_out(n)),
        }
    }
    let mut root = MapBuilder::default();
    for c in top {
        root.comment(c);
    }
    root.put("global", Value::Map(global.map));
    root.put("datapath", datapath(opts, ifaces, &mut cx, main));
    if !pools.is_empty() {
        root.put("local_addresses", Value::Seq(pools));
    }
    root.put("services", Value::Seq(svcs));
    let mut vrrp = MapBuilder::default();
    vrrp.put("instances", Value::Seq(instances));
    vrrp.put("sync_groups", Value::Seq(groups));
    root.put("vrrp", Value::Map(vrrp.finish()));
    let header = [
        format!("xvs configuration converted from {main} by `xvs import keepalived`."),
        "Check it with `xvs check -c FILE` before use. A `# keepalived:` comment marks a"
            .to_string(),
        "statement that has no xvs equivalent or was converted approximately.".to_string(),
    ];
    Ok(Outcome {
        yaml: yaml::document(&header, &root.finish()),
        left_out: cx.finish(),
        notes: Vec::new(),
    })
}

/// `datapath:` with the interfaces: `--interface` names, else the VRRP instances'.
fn datapath(opts: &Options, from_vrrp: Vec<String>, cx: &mut Ctx, main: &str) -> Value {
    let mut b = MapBuilder::default();
    let names = if opts.interfaces.is_empty() {
        from_vrrp
    } else {
        opts.interfaces.clone()
    };
    let names = if names.is_empty() {
        cx.record(None, format!(
            "{main}: no vrrp_instance names an interface for the datapath: give --interface NAME (eth0 written as a placeholder)"
        ));
        b.comment(
            "keepalived.conf names no interface (no vrrp_instance): eth0 is a placeholder; give --interface NAME"
                .to_string(),
        );
        vec!["eth0".to_string()]
    } else {
        names
    };
    let items = names
        .iter()
        .map(|n| {
            let mut m = MapBuilder::default();
            m.string("name", n);
            Item {
                comments: Vec::new(),
                value: Some(Value::Map(m.finish())),
            }
        })
        .collect();
    b.put("interfaces", Value::Seq(items));
    Value::Map(b.finish())
}

// ---- values -------------------------------------------------------------------------------

/// Argument `i` of `n`.
pub fn arg(n: &Node, i: usize) -> Result<&str, ImportError> {
    n.args.get(i).map(String::as_str).ok_or_else(|| {
        ImportError::at(
            &n.at,
            format!("`{}` needs {} argument(s)", n.keyword, i + 1),
        )
    })
}

/// Argument `i` of `n` as an integer of type `T` in `lo..=hi`.
fn ranged<T>(n: &Node, i: usize, lo: T, hi: T) -> Result<T, ImportError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let s = arg(n, i)?;
    match s.parse::<T>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(ImportError::at(
            &n.at,
            format!(
                "bad number `{s}` for `{}`: expected an integer from {lo} to {hi}",
                n.keyword
            ),
        )),
    }
}

/// Argument `i` of `n` as an integer in `lo..=hi`.
pub fn uint(n: &Node, i: usize, lo: u64, hi: u64) -> Result<u64, ImportError> {
    ranged(n, i, lo, hi)
}

/// [`uint`] as a `u32` (`hi` must fit).
pub fn uint32(n: &Node, i: usize, lo: u32, hi: u32) -> Result<u32, ImportError> {
    let v = uint(n, i, u64::from(lo), u64::from(hi))?;
    Ok(u32::try_from(v).unwrap_or(hi))
}

/// Argument `i` of `n` as a signed integer in `lo..=hi`.
pub fn int(n: &Node, i: usize, lo: i64, hi: i64) -> Result<i64, ImportError> {
    ranged(n, i, lo, hi)
}

/// Argument `i` of `n` as keepalived's `<TIMER>`: seconds, with an optional fraction
/// (resolution 1 µs), at most `max_secs`.
pub fn timer(n: &Node, i: usize, max_secs: u64) -> Result<Duration, ImportError> {
    let s = arg(n, i)?;
    parse_timer(s, max_secs).ok_or_else(|| {
        ImportError::at(
            &n.at,
            format!(
                "bad time `{s}` for `{}`: expected seconds such as 3 or 0.5, at most {max_secs}",
                n.keyword
            ),
        )
    })
}

/// `3`, `0.5`, `2.71828` seconds (at most 6 decimals are kept).
pub fn parse_timer(s: &str, max_secs: u64) -> Option<Duration> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut micros = 0u32;
    for (k, b) in frac.bytes().take(6).enumerate() {
        let place = 10u32.pow(5 - u32::try_from(k).ok()?);
        micros += u32::from(b - b'0') * place;
    }
    let d = Duration::from_secs(secs) + Duration::from_micros(u64::from(micros));
    (d <= Duration::from_secs(max_secs)).then_some(d)
}

/// A duration as xvs writes it: `2s`, `1500ms`, `250us`.
pub fn dur(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// Argument `i` of `n` as an IP address.
pub fn ip(n: &Node, i: usize) -> Result<IpAddr, ImportError> {
    let s = arg(n, i)?;
    parse_ip(n, s)
}

/// `s` (a value of statement `n`) as an IP address.
pub fn parse_ip(n: &Node, s: &str) -> Result<IpAddr, ImportError> {
    s.parse()
        .map_err(|_| ImportError::at(&n.at, format!("bad address `{s}` for `{}`", n.keyword)))
}

/// keepalived's optional `<BOOL>` argument `i` (absent = true).
pub fn flag(n: &Node, i: usize) -> Result<bool, ImportError> {
    match n.args.get(i).map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("on" | "true" | "yes") => Ok(true),
        Some("off" | "false" | "no") => Ok(false),
        Some(other) => Err(ImportError::at(
            &n.at,
            format!(
                "bad value `{other}` for `{}`: expected on, off, true, false, yes or no",
                n.keyword
            ),
        )),
    }
}

/// An IP address and port as xvs writes `ADDR:PORT` (IPv6 in brackets, quoted).
pub fn socket(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("\"[{a}]:{port}\""),
    }
}

/// An address as a YAML scalar (IPv6 quoted: a plain `::1` would not be a string).
pub fn addr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("\"{a}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers() {
        assert_eq!(parse_timer("3", 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_timer("0.5", 100), Some(Duration::from_millis(500)));
        assert_eq!(parse_timer(".25", 100), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timer("2.718281828", 100),
            Some(Duration::from_micros(2_718_281))
        );
        assert_eq!(parse_timer("101", 100), None);
        assert_eq!(parse_timer("-1", 100), None);
        assert_eq!(parse_timer("1s", 100), None);
        assert_eq!(parse_timer(".", 100), None);
        assert_eq!(parse_timer("", 100), None);
    }

    #[test]
    fn durations() {
        assert_eq!(dur(Duration::from_secs(60)), "60s");
        assert_eq!(dur(Duration::from_millis(1500)), "1500ms");
        assert_eq!(dur(Duration::from_micros(250)), "250us");
    }
}
