//! MPTCP key material (RFC 8684 §3.1, §3.2, §3.4.1): tokens, IDSNs and the truncated HMACs of
//! MP_JOIN and ADD_ADDR, with constant-time verification.

use std::net::IpAddr;

use ring::{digest, hmac};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The connection token: the most significant 32 bits of SHA-256 of the key (big-endian).
pub fn token(key: u64) -> u32 {
    let h = sha256(&key.to_be_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// The initial data sequence number: the least significant 64 bits of SHA-256 of the key.
pub fn idsn(key: u64) -> u64 {
    let h = sha256(&key.to_be_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[24..]);
    u64::from_be_bytes(b)
}

fn key_pair(first: u64, second: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&first.to_be_bytes());
    k[8..].copy_from_slice(&second.to_be_bytes());
    k
}

fn nonce_pair(first: u32, second: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&first.to_be_bytes());
    m[4..].copy_from_slice(&second.to_be_bytes());
    m
}

/// The MP_JOIN SYN/ACK HMAC sent by the responder B: the leftmost 64 bits of
/// HMAC(Key-B || Key-A, R-B || R-A).
pub fn join_synack_hmac(key_b: u64, key_a: u64, nonce_b: u32, nonce_a: u32) -> u64 {
    let h = hmac_sha256(&key_pair(key_b, key_a), &nonce_pair(nonce_b, nonce_a));
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b)
}

/// The MP_JOIN third-ACK HMAC sent by the initiator A: the leftmost 160 bits of
/// HMAC(Key-A || Key-B, R-A || R-B).
pub fn join_ack_hmac(key_a: u64, key_b: u64, nonce_a: u32, nonce_b: u32) -> [u8; 20] {
    let h = hmac_sha256(&key_pair(key_a, key_b), &nonce_pair(nonce_a, nonce_b));
    let mut out = [0u8; 20];
    out.copy_from_slice(&h[..20]);
    out
}

/// The ADD_ADDR HMAC: the rightmost 64 bits of HMAC(sender key || receiver key,
/// address id || address || port), the port being two zero bytes when absent.
pub fn add_addr_hmac(
    sender_key: u64,
    receiver_key: u64,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> u64 {
    let mut msg = [0u8; 1 + 16 + 2];
    msg[0] = addr_id;
    let n = match addr {
        IpAddr::V4(a) => {
            msg[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            msg[1..17].copy_from_slice(&a.octets());
            17
        }
    };
    msg[n..n + 2].copy_from_slice(&port.unwrap_or(0).to_be_bytes());
    let h = hmac_sha256(&key_pair(sender_key, receiver_key), &msg[..n + 2]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[24..]);
    u64::from_be_bytes(b)
}

/// Equality whose running time does not depend on where the inputs differ, so a forged
/// MP_JOIN or ADD_ADDR cannot learn the expected HMAC byte by byte.
#[inline(never)]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Checks a received MP_JOIN SYN/ACK HMAC (run by the initiator A).
pub fn verify_join_synack_hmac(
    key_b: u64,
    key_a: u64,
    nonce_b: u32,
    nonce_a: u32,
    got: u64,
) -> bool {
    let want = join_synack_hmac(key_b, key_a, nonce_b, nonce_a);
    constant_time_eq(&want.to_be_bytes(), &got.to_be_bytes())
}

/// Checks a received MP_JOIN third-ACK HMAC (run by the responder B).
pub fn verify_join_ack_hmac(
    key_a: u64,
    key_b: u64,
    nonce_a: u32,
    nonce_b: u32,
    got: &[u8; 20],
) -> bool {
    constant_time_eq(&join_ack_hmac(key_a, key_b, nonce_a, nonce_b), got)
}

/// Checks a received ADD_ADDR HMAC; `sender_key` is the key of the host that sent the option.
pub fn verify_add_addr_hmac(
    sender_key: u64,
    receiver_key: u64,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
    got: u64,
) -> bool {
    let want = add_addr_hmac(sender_key, receiver_key, addr_id, addr, port);
    constant_time_eq(&want.to_be_bytes(), &got.to_be_bytes())
}
