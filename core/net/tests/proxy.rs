//! The local proxy on loopback: hand-written SOCKS5 and HTTP CONNECT clients through a proxy
//! and a gateway to TCP servers; credentials, each error mapping, half-close both ways, resets
//! carried, garbage.

mod common;

use braid::gateway::{GatewayConfig, Tokens};
use braid::{Client, Proxy, ProxyConfig, ProxyCredentials};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn proxy_with(gw: SocketAddr, credentials: Option<ProxyCredentials>) -> Proxy {
    let cfg = ProxyConfig {
        credentials,
        handshake_timeout: Duration::from_secs(3),
        ..ProxyConfig::default()
    };
    Proxy::start(client(), gw, cfg).await.unwrap()
}

fn creds() -> ProxyCredentials {
    ProxyCredentials {
        username: "app".into(),
        password: "s3cret".into(),
    }
}

/// A SOCKS5 CONNECT request for `target` (IP literal or domain name).
fn socks_request(target: &str, port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0];
    match target.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            r.push(1);
            r.extend_from_slice(&v4.octets());
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            r.push(4);
            r.extend_from_slice(&v6.octets());
        }
        Err(_) => {
            r.extend_from_slice(&[3, target.len() as u8]);
            r.extend_from_slice(target.as_bytes());
        }
    }
    r.extend_from_slice(&port.to_be_bytes());
    r
}

/// SOCKS5 without authentication: returns the reply code and the stream.
async fn socks_connect(proxy: SocketAddr, target: &str, port: u16) -> (u8, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.unwrap();
    assert_eq!(m, [5, 0], "no-auth chosen");
    (socks_finish(&mut s, target, port).await, s)
}

async fn socks_finish(s: &mut TcpStream, target: &str, port: u16) -> u8 {
    s.write_all(&socks_request(target, port)).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 5);
    reply[1]
}

/// HTTP CONNECT: returns the status line and the stream positioned after the head.
async fn http_connect(proxy: SocketAddr, target: &str, auth: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (head.lines().next().unwrap_or_default().to_string(), s)
}

/// Reads an HTTP response head byte by byte (nothing of the tunnel after it).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

async fn echo_round_trip(s: &mut TcpStream, what: &[u8]) {
    s.write_all(what).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back))
        .await
        .expect("echo stalled")
        .unwrap();
    assert_eq!(back, what);
}

/// A TCP echo server on `[::1]`.
async fn tcp_echo_v6() -> SocketAddr {
    let l = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_and_http_connect_to_ipv4_ipv6_and_names() {
    init_log();
    let echo = tcp_echo().await;
    let echo6 = tcp_echo_v6().await;
    let allow = vec![echo.to_string(), echo6.to_string()];
    let (gw, gstats, _t, _stop) = gateway(allow, Default::default()).await;
    let proxy = proxy_with(gw, None).await;
    let p = proxy.local_addr();
    assert!(p.ip().is_loopback());

    // SOCKS5: IPv4, IPv6, and a name the gateway resolves.
    for (host, port) in [
        ("127.0.0.1", echo.port()),
        ("::1", echo6.port()),
        ("localhost", echo.port()),
    ] {
        let (code, mut s) = socks_connect(p, host, port).await;
        assert_eq!(code, 0, "SOCKS5 to {host}");
        echo_round_trip(&mut s, format!("socks {host}").as_bytes()).await;
    }
    // HTTP CONNECT: the same three, and bytes sent right after the head reach the target.
    for target in [
        echo.to_string(),
        echo6.to_string(),
        format!("localhost:{}", echo.port()),
    ] {
        let (status, mut s) = http_connect(p, &target, None).await;
        assert_eq!(status, "HTTP/1.1 200 Connection established", "{target}");
        echo_round_trip(&mut s, format!("http {target}").as_bytes()).await;
    }
    let mut eager = TcpStream::connect(p).await.unwrap();
    let head = format!("CONNECT {echo} HTTP/1.1\r\n\r\nearly bytes");
    eager.write_all(head.as_bytes()).await.unwrap();
    eager.shutdown().await.unwrap();
    assert!(read_head(&mut eager).await.starts_with("HTTP/1.1 200 "));
    let mut back = Vec::new();
    eager.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"early bytes");

    // Counters settle once the relays have ended.
    let want = 7u64;
    for _ in 0..100 {
        if proxy.stats().active == 0 && proxy.stats().accepted == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = proxy.stats();
    assert_eq!((st.accepted, st.active, st.failed), (want, 0, 0), "{st:?}");
    assert_eq!(st.bytes_up, st.bytes_down, "echoed: {st:?}");
    assert!(st.bytes_up > 60, "{st:?}");
    assert_eq!(
        gstats.relayed.load(std::sync::atomic::Ordering::Relaxed),
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_on_off_and_wrong() {
    init_log();
    let echo = tcp_echo().await;
    let (gw, _s, _t, _stop) = gateway(vec![echo.to_string()], Default::default()).await;
    let host = "127.0.0.1";

    // Required: offering only no-auth is refused with 0xFF.
    let proxy = proxy_with(gw, Some(creds())).await;
    let p = proxy.local_addr();
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.unwrap();
    assert_eq!(m, [5, 0xff]);
    assert_eq!(s.read(&mut m).await.unwrap(), 0, "closed after 0xFF");

    // Right and wrong username/password (RFC 1929).
    for (user, pass, ok) in [
        ("app", "s3cret", true),
        ("app", "wrong", false),
        ("", "", false),
    ] {
        let mut s = TcpStream::connect(p).await.unwrap();
        s.write_all(&[5, 2, 0, 2]).await.unwrap();
        s.read_exact(&mut m).await.unwrap();
        assert_eq!(m, [5, 2], "username/password chosen");
        let mut auth = vec![1, user.len() as u8];
        auth.extend_from_slice(user.as_bytes());
        auth.push(pass.len() as u8);
        auth.extend_from_slice(pass.as_bytes());
        s.write_all(&auth).await.unwrap();
        s.read_exact(&mut m).await.unwrap();
        if ok {
            assert_eq!(m, [1, 0]);
            assert_eq!(socks_finish(&mut s, host, echo.port()).await, 0);
            echo_round_trip(&mut s, b"authenticated").await;
        } else {
            assert_eq!(m[0], 1);
            assert_ne!(m[1], 0, "wrong credentials fail");
            assert_eq!(s.read(&mut m).await.unwrap(), 0, "closed after failure");
        }
    }

    // HTTP: none or wrong → 407 with a challenge; right → 200.
    let target = echo.to_string();
    for (auth, want) in [
        (None, "HTTP/1.1 407 Proxy Authentication Required"),
        (
            Some("Basic YXBwOndyb25n"),
            "HTTP/1.1 407 Proxy Authentication Required",
        ),
        (
            Some("Basic YXBwOnMzY3JldA=="),
            "HTTP/1.1 200 Connection established",
        ),
    ] {
        let (status, mut s) = http_connect(p, &target, auth).await;
        assert_eq!(status, want, "{auth:?}");
        if want.contains("200") {
            echo_round_trip(&mut s, b"basic").await;
        }
    }
    let st = proxy.stats();
    assert_eq!(st.refused_auth, 5, "{st:?}");

    // Not required: no-auth works, and a client offering only username/password is refused.
    let open = proxy_with(gw, None).await;
    let (code, mut s) = socks_connect(open.local_addr(), host, echo.port()).await;
    assert_eq!(code, 0);
    echo_round_trip(&mut s, b"open").await;
    let mut s = TcpStream::connect(open.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    s.read_exact(&mut m).await.unwrap();
    assert_eq!(m, [5, 0xff]);
}

/// A listener whose accept queue is full (backlog 0, filled, never accepted): connects to it
/// get no answer.
async fn black_hole() -> (SocketAddr, Vec<TcpStream>) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Leaked on purpose: it must stay open, unaccepted, for the test.
    std::mem::forget(s);
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
        {
            fillers.push(c);
        }
    }
    (addr, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_maps_to_its_reply() {
    init_log();
    let echo = tcp_echo().await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (hole, _fillers) = black_hole().await;
    let allow = vec![closed.to_string(), hole.to_string()];
    let cfg = GatewayConfig {
        connect_timeout: Duration::from_millis(700),
        ..Default::default()
    };
    let (gw, _s, _t, _stop) = gateway(allow.clone(), cfg).await;
    let proxy = proxy_with(gw, None).await;
    let p = proxy.local_addr();

    // (target host, port, SOCKS reply, HTTP status)
    let cases = [
        ("127.0.0.1", echo.port(), 0x02, 403),   // not on the allowlist
        ("localhost", echo.port(), 0x02, 403),   // its name, resolved: still not
        ("127.0.0.1", closed.port(), 0x05, 502), // refused
        ("127.0.0.1", hole.port(), 0x06, 504),   // no answer in time
        ("nonexistent.invalid", 443, 0x04, 502), // no address
        ("bad..name", 443, 0x04, 502),           // not a host name
    ];
    for (host, port, socks, status) in cases {
        let (code, mut s) = socks_connect(p, host, port).await;
        assert_eq!(code, socks, "SOCKS5 {host}:{port}");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        let target = format!("{host}:{port}");
        let (line, mut s) = http_connect(p, &target, None).await;
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{target}: {line}"
        );
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(
            body.starts_with("braid: "),
            "{target}: a reason in the body: {body:?}"
        );
    }

    // A gateway that requires a token, and a client without one: 0x02 / 502.
    let cfg = GatewayConfig {
        tokens: Tokens::new(["a long enough shared secret"]),
        ..Default::default()
    };
    let (tgw, _s2, _t2, _stop2) = gateway(vec![echo.to_string()], cfg).await;
    let tproxy = proxy_with(tgw, None).await;
    let (code, _s) = socks_connect(tproxy.local_addr(), "127.0.0.1", echo.port()).await;
    assert_eq!(code, 0x02);
    let (line, mut s) = http_connect(tproxy.local_addr(), &echo.to_string(), None).await;
    assert!(line.starts_with("HTTP/1.1 502 "), "{line}");
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.contains("token"), "{body}");

    // No gateway at all (nothing listens there): network unreachable / 502.
    let nobody = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap()
    };
    let c = Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let lost = Proxy::start(c, nobody, ProxyConfig::default())
        .await
        .unwrap();
    let (code, _s) = socks_connect(lost.local_addr(), "127.0.0.1", echo.port()).await;
    assert_eq!(code, 0x03);
    let (line, _s) = http_connect(lost.local_addr(), &echo.to_string(), None).await;
    assert!(line.starts_with("HTTP/1.1 502 "), "{line}");

    // Commands other than CONNECT, other methods, garbage.
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.unwrap();
    let mut bind = socks_request("127.0.0.1", 80);
    bind[1] = 2;
    s.write_all(&bind).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0x07, "BIND is not supported");
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 405 "));
    for junk in [
        &[0x16u8, 3, 1, 0, 0xa5, 1][..],
        &[4, 1, 0, 80, 127, 0, 0, 1, 0],
        b"\0\0\0",
    ] {
        let mut s = TcpStream::connect(p).await.unwrap();
        s.write_all(junk).await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(2), read_head(&mut s))
            .await
            .expect("garbage is answered at once, not at the handshake timeout");
        assert!(head.starts_with("HTTP/1.1 400 "), "{junk:?}: {head}");
    }
    // A SOCKS5 client that stops mid-greeting is closed at the handshake timeout.
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(&[5]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(6), s.read(&mut m)).await;
    assert!(matches!(got, Ok(Ok(0)) | Ok(Err(_))), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_both_ways_and_resets_carried() {
    init_log();
    // The server speaks first and half-closes, then reads until the client's end of stream
    // and reports what it got.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = l.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                // One byte says what to do: 'h' half-close dance, 'r' reset us, 'w' wait for
                // the client's reset.
                if s.read_exact(&mut first).await.is_err() {
                    return;
                }
                match first[0] {
                    b'h' => {
                        s.write_all(b"server speaks").await.unwrap();
                        s.shutdown().await.unwrap();
                        let mut got = Vec::new();
                        let r = s.read_to_end(&mut got).await.map(|_| got);
                        let _ = tx.send(r.map_err(|e| e.kind()));
                    }
                    b'r' => {
                        s.set_zero_linger().unwrap();
                        drop(s);
                    }
                    _ => {
                        let mut sink = Vec::new();
                        let r = s.read_to_end(&mut sink).await.map(|_| sink);
                        let _ = tx.send(r.map_err(|e| e.kind()));
                    }
                }
            });
        }
    });
    let (gw, _s, _t, _stop) = gateway(vec![server.to_string()], Default::default()).await;
    let proxy = proxy_with(gw, None).await;
    let p = proxy.local_addr();

    // Server half-closes first; the client still sends after reading the end.
    let (code, mut s) = socks_connect(p, "127.0.0.1", server.port()).await;
    assert_eq!(code, 0);
    s.write_all(b"h").await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"server speaks");
    s.write_all(b"client answers after the server's FIN")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.unwrap(), b"client answers after the server's FIN");

    // The server resets: the local client sees a reset, not an orderly end.
    let (status, mut s) = http_connect(p, &server.to_string(), None).await;
    assert!(status.contains("200"));
    s.write_all(b"r").await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );

    // The local client resets: the server sees a reset too.
    let (code, s) = socks_connect(p, "127.0.0.1", server.port()).await;
    assert_eq!(code, 0);
    let mut s = s;
    s.write_all(b"w some bytes").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.set_zero_linger().unwrap();
    drop(s);
    let seen = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, Err(std::io::ErrorKind::ConnectionReset));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_listener_and_bad_configs_fail() {
    init_log();
    let echo = tcp_echo().await;
    let (gw, _s, _t, _stop) = gateway(vec![echo.to_string()], Default::default()).await;
    let proxy = proxy_with(gw, None).await;
    let p = proxy.local_addr();
    let (code, mut live) = socks_connect(p, "127.0.0.1", echo.port()).await;
    assert_eq!(code, 0);
    // Bytes are counted while the connection is open.
    live.write_all(b"live bytes").await.unwrap();
    let mut back = [0u8; 10];
    live.read_exact(&mut back).await.unwrap();
    let st = proxy.stats();
    assert_eq!(
        (st.active, st.bytes_up, st.bytes_down),
        (1, 10, 10),
        "{st:?}"
    );
    proxy.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(p).await.is_err(), "no longer accepting");
    echo_round_trip(&mut live, b"a live relay outlives stop").await;

    let zero = ProxyConfig {
        max_connections: 0,
        ..ProxyConfig::default()
    };
    assert!(matches!(
        Proxy::start(client(), gw, zero).await,
        Err(braid::Error::InvalidArgument(_))
    ));
}
