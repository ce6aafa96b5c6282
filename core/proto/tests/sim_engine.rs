//! The simulator's event loop: timers, scripted actions, polling after input, determinism.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid_proto::sim::toy::{Echo, PacedSender, Sink, ToyNode};
use braid_proto::sim::{Fate, LinkConfig, Node, Sim, TraceEvent};

const MS: Duration = Duration::from_millis(1);
const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));

/// Asks for timers at given offsets from `base`, one after the other, and records when they
/// fire. `deadline` may be changed from outside to move the pending timer.
struct TimerProbe {
    base: Instant,
    wanted: Vec<Duration>,
    fired: Vec<Duration>,
    /// Overrides `wanted` while set.
    deadline: Option<Instant>,
}

impl TimerProbe {
    fn new(base: Instant, wanted: &[Duration]) -> Self {
        Self {
            base,
            wanted: wanted.to_vec(),
            fired: Vec::new(),
            deadline: None,
        }
    }
}

impl Node for TimerProbe {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: &[u8]) {}

    fn handle_timeout(&mut self, now: Instant) {
        let due = self.poll_timeout().expect("fired with no timer set");
        assert!(due <= now, "fired at {now:?} before its deadline {due:?}");
        self.fired.push(now - self.base);
        if self.deadline.take().is_none() {
            self.wanted.remove(0);
        }
    }

    fn poll_transmit(&mut self, _: Instant, _: &mut Vec<u8>) -> Option<(SocketAddr, SocketAddr)> {
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.deadline
            .or_else(|| self.wanted.first().map(|d| self.base + *d))
    }
}

#[test]
fn timers_fire_at_the_requested_virtual_time() {
    let mut sim = Sim::new(1);
    let base = sim.start();
    let wanted = [10 * MS, 25 * MS, 25 * MS, Duration::from_micros(40_001)];
    let probe = sim.add_node(TimerProbe::new(base, &wanted), &[A]);
    while sim.step() {}
    assert_eq!(sim.node(probe).fired, wanted);
    assert_eq!(sim.elapsed(), Duration::from_micros(40_001));
    assert_eq!(sim.stats().timeouts_fired, 4);
}

#[test]
fn moving_a_deadline_earlier_or_later_is_honoured() {
    let mut sim = Sim::new(1);
    let base = sim.start();
    let probe = sim.add_node(TimerProbe::new(base, &[50 * MS, 200 * MS]), &[A]);
    // At 5 ms the node wants its timer at 7 ms instead of 50 ms.
    sim.at(5 * MS, move |s| {
        s.node_mut(probe).deadline = Some(base + 7 * MS)
    });
    // At 60 ms it pushes the 200 ms timer back to 300 ms: nothing may fire at 200 ms.
    sim.at(60 * MS, move |s| s.node_mut(probe).wanted[0] = 300 * MS);
    while sim.step() {}
    assert_eq!(sim.node(probe).fired, [7 * MS, 50 * MS, 300 * MS]);
}

#[test]
fn a_deadline_in_the_past_fires_at_once() {
    let mut sim = Sim::new(1);
    let base = sim.start();
    let probe = sim.add_node(TimerProbe::new(base, &[]), &[A]);
    sim.at(100 * MS, move |s| {
        s.node_mut(probe).deadline = Some(base + 30 * MS)
    });
    while sim.step() {}
    assert_eq!(sim.node(probe).fired, [100 * MS]);
}

/// A broken node: its timer is always due and handling it changes nothing.
struct Stuck(Instant);

impl Node for Stuck {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: &[u8]) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut Vec<u8>) -> Option<(SocketAddr, SocketAddr)> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.0)
    }
}

#[test]
#[should_panic(expected = "without time advancing")]
fn a_node_stuck_on_a_past_timer_is_reported() {
    let mut sim = Sim::new(1);
    let start = sim.start();
    sim.add_node(Stuck(start), &[A]);
    sim.run_until(Duration::from_secs(1));
}

#[test]
fn scripted_actions_run_at_their_time_in_order() {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let log = Rc::new(RefCell::new(Vec::new()));
    for (when, name) in [(123 * MS, "b"), (7 * MS, "a"), (123 * MS, "c")] {
        let log = log.clone();
        sim.at(when, move |s| log.borrow_mut().push((s.elapsed(), name)));
    }
    let nested = log.clone();
    sim.at(200 * MS, move |s| {
        let log = nested.clone();
        // Scheduled from inside an action: relative and already-past times.
        s.after(MS, move |s| log.borrow_mut().push((s.elapsed(), "after")));
        let log = nested.clone();
        s.at(MS, move |s| log.borrow_mut().push((s.elapsed(), "past")));
    });
    sim.run_until(Duration::from_secs(1));
    assert_eq!(
        *log.borrow(),
        [
            (7 * MS, "a"),
            (123 * MS, "b"),
            (123 * MS, "c"),
            (200 * MS, "past"),
            (201 * MS, "after")
        ]
    );
    assert_eq!(sim.elapsed(), Duration::from_secs(1));
}

#[test]
fn node_mut_gets_the_node_polled() {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let sender = PacedSender::new(
        SocketAddr::new(A, 1),
        SocketAddr::new(B, 1),
        100,
        0,
        Duration::ZERO,
    );
    let sender = sim.add_node(ToyNode::Sender(sender), &[A]);
    let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[B]);
    sim.add_link(A, B, LinkConfig::new(0, 20 * MS));
    sim.run_until(Duration::from_secs(1));
    assert!(!sim.step(), "nothing scheduled");
    // Application data written between events, with no timer pending to wake the node.
    sim.node_mut(sender).sender_mut().send_more(5);
    sim.run_until(Duration::from_secs(2));
    let sink = sim.node(sink).sink();
    assert_eq!(sink.packets, 5);
    assert_eq!(
        sink.first_at.unwrap() - sim.start(),
        Duration::from_secs(1) + 20 * MS
    );
}

#[test]
fn echo_round_trip_is_both_delays_and_serializations() {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let pinger = PacedSender::new(
        SocketAddr::new(A, 5),
        SocketAddr::new(B, 7),
        1000,
        10,
        100 * MS,
    );
    let pinger = sim.add_node(ToyNode::Sender(pinger), &[A]);
    let echo = sim.add_node(ToyNode::Echo(Echo::new()), &[B]);
    // 1000 bytes: 1 ms at 8 Mbit/s out, 2 ms at 4 Mbit/s back.
    sim.add_duplex(
        A,
        B,
        LinkConfig::new(8_000_000, 10 * MS),
        LinkConfig::new(4_000_000, 30 * MS),
    );
    let done = sim.run_while(Duration::from_secs(5), |s| {
        s.node(pinger).sender().echoes.len() < 10
    });
    assert!(done);
    assert_eq!(sim.node(echo).echo().echoed, 10);
    let p = sim.node(pinger).sender();
    for (seq, at) in &p.echoes {
        assert_eq!(*at - p.sent_at[*seq as usize], 43 * MS);
    }
    // The condition turned false on the last echo's arrival: the clock stopped there.
    assert_eq!(sim.elapsed(), 900 * MS + 43 * MS);
}

#[test]
fn run_while_gives_up_at_the_deadline() {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let sender = PacedSender::new(
        SocketAddr::new(A, 1),
        SocketAddr::new(B, 1),
        100,
        100,
        10 * MS,
    );
    sim.add_node(ToyNode::Sender(sender), &[A]);
    let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[B]);
    sim.add_link(A, B, LinkConfig::new(0, 5 * MS));
    let done = sim.run_while(Duration::from_millis(500), |s| {
        s.node(sink).sink().packets < 100
    });
    assert!(!done);
    assert_eq!(sim.elapsed(), 500 * MS);
    // Sent at 0, 10, …, 490 ms; the one sent at 500 ms is due at 505 ms.
    assert_eq!(sim.node(sink).sink().packets, 50);
    assert!(
        sim.run_while(Duration::from_secs(2), |s| s.node(sink).sink().packets
            < 100)
    );
    assert_eq!(sim.elapsed(), 995 * MS);
}

#[test]
fn boxed_nodes_of_different_types_share_a_simulation() {
    let mut sim: Sim<Box<dyn Node>> = Sim::new(1);
    let base = sim.start();
    sim.add_node(Box::new(TimerProbe::new(base, &[3 * MS])), &[A]);
    sim.add_node(Box::new(Sink::new()), &[B]);
    let sender = PacedSender::new(SocketAddr::new(C, 1), SocketAddr::new(B, 1), 100, 3, MS);
    sim.add_node(Box::new(sender), &[C]);
    let link = sim.add_link(C, B, LinkConfig::new(0, MS));
    while sim.step() {}
    assert_eq!(sim.link(link).stats().delivered.packets, 3);
    assert_eq!(sim.stats().timeouts_fired, 1 + 2);
}

#[test]
fn injected_datagrams_cross_the_link() {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[B]);
    sim.add_link(A, B, LinkConfig::new(0, 4 * MS));
    sim.inject(
        SocketAddr::new(A, 9),
        SocketAddr::new(B, 9),
        &42u64.to_le_bytes(),
    );
    while sim.step() {}
    let arrival = sim.node(sink).sink().arrivals[0];
    assert_eq!((arrival.seq, arrival.at - sim.start()), (42, 4 * MS));
    assert_eq!(arrival.src, SocketAddr::new(A, 9));
}

/// Two senders, an echo, every impairment; returns the full trace.
fn impaired_run(seed: u64) -> Vec<TraceEvent> {
    let mut sim: Sim<ToyNode> = Sim::new(seed);
    let trace = sim.record_trace();
    for (ip, interval) in [
        (A, Duration::from_micros(700)),
        (C, Duration::from_micros(1100)),
    ] {
        let s = PacedSender::new(
            SocketAddr::new(ip, 1),
            SocketAddr::new(B, 1),
            1200,
            2000,
            interval,
        );
        sim.add_node(ToyNode::Sender(s), &[ip]);
    }
    sim.add_node(ToyNode::Echo(Echo::new()), &[B]);
    let lossy = LinkConfig::new(10_000_000, 15 * MS)
        .with_queue_bdp(1.0)
        .with_loss(0.02)
        .with_reorder(0.05, 5 * MS)
        .with_duplicate(0.01);
    let (a_to_b, _) = sim.add_duplex(A, B, lossy.clone(), lossy.clone());
    sim.add_duplex(C, B, lossy.clone().with_rate(5_000_000), lossy);
    sim.at(Duration::from_millis(600), move |s| {
        s.link_mut(a_to_b).set_down(true)
    });
    sim.at(Duration::from_millis(800), move |s| {
        s.link_mut(a_to_b).set_down(false)
    });
    while sim.step() {}
    drop(sim);
    Rc::try_unwrap(trace).unwrap().into_inner()
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let first = impaired_run(77);
    let kinds = |pred: fn(&TraceEvent) -> bool| first.iter().filter(|e| pred(e)).count();
    // The scenario exercises every kind of event, so equality below means something.
    assert!(kinds(|e| matches!(e, TraceEvent::LostInFlight { .. })) > 0);
    assert!(
        kinds(|e| matches!(
            e,
            TraceEvent::Sent {
                fate: Fate::Duplicate(..),
                ..
            }
        )) > 0
    );
    assert!(
        kinds(|e| matches!(
            e,
            TraceEvent::Sent {
                fate: Fate::Dropped(_),
                ..
            }
        )) > 0
    );
    let arrived = kinds(|e| matches!(e, TraceEvent::Arrived { .. }));
    assert!(arrived > 4000, "{arrived}");
    assert!(first.windows(2).all(|w| w[0].at() <= w[1].at()));

    assert_eq!(first, impaired_run(77));
    assert_ne!(first, impaired_run(78));
}
