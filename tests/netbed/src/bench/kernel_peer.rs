//! The Linux kernel's MPTCP at both ends: a listener in the server namespace, a client
//! socket made in the phone namespace, bulk transfers bounded in time and an echo workload,
//! with the receiver's bytes sampled every 10 ms (as `braid bench` does).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clock;
use super::plan::{Flow, Workload};
use crate::kernel::{MptcpListener, mptcp_connect};
use crate::transfer::{Sampler, Samples};
use crate::{Link, Side, Testbed};

const CHUNK: usize = 64 * 1024;
/// How long a receiver waits past the sender's end before it gives up.
const GRACE: Duration = Duration::from_secs(15);

/// A kernel MPTCP listener in the server namespace (all addresses).
pub struct KernelServer {
    listener: MptcpListener,
    port: u16,
}

impl KernelServer {
    pub fn bind(tb: &Testbed, port: u16) -> io::Result<KernelServer> {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        let listener = tb.run_in(Side::Server, move || MptcpListener::bind(addr))?;
        listener.as_std().set_nonblocking(true)?;
        Ok(KernelServer { listener, port })
    }

    /// The address the phone connects to (the server's WiFi address).
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::from((Link::Wifi.addr(Side::Server), self.port))
    }

    fn accept(&self, limit: Duration) -> io::Result<TcpStream> {
        let until = Instant::now() + limit;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return Ok(s);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a kernel run produced.
#[derive(Debug, Default)]
pub struct KernelRun {
    /// CLOCK_MONOTONIC when the receiver started counting.
    pub origin_ns: u64,
    pub rx: Samples,
    /// Echo: (sent at, latency) in seconds since the origin.
    pub echo: Vec<(f64, Option<f64>)>,
}

/// Runs `w` between a kernel client in the phone namespace and `server`.
pub fn run(tb: &Testbed, server: &KernelServer, w: Workload) -> io::Result<KernelRun> {
    let remote = server.remote();
    let client = tb.run_in(Side::Phone, move || mptcp_connect(None, remote))?;
    let accepted = server.accept(Duration::from_secs(10))?;
    let _ = client.set_nodelay(true);
    let _ = accepted.set_nodelay(true);
    match w {
        Workload::Bulk { flow, seconds } => {
            let secs = Duration::from_secs_f64(seconds);
            let (sender, receiver) = match flow {
                Flow::Down => (accepted, client),
                Flow::Up => (client, accepted),
            };
            let tx = std::thread::spawn(move || send_for(sender, secs));
            let run = receive(receiver, secs + GRACE)?;
            tx.join()
                .map_err(|_| io::Error::other("sender panicked"))??;
            Ok(run)
        }
        Workload::Echo {
            seconds,
            bytes,
            rate,
        } => {
            let echo = std::thread::spawn(move || echo_back(accepted));
            let run = echo_client(client, seconds, bytes as usize, rate)?;
            echo.join()
                .map_err(|_| io::Error::other("echo panicked"))??;
            Ok(run)
        }
    }
}

/// Writes for `secs`, shuts the write side, then reads what the peer sends until it closes.
fn send_for(mut s: TcpStream, secs: Duration) -> io::Result<u64> {
    s.set_write_timeout(Some(Duration::from_millis(100)))?;
    let buf = vec![0x5au8; CHUNK];
    let until = Instant::now() + secs;
    let mut sent = 0u64;
    while Instant::now() < until {
        match s.write(&buf) {
            Ok(n) => sent += n as u64,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    s.shutdown(Shutdown::Write)?;
    drain(&mut s, GRACE);
    Ok(sent)
}

/// Reads (with 10 ms samples) until the peer closes or `limit` passes, then closes.
fn receive(mut s: TcpStream, limit: Duration) -> io::Result<KernelRun> {
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let start = Instant::now();
    let origin_ns = clock::now_ns();
    let mut sampler = Sampler::new(start);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                sampler.record(Instant::now(), total);
            }
            Err(e) if is_timeout(&e) => sampler.record(Instant::now(), total),
            Err(e) => return Err(e),
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    Ok(KernelRun {
        origin_ns,
        rx: sampler.finish(Instant::now()),
        echo: Vec::new(),
    })
}

fn drain(s: &mut TcpStream, limit: Duration) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let until = Instant::now() + limit;
    let mut buf = vec![0u8; CHUNK];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Echoes everything until the peer closes.
fn echo_back(mut s: TcpStream) -> io::Result<u64> {
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            k => {
                s.write_all(&buf[..k])?;
                n += k as u64;
            }
        }
    }
    s.shutdown(Shutdown::Write)?;
    Ok(n)
}

/// Sends a `size`-byte request `rate` times a second for `seconds`; reads the echoes.
fn echo_client(s: TcpStream, seconds: f64, size: usize, rate: f64) -> io::Result<KernelRun> {
    let start = Instant::now();
    let origin_ns = clock::now_ns();
    let sent: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut w = s.try_clone()?;
    let log = sent.clone();
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let buf = vec![0x3cu8; size];
        let every = Duration::from_secs_f64(1.0 / rate);
        let mut next = start;
        while next.duration_since(start).as_secs_f64() < seconds {
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            lock(&log).push(start.elapsed().as_secs_f64());
            w.write_all(&buf)?;
            next += every;
        }
        w.shutdown(Shutdown::Write)
    });
    let mut r = s;
    r.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut sampler = Sampler::new(start);
    let mut latency = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let limit = Duration::from_secs_f64(seconds) + GRACE;
    while start.elapsed() < limit {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let before = got / size as u64;
                got += n as u64;
                let now = start.elapsed().as_secs_f64();
                sampler.record(Instant::now(), got);
                let sent = lock(&sent);
                for i in before..got / size as u64 {
                    if let Some(t) = sent.get(i as usize) {
                        latency.push(now - t);
                    }
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    writer
        .join()
        .map_err(|_| io::Error::other("writer panicked"))??;
    let sent = lock(&sent).clone();
    let echo = sent
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, latency.get(i).copied()))
        .collect();
    Ok(KernelRun {
        origin_ns,
        rx: sampler.finish(Instant::now()),
        echo,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
