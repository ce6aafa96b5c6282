//! braid-proto: a sans-IO Multipath TCP v1 (RFC 8684) engine.
//!
//! Nothing in this crate performs I/O, reads a clock or spawns threads: the caller feeds
//! segments and time in, and polls segments, timers and events out (the quinn-proto model).
//!
//! - [`wire`]: TCP and MPTCP option codecs, TCP-in-UDP framing, checksums, MPTCP crypto.
//! - [`subflow`]: one TCP subflow (handshake, SACK, RACK, RTO, congestion control).
//! - [`conn`]: one MPTCP connection (data sequence space, buffers, subflows, reinjection).
//! - [`endpoint`]: demultiplexing and the listening side.
//! - [`sched`], [`policy`], [`cc`]: schedulers, service types, congestion control.
//! - `sim` and `harness` (feature `testing` only): a deterministic network simulator and a
//!   bulk-transfer application for tests, benchmarks and the demo; not in the shipped library.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod addr_scope;
pub mod cc;
pub mod conn;
pub mod endpoint;
pub mod frame;
#[cfg(feature = "testing")]
// Test scaffolding (feature `testing`), not in the shipped library: its items are named for
// what they model and documented where the meaning is not plain.
#[allow(missing_docs)]
pub mod harness;
pub mod path;
pub mod policy;
pub mod random;
pub mod range_set;
pub mod sched;
pub mod seq;
#[cfg(feature = "testing")]
// Test scaffolding, like `harness`.
#[allow(missing_docs)]
pub mod sim;
pub mod subflow;
pub mod syn_cookie;
pub mod wire;

pub use conn::{
    CloseError, ConnState, Connection, ConnectionConfig, ConnectionStats, Event, PathStats,
    ReadError, SwitchReason, Transmit, WriteError,
};
pub use endpoint::{ConnectionHandle, Endpoint, EndpointConfig};
pub use frame::Framing;
pub use path::{InterfaceKind, PathId, PathSpec};
pub use policy::{Policy, ServiceType};
pub use sched::SchedulerKind;
