//! Hashing for the endpoint's maps, cheaper than std's SipHash, which cost about 9 % of the
//! engine's instructions per segment (issue 20; BENCHMARKS.md, "Engine cost").
//!
//! Two kinds of key, two hashers (docs/ARCHITECTURE.md, "Cheap lookups"); the runtime's
//! driver uses them too:
//! - [`HandleMap`]: connection handles, which this endpoint counts up itself. Nobody outside
//!   picks them, so one multiplication spreads them well enough.
//! - [`KeyedState`]: keys a peer chooses (4-tuples, source addresses, tokens it sends). A
//!   multiply-and-fold hash keyed with two random words per endpoint: a peer that does not
//!   know the key cannot aim many keys at one bucket.

use super::ConnectionHandle;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// The 64-bit multiplier of Fibonacci hashing (2^64 / φ, odd).
const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Multiplies to 128 bits and folds the halves together: every input bit reaches the high
/// and the low bits of the result, which the hash table uses for the bucket and its tag.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A map whose keys a peer may choose, hashed with a random key of its own.
pub type KeyedMap<K, V> = HashMap<K, V, KeyedState>;

/// A map keyed by connection handle.
pub type HandleMap<V> = HashMap<ConnectionHandle, V, BuildHasherDefault<HandleHasher>>;

/// Hashes integers this host assigns (connection handles, its own sequence numbers) with
/// one folded multiplication. Not for keys a peer chooses: use [`KeyedState`].
#[derive(Default)]
pub struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = fold_mul(self.0 ^ n, PHI);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`KeyedHasher`]s with this endpoint's secret key.
#[derive(Clone, Copy, Debug)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    /// A state keyed with `k0` and `k1` (random words, for maps a peer fills).
    pub fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1: k1 | 1 }
    }
}

impl Default for KeyedState {
    /// A random key, from std's per-process hash seed (the endpoint's own random source is
    /// left alone, so seeded simulations draw the same keys and sequence numbers).
    fn default() -> Self {
        let seed = RandomState::new();
        Self::new(
            seed.hash_one(0x6b65_7930_u64),
            seed.hash_one(0x6b65_7931_u64),
        )
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            acc: self.k0,
            key: self.k1,
        }
    }
}

/// A keyed multiply-and-fold hash: each word is mixed into the accumulator with the secret
/// multiplier (see [`KeyedState`]).
pub struct KeyedHasher {
    acc: u64,
    key: u64,
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.acc = fold_mul(self.acc ^ n, self.key);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        // A last round so the final word also reaches every bit.
        fold_mul(self.acc, PHI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::SocketAddr;

    fn tuple_hash(s: &KeyedState, port: u16) -> u64 {
        let local: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let remote = SocketAddr::from(([10, 0, 1, 2], port));
        s.hash_one((local, remote))
    }

    #[test]
    fn keyed_hash_depends_on_the_key() {
        let a = KeyedState::new(1, 2);
        let b = KeyedState::new(3, 4);
        let same = (1000..2000)
            .filter(|&p| tuple_hash(&a, p) == tuple_hash(&b, p))
            .count();
        assert_eq!(same, 0, "two keys hash the same tuples alike");
        // The same key, the same hash (a map needs that).
        assert_eq!(tuple_hash(&a, 5), tuple_hash(&a, 5));
    }

    #[test]
    fn keyed_hash_spreads_neighbouring_tuples_over_buckets() {
        // 4096 tuples differing only in the port, into 1024 buckets by the low bits (as the
        // table does): a hash that ignored the port would put them all in one.
        let s = KeyedState::new(0x1234_5678, 0x9abc_def0);
        let buckets: HashSet<u64> = (0..4096u16)
            .map(|p| tuple_hash(&s, 40_000 + p) & 1023)
            .collect();
        assert!(
            buckets.len() > 900,
            "only {} of 1024 buckets used",
            buckets.len()
        );
        let tags: HashSet<u64> = (0..4096u16)
            .map(|p| tuple_hash(&s, 40_000 + p) >> 57)
            .collect();
        assert!(tags.len() > 100, "only {} of 128 tags used", tags.len());
    }

    #[test]
    fn trailing_bytes_change_the_hash() {
        let s = KeyedState::new(7, 9);
        assert_ne!(s.hash_one(b"ab".as_slice()), s.hash_one(b"ab\0".as_slice()));
        let mut h1 = s.build_hasher();
        h1.write(b"ab");
        let mut h2 = s.build_hasher();
        h2.write(b"ab\0");
        assert_ne!(h1.finish(), h2.finish());
    }

    #[test]
    fn handles_in_sequence_fill_a_table_evenly() {
        let mut m: HandleMap<u64> = HandleMap::default();
        for i in 1..=10_000u64 {
            m.insert(ConnectionHandle(i), i);
        }
        assert!((1..=10_000u64).all(|i| m.get(&ConnectionHandle(i)) == Some(&i)));
        let b = BuildHasherDefault::<HandleHasher>::default();
        let buckets: HashSet<u64> = (1..=1024u64)
            .map(|i| b.hash_one(ConnectionHandle(i)) & 1023)
            .collect();
        assert!(
            buckets.len() > 600,
            "only {} of 1024 buckets used",
            buckets.len()
        );
    }
}
