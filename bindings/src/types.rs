//! Records and enums that cross the FFI, and their conversions to and from `braid`.
//!
//! Durations are milliseconds (`u64`), not uniffi's Duration: that maps to
//! `java.time.Duration`, which Android only has from API 26 (we support 23). Addresses are
//! strings (`"192.0.2.1:443"`, `"[2001:db8::1]:443"`), parsed here with clear errors.

use crate::error::BraidError;
use std::net::{IpAddr, SocketAddr};

/// What the app wants from its paths (docs/ARCHITECTURE.md, "Paths and service types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ServiceType {
    /// Everything on the preferred interface; cellular only as a backup.
    Handover,
    /// Lowest latency: both paths up, switch as soon as the preferred one degrades.
    Interactive,
    /// Every path at once, for throughput.
    Aggregate,
    /// Every byte on every path.
    Redundant,
}

impl From<ServiceType> for braid::ServiceType {
    fn from(s: ServiceType) -> Self {
        match s {
            ServiceType::Handover => braid::ServiceType::Handover,
            ServiceType::Interactive => braid::ServiceType::Interactive,
            ServiceType::Aggregate => braid::ServiceType::Aggregate,
            ServiceType::Redundant => braid::ServiceType::Redundant,
        }
    }
}

/// The type of a network interface: decides which path handover prefers and what counts as
/// cellular.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum InterfaceKind {
    /// Wireless LAN.
    Wifi,
    /// Mobile data: metered, the backup under handover.
    Cellular,
    /// Ethernet or another fixed link.
    Wired,
    /// Anything else (VPN, loopback, unknown).
    Other,
}

impl From<InterfaceKind> for braid::InterfaceKind {
    fn from(k: InterfaceKind) -> Self {
        match k {
            InterfaceKind::Wifi => braid::InterfaceKind::Wifi,
            InterfaceKind::Cellular => braid::InterfaceKind::Cellular,
            InterfaceKind::Wired => braid::InterfaceKind::Wired,
            InterfaceKind::Other => braid::InterfaceKind::Other,
        }
    }
}

impl From<braid::InterfaceKind> for InterfaceKind {
    fn from(k: braid::InterfaceKind) -> Self {
        match k {
            braid::InterfaceKind::Wifi => InterfaceKind::Wifi,
            braid::InterfaceKind::Cellular => InterfaceKind::Cellular,
            braid::InterfaceKind::Wired => InterfaceKind::Wired,
            braid::InterfaceKind::Other => InterfaceKind::Other,
        }
    }
}

/// A local network interface a connection may use. Give the OS index where the platform
/// has one (NWInterface.index, NetworkInterface.index): it becomes the path id, so
/// `interfaceLost(index)` finds it again.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BraidInterface {
    /// The interface type.
    pub kind: InterfaceKind,
    /// OS name (`en0`, `wlan0`, `rmnet_data0`).
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// OS interface index; also the path id when given.
    #[uniffi(default = None)]
    pub index: Option<u32>,
    /// Source IP to use; learned from the OS when absent.
    #[uniffi(default = None)]
    pub local_addr: Option<String>,
    /// Send this path's packets to this `ip:port` instead of the remote: a relay standing in
    /// for the network (the loopback path emulators of the tests).
    #[uniffi(default = None)]
    pub via: Option<String>,
}

impl BraidInterface {
    pub(crate) fn to_braid(&self) -> Result<braid::Interface, BraidError> {
        let mut i = braid::Interface::new(self.kind.into());
        i.name = self.name.clone().filter(|n| !n.is_empty());
        i.index = self.index;
        if let Some(a) = &self.local_addr {
            i.local_addr = Some(a.trim().parse::<IpAddr>().map_err(|_| {
                BraidError::InvalidArgument(format!("local address '{a}' is not an IP address"))
            })?);
        }
        if let Some(v) = &self.via {
            i.via = Some(parse_socket_addr(v, "via address")?);
        }
        Ok(i)
    }

    pub(crate) fn from_braid(i: &braid::Interface) -> Self {
        BraidInterface {
            kind: i.kind.into(),
            name: i.name.clone(),
            index: i.index,
            local_addr: i.local_addr.map(|a| a.to_string()),
            via: i.via.map(|a| a.to_string()),
        }
    }
}

/// An interface the client uses, with the path id the runtime gave it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BraidInterfaceEntry {
    /// The path id the runtime gave the interface.
    pub path_id: u32,
    /// The interface as the app gave it.
    pub interface: BraidInterface,
}

/// What a [`crate::SocketBinder`] is asked to bind a socket for.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BraidPathInfo {
    /// The path the socket is for.
    pub path_id: u32,
    /// The interface it must go out on.
    pub interface: BraidInterface,
    /// Where the socket will send to.
    pub remote: String,
}

/// When cellular may carry data.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CellularRules {
    /// Cellular may be used at all.
    #[uniffi(default = true)]
    pub allowed: bool,
    /// Most bytes one connection may send and receive over cellular; no limit when absent.
    #[uniffi(default = None)]
    pub budget_bytes: Option<u64>,
    /// Open the cellular backup subflow at once (faster handover, keeps the radio awake) or
    /// only when WiFi degrades.
    #[uniffi(default = true)]
    pub eager_backup: bool,
}

/// Settings of a [`crate::BraidClient`]. Every field but the service type has a default.
/// `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct BraidConfig {
    /// No default in the bindings (uniffi cannot default an enum field): pass `Handover`
    /// unless the app needs more.
    pub service_type: ServiceType,
    /// Interfaces to use, preferred first. Empty: one path over the OS default route, and
    /// more as the app reports them with `interfaceAvailable`.
    #[uniffi(default)]
    pub interfaces: Vec<BraidInterface>,
    /// When cellular may carry data.
    #[uniffi(default)]
    pub cellular: CellularRules,
    /// How long `connect` waits for the handshake (and the gateway's answer).
    #[uniffi(default = 15000)]
    pub connect_timeout_ms: u64,
    /// How long a closed connection may take to deliver what it still holds.
    #[uniffi(default = 30000)]
    pub linger_ms: u64,
    /// Move traffic off the preferred path when its smoothed RTT reaches this (and another
    /// path is better).
    #[uniffi(default = 600)]
    pub rtt_threshold_ms: u64,
    /// Move traffic off the preferred path when its retransmission timeout reaches this.
    #[uniffi(default = 1500)]
    pub rto_threshold_ms: u64,
    /// How long the preferred path must look healthy before traffic moves back to it.
    #[uniffi(default = 5000)]
    pub failback_after_ms: u64,
    /// The client token for gateways that require one (`braid gateway --token-file`): one of
    /// the gateway's secrets. Only an HMAC of it over each connection's keys goes on the
    /// wire. `connectVia` fails with `Unauthorized` when the gateway wants another.
    #[uniffi(default = None)]
    pub token: Option<String>,
    /// Ask for DSS checksums (RFC 8684): payloads corrupted on a path are detected, at some
    /// CPU cost. Either side asking turns them on.
    #[uniffi(default = false)]
    pub dss_checksum: bool,
}

impl std::fmt::Debug for BraidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BraidConfig")
            .field("service_type", &self.service_type)
            .field("interfaces", &self.interfaces)
            .field("cellular", &self.cellular)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("linger_ms", &self.linger_ms)
            .field("rtt_threshold_ms", &self.rtt_threshold_ms)
            .field("rto_threshold_ms", &self.rto_threshold_ms)
            .field("failback_after_ms", &self.failback_after_ms)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("dss_checksum", &self.dss_checksum)
            .finish()
    }
}

impl Default for CellularRules {
    fn default() -> Self {
        CellularRules {
            allowed: true,
            budget_bytes: None,
            eager_backup: true,
        }
    }
}

impl Default for BraidConfig {
    fn default() -> Self {
        BraidConfig {
            service_type: ServiceType::Handover,
            interfaces: Vec::new(),
            cellular: CellularRules::default(),
            connect_timeout_ms: 15_000,
            linger_ms: 30_000,
            rtt_threshold_ms: 600,
            rto_threshold_ms: 1500,
            failback_after_ms: 5000,
            token: None,
            dss_checksum: false,
        }
    }
}

impl BraidConfig {
    pub(crate) fn policy(&self) -> Result<braid::Policy, BraidError> {
        use std::time::Duration;
        let ms = |v: u64, what: &str| {
            if v == 0 {
                Err(BraidError::InvalidArgument(format!(
                    "{what} must be more than 0 ms"
                )))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        let mut p = braid::Policy::new(self.service_type.into());
        p.allow_cellular = self.cellular.allowed;
        p.cellular_budget = self.cellular.budget_bytes;
        p.eager_backup = self.cellular.eager_backup;
        p.rtt_threshold = ms(self.rtt_threshold_ms, "rtt_threshold_ms")?;
        p.rto_threshold = ms(self.rto_threshold_ms, "rto_threshold_ms")?;
        p.failback_after = ms(self.failback_after_ms, "failback_after_ms")?;
        Ok(p)
    }
}

/// The default configuration (for languages where record defaults are awkward).
#[uniffi::export]
pub fn braid_default_config() -> BraidConfig {
    BraidConfig::default()
}

/// Why traffic moved from one path to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SwitchReason {
    /// The operating system reported the interface gone.
    InterfaceLost,
    /// Retransmission timeouts piled up on the old path.
    RetransmissionTimeouts,
    /// Nothing came back for well over an RTT with data outstanding.
    Unresponsive,
    /// The old path's round-trip time rose past the threshold.
    HighRtt,
    /// The old path was weak and losing packets.
    Lossy,
    /// The preferred path was healthy long enough: moving back.
    Failback,
    /// The subflow on the old path died.
    SubflowDied,
    /// The app changed the service type or cellular rules.
    PolicyChange,
    /// The cellular byte budget ran out.
    CostControl,
}

impl From<braid::SwitchReason> for SwitchReason {
    fn from(r: braid::SwitchReason) -> Self {
        use braid::SwitchReason as R;
        match r {
            R::InterfaceLost => SwitchReason::InterfaceLost,
            R::RetransmissionTimeouts => SwitchReason::RetransmissionTimeouts,
            R::Unresponsive => SwitchReason::Unresponsive,
            R::HighRtt => SwitchReason::HighRtt,
            R::Lossy => SwitchReason::Lossy,
            R::Failback => SwitchReason::Failback,
            R::SubflowDied => SwitchReason::SubflowDied,
            R::PolicyChange => SwitchReason::PolicyChange,
            R::CostControl => SwitchReason::CostControl,
            // A reason newer than these bindings: the old path stopped serving, which is
            // what `Unresponsive` says without naming a cause.
            _ => SwitchReason::Unresponsive,
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum CloseReason {
    /// Both sides finished: not an error.
    Finished,
    /// The peer aborted the connection.
    Reset,
    /// The handshake never completed.
    ConnectFailed,
    /// Every path died and none came back in time.
    TimedOut,
    /// The app aborted it.
    Aborted,
    /// The peer broke the protocol.
    ProtocolViolation,
}

impl From<&braid::CloseError> for CloseReason {
    fn from(e: &braid::CloseError) -> Self {
        use braid::CloseError as C;
        match e {
            C::Finished => CloseReason::Finished,
            C::Reset => CloseReason::Reset,
            C::ConnectFailed => CloseReason::ConnectFailed,
            C::TimedOut => CloseReason::TimedOut,
            C::Aborted => CloseReason::Aborted,
            C::ProtocolViolation(_) => CloseReason::ProtocolViolation,
            // The first path died before the server announced where to join: no path left.
            C::InitialPathLost => CloseReason::TimedOut,
            // An ending newer than these bindings: abnormal, and not the app's doing.
            _ => CloseReason::Reset,
        }
    }
}

/// A change in a connection's paths or state.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum BraidEvent {
    /// The handshake completed; data can flow.
    Connected,
    /// The peer does not speak MPTCP: plain TCP on one path from now on.
    FellBackToTcp,
    /// A subflow on a path is established.
    PathUp {
        /// The path.
        path_id: u32,
        /// Its interface type.
        kind: InterfaceKind,
    },
    /// The subflow on a path is gone.
    PathDown {
        /// The path.
        path_id: u32,
        /// Its interface type.
        kind: InterfaceKind,
    },
    /// Traffic moved to `to_path` (`from_path` is absent when no path carried it before).
    PathSwitched {
        /// The path traffic left.
        from_path: Option<u32>,
        /// The path that carries it now.
        to_path: u32,
        /// Why it moved.
        reason: SwitchReason,
    },
    /// A path's backup flag changed (ours or the peer's request).
    BackupChanged {
        /// The path.
        path_id: u32,
        /// Whether it is now used only when no other path can send.
        backup: bool,
    },
    /// The peer announced another address (`ip:port`).
    AddressAnnounced {
        /// The address, as `ip:port`.
        address: String,
    },
    /// The cellular byte budget is used up.
    BudgetExhausted {
        /// Bytes cellular carried when the budget ran out.
        bytes: u64,
    },
    /// The connection is over; `detail` says why in words.
    Closed {
        /// How it ended.
        reason: CloseReason,
        /// The same in words, for logs.
        detail: String,
    },
}

impl BraidEvent {
    /// The app-facing form of a runtime event; `None` for transport details the mobile API
    /// does not carry (they are logged).
    pub(crate) fn from_runtime(e: braid::ConnectionEvent) -> Option<Self> {
        use braid::ConnectionEvent as E;
        Some(match e {
            E::Connected => BraidEvent::Connected,
            E::FellBackToTcp => BraidEvent::FellBackToTcp,
            E::PathUp { path, kind } => BraidEvent::PathUp {
                path_id: path.get(),
                kind: kind.into(),
            },
            E::PathDown { path, kind } => BraidEvent::PathDown {
                path_id: path.get(),
                kind: kind.into(),
            },
            E::PathSwitched { from, to, reason } => BraidEvent::PathSwitched {
                from_path: from.map(braid::PathId::get),
                to_path: to.get(),
                reason: reason.into(),
            },
            E::BackupChanged { path, backup } => BraidEvent::BackupChanged {
                path_id: path.get(),
                backup,
            },
            E::AddressAnnounced { addr } => BraidEvent::AddressAnnounced {
                address: addr.to_string(),
            },
            E::BudgetExhausted { bytes } => BraidEvent::BudgetExhausted { bytes },
            E::Closed(c) => BraidEvent::Closed {
                reason: (&c).into(),
                detail: c.to_string(),
            },
            // GSO falling back to single datagrams changes nothing the app can act on.
            E::GsoDisabled { .. } => return None,
            // An event a newer runtime adds before the mobile API carries it (logged).
            _ => return None,
        })
    }
}

/// One path of a connection.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BraidPathStats {
    /// The path (absent for subflows the peer opened).
    pub path_id: Option<u32>,
    /// The interface type, when known.
    pub kind: Option<InterfaceKind>,
    /// Our address, as `ip:port`.
    pub local_addr: Option<String>,
    /// The peer's address, as `ip:port`.
    pub remote_addr: Option<String>,
    /// Subflow state, for display (`established`, `closed`, ...).
    pub state: String,
    /// Used only when no other path can send.
    pub backup: bool,
    /// New payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Payload bytes sent again on this path.
    pub bytes_retransmitted: u64,
    /// Segments sent again.
    pub retransmissions: u64,
    /// Retransmission timeouts that fired.
    pub rto_events: u64,
    /// Smoothed round-trip time in milliseconds.
    pub srtt_ms: f64,
    /// Congestion window in bytes.
    pub cwnd_bytes: u64,
    /// Bytes sent and not yet acknowledged.
    pub in_flight_bytes: u64,
}

/// Connection counters.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BraidStats {
    /// The peer speaks MPTCP (false after a fallback to plain TCP).
    pub mptcp: bool,
    /// The handshake completed.
    pub established: bool,
    /// Bytes the app wrote into the connection.
    pub bytes_sent: u64,
    /// Bytes the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes delivered to the app, in order.
    pub bytes_received: u64,
    /// Bytes sent again on another path after their first path failed or stalled.
    pub bytes_reinjected: u64,
    /// Subflows created over the connection's life.
    pub subflows_opened: u64,
    /// Subflows that ended.
    pub subflows_closed: u64,
    /// Bytes carried over cellular, both directions.
    pub cellular_bytes: u64,
    /// The live paths.
    pub paths: Vec<BraidPathStats>,
}

impl From<braid::ConnectionStats> for BraidStats {
    fn from(s: braid::ConnectionStats) -> Self {
        BraidStats {
            mptcp: s.mptcp,
            established: s.established,
            bytes_sent: s.bytes_sent,
            bytes_acked: s.bytes_acked,
            bytes_received: s.bytes_received,
            bytes_reinjected: s.bytes_reinjected,
            subflows_opened: s.subflows_opened,
            subflows_closed: s.subflows_closed,
            cellular_bytes: s.cellular_bytes,
            paths: s
                .paths
                .into_iter()
                .map(|p| BraidPathStats {
                    path_id: p.path.map(braid::PathId::get),
                    kind: p.kind.map(Into::into),
                    local_addr: p.local.map(|a| a.to_string()),
                    remote_addr: p.remote.map(|a| a.to_string()),
                    state: p.state.to_string(),
                    backup: p.backup,
                    bytes_sent: p.bytes_sent,
                    bytes_received: p.bytes_received,
                    bytes_retransmitted: p.bytes_retransmitted,
                    retransmissions: p.retransmissions,
                    rto_events: p.rto_events,
                    srtt_ms: p.srtt.as_secs_f64() * 1000.0,
                    cwnd_bytes: p.cwnd,
                    in_flight_bytes: p.in_flight,
                })
                .collect(),
        }
    }
}

/// A path a connection has a socket on.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BraidPath {
    /// The path id.
    pub path_id: u32,
    /// Its interface type.
    pub kind: InterfaceKind,
    /// Our address on it, as `ip:port`.
    pub local_addr: String,
    /// Subflow state on this path (`none` before the first subflow).
    pub state: String,
    /// Used only when no other path can send.
    pub backup: bool,
}

/// Parses `ip:port`, with a message naming what it was for.
pub(crate) fn parse_socket_addr(s: &str, what: &str) -> Result<SocketAddr, BraidError> {
    s.trim().parse().map_err(|_| {
        BraidError::InvalidArgument(format!(
            "{what} '{s}' is not an ip:port address (IPv6 in brackets: [2001:db8::1]:443)"
        ))
    })
}
