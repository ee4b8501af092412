//! A `health_check` (of a service, or of one real server).

use super::Ctx;
use crate::control::config::model::{CheckType, HealthCheck};

pub(super) fn check(cx: &mut Ctx, p: &str, hc: &HealthCheck) {
    let at = |k: &str| format!("{p}.{k}");
    if hc.interval.is_zero() {
        cx.value(&at("interval"), "interval must be greater than 0s");
    }
    if hc.timeout.is_zero() {
        cx.value(&at("timeout"), "timeout must be greater than 0s");
    } else if hc.timeout > hc.interval && !hc.interval.is_zero() {
        cx.value(
            &at("timeout"),
            format!(
                "timeout {} must not exceed interval {} (one probe at a time per server)",
                humantime::format_duration(hc.timeout),
                humantime::format_duration(hc.interval)
            ),
        );
    }
    if hc.rise == 0 {
        cx.value(&at("rise"), "rise must be at least 1");
    }
    if hc.fall == 0 {
        cx.value(&at("fall"), "fall must be at least 1");
    }
    if hc.http.is_some() && hc.kind != CheckType::Http {
        cx.key(&at("http"), "http is only for type: http");
    }
    if hc.exec.is_some() && hc.kind != CheckType::Exec {
        cx.key(&at("exec"), "exec is only for type: exec");
    }
    if hc.kind == CheckType::Exec && hc.exec.is_none() {
        cx.value(&at("type"), "type: exec needs `exec: { command: ... }`");
    }
    if let Some(e) = &hc.exec {
        cx.not_empty(&at("exec.command"), &e.command, "exec command");
    }
    if let Some(h) = &hc.http {
        if !h.path.starts_with('/') {
            cx.value(
                &at("http.path"),
                format!("http path `{}` must start with `/`", h.path),
            );
        }
        if h.expect_status.is_empty() {
            cx.value(
                &at("http.expect_status"),
                "expect_status must list at least one status",
            );
        }
        for (k, st) in h.expect_status.iter().enumerate() {
            if !(100..=599).contains(st) {
                cx.value(
                    &format!("{p}.http.expect_status[{k}]"),
                    format!("HTTP status {st} is out of range 100..599"),
                );
            }
        }
    }
}
