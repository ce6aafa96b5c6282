//! What a connection reports to its owner: events and statistics.

use crate::path::{InterfaceKind, PathId};
use std::time::Duration;

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseError {
    /// Both directions finished (DATA_FIN exchanged) — not an error.
    Finished,
    /// The peer aborted (MP_FASTCLOSE, or RST on a plain-TCP connection).
    Reset,
    /// The handshake never completed.
    ConnectFailed,
    /// Every subflow died and none could be re-created in time.
    TimedOut,
    /// The application aborted the connection.
    Aborted,
    /// The peer broke the protocol in a way that cannot be recovered from.
    ProtocolViolation(&'static str),
    /// The server forbade joins to the address the connection was opened to (the C flag)
    /// and the initial subflow died before the server announced another address: nothing
    /// is left to join. Reconnecting is the way on.
    InitialPathLost,
}

impl std::fmt::Display for CloseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseError::Finished => f.write_str("connection finished"),
            CloseError::Reset => f.write_str("connection reset by peer"),
            CloseError::ConnectFailed => f.write_str("connection attempt failed"),
            CloseError::TimedOut => f.write_str("connection timed out: no path left"),
            CloseError::Aborted => f.write_str("connection aborted"),
            CloseError::ProtocolViolation(why) => write!(f, "protocol violation: {why}"),
            CloseError::InitialPathLost => f.write_str(
                "the first path died before the server announced an address to join: reconnect",
            ),
        }
    }
}

/// Why the connection moved its traffic from one path to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchReason {
    /// The operating system reported the interface gone.
    InterfaceLost,
    /// Retransmission timeouts piled up on the old path.
    RetransmissionTimeouts,
    /// The old path stopped answering: nothing came back for well over an RTT with data
    /// outstanding (an early sign of a dead link, before any timeout).
    Unresponsive,
    /// The old path's RTT rose past the policy threshold.
    HighRtt,
    /// The old path was flagged weak and loses packets.
    Lossy,
    /// The preferred path has been healthy long enough: moving back.
    Failback,
    /// The subflow on the old path died.
    SubflowDied,
    /// The application changed the policy and traffic moved with it (another service
    /// type whose preferred path differs, or cellular disallowed while traffic was on it).
    PolicyChange,
    /// The cellular byte budget ran out while traffic was on cellular.
    CostControl,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; data can flow.
    Connected,
    /// The peer does not speak MPTCP: the connection continues as plain TCP on one path.
    FellBackToTcp,
    /// Bytes are ready to read (or the peer finished).
    Readable,
    /// Send buffer space opened up.
    Writable,
    /// A subflow on `path` is established.
    PathUp { path: PathId, kind: InterfaceKind },
    /// The subflow on `path` is gone.
    PathDown { path: PathId, kind: InterfaceKind },
    /// Traffic moved from one path to another.
    PathSwitched {
        from: Option<PathId>,
        to: PathId,
        reason: SwitchReason,
    },
    /// A path's backup flag changed (ours or the peer's request).
    PathBackupChanged { path: PathId, backup: bool },
    /// The peer announced an address we may join.
    AddressAnnounced { addr: std::net::SocketAddr },
    /// The cellular byte budget is used up; cellular carries no more data.
    BudgetExhausted { bytes: u64 },
    /// The connection is over; the handle stays valid until released.
    Closed(CloseError),
}

/// Per-path statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathStats {
    pub path: Option<PathId>,
    pub kind: Option<InterfaceKind>,
    pub local: Option<std::net::SocketAddr>,
    pub remote: Option<std::net::SocketAddr>,
    pub state: &'static str,
    pub backup: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub bytes_retransmitted: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    pub retransmissions: u64,
    pub rto_events: u64,
    pub srtt: Duration,
    pub cwnd: u64,
    pub in_flight: u64,
}

/// Connection statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionStats {
    pub mptcp: bool,
    pub established: bool,
    /// Application bytes written into the connection and acknowledged at the data level.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    /// Application bytes delivered in order.
    pub bytes_received: u64,
    /// Bytes sent again on another subflow after their first subflow failed or stalled.
    pub bytes_reinjected: u64,
    pub subflows_opened: u64,
    pub subflows_closed: u64,
    pub cellular_bytes: u64,
    /// Segments that failed their subflow's sequence/ACK checks; their options were ignored.
    pub segments_rejected: u64,
    /// MPTCP signals that passed the TCP checks but made no sense at the data level (a
    /// DATA_ACK for bytes never sent, a second DATA_FIN elsewhere, …) and were ignored.
    pub signals_ignored: u64,
    /// Out-of-order pieces refused because the reassembly buffer held its limit of pieces.
    pub reassembly_refused: u64,
    /// Live subflows.
    pub paths: Vec<PathStats>,
    /// Subflows that are gone, with their final counters (the last 16).
    pub closed_paths: Vec<PathStats>,
}
