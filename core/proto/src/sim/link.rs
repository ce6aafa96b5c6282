//! A one-directional link: serialization at a rate behind a drop-tail queue, propagation delay,
//! random loss, reordering, duplication and outages.
//!
//! The model is pure (no clock, no I/O): the caller offers each packet with the current time and
//! gets back its fate. The simulator uses it, and so can a real-socket path emulator that holds
//! datagrams until their delivery time.
//!
//! Order of decisions for one offered packet (the same as Linux netem): link down, random loss
//! (a lost packet does not occupy the link), drop-tail queue, serialization, propagation delay,
//! optional extra reordering delay, optional duplicate (a second copy serialized right behind the
//! first, subject to the same queue limit).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::random::{Random, SeededRandom};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parameters of one direction of a path. Every field may be changed while packets are in
/// flight (`Link::set_config`); packets already accepted keep the times they were given.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Bits per second; 0 = unlimited (no serialization delay, no queue).
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Drop-tail limit on the bytes waiting for serialization (the packet on the wire does not
    /// count; wire bytes, i.e. including `per_packet_overhead`). 0 = unlimited.
    pub queue_limit_bytes: usize,
    /// Independent drop probability per packet.
    pub loss: f64,
    /// Probability that a packet gets an extra delay, uniform in [0, `reorder_delay`].
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Bytes added to every packet for rate and queue accounting (28 for IPv4 + UDP headers).
    pub per_packet_overhead: usize,
}

impl LinkConfig {
    /// A perfect link: this rate and one-way delay, unlimited queue, no impairments.
    pub fn new(rate_bps: u64, delay: Duration) -> Self {
        Self {
            rate_bps,
            delay,
            queue_limit_bytes: 0,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            per_packet_overhead: 0,
        }
    }

    /// Queue limit in bytes (0 = unlimited).
    pub fn with_queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_limit_bytes = bytes;
        self
    }

    /// Queue limit of `factor` bandwidth-delay products, where the delay is the round trip
    /// assuming a symmetric path: `factor × rate × 2 × delay`. Keeps the limit unlimited on an
    /// unlimited-rate link; at least one byte otherwise, so a tiny factor never means "unlimited".
    pub fn with_queue_bdp(mut self, factor: f64) -> Self {
        assert!(factor >= 0.0, "queue factor must not be negative");
        if self.rate_bps > 0 {
            let bytes = factor * self.bdp_bytes() as f64;
            self.queue_limit_bytes = (bytes.round() as usize).max(1);
        }
        self
    }

    /// Queue limit equal to `ms` milliseconds of serialization at the link's rate (a queue
    /// that adds at most that much delay). Unlimited on an unlimited-rate link.
    pub fn with_queue_ms(mut self, ms: u64) -> Self {
        if self.rate_bps > 0 {
            let bytes = self.rate_bps as u128 * ms as u128 / 8_000;
            self.queue_limit_bytes = (bytes as usize).max(1);
        }
        self
    }

    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = checked_probability(p, "loss");
        self
    }

    /// With probability `p` a packet is held back by an extra delay uniform in [0, `max_extra`],
    /// so packets sent after it may overtake it.
    pub fn with_reorder(mut self, p: f64, max_extra: Duration) -> Self {
        self.reorder = checked_probability(p, "reorder");
        self.reorder_delay = max_extra;
        self
    }

    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = checked_probability(p, "duplicate");
        self
    }

    pub fn with_overhead(mut self, bytes: usize) -> Self {
        self.per_packet_overhead = bytes;
        self
    }

    pub fn with_rate(mut self, rate_bps: u64) -> Self {
        self.rate_bps = rate_bps;
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Bytes in flight on a symmetric path at full rate: `rate × 2 × delay / 8`.
    pub fn bdp_bytes(&self) -> usize {
        (self.rate_bps as u128 * 2 * self.delay.as_nanos() / (8 * NANOS_PER_SEC)) as usize
    }

    /// Time to put a packet of `size` payload bytes on the wire at this rate.
    pub fn serialization_time(&self, size: usize) -> Duration {
        if self.rate_bps == 0 {
            return Duration::ZERO;
        }
        let bits = (size + self.per_packet_overhead) as u128 * 8;
        nanos(bits * NANOS_PER_SEC / self.rate_bps as u128)
    }
}

fn checked_probability(p: f64, what: &str) -> f64 {
    assert!(
        (0.0..=1.0).contains(&p),
        "{what} probability {p} is not in [0, 1]"
    );
    p
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// What the link does with one offered packet. `T` is the time type: `Instant` from the link,
/// `Duration` since the start in simulator traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate<T = Instant> {
    Dropped(DropReason),
    /// Delivered once, at this time.
    Deliver(T),
    /// Delivered twice: the original, then the copy (not necessarily later, if reordered).
    Duplicate(T, T),
}

impl<T> Fate<T> {
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Fate<U> {
        match self {
            Fate::Dropped(reason) => Fate::Dropped(reason),
            Fate::Deliver(t) => Fate::Deliver(f(t)),
            Fate::Duplicate(a, b) => Fate::Duplicate(f(a), f(b)),
        }
    }

    pub fn is_dropped(&self) -> bool {
        matches!(self, Fate::Dropped(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The link was down when the packet was offered.
    Down,
    /// The drop-tail queue was full.
    Queue,
    /// Random loss.
    Random,
}

/// A count of packets and their payload bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    pub fn add(&mut self, size: usize) {
        self.packets += 1;
        self.bytes += size as u64;
    }
}

impl std::ops::Add for Counter {
    type Output = Counter;
    fn add(self, other: Counter) -> Counter {
        Counter {
            packets: self.packets + other.packets,
            bytes: self.bytes + other.bytes,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub offered: Counter,
    /// Copies that reached the far end (counted by `Link::arrive`), duplicates included.
    pub delivered: Counter,
    pub dropped_down: Counter,
    pub dropped_queue: Counter,
    pub dropped_random: Counter,
    /// Accepted, then lost because the link went down before they arrived.
    pub lost_in_flight: Counter,
    /// Extra copies made by duplication.
    pub duplicated: Counter,
}

impl LinkStats {
    /// Everything dropped at the sender side plus everything lost in flight.
    pub fn dropped(&self) -> Counter {
        self.dropped_down + self.dropped_queue + self.dropped_random + self.lost_in_flight
    }

    pub fn dropped_by(&self, reason: DropReason) -> Counter {
        match reason {
            DropReason::Down => self.dropped_down,
            DropReason::Queue => self.dropped_queue,
            DropReason::Random => self.dropped_random,
        }
    }
}

/// One direction of a path. See the module documentation for the model.
#[derive(Clone, Debug)]
pub struct Link {
    cfg: LinkConfig,
    rng: SeededRandom,
    down: bool,
    /// Bumped every time the link goes down: a packet accepted in an earlier epoch was on the
    /// wire or in the queue when the link failed, so it never arrives.
    epoch: u64,
    /// When the transmitter finishes the last accepted packet; `None` after an outage.
    busy_until: Option<Instant>,
    /// Remainder of `bits × 1e9 / rate` carried between back-to-back packets, so that a long
    /// burst drains at exactly the rate instead of drifting by a nanosecond per packet.
    carry_bit_nanos: u128,
    /// Accepted packets that have not started serialization yet: (start time, wire bytes).
    waiting: VecDeque<(Instant, usize)>,
    waiting_bytes: usize,
    /// Delivery time of the last non-reordered packet: later ones never arrive before it, even
    /// when the delay is lowered live.
    last_in_order: Option<Instant>,
    stats: LinkStats,
}

impl Link {
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: SeededRandom::new(seed),
            down: false,
            epoch: 0,
            busy_until: None,
            carry_bit_nanos: 0,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            last_in_order: None,
            stats: LinkStats::default(),
        }
    }

    /// Decides what happens to a packet of `size` payload bytes offered at `now`. Calls must
    /// come with non-decreasing `now`.
    pub fn offer(&mut self, now: Instant, size: usize) -> Fate {
        self.stats.offered.add(size);
        if self.down {
            self.stats.dropped_down.add(size);
            return Fate::Dropped(DropReason::Down);
        }
        if self.chance(self.cfg.loss) {
            self.stats.dropped_random.add(size);
            return Fate::Dropped(DropReason::Random);
        }
        let Some(done) = self.serialize(now, size) else {
            self.stats.dropped_queue.add(size);
            return Fate::Dropped(DropReason::Queue);
        };
        let first = self.propagate(done);
        if self.chance(self.cfg.duplicate)
            && let Some(copy_done) = self.serialize(now, size)
        {
            self.stats.duplicated.add(size);
            let copy = self.propagate(copy_done);
            return Fate::Duplicate(first, copy);
        }
        Fate::Deliver(first)
    }

    /// Call when a copy reaches its delivery time, with the `epoch()` read when it was offered.
    /// Returns false (and counts it lost in flight) if the link is down or has been down since.
    pub fn arrive(&mut self, size: usize, offered_in_epoch: u64) -> bool {
        if self.down || offered_in_epoch != self.epoch {
            self.stats.lost_in_flight.add(size);
            false
        } else {
            self.stats.delivered.add(size);
            true
        }
    }

    /// Taking the link down loses everything queued or on the wire; packets offered while it is
    /// down are dropped.
    pub fn set_down(&mut self, down: bool) {
        if down && !self.down {
            self.epoch += 1;
            self.busy_until = None;
            self.carry_bit_nanos = 0;
            self.waiting.clear();
            self.waiting_bytes = 0;
            self.last_in_order = None;
        }
        self.down = down;
    }

    pub fn is_down(&self) -> bool {
        self.down
    }

    /// Outage counter; see `arrive`.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Applies to packets offered from now on.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        self.cfg = cfg;
    }

    /// Bytes (wire size) waiting for serialization at `now`, not counting the packet on the wire.
    pub fn queued_bytes(&self, now: Instant) -> usize {
        self.waiting
            .iter()
            .rev()
            .take_while(|(start, _)| *start > now)
            .map(|(_, bytes)| bytes)
            .sum()
    }

    /// How long a packet offered at `now` would wait before its serialization starts.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.busy_until
            .map_or(Duration::ZERO, |busy| busy.saturating_duration_since(now))
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.next_f64() < p
    }

    /// Queues the packet behind those already accepted; returns when its last bit leaves, or
    /// `None` when the queue has no room.
    fn serialize(&mut self, now: Instant, size: usize) -> Option<Instant> {
        if self.cfg.rate_bps == 0 {
            return Some(now);
        }
        while let Some(&(start, bytes)) = self.waiting.front() {
            if start > now {
                break;
            }
            self.waiting.pop_front();
            self.waiting_bytes -= bytes;
        }
        let wire = size + self.cfg.per_packet_overhead;
        let start = match self.busy_until {
            Some(busy) if busy >= now => busy,
            // Idle: no credit accumulates, the packet starts now.
            _ => {
                self.carry_bit_nanos = 0;
                now
            }
        };
        let must_wait = start > now;
        let limit = self.cfg.queue_limit_bytes;
        if must_wait && limit > 0 && self.waiting_bytes + wire > limit {
            return None;
        }
        let rate = self.cfg.rate_bps as u128;
        let bit_nanos = wire as u128 * 8 * NANOS_PER_SEC + self.carry_bit_nanos;
        self.carry_bit_nanos = bit_nanos % rate;
        let done = start + nanos(bit_nanos / rate);
        self.busy_until = Some(done);
        if must_wait {
            self.waiting.push_back((start, wire));
            self.waiting_bytes += wire;
        }
        Some(done)
    }

    fn propagate(&mut self, serialized: Instant) -> Instant {
        let arrival = serialized + self.cfg.delay;
        if self.chance(self.cfg.reorder) {
            // Held back on its own; the in-order stream is not delayed behind it.
            return arrival + self.cfg.reorder_delay.mul_f64(self.rng.next_f64());
        }
        let arrival = self.last_in_order.map_or(arrival, |last| arrival.max(last));
        self.last_in_order = Some(arrival);
        arrival
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn deliver_time(fate: Fate) -> Instant {
        match fate {
            Fate::Deliver(t) => t,
            other => panic!("expected a single delivery, got {other:?}"),
        }
    }

    #[test]
    fn burst_drains_at_the_rate_then_propagates() {
        let t0 = Instant::now();
        // 1000-byte packets at 8 Mbit/s: 1 ms each.
        let mut link = Link::new(LinkConfig::new(8_000_000, 20 * MS), 1);
        for i in 1..=1000u32 {
            let at = deliver_time(link.offer(t0, 1000));
            assert_eq!(at, t0 + i * MS + 20 * MS, "packet {i}");
        }
    }

    #[test]
    fn exact_over_long_bursts_with_awkward_rates() {
        let t0 = Instant::now();
        // 1500 bytes at 7 Mbit/s = 1.714285... ms: rounding per packet would drift.
        let mut link = Link::new(LinkConfig::new(7_000_000, Duration::ZERO), 1);
        let mut last = t0;
        for _ in 0..7000 {
            last = deliver_time(link.offer(t0, 1500));
        }
        // 7000 × 12000 bits / 7e6 bit/s = 12 s exactly.
        assert_eq!(last, t0 + Duration::from_secs(12));
    }

    #[test]
    fn idle_time_earns_no_credit() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(8_000_000, 5 * MS), 1);
        assert_eq!(deliver_time(link.offer(t0, 1000)), t0 + 6 * MS);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(deliver_time(link.offer(later, 1000)), later + 6 * MS);
        assert_eq!(deliver_time(link.offer(later, 1000)), later + 7 * MS);
        // Offered halfway through the previous packet's serialization: waits for it.
        let mid = later + Duration::from_micros(1500);
        assert_eq!(deliver_time(link.offer(mid, 1000)), later + 8 * MS);
    }

    #[test]
    fn overhead_counts_toward_the_rate() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(8_000_000, Duration::ZERO).with_overhead(28);
        let mut link = Link::new(cfg, 1);
        assert_eq!(
            deliver_time(link.offer(t0, 972)),
            t0 + MS,
            "972 + 28 bytes = 1 ms at 8 Mbit/s"
        );
    }

    #[test]
    fn drop_tail_keeps_exactly_what_fits() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(8_000_000, Duration::ZERO).with_queue_bytes(10_000);
        let mut link = Link::new(cfg, 1);
        let fates: Vec<Fate> = (0..20).map(|_| link.offer(t0, 1000)).collect();
        // One goes straight onto the wire, ten wait, nine are dropped.
        assert!(fates[..11].iter().all(|f| !f.is_dropped()));
        assert!(
            fates[11..]
                .iter()
                .all(|f| *f == Fate::Dropped(DropReason::Queue))
        );
        assert_eq!(link.queued_bytes(t0), 10_000);
        // At 3.5 ms packets 0..=3 have started: three places are free again.
        let t = t0 + Duration::from_micros(3500);
        assert_eq!(link.queued_bytes(t), 7_000);
        assert_eq!(link.queue_delay(t), Duration::from_micros(7500));
        let dropped = (0..5).filter(|_| link.offer(t, 1000).is_dropped()).count();
        assert_eq!(dropped, 2);
        let stats = link.stats();
        assert_eq!(stats.offered.packets, 25);
        assert_eq!(stats.dropped_queue.packets, 11);
        assert_eq!(stats.dropped().packets, 11);
    }

    #[test]
    fn a_queue_smaller_than_a_packet_still_lets_one_through_at_a_time() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(8_000_000, Duration::ZERO).with_queue_bytes(500);
        let mut link = Link::new(cfg, 1);
        assert_eq!(deliver_time(link.offer(t0, 1000)), t0 + MS);
        assert_eq!(link.offer(t0, 1000), Fate::Dropped(DropReason::Queue));
        assert_eq!(
            link.offer(t0, 400),
            Fate::Deliver(t0 + Duration::from_micros(1400))
        );
        let idle = t0 + 2 * MS;
        assert_eq!(deliver_time(link.offer(idle, 1000)), idle + MS);
    }

    #[test]
    fn queue_sizing_helpers() {
        let cfg = LinkConfig::new(40_000_000, 10 * MS);
        assert_eq!(cfg.bdp_bytes(), 100_000);
        assert_eq!(cfg.clone().with_queue_bdp(1.5).queue_limit_bytes, 150_000);
        assert_eq!(cfg.clone().with_queue_ms(20).queue_limit_bytes, 100_000);
        let unlimited = LinkConfig::new(0, 10 * MS).with_queue_bdp(1.0);
        assert_eq!(unlimited.queue_limit_bytes, 0);
        assert_eq!(cfg.serialization_time(1000), Duration::from_micros(200));
    }

    #[test]
    fn lowering_the_delay_never_lets_packets_overtake() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(0, 50 * MS), 1);
        let first = deliver_time(link.offer(t0, 100));
        link.set_config(LinkConfig::new(0, 10 * MS));
        let second = deliver_time(link.offer(t0 + MS, 100));
        assert_eq!(second, first);
        let third = deliver_time(link.offer(t0 + 45 * MS, 100));
        assert_eq!(third, t0 + 55 * MS);
    }

    #[test]
    fn rate_change_applies_to_later_packets() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(8_000_000, Duration::ZERO), 1);
        assert_eq!(deliver_time(link.offer(t0, 1000)), t0 + MS);
        link.set_config(LinkConfig::new(4_000_000, Duration::ZERO));
        assert_eq!(deliver_time(link.offer(t0, 1000)), t0 + 3 * MS);
    }

    /// |observed - expected| within 5 standard deviations of a binomial count.
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
    fn random_loss_rate_is_as_configured() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(0, MS).with_loss(0.03), 42);
        let n = 200_000;
        let lost = (0..n)
            .filter(|_| link.offer(t0, 1200) == Fate::Dropped(DropReason::Random))
            .count() as u64;
        assert_binomial(lost, n, 0.03, "lost");
        assert_eq!(link.stats().dropped_random.packets, lost);
        assert_eq!(link.stats().dropped_random.bytes, lost * 1200);
    }

    #[test]
    fn lost_packets_do_not_occupy_the_link() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(8_000_000, Duration::ZERO).with_loss(0.5), 3);
        let mut delivered = 0u32;
        for _ in 0..1000 {
            if let Fate::Deliver(at) = link.offer(t0, 1000) {
                delivered += 1;
                assert_eq!(at, t0 + delivered * MS);
            }
        }
        assert!(delivered > 0);
    }

    #[test]
    fn reordering_lets_later_packets_overtake() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(8_000_000, 10 * MS).with_reorder(0.1, 20 * MS);
        let mut link = Link::new(cfg, 7);
        let n = 20_000u32;
        let times: Vec<Instant> = (0..n).map(|_| deliver_time(link.offer(t0, 1000))).collect();
        // A packet held back: some later packet arrives strictly before it.
        let mut overtaken = 0u64;
        let mut min_after: Option<Instant> = None;
        for at in times.iter().rev() {
            if min_after.is_some_and(|m| *at > m) {
                overtaken += 1;
            }
            min_after = Some(min_after.map_or(*at, |m| m.min(*at)));
        }
        // Held back by more than one packet time (1 ms) → overtaken: p × (1 - 1/20) of all.
        assert_binomial(overtaken, n as u64, 0.1 * 0.95, "overtaken");
        // Everything else stays on its FIFO schedule.
        let max_extra = times
            .iter()
            .enumerate()
            .map(|(i, at)| at.duration_since(t0 + (i as u32 + 1) * MS + 10 * MS))
            .max()
            .unwrap();
        assert!(max_extra <= 20 * MS);
    }

    #[test]
    fn duplication_delivers_two_copies_back_to_back() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(8_000_000, 5 * MS).with_duplicate(0.2), 9);
        let n = 10_000u64;
        let mut dups = 0u64;
        // Every copy takes its own 1 ms slot on the wire, in order.
        let mut slots = 0u32;
        let mut next_slot = || {
            slots += 1;
            t0 + slots * MS + 5 * MS
        };
        for _ in 0..n {
            match link.offer(t0, 1000) {
                Fate::Duplicate(a, b) => {
                    dups += 1;
                    assert_eq!(a, next_slot());
                    assert_eq!(b, next_slot(), "the copy is serialized right behind");
                }
                Fate::Deliver(a) => assert_eq!(a, next_slot()),
                Fate::Dropped(r) => panic!("unexpected drop {r:?}"),
            }
        }
        assert_binomial(dups, n, 0.2, "duplicates");
        assert_eq!(link.stats().duplicated.packets, dups);
    }

    #[test]
    fn outage_drops_offered_and_in_flight_packets() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(8_000_000, 50 * MS), 1);
        let before = link.epoch();
        assert!(!link.offer(t0, 1000).is_dropped());
        assert!(!link.offer(t0, 1000).is_dropped());
        link.set_down(true);
        assert!(link.is_down());
        assert_eq!(link.offer(t0 + MS, 500), Fate::Dropped(DropReason::Down));
        link.set_down(false);
        // The first two were in flight when the link failed: lost even though it is up again.
        assert!(!link.arrive(1000, before));
        assert!(!link.arrive(1000, before));
        // The queue was flushed with them: a new packet starts at once.
        let now = t0 + 2 * MS;
        let epoch = link.epoch();
        assert_eq!(deliver_time(link.offer(now, 1000)), now + 51 * MS);
        assert!(link.arrive(1000, epoch));
        let stats = link.stats();
        assert_eq!(stats.lost_in_flight.packets, 2);
        assert_eq!(stats.dropped_down.packets, 1);
        assert_eq!(stats.delivered.packets, 1);
        assert_eq!(stats.dropped().packets, 3);
    }

    #[test]
    fn same_seed_same_decisions() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(10_000_000, 10 * MS)
            .with_loss(0.1)
            .with_reorder(0.1, 5 * MS)
            .with_duplicate(0.05)
            .with_queue_bytes(20_000);
        let run = |seed| {
            let mut link = Link::new(cfg.clone(), seed);
            (0..2000)
                .map(|i| link.offer(t0 + i * Duration::from_micros(900), 1200))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
