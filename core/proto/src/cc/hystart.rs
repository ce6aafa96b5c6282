//! Leaving the first slow start before the queue overflows (the delay signal of HyStart and
//! RFC 9406, applied per sample).
//!
//! RFC 9406 compares each round's minimum RTT with the previous round's, which notices a
//! standing queue only a round after it formed: one window doubling too late for the
//! one-BDP buffers of mobile links, so slow start still ends in a burst of losses. Here eight
//! RTT samples in a row above the lowest RTT seen (by RFC 9406's threshold, an eighth of
//! that RTT clamped to 4..16 ms) end slow start at once, with the window as ssthresh.
//! Occasional jitter does not, since one low sample resets the count.

use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;

#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    done: bool,
    base_min: Option<Duration>,
    above_in_a_row: u32,
}

impl HyStart {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Only the first slow start is watched (RFC 9406 §4.2): a loss or timeout ends it.
    pub(crate) fn disable(&mut self) {
        self.done = true;
    }

    /// Feeds one ACK's RTT sample; true when slow start should end now.
    pub(crate) fn on_sample(&mut self, sample: Option<Duration>) -> bool {
        let Some(rtt) = sample.filter(|_| !self.done) else {
            return false;
        };
        let base = self.base_min.map_or(rtt, |b| b.min(rtt));
        self.base_min = Some(base);
        let thresh = (base / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
        if rtt >= base.saturating_add(thresh) {
            self.above_in_a_row += 1;
            if self.above_in_a_row >= N_RTT_SAMPLE {
                self.done = true;
                return true;
            }
        } else {
            self.above_in_a_row = 0;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn eight_high_samples_in_a_row_end_slow_start() {
        let mut h = HyStart::new();
        for _ in 0..10 {
            assert!(!h.on_sample(Some(100 * MS)));
        }
        for i in 0..8 {
            let end = h.on_sample(Some(113 * MS));
            assert_eq!(end, i == 7, "sample {i}");
        }
        for _ in 0..20 {
            assert!(!h.on_sample(Some(200 * MS)), "only once");
        }
    }

    #[test]
    fn jitter_and_missing_samples_do_not_count() {
        let mut h = HyStart::new();
        h.on_sample(Some(100 * MS));
        for _ in 0..20 {
            for _ in 0..7 {
                assert!(!h.on_sample(Some(120 * MS)));
            }
            assert!(!h.on_sample(Some(101 * MS)), "one low sample resets");
            assert!(!h.on_sample(None), "Karn: no sample");
        }
        assert!(
            (0..8).any(|_| h.on_sample(Some(120 * MS))),
            "still watching"
        );
    }

    #[test]
    fn threshold_is_clamped() {
        // 1 s baseline: the threshold is 16 ms, not 125 ms; 10 ms baseline: 4 ms, not 1.25.
        let mut h = HyStart::new();
        h.on_sample(Some(1000 * MS));
        for _ in 0..8 {
            assert!(!h.on_sample(Some(1015 * MS)));
        }
        assert!((0..8).any(|_| h.on_sample(Some(1017 * MS))));
        let mut h = HyStart::new();
        h.on_sample(Some(10 * MS));
        for _ in 0..8 {
            assert!(!h.on_sample(Some(13 * MS)));
        }
        assert!((0..8).any(|_| h.on_sample(Some(15 * MS))));
    }
}
