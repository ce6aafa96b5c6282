//! Floods against an in-process gateway (debug build, short runs; `cargo xtask bench attack`
//! runs the same scenarios longer on the release build). The tests run one at a time: they
//! measure this process's memory and share two cores.

use braid_bench::attack::{self, FloodConfig, SynFloodConfig};
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` on a fresh two-thread runtime while holding the one-at-a-time lock.
fn alone<T>(f: impl std::future::Future<Output = T>) -> T {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn reassembly_flood_leaves_another_clients_echo_fast() {
    let cfg = FloodConfig {
        rate: 3000,
        duration: Duration::from_secs(6),
        probe_every: Duration::from_millis(100),
        probe_limit: Duration::from_secs(2),
    };
    let r = alone(attack::reassembly_flood(&cfg)).unwrap();
    let (min, med, max) = attack::spread(&r.probes);
    eprintln!(
        "{} out-of-order pieces at {:.0}/s; echo min {min:?} median {med:?} max {max:?}, \
         {} failed of {}; memory growth {} KB",
        r.pieces,
        r.achieved_rate,
        r.probe_failures,
        r.probes.len(),
        r.rss_growth / 1024
    );
    assert!(
        r.achieved_rate >= 2500.0,
        "the flood itself was too slow ({:.0}/s)",
        r.achieved_rate
    );
    assert!(
        r.sacked > 0,
        "the gateway never SACKed a flood piece: they did not pass its checks"
    );
    assert!(r.probes.len() >= 10, "too few probes: {}", r.probes.len());
    assert_eq!(r.probe_failures, 0, "echo probes lost during the flood");
    assert!(max < Duration::from_secs(1), "slowest echo {max:?}");
    assert!(
        r.rss_growth < 5 << 20,
        "memory grew {} KB during the flood",
        r.rss_growth / 1024
    );
}

#[test]
fn syn_flood_leaves_honest_clients_connecting() {
    let cfg = SynFloodConfig {
        rate: 3000,
        honest: 5,
        rtt: Duration::from_millis(100),
        limit: Duration::from_secs(10),
    };
    let r = alone(attack::syn_flood(&cfg)).unwrap();
    eprintln!(
        "{} SYNs at {:.0}/s; {} of {} honest clients connected and echoed ({:?})",
        r.syns, r.achieved_rate, r.honest_ok, r.honest, r.connect_times
    );
    assert!(
        r.achieved_rate >= 2500.0,
        "the flood itself was too slow ({:.0}/s)",
        r.achieved_rate
    );
    assert!(
        r.honest_ok >= 4,
        "only {} of {} honest connects succeeded under the SYN flood",
        r.honest_ok,
        r.honest
    );
}
