//! What validation needs to know about the machine: which interfaces exist, their MTU and
//! receive queues, the box's own addresses, how much memory the process can get, and which CPUs
//! it may run on.
//!
//! [`SystemHost`] asks the system (netlink, `/sys`, `/proc`); tests pass a closure
//! `Fn(&str) -> bool` (which interfaces exist), which knows nothing else, or a fake [`Host`].

use crate::control::memory::{self, Budget};
use crate::control::netlink;

/// An interface as validation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub mtu: u32,
    /// Receive queues (`/sys/class/net/NAME/queues/rx-*`); what `queues: all` attaches to.
    pub rx_queues: u32,
}

/// One address of an interface of this box.
pub use crate::control::netlink::InterfaceAddress as HostAddress;

/// The machine a configuration is checked against.
pub trait Host {
    /// Whether a network interface of this name exists.
    fn iface_exists(&self, name: &str) -> bool;

    /// The interface's index, MTU and receive queues; `None` when unknown.
    fn link(&self, _name: &str) -> Option<Link> {
        None
    }

    /// Every address of every interface of the box (`Err`: why they could not be listed).
    fn addresses(&self) -> Result<Vec<HostAddress>, String> {
        Ok(Vec::new())
    }

    /// How much memory the process can still get; `None` when it is not to be checked.
    fn memory(&self) -> Option<Budget> {
        None
    }

    /// The CPUs the process may run on (online and inside its affinity mask), ascending; `None`
    /// when they are not to be checked.
    fn cpus(&self) -> Option<Vec<usize>> {
        None
    }
}

/// A closure that says which interfaces exist: a machine with no other facts.
impl<F: Fn(&str) -> bool> Host for F {
    fn iface_exists(&self, name: &str) -> bool {
        self(name)
    }
}

/// This machine, in the calling thread's network namespace.
#[derive(Clone, Copy, Debug)]
pub struct SystemHost {
    memory: bool,
}

impl SystemHost {
    /// For `xvs check` and the start of `xvs run`: every fact, memory included.
    pub fn startup() -> SystemHost {
        SystemHost { memory: true }
    }

    /// For a reload or a run-time change of a running daemon: its tables are already
    /// allocated (and `conntrack.max_entries` cannot change), so memory is not weighed again.
    pub fn running() -> SystemHost {
        SystemHost { memory: false }
    }
}

impl Host for SystemHost {
    fn iface_exists(&self, name: &str) -> bool {
        super::system_iface_exists(name)
    }

    fn link(&self, name: &str) -> Option<Link> {
        let l = netlink::link_by_name(name).ok()?;
        let rx_queues = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Some(Link {
            ifindex: l.ifindex,
            mtu: l.mtu,
            rx_queues,
        })
    }

    fn addresses(&self) -> Result<Vec<HostAddress>, String> {
        netlink::dump_interface_addresses().map_err(|e| e.to_string())
    }

    fn memory(&self) -> Option<Budget> {
        if self.memory {
            memory::budget()
        } else {
            None
        }
    }

    /// The calling thread's set: validation runs on the main thread before start-up narrows
    /// it, so this is the process's (systemd's `CPUAffinity=`, `taskset`, a cpuset).
    fn cpus(&self) -> Option<Vec<usize>> {
        crate::sys::thread_cpus().ok()
    }
}
