//! Leaving the first slow start before the queue overflows (the delay signal of HyStart and
//! RFC 9406, applied per sample), and going back to it when that was a false alarm.
//!
//! The delay signal comes a round late: the samples that end slow start belong to segments
//! sent when the window was up to half of what it is now, so a window kept at the exit is
//! up to twice what filled the queue that far. With a drop-tail buffer of one BDP (the
//! cellular links of docs/ARCHITECTURE.md, "Targets") that overshoot fills the buffer, and
//! the first congestion-avoidance steps lose a burst that the receiver sees as a stall of a
//! full-queue round trip. So the exit also drains: the window is scaled by the lowest RTT
//! over the exiting sample (`drained_window`), which leaves at least the path's BDP in flight
//! (the link stays busy) and removes the queue the late signal let build.
//!
//! RFC 9406 compares each round's minimum RTT with the previous round's, which notices a
//! standing queue only a round after it formed: one window doubling too late for the
//! one-BDP buffers of mobile links, so slow start still ends in a burst of losses. Here eight
//! RTT samples in a row above the lowest RTT seen (by RFC 9406's threshold, an eighth of
//! that RTT clamped to 4..16 ms) end slow start at once, with the window as ssthresh.
//! Occasional jitter does not, since one low sample resets the count.
//!
//! A pause of whatever handles the ACKs (a busy phone, a descheduled userspace stack)
//! delays every ACK in it by the same few milliseconds and looks like a queue. Ending slow
//! start on it would leave the path far below its capacity for seconds (CUBIC grows slowly
//! from a window with no W_max). So, like RFC 9406's conservative slow start, the exit is
//! watched for a few rounds: a real queue stays, since the window keeps growing past the
//! path's capacity; if the RTT instead falls back near the lowest one for half a round,
//! slow start resumes.

use std::time::{Duration, Instant};

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// How long after an exit a fall back to the lowest RTT still means it was spurious, in
/// lowest RTTs (RFC 9406's CSS_ROUNDS).
const RESUME_ROUNDS: u32 = 5;

#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    done: bool,
    base_min: Option<Duration>,
    above_in_a_row: u32,
    /// A delay exit that may still turn out spurious: when it happened.
    exited_at: Option<Instant>,
    below_in_a_row: u32,
    /// When the current run of low samples after the exit began.
    below_since: Option<Instant>,
}

impl HyStart {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Only the first slow start is watched (RFC 9406 §4.2): a loss or timeout ends it.
    pub(crate) fn disable(&mut self) {
        self.done = true;
        self.exited_at = None;
    }

    /// Feeds one ACK's RTT sample, taken at `now`, during slow start; true when slow start
    /// should end now.
    pub(crate) fn on_sample(&mut self, now: Instant, sample: Option<Duration>) -> bool {
        let Some(rtt) = sample.filter(|_| !self.done) else {
            return false;
        };
        let base = self.base_min.map_or(rtt, |b| b.min(rtt));
        self.base_min = Some(base);
        if rtt >= base.saturating_add(threshold(base)) {
            self.above_in_a_row += 1;
            if self.above_in_a_row >= N_RTT_SAMPLE {
                self.done = true;
                self.exited_at = Some(now);
                return true;
            }
        } else {
            self.above_in_a_row = 0;
        }
        false
    }

    /// The lowest RTT seen while watching.
    pub(crate) fn base_min(&self) -> Option<Duration> {
        self.base_min
    }

    /// Feeds one ACK's RTT sample after a delay exit; true when the exit was spurious and
    /// slow start should resume (the watch then starts over).
    pub(crate) fn exit_was_spurious(&mut self, now: Instant, sample: Option<Duration>) -> bool {
        let (Some(at), Some(base), Some(rtt)) = (self.exited_at, self.base_min, sample) else {
            return false;
        };
        if now.saturating_duration_since(at) > base * RESUME_ROUNDS {
            self.exited_at = None;
            return false;
        }
        self.base_min = Some(base.min(rtt));
        if rtt >= base.saturating_add(threshold(base) / 2) {
            self.below_in_a_row = 0;
            self.below_since = None;
            return false;
        }
        self.below_in_a_row += 1;
        let since = *self.below_since.get_or_insert(now);
        if self.below_in_a_row >= N_RTT_SAMPLE && now.saturating_duration_since(since) >= base / 2 {
            *self = Self {
                base_min: self.base_min,
                ..Self::default()
            };
            return true;
        }
        false
    }
}

/// The window to continue with after a delay exit at `cwnd`, when the exiting sample was
/// `rtt` against a lowest RTT of `base`: `cwnd × base / rtt`, so the queue the sample saw is
/// not kept standing; never below half the window (the cut is a drain, not a loss response)
/// nor above it.
pub(crate) fn drained_window(cwnd: u64, base: Duration, rtt: Duration) -> u64 {
    if rtt.is_zero() || base >= rtt {
        return cwnd;
    }
    let scaled = cwnd as u128 * base.as_nanos() / rtt.as_nanos();
    u64::try_from(scaled).unwrap_or(cwnd).clamp(cwnd / 2, cwnd)
}

/// RFC 9406's delay threshold for a lowest RTT of `base`.
fn threshold(base: Duration) -> Duration {
    (base / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` samples of `rtt`, one every `gap` from `*t` on, to `f`; returns the index of
    /// the first one `f` answered true for.
    fn feed(
        h: &mut HyStart,
        t: &mut Instant,
        n: usize,
        rtt: Duration,
        gap: Duration,
        f: fn(&mut HyStart, Instant, Option<Duration>) -> bool,
    ) -> Option<usize> {
        let mut first = None;
        for i in 0..n {
            *t += gap;
            if f(h, *t, Some(rtt)) && first.is_none() {
                first = Some(i);
            }
        }
        first
    }

    const SS: fn(&mut HyStart, Instant, Option<Duration>) -> bool = HyStart::on_sample;
    const CA: fn(&mut HyStart, Instant, Option<Duration>) -> bool = HyStart::exit_was_spurious;

    #[test]
    fn the_exit_drains_the_queue_the_late_signal_let_build() {
        // 60 ms path, exit on a 75 ms sample: a fifth of the window was queue.
        assert_eq!(drained_window(300_000, 60 * MS, 75 * MS), 240_000);
        // Never more than half (a delay spike is not a loss), never a growth.
        assert_eq!(drained_window(300_000, 60 * MS, 600 * MS), 150_000);
        assert_eq!(drained_window(300_000, 60 * MS, 50 * MS), 300_000);
        assert_eq!(drained_window(300_000, 60 * MS, Duration::ZERO), 300_000);
    }

    #[test]
    fn eight_high_samples_in_a_row_end_slow_start() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        assert_eq!(feed(&mut h, &mut t, 10, 100 * MS, MS, SS), None);
        assert_eq!(feed(&mut h, &mut t, 8, 113 * MS, MS, SS), Some(7));
        assert_eq!(
            feed(&mut h, &mut t, 20, 200 * MS, MS, SS),
            None,
            "only once"
        );
    }

    #[test]
    fn jitter_and_missing_samples_do_not_count() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        h.on_sample(t, Some(100 * MS));
        for _ in 0..20 {
            assert_eq!(feed(&mut h, &mut t, 7, 120 * MS, MS, SS), None);
            assert!(!h.on_sample(t, Some(101 * MS)), "one low sample resets");
            assert!(!h.on_sample(t, None), "Karn: no sample");
        }
        assert!(
            feed(&mut h, &mut t, 8, 120 * MS, MS, SS).is_some(),
            "still watching"
        );
    }

    #[test]
    fn threshold_is_clamped() {
        // 1 s baseline: the threshold is 16 ms, not 125 ms; 10 ms baseline: 4 ms, not 1.25.
        let mut h = HyStart::new();
        let mut t = Instant::now();
        h.on_sample(t, Some(1000 * MS));
        assert_eq!(feed(&mut h, &mut t, 8, 1015 * MS, MS, SS), None);
        assert!(feed(&mut h, &mut t, 8, 1017 * MS, MS, SS).is_some());
        let mut h = HyStart::new();
        h.on_sample(t, Some(10 * MS));
        assert_eq!(feed(&mut h, &mut t, 8, 13 * MS, MS, SS), None);
        assert!(feed(&mut h, &mut t, 8, 15 * MS, MS, SS).is_some());
    }

    #[test]
    fn a_pause_that_looked_like_a_queue_resumes_slow_start() {
        // 60 ms path; the ACK handler stalls 15 ms, so a burst of ACKs comes 15 ms late.
        let mut h = HyStart::new();
        let mut t = Instant::now();
        assert_eq!(feed(&mut h, &mut t, 10, 60 * MS, MS, SS), None);
        assert_eq!(feed(&mut h, &mut t, 20, 75 * MS, MS / 2, SS), Some(7));
        // Back at 60 ms: eight samples are not yet half a round (30 ms) ...
        assert_eq!(feed(&mut h, &mut t, 8, 61 * MS, MS, CA), None);
        // ... a few more are.
        assert_eq!(feed(&mut h, &mut t, 40, 61 * MS, MS, CA), Some(22));
        // Slow start again, watched as before: a real queue still ends it.
        assert_eq!(feed(&mut h, &mut t, 8, 70 * MS, MS, SS), Some(7));
    }

    #[test]
    fn a_standing_queue_keeps_slow_start_ended() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        assert_eq!(feed(&mut h, &mut t, 10, 60 * MS, MS, SS), None);
        assert_eq!(feed(&mut h, &mut t, 8, 68 * MS, MS, SS), Some(7));
        // The queue stays (the window keeps growing): 5 ms above the lowest RTT is more
        // than half the 7.5 ms threshold.
        assert_eq!(feed(&mut h, &mut t, 300, 65 * MS, MS, CA), None);
        // Five rounds after the exit the watch is over: even a drained queue changes
        // nothing (congestion avoidance probes on its own).
        assert_eq!(feed(&mut h, &mut t, 100, 60 * MS, MS, CA), None);
        // A loss ends any watch.
        let mut h = HyStart::new();
        assert_eq!(feed(&mut h, &mut t, 10, 60 * MS, MS, SS), None);
        assert_eq!(feed(&mut h, &mut t, 8, 68 * MS, MS, SS), Some(7));
        h.disable();
        assert_eq!(feed(&mut h, &mut t, 100, 60 * MS, MS, CA), None);
    }
}
