//! MP_JOIN (RFC 8684 §3.2): adding a subflow to an existing connection.

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u32, rd_u64, wr_u32, wr_u64};

/// The three MP_JOIN forms, told apart by length (12, 16, 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpJoin {
    /// SYN: the receiver's token identifies the connection; the nonce feeds the HMACs.
    Syn {
        backup: bool,
        addr_id: u8,
        token: u32,
        nonce: u32,
    },
    /// SYN/ACK: the responder's truncated (64-bit) HMAC and its nonce.
    SynAck {
        backup: bool,
        addr_id: u8,
        hmac: u64,
        nonce: u32,
    },
    /// Third ACK: the initiator's 160-bit HMAC.
    Ack { hmac: [u8; 20] },
}

impl MpJoin {
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

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Self::Syn { .. } => 12,
            Self::SynAck { .. } => 16,
            Self::Ack { .. } => 24,
        }
    }

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
