//! DSS, the Data Sequence Signal (RFC 8684 §3.3): data ACK, DSN mapping and DATA_FIN.

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u16, rd_u32, rd_u64, wr_u16, wr_u32, wr_u64};

const FLAG_A: u8 = 0x01; // data ACK present
const FLAG_A8: u8 = 0x02; // data ACK is 8 bytes
const FLAG_M: u8 = 0x04; // mapping present
const FLAG_M8: u8 = 0x08; // DSN is 8 bytes
const FLAG_F: u8 = 0x10; // DATA_FIN

/// A data-level sequence number as carried on the wire: the low 32 bits or the full 64.
/// The width is kept so that re-encoding gives the same bytes; a 32-bit value must be
/// expanded against the connection's sequence space by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSeq {
    /// 4-byte form: the low 32 bits.
    Narrow(u32),
    /// 8-byte form: the full 64 bits.
    Wide(u64),
}

impl DataSeq {
    /// The value as a u64 (for `Narrow`, just the low 32 bits).
    pub const fn value(self) -> u64 {
        match self {
            Self::Narrow(v) => v as u64,
            Self::Wide(v) => v,
        }
    }

    /// Whether this is the 8-byte form.
    pub const fn is_wide(self) -> bool {
        matches!(self, Self::Wide(_))
    }

    const fn width(self) -> usize {
        match self {
            Self::Narrow(_) => 4,
            Self::Wide(_) => 8,
        }
    }

    fn read(b: &[u8], at: usize, wide: bool) -> Self {
        if wide {
            Self::Wide(rd_u64(b, at))
        } else {
            Self::Narrow(rd_u32(b, at))
        }
    }

    fn write(self, b: &mut [u8], at: usize) {
        match self {
            Self::Narrow(v) => wr_u32(b, at, v),
            Self::Wide(v) => wr_u64(b, at, v),
        }
    }
}

/// A DSS mapping: subflow bytes `[ssn, ssn + data_len)` carry data from `dsn` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DssMapping {
    /// Data sequence number of the first mapped byte.
    pub dsn: DataSeq,
    /// Subflow sequence number relative to the subflow's initial sequence number.
    pub ssn: u32,
    /// Data-level length; 0 means an infinite mapping (fallback).
    pub data_len: u16,
    /// Present when checksums were negotiated (the A flag of MP_CAPABLE).
    pub checksum: Option<u16>,
}

/// A DSS option. `data_fin` with a mapping means the mapping's last data-level byte is the
/// DATA_FIN (it occupies one DSN and no subflow byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dss {
    /// Cumulative acknowledgement at the data level: the next data byte expected.
    pub data_ack: Option<DataSeq>,
    /// Where subflow bytes go in the data stream.
    pub mapping: Option<DssMapping>,
    /// The sender has no more data (DATA_FIN).
    pub data_fin: bool,
}

impl Dss {
    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let st = header(b)?;
        if st != subtype::DSS {
            return Err(WireError::UnknownMptcpSubtype(st));
        }
        let bad = WireError::BadMptcpLength {
            subtype: st,
            len: b.len() as u8,
        };
        let flags = *b.get(3).ok_or(bad)?;
        let ack_w = match (flags & FLAG_A != 0, flags & FLAG_A8 != 0) {
            (false, _) => 0,
            (true, false) => 4,
            (true, true) => 8,
        };
        let map_w = match (flags & FLAG_M != 0, flags & FLAG_M8 != 0) {
            (false, _) => 0,
            (true, false) => 4,
            (true, true) => 8,
        };
        let base = 4 + ack_w + if map_w > 0 { map_w + 6 } else { 0 };
        let has_csum = match b.len() {
            n if n == base => false,
            n if map_w > 0 && n == base + 2 => true,
            _ => return Err(bad),
        };
        let data_ack = (ack_w > 0).then(|| DataSeq::read(b, 4, ack_w == 8));
        let at = 4 + ack_w;
        let mapping = (map_w > 0).then(|| DssMapping {
            dsn: DataSeq::read(b, at, map_w == 8),
            ssn: rd_u32(b, at + map_w),
            data_len: rd_u16(b, at + map_w + 4),
            checksum: has_csum.then(|| rd_u16(b, at + map_w + 6)),
        });
        Ok(Self {
            data_ack,
            mapping,
            data_fin: flags & FLAG_F != 0,
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        let ack = self.data_ack.map_or(0, DataSeq::width);
        let map = self.mapping.map_or(0, |m| {
            m.dsn.width() + 6 + if m.checksum.is_some() { 2 } else { 0 }
        });
        4 + ack + map
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let o = emit_header(buf, len, subtype::DSS, 0)?;
        let mut flags = if self.data_fin { FLAG_F } else { 0 };
        let mut at = 4;
        if let Some(a) = self.data_ack {
            flags |= FLAG_A | if a.is_wide() { FLAG_A8 } else { 0 };
            a.write(o, at);
            at += a.width();
        }
        if let Some(m) = self.mapping {
            flags |= FLAG_M | if m.dsn.is_wide() { FLAG_M8 } else { 0 };
            m.dsn.write(o, at);
            at += m.dsn.width();
            wr_u32(o, at, m.ssn);
            wr_u16(o, at + 4, m.data_len);
            if let Some(c) = m.checksum {
                wr_u16(o, at + 6, c);
            }
        }
        o[3] = flags;
        Ok(len)
    }
}
