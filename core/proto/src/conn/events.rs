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
    PathUp {
        /// The path the subflow runs on.
        path: PathId,
        /// The interface type of that path.
        kind: InterfaceKind,
    },
    /// The subflow on `path` is gone.
    PathDown {
        /// The path the subflow ran on.
        path: PathId,
        /// The interface type of that path.
        kind: InterfaceKind,
    },
    /// Traffic moved from one path to another.
    PathSwitched {
        /// The path traffic left (`None`: no path was active).
        from: Option<PathId>,
        /// The path that carries the traffic now.
        to: PathId,
        /// What made the connection move.
        reason: SwitchReason,
    },
    /// A path's backup flag changed (ours or the peer's request).
    PathBackupChanged {
        /// The path whose flag changed.
        path: PathId,
        /// Whether the path is now a backup (used only when no regular path can send).
        backup: bool,
    },
    /// The peer announced an address we may join.
    AddressAnnounced {
        /// The announced address and port (ADD_ADDR).
        addr: std::net::SocketAddr,
    },
    /// The cellular byte budget is used up; cellular carries no more data.
    BudgetExhausted {
        /// Bytes cellular carried (both directions) when the budget ran out.
        bytes: u64,
    },
    /// The connection is over; the handle stays valid until released.
    Closed(CloseError),
}

/// Per-path statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathStats {
    /// The path the subflow belongs to (`None` for subflows the peer opened: the listening
    /// side has no paths of its own).
    pub path: Option<PathId>,
    /// The interface type of the path, when known.
    pub kind: Option<InterfaceKind>,
    /// Our address and port of the subflow.
    pub local: Option<std::net::SocketAddr>,
    /// The peer's address and port of the subflow.
    pub remote: Option<std::net::SocketAddr>,
    /// The subflow's TCP state, lower case with dashes (`"established"`, `"fin-wait-1"`, …).
    pub state: &'static str,
    /// Either side asked that this subflow be used only as a backup.
    pub backup: bool,
    /// New payload bytes sent (retransmissions are in `bytes_retransmitted`).
    pub bytes_sent: u64,
    /// Payload bytes received in segments that brought something new.
    pub bytes_received: u64,
    /// Payload bytes sent again on this subflow (loss recovery and timeouts).
    pub bytes_retransmitted: u64,
    /// Segments sent, pure ACKs included.
    pub segments_sent: u64,
    /// Segments received, whether accepted or not.
    pub segments_received: u64,
    /// Segments sent again.
    pub retransmissions: u64,
    /// Retransmission timeouts that fired.
    pub rto_events: u64,
    /// Smoothed round-trip time (RFC 6298), or the initial value before any sample.
    pub srtt: Duration,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Bytes sent and not yet acknowledged (SACKed bytes excluded).
    pub in_flight: u64,
}

/// Connection statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionStats {
    /// The peer agreed to MPTCP (false: plain TCP, from the start or after fallback).
    pub mptcp: bool,
    /// The handshake completed.
    pub established: bool,
    /// Application bytes written into the connection.
    pub bytes_sent: u64,
    /// Application bytes the peer acknowledged at the data level (DATA_ACK).
    pub bytes_acked: u64,
    /// Application bytes delivered in order.
    pub bytes_received: u64,
    /// Bytes sent again on another subflow after their first subflow failed or stalled.
    pub bytes_reinjected: u64,
    /// Subflows created over the connection's life, the initial one included.
    pub subflows_opened: u64,
    /// Subflows that ended.
    pub subflows_closed: u64,
    /// Bytes carried on cellular paths, both directions (what a cellular budget counts).
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
