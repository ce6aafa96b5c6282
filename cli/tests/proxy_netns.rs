//! Real clients nobody here wrote, through `braid proxy` and `braid gateway` (the real binary)
//! over the two-path testbed: Debian's curl in the phone namespace, Debian's nginx (TLS, HTTP/2,
//! a test certificate for `localhost` made now with openssl) behind the gateway in the server
//! namespace. A 50 MB download per way in (SOCKS5 with the gateway resolving the name, HTTP
//! CONNECT) × (HTTP/1.1, HTTP/2), each with WiFi going down midway: SHA-256 intact, curl exit
//! 0. Then 50 small requests at once, all answered correctly. Root only (CI is root).
//!
//! `BRAID_PROXY_BYTES` changes the download size.

mod common;

use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::{spawn_logged, wait_line};
use std::io::{Read, Write};
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

/// Spawns `cmd` (stdin and stdout closed) with its stderr lines sent to a channel.
fn spawn_kid(mut cmd: Command) -> (Kid, mpsc::Receiver<String>) {
    let (child, rx) = spawn_logged(cmd.stdin(Stdio::null()).stdout(Stdio::null()));
    (Kid(child), rx)
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
    let mut sha = braid_testkit::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = big;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        braid_testkit::pattern::fill(1, big - left, &mut buf[..n]);
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
    // Also on the server's WiFi address, for curl straight over TCP (the numbers test).
    let wifi_addr = Link::Wifi.addr(Side::Server);
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           types {{ application/octet-stream big; }}\n  default_type text/plain;\n\
           server {{\n    listen {NGINX_ADDR} ssl http2;\n    listen {wifi_addr}:8443 ssl http2;\n    server_name localhost;\n\
             ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             root {d}/www;\n    location / {{ }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    sha.finish().to_vec()
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

/// Downloads /big through the proxy, WiFi going down after a third when `kill_wifi`.
fn download(
    tb: &Testbed,
    dir: &Path,
    via: Via,
    http2: bool,
    big: u64,
    kill_wifi: bool,
) -> Download {
    let c = curl(tb, dir, via, http2, "/big");
    fetch(tb, c, big, kill_wifi)
}

/// Runs a curl command, reading its body as it comes.
fn fetch(tb: &Testbed, mut c: Command, big: u64, kill_wifi: bool) -> Download {
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
    let mut sha = braid_testkit::Sha256::new();
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
        if kill_wifi && killed.is_none() && bytes >= big / 3 {
            tb.link_down(Link::Wifi).unwrap();
            killed = Some(Instant::now());
            last = Instant::now();
        }
    }
    let status = child.0.wait().unwrap();
    let err = err_text.join().unwrap();
    assert!(status.success(), "curl: {status}: {err}");
    assert_eq!(killed.is_some(), kill_wifi, "WiFi went down when asked");
    let version = err
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap_or_default()
        .to_string();
    Download {
        bytes,
        sha: sha.finish().to_vec(),
        elapsed: start.elapsed(),
        stall_after_kill: stall,
        version,
    }
}

/// The running setup: testbed, nginx and the gateway in the server namespace (plus a plain
/// TCP source on port 9000 for the raw comparisons), `braid proxy` in the phone namespace.
struct Bed {
    // Field order is drop order: processes before the testbed.
    _kids: Vec<Kid>,
    proxy_log: mpsc::Receiver<String>,
    tb: Testbed,
    dir: PathBuf,
    want_sha: Vec<u8>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Port of the plain TCP source (sends the asked-for bytes on each connection, then closes).
const SOURCE_PORT: u16 = 9000;

/// Whether the tools are here; a skip outside CI, a failure under CI=true.
fn tools_present() -> bool {
    for tool in ["nginx", "curl", "openssl"] {
        if !have(tool) {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{tool} is missing and CI=true (cargo xtask ci installs it)"
            );
            eprintln!("\n*** SKIPPED: {tool} is not installed (apt-get install {tool}) ***\n");
            return false;
        }
    }
    true
}

fn bed(big: u64, policy: &str, source_bytes: u64) -> Bed {
    // One directory per setup: the tests of this file may run at once (--include-ignored).
    static SETUPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SETUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(format!("/tmp/braid-proxy-netns-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let want_sha = server_files(&dir, big);
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let mut kids = Vec::new();

    // Server namespace: nginx, a plain TCP source, then the gateway allowing only those.
    let mut nginx = tb.command(Side::Server, "nginx");
    nginx
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    kids.push(spawn_kid(nginx).0);
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
    let source = tb
        .run_in(Side::Server, || {
            std::net::TcpListener::bind(("0.0.0.0", SOURCE_PORT))
        })
        .unwrap();
    std::thread::spawn(move || {
        for s in source.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let buf = vec![0x5au8; 1 << 16];
                let mut left = source_bytes;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.read_to_end(&mut Vec::new());
            });
        }
    });
    let mut gw = tb.command(Side::Server, BRAID);
    gw.args(["gateway", "--listen", &format!("0.0.0.0:{GATEWAY_PORT}")])
        .args(["--allow", NGINX_ADDR])
        .args(["--allow", &format!("127.0.0.1:{SOURCE_PORT}")])
        // The 50 parallel requests below come from one phone at once: with the default of 16
        // connections per source in the Convert phase, a loaded machine (a longer Convert
        // phase) turned some of them into "resource exceeded" refusals.
        .args(["--max-half-open-per-source", "64"]);
    let (gw, gw_log) = spawn_kid(gw);
    kids.push(gw);
    wait_line(&gw_log, "braid gateway on udp", Duration::from_secs(10)).expect("gateway up");
    // Its log is not read further: a thread drains it so that it never blocks.
    std::thread::spawn(move || while gw_log.recv().is_ok() {});

    // Phone namespace: the proxy over both interfaces.
    let mut proxy = tb.command(Side::Phone, BRAID);
    proxy
        .args(["proxy", "--listen", PROXY, "--via", &gateway_addr()])
        .args(["--policy", policy])
        .args(phone_interfaces());
    let (proxy, proxy_log) = spawn_kid(proxy);
    kids.push(proxy);
    wait_line(&proxy_log, "braid proxy on", Duration::from_secs(10)).expect("proxy up");
    Bed {
        _kids: kids,
        proxy_log,
        tb,
        dir,
        want_sha,
    }
}

fn gateway_addr() -> String {
    format!("{}:{GATEWAY_PORT}", Link::Wifi.addr(Side::Server))
}

fn phone_interfaces() -> [String; 4] {
    [
        "--interface".into(),
        format!("{}:wifi", Link::Wifi.iface(Side::Phone)),
        "--interface".into(),
        format!("{}:cellular", Link::Cell.iface(Side::Phone)),
    ]
}

#[test]
fn curl_through_braid_proxy_survives_wifi_going_down() {
    if !root_or_skip("curl_through_braid_proxy_survives_wifi_going_down") || !tools_present() {
        return;
    }
    let big: u64 = std::env::var("BRAID_PROXY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000_000);
    let bed = bed(big, "aggregate", 0);
    let (tb, dir, want_sha, proxy_log) = (&bed.tb, &bed.dir, &bed.want_sha, &bed.proxy_log);

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
        let d = download(tb, dir, via, http2, big, true);
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
        assert_eq!(&d.sha, want_sha, "{via:?} http2={http2}: SHA-256");
        assert_eq!(d.version, if http2 { "2" } else { "1.1" }, "{via:?}");
        finished += 1;
        let line = wait_line(
            proxy_log,
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
            let mut c = curl(tb, dir, via, i % 4 < 2, &format!("/small/{i}"));
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
}

/// curl straight to nginx over TCP on the WiFi link alone (no proxy, no Braid).
fn curl_direct(tb: &Testbed, dir: &Path, path: &str) -> Command {
    let mut c = tb.command(Side::Phone, "curl");
    c.args(["-sS", "--fail", "--max-time", "120", "--http1.1"])
        .arg("--cacert")
        .arg(dir.join("cert.pem"))
        .args(["-w", "%{stderr}version=%{http_version}\n"])
        .args([
            "--resolve",
            &format!("localhost:8443:{}", Link::Wifi.addr(Side::Server)),
        ])
        .arg(format!("https://localhost:8443{path}"));
    c
}

/// Time to first byte as curl measures it (`time_starttransfer`: from the start, name
/// lookup, connects and TLS included).
fn ttfb(mut c: Command) -> Duration {
    let out = c
        .args(["-o", "/dev/null", "-w", "%{time_starttransfer}"])
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    Duration::from_secs_f64(text.trim().parse().expect("a number of seconds"))
}

/// A hand-written SOCKS5 client in the phone namespace: CONNECT to the plain TCP source
/// through the proxy, read to the end. Bytes and time from connect to the last byte.
fn socks_raw(tb: &Testbed) -> (u64, Duration) {
    tb.run_in(Side::Phone, || {
        let start = Instant::now();
        let mut s = std::net::TcpStream::connect(PROXY)?;
        s.write_all(&[5, 1, 0])?;
        let mut m = [0u8; 2];
        s.read_exact(&mut m)?;
        let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
        req.extend_from_slice(&SOURCE_PORT.to_be_bytes());
        s.write_all(&req)?;
        let mut reply = [0u8; 10];
        s.read_exact(&mut reply)?;
        assert_eq!(reply[1], 0, "SOCKS5 reply");
        s.shutdown(std::net::Shutdown::Write)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => break,
                k => n += k as u64,
            }
        }
        Ok((n, start.elapsed()))
    })
    .unwrap()
}

/// `braid connect` through the gateway to the plain TCP source: bytes and time from spawn to
/// the last byte.
fn connect_raw(tb: &Testbed, policy: &str) -> (u64, Duration) {
    let start = Instant::now();
    let mut c = tb.command(Side::Phone, BRAID);
    let mut child = Kid(c
        .args(["connect", &gateway_addr(), "--target"])
        .arg(format!("127.0.0.1:{SOURCE_PORT}"))
        .args(["--policy", policy])
        .args(phone_interfaces())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("braid connect"));
    let mut out = child.0.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            k => n += k as u64,
        }
    }
    let elapsed = start.elapsed();
    assert!(child.0.wait().unwrap().success());
    (n, elapsed)
}

fn mbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e6
}

/// "min / median / max" of samples.
fn spread(mut v: Vec<f64>, digits: usize) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.digits$} / {:.digits$} / {:.digits$}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

/// The numbers of BENCHMARKS.md, "Through the proxy". Run as root:
/// `cargo test --release -p braid-cli --test proxy_netns -- --ignored --nocapture`
/// (`BRAID_PROXY_BENCH_BYTES`, `BRAID_PROXY_BENCH_RUNS` change the size and the runs).
#[test]
#[ignore = "a benchmark: run it by name with --ignored"]
fn proxy_numbers() {
    if !root_or_skip("proxy_numbers") || !tools_present() {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let size = env("BRAID_PROXY_BENCH_BYTES", 20_000_000);
    let runs = env("BRAID_PROXY_BENCH_RUNS", 3) as usize;
    let policy = "aggregate";
    let bed = bed(size, policy, size);
    let (tb, dir) = (&bed.tb, &bed.dir);
    std::thread::sleep(Duration::from_millis(500));

    let (mut raw_proxy, mut raw_connect, mut https_proxy, mut https_tcp) =
        (vec![], vec![], vec![], vec![]);
    let (mut ttfb_proxy, mut ttfb_tcp, mut stalls, mut stall_goodput) =
        (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        // Interleaved, so that a slow moment of the machine hits every kind alike.
        let (n, d) = socks_raw(tb);
        assert_eq!(n, size);
        raw_proxy.push(mbit(n, d));
        let (n, d) = connect_raw(tb, policy);
        assert_eq!(n, size);
        raw_connect.push(mbit(n, d));
        let dl = download(tb, dir, Via::Socks5Hostname, false, size, false);
        assert_eq!(dl.sha, bed.want_sha);
        https_proxy.push(mbit(dl.bytes, dl.elapsed));
        let dl = fetch(tb, curl_direct(tb, dir, "/big"), size, false);
        assert_eq!(dl.sha, bed.want_sha);
        https_tcp.push(mbit(dl.bytes, dl.elapsed));
        for _ in 0..3 {
            ttfb_proxy.push(
                ttfb(curl(tb, dir, Via::Socks5Hostname, false, "/small/0")).as_secs_f64() * 1e3,
            );
            ttfb_tcp.push(ttfb(curl_direct(tb, dir, "/small/0")).as_secs_f64() * 1e3);
        }
        let dl = download(tb, dir, Via::Socks5Hostname, false, size, true);
        assert_eq!(dl.sha, bed.want_sha);
        stalls.push(dl.stall_after_kill.as_secs_f64() * 1e3);
        stall_goodput.push(mbit(dl.bytes, dl.elapsed));
        tb.link_up(Link::Wifi).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        eprintln!("run {} of {runs} done", run + 1);
    }
    let ratio: Vec<f64> = raw_proxy
        .iter()
        .zip(&raw_connect)
        .map(|(p, c)| p / c)
        .collect();
    let mb = size as f64 / 1e6;
    println!("| measure ({runs} runs; min / median / max) | value |");
    println!("|---|---|");
    println!(
        "| {mb:.0} MB plain TCP download, hand-written SOCKS5 client through `braid proxy` ({policy}), Mbit/s | {} |",
        spread(raw_proxy, 1)
    );
    println!(
        "| the same download with `braid connect` ({policy}), Mbit/s | {} |",
        spread(raw_connect, 1)
    );
    println!("| proxy / connect, per run | {} |", spread(ratio, 2));
    println!(
        "| {mb:.0} MB HTTPS download, curl `--socks5-hostname` through `braid proxy` ({policy}), Mbit/s | {} |",
        spread(https_proxy, 1)
    );
    println!(
        "| the same, curl straight over TCP on WiFi alone, Mbit/s | {} |",
        spread(https_tcp, 1)
    );
    println!(
        "| time to first byte of a small HTTPS request through `braid proxy`, ms | {} |",
        spread(ttfb_proxy, 1)
    );
    println!(
        "| the same straight over TCP on WiFi, ms | {} |",
        spread(ttfb_tcp, 1)
    );
    println!(
        "| longest gap in curl's received bytes after WiFi went down (through the proxy), ms | {} |",
        spread(stalls, 0)
    );
    println!(
        "| goodput of those downloads, Mbit/s | {} |",
        spread(stall_goodput, 1)
    );
}
