//! TLS over a Braid connection with a test CA (fixtures made once with openssl).

mod common;

use braid::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use braid::tls::{self, RootCertStore, TlsRoots};
use braid::{Client, Error, Server, ServerConfig};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn roots() -> RootCertStore {
    let mut r = RootCertStore::empty();
    r.add(CertificateDer::from(fixture("ca.der"))).unwrap();
    r
}

async fn tls_server() -> std::net::SocketAddr {
    let cfg = tls::server_config(
        vec![CertificateDer::from(fixture("leaf.der"))],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(fixture("leaf.key.der"))),
    )
    .unwrap();
    let cfg = Arc::new(cfg);
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls::accept_tls(conn, cfg).await else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_echo_with_custom_roots() {
    let addr = tls_server().await;
    let client = Client::builder().build().unwrap();
    let conn = client.connect(addr).await.unwrap();
    let mut s = tls::connect_tls(conn, "localhost", TlsRoots::Custom(roots()))
        .await
        .unwrap();
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(&mut s);
    let m2 = msg.clone();
    let (wres, back) = tokio::join!(
        async move {
            w.write_all(&m2).await?;
            w.flush().await
        },
        async move {
            let mut back = vec![0u8; msg.len()];
            r.read_exact(&mut back).await.map(|_| back)
        }
    );
    wres.unwrap();
    assert_eq!(
        back.unwrap(),
        (0..200_000u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rejects_a_wrong_name_and_unknown_roots() {
    let addr = tls_server().await;
    let client = Client::builder().build().unwrap();
    let conn = client.connect(addr).await.unwrap();
    match tls::connect_tls(conn, "example.com", TlsRoots::Custom(roots())).await {
        Err(Error::Tls(e)) => eprintln!("wrong name refused: {e}"),
        other => panic!("expected a TLS error, got {:?}", other.map(|_| ())),
    }
    let conn = client.connect(addr).await.unwrap();
    match tls::connect_tls(conn, "localhost", TlsRoots::Custom(RootCertStore::empty())).await {
        Err(Error::Tls(e)) => eprintln!("unknown issuer refused: {e}"),
        other => panic!("expected a TLS error, got {:?}", other.map(|_| ())),
    }
}

#[cfg(not(feature = "platform-verifier"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_roots_need_the_feature() {
    assert!(matches!(
        tls::client_config(TlsRoots::Platform),
        Err(Error::Unsupported(_))
    ));
}
