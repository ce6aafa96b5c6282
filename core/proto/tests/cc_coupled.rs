//! LIA (RFC 6356) and OLIA in the round model.

#[path = "cc_model.rs"]
mod cc_model;

use std::time::{Duration, Instant};

use braid_proto::cc::{Ack, Algorithm, CongestionControl, Coupling, Lia, Olia, PathState, Reno};
use cc_model::{Model, path};

const MSS: u64 = 1000;
const RTT: Duration = Duration::from_millis(50);

fn state(cwnd: u64, srtt_ms: u64, loss_interval: u64) -> PathState {
    PathState {
        cwnd,
        srtt: Duration::from_millis(srtt_ms),
        mss: MSS,
        loss_interval,
        active: true,
    }
}

fn ca_ack(bytes: u64, srtt: Duration) -> Ack {
    Ack {
        now: Instant::now(),
        newly_acked: bytes,
        in_flight: 0,
        rtt_sample: Some(srtt),
        srtt,
        min_rtt: srtt,
        app_limited: false,
        in_recovery: false,
    }
}

/// A controller in congestion avoidance at `segments` (slow start to twice that, then a loss).
fn in_avoidance(alg: Algorithm, segments: u64) -> Box<dyn CongestionControl> {
    let mut cc = alg.build(MSS, Instant::now());
    let mut m = Model::new(MSS, RTT);
    while cc.window() < 2 * segments * MSS {
        m.round(cc.as_mut());
    }
    cc.on_congestion_event(m.now, 2 * segments * MSS);
    assert_eq!(cc.window(), segments * MSS);
    cc
}

#[test]
fn single_path_coupled_controllers_behave_like_reno() {
    for alg in [Algorithm::Lia, Algorithm::Olia] {
        let mut reno = Reno::new(MSS);
        let mut cc = alg.build(MSS, Instant::now());
        let (mut m1, mut m2) = (Model::new(MSS, RTT), Model::new(MSS, RTT));
        let mut worst = 0.0f64;
        for r in 1..=300 {
            m1.round(&mut reno);
            let me = [path(cc.as_ref(), RTT)];
            m2.round_coupled(cc.as_mut(), &me, 0);
            if r == 3 || r % 25 == 0 {
                m1.loss(&mut reno);
                m2.loss(cc.as_mut());
            }
            if r == 300 {
                eprintln!("{alg}: worst relative difference from Reno {worst:.4}");
            }
            // RFC 6356 grows by acked·MSS/cwnd on every ACK while Reno counts whole windows of
            // bytes (RFC 3465), so the coupled window trails by a fraction of a segment per
            // cycle; halving carries that over.
            let (a, b) = (reno.window() as f64, cc.window() as f64);
            worst = worst.max((a - b).abs() / a);
            assert!((a - b).abs() <= 0.02 * a, "{alg} round {r}: reno {a}, {b}");
        }
    }
}

#[test]
fn lia_alpha_matches_rfc6356() {
    let lia = Lia::new(MSS);
    // Equal paths: α = 2w · (w/r²) / (2w/r)² = 1/2.
    let w = lia.window();
    let paths = [state(w, 50, 0), state(w, 50, 0)];
    let alpha = lia
        .alpha(
            RTT,
            &Coupling {
                me: 0,
                paths: &paths,
            },
        )
        .unwrap();
    assert!((alpha - 0.5).abs() < 1e-12, "{alpha}");
    // Single path: α = 1.
    let alpha = lia
        .alpha(
            RTT,
            &Coupling {
                me: 0,
                paths: &paths[..1],
            },
        )
        .unwrap();
    assert!((alpha - 1.0).abs() < 1e-12);
    // Inactive paths and paths without an RTT estimate do not count.
    let mut idle = paths;
    idle[1].active = false;
    let alpha = lia
        .alpha(
            RTT,
            &Coupling {
                me: 0,
                paths: &idle,
            },
        )
        .unwrap();
    assert!((alpha - 1.0).abs() < 1e-12);
    idle[1] = state(w, 0, 0);
    let alpha = lia
        .alpha(
            RTT,
            &Coupling {
                me: 0,
                paths: &idle,
            },
        )
        .unwrap();
    assert!((alpha - 1.0).abs() < 1e-12);
    // No RTT yet on this subflow: no coupling possible.
    assert!(
        lia.alpha(Duration::ZERO, &Coupling { me: 5, paths: &[] })
            .is_none()
    );
}

#[test]
fn lia_increase_with_unequal_paths() {
    // Path 0: 20 segments over 10 ms; path 1 (this one): 40 segments over 40 ms.
    let mut cc = in_avoidance(Algorithm::Lia, 40);
    let srtt = Duration::from_millis(40);
    let paths = [state(20_000, 10, 0), state(40_000, 40, 0)];
    // total = 60000; max(cwnd/rtt²) = 20000/0.01² = 2e8; Σ cwnd/rtt = 2e6 + 1e6 = 3e6.
    let alpha = 60_000.0 * 2e8 / 9e12;
    let coupling = Coupling {
        me: 1,
        paths: &paths,
    };
    // 400 ACKs of one segment: each adds min(α·MSS²/60000, MSS²/40000) ≈ 22.2 vs 25 bytes.
    let before = cc.window();
    for _ in 0..400 {
        cc.on_ack(&ca_ack(MSS, srtt), &coupling);
    }
    let per_ack = alpha * (MSS * MSS) as f64 / 60_000.0;
    assert!(per_ack < (MSS * MSS) as f64 / 40_000.0);
    let grown = (cc.window() - before) as f64;
    // The window itself grows during the run, so recompute the expectation per ACK.
    let mut expect = 0.0;
    let mut w = before as f64;
    for _ in 0..400 {
        let total = 20_000.0 + w;
        let best = (20_000.0 / 1e-4f64).max(w / 1.6e-3);
        let sum = 2e6 + w / 0.04;
        let a = total * best / (sum * sum);
        let inc = (a * (MSS * MSS) as f64 / total).min((MSS * MSS) as f64 / w);
        expect += inc;
        w += inc;
    }
    assert!((grown - expect).abs() <= 2.0, "grew {grown}, want {expect}");
}

/// Two subflows over paths with the same RTT; `loss_every[i]` bytes acknowledged on path i
/// cause a loss there (a fixed loss rate per byte). Returns the mean windows over the second
/// half of the run and the total window growth per round seen in loss-free rounds.
fn two_paths(alg: Algorithm, loss_every: [u64; 2], rounds: usize) -> ([f64; 2], Vec<f64>) {
    let mut cc = [in_avoidance(alg, 20), in_avoidance(alg, 20)];
    let mut m = [Model::new(MSS, RTT), Model::new(MSS, RTT)];
    let mut since_loss = [0u64; 2];
    let mut sums = [0.0; 2];
    let mut growth = vec![];
    for r in 0..rounds {
        let before: u64 = cc.iter().map(|c| c.window()).sum();
        let mut lost = false;
        for i in 0..2 {
            let paths = [path(cc[0].as_ref(), RTT), path(cc[1].as_ref(), RTT)];
            since_loss[i] += m[i].round_coupled(cc[i].as_mut(), &paths, i);
            if since_loss[i] >= loss_every[i] {
                since_loss[i] = 0;
                m[i].loss(cc[i].as_mut());
                lost = true;
            }
        }
        if !lost {
            let after: u64 = cc.iter().map(|c| c.window()).sum();
            growth.push((after - before) as f64 / MSS as f64);
        }
        if r >= rounds / 2 {
            for i in 0..2 {
                sums[i] += cc[i].window() as f64;
            }
        }
    }
    let n = (rounds - rounds / 2) as f64;
    ([sums[0] / n, sums[1] / n], growth)
}

#[test]
fn lia_on_two_equal_paths_is_no_more_aggressive_than_one_reno_flow() {
    // No losses: pure congestion avoidance on two equal paths. With equal windows α = 1/2 and
    // each path gains α·w·MSS/(2w) = MSS/4 per RTT: half a segment per RTT in total, where
    // one Reno flow gains a whole one.
    let (_, growth) = two_paths(Algorithm::Lia, [u64::MAX, u64::MAX], 50);
    for g in &growth {
        assert!((0.45..=0.55).contains(g), "{growth:?}");
    }
    // Uncoupled, the same two subflows would gain two segments per RTT.
    let (_, growth) = two_paths(Algorithm::Reno, [u64::MAX, u64::MAX], 10);
    assert!(growth.iter().all(|g| (*g - 2.0).abs() < 1e-9), "{growth:?}");
}

#[test]
fn olia_alpha_moves_window_from_the_largest_to_the_best_path() {
    let none = Coupling { me: 0, paths: &[] };
    // `best` saw 500 kB without loss (one stretch ACK: +2 MSS by byte counting), then a
    // loss: a small window.
    let mut best = Olia::new(MSS);
    best.on_ack(&ca_ack(500_000, RTT), &none);
    best.on_congestion_event(Instant::now(), 20_000);
    assert_eq!((best.window(), best.loss_interval()), (6_000, 500_000));
    // `big` has the larger window but only 100 kB between losses.
    let mut big = Olia::new(MSS);
    for _ in 0..100 {
        big.on_ack(&ca_ack(MSS, RTT), &none);
    }
    assert_eq!((big.window(), big.loss_interval()), (110_000, 100_000));

    let paths = [path(&best, RTT), path(&big, RTT)];
    // B = {best}, M = {big}, C = B \ M = {best}; n = 2.
    let a = best
        .alpha(
            RTT,
            &Coupling {
                me: 0,
                paths: &paths,
            },
        )
        .unwrap();
    assert!((a - 0.5).abs() < 1e-12, "1/(n·|C|) = 1/2, got {a}");
    let a = big
        .alpha(
            RTT,
            &Coupling {
                me: 1,
                paths: &paths,
            },
        )
        .unwrap();
    assert!((a + 0.5).abs() < 1e-12, "-1/(n·|M|) = -1/2, got {a}");
    // When the best path also has the largest window, nothing moves.
    let paths = [state(10_000, 50, 50_000), path(&big, RTT)];
    assert_eq!(
        big.alpha(
            RTT,
            &Coupling {
                me: 1,
                paths: &paths
            }
        )
        .unwrap(),
        0.0
    );
    // A longer RTT makes a path less attractive: best metric is l²/rtt.
    let paths = [path(&best, Duration::from_secs(20)), path(&big, RTT)];
    let a = big
        .alpha(
            RTT,
            &Coupling {
                me: 1,
                paths: &paths,
            },
        )
        .unwrap();
    assert_eq!(a, 0.0, "500k²/20 s < 100k²/50 ms");
}

#[test]
fn olia_tracks_bytes_between_losses() {
    let mut olia = Olia::new(MSS);
    let none = Coupling { me: 0, paths: &[] };
    olia.on_ack(&ca_ack(5000, RTT), &none);
    assert_eq!(olia.loss_interval(), 5000);
    olia.on_congestion_event(Instant::now(), 10_000);
    assert_eq!(olia.loss_interval(), 5000, "l1 = 5000, l2 = 0");
    olia.on_ack(&ca_ack(3000, RTT), &none);
    assert_eq!(olia.loss_interval(), 5000);
    olia.on_ack(&ca_ack(4000, RTT), &none);
    assert_eq!(
        olia.loss_interval(),
        7000,
        "since the last loss is now larger"
    );
    olia.on_congestion_event(Instant::now(), 10_000);
    assert_eq!(olia.loss_interval(), 7000);
    assert_eq!(Lia::new(MSS).loss_interval(), 0);
}

#[test]
fn olia_shifts_window_to_the_less_lossy_path() {
    // Path 0 loses once per 150 kB, path 1 once per 600 kB (a quarter of the loss rate).
    let rounds = 3000;
    let loss = [150_000, 600_000];
    let ([o0, o1], _) = two_paths(Algorithm::Olia, loss, rounds);
    let ([l0, l1], _) = two_paths(Algorithm::Lia, loss, rounds);
    let olia_share = o1 / (o0 + o1);
    let lia_share = l1 / (l0 + l1);
    eprintln!(
        "olia {o0:.0} {o1:.0} share {olia_share:.3}; lia {l0:.0} {l1:.0} share {lia_share:.3}"
    );
    assert!(
        olia_share > 0.8,
        "OLIA puts most of its window on the better path"
    );
    assert!(olia_share > lia_share, "and more of it than LIA does");
    // The lossy path is kept as a probe, not abandoned.
    assert!(o0 >= 2.0 * MSS as f64);
}
