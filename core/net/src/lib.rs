//! braid: the tokio runtime over the sans-IO Multipath TCP engine `braid-proto`.
//!
//! - [`Client`] opens [`Connection`]s over every interface it is given, one UDP socket per
//!   path (TCP-in-UDP), directly to a Braid server or through a [`gateway::Gateway`].
//! - [`Connection`] is a tokio `AsyncRead + AsyncWrite` byte stream with path events.
//! - [`Server`] accepts Braid connections; [`gateway`] relays them to TCP servers (RFC 8803).
//! - [`Proxy`]: a local SOCKS5 / HTTP CONNECT proxy turning an app's TCP connections into
//!   Braid connections through a gateway.
//! - [`tls`] runs rustls over a connection; [`emulator`] fakes WiFi and cellular on loopback.
//! - [`raw`]: the raw carrier (Linux): genuine TCP on raw IP sockets, for interoperating with
//!   the kernel's MPTCP ([`Carrier::Raw`], [`Server::bind_raw`]).
//!
//! Each endpoint (client or server) runs one driver task that owns the engine, the sockets
//! and the timer; connection handles share the engine with it behind a mutex.

mod access;
pub mod client;
pub mod connection;
pub mod convert;
mod driver;
pub mod emulator;
pub mod error;
pub mod event;
pub mod gateway;
mod gso_guard;
#[cfg(target_os = "linux")]
mod interface_watch;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod proxy;
pub mod raw;
mod relay;
pub mod server;
pub mod socket;
pub mod tls;

pub use braid_proto::{
    CloseError, ConnectionConfig, ConnectionStats, InterfaceKind, PathId, PathStats, Policy,
    ServiceType, SwitchReason,
};
pub use client::{Carrier, Client, ClientBuilder};
pub use connection::{Connection, Monitor, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
pub use driver::DriverStats;
pub use error::{Error, Result};
pub use event::{ConnectionEvent, Events};
pub use proxy::{Proxy, ProxyConfig, ProxyCredentials, ProxyStats};
pub use raw::{FirewallBackend, FirewallMode, RawConfig};
pub use server::{Server, ServerConfig};
pub use socket::{DefaultBinder, Interface, PathInfo, SocketBinder};
