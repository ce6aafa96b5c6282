//! Real clients nobody here wrote, through `braid proxy` and `braid gateway` (the real binary)
//! over the two-path testbed: Debian's curl in the phone namespace, Debian's nginx (TLS, HTTP/2,
//! a test certificate for `localhost` made now with openssl) behind the gateway in the server
//! namespace. A 50 MB download per way in (SOCKS5 with the gateway resolving the name, HTTP
//! CONNECT) × (HTTP/1.1, HTTP/2), each with WiFi going down midway: SHA-256 intact, curl exit
//! 0. Then 50 small requests at once, all answered correctly. Root only (CI is root).
//!
//! `BRAID_PROXY_BYTES` changes the download size.

use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BRAID: &str = env!("CARGO_BIN_EXE_braid");
const NGINX_ADDR: &str = "127.0.0.1:8443";
const GATEWAY_PORT: u16 = 7000;
const PROXY: &str = "127.0.0.1:1080";
const SMALL: usize = 50;

/// A child process killed when the test ends, however it ends.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with stderr lines sent to a channel.
fn spawn_logged(mut cmd: Command) -> (Kid, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
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
    (Kid(child), rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Option<String> {
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

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The web root, the certificate and nginx's configuration in `dir` (nothing under /etc).
/// Returns the big file's SHA-256.
fn server_files(dir: &Path, big: u64) -> Vec<u8> {
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("small")).unwrap();
    let mut f = std::fs::File::create(www.join("big")).unwrap();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = big;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf[..n]).unwrap();
        sha.update(&buf[..n]);
        left -= n as u64;
    }
    for i in 0..SMALL {
        std::fs::write(www.join("small").join(i.to_string()), small_body(i)).unwrap();
    }
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl req failed");
    let d = dir.display();
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           types {{ application/octet-stream big; }}\n  default_type text/plain;\n\
           server {{\n    listen {NGINX_ADDR} ssl http2;\n    server_name localhost;\n\
             ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             root {d}/www;\n    location / {{ }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    sha.finish().as_ref().to_vec()
}

fn small_body(i: usize) -> String {
    format!("small file {i}\n")
}

/// How curl reaches the proxy.
#[derive(Clone, Copy, Debug)]
enum Via {
    Socks5Hostname,
    HttpConnect,
}

fn curl(tb: &Testbed, dir: &Path, via: Via, http2: bool, path: &str) -> Command {
    let mut c = tb.command(Side::Phone, "curl");
    c.args(["-sS", "--fail", "--max-time", "120"])
        .arg("--cacert")
        .arg(dir.join("cert.pem"))
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .args(["-w", "%{stderr}version=%{http_version}\n"]);
    match via {
        Via::Socks5Hostname => c.args(["--socks5-hostname", PROXY]),
        Via::HttpConnect => c.args(["-x", &format!("http://{PROXY}")]),
    };
    c.arg(format!("https://localhost:8443{path}"));
    c
}

struct Download {
    bytes: u64,
    sha: Vec<u8>,
    elapsed: Duration,
    /// Longest time without a byte after WiFi went down.
    stall_after_kill: Duration,
    version: String,
}

/// Downloads /big through the proxy, WiFi going down after a third.
fn download(tb: &Testbed, dir: &Path, via: Via, http2: bool, big: u64) -> Download {
    let mut c = curl(tb, dir, via, http2, "/big");
    let mut child = Kid(c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl"));
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    let mut killed: Option<Instant> = None;
    let mut last = Instant::now();
    let mut stall = Duration::ZERO;
    loop {
        let n = out.read(&mut buf).unwrap();
        let now = Instant::now();
        if n == 0 {
            break;
        }
        if killed.is_some() {
            stall = stall.max(now - last);
        }
        last = now;
        sha.update(&buf[..n]);
        bytes += n as u64;
        if killed.is_none() && bytes >= big / 3 {
            tb.link_down(Link::Wifi).unwrap();
            killed = Some(Instant::now());
            last = Instant::now();
        }
    }
    let status = child.0.wait().unwrap();
    let err = err_text.join().unwrap();
    assert!(
        status.success(),
        "curl {via:?} http2={http2}: {status}: {err}"
    );
    assert!(killed.is_some(), "WiFi never went down");
    let version = err
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap_or_default()
        .to_string();
    Download {
        bytes,
        sha: sha.finish().as_ref().to_vec(),
        elapsed: start.elapsed(),
        stall_after_kill: stall,
        version,
    }
}

#[test]
fn curl_through_braid_proxy_survives_wifi_going_down() {
    if !root_or_skip("curl_through_braid_proxy_survives_wifi_going_down") {
        return;
    }
    for tool in ["nginx", "curl", "openssl"] {
        if !have(tool) {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{tool} is missing and CI=true (cargo xtask ci installs it)"
            );
            eprintln!("\n*** SKIPPED: {tool} is not installed (apt-get install {tool}) ***\n");
            return;
        }
    }
    let big: u64 = std::env::var("BRAID_PROXY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000_000);
    let dir = PathBuf::from(format!("/tmp/braid-proxy-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let want_sha = server_files(&dir, big);
    let tb = Testbed::up(TestbedConfig::default()).unwrap();

    // Server namespace: nginx, then the gateway allowing only it.
    let mut nginx = tb.command(Side::Server, "nginx");
    nginx
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    let (_nginx, _nginx_log) = spawn_logged(nginx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tb
        .run_in(Side::Server, || std::net::TcpStream::connect(NGINX_ADDR))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut gw = tb.command(Side::Server, BRAID);
    gw.args(["gateway", "--listen", &format!("0.0.0.0:{GATEWAY_PORT}")])
        .args(["--allow", NGINX_ADDR]);
    let (_gw, gw_log) = spawn_logged(gw);
    wait_line(&gw_log, "braid gateway on udp", Duration::from_secs(10)).expect("gateway up");

    // Phone namespace: the proxy over both interfaces.
    let via = format!("{}:{GATEWAY_PORT}", Link::Wifi.addr(Side::Server));
    let mut proxy = tb.command(Side::Phone, BRAID);
    proxy
        .args([
            "proxy",
            "--listen",
            PROXY,
            "--via",
            &via,
            "--policy",
            "aggregate",
        ])
        .args([
            "--interface",
            &format!("{}:wifi", Link::Wifi.iface(Side::Phone)),
        ])
        .args([
            "--interface",
            &format!("{}:cellular", Link::Cell.iface(Side::Phone)),
        ]);
    let (_proxy, proxy_log) = spawn_logged(proxy);
    wait_line(&proxy_log, "braid proxy on", Duration::from_secs(10)).expect("proxy up");

    let mut finished = 0;
    for (via, http2) in [
        (Via::Socks5Hostname, false),
        (Via::Socks5Hostname, true),
        (Via::HttpConnect, false),
        (Via::HttpConnect, true),
    ] {
        tb.link_up(Link::Wifi).unwrap();
        // The proxy learns of the interface through rtnetlink.
        std::thread::sleep(Duration::from_millis(500));
        let d = download(&tb, &dir, via, http2, big);
        println!(
            "{via:?} HTTP/{}: {} B in {:.2} s ({:.1} Mbit/s), WiFi down after a third, longest \
             stall after it {} ms",
            d.version,
            d.bytes,
            d.elapsed.as_secs_f64(),
            d.bytes as f64 * 8.0 / d.elapsed.as_secs_f64() / 1e6,
            d.stall_after_kill.as_millis()
        );
        assert_eq!(d.bytes, big, "{via:?} http2={http2}: length");
        assert_eq!(d.sha, want_sha, "{via:?} http2={http2}: SHA-256");
        assert_eq!(d.version, if http2 { "2" } else { "1.1" }, "{via:?}");
        finished += 1;
        let line = wait_line(
            &proxy_log,
            "-> localhost:8443: finished",
            Duration::from_secs(10),
        )
        .expect("the proxy logs each connection");
        // TLS records and headers come on top of the file.
        let down: u64 = line
            .split("down ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {line}"));
        assert!(down > big && down < big + big / 20, "{line}");
    }
    assert_eq!(finished, 4);

    // 50 small requests at once, both ways in, both HTTP versions, WiFi back.
    tb.link_up(Link::Wifi).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let kids: Vec<(usize, Kid)> = (0..SMALL)
        .map(|i| {
            let via = if i % 2 == 0 {
                Via::Socks5Hostname
            } else {
                Via::HttpConnect
            };
            let mut c = curl(&tb, &dir, via, i % 4 < 2, &format!("/small/{i}"));
            let k = c
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn curl");
            (i, Kid(k))
        })
        .collect();
    for (i, mut k) in kids {
        let mut body = String::new();
        k.0.stdout
            .take()
            .unwrap()
            .read_to_string(&mut body)
            .unwrap();
        let mut err = String::new();
        k.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = k.0.wait().unwrap();
        assert!(status.success(), "small request {i}: {status}: {err}");
        assert_eq!(body, small_body(i), "small request {i}");
    }
    println!(
        "{SMALL} parallel small requests answered in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    drop(tb);
    let _ = std::fs::remove_dir_all(&dir);
}
