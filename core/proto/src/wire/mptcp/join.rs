//! MP_JOIN (RFC 8684 §3.2): adding a subflow to an existing connection.

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u32, rd_u64, wr_u32, wr_u64};

/// The three MP_JOIN forms, told apart by length (12, 16, 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpJoin {
    /// SYN: the receiver's token identifies the connection; the nonce feeds the HMACs.
    Syn {
        /// The sender wants this subflow used only as a backup.
        backup: bool,
        /// The sender's id for its address of this subflow.
        addr_id: u8,
        /// The receiver's token: which connection to join.
        token: u32,
        /// The sender's random nonce.
        nonce: u32,
    },
    /// SYN/ACK: the responder's truncated (64-bit) HMAC and its nonce.
    SynAck {
        /// The sender wants this subflow used only as a backup.
        backup: bool,
        /// The sender's id for its address of this subflow.
        addr_id: u8,
        /// The leftmost 64 bits of the responder's HMAC.
        hmac: u64,
        /// The responder's random nonce.
        nonce: u32,
    },
    /// Third ACK: the initiator's 160-bit HMAC.
    Ack {
        /// The initiator's full HMAC-SHA256, truncated to 160 bits.
        hmac: [u8; 20],
    },
}

impl MpJoin {
    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let st = header(b)?;
        if st != subtype::MP_JOIN {
            return Err(WireError::UnknownMptcpSubtype(st));
        }
        let backup = b[2] & 0x01 != 0;
        match b.len() {
            12 => Ok(Self::Syn {
                backup,
                addr_id: b[3],
                token: rd_u32(b, 4),
                nonce: rd_u32(b, 8),
            }),
            16 => Ok(Self::SynAck {
                backup,
                addr_id: b[3],
                hmac: rd_u64(b, 4),
                nonce: rd_u32(b, 12),
            }),
            24 => {
                let mut hmac = [0u8; 20];
                hmac.copy_from_slice(&b[4..24]);
                Ok(Self::Ack { hmac })
            }
            n => Err(WireError::BadMptcpLength {
                subtype: st,
                len: n as u8,
            }),
        }
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Self::Syn { .. } => 12,
            Self::SynAck { .. } => 16,
            Self::Ack { .. } => 24,
        }
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        match *self {
            Self::Syn {
                backup,
                addr_id,
                token,
                nonce,
            } => {
                let o = emit_header(buf, len, subtype::MP_JOIN, u8::from(backup))?;
                o[3] = addr_id;
                wr_u32(o, 4, token);
                wr_u32(o, 8, nonce);
            }
            Self::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => {
                let o = emit_header(buf, len, subtype::MP_JOIN, u8::from(backup))?;
                o[3] = addr_id;
                wr_u64(o, 4, hmac);
                wr_u32(o, 12, nonce);
            }
            Self::Ack { hmac } => {
                let o = emit_header(buf, len, subtype::MP_JOIN, 0)?;
                o[3] = 0;
                o[4..24].copy_from_slice(&hmac);
            }
        }
        Ok(len)
    }
}
