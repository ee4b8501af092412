//! xvs — XDP Virtual Server: a user-space Layer-4 load balancer appliance.
//!
//! What Linux IPVS + ipvsadm + keepalived do, running on AF_XDP instead of a kernel module.
//!
//! Module map (see the README's design section):
//! - [`wire`]: checked views and `Repr` parse/emit for Ethernet, IPv4, TCP, UDP, ICMP, IP-in-IP;
//!   imports nothing of the crate (datapath, conntrack and vrrp all build on it).
//! - [`datapath`]: `process()`, per-method rewrites, the worker loop, AF_XDP I/O and the
//!   XDP filter program. Never reads the clock, allocates or makes syscalls below the worker loop.
//! - [`sched`]: the `Scheduler` trait and one file per IPVS scheduling algorithm.
//! - [`conntrack`]: the sharded connection table, TCP/UDP states, timeouts and expiry.
//! - [`steer`]: the filter's steering keys and the VRRP "held" flags, named by datapath, control
//!   and vrrp alike (plain types, imports only [`flow`]).
//! - [`sync`]: connection state sync between directors: the records workers enqueue and peers
//!   install.
//! - [`vrrp`]: VRRP failover: the sans-IO state machine, the wire codec and the driver thread.
//! - [`control`]: configuration, snapshot building, neighbour resolution, health checks, the
//!   daemon.
//!
//! - [`import`]: `xvs import keepalived`: keepalived.conf's lexer, parser (with includes) and
//!   the converter to xvs's YAML.
//! - [`sys`]: every other raw system call (`poll`, `if_nametoindex`, clock, signals,
//!   `sd_notify`), wrapped once.
//!
//! `unsafe` is allowed only in the AF_XDP/UMEM and BPF-loader modules of `datapath`, the VRRP
//! raw socket and [`sys`], each block with a `// SAFETY:` comment (`unsafe_code = "deny"` in
//! Cargo.toml's `[lints]`, allowed per module).

pub mod conntrack;
pub mod control;
pub mod datapath;
pub mod flow;
pub mod import;
pub mod sched;
pub mod steer;
pub mod sync;
pub mod sys;
pub mod vrrp;
pub mod wire;
