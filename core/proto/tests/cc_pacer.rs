//! Token-bucket pacer: long-run rate, burst size, no idle credit.

use std::time::{Duration, Instant};

use braid_proto::cc::Pacer;

const MSS: u64 = 1000;

/// Sends MSS-sized segments as fast as the pacer allows for `secs`; returns bytes sent.
fn saturate(
    p: &mut Pacer,
    now: &mut Instant,
    secs: f64,
    cwnd: u64,
    srtt: Duration,
    ss: bool,
) -> u64 {
    let end = *now + Duration::from_secs_f64(secs);
    let mut sent = 0;
    while *now < end {
        match p.delay_until(*now, MSS, cwnd, srtt, MSS, ss) {
            None => {
                p.on_sent(*now, MSS);
                sent += MSS;
            }
            Some(t) => {
                assert!(t > *now, "a delay must be in the future");
                *now = t;
            }
        }
    }
    sent
}

#[test]
fn no_pacing_before_the_first_rtt_sample() {
    let mut p = Pacer::new();
    let now = Instant::now();
    for _ in 0..1000 {
        assert_eq!(
            p.delay_until(now, MSS, 10 * MSS, Duration::ZERO, MSS, true),
            None
        );
        p.on_sent(now, MSS);
    }
    assert_eq!(p.rate(), 0.0);
}

#[test]
fn long_run_rate_matches_the_window_over_the_rtt() {
    for (cwnd, srtt_ms, ss) in [
        (100 * MSS, 50, false),
        (100 * MSS, 50, true),
        (20 * MSS, 10, false),
        (1000 * MSS, 200, false),
        (3 * MSS, 100, true),
    ] {
        let srtt = Duration::from_millis(srtt_ms);
        let ratio = if ss { 2.0 } else { 1.25 };
        let want = cwnd as f64 / srtt.as_secs_f64() * ratio;
        let mut p = Pacer::new();
        let mut now = Instant::now();
        let secs = 5.0;
        let sent = saturate(&mut p, &mut now, secs, cwnd, srtt, ss);
        let got = sent as f64 / secs;
        assert!(
            (got - want).abs() <= 0.05 * want,
            "cwnd {cwnd} srtt {srtt_ms} ms: {got} vs {want}"
        );
    }
}

#[test]
fn bursts_are_capped_and_idle_time_earns_no_extra_credit() {
    let srtt = Duration::from_millis(20);
    // 5 MB/s × 1.25: the bucket is rate × 2 ms = 12.5 segments.
    let cwnd = 100 * MSS;
    let mut p = Pacer::new();
    let mut now = Instant::now();
    saturate(&mut p, &mut now, 1.0, cwnd, srtt, false);
    assert_eq!(p.capacity(), 12_500);
    for idle in [
        Duration::from_millis(1),
        Duration::from_secs(1),
        Duration::from_secs(100),
    ] {
        now += idle;
        let mut burst = 0;
        while p.delay_until(now, MSS, cwnd, srtt, MSS, false).is_none() {
            p.on_sent(now, MSS);
            burst += 1;
        }
        assert!(burst <= 13, "idle {idle:?}: burst of {burst} segments");
        // After the burst the sender is back to the paced rate.
        let sent = saturate(&mut p, &mut now, 1.0, cwnd, srtt, false) as f64;
        let rate = cwnd as f64 / srtt.as_secs_f64() * 1.25;
        assert!(
            sent <= rate * 1.0 + 13.0 * MSS as f64,
            "idle {idle:?}: {sent}"
        );
    }
}

#[test]
fn capacity_stays_between_two_and_sixty_four_segments() {
    let now = Instant::now();
    let mut p = Pacer::new();
    // Slow: 10 segments per second.
    p.delay_until(now, MSS, 10 * MSS, Duration::from_secs(1), MSS, false);
    assert_eq!(p.capacity(), 2 * MSS);
    // Fast: 1.25 GB/s.
    p.delay_until(
        now,
        MSS,
        10_000 * MSS,
        Duration::from_millis(10),
        MSS,
        false,
    );
    assert_eq!(p.capacity(), 64 * MSS);
}

#[test]
fn oversized_and_tiny_windows_make_progress() {
    let now = Instant::now();
    let mut p = Pacer::new();
    // A 64 kB write with a 2-segment bucket goes once the bucket is full.
    let srtt = Duration::from_millis(100);
    assert_eq!(p.delay_until(now, 64_000, 10 * MSS, srtt, MSS, false), None);
    p.on_sent(now, 64_000);
    let t = p.delay_until(now, MSS, 10 * MSS, srtt, MSS, false).unwrap();
    assert!(t > now && t <= now + srtt + Duration::from_nanos(1));
    // A 1-byte window over 60 s: the wait is bounded by one srtt.
    let mut p = Pacer::new();
    let srtt = Duration::from_secs(60);
    p.delay_until(now, MSS, 1, srtt, MSS, false);
    p.on_sent(now, 2 * MSS);
    let t = p.delay_until(now, MSS, 1, srtt, MSS, false).unwrap();
    assert!(t <= now + srtt + Duration::from_nanos(1));
}
