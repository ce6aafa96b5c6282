//! Shared test helpers: the test kit's stream with SHA-256, a TCP sink/source server,
//! and two emulated paths (WiFi-like and cellular-like) in front of a gateway.
#![allow(dead_code)]

use braid::emulator::PathEmulator;
use braid::gateway::{Gateway, GatewayConfig, GatewayStats};
use braid_proto::sim::link::LinkConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use braid_testkit::Sha;
use braid_testkit::transfer::{self, Amount};

/// Writes `len` bytes of stream `seed`, then shuts down. Returns the SHA-256 of what was sent.
pub async fn send_stream<W: AsyncWrite + Unpin>(
    w: &mut W,
    seed: u64,
    len: u64,
) -> std::io::Result<Sha> {
    Ok(transfer::send(w, seed, Amount::Bytes(len)).await?.sha)
}

/// Reads to end of stream. Returns (bytes, SHA-256).
pub async fn recv_stream<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u64, Sha)> {
    let got = transfer::recv(r, None, true).await?;
    Ok((got.bytes, got.sha))
}

/// What the TCP server saw on one connection.
#[derive(Debug)]
pub struct ServerSide {
    pub received: u64,
    pub received_sha: Sha,
    pub sent_sha: Sha,
}

/// A TCP server that, on each connection, sends `send` bytes of stream `seed` and reads
/// everything, reporting both hashes.
pub async fn tcp_source_sink(
    send: u64,
    seed: u64,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<ServerSide>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let writer = tokio::spawn(async move { send_stream(&mut w, seed, send).await });
                let got = recv_stream(&mut r).await;
                let sent = writer.await;
                if let (Ok((received, received_sha)), Ok(Ok(sent_sha))) = (got, sent) {
                    let _ = tx.send(ServerSide {
                        received,
                        received_sha,
                        sent_sha,
                    });
                }
            });
        }
    });
    (addr, rx)
}

/// A TCP echo server.
pub async fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A gateway on loopback allowing `allow`, running in the background.
pub async fn gateway(
    allow: Vec<String>,
    cfg: GatewayConfig,
) -> (
    SocketAddr,
    Arc<GatewayStats>,
    tokio::task::JoinHandle<()>,
    oneshot::Sender<()>,
) {
    let gw = Gateway::bind(
        "127.0.0.1:0".parse().unwrap(),
        GatewayConfig { allow, ..cfg },
    )
    .await
    .unwrap();
    let addr = gw.local_addr();
    let stats = gw.stats();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        tokio::select! {
            _ = gw.run() => {}
            _ = stop_rx => {}
        }
    });
    (addr, stats, h, stop_tx)
}

pub fn wifi() -> LinkConfig {
    LinkConfig::new(40_000_000, Duration::from_millis(10))
        .with_queue_bdp(1.0)
        .with_overhead(28)
}

pub fn cellular() -> LinkConfig {
    LinkConfig::new(20_000_000, Duration::from_millis(30))
        .with_queue_bdp(1.0)
        .with_overhead(28)
}

/// Two emulated paths in front of `upstream`.
pub async fn two_paths(upstream: SocketAddr) -> (PathEmulator, PathEmulator) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let w = PathEmulator::start(any, upstream, wifi(), wifi())
        .await
        .unwrap();
    let c = PathEmulator::start(any, upstream, cellular(), cellular())
        .await
        .unwrap();
    (w, c)
}

/// An aggregate client whose WiFi and cellular interfaces reach the gateway through the two
/// emulated paths (both bound to loopback).
pub fn two_path_client(wifi: &PathEmulator, cell: &PathEmulator) -> braid::ClientBuilder {
    let lo = "127.0.0.1".parse().unwrap();
    braid::Client::builder()
        .service(braid::ServiceType::Aggregate)
        .interface(
            braid::Interface::new(braid::InterfaceKind::Wifi)
                .with_local_addr(lo)
                .with_via(wifi.local_addr()),
        )
        .interface(
            braid::Interface::new(braid::InterfaceKind::Cellular)
                .with_local_addr(lo)
                .with_via(cell.local_addr()),
        )
}

/// Bytes for end-to-end transfers: `BRAID_E2E_BYTES` or the default.
pub fn e2e_bytes(default: u64) -> u64 {
    std::env::var("BRAID_E2E_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn init_log() {
    struct L;
    impl log::Log for L {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("[{}] {}", r.level(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: L = L;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if std::env::var("BRAID_TEST_LOG").is_ok() {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}
