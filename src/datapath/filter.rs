//! The XDP filter program: loading, attaching, steering-map sync and socket registration.
//!
//! The program (`bpf/filter.bpf.c`, compiled by `build.rs` and embedded here) passes everything to
//! the kernel except frames that match the `steer` map (a virtual service's VIP:port, or a NAT real
//! server's RIP:port as source) or the `local_pools` map (a FULLNAT pool address, at a port of its
//! pool's range: the FULLNAT replies), later fragments by address, and ICMP and ICMPv6 errors
//! whose quoted packet matches them (see the program's header comment); those are redirected to
//! the AF_XDP socket registered for the ingress interface and receive queue. IPv4 and IPv6 follow
//! the same rules: the maps hold 16-byte addresses (IPv4 v4-mapped), and IPv6 extension headers
//! are walked within the bounds of xvs's own parser (a longer or unusual chain, neighbour
//! discovery, MLD and echo are the kernel's).
//!
//! [`FilterProgram::load_unattached`] and [`FilterProgram::run_once`] run the program on crafted
//! frames (`BPF_PROG_TEST_RUN`) without attaching it: how `tests/filter_ipv6.rs` proves what it
//! steers.
//!
//! Own frames only: the program looks at a frame only when its destination MAC is the receiving
//! interface's own MAC (the `ports` map holds each attached interface's MAC by ifindex) and its
//! source MAC is none of the box's own (`own_macs`); broadcast, multicast, other hosts' frames
//! and frames xvs sent that come back go to the kernel. The MACs are set at attach time and
//! by [`FilterProgram::set_port_macs`] when an interface's MAC changes.
//!
//! [`FilterProgram::attach`] checks every interface before touching any: an `xvs_filter` already
//! there is a stale one left by a crashed xvs and is replaced; any other XDP program is someone
//! else's and makes the attach fail with [`FilterError::ForeignProgram`], leaving nothing attached.
//!
//! Attaching, querying and detaching go through netlink in the calling thread's network namespace:
//! a `FilterProgram` must be detached (or dropped) in the namespace it was attached in.
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use libxdp_sys as sys;

use crate::datapath::snapshot::SteerKey;
use crate::datapath::{Mac, PortId};

/// The name of the XDP program (and its ELF function); how a stale one is recognised.
pub const PROGRAM_NAME: &str = "xvs_filter";
/// Socket slots per port in the `xsks` map: receive queues 0..63 of each interface.
pub const QUEUES_PER_PORT: u32 = 64;
/// Interfaces the filter can steer for (size of the `ports` map).
pub const MAX_PORTS: usize = 16;
/// Capacity of the `own_macs` map: every port's MAC, twice (old and new while they change).
pub const MAX_OWN_MACS: usize = 2 * MAX_PORTS;
/// Entries of the `steer` map.
pub const MAX_STEER_KEYS: usize = 65536;
/// Length of a `steer` map key: `{u8 addr[16]; __be16 port; u8 proto; u8 dir}`.
pub const STEER_KEY_LEN: usize = 20;
/// Capacity of the `local_addrs` map (`max_entries` in the BPF program).
pub const MAX_LOCAL_ADDRS: usize = 1024;
/// Capacity of the `local_pools` map (FULLNAT pool addresses).
pub const MAX_LOCAL_POOL_ADDRS: usize = 1024;

/// The value of a `ports` entry: `struct port_info { u32 index; u8 mac[6]; u8 pad[2]; }`.
pub fn port_value(index: u32, mac: Mac) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&index.to_ne_bytes());
    v[4..10].copy_from_slice(&mac);
    v
}

/// The key of an `own_macs` entry: `struct mac_key { u8 mac[6]; u8 pad[2]; }`.
pub fn mac_key_bytes(mac: Mac) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&mac);
    k
}

/// The value of a `local_pools` entry: `struct port_range { u16 first; u16 last; }`, host order.
pub fn local_pool_value(first: u16, last: u16) -> [u8; 4] {
    let mut v = [0u8; 4];
    v[..2].copy_from_slice(&first.to_ne_bytes());
    v[2..].copy_from_slice(&last.to_ne_bytes());
    v
}

// linux/if_link.h (not in the bindings).
const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

// libbpf's option structs, with their padding spelled out as fields: libbpf rejects options
// whose bytes past the last field are not zero, and Rust does not preserve padding bytes.
#[repr(C)]
struct XdpAttachOpts {
    sz: usize,
    old_prog_fd: i32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct XdpQueryOpts {
    sz: usize,
    prog_id: u32,
    drv_prog_id: u32,
    hw_prog_id: u32,
    skb_prog_id: u32,
    attach_mode: u8,
    _pad1: [u8; 7],
    feature_flags: u64,
    xdp_zc_max_segs: u32,
    _pad2: u32,
}

const _: () = {
    assert!(
        std::mem::size_of::<XdpAttachOpts>() == std::mem::size_of::<sys::bpf_xdp_attach_opts>()
    );
    assert!(
        std::mem::offset_of!(XdpAttachOpts, old_prog_fd)
            == std::mem::offset_of!(sys::bpf_xdp_attach_opts, old_prog_fd)
    );
    assert!(std::mem::size_of::<XdpQueryOpts>() == std::mem::size_of::<sys::bpf_xdp_query_opts>());
    assert!(
        std::mem::offset_of!(XdpQueryOpts, drv_prog_id)
            == std::mem::offset_of!(sys::bpf_xdp_query_opts, drv_prog_id)
    );
    assert!(
        std::mem::offset_of!(XdpQueryOpts, hw_prog_id)
            == std::mem::offset_of!(sys::bpf_xdp_query_opts, hw_prog_id)
    );
    assert!(
        std::mem::offset_of!(XdpQueryOpts, skb_prog_id)
            == std::mem::offset_of!(sys::bpf_xdp_query_opts, skb_prog_id)
    );
    assert!(
        std::mem::offset_of!(XdpQueryOpts, feature_flags)
            == std::mem::offset_of!(sys::bpf_xdp_query_opts, feature_flags)
    );
    assert!(
        std::mem::offset_of!(XdpQueryOpts, xdp_zc_max_segs)
            == std::mem::offset_of!(sys::bpf_xdp_query_opts, xdp_zc_max_segs)
    );
};

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The compiled filter object; 8-byte aligned for libelf.
static FILTER_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/filter.bpf.o")));

/// How to attach the filter (`datapath.xdp_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode if the driver supports it, generic (SKB) mode otherwise.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Skb,
}

/// The mode a program is attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Skb,
    Hw,
}

impl AttachMode {
    fn flag(self) -> u32 {
        match self {
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
            AttachMode::Skb => XDP_FLAGS_SKB_MODE,
            AttachMode::Hw => XDP_FLAGS_HW_MODE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
            AttachMode::Hw => "hw",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an XDP program returned for a frame ([`FilterProgram::run_once`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAction {
    Aborted,
    Drop,
    /// To the kernel stack.
    Pass,
    Tx,
    /// To the AF_XDP socket `bpf_redirect_map` found.
    Redirect,
    /// A value outside the `xdp_action` enum.
    Other(u32),
}

impl XdpAction {
    fn from_retval(v: u32) -> XdpAction {
        match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Other(other),
        }
    }
}

/// An XDP program attached to an interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    pub id: u32,
    /// The program's name (at most 15 bytes), or `?` if it vanished while being looked up.
    pub name: String,
    pub mode: AttachMode,
}

/// Errors of the filter loader; each message is one line naming the interface and the errno text.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "interface {iface} already has XDP program {id} ({name}) attached; xvs will not replace it"
    )]
    ForeignProgram {
        iface: String,
        id: u32,
        name: String,
    },
    #[error("interface {iface}: cannot query its XDP program: {source}")]
    Query { iface: String, source: io::Error },
    #[error(
        "interface {iface}: cannot remove the stale XDP program {id} ({PROGRAM_NAME}): {source}"
    )]
    Stale {
        iface: String,
        id: u32,
        source: io::Error,
    },
    #[error("cannot load the XDP filter program into the kernel: {source}")]
    Load { source: io::Error },
    #[error("interface {iface}: cannot attach the XDP filter in {mode} mode: {source}")]
    Attach {
        iface: String,
        mode: AttachMode,
        source: io::Error,
    },
    #[error(
        "interface {iface}: cannot attach the XDP filter in native mode ({native}) nor in skb mode: {skb}"
    )]
    AttachAuto {
        iface: String,
        native: io::Error,
        skb: io::Error,
    },
    #[error("interface {iface}: cannot detach the XDP filter: {source}")]
    Detach { iface: String, source: io::Error },
    #[error("cannot run the XDP filter on a test frame: {source}")]
    Run { source: io::Error },
    #[error("cannot update the XDP filter's `{map}` map: {source}")]
    Map {
        map: &'static str,
        source: io::Error,
    },
    #[error("{count} interfaces configured; the XDP filter supports at most {MAX_PORTS}")]
    TooManyPorts { count: usize },
    #[error("receive queue {queue} is beyond the {QUEUES_PER_PORT} queues per interface the XDP filter supports")]
    QueueOutOfRange { queue: u32 },
    #[error("port {port} is not one of the {count} interfaces the filter is attached to")]
    UnknownPort { port: PortId, count: usize },
}

/// The bytes of the `steer` map key for `key` (layout of `struct steer_key` in the BPF program):
/// the address as 16 bytes (IPv4 v4-mapped, `::ffff:a.b.c.d`), the port in network byte order, the
/// IP protocol number, and the direction (0 = match destination, 1 = match source).
pub fn steer_key_bytes(key: &SteerKey) -> [u8; STEER_KEY_LEN] {
    let (addr, port, proto, dir) = match *key {
        SteerKey::Dst { addr, port, proto } => (addr, port, proto, 0u8),
        SteerKey::Src { addr, port, proto } => (addr, port, proto, 1u8),
        SteerKey::DstFragments { addr, proto } => (addr, 0, proto, 2u8),
        SteerKey::SrcFragments { addr, proto } => (addr, 0, proto, 3u8),
    };
    let mut out = [0u8; STEER_KEY_LEN];
    out[..16].copy_from_slice(&addr_key_bytes(addr));
    out[16..18].copy_from_slice(&port.to_be_bytes());
    out[18] = proto.number();
    out[19] = dir;
    out
}

/// The 16 bytes an address takes in the filter's maps (IPv4 v4-mapped, `::ffff:a.b.c.d`).
pub fn addr_key_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The `xsks` map slot of the socket for `port`'s receive queue `queue`.
pub fn xsk_slot(port: PortId, queue: u32) -> Result<u32, FilterError> {
    if queue >= QUEUES_PER_PORT {
        return Err(FilterError::QueueOutOfRange { queue });
    }
    Ok(u32::from(port) * QUEUES_PER_PORT + queue)
}

/// The ifindex of the interface `name` in the calling thread's network namespace.
pub fn ifindex_of(name: &str) -> io::Result<u32> {
    crate::sys::if_nametoindex(name)
}

fn neg_errno(rc: i32) -> io::Error {
    io::Error::from_raw_os_error(rc.checked_neg().unwrap_or(libc::EINVAL))
}

/// The XDP programs attached to `ifindex` (at most one per mode; the kernel allows one mode at a
/// time, so in practice zero or one).
pub fn attached_programs(ifindex: u32) -> io::Result<Vec<AttachedProgram>> {
    let mut opts = XdpQueryOpts {
        sz: std::mem::size_of::<XdpQueryOpts>(),
        ..XdpQueryOpts::default()
    };
    // SAFETY: `XdpQueryOpts` has the layout of `bpf_xdp_query_opts` (checked at compile time),
    // is writable and outlives the call.
    let rc = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, ptr::from_mut(&mut opts).cast()) };
    if rc < 0 {
        return Err(neg_errno(rc));
    }
    let mut out = Vec::new();
    for (id, mode) in [
        (opts.drv_prog_id, AttachMode::Native),
        (opts.skb_prog_id, AttachMode::Skb),
        (opts.hw_prog_id, AttachMode::Hw),
    ] {
        if id != 0 {
            out.push(AttachedProgram {
                id,
                name: program_name(id).unwrap_or_else(|_| "?".to_string()),
                mode,
            });
        }
    }
    Ok(out)
}

/// The name and id of the program behind `fd`.
fn program_info(fd: RawFd) -> io::Result<(String, u32)> {
    // SAFETY: `bpf_prog_info` is plain old data and must be zero-initialised for the syscall.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    #[allow(clippy::cast_possible_truncation)] // A struct of a few hundred bytes fits.
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is writable for `len` bytes and both outlive the call.
    let rc = unsafe { sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if rc < 0 {
        return Err(neg_errno(rc));
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Ok((String::from_utf8_lossy(&bytes).into_owned(), info.id))
}

fn program_name(id: u32) -> io::Result<String> {
    // SAFETY: plain syscall wrapper; a negative return is an error code.
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(neg_errno(fd));
    }
    let info = program_info(fd);
    // SAFETY: `fd` was returned to us above and is closed exactly once.
    unsafe { libc::close(fd) };
    info.map(|(name, _)| name)
}

fn xdp_detach(ifindex: u32, flags: u32, expected_prog_fd: Option<RawFd>) -> io::Result<()> {
    let opts = XdpAttachOpts {
        sz: std::mem::size_of::<XdpAttachOpts>(),
        old_prog_fd: expected_prog_fd.unwrap_or(0),
        _pad: 0,
    };
    // SAFETY: `XdpAttachOpts` has the layout of `bpf_xdp_attach_opts` (checked at compile time)
    // and outlives the call; with a non-zero `old_prog_fd` libbpf asks the kernel to detach only
    // if that program is the one attached.
    let rc = unsafe { sys::bpf_xdp_detach(ifindex as i32, flags, ptr::from_ref(&opts).cast()) };
    if rc < 0 {
        Err(neg_errno(rc))
    } else {
        Ok(())
    }
}

#[derive(Debug)]
struct AttachedPort {
    name: String,
    ifindex: u32,
    mode: AttachMode,
}

/// An interface to attach the filter to: its name, ifindex and own MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterPort {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
}

/// The loaded filter program, attached to every port.
///
/// Detached by [`FilterProgram::detach`] or on drop (only where the attached program is still
/// this one). Must be detached in the network namespace it was attached in.
#[derive(Debug)]
pub struct FilterProgram {
    obj: NonNull<sys::bpf_object>,
    prog_fd: RawFd,
    prog_id: u32,
    steer_fd: RawFd,
    local_addrs_fd: RawFd,
    local_pools_fd: RawFd,
    ports_fd: RawFd,
    own_macs_fd: RawFd,
    xsks_fd: RawFd,
    ports: Vec<AttachedPort>,
    /// Ports the maps know (`ports` and `own_macs` written): every attached port, or those of
    /// [`FilterProgram::load_unattached`]. Sockets can be registered for these.
    port_count: usize,
    /// Serialises map synchronisations ([`FilterProgram::set_steering`], local addresses).
    steer_lock: Mutex<()>,
}

// SAFETY: after loading, the `bpf_object` is only touched again by `Drop` (which has exclusive
// access); everything else goes through file descriptors with thread-safe syscalls.
unsafe impl Send for FilterProgram {}
// SAFETY: as above: `&self` methods only make syscalls on file descriptors, and the one that
// reads-then-writes a map (`set_steering`) is serialised by a mutex.
unsafe impl Sync for FilterProgram {}

impl FilterProgram {
    /// Loads the filter and attaches it to every port in `ports` (the order of
    /// `datapath.interfaces`, i.e. [`PortId`] order), with each port's MAC in the `ports` and
    /// `own_macs` maps before anything is attached.
    ///
    /// Every interface is checked before any is touched: a stale `xvs_filter` is replaced (one log
    /// line), any other XDP program fails the whole call with [`FilterError::ForeignProgram`].
    /// If attaching to a later interface fails, the earlier ones are detached again.
    pub fn attach(ports: &[FilterPort], mode: XdpMode) -> Result<FilterProgram, FilterError> {
        if ports.len() > MAX_PORTS {
            return Err(FilterError::TooManyPorts { count: ports.len() });
        }

        // Pre-flight: nothing is attached anywhere unless every interface is free or stale.
        let mut stale: Vec<(usize, AttachedProgram)> = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let progs = attached_programs(port.ifindex).map_err(|source| FilterError::Query {
                iface: port.name.clone(),
                source,
            })?;
            for p in progs {
                if p.name == PROGRAM_NAME {
                    stale.push((i, p));
                } else {
                    return Err(FilterError::ForeignProgram {
                        iface: port.name.clone(),
                        id: p.id,
                        name: p.name,
                    });
                }
            }
        }

        // Nothing is attached yet: an error here just drops (closes) the loaded object.
        let mut filter = FilterProgram::load_unattached(ports)?;

        for (i, FilterPort { name, ifindex, .. }) in ports.iter().enumerate() {
            for (_, p) in stale.iter().filter(|(j, _)| *j == i) {
                log::warn!(
                    "interface {name}: replacing stale XDP program {} ({PROGRAM_NAME}, {} mode) left by an earlier xvs",
                    p.id, p.mode
                );
                // An early return drops `filter`, which detaches it where it is attached already.
                if let Err(source) = xdp_detach(*ifindex, p.mode.flag(), None) {
                    return Err(FilterError::Stale {
                        iface: name.clone(),
                        id: p.id,
                        source,
                    });
                }
            }
            match filter.attach_one(name, *ifindex, mode) {
                Ok(m) => filter.ports.push(AttachedPort {
                    name: name.clone(),
                    ifindex: *ifindex,
                    mode: m,
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(filter)
    }

    /// Loads the filter without attaching it anywhere, with `ports` (their ifindex and MAC) in
    /// the `ports` and `own_macs` maps as [`FilterProgram::attach`] writes them: for running the
    /// program on crafted frames ([`FilterProgram::run_once`]). Sockets can be registered for
    /// these ports; nothing reaches them but what `run_once` is given.
    pub fn load_unattached(ports: &[FilterPort]) -> Result<FilterProgram, FilterError> {
        if ports.len() > MAX_PORTS {
            return Err(FilterError::TooManyPorts { count: ports.len() });
        }
        let mut filter = FilterProgram::load()?;
        let ifindexes: Vec<u32> = ports.iter().map(|p| p.ifindex).collect();
        let macs: Vec<Mac> = ports.iter().map(|p| p.mac).collect();
        filter.write_port_macs(&ifindexes, &macs)?;
        filter.port_count = ports.len();
        Ok(filter)
    }

    /// Runs the loaded program once on `frame`, as received on interface `ifindex`'s receive
    /// queue `queue` (`BPF_PROG_TEST_RUN`; the kernel wants a registered receive queue of a
    /// device of the calling thread's network namespace, e.g. `lo` queue 0). Nothing is
    /// transmitted or redirected: the verdict is what the program returned. A steered frame is
    /// [`XdpAction::Redirect`] when a socket is registered in its slot and [`XdpAction::Pass`]
    /// otherwise (the `bpf_redirect_map` fallback).
    pub fn run_once(
        &self,
        frame: &[u8],
        ifindex: u32,
        queue: u32,
    ) -> Result<XdpAction, FilterError> {
        let run_err = |source| FilterError::Run { source };
        let len = u32::try_from(frame.len())
            .map_err(|_| run_err(io::Error::from_raw_os_error(libc::E2BIG)))?;
        // `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let ctx: [u32; 6] = [0, len, 0, ifindex, queue, 0];
        let mut out = vec![0u8; frame.len().saturating_add(256)];
        // SAFETY: `bpf_test_run_opts` is plain old data; all-zero is its default.
        let mut opts: sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<sys::bpf_test_run_opts>();
        opts.data_in = frame.as_ptr().cast();
        opts.data_size_in = len;
        opts.data_out = out.as_mut_ptr().cast();
        opts.data_size_out = u32::try_from(out.len()).unwrap_or(u32::MAX);
        opts.ctx_in = ctx.as_ptr().cast();
        opts.ctx_size_in = 24;
        opts.repeat = 1;
        // SAFETY: every pointer in `opts` is valid for its size and outlives the call; the
        // kernel only reads `data_in`/`ctx_in` and writes at most `data_size_out` bytes.
        let rc = unsafe { sys::bpf_prog_test_run_opts(self.prog_fd, &mut opts) };
        if rc < 0 {
            return Err(run_err(neg_errno(rc)));
        }
        Ok(XdpAction::from_retval(opts.retval))
    }

    fn load() -> Result<FilterProgram, FilterError> {
        let load_err = |source| FilterError::Load { source };
        let bytes = &FILTER_OBJECT.0;
        // SAFETY: `bytes` is a static, 8-byte aligned ELF image that outlives the object (libbpf
        // copies what it keeps); null options are allowed.
        let obj =
            unsafe { sys::bpf_object__open_mem(bytes.as_ptr().cast(), bytes.len(), ptr::null()) };
        let Some(obj) = NonNull::new(obj) else {
            return Err(load_err(io::Error::last_os_error()));
        };
        // From here on `guard` closes the object on every early return.
        struct Guard(Option<NonNull<sys::bpf_object>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(obj) = self.0 {
                    // SAFETY: the object was opened above and is closed exactly once.
                    unsafe { sys::bpf_object__close(obj.as_ptr()) };
                }
            }
        }
        let mut guard = Guard(Some(obj));

        // SAFETY: `obj` is a valid, opened, not yet loaded object.
        let rc = unsafe { sys::bpf_object__load(obj.as_ptr()) };
        if rc < 0 {
            return Err(load_err(neg_errno(rc)));
        }

        let prog_name = CString::new(PROGRAM_NAME)
            .map_err(|_| load_err(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: `obj` is loaded and `prog_name` is NUL-terminated; the returned pointer is
        // owned by `obj`.
        let prog =
            unsafe { sys::bpf_object__find_program_by_name(obj.as_ptr(), prog_name.as_ptr()) };
        if prog.is_null() {
            return Err(load_err(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        // SAFETY: `prog` belongs to the loaded `obj`.
        let prog_fd = unsafe { sys::bpf_program__fd(prog) };
        if prog_fd < 0 {
            return Err(load_err(neg_errno(prog_fd)));
        }
        let (_, prog_id) = program_info(prog_fd).map_err(load_err)?;

        let map_fd = |name: &CStr| -> Result<RawFd, FilterError> {
            // SAFETY: `obj` is loaded and `name` is NUL-terminated; the map is owned by `obj`.
            let map = unsafe { sys::bpf_object__find_map_by_name(obj.as_ptr(), name.as_ptr()) };
            if map.is_null() {
                return Err(load_err(io::Error::from_raw_os_error(libc::ENOENT)));
            }
            // SAFETY: `map` belongs to the loaded `obj`.
            let fd = unsafe { sys::bpf_map__fd(map) };
            if fd < 0 {
                return Err(load_err(neg_errno(fd)));
            }
            Ok(fd)
        };
        let steer_fd = map_fd(c"steer")?;
        let local_addrs_fd = map_fd(c"local_addrs")?;
        let local_pools_fd = map_fd(c"local_pools")?;
        let ports_fd = map_fd(c"ports")?;
        let own_macs_fd = map_fd(c"own_macs")?;
        let xsks_fd = map_fd(c"xsks")?;

        guard.0 = None;
        Ok(FilterProgram {
            obj,
            prog_fd,
            prog_id,
            steer_fd,
            local_addrs_fd,
            local_pools_fd,
            ports_fd,
            own_macs_fd,
            xsks_fd,
            ports: Vec::new(),
            port_count: 0,
            steer_lock: Mutex::new(()),
        })
    }

    fn attach_with(&self, ifindex: u32, mode: AttachMode) -> io::Result<()> {
        let flags = mode.flag() | XDP_FLAGS_UPDATE_IF_NOEXIST;
        // SAFETY: `prog_fd` is our loaded XDP program; null options are allowed.
        let rc = unsafe { sys::bpf_xdp_attach(ifindex as i32, self.prog_fd, flags, ptr::null()) };
        if rc < 0 {
            Err(neg_errno(rc))
        } else {
            Ok(())
        }
    }

    fn attach_one(
        &self,
        name: &str,
        ifindex: u32,
        mode: XdpMode,
    ) -> Result<AttachMode, FilterError> {
        let attach_err = |mode, source| FilterError::Attach {
            iface: name.to_string(),
            mode,
            source,
        };
        match mode {
            XdpMode::Native => self
                .attach_with(ifindex, AttachMode::Native)
                .map(|_| AttachMode::Native)
                .map_err(|e| attach_err(AttachMode::Native, e)),
            XdpMode::Skb => self
                .attach_with(ifindex, AttachMode::Skb)
                .map(|_| AttachMode::Skb)
                .map_err(|e| attach_err(AttachMode::Skb, e)),
            XdpMode::Auto => match self.attach_with(ifindex, AttachMode::Native) {
                Ok(()) => Ok(AttachMode::Native),
                Err(native) => match self.attach_with(ifindex, AttachMode::Skb) {
                    Ok(()) => {
                        log::warn!(
                            "interface {name}: native XDP unavailable ({native}); using skb mode"
                        );
                        Ok(AttachMode::Skb)
                    }
                    Err(skb) => Err(FilterError::AttachAuto {
                        iface: name.to_string(),
                        native,
                        skb,
                    }),
                },
            },
        }
    }

    /// The kernel's id of the loaded program.
    pub fn program_id(&self) -> u32 {
        self.prog_id
    }

    /// The mode the filter was attached in on port `port`.
    pub fn attach_mode(&self, port: PortId) -> Option<AttachMode> {
        self.ports.get(usize::from(port)).map(|p| p.mode)
    }

    fn map_update(
        &self,
        fd: RawFd,
        map: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), FilterError> {
        // SAFETY: `key` and `value` have the map's key and value sizes (callers pass the exact
        // types the BPF program declares) and outlive the call.
        let rc = unsafe {
            sys::bpf_map_update_elem(
                fd,
                key.as_ptr().cast(),
                value.as_ptr().cast(),
                u64::from(sys::BPF_ANY),
            )
        };
        if rc < 0 {
            return Err(FilterError::Map {
                map,
                source: neg_errno(rc),
            });
        }
        Ok(())
    }

    fn map_delete(&self, fd: RawFd, map: &'static str, key: &[u8]) -> Result<(), FilterError> {
        // SAFETY: `key` has the map's key size and outlives the call.
        let rc = unsafe { sys::bpf_map_delete_elem(fd, key.as_ptr().cast()) };
        if rc < 0 && rc != -libc::ENOENT {
            return Err(FilterError::Map {
                map,
                source: neg_errno(rc),
            });
        }
        Ok(())
    }

    /// Every key of the hash map `fd` (keys of `N` bytes, at most `max` of them).
    fn keys_in_map<const N: usize>(
        fd: RawFd,
        map: &'static str,
        max: usize,
    ) -> Result<Vec<[u8; N]>, FilterError> {
        let mut keys = Vec::new();
        let mut prev: Option<[u8; N]> = None;
        // Bounded: the map holds at most `max` entries.
        for _ in 0..=max {
            let mut next = [0u8; N];
            let prev_ptr = prev.as_ref().map_or(ptr::null(), |k| k.as_ptr());
            // SAFETY: `prev_ptr` is null (first key) or points to a full key; `next` is writable
            // for a full key; both outlive the call.
            let rc =
                unsafe { sys::bpf_map_get_next_key(fd, prev_ptr.cast(), next.as_mut_ptr().cast()) };
            if rc == -libc::ENOENT {
                return Ok(keys);
            }
            if rc < 0 {
                return Err(FilterError::Map {
                    map,
                    source: neg_errno(rc),
                });
            }
            keys.push(next);
            prev = Some(next);
        }
        Ok(keys)
    }

    /// Makes the hash map `fd` hold exactly `want` (value 1): deletes stale entries, inserts
    /// missing ones, never touches entries in both. Returns `(inserted, deleted)`.
    fn sync_map<const N: usize>(
        &self,
        fd: RawFd,
        map: &'static str,
        want: BTreeSet<[u8; N]>,
        max: usize,
    ) -> Result<(usize, usize), FilterError> {
        let _serialised = self.steer_lock.lock().unwrap_or_else(|e| e.into_inner());
        if want.len() > max {
            return Err(FilterError::Map {
                map,
                source: io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        let have: BTreeSet<[u8; N]> = Self::keys_in_map(fd, map, max)?.into_iter().collect();
        let mut deleted = 0;
        for k in have.difference(&want) {
            self.map_delete(fd, map, k)?;
            deleted += 1;
        }
        let mut inserted = 0;
        for k in want.difference(&have) {
            self.map_update(fd, map, k, &[1u8])?;
            inserted += 1;
        }
        Ok((inserted, deleted))
    }

    /// Makes the `steer` map hold exactly `keys`. Entries in both are never touched, so steering
    /// of unchanged services is uninterrupted. Call at start-up and at every reload. Returns
    /// `(inserted, deleted)`.
    pub fn set_steering(&self, keys: &[SteerKey]) -> Result<(usize, usize), FilterError> {
        let want = keys.iter().map(steer_key_bytes).collect();
        self.sync_map(self.steer_fd, "steer", want, MAX_STEER_KEYS)
    }

    /// Makes the `local_addrs` map hold exactly the box's own addresses. A frame from a NAT real
    /// server's address and port that is addressed to one of them is the reply to the box's own
    /// connection (a health check, an operator's curl), not to a client: the filter passes it to
    /// the kernel instead of steering it. Call at start-up and whenever addresses change.
    pub fn set_local_addresses(&self, addrs: &[IpAddr]) -> Result<(usize, usize), FilterError> {
        let want = addrs.iter().map(|a| addr_key_bytes(*a)).collect();
        self.sync_map(self.local_addrs_fd, "local_addrs", want, MAX_LOCAL_ADDRS)
    }

    /// Makes the `local_pools` map hold exactly `pools` (FULLNAT pool address, first port, last
    /// port): frames to such an address at a port of its range are steered (the FULLNAT
    /// replies), before the `local_addrs` check passes the box's own traffic to the kernel.
    pub fn set_local_pools(&self, pools: &[(IpAddr, u16, u16)]) -> Result<(), FilterError> {
        let _serialised = self.steer_lock.lock().unwrap_or_else(|e| e.into_inner());
        if pools.len() > MAX_LOCAL_POOL_ADDRS {
            return Err(FilterError::Map {
                map: "local_pools",
                source: io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        let want: BTreeSet<[u8; 16]> = pools.iter().map(|p| addr_key_bytes(p.0)).collect();
        let have: Vec<[u8; 16]> =
            Self::keys_in_map(self.local_pools_fd, "local_pools", MAX_LOCAL_POOL_ADDRS)?;
        for k in have.iter().filter(|k| !want.contains(*k)) {
            self.map_delete(self.local_pools_fd, "local_pools", k)?;
        }
        for &(addr, first, last) in pools {
            self.map_update(
                self.local_pools_fd,
                "local_pools",
                &addr_key_bytes(addr),
                &local_pool_value(first, last),
            )?;
        }
        Ok(())
    }

    /// Sets the MAC of every port (`macs` in [`PortId`] order, one per attached port): the
    /// `ports` map's MAC of each interface (frames to any other destination MAC are the
    /// kernel's) and the `own_macs` set (frames from one of them are the kernel's). Call when an
    /// interface's MAC changed; each map update is atomic, so a frame sees the old or the new MAC.
    pub fn set_port_macs(&self, macs: &[Mac]) -> Result<(), FilterError> {
        if macs.len() != self.ports.len() {
            return Err(FilterError::UnknownPort {
                port: PortId::try_from(macs.len()).unwrap_or(PortId::MAX),
                count: self.ports.len(),
            });
        }
        let ifindexes: Vec<u32> = self.ports.iter().map(|p| p.ifindex).collect();
        self.write_port_macs(&ifindexes, macs)
    }

    /// Writes `ports` (ifindex → index and MAC) and makes `own_macs` hold exactly `macs`.
    /// The new MACs go into `own_macs` before any port's destination MAC changes, and the old
    /// ones leave it only after: no moment lets a frame from an old or new own MAC through.
    fn write_port_macs(&self, ifindexes: &[u32], macs: &[Mac]) -> Result<(), FilterError> {
        for mac in macs {
            self.map_update(self.own_macs_fd, "own_macs", &mac_key_bytes(*mac), &[1u8])?;
        }
        for (i, (ifindex, mac)) in ifindexes.iter().zip(macs).enumerate() {
            self.map_update(
                self.ports_fd,
                "ports",
                &ifindex.to_ne_bytes(),
                &port_value(u32::try_from(i).unwrap_or(u32::MAX), *mac),
            )?;
        }
        let want: BTreeSet<[u8; 8]> = macs.iter().map(|m| mac_key_bytes(*m)).collect();
        self.sync_map(self.own_macs_fd, "own_macs", want, MAX_OWN_MACS)?;
        Ok(())
    }

    /// Registers the AF_XDP socket `fd` bound to receive queue `queue` of port `port`: frames the
    /// filter steers on that interface and queue go to it.
    pub fn register_socket(&self, port: PortId, queue: u32, fd: RawFd) -> Result<(), FilterError> {
        self.check_port(port)?;
        let slot = xsk_slot(port, queue)?;
        self.map_update(
            self.xsks_fd,
            "xsks",
            &slot.to_ne_bytes(),
            &(fd as u32).to_ne_bytes(),
        )
    }

    /// Removes the socket of `port`'s queue `queue` (frames fall back to the kernel). Closing the
    /// socket does this too.
    pub fn unregister_socket(&self, port: PortId, queue: u32) -> Result<(), FilterError> {
        self.check_port(port)?;
        let slot = xsk_slot(port, queue)?;
        self.map_delete(self.xsks_fd, "xsks", &slot.to_ne_bytes())
    }

    fn check_port(&self, port: PortId) -> Result<(), FilterError> {
        if usize::from(port) >= self.port_count {
            return Err(FilterError::UnknownPort {
                port,
                count: self.port_count,
            });
        }
        Ok(())
    }

    /// Detaches the filter from every interface where it is still the attached program.
    pub fn detach(mut self) -> Result<(), FilterError> {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Result<(), FilterError> {
        let mut first_err = None;
        for p in self.ports.drain(..).rev() {
            let ours = match attached_programs(p.ifindex) {
                Ok(progs) => progs
                    .iter()
                    .any(|a| a.id == self.prog_id && a.mode == p.mode),
                Err(source) => {
                    first_err.get_or_insert(FilterError::Query {
                        iface: p.name.clone(),
                        source,
                    });
                    continue;
                }
            };
            if !ours {
                continue;
            }
            // Atomic compare-and-detach: only if our program is still the one attached.
            if let Err(source) = xdp_detach(p.ifindex, p.mode.flag(), Some(self.prog_fd)) {
                first_err.get_or_insert(FilterError::Detach {
                    iface: p.name.clone(),
                    source,
                });
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for FilterProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach_all() {
            log::error!("{e}");
        }
        // SAFETY: `obj` was loaded by `load` and is closed exactly once, here; its fds are not
        // used after this.
        unsafe { sys::bpf_object__close(self.obj.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_destination_key_is_v4_mapped_with_port_in_network_order() {
        let key = SteerKey::Dst {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(
            steer_key_bytes(&key),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 100, 0x00, 0x50, 6, 0]
        );
    }

    #[test]
    fn source_key_has_direction_one() {
        let key = SteerKey::Src {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)),
            port: 0x1f90,
            proto: Proto::Udp,
        };
        assert_eq!(
            steer_key_bytes(&key),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 11, 0x1f, 0x90, 17, 1]
        );
    }

    #[test]
    fn ipv6_key_keeps_the_address() {
        let addr: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let key = SteerKey::Dst {
            addr: IpAddr::V6(addr),
            port: 443,
            proto: Proto::Tcp,
        };
        let bytes = steer_key_bytes(&key);
        assert_eq!(&bytes[..16], &addr.octets());
        assert_eq!(&bytes[16..], &[0x01, 0xbb, 6, 0]);
    }

    #[test]
    fn xsk_slots_are_port_times_64_plus_queue() {
        assert_eq!(xsk_slot(0, 0).unwrap(), 0);
        assert_eq!(xsk_slot(1, 3).unwrap(), 67);
        assert_eq!(xsk_slot(15, 63).unwrap(), 15 * 64 + 63);
        assert!(matches!(
            xsk_slot(0, 64),
            Err(FilterError::QueueOutOfRange { queue: 64 })
        ));
    }

    #[test]
    fn foreign_program_error_is_one_line() {
        let e = FilterError::ForeignProgram {
            iface: "lan0".into(),
            id: 17,
            name: "xdp_pass".into(),
        };
        assert_eq!(
            e.to_string(),
            "interface lan0 already has XDP program 17 (xdp_pass) attached; xvs will not replace it"
        );
    }

    #[test]
    fn unattached_load_refuses_too_many_ports_before_loading() {
        let ports: Vec<FilterPort> = (0..=MAX_PORTS)
            .map(|i| FilterPort {
                name: format!("p{i}"),
                ifindex: u32::try_from(i).unwrap() + 1,
                mac: [2, 0, 0, 0, 0, 1],
            })
            .collect();
        assert!(matches!(
            FilterProgram::load_unattached(&ports),
            Err(FilterError::TooManyPorts { count: 17 })
        ));
    }

    #[test]
    fn xdp_actions_are_the_kernel_enum() {
        let all: Vec<XdpAction> = (0..6).map(XdpAction::from_retval).collect();
        assert_eq!(
            all,
            [
                XdpAction::Aborted,
                XdpAction::Drop,
                XdpAction::Pass,
                XdpAction::Tx,
                XdpAction::Redirect,
                XdpAction::Other(5)
            ]
        );
    }

    #[test]
    fn embedded_object_is_a_bpf_elf() {
        let b = &FILTER_OBJECT.0;
        assert_eq!(&b[..4], b"\x7fELF");
        assert_eq!(b.as_ptr() as usize % 8, 0);
    }
}
