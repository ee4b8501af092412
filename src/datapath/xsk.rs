//! AF_XDP I/O for one worker queue: one UMEM shared by the sockets of every attached interface on
//! that queue, so a frame received on one port is transmitted on another without a copy.
//!
//! Frame accounting: every UMEM frame is at any time in exactly one place: the worker's free pool,
//! a fill ring, an RX ring, a TX ring, a completion ring, the worker's held frames (waiting for a
//! neighbour's MAC, see `worker`), or in the worker's hands during a batch.
//! Completions return frames to the pool; fill rings are topped up from the pool. The pool, the
//! held list and the scratch arrays are allocated once, at [`QueueIo::open`]; nothing allocates
//! afterwards.
//!
//! Sockets are created with libxdp's `INHIBIT_PROG_LOAD` (xvs loads its own filter, see
//! `filter`) and `XDP_USE_NEED_WAKEUP`. Register each socket's fd with
//! `FilterProgram::register_socket` (see [`QueueIo::socket_fds`]).
#![allow(unsafe_code)]

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::datapath::worker::{Disposition, Rings, Step, TxFlush, HOLD_CAPACITY};
use crate::datapath::PortId;
use crate::flow::Nanos;

/// `datapath.zero_copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Try zero-copy, fall back to copy mode if any interface of the queue lacks it.
    #[default]
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode.
    Off,
}

/// Socket and UMEM settings (`datapath.ring_size`, `frame_size`, `zero_copy`).
#[derive(Clone, Copy, Debug)]
pub struct XskConfig {
    /// Size of every ring (fill, completion, RX, TX); a power of two.
    pub ring_size: u32,
    /// UMEM frame size; a power of two, at least 2048. The largest frame is this minus 256
    /// bytes of XDP headroom.
    pub frame_size: u32,
    pub zero_copy: ZeroCopy,
    /// Most frames taken from one RX ring per batch (sizes the scratch arrays).
    pub batch_size: usize,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            ring_size: 2048,
            frame_size: 4096,
            zero_copy: ZeroCopy::Auto,
            batch_size: 64,
        }
    }
}

/// UMEM frames per port: enough to keep the fill ring full and as many frames again in flight
/// (RX ring, TX ring, completions).
const FRAMES_PER_PORT_PER_RING_SLOT: u32 = 2;

/// Headroom the kernel reserves at the start of every UMEM frame for XDP programs
/// (`XDP_PACKET_HEADROOM`; xsk-rs's `UmemConfig::xdp_headroom`).
pub const XDP_HEADROOM: u32 = libxdp_sys::XDP_PACKET_HEADROOM;

/// Headroom xvs asks for before the XDP headroom (`UmemConfig::frame_headroom`).
const USER_HEADROOM: u32 = 0;

/// The largest frame (Ethernet header included) a UMEM frame of `frame_size` bytes receives:
/// the kernel drops longer ones before they reach the socket (counted as `rx_dropped`).
pub const fn max_frame_len(frame_size: u32) -> u32 {
    frame_size.saturating_sub(XDP_HEADROOM + USER_HEADROOM)
}

/// UMEM frames one queue has for `ports` interfaces: [`FRAMES_PER_PORT_PER_RING_SLOT`] per ring
/// slot of each port, plus [`HOLD_CAPACITY`] for the frames a worker holds while their next
/// hop's MAC is resolved, so held frames never take the frames the fill rings need (with a
/// small `ring_size` they could otherwise take every frame and stop reception on the queue).
pub fn umem_frames(ports: u32, ring_size: u32) -> u32 {
    ports
        .saturating_mul(ring_size)
        .saturating_mul(FRAMES_PER_PORT_PER_RING_SLOT)
        .saturating_add(u32::try_from(HOLD_CAPACITY).unwrap_or(u32::MAX))
}

/// Bytes of UMEM one queue maps for `ports` interfaces ([`QueueIo::open`]).
pub fn umem_bytes(ports: u32, ring_size: u32, frame_size: u32) -> u64 {
    u64::from(umem_frames(ports, ring_size)) * u64::from(frame_size)
}

/// Errors opening a queue's sockets; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("ring size {0} must be a power of two")]
    RingSize(u32),
    #[error("frame size {0} must be a power of two of at least 2048 bytes")]
    FrameSize(u32),
    #[error("queue {queue}: no interface to open")]
    NoPorts { queue: u32 },
    #[error(
        "queue {queue}: cannot create the UMEM ({frames} frames of {frame_size} bytes): {reason}"
    )]
    Umem {
        queue: u32,
        frames: u32,
        frame_size: u32,
        reason: String,
    },
    #[error(
        "interface {iface} queue {queue}: cannot create the AF_XDP socket ({mode} mode): {reason}"
    )]
    Socket {
        iface: String,
        queue: u32,
        mode: &'static str,
        reason: String,
    },
}

fn describe(e: &dyn std::error::Error) -> String {
    match e.source() {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}

/// The kernel's AF_XDP statistics of one socket (`getsockopt(XDP_STATISTICS)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    /// Received frames dropped for other reasons (`xvs_xsk_rx_dropped_total`).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    /// Frames not transmitted because of an invalid descriptor (`xvs_xsk_tx_invalid_total`).
    pub tx_invalid_descs: u64,
    /// Received frames dropped because the RX ring was full (`xvs_xsk_rx_ring_full_total`).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (`xvs_xsk_fill_ring_empty_total`).
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

impl std::ops::AddAssign for XskStatistics {
    fn add_assign(&mut self, o: Self) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

fn xdp_statistics(fd: RawFd) -> io::Result<XskStatistics> {
    // SAFETY: `xdp_statistics` is plain old data; all-zero is a valid value.
    let mut s: libxdp_sys::xdp_statistics = unsafe { std::mem::zeroed() };
    #[allow(clippy::cast_possible_truncation)] // A struct of a few dozen bytes fits.
    let mut len = std::mem::size_of::<libxdp_sys::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `s` is writable for `len` bytes and both outlive the call; a wrong fd is an error
    // return, not undefined behaviour.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libxdp_sys::XDP_STATISTICS as libc::c_int,
            (&mut s as *mut libxdp_sys::xdp_statistics).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(XskStatistics {
        rx_dropped: s.rx_dropped,
        rx_invalid_descs: s.rx_invalid_descs,
        tx_invalid_descs: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
        tx_ring_empty_descs: s.tx_ring_empty_descs,
    })
}

fn socket_is_zero_copy(fd: RawFd) -> bool {
    let mut opts = libxdp_sys::xdp_options { flags: 0 };
    #[allow(clippy::cast_possible_truncation)] // A 4-byte struct fits.
    let mut len = std::mem::size_of::<libxdp_sys::xdp_options>() as libc::socklen_t;
    // SAFETY: `opts` is writable for `len` bytes and both outlive the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libxdp_sys::XDP_OPTIONS as libc::c_int,
            (&mut opts as *mut libxdp_sys::xdp_options).cast(),
            &mut len,
        )
    };
    rc == 0 && opts.flags & libxdp_sys::XDP_OPTIONS_ZEROCOPY != 0
}

/// Reads the XDP statistics of a queue's sockets from any thread (the metrics exporter), while
/// the worker owns the sockets. Once the [`QueueIo`] is dropped it reads nothing (`None`).
#[derive(Clone, Debug)]
pub struct XskStatsReader {
    queue: u32,
    sockets: Vec<(String, RawFd)>,
    /// `true` while the sockets are open; the worker side takes the write lock to clear it
    /// before closing them, so a read never touches a closed (or reused) fd.
    alive: Arc<RwLock<bool>>,
}

impl XskStatsReader {
    /// The queue the sockets are bound to (the `queue` label).
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Statistics per interface, or `None` once the sockets are closed.
    pub fn read(&self) -> io::Result<Option<Vec<(String, XskStatistics)>>> {
        let alive = self.alive.read().unwrap_or_else(|e| e.into_inner());
        if !*alive {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.sockets.len());
        for (name, fd) in &self.sockets {
            out.push((name.clone(), xdp_statistics(*fd)?));
        }
        Ok(Some(out))
    }

    /// Statistics summed over the queue's sockets, or `None` once they are closed.
    pub fn read_total(&self) -> io::Result<Option<XskStatistics>> {
        Ok(self.read()?.map(|v| {
            let mut total = XskStatistics::default();
            for (_, s) in v {
                total += s;
            }
            total
        }))
    }
}

/// One interface's socket on this queue, with its own fill and completion rings.
struct PortIo {
    name: String,
    fd: RawFd,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    /// Frames queued for TX in this batch.
    stage: Vec<FrameDesc>,
}

/// A frame kept aside by [`Disposition::Hold`].
#[derive(Clone, Copy)]
struct HeldFrame {
    desc: FrameDesc,
    ingress: PortId,
    until: Nanos,
}

/// The sockets of every attached interface on one receive queue, sharing one UMEM.
pub struct QueueIo {
    queue: u32,
    ring_size: u32,
    /// Most TX kicks per port per flush (a full ring at the kernel's 32 frames per kick).
    max_kicks: u32,
    batch: usize,
    zero_copy: bool,
    stats_alive: Arc<RwLock<bool>>,
    pollfds: Vec<libc::pollfd>,
    /// Free frames. Capacity is the UMEM's frame count, so pushes never allocate.
    pool: Vec<FrameDesc>,
    /// Held frames, oldest first; capacity [`HOLD_CAPACITY`].
    held: Vec<HeldFrame>,
    scratch: Vec<FrameDesc>,
    ports: Vec<PortIo>,
    // Declared last: dropped after the sockets (xsk-rs keeps it alive for them anyway).
    umem: Umem,
}

impl std::fmt::Debug for QueueIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueIo")
            .field("queue", &self.queue)
            .field(
                "ports",
                &self.ports.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("zero_copy", &self.zero_copy)
            .field("free_frames", &self.pool.len())
            .finish()
    }
}

impl QueueIo {
    /// Opens one AF_XDP socket per interface (in [`PortId`] order) on receive queue `queue`,
    /// all on one new UMEM, and fills every fill ring.
    pub fn open<S: AsRef<str>>(
        ifaces: &[S],
        queue: u32,
        cfg: &XskConfig,
    ) -> Result<QueueIo, XskError> {
        if ifaces.is_empty() {
            return Err(XskError::NoPorts { queue });
        }
        if !cfg.ring_size.is_power_of_two() {
            return Err(XskError::RingSize(cfg.ring_size));
        }
        if !cfg.frame_size.is_power_of_two() || cfg.frame_size < 2048 {
            return Err(XskError::FrameSize(cfg.frame_size));
        }
        let need_wakeup = BindFlags::XDP_USE_NEED_WAKEUP;
        match cfg.zero_copy {
            ZeroCopy::On => {
                Self::open_with(ifaces, queue, cfg, BindFlags::XDP_ZEROCOPY | need_wakeup)
            }
            ZeroCopy::Off => Self::open_with(ifaces, queue, cfg, BindFlags::XDP_COPY | need_wakeup),
            // All sockets of a shared UMEM inherit the first one's mode, so the whole queue is
            // retried in copy mode if any interface refuses zero-copy.
            ZeroCopy::Auto => {
                Self::open_with(ifaces, queue, cfg, BindFlags::XDP_ZEROCOPY | need_wakeup).or_else(
                    |_| Self::open_with(ifaces, queue, cfg, BindFlags::XDP_COPY | need_wakeup),
                )
            }
        }
    }

    fn open_with<S: AsRef<str>>(
        ifaces: &[S],
        queue: u32,
        cfg: &XskConfig,
        bind_flags: BindFlags,
    ) -> Result<QueueIo, XskError> {
        let mode = if bind_flags.contains(BindFlags::XDP_ZEROCOPY) {
            "zero-copy"
        } else {
            "copy"
        };
        let ring = QueueSize::new(cfg.ring_size).map_err(|_| XskError::RingSize(cfg.ring_size))?;
        let (umem, descs) = open_umem(ifaces.len(), queue, cfg, ring)?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind_flags)
            .build();
        let batch = cfg.batch_size.max(1);
        let ports = ifaces
            .iter()
            .map(|name| {
                open_port(
                    name.as_ref(),
                    (queue, mode),
                    sock_cfg,
                    &umem,
                    ifaces.len(),
                    batch,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;

        let zero_copy = ports.first().is_some_and(|p| socket_is_zero_copy(p.fd));
        let pollfds = ports
            .iter()
            .map(|p| libc::pollfd {
                fd: p.fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut io = QueueIo {
            queue,
            ring_size: cfg.ring_size,
            max_kicks: cfg.ring_size / 32 + 1,
            batch,
            zero_copy,
            stats_alive: Arc::new(RwLock::new(true)),
            pollfds,
            pool: descs,
            held: Vec::with_capacity(HOLD_CAPACITY),
            scratch: vec![FrameDesc::default(); batch.max(64)],
            ports,
            umem,
        };
        io.refill();
        Ok(io)
    }

    /// The receive queue these sockets are bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the sockets run in zero-copy mode (as the kernel reports it).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Frames currently in the free pool (for tests and debugging).
    pub fn free_frames(&self) -> usize {
        self.pool.len()
    }

    /// `(port, socket fd)` for every interface, for `FilterProgram::register_socket`.
    pub fn socket_fds(&self) -> impl Iterator<Item = (PortId, RawFd)> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((PortId::try_from(i).ok()?, p.fd)))
    }

    /// The kernel's statistics of each socket, via xsk-rs, in port order.
    pub fn xdp_statistics(&self) -> io::Result<Vec<XskStatistics>> {
        self.ports
            .iter()
            .map(|p| {
                let s = p.rx.fd().xdp_statistics()?;
                Ok(XskStatistics {
                    rx_dropped: s.rx_dropped(),
                    rx_invalid_descs: s.rx_invalid_descs(),
                    tx_invalid_descs: s.tx_invalid_descs(),
                    rx_ring_full: s.rx_ring_full(),
                    rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
                    tx_ring_empty_descs: s.tx_ring_empty_descs(),
                })
            })
            .collect()
    }

    /// A handle that reads the sockets' statistics from another thread.
    pub fn stats_reader(&self) -> XskStatsReader {
        XskStatsReader {
            queue: self.queue,
            sockets: self.ports.iter().map(|p| (p.name.clone(), p.fd)).collect(),
            alive: self.stats_alive.clone(),
        }
    }

    fn reap(&mut self) {
        for p in &mut self.ports {
            loop {
                // SAFETY: the completion ring only returns frames of this UMEM, which it shares.
                let n = unsafe { p.cq.consume(&mut self.scratch) };
                for d in &self.scratch[..n] {
                    // Frames are conserved, so the pool never outgrows its capacity; the check
                    // keeps a kernel surprise from turning into an allocation.
                    if self.pool.len() < self.pool.capacity() {
                        self.pool.push(*d);
                    }
                }
                if n < self.scratch.len() {
                    break;
                }
            }
        }
    }

    /// Opens `desc`'s whole frame buffer with the frame's length, lets `f` work on it, and sets
    /// the descriptor's length to what `f` left (a frame grows by a TOA option or a tunnel
    /// header, never beyond the buffer).
    ///
    /// # Safety
    ///
    /// User space must own `desc`'s frame exclusively: just taken off an RX ring, or held.
    #[inline]
    unsafe fn with_frame<F: FnMut(&mut [u8], &mut usize) -> Disposition>(
        umem: &Umem,
        desc: &mut FrameDesc,
        f: &mut F,
    ) -> Disposition {
        // SAFETY: the caller guarantees exclusive ownership of the frame; no other view of it
        // exists while `data` lives.
        let mut data = unsafe { umem.data_mut(desc) };
        let mut len = data.contents().len();
        let capacity = data.cursor().buf_len();
        data.cursor().set_pos(capacity);
        let d = f(data.contents_mut(), &mut len);
        data.cursor().set_pos(len.min(capacity));
        d
    }

    /// Puts a decided frame where its disposition says (`ingress` is where it came from).
    #[inline]
    fn place(&mut self, desc: FrameDesc, ingress: PortId, disposition: Disposition) {
        match disposition {
            Disposition::Tx(out) => match self.ports.get_mut(usize::from(out)) {
                // The stage holds a batch from every port and every held frame, so it never
                // reallocates.
                Some(o) if o.stage.len() < o.stage.capacity() => o.stage.push(desc),
                _ => self.pool.push(desc),
            },
            Disposition::Recycle => self.pool.push(desc),
            Disposition::Hold { until } if self.held.len() < self.held.capacity() => {
                self.held.push(HeldFrame {
                    desc,
                    ingress,
                    until,
                })
            }
            // The worker never holds more than the capacity; never allocate if it did.
            Disposition::Hold { .. } => self.pool.push(desc),
        }
    }

    fn refill(&mut self) {
        for p in &mut self.ports {
            if self.pool.is_empty() {
                return;
            }
            let free =
                p.fq.nb_free(u32::try_from(self.pool.len()).unwrap_or(u32::MAX)) as usize;
            let n = free.min(self.pool.len());
            if n == 0 {
                continue;
            }
            let start = self.pool.len() - n;
            // SAFETY: the frames in the pool belong to this UMEM and are owned by user space
            // (not on any ring); once produced they leave the pool.
            let produced = unsafe { p.fq.produce(&self.pool[start..]) };
            self.pool.truncate(self.pool.len() - produced);
        }
    }
}

impl Rings for QueueIo {
    fn num_ports(&self) -> usize {
        self.ports.len()
    }

    fn reap_and_refill(&mut self) -> io::Result<()> {
        self.reap();
        self.refill();
        for p in &mut self.ports {
            // Zero-copy drivers may sleep until woken once the fill ring has frames again.
            if p.fq.needs_wakeup() {
                p.fq.wakeup(p.rx.fd_mut(), 0)?;
            }
        }
        Ok(())
    }

    #[inline]
    fn receive<F: FnMut(Step, &mut [u8], &mut usize) -> Disposition>(
        &mut self,
        port: PortId,
        max: usize,
        mut f: F,
    ) -> usize {
        let max = max.min(self.batch).min(self.scratch.len());
        let n = match self.ports.get_mut(usize::from(port)) {
            // SAFETY: the RX ring only returns frames of this UMEM, which it shares.
            Some(p) => unsafe { p.rx.consume(&mut self.scratch[..max]) },
            None => return 0,
        };
        let mut look = |buf: &mut [u8], len: &mut usize| f(Step::Look, buf, len);
        for &desc in &self.scratch[..n] {
            // The pre-pass works on a copy of the descriptor (it changes no length).
            let mut copy = desc;
            // SAFETY: as below: the frame was just taken off the RX ring, user space owns it.
            unsafe { Self::with_frame(&self.umem, &mut copy, &mut look) };
        }
        let mut f = |buf: &mut [u8], len: &mut usize| f(Step::Decide, buf, len);
        for i in 0..n {
            let mut desc = self.scratch[i];
            desc.set_options(0);
            // SAFETY: `desc` was just taken off the RX ring, so user space owns the frame
            // exclusively until it is put on a TX or fill ring, or held.
            let disposition = unsafe { Self::with_frame(&self.umem, &mut desc, &mut f) };
            self.place(desc, port, disposition);
        }
        n
    }

    fn held(&self) -> usize {
        self.held.len()
    }

    fn retry_held<F: FnMut(PortId, Nanos, &mut [u8], &mut usize) -> Disposition>(
        &mut self,
        mut f: F,
    ) {
        // Compacts in place: kept frames move to the front, in their order.
        let mut kept = 0;
        for i in 0..self.held.len() {
            let HeldFrame {
                mut desc,
                ingress,
                until,
            } = self.held[i];
            let mut g = |buf: &mut [u8], len: &mut usize| f(ingress, until, buf, len);
            // SAFETY: a held frame is on no ring: user space owns it exclusively.
            let disposition = unsafe { Self::with_frame(&self.umem, &mut desc, &mut g) };
            match disposition {
                Disposition::Hold { until } => {
                    self.held[kept] = HeldFrame {
                        desc,
                        ingress,
                        until,
                    };
                    kept += 1;
                }
                d => self.place(desc, ingress, d),
            }
        }
        self.held.truncate(kept);
    }

    fn flush_tx(&mut self) -> io::Result<TxFlush> {
        let mut out = TxFlush::default();
        for p in &mut self.ports {
            let staged = p.stage.len();
            if staged > 0 {
                let free = p.tx.nb_free(u32::try_from(staged).unwrap_or(u32::MAX)) as usize;
                let n = free.min(staged);
                let sent = if n > 0 {
                    // SAFETY: staged frames belong to this UMEM and are owned by user space; once
                    // produced they belong to the kernel until they come back on the completion
                    // ring.
                    unsafe { p.tx.produce(&p.stage[..n]) }
                } else {
                    0
                };
                for d in &p.stage[sent..] {
                    self.pool.push(*d);
                }
                p.stage.clear();
                out.sent += sent as u64;
                out.ring_full += (staged - sent) as u64;
            }
            // Copy mode transmits inside sendto() itself, at most a kernel budget (32 frames)
            // per call: kick until the ring is drained, a kick makes no progress (busy, no
            // buffers, or a zero-copy driver that works asynchronously), or a bound is reached.
            // Zero-copy drivers clear the need-wakeup flag while they are awake.
            let mut kicks = 0;
            loop {
                let free = p.tx.nb_free_exact();
                if free >= self.ring_size || !p.tx.needs_wakeup() || kicks == self.max_kicks {
                    break;
                }
                p.tx.wakeup()?;
                kicks += 1;
                if p.tx.nb_free_exact() == free {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn tx_pending(&mut self) -> bool {
        let size = self.ring_size;
        self.ports.iter_mut().any(|p| p.tx.nb_free_exact() < size)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        crate::sys::poll(&mut self.pollfds, ms).map(|_| ())
    }
}

impl Drop for QueueIo {
    fn drop(&mut self) {
        // Before the fields (and so the sockets) are dropped: no stats read may race the close.
        *self.stats_alive.write().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// The UMEM of one queue for `ports` interfaces, and its frames.
fn open_umem(
    ports: usize,
    queue: u32,
    cfg: &XskConfig,
    ring: QueueSize,
) -> Result<(Umem, Vec<FrameDesc>), XskError> {
    let frame_size =
        FrameSize::new(cfg.frame_size).map_err(|_| XskError::FrameSize(cfg.frame_size))?;
    let frames = umem_frames(u32::try_from(ports).unwrap_or(u32::MAX), cfg.ring_size);
    let umem_err = |reason: String| XskError::Umem {
        queue,
        frames,
        frame_size: cfg.frame_size,
        reason,
    };
    let umem_cfg = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .frame_headroom(USER_HEADROOM)
        .build()
        .map_err(|e| umem_err(e.to_string()))?;
    let frame_count = NonZeroU32::new(frames).ok_or_else(|| umem_err("zero frames".into()))?;
    Umem::new(umem_cfg, frame_count, false).map_err(|e| umem_err(describe(&e)))
}

/// The socket of interface `name` on `queue` (bound in `mode`), sharing `umem`; its staging
/// vector holds a batch from each of the queue's `ports` plus every held frame.
fn open_port(
    name: &str,
    (queue, mode): (u32, &'static str),
    sock_cfg: SocketConfig,
    umem: &Umem,
    ports: usize,
    batch: usize,
) -> Result<PortIo, XskError> {
    let sock_err = |reason: String| XskError::Socket {
        iface: name.to_string(),
        queue,
        mode,
        reason,
    };
    let iface: Interface = name
        .parse()
        .map_err(|_| sock_err("interface name contains a NUL byte".into()))?;
    // SAFETY: INHIBIT_PROG_LOAD is set, and each (interface, queue) pair is bound once on this
    // UMEM (a repeated interface name fails in the kernel with EBUSY).
    let (tx, rx, rings) = unsafe { Socket::new(sock_cfg, umem, &iface, queue) }
        .map_err(|e| sock_err(describe(&e)))?;
    let (fq, cq) = rings.ok_or_else(|| sock_err("interface listed twice on one queue".into()))?;
    let fd = rx.fd().as_raw_fd();
    Ok(PortIo {
        name: name.to_string(),
        fd,
        tx,
        rx,
        fq,
        cq,
        stage: Vec::with_capacity(batch * ports + HOLD_CAPACITY),
    })
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and fixed
mod tests {
    use super::*;

    #[test]
    fn statistics_add_up() {
        let mut a = XskStatistics {
            rx_dropped: 1,
            rx_ring_full: 2,
            ..Default::default()
        };
        a += XskStatistics {
            rx_dropped: 10,
            tx_invalid_descs: 3,
            rx_fill_ring_empty_descs: 4,
            ..Default::default()
        };
        assert_eq!(a.rx_dropped, 11);
        assert_eq!(a.rx_ring_full, 2);
        assert_eq!(a.tx_invalid_descs, 3);
        assert_eq!(a.rx_fill_ring_empty_descs, 4);
    }

    #[test]
    fn the_largest_frame_is_what_xsk_rs_lays_out() {
        for size in [2048, 4096] {
            let umem = UmemConfig::builder()
                .frame_size(FrameSize::new(size).unwrap())
                .frame_headroom(USER_HEADROOM)
                .build()
                .unwrap();
            assert_eq!(max_frame_len(size), umem.mtu(), "frame size {size}");
            assert_eq!(XDP_HEADROOM, umem.xdp_headroom());
        }
        assert_eq!(max_frame_len(4096), 3840);
        // Two interfaces, ring 2048, 4 KiB frames: 2 frames per ring slot, 16 MiB each, and
        // 128 frames (512 KiB) for held frames.
        assert_eq!(umem_frames(2, 2048), 2 * 2048 * 2 + 128);
        assert_eq!(umem_bytes(2, 2048, 4096), (32 << 20) + (512 << 10));
        // The smallest rings keep their fill-ring frames whatever is held.
        assert!(umem_frames(1, 64) - HOLD_CAPACITY as u32 >= 2 * 64);
    }

    #[test]
    fn bad_sizes_are_refused_before_touching_the_kernel() {
        let cfg = XskConfig {
            ring_size: 1000,
            ..Default::default()
        };
        assert!(matches!(
            QueueIo::open(&["lo"], 0, &cfg),
            Err(XskError::RingSize(1000))
        ));
        let cfg = XskConfig {
            frame_size: 3000,
            ..Default::default()
        };
        assert!(matches!(
            QueueIo::open(&["lo"], 0, &cfg),
            Err(XskError::FrameSize(3000))
        ));
        let none: [&str; 0] = [];
        assert!(matches!(
            QueueIo::open(&none, 0, &XskConfig::default()),
            Err(XskError::NoPorts { queue: 0 })
        ));
    }
}
