//! `braid gateway`: the runtime's RFC 8803 gateway behind a command line.

use crate::error::{Failure, Result};
use crate::{CarrierArg, parse_secs};
use braid::gateway::{Gateway, GatewayConfig, Tokens};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
        ..GatewayConfig::default()
    };
    let bound = cfg.memory_bound();
    let gw = match a.carrier {
        CarrierArg::Udp => Gateway::bind(a.listen, cfg).await?,
        // Genuine MPTCP on the wire: kernel MPTCP clients can use this gateway too.
        CarrierArg::Raw => {
            Gateway::bind_raw(a.listen, cfg, braid::raw::RawConfig::default()).await?
        }
    };
    let addr = gw.local_addr();
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
    let stats = gw.stats();
    tokio::select! {
        _ = gw.run() => Err(Failure::new("the gateway's endpoint stopped")),
        r = tokio::signal::ctrl_c() => {
            r.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
            use std::sync::atomic::Ordering::Relaxed;
            log::info!(
                "stopping: {} connections accepted, {} relayed, {} refused ({} without a token, \
                 {} with a wrong one, {} over the per-source limit, {} Convert timeouts), {} idle \
                 resets; up {} B, down {} B; GSO fell back on {}",
                stats.accepted.load(Relaxed),
                stats.relayed.load(Relaxed),
                stats.refused.load(Relaxed),
                stats.token_missing.load(Relaxed),
                stats.token_rejected.load(Relaxed),
                stats.source_limited.load(Relaxed),
                stats.convert_timeouts.load(Relaxed),
                stats.idle_timeouts.load(Relaxed),
                stats.bytes_up.load(Relaxed),
                stats.bytes_down.load(Relaxed),
                stats.gso_fallbacks.load(Relaxed),
            );
            Ok(0)
        }
    }
}
