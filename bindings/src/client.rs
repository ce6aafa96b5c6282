//! `BraidClient`: opens connections over the interfaces the app reports.

use crate::cancel::{BraidCancelToken, cancellable};
use crate::connection::BraidConnection;
use crate::error::{BraidError, CallbackError};
use crate::runtime::{run, runtime};
use crate::stream::Stream;
use crate::types::{
    BraidConfig, BraidInterface, BraidInterfaceEntry, BraidPathInfo, parse_socket_addr,
};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// Binds a new UDP socket to the network of a path before Braid uses it. Android apps must
/// provide one (`Network.bindSocket`): binding by interface index needs privileges there.
/// Without a binder, Braid binds by interface index itself (`IP_BOUND_IF` on Apple,
/// `SO_BINDTOIFINDEX` on Linux).
///
/// Called on a Braid thread, for a socket that is not connected yet; keep it quick.
#[uniffi::export(foreign)]
pub trait SocketBinder: Send + Sync {
    /// Binds the socket `fd` to the network of `path` (e.g. Android's `Network.bindSocket`).
    fn bind_socket(&self, fd: i32, path: BraidPathInfo) -> Result<(), CallbackError>;
}

/// Adapts a foreign [`SocketBinder`] to the runtime's trait.
struct ForeignBinder(Arc<dyn SocketBinder>);

impl braid::SocketBinder for ForeignBinder {
    fn bind(&self, fd: RawFd, path: &braid::PathInfo) -> io::Result<()> {
        let info = BraidPathInfo {
            path_id: path.id.get(),
            interface: BraidInterface::from_braid(&path.interface),
            remote: path.remote.to_string(),
        };
        self.0
            .bind_socket(fd, info)
            .map_err(|e| io::Error::other(format!("socket binder: {e}")))
    }
}

/// Opens Braid connections over every interface it knows. One per app is plenty: it owns
/// a driver task, and its interface list is shared by all its connections.
#[derive(uniffi::Object)]
pub struct BraidClient {
    pub(crate) client: braid::Client,
    pub(crate) connect_timeout: Duration,
    /// Connections start with it; `setServiceType` changes a copy per connection.
    pub(crate) policy: braid::Policy,
}

impl BraidClient {
    fn build(
        config: Option<BraidConfig>,
        binder: Option<Arc<dyn SocketBinder>>,
    ) -> Result<Arc<Self>, BraidError> {
        let config = config.unwrap_or_default();
        if config.connect_timeout_ms == 0 {
            return Err(BraidError::InvalidArgument(
                "connect_timeout_ms must be more than 0 ms".into(),
            ));
        }
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let policy = config.policy()?;
        let mut b = braid::Client::builder()
            .policy(policy.clone())
            .connect_timeout(connect_timeout)
            // connectVia's own deadline covers the whole exchange; this one only names it.
            .convert_timeout(connect_timeout)
            .linger(Duration::from_millis(config.linger_ms))
            .dss_checksum(config.dss_checksum);
        if let Some(t) = &config.token {
            if t.trim().is_empty() {
                return Err(BraidError::InvalidArgument("token is empty".into()));
            }
            b = b.token(t.trim());
        }
        for i in &config.interfaces {
            b = b.interface(i.to_braid()?);
        }
        if let Some(binder) = binder {
            b = b.binder(Arc::new(ForeignBinder(binder)));
        }
        let _rt = runtime().enter();
        let client = b.build()?;
        Ok(Arc::new(BraidClient {
            client,
            connect_timeout,
            policy,
        }))
    }
}

#[uniffi::export]
impl BraidClient {
    /// A client with `config`; `binder` binds sockets to interfaces (required on Android).
    #[uniffi::constructor(default(config = None, binder = None))]
    pub fn new(
        config: Option<BraidConfig>,
        binder: Option<Arc<dyn SocketBinder>>,
    ) -> Result<Arc<Self>, BraidError> {
        crate::guard("BraidClient.new", || Self::build(config, binder))
    }

    /// Connects to a Braid (MPTCP over TCP-in-UDP) server at `server` (`host:port`).
    /// Cancelling `cancel` ends the attempt with `Cancelled`.
    #[uniffi::method(default(cancel = None))]
    pub async fn connect(
        self: Arc<Self>,
        server: String,
        cancel: Option<Arc<BraidCancelToken>>,
    ) -> Result<Arc<BraidConnection>, BraidError> {
        let client = self.client.clone();
        let policy = self.policy.clone();
        run(cancellable(cancel, async move {
            let addr = resolve(&server, "server").await?;
            let conn = client.connect(addr).await?;
            Ok(BraidConnection::new(
                Stream::Plain(conn),
                client,
                addr.to_string(),
                policy,
            ))
        }))
        .await
    }

    /// Connects to `target` (`host:port`, any TCP server) through the Braid gateway at
    /// `gateway`. Fails with `NotAllowed`, `Refused` or `Unreachable` when the gateway says so,
    /// `Unauthorized` when it wants a client token (`BraidConfig.token`) it did not get;
    /// cancelling `cancel` ends the attempt with `Cancelled`.
    #[uniffi::method(default(cancel = None))]
    pub async fn connect_via(
        self: Arc<Self>,
        gateway: String,
        target: String,
        cancel: Option<Arc<BraidCancelToken>>,
    ) -> Result<Arc<BraidConnection>, BraidError> {
        let client = self.client.clone();
        let deadline = self.connect_timeout;
        let policy = self.policy.clone();
        run(cancellable(cancel, async move {
            let conn = open_via(&client, deadline, &gateway, &target).await?;
            Ok(BraidConnection::new(
                Stream::Plain(conn),
                client,
                target,
                policy,
            ))
        }))
        .await
    }

    /// An interface came up: open connections add a path over it. Returns the path id
    /// (the interface's index when it has one).
    pub fn interface_available(&self, interface: BraidInterface) -> Result<u32, BraidError> {
        crate::guard("interface_available", || {
            let iface = interface.to_braid()?;
            let _rt = runtime().enter();
            Ok(self.client.interface_available(iface)?.get())
        })
    }

    /// The interface behind `path_id` is gone: traffic moves off it at once.
    pub fn interface_lost(&self, path_id: u32) {
        let _rt = runtime().enter();
        self.client.interface_lost(path_id.into());
    }

    /// The interfaces in use, with their path ids.
    pub fn interfaces(&self) -> Vec<BraidInterfaceEntry> {
        self.client
            .interfaces()
            .into_iter()
            .map(|(id, i)| BraidInterfaceEntry {
                path_id: id.get(),
                interface: BraidInterface::from_braid(&i),
            })
            .collect()
    }
}

/// A Braid connection to `target` through the gateway at `gateway`, the gateway's answer
/// included within `deadline`.
pub(crate) async fn open_via(
    client: &braid::Client,
    deadline: Duration,
    gateway: &str,
    target: &str,
) -> Result<braid::Connection, BraidError> {
    let gw = resolve(gateway, "gateway").await?;
    if target.trim().is_empty() {
        return Err(BraidError::InvalidArgument("empty target".into()));
    }
    // The handshake has its own timeout; this one also covers the gateway's answer.
    let conn = tokio::time::timeout(deadline, client.connect_via(gw, target))
        .await
        .map_err(|_| {
            BraidError::Timeout(format!(
                "no answer from gateway {gw} for {target} within {deadline:?}"
            ))
        })??;
    Ok(conn)
}

/// `ip:port` as is, or a host name through the OS resolver (first address).
pub(crate) async fn resolve(s: &str, what: &str) -> Result<SocketAddr, BraidError> {
    if let Ok(a) = parse_socket_addr(s, what) {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(BraidError::InvalidArgument(format!(
            "{what} '{s}' has no port (expected host:port)"
        )));
    }
    let mut addrs = tokio::net::lookup_host(s.trim())
        .await
        .map_err(|e| BraidError::Resolve(format!("cannot resolve {what} '{s}': {e}")))?;
    addrs
        .next()
        .ok_or_else(|| BraidError::Resolve(format!("{what} '{s}' has no addresses")))
}
