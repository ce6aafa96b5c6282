//! CUBIC (RFC 9438) with HyStart++ (RFC 9406) for the first slow start.
//!
//! Windows are kept in bytes; the cubic function is evaluated in `f64` with the segment-based
//! constants scaled by the MSS. Every float is bounded before it turns back into a window, so
//! no input (1-byte windows, 60-s RTTs, ACKs arriving out of time order) yields NaN or panics.

use std::time::{Duration, Instant};

use super::aimd::Aimd;
use super::hystart::{HyStart, drained_window};
use super::{Ack, CongestionControl, Coupling, minimum_window, window_from_f64};

/// RFC 9438 §5: C = 0.4 segments/s³.
pub(crate) const C: f64 = 0.4;
/// RFC 9438 §5: multiplicative decrease factor.
pub(crate) const BETA: f64 = 0.7;
/// RFC 9438 §4.3: the additive increase that makes AIMD(α, β) as aggressive as Reno.
const ALPHA_RENO_FRIENDLY: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// One congestion-avoidance stage: the cubic curve is anchored at its start.
#[derive(Clone, Copy, Debug)]
struct Epoch {
    start: Instant,
    /// Seconds from `start` until the curve is back at W_max.
    k: f64,
}

/// CUBIC: after a loss the window climbs a cubic curve back to where the loss happened
/// (W_max), lingers there, then probes beyond it, so long fat paths regain their rate in
/// seconds rather than Reno's minutes. Never slower than Reno (the Reno-friendly W_est).
#[derive(Clone, Debug)]
pub struct Cubic {
    w: Aimd,
    hystart: HyStart,
    epoch: Option<Epoch>,
    /// W_max in bytes: the window before the last reduction (lowered by fast convergence).
    w_max: f64,
    /// cwnd_prior: the window when ssthresh was last set; W_est growth speeds up past it.
    cwnd_prior: f64,
    /// W_est in bytes: what Reno-friendly AIMD would have by now.
    w_est: f64,
    /// Fractional bytes of window increase not yet applied.
    carry: f64,
    /// Start of the current run of application-limited ACKs in congestion avoidance; that
    /// time is cut out of t (RFC 9438 §5.8), or the curve would leap ahead after idling.
    app_limited_since: Option<Instant>,
    /// The window when HyStart ended slow start (before the drain), restored if that exit
    /// turns out spurious.
    exit_window: Option<u64>,
}

impl Cubic {
    /// A CUBIC controller for a subflow with this MSS.
    pub fn new(mss: u64) -> Self {
        let w = Aimd::new(mss);
        Self {
            w,
            hystart: HyStart::new(),
            epoch: None,
            w_max: 0.0,
            cwnd_prior: 0.0,
            w_est: 0.0,
            carry: 0.0,
            app_limited_since: None,
            exit_window: None,
        }
    }

    /// W_max in bytes (0 before the first congestion-avoidance stage).
    pub fn w_max(&self) -> u64 {
        window_from_f64(self.w_max)
    }

    /// K of the current congestion-avoidance stage, if one has started.
    pub fn k(&self) -> Option<Duration> {
        self.epoch
            .map(|e| Duration::try_from_secs_f64(e.k).unwrap_or(Duration::MAX))
    }

    /// W_cubic(t) in bytes, t in seconds since the epoch start.
    fn w_cubic(&self, k: f64, t: f64) -> f64 {
        let d = t - k;
        C * self.w.mss as f64 * d * d * d + self.w_max
    }

    /// Starts a congestion-avoidance stage at `now` from the current window.
    fn start_epoch(&mut self, now: Instant) -> Epoch {
        let cwnd = self.w.cwnd as f64;
        let mss = self.w.mss as f64;
        if self.w_max <= cwnd {
            // After an RTO or HyStart++ there is no useful W_max: the curve starts at the
            // window with K = 0 (RFC 9438 §4.8, §4.10).
            self.w_max = cwnd;
        }
        if self.cwnd_prior <= 0.0 {
            self.cwnd_prior = cwnd;
        }
        let k = ((self.w_max - cwnd) / (C * mss)).max(0.0).cbrt();
        let epoch = Epoch { start: now, k };
        self.epoch = Some(epoch);
        self.w_est = cwnd;
        self.carry = 0.0;
        self.app_limited_since = None;
        epoch
    }

    fn congestion_avoidance(&mut self, ack: &Ack) {
        let now = ack.now;
        let epoch = match self.epoch {
            Some(e) => e,
            None => self.start_epoch(now),
        };
        let mss = self.w.mss as f64;
        let cwnd = self.w.cwnd as f64;
        let acked = ack.newly_acked as f64;
        let t = now.saturating_duration_since(epoch.start).as_secs_f64();
        let rtt = if ack.srtt.is_zero() {
            ack.min_rtt
        } else {
            ack.srtt
        }
        .as_secs_f64();

        // Reno-friendly estimate (RFC 9438 §4.3).
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA_RENO_FRIENDLY
        };
        self.w_est += alpha * acked * mss / cwnd;

        if self.w_cubic(epoch.k, t) < self.w_est {
            self.carry = 0.0;
            if self.w_est > cwnd {
                self.w.set_cwnd(window_from_f64(self.w_est));
            }
            return;
        }
        // Concave and convex regions (RFC 9438 §4.4, §4.5).
        let target = self.w_cubic(epoch.k, t + rtt).clamp(cwnd, 1.5 * cwnd);
        self.carry += (target - cwnd) / cwnd * acked;
        let whole = self.carry.floor();
        self.carry -= whole;
        let next = (cwnd + whole).min(target);
        self.w.set_cwnd(window_from_f64(next));
    }

    /// Keeps application-limited time out of t by moving the epoch start forward.
    fn track_app_limited(&mut self, ack: &Ack) {
        match (ack.app_limited, self.app_limited_since) {
            (true, None) => self.app_limited_since = Some(ack.now),
            (false, Some(since)) => {
                self.app_limited_since = None;
                if let Some(e) = &mut self.epoch {
                    let idle = ack.now.saturating_duration_since(since);
                    e.start = e.start.checked_add(idle).unwrap_or(e.start);
                }
            }
            _ => {}
        }
    }

    fn reduce_common(&mut self) {
        let cwnd = self.w.cwnd as f64;
        // Fast convergence (RFC 9438 §4.7): a flow whose window fell short of the last W_max
        // is probably sharing with a newcomer, so it gives some of its share back.
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.hystart.disable();
        self.exit_window = None;
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> u64 {
        self.w.cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.w.ssthresh
    }

    fn on_ack(&mut self, ack: &Ack, _coupling: &Coupling<'_>) {
        if self.w.in_slow_start() {
            if self.hystart.on_sample(ack.now, ack.rtt_sample) {
                // A queue is building: congestion avoidance from the window without the
                // queue the late delay signal let build (cc/hystart.rs).
                let cwnd = self.w.cwnd;
                let drained = match (self.hystart.base_min(), ack.rtt_sample) {
                    (Some(base), Some(rtt)) => drained_window(cwnd, base, rtt),
                    _ => cwnd,
                };
                self.w.set_cwnd(drained.max(minimum_window(self.w.mss)));
                self.w.ssthresh = self.w.cwnd;
                self.exit_window = Some(cwnd);
            }
        } else if self.hystart.exit_was_spurious(ack.now, ack.rtt_sample) {
            // That "queue" was a pause: back to slow start from where it was left, no
            // congestion stage to resume.
            if let Some(w) = self.exit_window.take() {
                self.w.set_cwnd(self.w.cwnd.max(w));
            }
            self.w.ssthresh = u64::MAX;
            self.epoch = None;
            self.w_max = 0.0;
        }
        if !self.w.in_slow_start() {
            self.track_app_limited(ack);
        }
        let acked = self.w.grow(ack);
        if acked == 0 {
            return;
        }
        let ack = Ack {
            newly_acked: acked,
            ..*ack
        };
        self.congestion_avoidance(&ack);
    }

    fn on_congestion_event(&mut self, now: Instant, _in_flight: u64) {
        // RFC 9438 §4.6 allows the window in place of the flight size because the window
        // never grows while application-limited here.
        self.reduce_common();
        let cwnd = self.w.cwnd;
        self.w.reduce(cwnd, BETA);
        self.start_epoch(now);
    }

    fn on_retransmission_timeout(&mut self, _now: Instant) {
        let before = self.w.cwnd as f64;
        // ssthresh = β·cwnd, but only on the first of back-to-back timeouts.
        if self.w.timeout(BETA) {
            self.cwnd_prior = before;
        }
        self.hystart.disable();
        self.exit_window = None;
        self.carry = 0.0;
        self.app_limited_since = None;
        // The next congestion-avoidance stage starts afresh: W_max = the window then, K = 0
        // (RFC 9438 §4.8).
        self.epoch = None;
        self.w_max = 0.0;
    }

    fn take_over(&mut self, window: u64) -> bool {
        self.w.take_over(window)
    }

    fn set_mss(&mut self, mss: u64) {
        self.w.set_mss(mss);
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}
