//! `BraidProxy`: the runtime's local SOCKS5 / HTTP CONNECT proxy (docs/ARCHITECTURE.md,
//! "The local proxy") for an app's own HTTP stack (URLSession, OkHttp, `java.net.http`).

use crate::client::{BraidClient, resolve};
use crate::error::BraidError;
use crate::lock;
use crate::runtime::{run, runtime};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Settings of a [`BraidProxy`]. It always listens on loopback (127.0.0.1): other devices
/// must never reach it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BraidProxyConfig {
    /// The port to listen on; 0 (the default) picks a free one.
    #[uniffi(default = 0)]
    pub port: u16,
    /// Credentials local clients must present (SOCKS5 username/password, or HTTP `Basic`
    /// proxy authorization), so other apps on the device cannot use the proxy. Both or
    /// neither.
    #[uniffi(default = None)]
    pub username: Option<String>,
    /// The password that goes with `username`.
    #[uniffi(default = None)]
    pub password: Option<String>,
    /// Most local connections at once; more wait until one ends.
    #[uniffi(default = 256)]
    pub max_connections: u32,
}

impl Default for BraidProxyConfig {
    fn default() -> Self {
        BraidProxyConfig {
            port: 0,
            username: None,
            password: None,
            max_connections: 256,
        }
    }
}

impl BraidProxyConfig {
    fn to_braid(&self) -> Result<braid::ProxyConfig, BraidError> {
        let credentials = match (&self.username, &self.password) {
            (None, None) => None,
            (Some(u), Some(p)) => {
                // RFC 1929 carries each in one length byte.
                if u.is_empty() || u.len() > 255 || p.len() > 255 {
                    return Err(BraidError::InvalidArgument(
                        "proxy username must be 1 to 255 bytes, password at most 255".into(),
                    ));
                }
                Some(braid::ProxyCredentials {
                    username: u.clone(),
                    password: p.clone(),
                })
            }
            _ => {
                return Err(BraidError::InvalidArgument(
                    "proxy username and password go together: give both or neither".into(),
                ));
            }
        };
        if self.max_connections == 0 {
            return Err(BraidError::InvalidArgument(
                "proxy max_connections must be at least 1".into(),
            ));
        }
        Ok(braid::ProxyConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            credentials,
            max_connections: self.max_connections as usize,
            ..braid::ProxyConfig::default()
        })
    }
}

/// A proxy's counters.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BraidProxyStats {
    /// Local connections accepted.
    pub accepted: u64,
    /// Local connections open now.
    pub active: u64,
    /// Connections answered with an error (bad request, not allowed, unreachable, ...).
    pub failed: u64,
    /// Connections refused for missing or wrong credentials (also in `failed`).
    pub refused_auth: u64,
    /// Bytes from local clients to their destinations (counted as they are relayed).
    pub bytes_up: u64,
    /// Bytes from destinations to local clients (counted as they are relayed).
    pub bytes_down: u64,
}

/// A local proxy on 127.0.0.1 speaking SOCKS5 and HTTP CONNECT on one port: each
/// connection an app's HTTP stack opens through it becomes a Braid connection through the
/// gateway, with the client's interfaces, service type, cellular rules and token. Host names
/// are resolved by the gateway. Stops when stopped or dropped; open connections go on.
#[derive(uniffi::Object)]
pub struct BraidProxy {
    addr: SocketAddr,
    /// `None` once stopped.
    proxy: Mutex<Option<braid::Proxy>>,
    last_stats: Mutex<Option<braid::ProxyStats>>,
}

#[uniffi::export]
impl BraidClient {
    /// Starts a [`BraidProxy`] that sends through the Braid gateway at `gateway`
    /// (`host:port`). Fails with `ConnectFailed` when the port is taken.
    #[uniffi::method(default(config = None))]
    pub async fn start_proxy(
        self: Arc<Self>,
        gateway: String,
        config: Option<BraidProxyConfig>,
    ) -> Result<Arc<BraidProxy>, BraidError> {
        let client = self.client.clone();
        run(async move {
            let cfg = config.unwrap_or_default().to_braid()?;
            let gw = resolve(&gateway, "gateway").await?;
            let proxy = braid::Proxy::start(client, gw, cfg).await?;
            Ok(Arc::new(BraidProxy {
                addr: proxy.local_addr(),
                proxy: Mutex::new(Some(proxy)),
                last_stats: Mutex::new(None),
            }))
        })
        .await
    }
}

#[uniffi::export]
impl BraidProxy {
    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Its counters; after `stop`, the last values before it.
    pub fn stats(&self) -> BraidProxyStats {
        let s = match lock(&self.proxy).as_ref() {
            Some(p) => p.stats(),
            None => lock(&self.last_stats).unwrap_or_default(),
        };
        BraidProxyStats {
            accepted: s.accepted,
            active: s.active,
            failed: s.failed,
            refused_auth: s.refused_auth,
            bytes_up: s.bytes_up,
            bytes_down: s.bytes_down,
        }
    }

    /// Stops accepting (the port closes); connections already open go on until they end.
    /// Idempotent.
    pub fn stop(&self) {
        if let Some(mut p) = lock(&self.proxy).take() {
            *lock(&self.last_stats) = Some(p.stats());
            // The port must be closed when this returns (an app restarting its proxy, or
            // checking it is gone); the wait is bounded in case this runs on a Braid thread.
            let (done, closed) = std::sync::mpsc::channel();
            runtime().spawn(async move {
                p.stop_and_wait().await;
                let _ = done.send(());
            });
            let _ = closed.recv_timeout(std::time::Duration::from_secs(2));
        }
    }

    /// Whether it still accepts connections.
    pub fn is_running(&self) -> bool {
        lock(&self.proxy).is_some()
    }
}

impl Drop for BraidProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
