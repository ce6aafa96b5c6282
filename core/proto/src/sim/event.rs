//! The simulator's agenda: a min-heap of events ordered by (time, insertion number), so events
//! at the same instant run in the order they were scheduled and runs are reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Instant;

use super::{LinkId, Node, NodeId, Sim};

/// A datagram on its way across a link.
pub(super) struct Packet {
    pub link: LinkId,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The link's outage epoch when the packet was offered.
    pub epoch: u64,
    pub payload: Vec<u8>,
}

pub(super) type Action<N> = Box<dyn FnOnce(&mut Sim<N>)>;

pub(super) enum EventKind<N: Node> {
    Deliver(Packet),
    /// A node's timer; ignored unless `generation` is still the node's current one.
    Timer {
        node: NodeId,
        generation: u64,
    },
    Action(Action<N>),
}

pub(super) struct Event<N: Node> {
    pub at: Instant,
    seq: u64,
    pub kind: EventKind<N>,
}

impl<N: Node> PartialEq for Event<N> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<N: Node> Eq for Event<N> {}

impl<N: Node> PartialOrd for Event<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<N: Node> Ord for Event<N> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub(super) struct Agenda<N: Node> {
    heap: BinaryHeap<Event<N>>,
    next_seq: u64,
}

impl<N: Node> Agenda<N> {
    pub(super) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    pub(super) fn push(&mut self, at: Instant, kind: EventKind<N>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event { at, seq, kind });
    }

    pub(super) fn pop(&mut self) -> Option<Event<N>> {
        self.heap.pop()
    }

    pub(super) fn next_time(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}
