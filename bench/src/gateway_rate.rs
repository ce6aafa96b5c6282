//! `braid-bench gateway-rate --braid PATH [--workers 1,2] [--seconds N] [--concurrency N]
//! [--repeats N] [--markdown]`: new connections per second through a `braid gateway`
//! subprocess with each worker count, measured in one run. Each connection is a whole
//! exchange: handshake, Convert, a TCP connect to a loopback echo server, one byte each way,
//! close. The clients run in this process (one current-thread runtime on one OS thread,
//! so they use at most one core); with 2 cores, the gateway competes with them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::loopback::{echo_server, min_median_max, sink_server, start_gateway};

/// The gateway's connection limit here: far above what one run opens.
const MAX_CONNECTIONS: usize = 100_000;

struct Args {
    braid: String,
    workers: Vec<usize>,
    seconds: u64,
    concurrency: usize,
    repeats: usize,
    markdown: bool,
    /// Concurrent bulk uploads for the bytes-per-CPU-second measurement (0: skip it).
    bulk: usize,
    bulk_bytes: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        braid: String::new(),
        workers: vec![1, 2],
        seconds: 5,
        concurrency: 32,
        repeats: 3,
        markdown: false,
        bulk: 0,
        bulk_bytes: 4_000_000,
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
            "--bulk" => a.bulk = num("--bulk", val("--bulk")?)? as usize,
            "--bulk-bytes" => a.bulk_bytes = num("--bulk-bytes", val("--bulk-bytes")?)?,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if a.braid.is_empty() {
        return Err("--braid PATH (the braid binary, built with --release) is required".into());
    }
    Ok(a)
}

/// CPU time a process has used so far (user + system), from /proc.
fn cpu_of(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or("bad /proc stat".into())
    };
    // utime and stime are fields 14 and 15 of the line: from field 3 on after the name.
    let t = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(t * 1_000_000 / hz))
}

/// `n` concurrent uploads of `bytes` each through the gateway: bytes relayed per second of
/// the gateway's CPU time.
async fn bulk(
    gw: SocketAddr,
    pid: u32,
    sink: SocketAddr,
    n: usize,
    bytes: u64,
) -> Result<f64, String> {
    let client = braid::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let target = sink.to_string();
    let cpu0 = cpu_of(pid)?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, target) = (client.clone(), target.clone());
        set.spawn(async move {
            let mut conn = client
                .connect_via(gw, &target)
                .await
                .map_err(|e| e.to_string())?;
            let chunk = vec![0xa5u8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                conn.write_all(&chunk[..k])
                    .await
                    .map_err(|e| e.to_string())?;
                left -= k as u64;
            }
            conn.shutdown().await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 16];
            while conn.read(&mut b).await.map_err(|e| e.to_string())? > 0 {}
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let cpu = cpu_of(pid)?.saturating_sub(cpu0).as_secs_f64().max(1e-3);
    Ok((n as u64 * bytes) as f64 / cpu)
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

pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let echo = rt.block_on(echo_server()).map_err(|e| e.to_string())?;
    let sink = rt.block_on(sink_server()).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut bulk_rows = Vec::new();
    for &w in &a.workers {
        let mut rates = Vec::new();
        for rep in 0..a.repeats {
            let (gw, addr) = start_gateway(&a.braid, w, &[echo], MAX_CONNECTIONS)?;
            // Bound once it answers a connection; the first measurement waits for that.
            std::thread::sleep(Duration::from_millis(300));
            let (rate, failed) = rt.block_on(measure(addr, echo, a.seconds, a.concurrency))?;
            drop(gw);
            eprintln!(
                "workers {w}, run {}: {rate:.0} connections/s ({failed} failed)",
                rep + 1
            );
            rates.push(rate);
        }
        rows.push((w, min_median_max(&mut rates)));
        if a.bulk == 0 {
            continue;
        }
        let mut per_cpu = Vec::new();
        for rep in 0..a.repeats {
            let (gw, addr) = start_gateway(&a.braid, w, &[echo, sink], MAX_CONNECTIONS)?;
            std::thread::sleep(Duration::from_millis(300));
            let pid = gw.0.id();
            // Waits until the gateway answers.
            rt.block_on(measure(addr, echo, 1, 1))?;
            let v = rt.block_on(bulk(addr, pid, sink, a.bulk, a.bulk_bytes))?;
            drop(gw);
            eprintln!(
                "workers {w}, bulk run {}: {:.0} MB per gateway CPU-second",
                rep + 1,
                v / 1e6
            );
            per_cpu.push(v);
        }
        bulk_rows.push((w, min_median_max(&mut per_cpu)));
    }
    if !bulk_rows.is_empty() {
        let base = bulk_rows[0].1.1;
        if a.markdown {
            println!(
                "| workers | MB relayed per gateway CPU-second, min | median | max | median vs {} |",
                bulk_rows[0].0
            );
            println!("|---|---|---|---|---|");
        }
        for (w, (lo, med, hi)) in &bulk_rows {
            let line = format!(
                "| {w} | {:.0} | {:.0} | {:.0} | {:.2}× |",
                lo / 1e6,
                med / 1e6,
                hi / 1e6,
                med / base
            );
            if a.markdown {
                println!("{line}");
            } else {
                eprintln!("bulk {line}");
            }
        }
        if a.markdown {
            println!();
        }
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
