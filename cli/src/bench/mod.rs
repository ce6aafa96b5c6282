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

mod client;
mod protocol;
mod results;
mod server;

use client::{client, loopback};
use server::server;

use crate::error::Result;
use crate::{CarrierArg, ClientOpts, PolicyArg, parse_secs};
use braid::InterfaceKind;
use braid_proto::sim::link::LinkConfig;
use clap::{Args, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

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

/// A mutex's contents even after a panic elsewhere (the data are counters and samples).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
