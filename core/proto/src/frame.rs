//! How segments travel: TCP-in-UDP (the UDP header carries the ports) or genuine TCP on raw
//! IP (with the pseudo-header checksum).

#![warn(missing_docs, unreachable_pub)]

use crate::wire::{self, TcpRepr, WireError};
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
/// How a segment is carried between endpoints.
pub enum Framing {
    /// TCP-in-UDP: the payload of a UDP datagram whose ports are the subflow's ports.
    #[default]
    TcpInUdp,
    /// A whole TCP segment (header with ports and checksum), for raw IP sockets.
    Tcp,
}

impl Framing {
    /// Header bytes a segment with `repr` takes in this framing.
    pub fn header_len(self, repr: &TcpRepr) -> usize {
        match self {
            Framing::TcpInUdp => wire::udp_header_len(repr),
            Framing::Tcp => repr.header_len(),
        }
    }

    /// Writes header and payload into `buf`; returns the length.
    pub fn encode(
        self,
        repr: &TcpRepr,
        payload_len: usize,
        fill_payload: impl FnOnce(&mut [u8]),
        local: SocketAddr,
        remote: SocketAddr,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let hlen = match self {
            Framing::TcpInUdp => wire::emit_udp_payload(repr, buf)?,
            Framing::Tcp => repr.emit(buf)?,
        };
        let total = hlen + payload_len;
        let out = buf.get_mut(hlen..total).ok_or(WireError::BufferTooSmall)?;
        fill_payload(out);
        if self == Framing::Tcp {
            wire::fill_tcp_checksum(local.ip(), remote.ip(), &mut buf[..total])?;
        }
        Ok(total)
    }

    /// Parses a received datagram or segment; returns the header and the payload offset.
    /// `remote` and `local` supply the ports for TCP-in-UDP and the pseudo-header for TCP.
    pub fn decode(
        self,
        bytes: &[u8],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(TcpRepr, usize), WireError> {
        match self {
            Framing::TcpInUdp => wire::parse_udp_payload(bytes, remote.port(), local.port()),
            Framing::Tcp => {
                if !wire::verify_tcp_checksum(remote.ip(), local.ip(), bytes) {
                    return Err(WireError::BadChecksum);
                }
                wire::TcpRepr::parse(bytes)
            }
        }
    }
}
