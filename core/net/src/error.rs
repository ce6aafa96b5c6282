//! The one error type of the crate.

use crate::convert::{ConvertError, ErrorCode};
use braid_proto::CloseError;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong in the runtime: setting up sockets, connecting (directly or through a
/// gateway), the connection itself, TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No interface has this name.
    #[error("interface {0} not found")]
    InterfaceNotFound(String),
    /// Binding a socket to the interface needs a privilege the process lacks.
    #[error("permission denied binding a socket to interface {interface}: {source}")]
    PermissionDenied {
        /// The interface.
        interface: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The interface has no such local address (any more).
    #[error("address not available on interface {interface}: {source}")]
    AddressNotAvailable {
        /// The interface.
        interface: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Another failure opening or binding a path's socket.
    #[error("cannot open a socket on interface {interface}: {source}")]
    Bind {
        /// The interface.
        interface: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A server or gateway could not bind its listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// None of the client's interfaces can reach this address (family, scope).
    #[error("no usable interface to reach {0}")]
    NoUsableInterface(SocketAddr),
    /// A feature this build or platform does not have.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// The application passed a value that cannot work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// Why, in words.
        reason: String,
    },
    /// No path completed the handshake in time.
    #[error("connecting to {remote} timed out after {after:?}")]
    ConnectTimeout {
        /// The server.
        remote: SocketAddr,
        /// The connect timeout.
        after: Duration,
    },
    /// The handshake failed (reset, refused…).
    #[error("connecting to {remote} failed: {reason}")]
    ConnectFailed {
        /// The server.
        remote: SocketAddr,
        /// How the engine ended the attempt.
        reason: CloseError,
    },
    /// The connection is over; reads and writes fail with this.
    #[error("connection closed: {0}")]
    Closed(CloseError),
    /// The gateway's allowlist does not cover the target (or any address of its name).
    #[error("the gateway does not allow connections to {target}")]
    NotAllowed {
        /// The target asked for (`host:port`).
        target: String,
    },
    /// The gateway could not connect to the target. `code` says why: Connection Reset when
    /// the destination refused, Destination Unreachable otherwise, with `timed_out` set when
    /// it did not answer in time. (A name the gateway cannot resolve is [`Error::Resolve`].)
    #[error("the gateway could not connect to {target}: {code}{}", if *timed_out { " (timed out)" } else { "" })]
    Gateway {
        /// The target asked for (`host:port`).
        target: String,
        /// The gateway's error code (RFC 8803 error TLV).
        code: ErrorCode,
        /// The destination did not answer in time.
        timed_out: bool,
    },
    /// The gateway wants a client token and none was configured.
    #[error("the gateway {gateway} requires a client token and none was given")]
    TokenRequired {
        /// The gateway.
        gateway: SocketAddr,
    },
    /// The gateway did not accept the client token (wrong secret).
    #[error("the gateway {gateway} refused the client token")]
    TokenRejected {
        /// The gateway.
        gateway: SocketAddr,
    },
    /// The connection fell back to plain TCP, which has no MPTCP keys to bind a token to.
    #[error(
        "the connection to the gateway {gateway} fell back to plain TCP (something on the path strips MPTCP options): a client token cannot be sent over it"
    )]
    TokenUnusable {
        /// The gateway.
        gateway: SocketAddr,
    },
    /// The gateway accepted the connection but never answered the Convert message.
    #[error("the gateway {gateway} did not answer the Convert request within {after:?}")]
    ConvertTimeout {
        /// The gateway.
        gateway: SocketAddr,
        /// How long the client waited.
        after: Duration,
    },
    /// A gateway token file that cannot be used.
    #[error("token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gateway's Convert message (RFC 8803) did not parse.
    #[error("bad Convert message: {0}")]
    Convert(#[from] ConvertError),
    /// The endpoint's driver task is gone (the client or server was dropped).
    #[error("the endpoint's driver has stopped")]
    EndpointClosed,
    /// TLS failed (handshake, certificate, record).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The endpoint is at its connection limit.
    #[error("too many connections")]
    TooManyConnections,
    /// The process lacks a privilege (raw carrier: CAP_NET_RAW, CAP_NET_ADMIN).
    #[error("permission denied: {what}")]
    NotPermitted {
        /// What needed it.
        what: &'static str,
    },
    /// The raw carrier's firewall rule (dropping the kernel's RSTs) is missing and could not
    /// be installed; `rule` is the command that installs it.
    #[error(
        "the raw carrier needs a firewall rule dropping the kernel's TCP RSTs from its ports, and it is missing ({reason}); install it as root with: {rule}"
    )]
    FirewallRuleMissing {
        /// The command that installs the rule.
        rule: String,
        /// Why it could not be installed.
        reason: String,
    },
    /// Another I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// An `io::Error` carrying this error, for the `AsyncRead`/`AsyncWrite` paths.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            Error::Closed(CloseError::Reset) => {
                io::Error::new(io::ErrorKind::ConnectionReset, self)
            }
            Error::Closed(CloseError::Aborted) => {
                io::Error::new(io::ErrorKind::ConnectionAborted, self)
            }
            Error::Closed(CloseError::TimedOut) => io::Error::new(io::ErrorKind::TimedOut, self),
            Error::Closed(_) => io::Error::new(io::ErrorKind::BrokenPipe, self),
            other => io::Error::other(other),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
