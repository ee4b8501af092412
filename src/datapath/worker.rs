//! The worker loop: one thread per receive queue, moving frames from the AF_XDP RX rings through
//! a [`FrameHandler`] (the [`Processor`]) to the TX ring its verdict names.
//!
//! Per iteration ("batch"): read the clock once, `begin_batch(now)`, reap TX completions and top
//! up the fill rings, take up to `batch_size` frames from each port's RX ring and decide each,
//! queue `Tx` frames on the egress port's TX ring (same UMEM, no copy), recycle the rest, kick TX.
//! In [`PollMode::Wakeup`] an idle worker blocks in `poll()` on the RX sockets; in
//! [`PollMode::Busy`] it spins. No allocation, no locks, no syscalls besides ring kicks and poll.
//!
//! A frame dropped only because its next hop's MAC is unknown (`no_neighbour`) is **held**
//! instead, up to [`HOLD_CAPACITY`] frames per worker, for at most [`NEIGHBOUR_HOLD`]: the
//! processor has posted the address for the control plane to resolve, and when the next-hop
//! table's version changes the worker decides each held frame again, before any new frame.
//! A frame whose neighbour is still unknown when its time is up is dropped and counted as
//! `no_neighbour`. So the first reply to a client the box never talked to leaves as soon as the
//! kernel has the client's MAC (a millisecond or so) instead of being lost to a 1 s TCP
//! retransmission. The held frame stays in its UMEM buffer: nothing is copied or allocated.
//!
//! **Busy time.** The loop reads the clock once per batch and nowhere else. A batch that received
//! frames is busy from its own clock read to the next one (the batch's work, TX kick included,
//! up to the next batch's start); that span is added to [`WorkerCounters::busy_ns`] at the next
//! read, and the batch's frame count to [`WorkerCounters::batch_frames`]. A batch that received
//! nothing is not busy, nor is the spin or the `poll()` wait that follows it (a wait only ever
//! follows an empty batch), so `busy_ns` is at most the time the worker ran and reads ≈ 0 when
//! idle, whatever the poll mode. The span of the last busy batch before `stop` is not counted.
//!
//! The loop is generic over [`Rings`] (implemented by [`QueueIo`]) so its accounting is unit
//! tested without sockets.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::datapath::counters::bump;
use crate::datapath::placement;
use crate::datapath::xsk::QueueIo;
use crate::datapath::{DropReason, PortId, Processor, Verdict, WorkerCounters};
use crate::flow::Nanos;
use crate::sys;

/// What decides about frames: the [`Processor`] in production, simpler handlers in tests.
pub trait FrameHandler {
    /// Called once per batch, before any `process`, with the batch's time.
    fn begin_batch(&mut self, now: Nanos);
    /// The batch's pre-pass: called on every frame of a receive before the first of them is
    /// processed, in the order they are then processed (nothing by default).
    fn prefetch(&mut self, _frame: &[u8]) {}
    /// Decides about the frame `buf[..*len]` received on `ingress`, rewriting it in place;
    /// `buf[*len..]` is the frame buffer's tailroom, which the frame may grow into (TUN's outer
    /// header, FULLNAT's TOA); `*len` is then the length to transmit.
    fn process(&mut self, now: Nanos, ingress: PortId, buf: &mut [u8], len: &mut usize) -> Verdict;
    /// The worker's counters (rx/tx/batches and drops are bumped by the loop).
    fn counters(&self) -> &WorkerCounters;
    /// The version of the next-hop table loaded by the last `begin_batch`: held frames are
    /// decided again when it changes. A handler without next hops never changes it.
    fn nexthop_version(&self) -> u64 {
        0
    }
}

impl FrameHandler for Processor {
    #[inline]
    fn begin_batch(&mut self, now: Nanos) {
        Processor::begin_batch(self, now)
    }

    #[inline]
    fn prefetch(&mut self, frame: &[u8]) {
        Processor::prefetch(self, frame)
    }

    #[inline]
    fn process(&mut self, now: Nanos, ingress: PortId, buf: &mut [u8], len: &mut usize) -> Verdict {
        Processor::process_buf(self, now, ingress, buf, len)
    }

    #[inline]
    fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    #[inline]
    fn nexthop_version(&self) -> u64 {
        Processor::nexthop_version(self)
    }
}

/// How long a frame whose next hop's MAC is unknown is held: one resolution round (the
/// kernel's first ARP or NDP solicitation and its answer, normally well under a millisecond on
/// a LAN), with room for a loaded control thread, and still far below the 1 s initial TCP
/// retransmission timeout it saves.
pub const NEIGHBOUR_HOLD: Duration = Duration::from_millis(250);
/// Most frames one worker holds at once; a miss beyond that is dropped (`no_neighbour`) at once.
pub const HOLD_CAPACITY: usize = 128;
/// How long an idle worker in [`PollMode::Wakeup`] blocks while it holds frames (it has to see
/// the next-hop table change soon).
const HOLD_POLL: Duration = Duration::from_millis(1);

/// What the ring layer does with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Queue it on this port's TX ring.
    Tx(PortId),
    /// Give the frame back to the free pool.
    Recycle,
    /// Keep the frame aside (its next hop's MAC is being resolved) until `until`; see
    /// [`Rings::retry_held`].
    Hold { until: Nanos },
}

/// Outcome of [`Rings::flush_tx`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxFlush {
    /// Frames placed on TX rings.
    pub sent: u64,
    /// Frames recycled because their TX ring was full.
    pub ring_full: u64,
}

/// The ring operations the loop needs from one queue's sockets (see [`QueueIo`]).
pub trait Rings {
    /// Number of ports (interfaces), i.e. valid [`PortId`]s are `0..num_ports()`.
    fn num_ports(&self) -> usize;
    /// Returns completed TX frames to the free pool and tops up every fill ring from it.
    fn reap_and_refill(&mut self) -> io::Result<()>;
    /// Takes up to `max` frames from `port`'s RX ring and calls `f` twice for each: first with
    /// [`Step::Look`] on every frame taken (the batch's pre-pass: `f` reads, its disposition is
    /// ignored), then with [`Step::Decide`] on each in the same order, with the frame's buffer
    /// (the whole room of the frame) and length, which `f` may change. Returns the number of
    /// frames taken.
    fn receive<F: FnMut(Step, &mut [u8], &mut usize) -> Disposition>(
        &mut self,
        port: PortId,
        max: usize,
        f: F,
    ) -> usize;
    /// Frames kept aside by [`Disposition::Hold`] (at most [`HOLD_CAPACITY`]: the loop never
    /// holds more).
    fn held(&self) -> usize;
    /// Calls `f` on every held frame, oldest first, with the port it was received on, its
    /// deadline, its buffer and its length (as [`Rings::receive`] does), and acts on what `f`
    /// returns: `Tx` and `Recycle` as in `receive`, `Hold` keeps the frame (with that deadline).
    fn retry_held<F: FnMut(PortId, Nanos, &mut [u8], &mut usize) -> Disposition>(&mut self, f: F);
    /// Moves frames queued by [`Rings::receive`] onto their TX rings and kicks the kernel.
    fn flush_tx(&mut self) -> io::Result<TxFlush>;
    /// Whether some TX ring still holds frames the kernel has not taken (more kicks needed).
    fn tx_pending(&mut self) -> bool;
    /// Blocks until a port has frames to receive or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
}

/// Which pass of [`Rings::receive`] a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The pre-pass over the batch's frames: read only ([`FrameHandler::prefetch`]).
    Look,
    /// The frame's decision.
    Decide,
}

/// `datapath.poll`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollMode {
    /// Spin on the rings (lowest latency; one core per worker).
    #[default]
    Busy,
    /// Block in `poll()` when idle (tests, small machines).
    Wakeup,
}

/// How workers run.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    pub poll: PollMode,
    /// Frames taken from each RX ring per batch.
    pub batch_size: usize,
    /// `now` is nanoseconds since this instant.
    pub epoch: Instant,
    /// How long an idle worker blocks in [`PollMode::Wakeup`] (bounds the reaction to `stop`).
    pub idle_timeout: Duration,
}

impl WorkerConfig {
    pub fn new(poll: PollMode, epoch: Instant) -> WorkerConfig {
        WorkerConfig {
            poll,
            batch_size: 64,
            epoch,
            idle_timeout: Duration::from_millis(100),
        }
    }
}

/// A worker that stopped on an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker of queue {queue}: {op} failed: {source}")]
    Io {
        queue: u32,
        op: &'static str,
        source: io::Error,
    },
    #[error("cannot start the worker thread of queue {queue}: {source}")]
    Spawn { queue: u32, source: io::Error },
    #[error("cannot pin the worker of queue {queue} to CPU {cpu}: {source}")]
    Pin {
        queue: u32,
        cpu: usize,
        source: io::Error,
    },
    #[error("no CPU to pin the worker of queue {queue} to")]
    NoCpu { queue: u32 },
    #[error("cannot read the CPUs this process may use: {0}")]
    Affinity(io::Error),
}

/// What the loop does with a verdict, counting drops. Pure: unit tested.
#[inline]
fn dispose(verdict: Verdict, num_ports: usize, counters: &WorkerCounters) -> Disposition {
    match verdict {
        Verdict::Tx(p) if usize::from(p) < num_ports => Disposition::Tx(p),
        Verdict::Tx(_) => {
            counters.count_drop(DropReason::NoRoute);
            Disposition::Recycle
        }
        Verdict::Drop(reason) => {
            counters.count_drop(reason);
            Disposition::Recycle
        }
        Verdict::Pass => {
            // AF_XDP cannot hand a frame back to the kernel; the filter keeps this rare.
            bump(&counters.passed, 1);
            counters.count_drop(DropReason::NotLoadBalancerTraffic);
            Disposition::Recycle
        }
    }
}

/// [`dispose`], except that a frame dropped for an unknown neighbour is held (until `until`)
/// while `room` allows; counts the frames held.
#[inline]
fn dispose_or_hold(
    verdict: Verdict,
    num_ports: usize,
    counters: &WorkerCounters,
    room: &mut usize,
    until: Nanos,
) -> Disposition {
    match verdict {
        Verdict::Drop(DropReason::NoNeighbour) if *room > 0 => {
            *room -= 1;
            bump(&counters.neighbour_held, 1);
            Disposition::Hold { until }
        }
        v => dispose(v, num_ports, counters),
    }
}

/// Decides the held frames again if the next-hop table changed since `seen_version` (then
/// records the new version); drops (`no_neighbour`) those whose time is up.
fn retry_held<R: Rings, H: FrameHandler>(
    rings: &mut R,
    handler: &mut H,
    now: Nanos,
    seen_version: &mut u64,
) {
    let version = handler.nexthop_version();
    if rings.held() == 0 {
        *seen_version = version;
        return;
    }
    let changed = version != *seen_version;
    *seen_version = version;
    let num_ports = rings.num_ports();
    rings.retry_held(|ingress, until, buf, len| {
        if changed {
            match handler.process(now, ingress, buf, len) {
                Verdict::Drop(DropReason::NoNeighbour) if now < until => {
                    Disposition::Hold { until }
                }
                v => dispose(v, num_ports, handler.counters()),
            }
        } else if now >= until {
            handler.counters().count_drop(DropReason::NoNeighbour);
            Disposition::Recycle
        } else {
            Disposition::Hold { until }
        }
    });
}

/// One iteration of the loop. Returns the number of frames received. `seen_version` is the
/// next-hop table version the held frames were last decided with.
fn run_batch<R: Rings, H: FrameHandler>(
    rings: &mut R,
    handler: &mut H,
    now: Nanos,
    batch_size: usize,
    queue: u32,
    seen_version: &mut u64,
) -> Result<usize, WorkerError> {
    let io_err = |op| move |source| WorkerError::Io { queue, op, source };
    handler.begin_batch(now);
    rings
        .reap_and_refill()
        .map_err(io_err("refilling the fill rings"))?;
    // Held frames first: they are older than anything on the RX rings.
    retry_held(rings, handler, now, seen_version);

    let num_ports = rings.num_ports();
    let mut room = HOLD_CAPACITY.saturating_sub(rings.held());
    let hold = Nanos::try_from(NEIGHBOUR_HOLD.as_nanos()).unwrap_or(Nanos::MAX);
    let until = now.saturating_add(hold);
    let mut received = 0;
    for port in 0..num_ports {
        // Ports are counted in `PortId`s (the configuration allows no more).
        let Ok(port) = PortId::try_from(port) else {
            break;
        };
        received += rings.receive(port, batch_size, |step, buf, len| match step {
            Step::Look => {
                handler.prefetch(buf.get(..*len).unwrap_or(buf));
                Disposition::Recycle
            }
            Step::Decide => {
                let verdict = handler.process(now, port, buf, len);
                dispose_or_hold(verdict, num_ports, handler.counters(), &mut room, until)
            }
        });
    }
    let flushed = rings.flush_tx().map_err(io_err("kicking TX"))?;

    let c = handler.counters();
    if flushed.ring_full > 0 {
        for _ in 0..flushed.ring_full {
            c.count_drop(DropReason::TxRingFull);
        }
    }
    bump(&c.rx_packets, received as u64);
    bump(&c.tx_packets, flushed.sent);
    bump(&c.batches, 1);
    if received > 0 {
        bump(&c.busy_batches, 1);
        c.batch_frames.record(received);
    }
    Ok(received)
}

/// What the loop carries from one batch to the next.
#[derive(Clone, Copy, Debug, Default)]
struct LoopState {
    /// The next-hop table version the held frames were last decided with.
    seen_version: u64,
    /// The clock read of the previous batch, if that batch received frames: its busy span ends
    /// at the next read.
    busy_since: Option<Nanos>,
}

impl LoopState {
    /// Ends the previous batch's span at `now`, adding it to `busy_ns` if that batch was busy.
    #[inline]
    fn end_span(&mut self, now: Nanos, counters: &WorkerCounters) {
        if let Some(start) = self.busy_since.take() {
            bump(&counters.busy_ns, now.saturating_sub(start));
        }
    }
}

/// One turn of the loop at `now` (the turn's only clock read): closes the previous batch's busy
/// span, runs a batch, and when it received nothing waits (wakeup) or spins once (busy).
fn turn<R: Rings, H: FrameHandler>(
    rings: &mut R,
    handler: &mut H,
    cfg: &WorkerConfig,
    queue: u32,
    now: Nanos,
    state: &mut LoopState,
) -> Result<(), WorkerError> {
    state.end_span(now, handler.counters());
    let batch_size = cfg.batch_size.max(1);
    let received = run_batch(
        rings,
        handler,
        now,
        batch_size,
        queue,
        &mut state.seen_version,
    )?;
    if received > 0 {
        state.busy_since = Some(now);
    } else if cfg.poll == PollMode::Wakeup && !rings.tx_pending() {
        let timeout = if rings.held() > 0 {
            cfg.idle_timeout.min(HOLD_POLL)
        } else {
            cfg.idle_timeout
        };
        rings.wait(timeout).map_err(|source| WorkerError::Io {
            queue,
            op: "poll",
            source,
        })?;
    } else {
        std::hint::spin_loop();
    }
    Ok(())
}

/// Runs the loop on `rings` until `stop` is set.
pub fn run_worker<R: Rings, H: FrameHandler>(
    queue: u32,
    rings: &mut R,
    handler: &mut H,
    cfg: &WorkerConfig,
    stop: &AtomicBool,
) -> Result<(), WorkerError> {
    let mut state = LoopState {
        seen_version: handler.nexthop_version(),
        busy_since: None,
    };
    while !stop.load(Ordering::Relaxed) {
        // u64 nanoseconds last 584 years of uptime.
        let now = Nanos::try_from(cfg.epoch.elapsed().as_nanos()).unwrap_or(Nanos::MAX);
        turn(rings, handler, cfg, queue, now, &mut state)?;
    }
    Ok(())
}

/// Starts one thread per queue (`xvs-q<queue>`), each pinned to the CPU the default placement
/// gives it ([`placement::place`] with `auto`: never CPU 0 when the calling thread may use
/// another); see [`spawn_pinned_workers`].
pub fn spawn_workers<H: FrameHandler + Send + 'static>(
    workers: Vec<(QueueIo, H)>,
    cfg: WorkerConfig,
    stop: Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<Result<(), WorkerError>>>, WorkerError> {
    let allowed = sys::thread_cpus().map_err(WorkerError::Affinity)?;
    let cpus = placement::place(&allowed, None, workers.len()).map_or(Vec::new(), |p| p.workers);
    spawn_pinned_workers(workers, &cpus, cfg, stop)
}

/// Starts one thread per queue (`xvs-q<queue>`), the i-th pinned to `cpus[i]`. Each thread pins
/// itself before its first batch and reports back: a worker that cannot be pinned (or has no
/// CPU in `cpus`) is a start-up error, not a silently unpinned worker, and the workers already
/// started are then stopped and joined. The threads run until `stop` is set; joining one
/// returns its outcome. Threads inherit the caller's network namespace.
pub fn spawn_pinned_workers<H: FrameHandler + Send + 'static>(
    workers: Vec<(QueueIo, H)>,
    cpus: &[usize],
    cfg: WorkerConfig,
    stop: Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<Result<(), WorkerError>>>, WorkerError> {
    let mut handles = Vec::with_capacity(workers.len());
    for (i, (mut io, mut handler)) in workers.into_iter().enumerate() {
        let queue = io.queue();
        let started = match cpus.get(i).copied() {
            Some(cpu) => spawn_one(queue, cpu, stop.clone(), move |stop| {
                run_worker(queue, &mut io, &mut handler, &cfg, stop)
            }),
            None => Err(WorkerError::NoCpu { queue }),
        };
        match started {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
    }
    Ok(handles)
}

/// Starts the thread of `queue`, which pins itself to `cpu` and then runs `work`; returns once
/// the thread is pinned, or the reason it could not be.
fn spawn_one<F>(
    queue: u32,
    cpu: usize,
    stop: Arc<AtomicBool>,
    work: F,
) -> Result<JoinHandle<Result<(), WorkerError>>, WorkerError>
where
    F: FnOnce(&AtomicBool) -> Result<(), WorkerError> + Send + 'static,
{
    let (pinned_tx, pinned_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(format!("xvs-q{queue}"))
        .spawn(move || {
            let pinned = sys::set_thread_cpus(&[cpu]);
            let ok = pinned.is_ok();
            // The spawner waits for this; it reports a failure.
            let _ = pinned_tx.send(pinned);
            if !ok {
                return Ok(());
            }
            let r = work(&stop);
            if let Err(e) = &r {
                log::error!("{e}");
            }
            r
        })
        .map_err(|source| WorkerError::Spawn { queue, source })?;
    let pinned = pinned_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the thread ended before it was pinned")));
    match pinned {
        Ok(()) => Ok(handle),
        Err(source) => {
            let _ = handle.join();
            Err(WorkerError::Pin { queue, cpu, source })
        }
    }
}

#[cfg(test)]
mod spawn_tests {
    use super::*;

    #[test]
    fn a_worker_runs_on_its_cpu() {
        let cpu = *sys::thread_cpus().unwrap().last().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = spawn_one(7, cpu, stop, move |_| {
            assert_eq!(sys::thread_cpus().unwrap(), vec![cpu]);
            assert_eq!(std::thread::current().name(), Some("xvs-q7"));
            Ok(())
        })
        .unwrap();
        h.join().unwrap().unwrap();
    }

    #[test]
    fn a_worker_that_cannot_be_pinned_is_an_error_and_never_runs() {
        let stop = Arc::new(AtomicBool::new(false));
        let e = spawn_one(3, 1023, stop, |_| panic!("ran unpinned")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot pin the worker of queue 3 to CPU 1023: "),
            "{e}"
        );
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and fixed
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Rings over plain vectors: frames waiting per port, frames sent per port, a TX capacity.
    struct MockRings {
        rx: Vec<VecDeque<Vec<u8>>>,
        staged: Vec<Vec<Vec<u8>>>,
        sent: Vec<Vec<Vec<u8>>>,
        tx_capacity: usize,
        recycled: usize,
        held: Vec<(Vec<u8>, PortId, Nanos)>,
        /// The timeout of every `wait`.
        waits: Vec<Duration>,
    }

    impl MockRings {
        fn new(ports: usize, tx_capacity: usize) -> Self {
            MockRings {
                rx: vec![VecDeque::new(); ports],
                staged: vec![Vec::new(); ports],
                sent: vec![Vec::new(); ports],
                tx_capacity,
                recycled: 0,
                held: Vec::new(),
                waits: Vec::new(),
            }
        }

        /// Puts a decided frame where its disposition says.
        fn place(&mut self, frame: Vec<u8>, ingress: PortId, d: Disposition) {
            match d {
                Disposition::Tx(p) => self.staged[usize::from(p)].push(frame),
                Disposition::Recycle => self.recycled += 1,
                Disposition::Hold { until } => self.held.push((frame, ingress, until)),
            }
        }
    }

    /// Opens `frame` with 256 bytes of room, lets `f` decide, trims it to the length `f` left.
    fn decide<F: FnMut(&mut [u8], &mut usize) -> Disposition>(
        frame: &mut Vec<u8>,
        f: &mut F,
    ) -> Disposition {
        let mut len = frame.len();
        frame.resize(len + 256, 0);
        let d = f(frame, &mut len);
        frame.truncate(len);
        d
    }

    impl Rings for MockRings {
        fn num_ports(&self) -> usize {
            self.rx.len()
        }
        fn reap_and_refill(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn receive<F: FnMut(Step, &mut [u8], &mut usize) -> Disposition>(
            &mut self,
            port: PortId,
            max: usize,
            mut f: F,
        ) -> usize {
            for frame in self.rx[usize::from(port)].iter_mut().take(max) {
                decide(frame, &mut |buf: &mut [u8], len: &mut usize| {
                    f(Step::Look, buf, len)
                });
            }
            let mut f = |buf: &mut [u8], len: &mut usize| f(Step::Decide, buf, len);
            let mut n = 0;
            while n < max {
                let Some(mut frame) = self.rx[usize::from(port)].pop_front() else {
                    break;
                };
                let d = decide(&mut frame, &mut f);
                self.place(frame, port, d);
                n += 1;
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
            for (mut frame, ingress, until) in std::mem::take(&mut self.held) {
                let d = decide(&mut frame, &mut |buf: &mut [u8], len: &mut usize| {
                    f(ingress, until, buf, len)
                });
                self.place(frame, ingress, d);
            }
        }
        fn flush_tx(&mut self) -> io::Result<TxFlush> {
            let mut out = TxFlush::default();
            for p in 0..self.staged.len() {
                for frame in self.staged[p].drain(..) {
                    if self.sent[p].len() < self.tx_capacity {
                        self.sent[p].push(frame);
                        out.sent += 1;
                    } else {
                        self.recycled += 1;
                        out.ring_full += 1;
                    }
                }
            }
            Ok(out)
        }
        fn tx_pending(&mut self) -> bool {
            false
        }
        fn wait(&mut self, timeout: Duration) -> io::Result<()> {
            self.waits.push(timeout);
            Ok(())
        }
    }

    /// Byte 0 of a frame is the verdict: 0/1 = Tx(0/1), 2 = Drop(TtlExceeded), 3 = Pass,
    /// 9 = Tx(9) (no such port). Byte 1 is overwritten with the ingress port.
    #[derive(Default)]
    struct ByteHandler {
        counters: WorkerCounters,
        batches: Vec<Nanos>,
    }

    impl FrameHandler for ByteHandler {
        fn begin_batch(&mut self, now: Nanos) {
            self.batches.push(now);
        }
        fn process(
            &mut self,
            _now: Nanos,
            ingress: PortId,
            frame: &mut [u8],
            _len: &mut usize,
        ) -> Verdict {
            frame[1] = ingress;
            match frame[0] {
                0 => Verdict::Tx(0),
                1 => Verdict::Tx(1),
                2 => Verdict::Drop(DropReason::TtlExceeded),
                3 => Verdict::Pass,
                _ => Verdict::Tx(9),
            }
        }
        fn counters(&self) -> &WorkerCounters {
            &self.counters
        }
    }

    #[test]
    fn verdicts_move_frames_and_count() {
        let mut rings = MockRings::new(2, 100);
        for v in [1u8, 1, 2, 3, 9] {
            rings.rx[0].push_back(vec![v, 0xaa]);
        }
        rings.rx[1].push_back(vec![0, 0xaa]);
        let mut h = ByteHandler::default();
        let n = run_batch(&mut rings, &mut h, 42, 64, 0, &mut 0).unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.batches, vec![42]);
        // Same buffers, rewritten in place, on the egress port.
        assert_eq!(rings.sent[1], vec![vec![1, 0], vec![1, 0]]);
        assert_eq!(rings.sent[0], vec![vec![0, 1]]);
        assert_eq!(rings.recycled, 3);
        let c = &h.counters;
        assert_eq!(c.rx_packets.load(Ordering::Relaxed), 6);
        assert_eq!(c.tx_packets.load(Ordering::Relaxed), 3);
        assert_eq!(c.drops(DropReason::TtlExceeded), 1);
        assert_eq!(c.drops(DropReason::NotLoadBalancerTraffic), 1);
        assert_eq!(c.passed.load(Ordering::Relaxed), 1);
        assert_eq!(c.drops(DropReason::NoRoute), 1);
        assert_eq!(c.batches.load(Ordering::Relaxed), 1);
        assert_eq!(c.busy_batches.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn full_tx_ring_is_a_counted_drop() {
        let mut rings = MockRings::new(2, 2);
        for _ in 0..5 {
            rings.rx[0].push_back(vec![1, 0]);
        }
        let mut h = ByteHandler::default();
        run_batch(&mut rings, &mut h, 0, 64, 0, &mut 0).unwrap();
        assert_eq!(rings.sent[1].len(), 2);
        assert_eq!(h.counters.drops(DropReason::TxRingFull), 3);
        assert_eq!(h.counters.tx_packets.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn batch_size_bounds_each_port_and_idle_batches_are_not_busy() {
        let mut rings = MockRings::new(1, 100);
        for _ in 0..10 {
            rings.rx[0].push_back(vec![0, 0]);
        }
        let mut h = ByteHandler::default();
        assert_eq!(run_batch(&mut rings, &mut h, 1, 4, 0, &mut 0).unwrap(), 4);
        assert_eq!(run_batch(&mut rings, &mut h, 2, 4, 0, &mut 0).unwrap(), 4);
        assert_eq!(run_batch(&mut rings, &mut h, 3, 4, 0, &mut 0).unwrap(), 2);
        assert_eq!(run_batch(&mut rings, &mut h, 4, 4, 0, &mut 0).unwrap(), 0);
        assert_eq!(h.counters.batches.load(Ordering::Relaxed), 4);
        assert_eq!(h.counters.busy_batches.load(Ordering::Relaxed), 3);
        assert_eq!(h.batches, vec![1, 2, 3, 4]);
    }

    /// Drives `turn` with a fake clock: `(now, frames waiting before the turn)` per turn.
    fn turns(poll: PollMode, script: &[(Nanos, usize)]) -> (MockRings, ByteHandler) {
        let mut rings = MockRings::new(1, 1000);
        let mut h = ByteHandler::default();
        let cfg = WorkerConfig::new(poll, Instant::now());
        let mut state = LoopState::default();
        for &(now, frames) in script {
            for _ in 0..frames {
                rings.rx[0].push_back(vec![0, 0]);
            }
            turn(&mut rings, &mut h, &cfg, 0, now, &mut state).unwrap();
        }
        (rings, h)
    }

    #[test]
    fn a_batch_with_frames_is_busy_until_the_next_clock_read() {
        for poll in [PollMode::Busy, PollMode::Wakeup] {
            let script = [
                (100, 3),
                (150, 0),
                (1_000, 1),
                (1_010, 0),
                (5_000, 0),
                (9_000, 0),
            ];
            let (rings, h) = turns(poll, &script);
            let c = &h.counters;
            // (150 - 100) + (1010 - 1000): the idle turns and whatever followed them are not.
            assert_eq!(c.busy_ns.load(Ordering::Relaxed), 60, "{poll:?}");
            let first_to_last = script[script.len() - 1].0 - script[0].0;
            assert!(c.busy_ns.load(Ordering::Relaxed) <= first_to_last);
            let f = c.batch_frames.read();
            assert_eq!(f.buckets, [1, 0, 1, 0, 0, 0, 0, 0], "{poll:?}");
            assert_eq!((f.sum, f.count()), (4, 2));
            assert_eq!(c.busy_batches.load(Ordering::Relaxed), f.count());
            // Wakeup: a wait after each of the 4 empty batches, none after a busy one.
            let waits = if poll == PollMode::Wakeup { 4 } else { 0 };
            assert_eq!(rings.waits.len(), waits, "{poll:?}");
        }
    }

    #[test]
    fn back_to_back_busy_batches_add_up_to_the_time_between_them() {
        // Saturated: every batch full (64 frames), 10 µs apart; busy time is all of it but the
        // last batch's span (ended by no further clock read).
        let script: Vec<(Nanos, usize)> = (0..100).map(|i| (i * 10_000, 64)).collect();
        let (_, h) = turns(PollMode::Busy, &script);
        assert_eq!(h.counters.busy_ns.load(Ordering::Relaxed), 99 * 10_000);
        let f = h.counters.batch_frames.read();
        assert_eq!(f.buckets[6], 100);
        assert_eq!(f.sum, 6_400);
    }

    #[test]
    fn an_idle_worker_is_never_busy() {
        let script: Vec<(Nanos, usize)> = (0..50).map(|i| (i * 1_000_000, 0)).collect();
        for poll in [PollMode::Busy, PollMode::Wakeup] {
            let (_, h) = turns(poll, &script);
            assert_eq!(h.counters.busy_ns.load(Ordering::Relaxed), 0);
            assert_eq!(h.counters.batch_frames.read(), Default::default());
            assert_eq!(h.counters.batches.load(Ordering::Relaxed), 50);
        }
    }

    #[test]
    fn run_worker_stops_when_told() {
        let mut rings = MockRings::new(1, 100);
        rings.rx[0].push_back(vec![0, 0]);
        let mut h = ByteHandler::default();
        let stop = AtomicBool::new(false);
        let cfg = WorkerConfig::new(PollMode::Wakeup, Instant::now());
        // The handler stops the loop from inside after the first batch.
        struct StopAfterFirst<'a> {
            inner: &'a mut ByteHandler,
            stop: &'a AtomicBool,
        }
        impl FrameHandler for StopAfterFirst<'_> {
            fn begin_batch(&mut self, now: Nanos) {
                self.inner.begin_batch(now);
                self.stop.store(true, Ordering::Relaxed);
            }
            fn process(
                &mut self,
                now: Nanos,
                ingress: PortId,
                buf: &mut [u8],
                len: &mut usize,
            ) -> Verdict {
                self.inner.process(now, ingress, buf, len)
            }
            fn counters(&self) -> &WorkerCounters {
                self.inner.counters()
            }
        }
        let mut s = StopAfterFirst {
            inner: &mut h,
            stop: &stop,
        };
        run_worker(0, &mut rings, &mut s, &cfg, &stop).unwrap();
        assert_eq!(h.batches.len(), 1);
        assert_eq!(rings.sent[0].len(), 1);
    }

    /// Frames `[dst, ..]`: Tx(1) once `dst` is in `known`, else Drop(NoNeighbour) (as the
    /// processor does for a next hop without MAC); the version is bumped with each change.
    #[derive(Default)]
    struct NeighbourHandler {
        counters: WorkerCounters,
        known: Vec<u8>,
        version: u64,
        decided: usize,
    }

    impl NeighbourHandler {
        fn learn(&mut self, dst: u8) {
            self.known.push(dst);
            self.version += 1;
        }
    }

    impl FrameHandler for NeighbourHandler {
        fn begin_batch(&mut self, _now: Nanos) {}
        fn process(
            &mut self,
            _now: Nanos,
            _in: PortId,
            buf: &mut [u8],
            _len: &mut usize,
        ) -> Verdict {
            self.decided += 1;
            if self.known.contains(&buf[0]) {
                buf[1] = 0xee; // "rewritten"
                Verdict::Tx(1)
            } else {
                Verdict::Drop(DropReason::NoNeighbour)
            }
        }
        fn counters(&self) -> &WorkerCounters {
            &self.counters
        }
        fn nexthop_version(&self) -> u64 {
            self.version
        }
    }

    const MS: Nanos = 1_000_000;

    #[test]
    fn a_frame_waiting_for_its_neighbour_leaves_once_the_table_changes() {
        let mut rings = MockRings::new(2, 100);
        let mut h = NeighbourHandler::default();
        let mut seen = h.nexthop_version();
        rings.rx[0].push_back(vec![7, 0]);
        run_batch(&mut rings, &mut h, 0, 64, 0, &mut seen).unwrap();
        assert_eq!(rings.held(), 1);
        assert!(rings.sent[1].is_empty());
        assert_eq!(rings.recycled, 0);
        // Nothing changed: the frame is not decided again (no repeated misses), still held.
        run_batch(&mut rings, &mut h, 5 * MS, 64, 0, &mut seen).unwrap();
        assert_eq!((h.decided, rings.held()), (1, 1));
        // Another neighbour was learnt: decided again, still unknown, still held.
        h.learn(8);
        run_batch(&mut rings, &mut h, 6 * MS, 64, 0, &mut seen).unwrap();
        assert_eq!((h.decided, rings.held()), (2, 1));
        // Its own neighbour: sent, rewritten, and never counted as a drop.
        h.learn(7);
        run_batch(&mut rings, &mut h, 7 * MS, 64, 0, &mut seen).unwrap();
        assert_eq!(rings.held(), 0);
        assert_eq!(rings.sent[1], vec![vec![7, 0xee]]);
        assert_eq!(h.counters.drops(DropReason::NoNeighbour), 0);
        assert_eq!(h.counters.total_drops(), 0);
        assert_eq!(h.counters.neighbour_held.load(Ordering::Relaxed), 1);
        assert_eq!(h.counters.tx_packets.load(Ordering::Relaxed), 1);
        assert_eq!(h.counters.rx_packets.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn held_frames_leave_before_newer_frames() {
        let mut rings = MockRings::new(2, 100);
        let mut h = NeighbourHandler::default();
        let mut seen = h.nexthop_version();
        rings.rx[0].push_back(vec![7, 1]);
        run_batch(&mut rings, &mut h, 0, 64, 0, &mut seen).unwrap();
        h.learn(7);
        rings.rx[0].push_back(vec![7, 2]);
        run_batch(&mut rings, &mut h, MS, 64, 0, &mut seen).unwrap();
        assert_eq!(rings.sent[1], vec![vec![7, 0xee], vec![7, 0xee]]);
        assert_eq!(h.counters.neighbour_held.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_unresolved_frame_is_dropped_as_no_neighbour_when_its_time_is_up() {
        let hold = NEIGHBOUR_HOLD.as_nanos() as Nanos;
        for change in [false, true] {
            let mut rings = MockRings::new(2, 100);
            let mut h = NeighbourHandler::default();
            let mut seen = h.nexthop_version();
            rings.rx[0].push_back(vec![7, 0]);
            run_batch(&mut rings, &mut h, 10 * MS, 64, 0, &mut seen).unwrap();
            run_batch(&mut rings, &mut h, 10 * MS + hold - 1, 64, 0, &mut seen).unwrap();
            assert_eq!(rings.held(), 1, "held up to its deadline");
            assert_eq!(h.counters.drops(DropReason::NoNeighbour), 0);
            if change {
                h.learn(8); // decided again at the deadline, still unknown
            }
            run_batch(&mut rings, &mut h, 10 * MS + hold, 64, 0, &mut seen).unwrap();
            assert_eq!(rings.held(), 0);
            assert_eq!(rings.recycled, 1);
            assert_eq!(h.counters.drops(DropReason::NoNeighbour), 1);
            assert!(rings.sent[1].is_empty());
        }
    }

    #[test]
    fn misses_beyond_the_hold_capacity_are_dropped_at_once() {
        let mut rings = MockRings::new(2, 1000);
        let mut h = NeighbourHandler::default();
        let mut seen = h.nexthop_version();
        for _ in 0..HOLD_CAPACITY + 10 {
            rings.rx[0].push_back(vec![7, 0]);
        }
        let batch = HOLD_CAPACITY + 10;
        run_batch(&mut rings, &mut h, 0, batch, 0, &mut seen).unwrap();
        assert_eq!(rings.held(), HOLD_CAPACITY);
        assert_eq!(h.counters.drops(DropReason::NoNeighbour), 10);
        assert_eq!(rings.recycled, 10);
        h.learn(7);
        run_batch(&mut rings, &mut h, MS, batch, 0, &mut seen).unwrap();
        assert_eq!(rings.sent[1].len(), HOLD_CAPACITY);
        assert_eq!(rings.held(), 0);
    }

    #[test]
    fn a_worker_holding_frames_wakes_up_soon() {
        // Wakeup mode: with a frame held, the idle wait is HOLD_POLL, not the idle timeout.
        struct StopAfter<'a> {
            inner: NeighbourHandler,
            batches: usize,
            stop: &'a AtomicBool,
        }
        impl FrameHandler for StopAfter<'_> {
            fn begin_batch(&mut self, _now: Nanos) {
                self.batches -= 1;
                if self.batches == 0 {
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            fn process(&mut self, n: Nanos, i: PortId, b: &mut [u8], l: &mut usize) -> Verdict {
                self.inner.process(n, i, b, l)
            }
            fn counters(&self) -> &WorkerCounters {
                self.inner.counters()
            }
        }
        let mut rings = MockRings::new(2, 100);
        rings.rx[0].push_back(vec![7, 0]);
        let stop = AtomicBool::new(false);
        let mut h = StopAfter {
            inner: NeighbourHandler::default(),
            batches: 2,
            stop: &stop,
        };
        let cfg = WorkerConfig::new(PollMode::Wakeup, Instant::now());
        run_worker(0, &mut rings, &mut h, &cfg, &stop).unwrap();
        // Batch 1 received the frame (no wait); batch 2 (which stops the loop) was idle while
        // holding it.
        assert_eq!(rings.waits, vec![HOLD_POLL]);
        assert_eq!(rings.held(), 1);
    }
}
