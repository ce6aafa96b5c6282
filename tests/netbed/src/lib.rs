//! braid-netbed: a two-path phone testbed in network namespaces.
//!
//! ```text
//!  phone namespace (brp-<pid>-<n>)                    server namespace (brs-<pid>-<n>)
//!  c-wifi 10.31.1.1/24 [TUN] <== relay: wifi ==> [TUN] s-wifi 10.31.1.2/24   40 Mbit/s, 10 ms
//!  c-cell 10.31.2.1/24 [TUN] <== relay: cell ==> [TUN] s-cell 10.31.2.2/24   20 Mbit/s, 30 ms
//! ```
//!
//! Each link is a pair of TUN devices, one per namespace. A relay thread in this process reads
//! the IP packets one side sends and writes them to the other side when the link model
//! (`braid_proto::sim::link::Link`: rate, drop-tail queue, one-way delay, loss, reordering,
//! duplication, outages) says they arrive, independently per direction. No netem, no NFQUEUE,
//! no helper program: the kernel on this machine has neither netem nor a need for them.
//!
//! - [`Testbed`]: namespaces, links, policy routing, MPTCP settings, live link control,
//!   counters, running code and commands in a namespace. `Drop` removes everything.
//! - [`kernel`]: the kernel's MPTCP from Rust (listener, connect, `MPTCP_INFO`, subflows).
//! - [`transfer`]: bulk transfers with SHA-256 at both ends and 10 ms progress samples.
//! - [`probe`]: a UDP echo RTT probe between the namespaces.
//!
//! Everything here needs root (network namespaces, TUN); tests call [`root_or_skip`] first.

pub mod bench;
mod cmd;
pub mod kernel;
mod ns;
pub mod probe;
mod relay;
mod routing;
mod testbed;
pub mod transfer;
mod tun;

use std::fmt;
use std::net::Ipv4Addr;

pub use braid_proto::sim::link::{Counter, LinkConfig, LinkStats};
pub use cmd::{check_prerequisites, is_root, root_or_skip};
pub use ns::{delete_namespace, exists as namespace_exists};
pub use probe::{Bind, RttStats};
pub use relay::{DirectionCounters, LinkCounters};
pub use routing::Endpoint;
pub use testbed::{LinkSetup, Testbed, TestbedConfig, default_link_config};

/// One of the two namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Phone,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Phone => Side::Server,
            Side::Server => Side::Phone,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Phone => "phone",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Direction of travel on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Phone -> server (uplink).
    Up,
    /// Server -> phone (downlink).
    Down,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }

    /// The direction whose packets `side` sends.
    pub fn from_sender(side: Side) -> Direction {
        match side {
            Side::Phone => Direction::Up,
            Side::Server => Direction::Down,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One of the two emulated links. The addressing is fixed; namespaces keep instances apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    Wifi,
    Cell,
}

impl Link {
    pub const ALL: [Link; 2] = [Link::Wifi, Link::Cell];
    pub const PREFIX_LEN: u8 = 24;

    /// 0 for WiFi, 1 for cell (for arrays indexed by link).
    pub fn index(self) -> usize {
        match self {
            Link::Wifi => 0,
            Link::Cell => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Link::Wifi => "wifi",
            Link::Cell => "cell",
        }
    }

    /// Parses "wifi" / "cell".
    pub fn parse(s: &str) -> Option<Link> {
        match s {
            "wifi" => Some(Link::Wifi),
            "cell" | "cellular" => Some(Link::Cell),
            _ => None,
        }
    }

    fn subnet(self) -> u8 {
        match self {
            Link::Wifi => 1,
            Link::Cell => 2,
        }
    }

    /// The address of this link's interface on `side`: 10.31.{1,2}.{1 phone, 2 server}.
    pub fn addr(self, side: Side) -> Ipv4Addr {
        let host = match side {
            Side::Phone => 1,
            Side::Server => 2,
        };
        Ipv4Addr::new(10, 31, self.subnet(), host)
    }

    /// "10.31.1.0/24".
    pub fn prefix(self) -> String {
        format!("10.31.{}.0/{}", self.subnet(), Self::PREFIX_LEN)
    }

    /// Interface name on `side`: c-wifi / c-cell on the phone, s-wifi / s-cell on the server.
    pub fn iface(self, side: Side) -> &'static str {
        match (side, self) {
            (Side::Phone, Link::Wifi) => "c-wifi",
            (Side::Phone, Link::Cell) => "c-cell",
            (Side::Server, Link::Wifi) => "s-wifi",
            (Side::Server, Link::Cell) => "s-cell",
        }
    }

    /// Policy routing table of this link (both namespaces).
    pub fn table(self) -> u32 {
        100 + u32::from(self.subnet())
    }

    pub(crate) fn rule_pref_from(self) -> u32 {
        1000 + u32::from(self.subnet())
    }

    pub(crate) fn rule_pref_oif(self) -> u32 {
        1010 + u32::from(self.subnet())
    }

    /// Metric of the phone's default route through this link: WiFi is preferred.
    pub(crate) fn default_metric(self) -> u32 {
        100 * u32::from(self.subnet())
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
