//! CPU cost per byte on loopback (docs/ARCHITECTURE.md, "Targets": at least 1.2 × quinn,
//! measured in the same run), with the kernel's TCP (a tokio `TcpStream` pair, measured the
//! same way: sender + receiver process time) as the reference for issue 20's 1e9 B/CPU-s goal.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Braid,
    Quinn,
    /// Kernel TCP over loopback: the floor a userspace stack is compared with.
    KernelTcp,
}

const WRITE: usize = 128 * 1024;

/// Issue 20's target for Braid, sender + receiver process time.
const GOAL_BYTES_PER_CPU_S: f64 = 1e9;

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct passed to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

/// Runs each stack `repeats` times as a child process and prints the comparison.
pub fn orchestrate(args: &[String]) -> Result<(), String> {
    let bytes = arg(args, "--bytes", 2_000_000_000)?;
    let repeats = arg(args, "--repeats", 3)?;
    let markdown = args.iter().any(|a| a == "--markdown");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut results: Vec<(Stack, Vec<(f64, f64)>)> = vec![
        (Stack::Braid, vec![]),
        (Stack::Quinn, vec![]),
        (Stack::KernelTcp, vec![]),
    ];
    for _ in 0..repeats {
        // Interleaved, so slow phases of a noisy machine hit both stacks alike.
        for (stack, runs) in results.iter_mut() {
            let sub = match stack {
                Stack::Braid => "run-braid",
                Stack::Quinn => "run-quinn",
                Stack::KernelTcp => "run-tcp",
            };
            let out = Command::new(&exe)
                .args([sub, "--bytes", &bytes.to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "{sub} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let mut it = line.split_whitespace().map(|v| v.parse::<f64>());
            match (it.next(), it.next()) {
                (Some(Ok(goodput)), Some(Ok(per_cpu))) => runs.push((goodput, per_cpu)),
                _ => return Err(format!("{sub}: unexpected output '{line}'")),
            }
        }
    }
    let stats = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        (x[0], x[x.len() / 2], x[x.len() - 1])
    };
    let braid = stats(&results[0].1, |r| r.1);
    let quinn = stats(&results[1].1, |r| r.1);
    let braid_gp = stats(&results[0].1, |r| r.0);
    let quinn_gp = stats(&results[1].1, |r| r.0);
    let tcp = stats(&results[2].1, |r| r.1);
    let tcp_gp = stats(&results[2].1, |r| r.0);
    let ratio = braid.1 / quinn.1;
    if markdown {
        println!(
            "| on loopback, 1 connection, {} MB, {repeats} runs each | goodput min / median / max | bytes per CPU-second, sender + receiver (min / median / max) |",
            bytes / 1_000_000
        );
        println!("|---|---|---|");
    }
    for (name, gp, cpu) in [
        ("Braid (UDP carrier, public API)", braid_gp, braid),
        (
            "quinn 0.11 (rustls/ring, 1 uni stream, 128 KiB writes)",
            quinn_gp,
            quinn,
        ),
        (
            "kernel TCP (tokio TcpStream pair, 128 KiB writes)",
            tcp_gp,
            tcp,
        ),
    ] {
        if markdown {
            println!(
                "| {name} | {:.2} / {:.2} / {:.2} Gbit/s | {:.2e} / **{:.2e}** / {:.2e} |",
                gp.0 * 8.0 / 1e9,
                gp.1 * 8.0 / 1e9,
                gp.2 * 8.0 / 1e9,
                cpu.0,
                cpu.1,
                cpu.2
            );
        } else {
            println!(
                "{name}: {:.0} / {:.0} / {:.0} MB per CPU second",
                cpu.0 / 1e6,
                cpu.1 / 1e6,
                cpu.2 / 1e6
            );
        }
    }
    println!("\nBraid / quinn, bytes per CPU second (medians, same run): **{ratio:.2}×**");
    println!(
        "\nBraid / kernel TCP, bytes per CPU second (medians, same run): **{:.2}×**; issue 20's \
         goal of 1e9 B/CPU-s is {:.2}× Braid's median.",
        braid.1 / tcp.1,
        GOAL_BYTES_PER_CPU_S / braid.1
    );
    Ok(())
}

/// One measured transfer; prints `goodput_bytes_per_s bytes_per_cpu_s`.
pub fn run_one(stack: Stack, args: &[String]) -> Result<(), String> {
    let bytes = arg(args, "--bytes", 2_000_000_000)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (wall, cpu, got) = rt.block_on(async {
        match stack {
            Stack::Braid => braid_transfer(bytes).await,
            Stack::Quinn => quinn_transfer(bytes).await,
            Stack::KernelTcp => tcp_transfer(bytes).await,
        }
    })?;
    if got != bytes {
        return Err(format!("moved {got} of {bytes} bytes"));
    }
    println!(
        "{} {}",
        got as f64 / wall.as_secs_f64(),
        got as f64 / cpu.as_secs_f64()
    );
    Ok(())
}

async fn braid_transfer(len: u64) -> Result<(Duration, Duration, u64), String> {
    use braid::{Client, Server, ServerConfig};
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr();
    let sink = tokio::spawn(async move {
        let mut conn = server.accept().await.ok_or("no connection")?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok::<u64, String>(got)
    });
    let client = Client::builder().build().map_err(|e| e.to_string())?;
    let mut conn = client.connect(addr).await.map_err(|e| e.to_string())?;
    let buf = vec![0x42u8; WRITE];
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut sent = 0u64;
    while sent < len {
        let n = ((len - sent) as usize).min(buf.len());
        conn.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        sent += n as u64;
    }
    conn.shutdown().await.map_err(|e| e.to_string())?;
    let got = sink.await.map_err(|e| e.to_string())??;
    Ok((t0.elapsed(), cpu_time() - c0, got))
}

async fn tcp_transfer(len: u64) -> Result<(Duration, Duration, u64), String> {
    let e = |x: std::io::Error| x.to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(e)?;
    let addr = listener.local_addr().map_err(e)?;
    let sink = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.map_err(|x| x.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = conn.read(&mut buf).await.map_err(|x| x.to_string())?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok::<u64, String>(got)
    });
    let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(e)?;
    let buf = vec![0x42u8; WRITE];
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut sent = 0u64;
    while sent < len {
        let n = ((len - sent) as usize).min(buf.len());
        conn.write_all(&buf[..n]).await.map_err(e)?;
        sent += n as u64;
    }
    conn.shutdown().await.map_err(e)?;
    let got = sink.await.map_err(|x| x.to_string())??;
    Ok((t0.elapsed(), cpu_time() - c0, got))
}

const CA: &[u8] = include_bytes!("../../core/net/tests/fixtures/ca.der");
const LEAF: &[u8] = include_bytes!("../../core/net/tests/fixtures/leaf.der");
const LEAF_KEY: &[u8] = include_bytes!("../../core/net/tests/fixtures/leaf.key.der");

async fn quinn_transfer(len: u64) -> Result<(Duration, Duration, u64), String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let cert = CertificateDer::from(LEAF.to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY.to_vec()));
    let server_cfg = quinn::ServerConfig::with_single_cert(vec![cert], key).map_err(|x| e(&x))?;
    let server =
        quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).map_err(|x| e(&x))?;
    let addr = server.local_addr().map_err(|x| e(&x))?;
    let sink = tokio::spawn(async move {
        let incoming = server.accept().await.ok_or("no connection")?;
        let conn = incoming.await.map_err(|x| x.to_string())?;
        let mut stream = conn.accept_uni().await.map_err(|x| x.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while let Some(n) = stream.read(&mut buf).await.map_err(|x| x.to_string())? {
            got += n as u64;
        }
        Ok::<u64, String>(got)
    });
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(CA.to_vec()))
        .map_err(|x| e(&x))?;
    let client_cfg =
        quinn::ClientConfig::with_root_certificates(Arc::new(roots)).map_err(|x| e(&x))?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|x| e(&x))?;
    client.set_default_client_config(client_cfg);
    let conn = client
        .connect(addr, "localhost")
        .map_err(|x| e(&x))?
        .await
        .map_err(|x| e(&x))?;
    let mut stream = conn.open_uni().await.map_err(|x| e(&x))?;
    let buf = vec![0x42u8; WRITE];
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut sent = 0u64;
    while sent < len {
        let n = ((len - sent) as usize).min(buf.len());
        stream.write_all(&buf[..n]).await.map_err(|x| e(&x))?;
        sent += n as u64;
    }
    stream.finish().map_err(|x| e(&x))?;
    let got = sink.await.map_err(|x| e(&x))??;
    let _ = stream.stopped().await;
    Ok((t0.elapsed(), cpu_time() - c0, got))
}
