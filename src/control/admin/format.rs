//! `xvs ctl`'s text layouts: ipvsadm's, drawn from the admin protocol's replies.
//!
//! Pure functions from a reply ([`ListReply`], [`ConnsReply`], [`VrrpReply`]) to the text
//! printed; they import only [`protocol`](super::protocol), so a layout is tested without a
//! socket or a daemon.
//!
//! # Layouts
//!
//! Matched against ipvsadm 1.2x's `print_title`, `print_service_entry`, `list_conn` and
//! `print_conn` (`ipvsadm -L -n` and `ipvsadm -L -n -c`):
//!
//! - header lines `Prot LocalAddress:Port Scheduler Flags` and
//!   `  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn`, verbatim;
//! - a service line is `"%s  %s %s"` (protocol in capitals, two spaces, `VIP:PORT`, scheduler);
//! - a real-server line is `"  -> %-28s %-7s %-6d %-10u %-10u"` (address, forwarding name —
//!   `Masq` for NAT —, weight, active and inactive connections), trailing padding included;
//! - services are sorted by family, protocol, address and port, real servers by address and
//!   port, as ipvsadm sorts them without `--nosort`;
//! - health checks: the Weight column is the weight IPVS would hold under keepalived with
//!   `inhibit_on_failure`, i.e. 0 for a real server that takes no new flows because health checks
//!   hold it down, or because its service lost quorum and the sorry server took over; the sorry
//!   server then has its own line (weight 1), as keepalived adds it to IPVS. `--json` keeps the
//!   configured `weight` and says `up`, `quorum` and `sorry_server`;
//! - connections: `IPVS connection entries`, then `"pro expire %-11s %-18s %-18s %s"` with
//!   `state source virtual destination`, and each entry as `"%-3s %-6s %-11s %-18s %-18s %s"`,
//!   expire being `mm:ss` of idle time left (rounded down, as `/proc/net/ip_vs_conn` does).
//!
//! One departure: ipvsadm's first line, `IP Virtual Server version 1.2.1 (size=4096)`, names the
//! kernel's IPVS version and connection hash size; xvs prints `xvs version X.Y.Z (size=N)`, N
//! being `conntrack.max_entries`, so that no number on the screen is made up.
//!
//! `list --stats` and `list --rate` are ipvsadm's `FMT_STATS` and `FMT_RATE` layouts (see
//! [`format_list_stats`], [`format_list_rate`]): header
//! `"%-33s %8s %8s %8s %8s %8s"` then `  -> RemoteAddress:Port`, a service line of its
//! `PROT  ADDR:PORT` padded to 33 then five numbers, a real-server line of `  -> ADDR:PORT`
//! padded to 28 then five numbers; numbers in ipvsadm's `print_largenum` format (no `--exact`).
//! Whatever the flag, `--json` prints the whole `list` reply, counters and rates included.
//!
//! `stats` has no ipvsadm counterpart; it follows `--rate`'s style ([`format_stats`]): a version
//! line, a header, one line per worker with right-aligned columns, rates in [`largenum`] format.
//!
//! `vrrp` lists each VRRP instance: name, VRID, state (keepalived's names: MASTER, BACKUP,
//! FAULT, INIT), effective priority and the current master's address.
//!
//! `sync` ([`format_sync`]): a line of the sync thread's settings, one line per peer (the
//! multicast group marked `(group)`): in sync, messages and records sent and received, lag
//! (seconds since its last accepted message, `-` if never), then one line of totals (drops by
//! stage, installs, refusals and receive errors, the non-zero reasons named).
//!
//! `announce` ([`format_announce`]): a line with the table, the device and whether the box is
//! drained, then one line per VIP: `announced`, or `withdrawn: quorum|drained|failed`.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::protocol::{
    AnnounceReply, ConnsReply, ListReply, RealInfo, ServiceInfo, StatsInfo, StatsReply, SyncReply,
    VrrpReply,
};

/// ipvsadm's name for a forwarding method (`fwd_name`).
fn forward_name(forwarding: &str) -> &str {
    match forwarding {
        "nat" => "Masq",
        "dr" => "Route",
        "tun" => "Tunnel",
        "fullnat" => "FullNat",
        other => other,
    }
}

fn proto_number(p: &str) -> u8 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        _ => u8::MAX,
    }
}

/// The `ipvsadm -L -n` layout (see the module documentation).
pub fn format_list(r: &ListReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xvs version {} (size={})",
        r.version, r.conntrack_max_entries
    );
    o.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    o.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in sorted_services(r) {
        let _ = writeln!(
            o,
            "{}  {} {}",
            s.protocol.to_uppercase(),
            SocketAddr::new(s.vip, s.port),
            s.scheduler
        );
        for (rs, weight) in shown_reals(s) {
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                rs.address.to_string(),
                forward_name(&s.forwarding),
                weight,
                rs.active_connections,
                rs.inactive_connections
            );
        }
    }
    o
}

/// Services in ipvsadm's order (family, protocol, address, port).
fn sorted_services(r: &ListReply) -> Vec<&ServiceInfo> {
    let mut services: Vec<&ServiceInfo> = r.services.iter().collect();
    services.sort_by_key(|s| (s.vip.is_ipv6(), proto_number(&s.protocol), s.vip, s.port));
    services
}

/// The real-server lines of a service, in ipvsadm's order, with the weight IPVS would hold.
fn shown_reals(s: &ServiceInfo) -> Vec<(&RealInfo, u32)> {
    // keepalived replaces the real servers by the sorry server while quorum is lost.
    let sorry_in = !s.quorum && s.sorry_server.is_some();
    let mut reals: Vec<(&RealInfo, u32)> = s
        .reals
        .iter()
        .map(|r| (r, if r.up && !sorry_in { r.weight } else { 0 }))
        .chain(s.sorry_server.iter().filter(|_| sorry_in).map(|r| (r, 1)))
        .collect();
    reals.sort_by_key(|(r, _)| (r.address.is_ipv6(), r.address.ip(), r.address.port()));
    reals
}

/// ipvsadm's `print_largenum` without `--exact`: 9 columns, right-aligned; from 100 million on,
/// 8 columns and a K, M, G or T suffix (thousands, millions, ... rounded down).
pub fn largenum(i: u64) -> String {
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1_000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// ipvsadm's service column of `--stats` and `--rate`: `PROT  ADDR:PORT`, cut at 33 characters
/// (IPv4; ipvsadm does not cut IPv6 names), padded to 33.
fn stats_service_name(s: &ServiceInfo) -> String {
    let mut name = format!(
        "{}  {}",
        s.protocol.to_uppercase(),
        SocketAddr::new(s.vip, s.port)
    );
    if s.vip.is_ipv4() {
        name.truncate(33);
    }
    format!("{name:<33}")
}

/// ipvsadm's real-server column of `--stats` and `--rate`: `  -> ADDR:PORT` padded to 28 (cut
/// at 28 for IPv4).
fn stats_real_name(r: &RealInfo) -> String {
    let mut name = r.address.to_string();
    if r.address.is_ipv4() {
        name.truncate(28);
    }
    format!("  -> {name:<28}")
}

/// The first three lines of `--stats` and `--rate`: the version line, then ipvsadm's
/// `"%-33s %8s %8s %8s %8s %8s"` header with these five columns, then `  -> RemoteAddress:Port`.
fn numbers_title(r: &ListReply, columns: [&str; 5]) -> String {
    let [a, b, c, d, e] = columns;
    format!(
        "xvs version {} (size={})\n{:<33} {a:>8} {b:>8} {c:>8} {d:>8} {e:>8}\n  -> RemoteAddress:Port\n",
        r.version, r.conntrack_max_entries, "Prot LocalAddress:Port"
    )
}

/// The `ipvsadm -L -n --stats` layout: ipvsadm's `print_title` and `print_service_entry` with
/// `FMT_STATS` (the service's and each real server's Conns, InPkts, OutPkts, InBytes and
/// OutBytes, each in [`largenum`] format).
pub fn format_list_stats(r: &ListReply) -> String {
    let mut o = numbers_title(r, ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]);
    let nums = |conns: u64, st: &StatsInfo| {
        [
            conns,
            st.in_packets,
            st.out_packets,
            st.in_bytes,
            st.out_bytes,
        ]
        .map(largenum)
        .concat()
    };
    for s in sorted_services(r) {
        let _ = writeln!(
            o,
            "{}{}",
            stats_service_name(s),
            nums(s.connections_total, &s.stats)
        );
        for (rs, _) in shown_reals(s) {
            let _ = writeln!(
                o,
                "{}{}",
                stats_real_name(rs),
                nums(rs.connections_total, &rs.stats)
            );
        }
    }
    o
}

/// The `ipvsadm -L -n --rate` layout: ipvsadm's `FMT_RATE` (CPS, InPPS, OutPPS, InBPS, OutBPS;
/// a real server's first three as plain `%8u` columns, as ipvsadm prints them).
pub fn format_list_rate(r: &ListReply) -> String {
    let mut o = numbers_title(r, ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]);
    for s in sorted_services(r) {
        let t = &s.rate;
        let nums = [t.cps, t.in_pps, t.out_pps, t.in_bps, t.out_bps]
            .map(largenum)
            .concat();
        let _ = writeln!(o, "{}{nums}", stats_service_name(s));
        for (rs, _) in shown_reals(s) {
            let t = &rs.rate;
            let _ = writeln!(
                o,
                "{} {:>8} {:>8} {:>8}{}{}",
                stats_real_name(rs),
                t.cps,
                t.in_pps,
                t.out_pps,
                largenum(t.in_bps),
                largenum(t.out_bps)
            );
        }
    }
    o
}

/// The `stats` layout: `xvs version V (workers=N, interval=S s)`, then `Queue RxPPS TxPPS Util%
/// Frames/batch` and one line per worker: the queue left-aligned in 5 columns, the rates in
/// [`largenum`] format (9 columns), utilisation in percent (`%8.1f`) and the mean frames per
/// batch that had frames (`%13.1f`). Every figure is the last interval's (0 before the first).
pub fn format_stats(r: &StatsReply) -> String {
    let mut o = format!(
        "xvs version {} (workers={}, interval={:.1} s)\n{:<5}{:>9}{:>9}{:>8}{:>13}\n",
        r.version,
        r.workers.len(),
        r.interval_seconds,
        "Queue",
        "RxPPS",
        "TxPPS",
        "Util%",
        "Frames/batch"
    );
    for w in &r.workers {
        let _ = writeln!(
            o,
            "{:<5}{}{}{:>8.1}{:>13.1}",
            w.queue,
            largenum(w.rx_pps),
            largenum(w.tx_pps),
            w.busy_ratio * 100.0,
            w.frames_per_batch
        );
    }
    o
}

/// The `ipvsadm -L -n -c` layout (see the module documentation).
pub fn format_conns(r: &ConnsReply) -> String {
    let mut o = String::from("IPVS connection entries\n");
    // With FULLNAT connections, a `local` column (the pool address:port the real server sees as
    // the client) goes between virtual and destination, as DPVS's ipvsadm shows it; NAT rows
    // have `-` there.
    let fullnat = r.connections.iter().any(|c| c.local.is_some());
    let local_header = if fullnat {
        format!("{:<18} ", "local")
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "pro expire {:<11} {:<18} {:<18} {local_header}destination",
        "state", "source", "virtual"
    );
    for c in &r.connections {
        let expire = format!("{:02}:{:02}", c.expire_seconds / 60, c.expire_seconds % 60);
        let local = if fullnat {
            format!(
                "{:<18} ",
                c.local.map_or("-".to_string(), |l| l.to_string())
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {local}{}",
            c.protocol.to_uppercase(),
            expire,
            c.state,
            c.client.to_string(),
            c.vip.to_string(),
            c.real
        );
    }
    o
}

/// The `vrrp` text.
pub fn format_vrrp(r: &VrrpReply) -> String {
    if r.instances.is_empty() {
        return "no VRRP instances\n".to_string();
    }
    let mut o = format!(
        "{:<16} {:<5} {:<8} {:<8} master\n",
        "instance", "vrid", "state", "priority"
    );
    for i in &r.instances {
        let _ = writeln!(
            o,
            "{:<16} {:<5} {:<8} {:<8} {}",
            i.name,
            i.vrid,
            i.state,
            i.priority,
            i.master.map_or("-".to_string(), |m| m.to_string())
        );
    }
    o
}

/// The `announce` text: the table and device, the drained flag, then one line per VIP
/// (`announced`, or `withdrawn: REASON`).
pub fn format_announce(r: &AnnounceReply) -> String {
    if !r.configured {
        return "VIPs are not announced (no `announce:` section)\n".to_string();
    }
    let mut o = format!(
        "table {} via {}, {}\n",
        r.table.map_or("?".to_string(), |t| t.to_string()),
        r.device.as_deref().unwrap_or("?"),
        if r.drained { "drained" } else { "not drained" }
    );
    if r.vips.is_empty() {
        o.push_str("no VIPs\n");
        return o;
    }
    let _ = writeln!(o, "{:<40} state", "vip");
    for v in &r.vips {
        let state = match &v.reason {
            Some(why) => format!("{}: {why}", v.state),
            None => v.state.clone(),
        };
        let _ = writeln!(o, "{:<40} {state}", v.vip);
    }
    o
}

/// `total (reason n, ...)` of the non-zero entries of `m`, or `0`.
fn reasons(m: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = m.values().sum();
    let named: Vec<String> = m
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if named.is_empty() {
        total.to_string()
    } else {
        format!("{total} ({})", named.join(", "))
    }
}

/// The `sync` text (see the module documentation).
pub fn format_sync(r: &SyncReply) -> String {
    if !r.configured {
        return "connection sync is not configured (no `sync:` section)\n".to_string();
    }
    let iface = r.interface.as_deref().unwrap_or("?");
    let port = r.port.unwrap_or(0);
    let Some(sender) = r.sender_id else {
        return format!("sync on {iface} port {port}: starting\n");
    };
    let mode = r
        .multicast_group
        .map_or("unicast".to_string(), |g| format!("multicast {g}"));
    let mut o = format!("sync on {iface} port {port}, {mode}, sender id {sender:#010x}\n");
    let _ = writeln!(
        o,
        "{:<26} {:<7} {:>9} {:>9} {:>9} {:>9}  lag",
        "peer", "in-sync", "msgs-sent", "msgs-recv", "recs-sent", "recs-recv"
    );
    for p in &r.peers {
        let name = if p.group {
            format!("{} (group)", p.address)
        } else {
            p.address.to_string()
        };
        let _ = writeln!(
            o,
            "{:<26} {:<7} {:>9} {:>9} {:>9} {:>9}  {}",
            name,
            if p.in_sync { "yes" } else { "no" },
            p.messages_sent,
            p.messages_received,
            p.records_sent,
            p.records_received,
            p.lag_seconds
                .map_or("-".to_string(), |l| format!("{l:.3}s"))
        );
    }
    let dropped = ["ring", "queue", "unencodable"]
        .map(|k| format!("{} ({k})", r.dropped.get(k).copied().unwrap_or(0)))
        .join(" ");
    let _ = writeln!(
        o,
        "dropped {dropped}; installed {}, refused {}; errors {}; queued {}",
        r.installed,
        reasons(&r.install_refused),
        reasons(&r.errors),
        r.queued
    );
    o
}

#[cfg(test)]
pub(super) mod tests;
