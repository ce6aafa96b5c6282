//! The namespace benchmark (`braid-netbench`, `cargo xtask bench netns`): Braid (the `braid
//! bench` CLI, UDP and raw carriers) side by side with the Linux kernel's MPTCP on the
//! two-path testbed, in one run.
//!
//! - [`plan`]: stacks, workloads, link actions, what one run produced ([`plan::Trace`]).
//! - [`clock`]: CLOCK_MONOTONIC, the time axis shared with the `braid` processes.
//! - [`kernel_peer`]: the kernel's MPTCP as client and server (bulk and echo).
//! - [`braid_peer`]: `braid bench server` / `braid bench client` in the namespaces.
//! - [`runner`]: one run of a stack with actions on the WiFi link at set times.
//! - [`metrics`]: goodput windows, stalls, recovery, quantiles, min / median / max.
//! - [`scenarios`]: the five scenarios and their tables.
//! - [`svg`]: SVG timelines.

pub mod braid_peer;
pub mod clock;
pub mod kernel_peer;
pub mod metrics;
pub mod plan;
pub mod runner;
pub mod scenarios;
pub mod svg;
