//! The test network's TLS servers: a TLS echo server and a tiny HTTPS/1.1 server (also
//! served without TLS), both with
//! the test certificate of core/net/tests/fixtures ("localhost" and 127.0.0.1, signed by
//! "Braid Test CA").

use crate::{TestNetworkError, failed};
use braid::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The CA that signed the servers' certificate.
pub(crate) const CA_DER: &[u8] = include_bytes!("../../../core/net/tests/fixtures/ca.der");
/// The servers' own certificate: trusting only it does not make their chain valid.
pub(crate) const LEAF_DER: &[u8] = include_bytes!("../../../core/net/tests/fixtures/leaf.der");
const LEAF_KEY_DER: &[u8] = include_bytes!("../../../core/net/tests/fixtures/leaf.key.der");

/// Protocols the echo server accepts by ALPN.
const ECHO_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// The largest request head the HTTPS server reads.
const MAX_HEAD: usize = 16 * 1024;
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn acceptor(alpn: &[&[u8]]) -> Result<TlsAcceptor, TestNetworkError> {
    let mut cfg = braid::tls::server_config(
        vec![CertificateDer::from(LEAF_DER.to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY_DER.to_vec())),
    )
    .map_err(|e| TestNetworkError::Failed(format!("TLS server config: {e}")))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts TCP connections on loopback and serves each, after a TLS handshake, with `serve`.
async fn tls_server<F, Fut>(
    what: &'static str,
    alpn: &[&[u8]],
    serve: F,
) -> Result<SocketAddr, TestNetworkError>
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tls = acceptor(alpn)?;
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(failed(what))?;
    let addr = l.local_addr().map_err(failed(what))?;
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (tls, serve) = (tls.clone(), serve.clone());
            tokio::spawn(async move {
                // A client that never finishes its handshake must not hold a task forever.
                let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(s)).await;
                match hs {
                    Ok(Ok(s)) => serve(s).await,
                    Ok(Err(e)) => log::info!("test {what}: handshake failed: {e}"),
                    Err(_) => log::info!("test {what}: handshake timed out"),
                }
            });
        }
    });
    Ok(addr)
}

/// Echoes what it reads (decrypted) back until the client finishes, then closes with
/// close_notify.
pub(crate) async fn echo() -> Result<SocketAddr, TestNetworkError> {
    tls_server("TLS echo server", &ECHO_ALPN, |s| async move {
        let (mut r, mut w) = tokio::io::split(s);
        if tokio::io::copy(&mut r, &mut w).await.is_ok() {
            let _ = w.shutdown().await;
        }
    })
    .await
}

/// HTTP/1.1 over TLS, one request per connection: `GET /bytes/N` answers N bytes
/// (byte i is `i % 251`), any other GET answers a short greeting, anything else 405.
pub(crate) async fn https() -> Result<SocketAddr, TestNetworkError> {
    tls_server("HTTPS server", &[b"http/1.1"], |mut s| async move {
        if let Err(e) = answer(&mut s).await {
            log::info!("test HTTPS server: {e}");
        }
        let _ = s.shutdown().await;
    })
    .await
}

/// The same HTTP/1.1 server without TLS, for clients that cannot do TLS themselves (the
/// Swift tests on Linux).
pub(crate) async fn http() -> Result<SocketAddr, TestNetworkError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(failed("HTTP server"))?;
    let addr = l.local_addr().map_err(failed("HTTP server"))?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if let Err(e) = answer(&mut s).await {
                    log::info!("test HTTP server: {e}");
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// The greeting body of the HTTPS server.
pub(crate) const GREETING: &str = "hello from the braid test network\n";

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too long"));
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "closed before the request head ended",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body): (&str, Vec<u8>) = if method != "GET" {
        ("405 Method Not Allowed", Vec::new())
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<usize>() {
            Ok(n) if n <= 64 << 20 => ("200 OK", (0..n).map(|i| (i % 251) as u8).collect()),
            _ => ("400 Bad Request", Vec::new()),
        }
    } else {
        ("200 OK", GREETING.as_bytes().to_vec())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    s.flush().await
}

/// `der` as PEM text.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::pem;

    #[test]
    fn pem_encodes_base64_with_padding() {
        assert_eq!(
            pem("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            pem("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
    }
}
