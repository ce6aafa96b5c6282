//! `braid gateway`: the runtime's RFC 8803 gateway behind a command line.

use crate::CarrierArg;
use crate::error::{Failure, Result};
use braid::gateway::{Gateway, GatewayConfig};
use clap::Args;
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// UDP address to listen on (port 0 picks one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Destination the gateway may connect to: an address, a network (10.0.0.0/8) or a host
    /// name, and a port (or *). Repeat for more. Nothing is allowed without it.
    #[arg(long, value_name = "HOST_OR_CIDR:PORT")]
    pub allow: Vec<String>,
    /// How segments travel.
    #[arg(long, value_enum, default_value_t = CarrierArg::Udp)]
    pub carrier: CarrierArg,
    /// Most relayed connections at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Send one datagram per system call instead of GSO batches (UDP_SEGMENT). The gateway
    /// turns GSO off by itself towards a client whose batches keep getting lost; this turns it
    /// off from the start (behind a DNAT on this host whose devices lack checksum offload:
    /// kube-proxy, nftables, IPVS).
    #[arg(long)]
    pub no_gso: bool,
}

pub async fn run(a: GatewayArgs) -> Result<i32> {
    if a.max_connections == 0 {
        return Err(Failure::usage("--max-connections must be at least 1"));
    }
    let cfg = GatewayConfig {
        allow: a.allow.clone(),
        max_connections: a.max_connections,
        gso: !a.no_gso,
        ..GatewayConfig::default()
    };
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
    let stats = gw.stats();
    tokio::select! {
        _ = gw.run() => Err(Failure::new("the gateway's endpoint stopped")),
        r = tokio::signal::ctrl_c() => {
            r.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
            use std::sync::atomic::Ordering::Relaxed;
            log::info!(
                "stopping: {} connections accepted, {} relayed, {} refused; up {} B, down {} B; \
                 GSO fell back on {}",
                stats.accepted.load(Relaxed),
                stats.relayed.load(Relaxed),
                stats.refused.load(Relaxed),
                stats.bytes_up.load(Relaxed),
                stats.bytes_down.load(Relaxed),
                stats.gso_fallbacks.load(Relaxed),
            );
            Ok(0)
        }
    }
}
