//! Big-endian field access. Callers check lengths first; these only spell out the byte order.

#[inline]
pub(crate) fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn rd_u64(b: &[u8], at: usize) -> u64 {
    (u64::from(rd_u32(b, at)) << 32) | u64::from(rd_u32(b, at + 4))
}

#[inline]
pub(crate) fn wr_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn wr_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn wr_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The first `len` bytes of `buf`, or `BufferTooSmall`.
#[inline]
pub(crate) fn out(buf: &mut [u8], len: usize) -> Result<&mut [u8], super::WireError> {
    buf.get_mut(..len).ok_or(super::WireError::BufferTooSmall)
}
