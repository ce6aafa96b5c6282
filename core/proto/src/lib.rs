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
// TODO(issue 19): `#![warn(missing_docs, unreachable_pub)]` for the whole crate once conn/,
// subflow/, endpoint.rs, sched/, policy.rs, path.rs and wire/ document every public item;
// until then the modules that do carry the lint themselves (`#![warn(...)]` at their top).

pub mod addr_scope;
pub mod cc;
pub mod conn;
pub mod endpoint;
pub mod frame;
#[cfg(feature = "testing")]
pub mod harness;
pub mod path;
pub mod policy;
pub mod random;
pub mod range_set;
pub mod sched;
pub mod seq;
#[cfg(feature = "testing")]
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
