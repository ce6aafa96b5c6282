//! End-to-end transfers through the simulator: integrity under loss, reordering,
//! duplication and outages.

use braid_proto::PathId;
use braid_proto::harness::Host;
use braid_proto::sim::{LinkConfig, Sim};
use braid_proto::{EndpointConfig, InterfaceKind, PathSpec};
use braid_testkit::pattern;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Run {
    sim: Sim<Host>,
    client: braid_proto::sim::NodeId,
    server: braid_proto::sim::NodeId,
    handle: braid_proto::ConnectionHandle,
}

fn setup(seed: u64, up: LinkConfig, down: LinkConfig, c2s: u64, s2c: u64) -> Run {
    let mut sim = Sim::new(seed);
    let cip: IpAddr = "10.0.1.2".parse().unwrap();
    let sip: IpAddr = "10.0.0.1".parse().unwrap();
    let client = Host::new(EndpointConfig::default(), seed ^ 1);
    let mut server = Host::new(
        EndpointConfig {
            listen: true,
            ..EndpointConfig::default()
        },
        seed ^ 2,
    );
    server.accept_send = s2c;
    server.accept_seed = 77;
    let client = sim.add_node(client, &[cip]);
    let server = sim.add_node(server, &[sip]);
    sim.add_duplex(cip, sip, up, down);
    let now = sim.now();
    let path = PathSpec::new(PathId::new(1), InterfaceKind::Wifi, addr("10.0.1.2:40000"));
    let handle = sim
        .node_mut(client)
        .connect(now, None, path, addr("10.0.0.1:443"), c2s, 5);
    Run {
        sim,
        client,
        server,
        handle,
    }
}

fn finished(
    sim: &Sim<Host>,
    client: braid_proto::sim::NodeId,
    server: braid_proto::sim::NodeId,
) -> bool {
    let c = &sim.node(client).apps;
    let s = &sim.node(server).apps;
    !c.is_empty() && !s.is_empty() && c[0].peer_finished && s[0].peer_finished
}

#[test]
fn clean_link_small_transfer_both_ways() {
    let link = LinkConfig::new(40_000_000, Duration::from_millis(10)).with_queue_bdp(1.0);
    let mut r = setup(1, link.clone(), link, 1_000_000, 500_000);
    let (c, s) = (r.client, r.server);
    let done = r
        .sim
        .run_while(Duration::from_secs(20), |sim| !finished(sim, c, s));
    let capp = &r.sim.node(c).apps[0];
    let sapp = &r.sim.node(s).apps[0];
    assert!(
        done,
        "transfer did not finish: client got {} server got {}",
        capp.received, sapp.received
    );
    assert_eq!(sapp.received, 1_000_000);
    assert_eq!(sapp.received_sha, Some(pattern::sha256(5, 1_000_000)));
    assert_eq!(capp.received, 500_000);
    assert_eq!(capp.received_sha, Some(pattern::sha256(77, 500_000)));
    let _ = r.handle;
}
