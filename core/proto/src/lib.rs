//! braid-proto: a sans-IO Multipath TCP v1 (RFC 8684) engine.
//!
//! Nothing in this crate performs I/O, reads a clock or spawns threads: the caller feeds
//! segments and time in, and polls segments, timers and events out (the quinn-proto model).

pub mod cc;
pub mod random;
pub mod sim;
pub mod wire;
