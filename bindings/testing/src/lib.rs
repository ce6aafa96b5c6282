//! braid-ffi-testing: a whole network on loopback for the foreign-language tests.
//!
//! `BraidTestNetwork` starts, in this process, a TCP echo server, a TLS echo server, an
//! HTTP/1.1 server with and without TLS (test certificate for "localhost" and 127.0.0.1,
//! signed by a test CA the tests can ask for), a Braid gateway that allows only these
//! servers and one closed port, and two path emulators ("wifi": 40 Mbit/s, 10 ms;
//! "cellular": 20 Mbit/s, 30 ms) in front of the gateway. A test builds a
//! `BraidClient` whose interfaces send `via` the emulators, and can kill a path mid-transfer.
//!
//! It is its own crate (and its own generated module) so the shipped bindings of braid-ffi
//! are byte-identical whether or not the library was built with the `testing` feature.
//! It has its own tokio runtime: the network it fakes is not part of the library.

uniffi::setup_scaffolding!();

mod tls_servers;

use braid::emulator::PathEmulator;
use braid::gateway::{Gateway, GatewayConfig, GatewayStats};
use braid_proto::sim::link::LinkConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// The name of the exported call that should panic next (see `panic_in_next_call`).
static PANIC_IN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Makes the next braid-ffi call named `call` (`interface_available`, `finish`, ...) panic
/// inside the library, to test that the panic comes out as `BraidError.Internal`.
#[uniffi::export]
pub fn panic_in_next_call(call: String) {
    *PANIC_IN.lock().unwrap_or_else(|p| p.into_inner()) = Some(call);
}

/// Whether the test asked `call` to panic (once). Read by braid-ffi's call guard.
pub fn take_panic_request(call: &str) -> bool {
    let mut g = PANIC_IN.lock().unwrap_or_else(|p| p.into_inner());
    if g.as_deref() == Some(call) {
        *g = None;
        true
    } else {
        false
    }
}

#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum TestNetworkError {
    #[error("{0}")]
    Failed(String),
}

pub(crate) fn failed(what: &str) -> impl Fn(std::io::Error) -> TestNetworkError + '_ {
    move |e| TestNetworkError::Failed(format!("{what}: {e}"))
}

/// The emulated paths, by name.
const PATHS: [&str; 2] = ["wifi", "cellular"];

fn link(name: &str) -> LinkConfig {
    let (rate, ms) = if name == "wifi" {
        (40_000_000, 10)
    } else {
        (20_000_000, 30)
    };
    LinkConfig::new(rate, Duration::from_millis(ms))
        .with_queue_bdp(1.0)
        .with_overhead(28)
}

#[derive(uniffi::Object)]
pub struct BraidTestNetwork {
    /// `None` only while dropping.
    rt: Option<Runtime>,
    gateway: SocketAddr,
    echo: SocketAddr,
    tls_echo: SocketAddr,
    https: SocketAddr,
    http: SocketAddr,
    refused: SocketAddr,
    forbidden: SocketAddr,
    paths: Vec<(&'static str, PathEmulator)>,
    stats: Arc<GatewayStats>,
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> Result<SocketAddr, TestNetworkError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(failed("closed port"))?;
    l.local_addr().map_err(failed("closed port"))
}

async fn echo_server() -> Result<SocketAddr, TestNetworkError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(failed("echo server"))?;
    let addr = l.local_addr().map_err(failed("echo server"))?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}

/// The servers behind the gateway, as set up.
struct Servers {
    echo: SocketAddr,
    tls_echo: SocketAddr,
    https: SocketAddr,
    http: SocketAddr,
    refused: SocketAddr,
    forbidden: SocketAddr,
}

impl BraidTestNetwork {
    fn path(&self, name: &str) -> Result<&PathEmulator, TestNetworkError> {
        self.paths
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p)
            .ok_or_else(|| {
                TestNetworkError::Failed(format!("no path '{name}' (expected wifi or cellular)"))
            })
    }
}

#[uniffi::export]
impl BraidTestNetwork {
    /// Starts everything; ready when it returns.
    #[uniffi::constructor]
    pub fn new() -> Result<Arc<Self>, TestNetworkError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("braid-testnet")
            .enable_all()
            .build()
            .map_err(failed("runtime"))?;
        // On a thread of its own, so this also works when called from inside a runtime.
        let setup = async {
            let echo = echo_server().await?;
            let tls_echo = tls_servers::echo().await?;
            let https = tls_servers::https().await?;
            let http = tls_servers::http().await?;
            let refused = closed_port().await?;
            let forbidden = closed_port().await?;
            let cfg = GatewayConfig {
                allow: [echo, tls_echo, https, http, refused]
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                connect_timeout: Duration::from_secs(5),
                // Every test client reaches the gateway from the same loopback address, and
                // the tests open dozens of connections at once.
                max_half_open_per_source: 256,
                ..GatewayConfig::default()
            };
            let gw = Gateway::bind("127.0.0.1:0".parse().unwrap_or(echo), cfg)
                .await
                .map_err(|e| TestNetworkError::Failed(format!("gateway: {e}")))?;
            let gateway = gw.local_addr();
            let stats = gw.stats();
            gw.spawn();
            let mut paths = Vec::new();
            for name in PATHS {
                let any: SocketAddr = "127.0.0.1:0".parse().unwrap_or(gateway);
                let emu = PathEmulator::start(any, gateway, link(name), link(name))
                    .await
                    .map_err(failed("path emulator"))?;
                paths.push((name, emu));
            }
            let servers = Servers {
                echo,
                tls_echo,
                https,
                http,
                refused,
                forbidden,
            };
            Ok::<_, TestNetworkError>((gateway, servers, paths, stats))
        };
        let (gateway, servers, paths, stats) = std::thread::scope(|s| {
            s.spawn(|| rt.block_on(setup))
                .join()
                .unwrap_or_else(|_| Err(TestNetworkError::Failed("setup panicked".into())))
        })?;
        Ok(Arc::new(BraidTestNetwork {
            rt: Some(rt),
            gateway,
            echo: servers.echo,
            tls_echo: servers.tls_echo,
            https: servers.https,
            http: servers.http,
            refused: servers.refused,
            forbidden: servers.forbidden,
            paths,
            stats,
        }))
    }

    /// The gateway's address (reach it through the paths: see `path_via`).
    pub fn gateway(&self) -> String {
        self.gateway.to_string()
    }

    /// A TCP echo server the gateway allows.
    pub fn echo_target(&self) -> String {
        self.echo.to_string()
    }

    /// A TLS echo server the gateway allows (ALPN: "h2", "http/1.1"); it closes with
    /// close_notify once the client finished sending.
    pub fn tls_echo_target(&self) -> String {
        self.tls_echo.to_string()
    }

    /// An HTTPS/1.1 server the gateway allows: `GET /bytes/N` answers N bytes (byte i is
    /// `i % 251`), any other GET path answers `https_greeting()`.
    pub fn https_target(&self) -> String {
        self.https.to_string()
    }

    /// The same server as `https_target()`, without TLS.
    pub fn http_target(&self) -> String {
        self.http.to_string()
    }

    /// The body the HTTPS server answers for a GET of any other path than /bytes/N.
    pub fn https_greeting(&self) -> String {
        tls_servers::GREETING.to_string()
    }

    /// The CA that signed the TLS servers' certificate, DER.
    pub fn test_ca_der(&self) -> Vec<u8> {
        tls_servers::CA_DER.to_vec()
    }

    /// The same CA, PEM.
    pub fn test_ca_pem(&self) -> String {
        tls_servers::pem("CERTIFICATE", tls_servers::CA_DER)
    }

    /// A certificate that is not the servers' CA (their own leaf certificate, DER): trusting
    /// only it makes their certificate fail the check.
    pub fn wrong_ca_der(&self) -> Vec<u8> {
        tls_servers::LEAF_DER.to_vec()
    }

    /// A port the gateway allows but where nothing listens: the gateway answers "refused".
    pub fn refused_target(&self) -> String {
        self.refused.to_string()
    }

    /// A port the gateway's allowlist does not include.
    pub fn forbidden_target(&self) -> String {
        self.forbidden.to_string()
    }

    /// The names of the emulated paths.
    pub fn path_names(&self) -> Vec<String> {
        PATHS.iter().map(|s| s.to_string()).collect()
    }

    /// Where a client interface must send to use path `name` (its `via` address).
    pub fn path_via(&self, name: String) -> Result<String, TestNetworkError> {
        Ok(self.path(&name)?.local_addr().to_string())
    }

    /// Takes path `name` down silently (like walking out of WiFi range): everything in
    /// flight and everything sent from now on is lost.
    pub fn kill_path(&self, name: String) -> Result<(), TestNetworkError> {
        self.path(&name)?.set_down(true);
        Ok(())
    }

    pub fn revive_path(&self, name: String) -> Result<(), TestNetworkError> {
        self.path(&name)?.set_down(false);
        Ok(())
    }

    /// Bytes the path delivered, both directions.
    pub fn path_delivered_bytes(&self, name: String) -> Result<u64, TestNetworkError> {
        let (up, down) = self.path(&name)?.stats();
        Ok(up.delivered.bytes + down.delivered.bytes)
    }

    /// Connections the gateway relayed to a target.
    pub fn relayed_connections(&self) -> u64 {
        self.stats.relayed.load(Ordering::Relaxed)
    }

    /// Connections the gateway refused (not allowed, or the target refused).
    pub fn refused_connections(&self) -> u64 {
        self.stats.refused.load(Ordering::Relaxed)
    }
}

impl Drop for BraidTestNetwork {
    fn drop(&mut self) {
        // The emulators' tasks must be aborted while their runtime still exists.
        self.paths.clear();
        if let Some(rt) = self.rt.take() {
            // Dropping a runtime blocks; from a foreign finalizer thread that is fine, but
            // never wait for tasks that may be stuck on I/O.
            rt.shutdown_background();
        }
    }
}
