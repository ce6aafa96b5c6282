//! Paths: a local interface (with its address) plus the remote address it reaches.

use std::net::SocketAddr;

/// Identifies a local interface. Assigned by the application or runtime (e.g. the OS interface
/// index), stable while the interface exists.
pub type PathId = u32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InterfaceKind {
    Wifi,
    Cellular,
    Wired,
    #[default]
    Other,
}

impl InterfaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InterfaceKind::Wifi => "wifi",
            InterfaceKind::Cellular => "cellular",
            InterfaceKind::Wired => "wired",
            InterfaceKind::Other => "other",
        }
    }

    /// Metered: counts against the cellular budget and obeys `allow_cellular`.
    pub fn is_cellular(self) -> bool {
        self == InterfaceKind::Cellular
    }
}

impl std::fmt::Display for InterfaceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for InterfaceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wifi" | "wlan" => Ok(InterfaceKind::Wifi),
            "cellular" | "cell" | "mobile" => Ok(InterfaceKind::Cellular),
            "wired" | "ethernet" => Ok(InterfaceKind::Wired),
            "other" => Ok(InterfaceKind::Other),
            _ => Err(format!(
                "unknown interface kind '{s}' (expected wifi, cellular, wired or other)"
            )),
        }
    }
}

/// A local path the connection may open a subflow on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    pub id: PathId,
    pub kind: InterfaceKind,
    /// Local address (and port) subflows on this path are sent from.
    pub local: SocketAddr,
}

impl PathSpec {
    pub fn new(id: PathId, kind: InterfaceKind, local: SocketAddr) -> Self {
        Self { id, kind, local }
    }
}
