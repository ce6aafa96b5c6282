//! Errors as the user sees them: one line, `braid: error: ...`, and an exit status.

use braid::Error;
use std::io;

/// Why a command failed, ready to print.
#[derive(Debug)]
pub struct Failure {
    pub msg: String,
    pub code: i32,
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// A runtime failure (exit status 1).
    pub fn new(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            code: 1,
        }
    }

    /// A bad command line (exit status 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            code: 2,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::InvalidArgument(_) | Error::TokenFile { .. } => 2,
            _ => 1,
        };
        Failure {
            msg: describe(&e),
            code,
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::new(io_msg(&e))
    }
}

/// Prints the failure as one line.
pub fn print(f: &Failure) {
    eprintln!("braid: error: {}", one_line(&f.msg));
}

pub fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An OS error in words, without the "(os error N)" suffix.
pub fn io_msg(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_string(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset".to_string(),
        io::ErrorKind::TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    };
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The runtime's errors, reworded where a hint helps.
pub fn describe(e: &Error) -> String {
    match e {
        Error::InterfaceNotFound(name) => format!("unknown interface '{name}'"),
        Error::PermissionDenied { interface, source } => format!(
            "permission denied binding a socket to interface {interface} ({}): \
             run as root or grant CAP_NET_RAW",
            io_msg(source)
        ),
        Error::AddressNotAvailable { interface, source } => format!(
            "interface {interface} has no usable address ({})",
            io_msg(source)
        ),
        Error::Bind { interface, source } => {
            format!(
                "cannot open a socket on interface {interface}: {}",
                io_msg(source)
            )
        }
        Error::Listen { addr, source } => {
            format!("cannot listen on {addr}: {}", io_msg(source))
        }
        Error::Unsupported("the raw carrier outside Linux") => {
            "the raw carrier needs Linux (raw sockets): use --carrier udp".to_string()
        }
        Error::ConnectTimeout { remote, after } => format!(
            "no answer from {remote} within {:.1}s: is a braid gateway or server running there?",
            after.as_secs_f64()
        ),
        Error::ConnectFailed { remote, reason } => {
            format!("cannot connect to {remote}: {reason}")
        }
        Error::NotAllowed { target } => {
            format!("target {target} not allowed by the gateway (not in its --allow list)")
        }
        Error::Gateway {
            target,
            code,
            timed_out,
        } => {
            let late = if *timed_out { " (timed out)" } else { "" };
            format!("the gateway could not connect to {target}: {code}{late}")
        }
        Error::TokenRequired { gateway } => {
            format!("the gateway {gateway} requires a client token: pass --token")
        }
        Error::TokenRejected { gateway } => format!(
            "the gateway {gateway} refused the client token (not one of its --token-file secrets)"
        ),
        Error::ConvertTimeout { gateway, after } => format!(
            "{gateway} accepted the connection but did not answer the Convert request within {:.1}s: is it a braid gateway?",
            after.as_secs_f64()
        ),
        Error::Io(io) => io_msg(io),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_lose_the_os_number() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(io_msg(&e), "address already in use");
        let e = io::Error::from_raw_os_error(libc::ENODEV);
        assert!(!io_msg(&e).contains("os error"), "{}", io_msg(&e));
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a b c");
    }

    #[test]
    fn not_allowed_says_so() {
        let e = Error::NotAllowed {
            target: "127.0.0.1:9".into(),
        };
        assert!(describe(&e).contains("not allowed"));
    }
}
