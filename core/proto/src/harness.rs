//! Test and benchmark support: an [`Endpoint`] with a bulk-transfer application, as a
//! simulator [`Node`]. The application writes a deterministic byte stream, reads and hashes
//! what arrives, and records when bytes arrived (for stall measurements).

use crate::conn::{ConnectionConfig, Event, ReadError};
use crate::endpoint::{ConnectionHandle, Endpoint, EndpointConfig};
use crate::path::{InterfaceKind, PathId, PathSpec};
use crate::random::SeededRandom;
use crate::sim::{LinkConfig, LinkId, Node, NodeId, Sim};
use braid_testkit::{Sha256, pattern, stall};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One side of a bulk transfer on one connection.
pub struct App {
    pub handle: ConnectionHandle,
    /// Bytes to send, then shut down (None: send nothing and never shut down).
    pub to_send: u64,
    pub stream_seed: u64,
    pub sent: u64,
    pub shutdown_sent: bool,
    pub received: u64,
    pub peer_finished: bool,
    recv_hash: Option<Sha256>,
    pub received_sha: Option<[u8; 32]>,
    /// (time, bytes received so far), sampled on every read.
    pub arrivals: Vec<(Instant, u64)>,
    pub events: Vec<(Instant, Event)>,
    pub closed: bool,
    /// The application does not read while set (to fill the receive window).
    pub paused: bool,
    /// Offset of the first received byte that differs from the peer's stream (the peer's
    /// stream seed is `expect_seed`), for diagnosing corruption.
    pub expect_seed: Option<u64>,
    pub first_mismatch: Option<u64>,
    pub connected_at: Option<Instant>,
    pub finished_at: Option<Instant>,
    scratch: Vec<u8>,
}

impl App {
    pub fn new(handle: ConnectionHandle, to_send: u64, stream_seed: u64) -> Self {
        Self {
            handle,
            to_send,
            stream_seed,
            sent: 0,
            shutdown_sent: false,
            received: 0,
            peer_finished: false,
            recv_hash: Some(Sha256::new()),
            received_sha: None,
            arrivals: Vec::new(),
            events: Vec::new(),
            closed: false,
            paused: false,
            expect_seed: None,
            first_mismatch: None,
            connected_at: None,
            finished_at: None,
            scratch: vec![0u8; 64 * 1024],
        }
    }

    /// The longest time between two arrivals of new bytes, between `from` and `to`.
    pub fn longest_stall(&self, from: Instant, to: Instant) -> Duration {
        stall::longest_gap(&self.arrivals, from, to)
    }

    /// Bytes received by `t`.
    pub fn received_at(&self, t: Instant) -> u64 {
        stall::received_at(&self.arrivals, t)
    }
}

/// A simulator node: an endpoint plus the applications on its connections.
pub struct Host {
    pub ep: Endpoint,
    pub apps: Vec<App>,
    /// Server side: bytes each accepted connection sends back.
    pub accept_send: u64,
    pub accept_seed: u64,
    /// Stream seed accepted connections should receive (checked byte by byte).
    pub expect_seed: Option<u64>,
    scratch: Vec<u8>,
}

impl Host {
    pub fn new(cfg: EndpointConfig, seed: u64) -> Self {
        Self {
            ep: Endpoint::new(cfg, Box::new(SeededRandom::new(seed))),
            apps: Vec::new(),
            accept_send: 0,
            accept_seed: 0,
            expect_seed: None,
            scratch: vec![0u8; 65_536],
        }
    }

    /// A client connection sending `bytes` of stream `seed`.
    pub fn connect(
        &mut self,
        now: Instant,
        cfg: Option<ConnectionConfig>,
        path: PathSpec,
        remote: SocketAddr,
        bytes: u64,
        seed: u64,
    ) -> ConnectionHandle {
        let h = self.ep.connect(now, cfg, path, remote);
        self.apps.push(App::new(h, bytes, seed));
        h
    }

    pub fn app(&self, h: ConnectionHandle) -> Option<&App> {
        self.apps.iter().find(|a| a.handle == h)
    }

    /// Moves application data in and out of every connection.
    pub fn pump(&mut self, now: Instant) {
        while let Some(h) = self.ep.accept() {
            let mut app = App::new(h, self.accept_send, self.accept_seed);
            app.expect_seed = self.expect_seed;
            self.apps.push(app);
        }
        while let Some((h, ev)) = self.ep.poll_event() {
            if let Some(app) = self.apps.iter_mut().find(|a| a.handle == h) {
                match &ev {
                    Event::Connected => app.connected_at = Some(now),
                    Event::Closed(_) => {
                        app.closed = true;
                        app.finished_at.get_or_insert(now);
                    }
                    _ => {}
                }
                app.events.push((now, ev));
            }
        }
        for app in &mut self.apps {
            let Some(conn) = self.ep.connection_mut(app.handle) else {
                continue;
            };
            // Write.
            while app.sent < app.to_send {
                let n = ((app.to_send - app.sent) as usize)
                    .min(app.scratch.len())
                    .min(conn.send_capacity());
                if n == 0 {
                    break;
                }
                pattern::fill(app.stream_seed, app.sent, &mut app.scratch[..n]);
                match conn.write(&app.scratch[..n]) {
                    Ok(k) => app.sent += k as u64,
                    Err(_) => break,
                }
            }
            if app.sent >= app.to_send && !app.shutdown_sent && app.to_send > 0 {
                conn.shutdown();
                app.shutdown_sent = true;
            }
            // Read.
            while !app.paused {
                match conn.read(&mut self.scratch) {
                    Ok(0) => {
                        if !app.peer_finished {
                            app.peer_finished = true;
                            if let Some(ctx) = app.recv_hash.take() {
                                app.received_sha = Some(ctx.finish());
                            }
                            if app.to_send == 0 && !app.shutdown_sent {
                                conn.shutdown();
                                app.shutdown_sent = true;
                            }
                        }
                        break;
                    }
                    Ok(n) => {
                        if let Some(ctx) = app.recv_hash.as_mut() {
                            ctx.update(&self.scratch[..n]);
                        }
                        if let (Some(seed), None) = (app.expect_seed, app.first_mismatch) {
                            app.first_mismatch =
                                pattern::first_mismatch(seed, app.received, &self.scratch[..n]);
                        }
                        app.received += n as u64;
                        app.arrivals.push((now, app.received));
                    }
                    Err(ReadError::Blocked) | Err(ReadError::ConnectionLost(_)) => break,
                }
            }
        }
    }
}

impl Node for Host {
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let _ = self.ep.handle_segment(now, dst, src, payload);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.pump(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        self.pump(now);
        let t = self.ep.poll_transmit(now, &mut self.scratch)?;
        buf.extend_from_slice(&self.scratch[..t.len]);
        Some((t.local, t.remote))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
}

// ---- Scenarios ----

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

/// A client and a server host in the simulator, joined by one or two paths, moving a
/// bulk transfer each way.
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
    /// Stream offsets of the first wrong byte each side received, if any.
    pub client_mismatch: Option<u64>,
    pub server_mismatch: Option<u64>,
}

impl Outcome {
    pub fn assert_intact(&self, what: &str) {
        assert_eq!(
            (self.server_mismatch, self.client_mismatch),
            (None, None),
            "{what}: first wrong byte (server, client)"
        );
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
            Some(pattern::sha256(CLIENT_SEED, self.c2s)),
            "{what}: SHA-256 client->server"
        );
        assert_eq!(
            self.client_sha,
            Some(pattern::sha256(SERVER_SEED, self.s2c)),
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
        server.expect_seed = Some(CLIENT_SEED);
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
        let first = PathSpec::new(PathId::new(1), kinds[0], addrs[0]);
        let handle =
            sim.node_mut(client)
                .connect(now, client_cfg, first, sa(SERVER), c2s, CLIENT_SEED);
        for i in 1..paths.len() {
            let spec = PathSpec::new(PathId::new(1 + i as u32), kinds[i], addrs[i]);
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
            client_mismatch: capp.first_mismatch,
            server_mismatch: sapp.and_then(|a| a.first_mismatch),
        }
    }
}
