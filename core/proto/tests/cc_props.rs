//! Property tests: arbitrary ACK / loss / timeout / MSS sequences never panic and keep the
//! window sane; the estimator and the pacer stay within their bounds on any input.

use std::time::{Duration, Instant};

use braid_proto::cc::{
    Ack, Algorithm, Coupling, MAX_MSS, MAX_WINDOW, Pacer, PathState, RttEstimator,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Ack {
        at_us: u64,
        acked: u64,
        in_flight: u64,
        sample_us: Option<u64>,
        srtt_us: u64,
        app_limited: bool,
        in_recovery: bool,
    },
    Loss {
        at_us: u64,
        in_flight: u64,
    },
    Rto {
        at_us: u64,
    },
    SetMss(u64),
}

/// Microseconds up to about 17 minutes, in any order (clocks are not trusted to be monotonic).
fn at() -> impl Strategy<Value = u64> {
    0u64..1_000_000_000
}

/// Sizes from a byte to past a terabyte, weighted towards realistic values.
fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..3000,
        0u64..10_000_000,
        any::<u64>().prop_map(|v| v >> 20),
        any::<u64>()
    ]
}

/// RTTs from 1 µs to 60 s, or zero (no estimate yet).
fn rtt_us() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..1000, 1u64..60_000_000]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (at(), bytes(), bytes(), proptest::option::of(rtt_us()), rtt_us(), any::<bool>(), any::<bool>())
            .prop_map(|(at_us, acked, in_flight, sample_us, srtt_us, app_limited, in_recovery)| Op::Ack {
                at_us, acked, in_flight, sample_us, srtt_us, app_limited, in_recovery,
            }),
        1 => (at(), bytes()).prop_map(|(at_us, in_flight)| Op::Loss { at_us, in_flight }),
        1 => at().prop_map(|at_us| Op::Rto { at_us }),
        1 => prop_oneof![0u64..70_000, any::<u64>()].prop_map(Op::SetMss),
    ]
}

fn path_state() -> impl Strategy<Value = PathState> {
    (bytes(), rtt_us(), 1u64..9000, bytes(), any::<bool>()).prop_map(
        |(cwnd, srtt_us, mss, loss_interval, active)| PathState {
            cwnd,
            srtt: Duration::from_micros(srtt_us),
            mss,
            loss_interval,
            active,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn controllers_survive_anything(
        alg in 0usize..4,
        mss in prop_oneof![1u64..9000, any::<u64>()],
        ops in proptest::collection::vec(op(), 1..120),
        others in proptest::collection::vec(path_state(), 0..4),
        me in 0usize..5,
    ) {
        let base = Instant::now();
        let alg = Algorithm::ALL[alg];
        let mut cc = alg.build(mss, base);
        let mut mss = mss.clamp(1, MAX_MSS);
        let mut paths = others;
        for op in ops {
            match op {
                Op::Ack { at_us, acked, in_flight, sample_us, srtt_us, app_limited, in_recovery } => {
                    let srtt = Duration::from_micros(srtt_us);
                    if let Some(p) = paths.get_mut(me) {
                        p.cwnd = cc.window();
                        p.loss_interval = cc.loss_interval();
                    }
                    let ack = Ack {
                        now: base + Duration::from_micros(at_us),
                        newly_acked: acked,
                        in_flight,
                        rtt_sample: sample_us.map(Duration::from_micros),
                        srtt,
                        min_rtt: srtt / 2,
                        app_limited,
                        in_recovery,
                    };
                    let before = cc.window();
                    cc.on_ack(&ack, &Coupling { me, paths: &paths });
                    if app_limited || in_recovery || acked == 0 {
                        prop_assert_eq!(cc.window(), before, "no growth when limited");
                    }
                }
                Op::Loss { at_us, in_flight } => {
                    let before = cc.window();
                    cc.on_congestion_event(base + Duration::from_micros(at_us), in_flight);
                    prop_assert!(cc.window() >= 2 * mss);
                    prop_assert!(cc.window() <= before.max(2 * mss), "a loss never grows the window");
                }
                Op::Rto { at_us } => {
                    cc.on_retransmission_timeout(base + Duration::from_micros(at_us));
                    prop_assert_eq!(cc.window(), mss);
                }
                Op::SetMss(m) => {
                    cc.set_mss(m);
                    mss = m.clamp(1, MAX_MSS);
                }
            }
            prop_assert!(cc.window() >= mss, "{}: window {} < mss {}", alg, cc.window(), mss);
            prop_assert!(cc.window() <= MAX_WINDOW);
            let _ = cc.in_slow_start();
        }
    }

    #[test]
    fn rtt_estimator_stays_in_bounds(
        ops in proptest::collection::vec(prop_oneof![rtt_us().prop_map(Some), Just(None)], 1..200),
        min_rto_ms in 0u64..5000,
    ) {
        let base = Instant::now();
        let mut rtt = RttEstimator::new().with_min_rto(Duration::from_millis(min_rto_ms));
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Some(us) if i % 2 == 0 => rtt.update(Duration::from_micros(us)),
                Some(us) => rtt.update_at(base + Duration::from_millis(i as u64 * 100), Duration::from_micros(us)),
                None => rtt.on_timeout(),
            }
            let rto = rtt.rto();
            prop_assert!(rto <= Duration::from_secs(60));
            prop_assert!(rto >= Duration::from_millis(min_rto_ms).min(Duration::from_secs(60)));
            prop_assert!(rtt.min_rtt() <= rtt.latest().max(rtt.min_rtt()));
            if rtt.has_samples() {
                prop_assert!(rtt.srtt() <= Duration::from_secs(60));
            }
        }
    }

    #[test]
    fn pacer_delays_are_bounded(
        ops in proptest::collection::vec((at(), bytes(), bytes(), rtt_us(), 0u64..70_000, any::<bool>(), any::<bool>()), 1..200),
    ) {
        let base = Instant::now();
        let mut p = Pacer::new();
        for (at_us, size, cwnd, srtt_us, mss, ss, send) in ops {
            let now = base + Duration::from_micros(at_us);
            let srtt = Duration::from_micros(srtt_us);
            if let Some(t) = p.delay_until(now, size, cwnd, srtt, mss, ss) {
                prop_assert!(t > now);
                prop_assert!(t <= now + srtt + Duration::from_nanos(1));
            }
            if send {
                p.on_sent(now, size);
            }
            prop_assert!(p.rate().is_finite());
        }
    }
}

#[test]
fn a_takeover_raises_only_a_first_slow_start_window() {
    let now = std::time::Instant::now();
    for alg in Algorithm::ALL {
        // An idle backup: the initial window (10 segments) grows to the takeover's 40.
        let mut cc = alg.build(1000, now);
        assert_eq!(cc.window(), 10_000, "{alg}");
        assert!(cc.take_over(40_000), "{alg}");
        assert_eq!(cc.window(), 40_000, "{alg}");
        assert!(cc.in_slow_start(), "{alg}: still probing from there");
        // Never shrinks it.
        assert!(!cc.take_over(20_000), "{alg}");
        assert_eq!(cc.window(), 40_000, "{alg}");
        // A path that already met congestion keeps what it learnt.
        let mut cc = alg.build(1000, now);
        cc.on_congestion_event(now, 10_000);
        let after_loss = cc.window();
        assert!(!cc.take_over(40_000), "{alg}");
        assert_eq!(cc.window(), after_loss, "{alg}");
        let mut cc = alg.build(1000, now);
        cc.on_retransmission_timeout(now);
        assert!(!cc.take_over(40_000), "{alg}");
        assert_eq!(cc.window(), 1000, "{alg}");
    }
}
