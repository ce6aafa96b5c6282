//! The engine survives any bytes a peer can send: arbitrary datagrams to a listening and a
//! connected endpoint, and live connections whose segments are mutated and interleaved with
//! forged ones. No panic, no endless loop (the simulator panics if a node spins), and the
//! connection either finishes or fails cleanly.

mod common;

use braid_proto::PathId;
use braid_proto::random::{Random, SeededRandom};
use braid_proto::sim::Sim;
use braid_proto::{
    ConnectionConfig, Endpoint, EndpointConfig, Framing, InterfaceKind, PathSpec, Policy,
    ServiceType,
};
use common::*;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn drain(ep: &mut Endpoint, now: Instant) {
    let mut buf = vec![0u8; 65536];
    for _ in 0..10_000 {
        if ep.poll_transmit(now, &mut buf).is_none() {
            return;
        }
    }
    panic!("endpoint never stops transmitting");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic(
        dgrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..40),
        raw in any::<bool>(),
    ) {
        let framing = if raw { Framing::Tcp } else { Framing::TcpInUdp };
        let mut server = Endpoint::new(
            EndpointConfig { listen: true, framing, ..EndpointConfig::default() },
            Box::new(SeededRandom::new(1)),
        );
        let mut client = Endpoint::new(
            EndpointConfig { framing, ..EndpointConfig::default() },
            Box::new(SeededRandom::new(2)),
        );
        let mut now = Instant::now();
        client.connect(now, None, PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(WIFI)), sa(SERVER));
        drain(&mut client, now);
        for d in &dgrams {
            now += Duration::from_millis(7);
            let _ = server.handle_segment(now, sa(SERVER), sa(WIFI), d);
            let _ = client.handle_segment(now, sa(WIFI), sa(SERVER), d);
            drain(&mut server, now);
            drain(&mut client, now);
            server.handle_timeout(now);
            client.handle_timeout(now);
        }
    }
}

/// A live two-path connection where a middlebox flips bits in some datagrams and injects
/// forged ones built from pieces of real traffic.
fn mangled_transfer(seed: u64) {
    let cfg = ConnectionConfig {
        policy: Policy::new(ServiceType::Aggregate),
        ..ConnectionConfig::default()
    };
    let paths = [(wifi_link(), wifi_link()), (cell_link(), cell_link())];
    let mut t = Transfer::build(seed, &paths, 300_000, 300_000, Some(cfg), None);
    let mut rng = SeededRandom::new(seed ^ 0xf00d);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    t.sim.set_middlebox(Box::new(move |_src, _dst, buf| {
        let roll = rng.next_u64() % 100;
        if roll < 5 && !buf.is_empty() {
            // Flip a few bits anywhere (header, options or payload).
            for _ in 0..1 + rng.next_u64() % 3 {
                let i = (rng.next_u64() as usize) % buf.len();
                buf[i] ^= 1 << (rng.next_u64() % 8);
            }
        } else if roll < 8 && !seen.is_empty() {
            // Replace by a splice of two earlier datagrams.
            let a = &seen[(rng.next_u64() as usize) % seen.len()];
            let b = &seen[(rng.next_u64() as usize) % seen.len()];
            let cut = (rng.next_u64() as usize) % (a.len().min(b.len()).max(1));
            let mut x = a[..cut.min(a.len())].to_vec();
            x.extend_from_slice(&b[cut.min(b.len())..]);
            *buf = x;
        } else if roll < 9 {
            buf.truncate((rng.next_u64() as usize) % (buf.len() + 1));
        }
        if seen.len() < 64 {
            seen.push(buf.clone());
        }
        true
    }));
    // Finishes, or the connection gives up cleanly: either way the simulation ends without a
    // panic or a spinning node.
    let _ = t.run(Duration::from_secs(120));
    let _: Option<&Sim<braid_proto::harness::Host>> = None;
}

#[test]
fn mangled_live_connections_never_panic() {
    for seed in 0..100 {
        mangled_transfer(seed);
    }
}
