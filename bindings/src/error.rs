//! The one error enum of the API, and the error foreign callbacks may throw.

/// What went wrong, with a message meant for a person (the exception message in Kotlin and
/// Python, `message` in the Swift layer). Flat: the foreign side gets the variant and the
/// message, which is all an app can act on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum BraidError {
    /// A bad address, interface or setting passed in by the app.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A host name could not be resolved.
    #[error("{0}")]
    Resolve(String),
    /// No interface could open a socket towards the remote (all down, or binding failed).
    #[error("{0}")]
    NoUsableInterface(String),
    /// The OS refused to bind a socket to an interface (Android: the app lacks
    /// CHANGE_NETWORK_STATE, or the network is gone).
    #[error("{0}")]
    Interface(String),
    /// The handshake did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// The Braid server or gateway could not be reached or did not accept the connection.
    #[error("{0}")]
    ConnectFailed(String),
    /// The gateway's allowlist does not include the target.
    #[error("{0}")]
    NotAllowed(String),
    /// The gateway requires a client token and got none, or not one it accepts
    /// (`BraidConfig.token`).
    #[error("{0}")]
    Unauthorized(String),
    /// The gateway reached the target's host, but the target refused the connection.
    #[error("{0}")]
    Refused(String),
    /// The gateway could not reach the target (no route, timed out, or another gateway error).
    #[error("{0}")]
    Unreachable(String),
    /// The connection is over: closed by the app, reset by the peer, or every path died.
    #[error("{0}")]
    Closed(String),
    /// The TLS server's certificate failed the check (unknown issuer, expired, wrong
    /// name, ...): the connection was not made.
    #[error("certificate rejected: {0}")]
    CertificateRejected(String),
    /// The TLS handshake failed for another reason (protocol versions, ALPN, an alert from
    /// the server).
    #[error("{0}")]
    Tls(String),
    /// The operation was cancelled (the awaiting coroutine or task went away).
    #[error("operation cancelled")]
    Cancelled,
    /// The feature exists in the API but not in this build yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// Logging was already set up by other Rust code in the app.
    #[error("{0}")]
    Logging(String),
    /// A socket or OS error not covered above.
    #[error("I/O error: {0}")]
    Io(String),
    /// A bug in Braid; please report it with the message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<braid::Error> for BraidError {
    fn from(e: braid::Error) -> Self {
        use braid::Error as E;
        use braid::convert::ErrorCode;
        let msg = e.to_string();
        match e {
            E::InvalidArgument(_) | E::InterfaceNotFound(_) => BraidError::InvalidArgument(msg),
            E::Resolve { .. } => BraidError::Resolve(msg),
            E::NoUsableInterface(_) => BraidError::NoUsableInterface(msg),
            E::PermissionDenied { .. }
            | E::AddressNotAvailable { .. }
            | E::Bind { .. }
            | E::NotPermitted { .. } => BraidError::Interface(msg),
            // The raw carrier (Linux servers and test boxes) is not for apps.
            E::FirewallRuleMissing { .. } => BraidError::Io(msg),
            E::ConnectTimeout { .. } | E::ConvertTimeout { .. } => BraidError::Timeout(msg),
            E::TokenRequired { .. } | E::TokenRejected { .. } | E::TokenUnusable { .. } => {
                BraidError::Unauthorized(msg)
            }
            E::TokenFile { .. } => BraidError::InvalidArgument(msg),
            E::ConnectFailed { .. } | E::Listen { .. } => BraidError::ConnectFailed(msg),
            E::NotAllowed { .. } => BraidError::NotAllowed(msg),
            // The gateway got no answer from the target in time: a timeout for the app too.
            E::Gateway {
                timed_out: true, ..
            } => BraidError::Timeout(msg),
            E::Gateway { code, .. } => match code {
                // RFC 8803 has no "refused" code: a RST or ECONNREFUSED from the target is
                // reported as Connection Reset.
                ErrorCode::ConnectionReset => BraidError::Refused(msg),
                ErrorCode::NotAuthorized => BraidError::NotAllowed(msg),
                _ => BraidError::Unreachable(msg),
            },
            E::Convert(_) => BraidError::ConnectFailed(format!("gateway: {msg}")),
            E::Closed(_) | E::EndpointClosed => BraidError::Closed(msg),
            E::Unsupported(what) => BraidError::Unsupported(what.to_string()),
            E::Io(io) => from_io(io),
            E::Tls(t) => tls_error(t),
            E::TooManyConnections => BraidError::ConnectFailed(msg),
            // An error a newer runtime adds before this mapping names it.
            _ => BraidError::Internal(msg),
        }
    }
}

fn tls_error(e: braid::tls::rustls::Error) -> BraidError {
    use braid::tls::rustls::Error as T;
    match e {
        T::InvalidCertificate(_) | T::NoCertificatesPresented => {
            BraidError::CertificateRejected(e.to_string())
        }
        other => BraidError::Tls(format!("TLS handshake failed: {other}")),
    }
}

/// Errors from reads and writes arrive as `io::Error`s carrying a `braid::Error`.
pub(crate) fn from_io(e: std::io::Error) -> BraidError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => {
            BraidError::Closed(e.to_string())
        }
        K::TimedOut => BraidError::Closed(e.to_string()),
        _ => BraidError::Io(e.to_string()),
    }
}

/// What a foreign callback ([`crate::SocketBinder`], [`crate::LogSink`],
/// [`crate::BraidEventListener`]) may throw. Any other exception is caught too and turned
/// into this; Braid logs it and carries on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed; `reason` says how.
    #[error("{reason}")]
    Failed {
        /// The foreign exception's message.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed {
            reason: format!("callback threw: {}", e.reason),
        }
    }
}
