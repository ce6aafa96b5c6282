//! `braid`: the Braid command-line tool.
//!
//! - `braid gateway`: a Braid-to-TCP gateway (RFC 8803 Convert).
//! - `braid connect`: netcat over Braid, directly or through a gateway.
//! - `braid proxy`: a local SOCKS5 / HTTP CONNECT proxy over Braid through a gateway.
//! - `braid demo`: emulated WiFi + cellular on loopback, WiFi failing midway.
//! - `braid bench`: goodput and stall measurements (server, client, loopback).
//!
//! Every error is one line on stderr (`braid: error: ...`) and a non-zero exit status.

mod bench;
mod connect;
mod demo;
mod error;
mod gateway;
mod iface;
mod json;
mod logger;
mod progress;
mod proxy;
mod report;
mod stream;
mod svg;

use clap::{Args, Parser, Subcommand, ValueEnum};
use error::Failure;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "braid",
    version,
    about = "Braid: one connection over WiFi and cellular at once (Multipath TCP over UDP)",
    propagate_version = true
)]
struct Cli {
    /// Log level: error, warn, info, debug, trace or off (default: info for the gateway and
    /// bench server, warn otherwise).
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_level)]
    log: Option<log::LevelFilter>,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a Braid gateway: accept Braid connections and relay them to allowed TCP servers.
    Gateway(gateway::GatewayArgs),
    /// Netcat over Braid: stdin to the connection, the connection to stdout.
    Connect(connect::ConnectArgs),
    /// A local SOCKS5 and HTTP CONNECT proxy: each connection an app makes through it goes
    /// over Braid through a gateway.
    Proxy(proxy::ProxyArgs),
    /// Emulated WiFi + cellular on loopback; WiFi fails a third of the way in.
    Demo(demo::DemoArgs),
    /// Throughput and stall measurements.
    Bench(bench::BenchArgs),
}

/// How segments travel (`--carrier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum CarrierArg {
    /// TCP-in-UDP over ordinary UDP sockets: no privileges needed.
    #[default]
    Udp,
    /// Genuine TCP on raw IP sockets (Linux, CAP_NET_RAW).
    Raw,
}

impl From<CarrierArg> for braid::Carrier {
    fn from(c: CarrierArg) -> Self {
        match c {
            CarrierArg::Udp => braid::Carrier::Udp,
            CarrierArg::Raw => braid::Carrier::Raw,
        }
    }
}

/// Service type (`--policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Everything on the first interface; the others are backups.
    #[default]
    Handover,
    /// Lowest latency first; switch as soon as the first interface degrades.
    Interactive,
    /// Every path at once, for throughput.
    Aggregate,
    /// Every byte on every path.
    Redundant,
}

impl From<PolicyArg> for braid::ServiceType {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Handover => braid::ServiceType::Handover,
            PolicyArg::Interactive => braid::ServiceType::Interactive,
            PolicyArg::Aggregate => braid::ServiceType::Aggregate,
            PolicyArg::Redundant => braid::ServiceType::Redundant,
        }
    }
}

/// Client options shared by `connect` and `bench client`.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// Bind a path to this interface; the first is the preferred one. KIND defaults from
    /// the name (wlan*/wl* wifi, rmnet*/wwan*/ccmni* cellular, eth*/en* wired). Without
    /// any, one path follows the default route.
    #[arg(
        long = "interface",
        short = 'i',
        value_name = "NAME[:wifi|cellular|wired]"
    )]
    pub interfaces: Vec<String>,
    /// Service type.
    #[arg(long, value_enum, default_value_t = PolicyArg::Handover)]
    pub policy: PolicyArg,
    /// How segments travel.
    #[arg(long, value_enum, default_value_t = CarrierArg::Udp)]
    pub carrier: CarrierArg,
    /// Seconds to wait for the handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Handover: open the backup subflow only when the preferred path degrades (instead of
    /// at once), and close it again once unused for --backup-idle-close.
    #[arg(long)]
    pub lazy_backup: bool,
    /// With --lazy-backup: close the unused backup after this long (default 30).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "lazy_backup")]
    pub backup_idle_close: Option<Duration>,
    /// Ask for DSS checksums (RFC 8684): detects payloads corrupted on a path, costs CPU.
    /// Either side asking turns them on.
    #[arg(long)]
    pub dss_checksum: bool,
    /// Send one datagram per system call instead of GSO batches (UDP_SEGMENT). Braid turns
    /// GSO off by itself on a path whose batches keep getting lost; this turns it off from the
    /// start, e.g. behind a local NAT on a device without checksum offload.
    #[arg(long)]
    pub no_gso: bool,
    /// Resolve a gateway target's host name here, with the local network's DNS, and send the
    /// gateway an address. By default the gateway resolves it: its DNS sees the name, the
    /// local network's does not, and its allowlist is checked on the address it connects to.
    #[arg(long)]
    pub resolve_locally: bool,
}

impl ClientOpts {
    /// The service type with the thresholds the options ask for.
    pub fn policy(&self) -> braid::Policy {
        let mut p = braid::Policy::new(self.policy.into());
        if self.lazy_backup {
            p.eager_backup = false;
        }
        if let Some(d) = self.backup_idle_close {
            p.backup_idle_close = d;
        }
        p
    }
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse().map_err(|_| {
        format!("unknown log level '{s}' (expected off, error, warn, info, debug or trace)")
    })
}

/// Parses a positive number of seconds (fractions allowed).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e6 {
        return Err(format!("'{s}' is not a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    let default_level = match &cli.cmd {
        Command::Gateway(_) | Command::Proxy(_) => log::LevelFilter::Info,
        Command::Bench(b) if b.is_server() => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    };
    logger::init(cli.log.unwrap_or(default_level));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("braid")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(Failure::new(format!("cannot start the async runtime: {e}"))),
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Command::Gateway(a) => gateway::run(a).await,
            Command::Connect(a) => connect::run(a).await,
            Command::Proxy(a) => proxy::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Bench(a) => bench::run(a).await,
        }
    });
    // Blocking stdin reads and the runtime's tasks must not hold the exit up.
    let code = match result {
        Ok(code) => code,
        Err(f) => {
            error::print(&f);
            f.code
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn fail(f: Failure) -> ! {
    error::print(&f);
    std::process::exit(f.code)
}

/// clap's errors are several lines (usage, tips): keep the first, as one line.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(
                if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                },
            );
        }
        _ => {}
    }
    // The first paragraph is the message (a list of missing arguments follows its colon).
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let msg = para.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    let msg = if msg.is_empty() {
        "bad command line"
    } else {
        msg
    };
    fail(Failure::usage(format!("{msg} (see 'braid --help')")))
}

/// A bug must still end as one line, not a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = msg.replace('\n', " ");
        eprintln!("braid: error: internal error: {msg}{at} (please report this)");
        std::process::exit(70);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_backup_options_shape_the_policy() {
        let cli = Cli::try_parse_from([
            "braid",
            "bench",
            "client",
            "10.0.0.1:7000",
            "--lazy-backup",
            "--backup-idle-close",
            "3",
        ])
        .unwrap();
        let Command::Bench(b) = cli.cmd else {
            panic!("not bench")
        };
        let bench::Role::Client(c) = b.role else {
            panic!("not a client")
        };
        let p = c.client.policy();
        assert!(!p.eager_backup);
        assert_eq!(p.backup_idle_close, Duration::from_secs(3));
        // Defaults: what the engine's policy says.
        let cli = Cli::try_parse_from(["braid", "connect", "10.0.0.1:7000"]).unwrap();
        let Command::Connect(c) = cli.cmd else {
            panic!("not connect")
        };
        assert_eq!(c.client.policy(), braid::Policy::default());
        // --backup-idle-close needs --lazy-backup.
        assert!(
            Cli::try_parse_from([
                "braid",
                "connect",
                "10.0.0.1:7000",
                "--backup-idle-close",
                "3"
            ])
            .is_err()
        );
    }
}
