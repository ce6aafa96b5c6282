//! Deterministic network simulator: links with rate, delay, queue, loss, reordering, duplication
//! and outages, in virtual time.

pub mod link;

pub use link::{Counter, DropReason, Fate, Link, LinkConfig, LinkStats};
