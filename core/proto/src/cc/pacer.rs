//! Token-bucket pacer: spreads a window over the RTT instead of sending it in line-rate bursts
//! that overflow shallow buffers (WiFi and cellular schedulers are unkind to bursts).
//!
//! The rate is `cwnd/srtt` times Linux's pacing ratios: 2 in slow start (so the window can
//! still double each round) and 1.25 in congestion avoidance (headroom for ACK jitter). The
//! bucket holds `rate × 2 ms`, at least 2 MSS and at most 64 MSS, so an idle sender regains at
//! most that burst. Two milliseconds because a userspace runtime's timers tick every
//! millisecond: a smaller bucket would wake it for a handful of segments at a time (and 64
//! segments is what one GSO send carries). Before the first RTT sample there is nothing to
//! pace against: everything may leave at once.

use std::time::{Duration, Instant};

const SLOW_START_RATIO: f64 = 2.0;
const AVOIDANCE_RATIO: f64 = 1.25;
const BURST_TIME: Duration = Duration::from_millis(2);
const MIN_BURST_SEGMENTS: f64 = 2.0;
const MAX_BURST_SEGMENTS: f64 = 64.0;
/// Rounding slack, in bytes, when comparing tokens computed in floating point.
const EPSILON: f64 = 1e-6;

/// One per subflow. Ask `delay_until` before each transmission, report it with `on_sent`.
#[derive(Clone, Debug, Default)]
pub struct Pacer {
    /// Bytes that may leave now; negative after a send that overdrew the bucket.
    tokens: f64,
    capacity: f64,
    /// Bytes per second; zero while unpaced.
    rate: f64,
    last: Option<Instant>,
}

impl Pacer {
    /// A pacer that does not pace until it is given a rate.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rate currently applied, in bytes per second (zero before the first RTT sample).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Bucket size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + self.rate * elapsed).min(self.capacity);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
    }

    /// None when `bytes` may be sent at `now`, else the instant from which they may. Takes the
    /// current window and srtt each time so the rate follows the controller.
    pub fn delay_until(
        &mut self,
        now: Instant,
        bytes: u64,
        cwnd: u64,
        srtt: Duration,
        mss: u64,
        slow_start: bool,
    ) -> Option<Instant> {
        if srtt.is_zero() {
            self.rate = 0.0;
            self.last = None;
            return None;
        }
        let ratio = if slow_start {
            SLOW_START_RATIO
        } else {
            AVOIDANCE_RATIO
        };
        let mss = mss.max(1) as f64;
        let rate = (cwnd.max(1) as f64 / srtt.as_secs_f64() * ratio).max(f64::MIN_POSITIVE);
        let capacity = (rate * BURST_TIME.as_secs_f64())
            .max(MIN_BURST_SEGMENTS * mss)
            .min(MAX_BURST_SEGMENTS * mss);
        if self.last.is_none() || self.rate == 0.0 {
            // Pacing starts (or restarts after losing the RTT) with a full bucket.
            self.tokens = capacity;
            self.last = Some(now);
        } else {
            self.refill(now);
        }
        self.rate = rate;
        self.capacity = capacity;
        self.tokens = self.tokens.min(capacity);

        // A segment larger than the bucket goes once the bucket is full.
        let needed = (bytes as f64).min(capacity);
        if self.tokens + EPSILON >= needed {
            return None;
        }
        // Never hold data back longer than one srtt: beyond that the window, not the pacer,
        // is what limits the sender (and a 1-byte window must not mean an hour-long wait).
        let wait = Duration::try_from_secs_f64((needed - self.tokens) / rate)
            .unwrap_or(srtt)
            .min(srtt)
            // Round up so that at the returned instant the tokens are really there.
            .saturating_add(Duration::from_nanos(1));
        now.checked_add(wait)
    }

    /// `bytes` left at `now`: they are charged to the bucket (which may go negative when the
    /// caller sends regardless, e.g. a retransmission that may not wait).
    pub fn on_sent(&mut self, now: Instant, bytes: u64) {
        if self.rate == 0.0 {
            return;
        }
        self.refill(now);
        self.tokens = (self.tokens - bytes as f64).max(-1e18);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_exactly_for_the_missing_tokens() {
        let now = Instant::now();
        let srtt = Duration::from_millis(100);
        let mut p = Pacer::new();
        // 100 kB / 100 ms × 1.25 = 1.25 MB/s; bucket 2500 B (rate × 2 ms) over 2 MSS = 1000.
        assert_eq!(p.delay_until(now, 500, 100_000, srtt, 500, false), None);
        assert_eq!(p.capacity(), 2500);
        p.on_sent(now, 2500);
        let t = p.delay_until(now, 500, 100_000, srtt, 500, false).unwrap();
        // 500 B at 1.25 MB/s = 400 µs.
        let wait = t - now;
        assert!(
            wait >= Duration::from_micros(400) && wait <= Duration::from_nanos(400_002),
            "{wait:?}"
        );
        assert_eq!(p.delay_until(t, 500, 100_000, srtt, 500, false), None);
    }
}
