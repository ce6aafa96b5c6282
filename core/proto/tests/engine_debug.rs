mod common;
use common::*;
use std::time::Duration;

#[test]
#[ignore]
fn debug_case() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let loss: f64 = std::env::var("LOSS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let bytes = 40_000_000;
    let mut t = Transfer::single_path(
        seed,
        base_link().with_loss(loss),
        base_link().with_loss(loss),
        bytes,
        0,
    );
    let r = t.run(Duration::from_secs(900));
    let s = t.server_app().unwrap();
    let start = t.sim.start();
    for sec in 0..12 {
        let a = s.received_at(start + Duration::from_secs(sec));
        let b = s.received_at(start + Duration::from_secs(sec + 1));
        eprintln!("t={sec}s {:.1} Mbit/s", (b - a) as f64 * 8.0 / 1e6);
    }
    eprintln!(
        "done {} elapsed {:?} srv {}",
        r.done, r.elapsed, r.server_received
    );
    let st = t
        .sim
        .node(t.client)
        .ep
        .connection(t.handle)
        .unwrap()
        .stats();
    eprintln!("{:#?}", st.paths);
}
