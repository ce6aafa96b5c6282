//! What the simulator reports to a trace hook. Times are offsets from the simulation start, so
//! traces of two runs compare equal when the runs behaved the same.

use std::net::SocketAddr;
use std::time::Duration;

use super::LinkId;
use super::link::Fate;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A node sent a datagram over `link`; `fate` is the link's decision.
    Sent {
        at: Duration,
        link: LinkId,
        src: SocketAddr,
        dst: SocketAddr,
        size: usize,
        fate: Fate<Duration>,
    },
    /// A copy reached the far end of `link` and was handed to the owner of `dst`.
    Arrived {
        at: Duration,
        link: LinkId,
        src: SocketAddr,
        dst: SocketAddr,
        size: usize,
    },
    /// A copy was lost because its link went down while it was queued or on the wire.
    LostInFlight {
        at: Duration,
        link: LinkId,
        size: usize,
    },
    /// No link from the source address to the destination address, or no node owns the
    /// destination address.
    Unroutable {
        at: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        size: usize,
    },
}

impl TraceEvent {
    pub fn at(&self) -> Duration {
        match self {
            TraceEvent::Sent { at, .. }
            | TraceEvent::Arrived { at, .. }
            | TraceEvent::LostInFlight { at, .. }
            | TraceEvent::Unroutable { at, .. } => *at,
        }
    }
}
