//! `braid-bench gateway-rate --braid PATH [--workers 1,2] [--seconds N] [--concurrency N]
//! [--repeats N] [--markdown]`: new connections per second through a `braid gateway`
//! subprocess with each worker count, measured in one run. Each connection is a whole
//! exchange: handshake, Convert, a TCP connect to a loopback echo server, one byte each way,
//! close. The clients run in this process (one current-thread runtime on one OS thread,
//! so they use at most one core); with 2 cores, the gateway competes with them.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    braid: String,
    workers: Vec<usize>,
    seconds: u64,
    concurrency: usize,
    repeats: usize,
    markdown: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        braid: String::new(),
        workers: vec![1, 2],
        seconds: 5,
        concurrency: 32,
        repeats: 3,
        markdown: false,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut val = |what: &str| it.next().cloned().ok_or(format!("{what} needs a value"));
        let num = |what: &str, v: String| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{what}: not a number: '{v}'"))
        };
        match k.as_str() {
            "--braid" => a.braid = val("--braid")?,
            "--workers" => {
                a.workers = val("--workers")?
                    .split(',')
                    .map(|w| num("--workers", w.to_string()).map(|n| n.max(1) as usize))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = num("--seconds", val("--seconds")?)?.max(1),
            "--concurrency" => {
                a.concurrency = num("--concurrency", val("--concurrency")?)?.max(1) as usize
            }
            "--repeats" => a.repeats = num("--repeats", val("--repeats")?)?.max(1) as usize,
            "--markdown" => a.markdown = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if a.braid.is_empty() {
        return Err("--braid PATH (the braid binary, built with --release) is required".into());
    }
    Ok(a)
}

/// A `braid gateway` subprocess, killed on drop.
struct GatewayProc(Child);

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_gateway(
    braid: &str,
    workers: usize,
    echo: SocketAddr,
) -> Result<(GatewayProc, SocketAddr), String> {
    let port = free_udp_port()?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let child = Command::new(braid)
        .args(["--log", "warn", "gateway", "--listen", &listen.to_string()])
        .args([
            "--allow",
            &echo.to_string(),
            "--workers",
            &workers.to_string(),
        ])
        // Every connection comes from 127.0.0.1: the per-source Convert limit would
        // measure itself.
        .args(["--max-connections", "100000", "--max-half-open", "8192"])
        .args(["--max-half-open-per-source", "8192"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {braid}: {e}"))?;
    let gw = GatewayProc(child);
    // Bound once it answers a connection; the first measurement waits for that.
    std::thread::sleep(Duration::from_millis(300));
    Ok((gw, listen))
}

/// One-byte echo server on loopback.
async fn echo_server() -> std::io::Result<SocketAddr> {
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

/// One whole connection; false when any step failed.
async fn one(client: &braid::Client, gw: SocketAddr, target: &str) -> bool {
    let Ok(mut conn) = client.connect_via(gw, target).await else {
        return false;
    };
    let mut b = [0u8; 1];
    if conn.write_all(b"x").await.is_err() || conn.read_exact(&mut b).await.is_err() {
        return false;
    }
    let _ = conn.shutdown().await;
    true
}

/// Connections completed per second over `secs`, with `concurrency` loops.
async fn measure(
    gw: SocketAddr,
    echo: SocketAddr,
    secs: u64,
    concurrency: usize,
) -> Result<(f64, u64), String> {
    let client = braid::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .linger(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let target = echo.to_string();
    // Warm up (and wait for the gateway to listen).
    let until = Instant::now() + Duration::from_secs(10);
    while !one(&client, gw, &target).await {
        if Instant::now() > until {
            return Err(format!("the gateway at {gw} never answered"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, target, done, failed) =
            (client.clone(), target.clone(), done.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                if one(&client, gw, &target).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let n = done.load(Ordering::Relaxed);
    Ok((
        n as f64 / start.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    ))
}

fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let echo = rt.block_on(echo_server()).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for &w in &a.workers {
        let mut rates = Vec::new();
        for rep in 0..a.repeats {
            let (gw, addr) = start_gateway(&a.braid, w, echo)?;
            let (rate, failed) = rt.block_on(measure(addr, echo, a.seconds, a.concurrency))?;
            drop(gw);
            eprintln!(
                "workers {w}, run {}: {rate:.0} connections/s ({failed} failed)",
                rep + 1
            );
            rates.push(rate);
        }
        rows.push((w, median(&mut rates)));
    }
    let base = rows.first().map(|r| r.1.1).unwrap_or(1.0);
    if a.markdown {
        println!(
            "| workers | connections/s min | median | max | median vs {} worker(s) |",
            rows[0].0
        );
        println!("|---|---|---|---|---|");
    }
    for (w, (lo, med, hi)) in &rows {
        if a.markdown {
            println!(
                "| {w} | {lo:.0} | {med:.0} | {hi:.0} | {:.2}× |",
                med / base
            );
        } else {
            eprintln!(
                "workers {w}: min {lo:.0}, median {med:.0}, max {hi:.0} connections/s ({:.2}×)",
                med / base
            );
        }
    }
    Ok(())
}
