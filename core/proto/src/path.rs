//! Paths: a local interface (with its address) plus the remote address it reaches.

use std::net::SocketAddr;

/// Identifies a local interface. Assigned by the application or runtime (e.g. the OS interface
/// index), stable while the interface exists.
///
/// A type of its own so that a path cannot be mixed up with a subflow id, a count or an
/// interface index by accident: build one with [`PathId::new`] (or `From<u32>`) at the point
/// where a number becomes a path, and read the number back with [`PathId::get`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(u32);

impl PathId {
    /// The path numbered `id`.
    pub const fn new(id: u32) -> Self {
        PathId(id)
    }

    /// The number this path was created with.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for PathId {
    fn from(id: u32) -> Self {
        PathId(id)
    }
}

impl From<PathId> for u32 {
    fn from(p: PathId) -> Self {
        p.0
    }
}

/// Prints the bare number, as logs and the CLI always have.
impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of network interface a path runs over; it decides cost rules (cellular is metered)
/// and which path a service type prefers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InterfaceKind {
    /// Wireless LAN.
    Wifi,
    /// Mobile data: metered, used as the backup by handover service.
    Cellular,
    /// Ethernet or another fixed link.
    Wired,
    /// Unknown or anything else (loopback, VPN, …).
    #[default]
    Other,
}

impl InterfaceKind {
    /// The lower-case name, as the command line and metrics spell it.
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
    /// The application's id for this path.
    pub id: PathId,
    /// The interface type the path runs over.
    pub kind: InterfaceKind,
    /// Local address (and port) subflows on this path are sent from.
    pub local: SocketAddr,
}

impl PathSpec {
    /// A path `id` of type `kind`, sending from `local`.
    pub fn new(id: PathId, kind: InterfaceKind, local: SocketAddr) -> Self {
        Self { id, kind, local }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_id_round_trips_and_prints_its_number() {
        let p = PathId::new(42);
        assert_eq!(p.get(), 42);
        assert_eq!(PathId::from(42u32), p);
        assert_eq!(u32::from(p), 42);
        assert_eq!(p.to_string(), "42");
        assert!(PathId::new(1) < PathId::new(2));
    }
}
