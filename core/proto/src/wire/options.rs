//! The TCP option field: MSS, window scale, SACK, timestamps, MPTCP, and unknown options
//! carried through verbatim.

use core::fmt;

use super::bytes::{rd_u16, rd_u32, wr_u16, wr_u32};
use super::mptcp::{Dss, KIND_MPTCP, MpCapable, MpJoin, MpPrio, MptcpOption};
use super::{SeqNum, WireError};

/// A TCP header has room for at most 40 bytes of options (data offset ≤ 15 words).
pub const MAX_OPTIONS_LEN: usize = 40;

/// TCP option kinds this codec understands.
pub mod kind {
    /// End of the option list.
    pub const EOL: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (RFC 2018).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (RFC 2018).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323).
    pub const TIMESTAMPS: u8 = 8;
    /// Multipath TCP (RFC 8684).
    pub const MPTCP: u8 = super::KIND_MPTCP;
}

/// A list of at most `N` values stored inline: the option representation owns everything and
/// stays `Copy`, with no allocation per segment. `filler` only occupies unused slots.
#[derive(Clone, Copy)]
pub struct FixedList<T: Copy, const N: usize> {
    items: [T; N],
    count: u8,
}

impl<T: Copy, const N: usize> FixedList<T, N> {
    /// The most items the list holds.
    pub const MAX: usize = N;

    const fn with_filler(filler: T) -> Self {
        Self {
            items: [filler; N],
            count: 0,
        }
    }

    /// Appends; `TooManyOptions` when the list is full. For MPTCP options this does not
    /// check the option-space budget (see [`TcpOptions::push_mptcp`]).
    pub fn push(&mut self, item: T) -> Result<(), WireError> {
        let slot = self
            .items
            .get_mut(usize::from(self.count))
            .ok_or(WireError::TooManyOptions)?;
        *slot = item;
        self.count += 1;
        Ok(())
    }

    /// The items, in order.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..usize::from(self.count)]
    }

    /// Items held.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// No item is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The items, in order.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }
}

impl<T: Copy + PartialEq, const N: usize> PartialEq for FixedList<T, N> {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl<T: Copy + Eq, const N: usize> Eq for FixedList<T, N> {}

impl<T: Copy + fmt::Debug, const N: usize> fmt::Debug for FixedList<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Up to four SACK blocks `(left, right)` (four is what fits in 40 bytes without timestamps).
pub type SackBlocks = FixedList<(SeqNum, SeqNum), 4>;

impl SackBlocks {
    /// No blocks.
    pub const fn new() -> Self {
        Self::with_filler((SeqNum(0), SeqNum(0)))
    }
}

impl Default for SackBlocks {
    fn default() -> Self {
        Self::new()
    }
}

/// Up to four MPTCP options in one segment (e.g. DSS + ADD_ADDR + MP_PRIO).
pub type MptcpOptions = FixedList<MptcpOption, 4>;

impl MptcpOptions {
    /// No options.
    pub const fn new() -> Self {
        Self::with_filler(MptcpOption::MpPrio(MpPrio { backup: false }))
    }
}

impl Default for MptcpOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Options of kinds this codec does not interpret, kept byte for byte (kind, length, data).
#[derive(Clone, Copy)]
pub struct UnknownOptions {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl UnknownOptions {
    /// No options.
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
        }
    }

    /// Appends one raw option (kind, length, data); its length byte must match `raw.len()`.
    pub fn push(&mut self, raw: &[u8]) -> Result<(), WireError> {
        match raw {
            [k, l, ..] if usize::from(*l) == raw.len() && *k > kind::NOP => {}
            [k, l, ..] => return Err(WireError::BadOptionLength { kind: *k, len: *l }),
            _ => return Err(WireError::Truncated),
        }
        let start = usize::from(self.len);
        let dst = self
            .bytes
            .get_mut(start..start + raw.len())
            .ok_or(WireError::OptionSpaceExceeded)?;
        dst.copy_from_slice(raw);
        self.len += raw.len() as u8;
        Ok(())
    }

    /// The raw options, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// No option is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every option.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The raw options one by one.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.as_bytes();
        core::iter::from_fn(move || {
            let l = usize::from(*rest.get(1)?);
            let (head, tail) = rest.split_at(l.min(rest.len()));
            rest = tail;
            Some(head)
        })
    }
}

impl Default for UnknownOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for UnknownOptions {
    fn eq(&self, o: &Self) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}
impl Eq for UnknownOptions {}

impl fmt::Debug for UnknownOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnknownOptions(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A parsed TCP option field. Owned and `Copy`: no borrow of the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift count (SYN only).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// SACK blocks: ranges received above the cumulative ACK.
    pub sack_blocks: SackBlocks,
    /// (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
    /// MPTCP options, in the order they appear.
    pub mptcp: MptcpOptions,
    /// The first MPTCP option that failed to parse (or overflowed `mptcp`). The rest of the
    /// segment is still valid: RFC 8684 asks to ignore what is not understood, and the engine
    /// decides what an MP_CAPABLE v0 or a garbled DSS means for the connection. Never emitted.
    pub mptcp_rejected: Option<WireError>,
    /// Options of other kinds, kept so they can be re-emitted.
    pub unknown: UnknownOptions,
}

#[inline]
const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl TcpOptions {
    /// No options.
    pub const fn new() -> Self {
        Self {
            mss: None,
            window_scale: None,
            sack_permitted: false,
            sack_blocks: SackBlocks::new(),
            timestamps: None,
            mptcp: MptcpOptions::new(),
            mptcp_rejected: None,
            unknown: UnknownOptions::new(),
        }
    }

    /// Parses a whole option field (the bytes between the fixed header and the data).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() > MAX_OPTIONS_LEN {
            return Err(WireError::OptionSpaceExceeded);
        }
        let mut o = Self::new();
        let mut i = 0;
        while let Some(&k) = b.get(i) {
            match k {
                kind::EOL => break,
                kind::NOP => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = *b.get(i + 1).ok_or(WireError::Truncated)?;
            let l = usize::from(len);
            let bad = WireError::BadOptionLength { kind: k, len };
            if l < 2 || i + l > b.len() {
                return Err(bad);
            }
            let opt = &b[i..i + l];
            match k {
                kind::MSS if l == 4 => o.mss = Some(rd_u16(opt, 2)),
                kind::WINDOW_SCALE if l == 3 => o.window_scale = Some(opt[2]),
                kind::SACK_PERMITTED if l == 2 => o.sack_permitted = true,
                kind::SACK if l >= 10 && (l - 2) % 8 == 0 => {
                    o.sack_blocks.clear();
                    for blk in opt[2..].chunks_exact(8) {
                        o.sack_blocks
                            .push((SeqNum(rd_u32(blk, 0)), SeqNum(rd_u32(blk, 4))))?;
                    }
                }
                kind::TIMESTAMPS if l == 10 => {
                    o.timestamps = Some((rd_u32(opt, 2), rd_u32(opt, 6)))
                }
                kind::MSS
                | kind::WINDOW_SCALE
                | kind::SACK_PERMITTED
                | kind::SACK
                | kind::TIMESTAMPS => {
                    return Err(bad);
                }
                kind::MPTCP => {
                    let r = MptcpOption::parse(opt).and_then(|m| o.mptcp.push(m));
                    if let Err(e) = r {
                        o.mptcp_rejected.get_or_insert(e);
                    }
                }
                _ => o.unknown.push(opt)?,
            }
            i += l;
        }
        Ok(o)
    }

    /// Length of the emitted option field, padding included (a multiple of 4). May exceed
    /// [`MAX_OPTIONS_LEN`], in which case [`Self::emit`] fails.
    pub fn len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        n += match (self.sack_permitted, self.timestamps.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        if self.window_scale.is_some() {
            n += 4;
        }
        if !self.sack_blocks.is_empty() {
            n += 4 + 8 * self.sack_blocks.len();
        }
        for m in self.mptcp.iter() {
            n += pad4(m.len());
        }
        pad4(n + self.unknown.len())
    }

    /// No option is present (the option field takes no bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the option field in the Linux kernel's order and layout (MSS; SACK_PERM+TS or
    /// NOP NOP TS or NOP NOP SACK_PERM; NOP WS; NOP NOP SACK; each MPTCP option NOP-padded to
    /// a word; unknown options; NOP padding), so kernel segments re-encode byte for byte.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        if len > MAX_OPTIONS_LEN {
            return Err(WireError::OptionSpaceExceeded);
        }
        let o = super::bytes::out(buf, len)?;
        o.fill(kind::NOP);
        let mut i = 0;
        if let Some(mss) = self.mss {
            o[0] = kind::MSS;
            o[1] = 4;
            wr_u16(o, 2, mss);
            i = 4;
        }
        match (self.sack_permitted, self.timestamps) {
            (sp, Some((val, ecr))) => {
                if sp {
                    o[i] = kind::SACK_PERMITTED;
                    o[i + 1] = 2;
                }
                o[i + 2] = kind::TIMESTAMPS;
                o[i + 3] = 10;
                wr_u32(o, i + 4, val);
                wr_u32(o, i + 8, ecr);
                i += 12;
            }
            (true, None) => {
                o[i + 2] = kind::SACK_PERMITTED;
                o[i + 3] = 2;
                i += 4;
            }
            (false, None) => {}
        }
        if let Some(ws) = self.window_scale {
            o[i + 1] = kind::WINDOW_SCALE;
            o[i + 2] = 3;
            o[i + 3] = ws;
            i += 4;
        }
        if !self.sack_blocks.is_empty() {
            o[i + 2] = kind::SACK;
            o[i + 3] = (2 + 8 * self.sack_blocks.len()) as u8;
            i += 4;
            for &(l, r) in self.sack_blocks.iter() {
                wr_u32(o, i, l.0);
                wr_u32(o, i + 4, r.0);
                i += 8;
            }
        }
        for m in self.mptcp.iter() {
            let n = m.emit(&mut o[i..])?;
            i += pad4(n);
        }
        let u = self.unknown.as_bytes();
        o[i..i + u.len()].copy_from_slice(u);
        Ok(len)
    }

    /// The MPTCP options, in the order they were parsed or pushed.
    pub fn mptcp_iter(&self) -> core::slice::Iter<'_, MptcpOption> {
        self.mptcp.iter()
    }

    /// Adds an MPTCP option, refusing one that would not fit (`TooManyOptions` when four are
    /// there already, `OptionSpaceExceeded` when the field would pass 40 bytes).
    pub fn push_mptcp(&mut self, m: impl Into<MptcpOption>) -> Result<(), WireError> {
        let m = m.into();
        if self.mptcp.len() == MptcpOptions::MAX {
            return Err(WireError::TooManyOptions);
        }
        if self.len() + pad4(m.len()) > MAX_OPTIONS_LEN {
            return Err(WireError::OptionSpaceExceeded);
        }
        self.mptcp.push(m)
    }

    /// The first MP_CAPABLE, if any.
    pub fn mp_capable(&self) -> Option<&MpCapable> {
        self.mptcp_iter().find_map(|m| match m {
            MptcpOption::MpCapable(c) => Some(c),
            _ => None,
        })
    }

    /// The first MP_JOIN, if any.
    pub fn mp_join(&self) -> Option<&MpJoin> {
        self.mptcp_iter().find_map(|m| match m {
            MptcpOption::MpJoin(j) => Some(j),
            _ => None,
        })
    }

    /// The first DSS, if any.
    pub fn dss(&self) -> Option<&Dss> {
        self.mptcp_iter().find_map(|m| match m {
            MptcpOption::Dss(d) => Some(d),
            _ => None,
        })
    }
}
