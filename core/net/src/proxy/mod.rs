//! A local proxy: one loopback TCP listener speaking SOCKS5 (RFC 1928, with RFC 1929
//! username/password as an option) and HTTP CONNECT (RFC 9110 §9.3.6), told apart by the
//! first byte (0x05 is SOCKS5). Each accepted connection becomes one Braid connection through
//! a gateway to the requested host and port, with the [`Client`]'s service type and
//! interfaces, relayed both ways like the gateway's (`relay.rs`). Host names go to the
//! gateway to resolve (see [`crate::ClientBuilder::resolve_on_gateway`]).
//!
//! Failures are answered, never a silent close: the gateway's refusals map to SOCKS reply
//! codes and HTTP status lines ([`answer_for`]). Bounds: a handshake deadline, a cap on the
//! HTTP request head, a most number of connections at once (past it, new connections wait
//! in the listen backlog). See docs/ARCHITECTURE.md, "The local proxy".

pub mod http_connect;
pub mod socks5;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::relay::{self, Ending};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Result of parsing the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not complete yet: read more.
    More,
    /// Complete: the value, and how many bytes of the input it took.
    Done(T, usize),
}

/// Largest HTTP CONNECT request head accepted.
pub const HTTP_HEAD_CAP: usize = 8 * 1024;
/// Copy buffer per direction and connection.
const RELAY_BUFFER: usize = 64 * 1024;

/// Username and password a local client must present (SOCKS5: RFC 1929; HTTP: `Basic`), so
/// that other apps on the device cannot use the proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    /// The user name the app must give.
    pub username: String,
    /// The password the app must give.
    pub password: String,
}

impl std::fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Proxy`].
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to listen; loopback with an ephemeral port by default (`127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Required credentials; `None` accepts any local client.
    pub credentials: Option<ProxyCredentials>,
    /// Time for a local client to finish its SOCKS5 or HTTP CONNECT request.
    pub handshake_timeout: Duration,
    /// Most local connections at once (handshaking or relaying).
    pub max_connections: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            credentials: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// A snapshot of a proxy's counters. Bytes are counted as they are relayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Local connections accepted.
    pub accepted: u64,
    /// Local connections open now.
    pub active: u64,
    /// Connections answered with an error (bad request, refused by the gateway, no path).
    pub failed: u64,
    /// Bytes from local clients to destinations.
    pub bytes_up: u64,
    /// Bytes from destinations to local clients.
    pub bytes_down: u64,
    /// Connections refused for missing or wrong credentials (also counted in `failed`).
    pub refused_auth: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
    /// Bytes relayed: `tcp_to_braid` up, `braid_to_tcp` down.
    bytes: relay::Counts,
    refused_auth: AtomicU64,
}

/// A running local proxy. Its accept loop runs on the tokio runtime it was started on.
pub struct Proxy {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `cfg.listen` and serves each local connection through `gateway`.
    pub async fn start(client: Client, gateway: SocketAddr, cfg: ProxyConfig) -> Result<Proxy> {
        if cfg.max_connections == 0 || cfg.handshake_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "proxy max_connections and handshake_timeout must be more than zero".into(),
            ));
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let ctx = Arc::new(Ctx {
            client,
            gateway,
            cfg,
            counters: counters.clone(),
        });
        log::info!("proxy listening on {local_addr} (SOCKS5 and HTTP CONNECT) via {gateway}");
        let accept = tokio::spawn(accept_loop(listener, ctx));
        Ok(Proxy {
            local_addr,
            counters,
            accept,
        })
    }

    /// The address it listens on (the port, when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            accepted: get(&c.accepted),
            active: get(&c.active),
            failed: get(&c.failed),
            bytes_up: get(&c.bytes.tcp_to_braid),
            bytes_down: get(&c.bytes.braid_to_tcp),
            refused_auth: get(&c.refused_auth),
        }
    }

    /// Stops accepting (the listener closes soon after: the accept task ends at its next
    /// poll); relayed connections go on until they end.
    pub fn stop(&self) {
        self.accept.abort();
    }

    /// Stops accepting and returns once the listening socket is closed, so that a connection
    /// attempt made afterwards is refused.
    pub async fn stop_and_wait(&mut self) {
        self.accept.abort();
        // Cancelled (or, had it failed, ended): either way the listener is dropped.
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Ctx {
    client: Client,
    gateway: SocketAddr,
    cfg: ProxyConfig,
    counters: Arc<Counters>,
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    let slots = Arc::new(Semaphore::new(ctx.cfg.max_connections));
    loop {
        // Past the limit, connections wait in the backlog rather than being dropped.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (sock, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: try again shortly.
                log::warn!("proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
        ctx.counters.active.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            serve(&ctx, sock, peer).await;
            ctx.counters.active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Which protocol a local client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Socks5,
    Http,
}

/// A request ready to be served.
struct Request {
    proto: Proto,
    target: String,
    /// Bytes the client sent after its request (an HTTP client that does not wait for the
    /// 200): the tunnel's first bytes.
    early: Vec<u8>,
}

/// The handshake ended without a request to serve.
enum Refused {
    /// Answered already (or not even a request worth answering).
    Answered,
    /// Missing or wrong credentials, answered.
    Auth,
    Io(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        Refused::Io(e)
    }
}

async fn serve(ctx: &Ctx, mut sock: TcpStream, peer: SocketAddr) {
    let start = Instant::now();
    let _ = sock.set_nodelay(true);
    let mut proto = None;
    let hs = tokio::time::timeout(
        ctx.cfg.handshake_timeout,
        handshake(ctx, &mut sock, &mut proto),
    )
    .await;
    let req = match hs {
        Ok(Ok(r)) => r,
        Ok(Err(refused)) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            match refused {
                Refused::Answered => log::info!("proxy: {peer}: bad request, answered"),
                Refused::Auth => {
                    ctx.counters.refused_auth.fetch_add(1, Ordering::Relaxed);
                    log::info!("proxy: {peer}: missing or wrong credentials");
                }
                Refused::Io(e) => log::debug!("proxy: {peer}: closed during the handshake: {e}"),
            }
            return;
        }
        Err(_) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "proxy: {peer}: no whole request within {:?}",
                ctx.cfg.handshake_timeout
            );
            if proto == Some(Proto::Http) {
                let r = http_connect::error_response(408, "Request Timeout", "request too slow");
                let _ = sock.write_all(&r).await;
            }
            return;
        }
    };
    let conn = match ctx.client.connect_via(ctx.gateway, &req.target).await {
        Ok(c) => c,
        Err(e) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            let a = answer_for(&e);
            log::info!(
                "proxy: {peer} -> {}: failed after {:.3}s: {e}",
                req.target,
                start.elapsed().as_secs_f64()
            );
            let msg = match req.proto {
                Proto::Socks5 => socks5::encode_reply(a.socks).to_vec(),
                Proto::Http => {
                    http_connect::error_response(a.status, a.reason, &format!("braid: {e}"))
                }
            };
            let _ = sock.write_all(&msg).await;
            let _ = sock.shutdown().await;
            return;
        }
    };
    let ok: &[u8] = match req.proto {
        Proto::Socks5 => &socks5::encode_reply(socks5::reply::SUCCEEDED),
        Proto::Http => http_connect::ESTABLISHED,
    };
    let counts = relay::Counts::default();
    let ending = match sock.write_all(ok).await {
        Err(e) => {
            conn.abort();
            Ending::TcpFailed(e)
        }
        Ok(()) => {
            let mut conn = conn;
            match conn.write_all(&req.early).await {
                Err(e) => {
                    conn.abort();
                    Ending::BraidFailed(e)
                }
                Ok(()) => {
                    let early = req.early.len() as u64;
                    counts.tcp_to_braid.fetch_add(early, Ordering::Relaxed);
                    let totals = &ctx.counters.bytes;
                    totals.tcp_to_braid.fetch_add(early, Ordering::Relaxed);
                    relay::relay(conn, sock, RELAY_BUFFER, None, &counts, Some(totals)).await
                }
            }
        }
    };
    let up = counts.tcp_to_braid.load(Ordering::Relaxed);
    let down = counts.braid_to_tcp.load(Ordering::Relaxed);
    let how = match ending {
        Ending::Finished => "finished".to_string(),
        Ending::BraidFailed(e) => format!("gateway side failed: {e}"),
        Ending::TcpFailed(e) => format!("local side failed: {e}"),
        Ending::Idle(d) => format!("idle for {d:?}"),
    };
    log::info!(
        "proxy: {peer} -> {}: {how}; up {up} B, down {down} B, {:.3}s",
        req.target,
        start.elapsed().as_secs_f64()
    );
}

/// Reads until `parse` finds a whole message; removes its bytes from `buf`.
async fn read_message<T, E>(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> std::result::Result<Parsed<T>, E>,
) -> io::Result<std::result::Result<T, E>> {
    loop {
        match parse(buf) {
            Ok(Parsed::Done(v, used)) => {
                buf.drain(..used);
                return Ok(Ok(v));
            }
            Err(e) => return Ok(Err(e)),
            Ok(Parsed::More) => {
                let mut chunk = [0u8; 2048];
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// Reads and answers the local client's request up to the point of connecting.
async fn handshake(
    ctx: &Ctx,
    sock: &mut TcpStream,
    proto: &mut Option<Proto>,
) -> std::result::Result<Request, Refused> {
    let mut buf = Vec::with_capacity(512);
    let first = read_message(sock, &mut buf, |b| {
        Ok::<_, ()>(match b.first() {
            Some(&x) => Parsed::Done(x, 0),
            None => Parsed::More,
        })
    })
    .await?;
    let p = if first == Ok(socks5::VERSION) {
        Proto::Socks5
    } else {
        Proto::Http
    };
    *proto = Some(p);
    match p {
        Proto::Socks5 => socks_handshake(ctx, sock, buf).await,
        Proto::Http => http_handshake(ctx, sock, buf).await,
    }
}

async fn socks_handshake(
    ctx: &Ctx,
    sock: &mut TcpStream,
    mut buf: Vec<u8>,
) -> std::result::Result<Request, Refused> {
    let Ok(methods) = read_message(sock, &mut buf, socks5::parse_greeting).await? else {
        return Err(Refused::Answered);
    };
    let creds = ctx.cfg.credentials.as_ref();
    let method = socks5::choose_method(&methods, creds.is_some());
    sock.write_all(&[socks5::VERSION, method]).await?;
    if method == socks5::NO_ACCEPTABLE {
        return Err(Refused::Auth);
    }
    if let Some(c) = creds {
        let Ok(up) = read_message(sock, &mut buf, socks5::parse_user_pass).await? else {
            return Err(Refused::Answered);
        };
        let good =
            same(&up.username, c.username.as_bytes()) & same(&up.password, c.password.as_bytes());
        sock.write_all(&[1, if good { 0 } else { 1 }]).await?;
        if !good {
            return Err(Refused::Auth);
        }
    }
    match read_message(sock, &mut buf, socks5::parse_request).await? {
        Ok(r) => Ok(Request {
            proto: Proto::Socks5,
            target: r.target_string(),
            early: buf,
        }),
        Err(e) => {
            if let Some(code) = e.reply() {
                sock.write_all(&socks5::encode_reply(code)).await?;
            }
            Err(Refused::Answered)
        }
    }
}

async fn http_handshake(
    ctx: &Ctx,
    sock: &mut TcpStream,
    mut buf: Vec<u8>,
) -> std::result::Result<Request, Refused> {
    let parse = |b: &[u8]| http_connect::parse_head(b, HTTP_HEAD_CAP);
    let head = match read_message(sock, &mut buf, parse).await? {
        Ok(h) => h,
        Err(e) => {
            let (status, reason) = e.status();
            let r = http_connect::error_response(status, reason, &format!("braid proxy: {e}"));
            sock.write_all(&r).await?;
            return Err(Refused::Answered);
        }
    };
    if let Some(c) = &ctx.cfg.credentials {
        let good = head
            .proxy_authorization
            .as_deref()
            .is_some_and(|v| http_connect::basic_matches(v, &c.username, &c.password));
        if !good {
            let r = http_connect::error_response(
                407,
                "Proxy Authentication Required",
                "braid proxy: credentials required",
            );
            sock.write_all(&r).await?;
            return Err(Refused::Auth);
        }
    }
    Ok(Request {
        proto: Proto::Http,
        target: head.target,
        early: buf,
    })
}

/// Byte strings equal, without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a failed `connect_via` is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// SOCKS5 reply code.
    pub socks: u8,
    /// HTTP status code and reason phrase.
    pub status: u16,
    /// HTTP reason phrase for `status`.
    pub reason: &'static str,
}

/// The SOCKS reply code and HTTP status for a `connect_via` error: not allowed → 0x02 / 403;
/// no address or unreachable → 0x04 / 502; refused → 0x05 / 502; timed out → 0x06 / 504;
/// no path to the gateway → 0x03 / 502; token problems → 0x02 / 502.
pub fn answer_for(e: &Error) -> Answer {
    use crate::convert::ErrorCode;
    use socks5::reply;
    let (socks, status) = match e {
        Error::NotAllowed { .. } => (reply::NOT_ALLOWED, 403),
        Error::Resolve { .. } | Error::InvalidArgument(_) => (reply::HOST_UNREACHABLE, 502),
        Error::Gateway {
            timed_out: true, ..
        } => (reply::TTL_EXPIRED, 504),
        Error::Gateway {
            code: ErrorCode::ConnectionReset,
            ..
        } => (reply::CONNECTION_REFUSED, 502),
        Error::Gateway {
            code: ErrorCode::DestinationUnreachable,
            ..
        } => (reply::HOST_UNREACHABLE, 502),
        Error::Gateway {
            code: ErrorCode::NotAuthorized,
            ..
        } => (reply::NOT_ALLOWED, 403),
        Error::Gateway { .. } | Error::Convert(_) | Error::TooManyConnections => {
            (reply::GENERAL_FAILURE, 502)
        }
        Error::TokenRequired { .. } | Error::TokenRejected { .. } | Error::TokenUnusable { .. } => {
            (reply::NOT_ALLOWED, 502)
        }
        // Everything else: the gateway could not be reached or stopped answering.
        _ => (reply::NETWORK_UNREACHABLE, 502),
    };
    let reason = match status {
        403 => "Forbidden",
        504 => "Gateway Timeout",
        _ => "Bad Gateway",
    };
    Answer {
        socks,
        status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::ErrorCode;

    #[test]
    fn error_mapping() {
        let t = || "x:1".to_string();
        let gw = "192.0.2.1:4433".parse().unwrap();
        let cases = [
            (Error::NotAllowed { target: t() }, 0x02, 403),
            (
                Error::Resolve {
                    host: t(),
                    reason: "no".into(),
                },
                0x04,
                502,
            ),
            (
                Error::Gateway {
                    target: t(),
                    code: ErrorCode::DestinationUnreachable,
                    timed_out: false,
                },
                0x04,
                502,
            ),
            (
                Error::Gateway {
                    target: t(),
                    code: ErrorCode::ConnectionReset,
                    timed_out: false,
                },
                0x05,
                502,
            ),
            (
                Error::Gateway {
                    target: t(),
                    code: ErrorCode::DestinationUnreachable,
                    timed_out: true,
                },
                0x06,
                504,
            ),
            (
                Error::ConnectTimeout {
                    remote: gw,
                    after: Duration::from_secs(1),
                },
                0x03,
                502,
            ),
            (Error::NoUsableInterface(gw), 0x03, 502),
            (Error::TokenRejected { gateway: gw }, 0x02, 502),
            (Error::TokenRequired { gateway: gw }, 0x02, 502),
        ];
        for (e, socks, status) in cases {
            let a = answer_for(&e);
            assert_eq!((a.socks, a.status), (socks, status), "{e}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(same(b"", b""));
    }
}
