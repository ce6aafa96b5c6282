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
//! panic (the mobile profile aborts on panic).

uniffi::setup_scaffolding!();

mod cancel;
mod client;
mod connection;
mod error;
mod logging;
pub mod runtime;
mod types;

pub use cancel::BraidCancelToken;
pub use client::{BraidClient, SocketBinder};
pub use connection::{BraidConnection, BraidEventListener, BraidEventStream, BraidSubscription};
pub use error::{BraidError, CallbackError};
pub use logging::{LogLevel, LogSink, init_logging};
pub use types::*;

/// The test network is linked into the library only for the foreign-language tests.
#[cfg(feature = "testing")]
pub use braid_ffi_testing;

/// Locks a mutex even if a panic elsewhere poisoned it: one failure must not make every
/// later call fail too.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The version of this library, for bug reports.
#[uniffi::export]
pub fn braid_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
