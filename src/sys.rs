//! The raw system calls xvs makes outside the AF_XDP/UMEM and BPF-loader code, each wrapped
//! once: interface lookup (`if_nametoindex`), `poll`, the monotonic clock, signal masks and
//! synchronous signal waits, process-group kill, the effective uid, CPU affinity
//! (`sched_getaffinity`/`sched_setaffinity`), a TUN device's creation (`TUNSETIFF`), systemd's
//! `sd_notify`, the CPU's cache
//! prefetch hints (`prefetcht0`, `prefetchw`) the batch pre-pass issues, huge-page advice
//! (`madvise(MADV_HUGEPAGE)`) and the fixed-capacity vectors a connection table carves from one
//! huge-page allocation ([`huge_page_vecs`]).
//!
//! Invariants: this is the only module outside `datapath::{xsk, filter}` and `vrrp::socket` that
//! may use `unsafe`; every `unsafe` block holds exactly one foreign call (or one zeroed plain-data
//! value, or, in [`HugePageVec`], one raw allocation, slice or element operation) and says with
//! `// SAFETY:` why its arguments are valid. Callers get `io::Result`s or
//! plain values, never raw return codes or `errno`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The index of network interface `name` in the calling thread's network namespace
/// (`if_nametoindex(3)`); `NotFound`-style OS error when there is none, `InvalidInput` for a
/// name with a NUL byte.
pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; if_nametoindex only
    // reads it and returns 0 (with errno set) when there is no such interface.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Creates the TUN device `name` (`IFF_TUN | IFF_NO_PI`) on a new descriptor of
/// `/dev/net/tun` and returns that descriptor. The device is not persistent: it lives exactly
/// as long as the descriptor (the kernel deletes it, and every route through it, when the last
/// copy closes, however the process ends). `IFF_TUN_EXCL` makes the kernel refuse a name that
/// is already taken (`EBUSY`) rather than attach to an existing device, which might be
/// persistent. `InvalidInput` for a name that does not fit `IFNAMSIZ` or holds a NUL byte.
pub fn create_tun(name: &str) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: `ifreq` is plain data (a name array and a union of integers, addresses and a
    // pointer); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    // The flags are a 16-bit mask (`IFF_TUN_EXCL` is its top bit): the bits, not the value, go
    // into the signed `short`.
    let flags = u16::try_from(libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    req.ifr_ifru.ifru_flags = libc::c_short::from_ne_bytes(flags.to_ne_bytes());
    // SAFETY: `file` is an open descriptor of /dev/net/tun; TUNSETIFF reads (and may write back
    // the name into) the `ifreq` it points to, which is live, exclusively borrowed and
    // NUL-terminated (the name is shorter than IFNAMSIZ and the rest is zero).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file.into())
}

/// Waits until one of `fds` has an event it asks for or `timeout_ms` passes (`poll(2)`; a
/// negative timeout waits forever). Returns how many entries have `revents` set; a wait
/// interrupted by a signal counts as a timeout (`Ok(0)`).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fds` is a live, exclusively borrowed array of `n` pollfd structs the kernel may
    // write `revents` into.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    match usize::try_from(rc) {
        Ok(ready) => Ok(ready),
        Err(_) => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            }
        }
    }
}

/// CLOCK_MONOTONIC in microseconds (systemd's `MONOTONIC_USEC=` uses this clock).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists, so
    // the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let micros = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

/// A set of signal numbers, for blocking them and waiting for them synchronously.
#[derive(Clone, Copy)]
pub struct SignalSet {
    set: libc::sigset_t,
}

impl SignalSet {
    /// The set of `signals` (`EINVAL` for a number that is no signal).
    pub fn new(signals: &[i32]) -> io::Result<SignalSet> {
        // SAFETY: `sigset_t` is plain data (an array of integers); all zeroes is a valid value,
        // and sigemptyset below initialises it properly before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for &sig in signals {
            // SAFETY: `set` is an initialised, exclusively borrowed sigset_t; an invalid signal
            // number is reported as -1, not undefined behaviour.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(SignalSet { set })
    }

    /// Blocks the set in the calling thread (`pthread_sigmask(SIG_BLOCK)`); threads spawned
    /// afterwards inherit the mask.
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: `self.set` is an initialised sigset_t; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }

    /// Waits up to `timeout` for a pending signal of the set and consumes it (`sigtimedwait`);
    /// `None` on timeout or interruption. The set must be blocked for this to be reliable.
    pub fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: `self.set` is an initialised sigset_t, `ts` a valid timespec (nanoseconds
        // below 10^9), and a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}

/// Sends `sig` to the calling thread (`pthread_kill(pthread_self())`).
pub fn signal_own_thread(sig: i32) -> io::Result<()> {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    let me = unsafe { libc::pthread_self() };
    // SAFETY: `me` is the live calling thread; an invalid signal number is reported, not UB.
    let rc = unsafe { libc::pthread_kill(me, sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Sends SIGKILL to every process of process group `pgid` (a health-check command started as
/// its own group leader, with whatever it started). Errors (the group is already gone) are
/// ignored; group ids 0 and 1 (our own group, every process) are refused.
pub fn kill_process_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill has no memory preconditions; a negative pid addresses the process group
    // `pgid` only, and pgid > 1 was checked above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// The effective user id is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Bits of the first affinity mask tried; the kernel's is larger only on machines with more
/// CPUs (then [`thread_cpus`] retries with a doubled mask).
const CPU_MASK_BITS: usize = 1024;
/// The largest mask [`thread_cpus`] tries (the kernel's `NR_CPUS` is at most 8192 today).
const CPU_MASK_BITS_MAX: usize = 1 << 16;
/// Bits in one word of an affinity mask.
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// The CPUs the calling thread may run on (`sched_getaffinity(2)`), ascending: the CPUs that
/// are online and inside its affinity mask (systemd's `CPUAffinity=`, `taskset`, a cpuset). Read
/// by the main thread before xvs narrows it, this is the process's set.
pub fn thread_cpus() -> io::Result<Vec<usize>> {
    let mut bits = CPU_MASK_BITS;
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; bits / WORD_BITS];
        let size = std::mem::size_of_val(mask.as_slice());
        // SAFETY: `mask` is a live, exclusively borrowed buffer of `size` bytes; the kernel
        // writes at most `size` bytes into it (an array of unsigned longs, as `cpu_set_t` is)
        // and reports EINVAL when its own mask does not fit.
        let rc = unsafe { libc::sched_getaffinity(0, size, mask.as_mut_ptr().cast()) };
        if rc == 0 {
            return Ok(cpus_of_mask(&mask));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) || bits >= CPU_MASK_BITS_MAX {
            return Err(e);
        }
        bits *= 2;
    }
}

/// Restricts the calling thread to `cpus` (`sched_setaffinity(2)`); threads it starts
/// afterwards inherit the set. `InvalidInput` for an empty list; the kernel refuses (EINVAL) a
/// set with no CPU the thread is allowed to use (offline, or outside its cpuset).
pub fn set_thread_cpus(cpus: &[usize]) -> io::Result<()> {
    let Some(&max) = cpus.iter().max() else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if max >= CPU_MASK_BITS_MAX {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let words = (max / WORD_BITS + 1).max(CPU_MASK_BITS / WORD_BITS);
    let mut mask: Vec<libc::c_ulong> = vec![0; words];
    for &cpu in cpus {
        mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    }
    let size = std::mem::size_of_val(mask.as_slice());
    // SAFETY: `mask` is a live buffer of `size` bytes laid out as `cpu_set_t` is (an array of
    // unsigned longs); the kernel only reads it. Pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size, mask.as_ptr().cast()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU numbers whose bits are set in `mask`, ascending.
fn cpus_of_mask(mask: &[libc::c_ulong]) -> Vec<usize> {
    let mut cpus = Vec::new();
    for (w, &word) in mask.iter().enumerate() {
        for bit in 0..WORD_BITS {
            if word & (1 << bit) != 0 {
                cpus.push(w * WORD_BITS + bit);
            }
        }
    }
    cpus
}

/// Tells systemd (`Type=notify-reload`) about the daemon's state, if `NOTIFY_SOCKET` is set
/// (a path, or `@name` for an abstract socket). Failures are ignored: notification is best
/// effort and must not stop the daemon.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name) {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), std::path::Path::new(&path));
    }
}

/// What a file type is, for "is X, not a regular file" messages (config and key files).
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Asks the CPU to bring the cache line holding `addr` into its caches for a read soon (x86_64:
/// `prefetcht0`; a no-op elsewhere). A hint only: any address is fine, nothing is read, and
/// the program cannot observe it but in time.
#[inline(always)]
pub fn prefetch_read(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults and never changes memory, whatever the address (it
        // is not dereferenced by the program); SSE, which the intrinsic needs, is part of the
        // x86_64 baseline every build of xvs targets.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(addr as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Asks the CPU to bring the cache line holding `addr` into its caches for a write soon (x86_64
/// CPUs with PREFETCHW: the line is taken exclusive, so a lock or store that follows does not
/// ask the other cores again; otherwise [`prefetch_read`]). A hint only, as [`prefetch_read`].
#[inline(always)]
pub fn prefetch_write(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_prefetchw() {
        // SAFETY: PREFETCHW exists on this CPU (checked just above); like any prefetch it never
        // faults and never changes memory, whatever the address, and it touches no register
        // but its address operand and no flag.
        unsafe {
            core::arch::asm!("prefetchw [{0}]", in(reg) addr, options(nostack, preserves_flags, readonly))
        };
        return;
    }
    prefetch_read(addr);
}

/// Whether the CPU has PREFETCHW (CPUID 0x8000_0001, ECX bit 8, "3DNowPrefetch"), asked once.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_prefetchw() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    /// 0: not asked yet, 1: no, 2: yes.
    static HAS: AtomicU8 = AtomicU8::new(0);
    match HAS.load(Ordering::Relaxed) {
        0 => {
            // Leaf 0x8000_0001 exists on every CPU that runs in 64-bit mode (its long-mode bit is
            // there).
            let leaf = core::arch::x86_64::__cpuid(0x8000_0001);
            let has = leaf.ecx & (1 << 8) != 0;
            HAS.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
        v => v == 2,
    }
}

/// The size of a transparent huge page (x86_64 and arm64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel to back the whole huge pages inside `[addr, addr + len)` with transparent
/// huge pages (`madvise(MADV_HUGEPAGE)`; the range is rounded inward, to [`HUGE_PAGE`]
/// boundaries) and returns the range advised (empty when no whole huge page fits). Advice only:
/// when the kernel refuses it (THP `never`, no THP) memory keeps its base pages, so the result
/// of the call is not reported. The range must be memory the caller owns (it only changes how
/// the kernel backs those pages, never their contents).
pub fn advise_huge_pages(addr: usize, len: usize) -> std::ops::Range<usize> {
    let start = addr.checked_next_multiple_of(HUGE_PAGE);
    let end = addr.saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    let Some(start) = start.filter(|&s| s < end) else {
        return addr..addr;
    };
    #[cfg(target_os = "linux")]
    // SAFETY: madvise(MADV_HUGEPAGE) on a range of the caller's own memory changes only which
    // page size the kernel backs it with, never what it holds; an unmapped range makes it fail
    // (ENOMEM), which is harmless.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE)
    };
    start..end
}

/// [`huge_page_vecs`] could not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HugeAllocError {
    #[error("capacity overflow")]
    Overflow,
    #[error("memory allocation failed")]
    Failed,
}

/// One allocation, freed when the last [`HugePageVec`] carved from it is dropped.
#[derive(Debug)]
struct Region {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: a Region only owns plain memory (what lives in it is its vectors' business, which are
// Send/Sync only when their elements are); freeing it from another thread is fine.
unsafe impl Send for Region {}
// SAFETY: as for Send: `&Region` gives no access to the memory at all.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `std::alloc::alloc(layout)` (see `huge_page_vecs`) and is
        // freed once, here; every vector carved from it has dropped its elements already (each
        // holds an `Arc` of the region, so the region outlives them).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// A fixed-capacity vector in a share of one larger allocation ([`huge_page_vecs`]): the shards
/// of a table carve their slabs from one allocation, large enough for huge pages, that no
/// shard's own would be. Invariants: `ptr` is aligned for `T` and has room for `cap` elements
/// that no other vector uses; the first `len` are initialized; it never grows (`push` past the
/// capacity gives the value back).
#[derive(Debug)]
pub struct HugePageVec<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    cap: usize,
    /// Keeps the allocation alive (`None` for capacity 0: nothing was allocated).
    _region: Option<std::sync::Arc<Region>>,
    _owns: std::marker::PhantomData<T>,
}

// SAFETY: the vector owns its elements (moving it moves them); nothing else reaches its share.
unsafe impl<T: Send> Send for HugePageVec<T> {}
// SAFETY: `&HugePageVec<T>` gives only `&T`s.
unsafe impl<T: Sync> Sync for HugePageVec<T> {}

impl<T> HugePageVec<T> {
    /// Room for this many elements.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Appends `value`, or gives it back when the vector is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.len == self.cap {
            return Err(value);
        }
        let at = self.ptr.as_ptr().wrapping_add(self.len);
        // SAFETY: `len < cap`, so `at` is element `len` of this vector's share of the
        // allocation, aligned, and not initialized yet (nothing is overwritten).
        unsafe { at.write(value) };
        self.len += 1;
        Ok(())
    }
}

impl<T> std::ops::Deref for HugePageVec<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` elements are initialized, aligned and this vector's alone
        // (`&self` keeps `&mut` access out for the slice's lifetime); `ptr` is non-null.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugePageVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugePageVec<T> {
    fn drop(&mut self) {
        let live = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: the first `len` elements are initialized and dropped once, here, before the
        // region (a field, dropped after this) can be freed.
        unsafe { std::ptr::drop_in_place(live) };
    }
}

/// Vectors of the capacities `caps`, all carved from one allocation (in order, each at the end
/// of the one before). An allocation of at least [`HUGE_PAGE`] bytes starts on a huge-page
/// boundary and is advised for huge pages ([`advise_huge_pages`]) before anything touches it:
/// random accesses across a large table then miss the TLB far less. Nothing is touched here.
pub fn huge_page_vecs<T>(caps: &[usize]) -> Result<Vec<HugePageVec<T>>, HugeAllocError> {
    let size = std::mem::size_of::<T>().max(1);
    let total = caps
        .iter()
        .try_fold(0usize, |a, &c| a.checked_add(c))
        .and_then(|n| n.checked_mul(size))
        .ok_or(HugeAllocError::Overflow)?;
    let region = if total == 0 {
        None
    } else {
        let align = match total >= HUGE_PAGE {
            true => HUGE_PAGE.max(std::mem::align_of::<T>()),
            false => std::mem::align_of::<T>(),
        };
        let layout = std::alloc::Layout::from_size_align(total, align)
            .map_err(|_| HugeAllocError::Overflow)?;
        // SAFETY: `layout` has a non-zero size (`total > 0`).
        let ptr = unsafe { std::alloc::alloc(layout) };
        let ptr = std::ptr::NonNull::new(ptr).ok_or(HugeAllocError::Failed)?;
        advise_huge_pages(ptr.as_ptr() as usize, total);
        Some(std::sync::Arc::new(Region { ptr, layout }))
    };
    let mut at = region.as_ref().map(|r| r.ptr.as_ptr().cast::<T>());
    let mut vecs = Vec::with_capacity(caps.len());
    for &cap in caps {
        let ptr = match (at, cap) {
            (Some(p), 1..) => p,
            _ => std::ptr::NonNull::dangling().as_ptr(),
        };
        // Stays inside the allocation (or one past its end): the capacities add up to it.
        at = at.map(|p| p.wrapping_add(cap));
        vecs.push(HugePageVec {
            ptr: std::ptr::NonNull::new(ptr).ok_or(HugeAllocError::Failed)?,
            len: 0,
            cap,
            _region: region.clone().filter(|_| cap > 0),
            _owns: std::marker::PhantomData,
        });
    }
    Ok(vecs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn huge_page_advice_is_rounded_inward_to_whole_huge_pages() {
        let buf: Vec<u8> = Vec::with_capacity(5 * HUGE_PAGE);
        let a = buf.as_ptr() as usize;
        let r = advise_huge_pages(a, 5 * HUGE_PAGE);
        assert_eq!(r.start % HUGE_PAGE, 0);
        assert_eq!(r.end % HUGE_PAGE, 0);
        assert!(a <= r.start && r.end <= a + 5 * HUGE_PAGE);
        assert!(r.len() >= 3 * HUGE_PAGE, "{r:?}");
        // An aligned range is advised whole; one with no whole huge page inside, not at all.
        let aligned = r.start..r.start + 2 * HUGE_PAGE;
        assert_eq!(advise_huge_pages(aligned.start, aligned.len()), aligned);
        assert!(advise_huge_pages(r.start + 1, HUGE_PAGE).is_empty());
        assert!(advise_huge_pages(r.start, HUGE_PAGE - 1).is_empty());
    }

    #[test]
    fn huge_page_vecs_share_one_allocation_and_drop_their_elements() {
        use std::rc::Rc;
        let token = Rc::new(());
        let mut v = huge_page_vecs::<Rc<()>>(&[3, 0, 2]).unwrap();
        assert_eq!(
            v.iter().map(|v| v.capacity()).collect::<Vec<_>>(),
            [3, 0, 2]
        );
        for (i, v) in v.iter_mut().enumerate() {
            for _ in 0..v.capacity() {
                v.push(token.clone()).unwrap();
            }
            assert!(v.push(token.clone()).is_err(), "vector {i} is full");
        }
        assert_eq!(v[0].len() + v[2].len(), 5);
        // Each vector starts where the one before ends.
        assert_eq!(v[0].as_ptr().wrapping_add(3), v[2].as_ptr());
        assert_eq!(Rc::strong_count(&token), 6);
        drop(v.remove(0));
        assert_eq!(Rc::strong_count(&token), 3);
        drop(v);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn a_huge_page_vec_allocation_starts_on_a_huge_page_and_reports_what_it_cannot_have() {
        let mut v = huge_page_vecs::<u64>(&[HUGE_PAGE / 8, HUGE_PAGE / 8]).unwrap();
        assert_eq!(v[0].as_ptr() as usize % HUGE_PAGE, 0);
        v[1].push(7).unwrap();
        v[1][0] += 1;
        assert_eq!(&v[1][..], [8]);
        assert!(huge_page_vecs::<u64>(&[]).unwrap().is_empty());
        assert_eq!(
            huge_page_vecs::<u64>(&[usize::MAX, 2]).unwrap_err(),
            HugeAllocError::Overflow
        );
        assert_eq!(
            huge_page_vecs::<u64>(&[usize::MAX / 8]).unwrap_err(),
            HugeAllocError::Overflow
        );
    }

    #[test]
    fn if_nametoindex_finds_loopback_and_refuses_unknown_or_bad_names() {
        assert!(if_nametoindex("lo").unwrap() > 0);
        assert!(if_nametoindex("xvs-no-such0").is_err());
        let e = if_nametoindex("l\0o").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn create_tun_refuses_names_that_do_not_fit_before_touching_the_kernel() {
        for bad in ["", "a234567890123456", "tun\0x"] {
            let e = create_tun(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn poll_reports_a_readable_socket_and_times_out_on_a_quiet_one() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut fds = [libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut fds, 0).unwrap(), 0);
        assert_eq!(fds[0].revents, 0);
        a.send(b"x").unwrap();
        assert_eq!(poll(&mut fds, 1000).unwrap(), 1);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        // A closed descriptor is reported in revents, not as an error of the call.
        let mut bad = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut bad, 0).unwrap(), 0);
    }

    #[test]
    fn monotonic_usec_moves_forward_with_std_instant() {
        let t0 = monotonic_usec();
        std::thread::sleep(Duration::from_millis(20));
        let t1 = monotonic_usec();
        assert!(t1 >= t0 + 20_000, "{t0} -> {t1}");
        // Not a wall clock: well below the Unix time in microseconds.
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert!(u128::from(t1) < unix);
    }

    #[test]
    fn cpus_of_mask_reads_every_word() {
        let mut mask = vec![0 as libc::c_ulong; 4];
        mask[0] = 0b1010;
        mask[2] = 1 << 3;
        assert_eq!(cpus_of_mask(&mask), vec![1, 3, 2 * WORD_BITS + 3]);
        assert_eq!(cpus_of_mask(&[0, 0]), Vec::<usize>::new());
    }

    #[test]
    fn a_thread_narrowed_to_one_of_its_cpus_reads_it_back() {
        // In a thread of its own, so the test's other threads keep their set.
        std::thread::spawn(|| {
            let cpus = thread_cpus().unwrap();
            assert!(!cpus.is_empty());
            assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
            let last = *cpus.last().unwrap();
            set_thread_cpus(&[last]).unwrap();
            assert_eq!(thread_cpus().unwrap(), vec![last]);
            // Threads started afterwards inherit the set.
            let inner = std::thread::spawn(thread_cpus).join().unwrap().unwrap();
            assert_eq!(inner, vec![last]);
            assert_eq!(
                set_thread_cpus(&[]).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            // A CPU this machine does not have: refused, the set unchanged.
            assert!(set_thread_cpus(&[CPU_MASK_BITS - 1]).is_err());
            assert!(set_thread_cpus(&[CPU_MASK_BITS_MAX]).is_err());
            assert_eq!(thread_cpus().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_signal_set_refuses_a_bad_number_and_waits_for_a_blocked_signal() {
        assert!(SignalSet::new(&[libc::SIGUSR2, 4096]).is_err());
        let set = SignalSet::new(&[libc::SIGUSR2]).unwrap();
        set.block().unwrap();
        assert_eq!(set.wait(Duration::from_millis(1)), None);
        signal_own_thread(libc::SIGUSR2).unwrap();
        assert_eq!(set.wait(Duration::from_secs(1)), Some(libc::SIGUSR2));
    }
}
