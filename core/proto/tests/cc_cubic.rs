//! CUBIC (RFC 9438) and HyStart++ (RFC 9406) in the round model.

#[path = "cc_model.rs"]
mod cc_model;

use std::time::Duration;

use braid_proto::cc::{CongestionControl, Cubic};
use cc_model::Model;

const MSS: u64 = 1000;
const C: f64 = 0.4;

/// W_cubic(t) in bytes.
fn w_cubic(w_max: f64, k: f64, t: f64) -> f64 {
    C * MSS as f64 * (t - k).powi(3) + w_max
}

/// Slow start to `rounds` doublings of the initial window, then a loss.
fn after_loss(m: &mut Model, rounds: usize) -> (Cubic, f64) {
    let mut cc = Cubic::new(MSS);
    for _ in 0..rounds {
        m.round(&mut cc);
    }
    let w_max = cc.window() as f64;
    m.loss(&mut cc);
    (cc, w_max)
}

#[test]
fn window_follows_the_cubic_curve_after_a_loss() {
    let rtt = Duration::from_millis(100);
    let mut m = Model::new(MSS, rtt);
    let (mut cc, w_max) = after_loss(&mut m, 4); // 160 segments
    assert_eq!(w_max, 160_000.0);
    assert_eq!(cc.window(), 112_000, "β = 0.7");
    assert_eq!(cc.w_max(), 160_000);
    let k = (48.0f64 / C).cbrt();
    let got_k = cc.k().unwrap().as_secs_f64();
    assert!((got_k - k).abs() < 1e-6, "K = {got_k}, want {k}");

    let loss_at = m.now;
    let mut at_k = None;
    while m.since(loss_at) < k + 3.0 {
        m.round(&mut cc);
        let t = m.since(loss_at);
        let w = cc.window() as f64;
        // After a round ending at t the window has chased W(t + RTT) from W(t): it lies
        // between the two, give or take the per-ACK granularity.
        let lo = w_cubic(w_max, k, t) - 2.0 * MSS as f64;
        let hi = w_cubic(w_max, k, t + rtt.as_secs_f64()) + 2.0 * MSS as f64;
        assert!(
            lo <= w && w <= hi,
            "t = {t:.2}: window {w}, want [{lo}, {hi}]"
        );
        if at_k.is_none() && t >= k {
            at_k = Some(w);
        }
    }
    // Back at W_max around t = K, then the convex region probes beyond it.
    let at_k = at_k.unwrap();
    assert!((at_k - w_max).abs() <= 2.0 * MSS as f64, "W(K) = {at_k}");
    assert!(cc.window() as f64 > w_max + 8.0 * MSS as f64);
}

#[test]
fn fast_convergence_lowers_w_max() {
    let mut m = Model::new(MSS, Duration::from_millis(100));
    let (mut cc, _) = after_loss(&mut m, 4);
    // A second loss before regaining W_max = 160 segments.
    for _ in 0..5 {
        m.round(&mut cc);
    }
    let w = cc.window() as f64;
    assert!(w < 160_000.0);
    m.loss(&mut cc);
    assert_eq!(cc.w_max(), (w * 1.7 / 2.0) as u64);
    assert_eq!(cc.window(), (w * 0.7) as u64);
    // The window then plateaus around the lowered W_max, not around the previous window.
    let k = cc.k().unwrap().as_secs_f64();
    let start = m.now;
    while m.since(start) < k {
        m.round(&mut cc);
    }
    let plateau = cc.window() as f64;
    assert!(
        (plateau - w * 0.85).abs() <= 2.0 * MSS as f64,
        "{plateau} vs {}",
        w * 0.85
    );

    // A loss above W_max sets W_max to the window.
    for _ in 0..40 {
        m.round(&mut cc);
    }
    let w = cc.window();
    assert!(
        w as f64 > plateau + 10.0 * MSS as f64,
        "growing past the old W_max"
    );
    m.loss(&mut cc);
    assert_eq!(cc.w_max(), w);
}

#[test]
fn reno_friendly_region_for_a_small_bdp() {
    // 10-segment window, 10 ms RTT: K ≈ 1.96 s is 196 rounds, far slower than Reno.
    let rtt = Duration::from_millis(10);
    let mut m = Model::new(MSS, rtt);
    let (mut cc, w_max) = after_loss(&mut m, 0);
    assert_eq!((w_max, cc.window()), (10_000.0, 7_000));
    let k = cc.k().unwrap().as_secs_f64();
    let start = m.now;
    let alpha = 3.0 * 0.3 / 1.7;
    let mut growth = vec![];
    for _ in 0..60 {
        let w = cc.window();
        m.round(&mut cc);
        growth.push((cc.window() - w) as f64 / MSS as f64);
    }
    // Below cwnd_prior (10 segments) W_est grows by α = 3(1−β)/(1+β) per RTT, then by 1.
    for g in &growth[..5] {
        assert!(
            (g - alpha).abs() < 0.1,
            "growth {g}, want {alpha}: {growth:?}"
        );
    }
    for g in &growth[10..] {
        assert!((g - 1.0).abs() < 0.1, "growth {g}, want 1: {growth:?}");
    }
    let t = m.since(start);
    assert!(cc.window() as f64 > 4.0 * w_cubic(w_max, k, t));
}

/// Slow start with the RTT rising by `rise` from round `at` on.
fn hystart_run(rise: Duration, at: usize, rounds: usize) -> (Cubic, Vec<u64>) {
    let base = Duration::from_millis(100);
    let mut m = Model::new(MSS, base);
    let mut cc = Cubic::new(MSS);
    let mut windows = vec![];
    for r in 0..rounds {
        if r == at {
            m.rtt = base + rise;
        }
        m.round(&mut cc);
        windows.push(cc.window() / MSS);
    }
    (cc, windows)
}

#[test]
fn slow_start_ends_when_the_rtt_rises() {
    // Threshold: clamp(100 ms / 8, 4, 16) = 12.5 ms.
    let (cc, w) = hystart_run(Duration::from_millis(15), 4, 10);
    // 10 → 20 → 40 → 80 → 160, then the RTT rises: after eight high samples slow start ends
    // (the seven ACKs before the eighth sample still grew it: 167 segments), the window
    // drops by the rise (× 100 / 115: the queue the late signal let build), and congestion
    // avoidance grows slowly from there, without a loss.
    assert_eq!(w[..4], [20, 40, 80, 160]);
    assert!(!cc.in_slow_start(), "{w:?}");
    assert_eq!(cc.ssthresh(), 167 * MSS * 100 / 115, "{w:?}");
    assert!(w[9] < 2 * 167, "no more doubling: {w:?}");
    assert!(
        w[4..].windows(2).all(|p| p[1] >= p[0]),
        "no loss response after the exit: {w:?}"
    );
}

#[test]
fn hystart_ignores_small_rtt_changes() {
    let (cc, w) = hystart_run(Duration::from_millis(10), 4, 9);
    assert!(cc.in_slow_start());
    assert_eq!(*w.last().unwrap(), 10 << 9);
}

#[test]
fn first_avoidance_stage_after_the_exit_starts_at_the_window() {
    let (mut cc, _) = hystart_run(Duration::from_millis(15), 4, 6);
    assert!(!cc.in_slow_start());
    let w_exit = cc.ssthresh();
    let mut m = Model::new(MSS, Duration::from_millis(115));
    m.round(&mut cc);
    assert!(
        cc.w_max() >= w_exit,
        "W_max starts at the window: {} < {w_exit}",
        cc.w_max()
    );
    assert!(cc.k().is_some());
}

#[test]
fn timeout_restarts_from_one_segment() {
    let mut m = Model::new(MSS, Duration::from_millis(50));
    let (mut cc, _) = after_loss(&mut m, 3);
    for _ in 0..10 {
        m.round(&mut cc);
    }
    let w = cc.window();
    cc.on_retransmission_timeout(m.now);
    assert_eq!(cc.window(), MSS);
    assert_eq!(cc.ssthresh(), (w as f64 * 0.7) as u64);
    assert_eq!(cc.k(), None, "epoch reset");
    // Slow start back to ssthresh, then a new epoch anchored at that window with K = 0.
    while cc.in_slow_start() {
        m.round(&mut cc);
    }
    m.round(&mut cc);
    assert_eq!(cc.k(), Some(Duration::ZERO));
}

#[test]
fn application_limited_time_does_not_advance_the_curve() {
    let rtt = Duration::from_millis(100);
    let run = |idle_rounds: usize| {
        let mut m = Model::new(MSS, rtt);
        let (mut cc, _) = after_loss(&mut m, 4);
        m.round(&mut cc);
        m.app_limited = true;
        for _ in 0..idle_rounds {
            m.round(&mut cc);
        }
        m.app_limited = false;
        let mut windows = vec![];
        for _ in 0..30 {
            m.round(&mut cc);
            windows.push(cc.window());
        }
        windows
    };
    let busy = run(0);
    let idled = run(40);
    for (a, b) in busy.iter().zip(&idled) {
        let diff = a.abs_diff(*b);
        assert!(diff <= 2 * MSS, "{busy:?}\n{idled:?}");
    }
}
