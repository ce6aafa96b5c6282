//! The gateway: accepts Braid connections, reads the RFC 8803 Convert header naming a TCP
//! destination, checks the client token and the allowlist, connects, and relays both ways.
//!
//! Limits that make abuse cost the abuser: a deadline for the Convert message, a cap on
//! Convert-phase connections per source (IPv4 address or IPv6 /64) under the global one,
//! an idle timeout on relayed connections that only valid segments reset, and a fixed
//! memory bound per connection ([`GatewayConfig`]). Refusals are counted in
//! [`GatewayStats`] and logged once per source and kind per minute.
//!
//! Each connection is one task relaying both ways (`relay.rs`): a client that stops
//! reading only stalls its own TCP peer, half-close is carried, a reset on either side resets
//! the other. A destination named by a Host TLV is resolved here, and the allowlist is checked
//! on each address before it is connected to.

pub mod metrics;

pub use crate::access::{AllowRule, Allowlist, Tokens};
use crate::access::{PerSource, Source, SourceLog, SourceSlot};
use crate::connection::Connection;
use crate::convert::{self, ErrorCode};
use crate::error::{Error, Result};
use crate::event::ConnectionEvent;
use crate::relay::{self, Ending};
use crate::server::{Server, ServerConfig};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};

/// Settings of a [`Gateway`].
///
/// Memory: a relayed connection holds at most its engine buffers (`connection_buffer` to
/// send and as much to receive, reassembly included) and two relay buffers
/// (`relay_buffer` each), plus the kernel's TCP socket buffers towards the server; one in
/// the Convert phase holds at most its engine buffers and one Convert message (1020 bytes).
/// So the gateway holds at most about [`GatewayConfig::memory_bound`] bytes of connection
/// data: (`max_connections` + `max_half_open`) × (2 × `connection_buffer` + 2 ×
/// `relay_buffer`).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `HOST_OR_CIDR:PORT` entries; nothing is allowed when empty. `*` and wide prefixes do
    /// not reach loopback, unspecified, link-local, multicast or private addresses (RFC 1918,
    /// CGNAT, ULA) unless an entry lies inside such a range (`127.0.0.1:9000`,
    /// `10.0.0.0/8:443`, a host name that resolves there).
    pub allow: Vec<String>,
    /// How often host names in `allow` are resolved again.
    pub resolve_interval: Duration,
    /// Secrets for client tokens; when not empty, a client must present a token made with
    /// one of them (see [`crate::convert::token_mac`]), else it is refused.
    pub tokens: Tokens,
    /// Most relayed connections at once.
    pub max_connections: usize,
    /// Most connections that have not finished the Convert exchange (and TCP connect).
    pub max_half_open: usize,
    /// Most connections in the Convert phase from one source (an IPv4 address or an IPv6
    /// /64), so that one source cannot hold every `max_half_open` slot.
    pub max_half_open_per_source: usize,
    /// Time for the client to send its whole Convert message, from the moment the gateway
    /// takes the connection; the connection is reset after it.
    pub handshake_timeout: Duration,
    /// Time for resolving a destination's host name (when the client sends one) and the TCP
    /// connection to it, together.
    pub connect_timeout: Duration,
    /// A relayed connection is reset when the client has sent nothing that passed its
    /// subflow's checks for this long (stray or forged datagrams do not count). Keep it above
    /// the clients' keepalive interval (25 s).
    pub idle_timeout: Duration,
    /// Copy buffer per direction.
    pub relay_buffer: usize,
    /// Engine send and receive buffer per connection. With `relay_buffer`, this bounds what
    /// one connection can hold: about 2 × (connection_buffer + relay_buffer).
    pub connection_buffer: usize,
    /// Ask clients for DSS checksums (RFC 8684 §3.3.1): data corrupted between the paths'
    /// ends (a middlebox rewriting payloads) is detected, at some CPU cost.
    pub dss_checksum: bool,
    /// GSO batches towards clients (see [`ServerConfig::gso`]); `--no-gso` turns them off.
    pub gso: bool,
    /// Share the listening port with other gateways on this host (SO_REUSEPORT; UDP
    /// carrier): the workers of `braid gateway --workers N`.
    pub reuse_port: bool,
    /// This gateway's own address, unique to it among those sharing the listening address:
    /// it listens there too (either carrier) and announces it to every client (ADD_ADDR, with
    /// the C flag in its SYN/ACKs), so joins go there and reach the endpoint that owns their
    /// connection. Joins at the shared address are refused.
    pub announce: Option<SocketAddr>,
    /// The local IP to bind the announced port on, when it is not the announced address
    /// itself: behind a balancer that forwards the announced address here with a DNAT,
    /// `0.0.0.0` (or this host's address).
    pub announce_bind: Option<std::net::IpAddr>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            resolve_interval: Duration::from_secs(60),
            tokens: Tokens::default(),
            max_connections: 1024,
            max_half_open: 128,
            max_half_open_per_source: 16,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            relay_buffer: 64 * 1024,
            connection_buffer: 1 << 20,
            dss_checksum: false,
            gso: true,
            reuse_port: false,
            announce: None,
            announce_bind: None,
        }
    }
}

impl GatewayConfig {
    /// Most bytes of connection data the gateway holds at once (see the type's docs).
    pub fn memory_bound(&self) -> usize {
        let per_conn = 2 * self.connection_buffer + 2 * self.relay_buffer.max(1024);
        (self.max_connections + self.max_half_open).saturating_mul(per_conn)
    }

    fn check(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::InvalidArgument(s.into()));
        if self.max_connections == 0 || self.max_half_open == 0 {
            return bad("max_connections and max_half_open must be at least 1");
        }
        if self.max_half_open_per_source == 0 {
            return bad("max_half_open_per_source must be at least 1");
        }
        if self.announce.is_some_and(|a| a.ip().is_unspecified()) {
            return bad(
                "the announced address must be one clients can reach (bind a wildcard with announce_bind)",
            );
        }
        if self.handshake_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.idle_timeout.is_zero()
            || self.resolve_interval.is_zero()
        {
            return bad("gateway timeouts and the resolve interval must be more than zero");
        }
        Ok(())
    }
}

/// Counters of a gateway.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections relayed to their target.
    pub relayed: AtomicU64,
    /// Connections refused or dropped before relaying, for any reason (the counters below
    /// say why for some).
    pub refused: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
    /// Bytes relayed from clients to targets.
    pub bytes_up: AtomicU64,
    /// Bytes relayed from targets to clients.
    pub bytes_down: AtomicU64,
    /// Clients without a token, while tokens are required.
    pub token_missing: AtomicU64,
    /// Clients whose token matched no secret (or that cannot carry one: plain TCP).
    pub token_rejected: AtomicU64,
    /// Connections refused because their source had too many in the Convert phase.
    pub source_limited: AtomicU64,
    /// Connections reset for not sending a whole Convert message in time.
    pub convert_timeouts: AtomicU64,
    /// Relayed connections reset because the client went silent.
    pub idle_timeouts: AtomicU64,
    /// Relayed connections on which a path stopped using GSO batches because they kept
    /// getting lost ([`crate::ConnectionEvent::GsoDisabled`]).
    pub gso_fallbacks: AtomicU64,
    /// Connections in the Convert phase now (a gauge).
    pub convert_phase: AtomicU64,
    /// Connections relaying now (a gauge).
    pub relaying: AtomicU64,
    /// Clients that closed or reset before sending a whole Convert message.
    pub closed_before_convert: AtomicU64,
    /// Refusals answered with a Convert Error, by its code.
    pub refusals: metrics::RefusalCounts,
    /// The initial subflow's handshake round trip of accepted connections.
    pub handshake_latency: crate::metrics::Histogram,
    /// From accepting a connection to the Convert answer that starts relaying.
    pub convert_latency: crate::metrics::Histogram,
    /// Set once a drain began: new connections are refused.
    pub draining: AtomicBool,
    /// New connections refused because the gateway was draining.
    pub drain_refused: AtomicU64,
    /// Connections still open at the end of a drain's timeout, closed by the gateway.
    pub drain_closed: AtomicU64,
}

/// How a drain ([`Gateway::run_until`]) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the drain began.
    pub open_at_start: u64,
    /// Connections still open when the timeout ran out, closed by the gateway.
    pub closed: u64,
}

/// Counts one in a gauge for as long as it lives.
struct GaugeGuard<'a>(&'a AtomicU64);

impl<'a> GaugeGuard<'a> {
    fn new(g: &'a AtomicU64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Self(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A Braid-to-TCP gateway.
pub struct Gateway {
    server: Server,
    /// Where it also listens (its own address), when configured.
    announced: Option<SocketAddr>,
    allow: Arc<Allowlist>,
    cfg: Arc<GatewayConfig>,
    stats: Arc<GatewayStats>,
}

impl Gateway {
    /// Listens on `addr` (UDP). Resolves the allowlist's host names now.
    pub async fn bind(addr: SocketAddr, cfg: GatewayConfig) -> Result<Gateway> {
        Self::bind_carrier(addr, cfg, None).await
    }

    /// Listens on `addr` with the raw carrier (Linux, root): clients speak genuine MPTCP, so
    /// kernel MPTCP clients can use the gateway too (see [`Server::bind_raw`]).
    pub async fn bind_raw(
        addr: SocketAddr,
        cfg: GatewayConfig,
        raw: crate::raw::RawConfig,
    ) -> Result<Gateway> {
        Self::bind_carrier(addr, cfg, Some(raw)).await
    }

    async fn bind_carrier(
        addr: SocketAddr,
        cfg: GatewayConfig,
        raw: Option<crate::raw::RawConfig>,
    ) -> Result<Gateway> {
        cfg.check()?;
        let allow = Allowlist::parse(&cfg.allow).await?;
        let mut server_cfg = ServerConfig {
            // The engine refuses SYNs past these; the gateway's own limits come after.
            max_connections: cfg.max_connections + cfg.max_half_open,
            max_half_open: cfg.max_half_open,
            backlog: cfg.max_half_open.max(16),
            gso: cfg.gso,
            reuse_port: cfg.reuse_port,
            ..ServerConfig::default()
        }
        .with_buffers(cfg.connection_buffer);
        server_cfg.connection.checksum = cfg.dss_checksum;
        let socket_buffer = server_cfg.socket_buffer;
        let server = match &raw {
            None => Server::bind(addr, server_cfg)?,
            Some(raw) => Server::bind_raw(addr, server_cfg, raw.clone())?,
        };
        log::info!("gateway listening on {}", server.local_addr());
        let announced = match cfg.announce {
            None => None,
            Some(a) => {
                let at = cfg
                    .announce_bind
                    .map_or(a, |ip| SocketAddr::new(ip, a.port()));
                let bound = match &raw {
                    None => server.listen_also(at, socket_buffer)?,
                    Some(raw) => listen_also_raw(&server, at, raw, socket_buffer)?,
                };
                // Port 0 picked one: the same port is announced.
                let a = SocketAddr::new(a.ip(), bound.port());
                server.announce(a, bound);
                log::info!("gateway announces {a}, listening for it on {bound}");
                Some(a)
            }
        };
        Ok(Gateway {
            server,
            announced,
            allow: Arc::new(allow),
            cfg: Arc::new(cfg),
            stats: Arc::new(GatewayStats::default()),
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Its own address as announced (see [`GatewayConfig::announce`]).
    pub fn announced_addr(&self) -> Option<SocketAddr> {
        self.announced
    }

    /// The gateway's counters (live).
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.stats.clone()
    }

    /// What the metrics read of this gateway (see [`metrics::render`]).
    pub fn metrics_view(&self) -> metrics::WorkerView {
        metrics::WorkerView {
            stats: self.stats.clone(),
            probe: self.server.probe(),
        }
    }

    /// The destinations it may connect to (host names as last resolved).
    pub fn allowlist(&self) -> Arc<Allowlist> {
        self.allow.clone()
    }

    /// The listening server (for its counters).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Accepts and relays until the endpoint stops.
    pub async fn run(self) {
        self.run_until(std::future::pending(), Duration::ZERO).await;
    }

    /// Accepts and relays until `stop` completes, then drains: new connections are reset
    /// as they arrive, open ones go on for up to `drain_timeout`, and those still open then
    /// are closed (MP_FASTCLOSE to the client, RST to the destination) and counted.
    /// Returns once no connection is left (see docs/ARCHITECTURE.md, "Operating a gateway"),
    /// or `None` if the endpoint stopped before `stop` completed.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()>,
        drain_timeout: Duration,
    ) -> Option<DrainReport> {
        // Host names and the host's own addresses are looked up again on a schedule, for as
        // long as this runs.
        let _refresh = {
            let allow = self.allow.clone();
            let every = self.cfg.resolve_interval;
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    allow.refresh().await;
                }
            }))
        };
        let conns = Arc::new(Semaphore::new(self.cfg.max_connections));
        let half_open = Arc::new(Semaphore::new(self.cfg.max_half_open));
        let per_source = PerSource::new(self.cfg.max_half_open_per_source);
        let log = Arc::new(SourceLog::new(LOG_EVERY));
        let (close_tx, close_rx) = watch::channel(false);
        let ended = Arc::new(Notify::new());
        tokio::pin!(stop);
        loop {
            let conn = tokio::select! {
                () = &mut stop => break,
                c = self.server.accept() => c?,
            };
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            if let Some(rtt) = conn.stats().paths.first().map(|p| p.srtt)
                && !rtt.is_zero()
            {
                self.stats.handshake_latency.observe(rtt);
            }
            let ctx = Ctx {
                allow: self.allow.clone(),
                cfg: self.cfg.clone(),
                stats: self.stats.clone(),
                log: log.clone(),
                close_now: close_rx.clone(),
            };
            let src = Source::of(conn.remote_addr().ip());
            let slot = per_source.try_acquire(src);
            // A source over its own limit takes no shared slot.
            let (permit, ho) = match slot {
                Some(_) => (
                    conns.clone().try_acquire_owned().ok(),
                    half_open.clone().try_acquire_owned().ok(),
                ),
                None => (None, None),
            };
            // Counted before the task runs, so a drain that starts now sees it.
            self.stats.active.fetch_add(1, Ordering::Relaxed);
            let ended = ended.clone();
            tokio::spawn(async move {
                ctx.handle(
                    conn,
                    src,
                    Slots {
                        permit,
                        half_open: ho,
                        source: slot,
                    },
                )
                .await;
                ctx.stats.active.fetch_sub(1, Ordering::Relaxed);
                ended.notify_one();
            });
        }

        self.stats.draining.store(true, Ordering::Relaxed);
        let open_at_start = self.stats.active.load(Ordering::Relaxed);
        log::info!(
            "draining: refusing new connections; {open_at_start} open, closed in {:?} at the latest",
            drain_timeout
        );
        let deadline = tokio::time::Instant::now() + drain_timeout;
        loop {
            if self.stats.active.load(Ordering::Relaxed) == 0 {
                self.settle(deadline.max(tokio::time::Instant::now() + DRAIN_CLOSE_WAIT))
                    .await;
                return Some(DrainReport {
                    open_at_start,
                    closed: 0,
                });
            }
            tokio::select! {
                () = ended.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
                c = self.server.accept() => match c {
                    Some(c) => self.refuse_draining(c),
                    None => return Some(DrainReport { open_at_start, closed: 0 }),
                },
            }
        }
        let closed = self.stats.active.load(Ordering::Relaxed);
        log::info!("drain timeout: closing the {closed} connections still open");
        self.stats.drain_closed.fetch_add(closed, Ordering::Relaxed);
        let _ = close_tx.send(true);
        // The tasks abort their connections at once; wait for them, but not forever.
        let until = tokio::time::Instant::now() + DRAIN_CLOSE_WAIT;
        while self.stats.active.load(Ordering::Relaxed) > 0 {
            tokio::select! {
                () = ended.notified() => {}
                () = tokio::time::sleep_until(until) => break,
                c = self.server.accept() => match c {
                    Some(c) => self.refuse_draining(c),
                    None => break,
                },
            }
        }
        self.settle(tokio::time::Instant::now() + DRAIN_CLOSE_WAIT)
            .await;
        Some(DrainReport {
            open_at_start,
            closed,
        })
    }

    /// Waits (until `until` at the latest) for the endpoint to finish closing what the
    /// relays let go: the last DATA_ACKs and FINs, the FASTCLOSEs. Leaving earlier would leave
    /// clients waiting for the end of a stream that was all delivered.
    async fn settle(&self, until: tokio::time::Instant) {
        while self.server.connection_count() > 0 && tokio::time::Instant::now() < until {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                c = self.server.accept() => match c {
                    Some(c) => self.refuse_draining(c),
                    None => return,
                },
            }
        }
    }

    /// A connection that arrived during a drain: reset at once (MP_FASTCLOSE).
    fn refuse_draining(&self, conn: Connection) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.stats.drain_refused.fetch_add(1, Ordering::Relaxed);
        log::debug!("gateway: {}: refused, draining", conn.remote_addr());
        conn.abort();
    }

    /// Runs the gateway in its own task.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

/// How often one source gets a log line about the same kind of refusal.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// How long a refused client gets to read the answer and close before it is reset.
const REFUSE_LINGER: Duration = Duration::from_secs(2);
/// How long a drain waits for the connections it closed to go.
const DRAIN_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Completes once a drain's timeout ran out (never if the drain's sender is gone without).
async fn drain_ends(mut close_now: watch::Receiver<bool>) {
    if close_now.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a connection holds while the gateway handles it.
struct Slots {
    /// A relayed-connection slot (held to the end).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A Convert-phase slot, given back once relaying starts.
    half_open: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The source's Convert-phase slot, likewise.
    source: Option<SourceSlot>,
}

struct Ctx {
    allow: Arc<Allowlist>,
    cfg: Arc<GatewayConfig>,
    stats: Arc<GatewayStats>,
    log: Arc<SourceLog>,
    /// Turns true when a drain's timeout runs out: every connection closes at once.
    close_now: watch::Receiver<bool>,
}

/// Why a connection is refused: the answer, and what the log says.
struct Refusal {
    code: ErrorCode,
    value: u8,
    kind: &'static str,
}

impl Refusal {
    fn new(code: ErrorCode, kind: &'static str) -> Self {
        Refusal {
            code,
            value: 0,
            kind,
        }
    }
}

impl Ctx {
    /// Answers with an Error TLV and closes; a client that does not close in turn is reset.
    async fn refuse(
        &self,
        conn: &mut Connection,
        src: Source,
        target: &str,
        why: Refusal,
        start: Instant,
    ) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.stats.refusals.note(why.code);
        let peer = conn.remote_addr();
        self.log.note(Instant::now(), src, why.kind, || {
            format!(
                "{peer} -> {target}: refused, {} ({}) after {:.3}s",
                why.kind,
                why.code,
                start.elapsed().as_secs_f64()
            )
        });
        let msg = convert::encode_error_value(why.code, why.value);
        let answered = tokio::time::timeout(REFUSE_LINGER, async {
            conn.write_all(&msg).await.ok()?;
            conn.shutdown().await.ok()?;
            // The client closes once it has read the answer.
            let mut sink = [0u8; 512];
            while conn.read(&mut sink).await.ok()? > 0 {}
            Some(())
        })
        .await;
        if !matches!(answered, Ok(Some(()))) {
            conn.abort();
        }
    }

    /// Checks the client token when tokens are required.
    fn check_token(
        &self,
        conn: &Connection,
        token: Option<&[u8; convert::TOKEN_LEN]>,
    ) -> Option<Refusal> {
        if self.cfg.tokens.is_empty() {
            return None;
        }
        let Some((server_key, client_key)) = conn.mptcp_keys() else {
            // Plain TCP (fallback) has no keys to bind a token to: it cannot authenticate.
            self.stats.token_rejected.fetch_add(1, Ordering::Relaxed);
            return Some(Refusal {
                code: ErrorCode::NotAuthorized,
                value: convert::TLV_TOKEN,
                kind: "plain TCP cannot carry a client token",
            });
        };
        match token {
            None => {
                self.stats.token_missing.fetch_add(1, Ordering::Relaxed);
                Some(Refusal::new(ErrorCode::MissingCookie, "no client token"))
            }
            Some(t) if self.cfg.tokens.check(t, client_key, server_key) => None,
            Some(_) => {
                self.stats.token_rejected.fetch_add(1, Ordering::Relaxed);
                Some(Refusal {
                    code: ErrorCode::NotAuthorized,
                    value: convert::TLV_TOKEN,
                    kind: "wrong client token",
                })
            }
        }
    }

    async fn handle(&self, mut conn: Connection, src: Source, slots: Slots) {
        let start = Instant::now();
        let convert_phase = GaugeGuard::new(&self.stats.convert_phase);
        let peer = conn.remote_addr();
        let Slots {
            permit,
            half_open,
            source,
        } = slots;
        if source.is_none() {
            self.stats.source_limited.fetch_add(1, Ordering::Relaxed);
            let why = Refusal::new(
                ErrorCode::ResourceExceeded,
                "too many connections in the Convert phase from this source",
            );
            self.refuse(&mut conn, src, "?", why, start).await;
            return;
        }
        if permit.is_none() || half_open.is_none() {
            // Whatever was taken goes back at once: a full gateway must not stay full longer.
            drop((permit, half_open, source));
            let why = Refusal::new(ErrorCode::ResourceExceeded, "gateway full");
            self.refuse(&mut conn, src, "?", why, start).await;
            return;
        }
        let read = tokio::time::timeout(self.cfg.handshake_timeout, read_convert(&mut conn));
        let mut close_now = self.close_now.clone();
        let read = tokio::select! {
            r = read => r,
            Ok(_) = close_now.wait_for(|c| *c) => {
                conn.abort();
                return;
            }
        };
        let msg = match read {
            Ok(Ok(m)) => m,
            Ok(Err(ConvertFailure::Protocol(e))) => {
                let why = Refusal::new(e.code(), "bad Convert message");
                self.refuse(&mut conn, src, "?", why, start).await;
                return;
            }
            Ok(Err(ConvertFailure::Io(e))) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .closed_before_convert
                    .fetch_add(1, Ordering::Relaxed);
                log::debug!("gateway: {peer}: closed before a Convert message: {e}");
                return;
            }
            Err(_) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                self.stats.convert_timeouts.fetch_add(1, Ordering::Relaxed);
                let after = self.cfg.handshake_timeout;
                self.log.note(Instant::now(), src, "Convert timeout", || {
                    format!("{peer}: no whole Convert message within {after:?}: reset")
                });
                conn.abort();
                return;
            }
        };
        if let Some(why) = self.check_token(&conn, msg.token.as_ref()) {
            self.refuse(&mut conn, src, "?", why, start).await;
            return;
        }
        let dest = match (msg.connect, msg.host) {
            (Some(addr), _) => Destination::Addr(addr),
            (None, Some(hp)) => Destination::Name(hp),
            (None, None) => {
                let why = Refusal::new(
                    convert::ConvertError::NoConnect.code(),
                    "Convert message without a Connect TLV",
                );
                self.refuse(&mut conn, src, "?", why, start).await;
                return;
            }
        };
        let tname = dest.to_string();
        let tcp = match tokio::time::timeout(self.cfg.connect_timeout, self.connect(&dest)).await {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => {
                self.refuse(&mut conn, src, &tname, why, start).await;
                return;
            }
            Err(_) => {
                let why = Refusal {
                    code: ErrorCode::DestinationUnreachable,
                    value: convert::UNREACHABLE_TIMEOUT,
                    kind: "destination timed out",
                };
                self.refuse(&mut conn, src, &tname, why, start).await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        if let Err(e) = conn.write_all(&convert::encode_ok()).await {
            log::info!("gateway: {peer} -> {tname}: client gone before relaying: {e}");
            return;
        }
        drop(half_open);
        drop(source);
        drop(convert_phase);
        self.stats.convert_latency.observe(start.elapsed());
        self.stats.relayed.fetch_add(1, Ordering::Relaxed);
        let relaying = GaugeGuard::new(&self.stats.relaying);
        let counts = relay::Counts::default();
        let mut events = Vec::new();
        let ending = relay::relay_until(
            conn,
            tcp,
            self.cfg.relay_buffer,
            Some(self.cfg.idle_timeout),
            &counts,
            None,
            drain_ends(self.close_now.clone()),
            Some(&mut events),
        )
        .await;
        drop(relaying);
        drop(permit);
        let mut gso = String::new();
        for e in events {
            if let ConnectionEvent::GsoDisabled { reason, .. } = e {
                self.stats.gso_fallbacks.fetch_add(1, Ordering::Relaxed);
                gso = format!("; GSO off ({reason})");
                break;
            }
        }
        let (u, d) = (
            counts.braid_to_tcp.load(Ordering::Relaxed),
            counts.tcp_to_braid.load(Ordering::Relaxed),
        );
        self.stats.bytes_up.fetch_add(u, Ordering::Relaxed);
        self.stats.bytes_down.fetch_add(d, Ordering::Relaxed);
        let how = match ending {
            Some(Ending::Finished) => "finished".to_string(),
            Some(Ending::BraidFailed(e)) => format!("client side failed: {e}"),
            Some(Ending::TcpFailed(e)) => format!("server side failed: {e}"),
            Some(Ending::Idle(d)) => {
                self.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                format!("client silent for {d:?}: reset")
            }
            None => "still open when the drain ran out: reset".to_string(),
        };
        log::info!(
            "gateway: {peer} -> {tname}: {how}; up {u} B, down {d} B, {:.3}s{gso}",
            start.elapsed().as_secs_f64()
        );
    }
}

/// Where the client asked to go.
enum Destination {
    Addr(SocketAddr),
    Name(convert::HostPort),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Addr(a) => a.fmt(f),
            Destination::Name(hp) => hp.fmt(f),
        }
    }
}

/// A failed TCP connect as a Convert error code.
fn connect_refusal(e: &io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            Refusal::new(ErrorCode::ConnectionReset, "destination refused")
        }
        io::ErrorKind::TimedOut => Refusal {
            code: ErrorCode::DestinationUnreachable,
            value: convert::UNREACHABLE_TIMEOUT,
            kind: "destination timed out",
        },
        _ => Refusal::new(ErrorCode::DestinationUnreachable, "destination unreachable"),
    }
}

impl Ctx {
    /// Connects to the destination: an address as given, a name resolved here. The allowlist
    /// is checked on every address before connecting to it, so what is checked is what is
    /// connected to; the first permitted address that answers wins.
    async fn connect(&self, dest: &Destination) -> std::result::Result<TcpStream, Refusal> {
        let addrs = match dest {
            Destination::Addr(a) => vec![*a],
            Destination::Name(hp) => {
                let found = tokio::net::lookup_host((hp.host.as_str(), hp.port)).await;
                match found {
                    Ok(it) => it.collect(),
                    Err(e) => {
                        log::debug!("gateway: cannot resolve {hp}: {e}");
                        Vec::new()
                    }
                }
            }
        };
        if addrs.is_empty() {
            return Err(Refusal {
                code: ErrorCode::DestinationUnreachable,
                value: convert::UNREACHABLE_NO_ADDRESS,
                kind: "destination name did not resolve",
            });
        }
        let mut last = None;
        for addr in addrs.iter().filter(|a| self.allow.permits(a)) {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    log::debug!("gateway: {dest} at {addr}: {e}");
                    last = Some(connect_refusal(&e));
                }
            }
        }
        Err(last
            .unwrap_or_else(|| Refusal::new(ErrorCode::NotAuthorized, "destination not allowed")))
    }
}

enum ConvertFailure {
    Protocol(convert::ConvertError),
    Io(io::Error),
}

/// Reads exactly the client's Convert message (nothing of the data after it).
async fn read_convert(
    conn: &mut Connection,
) -> std::result::Result<convert::Message, ConvertFailure> {
    // Exactly the bytes the message needs, as `convert::first_bytes` (which the fuzzer
    // drives) asks for them: nothing of the relayed stream is read here.
    let mut buf = Vec::with_capacity(convert::HEADER_LEN);
    loop {
        match convert::first_bytes(&buf).map_err(ConvertFailure::Protocol)? {
            convert::FirstBytes::Done(msg) => return Ok(msg),
            convert::FirstBytes::Need(n) => {
                let at = buf.len();
                buf.resize(at + n, 0);
                conn.read_exact(&mut buf[at..])
                    .await
                    .map_err(ConvertFailure::Io)?;
            }
        }
    }
}

/// The announced address on the raw carrier (Linux only, like the carrier).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn listen_also_raw(
    server: &Server,
    at: SocketAddr,
    raw: &crate::raw::RawConfig,
    socket_buffer: usize,
) -> Result<SocketAddr> {
    server.listen_also_raw(at, raw, socket_buffer)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn listen_also_raw(
    _server: &Server,
    _at: SocketAddr,
    _raw: &crate::raw::RawConfig,
    _socket_buffer: usize,
) -> Result<SocketAddr> {
    Err(Error::Unsupported("the raw carrier outside Linux"))
}
