//! Reno, the shared window rules, and behaviour every algorithm must share.

#[path = "cc_model.rs"]
mod cc_model;

use std::time::{Duration, Instant};

use braid_proto::cc::{
    Ack, Algorithm, CongestionControl, Coupling, Reno, initial_window, minimum_window,
};
use cc_model::Model;

const MSS: u64 = 1000;
const RTT: Duration = Duration::from_millis(50);

fn ack(now: Instant, bytes: u64) -> Ack {
    Ack {
        now,
        newly_acked: bytes,
        in_flight: 0,
        rtt_sample: Some(RTT),
        srtt: RTT,
        min_rtt: RTT,
        app_limited: false,
        in_recovery: false,
    }
}

const NONE: Coupling<'static> = Coupling { me: 0, paths: &[] };

#[test]
fn initial_window_follows_rfc6928() {
    assert_eq!(initial_window(1460), 14_600);
    assert_eq!(initial_window(1000), 10_000);
    assert_eq!(initial_window(536), 5_360);
    // Large MSS: 2 segments, more than 14600 bytes.
    assert_eq!(initial_window(9000), 18_000);
    assert_eq!(initial_window(4000), 14_600);
    assert_eq!(minimum_window(1460), 2920);
    assert!(initial_window(0) >= 1);
}

#[test]
fn algorithm_names_round_trip() {
    for a in Algorithm::ALL {
        assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
        let cc = a.build(MSS, Instant::now());
        assert_eq!(cc.name(), a.to_string());
        assert_eq!(cc.window(), initial_window(MSS));
    }
    assert_eq!(" CUBIC ".parse::<Algorithm>().unwrap(), Algorithm::Cubic);
    assert_eq!(Algorithm::default(), Algorithm::Cubic);
    assert!(Algorithm::Lia.is_coupled() && Algorithm::Olia.is_coupled());
    assert!(!Algorithm::Reno.is_coupled() && !Algorithm::Cubic.is_coupled());
    let err = "bbr".parse::<Algorithm>().unwrap_err().to_string();
    assert!(
        err.contains("\"bbr\"") && err.contains("reno, cubic, lia, olia"),
        "{err}"
    );
}

#[test]
fn slow_start_doubles_every_round_for_all_algorithms() {
    for a in Algorithm::ALL {
        let mut cc = a.build(MSS, Instant::now());
        let mut m = Model::new(MSS, RTT);
        let mut w = cc.window();
        for _ in 0..6 {
            m.round(cc.as_mut());
            assert_eq!(cc.window(), 2 * w, "{a}");
            assert!(cc.in_slow_start());
            w = cc.window();
        }
    }
}

#[test]
fn byte_counting_limits_stretch_acks() {
    let mut cc = Reno::new(MSS);
    let now = Instant::now();
    // One ACK for 10 segments grows the window by L = 2 segments only (RFC 3465).
    cc.on_ack(&ack(now, 10 * MSS), &NONE);
    assert_eq!(cc.window(), initial_window(MSS) + 2 * MSS);
    // A small ACK grows by what it acknowledges.
    cc.on_ack(&ack(now, 100), &NONE);
    assert_eq!(cc.window(), initial_window(MSS) + 2 * MSS + 100);
}

#[test]
fn reno_sawtooth() {
    let mut cc = Reno::new(MSS);
    let mut m = Model::new(MSS, RTT);
    for _ in 0..3 {
        m.round(&mut cc);
    }
    assert_eq!(cc.window(), 80 * MSS);
    for cycle in 0..3 {
        let before = cc.window();
        m.loss(&mut cc);
        assert_eq!(cc.window(), before / 2, "cycle {cycle}: halved");
        assert_eq!(cc.ssthresh(), before / 2);
        assert!(!cc.in_slow_start());
        for _ in 0..20 {
            let w = cc.window();
            m.round(&mut cc);
            assert_eq!(cc.window(), w + MSS, "one MSS per RTT");
        }
    }
}

#[test]
fn leaving_slow_start_at_ssthresh() {
    let mut cc = Reno::new(MSS);
    let mut m = Model::new(MSS, RTT);
    m.round(&mut cc);
    m.loss(&mut cc); // ssthresh = 10 MSS
    cc.on_retransmission_timeout(m.now);
    assert_eq!(cc.window(), MSS);
    assert_eq!(cc.ssthresh(), 5 * MSS);
    let mut windows = vec![];
    for _ in 0..6 {
        m.round(&mut cc);
        windows.push(cc.window() / MSS);
    }
    // 1 → 2 → 4 → 5 (capped at ssthresh, rest to avoidance) → 6 → 7 ...
    assert_eq!(windows[..3], [2, 4, 5]);
    assert!(
        windows[3..].windows(2).all(|w| w[1] == w[0] + 1),
        "{windows:?}"
    );
}

#[test]
fn no_growth_when_app_limited_or_in_recovery() {
    for a in Algorithm::ALL {
        for (app, rec) in [(true, false), (false, true)] {
            let mut cc = a.build(MSS, Instant::now());
            let mut m = Model::new(MSS, RTT);
            m.round(cc.as_mut());
            m.loss(cc.as_mut());
            let w = cc.window();
            m.app_limited = app;
            m.in_recovery = rec;
            for _ in 0..10 {
                m.round(cc.as_mut());
            }
            assert_eq!(cc.window(), w, "{a} in avoidance, app {app} recovery {rec}");
            // And not in slow start either.
            let mut cc = a.build(MSS, Instant::now());
            let w = cc.window();
            for _ in 0..3 {
                m.round(cc.as_mut());
            }
            assert_eq!(
                cc.window(),
                w,
                "{a} in slow start, app {app} recovery {rec}"
            );
        }
    }
}

#[test]
fn rto_collapses_to_one_mss_for_all_algorithms() {
    for a in Algorithm::ALL {
        let mut cc = a.build(MSS, Instant::now());
        let mut m = Model::new(MSS, RTT);
        for _ in 0..3 {
            m.round(cc.as_mut());
        }
        let w = cc.window();
        cc.on_retransmission_timeout(m.now);
        assert_eq!(cc.window(), MSS, "{a}");
        let factor = if a == Algorithm::Cubic { 0.7 } else { 0.5 };
        assert_eq!(cc.ssthresh(), (w as f64 * factor) as u64, "{a}");
        // A second timeout with nothing acknowledged in between keeps ssthresh.
        let ssthresh = cc.ssthresh();
        cc.on_retransmission_timeout(m.now);
        assert_eq!((cc.window(), cc.ssthresh()), (MSS, ssthresh), "{a}");
        assert!(cc.in_slow_start());
    }
}

#[test]
fn losses_never_go_below_two_segments() {
    for a in Algorithm::ALL {
        let mut cc = a.build(MSS, Instant::now());
        let mut m = Model::new(MSS, RTT);
        for _ in 0..10 {
            m.loss(cc.as_mut());
            assert!(cc.window() >= minimum_window(MSS), "{a}");
        }
        assert_eq!(cc.window(), 2 * MSS, "{a}");
        assert_eq!(cc.ssthresh(), 2 * MSS, "{a}");
        // Even with nothing in flight reported.
        cc.on_congestion_event(m.now, 0);
        assert_eq!(cc.window(), 2 * MSS, "{a}");
    }
}

#[test]
fn reno_uses_flight_size_when_smaller_than_window() {
    let mut cc = Reno::new(MSS);
    let mut m = Model::new(MSS, RTT);
    m.round(&mut cc);
    m.round(&mut cc);
    assert_eq!(cc.window(), 40 * MSS);
    cc.on_congestion_event(m.now, 10 * MSS);
    assert_eq!(cc.window(), 5 * MSS);
    // More in flight than the window (e.g. after a reduction) never grows the window.
    cc.on_congestion_event(m.now, 100 * MSS);
    assert_eq!(cc.window(), (5 * MSS / 2).max(2 * MSS));
}

#[test]
fn mss_change_before_data_recomputes_initial_window() {
    for a in Algorithm::ALL {
        let mut cc = a.build(536, Instant::now());
        assert_eq!(cc.window(), 5360);
        cc.set_mss(1460);
        assert_eq!(cc.window(), 14_600, "{a}");
        let mut m = Model::new(1460, RTT);
        m.round(cc.as_mut());
        let w = cc.window();
        cc.set_mss(1200);
        assert_eq!(cc.window(), w, "{a}: a used window is kept");
    }
}
