//! Issue 4 in the simulator: aggregation over WiFi + cellular, path death with reinjection,
//! backup semantics, integrity under loss on both paths, address signalling.

mod common;

use braid_proto::sim::LinkConfig;
use braid_proto::{ConnectionConfig, Event, InterfaceKind, Policy, ServiceType};
use common::*;
use std::time::Duration;

fn cfg(service: ServiceType) -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::new(service),
        ..ConnectionConfig::default()
    }
}

fn two_paths() -> Vec<(LinkConfig, LinkConfig)> {
    vec![(wifi_link(), wifi_link()), (cell_link(), cell_link())]
}

fn goodput(t: &Transfer, from: Duration, to: Duration) -> f64 {
    let s = t.server_app().expect("server app");
    let start = t.sim.start();
    let a = s.received_at(start + from);
    let b = s.received_at(start + to);
    (b - a) as f64 * 8.0 / (to - from).as_secs_f64()
}

fn path_bytes(t: &Transfer, kind: InterfaceKind) -> u64 {
    let c = t.sim.node(t.client).ep.connection(t.handle).expect("conn");
    c.stats()
        .paths
        .iter()
        .filter(|p| p.kind == Some(kind))
        .map(|p| p.bytes_sent)
        .sum()
}

#[test]
fn aggregation_reaches_95_percent_of_both_links() {
    let mut t = Transfer::build(
        1,
        &two_paths(),
        80_000_000,
        0,
        Some(cfg(ServiceType::Aggregate)),
        None,
    );
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("aggregate 80 MB");
    let g = goodput(&t, Duration::from_secs(2), Duration::from_secs(10));
    let wifi = path_bytes(&t, InterfaceKind::Wifi);
    let cell = path_bytes(&t, InterfaceKind::Cellular);
    eprintln!(
        "aggregate goodput {:.2} Mbit/s of 60; wifi carried {:.1} %, cellular {:.1} %",
        g / 1e6,
        100.0 * wifi as f64 / (wifi + cell) as f64,
        100.0 * cell as f64 / (wifi + cell) as f64
    );
    assert!(
        g >= 0.95 * 60e6,
        "goodput {:.2} Mbit/s below 95 % of 60",
        g / 1e6
    );
    assert!(cell > 0 && wifi > cell, "both paths used, wifi more");
}

/// Kills path `dead` for good at 3 s; checks integrity and reports the receiver's stall.
fn path_death(dead: usize, service: ServiceType, seed: u64) -> Duration {
    let mut t = Transfer::build(
        seed,
        &two_paths(),
        40_000_000,
        10_000_000,
        Some(cfg(service)),
        None,
    );
    let kill = Duration::from_secs(3);
    t.down_at(dead, kill);
    let r = t.run(Duration::from_secs(120));
    r.assert_intact(&format!("path {dead} dies, {service:?}, seed {seed}"));
    let s = t.server_app().unwrap();
    let start = t.sim.start();
    s.longest_stall(
        start + kill - Duration::from_millis(1),
        start + kill + Duration::from_secs(3),
    )
}

#[test]
fn wifi_dies_forever_and_every_byte_arrives_exactly_once() {
    // WiFi carries the initial subflow: the connection must outlive it.
    for seed in 0..5 {
        let stall = path_death(0, ServiceType::Aggregate, seed);
        eprintln!("seed {seed}: initial (wifi) subflow died, longest receiver stall {stall:?}");
        assert!(stall < Duration::from_secs(2), "stall {stall:?}");
    }
}

#[test]
fn cellular_dies_forever_and_every_byte_arrives_exactly_once() {
    for seed in 0..5 {
        let stall = path_death(1, ServiceType::Aggregate, seed);
        eprintln!("seed {seed}: cellular subflow died, longest receiver stall {stall:?}");
    }
}

#[test]
fn backup_carries_nothing_while_primary_is_healthy_then_takes_over() {
    let mut t = Transfer::build(
        3,
        &two_paths(),
        20_000_000,
        0,
        Some(cfg(ServiceType::Handover)),
        None,
    );
    let client = t.client;
    let up = t.sim.run_while(Duration::from_secs(30), |sim| {
        sim.node(client).apps[0].sent < 10_000_000
    });
    assert!(up);
    assert_eq!(
        path_bytes(&t, InterfaceKind::Cellular),
        0,
        "backup carried data while wifi was fine"
    );
    let c = t
        .sim
        .node(t.client)
        .ep
        .connection(t.handle)
        .unwrap()
        .stats();
    assert!(
        c.paths
            .iter()
            .any(|p| p.kind == Some(InterfaceKind::Cellular)
                && p.backup
                && p.state == "established"),
        "backup subflow established: {:#?}",
        c.paths
    );
    let now = t.sim.elapsed();
    t.down_at(0, now);
    let r = t.run(Duration::from_secs(120));
    r.assert_intact("handover after wifi death");
    assert!(
        path_bytes(&t, InterfaceKind::Cellular) > 1_000_000,
        "cellular took over"
    );
}

#[test]
fn integrity_with_loss_on_both_paths() {
    for seed in 0..20 {
        let paths = vec![
            (wifi_link().with_loss(0.02), wifi_link().with_loss(0.02)),
            (
                cell_link()
                    .with_loss(0.03)
                    .with_reorder(0.02, Duration::from_millis(10)),
                cell_link().with_loss(0.03),
            ),
        ];
        let mut t = Transfer::build(
            seed,
            &paths,
            5_000_000,
            5_000_000,
            Some(cfg(ServiceType::Aggregate)),
            None,
        );
        let r = t.run(Duration::from_secs(300));
        r.assert_intact(&format!("lossy two paths seed {seed}"));
        let ev = &t.client_app().events;
        assert!(ev.iter().any(|(_, e)| matches!(
            e,
            Event::PathUp {
                kind: InterfaceKind::Cellular,
                ..
            }
        )));
    }
}
