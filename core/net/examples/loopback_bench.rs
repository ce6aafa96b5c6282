//! One connection over loopback, client and server in this process: prints goodput and the
//! CPU time the process used per gigabyte. `cargo run --release -p braid --example
//! loopback_bench [MEGABYTES]`.

use braid::{Client, Server, ServerConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mb: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let len = mb * 1_000_000;
    // BRAID_NO_PACING=1: compare with the engine's pacer off.
    let mut cfg = braid::ConnectionConfig::default();
    if std::env::var("BRAID_NO_PACING").is_ok() {
        cfg.subflow.pacing = false;
    }
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            connection: cfg.clone(),
            ..ServerConfig::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    let sink = tokio::spawn(async move {
        let mut conn = server.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        (got, server)
    });
    let client = Client::builder().connection_config(cfg).build().unwrap();
    let mut conn = client.connect(addr).await.unwrap();
    let buf = vec![0x42u8; 256 * 1024];
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut sent = 0u64;
    while sent < len {
        let n = ((len - sent) as usize).min(buf.len());
        conn.write_all(&buf[..n]).await.unwrap();
        sent += n as u64;
    }
    conn.shutdown().await.unwrap();
    let (got, server) = sink.await.unwrap();
    let (wall, cpu) = (t0.elapsed(), cpu_time() - c0);
    let secs = wall.as_secs_f64();
    println!(
        "{got} B in {secs:.2} s: {:.1} MB/s, CPU {:.2} s ({:.0}% of one core), {:.0} MB per CPU second",
        got as f64 / 1e6 / secs,
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / secs,
        got as f64 / 1e6 / cpu.as_secs_f64()
    );
    println!("client driver: {:?}", client.driver_stats());
    println!("server driver: {:?}", server.driver_stats());
}
