//! The interface between the simulator and the endpoints it drives.

use std::net::SocketAddr;
use std::time::Instant;

/// A sans-IO endpoint driven by the simulator.
pub trait Node {
    /// A datagram arrived: `src` sent it to `dst` (dst is one of this node's addresses).
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram to send, written into `buf` (cleared by the caller); returns (src, dst).
    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)>;
    fn poll_timeout(&mut self) -> Option<Instant>;
}

/// Lets one simulation hold nodes of different types as `Box<dyn Node>`.
impl<T: Node + ?Sized> Node for Box<T> {
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        (**self).handle_datagram(now, src, dst, payload)
    }

    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        (**self).poll_transmit(now, buf)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        (**self).poll_timeout()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(super) usize);

impl NodeId {
    /// Position in the order nodes were added, from 0.
    pub fn index(self) -> usize {
        self.0
    }
}
