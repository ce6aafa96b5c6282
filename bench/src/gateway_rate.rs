//! `braid-bench gateway-rate --braid PATH [--workers 1,2] [--seconds N] [--concurrency N]
//! [--clients N] [--repeats N] [--markdown]`: new connections per second through a `braid
//! gateway` subprocess with each worker count, measured in one run. Each connection is a
//! whole exchange: handshake, Convert, a TCP connect to a loopback echo server, one byte
//! each way, close. The clients run in `--clients` load-generator processes (`braid-bench
//! rate-clients`, one thread each, every connection from a new UDP port so SO_REUSEPORT
//! spreads them); the echo server runs in this one. The gateway's and the load generator's
//! CPU time per connection are reported beside the rate: on a 2-core machine they share the
//! cores, so a load generator costlier than the gateway caps what workers can show.

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
    /// Load-generator processes (each one thread, `concurrency` connections at a time).
    clients: usize,
    /// CPU (in cores) the gateway may use per worker, enforced with a cgroup quota.
    cpu_per_worker: Option<f64>,
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
        clients: 2,
        cpu_per_worker: None,
        repeats: 5,
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
            "--cpu-per-worker" => {
                let v = val("--cpu-per-worker")?;
                let f: f64 = v
                    .parse()
                    .map_err(|_| format!("--cpu-per-worker: not a number: '{v}'"))?;
                if !(0.01..=64.0).contains(&f) {
                    return Err(format!("--cpu-per-worker: {f} cores is out of range"));
                }
                a.cpu_per_worker = Some(f);
            }
            "--clients" => a.clients = num("--clients", val("--clients")?)?.max(1) as usize,
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

/// A CPU cgroup holding the gateway process, removed on drop: its quota gives the gateway a
/// fixed share of the machine per worker, so that the load generator on the same cores is
/// neither starved by it nor starving it (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`).
struct CpuCap {
    dir: std::path::PathBuf,
}

impl CpuCap {
    /// Moves `pid` into a new cgroup limited to `cores` CPUs.
    fn new(pid: u32, cores: f64) -> Result<CpuCap, String> {
        // A short period: a capped process stalls at most a few ms at a time, not 100.
        let period = 10_000u64;
        let quota = ((cores * period as f64) as u64).max(1000);
        let name = format!("braid-bench-{}-{pid}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
        let (dir, file, value) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1.join(&name), "cpu.cfs_quota_us", quota.to_string())
        } else {
            (
                std::path::Path::new("/sys/fs/cgroup").join(&name),
                "cpu.max",
                format!("{quota} {period}"),
            )
        };
        std::fs::create_dir(&dir).map_err(|e| {
            format!(
                "--cpu-per-worker needs root and a cgroup cpu controller: {}: {e}",
                dir.display()
            )
        })?;
        let cap = CpuCap { dir };
        let write = |f: &str, v: &str| {
            std::fs::write(cap.dir.join(f), v)
                .map_err(|e| format!("{}/{f}: {e}", cap.dir.display()))
        };
        if file == "cpu.cfs_quota_us" {
            write("cpu.cfs_period_us", &period.to_string())?;
        }
        write(file, &value)?;
        write("cgroup.procs", &pid.to_string())?;
        Ok(cap)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // Empty once the gateway process is gone (it is killed before this is dropped).
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One measurement window.
struct Window {
    /// Connections completed per second (all load-generator processes together).
    rate: f64,
    failed: u64,
    /// CPU time per completed connection: the gateway's, and the load generator's (its
    /// processes and this one, which runs the echo server).
    gateway_cpu: Duration,
    client_cpu: Duration,
}

/// This process's CPU time (user + system, every thread).
fn own_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct passed to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Connections through the gateway at `gw`, `concurrency` at a time, for `secs`; returns
/// (completed, failed, elapsed).
async fn hammer(
    gw: SocketAddr,
    echo: SocketAddr,
    secs: u64,
    concurrency: usize,
) -> Result<(u64, u64, Duration), String> {
    let client = braid::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .linger(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let target = echo.to_string();
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
    Ok((
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed(),
    ))
}

/// Sockets that keep the kernel's UDP encapsulation static keys on for as long as they live.
///
/// Setting UDP_GRO on a socket (quinn-udp does, on every socket it sets up) enables a global
/// static key, and closing the last such socket disables it; each switch rewrites kernel
/// code on every CPU (`text_poke` with IPIs). A client opening one socket per connection
/// flips it on nearly every connection: in a profile of this load generator, 40 % of its
/// CPU time went there. One socket of each family with UDP_GRO held open keeps the keys on,
/// so the others only count.
struct GroKeyPin(#[allow(dead_code)] Vec<std::net::UdpSocket>);

impl GroKeyPin {
    fn new() -> GroKeyPin {
        use std::os::fd::AsRawFd;
        /// `UDP_GRO` from linux/udp.h.
        const UDP_GRO: libc::c_int = 104;
        let mut held = Vec::new();
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(sock) = std::net::UdpSocket::bind(addr) else {
                continue;
            };
            let on: libc::c_int = 1;
            // SAFETY: a valid descriptor, and a pointer to an int of the size given.
            let r = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_UDP,
                    UDP_GRO,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                held.push(sock);
            }
        }
        GroKeyPin(held)
    }
}

/// `braid-bench rate-clients GATEWAY ECHO SECONDS CONCURRENCY` (run by `gateway-rate`):
/// one load-generator process; prints `done N failed M secs S cpu C` (its own CPU seconds).
pub fn helper(args: &[String]) -> Result<(), String> {
    let [gw, echo, secs, concurrency] = args else {
        return Err("rate-clients GATEWAY ECHO SECONDS CONCURRENCY".into());
    };
    let parse = |v: &str| v.parse::<SocketAddr>().map_err(|e| e.to_string());
    let (gw, echo) = (parse(gw)?, parse(echo)?);
    let secs: u64 = secs.parse().map_err(|_| "SECONDS: not a number")?;
    let concurrency: usize = concurrency
        .parse()
        .map_err(|_| "CONCURRENCY: not a number")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pin = GroKeyPin::new();
    let cpu0 = own_cpu();
    let (done, failed, elapsed) = rt.block_on(hammer(gw, echo, secs, concurrency))?;
    drop(pin);
    println!(
        "done {done} failed {failed} secs {} cpu {}",
        elapsed.as_secs_f64(),
        own_cpu().saturating_sub(cpu0).as_secs_f64()
    );
    Ok(())
}

/// Waits until the gateway relays a connection (it is up), for up to 10 s.
async fn wait_up(gw: SocketAddr, echo: SocketAddr) -> Result<(), String> {
    let client = braid::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let target = echo.to_string();
    let until = Instant::now() + Duration::from_secs(10);
    while !one(&client, gw, &target).await {
        if Instant::now() > until {
            return Err(format!("the gateway at {gw} never answered"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Connections completed per second over `secs` against the gateway process `pid`, from
/// `clients` load-generator processes with `concurrency` connections each at a time. Each
/// connection comes from its own UDP socket (a new source port), so SO_REUSEPORT's hash of
/// the 4-tuple spreads them over the workers.
fn measure(
    rt: &tokio::runtime::Runtime,
    gw: SocketAddr,
    pid: u32,
    echo: SocketAddr,
    secs: u64,
    clients: usize,
    concurrency: usize,
) -> Result<Window, String> {
    use std::io::Read;
    rt.block_on(wait_up(gw, echo))?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let (gw_cpu0, my_cpu0) = (cpu_of(pid)?, own_cpu());
    let mut kids = Vec::new();
    for _ in 0..clients {
        let child = std::process::Command::new(&me)
            .args(["rate-clients", &gw.to_string(), &echo.to_string()])
            .args([secs.to_string(), concurrency.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a load generator: {e}"))?;
        kids.push(child);
    }
    // The echo server runs on this runtime while the load generators work.
    let (mut rate, mut failed, mut client_cpu) = (0.0, 0u64, Duration::ZERO);
    let mut done = 0u64;
    for mut k in kids {
        let mut out = String::new();
        let mut stdout = k.stdout.take().ok_or("no load generator output")?;
        rt.block_on(async {
            tokio::task::spawn_blocking(move || stdout.read_to_string(&mut out).map(|_| out)).await
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
        .and_then(|o| {
            let _ = k.wait();
            let f: Vec<&str> = o.split_whitespace().collect();
            let field = |name: &str| -> Result<f64, String> {
                f.iter()
                    .position(|w| *w == name)
                    .and_then(|i| f.get(i + 1))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("load generator failed: {o:?}"))
            };
            let n = field("done")?;
            done += n as u64;
            rate += n / field("secs")?.max(1e-3);
            failed += field("failed")? as u64;
            client_cpu += Duration::from_secs_f64(field("cpu")?);
            Ok(())
        })?;
    }
    client_cpu += own_cpu().saturating_sub(my_cpu0);
    let per = |d: Duration| d / u32::try_from(done.max(1)).unwrap_or(u32::MAX);
    Ok(Window {
        rate,
        failed,
        gateway_cpu: per(cpu_of(pid)?.saturating_sub(gw_cpu0)),
        client_cpu: per(client_cpu),
    })
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
        let (mut rates, mut gw_cpu, mut gen_cpu) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..a.repeats {
            let (gw, addr) = start_gateway(&a.braid, w, &[echo], MAX_CONNECTIONS)?;
            // Bound once it answers a connection; the first measurement waits for that.
            std::thread::sleep(Duration::from_millis(300));
            let pid = gw.0.id();
            let cap = match a.cpu_per_worker {
                Some(c) => Some(CpuCap::new(pid, c * w as f64)?),
                None => None,
            };
            let m = measure(&rt, addr, pid, echo, a.seconds, a.clients, a.concurrency)?;
            drop(gw);
            drop(cap);
            eprintln!(
                "workers {w}, run {}: {:.0} connections/s ({} failed); CPU per connection: gateway {:?}, load generator {:?}",
                rep + 1,
                m.rate,
                m.failed,
                m.gateway_cpu,
                m.client_cpu,
            );
            rates.push(m.rate);
            gw_cpu.push(m.gateway_cpu.as_secs_f64() * 1e6);
            gen_cpu.push(m.client_cpu.as_secs_f64() * 1e6);
        }
        rows.push((
            w,
            min_median_max(&mut rates),
            min_median_max(&mut gw_cpu).1,
            min_median_max(&mut gen_cpu).1,
        ));
        if a.bulk == 0 {
            continue;
        }
        let mut per_cpu = Vec::new();
        for rep in 0..a.repeats {
            let (gw, addr) = start_gateway(&a.braid, w, &[echo, sink], MAX_CONNECTIONS)?;
            std::thread::sleep(Duration::from_millis(300));
            let pid = gw.0.id();
            rt.block_on(wait_up(addr, echo))?;
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
            "| workers | connections/s min | median | max | median vs {} worker(s) | gateway CPU per connection | load generator CPU per connection |",
            rows[0].0
        );
        println!("|---|---|---|---|---|---|---|");
    }
    for (w, (lo, med, hi), gw, gen_) in &rows {
        if a.markdown {
            println!(
                "| {w} | {lo:.0} | {med:.0} | {hi:.0} | {:.2}× | {gw:.0} µs | {gen_:.0} µs |",
                med / base
            );
        } else {
            eprintln!(
                "workers {w}: min {lo:.0}, median {med:.0}, max {hi:.0} connections/s ({:.2}×); CPU per connection (medians): gateway {gw:.0} µs, load generator {gen_:.0} µs",
                med / base
            );
        }
    }
    Ok(())
}
