//! [`SyncEndpoint`]: one box's end of connection sync, sans-IO. The driver
//! ([`super::driver`]) feeds it local records, received datagrams and the time, and sends what
//! it yields ([`SyncEndpoint::poll_transmit`]); it reads no clock and opens no socket, so tests
//! run two of them over a simulated network with a clock they advance.
//!
//! What it does:
//! - **Live records**, both directions: every local change ([`SyncEndpoint::push_local`],
//!   drained from the workers' rings) is batched into one message of as many records as the
//!   wire carries ([`super::wire::CONN_V4_PER_MESSAGE`]…), sealed when the next record would
//!   not fit or [`EndpointConfig::flush_interval`] after the batch's first record, and sent to
//!   every unicast peer (or once to the multicast group). Every box sends what it owns and
//!   installs what its peers send ([`RecordSink`]).
//! - **Receive**: a unicast box drops datagrams from addresses that are not its peers
//!   ([`SyncError::UnknownPeer`]); then [`Opener::open_from`] checks length, tag, records, own
//!   sender id and replay window; every drop is counted by [`SyncError`] reason. A records
//!   message is handed to the sink record by record (refusals counted by
//!   [`InstallRefusal`]); a dump request starts a [`DumpPager`] toward its sender; a dump end
//!   marks that peer in sync.
//! - **Joining**: at start the endpoint asks its peers for a full dump (each unicast peer, or
//!   the multicast group), again every [`EndpointConfig::request_interval`] while no dump end
//!   arrived from it, at most [`EndpointConfig::request_tries`] times.
//! - **Dumps** go out in bursts of [`EndpointConfig::dump_burst`] messages, the next burst
//!   [`EndpointConfig::dump_pause`] later, and only while the outgoing queue is less than half
//!   full, so a dump never starves the live records. A repeated request of a dump in progress
//!   (same requester epoch) is ignored; one from a restarted requester starts over.
//!
//! Invariants: every queue is bounded. The outgoing queue holds at most
//! [`EndpointConfig::queue_limit`] datagrams; a local record that finds the batch full and no
//! room to seal it is dropped and counted (`dropped`), never waited for. The batch holds one
//! message. Peers are the configured ones (unicast) or at most [`MAX_PEERS`] discovered ones
//! (multicast, added only once a message from them authenticated). One dump per peer at a time.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::auth::Key;
use super::channel::{Opener, Sealer};
use super::error::SyncError;
use super::pager::{DumpPager, Page};
use super::record::SyncRecord;
use super::replay::MAX_PEERS;
use super::tables::{DumpSource, InstallRefusal, RecordSink, RecordSource};
use super::wire::record::{shape, MAX_TIMEOUT_MS, MIN_RECORD_LEN};
use super::wire::{MessageType, SyncMessage, MAX_BODY_LEN, MAX_MESSAGE_LEN};
use crate::flow::Nanos;

/// The IPv4 multicast group when `sync.peers` is empty: IPVS's sync daemon's, in the
/// link-local block 224.0.0.0/24 (never forwarded by a router), sent with TTL 1.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The IPv6 multicast group when `sync.peers` is empty and the sync interface has no IPv4
/// address: link-local scope (`ff02::`, never forwarded), group id 0x8848 after the port, not
/// assigned by IANA; sent with hop limit 1.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x8848);

/// Local records drained from the source per call of [`SyncEndpoint::drain`].
pub const DRAIN_BUDGET: usize = 4096;
/// Events kept for the driver's log ([`SyncEndpoint::poll_event`]); older ones are dropped.
const EVENT_LIMIT: usize = 64;

const MS: Nanos = 1_000_000;

/// This box's sender id from the address it syncs from: an IPv4 address is its own id (two
/// boxes on one link never share one), an IPv6 address its 32-bit FNV-1a hash.
pub fn sender_id(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => a.octets().iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        }),
    }
}

/// Where this box's live records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peers {
    /// Each of these (the configured peers at the sync port).
    Unicast(Vec<SocketAddr>),
    /// This group and port; peers are learnt from what they send.
    Multicast(SocketAddr),
}

/// The endpoint's identity and pacing.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// This box's sender id ([`sender_id`]).
    pub sender: u32,
    /// This run's epoch: wall-clock nanoseconds at start.
    pub epoch: u64,
    pub peers: Peers,
    /// The longest a local record waits for its batch to fill.
    pub flush_interval: Nanos,
    /// The most datagrams waiting to be sent.
    pub queue_limit: usize,
    /// Dump messages per burst.
    pub dump_burst: usize,
    /// Time between two bursts of a dump.
    pub dump_pause: Nanos,
    /// Time between two dump requests to a peer that has not ended its dump.
    pub request_interval: Nanos,
    /// Dump requests sent to a peer at most.
    pub request_tries: u32,
}

impl EndpointConfig {
    /// The defaults: flush after 20 ms, 1024 datagrams queued, dumps in bursts of 32 messages
    /// every 2 ms (about 670 000 IPv4 connections a second, 23 MB/s), a dump request every
    /// second, 10 at most.
    pub fn new(sender: u32, epoch: u64, peers: Peers) -> EndpointConfig {
        EndpointConfig {
            sender,
            epoch,
            peers,
            flush_interval: 20 * MS,
            queue_limit: 1024,
            dump_burst: 32,
            dump_pause: 2 * MS,
            request_interval: 1000 * MS,
            request_tries: 10,
        }
    }
}

/// One datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
    peer: usize,
    records: u64,
}

/// What happened that the driver logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer's full dump ended: this box holds its entries.
    InSync(IpAddr),
    /// A full dump was sent to a peer (its dump end queued).
    DumpSent { peer: IpAddr, records: u64 },
    /// No dump end from `peer` after every request.
    GaveUp(IpAddr),
    /// A message authenticated but carried this box's sender id.
    OwnSender(IpAddr),
}

/// One peer (or the multicast group) as `xvs ctl sync` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    pub address: IpAddr,
    /// The multicast group (where live records and dump requests go), not a box.
    pub group: bool,
    /// The sender id its messages carry, once one authenticated.
    pub sender: Option<u32>,
    pub messages_sent: u64,
    pub records_sent: u64,
    pub messages_received: u64,
    pub records_received: u64,
    /// When its last message was accepted.
    pub last_received: Option<Nanos>,
    /// Its full dump ended here (for the group: some peer's did).
    pub in_sync: bool,
    pub dump_requests_sent: u64,
    /// Full dumps this box sent it.
    pub dumps_sent: u64,
    /// Datagrams to it the socket refused.
    pub send_errors: u64,
}

impl PeerStats {
    fn new(address: IpAddr, group: bool) -> PeerStats {
        PeerStats {
            address,
            group,
            sender: None,
            messages_sent: 0,
            records_sent: 0,
            messages_received: 0,
            records_received: 0,
            last_received: None,
            in_sync: false,
            dump_requests_sent: 0,
            dumps_sent: 0,
            send_errors: 0,
        }
    }
}

/// Everything the endpoint counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStats {
    pub sender: u32,
    pub epoch: u64,
    /// The group, in multicast mode.
    pub multicast: Option<SocketAddr>,
    pub peers: Vec<PeerStats>,
    /// Received messages dropped, by [`SyncError::index`].
    pub errors: [u64; SyncError::COUNT],
    /// Peer records not installed, by [`InstallRefusal::index`].
    pub refused: [u64; InstallRefusal::COUNT],
    /// Peer records installed.
    pub installed: u64,
    /// Local records dropped: the outgoing queue was full.
    pub dropped: u64,
    /// Local records the wire cannot carry (mixed families, a timeout out of range).
    pub unencodable: u64,
    /// Datagrams waiting to be sent.
    pub queued: usize,
}

struct Peer {
    stats: PeerStats,
    /// Where live records go (unicast peers, the group); `None` for a learnt multicast peer.
    dest: Option<SocketAddr>,
    /// Dump requests still to send and when the next one is due.
    request: Option<(u32, Nanos)>,
}

struct Dump {
    peer: usize,
    to: SocketAddr,
    /// The requester's epoch (a request from a restarted requester starts over).
    epoch: u64,
    pager: DumpPager<Box<dyn Iterator<Item = SyncRecord> + Send>>,
    resume_at: Nanos,
}

/// One box's end of connection sync (see the module documentation).
pub struct SyncEndpoint {
    cfg: EndpointConfig,
    sealer: Sealer,
    opener: Opener,
    peers: Vec<Peer>,
    multicast: bool,
    batch: Vec<SyncRecord>,
    batch_bytes: usize,
    batch_since: Option<Nanos>,
    queue: VecDeque<Transmit>,
    dumps: Vec<Dump>,
    scratch: Vec<u8>,
    inbox: Vec<SyncRecord>,
    events: VecDeque<Event>,
    errors: [u64; SyncError::COUNT],
    refused: [u64; InstallRefusal::COUNT],
    installed: u64,
    dropped: u64,
    unencodable: u64,
}

impl std::fmt::Debug for SyncEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEndpoint")
            .field("sender", &self.cfg.sender)
            .field("peers", &self.peers.len())
            .field("queued", &self.queue.len())
            .field("dumps", &self.dumps.len())
            .finish_non_exhaustive()
    }
}

/// The bytes `r` takes on the wire, or `None` when the wire cannot carry it.
fn wire_len(r: &SyncRecord) -> Option<usize> {
    let timeout = match r {
        SyncRecord::Conn(c) => c.timeout_ms,
        SyncRecord::Template(t) => t.timeout_ms,
    };
    if timeout > MAX_TIMEOUT_MS {
        return None;
    }
    shape(r).ok().map(|(_, len)| len)
}

impl SyncEndpoint {
    /// An endpoint that asks its peers for a full dump at its first [`handle_timeout`]
    /// (due at `now`).
    ///
    /// [`handle_timeout`]: SyncEndpoint::handle_timeout
    pub fn new(cfg: EndpointConfig, key: Key, now: Nanos) -> SyncEndpoint {
        let request = Some((cfg.request_tries, now)).filter(|(n, _)| *n > 0);
        let (peers, multicast) = match &cfg.peers {
            Peers::Unicast(list) => (
                list.iter()
                    .map(|a| Peer {
                        stats: PeerStats::new(a.ip().to_canonical(), false),
                        dest: Some(*a),
                        request,
                    })
                    .collect(),
                false,
            ),
            Peers::Multicast(group) => (
                vec![Peer {
                    stats: PeerStats::new(group.ip(), true),
                    dest: Some(*group),
                    request,
                }],
                true,
            ),
        };
        SyncEndpoint {
            sealer: Sealer::new(key.clone(), cfg.sender, cfg.epoch),
            opener: Opener::new(key, MAX_PEERS),
            peers,
            multicast,
            batch: Vec::new(),
            batch_bytes: 0,
            batch_since: None,
            queue: VecDeque::new(),
            dumps: Vec::new(),
            scratch: vec![0; MAX_MESSAGE_LEN],
            inbox: Vec::new(),
            events: VecDeque::new(),
            errors: [0; SyncError::COUNT],
            refused: [0; InstallRefusal::COUNT],
            installed: 0,
            dropped: 0,
            unencodable: 0,
            cfg,
        }
    }

    /// Adds one local record to the batch; `false` when it was dropped (the batch was full and
    /// the outgoing queue had no room for it: counted in `dropped`; or the wire cannot carry
    /// it: counted in `unencodable`).
    pub fn push_local(&mut self, r: SyncRecord, now: Nanos) -> bool {
        let Some(len) = wire_len(&r) else {
            self.unencodable += 1;
            return false;
        };
        if self.batch_bytes + len > MAX_BODY_LEN && !self.seal_batch() {
            self.dropped += 1;
            return false;
        }
        self.batch.push(r);
        self.batch_bytes += len;
        self.batch_since.get_or_insert(now);
        if self.batch_bytes + MIN_RECORD_LEN > MAX_BODY_LEN {
            // Nothing more fits: seal now if there is room (else at the next chance).
            self.seal_batch();
        }
        true
    }

    /// Drains up to [`DRAIN_BUDGET`] records from `source` into the batch.
    pub fn drain(&mut self, source: &mut dyn RecordSource, now: Nanos) -> usize {
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.clear();
        let n = source.drain_into(&mut inbox, DRAIN_BUDGET);
        for r in inbox.drain(..) {
            self.push_local(r, now);
        }
        self.inbox = inbox;
        n
    }

    /// Handles a datagram `bytes` from `from` received at `now`: checks it, installs its
    /// records into `sink`, starts a dump from `dump` for a dump request, marks the peer in
    /// sync at its dump end. Every drop is counted by reason.
    pub fn handle_datagram(
        &mut self,
        now: Nanos,
        from: SocketAddr,
        bytes: &[u8],
        sink: &mut dyn RecordSink,
        dump: &mut dyn DumpSource,
    ) {
        let ip = from.ip().to_canonical();
        let known = self.peer_of(ip);
        if !self.multicast && known.is_none() {
            return self.count(SyncError::UnknownPeer);
        }
        let msg = match self.opener.open_from(bytes, self.cfg.sender) {
            Ok(m) => m,
            Err(e) => {
                if e == SyncError::OwnSender {
                    self.event(Event::OwnSender(ip));
                }
                return self.count(e);
            }
        };
        let Some(p) = known.or_else(|| self.learn(ip)) else {
            return self.count(SyncError::TooManyPeers);
        };
        let h = msg.header;
        let s = &mut self.peers[p].stats;
        s.sender = Some(h.sender);
        s.messages_received += 1;
        s.last_received = Some(now);
        match h.msg_type {
            MessageType::Records => {
                s.records_received += msg.records.len() as u64;
                for r in msg.records {
                    match sink.install(&r, now) {
                        Ok(()) => self.installed += 1,
                        Err(why) => self.refused[why.index()] += 1,
                    }
                }
            }
            MessageType::DumpRequest => self.start_dump(p, from, h.epoch, now, dump),
            MessageType::DumpEnd => self.dump_ended(p),
        }
    }

    /// Acts on what is due at `now`: seals a batch that waited long enough, sends the dump
    /// requests due, sends the next burst of each dump due.
    pub fn handle_timeout(&mut self, now: Nanos) {
        if self
            .batch_since
            .is_some_and(|t| now >= t + self.cfg.flush_interval)
        {
            self.seal_batch();
        }
        self.send_requests(now);
        self.pump_dumps(now);
    }

    /// The next datagram to send, if any: call [`transmitted`](Self::transmitted) once it went
    /// out or failed for good; leave it queued when the socket would block.
    pub fn poll_transmit(&self) -> Option<&Transmit> {
        self.queue.front()
    }

    /// The datagram [`poll_transmit`](Self::poll_transmit) gave was sent (`ok`) or refused by
    /// the socket (counted in the peer's `send_errors`); it leaves the queue.
    pub fn transmitted(&mut self, ok: bool) {
        let Some(t) = self.queue.pop_front() else {
            return;
        };
        let s = &mut self.peers[t.peer].stats;
        if ok {
            s.messages_sent += 1;
            s.records_sent += t.records;
        } else {
            s.send_errors += 1;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        let flush = self
            .batch_since
            .filter(|_| self.room() >= self.destinations())
            .map(|t| t + self.cfg.flush_interval);
        let requests = self.peers.iter().filter_map(|p| p.request.map(|r| r.1));
        let dumps = self.dumps.iter().map(|d| d.resume_at);
        flush.into_iter().chain(requests).chain(dumps).min()
    }

    /// The next event to log, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Everything counted so far.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            sender: self.cfg.sender,
            epoch: self.cfg.epoch,
            multicast: match self.cfg.peers {
                Peers::Multicast(g) => Some(g),
                Peers::Unicast(_) => None,
            },
            peers: self.peers.iter().map(|p| p.stats.clone()).collect(),
            errors: self.errors,
            refused: self.refused,
            installed: self.installed,
            dropped: self.dropped,
            unencodable: self.unencodable,
            queued: self.queue.len(),
        }
    }

    /// Free places in the outgoing queue.
    fn room(&self) -> usize {
        self.cfg.queue_limit.saturating_sub(self.queue.len())
    }

    /// Free places dumps may take: up to half the queue, the rest is the live records'.
    fn dump_room(&self) -> usize {
        (self.cfg.queue_limit / 2).saturating_sub(self.queue.len())
    }

    /// How many datagrams one live message takes (one per unicast peer, or the group).
    fn destinations(&self) -> usize {
        self.peers.iter().filter(|p| p.dest.is_some()).count()
    }

    fn count(&mut self, e: SyncError) {
        self.errors[e.index()] += 1;
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= EVENT_LIMIT {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn peer_of(&self, ip: IpAddr) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| !p.stats.group && p.stats.address == ip)
    }

    /// Multicast: a peer heard for the first time (its message authenticated), if the table
    /// has room.
    fn learn(&mut self, ip: IpAddr) -> Option<usize> {
        let learnt = self.peers.iter().filter(|p| !p.stats.group).count();
        if learnt >= MAX_PEERS {
            return None;
        }
        self.peers.push(Peer {
            stats: PeerStats::new(ip, false),
            dest: None,
            request: None,
        });
        Some(self.peers.len() - 1)
    }

    /// Seals the batch into one message to every destination; `false` when the queue has no
    /// room for it (the batch waits).
    fn seal_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        if self.room() < self.destinations() {
            return false;
        }
        match self.sealer.records(&self.batch, &mut self.scratch) {
            Ok(len) => {
                let records = self.batch.len() as u64;
                for (i, p) in self.peers.iter().enumerate() {
                    if let Some(dst) = p.dest {
                        self.queue.push_back(Transmit {
                            dst,
                            bytes: self.scratch[..len].to_vec(),
                            peer: i,
                            records,
                        });
                    }
                }
            }
            // Cannot happen: every record was measured against the message's room.
            Err(_) => self.unencodable += self.batch.len() as u64,
        }
        self.batch.clear();
        self.batch_bytes = 0;
        self.batch_since = None;
        true
    }

    /// Sends the dump requests due at `now`; gives up on a peer whose last request went
    /// unanswered for a whole interval.
    fn send_requests(&mut self, now: Nanos) {
        for i in 0..self.peers.len() {
            let (Some((left, due)), Some(dst)) = (self.peers[i].request, self.peers[i].dest) else {
                continue;
            };
            if due > now {
                continue;
            }
            if left == 0 {
                self.peers[i].request = None;
                let address = self.peers[i].stats.address;
                self.event(Event::GaveUp(address));
                continue;
            }
            if self.room() == 0 {
                continue;
            }
            let Ok(len) = self
                .sealer
                .control(MessageType::DumpRequest, &mut self.scratch)
            else {
                continue;
            };
            self.queue.push_back(Transmit {
                dst,
                bytes: self.scratch[..len].to_vec(),
                peer: i,
                records: 0,
            });
            let p = &mut self.peers[i];
            p.stats.dump_requests_sent += 1;
            p.request = Some((left - 1, now + self.cfg.request_interval));
        }
    }

    fn dump_ended(&mut self, p: usize) {
        let peer = &mut self.peers[p];
        peer.stats.in_sync = true;
        peer.request = None;
        let address = peer.stats.address;
        if self.multicast {
            // The group was asked once for everyone: one dump end answers the request.
            if let Some(g) = self.peers.iter_mut().find(|g| g.stats.group) {
                g.stats.in_sync = true;
                g.request = None;
            }
        }
        self.event(Event::InSync(address));
    }

    fn start_dump(
        &mut self,
        peer: usize,
        to: SocketAddr,
        epoch: u64,
        now: Nanos,
        dump: &mut dyn DumpSource,
    ) {
        if let Some(i) = self.dumps.iter().position(|d| d.peer == peer) {
            if self.dumps[i].epoch == epoch {
                return; // a repeated request of the dump in progress
            }
            self.dumps.swap_remove(i); // the requester restarted: start over
        }
        let pager = DumpPager::new(dump.dump(now), self.cfg.dump_burst);
        self.dumps.push(Dump {
            peer,
            to,
            epoch,
            pager,
            resume_at: now,
        });
        self.pump_dumps(now);
    }

    /// Sends the next burst of every dump due at `now`; removes the finished ones.
    fn pump_dumps(&mut self, now: Nanos) {
        let mut i = 0;
        while i < self.dumps.len() {
            if self.dumps[i].resume_at > now || !self.pump(i, now) {
                i += 1;
                continue;
            }
            let d = self.dumps.swap_remove(i);
            let peer = &mut self.peers[d.peer];
            peer.stats.dumps_sent += 1;
            let e = Event::DumpSent {
                peer: peer.stats.address,
                records: d.pager.records(),
            };
            self.event(e);
        }
    }

    /// One burst of dump `i` (or as much as the queue takes); `true` once it is complete.
    fn pump(&mut self, i: usize, now: Nanos) -> bool {
        let pause = now + self.cfg.dump_pause;
        loop {
            if self.dump_room() == 0 {
                self.dumps[i].resume_at = pause;
                return false;
            }
            let d = &mut self.dumps[i];
            match d.pager.poll(&mut self.sealer, &mut self.scratch) {
                Ok(Page::Message(len)) => {
                    let bytes = self.scratch[..len].to_vec();
                    let records = u64::from(SyncMessage::new_unchecked(&bytes[..]).count());
                    self.queue.push_back(Transmit {
                        dst: d.to,
                        bytes,
                        peer: d.peer,
                        records,
                    });
                }
                Ok(Page::Pause) => {
                    d.pager.resume();
                    d.resume_at = pause;
                    return false;
                }
                // Done; an error cannot happen (the scratch buffer holds a whole message), and
                // would end the dump.
                Ok(Page::Done) | Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests;
