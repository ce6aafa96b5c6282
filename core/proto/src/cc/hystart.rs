//! HyStart++ (RFC 9406): leave the first slow start when the round's minimum RTT rises,
//! before the queue overflows, through a short Conservative Slow Start (CSS).
//!
//! Rounds. The controller sees no sequence numbers, so by default a round is estimated from
//! acknowledged bytes: when a round starts, the bytes in flight after that ACK are exactly
//! the data sent before the round began, and the round ends once that many more bytes have
//! been acknowledged; the next ACK, which passes the highest sequence sent at the round's
//! start, opens the following round (retransmissions aside, the sequence-number rule). A subflow that tracks sequence numbers may instead mark
//! rounds itself through `CongestionControl::on_round_start`; the first mark switches the
//! estimate off for good.

use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// Slow-start growth is divided by this in CSS.
pub(crate) const CSS_GROWTH_DIVISOR: u64 = 4;
const CSS_ROUNDS: u32 = 5;

/// Where the first slow start stands after an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    SlowStart,
    Conservative,
    /// CSS lasted `CSS_ROUNDS`: the caller sets ssthresh to the window.
    Done,
}

#[derive(Clone, Debug)]
pub(crate) struct HyStart {
    /// Baseline RTT and completed rounds while in CSS.
    css: Option<(Duration, u32)>,
    done: bool,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    acked_total: u64,
    /// `acked_total` at which the current round ends (None before the first ACK).
    round_end: Option<u64>,
    external_rounds: bool,
}

impl HyStart {
    pub(crate) fn new() -> Self {
        Self {
            css: None,
            done: false,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            acked_total: 0,
            round_end: None,
            external_rounds: false,
        }
    }

    /// RFC 9406 §4.2 recommends HyStart++ only for the first slow start: any loss or timeout
    /// turns it off.
    pub(crate) fn disable(&mut self) {
        self.done = true;
        self.css = None;
    }

    pub(crate) fn active(&self) -> bool {
        !self.done
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.done {
            Phase::Done
        } else if self.css.is_some() {
            Phase::Conservative
        } else {
            Phase::SlowStart
        }
    }

    /// An explicit round mark from the subflow.
    pub(crate) fn mark_round(&mut self) {
        self.external_rounds = true;
        self.start_round();
    }

    fn start_round(&mut self) {
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
        if let Some((_, rounds)) = &mut self.css {
            *rounds += 1;
            if *rounds >= CSS_ROUNDS {
                self.disable();
            }
        }
    }

    /// Feeds one ACK (also app-limited ones: they still carry RTT samples and end rounds).
    pub(crate) fn on_ack(&mut self, acked: u64, in_flight: u64, sample: Option<Duration>) -> Phase {
        if self.done {
            return Phase::Done;
        }
        self.acked_total = self.acked_total.saturating_add(acked);
        if !self.external_rounds && self.round_end.is_none_or(|end| self.acked_total > end) {
            self.start_round();
            self.round_end = Some(self.acked_total.saturating_add(in_flight));
            if self.done {
                return Phase::Done;
            }
        }
        if let Some(rtt) = sample {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples = self.samples.saturating_add(1);
        }
        if self.samples >= N_RTT_SAMPLE {
            if let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) {
                match self.css {
                    None => {
                        let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                        if current >= last.saturating_add(thresh) {
                            self.css = Some((current, 0));
                        }
                    }
                    // The RTT fell back below the baseline: the rise was spurious, resume.
                    Some((baseline, _)) if current < baseline => self.css = None,
                    Some(_) => {}
                }
            }
        }
        self.phase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rounds_end_when_the_bytes_in_flight_at_their_start_are_acknowledged() {
        let mut h = HyStart::new();
        let rtt = Some(100 * MS);
        // Round 1 starts at the first ACK with 9 segments still in flight.
        h.on_ack(1000, 9000, rtt);
        assert_eq!(h.round_end, Some(10_000));
        for _ in 0..9 {
            h.on_ack(1000, 9000, rtt);
        }
        assert_eq!(h.round_end, Some(10_000), "the ninth ACK completes round 1");
        assert_eq!(h.last_round_min, None);
        // The next ACK opens round 2: round 1's minimum becomes the baseline.
        h.on_ack(1000, 19_000, rtt);
        assert_eq!(h.round_end, Some(30_000));
        assert_eq!(h.last_round_min, Some(100 * MS));
        assert_eq!(h.samples, 1);
    }

    #[test]
    fn rtt_rise_needs_enough_samples() {
        let mut h = HyStart::new();
        for _ in 0..10 {
            h.on_ack(1000, 9000, Some(100 * MS));
        }
        // Seven high samples in the new round are not enough, the eighth is.
        for i in 0..8 {
            let phase = h.on_ack(1000, 20_000, Some(113 * MS));
            let want = if i < 7 {
                Phase::SlowStart
            } else {
                Phase::Conservative
            };
            assert_eq!(phase, want, "sample {i}");
        }
        // Samples without an RTT (Karn) do not count.
        let mut h = HyStart::new();
        for _ in 0..10 {
            h.on_ack(1000, 9000, Some(100 * MS));
        }
        for _ in 0..20 {
            assert_eq!(h.on_ack(1000, 40_000, None), Phase::SlowStart);
        }
    }

    #[test]
    fn threshold_is_clamped() {
        // 1 s baseline: the threshold is 16 ms, not 125 ms.
        let mut h = HyStart::new();
        for _ in 0..10 {
            h.on_ack(1000, 9000, Some(1000 * MS));
        }
        let mut phase = Phase::SlowStart;
        for _ in 0..8 {
            phase = h.on_ack(1000, 20_000, Some(1017 * MS));
        }
        assert_eq!(phase, Phase::Conservative);
    }
}
