//! RFC 6298 estimator arithmetic, backoff and bounds.

use std::time::{Duration, Instant};

use braid_proto::cc::RttEstimator;

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

#[test]
fn before_any_sample() {
    let rtt = RttEstimator::new();
    assert!(!rtt.has_samples());
    assert_eq!(rtt.rto(), Duration::from_secs(1), "RFC 6298 (2.1)");
    assert_eq!(rtt.srtt(), Duration::ZERO);
    assert_eq!(rtt.min_rtt(), Duration::ZERO);
    assert_eq!(rtt.latest(), Duration::ZERO);
    assert_eq!(rtt.backoff_count(), 0);
}

#[test]
fn hand_computed_sequence() {
    let mut rtt = RttEstimator::new();
    // First sample R: srtt = R, rttvar = R/2, RTO = srtt + max(G, 4·rttvar).
    rtt.update(ms(100.0));
    assert!(rtt.has_samples());
    assert_eq!((rtt.srtt(), rtt.rttvar()), (ms(100.0), ms(50.0)));
    assert_eq!(rtt.rto(), ms(300.0));
    // R = 200: rttvar = ¾·50 + ¼·|100 − 200| = 62.5; srtt = ⅞·100 + ⅛·200 = 112.5.
    rtt.update(ms(200.0));
    assert_eq!((rtt.srtt(), rtt.rttvar()), (ms(112.5), ms(62.5)));
    assert_eq!(rtt.rto(), ms(362.5));
    // R = 50: rttvar = ¾·62.5 + ¼·|112.5 − 50| = 62.5; srtt = ⅞·112.5 + ⅛·50 = 104.6875.
    rtt.update(ms(50.0));
    assert_eq!((rtt.srtt(), rtt.rttvar()), (ms(104.6875), ms(62.5)));
    assert_eq!(rtt.rto(), ms(354.6875));
    assert_eq!(rtt.latest(), ms(50.0));
    assert_eq!(rtt.min_rtt(), ms(50.0));
}

#[test]
fn granularity_bounds_a_steady_rtt() {
    let mut rtt = RttEstimator::new()
        .with_min_rto(Duration::ZERO)
        .with_granularity(Duration::from_millis(10));
    for _ in 0..200 {
        rtt.update(ms(100.0));
    }
    // rttvar decays towards zero; the RTO stays srtt + G.
    assert_eq!(rtt.srtt(), ms(100.0));
    assert!(rtt.rttvar() < Duration::from_micros(1));
    assert_eq!(rtt.rto(), ms(110.0));
}

#[test]
fn min_rto_is_respected() {
    let mut rtt = RttEstimator::new();
    rtt.update(Duration::from_millis(1));
    assert_eq!(
        rtt.rto(),
        Duration::from_millis(200),
        "Linux-style default floor"
    );
    let mut rtt = RttEstimator::new().with_min_rto(Duration::from_secs(1));
    rtt.update(Duration::from_millis(1));
    assert_eq!(rtt.rto(), Duration::from_secs(1), "RFC 6298 (2.4) floor");
}

#[test]
fn backoff_doubles_caps_and_resets() {
    let mut rtt = RttEstimator::new();
    rtt.update(ms(100.0));
    assert_eq!(rtt.rto(), ms(300.0));
    let mut expect = ms(300.0);
    for i in 1..=12 {
        rtt.on_timeout();
        expect = (expect * 2).min(Duration::from_secs(60));
        assert_eq!(rtt.rto(), expect, "after {i} timeouts");
        assert_eq!(rtt.backoff_count(), i);
    }
    assert_eq!(rtt.rto(), Duration::from_secs(60));
    for _ in 0..1000 {
        rtt.on_timeout();
    }
    assert_eq!(rtt.rto(), Duration::from_secs(60));
    // A new valid sample (Karn: not from a retransmission) clears the backoff.
    rtt.update(ms(100.0));
    assert_eq!(rtt.backoff_count(), 0);
    assert!(rtt.rto() < Duration::from_secs(1));
    let custom = RttEstimator::new().with_max_rto(Duration::from_secs(5));
    let mut custom = custom;
    for _ in 0..10 {
        custom.on_timeout();
    }
    assert_eq!(
        custom.rto(),
        Duration::from_secs(5),
        "initial RTO backs off too"
    );
}

#[test]
fn windowed_minimum_expires() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut rtt = RttEstimator::new().with_min_rtt_window(s(10));
    rtt.update_at(t0, ms(20.0));
    rtt.update_at(t0 + s(4), ms(40.0));
    rtt.update_at(t0 + s(8), ms(60.0));
    assert_eq!(rtt.min_rtt(), ms(20.0));
    // The 20 ms sample ages out: the next best, newer sample takes over.
    rtt.update_at(t0 + s(11), ms(80.0));
    assert_eq!(rtt.min_rtt(), ms(40.0));
    rtt.update_at(t0 + s(15), ms(80.0));
    assert_eq!(rtt.min_rtt(), ms(60.0));
    // A new lower sample wins at once.
    rtt.update_at(t0 + s(16), ms(30.0));
    assert_eq!(rtt.min_rtt(), ms(30.0));
    // After a long gap everything old is gone.
    rtt.update_at(t0 + s(100), ms(90.0));
    assert_eq!(rtt.min_rtt(), ms(90.0));
    // Without times the minimum never expires.
    let mut rtt = RttEstimator::new();
    rtt.update(ms(20.0));
    for _ in 0..100 {
        rtt.update(ms(90.0));
    }
    assert_eq!(rtt.min_rtt(), ms(20.0));
}

#[test]
fn extreme_samples_do_not_panic() {
    let mut rtt = RttEstimator::new().with_min_rto(Duration::from_secs(100));
    rtt.update(Duration::MAX);
    rtt.update(Duration::ZERO);
    rtt.update(Duration::MAX);
    for _ in 0..100 {
        rtt.on_timeout();
    }
    // min_rto above max_rto: max_rto wins.
    assert_eq!(rtt.rto(), Duration::from_secs(60));
    let mut rtt = RttEstimator::new();
    rtt.update(Duration::ZERO);
    assert_eq!(rtt.rto(), Duration::from_millis(200));
}
