//! `braid bench`: goodput and stalls, as a server, a client, or both on loopback.
//!
//! Protocol on one connection:
//! - client to server: a 16-byte request (`BRB1`, direction, duration in ms), then for an
//!   upload the data until the duration is over, then DATA_FIN;
//! - server to client: frames `[type u8][length u32 BE][payload]`: type 0 is download data,
//!   type 1 the server's report (the upload as it received it: bytes and 10 ms samples of
//!   its receive counter), then DATA_FIN.
//!
//! Stalls are measured at the receiver, from its byte counter sampled every 10 ms.

use crate::connect::{build_client, names_of, resolve};
use crate::error::{Failure, Result};
use crate::json::Json;
use crate::progress::{bytes, mbps};
use crate::report::{self, PathNames};
use crate::{CarrierArg, ClientOpts, PolicyArg, parse_secs};
use braid::emulator::PathEmulator;
use braid::{Client, Connection, Interface, InterfaceKind, Monitor, PathId, Server, ServerConfig};
use braid_proto::sim::link::LinkConfig;
use braid_testkit::stall::{Stall, Trace};
use braid_testkit::transfer::Sampler;
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8; 4] = b"BRB1";
const FRAME_DATA: u8 = 0;
const FRAME_REPORT: u8 = 1;
const CHUNK: usize = 64 * 1024;
const SAMPLE: Duration = Duration::from_millis(10);

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub role: Role,
}

impl BenchArgs {
    pub fn is_server(&self) -> bool {
        matches!(self.role, Role::Server(_))
    }
}

#[derive(Subcommand, Debug)]
pub enum Role {
    /// A Braid server that sinks and sources data for bench clients.
    Server(ServerArgs),
    /// Measure against a `braid bench server`.
    Client(ClientArgs),
    /// Server and client in this process on loopback, optionally through emulated paths.
    Loopback(LoopbackArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Up,
    Down,
    Both,
    /// Request/response: the client sends `--request-bytes` `--rate` times a second, the
    /// server echoes each one; the client reports every request's latency.
    Echo,
}

impl Direction {
    fn code(self) -> u8 {
        match self {
            Direction::Up => 1,
            Direction::Down => 2,
            Direction::Both => 3,
            Direction::Echo => 4,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Direction::Up,
            2 => Direction::Down,
            3 => Direction::Both,
            4 => Direction::Echo,
            _ => return None,
        })
    }
    fn up(self) -> bool {
        matches!(self, Direction::Up | Direction::Both)
    }
    fn down(self) -> bool {
        matches!(self, Direction::Down | Direction::Both)
    }
    fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
            Direction::Echo => "echo",
        }
    }
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// UDP address to listen on.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Serve one test, then exit.
    #[arg(long)]
    pub once: bool,
    /// How segments travel: `raw` listens on TCP (genuine MPTCP; Braid clients with
    /// `--carrier raw` and the kernel's MPTCP can connect).
    #[arg(long, value_enum, default_value_t = CarrierArg::Udp)]
    pub carrier: CarrierArg,
    /// Ask clients for DSS checksums (RFC 8684); either side asking turns them on.
    #[arg(long)]
    pub dss_checksum: bool,
}

#[derive(Args, Debug, Clone)]
pub struct Measure {
    /// How long to send.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub seconds: Duration,
    /// Which way data flows.
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    pub direction: Direction,
    /// Print the results as JSON (with the 10 ms receive samples) on stdout.
    #[arg(long)]
    pub json: bool,
    /// With `--direction echo`: bytes per request (and per reply).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub request_bytes: u32,
    /// With `--direction echo`: requests per second.
    #[arg(long, value_name = "N", default_value_t = 20.0, value_parser = parse_rate)]
    pub rate: f64,
}

fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 100_000.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a rate between 0 and 100000 per second"
        )),
    }
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The `braid bench server` to measure against.
    #[arg(value_name = "REMOTE:PORT")]
    pub remote: String,
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(flatten)]
    pub measure: Measure,
}

#[derive(Args, Debug)]
pub struct LoopbackArgs {
    /// Service type.
    #[arg(long, value_enum, default_value_t = PolicyArg::Aggregate)]
    pub policy: PolicyArg,
    /// Emulated paths, in order of preference: wifi (40 Mbit/s, 10 ms), cell (20 Mbit/s,
    /// 30 ms), wired (100 Mbit/s, 2 ms). Without it, one unlimited loopback path.
    #[arg(long, value_name = "PATH,...", value_delimiter = ',')]
    pub emulate: Vec<EmulatedPath>,
    /// Take the first emulated path down at this time.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "emulate")]
    pub fail_at: Option<Duration>,
    /// With --fail-at: do not tell the client (the connection has to notice by itself).
    #[arg(long, requires = "fail_at")]
    pub fail_silent: bool,
    /// DSS checksums on (RFC 8684), to measure what they cost.
    #[arg(long)]
    pub dss_checksum: bool,
    #[command(flatten)]
    pub measure: Measure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmulatedPath {
    Wifi,
    #[value(alias = "cellular")]
    Cell,
    Wired,
}

impl EmulatedPath {
    fn link(self) -> LinkConfig {
        let (rate, ms) = match self {
            EmulatedPath::Wifi => (40_000_000, 10),
            EmulatedPath::Cell => (20_000_000, 30),
            EmulatedPath::Wired => (100_000_000, 2),
        };
        LinkConfig::new(rate, Duration::from_millis(ms))
            .with_queue_bdp(1.0)
            .with_overhead(28)
    }
    fn kind(self) -> InterfaceKind {
        match self {
            EmulatedPath::Wifi => InterfaceKind::Wifi,
            EmulatedPath::Cell => InterfaceKind::Cellular,
            EmulatedPath::Wired => InterfaceKind::Wired,
        }
    }
}

pub async fn run(a: BenchArgs) -> Result<i32> {
    match a.role {
        Role::Server(s) => server(s).await,
        Role::Client(c) => client(c).await,
        Role::Loopback(l) => loopback(l).await,
    }
}

// ---- server ----

async fn server(a: ServerArgs) -> Result<i32> {
    let mut cfg = ServerConfig::default();
    cfg.connection.checksum = a.dss_checksum;
    let srv = match a.carrier {
        CarrierArg::Udp => Server::bind(a.listen, cfg)?,
        CarrierArg::Raw => Server::bind_raw(a.listen, cfg, braid::raw::RawConfig::default())?,
    };
    let proto = match a.carrier {
        CarrierArg::Udp => "udp",
        CarrierArg::Raw => "tcp (raw carrier, MPTCP)",
    };
    log::info!("bench server on {proto} {}", srv.local_addr());
    loop {
        let Some(conn) = srv.accept().await else {
            return Err(Failure::new("the server's endpoint stopped"));
        };
        let peer = conn.remote_addr();
        let task = tokio::spawn(async move {
            match serve(conn).await {
                Ok(s) => log::info!("bench {peer}: {s}"),
                Err(e) => log::info!("bench {peer}: failed: {}", crate::error::io_msg(&e)),
            }
        });
        if a.once {
            let _ = task.await;
            return Ok(0);
        }
    }
}

/// Per subflow: what it sent, retransmitted and how often it timed out, and the bytes
/// reinjected on other subflows — what an operator looks at when a test was slow.
fn path_summary(s: &braid_proto::ConnectionStats) -> String {
    let mut out = format!("reinjected {}", bytes(s.bytes_reinjected));
    for p in s.paths.iter().chain(&s.closed_paths) {
        let kind = p.kind.map(|k| k.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "; {kind} {}: sent {}, retransmitted {}, {} timeouts, srtt {} ms",
            p.state,
            bytes(p.bytes_sent),
            bytes(p.bytes_retransmitted),
            p.rto_events,
            p.srtt.as_millis()
        ));
    }
    out
}

/// One test, server side. Returns a line for the log.
async fn serve(conn: Connection) -> std::io::Result<String> {
    let events = conn.events();
    let (mut r, mut w) = conn.into_split();
    let mut req = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut req))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a bench request");
    if &req[..4] != MAGIC {
        return Err(bad());
    }
    let dir = Direction::from_code(req[4]).ok_or_else(bad)?;
    let ms = u32::from_be_bytes([req[8], req[9], req[10], req[11]]);
    let duration = Duration::from_millis(ms.clamp(1, 3_600_000) as u64);
    let start = Instant::now();
    if dir == Direction::Echo {
        let echoed = tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        wait_closed(events, Duration::from_secs(5)).await;
        return Ok(format!(
            "echo: {} in {:.1}s; {}",
            bytes(echoed),
            start.elapsed().as_secs_f64(),
            path_summary(&w.stats())
        ));
    }
    let rx = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::spawn(vec![rx.clone()], SAMPLE, start);
    let sender = async {
        if dir.down() {
            send_frames(&mut w, start + duration).await
        } else {
            Ok(0)
        }
    };
    let receiver = sink(&mut r, &rx);
    let (sent, received) = tokio::join!(sender, receiver);
    let (sent, received) = (sent?, received?);
    let samples = sampler.finish().await;
    let s = samples.into_iter().next().unwrap_or_default();
    let report = encode_report(received, &s);
    w.write_all(&[FRAME_REPORT]).await?;
    w.write_all(&(report.len() as u32).to_be_bytes()).await?;
    w.write_all(&report).await?;
    w.shutdown().await?;
    // The report must reach the client before this process may exit (`--once`).
    wait_closed(events, Duration::from_secs(5)).await;
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "{}: received {} ({:.1} Mbit/s), sent {} in {:.1}s; {}",
        dir.as_str(),
        bytes(received),
        mbps(received, duration.as_secs_f64()),
        bytes(sent),
        secs,
        path_summary(&w.stats())
    ))
}

async fn send_frames<W: AsyncWrite + Unpin>(w: &mut W, until: Instant) -> std::io::Result<u64> {
    let mut frame = vec![0x5au8; 5 + CHUNK];
    frame[0] = FRAME_DATA;
    frame[1..5].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    let mut sent = 0;
    while Instant::now() < until {
        w.write_all(&frame).await?;
        sent += CHUNK as u64;
    }
    Ok(sent)
}

async fn sink<R: AsyncRead + Unpin>(r: &mut R, count: &AtomicU64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(got);
        }
        got += n as u64;
        count.store(got, Ordering::Relaxed);
    }
}

/// Report: bytes u64, samples u32, then (microseconds u64, bytes u64) each; big endian.
fn encode_report(received: u64, s: &Trace) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + 16 * s.points.len());
    v.extend_from_slice(&received.to_be_bytes());
    v.extend_from_slice(&(s.points.len() as u32).to_be_bytes());
    for (t, b) in &s.points {
        v.extend_from_slice(&(t.as_micros() as u64).to_be_bytes());
        v.extend_from_slice(&b.to_be_bytes());
    }
    v
}

fn decode_report(v: &[u8]) -> Option<(u64, Trace)> {
    let received = u64::from_be_bytes(v.get(0..8)?.try_into().ok()?);
    let n = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) as usize;
    if v.len() != 12 + 16 * n {
        return None;
    }
    let mut s = Trace::default();
    for i in 0..n {
        let at = 12 + 16 * i;
        let t = u64::from_be_bytes(v[at..at + 8].try_into().ok()?);
        let b = u64::from_be_bytes(v[at + 8..at + 16].try_into().ok()?);
        s.points.push((Duration::from_micros(t), b));
    }
    Some((received, s))
}

// ---- client ----

/// One direction's result.
struct DirResult {
    bytes: u64,
    samples: Trace,
}

impl DirResult {
    /// From the first to the last byte.
    fn active(&self) -> (Duration, Duration) {
        let first = self
            .samples
            .points
            .iter()
            .find(|(_, b)| *b > 0)
            .map(|p| p.0);
        let last = self
            .samples
            .points
            .iter()
            .find(|(_, b)| *b >= self.bytes)
            .map(|p| p.0);
        (first.unwrap_or_default(), last.unwrap_or_default())
    }

    fn secs(&self) -> f64 {
        let (_, last) = self.active();
        last.as_secs_f64()
    }

    fn goodput(&self) -> f64 {
        mbps(self.bytes, self.secs())
    }

    /// Mbit/s in each second up to the last byte; a last partial second is divided by its
    /// actual length (and left out when shorter than 50 ms).
    fn per_second(&self) -> Vec<f64> {
        let end = self.secs();
        let mut v: Vec<f64> = self
            .samples
            .buckets(Duration::from_secs(1))
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (*i as f64) < end)
            .map(|(i, b)| {
                let len = (end - i as f64).min(1.0);
                if len < 0.05 { f64::NAN } else { mbps(b, len) }
            })
            .collect();
        if v.last().is_some_and(|x| x.is_nan()) {
            v.pop();
        }
        v
    }

    fn stall(&self) -> Stall {
        self.samples.longest_stall()
    }

    fn json(&self) -> Json {
        let st = self.stall();
        Json::obj()
            .with("bytes", self.bytes)
            .with("seconds", self.secs())
            .with("goodput_mbps", self.goodput())
            .with("per_second_mbps", self.per_second())
            .with("longest_stall_ms", st.length.as_secs_f64() * 1e3)
            .with("longest_stall_at_s", st.at.as_secs_f64())
            .with(
                "samples",
                Json::obj()
                    .with("interval_ms", SAMPLE.as_millis() as u64)
                    .with(
                        "t_ms",
                        self.samples
                            .points
                            .iter()
                            .map(|(t, _)| t.as_secs_f64() * 1e3)
                            .collect::<Vec<_>>(),
                    )
                    .with(
                        "bytes",
                        self.samples
                            .points
                            .iter()
                            .map(|(_, b)| *b)
                            .collect::<Vec<_>>(),
                    ),
            )
    }
}

/// Per path: the largest counters seen (a path's stats vanish when it is removed).
#[derive(Clone, Debug, Default)]
struct PathTotals {
    kind: String,
    sent: u64,
    received: u64,
}

struct Outcome {
    up: Option<DirResult>,
    down: Option<DirResult>,
    paths: BTreeMap<PathId, PathTotals>,
    events: Vec<(Duration, String)>,
    timeline: PathTimeline,
    echo: Option<EchoResult>,
    /// CLOCK_MONOTONIC at the start of the measurement (shared by every process on the
    /// machine, so a harness can place its own actions on the samples' time axis).
    start_monotonic_ns: u64,
}

/// Bytes per interface kind over time (live subflows plus the final counters of closed
/// ones), and how many subflows of that kind were alive, every 100 ms.
#[derive(Clone, Debug, Default)]
struct PathTimeline {
    t: Vec<Duration>,
    /// kind -> (sent, received, live subflows) per sample.
    by_kind: BTreeMap<String, Vec<(u64, u64, u64)>>,
}

impl PathTimeline {
    fn record(&mut self, t: Duration, s: &braid::ConnectionStats) {
        let mut now: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for (p, live) in s
            .paths
            .iter()
            .map(|p| (p, 1))
            .chain(s.closed_paths.iter().map(|p| (p, 0)))
        {
            let kind = p
                .kind
                .map(|k| k.to_string())
                .unwrap_or_else(|| "other".into());
            let e = now.entry(kind).or_default();
            e.0 += p.bytes_sent;
            e.1 += p.bytes_received;
            e.2 += live;
        }
        let n = self.t.len();
        for (k, v) in now {
            let col = self.by_kind.entry(k).or_default();
            col.resize(n, (0, 0, 0));
            col.push(v);
        }
        self.t.push(t);
        for col in self.by_kind.values_mut() {
            if col.len() < n + 1 {
                let last = col.last().map_or((0, 0, 0), |l| (l.0, l.1, 0));
                col.resize(n + 1, last);
            }
        }
    }

    fn json(&self) -> Json {
        let mut kinds = Json::obj();
        for (k, col) in &self.by_kind {
            kinds = kinds.with(
                k,
                Json::obj()
                    .with("sent", col.iter().map(|c| c.0).collect::<Vec<_>>())
                    .with("received", col.iter().map(|c| c.1).collect::<Vec<_>>())
                    .with("live", col.iter().map(|c| c.2).collect::<Vec<_>>()),
            );
        }
        Json::obj()
            .with(
                "t_ms",
                self.t
                    .iter()
                    .map(|t| t.as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
            .with("by_kind", kinds)
    }
}

/// Request/response latencies (`--direction echo`).
#[derive(Clone, Debug, Default)]
struct EchoResult {
    request_bytes: u32,
    /// When each request was written (since the start).
    sent_at: Vec<Duration>,
    /// Its reply's latency; `None` when no reply came.
    latency: Vec<Option<Duration>>,
}

impl EchoResult {
    /// The `q` quantile (0..=1) of the latencies, nearest rank; a missing reply counts as
    /// longer than any.
    fn quantile(&self, q: f64) -> Option<Duration> {
        let mut v: Vec<Duration> = self
            .latency
            .iter()
            .map(|l| l.unwrap_or(Duration::MAX))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    }

    fn json(&self) -> Json {
        let ms = |d: Option<Duration>| match d {
            Some(d) if d != Duration::MAX => Json::from(d.as_secs_f64() * 1e3),
            _ => Json::Null,
        };
        Json::obj()
            .with("request_bytes", self.request_bytes)
            .with("requests", self.sent_at.len())
            .with("replies", self.latency.iter().flatten().count())
            .with("p50_ms", ms(self.quantile(0.5)))
            .with("p90_ms", ms(self.quantile(0.9)))
            .with("p99_ms", ms(self.quantile(0.99)))
            .with("max_ms", ms(self.quantile(1.0)))
            .with(
                "sent_at_ms",
                self.sent_at
                    .iter()
                    .map(|t| t.as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
            .with(
                "latency_ms",
                self.latency.iter().map(|l| ms(*l)).collect::<Vec<_>>(),
            )
    }
}

/// Writes one request of `size` bytes every `every` until `until`; the send times go to
/// `sent` (since `start`).
async fn echo_requests<W: AsyncWrite + Unpin>(
    w: &mut W,
    size: usize,
    every: Duration,
    start: Instant,
    until: Instant,
    sent: &std::sync::Mutex<Vec<Duration>>,
) -> std::io::Result<u64> {
    let mut buf = vec![0x3cu8; size];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return Ok(n * size as u64);
        }
        let seq = n.to_be_bytes();
        let k = seq.len().min(size);
        buf[..k].copy_from_slice(&seq[8 - k..]);
        lock(sent).push(start.elapsed());
        w.write_all(&buf).await?;
        n += 1;
    }
}

/// Reads echoed replies to the end; the latency of reply i is its arrival minus
/// `sent[i]`.
async fn echo_replies<R: AsyncRead + Unpin>(
    r: &mut R,
    size: usize,
    start: Instant,
    sent: &std::sync::Mutex<Vec<Duration>>,
    latency: &std::sync::Mutex<Vec<Duration>>,
    count: &AtomicU64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(got);
        }
        let before = got / size as u64;
        got += n as u64;
        count.store(got, Ordering::Relaxed);
        let now = start.elapsed();
        let sent = lock(sent);
        let mut lat = lock(latency);
        for i in before..got / size as u64 {
            if let Some(t) = sent.get(i as usize) {
                lat.push(now.saturating_sub(*t));
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs one test over `conn`.
async fn measure(
    conn: Connection,
    m: &Measure,
    names: &PathNames,
    fail: Option<(Duration, Box<dyn FnOnce() + Send>)>,
) -> Result<Outcome> {
    let monitor = conn.monitor();
    let events = conn.events();
    let closed = conn.events();
    let (mut r, mut w) = conn.into_split();
    let mut req = [0u8; 16];
    req[..4].copy_from_slice(MAGIC);
    req[4] = m.direction.code();
    let ms = m.seconds.as_millis().min(u32::MAX as u128) as u32;
    req[8..12].copy_from_slice(&ms.to_be_bytes());
    w.write_all(&req).await?;
    let start = Instant::now();
    let start_monotonic_ns = monotonic_ns();
    let mut timeline = PathTimeline::default();
    // Events and the failure are stamped when they happen.
    let log: Arc<std::sync::Mutex<Vec<(Duration, String)>>> = Arc::default();
    let ev_task = {
        let log = log.clone();
        let names = names.clone();
        let mut events = events;
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let line = report::event(&e, &names);
                lock(&log).push((start.elapsed(), line));
            }
        })
    };
    if let Some((at, f)) = fail {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            f();
            lock(&log).push((start.elapsed(), "first path fails".into()));
        });
    }
    let dir = m.direction;
    let seconds = m.seconds;
    let echo_size = m.request_bytes as usize;
    let echo_every = Duration::from_secs_f64(1.0 / m.rate);
    let echo_sent: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let echo_latency: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let sent_log = echo_sent.clone();
    let writer = tokio::spawn(async move {
        let buf = vec![0xa5u8; CHUNK];
        let mut sent = 0u64;
        if dir == Direction::Echo {
            let until = start + seconds;
            sent = echo_requests(&mut w, echo_size, echo_every, start, until, &sent_log).await?;
        } else if dir.up() {
            let until = Instant::now() + seconds;
            while Instant::now() < until {
                w.write_all(&buf).await?;
                sent += CHUNK as u64;
            }
        }
        w.shutdown().await?;
        Ok::<_, std::io::Error>((sent, w))
    });
    let rx = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::spawn(vec![rx.clone()], SAMPLE, start);
    let mut paths: BTreeMap<PathId, PathTotals> = BTreeMap::new();
    let reader = async {
        if dir == Direction::Echo {
            echo_replies(&mut r, echo_size, start, &echo_sent, &echo_latency, &rx)
                .await
                .map(|n| (n, (0, Trace::default())))
        } else {
            read_frames(&mut r, &rx).await
        }
    };
    tokio::pin!(reader);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let limit = start + seconds + Duration::from_secs(30).max(seconds);
    let report = loop {
        tokio::select! {
            res = &mut reader => break res,
            _ = tick.tick() => {
                collect_paths(&monitor, &mut paths);
                if let Some(s) = monitor.stats() {
                    timeline.record(start.elapsed(), &s);
                }
                if Instant::now() > limit {
                    return Err(Failure::new(format!(
                        "the test did not finish within {:.0} s",
                        (limit - start).as_secs_f64()
                    )));
                }
            }
        }
    };
    collect_paths(&monitor, &mut paths);
    // Our DATA_ACK of the server's DATA_FIN must go out before this process exits.
    wait_closed(closed, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    ev_task.abort();
    let mut evs = std::mem::take(&mut *lock(&log));
    evs.sort_by_key(|(t, _)| *t);
    let samples = sampler.finish().await;
    let (down_bytes, report) = report.map_err(|e| {
        Failure::new(format!(
            "reading from the bench server: {}",
            crate::error::io_msg(&e)
        ))
    })?;
    let (up_sent, _w) = writer
        .await
        .map_err(|e| Failure::new(format!("the sender failed: {e}")))?
        .map_err(|e| Failure::new(format!("sending: {}", crate::error::io_msg(&e))))?;
    let (up_received, up_samples) = report;
    if dir.up() && up_received != up_sent {
        log::warn!("the server received {up_received} B of the {up_sent} B sent");
    }
    Ok(Outcome {
        up: dir.up().then_some(DirResult {
            bytes: up_received,
            samples: up_samples,
        }),
        down: dir.down().then(|| DirResult {
            bytes: down_bytes,
            samples: samples.into_iter().next().unwrap_or_default(),
        }),
        paths,
        events: evs,
        timeline,
        echo: (dir == Direction::Echo).then(|| {
            let sent_at = lock(&echo_sent).clone();
            let lat = lock(&echo_latency);
            EchoResult {
                request_bytes: echo_size as u32,
                latency: (0..sent_at.len()).map(|i| lat.get(i).copied()).collect(),
                sent_at,
            }
        }),
        start_monotonic_ns,
    })
}

/// Waits (at most `limit`) for the connection to close: both DATA_FINs acknowledged.
async fn wait_closed(mut events: braid::Events, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        while let Some(e) = events.recv().await {
            if matches!(e, braid::ConnectionEvent::Closed(_)) {
                return;
            }
        }
    })
    .await;
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn collect_paths(m: &Monitor, paths: &mut BTreeMap<PathId, PathTotals>) {
    let Some(s) = m.stats() else { return };
    for p in s.paths {
        let Some(id) = p.path else { continue };
        let e = paths.entry(id).or_default();
        e.kind = p.kind.map(|k| k.to_string()).unwrap_or_default();
        e.sent = e.sent.max(p.bytes_sent);
        e.received = e.received.max(p.bytes_received);
    }
}

/// Reads download frames to the end. Returns (download bytes, the server's report).
async fn read_frames<R: AsyncRead + Unpin>(
    r: &mut R,
    count: &AtomicU64,
) -> std::io::Result<(u64, (u64, Trace))> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let mut report = None;
    loop {
        let mut h = [0u8; 5];
        match r.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        match h[0] {
            FRAME_DATA => {
                let mut left = len;
                while left > 0 {
                    let n = r.read(&mut buf[..left.min(CHUNK)]).await?;
                    if n == 0 {
                        return Err(bad("the server closed in the middle of a frame"));
                    }
                    left -= n;
                    got += n as u64;
                    count.store(got, Ordering::Relaxed);
                }
            }
            FRAME_REPORT if len <= 64 << 20 => {
                let mut v = vec![0u8; len];
                r.read_exact(&mut v).await?;
                report = Some(decode_report(&v).ok_or_else(|| bad("bad report from the server"))?);
            }
            _ => return Err(bad("bad frame from the server")),
        }
    }
    let report =
        report.ok_or_else(|| bad("the server sent no report (is it a braid bench server?)"))?;
    Ok((got, report))
}

fn print_human(title: &str, o: &Outcome) {
    println!("{title}");
    let up = o.up.as_ref().map(|d| d.per_second()).unwrap_or_default();
    let down = o.down.as_ref().map(|d| d.per_second()).unwrap_or_default();
    println!("  second    up Mbit/s  down Mbit/s");
    for i in 0..up.len().max(down.len()) {
        let f = |v: &Vec<f64>| {
            v.get(i)
                .map(|x| format!("{x:11.1}"))
                .unwrap_or_else(|| format!("{:>11}", "-"))
        };
        println!("  {:>6}  {} {}", i + 1, f(&up), f(&down));
    }
    for (what, d) in [("upload", &o.up), ("download", &o.down)] {
        if let Some(d) = d {
            let st = d.stall();
            println!(
                "  {what:<9} {:>9} in {:.2} s = {:.1} Mbit/s, longest stall {:.0} ms at t={:.2}s",
                bytes(d.bytes),
                d.secs(),
                d.goodput(),
                st.length.as_secs_f64() * 1e3,
                st.at.as_secs_f64()
            );
        }
    }
    let total: u64 = o.paths.values().map(|p| p.sent + p.received).sum();
    if total > 0 {
        let shares: Vec<String> = o
            .paths
            .iter()
            .map(|(id, p)| {
                format!(
                    "#{id} {} {:.1}% ({} sent, {} received)",
                    p.kind,
                    100.0 * (p.sent + p.received) as f64 / total as f64,
                    bytes(p.sent),
                    bytes(p.received)
                )
            })
            .collect();
        println!("  paths: {}", shares.join(", "));
    }
    if let Some(e) = &o.echo {
        let ms = |d: Option<Duration>| match d {
            Some(d) if d != Duration::MAX => format!("{:.1} ms", d.as_secs_f64() * 1e3),
            _ => "-".into(),
        };
        println!(
            "  echo: {} requests of {} B, {} replies; latency p50 {}, p90 {}, p99 {}, max {}",
            e.sent_at.len(),
            e.request_bytes,
            e.latency.iter().flatten().count(),
            ms(e.quantile(0.5)),
            ms(e.quantile(0.9)),
            ms(e.quantile(0.99)),
            ms(e.quantile(1.0))
        );
    }
    for (t, e) in &o.events {
        println!("  t={:>6.3}s  {e}", t.as_secs_f64());
    }
}

fn to_json(remote: &str, policy: &str, m: &Measure, o: &Outcome, extra: Json) -> Json {
    let total: u64 = o.paths.values().map(|p| p.sent + p.received).sum();
    let paths: Vec<Json> = o
        .paths
        .iter()
        .map(|(id, p)| {
            Json::obj()
                .with("id", *id)
                .with("kind", p.kind.as_str())
                .with("bytes_sent", p.sent)
                .with("bytes_received", p.received)
                .with(
                    "share",
                    if total > 0 {
                        (p.sent + p.received) as f64 / total as f64
                    } else {
                        0.0
                    },
                )
        })
        .collect();
    let goodput =
        o.up.as_ref().map_or(0.0, |d| d.goodput()) + o.down.as_ref().map_or(0.0, |d| d.goodput());
    Json::obj()
        .with("remote", remote)
        .with("policy", policy)
        .with("direction", m.direction.as_str())
        .with("seconds", m.seconds.as_secs_f64())
        .with("goodput_mbps", goodput)
        .with("up", o.up.as_ref().map(|d| d.json()))
        .with("down", o.down.as_ref().map(|d| d.json()))
        .with("paths", paths)
        .with(
            "events",
            o.events
                .iter()
                .map(|(t, e)| {
                    Json::obj()
                        .with("t_s", t.as_secs_f64())
                        .with("event", e.as_str())
                })
                .collect::<Vec<_>>(),
        )
        .with("echo", o.echo.as_ref().map(|e| e.json()))
        .with("start_monotonic_ns", o.start_monotonic_ns)
        .with("path_timeline", o.timeline.json())
        .with("setup", extra)
}

async fn client(a: ClientArgs) -> Result<i32> {
    let remote = resolve(&a.remote).await?;
    let (client, ifaces) = build_client(&a.client)?;
    let names = names_of(&ifaces);
    let conn = client.connect(remote).await?;
    // The OS's "interface lost" / "available" events reach the connection, as in `connect`.
    crate::connect::watch_interfaces(&client, remote.is_ipv4(), |m| log::info!("{m}"));
    let o = measure(conn, &a.measure, &names, None).await?;
    let policy = braid::ServiceType::from(a.client.policy).to_string();
    if a.measure.json {
        let setup = Json::obj().with(
            "interfaces",
            ifaces
                .iter()
                .map(|(s, _)| format!("{}:{}", s.name, s.kind))
                .collect::<Vec<_>>(),
        );
        println!(
            "{}",
            to_json(&remote.to_string(), &policy, &a.measure, &o, setup).to_string_pretty()
        );
    } else {
        print_human(
            &format!(
                "braid bench: {remote}, policy {policy}, direction {}, {:.1} s",
                a.measure.direction.as_str(),
                a.measure.seconds.as_secs_f64()
            ),
            &o,
        );
    }
    Ok(0)
}

async fn loopback(a: LoopbackArgs) -> Result<i32> {
    let lo: IpAddr = [127, 0, 0, 1].into();
    let mut cfg = ServerConfig::default();
    cfg.connection.checksum = a.dss_checksum;
    let srv = Server::bind((lo, 0).into(), cfg)?;
    let addr = srv.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = srv.accept().await {
            tokio::spawn(async move {
                if let Err(e) = serve(conn).await {
                    log::warn!("bench server: {}", crate::error::io_msg(&e));
                }
            });
        }
    });
    let mut emus = Vec::new();
    for p in &a.emulate {
        let e = PathEmulator::start((lo, 0).into(), addr, p.link(), p.link()).await?;
        emus.push((*p, e));
    }
    let mut b = Client::builder()
        .service(a.policy.into())
        .dss_checksum(a.dss_checksum);
    for (p, e) in &emus {
        b = b.interface(
            Interface::new(p.kind())
                .with_local_addr(lo)
                .with_via(e.local_addr()),
        );
    }
    let client = b.build()?;
    let mut names = PathNames::default();
    for (id, i) in client.interfaces() {
        names.0.insert(id, i.label());
    }
    for (id, i) in client.interfaces() {
        if i.via.is_some() {
            names.0.insert(id, i.kind.to_string());
        }
    }
    let conn = client.connect(addr).await?;
    let emus = Arc::new(emus);
    let fail: Option<(Duration, Box<dyn FnOnce() + Send>)> = a.fail_at.map(|at| {
        let emus = emus.clone();
        let client = client.clone();
        let silent = a.fail_silent;
        let f: Box<dyn FnOnce() + Send> = Box::new(move || {
            if let Some((_, e)) = emus.first() {
                e.set_down(true);
            }
            if !silent {
                if let Some((id, _)) = client.interfaces().first() {
                    client.interface_lost(*id);
                }
            }
        });
        (at, f)
    });
    let o = measure(conn, &a.measure, &names, fail).await?;
    let policy = braid::ServiceType::from(a.policy).to_string();
    let emulated: Vec<String> = a
        .emulate
        .iter()
        .map(|p| {
            let l = p.link();
            format!(
                "{}:{}Mbit/s:{}ms",
                p.kind(),
                l.rate_bps / 1_000_000,
                l.delay.as_millis()
            )
        })
        .collect();
    if a.measure.json {
        let mut wire = Vec::new();
        for (p, e) in emus.iter() {
            let (u, d) = e.stats();
            wire.push(
                Json::obj()
                    .with("path", p.kind().to_string())
                    .with("up_bytes", u.delivered.bytes)
                    .with("down_bytes", d.delivered.bytes)
                    .with("dropped_packets", u.dropped().packets + d.dropped().packets),
            );
        }
        let setup = Json::obj()
            .with("emulate", emulated)
            .with("fail_at_s", a.fail_at.map(|d| d.as_secs_f64()))
            .with("fail_silent", a.fail_silent)
            .with("wire", wire);
        println!(
            "{}",
            to_json(&addr.to_string(), &policy, &a.measure, &o, setup).to_string_pretty()
        );
    } else {
        print_human(
            &format!(
                "braid bench loopback: {}, policy {policy}, direction {}, {:.1} s",
                if emulated.is_empty() {
                    "one unlimited path".to_string()
                } else {
                    emulated.join(" + ")
                },
                a.measure.direction.as_str(),
                a.measure.seconds.as_secs_f64()
            ),
            &o,
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip_and_rejects_garbage() {
        let s = Trace {
            points: vec![
                (Duration::from_millis(10), 5),
                (Duration::from_millis(20), 9),
            ],
        };
        let v = encode_report(9, &s);
        let (n, d) = decode_report(&v).unwrap();
        assert_eq!(n, 9);
        assert_eq!(d.points, s.points);
        assert!(decode_report(&v[..v.len() - 1]).is_none());
        assert!(decode_report(&[]).is_none());
    }

    #[test]
    fn echo_quantiles_count_missing_replies_as_longest() {
        let ms = Duration::from_millis;
        let e = EchoResult {
            request_bytes: 100,
            sent_at: vec![ms(0), ms(50), ms(100), ms(150)],
            latency: vec![Some(ms(30)), Some(ms(10)), Some(ms(20)), None],
        };
        assert_eq!(e.quantile(0.5), Some(ms(20)));
        assert_eq!(e.quantile(0.25), Some(ms(10)));
        assert_eq!(e.quantile(1.0), Some(Duration::MAX));
        let j = e.json().to_string_pretty();
        assert!(j.contains("\"replies\": 3"), "{j}");
        assert_eq!(EchoResult::default().quantile(0.5), None);
    }

    #[tokio::test]
    async fn echo_requests_and_replies_over_a_pipe() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let (mut sr, mut sw) = tokio::io::split(b);
        let echo = tokio::spawn(async move {
            tokio::io::copy(&mut sr, &mut sw).await.unwrap();
            sw.shutdown().await.unwrap();
        });
        let start = Instant::now();
        let sent = std::sync::Mutex::new(Vec::new());
        let lat = std::sync::Mutex::new(Vec::new());
        let count = AtomicU64::new(0);
        let (mut r, mut w) = tokio::io::split(&mut a);
        let writer = async {
            let n = echo_requests(
                &mut w,
                100,
                Duration::from_millis(5),
                start,
                start + Duration::from_millis(100),
                &sent,
            )
            .await
            .unwrap();
            w.shutdown().await.unwrap();
            n
        };
        let reader = echo_replies(&mut r, 100, start, &sent, &lat, &count);
        let (n, got) = tokio::join!(writer, reader);
        echo.await.unwrap();
        assert_eq!(got.unwrap(), n);
        assert!(n >= 500, "{n}");
        assert_eq!(lock(&lat).len(), lock(&sent).len());
    }

    #[tokio::test]
    async fn frames_and_report_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move {
            let n = send_frames(&mut a, Instant::now() + Duration::from_millis(50))
                .await
                .unwrap();
            let rep = encode_report(123, &Trace::default());
            a.write_all(&[FRAME_REPORT]).await.unwrap();
            a.write_all(&(rep.len() as u32).to_be_bytes())
                .await
                .unwrap();
            a.write_all(&rep).await.unwrap();
            a.shutdown().await.unwrap();
            n
        });
        let c = AtomicU64::new(0);
        let (got, (up, _)) = read_frames(&mut b, &c).await.unwrap();
        assert_eq!(got, t.await.unwrap());
        assert!(got > 0);
        assert_eq!(up, 123);
    }
}
