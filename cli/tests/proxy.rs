//! `braid proxy` as a process: SOCKS5 and HTTP CONNECT through it and a `braid gateway`
//! process to a TCP echo server, credentials, the per-connection log line, usage errors.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Starts `braid proxy --listen 127.0.0.1:0 --via GW` with `extra` and learns its address.
/// (A [`GatewayProc`] holds any braid child with its stderr lines.)
fn proxy(via: SocketAddr, extra: &[&str]) -> GatewayProc {
    let (child, rx) = spawn_logged(
        braid()
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--via",
                &via.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let mut p = GatewayProc {
        child,
        addr: ([0, 0, 0, 0], 0).into(),
        lines: rx,
    };
    let l = p
        .wait_line("braid proxy on ", LIMIT)
        .expect("the proxy never said where it listens");
    let rest = l.split("braid proxy on ").nth(1).unwrap();
    p.addr = rest.split(' ').next().unwrap().parse().unwrap();
    p
}

fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> (u8, TcpStream) {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    assert_eq!(m, [5, 0]);
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    (reply[1], s)
}

fn http_connect(proxy: SocketAddr, target: &str, auth: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let auth = auth
        .map(|a| format!("Proxy-Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    (head.lines().next().unwrap_or_default().to_string(), s)
}

fn echo(mut s: TcpStream, what: &[u8]) {
    s.write_all(what).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, what);
}

#[test]
fn socks5_and_http_connect_through_proxy_and_gateway_processes() {
    let server = tcp_echo();
    let gw = gateway(&[server.to_string()]);
    let p = proxy(gw.addr, &["--policy", "handover"]);

    // A name the gateway resolves, over SOCKS5.
    let (code, s) = socks_connect(p.addr, "localhost", server.port());
    assert_eq!(code, 0);
    echo(s, b"through braid proxy, socks5");
    let line = p
        .wait_line(&format!("-> localhost:{}: finished", server.port()), LIMIT)
        .expect("a log line for the connection");
    assert!(line.contains("up 27 B, down 27 B"), "{line}");

    // HTTP CONNECT, and a destination the gateway does not allow.
    let (status, s) = http_connect(p.addr, &server.to_string(), None);
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    echo(s, b"through braid proxy, connect");
    let (status, _s) = http_connect(p.addr, "127.0.0.1:9", None);
    assert!(status.starts_with("HTTP/1.1 403 "), "{status}");
    let line = p
        .wait_line("-> 127.0.0.1:9: failed", LIMIT)
        .expect("a log line for the refusal");
    assert!(line.contains("not allow"), "{line}");
}

#[test]
fn credentials_required() {
    let server = tcp_echo();
    let gw = gateway(&[server.to_string()]);
    let p = proxy(gw.addr, &["--user", "app", "--password", "pw"]);
    let (status, _s) = http_connect(p.addr, &server.to_string(), None);
    assert!(status.starts_with("HTTP/1.1 407 "), "{status}");
    // base64("app:pw")
    let (status, s) = http_connect(p.addr, &server.to_string(), Some("YXBwOnB3"));
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    echo(s, b"authenticated");
}

#[test]
fn usage_errors_are_one_line() {
    let out = run(&["proxy"], b"", LIMIT);
    let l = assert_one_line_error(&out, "no --via");
    assert!(l.contains("--via"), "{l}");
    let out = run(
        &["proxy", "--via", "127.0.0.1:1", "--user", "u"],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "user without password");
    assert!(l.contains("--password"), "{l}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &["proxy", "--via", "127.0.0.1:1", "--listen", &addr],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "listen address in use");
    assert!(l.contains(&addr), "{l}");
}
