//! The test stream: pseudo-random bytes that depend on their offset, so reordered,
//! duplicated or misplaced data changes the hash, and a receiver can check any byte alone.
//!
//! Stream `seed` is made of 8-byte little-endian words; word `w` is the splitmix64 output
//! for `w + seed × 0x9e3779b97f4a7c15`. Different seeds give the two directions of a
//! transfer different contents.

use crate::{Sha, Sha256};

const CHUNK: usize = 64 * 1024;

/// Word `w` of stream `seed`.
fn word(seed: u64, w: u64) -> u64 {
    let mut z = w.wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The byte at offset `at` of stream `seed`.
pub fn byte(seed: u64, at: u64) -> u8 {
    word(seed, at / 8).to_le_bytes()[(at % 8) as usize]
}

/// Fills `buf` with stream `seed` from offset `at` (any offset, any length).
pub fn fill(seed: u64, at: u64, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let off = at + i as u64;
        let bytes = word(seed, off / 8).to_le_bytes();
        let from = (off % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&bytes[from..from + n]);
        i += n;
    }
}

/// The offset of the first byte of `data` (found at stream offset `at`) that differs from
/// stream `seed`, if any.
pub fn first_mismatch(seed: u64, at: u64, data: &[u8]) -> Option<u64> {
    let mut expect = [0u8; 256];
    for (k, chunk) in data.chunks(expect.len()).enumerate() {
        let off = at + (k * expect.len()) as u64;
        fill(seed, off, &mut expect[..chunk.len()]);
        if let Some(i) = chunk.iter().zip(&expect).position(|(a, b)| a != b) {
            return Some(off + i as u64);
        }
    }
    None
}

/// SHA-256 of the first `len` bytes of stream `seed`: what a correct receiver computes.
pub fn sha256(seed: u64, len: u64) -> Sha {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0;
    while at < len {
        let n = ((len - at) as usize).min(CHUNK);
        fill(seed, at, &mut buf[..n]);
        h.update(&buf[..n]);
        at += n as u64;
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_position_independent() {
        let mut whole = vec![0u8; 1000];
        fill(3, 5, &mut whole);
        let mut parts = vec![0u8; 1000];
        let (a, b) = parts.split_at_mut(333);
        fill(3, 5, a);
        fill(3, 5 + 333, b);
        assert_eq!(whole, parts);
        assert!((0..1000).all(|i| whole[i] == byte(3, 5 + i as u64)));
        let mut other = vec![0u8; 1000];
        fill(4, 5, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn sha_follows_the_content() {
        let mut data = vec![0u8; 200_003];
        fill(7, 0, &mut data);
        let mut h = Sha256::new();
        h.update(&data);
        assert_eq!(h.finish(), sha256(7, 200_003));
        assert_ne!(sha256(7, 200_003), sha256(8, 200_003));
        assert_ne!(sha256(7, 200_003), sha256(7, 200_002));
    }

    #[test]
    fn first_mismatch_finds_the_changed_byte() {
        let mut data = vec![0u8; 5000];
        fill(1, 100, &mut data);
        assert_eq!(first_mismatch(1, 100, &data), None);
        data[4321] ^= 1;
        assert_eq!(first_mismatch(1, 100, &data), Some(4421));
        assert!(first_mismatch(2, 100, &data).is_some_and(|at| at < 4421));
    }
}
