//! Interactive service with request/response traffic (each reply written when its request
//! arrives, as `braid bench --direction echo` does) while WiFi loses 20 % both ways.

mod common;

use braid_proto::{ConnectionConfig, Policy, ServiceType};
use common::*;
use std::time::Duration;

const MSG: u64 = 100;

/// Round trips (request written to reply complete) of requests sent `settle` or more after
/// WiFi turned lossy at 3 s, over `seconds`.
fn echo_latencies(seed: u64, seconds: u64, settle: Duration) -> Vec<Duration> {
    let wifi = wifi_link();
    let paths = vec![(wifi.clone(), wifi), (cell_link(), cell_link())];
    let cfg = ConnectionConfig {
        policy: Policy::new(ServiceType::Interactive),
        ..ConnectionConfig::default()
    };
    let mut t = Transfer::build(seed, &paths, 0, 0, Some(cfg), None);
    let (c, s, h) = (t.client, t.server, t.handle);
    t.sim.node_mut(c).apps[0].expect_seed = Some(SERVER_SEED);
    let lossy = wifi_link().with_loss(0.2);
    let (up, down) = t.links[0];
    t.sim.at(Duration::from_secs(3), move |sim| {
        sim.link_mut(up).set_config(lossy.clone());
        sim.link_mut(down).set_config(lossy);
    });
    let n = seconds * 20;
    let sent_at = |k: u64| Duration::from_millis(200 + k * 50);
    for k in 0..n {
        t.sim.at(sent_at(k), move |sim| {
            let mut msg = vec![0u8; MSG as usize];
            braid_testkit::pattern::fill(CLIENT_SEED, k * MSG, &mut msg);
            if let Some(conn) = sim.node_mut(c).ep.connection_mut(h) {
                let _ = conn.write(&msg);
            }
        });
    }
    // The server echoes: every millisecond, one reply per complete request received.
    let mut ms = 200;
    while ms < (seconds + 1) * 1000 {
        t.sim.at(Duration::from_millis(ms), move |sim| {
            let node = sim.node_mut(s);
            let Some(app) = node.apps.first() else {
                return;
            };
            let (sh, got, sent) = (app.handle, app.received, app.sent);
            let due = (got / MSG) * MSG;
            if due > sent {
                let mut msg = vec![0u8; (due - sent) as usize];
                braid_testkit::pattern::fill(SERVER_SEED, sent, &mut msg);
                if let Some(conn) = node.ep.connection_mut(sh) {
                    let n = conn.write(&msg).unwrap_or(0) as u64;
                    node.apps[0].sent += n;
                }
            }
        });
        ms += 1;
    }
    t.sim.run_until(Duration::from_secs(seconds + 2));
    let start = t.sim.start();
    let app = t.client_app();
    assert_eq!(app.first_mismatch, None);
    (0..n)
        .filter(|&k| sent_at(k) >= Duration::from_secs(3) + settle)
        .map(|k| {
            let done = app
                .arrivals
                .iter()
                .find(|&&(_, got)| got >= (k + 1) * MSG)
                .map(|&(at, _)| at - start)
                .unwrap_or(Duration::from_secs(3600));
            done - sent_at(k)
        })
        .collect()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn echo_over_a_lossy_wifi_mostly_takes_wifi_both_ways() {
    // Copies on both paths both ways: a round trip takes WiFi's 20 ms whenever request and
    // reply both get through WiFi (0.8 × 0.8 of the time), so the median stays there. A
    // median of 41 ms (10 + 30: one direction on cellular alone) is the failure this guards:
    // the client left WiFi on silence before it had seen a loss, and made no copies there.
    // Several seeds, because whether a loss or a silence comes first is chance.
    for seed in 1..=8 {
        let lat = echo_latencies(seed, 10, Duration::from_secs(1));
        let (p50, p99) = (percentile(lat.clone(), 0.5), percentile(lat, 0.99));
        eprintln!("seed {seed}: p50 {p50:?} p99 {p99:?}");
        assert!(p50 < Duration::from_millis(30), "seed {seed}: p50 {p50:?}");
        assert!(p99 < Duration::from_millis(100), "seed {seed}: p99 {p99:?}");
    }
}
