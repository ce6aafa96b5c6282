//! Address signalling and coupled congestion control in the simulator.

mod common;

use braid_proto::PathId;
use braid_proto::cc::Algorithm;
use braid_proto::harness::Host;
use braid_proto::sim::{LinkConfig, Sim};
use braid_proto::{
    ConnectionConfig, EndpointConfig, Event, InterfaceKind, PathSpec, Policy, ServiceType,
};
use common::*;
use std::time::Duration;

fn aggregate() -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::new(ServiceType::Aggregate),
        ..ConnectionConfig::default()
    }
}

#[test]
fn add_addr_leads_to_a_join_and_remove_addr_closes_it() {
    let mut sim = Sim::new(4);
    let client = Host::new(EndpointConfig::default(), 41);
    let mut server = Host::new(
        EndpointConfig {
            listen: true,
            announce: vec![(1, sa("10.0.0.2:443"))],
            ..EndpointConfig::default()
        },
        42,
    );
    server.expect_seed = Some(CLIENT_SEED);
    let c = sim.add_node(client, &[ip("10.0.1.2")]);
    let s = sim.add_node(server, &[ip("10.0.0.1"), ip("10.0.0.2")]);
    sim.add_duplex(ip("10.0.1.2"), ip("10.0.0.1"), wifi_link(), wifi_link());
    sim.add_duplex(ip("10.0.1.2"), ip("10.0.0.2"), cell_link(), cell_link());
    let now = sim.now();
    let path = PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(WIFI));
    let h = sim.node_mut(c).connect(
        now,
        Some(aggregate()),
        path,
        sa(SERVER),
        30_000_000,
        CLIENT_SEED,
    );
    sim.run_until(Duration::from_secs(2));
    let remotes = |sim: &Sim<Host>| -> Vec<std::net::SocketAddr> {
        let conn = sim.node(c).ep.connection(h).unwrap();
        conn.stats()
            .paths
            .iter()
            .filter(|p| p.state == "established")
            .filter_map(|p| p.remote)
            .collect()
    };
    let ev: Vec<Event> = sim.node(c).apps[0]
        .events
        .iter()
        .map(|e| e.1.clone())
        .collect();
    assert!(
        ev.contains(&Event::AddressAnnounced {
            addr: sa("10.0.0.2:443")
        }),
        "{ev:?}"
    );
    assert!(
        remotes(&sim).contains(&sa("10.0.0.2:443")),
        "joined the announced address"
    );
    let sh = sim.node(s).apps[0].handle;
    sim.node_mut(s)
        .ep
        .connection_mut(sh)
        .unwrap()
        .withdraw_address(sa("10.0.0.2:443"));
    sim.run_until(Duration::from_secs(3));
    assert_eq!(
        remotes(&sim),
        vec![sa(SERVER)],
        "REMOVE_ADDR closed the subflow"
    );
    let done = sim.run_while(Duration::from_secs(60), |sim| {
        !sim.node(s).apps[0].peer_finished
    });
    assert!(done);
    let app = &sim.node(s).apps[0];
    assert_eq!((app.received, app.first_mismatch), (30_000_000, None));
}

/// Goodput (bit/s) the server received on each connection between `from` and `to`.
fn per_app_goodput(
    sim: &Sim<Host>,
    server: braid_proto::sim::NodeId,
    from: u64,
    to: u64,
) -> Vec<f64> {
    let start = sim.start();
    sim.node(server)
        .apps
        .iter()
        .map(|a| {
            let x = a.received_at(start + Duration::from_secs(from));
            let y = a.received_at(start + Duration::from_secs(to));
            (y - x) as f64 * 8.0 / (to - from) as f64
        })
        .collect()
}

/// Two subflows of one MPTCP connection and one plain TCP flow through one 20 Mbit/s
/// bottleneck. Returns the MPTCP connection's share of the bottleneck.
fn shared_bottleneck_share(cc: Algorithm, seed: u64) -> f64 {
    let mut sim = Sim::new(seed);
    let mut client = Host::new(EndpointConfig::default(), seed * 3 + 1);
    let server = Host::new(
        EndpointConfig {
            listen: true,
            ..EndpointConfig::default()
        },
        seed * 3 + 2,
    );
    let bottleneck = LinkConfig::new(20_000_000, Duration::from_millis(20)).with_queue_bdp(1.0);
    let now = sim.now();
    let mut mp = aggregate();
    mp.subflow.congestion_control = cc;
    let h = client.connect(
        now,
        Some(mp),
        PathSpec::new(PathId::new(1), InterfaceKind::Wired, sa("10.0.1.2:40001")),
        sa(SERVER),
        200_000_000,
        1,
    );
    client.ep.add_path(
        now,
        h,
        PathSpec::new(PathId::new(2), InterfaceKind::Wired, sa("10.0.1.2:40002")),
    );
    let tcp = ConnectionConfig {
        mptcp: false,
        ..ConnectionConfig::default()
    };
    client.connect(
        now,
        Some(tcp),
        PathSpec::new(PathId::new(3), InterfaceKind::Wired, sa("10.0.1.2:40003")),
        sa(SERVER),
        200_000_000,
        2,
    );
    let c = sim.add_node(client, &[ip("10.0.1.2")]);
    let s = sim.add_node(server, &[ip("10.0.0.1")]);
    sim.add_duplex(
        ip("10.0.1.2"),
        ip("10.0.0.1"),
        bottleneck.clone(),
        bottleneck,
    );
    sim.run_until(Duration::from_secs(40));
    let conns = sim.node(c).ep.connection(h).unwrap().stats();
    assert_eq!(
        conns
            .paths
            .iter()
            .filter(|p| p.state == "established")
            .count(),
        2,
        "both subflows up"
    );
    // Server apps are in accept order; find which one is the MPTCP connection.
    let g = per_app_goodput(&sim, s, 10, 40);
    let mptcp_idx = sim
        .node(s)
        .apps
        .iter()
        .position(|a| {
            sim.node(s)
                .ep
                .connection(a.handle)
                .is_some_and(|conn| conn.is_mptcp())
        })
        .expect("an MPTCP connection");
    g[mptcp_idx] / g.iter().sum::<f64>()
}

#[test]
fn coupled_congestion_control_does_no_harm_at_a_shared_bottleneck() {
    // RFC 6356's goal: a multipath flow takes no more than one TCP flow would. Tolerance:
    // the MPTCP connection's share must stay within 0.35..0.62 (an even split is 0.5; two
    // uncoupled CUBIC subflows take about two thirds).
    for cc in [Algorithm::Lia, Algorithm::Olia] {
        let shares: Vec<f64> = (0..3)
            .map(|seed| shared_bottleneck_share(cc, seed))
            .collect();
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        eprintln!("{cc}: MPTCP share of the bottleneck {shares:.3?}, mean {mean:.3}");
        assert!((0.35..0.62).contains(&mean), "{cc}: share {mean:.3}");
    }
    let uncoupled = shared_bottleneck_share(Algorithm::Cubic, 0);
    eprintln!("uncoupled cubic: MPTCP share {uncoupled:.3}");
}
