//! Helpers for the `braid` binary's tests: running it, a TCP echo server, a gateway.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn braid() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_braid"));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// Runs `braid` with `stdin`, killing it after `limit`.
pub fn run(args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = braid()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn braid");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    wait_limited(child, limit)
}

/// Waits for the child, killing it (and failing) after `limit`. Collects the output
/// streams that were piped and not taken yet.
pub fn wait_limited(mut child: Child, limit: Duration) -> Output {
    let out = child.stdout.take();
    let err = child.stderr.take();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut s) = out {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut s) = err {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&e.join().unwrap()).into_owned();
            panic!("braid did not finish within {limit:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one-line error contract: non-zero exit, one line on stderr, `braid: error: `, no panic.
pub fn assert_one_line_error(o: &Output, what: &str) -> String {
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{what}: exit status {:?}", o.status);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{what}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want exactly one line on stderr, got:\n{err}"
    );
    assert!(
        lines[0].starts_with("braid: error: "),
        "{what}: unexpected line {:?}",
        lines[0]
    );
    lines[0].to_string()
}

/// A TCP echo server on loopback (threads; lives until the test process ends).
pub fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = std::io::copy(&mut s, &mut w);
                let _ = w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A free UDP port on loopback (nothing listens on it once this returns).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `braid gateway` subprocess; killed on drop. Its stderr lines go to a channel.
pub struct GatewayProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProc {
    /// Waits for a stderr line containing `needle`.
    pub fn wait_line(&self, needle: &str, limit: Duration) -> Option<String> {
        wait_line(&self.lines, needle, limit)
    }
}

/// Spawns `cmd` with its stderr piped, each line of it sent to the returned channel (stdin
/// and stdout are the caller's to set).
pub fn spawn_logged(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits up to `limit` for a line containing `needle` (the lines before it are dropped).
pub fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Starts `braid gateway --listen 127.0.0.1:0 --allow ...` and learns its port.
pub fn gateway(allow: &[String]) -> GatewayProc {
    gateway_with(allow, &[])
}

/// [`gateway`] with more arguments.
pub fn gateway_with(allow: &[String], extra: &[&str]) -> GatewayProc {
    let mut args = vec![
        "gateway".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    for a in allow {
        args.push("--allow".into());
        args.push(a.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let (child, rx) = spawn_logged(
        braid()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    // Owned by the guard from here on: killed even if the test fails below.
    let mut gw = GatewayProc {
        child,
        addr: ([0, 0, 0, 0], 0).into(),
        lines: rx,
    };
    let l = gw
        .wait_line("braid gateway on udp ", Duration::from_secs(10))
        .expect("the gateway never said where it listens");
    // "... braid gateway on udp 127.0.0.1:PORT, allowing ..."
    let rest = l.split("braid gateway on udp ").nth(1).unwrap();
    gw.addr = rest.split(',').next().unwrap().trim().parse().unwrap();
    gw
}

/// One scrape with a hand-written HTTP/1.1 request: the status line and the body.
pub fn scrape_raw(at: SocketAddr, request_line: &str) -> (String, String) {
    let mut s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{request_line}\r\nHost: test\r\nAccept: */*\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("no end of head");
    let status = head.lines().next().unwrap().to_string();
    if status.contains("200") {
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("no Content-Length")
            .parse()
            .unwrap();
        assert_eq!(len, body.len(), "Content-Length disagrees with the body");
    }
    (status, body.to_string())
}

/// The value of the sample `name{labels}` (exact text before the value).
pub fn value(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{body}"))
        .parse()
        .unwrap()
}
