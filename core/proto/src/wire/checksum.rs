//! Internet checksum (RFC 1071), TCP pseudo-header checksums and the MPTCP DSS checksum.

use std::net::IpAddr;

use super::WireError;

/// A running one's-complement sum.
///
/// Sums 64-bit words (the one's-complement sum is independent of word size, since 0xffff
/// divides 2^64 - 1), so checksumming a full-size segment is a few hundred additions. Chunks of
/// any length may be added in sequence (an odd-length chunk shifts the next one by a byte, which
/// is handled), so a DSS checksum can span several TCP segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

#[inline]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, o) = a.overflowing_add(b);
    s + u64::from(o)
}

#[inline]
fn fold16(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Sum of `data` as big-endian 16-bit words starting at an even offset, the last odd byte
/// padded with zero.
fn sum_aligned(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum = add_carry(sum, w);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    add_carry(sum, u64::from_be_bytes(tail))
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self { sum: 0, odd: false }
    }

    /// Adds bytes that follow whatever was added before.
    pub fn add_bytes(&mut self, data: &[u8]) {
        let s = fold16(sum_aligned(data));
        // A chunk starting at an odd offset contributes its byte-swapped sum (RFC 1071 §2(B)).
        let s = if self.odd { s.swap_bytes() } else { s };
        self.sum = add_carry(self.sum, u64::from(s));
        self.odd ^= data.len() % 2 == 1;
    }

    /// Adds a 16-bit big-endian word (must be at an even offset).
    #[inline]
    pub fn add_u16(&mut self, v: u16) {
        self.add_bytes(&v.to_be_bytes());
    }

    /// Adds a 32-bit big-endian word (must be at an even offset).
    #[inline]
    pub fn add_u32(&mut self, v: u32) {
        self.add_bytes(&v.to_be_bytes());
    }

    /// The folded one's-complement sum (not inverted); 0xffff for data that checks out.
    #[inline]
    pub fn sum(self) -> u16 {
        fold16(self.sum)
    }

    /// The value to put in a checksum field.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.sum()
    }
}

/// The Internet checksum of `data` (the value to store in the field).
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_bytes(data);
    c.finish()
}

const PROTO_TCP: u8 = 6;
const TCP_CSUM_OFFSET: usize = 16;

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Checksum {
    let mut c = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            c.add_bytes(&s.octets());
            c.add_bytes(&d.octets());
            c.add_u16(u16::from(proto));
            c.add_u16(len as u16);
        }
        // A mixed pair cannot occur on the wire; treat the v4 side as v4-mapped v6.
        _ => {
            c.add_bytes(&to_v6(src));
            c.add_bytes(&to_v6(dst));
            c.add_u32(len as u32);
            c.add_u32(u32::from(proto));
        }
    }
    c
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The TCP checksum of `segment` (header + payload) over the IPv4 or IPv6 pseudo-header.
///
/// The checksum field in `segment` is treated as zero, so this works on filled segments too.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut c = pseudo_header(src, dst, PROTO_TCP, segment.len());
    if segment.len() >= TCP_CSUM_OFFSET + 2 {
        c.add_bytes(&segment[..TCP_CSUM_OFFSET]);
        c.add_bytes(&[0, 0]);
        c.add_bytes(&segment[TCP_CSUM_OFFSET + 2..]);
    } else {
        c.add_bytes(segment);
    }
    c.finish()
}

/// Computes and stores the TCP checksum of a segment produced by [`super::TcpRepr::emit`].
pub fn fill_tcp_checksum(src: IpAddr, dst: IpAddr, segment: &mut [u8]) -> Result<(), WireError> {
    if segment.len() < 20 {
        return Err(WireError::Truncated);
    }
    let c = tcp_checksum(src, dst, segment);
    segment[TCP_CSUM_OFFSET..TCP_CSUM_OFFSET + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Whether a received segment's TCP checksum is correct.
pub fn verify_tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
    if segment.len() < 20 {
        return false;
    }
    let mut c = pseudo_header(src, dst, PROTO_TCP, segment.len());
    c.add_bytes(segment);
    c.sum() == 0xffff
}

/// The DSS pseudo-header of RFC 8684 §3.3.1 (64-bit DSN, relative subflow sequence number,
/// data-level length, 16 zero bits), ready for the mapped payload to be added, possibly
/// across several segments.
pub fn dss_pseudo_header(dsn: u64, ssn: u32, data_len: u16) -> Checksum {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&dsn.to_be_bytes());
    b[8..12].copy_from_slice(&ssn.to_be_bytes());
    b[12..14].copy_from_slice(&data_len.to_be_bytes());
    let mut c = Checksum::new();
    c.add_bytes(&b);
    c
}

/// The DSS checksum for a mapping whose whole payload is `payload`.
pub fn dss_checksum(dsn: u64, ssn: u32, data_len: u16, payload: &[u8]) -> u16 {
    let mut c = dss_pseudo_header(dsn, ssn, data_len);
    c.add_bytes(payload);
    c.finish()
}

/// Whether `checksum` (as received in the DSS option) matches the mapping and its payload.
pub fn verify_dss_checksum(
    dsn: u64,
    ssn: u32,
    data_len: u16,
    checksum: u16,
    payload: &[u8],
) -> bool {
    let mut c = dss_pseudo_header(dsn, ssn, data_len);
    c.add_u16(checksum);
    c.add_bytes(payload);
    c.sum() == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time RFC 1071 reference.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for (i, b) in data.iter().enumerate() {
            s += if i % 2 == 0 {
                u32::from(*b) << 8
            } else {
                u32::from(*b)
            };
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn matches_reference_and_chunking() {
        let data: Vec<u8> = (0..1001u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for n in [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 100, 1001] {
            let want = reference(&data[..n]);
            assert_eq!(internet_checksum(&data[..n]), want, "len {n}");
            for split in [0, 1, 3, n / 2] {
                if split > n {
                    continue;
                }
                let mut c = Checksum::new();
                c.add_bytes(&data[..split]);
                c.add_bytes(&data[split..n]);
                assert_eq!(c.finish(), want, "len {n} split {split}");
            }
        }
        assert_eq!(internet_checksum(&[0xff; 64]), 0);
    }
}
