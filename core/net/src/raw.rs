//! The raw carrier (Linux): genuine TCP segments on raw IP sockets, so that Braid speaks real
//! Multipath TCP on the wire and interoperates with the Linux kernel's MPTCP.
//!
//! - One raw socket (`socket(AF_INET{,6}, SOCK_RAW, IPPROTO_TCP)`) per path, bound to the
//!   path's interface (`SO_BINDTOIFINDEX`, through the [`SocketBinder`](crate::SocketBinder)) and local address;
//!   a listening server has one, bound to its listen address.
//! - Sent segments are the engine's `Framing::Tcp` output, checksum included; the kernel adds
//!   the IP header. Every segment carries the mark [`RawConfig::mark`] (`SO_MARK`).
//! - IPv4 raw sockets receive the IP header (stripped here, after reading both addresses);
//!   IPv6 ones do not (the destination comes from `IPV6_PKTINFO` on a wildcard-bound socket).
//!   A classic BPF filter keeps only segments to the socket's TCP port, and the same check is
//!   repeated here.
//! - **Ports.** Client paths take a port from [`RawConfig::ports`] (default 61000–61999, above
//!   the kernel's default ephemeral range 32768–60999) and *reserve* it by binding, without
//!   listening, a kernel TCP socket to the same address and port for as long as the path
//!   lives: no kernel socket can take it meanwhile, and two Braid processes never pick the same
//!   port. A server reserves its listen address the same way.
//! - **RSTs.** The local kernel sees every segment too and, finding no socket for it, answers
//!   with a RST. A firewall rule drops outgoing RSTs from Braid's ports that do not carry the
//!   mark (see [`firewall`]); the stack's own RSTs carry it and go out.
//!
//! Kernel peers on the same host over `lo` are not supported: the kernel leaves their
//! checksums to the (absent) hardware, and a raw socket sees them unfinished.

use std::ops::RangeInclusive;

/// Default `SO_MARK` of the raw carrier's segments.
pub const DEFAULT_MARK: u32 = 0xb4a1d;

/// Default local ports of client paths: just above the kernel's default ephemeral range.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 61000..=61999;

/// What to do about the firewall rule that keeps the kernel from resetting Braid's segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirewallMode {
    /// Install the rule (and add the ports to it) when missing: needs CAP_NET_ADMIN and `nft`
    /// (or `iptables`).
    #[default]
    Install,
    /// Only check that the rule is there; fail with the command to run when it is not.
    Require,
    /// Do not look: the operator keeps the kernel's RSTs away by other means.
    Unmanaged,
}

/// Which tool manages the rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirewallBackend {
    /// `nft` when installed, else `iptables`/`ip6tables`.
    #[default]
    Auto,
    /// `nft` only.
    Nft,
    /// `iptables`/`ip6tables` only.
    Iptables,
}

/// Settings of the raw carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawConfig {
    /// `SO_MARK` on every segment the stack sends; the firewall rule lets marked RSTs through.
    pub mark: u32,
    /// Local TCP ports of client paths.
    pub ports: RangeInclusive<u16>,
    /// Whether to install the firewall rule or only check that it is there.
    pub firewall: FirewallMode,
    /// Which tool manages the rule.
    pub backend: FirewallBackend,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            mark: DEFAULT_MARK,
            ports: DEFAULT_PORTS,
            firewall: FirewallMode::Install,
            backend: FirewallBackend::Auto,
        }
    }
}

impl RawConfig {
    /// With this `SO_MARK`.
    pub fn with_mark(mut self, mark: u32) -> Self {
        self.mark = mark;
        self
    }

    /// With these local ports for client paths.
    pub fn with_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.ports = ports;
        self
    }

    /// With this way of handling the firewall rule.
    pub fn with_firewall(mut self, mode: FirewallMode) -> Self {
        self.firewall = mode;
        self
    }

    /// With this firewall tool.
    pub fn with_backend(mut self, backend: FirewallBackend) -> Self {
        self.backend = backend;
        self
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod firewall;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use sys::{RawSocket, open_listen, open_path, prepare};
