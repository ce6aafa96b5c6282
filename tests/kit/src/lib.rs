//! braid-testkit: the helpers Braid's tests, benchmarks, testbed and demo share, so that
//! every transfer is generated, hashed and judged the same way.
//!
//! - [`pattern`]: a deterministic byte stream, computable at any offset, and its SHA-256.
//! - [`Sha256`]: a running SHA-256 of what was sent or received.
//! - [`stall`]: the longest time without progress, from arrival times or sampled counters.
//! - [`transfer`] (feature `tokio`): send a stream and receive one over tokio I/O, with
//!   byte counters and hashes.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod pattern;
pub mod stall;
#[cfg(feature = "tokio")]
pub mod transfer;

use ring::digest;

/// A SHA-256 digest.
pub type Sha = [u8; 32];

/// A running SHA-256 (ring's, without the boilerplate).
pub struct Sha256(digest::Context);

impl Sha256 {
    /// An empty hash.
    pub fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Sha {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// Lower-case hex of a digest (or any bytes).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_fips_vector() {
        let mut h = Sha256::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            hex(&h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
