//! keepalived's checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `UDP_CHECK`, ...)
//! → an xvs `health_check`.
//!
//! Timing: keepalived probes every `delay_loop` (default 60 s) with `connect_timeout` (5 s); a
//! server that is up goes down after the first failure and `retry` more (default 1; 0 for
//! `MISC_CHECK`), and comes back after one success. So: `interval` = `delay_loop`, `timeout` =
//! `connect_timeout` (`misc_timeout` for scripts; cut to the interval, which xvs requires),
//! `fall` = `retry` + 1, `rise` = 1. keepalived's retries come `delay_before_retry` apart, xvs's
//! one interval apart: `delay_before_retry` is reported. A checker that probes another address
//! or port than the real server's (`connect_ip`, `connect_port`) has no xvs equivalent: the real
//! server is then not checked, and the comment says so.

use std::net::IpAddr;
use std::time::Duration;

use super::{arg, dur, ip, timer, uint, uint32, Ctx};
use crate::import::parser::Node;
use crate::import::yaml::{MapBuilder, Value};
use crate::import::ImportError;

/// Checker settings inherited virtual server → real server → checker.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub delay_loop: Duration,
    pub connect_timeout: Duration,
    pub retry: Option<u32>,
    pub inhibit: bool,
    pub virtualhost: Option<String>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry: None,
            inhibit: false,
            virtualhost: None,
        }
    }
}

/// Longest `delay_loop`/`connect_timeout`/... accepted: a day.
pub const MAX_TIMER: u64 = 86_400;

impl Defaults {
    /// Applies `k` if it is one of the inherited settings; `Ok(false)` if it is not. Settings
    /// with no equivalent (`delay_before_retry`, `warmup`, `alpha`) are reported by the caller.
    pub fn apply(&mut self, k: &Node) -> Result<bool, ImportError> {
        match k.keyword.as_str() {
            "delay_loop" => self.delay_loop = timer(k, 0, MAX_TIMER)?,
            "connect_timeout" => self.connect_timeout = timer(k, 0, MAX_TIMER)?,
            "retry" | "nb_get_retry" => self.retry = Some(uint32(k, 0, 0, 1_000_000)?),
            "inhibit_on_failure" => self.inhibit = super::flag(k, 0)?,
            "virtualhost" => self.virtualhost = Some(arg(k, 0)?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// An xvs health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// `type: http`: path, statuses, host.
    pub http: Option<(String, Vec<u16>, Option<String>)>,
    /// `type: exec`: the command.
    pub exec: Option<String>,
}

impl Check {
    /// The `health_check:` mapping.
    pub fn value(&self) -> Value {
        let mut m = MapBuilder::default();
        m.scalar("type", self.kind);
        m.scalar("interval", dur(self.interval));
        m.scalar("timeout", dur(self.timeout));
        m.scalar("rise", self.rise);
        m.scalar("fall", self.fall);
        if let Some((path, statuses, host)) = &self.http {
            let mut h = MapBuilder::default();
            h.string("path", path);
            h.put(
                "expect_status",
                Value::Flow(statuses.iter().map(u16::to_string).collect()),
            );
            if let Some(host) = host {
                h.string("host", host);
            }
            m.put("http", Value::Map(h.finish()));
        }
        if let Some(c) = &self.exec {
            let mut e = MapBuilder::default();
            e.string("command", c);
            m.put("exec", Value::Map(e.finish()));
        }
        Value::Map(m.finish())
    }
}

/// The checker keywords keepalived knows.
pub const CHECKERS: [&str; 10] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "UDP_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "PING_CHECK",
    "BFD_CHECK",
    "FILE_CHECK",
];

/// One checker being converted.
struct Conv<'a> {
    k: &'a Node,
    d: Defaults,
    target: (IpAddr, u16),
    /// `connect_ip`/`connect_port` naming another target.
    elsewhere: Option<String>,
    misc_timeout: Option<Duration>,
    command: Option<String>,
    http: Option<(String, Vec<u16>, Option<String>)>,
    exact_udp: bool,
    comments: Vec<String>,
}

/// Converts checker `k` of the real server `target`, with the inherited `d`. Returns the check
/// (None: left out) and the comments to write at the real server.
pub fn checker(
    k: &Node,
    d: &Defaults,
    target: (IpAddr, u16),
    cx: &mut Ctx,
) -> Result<(Option<Check>, Vec<String>), ImportError> {
    let mut c = Conv {
        k,
        d: d.clone(),
        target,
        elsewhere: None,
        misc_timeout: None,
        command: None,
        http: None,
        exact_udp: false,
        comments: Vec::new(),
    };
    if !matches!(
        k.keyword.as_str(),
        "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "UDP_CHECK"
    ) {
        let why = "xvs checks with tcp, http, udp or exec: the real server is not checked";
        return Ok((None, vec![cx.left_out_why(k, why)]));
    }
    for s in k.kids() {
        c.statement(s, cx)?;
    }
    if let Some(other) = &c.elsewhere {
        let why = format!(
            "it probes {other}; xvs checks the real server's own address and port: the real server is not checked"
        );
        return Ok((None, vec![cx.left_out_why(k, &why)]));
    }
    let check = c.build(cx)?;
    Ok((check, c.comments))
}

impl Conv<'_> {
    fn statement(&mut self, s: &Node, cx: &mut Ctx) -> Result<(), ImportError> {
        if self.d.apply(s)? {
            return Ok(());
        }
        match (self.k.keyword.as_str(), s.keyword.as_str()) {
            (_, "connect_ip") => {
                let a = ip(s, 0)?;
                if a != self.target.0 {
                    self.elsewhere = Some(format!("address {a}"));
                }
            }
            (_, "connect_port") => {
                let p = uint(s, 0, 0, 65535)?;
                if p != u64::from(self.target.1) {
                    self.elsewhere = Some(format!("port {p}"));
                }
            }
            ("HTTP_GET" | "SSL_GET", "url") => self.url(s, cx)?,
            ("MISC_CHECK", "misc_path") => {
                arg(s, 0)?;
                self.command = Some(s.args.join(" "));
            }
            ("MISC_CHECK", "misc_timeout") => {
                self.misc_timeout = Some(Duration::from_secs(uint(s, 0, 1, MAX_TIMER)?));
            }
            ("UDP_CHECK", "require_reply") if s.args.is_empty() => self.exact_udp = true,
            (_, "delay_before_retry") => {
                let why = "xvs retries one interval apart";
                self.comments.push(cx.left_out_why(s, why));
            }
            _ => self.comments.push(cx.left_out(s)),
        }
        Ok(())
    }

    /// The first `url` block gives the path, statuses and host; later ones are left out.
    fn url(&mut self, u: &Node, cx: &mut Ctx) -> Result<(), ImportError> {
        if self.http.is_some() {
            let why = "xvs checks one path per real server";
            self.comments.push(cx.left_out_why(u, why));
            return Ok(());
        }
        let mut path = "/".to_string();
        let mut statuses: Vec<u16> = (200..=299).collect();
        let mut host = None;
        for s in u.kids() {
            match s.keyword.as_str() {
                "path" => path = arg(s, 0)?.to_string(),
                "status_code" => statuses = status_codes(s)?,
                "virtualhost" => host = Some(arg(s, 0)?.to_string()),
                _ => self.comments.push(cx.left_out(s)),
            }
        }
        self.http = Some((path, statuses, host));
        Ok(())
    }

    fn build(&mut self, cx: &mut Ctx) -> Result<Option<Check>, ImportError> {
        let k = self.k;
        let (kind, default_retry) = match k.keyword.as_str() {
            "TCP_CHECK" => ("tcp", 1),
            "HTTP_GET" => ("http", 1),
            "SSL_GET" => {
                let why = "xvs has no TLS check: a TCP connect check on the same port";
                self.comments.push(cx.approx(k, why));
                ("tcp", 1)
            }
            "MISC_CHECK" => ("exec", 0),
            _ => {
                if !self.exact_udp {
                    let why = "xvs's udp check counts no answer within the timeout as down (keepalived: up unless an ICMP error comes back)";
                    self.comments.push(cx.approx(k, why));
                }
                ("udp", 1)
            }
        };
        if kind == "exec" && self.command.is_none() {
            let why = "it has no misc_path";
            self.comments.push(cx.left_out_why(k, why));
            return Ok(None);
        }
        let interval = self.d.delay_loop;
        if interval.is_zero() {
            return Err(ImportError::at(
                &k.at,
                "delay_loop must be above 0".to_string(),
            ));
        }
        let mut timeout = match kind {
            "exec" => self.misc_timeout.unwrap_or(interval),
            _ => self.d.connect_timeout,
        };
        if timeout > interval || timeout.is_zero() {
            let why = format!(
                "its timeout {} must be within the interval {} in xvs: written as {}",
                dur(timeout),
                dur(interval),
                dur(interval)
            );
            self.comments.push(cx.approx(k, &why));
            timeout = interval;
        }
        let http = match (kind, self.http.take()) {
            ("http", None) => Some(("/".to_string(), (200..=299).collect(), None)),
            ("http", Some(h)) => Some(h),
            _ => None,
        };
        let http = http.map(|(p, s, h)| (p, s, h.or_else(|| self.d.virtualhost.clone())));
        Ok(Some(Check {
            kind,
            interval,
            timeout,
            rise: 1,
            fall: self.d.retry.unwrap_or(default_retry).saturating_add(1),
            http,
            exec: self.command.take(),
        }))
    }
}

/// `status_code 200 301-302 ...` → the statuses, 100..599, at most 500.
fn status_codes(s: &Node) -> Result<Vec<u16>, ImportError> {
    arg(s, 0)?;
    let mut out = Vec::new();
    for a in &s.args {
        let (lo, hi) = a.split_once('-').unwrap_or((a, a));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            return Err(bad_status(s, a));
        };
        if lo < 100 || hi > 599 || lo > hi {
            return Err(bad_status(s, a));
        }
        for c in lo..=hi {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.len() > 500 {
        return Err(ImportError::at(
            &s.at,
            "status_code: xvs takes at most 500 statuses".to_string(),
        ));
    }
    Ok(out)
}

fn bad_status(s: &Node, a: &str) -> ImportError {
    ImportError::at(
        &s.at,
        format!("bad status_code `{a}`: expected a status or a range FROM-TO within 100-599"),
    )
}
