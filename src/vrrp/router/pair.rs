//! Test harness: two [`Router`]s (two boxes) joined by an in-memory link, driven by a simulated
//! clock, as quinn-proto's `Pair`. Adverts are really encoded ([`encode_ip`], IPv4 or IPv6) by
//! the sender and parsed ([`parse_ip`]) by the receiver after `latency`; time jumps from one deadline to
//! the next (a router timer or a packet arrival), so a test of minutes runs in microseconds.
//! Track scripts answer from a table (`Some(ok)` at once, `None` never); interfaces go down by
//! name; a link can be cut per interface.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{Action, Router, RunId};
use crate::flow::{Nanos, NANOS_PER_SEC};
use crate::vrrp::packet::{encode_ip, parse_ip, Family};
use crate::vrrp::spec::{InstanceSpec, Notify, TrackScript};
use crate::vrrp::{InstanceConfig, State, Version};

/// One box.
pub struct Node {
    pub router: Router,
    pub specs: Vec<InstanceSpec>,
    groups: Vec<Vec<String>>,
    /// Runs (processes it and sends) only while true.
    pub alive: bool,
    /// Packets on their way to this box: (arrival, interface, IP packet).
    inbox: Vec<(Nanos, String, Vec<u8>)>,
    /// Every state entered: (time, instance, state).
    pub log: Vec<(Nanos, String, State)>,
    pub links_down: HashSet<String>,
    /// What each script command exits with: `Some(ok)` at once, `None` never.
    pub scripts: HashMap<String, Option<bool>>,
    running: Vec<RunId>,
    pub killed: usize,
    pub garps: usize,
    /// Adverts sent: (time, instance, priority).
    pub sent: Vec<(Nanos, String, u8)>,
}

impl Node {
    pub fn new(specs: Vec<InstanceSpec>, groups: Vec<Vec<String>>) -> Node {
        Node {
            router: Router::new(),
            specs,
            groups,
            alive: false,
            inbox: Vec::new(),
            log: Vec::new(),
            links_down: HashSet::new(),
            scripts: HashMap::new(),
            running: Vec::new(),
            killed: 0,
            garps: 0,
            sent: Vec::new(),
        }
    }

    /// The state of instance `name` now.
    pub fn state(&self, name: &str) -> State {
        let m = self.router.members().iter().find(|m| m.spec.name == name);
        m.map_or(State::Initialize, |m| m.inst.state())
    }

    /// When instance `name` last entered `state`.
    pub fn entered(&self, name: &str, state: State) -> Option<Nanos> {
        self.log
            .iter()
            .rev()
            .find(|(_, n, s)| n == name && *s == state)
            .map(|e| e.0)
    }

    fn next(&self) -> Option<Nanos> {
        if !self.alive {
            return None;
        }
        let packets = self.inbox.iter().map(|p| p.0);
        self.router.poll_timeout().into_iter().chain(packets).min()
    }
}

/// Two boxes on one LAN per interface.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: Nanos,
    pub latency: Nanos,
    /// Interfaces whose link between the boxes is cut (both directions).
    pub cut: HashSet<String>,
}

/// Upper bound of steps per `drive_until` (a bug that stops time fails the test, never hangs).
const MAX_STEPS: usize = 1_000_000;

impl Pair {
    pub fn new(a: Node, b: Node) -> Pair {
        Pair {
            a,
            b,
            now: 0,
            latency: NANOS_PER_SEC / 1000,
            cut: HashSet::new(),
        }
    }

    /// Starts (or restarts) a box now: its instances are created as at daemon start.
    pub fn start(&mut self, which: char) {
        let now = self.now;
        let n = self.node(which);
        n.alive = true;
        let specs = n.specs.clone();
        let groups = n.groups.clone();
        n.router.reload(now, specs, &groups);
        let down = n.links_down.clone();
        n.router.handle_links(now, |i| !down.contains(i));
        self.drain(which);
    }

    /// Interface `iface` of box `which` goes down (`false`) or up (`true`), seen now.
    pub fn set_link(&mut self, which: char, iface: &str, up: bool) {
        let now = self.now;
        let n = self.node(which);
        if up {
            n.links_down.remove(iface);
        } else {
            n.links_down.insert(iface.to_string());
        }
        let down = n.links_down.clone();
        n.router.handle_links(now, |i| !down.contains(i));
        self.drain(which);
    }

    pub fn node(&mut self, which: char) -> &mut Node {
        if which == 'a' {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Runs both boxes until `t`, jumping from deadline to deadline.
    pub fn drive_until(&mut self, t: Nanos) {
        for _ in 0..MAX_STEPS {
            let next = self.a.next().into_iter().chain(self.b.next()).min();
            match next {
                Some(n) if n <= t => {
                    self.now = self.now.max(n);
                    self.step('a');
                    self.step('b');
                }
                _ => {
                    self.now = t;
                    return;
                }
            }
        }
        panic!("no progress by {t} ns");
    }

    /// Delivers the arrived packets, fires the timers, carries out the actions.
    fn step(&mut self, which: char) {
        let now = self.now;
        let n = self.node(which);
        if !n.alive {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut n.inbox)
            .into_iter()
            .partition(|p| p.0 <= now);
        n.inbox = later;
        for (_, iface, bytes) in due {
            if let Ok(a) = parse_ip(&bytes) {
                let _ = n.router.handle_advert(now, &iface, &a);
            }
        }
        n.router.handle_timeout(now);
        self.drain(which);
    }

    /// Carries out box `which`'s actions as the driver would.
    fn drain(&mut self, which: char) {
        let now = self.now;
        let latency = self.latency;
        let mut out = Vec::new();
        let n = self.node(which);
        while let Some(action) = n.router.poll_action() {
            match action {
                Action::Transmit { inst, transmit } => {
                    let m = &n.router.members()[inst];
                    let mut buf = [0u8; 1100];
                    let fields = m.inst.advert_fields(&transmit);
                    let dst = Family::of(m.spec.cfg.primary).multicast();
                    let len = encode_ip(&mut buf, &fields, m.spec.cfg.primary, dst).unwrap();
                    n.sent.push((now, m.spec.name.clone(), transmit.priority));
                    let iface = m.spec.interface.clone();
                    out.push((now + latency, iface, buf[..len].to_vec()));
                }
                Action::Event { inst, event } => {
                    let name = n.router.members()[inst].spec.name.clone();
                    n.log.push((now, name, event.state()));
                }
                Action::RunScript { run, command } => match n.scripts.get(&command) {
                    Some(Some(ok)) => n.router.handle_script_result(now, run, *ok),
                    _ => n.running.push(run),
                },
                Action::KillScript { run } => {
                    n.running.retain(|r| *r != run);
                    n.killed += 1;
                }
                Action::Garp { .. } => n.garps += 1,
            }
        }
        let cut = self.cut.clone();
        let peer = self.node(if which == 'a' { 'b' } else { 'a' });
        // A box that is down hears nothing (not even later).
        out.retain(|p| peer.alive && !cut.contains(&p.1));
        peer.inbox.extend(out);
    }
}

/// An instance `name` on `iface` with VRID `vrid`, priority `priority`, one VIP, sending from
/// `primary`, advert interval 1 s, preempting.
pub fn spec(name: &str, iface: &str, vrid: u8, priority: u8, primary: &str) -> InstanceSpec {
    let vip: IpAddr = format!("198.18.{vrid}.100").parse().unwrap();
    InstanceSpec {
        name: name.into(),
        interface: iface.into(),
        ifindex: 2,
        mac: [2, 0, 0, 0, 0, 1],
        cfg: InstanceConfig {
            vrid,
            version: Version::V3,
            priority,
            advert_interval: NANOS_PER_SEC,
            preempt: true,
            preempt_delay: 0,
            primary: primary.parse().unwrap(),
            vips: vec![vip],
            unicast: false,
        },
        prefixes: vec![(vip, 32)],
        peers: vec![],
        track_interfaces: vec![],
        track_scripts: vec![],
        notify: Notify::default(),
    }
}

/// As [`spec`] for IPv6: VIP 2001:2::VRID:100/64, `primary` a link-local address.
pub fn spec6(name: &str, iface: &str, vrid: u8, priority: u8, primary: &str) -> InstanceSpec {
    let mut s = spec(name, iface, vrid, priority, primary);
    let vip: IpAddr = format!("2001:2::{vrid}:100").parse().unwrap();
    s.cfg.vips = vec![vip];
    s.prefixes = vec![(vip, 64)];
    s
}

/// A track script `command` every second with `fall`, rise 1 and `weight`.
pub fn script(command: &str, fall: u32, weight: i32) -> TrackScript {
    TrackScript {
        command: command.into(),
        interval: NANOS_PER_SEC,
        rise: 1,
        fall,
        weight,
    }
}
