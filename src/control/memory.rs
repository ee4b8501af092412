//! How much memory start-up allocates, and how much this process can get.
//!
//! The connection table, the persistence templates, the FULLNAT port rings and the AF_XDP UMEM
//! are allocated whole when `xvs run` starts ([`StartupMemory`]; the sizes come from the tables'
//! own sizing code, so they are what the allocation will be). A SYN flood fills the connection
//! table, so all of it may be touched: `xvs check` and `xvs run` refuse a configuration whose
//! tables, plus [`RESERVE`] for the rest of the daemon, exceed the tightest of ([`budget`]):
//! - `MemAvailable` of `/proc/meminfo`;
//! - the memory cgroup's limit less its usage, for the process's cgroup and each ancestor
//!   (cgroup v2 `memory.max` / `memory.current`, or v1 `memory.limit_in_bytes` /
//!   `memory.usage_in_bytes`);
//! - `RLIMIT_AS` less the address space already mapped (`VmSize`), and `RLIMIT_DATA` less the
//!   data already mapped (`VmData`), from `/proc/self/limits` and `/proc/self/status`.
//!
//! Everything is read from `/proc` and `/sys` as text, so the parsing is tested on fixed inputs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::conntrack::ConnTable;
use crate::datapath::process::persistence_capacity;
use crate::sched::persist::PersistenceTable;

/// Memory kept for everything but the tables: thread stacks, socket buffers, health checks,
/// the admin and metrics servers (a running lab daemon maps about 40 MiB besides its tables).
pub const RESERVE: u64 = 64 * 1024 * 1024;

/// What `xvs run` allocates at start, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartupMemory {
    /// Connection-table entries and indexes (IPv4).
    pub conntrack: u64,
    /// The IPv6 connection table's entries and indexes (0 without one).
    pub conntrack_ipv6: u64,
    /// Persistence templates and their index.
    pub persistence: u64,
    /// FULLNAT free-port rings (2 bytes per pool port).
    pub local_ports: u64,
    /// AF_XDP UMEM: frames for every queue and interface.
    pub umem: u64,
}

impl StartupMemory {
    /// For `max_entries` IPv4 and `max_entries_ipv6` IPv6 connections, `pool_ports` FULLNAT
    /// pool address:port pairs, and `umem` bytes of UMEM.
    pub fn new(
        max_entries: u64,
        max_entries_ipv6: u64,
        pool_ports: u64,
        umem: u64,
    ) -> StartupMemory {
        let n = usize::try_from(max_entries).unwrap_or(usize::MAX);
        let n6 = usize::try_from(max_entries_ipv6).unwrap_or(usize::MAX);
        let templates = persistence_capacity(n.saturating_add(n6));
        StartupMemory {
            conntrack: ConnTable::bytes_needed(n) as u64,
            conntrack_ipv6: ConnTable::bytes_needed_ipv6(n6) as u64,
            persistence: PersistenceTable::bytes_needed(templates) as u64,
            local_ports: pool_ports.saturating_mul(2),
            umem,
        }
    }

    pub fn total(&self) -> u64 {
        self.conntrack
            .saturating_add(self.conntrack_ipv6)
            .saturating_add(self.persistence)
            .saturating_add(self.local_ports)
            .saturating_add(self.umem)
    }
}

impl fmt::Display for StartupMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection table {}", Bytes(self.conntrack))?;
        if self.conntrack_ipv6 > 0 {
            write!(f, ", IPv6 connection table {}", Bytes(self.conntrack_ipv6))?;
        }
        write!(f, ", persistence templates {}", Bytes(self.persistence))?;
        if self.local_ports > 0 {
            write!(f, ", FULLNAT port rings {}", Bytes(self.local_ports))?;
        }
        write!(f, ", UMEM {}", Bytes(self.umem))
    }
}

/// A byte count for people: `1.5 GiB`, `61.0 MiB`, `512 bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} bytes", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

/// How much more memory the process can get, and which limit says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    /// E.g. `MemAvailable in /proc/meminfo`.
    pub source: String,
}

/// The tightest limit on what this process can still allocate (see the module documentation);
/// `None` when nothing could be read.
pub fn budget() -> Option<Budget> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let mut all = Vec::new();
    if let Some(b) = read(Path::new("/proc/meminfo")).and_then(|t| meminfo_available(&t)) {
        all.push(b);
    }
    if let (Some(cg), Some(mi)) = (
        read(Path::new("/proc/self/cgroup")),
        read(Path::new("/proc/self/mountinfo")),
    ) {
        all.extend(cgroup_budgets(&cg, &mi, &read));
    }
    if let (Some(limits), Some(status)) = (
        read(Path::new("/proc/self/limits")),
        read(Path::new("/proc/self/status")),
    ) {
        all.extend(rlimit_budgets(&limits, &status));
    }
    all.into_iter().min_by_key(|b| b.bytes)
}

/// `MemAvailable` of a `/proc/meminfo` text.
pub fn meminfo_available(meminfo: &str) -> Option<Budget> {
    let kib = kib_field(meminfo, "MemAvailable:")?;
    Some(Budget {
        bytes: kib.saturating_mul(1024),
        source: "MemAvailable in /proc/meminfo".into(),
    })
}

/// The `kB` value of the line starting with `key` (`/proc/meminfo`, `/proc/self/status`).
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The soft limit of the `/proc/self/limits` row named `name` (`Max address space`), or `None`
/// when it is unlimited or missing.
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let rest = limits.lines().find_map(|l| l.strip_prefix(name))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `RLIMIT_AS` and `RLIMIT_DATA` headroom: each soft limit less what is already mapped.
pub fn rlimit_budgets(limits: &str, status: &str) -> Vec<Budget> {
    let mut out = Vec::new();
    for (row, rlimit, used_key, used_what) in [
        ("Max address space", "RLIMIT_AS", "VmSize:", "mapped"),
        ("Max data size", "RLIMIT_DATA", "VmData:", "mapped as data"),
    ] {
        if let Some(limit) = soft_limit(limits, row) {
            let used = kib_field(status, used_key)
                .unwrap_or(0)
                .saturating_mul(1024);
            out.push(Budget {
                bytes: limit.saturating_sub(used),
                source: format!(
                    "{rlimit} {} less the {} already {used_what}",
                    Bytes(limit),
                    Bytes(used)
                ),
            });
        }
    }
    out
}

/// A cgroup v1 memory limit at or above this is "no limit" (the kernel reports
/// `PAGE_COUNTER_MAX` pages, about 2^63 bytes).
const V1_UNLIMITED: u64 = 1 << 62;

/// The headroom of every memory cgroup level above this process: from `/proc/self/cgroup`
/// and `/proc/self/mountinfo` texts, reading the cgroup files with `read`.
pub fn cgroup_budgets(
    proc_cgroup: &str,
    mountinfo: &str,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Vec<Budget> {
    let mut out = Vec::new();
    for m in cgroup_mounts(mountinfo) {
        // "0::/path" for v2; "N:memory[,other]:/path" for the v1 memory hierarchy.
        let path = proc_cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let ours = if m.v2 {
                id == "0" && controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "memory")
            };
            ours.then_some(path)
        });
        let Some(path) = path else { continue };
        let rel = path.strip_prefix(m.root.as_str()).unwrap_or(path);
        let mut dir = m.mount.join(rel.trim_start_matches('/'));
        let (limit_file, usage_file, name) = if m.v2 {
            ("memory.max", "memory.current", "cgroup memory.max")
        } else {
            (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "cgroup (v1) memory.limit_in_bytes",
            )
        };
        loop {
            let num = |f: &str| read(&dir.join(f)).and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(limit) = num(limit_file).filter(|&l| m.v2 || l < V1_UNLIMITED) {
                let usage = num(usage_file).unwrap_or(0);
                out.push(Budget {
                    bytes: limit.saturating_sub(usage),
                    source: format!(
                        "{name} {} of {} less the {} in use",
                        Bytes(limit),
                        dir.display(),
                        Bytes(usage)
                    ),
                });
            }
            if dir == m.mount || !dir.pop() || !dir.starts_with(&m.mount) {
                break;
            }
        }
    }
    out
}

struct CgroupMount {
    v2: bool,
    /// The cgroup path mounted there (`/` unless the mount is of a sub-tree).
    root: String,
    mount: PathBuf,
}

/// The cgroup v2 mounts and the cgroup v1 memory mounts of a `/proc/self/mountinfo` text.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let (root, mount) = (*f.get(3)?, *f.get(4)?);
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let _source = r.next();
            let options = r.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" if options.split(',').any(|o| o == "memory") => false,
                _ => return None,
            };
            Some(CgroupMount {
                v2,
                root: unescape(root),
                mount: PathBuf::from(unescape(mount)),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn startup_memory_is_what_the_tables_allocate() {
        for n in [1_000usize, 100_000, 1_000_000] {
            let m = StartupMemory::new(n as u64, 0, 0, 0);
            assert_eq!(
                m.conntrack,
                ConnTable::new(n).allocated_bytes() as u64,
                "{n}"
            );
            assert_eq!(
                m.persistence,
                PersistenceTable::new(persistence_capacity(n)).allocated_bytes() as u64,
                "{n}"
            );
        }
        // 61.3 bytes per connection (README), and 10^8 entries: about 6 GB.
        let big = StartupMemory::new(100_000_000, 0, 0, 0);
        assert!((6_100_000_000..6_200_000_000).contains(&big.conntrack));
        assert_eq!(big.conntrack_ipv6, 0);
    }

    #[test]
    fn startup_memory_counts_the_ipv6_table_and_its_templates() {
        let (n, n6) = (100_000usize, 50_000usize);
        let m = StartupMemory::new(n as u64, n6 as u64, 0, 0);
        let t = ConnTable::with_families(n, n6, 0, &[]);
        assert_eq!(m.conntrack + m.conntrack_ipv6, t.allocated_bytes() as u64);
        assert_eq!(m.conntrack_ipv6, ConnTable::bytes_needed_ipv6(n6) as u64);
        assert_eq!(
            m.persistence,
            PersistenceTable::new(persistence_capacity(n + n6)).allocated_bytes() as u64
        );
        assert!(m.to_string().contains(", IPv6 connection table "), "{m}");
        assert!(!StartupMemory::new(10, 0, 0, 0).to_string().contains("IPv6"));
    }

    #[test]
    fn mem_available_and_rlimits_are_read() {
        let meminfo = "MemTotal:       24683712 kB\nMemFree:        13956268 kB\nMemAvailable:   22302208 kB\n";
        assert_eq!(meminfo_available(meminfo).unwrap().bytes, 22302208 * 1024);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max data size             unlimited            unlimited            bytes     \n\
                      Max address space         1073741824           unlimited            bytes     \n";
        let status =
            "Name:\txvs\nVmPeak:\t   20000 kB\nVmSize:\t   10240 kB\nVmData:\t    2048 kB\n";
        let b = rlimit_budgets(limits, status);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].bytes, 1024 * 1024 * 1024 - 10 * 1024 * 1024);
        assert_eq!(
            b[0].source,
            "RLIMIT_AS 1.0 GiB less the 10.0 MiB already mapped"
        );
        let limits = limits
            .replace(
                "Max data size             unlimited",
                "Max data size             536870912",
            )
            .replace("1073741824", "unlimited");
        let b = rlimit_budgets(&limits, status);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].bytes, 512 * 1024 * 1024 - 2048 * 1024);
        assert!(
            b[0].source.starts_with("RLIMIT_DATA 512.0 MiB"),
            "{}",
            b[0].source
        );
    }

    fn fs(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let m: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p: &Path| m.get(p).cloned()
    }

    #[test]
    fn cgroup_v2_limits_of_the_process_and_its_ancestors() {
        let mountinfo = "24 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                         25 1 0:23 / /proc rw - proc proc rw\n";
        let proc_cgroup = "0::/system.slice/xvs.service\n";
        let read = fs(&[
            (
                "/sys/fs/cgroup/system.slice/xvs.service/memory.max",
                "max\n",
            ),
            (
                "/sys/fs/cgroup/system.slice/xvs.service/memory.current",
                "1000\n",
            ),
            ("/sys/fs/cgroup/system.slice/memory.max", "536870912\n"),
            ("/sys/fs/cgroup/system.slice/memory.current", "268435456\n"),
        ]);
        let b = cgroup_budgets(proc_cgroup, mountinfo, &read);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].bytes, 256 * 1024 * 1024);
        assert_eq!(
            b[0].source,
            "cgroup memory.max 512.0 MiB of /sys/fs/cgroup/system.slice less the 256.0 MiB in use"
        );
    }

    #[test]
    fn cgroup_v1_memory_limits_and_no_limit() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                         31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let proc_cgroup = "5:cpu:/\n4:memory:/lb/xvs\n0::/\n";
        let read = fs(&[
            (
                "/sys/fs/cgroup/memory/lb/xvs/memory.limit_in_bytes",
                "209715200\n",
            ),
            (
                "/sys/fs/cgroup/memory/lb/xvs/memory.usage_in_bytes",
                "4194304\n",
            ),
            (
                "/sys/fs/cgroup/memory/lb/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        let b = cgroup_budgets(proc_cgroup, mountinfo, &read);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].bytes, 200 * 1024 * 1024 - 4 * 1024 * 1024);
        // A cgroup namespace: the mount's root is the process's cgroup itself.
        let mountinfo = "30 25 0:26 /lb/xvs /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let read = fs(&[
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "209715200\n"),
            ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "0\n"),
        ]);
        let b = cgroup_budgets(proc_cgroup, mountinfo, &read);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].bytes, 200 * 1024 * 1024);
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(Bytes(512).to_string(), "512 bytes");
        assert_eq!(Bytes(64 * 1024 * 1024).to_string(), "64.0 MiB");
        assert_eq!(Bytes(6_130_000_000).to_string(), "5.7 GiB");
    }
}
