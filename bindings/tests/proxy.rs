//! `BraidProxy` driven from Rust the way the bindings drive it: a SOCKS5 client and an HTTP
//! CONNECT client written here, through the proxy and the test network's gateway.

mod common;

use braid_ffi::*;
use common::{client, network};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SOCKS5 CONNECT to `target` (`ip:port`), with username/password when given; returns the
/// stream after a success reply, or the reply code.
async fn socks5(proxy: &str, target: &str, auth: Option<(&str, &str)>) -> Result<TcpStream, u8> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let method = if auth.is_some() { 2 } else { 0 };
    s.write_all(&[5, 1, method]).await.unwrap();
    let mut chosen = [0u8; 2];
    s.read_exact(&mut chosen).await.unwrap();
    if chosen[1] != method {
        return Err(0xff);
    }
    if let Some((u, p)) = auth {
        let mut m = vec![1, u.len() as u8];
        m.extend_from_slice(u.as_bytes());
        m.push(p.len() as u8);
        m.extend_from_slice(p.as_bytes());
        s.write_all(&m).await.unwrap();
        let mut st = [0u8; 2];
        s.read_exact(&mut st).await.unwrap();
        if st[1] != 0 {
            return Err(0xfe);
        }
    }
    let addr: std::net::SocketAddrV4 = target.parse().unwrap();
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&addr.ip().octets());
    req.extend_from_slice(&addr.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    if reply[1] == 0 { Ok(s) } else { Err(reply[1]) }
}

async fn echo_once(s: &mut TcpStream, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    s.write_all(&data).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_and_http_connect_through_the_proxy() {
    let net = network().await;
    let proxy = client(&net, ServiceType::Handover)
        .start_proxy(net.gateway(), None)
        .await
        .unwrap();
    assert_eq!(proxy.address(), format!("127.0.0.1:{}", proxy.port()));
    assert_ne!(proxy.port(), 0);
    let mut s = socks5(&proxy.address(), &net.echo_target(), None)
        .await
        .unwrap();
    echo_once(&mut s, 100_000).await;

    let mut h = TcpStream::connect(proxy.address()).await.unwrap();
    // A host name: the gateway resolves it (and checks its allowlist on the address).
    let t = net.echo_target().replace("127.0.0.1", "localhost");
    h.write_all(format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        h.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    echo_once(&mut h, 50_000).await;

    // Not allowed by the gateway: an answer, not a silent close.
    assert_eq!(
        socks5(&proxy.address(), &net.forbidden_target(), None)
            .await
            .err(),
        Some(2)
    );
    let st = proxy.stats();
    assert_eq!((st.accepted, st.failed), (3, 1), "{st:?}");
    assert!(st.bytes_up >= 150_000 && st.bytes_down >= 150_000, "{st:?}");
    proxy.stop();
    assert!(!proxy.is_running());
    assert!(
        TcpStream::connect(proxy.address()).await.is_err(),
        "still listening"
    );
    assert_eq!(proxy.stats().accepted, 3, "stats survive stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_keep_other_clients_out() {
    let net = network().await;
    let cfg = BraidProxyConfig {
        username: Some("app".into()),
        password: Some("s3cret".into()),
        ..BraidProxyConfig::default()
    };
    let proxy = client(&net, ServiceType::Handover)
        .start_proxy(net.gateway(), Some(cfg))
        .await
        .unwrap();
    assert!(
        socks5(&proxy.address(), &net.echo_target(), None)
            .await
            .is_err()
    );
    assert!(
        socks5(&proxy.address(), &net.echo_target(), Some(("app", "wrong")))
            .await
            .is_err()
    );
    let mut s = socks5(
        &proxy.address(),
        &net.echo_target(),
        Some(("app", "s3cret")),
    )
    .await
    .unwrap();
    echo_once(&mut s, 10_000).await;
    assert!(proxy.stats().refused_auth >= 1, "{:?}", proxy.stats());

    let only_user = BraidProxyConfig {
        username: Some("app".into()),
        ..BraidProxyConfig::default()
    };
    let r = client(&net, ServiceType::Handover)
        .start_proxy(net.gateway(), Some(only_user))
        .await;
    assert!(
        matches!(r, Err(BraidError::InvalidArgument(_))),
        "{:?}",
        r.err()
    );
}

/// Reads an HTTP/1.1 response with `connection: close` to the end; returns the body length.
async fn body_len<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> usize {
    let mut all = Vec::new();
    s.read_to_end(&mut all).await.unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    all.len() - end - 4
}

/// Goodput of one HTTP download over the emulated WiFi path (40 Mbit/s, 10 ms): through
/// BraidProxy (SOCKS5), straight with connectVia, and with connectTls to the HTTPS server.
/// A measurement, not a check: `cargo test -p braid-ffi --test proxy -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_download_goodput() {
    const N: usize = 8 << 20;
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let get = format!("GET /bytes/{N} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mbit = |t: std::time::Duration| N as f64 * 8.0 / t.as_secs_f64() / 1e6;

    let proxy = c.clone().start_proxy(net.gateway(), None).await.unwrap();
    let t0 = std::time::Instant::now();
    let mut s = socks5(&proxy.address(), &net.http_target(), None)
        .await
        .unwrap();
    s.write_all(get.as_bytes()).await.unwrap();
    assert_eq!(body_len(&mut s).await, N);
    let via_proxy = t0.elapsed();

    let t0 = std::time::Instant::now();
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.http_target(), None)
        .await
        .unwrap();
    conn.clone()
        .write(get.as_bytes().to_vec(), None)
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let b = conn.clone().read(1 << 20, None).await.unwrap();
        if b.is_empty() {
            break;
        }
        got.extend_from_slice(&b);
    }
    let direct = t0.elapsed();
    assert!(got.len() > N);

    let t0 = std::time::Instant::now();
    let opts = BraidTlsOptions {
        use_system_roots: false,
        extra_roots_der: vec![net.test_ca_der()],
        ..BraidTlsOptions::default()
    };
    let tls = c
        .clone()
        .connect_tls(
            net.gateway(),
            net.https_target(),
            "localhost".into(),
            Some(opts),
            None,
        )
        .await
        .unwrap();
    tls.clone()
        .write(get.as_bytes().to_vec(), None)
        .await
        .unwrap();
    let mut n = 0;
    loop {
        let b = tls.clone().read(1 << 20, None).await.unwrap();
        if b.is_empty() {
            break;
        }
        n += b.len();
    }
    let with_tls = t0.elapsed();
    assert!(n > N);
    println!(
        "8 MiB over emulated WiFi (40 Mbit/s): BraidProxy SOCKS5 {:.1} Mbit/s ({:?}), connectVia {:.1} Mbit/s ({:?}), connectTls {:.1} Mbit/s ({:?})",
        mbit(via_proxy),
        via_proxy,
        mbit(direct),
        direct,
        mbit(with_tls),
        with_tls
    );
}
