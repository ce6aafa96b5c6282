//! The one error type of the crate.

use crate::convert::{ConvertError, ErrorCode};
use braid_proto::CloseError;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {0} not found")]
    InterfaceNotFound(String),
    #[error("permission denied binding a socket to interface {interface}: {source}")]
    PermissionDenied {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("address not available on interface {interface}: {source}")]
    AddressNotAvailable {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a socket on interface {interface}: {source}")]
    Bind {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("no usable interface to reach {0}")]
    NoUsableInterface(SocketAddr),
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("connecting to {remote} timed out after {after:?}")]
    ConnectTimeout { remote: SocketAddr, after: Duration },
    #[error("connecting to {remote} failed: {reason}")]
    ConnectFailed {
        remote: SocketAddr,
        reason: CloseError,
    },
    #[error("connection closed: {0}")]
    Closed(CloseError),
    /// The gateway's allowlist does not cover the target (or any address of its name).
    #[error("the gateway does not allow connections to {target}")]
    NotAllowed { target: String },
    /// The gateway could not connect to the target. `code` says why: Connection Reset when
    /// the destination refused, Destination Unreachable otherwise, with `timed_out` set when
    /// it did not answer in time. (A name the gateway cannot resolve is [`Error::Resolve`].)
    #[error("the gateway could not connect to {target}: {code}{}", if *timed_out { " (timed out)" } else { "" })]
    Gateway {
        target: String,
        code: ErrorCode,
        timed_out: bool,
    },
    /// The gateway wants a client token and none was configured.
    #[error("the gateway {gateway} requires a client token and none was given")]
    TokenRequired { gateway: SocketAddr },
    /// The gateway did not accept the client token (wrong secret).
    #[error("the gateway {gateway} refused the client token")]
    TokenRejected { gateway: SocketAddr },
    /// The connection fell back to plain TCP, which has no MPTCP keys to bind a token to.
    #[error(
        "the connection to the gateway {gateway} fell back to plain TCP (something on the path strips MPTCP options): a client token cannot be sent over it"
    )]
    TokenUnusable { gateway: SocketAddr },
    /// The gateway accepted the connection but never answered the Convert message.
    #[error("the gateway {gateway} did not answer the Convert request within {after:?}")]
    ConvertTimeout {
        gateway: SocketAddr,
        after: Duration,
    },
    /// A gateway token file that cannot be used.
    #[error("token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error("bad Convert message: {0}")]
    Convert(#[from] ConvertError),
    #[error("the endpoint's driver has stopped")]
    EndpointClosed,
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("too many connections")]
    TooManyConnections,
    /// The process lacks a privilege (raw carrier: CAP_NET_RAW, CAP_NET_ADMIN).
    #[error("permission denied: {what}")]
    NotPermitted { what: &'static str },
    /// The raw carrier's firewall rule (dropping the kernel's RSTs) is missing and could not
    /// be installed; `rule` is the command that installs it.
    #[error(
        "the raw carrier needs a firewall rule dropping the kernel's TCP RSTs from its ports, and it is missing ({reason}); install it as root with: {rule}"
    )]
    FirewallRuleMissing { rule: String, reason: String },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
