//! The short MPTCP options: MP_PRIO, MP_FAIL, MP_FASTCLOSE and MP_TCPRST (RFC 8684 §3.3.8,
//! §3.5, §3.6, §3.7).

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u64, wr_u64};

fn check(b: &[u8], want_subtype: u8, want_len: usize) -> Result<(), WireError> {
    let st = header(b)?;
    if st != want_subtype {
        return Err(WireError::UnknownMptcpSubtype(st));
    }
    if b.len() != want_len {
        return Err(WireError::BadMptcpLength {
            subtype: st,
            len: b.len() as u8,
        });
    }
    Ok(())
}

/// MP_PRIO: change this subflow's backup priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpPrio {
    /// Use this subflow only when no regular one can send.
    pub backup: bool,
}

impl MpPrio {
    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        check(b, subtype::MP_PRIO, 3)?;
        Ok(Self {
            backup: b[2] & 0x01 != 0,
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(&self) -> usize {
        3
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        emit_header(buf, 3, subtype::MP_PRIO, u8::from(self.backup))?;
        Ok(3)
    }
}

/// MP_FAIL: checksum failure; `dsn` is the start of the failed mapping (always 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpFail {
    /// Data offset where the failed mapping starts.
    pub dsn: u64,
}

impl MpFail {
    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        check(b, subtype::MP_FAIL, 12)?;
        Ok(Self { dsn: rd_u64(b, 4) })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(&self) -> usize {
        12
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let o = emit_header(buf, 12, subtype::MP_FAIL, 0)?;
        o[3] = 0;
        wr_u64(o, 4, self.dsn);
        Ok(12)
    }
}

/// MP_FASTCLOSE: abort the whole connection; carries the receiver's key as proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpFastClose {
    /// The key of the side receiving the option, proving the sender knows it.
    pub receiver_key: u64,
}

impl MpFastClose {
    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        check(b, subtype::MP_FASTCLOSE, 12)?;
        Ok(Self {
            receiver_key: rd_u64(b, 4),
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(&self) -> usize {
        12
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let o = emit_header(buf, 12, subtype::MP_FASTCLOSE, 0)?;
        o[3] = 0;
        wr_u64(o, 4, self.receiver_key);
        Ok(12)
    }
}

/// MP_TCPRST reason codes (RFC 8684 §3.6). Unknown codes are kept in `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpRstReason {
    /// No reason given.
    Unspecified,
    /// An MPTCP-specific error (e.g. a failed join).
    MptcpError,
    /// The sender is out of resources.
    LackOfResources,
    /// Policy forbids this subflow.
    AdministrativelyProhibited,
    /// Too much data is waiting on this subflow for reassembly.
    TooMuchOutstandingData,
    /// The subflow performs too poorly to keep.
    UnacceptablePerformance,
    /// A middlebox interfered with MPTCP on this subflow.
    MiddleboxInterference,
    /// A code RFC 8684 does not define, kept as received.
    Other(u8),
}

impl TcpRstReason {
    /// The reason for wire code `v`.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Unspecified,
            1 => Self::MptcpError,
            2 => Self::LackOfResources,
            3 => Self::AdministrativelyProhibited,
            4 => Self::TooMuchOutstandingData,
            5 => Self::UnacceptablePerformance,
            6 => Self::MiddleboxInterference,
            n => Self::Other(n),
        }
    }

    /// The wire code.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::MptcpError => 1,
            Self::LackOfResources => 2,
            Self::AdministrativelyProhibited => 3,
            Self::TooMuchOutstandingData => 4,
            Self::UnacceptablePerformance => 5,
            Self::MiddleboxInterference => 6,
            Self::Other(n) => n,
        }
    }
}

/// MP_TCPRST: why a subflow was reset. `flags` is the U V W T nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpTcpRst {
    /// The U V W T flags (low nibble).
    pub flags: u8,
    /// Why the subflow was reset.
    pub reason: TcpRstReason,
}

impl MpTcpRst {
    /// T: the error is transient; the subflow may be re-established.
    pub const T: u8 = 0x1;
    /// W: reserved for future use.
    pub const W: u8 = 0x2;
    /// V: reserved for future use.
    pub const V: u8 = 0x4;
    /// U: reserved for future use.
    pub const U: u8 = 0x8;

    /// Whether the T flag is set: the subflow may be opened again.
    pub const fn is_transient(&self) -> bool {
        self.flags & Self::T != 0
    }

    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        check(b, subtype::MP_TCPRST, 4)?;
        Ok(Self {
            flags: b[2] & 0x0f,
            reason: TcpRstReason::from_u8(b[3]),
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(&self) -> usize {
        4
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.flags > 0x0f {
            return Err(WireError::InvalidValue);
        }
        let o = emit_header(buf, 4, subtype::MP_TCPRST, self.flags)?;
        o[3] = self.reason.to_u8();
        Ok(4)
    }
}
