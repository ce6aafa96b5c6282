//! Window bookkeeping shared by the loss-based controllers: slow start with appropriate byte
//! counting, the RFC 5681 reductions, and MSS changes. Each controller supplies its own
//! congestion-avoidance increase (and CUBIC its own reduction factor).

use super::{MAX_WINDOW, clamp_mss, initial_window, minimum_window};

/// RFC 3465's limit L: slow start grows by at most L·MSS per ACK, so stretch ACKs and ACK
/// division cannot inflate the window faster than one doubling per round.
pub(crate) const ABC_LIMIT_SEGMENTS: u64 = 2;

#[derive(Clone, Debug)]
pub(crate) struct Aimd {
    pub(crate) mss: u64,
    pub(crate) cwnd: u64,
    pub(crate) ssthresh: u64,
    /// Bytes acknowledged in congestion avoidance not yet turned into window (RFC 3465 §2.1).
    pub(crate) ca_acked: u64,
    /// The window is still the initial one, so an MSS change may recompute it.
    pristine: bool,
    /// An RTO fired and nothing has been acknowledged since: another RTO must not lower
    /// ssthresh again from the already collapsed window (RFC 5681 §3.1 on repeated timeouts).
    rto_pending: bool,
}

impl Aimd {
    pub(crate) fn new(mss: u64) -> Self {
        let mss = clamp_mss(mss);
        Self {
            mss,
            cwnd: initial_window(mss),
            ssthresh: u64::MAX,
            ca_acked: 0,
            pristine: true,
            rto_pending: false,
        }
    }

    /// Records that the peer acknowledged something; returns whether the window may grow on
    /// this ACK (RFC 7661: not when application-limited; RFC 6675: not during recovery).
    pub(crate) fn may_grow(
        &mut self,
        newly_acked: u64,
        app_limited: bool,
        in_recovery: bool,
    ) -> bool {
        if newly_acked > 0 {
            self.rto_pending = false;
        }
        newly_acked > 0 && !app_limited && !in_recovery
    }

    /// The common front of every controller's `on_ack`: no growth when application-limited
    /// or in recovery, slow start below ssthresh. Returns the bytes left for congestion
    /// avoidance (0 when the window may not grow or slow start took them all).
    pub(crate) fn grow(&mut self, ack: &super::Ack) -> u64 {
        if !self.may_grow(ack.newly_acked, ack.app_limited, ack.in_recovery) {
            return 0;
        }
        if self.in_slow_start() {
            self.slow_start(ack.newly_acked, 1)
        } else {
            ack.newly_acked
        }
    }

    pub(crate) fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// Slow-start growth `min(acked, L·MSS)`, stopping at ssthresh. Returns the bytes of this
    /// ACK that remain for congestion avoidance when the window crossed ssthresh.
    pub(crate) fn slow_start(&mut self, acked: u64, divisor: u64) -> u64 {
        let increase = acked.min(ABC_LIMIT_SEGMENTS * self.mss) / divisor.max(1);
        let room = self.ssthresh.saturating_sub(self.cwnd);
        let grow = increase.min(room);
        self.set_cwnd(self.cwnd.saturating_add(grow));
        if increase > room {
            acked.saturating_sub(grow)
        } else {
            0
        }
    }

    /// Reno's congestion-avoidance step: one MSS per window of acknowledged bytes.
    pub(crate) fn reno_increase(&mut self, acked: u64) {
        self.ca_acked = self.ca_acked.saturating_add(acked);
        if self.ca_acked >= self.cwnd {
            // Usually exactly one step; a huge stretch ACK may be worth several.
            let steps = self.ca_acked / self.cwnd;
            self.ca_acked -= steps * self.cwnd;
            self.set_cwnd(self.cwnd.saturating_add(steps.saturating_mul(self.mss)));
        }
    }

    /// Applies a (possibly negative) whole-byte change from a fractional increase rule,
    /// never shrinking below the 2-MSS minimum on account of an ACK.
    pub(crate) fn add_signed(&mut self, delta: i64) {
        if delta >= 0 {
            self.set_cwnd(self.cwnd.saturating_add(delta as u64));
        } else {
            let floor = minimum_window(self.mss).min(self.cwnd);
            self.set_cwnd(self.cwnd.saturating_sub(delta.unsigned_abs()).max(floor));
        }
    }

    /// Multiplicative decrease to `factor` of the flight size (RFC 5681 eq. 4 with factor ½),
    /// never below 2 MSS. The flight size is bounded by the window so that a caller counting
    /// more bytes in flight than the window cannot make a loss grow it.
    pub(crate) fn reduce(&mut self, in_flight: u64, factor: f64) {
        let flight = in_flight.min(self.cwnd) as f64;
        let target = super::window_from_f64(flight * factor).max(minimum_window(self.mss));
        self.ssthresh = target;
        self.set_cwnd(target);
        self.ca_acked = 0;
        self.pristine = false;
    }

    /// RTO: ssthresh from `factor` of the window, window down to one MSS (RFC 5681 eq. 4 and
    /// §3.1). The trait gives no flight size at a timeout; since the window does not grow while
    /// application-limited, the window is a fair stand-in for what was in flight. Returns
    /// whether ssthresh was recomputed (false for a repeated timeout).
    pub(crate) fn timeout(&mut self, factor: f64) -> bool {
        let first = !self.rto_pending;
        if first {
            let target = super::window_from_f64(self.cwnd as f64 * factor);
            self.ssthresh = target.max(minimum_window(self.mss));
        }
        self.set_cwnd(self.mss);
        self.ca_acked = 0;
        self.pristine = false;
        self.rto_pending = true;
        first
    }

    /// The subflow takes over data another path had in flight (docs/ARCHITECTURE.md,
    /// "Handing traffic over"): during its first slow start (no loss, no delay exit yet)
    /// the window may start at `window` instead of the initial one. Returns whether it grew.
    pub(crate) fn take_over(&mut self, window: u64) -> bool {
        if self.ssthresh != u64::MAX || self.cwnd >= window {
            return false;
        }
        self.set_cwnd(window);
        true
    }

    pub(crate) fn set_mss(&mut self, mss: u64) {
        self.mss = clamp_mss(mss);
        if self.pristine {
            self.cwnd = initial_window(self.mss);
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    pub(crate) fn set_cwnd(&mut self, cwnd: u64) {
        if cwnd != self.cwnd {
            self.pristine = false;
        }
        self.cwnd = cwnd.clamp(self.mss, MAX_WINDOW);
    }
}
