//! Deterministic network simulator: links with rate, delay, queue, loss, reordering, duplication
//! and outages, in virtual time.
//!
//! Nodes are sans-IO state machines (`Node`); the simulator owns them and the links between
//! their addresses, and runs a single event loop over packet deliveries, node timers and
//! scripted actions. Time is virtual: a base `Instant` taken once at construction plus
//! durations, so a run takes as long as its CPU work, and the same seed and nodes give the same
//! run.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//! use braid_proto::sim::{LinkConfig, Sim, toy::{PacedSender, Sink, ToyNode}};
//!
//! let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
//! let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
//! let mut sim = Sim::new(1);
//! let sender = PacedSender::new(SocketAddr::new(a, 1), SocketAddr::new(b, 2), 1000, 100,
//!     Duration::from_millis(1));
//! sim.add_node(ToyNode::Sender(sender), &[a]);
//! let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[b]);
//! sim.add_link(a, b, LinkConfig::new(10_000_000, Duration::from_millis(20)));
//! let done = sim.run_while(Duration::from_secs(5), |s| s.node(sink).sink().packets < 100);
//! assert!(done);
//! ```

mod event;
pub mod link;
pub mod meter;
mod node;
pub mod toy;
mod trace;

use crate::endpoint::hash::KeyedMap;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use event::{Agenda, EventKind, Packet};

pub use link::{Counter, DropReason, Fate, Link, LinkConfig, LinkStats};
pub use meter::PathMeter;
pub use node::{Node, NodeId};
pub use trace::TraceEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(usize);

impl LinkId {
    /// Position in the order links were added, from 0 (also the `PathMeter` path index).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Counters that belong to no link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams with no link from source to destination, or no node owning the destination.
    pub unroutable: Counter,
    /// Events processed (deliveries, timers including stale ones, actions).
    pub events: u64,
    pub timeouts_fired: u64,
}

/// A node sending more than this many datagrams in one go without time passing is stuck.
const MAX_TRANSMITS_PER_POLL: usize = 10_000_000;
/// A node whose timer fires this often at one instant is asking for a past deadline forever.
const MAX_TIMEOUTS_PER_INSTANT: u32 = 1_000_000;

struct NodeSlot<N> {
    node: N,
    dirty: bool,
    /// The deadline the node asked for in its last `poll_timeout`.
    deadline: Option<Instant>,
    /// Time of the live timer event in the agenda, which may be earlier than `deadline`: a
    /// deadline pushed later does not reschedule, the early event re-arms itself when it fires.
    armed: Option<Instant>,
    generation: u64,
    last_fire: Option<Instant>,
    fires_at_last_instant: u32,
}

/// Receives every `TraceEvent` of a run.
pub type TraceHook = Box<dyn FnMut(&TraceEvent)>;

/// A middlebox on every path: sees each datagram as it is sent and may rewrite it (strip
/// options, corrupt bytes, translate addresses like a NAT) or drop it by returning false.
pub type MiddleboxHook = Box<dyn FnMut(&mut SocketAddr, &mut SocketAddr, &mut Vec<u8>) -> bool>;

/// A trace recorded by `Sim::record_trace`, shared with the simulator's hook.
pub type TraceLog = Rc<RefCell<Vec<TraceEvent>>>;

pub struct Sim<N: Node> {
    start: Instant,
    now: Instant,
    seed: u64,
    nodes: Vec<NodeSlot<N>>,
    owners: KeyedMap<IpAddr, NodeId>,
    links: Vec<Link>,
    ends: Vec<(IpAddr, IpAddr)>,
    routes: KeyedMap<(IpAddr, IpAddr), LinkId>,
    agenda: Agenda<N>,
    dirty: Vec<NodeId>,
    /// Payload buffers of delivered or dropped packets, reused for the next transmits.
    free_buffers: Vec<Vec<u8>>,
    stats: SimStats,
    trace: Option<TraceHook>,
    middlebox: Option<MiddleboxHook>,
    meter: Option<PathMeter>,
}

impl<N: Node> Sim<N> {
    /// A simulator whose virtual clock starts at the real `Instant::now()`; the clock is never
    /// read again.
    pub fn new(seed: u64) -> Self {
        Self::with_start(seed, Instant::now())
    }

    pub fn with_start(seed: u64, start: Instant) -> Self {
        Self {
            start,
            now: start,
            seed,
            nodes: Vec::new(),
            owners: KeyedMap::default(),
            links: Vec::new(),
            ends: Vec::new(),
            routes: KeyedMap::default(),
            agenda: Agenda::new(),
            dirty: Vec::new(),
            free_buffers: Vec::new(),
            stats: SimStats::default(),
            trace: None,
            middlebox: None,
            meter: None,
        }
    }

    /// Adds a node owning `addrs`. It is polled on the next step, so it may start sending
    /// without any input.
    pub fn add_node(&mut self, node: N, addrs: &[IpAddr]) -> NodeId {
        let id = NodeId(self.nodes.len());
        for addr in addrs {
            let previous = self.owners.insert(*addr, id);
            assert!(
                previous.is_none(),
                "address {addr} already belongs to a node"
            );
        }
        self.nodes.push(NodeSlot {
            node,
            dirty: false,
            deadline: None,
            armed: None,
            generation: 0,
            last_fire: None,
            fires_at_last_instant: 0,
        });
        self.mark_dirty(id);
        id
    }

    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0].node
    }

    /// Mutable access; the node is polled (transmits and timer) on the next step, since the
    /// caller may have given it work.
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        self.mark_dirty(id);
        &mut self.nodes[id.0].node
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node owning `addr`, if any.
    pub fn owner(&self, addr: IpAddr) -> Option<NodeId> {
        self.owners.get(&addr).copied()
    }

    /// A one-directional link carrying datagrams from `from` to `to`. Each link draws its
    /// randomness from its own generator, derived from the simulator seed and its index.
    pub fn add_link(&mut self, from: IpAddr, to: IpAddr, cfg: LinkConfig) -> LinkId {
        let id = LinkId(self.links.len());
        let previous = self.routes.insert((from, to), id);
        assert!(
            previous.is_none(),
            "a link from {from} to {to} already exists"
        );
        let seed = self.derive_seed(0x4c49_4e4b_0000_0000 | id.0 as u64);
        self.links.push(Link::new(cfg, seed));
        self.ends.push((from, to));
        id
    }

    /// Two links, `a → b` and `b → a`.
    pub fn add_duplex(
        &mut self,
        a: IpAddr,
        b: IpAddr,
        a_to_b: LinkConfig,
        b_to_a: LinkConfig,
    ) -> (LinkId, LinkId) {
        (self.add_link(a, b, a_to_b), self.add_link(b, a, b_to_a))
    }

    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id.0]
    }

    /// For live changes: `set_down`, `set_config`.
    pub fn link_mut(&mut self, id: LinkId) -> &mut Link {
        &mut self.links[id.0]
    }

    pub fn link_between(&self, from: IpAddr, to: IpAddr) -> Option<LinkId> {
        self.routes.get(&(from, to)).copied()
    }

    /// The (from, to) addresses of a link.
    pub fn link_ends(&self, id: LinkId) -> (IpAddr, IpAddr) {
        self.ends[id.0]
    }

    pub fn link_ids(&self) -> impl Iterator<Item = LinkId> + use<N> {
        (0..self.links.len()).map(LinkId)
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A seed for stream `stream` of this run (for nodes' own generators), independent of the
    /// links' streams for any `stream` below 2^62.
    pub fn derive_seed(&self, stream: u64) -> u64 {
        use crate::random::{Random, SeededRandom};
        SeededRandom::new(self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Events waiting in the agenda (including stale timers).
    pub fn pending_events(&self) -> usize {
        self.agenda.len()
    }

    /// Every send, arrival, in-flight loss and unroutable datagram is reported to `hook`.
    /// Installs a middlebox that sees (and may rewrite or drop) every datagram sent.
    pub fn set_middlebox(&mut self, hook: MiddleboxHook) {
        self.middlebox = Some(hook);
    }

    pub fn set_trace(&mut self, hook: TraceHook) {
        self.trace = Some(hook);
    }

    /// Installs a hook that appends every event to the returned list.
    pub fn record_trace(&mut self) -> TraceLog {
        let log = TraceLog::default();
        let sink = log.clone();
        self.set_trace(Box::new(move |event| sink.borrow_mut().push(event.clone())));
        log
    }

    pub fn clear_trace(&mut self) {
        self.trace = None;
    }

    /// Starts bucketing delivered bytes per link (`LinkId::index`) per `interval` from the
    /// simulation start.
    pub fn enable_meter(&mut self, interval: Duration) {
        self.meter = Some(PathMeter::new(interval));
    }

    pub fn meter(&self) -> Option<&PathMeter> {
        self.meter.as_ref()
    }

    /// Runs `action` at `when` after the simulation start (at once, on the next step, if that
    /// is already past). Actions at the same instant run in the order they were scheduled, and
    /// before packets and timers scheduled later for that instant.
    pub fn at(&mut self, when: Duration, action: impl FnOnce(&mut Sim<N>) + 'static) {
        let at = (self.start + when).max(self.now);
        self.agenda.push(at, EventKind::Action(Box::new(action)));
    }

    /// Runs `action` `delay` from now.
    pub fn after(&mut self, delay: Duration, action: impl FnOnce(&mut Sim<N>) + 'static) {
        self.agenda
            .push(self.now + delay, EventKind::Action(Box::new(action)));
    }

    /// Sends a datagram as if a node had, through the link from `src` to `dst` (for forged or
    /// stray packets in tests).
    pub fn inject(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let mut buf = self.free_buffers.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        self.send(src, dst, buf);
    }

    /// Processes the next event (after polling nodes with pending input). Returns false when
    /// nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.poll_dirty();
        let Some(event) = self.agenda.pop() else {
            return false;
        };
        self.now = self.now.max(event.at);
        self.stats.events += 1;
        match event.kind {
            EventKind::Deliver(packet) => self.deliver(packet),
            EventKind::Timer { node, generation } => self.fire_timer(node, generation),
            EventKind::Action(action) => action(self),
        }
        self.poll_dirty();
        true
    }

    /// Processes every event up to `t` after the start, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Duration) {
        let deadline = self.start + t;
        loop {
            self.poll_dirty();
            match self.agenda.next_time() {
                Some(at) if at <= deadline => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.elapsed() + d);
    }

    /// Processes events while `cond` holds (checked before each event) and events remain up to
    /// `deadline` after the start. Returns true if `cond` became false; otherwise the clock is
    /// left at the deadline and it returns false.
    pub fn run_while(
        &mut self,
        deadline: Duration,
        mut cond: impl FnMut(&mut Sim<N>) -> bool,
    ) -> bool {
        let deadline = self.start + deadline;
        loop {
            self.poll_dirty();
            if !cond(self) {
                return true;
            }
            match self.agenda.next_time() {
                Some(at) if at <= deadline => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return false;
                }
            }
        }
    }

    fn mark_dirty(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0];
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(id);
        }
    }

    fn poll_dirty(&mut self) {
        // Polling never marks nodes dirty, so the list cannot grow while we walk it.
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            self.nodes[id.0].dirty = false;
            self.poll_node(id);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Drains the node's transmits into the links, then re-reads its timer.
    fn poll_node(&mut self, id: NodeId) {
        let now = self.now;
        let mut sent = 0usize;
        loop {
            let mut buf = self.free_buffers.pop().unwrap_or_default();
            buf.clear();
            let Some((src, dst)) = self.nodes[id.0].node.poll_transmit(now, &mut buf) else {
                self.free_buffers.push(buf);
                break;
            };
            sent += 1;
            assert!(
                sent <= MAX_TRANSMITS_PER_POLL,
                "sim: node {} produced {MAX_TRANSMITS_PER_POLL} datagrams in one poll at {:?}; \
                 its poll_transmit never returns None",
                id.0,
                self.elapsed()
            );
            self.send(src, dst, buf);
        }
        self.rearm_timer(id);
    }

    fn rearm_timer(&mut self, id: NodeId) {
        let now = self.now;
        let slot = &mut self.nodes[id.0];
        slot.deadline = slot.node.poll_timeout();
        let Some(deadline) = slot.deadline else {
            return;
        };
        if slot.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        let at = deadline.max(now);
        slot.generation += 1;
        slot.armed = Some(at);
        let generation = slot.generation;
        self.agenda.push(
            at,
            EventKind::Timer {
                node: id,
                generation,
            },
        );
    }

    fn fire_timer(&mut self, id: NodeId, generation: u64) {
        let now = self.now;
        let slot = &mut self.nodes[id.0];
        if generation != slot.generation || slot.armed.is_none() {
            return;
        }
        slot.armed = None;
        match slot.deadline {
            None => return,
            Some(deadline) if deadline > now => {
                // The deadline moved later since this event was scheduled.
                slot.armed = Some(deadline);
                self.agenda.push(
                    deadline,
                    EventKind::Timer {
                        node: id,
                        generation,
                    },
                );
                return;
            }
            Some(_) => {}
        }
        if slot.last_fire == Some(now) {
            slot.fires_at_last_instant += 1;
            assert!(
                slot.fires_at_last_instant < MAX_TIMEOUTS_PER_INSTANT,
                "sim: node {} fired {MAX_TIMEOUTS_PER_INSTANT} timeouts at {:?} without time \
                 advancing; its poll_timeout keeps returning a deadline at or before now",
                id.0,
                now - self.start
            );
        } else {
            slot.last_fire = Some(now);
            slot.fires_at_last_instant = 1;
        }
        slot.deadline = None;
        self.stats.timeouts_fired += 1;
        slot.node.handle_timeout(now);
        self.poll_node(id);
    }

    fn send(&mut self, mut src: SocketAddr, mut dst: SocketAddr, mut payload: Vec<u8>) {
        if let Some(hook) = self.middlebox.as_mut()
            && !hook(&mut src, &mut dst, &mut payload)
        {
            self.free_buffers.push(payload);
            return;
        }
        let size = payload.len();
        let route = self.routes.get(&(src.ip(), dst.ip())).copied();
        let (Some(link_id), true) = (route, self.owners.contains_key(&dst.ip())) else {
            self.stats.unroutable.add(size);
            let at = self.elapsed();
            self.emit(|| TraceEvent::Unroutable { at, src, dst, size });
            self.free_buffers.push(payload);
            return;
        };
        let link = &mut self.links[link_id.0];
        let epoch = link.epoch();
        let fate = link.offer(self.now, size);
        if self.trace.is_some() {
            let (start, at) = (self.start, self.elapsed());
            let fate = fate.map(|t| t - start);
            self.emit(|| TraceEvent::Sent {
                at,
                link: link_id,
                src,
                dst,
                size,
                fate,
            });
        }
        let packet = |payload| Packet {
            link: link_id,
            src,
            dst,
            epoch,
            payload,
        };
        match fate {
            Fate::Dropped(_) => self.free_buffers.push(payload),
            Fate::Deliver(at) => self.agenda.push(at, EventKind::Deliver(packet(payload))),
            Fate::Duplicate(first, second) => {
                let mut copy = self.free_buffers.pop().unwrap_or_default();
                copy.clear();
                copy.extend_from_slice(&payload);
                self.agenda.push(first, EventKind::Deliver(packet(payload)));
                self.agenda.push(second, EventKind::Deliver(packet(copy)));
            }
        }
    }

    fn deliver(&mut self, packet: Packet) {
        let Packet {
            link,
            src,
            dst,
            epoch,
            payload,
        } = packet;
        let size = payload.len();
        let at = self.elapsed();
        if !self.links[link.0].arrive(size, epoch) {
            self.emit(|| TraceEvent::LostInFlight { at, link, size });
            self.free_buffers.push(payload);
            return;
        }
        // Ownership was checked when the packet was sent, and nodes are never removed.
        let node = self.owners[&dst.ip()];
        if let Some(meter) = &mut self.meter {
            meter.record(link.0, at, size);
        }
        self.emit(|| TraceEvent::Arrived {
            at,
            link,
            src,
            dst,
            size,
        });
        self.nodes[node.0]
            .node
            .handle_datagram(self.now, src, dst, &payload);
        self.free_buffers.push(payload);
        self.poll_node(node);
    }

    fn emit(&mut self, event: impl FnOnce() -> TraceEvent) {
        if let Some(hook) = &mut self.trace {
            hook(&event());
        }
    }
}
