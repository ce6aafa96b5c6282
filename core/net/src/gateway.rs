//! The gateway: accepts Braid connections, reads the RFC 8803 Convert header naming a TCP
//! destination, checks it against an allowlist, connects, and relays both ways.
//!
//! Each connection is one task with two bounded copy loops, so a client that stops reading
//! only stalls its own TCP peer (through TCP flow control) and nobody else. Half-close is
//! carried both ways (FIN <-> DATA_FIN); a reset on either side aborts the other.

use crate::connection::Connection;
use crate::convert::{self, ErrorCode};
use crate::error::{Error, Result};
use crate::event::ConnectionEvent;
use crate::server::{Server, ServerConfig};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// One allowlist entry: addresses (a prefix) and a port (or any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    pub net: IpAddr,
    pub prefix: u8,
    pub port: Option<u16>,
}

impl AllowRule {
    fn matches(&self, a: &SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != a.port()) {
            return false;
        }
        let ip = canonical(a.ip());
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), self.prefix),
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = bits as usize;
    let full = bits / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// Destinations the gateway may connect to.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

impl Allowlist {
    /// Parses `HOST_OR_CIDR:PORT` entries (`*` for any port; `*` as host for any address;
    /// IPv6 in brackets: `[2001:db8::/32]:443`). Host names are resolved now, once.
    pub async fn parse(entries: &[String]) -> Result<Allowlist> {
        let mut rules = Vec::new();
        for e in entries {
            let bad = |why: &str| Error::InvalidArgument(format!("allow entry '{e}': {why}"));
            let (host, port) = e
                .rsplit_once(':')
                .ok_or_else(|| bad("expected HOST_OR_CIDR:PORT"))?;
            let port = match port {
                "*" => None,
                p => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
            };
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host == "*" {
                rules.push(AllowRule {
                    net: IpAddr::from([0u8; 4]),
                    prefix: 0,
                    port,
                });
                rules.push(AllowRule {
                    net: IpAddr::from([0u16; 8]),
                    prefix: 0,
                    port,
                });
                continue;
            }
            if let Some((ip, len)) = host.split_once('/') {
                let ip: IpAddr = ip.parse().map_err(|_| bad("bad network address"))?;
                let ip = canonical(ip);
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = len.parse().map_err(|_| bad("bad prefix length"))?;
                if prefix > max {
                    return Err(bad("prefix length too long"));
                }
                rules.push(AllowRule {
                    net: ip,
                    prefix,
                    port,
                });
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                let ip = canonical(ip);
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                rules.push(AllowRule {
                    net: ip,
                    prefix,
                    port,
                });
            } else {
                let addrs =
                    tokio::net::lookup_host((host, 0))
                        .await
                        .map_err(|err| Error::Resolve {
                            host: host.to_string(),
                            reason: err.to_string(),
                        })?;
                let mut any = false;
                for a in addrs {
                    any = true;
                    let ip = canonical(a.ip());
                    let prefix = if ip.is_ipv4() { 32 } else { 128 };
                    rules.push(AllowRule {
                        net: ip,
                        prefix,
                        port,
                    });
                }
                if !any {
                    return Err(Error::Resolve {
                        host: host.to_string(),
                        reason: "no addresses".into(),
                    });
                }
            }
        }
        Ok(Allowlist { rules })
    }

    pub fn permits(&self, target: &SocketAddr) -> bool {
        self.rules.iter().any(|r| r.matches(target))
    }

    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }
}

/// Settings of a [`Gateway`].
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `HOST_OR_CIDR:PORT` entries; nothing is allowed when empty.
    pub allow: Vec<String>,
    /// Most relayed connections at once.
    pub max_connections: usize,
    /// Most connections that have not finished the Convert exchange (and TCP connect).
    pub max_half_open: usize,
    /// Time for the client to send its Convert header.
    pub handshake_timeout: Duration,
    /// Time for the TCP connection to the destination.
    pub connect_timeout: Duration,
    /// Copy buffer per direction.
    pub relay_buffer: usize,
    /// Engine send and receive buffer per connection. With `relay_buffer`, this bounds what
    /// one connection can hold: about 2 × (connection_buffer + relay_buffer).
    pub connection_buffer: usize,
    /// GSO batches towards clients (see [`ServerConfig::gso`]); `--no-gso` turns them off.
    pub gso: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_connections: 1024,
            max_half_open: 128,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            relay_buffer: 64 * 1024,
            connection_buffer: 1 << 20,
            gso: true,
        }
    }
}

/// Counters of a gateway.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub accepted: AtomicU64,
    pub relayed: AtomicU64,
    pub refused: AtomicU64,
    pub active: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Relayed connections on which a path stopped using GSO batches because they kept
    /// getting lost ([`crate::ConnectionEvent::GsoDisabled`]).
    pub gso_fallbacks: AtomicU64,
}

/// A Braid-to-TCP gateway.
pub struct Gateway {
    server: Server,
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
        let allow = Allowlist::parse(&cfg.allow).await?;
        let server_cfg = ServerConfig {
            // The engine refuses SYNs past these; the gateway's own limits come after.
            max_connections: cfg.max_connections + cfg.max_half_open,
            max_half_open: cfg.max_half_open,
            backlog: cfg.max_half_open.max(16),
            gso: cfg.gso,
            ..ServerConfig::default()
        }
        .with_buffers(cfg.connection_buffer);
        let server = match raw {
            None => Server::bind(addr, server_cfg)?,
            Some(raw) => Server::bind_raw(addr, server_cfg, raw)?,
        };
        log::info!("gateway listening on {}", server.local_addr());
        Ok(Gateway {
            server,
            allow: Arc::new(allow),
            cfg: Arc::new(cfg),
            stats: Arc::new(GatewayStats::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stats(&self) -> Arc<GatewayStats> {
        self.stats.clone()
    }

    /// The listening server (for its counters).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Accepts and relays until the endpoint stops.
    pub async fn run(self) {
        let conns = Arc::new(Semaphore::new(self.cfg.max_connections));
        let half_open = Arc::new(Semaphore::new(self.cfg.max_half_open));
        while let Some(conn) = self.server.accept().await {
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            let ctx = Ctx {
                allow: self.allow.clone(),
                cfg: self.cfg.clone(),
                stats: self.stats.clone(),
            };
            let permit = conns.clone().try_acquire_owned().ok();
            let ho = half_open.clone().try_acquire_owned().ok();
            tokio::spawn(async move {
                ctx.stats.active.fetch_add(1, Ordering::Relaxed);
                ctx.handle(conn, permit.is_some(), ho).await;
                ctx.stats.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }

    /// Runs the gateway in its own task.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

struct Ctx {
    allow: Arc<Allowlist>,
    cfg: Arc<GatewayConfig>,
    stats: Arc<GatewayStats>,
}

/// How a relayed connection ended, for the log line.
enum Ending {
    Finished,
    ClientReset(io::Error),
    ServerReset(io::Error),
}

impl Ctx {
    async fn refuse(
        &self,
        conn: &mut Connection,
        peer: SocketAddr,
        target: &str,
        code: ErrorCode,
        start: Instant,
    ) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let msg = convert::encode_error(code);
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(&msg)).await;
        let _ = conn.shutdown().await;
        log::info!(
            "gateway: {peer} -> {target}: refused ({code}) after {:.3}s",
            start.elapsed().as_secs_f64()
        );
    }

    async fn handle(
        &self,
        mut conn: Connection,
        have_slot: bool,
        half_open: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let start = Instant::now();
        let peer = conn.remote_addr();
        if !have_slot || half_open.is_none() {
            self.refuse(&mut conn, peer, "?", ErrorCode::ResourceExceeded, start)
                .await;
            return;
        }
        let target =
            match tokio::time::timeout(self.cfg.handshake_timeout, read_convert(&mut conn)).await {
                Ok(Ok(t)) => t,
                Ok(Err(ConvertFailure::Protocol(e))) => {
                    self.refuse(&mut conn, peer, "?", e.code(), start).await;
                    return;
                }
                Ok(Err(ConvertFailure::Io(e))) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    log::info!("gateway: {peer}: closed before a Convert header: {e}");
                    return;
                }
                Err(_) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "gateway: {peer}: no Convert header within {:?}",
                        self.cfg.handshake_timeout
                    );
                    conn.abort();
                    return;
                }
            };
        let tname = target.to_string();
        if !self.allow.permits(&target) {
            self.refuse(&mut conn, peer, &tname, ErrorCode::NotAuthorized, start)
                .await;
            return;
        }
        let tcp = match tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(target))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let code = match e.kind() {
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                        ErrorCode::ConnectionReset
                    }
                    _ => ErrorCode::DestinationUnreachable,
                };
                self.refuse(&mut conn, peer, &tname, code, start).await;
                return;
            }
            Err(_) => {
                self.refuse(
                    &mut conn,
                    peer,
                    &tname,
                    ErrorCode::DestinationUnreachable,
                    start,
                )
                .await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        if let Err(e) = conn.write_all(&convert::encode_ok()).await {
            log::info!("gateway: {peer} -> {tname}: client gone before relaying: {e}");
            return;
        }
        drop(half_open);
        self.stats.relayed.fetch_add(1, Ordering::Relaxed);
        let up = AtomicU64::new(0);
        let down = AtomicU64::new(0);
        let mut events = conn.events();
        let ending = relay(conn, tcp, self.cfg.relay_buffer, &up, &down).await;
        let mut gso = String::new();
        while let Some(e) = events.try_recv() {
            if let ConnectionEvent::GsoDisabled { reason, .. } = e {
                self.stats.gso_fallbacks.fetch_add(1, Ordering::Relaxed);
                gso = format!("; GSO off ({reason})");
                break;
            }
        }
        let (u, d) = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
        self.stats.bytes_up.fetch_add(u, Ordering::Relaxed);
        self.stats.bytes_down.fetch_add(d, Ordering::Relaxed);
        let how = match ending {
            Ending::Finished => "finished".to_string(),
            Ending::ClientReset(e) => format!("client side failed: {e}"),
            Ending::ServerReset(e) => format!("server side failed: {e}"),
        };
        log::info!(
            "gateway: {peer} -> {tname}: {how}; up {u} B, down {d} B, {:.3}s{gso}",
            start.elapsed().as_secs_f64()
        );
    }
}

enum ConvertFailure {
    Protocol(convert::ConvertError),
    Io(io::Error),
}

/// Reads exactly the client's Convert message (nothing of the data after it).
async fn read_convert(conn: &mut Connection) -> std::result::Result<SocketAddr, ConvertFailure> {
    let mut header = [0u8; convert::HEADER_LEN];
    conn.read_exact(&mut header)
        .await
        .map_err(ConvertFailure::Io)?;
    let len = convert::message_len(&header).map_err(ConvertFailure::Protocol)?;
    let mut msg = vec![0u8; len];
    msg[..convert::HEADER_LEN].copy_from_slice(&header);
    conn.read_exact(&mut msg[convert::HEADER_LEN..])
        .await
        .map_err(ConvertFailure::Io)?;
    let m = convert::decode(&msg).map_err(ConvertFailure::Protocol)?;
    m.connect
        .ok_or(ConvertFailure::Protocol(convert::ConvertError::NoConnect))
}

/// Which side failed in a copy loop.
enum PumpError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies until end of stream, then half-closes the writer.
async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    buf_size: usize,
    count: &AtomicU64,
) -> std::result::Result<(), PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buf_size.max(1024)];
    loop {
        let n = r.read(&mut buf).await.map_err(PumpError::Read)?;
        if n == 0 {
            w.shutdown().await.map_err(PumpError::Write)?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await.map_err(PumpError::Write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn relay(
    conn: Connection,
    tcp: TcpStream,
    buf: usize,
    up: &AtomicU64,
    down: &AtomicU64,
) -> Ending {
    let (mut br, mut bw) = conn.into_split();
    let (mut tr, mut tw) = tcp.into_split();
    let failure = {
        let upf = pump(&mut br, &mut tw, buf, up);
        let downf = pump(&mut tr, &mut bw, buf, down);
        tokio::pin!(upf, downf);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut upf, if !up_done => match r {
                    Ok(()) => up_done = true,
                    // Reading the client failed: it reset (or vanished). Writing TCP failed: the
                    // server reset.
                    Err(PumpError::Read(e)) => break Some(Ending::ClientReset(e)),
                    Err(PumpError::Write(e)) => break Some(Ending::ServerReset(e)),
                },
                r = &mut downf, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(PumpError::Read(e)) => break Some(Ending::ServerReset(e)),
                    Err(PumpError::Write(e)) => break Some(Ending::ClientReset(e)),
                },
            }
            if up_done && down_done {
                break None;
            }
        }
    };
    match failure {
        None => Ending::Finished,
        Some(ending) => {
            // Pass the reset on: MP_FASTCLOSE to the client, RST to the server.
            bw.abort();
            let _ = tw.as_ref().set_zero_linger();
            ending
        }
    }
}
