//! Coupled congestion control for the subflows of one MPTCP connection: LIA (RFC 6356) and
//! OLIA (Khalili, Gast, Popovic, Le Boudec: "MPTCP is not Pareto-optimal", CoNEXT 2012, and
//! draft-khalili-mptcp-congestion-control).
//!
//! Both run slow start, loss reduction and RTO exactly like Reno on each subflow; only the
//! congestion-avoidance increase looks at the other subflows, through `Coupling`. In the sums
//! the controller's own entry uses its live window and the ACK's srtt (the `PathState` copy
//! may be one ACK old); other subflows count when they are `active` and have an RTT estimate.
//! Increases are computed in `f64` and applied in whole bytes, carrying the fraction.

use std::time::{Duration, Instant};

use super::aimd::Aimd;
use super::{Ack, CongestionControl, Coupling};

/// One subflow's numbers as the coupled formulas need them.
#[derive(Clone, Copy, Debug)]
struct View {
    cwnd: f64,
    /// Smoothed RTT in seconds (> 0).
    rtt: f64,
    loss_interval: f64,
    me: bool,
}

/// Visits this subflow and every other active subflow with an RTT estimate, without
/// allocating. Returns false (visiting nothing) when this subflow has no RTT yet.
fn for_each_path(
    coupling: &Coupling<'_>,
    own: (u64, Duration, u64),
    mut f: impl FnMut(View),
) -> bool {
    let (cwnd, srtt, loss_interval) = own;
    let own_rtt = if srtt.is_zero() {
        coupling
            .paths
            .get(coupling.me)
            .map_or(Duration::ZERO, |p| p.srtt)
    } else {
        srtt
    };
    if own_rtt.is_zero() {
        return false;
    }
    f(View {
        cwnd: cwnd as f64,
        rtt: own_rtt.as_secs_f64(),
        loss_interval: loss_interval as f64,
        me: true,
    });
    for (i, p) in coupling.paths.iter().enumerate() {
        if i != coupling.me && p.active && !p.srtt.is_zero() && p.cwnd > 0 {
            f(View {
                cwnd: p.cwnd as f64,
                rtt: p.srtt.as_secs_f64(),
                loss_interval: p.loss_interval as f64,
                me: false,
            });
        }
    }
    true
}

/// Adds a fractional increase to the carry and applies its whole bytes to the window.
fn apply(w: &mut Aimd, carry: &mut f64, increase: f64) {
    if !increase.is_finite() {
        return;
    }
    *carry += increase;
    let whole = carry.trunc();
    *carry -= whole;
    // |whole| is bounded by the window and the ACK, far inside i64.
    w.add_signed(whole.clamp(-1e18, 1e18) as i64);
}

/// Linked Increases (RFC 6356).
#[derive(Clone, Debug)]
pub struct Lia {
    w: Aimd,
    carry: f64,
}

impl Lia {
    /// A LIA controller for a subflow with this MSS.
    pub fn new(mss: u64) -> Self {
        Self {
            w: Aimd::new(mss),
            carry: 0.0,
        }
    }

    /// RFC 6356 §3: per ACK, `min(α·acked·MSS/cwnd_total, acked·MSS/cwnd_r)`. The second term
    /// caps the subflow at what a Reno flow on its path would take.
    fn increase(&self, acked: u64, srtt: Duration, coupling: &Coupling<'_>) -> f64 {
        let mss = self.w.mss as f64;
        let acked = acked as f64;
        let reno = acked * mss / self.w.cwnd as f64;
        match self.sums(srtt, coupling) {
            Some((alpha, total)) => (alpha * acked * mss / total).min(reno),
            None => reno,
        }
    }

    /// `α = cwnd_total · max_i(cwnd_i/rtt_i²) / (Σ_i cwnd_i/rtt_i)²` and `cwnd_total`.
    fn sums(&self, srtt: Duration, coupling: &Coupling<'_>) -> Option<(f64, f64)> {
        let (mut total, mut best, mut sum) = (0.0f64, 0.0f64, 0.0f64);
        let ok = for_each_path(coupling, (self.w.cwnd, srtt, 0), |p| {
            total += p.cwnd;
            best = best.max(p.cwnd / (p.rtt * p.rtt));
            sum += p.cwnd / p.rtt;
        });
        let alpha = total * best / (sum * sum);
        (ok && total > 0.0 && alpha.is_finite()).then_some((alpha, total))
    }

    /// RFC 6356's α for these subflows (None when this subflow has no RTT estimate yet).
    pub fn alpha(&self, srtt: Duration, coupling: &Coupling<'_>) -> Option<f64> {
        self.sums(srtt, coupling).map(|(alpha, _)| alpha)
    }
}

impl CongestionControl for Lia {
    fn window(&self) -> u64 {
        self.w.cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.w.ssthresh
    }

    fn on_ack(&mut self, ack: &Ack, coupling: &Coupling<'_>) {
        let acked = self.w.grow(ack);
        if acked > 0 {
            let inc = self.increase(acked, ack.srtt, coupling);
            apply(&mut self.w, &mut self.carry, inc);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u64) {
        self.w.reduce(in_flight, 0.5);
        self.carry = 0.0;
    }

    fn on_retransmission_timeout(&mut self, _now: Instant) {
        self.w.timeout(0.5);
        self.carry = 0.0;
    }

    fn take_over(&mut self, window: u64) -> bool {
        self.w.take_over(window)
    }

    fn set_mss(&mut self, mss: u64) {
        self.w.set_mss(mss);
    }

    fn name(&self) -> &'static str {
        "lia"
    }
}

/// Opportunistic Linked Increases.
///
/// Per ACK on path r (windows in bytes, so the packet formula is scaled by `acked·MSS`):
/// `Δw_r = acked·MSS · [ (w_r/rtt_r²) / (Σ_p w_p/rtt_p)² + α_r/w_r ]`.
/// The first term is the Kelly–Voice increase that makes the connection as aggressive as one
/// TCP on its best path; α_r moves window from the paths with the largest windows (M) towards
/// the presumably best paths (B, largest `l_p²/rtt_p`) that are not yet the largest:
/// with `C = B \ M` and n paths, `α_r = 1/(n·|C|)` for r in C, `−1/(n·|M|)` for r in M when C
/// is not empty, 0 otherwise. `l_p` is the larger of the bytes acknowledged between the last
/// two losses and since the last loss, which this controller tracks and reports as
/// `loss_interval()`.
#[derive(Clone, Debug)]
pub struct Olia {
    w: Aimd,
    carry: f64,
    /// Bytes acknowledged between the last two losses.
    l1: u64,
    /// Bytes acknowledged since the last loss.
    l2: u64,
}

impl Olia {
    /// An OLIA controller for a subflow with this MSS.
    pub fn new(mss: u64) -> Self {
        Self {
            w: Aimd::new(mss),
            carry: 0.0,
            l1: 0,
            l2: 0,
        }
    }

    fn own(&self, srtt: Duration) -> (u64, Duration, u64) {
        (self.w.cwnd, srtt, self.loss_interval())
    }

    /// OLIA's α_r for this subflow (None when it has no RTT estimate yet).
    pub fn alpha(&self, srtt: Duration, coupling: &Coupling<'_>) -> Option<f64> {
        let own = self.own(srtt);
        let (mut n, mut max_w, mut best) = (0u32, 0.0f64, 0.0f64);
        let metric = |p: &View| p.loss_interval * p.loss_interval / p.rtt;
        if !for_each_path(coupling, own, |p| {
            n += 1;
            max_w = max_w.max(p.cwnd);
            best = best.max(metric(&p));
        }) {
            return None;
        }
        // Membership of this subflow, then the sizes of M and C = B \ M.
        let (mut in_m, mut in_c, mut m, mut c) = (false, false, 0u32, 0u32);
        for_each_path(coupling, own, |p| {
            let is_m = p.cwnd >= max_w;
            let is_c = !is_m && metric(&p) >= best;
            m += u32::from(is_m);
            c += u32::from(is_c);
            if p.me {
                (in_m, in_c) = (is_m, is_c);
            }
        });
        let n = f64::from(n);
        Some(if in_c {
            1.0 / (n * f64::from(c))
        } else if in_m && c > 0 {
            -1.0 / (n * f64::from(m))
        } else {
            0.0
        })
    }

    fn increase(&self, acked: u64, srtt: Duration, coupling: &Coupling<'_>) -> f64 {
        let mss = self.w.mss as f64;
        let acked = acked as f64;
        let cwnd = self.w.cwnd as f64;
        let Some(alpha) = self.alpha(srtt, coupling) else {
            return acked * mss / cwnd;
        };
        let (mut sum, mut own) = (0.0f64, 0.0f64);
        for_each_path(coupling, self.own(srtt), |p| {
            sum += p.cwnd / p.rtt;
            if p.me {
                own = p.cwnd / (p.rtt * p.rtt);
            }
        });
        if sum <= 0.0 {
            return acked * mss / cwnd;
        }
        acked * mss * (own / (sum * sum) + alpha / cwnd)
    }

    /// A loss closes the current inter-loss interval.
    fn on_loss(&mut self) {
        self.l1 = self.l2;
        self.l2 = 0;
        self.carry = 0.0;
    }
}

impl CongestionControl for Olia {
    fn window(&self) -> u64 {
        self.w.cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.w.ssthresh
    }

    fn on_ack(&mut self, ack: &Ack, coupling: &Coupling<'_>) {
        self.l2 = self.l2.saturating_add(ack.newly_acked);
        let acked = self.w.grow(ack);
        if acked > 0 {
            let inc = self.increase(acked, ack.srtt, coupling);
            apply(&mut self.w, &mut self.carry, inc);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u64) {
        self.w.reduce(in_flight, 0.5);
        self.on_loss();
    }

    fn on_retransmission_timeout(&mut self, _now: Instant) {
        if self.w.timeout(0.5) {
            self.on_loss();
        }
    }

    fn take_over(&mut self, window: u64) -> bool {
        self.w.take_over(window)
    }

    fn set_mss(&mut self, mss: u64) {
        self.w.set_mss(mss);
    }

    fn loss_interval(&self) -> u64 {
        self.l1.max(self.l2)
    }

    fn name(&self) -> &'static str {
        "olia"
    }
}
