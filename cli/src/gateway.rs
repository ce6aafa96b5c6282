//! `braid gateway`: the runtime's RFC 8803 gateway behind a command line.

use crate::error::{Failure, Result};
use crate::{CarrierArg, parse_secs};
use braid::gateway::metrics::{self, WorkerView};
use braid::gateway::{GatewayConfig, GatewayStats, Tokens};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod workers;

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// UDP address to listen on (port 0 picks one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Destination the gateway may connect to: an address, a network (10.0.0.0/8) or a host
    /// name, and a port (or *). Repeat for more. Nothing is allowed without it. `*` and wide
    /// networks do not reach loopback, private, link-local, multicast or unspecified
    /// addresses, nor this host's public ones: list those explicitly (127.0.0.1:9000,
    /// 10.0.0.0/8:443). A client may name its destination by host name: the gateway resolves
    /// it and checks each address against this list before connecting to it.
    #[arg(long, value_name = "HOST_OR_CIDR:PORT")]
    pub allow: Vec<String>,
    /// Seconds between new lookups of the host names in --allow.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub resolve_every: Duration,
    /// Clients must present a token made with one of the secrets in FILE (one per line;
    /// blank lines and # comments are ignored). Clients pass theirs with --token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How segments travel.
    #[arg(long, value_enum, default_value_t = CarrierArg::Udp)]
    pub carrier: CarrierArg,
    /// Most relayed connections at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Most connections at once that have not finished the Convert exchange.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_half_open: usize,
    /// Most of those from one source (an IPv4 address or an IPv6 /64).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_half_open_per_source: usize,
    /// Seconds a client has to send its whole Convert request; then it is reset.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub convert_timeout: Duration,
    /// Seconds without a valid segment from a relayed client before its connection is
    /// reset (keep it above the clients' 25 s keepalive).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Ask clients for DSS checksums (RFC 8684): payloads corrupted on a path are detected,
    /// at some CPU cost.
    #[arg(long)]
    pub dss_checksum: bool,
    /// Send one datagram per system call instead of GSO batches (UDP_SEGMENT). The gateway
    /// turns GSO off by itself towards a client whose batches keep getting lost; this turns it
    /// off from the start (behind a DNAT on this host whose devices lack checksum offload:
    /// kube-proxy, nftables, IPVS).
    #[arg(long)]
    pub no_gso: bool,
    /// Serve Prometheus metrics over HTTP at ADDR:PORT (GET /metrics). Port 0 picks one; the
    /// log says which.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// On SIGTERM the gateway drains: it refuses new connections, lets open ones finish for
    /// up to SECS, then closes those left (MP_FASTCLOSE, RST) and exits 0.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub drain_timeout: Duration,
    /// Gateways in this process, each on its own thread with its own endpoint, sharing
    /// --listen's port (SO_REUSEPORT; UDP carrier only). The connection limits are shared
    /// out between them. Default: the available cores with --announce (each worker's
    /// clients join its own address), else 1 (without announcements a client's MP_JOINs
    /// land on the worker owning their connection only one time in N).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Each worker's own address, announced to its clients (ADD_ADDR, with the C flag: they
    /// join there, never at --listen) and listened on: one ADDR:PORT is the base (worker i
    /// gets PORT+i), or repeat it once per worker. Unique per instance behind a balancer.
    #[arg(long, value_name = "ADDR:PORT")]
    pub announce: Vec<SocketAddr>,
    /// Bind the announced ports on this local IP instead of the announced address: behind
    /// a balancer that forwards each announced address here with a DNAT, 0.0.0.0.
    #[arg(long, value_name = "IP", requires = "announce")]
    pub announce_bind: Option<std::net::IpAddr>,
}

pub async fn run(a: GatewayArgs) -> Result<i32> {
    for (flag, v) in [
        ("--max-connections", a.max_connections),
        ("--max-half-open", a.max_half_open),
        ("--max-half-open-per-source", a.max_half_open_per_source),
    ] {
        if v == 0 {
            return Err(Failure::usage(format!("{flag} must be at least 1")));
        }
    }
    let tokens = match &a.token_file {
        Some(f) => Tokens::from_file(f)?,
        None => Tokens::default(),
    };
    if a.idle_timeout < Duration::from_secs(30) {
        log::warn!(
            "--idle-timeout {:?} is below the clients' 25 s keepalive: idle but healthy connections will be reset",
            a.idle_timeout
        );
    }
    if !tokens.is_empty() && tokens.shortest() < 16 {
        log::warn!(
            "a secret in the token file is shorter than 16 characters: it can be guessed offline from one token seen on the wire"
        );
    }
    let cfg = GatewayConfig {
        allow: a.allow.clone(),
        resolve_interval: a.resolve_every,
        tokens: tokens.clone(),
        max_connections: a.max_connections,
        max_half_open: a.max_half_open,
        max_half_open_per_source: a.max_half_open_per_source,
        handshake_timeout: a.convert_timeout,
        idle_timeout: a.idle_timeout,
        dss_checksum: a.dss_checksum,
        gso: !a.no_gso,
        announce_bind: a.announce_bind,
        ..GatewayConfig::default()
    };
    let bound = cfg.memory_bound();
    let n = match a.workers {
        Some(0) => return Err(Failure::usage("--workers must be at least 1")),
        Some(n) => n,
        // With announcements each worker's clients join its own address: every core. One
        // base address gives each worker its own port; a list names as many workers.
        None if a.announce.len() > 1 => a.announce.len(),
        None if !a.announce.is_empty() && a.carrier == CarrierArg::Udp => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
        // Without, a join lands on the worker owning its connection only one time in N.
        None => 1,
    };
    if n > 1 && a.announce.is_empty() {
        log::warn!(
            "--workers {n} without --announce: a client's additional subflows (MP_JOIN) reach the worker that owns their connection only one time in {n}; the others are refused (braid_gateway_joins_refused_shared_total)"
        );
    }
    let announce = workers::announce_plan(&a.announce, n)?;
    // The limits are the whole gateway's: each worker holds its share.
    let cfg = GatewayConfig {
        max_connections: a.max_connections.div_ceil(n),
        max_half_open: a.max_half_open.div_ceil(n),
        ..cfg
    };
    let bind = workers::Bind {
        listen: a.listen,
        cfg,
        // Genuine MPTCP on the wire: kernel MPTCP clients can use this gateway too.
        raw: (a.carrier == CarrierArg::Raw).then(braid::raw::RawConfig::default),
        drain_timeout: a.drain_timeout,
    };
    let gw = workers::Workers::start(bind, announce)?;
    let addr = gw.addr;
    let proto = match a.carrier {
        CarrierArg::Udp => "udp",
        CarrierArg::Raw => "tcp (raw carrier, MPTCP)",
    };
    if a.allow.is_empty() {
        log::warn!("no --allow given: every destination will be refused");
    }
    log::info!(
        "braid gateway on {proto} {addr}, allowing {}",
        if a.allow.is_empty() {
            "nothing".to_string()
        } else {
            a.allow.join(", ")
        }
    );
    log::info!(
        "clients: {}; connection data held at most {} MiB",
        if tokens.is_empty() {
            "anyone (no --token-file)".to_string()
        } else {
            format!("with a token ({} secrets)", tokens.len())
        },
        bound >> 20
    );
    for (i, own) in gw.announced.iter().enumerate() {
        match own {
            Some(own) => log::info!("worker {i}: announces {own}"),
            None if n > 1 => log::info!("worker {i}: announces nothing (no --announce)"),
            None => {}
        }
    }
    if n > 1 {
        log::info!("{n} workers share {addr} (SO_REUSEPORT)");
    }
    let all_stats = gw.stats();
    if let Some(at) = a.metrics {
        serve_metrics(at, gw.views.clone()).await?;
    }
    let sigterm = sigterm()?;
    let run = gw.run_until(sigterm);
    let ended = tokio::select! {
        report = run => match report {
            None => return Err(Failure::new("the gateway's endpoint stopped")),
            Some(r) => {
                log::info!(
                    "drained: {} connections open at SIGTERM, {} closed at the drain timeout",
                    r.open_at_start,
                    r.closed
                );
                "drained"
            }
        },
        r = tokio::signal::ctrl_c() => {
            r.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
            "stopping"
        }
    };
    let sum = |f: fn(&GatewayStats) -> &std::sync::atomic::AtomicU64| -> u64 {
        all_stats
            .iter()
            .map(|s| f(s).load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    };
    log::info!(
        "{ended}: {} connections accepted, {} relayed, {} refused ({} without a token, \
         {} with a wrong one, {} over the per-source limit, {} Convert timeouts), {} idle \
         resets; up {} B, down {} B; GSO fell back on {}",
        sum(|s| &s.accepted),
        sum(|s| &s.relayed),
        sum(|s| &s.refused),
        sum(|s| &s.token_missing),
        sum(|s| &s.token_rejected),
        sum(|s| &s.source_limited),
        sum(|s| &s.convert_timeouts),
        sum(|s| &s.idle_timeouts),
        sum(|s| &s.bytes_up),
        sum(|s| &s.bytes_down),
        sum(|s| &s.gso_fallbacks),
    );
    Ok(0)
}

/// Listens for scrapes at `at` and serves the workers' metrics from a task.
async fn serve_metrics(at: SocketAddr, workers: Vec<WorkerView>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| Failure::new(format!("cannot listen for --metrics on {at}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("--metrics {at}: {e}")))?;
    log::info!("metrics on http://{bound}/metrics");
    let render = Arc::new(move || metrics::render(&workers));
    tokio::spawn(braid::metrics::serve(
        listener,
        render,
        std::future::pending(),
    ));
    Ok(())
}

/// Completes on the first SIGTERM (never outside Unix).
fn sigterm() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| Failure::new(format!("cannot wait for SIGTERM: {e}")))?;
        Ok(async move {
            term.recv().await;
        })
    }
    #[cfg(not(unix))]
    Ok(std::future::pending())
}
