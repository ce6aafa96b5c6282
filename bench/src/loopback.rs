//! What the gateway benchmarks share: a `braid gateway` subprocess on loopback, the TCP
//! servers behind it, and the min/median/max of repeated runs.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `braid gateway` subprocess, killed on drop.
pub(crate) struct GatewayProc(pub(crate) Child);

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `braid gateway` on a free loopback port with `workers` workers, allowing `allow`
/// and holding up to `max_connections`; returns it with its address. Every benchmark
/// connection comes from 127.0.0.1, so the per-source Convert limit is lifted (it would
/// measure itself).
pub(crate) fn start_gateway(
    braid: &str,
    workers: usize,
    allow: &[SocketAddr],
    max_connections: usize,
) -> Result<(GatewayProc, SocketAddr), String> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let child = Command::new(braid)
        .args(["--log", "warn", "gateway", "--listen", &listen.to_string()])
        .args(
            allow
                .iter()
                .flat_map(|a| ["--allow".to_string(), a.to_string()]),
        )
        .args(["--workers", &workers.to_string()])
        .args(["--max-connections", &max_connections.to_string()])
        .args([
            "--max-half-open",
            "8192",
            "--max-half-open-per-source",
            "8192",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {braid}: {e}"))?;
    Ok((GatewayProc(child), listen))
}

/// An echo server on loopback.
pub(crate) async fn echo_server() -> std::io::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A discard server on loopback (reads to the end, then closes).
pub(crate) async fn sink_server() -> std::io::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = vec![0u8; 256 * 1024];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Min, median, max.
pub(crate) fn min_median_max(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}
