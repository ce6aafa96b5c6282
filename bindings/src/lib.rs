//! braid-ffi: the Braid runtime for Swift, Kotlin and Python, through uniffi.
//!
//! Everything here is a thin translation layer over the `braid` crate: records and enums the
//! bindings generator understands, one error enum whose messages are meant for people, and
//! foreign traits for what only the app can do (bind a socket to an Android `Network`, take
//! log lines, hear about path changes).
//!
//! The library owns its tokio runtime ([`runtime`]); async exports run their work there and
//! the foreign side only awaits the result, so no foreign executor ever polls engine code.
//! Nothing may panic across the boundary: every fallible call returns [`BraidError`], and
//! every foreign callback returns a `Result` so a throwing callback becomes an error, not a
//! panic. Should Braid itself panic, the fallible calls turn it into `BraidError::Internal`
//! (`guard`, and `runtime::run` for async work); the infallible ones are caught by
//! uniffi's own `catch_unwind` (an internal-error exception). Both need unwinding, so the
//! `mobile` profile keeps `panic = "unwind"`: a bug in Braid must not abort the host app.

#![warn(missing_docs, unreachable_pub)]

uniffi::setup_scaffolding!();

mod cancel;
mod client;
mod connection;
mod error;
mod logging;
mod proxy;
pub mod runtime;
mod stream;
mod tls;
mod types;

pub use cancel::BraidCancelToken;
pub use client::{BraidClient, SocketBinder};
pub use connection::{BraidConnection, BraidEventListener, BraidEventStream, BraidSubscription};
pub use error::{BraidError, CallbackError};
pub use logging::{LogLevel, LogSink, init_logging};
pub use proxy::{BraidProxy, BraidProxyConfig, BraidProxyStats};
pub use tls::BraidTlsOptions;
pub use types::*;

/// The test network is linked into the library only for the foreign-language tests.
#[cfg(feature = "testing")]
pub use braid_ffi_testing;

/// Locks a mutex even if a panic elsewhere poisoned it: one failure must not make every
/// later call fail too.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the body of an exported call: a panic in it becomes [`BraidError::Internal`] (with
/// the panic message) instead of unwinding into foreign code or aborting the app.
pub(crate) fn guard<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, BraidError>,
) -> Result<T, BraidError> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // The foreign-language tests ask for a panic here to see it come out as an error.
        #[cfg(feature = "testing")]
        if braid_ffi_testing::take_panic_request(what) {
            panic!("panic requested by a test");
        }
        f()
    }));
    r.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        log::error!("{what} panicked: {msg}");
        Err(BraidError::Internal(format!("{what} panicked: {msg}")))
    })
}

/// The version of this library, for bug reports.
#[uniffi::export]
pub fn braid_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
