//! Small nodes for testing the simulator itself and for benchmarks: a paced sender, a counting
//! sink and an echo server. Every datagram they send starts with its sequence number (u64,
//! little endian), padded with zeros to the configured size.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Node;

/// Sends `count` datagrams of `size` bytes from `src` to `dst`, one every `interval` starting at
/// its first poll (all at once if the interval is zero). Records when each was sent and any
/// echoes that come back.
#[derive(Clone, Debug)]
pub struct PacedSender {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub size: usize,
    pub interval: Duration,
    remaining: u64,
    next_send: Option<Instant>,
    next_seq: u64,
    /// Send time of each sequence number.
    pub sent_at: Vec<Instant>,
    /// (sequence number, arrival time) of every datagram received back.
    pub echoes: Vec<(u64, Instant)>,
}

impl PacedSender {
    pub fn new(
        src: SocketAddr,
        dst: SocketAddr,
        size: usize,
        count: u64,
        interval: Duration,
    ) -> Self {
        assert!(size >= 8, "datagrams carry an 8-byte sequence number");
        Self {
            src,
            dst,
            size,
            interval,
            remaining: count,
            next_send: None,
            next_seq: 0,
            sent_at: Vec::new(),
            echoes: Vec::new(),
        }
    }

    /// Queues `count` more datagrams (the caller goes through `Sim::node_mut`, which polls the
    /// node again).
    pub fn send_more(&mut self, count: u64) {
        self.remaining += count;
    }

    pub fn sent(&self) -> u64 {
        self.next_seq
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Node for PacedSender {
    fn handle_datagram(&mut self, now: Instant, _: SocketAddr, _: SocketAddr, payload: &[u8]) {
        if let Some(seq) = sequence_number(payload) {
            self.echoes.push((seq, now));
        }
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        if self.remaining == 0 {
            return None;
        }
        let due = *self.next_send.get_or_insert(now);
        if due > now {
            return None;
        }
        self.remaining -= 1;
        // Pacing keeps its own schedule: a late poll does not shift later sends.
        self.next_send = Some(due + self.interval);
        buf.extend_from_slice(&self.next_seq.to_le_bytes());
        buf.resize(self.size, 0);
        self.sent_at.push(now);
        self.next_seq += 1;
        Some((self.src, self.dst))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.remaining > 0 {
            self.next_send
        } else {
            None
        }
    }
}

fn sequence_number(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub at: Instant,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u64,
    pub size: usize,
}

/// Counts what arrives; optionally records every arrival.
#[derive(Clone, Debug, Default)]
pub struct Sink {
    pub packets: u64,
    pub bytes: u64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    pub record: bool,
    pub arrivals: Vec<Arrival>,
}

impl Sink {
    /// A sink that records every arrival.
    pub fn new() -> Self {
        Self {
            record: true,
            ..Self::default()
        }
    }

    /// A sink that only counts (for long runs).
    pub fn counting() -> Self {
        Self::default()
    }

    /// Sequence numbers in arrival order.
    pub fn sequence(&self) -> Vec<u64> {
        self.arrivals.iter().map(|a| a.seq).collect()
    }
}

impl Node for Sink {
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.packets += 1;
        self.bytes += payload.len() as u64;
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        if self.record {
            self.arrivals.push(Arrival {
                at: now,
                src,
                dst,
                seq: sequence_number(payload).unwrap_or(u64::MAX),
                size: payload.len(),
            });
        }
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_transmit(&mut self, _: Instant, _: &mut Vec<u8>) -> Option<(SocketAddr, SocketAddr)> {
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

/// Sends every datagram straight back to where it came from.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    pending: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    pub echoed: u64,
}

impl Echo {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Node for Echo {
    fn handle_datagram(&mut self, _: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.pending.push_back((dst, src, payload.to_vec()));
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_transmit(&mut self, _: Instant, buf: &mut Vec<u8>) -> Option<(SocketAddr, SocketAddr)> {
        let (src, dst, payload) = self.pending.pop_front()?;
        buf.extend_from_slice(&payload);
        self.echoed += 1;
        Some((src, dst))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

/// One simulator can hold only one node type; this enum lets toy nodes share a simulation.
#[derive(Clone, Debug)]
pub enum ToyNode {
    Sender(PacedSender),
    Sink(Sink),
    Echo(Echo),
}

impl ToyNode {
    /// The sender inside; panics if this node is another kind.
    pub fn sender(&self) -> &PacedSender {
        match self {
            ToyNode::Sender(s) => s,
            other => panic!("not a sender: {other:?}"),
        }
    }

    pub fn sender_mut(&mut self) -> &mut PacedSender {
        match self {
            ToyNode::Sender(s) => s,
            other => panic!("not a sender: {other:?}"),
        }
    }

    pub fn sink(&self) -> &Sink {
        match self {
            ToyNode::Sink(s) => s,
            other => panic!("not a sink: {other:?}"),
        }
    }

    pub fn echo(&self) -> &Echo {
        match self {
            ToyNode::Echo(e) => e,
            other => panic!("not an echo: {other:?}"),
        }
    }

    fn inner(&mut self) -> &mut dyn Node {
        match self {
            ToyNode::Sender(s) => s,
            ToyNode::Sink(s) => s,
            ToyNode::Echo(e) => e,
        }
    }
}

impl Node for ToyNode {
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.inner().handle_datagram(now, src, dst, payload)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner().handle_timeout(now)
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        self.inner().poll_transmit(now, buf)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.inner().poll_timeout()
    }
}
