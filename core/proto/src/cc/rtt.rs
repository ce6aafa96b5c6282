//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Karn's algorithm is the caller's job: never feed a sample from a segment that was
//! retransmitted (it is ambiguous which transmission the ACK answers), unless timestamps
//! disambiguate it. A valid sample also clears the exponential backoff.

use std::time::{Duration, Instant};

/// Linux's floor (RFC 6298 asks for 1 s; 200 ms is what deployed stacks use).
pub(crate) const DEFAULT_MIN_RTO: Duration = Duration::from_millis(200);
/// RFC 6298 (2.5): an upper bound of at least 60 s.
pub(crate) const DEFAULT_MAX_RTO: Duration = Duration::from_secs(60);
/// RFC 6298 (2.1): before the first sample.
pub(crate) const DEFAULT_INITIAL_RTO: Duration = Duration::from_secs(1);
/// G in RFC 6298: the timer granularity the RTO must exceed srtt by at least.
pub(crate) const DEFAULT_GRANULARITY: Duration = Duration::from_millis(1);
/// How long a minimum RTT stays valid; route changes on mobile paths make older minima
/// misleading.
pub(crate) const DEFAULT_MIN_RTT_WINDOW: Duration = Duration::from_secs(30);

/// Samples above this (about 4.9 days) are clamped, keeping every product inside `u128`
/// nanoseconds and every result inside `Duration`.
const MAX_SAMPLE_NANOS: u64 = 1 << 52;

#[derive(Clone, Copy, Debug)]
struct MinSample {
    rtt: Duration,
    at: Option<Instant>,
}

/// Windowed minimum with three candidates (best, second, third), each newer and larger than
/// the previous, so that when the best one ages out a good successor is already known.
#[derive(Clone, Copy, Debug)]
struct WindowedMin {
    s: [MinSample; 3],
}

impl WindowedMin {
    fn reset(sample: MinSample) -> Self {
        Self { s: [sample; 3] }
    }

    fn age(old: &MinSample, now: Option<Instant>) -> Option<Duration> {
        Some(now?.saturating_duration_since(old.at?))
    }

    fn expired(window: Duration, old: &MinSample, now: Option<Instant>) -> bool {
        Self::age(old, now).is_some_and(|age| age > window)
    }

    fn update(&mut self, window: Duration, new: MinSample) {
        if new.rtt <= self.s[0].rtt || Self::expired(window, &self.s[2], new.at) {
            *self = Self::reset(new);
            return;
        }
        if new.rtt <= self.s[1].rtt {
            self.s[1] = new;
            self.s[2] = new;
        } else if new.rtt <= self.s[2].rtt {
            self.s[2] = new;
        }
        let Some(age) = Self::age(&self.s[0], new.at) else {
            return;
        };
        if age > window {
            // The best aged out: promote the younger candidates.
            self.s = [self.s[1], self.s[2], new];
            if Self::expired(window, &self.s[0], new.at) {
                self.s = [self.s[1], self.s[2], new];
            }
        } else if self.s[1].at == self.s[0].at && age > window / 4 {
            // Keep fresher (if larger) candidates in reserve, so an expiring best is
            // replaced by something recent rather than by the next sample whatever it is.
            self.s[1] = new;
            self.s[2] = new;
        } else if self.s[2].at == self.s[1].at && age > window / 2 {
            self.s[2] = new;
        }
    }

    fn get(&self) -> Duration {
        self.s[0].rtt
    }
}

/// RFC 6298 estimator: srtt, rttvar, RTO with backoff, plus the latest and minimum RTT.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
    latest: Duration,
    min: Option<WindowedMin>,
    backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
    initial_rto: Duration,
    granularity: Duration,
    min_rtt_window: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos())
        .unwrap_or(u64::MAX)
        .min(MAX_SAMPLE_NANOS)
}

impl RttEstimator {
    /// An estimator with no samples (initial RTO, RFC 6298).
    pub fn new() -> Self {
        Self {
            srtt: Duration::ZERO,
            rttvar: Duration::ZERO,
            latest: Duration::ZERO,
            min: None,
            backoff: 0,
            min_rto: DEFAULT_MIN_RTO,
            max_rto: DEFAULT_MAX_RTO,
            initial_rto: DEFAULT_INITIAL_RTO,
            granularity: DEFAULT_GRANULARITY,
            min_rtt_window: DEFAULT_MIN_RTT_WINDOW,
        }
    }

    /// Lower bound of the RTO (RFC 6298 says 1 s; the default is Linux's 200 ms).
    pub fn with_min_rto(mut self, min_rto: Duration) -> Self {
        self.min_rto = min_rto;
        self
    }

    /// Upper bound of the RTO, backoff included.
    pub fn with_max_rto(mut self, max_rto: Duration) -> Self {
        self.max_rto = max_rto;
        self
    }

    /// The RTO before any sample (1 s per RFC 6298; 3 s when a SYN was retransmitted).
    pub fn with_initial_rto(mut self, initial_rto: Duration) -> Self {
        self.initial_rto = initial_rto;
        self
    }

    /// Clock granularity G.
    pub fn with_granularity(mut self, granularity: Duration) -> Self {
        self.granularity = granularity;
        self
    }

    /// How long a minimum RTT seen through `update_at` stays the minimum.
    pub fn with_min_rtt_window(mut self, window: Duration) -> Self {
        self.min_rtt_window = window;
        self
    }

    /// A new RTT measurement without a timestamp: the minimum never expires.
    pub fn update(&mut self, sample: Duration) {
        self.sample(None, sample);
    }

    /// A new RTT measurement taken at `now`: the minimum RTT is the least over the window.
    pub fn update_at(&mut self, now: Instant, sample: Duration) {
        self.sample(Some(now), sample);
    }

    fn sample(&mut self, at: Option<Instant>, sample: Duration) {
        let r = nanos(sample);
        let sample = Duration::from_nanos(r);
        if self.has_samples() {
            // RFC 6298 (2.3), rttvar first, with the old srtt; β = 1/4, α = 1/8.
            let srtt = u128::from(nanos(self.srtt));
            let rttvar = u128::from(nanos(self.rttvar));
            let r = u128::from(r);
            let rttvar = (3 * rttvar + srtt.abs_diff(r)) / 4;
            let srtt = (7 * srtt + r) / 8;
            // Both are averages of values ≤ MAX_SAMPLE_NANOS, so they fit in u64.
            self.rttvar = Duration::from_nanos(rttvar as u64);
            self.srtt = Duration::from_nanos(srtt as u64);
        } else {
            // RFC 6298 (2.2).
            self.srtt = sample;
            self.rttvar = sample / 2;
        }
        self.latest = sample;
        let new = MinSample { rtt: sample, at };
        match &mut self.min {
            Some(m) => m.update(self.min_rtt_window, new),
            None => self.min = Some(WindowedMin::reset(new)),
        }
        self.backoff = 0;
    }

    /// The retransmission timer fired: double the RTO (RFC 6298 (5.5)) until a new sample.
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Whether any RTT sample was taken.
    pub fn has_samples(&self) -> bool {
        self.min.is_some()
    }

    /// Smoothed RTT; zero before the first sample.
    pub fn srtt(&self) -> Duration {
        self.srtt
    }

    /// RTT variation; zero before the first sample.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// Minimum RTT (over the window when samples carry times); zero before the first sample.
    pub fn min_rtt(&self) -> Duration {
        self.min.map_or(Duration::ZERO, |m| m.get())
    }

    /// The most recent sample; zero before the first.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// Timeouts since the last valid sample.
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// RTO without backoff: `srtt + max(G, 4·rttvar)` within `[min_rto, max_rto]`.
    pub fn base_rto(&self) -> Duration {
        let rto = if self.has_samples() {
            self.srtt
                .saturating_add(self.granularity.max(self.rttvar.saturating_mul(4)))
        } else {
            self.initial_rto
        };
        // `max` then `min`: a misconfigured min_rto > max_rto yields max_rto, never a panic.
        rto.max(self.min_rto).min(self.max_rto)
    }

    /// The current RTO: the base doubled once per timeout, capped at `max_rto`.
    pub fn rto(&self) -> Duration {
        let mut rto = self.base_rto();
        for _ in 0..self.backoff.min(64) {
            if rto >= self.max_rto {
                break;
            }
            rto = rto.saturating_mul(2);
        }
        rto.min(self.max_rto)
    }
}
