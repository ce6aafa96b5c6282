//! MP_CAPABLE (RFC 8684 §3.1): the v1 handshake that exchanges keys.

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u16, rd_u64, wr_u16, wr_u64};

/// The MP_CAPABLE flag byte, kept whole so unknown bits (D..G) survive re-encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MpCapableFlags(pub u8);

impl MpCapableFlags {
    /// A: the sender requires DSS checksums.
    pub const A: Self = Self(0x80);
    /// B: extensibility; must be 0 in v1.
    pub const B: Self = Self(0x40);
    /// C: do not open further subflows to the source address of this SYN.
    pub const C: Self = Self(0x20);
    /// H: HMAC-SHA256 is the crypto algorithm (always set in v1).
    pub const H: Self = Self(0x01);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }
}

impl core::ops::BitOr for MpCapableFlags {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }
}

/// Which of the four MP_CAPABLE forms, with the keys it carries. The variant fixes the length,
/// so impossible combinations (a receiver key without a sender key) cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpCapableKeys {
    /// SYN: 4 bytes, no key.
    Syn,
    /// SYN/ACK: 12 bytes, the sender's (server's) key.
    SynAck {
        /// The key of the side sending this option.
        sender_key: u64,
    },
    /// Third ACK: 20 bytes, both keys (sender first).
    Ack {
        /// The key of the side sending this option.
        sender_key: u64,
        /// The key of the side receiving this option.
        receiver_key: u64,
    },
    /// First data: 22 bytes with the data-level length, 24 with the DSS checksum as well.
    AckData {
        /// The key of the side sending this option.
        sender_key: u64,
        /// The key of the side receiving this option.
        receiver_key: u64,
        /// Data-level length of the payload this option maps.
        data_len: u16,
        /// DSS checksum of that payload, when checksums are in use.
        checksum: Option<u16>,
    },
}

/// An MP_CAPABLE option (version ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpCapable {
    /// Protocol version (4 bits). Parsing rejects 0; higher versions are kept so the engine
    /// can answer with version 1 as RFC 8684 §3.1 asks.
    pub version: u8,
    /// The flag byte (checksum required, crypto algorithm, …).
    pub flags: MpCapableFlags,
    /// The form of the option and the keys it carries.
    pub keys: MpCapableKeys,
}

impl MpCapable {
    /// Parses a whole MP_CAPABLE option.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let st = header(b)?;
        if st != subtype::MP_CAPABLE {
            return Err(WireError::UnknownMptcpSubtype(st));
        }
        let version = b[2] & 0x0f;
        if version == 0 {
            return Err(WireError::UnsupportedMptcpVersion(0));
        }
        let keys = match b.len() {
            4 => MpCapableKeys::Syn,
            12 => MpCapableKeys::SynAck {
                sender_key: rd_u64(b, 4),
            },
            20 => MpCapableKeys::Ack {
                sender_key: rd_u64(b, 4),
                receiver_key: rd_u64(b, 12),
            },
            22 | 24 => MpCapableKeys::AckData {
                sender_key: rd_u64(b, 4),
                receiver_key: rd_u64(b, 12),
                data_len: rd_u16(b, 20),
                checksum: (b.len() == 24).then(|| rd_u16(b, 22)),
            },
            n => {
                return Err(WireError::BadMptcpLength {
                    subtype: st,
                    len: n as u8,
                });
            }
        };
        Ok(Self {
            version,
            flags: MpCapableFlags(b[3]),
            keys,
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self.keys {
            MpCapableKeys::Syn => 4,
            MpCapableKeys::SynAck { .. } => 12,
            MpCapableKeys::Ack { .. } => 20,
            MpCapableKeys::AckData { checksum: None, .. } => 22,
            MpCapableKeys::AckData {
                checksum: Some(_), ..
            } => 24,
        }
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.version == 0 || self.version > 0x0f {
            return Err(WireError::InvalidValue);
        }
        let len = self.len();
        let o = emit_header(buf, len, subtype::MP_CAPABLE, self.version)?;
        o[3] = self.flags.0;
        match self.keys {
            MpCapableKeys::Syn => {}
            MpCapableKeys::SynAck { sender_key } => wr_u64(o, 4, sender_key),
            MpCapableKeys::Ack {
                sender_key,
                receiver_key,
            } => {
                wr_u64(o, 4, sender_key);
                wr_u64(o, 12, receiver_key);
            }
            MpCapableKeys::AckData {
                sender_key,
                receiver_key,
                data_len,
                checksum,
            } => {
                wr_u64(o, 4, sender_key);
                wr_u64(o, 12, receiver_key);
                wr_u16(o, 20, data_len);
                if let Some(c) = checksum {
                    wr_u16(o, 22, c);
                }
            }
        }
        Ok(len)
    }

    /// The sender's key, when this form carries one.
    pub fn sender_key(&self) -> Option<u64> {
        match self.keys {
            MpCapableKeys::Syn => None,
            MpCapableKeys::SynAck { sender_key }
            | MpCapableKeys::Ack { sender_key, .. }
            | MpCapableKeys::AckData { sender_key, .. } => Some(sender_key),
        }
    }

    /// The receiver's key, when this form carries one.
    pub fn receiver_key(&self) -> Option<u64> {
        match self.keys {
            MpCapableKeys::Ack { receiver_key, .. }
            | MpCapableKeys::AckData { receiver_key, .. } => Some(receiver_key),
            _ => None,
        }
    }
}
