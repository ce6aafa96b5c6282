//! What a connection reports to the application.

use braid_proto::{CloseError, Event, InterfaceKind, PathId, SwitchReason};
use std::net::SocketAddr;
use tokio::sync::broadcast;

/// A change in a connection's paths or state.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The handshake completed.
    Connected,
    /// The peer does not speak MPTCP: plain TCP on one path from now on.
    FellBackToTcp,
    /// A subflow on this path completed its handshake and may carry data.
    PathUp {
        /// The path.
        path: PathId,
        /// Its interface kind.
        kind: InterfaceKind,
    },
    /// The path's subflow closed or failed; its data moved to the other paths.
    PathDown {
        /// The path.
        path: PathId,
        /// Its interface kind.
        kind: InterfaceKind,
    },
    /// New data now goes on another path.
    PathSwitched {
        /// The path that carried data before (`None`: none did).
        from: Option<PathId>,
        /// The path that carries it now.
        to: PathId,
        /// Why.
        reason: SwitchReason,
    },
    /// A path became a backup (used only when no other path works) or stopped being one.
    BackupChanged {
        /// The path.
        path: PathId,
        /// Whether it is a backup now.
        backup: bool,
    },
    /// The peer announced an address the connection may join.
    AddressAnnounced {
        /// The address and port.
        addr: SocketAddr,
    },
    /// The cellular byte budget is used up.
    BudgetExhausted {
        /// The budget that was used up, in bytes.
        bytes: u64,
    },
    /// Datagrams sent in GSO batches to `remote` kept getting lost while single ones got
    /// through: that path (`None` on a listener's connections) sends unbatched from now on.
    /// `reason` gives the counts.
    GsoDisabled {
        /// The path.
        path: Option<PathId>,
        /// Where its datagrams go.
        remote: SocketAddr,
        /// The loss counts that led to it.
        reason: String,
    },
    /// The connection is over, and how it ended.
    Closed(CloseError),
}

impl ConnectionEvent {
    /// Readable/Writable are for the runtime's wakers, not for the application.
    pub(crate) fn from_engine(ev: &Event) -> Option<Self> {
        Some(match ev {
            Event::Connected => ConnectionEvent::Connected,
            Event::FellBackToTcp => ConnectionEvent::FellBackToTcp,
            Event::Readable | Event::Writable => return None,
            Event::PathUp { path, kind } => ConnectionEvent::PathUp {
                path: *path,
                kind: *kind,
            },
            Event::PathDown { path, kind } => ConnectionEvent::PathDown {
                path: *path,
                kind: *kind,
            },
            Event::PathSwitched { from, to, reason } => ConnectionEvent::PathSwitched {
                from: *from,
                to: *to,
                reason: *reason,
            },
            Event::PathBackupChanged { path, backup } => ConnectionEvent::BackupChanged {
                path: *path,
                backup: *backup,
            },
            Event::AddressAnnounced { addr } => ConnectionEvent::AddressAnnounced { addr: *addr },
            Event::BudgetExhausted { bytes } => ConnectionEvent::BudgetExhausted { bytes: *bytes },
            Event::Closed(e) => ConnectionEvent::Closed(e.clone()),
            // An engine event this runtime has no counterpart for yet is not surfaced.
            _ => return None,
        })
    }
}

/// A stream of a connection's events: everything since the connection started (the last
/// 64 events), then new ones as they happen.
pub struct Events {
    pub(crate) rx: broadcast::Receiver<ConnectionEvent>,
    pub(crate) backlog: std::collections::VecDeque<ConnectionEvent>,
}

impl Events {
    /// The next event; `None` once the connection is gone. Events the receiver was too slow
    /// for are skipped.
    pub async fn recv(&mut self) -> Option<ConnectionEvent> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    log::debug!("event receiver lagged, {n} events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// An event if one is waiting.
    pub fn try_recv(&mut self) -> Option<ConnectionEvent> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}
