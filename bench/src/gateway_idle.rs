//! `braid-bench gateway-idle --braid PATH [--connections 1000,10000] [--paths 2]
//! [--bulk-bytes N] [--markdown]`: the memory an idle relayed connection costs a `braid
//! gateway` (its resident set before and after opening them, per connection), and a bulk
//! transfer's goodput through it beside those idle connections against alone, in one run.
//!
//! The idle clients run in helper processes (`braid-bench idle-clients`, 2,500 connections
//! each, so no process needs more descriptors than a default limit allows); the bulk client
//! runs in this one. Each idle connection has `--paths` subflows (loopback addresses
//! 127.0.0.1, 127.0.0.2, …, aggregate policy), relays to a loopback echo server, sends one
//! byte, reads it back and then stays open and silent (keepalives only).

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};

use crate::loopback::{echo_server, min_median_max, sink_server, start_gateway};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    braid: String,
    connections: Vec<usize>,
    paths: u8,
    bulk_bytes: usize,
    markdown: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        braid: String::new(),
        connections: vec![1000, 10_000],
        paths: 2,
        bulk_bytes: 64 << 20,
        markdown: false,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut val = |what: &str| it.next().cloned().ok_or(format!("{what} needs a value"));
        let num = |what: &str, v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{what}: not a number: '{v}'"))
        };
        match k.as_str() {
            "--braid" => a.braid = val("--braid")?,
            "--connections" => {
                a.connections = val("--connections")?
                    .split(',')
                    .map(|n| num("--connections", n).map(|n| n.max(1) as usize))
                    .collect::<Result<_, _>>()?
            }
            "--paths" => a.paths = num("--paths", &val("--paths")?)?.clamp(1, 8) as u8,
            "--bulk-bytes" => a.bulk_bytes = num("--bulk-bytes", &val("--bulk-bytes")?)? as usize,
            "--markdown" => a.markdown = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if a.braid.is_empty() {
        return Err("--braid PATH (the braid binary, built with --release) is required".into());
    }
    Ok(a)
}

/// Resident set of a process, bytes (VmRSS).
fn rss(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS")?;
    Ok(kb * 1024)
}

/// Enough descriptors for tens of thousands of sockets here and in the gateway (inherited).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed to them; a
    // failure leaves the limit as it was.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn client(paths: u8) -> Result<braid::Client, String> {
    let mut b = braid::Client::builder()
        .service(braid::ServiceType::Aggregate)
        .connect_timeout(Duration::from_secs(10))
        // Small client buffers: this process holds every client.
        .send_buffer(64 * 1024)
        .receive_buffer(64 * 1024)
        .socket_buffer(64 * 1024);
    for i in 0..paths {
        let kind = if i == 0 {
            braid::InterfaceKind::Wifi
        } else {
            braid::InterfaceKind::Cellular
        };
        let ip = IpAddr::from([127, 0, 0, 1 + i]);
        b = b.interface(braid::Interface::new(kind).with_local_addr(ip));
    }
    b.build().map_err(|e| e.to_string())
}

/// Opens `n` idle relayed connections (64 at a time).
async fn open_idle(
    c: &braid::Client,
    gw: SocketAddr,
    echo: SocketAddr,
    n: usize,
) -> Result<Vec<braid::Connection>, String> {
    let target = echo.to_string();
    let mut held = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    while held.len() < n {
        while started < n && set.len() < 64 {
            let (c, target) = (c.clone(), target.clone());
            set.spawn(async move {
                let mut conn = c
                    .connect_via(gw, &target)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut b = [0u8; 1];
                conn.write_all(b"x").await.map_err(|e| e.to_string())?;
                conn.read_exact(&mut b).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(conn)
            });
            started += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(conn))) => held.push(conn),
            Some(Ok(Err(e))) => return Err(format!("connection {}: {e}", held.len())),
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    Ok(held)
}

/// Goodput of one bulk upload through the gateway to the discard server, bytes/s.
async fn bulk(
    c: &braid::Client,
    gw: SocketAddr,
    sink: SocketAddr,
    bytes: usize,
) -> Result<f64, String> {
    let mut conn = c
        .connect_via(gw, &sink.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let chunk = vec![0x5au8; 128 * 1024];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n])
            .await
            .map_err(|e| e.to_string())?;
        left -= n;
    }
    conn.shutdown().await.map_err(|e| e.to_string())?;
    // The discard server closes once it has read everything.
    let mut b = [0u8; 16];
    while conn.read(&mut b).await.map_err(|e| e.to_string())? > 0 {}
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}

/// Idle connections one helper process holds, at most.
const PER_HELPER: usize = 2500;

/// A helper process holding idle connections until its stdin closes; killed on drop.
struct Helper {
    child: Child,
    subflows: usize,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts helpers for `n` connections in all; returns once every one has them open.
fn spawn_helpers(
    gw: SocketAddr,
    echo: SocketAddr,
    n: usize,
    paths: u8,
) -> Result<Vec<Helper>, String> {
    use std::io::BufRead;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut helpers = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_HELPER);
        left -= k;
        let mut child = Command::new(&me)
            .args(["idle-clients", &gw.to_string(), &echo.to_string()])
            .args([k.to_string(), paths.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a helper: {e}"))?;
        let out = child.stdout.take().ok_or("no helper stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let subflows = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("helper failed: {line:?}"))?;
        helpers.push(Helper { child, subflows });
    }
    Ok(helpers)
}

/// `braid-bench idle-clients GATEWAY ECHO N PATHS` (run by `gateway-idle`): opens N idle
/// connections, prints `ready SUBFLOWS`, holds them until stdin closes.
pub fn helper(args: &[String]) -> Result<(), String> {
    let [gw, echo, n, paths] = args else {
        return Err("idle-clients GATEWAY ECHO N PATHS".into());
    };
    let parse = |v: &str| v.parse::<SocketAddr>().map_err(|e| e.to_string());
    let (gw, echo) = (parse(gw)?, parse(echo)?);
    let n: usize = n.parse().map_err(|_| "N: not a number")?;
    let paths: u8 = paths.parse().map_err(|_| "PATHS: not a number")?;
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let c = client(paths)?;
        let held = open_idle(&c, gw, echo, n).await?;
        // Joins of the last ones settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let subflows: usize = held.iter().map(|c| c.stats().paths.len()).sum();
        println!("ready {subflows}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // Hold them until the parent closes stdin (or kills us).
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let _ = std::io::stdin().read(&mut [0u8; 1]);
        })
        .await;
        drop(held);
        Ok(())
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let echo = rt.block_on(echo_server()).map_err(|e| e.to_string())?;
    let sink = rt.block_on(sink_server()).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for &n in &a.connections {
        let (gw, addr) = start_gateway(&a.braid, 1, &[echo, sink], 50_000)?;
        let pid = gw.0.id();
        let row = rt.block_on(async {
            let bulk_client = client(1)?;
            // The gateway is up once one connection goes through.
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                match open_idle(&bulk_client, addr, echo, 1).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() > until => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            let mut alone = Vec::new();
            for _ in 0..3 {
                alone.push(bulk(&bulk_client, addr, sink, a.bulk_bytes).await?);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = rss(pid)?;
            let t0 = Instant::now();
            // The idle clients live in helper processes of at most PER_HELPER connections
            // each: one process's descriptor limit would not hold them all.
            let helpers = spawn_helpers(addr, echo, n, a.paths)?;
            let subflows: usize = helpers.iter().map(|h| h.subflows).sum();
            let open_secs = t0.elapsed().as_secs_f64();
            // Joins of the last ones settle, buffers drain.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = rss(pid)?;
            let mut beside = Vec::new();
            for _ in 0..3 {
                beside.push(bulk(&bulk_client, addr, sink, a.bulk_bytes).await?);
            }
            drop(helpers);
            Ok::<_, String>((
                n,
                before,
                after,
                subflows,
                open_secs,
                min_median_max(&mut alone),
                min_median_max(&mut beside),
            ))
        })?;
        drop(gw);
        let (n, before, after, subflows, open_secs, alone, beside) = row;
        let per = (after.saturating_sub(before)) as f64 / n as f64;
        eprintln!(
            "{n} idle connections ({subflows} subflows, opened in {open_secs:.1} s): gateway RSS {} -> {} KiB, {:.1} KiB per connection; bulk goodput alone {:.0}/{:.0}/{:.0} Mbit/s, beside them {:.0}/{:.0}/{:.0} Mbit/s (min/median/max)",
            before >> 10,
            after >> 10,
            per / 1024.0,
            alone.0 * 8e-6,
            alone.1 * 8e-6,
            alone.2 * 8e-6,
            beside.0 * 8e-6,
            beside.1 * 8e-6,
            beside.2 * 8e-6,
        );
        rows.push((n, subflows, before, after, per, alone, beside));
    }
    if a.markdown {
        println!(
            "| idle connections | subflows | gateway RSS before → after | per connection | bulk alone (min / median / max) | bulk beside the idle ones | ratio of medians |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (n, subflows, before, after, per, alone, beside) in rows {
            println!(
                "| {n} | {subflows} | {} → {} MiB | {:.1} KiB | {:.0} / {:.0} / {:.0} Mbit/s | {:.0} / {:.0} / {:.0} Mbit/s | {:.2}× |",
                before >> 20,
                after >> 20,
                per / 1024.0,
                alone.0 * 8e-6,
                alone.1 * 8e-6,
                alone.2 * 8e-6,
                beside.0 * 8e-6,
                beside.1 * 8e-6,
                beside.2 * 8e-6,
                beside.1 / alone.1
            );
        }
    }
    Ok(())
}
