//! `braid proxy`: a local SOCKS5 and HTTP CONNECT proxy ([`braid::Proxy`]). Every connection
//! an app makes through it becomes one Braid connection through the gateway, over the
//! interfaces given (followed through rtnetlink, as `braid connect` does). One info line per
//! connection: target, bytes each way, duration, how it ended.

use crate::ClientOpts;
use crate::connect::{gateway_client, read_secret, resolve, watch_interfaces};
use crate::error::{Failure, Result};
use braid::{Proxy, ProxyConfig, ProxyCredentials};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Where apps connect (SOCKS5 and HTTP CONNECT on the same port). Keep it on loopback:
    /// anyone who can reach it can use the gateway.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1080")]
    pub listen: SocketAddr,
    /// The Braid gateway every connection goes through.
    #[arg(long, value_name = "GATEWAY:PORT")]
    pub via: String,
    #[command(flatten)]
    pub client: ClientOpts,
    /// The client token for a gateway that requires one (see `braid connect --token`).
    #[arg(long, value_name = "SECRET", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Like --token, read from the first line of FILE that is not blank or a # comment.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Seconds to wait for the gateway's answer to each Convert request.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = crate::parse_secs)]
    pub convert_timeout: Duration,
    /// Require this username from apps (SOCKS5 username/password, HTTP Basic), so that other
    /// programs on the machine cannot use the proxy.
    #[arg(long, value_name = "USER", requires = "password")]
    pub user: Option<String>,
    /// The password that goes with --user.
    #[arg(long, value_name = "PASSWORD", requires = "user")]
    pub password: Option<String>,
    /// Most app connections at once; more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value = "256")]
    pub max_connections: usize,
    /// Seconds an app has to finish its SOCKS5 or CONNECT request.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = crate::parse_secs)]
    pub handshake_timeout: Duration,
}

pub async fn run(a: ProxyArgs) -> Result<i32> {
    let gateway = resolve(&a.via).await?;
    if a.max_connections == 0 {
        return Err(Failure::usage("--max-connections must be at least 1"));
    }
    let secret = read_secret(a.token.as_deref(), a.token_file.as_deref())?;
    let (client, ifaces) = gateway_client(&a.client, a.convert_timeout, secret.as_deref())?;
    let credentials = match (a.user, a.password) {
        (Some(username), Some(password)) => {
            if username.is_empty() || username.len() > 255 || password.len() > 255 {
                return Err(Failure::usage(
                    "--user must be 1 to 255 bytes and --password at most 255 (SOCKS5 limits)",
                ));
            }
            Some(ProxyCredentials { username, password })
        }
        _ => None,
    };
    let auth = credentials.is_some();
    let cfg = ProxyConfig {
        listen: a.listen,
        credentials,
        handshake_timeout: a.handshake_timeout,
        max_connections: a.max_connections,
    };
    let proxy = Proxy::start(client.clone(), gateway, cfg).await?;
    log::info!(
        "braid proxy on {} (SOCKS5 and HTTP CONNECT{}) via {gateway} over {}",
        proxy.local_addr(),
        if auth { ", credentials required" } else { "" },
        if ifaces.is_empty() {
            "the default route".to_string()
        } else {
            ifaces
                .iter()
                .map(|(s, _)| format!("{} ({})", s.name, s.kind))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if !proxy.local_addr().ip().is_loopback() {
        log::warn!(
            "listening on {}, not loopback: anyone who can reach it can use the gateway{}",
            proxy.local_addr(),
            if auth { " with the credentials" } else { "" }
        );
    }
    watch_interfaces(&client, gateway.is_ipv4(), |m| log::info!("{m}"));
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
    proxy.stop();
    let s = proxy.stats();
    log::info!(
        "stopping: {} connections accepted, {} failed ({} for credentials), {} still open; up {} B, down {} B",
        s.accepted,
        s.failed,
        s.refused_auth,
        s.active,
        s.bytes_up,
        s.bytes_down
    );
    Ok(0)
}
