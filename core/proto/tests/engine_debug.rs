mod common;
use braid_proto::{ConnectionConfig, Policy, ServiceType};
use common::*;
use std::time::Duration;

#[test]
#[ignore]
fn debug_case() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let dead: usize = std::env::var("DEAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cfg = ConnectionConfig {
        policy: Policy::new(ServiceType::Aggregate),
        ..Default::default()
    };
    let mut t = Transfer::build(
        seed,
        &[(wifi_link(), wifi_link()), (cell_link(), cell_link())],
        40_000_000,
        10_000_000,
        Some(cfg),
        None,
    );
    t.down_at(dead, Duration::from_secs(3));
    let r = t.run(Duration::from_secs(900));
    let s = t.server_app().unwrap();
    let start = t.sim.start();
    for ms in (2800..9000).step_by(200) {
        let a = s.received_at(start + Duration::from_millis(ms));
        let b = s.received_at(start + Duration::from_millis(ms + 200));
        let st = t
            .sim
            .node(t.client)
            .ep
            .connection(t.handle)
            .unwrap()
            .stats();
        eprintln!("t={ms}ms {:.1} Mbit/s", (b - a) as f64 * 8.0 / 0.2 / 1e6);
        let _ = st;
    }
    let st = t
        .sim
        .node(t.client)
        .ep
        .connection(t.handle)
        .unwrap()
        .stats();
    for p in &st.paths {
        eprintln!(
            "{:?} sent {} retx {} srtt {:?} cwnd {} inflight {} rto {} state {}",
            p.kind,
            p.bytes_sent,
            p.bytes_retransmitted,
            p.srtt,
            p.cwnd,
            p.in_flight,
            p.rto_events,
            p.state
        );
    }
    eprintln!("reinjected {}", st.bytes_reinjected);
    eprintln!(
        "done {} elapsed {:?} srv {}",
        r.done, r.elapsed, r.server_received
    );
    for (at, e) in t.client_app().events.iter().take(20) {
        eprintln!("client {:?} {:?}", *at - t.sim.start(), e);
    }
}
