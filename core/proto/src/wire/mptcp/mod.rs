//! Every MPTCP v1 option (TCP option kind 30, RFC 8684 §3).
//!
//! Each option type parses from the whole option (starting at the kind byte) and emits the
//! same bytes back, so re-encoding what a peer sent is byte-exact (reserved bits aside, which
//! RFC 8684 says to send as zero and ignore on receipt).

mod addr;
mod capable;
mod dss;
mod join;
mod misc;

pub use addr::{AddAddr, RemoveAddr};
pub use capable::{MpCapable, MpCapableFlags, MpCapableKeys};
pub use dss::{DataSeq, Dss, DssMapping};
pub use join::MpJoin;
pub use misc::{MpFail, MpFastClose, MpPrio, MpTcpRst, TcpRstReason};

use super::WireError;

/// TCP option kind of every MPTCP option.
pub const KIND_MPTCP: u8 = 30;

/// MPTCP option subtypes (the high nibble of the third byte).
pub mod subtype {
    /// MP_CAPABLE.
    pub const MP_CAPABLE: u8 = 0x0;
    /// MP_JOIN.
    pub const MP_JOIN: u8 = 0x1;
    /// DSS.
    pub const DSS: u8 = 0x2;
    /// ADD_ADDR.
    pub const ADD_ADDR: u8 = 0x3;
    /// REMOVE_ADDR.
    pub const REMOVE_ADDR: u8 = 0x4;
    /// MP_PRIO.
    pub const MP_PRIO: u8 = 0x5;
    /// MP_FAIL.
    pub const MP_FAIL: u8 = 0x6;
    /// MP_FASTCLOSE.
    pub const MP_FASTCLOSE: u8 = 0x7;
    /// MP_TCPRST.
    pub const MP_TCPRST: u8 = 0x8;
}

/// One MPTCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MptcpOption {
    /// MP_CAPABLE (RFC 8684 §3.1).
    MpCapable(MpCapable),
    /// MP_JOIN (RFC 8684 §3.2).
    MpJoin(MpJoin),
    /// Data Sequence Signal (RFC 8684 §3.3).
    Dss(Dss),
    /// ADD_ADDR (RFC 8684 §3.4.1).
    AddAddr(AddAddr),
    /// REMOVE_ADDR (RFC 8684 §3.4.2).
    RemoveAddr(RemoveAddr),
    /// MP_PRIO (RFC 8684 §3.3.8).
    MpPrio(MpPrio),
    /// MP_FAIL (RFC 8684 §3.7).
    MpFail(MpFail),
    /// MP_FASTCLOSE (RFC 8684 §3.5).
    MpFastClose(MpFastClose),
    /// MP_TCPRST (RFC 8684 §3.6).
    MpTcpRst(MpTcpRst),
}

/// Checks kind and length of a whole MPTCP option and returns its subtype.
///
/// The input must be exactly one option: its length byte must equal `bytes.len()`.
pub(crate) fn header(bytes: &[u8]) -> Result<u8, WireError> {
    let (&kind, &len) = match bytes {
        [k, l, ..] => (k, l),
        _ => return Err(WireError::Truncated),
    };
    if kind != KIND_MPTCP {
        return Err(WireError::NotMptcp(kind));
    }
    if len < 3 || usize::from(len) < bytes.len() {
        return Err(WireError::BadOptionLength { kind, len });
    }
    if usize::from(len) > bytes.len() {
        return Err(WireError::Truncated);
    }
    Ok(bytes[2] >> 4)
}

/// Writes kind, length and the subtype/low-nibble byte, after checking the buffer.
#[inline]
pub(crate) fn emit_header(
    buf: &mut [u8],
    len: usize,
    subtype: u8,
    nibble: u8,
) -> Result<&mut [u8], WireError> {
    let out = super::bytes::out(buf, len)?;
    out[0] = KIND_MPTCP;
    out[1] = len as u8;
    out[2] = (subtype << 4) | (nibble & 0x0f);
    Ok(out)
}

impl MptcpOption {
    /// Parses one whole MPTCP option, starting at the kind byte.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let st = header(bytes)?;
        Ok(match st {
            subtype::MP_CAPABLE => Self::MpCapable(MpCapable::parse(bytes)?),
            subtype::MP_JOIN => Self::MpJoin(MpJoin::parse(bytes)?),
            subtype::DSS => Self::Dss(Dss::parse(bytes)?),
            subtype::ADD_ADDR => Self::AddAddr(AddAddr::parse(bytes)?),
            subtype::REMOVE_ADDR => Self::RemoveAddr(RemoveAddr::parse(bytes)?),
            subtype::MP_PRIO => Self::MpPrio(MpPrio::parse(bytes)?),
            subtype::MP_FAIL => Self::MpFail(MpFail::parse(bytes)?),
            subtype::MP_FASTCLOSE => Self::MpFastClose(MpFastClose::parse(bytes)?),
            subtype::MP_TCPRST => Self::MpTcpRst(MpTcpRst::parse(bytes)?),
            other => return Err(WireError::UnknownMptcpSubtype(other)),
        })
    }

    /// The subtype number.
    pub fn subtype(&self) -> u8 {
        match self {
            Self::MpCapable(_) => subtype::MP_CAPABLE,
            Self::MpJoin(_) => subtype::MP_JOIN,
            Self::Dss(_) => subtype::DSS,
            Self::AddAddr(_) => subtype::ADD_ADDR,
            Self::RemoveAddr(_) => subtype::REMOVE_ADDR,
            Self::MpPrio(_) => subtype::MP_PRIO,
            Self::MpFail(_) => subtype::MP_FAIL,
            Self::MpFastClose(_) => subtype::MP_FASTCLOSE,
            Self::MpTcpRst(_) => subtype::MP_TCPRST,
        }
    }

    /// Encoded length in bytes, kind and length byte included (no padding).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Self::MpCapable(o) => o.len(),
            Self::MpJoin(o) => o.len(),
            Self::Dss(o) => o.len(),
            Self::AddAddr(o) => o.len(),
            Self::RemoveAddr(o) => o.len(),
            Self::MpPrio(o) => o.len(),
            Self::MpFail(o) => o.len(),
            Self::MpFastClose(o) => o.len(),
            Self::MpTcpRst(o) => o.len(),
        }
    }

    /// Writes the option at the start of `buf`; returns the bytes written (`self.len()`).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        match self {
            Self::MpCapable(o) => o.emit(buf),
            Self::MpJoin(o) => o.emit(buf),
            Self::Dss(o) => o.emit(buf),
            Self::AddAddr(o) => o.emit(buf),
            Self::RemoveAddr(o) => o.emit(buf),
            Self::MpPrio(o) => o.emit(buf),
            Self::MpFail(o) => o.emit(buf),
            Self::MpFastClose(o) => o.emit(buf),
            Self::MpTcpRst(o) => o.emit(buf),
        }
    }
}

macro_rules! from_variant {
    ($($t:ident),*) => {$(
        impl From<$t> for MptcpOption {
            fn from(o: $t) -> Self {
                Self::$t(o)
            }
        }
    )*};
}
from_variant!(
    MpCapable,
    MpJoin,
    Dss,
    AddAddr,
    RemoveAddr,
    MpPrio,
    MpFail,
    MpFastClose,
    MpTcpRst
);
