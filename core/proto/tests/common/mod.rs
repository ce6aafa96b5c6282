//! Shared scenario builder for the engine tests: a client and a server host in the
//! simulator, joined by one or two paths.
#![allow(dead_code)]

use braid_proto::harness::{App, Host, stream_sha256};
use braid_proto::sim::{LinkConfig, LinkId, NodeId, Sim};
use braid_proto::{ConnectionConfig, ConnectionHandle, EndpointConfig, InterfaceKind, PathSpec};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub const CLIENT_SEED: u64 = 5;
pub const SERVER_SEED: u64 = 77;

pub fn base_link() -> LinkConfig {
    LinkConfig::new(40_000_000, Duration::from_millis(10)).with_queue_bdp(1.0)
}

pub fn wifi_link() -> LinkConfig {
    LinkConfig::new(40_000_000, Duration::from_millis(10)).with_queue_bdp(1.0)
}

pub fn cell_link() -> LinkConfig {
    LinkConfig::new(20_000_000, Duration::from_millis(30)).with_queue_bdp(1.0)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub const SERVER: &str = "10.0.0.1:443";
pub const WIFI: &str = "10.0.1.2:40001";
pub const CELL: &str = "10.0.2.2:40002";

pub struct Transfer {
    pub sim: Sim<Host>,
    pub client: NodeId,
    pub server: NodeId,
    pub handle: ConnectionHandle,
    pub links: Vec<(LinkId, LinkId)>,
    pub c2s: u64,
    pub s2c: u64,
}

pub struct Outcome {
    pub done: bool,
    pub elapsed: Duration,
    pub c2s: u64,
    pub s2c: u64,
    pub client_received: u64,
    pub server_received: u64,
    pub client_sha: Option<[u8; 32]>,
    pub server_sha: Option<[u8; 32]>,
}

impl Outcome {
    pub fn assert_intact(&self, what: &str) {
        assert!(
            self.done,
            "{what}: transfer did not finish in {:?} (server got {} of {}, client got {} of {})",
            self.elapsed, self.server_received, self.c2s, self.client_received, self.s2c
        );
        assert_eq!(
            self.server_received, self.c2s,
            "{what}: bytes client->server"
        );
        assert_eq!(
            self.client_received, self.s2c,
            "{what}: bytes server->client"
        );
        assert_eq!(
            self.server_sha,
            Some(stream_sha256(CLIENT_SEED, self.c2s)),
            "{what}: SHA-256 client->server"
        );
        assert_eq!(
            self.client_sha,
            Some(stream_sha256(SERVER_SEED, self.s2c)),
            "{what}: SHA-256 server->client"
        );
    }
}

impl Transfer {
    /// One path (wifi address) between client and server.
    pub fn single_path(seed: u64, up: LinkConfig, down: LinkConfig, c2s: u64, s2c: u64) -> Self {
        Self::build(seed, &[(up, down)], c2s, s2c, None, None)
    }

    /// Client with `paths.len()` interfaces (wifi, cell); only the first is opened at
    /// connect time, the others are added right after.
    pub fn build(
        seed: u64,
        paths: &[(LinkConfig, LinkConfig)],
        c2s: u64,
        s2c: u64,
        client_cfg: Option<ConnectionConfig>,
        server_cfg: Option<EndpointConfig>,
    ) -> Self {
        let mut sim = Sim::new(seed);
        let sip = ip("10.0.0.1");
        let client = Host::new(EndpointConfig::default(), seed.wrapping_mul(31) ^ 1);
        let mut server = Host::new(
            server_cfg.unwrap_or(EndpointConfig {
                listen: true,
                ..EndpointConfig::default()
            }),
            seed.wrapping_mul(31) ^ 2,
        );
        server.accept_send = s2c;
        server.accept_seed = SERVER_SEED;
        let addrs = [sa(WIFI), sa(CELL)];
        let kinds = [InterfaceKind::Wifi, InterfaceKind::Cellular];
        let client_ips: Vec<IpAddr> = addrs.iter().take(paths.len()).map(|a| a.ip()).collect();
        let client = sim.add_node(client, &client_ips);
        let server = sim.add_node(server, &[sip]);
        let mut links = Vec::new();
        for (i, (up, down)) in paths.iter().enumerate() {
            links.push(sim.add_duplex(addrs[i].ip(), sip, up.clone(), down.clone()));
        }
        let now = sim.now();
        let first = PathSpec::new(1, kinds[0], addrs[0]);
        let handle =
            sim.node_mut(client)
                .connect(now, client_cfg, first, sa(SERVER), c2s, CLIENT_SEED);
        for i in 1..paths.len() {
            let spec = PathSpec::new(1 + i as u32, kinds[i], addrs[i]);
            sim.node_mut(client).ep.add_path(now, handle, spec);
        }
        Self {
            sim,
            client,
            server,
            handle,
            links,
            c2s,
            s2c,
        }
    }

    /// Both directions of path `i` drop everything from `at` for `len`.
    pub fn outage(&mut self, at: Duration, len: Duration) {
        self.down_at(0, at);
        self.up_at(0, at + len);
    }

    pub fn down_at(&mut self, i: usize, at: Duration) {
        let (a, b) = self.links[i];
        self.sim.at(at, move |sim| {
            sim.link_mut(a).set_down(true);
            sim.link_mut(b).set_down(true);
        });
    }

    pub fn up_at(&mut self, i: usize, at: Duration) {
        let (a, b) = self.links[i];
        self.sim.at(at, move |sim| {
            sim.link_mut(a).set_down(false);
            sim.link_mut(b).set_down(false);
        });
    }

    pub fn client_app(&self) -> &App {
        &self.sim.node(self.client).apps[0]
    }

    pub fn server_app(&self) -> Option<&App> {
        self.sim.node(self.server).apps.first()
    }

    pub fn finished(&self) -> bool {
        let c = self.client_app();
        let s = self.server_app();
        let c_done = c.peer_finished || self.s2c == 0 && c.sent >= self.c2s;
        let s_done = s.is_some_and(|s| s.peer_finished);
        c_done && s_done && c.peer_finished
    }

    pub fn run(&mut self, limit: Duration) -> Outcome {
        let (c, s) = (self.client, self.server);
        let done = self.sim.run_while(limit, |sim| {
            let capp = &sim.node(c).apps[0];
            let sapp = sim.node(s).apps.first();
            !(capp.peer_finished && sapp.is_some_and(|a| a.peer_finished))
        });
        self.outcome(done)
    }

    pub fn outcome(&self, done: bool) -> Outcome {
        let capp = self.client_app();
        let sapp = self.server_app();
        Outcome {
            done,
            elapsed: self.sim.elapsed(),
            c2s: self.c2s,
            s2c: self.s2c,
            client_received: capp.received,
            server_received: sapp.map_or(0, |a| a.received),
            client_sha: capp.received_sha,
            server_sha: sapp.and_then(|a| a.received_sha),
        }
    }
}
