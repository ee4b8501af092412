//! keepalived's own account of a run, shared by the keepalived interoperability tests
//! (`tests/e2e_vrrp_keepalived.rs`, `tests/e2e_vrrp6_keepalived.rs`): the errors in its
//! statistics file (`SIGUSR2`, the signal `keepalived --signum=STATS` names) and the lines of its
//! log about a packet it did not like.

/// Lines of keepalived's statistics under "Packet Errors" and "Authentication Errors" that are
/// not zero, and the adverts it received.
pub fn errors(stats: &str) -> (Vec<String>, u64) {
    let mut section = String::new();
    let mut bad = Vec::new();
    let mut received = 0;
    for line in stats.lines() {
        let t = line.trim();
        if t.ends_with(':') {
            section = t.to_string();
            continue;
        }
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if section.ends_with("Errors:") && v != "0" {
            bad.push(format!("{section} {t}"));
        }
        if section == "Advertisements:" && k.trim() == "Received" {
            received = v.parse().unwrap_or(0);
        }
    }
    (bad, received)
}

/// keepalived's log lines that report a received packet it did not like.
pub fn log_problems(log: &str) -> Vec<String> {
    const WORDS: [&str; 8] = [
        "invalid",
        "error",
        "mismatch",
        "not present",
        "bad ",
        "wrong",
        "bogus",
        "checksum",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_lowercase();
            WORDS.iter().any(|w| l.contains(w))
        })
        .map(str::to_string)
        .collect()
}
