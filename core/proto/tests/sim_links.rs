//! The simulator's links as seen by nodes: rate, delay, queue, loss, reordering, duplication,
//! outages, routing, metering.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use braid_proto::sim::toy::{PacedSender, Sink, ToyNode};
use braid_proto::sim::{LinkConfig, LinkId, NodeId, Sim};

const MS: Duration = Duration::from_millis(1);
const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

struct OneWay {
    sim: Sim<ToyNode>,
    sender: NodeId,
    sink: NodeId,
    link: LinkId,
}

/// A sender on A sending `count` datagrams of `size` bytes every `interval` to a sink on B.
fn one_way(cfg: LinkConfig, size: usize, count: u64, interval: Duration, seed: u64) -> OneWay {
    let mut sim = Sim::new(seed);
    let sender = PacedSender::new(
        SocketAddr::new(A, 1000),
        SocketAddr::new(B, 2000),
        size,
        count,
        interval,
    );
    let sender = sim.add_node(ToyNode::Sender(sender), &[A]);
    let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[B]);
    let link = sim.add_link(A, B, cfg);
    OneWay {
        sim,
        sender,
        sink,
        link,
    }
}

impl OneWay {
    fn sink(&self) -> &Sink {
        self.sim.node(self.sink).sink()
    }

    fn sender(&self) -> &PacedSender {
        self.sim.node(self.sender).sender()
    }

    fn run(&mut self) {
        while self.sim.step() {}
    }
}

fn assert_binomial(observed: u64, n: u64, p: f64, what: &str) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (observed as f64 - mean).abs() <= 5.0 * sigma,
        "{what}: {observed} of {n}, expected {mean:.0} ± {:.0}",
        5.0 * sigma
    );
}

#[test]
fn one_megabyte_over_8_mbps_takes_one_second() {
    // Offered all at once: the queue drains at the link rate.
    let mut t = one_way(
        LinkConfig::new(8_000_000, Duration::ZERO),
        1000,
        1000,
        Duration::ZERO,
        1,
    );
    t.run();
    assert_eq!(t.sink().bytes, 1_000_000);
    let took = t.sink().last_at.unwrap() - t.sim.start();
    assert!(took.abs_diff(Duration::from_secs(1)) <= MS, "took {took:?}");
    assert_eq!(t.sink().first_at.unwrap() - t.sim.start(), MS);

    // Offered at twice the rate: the same, the queue absorbs the difference.
    let mut t = one_way(
        LinkConfig::new(8_000_000, Duration::ZERO).with_overhead(28),
        972,
        1000,
        Duration::from_micros(500),
        1,
    );
    t.run();
    let took = t.sink().last_at.unwrap() - t.sim.start();
    assert!(took.abs_diff(Duration::from_secs(1)) <= MS, "took {took:?}");
}

#[test]
fn arrivals_are_one_serialization_plus_the_delay_after_sending() {
    let mut t = one_way(LinkConfig::new(10_000_000, 37 * MS), 1250, 50, 10 * MS, 1);
    t.run();
    let sent = &t.sender().sent_at;
    let arrivals = &t.sink().arrivals;
    assert_eq!(arrivals.len(), 50);
    for a in arrivals {
        // 1250 bytes at 10 Mbit/s = 1 ms on the wire.
        assert_eq!(a.at - sent[a.seq as usize], 38 * MS, "packet {}", a.seq);
    }
    assert_eq!(t.sink().sequence(), (0..50).collect::<Vec<_>>());
}

#[test]
fn drop_tail_drops_exactly_the_overflow() {
    let cfg = LinkConfig::new(8_000_000, 5 * MS).with_queue_bytes(10_000);
    let mut t = one_way(cfg, 1000, 20, Duration::ZERO, 1);
    t.run();
    // One on the wire at once, ten waiting, the last nine dropped.
    assert_eq!(t.sink().sequence(), (0..=10).collect::<Vec<_>>());
    let stats = t.sim.link(t.link).stats();
    assert_eq!(stats.dropped_queue.packets, 9);
    assert_eq!(stats.delivered.packets, 11);
    assert_eq!(stats.offered.packets, 20);
}

#[test]
fn overloaded_link_delivers_its_capacity_plus_the_queue() {
    // 2000 packets offered at twice the rate for one second; 10 packets of queue.
    let cfg = LinkConfig::new(8_000_000, 5 * MS).with_queue_bytes(10_000);
    let mut t = one_way(cfg, 1000, 2000, Duration::from_micros(500), 1);
    t.run();
    let delivered = t.sink().packets;
    assert!(
        (1009..=1012).contains(&delivered),
        "delivered {delivered}: ~1000 serialized while sending, plus the queue and the one on the wire"
    );
    let stats = t.sim.link(t.link).stats();
    assert_eq!(stats.dropped_queue.packets + delivered, 2000);
    // The queue never held more than its limit: the worst delay is the queue plus one packet.
    let worst = t
        .sink()
        .arrivals
        .iter()
        .map(|a| a.at - t.sender().sent_at[a.seq as usize])
        .max()
        .unwrap();
    assert!(worst <= 5 * MS + 11 * MS, "worst delay {worst:?}");
    assert!(
        worst >= 5 * MS + 10 * MS,
        "the queue never filled: {worst:?}"
    );
}

#[test]
fn random_loss_matches_the_probability() {
    let n = 100_000;
    let cfg = LinkConfig::new(0, 10 * MS).with_loss(0.05);
    let mut t = one_way(cfg, 100, n, Duration::from_micros(10), 11);
    t.run();
    let stats = t.sim.link(t.link).stats();
    assert_binomial(n - t.sink().packets, n, 0.05, "lost");
    assert_eq!(stats.dropped_random.packets, n - t.sink().packets);
    assert_eq!(stats.delivered.packets, t.sink().packets);
    // Losses are spread out, not clustered at the start or end.
    let seqs = t.sink().sequence();
    let first_half = seqs.iter().filter(|s| **s < n / 2).count() as u64;
    assert_binomial(n / 2 - first_half, n / 2, 0.05, "lost in the first half");
}

fn inversions(seqs: &[u64]) -> usize {
    let mut highest = None;
    seqs.iter()
        .filter(|s| {
            let late = highest.is_some_and(|h| **s < h);
            highest = highest.max(Some(**s));
            late
        })
        .count()
}

#[test]
fn reordering_reorders_and_nothing_else_does() {
    let base = LinkConfig::new(20_000_000, 10 * MS);
    let mut plain = one_way(base.clone(), 1000, 5000, Duration::from_micros(500), 3);
    plain.run();
    assert_eq!(inversions(&plain.sink().sequence()), 0);

    let mut t = one_way(
        base.with_reorder(0.05, 8 * MS),
        1000,
        5000,
        Duration::from_micros(500),
        3,
    );
    t.run();
    let seqs = t.sink().sequence();
    assert_eq!(seqs.len(), 5000, "reordering loses nothing");
    let late = inversions(&seqs) as u64;
    // A held-back packet is overtaken unless its extra delay is under one 0.5 ms gap (1/16).
    assert_binomial(late, 5000, 0.05 * (1.0 - 0.5 / 8.0), "late arrivals");
}

#[test]
fn duplication_duplicates() {
    let n = 20_000;
    let cfg = LinkConfig::new(0, 10 * MS).with_duplicate(0.1);
    let mut t = one_way(cfg, 64, n, Duration::from_micros(100), 5);
    t.run();
    let mut copies = vec![0u8; n as usize];
    for seq in t.sink().sequence() {
        copies[seq as usize] += 1;
    }
    assert!(copies.iter().all(|c| (1..=2).contains(c)));
    let duplicated = copies.iter().filter(|c| **c == 2).count() as u64;
    assert_binomial(duplicated, n, 0.1, "duplicated");
    let stats = t.sim.link(t.link).stats();
    assert_eq!(stats.duplicated.packets, duplicated);
    assert_eq!(t.sink().packets, n + duplicated);
}

#[test]
fn outage_drops_everything_in_it_including_packets_in_flight() {
    // One packet every ms from t = 0, arriving 50 ms later; link down [300.5, 500.5) ms.
    let mut t = one_way(LinkConfig::new(0, 50 * MS), 100, 1000, MS, 1);
    let link = t.link;
    t.sim.at(Duration::from_micros(300_500), move |s| {
        s.link_mut(link).set_down(true)
    });
    t.sim.at(Duration::from_micros(500_500), move |s| {
        s.link_mut(link).set_down(false)
    });
    t.run();
    // Sent by 250 ms: arrived before the outage. 251..=300: in flight when it went down.
    // 301..=500: offered while down. From 501: after.
    let expected: Vec<u64> = (0..=250).chain(501..1000).collect();
    assert_eq!(t.sink().sequence(), expected);
    let stats = t.sim.link(link).stats();
    assert_eq!(stats.lost_in_flight.packets, 50);
    assert_eq!(stats.dropped_down.packets, 200);
}

#[test]
fn a_short_outage_still_kills_packets_that_arrive_after_it() {
    // Down only [300.5, 320.5) ms, while packets take 50 ms: those sent 271..=300 are on the
    // wire during the outage and arrive after it ended; they are lost too.
    let cfg = LinkConfig::new(8_000_000, 50 * MS);
    let mut t = one_way(cfg, 100, 1000, MS, 1);
    let link = t.link;
    t.sim.at(Duration::from_micros(300_500), move |s| {
        s.link_mut(link).set_down(true)
    });
    t.sim.at(Duration::from_micros(320_500), move |s| {
        s.link_mut(link).set_down(false)
    });
    t.run();
    let expected: Vec<u64> = (0..=250).chain(321..1000).collect();
    assert_eq!(t.sink().sequence(), expected);
    let stats = t.sim.link(link).stats();
    assert_eq!(stats.lost_in_flight.packets, 50);
    assert_eq!(stats.dropped_down.packets, 20);
}

#[test]
fn unroutable_datagrams_are_counted_and_dropped() {
    let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    let mut sim: Sim<ToyNode> = Sim::new(1);
    // No link A → C at all.
    let to_nowhere = PacedSender::new(
        SocketAddr::new(A, 1),
        SocketAddr::new(c, 1),
        100,
        7,
        Duration::ZERO,
    );
    sim.add_node(ToyNode::Sender(to_nowhere), &[A]);
    // A link B → D exists, but nobody owns D.
    let d = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4));
    let to_nobody = PacedSender::new(
        SocketAddr::new(B, 1),
        SocketAddr::new(d, 1),
        100,
        3,
        Duration::ZERO,
    );
    sim.add_node(ToyNode::Sender(to_nobody), &[B]);
    let sink = sim.add_node(ToyNode::Sink(Sink::new()), &[c]);
    let link = sim.add_link(B, d, LinkConfig::new(0, MS));
    while sim.step() {}
    assert_eq!(sim.stats().unroutable.packets, 10);
    assert_eq!(sim.stats().unroutable.bytes, 1000);
    assert_eq!(sim.node(sink).sink().packets, 0);
    assert_eq!(sim.link(link).stats().offered.packets, 0);
}

#[test]
fn live_rate_change_changes_the_throughput() {
    // 1000-byte packets offered every 0.5 ms; 8 Mbit/s, then 4 Mbit/s from 1 s on.
    let mut t = one_way(
        LinkConfig::new(8_000_000, Duration::ZERO).with_queue_bytes(5_000),
        1000,
        4000,
        Duration::from_micros(500),
        1,
    );
    let link = t.link;
    t.sim.enable_meter(Duration::from_millis(100));
    t.sim.at(Duration::from_secs(1), move |s| {
        let cfg = s.link(link).config().clone().with_rate(4_000_000);
        s.link_mut(link).set_config(cfg);
    });
    t.run();
    let meter = t.sim.meter().unwrap();
    let index = link.index();
    for bucket in 1..9 {
        let rate = meter.rate_bps(index, bucket);
        assert!((rate - 8e6).abs() <= 8e4, "bucket {bucket}: {rate}");
    }
    for bucket in 11..19 {
        let rate = meter.rate_bps(index, bucket);
        assert!((rate - 4e6).abs() <= 8e4, "bucket {bucket}: {rate}");
    }
    assert_eq!(meter.total(index), t.sink().bytes);
}

#[test]
fn meter_buckets_delivered_bytes_per_link() {
    let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    let mut sim: Sim<ToyNode> = Sim::new(1);
    sim.enable_meter(Duration::from_millis(100));
    // Two paths into the sink: A → C at 4 Mbit/s offered, B → C at 1 Mbit/s offered.
    for (ip, interval) in [(A, 2 * MS), (B, 8 * MS)] {
        let sender = PacedSender::new(
            SocketAddr::new(ip, 1),
            SocketAddr::new(c, 1),
            1000,
            u64::try_from(Duration::from_secs(1).as_nanos() / interval.as_nanos()).unwrap(),
            interval,
        );
        sim.add_node(ToyNode::Sender(sender), &[ip]);
    }
    sim.add_node(ToyNode::Sink(Sink::counting()), &[c]);
    let fast = sim.add_link(A, c, LinkConfig::new(8_000_000, 10 * MS));
    let slow = sim.add_link(B, c, LinkConfig::new(8_000_000, 30 * MS));
    while sim.step() {}
    let meter = sim.meter().unwrap();
    assert_eq!(meter.total(fast.index()), 500_000);
    assert_eq!(meter.total(slow.index()), 125_000);
    for bucket in 1..10 {
        assert_eq!(
            meter.bytes_in(fast.index(), bucket),
            50_000,
            "bucket {bucket}"
        );
    }
    // The slow path's first bucket misses its first 30 ms.
    assert_eq!(meter.bytes_in(slow.index(), 0), 9_000);
    assert_eq!(meter.bytes_in(slow.index(), 10), 3_000);
}
