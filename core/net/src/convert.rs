//! RFC 8803 (0-RTT TCP Convert Protocol) messages, as far as a gateway needs them.
//!
//! Every message starts with a 4-byte fixed header: version (1), total length of the
//! Convert message in 32-bit words (header included), 16 unassigned bits. TLVs follow:
//! type (8 bits), length of the whole TLV in 32-bit words (8 bits), value. We use:
//! - Connect TLV (type 10): remote port (16 bits), remote address as 128-bit IPv6
//!   (IPv4 as IPv4-mapped), then TCP options, which we skip.
//! - Error TLV (type 30): error code (8 bits), a value byte, optional padding.
//! - Token TLV (type 192, private use): two zero bytes, then the 32-byte client token, an
//!   HMAC-SHA256 under a secret the gateway shares with its clients over a fixed label and
//!   the connection's two MPTCP keys ([`token_mac`]). The keys are fresh per connection, so
//!   a token seen on one connection is worth nothing on another.
//! - Host TLV (type 193, private use): remote port (16 bits), name length (8 bits), the host
//!   name in ASCII, zero padding to a whole word. Sent instead of a Connect TLV when the
//!   gateway is to resolve the name (docs/ARCHITECTURE.md, "The local proxy").
//! - Destination Unreachable errors carry a value byte saying more: [`UNREACHABLE_NO_ADDRESS`]
//!   (the name did not resolve), [`UNREACHABLE_TIMEOUT`] (no answer in time), 0 otherwise.
//!
//! Decoding never panics: every length is checked against the input.

use braid_proto::wire::crypto::hmac_sha256;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub const VERSION: u8 = 1;
pub const TLV_INFO: u8 = 1;
pub const TLV_CONNECT: u8 = 10;
pub const TLV_ERROR: u8 = 30;
/// The client token (RFC 8803 §8.1: 192-255 are for private use).
pub const TLV_TOKEN: u8 = 192;
/// A host name for the gateway to resolve (private use, like the token).
pub const TLV_HOST: u8 = 193;
/// Longest host name (RFC 1035 §2.3.4: 253 characters in text form).
pub const MAX_HOST_LEN: usize = 253;
/// Destination Unreachable value: the host name has no address.
pub const UNREACHABLE_NO_ADDRESS: u8 = 1;
/// Destination Unreachable value: the destination did not answer in time.
pub const UNREACHABLE_TIMEOUT: u8 = 2;
/// Bytes of a client token.
pub const TOKEN_LEN: usize = 32;
/// What the token's HMAC covers before the keys: names the purpose, so a MAC made for
/// anything else under the same secret is never a valid token.
const TOKEN_LABEL: &[u8] = b"braid convert token v1";
/// Fixed header bytes.
pub const HEADER_LEN: usize = 4;
/// Longest message we accept: the length field counts at most 255 words.
pub const MAX_LEN: usize = 255 * 4;

/// RFC 8803 §8.4 error codes (IANA "Convert Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    UnsupportedVersion,
    MalformedMessage,
    UnsupportedMessage,
    MissingCookie,
    NotAuthorized,
    UnsupportedTcpOption,
    ResourceExceeded,
    NetworkFailure,
    ConnectionReset,
    DestinationUnreachable,
    Other(u8),
}

impl ErrorCode {
    pub fn to_u8(self) -> u8 {
        match self {
            ErrorCode::UnsupportedVersion => 0,
            ErrorCode::MalformedMessage => 1,
            ErrorCode::UnsupportedMessage => 2,
            ErrorCode::MissingCookie => 3,
            ErrorCode::NotAuthorized => 32,
            ErrorCode::UnsupportedTcpOption => 33,
            ErrorCode::ResourceExceeded => 64,
            ErrorCode::NetworkFailure => 65,
            ErrorCode::ConnectionReset => 96,
            ErrorCode::DestinationUnreachable => 97,
            ErrorCode::Other(c) => c,
        }
    }

    pub fn from_u8(c: u8) -> Self {
        match c {
            0 => ErrorCode::UnsupportedVersion,
            1 => ErrorCode::MalformedMessage,
            2 => ErrorCode::UnsupportedMessage,
            3 => ErrorCode::MissingCookie,
            32 => ErrorCode::NotAuthorized,
            33 => ErrorCode::UnsupportedTcpOption,
            64 => ErrorCode::ResourceExceeded,
            65 => ErrorCode::NetworkFailure,
            96 => ErrorCode::ConnectionReset,
            97 => ErrorCode::DestinationUnreachable,
            c => ErrorCode::Other(c),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::MalformedMessage => "malformed message",
            ErrorCode::UnsupportedMessage => "unsupported message",
            ErrorCode::MissingCookie => "missing cookie",
            ErrorCode::NotAuthorized => "not authorized",
            ErrorCode::UnsupportedTcpOption => "unsupported TCP option",
            ErrorCode::ResourceExceeded => "resource exceeded",
            ErrorCode::NetworkFailure => "network failure",
            ErrorCode::ConnectionReset => "connection reset or refused by the destination",
            ErrorCode::DestinationUnreachable => "destination unreachable",
            ErrorCode::Other(c) => return write!(f, "error code {c}"),
        };
        f.write_str(s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("unsupported Convert version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed Convert message: {0}")]
    Malformed(&'static str),
    #[error("Convert message has no Connect TLV")]
    NoConnect,
    /// A host name that cannot be sent (checked before sending and on receipt).
    #[error("invalid host name: {0}")]
    BadHost(&'static str),
}

impl ConvertError {
    /// The code to answer with in an Error TLV.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConvertError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            ConvertError::Malformed(_) => ErrorCode::MalformedMessage,
            ConvertError::NoConnect => ErrorCode::UnsupportedMessage,
            ConvertError::BadHost(_) => ErrorCode::MalformedMessage,
        }
    }
}

/// A decoded Convert message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub connect: Option<SocketAddr>,
    pub error: Option<(ErrorCode, u8)>,
    /// The client token, if the client sent one.
    pub token: Option<[u8; TOKEN_LEN]>,
    /// A host name and port for the gateway to resolve (Host TLV), instead of `connect`.
    pub host: Option<HostPort>,
}

/// A destination by name: what the Host TLV carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// A checked host name ([`check_host`]).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Checks a host name for the Host TLV: 1 to 253 ASCII characters, dot-separated labels of
/// 1 to 63 letters, digits, `-` or `_` (a trailing dot is allowed).
pub fn check_host(host: &str) -> Result<(), ConvertError> {
    if host.is_empty() {
        return Err(ConvertError::BadHost("empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(ConvertError::BadHost("longer than 253 characters"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() {
            return Err(ConvertError::BadHost("empty label"));
        }
        if label.len() > 63 {
            return Err(ConvertError::BadHost("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConvertError::BadHost(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
    }
    Ok(())
}

/// Reads the fixed header: the total message length in bytes (header included).
pub fn message_len(header: &[u8; HEADER_LEN]) -> Result<usize, ConvertError> {
    if header[0] != VERSION {
        return Err(ConvertError::UnsupportedVersion(header[0]));
    }
    let words = header[1] as usize;
    if words == 0 {
        return Err(ConvertError::Malformed("total length is zero"));
    }
    Ok(words * 4)
}

/// How far the first bytes of a connection go towards the client's Convert message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstBytes {
    /// This many more bytes are needed (read exactly these: nothing of the data after the
    /// message).
    Need(usize),
    /// The whole message.
    Done(Message),
}

/// The Convert-phase parse of what a client sent so far, for a reader that asks for exactly
/// the bytes it needs: the fixed header first, then the rest of the message. What the
/// gateway's reader does in one place (and what the fuzzer drives through an engine).
pub fn first_bytes(buf: &[u8]) -> Result<FirstBytes, ConvertError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(FirstBytes::Need(HEADER_LEN - buf.len()));
    };
    let len = message_len(header)?;
    match buf.get(..len) {
        Some(msg) => decode(msg).map(FirstBytes::Done),
        None => Ok(FirstBytes::Need(len - buf.len())),
    }
}

/// Decodes a whole message (`bytes.len()` must equal the header's total length).
pub fn decode(bytes: &[u8]) -> Result<Message, ConvertError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ConvertError::Malformed("shorter than the fixed header"))?;
    let len = message_len(header)?;
    if len != bytes.len() {
        return Err(ConvertError::Malformed("length does not match the header"));
    }
    let mut msg = Message {
        connect: None,
        error: None,
        token: None,
        host: None,
    };
    let mut rest = &bytes[HEADER_LEN..];
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(ConvertError::Malformed("truncated TLV"));
        }
        let kind = rest[0];
        let tlv_len = rest[1] as usize * 4;
        if tlv_len == 0 {
            return Err(ConvertError::Malformed("TLV length is zero"));
        }
        let tlv = rest
            .get(..tlv_len)
            .ok_or(ConvertError::Malformed("TLV runs past the message"))?;
        match kind {
            TLV_CONNECT => {
                if msg.connect.is_some() {
                    return Err(ConvertError::Malformed("two Connect TLVs"));
                }
                if tlv.len() < 20 {
                    return Err(ConvertError::Malformed("Connect TLV too short"));
                }
                let port = u16::from_be_bytes([tlv[2], tlv[3]]);
                let mut a = [0u8; 16];
                a.copy_from_slice(&tlv[4..20]);
                let v6 = Ipv6Addr::from(a);
                let ip = match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                };
                // TCP options after the address are allowed and ignored.
                msg.connect = Some(SocketAddr::new(ip, port));
            }
            TLV_ERROR => {
                // At least one word: type, length, code, value.
                msg.error = Some((ErrorCode::from_u8(tlv[2]), tlv[3]));
            }
            TLV_TOKEN => {
                if msg.token.is_some() {
                    return Err(ConvertError::Malformed("two Token TLVs"));
                }
                if tlv.len() != 4 + TOKEN_LEN {
                    return Err(ConvertError::Malformed("Token TLV has the wrong length"));
                }
                let mut t = [0u8; TOKEN_LEN];
                t.copy_from_slice(&tlv[4..]);
                msg.token = Some(t);
            }
            TLV_HOST => {
                if msg.host.is_some() {
                    return Err(ConvertError::Malformed("two Host TLVs"));
                }
                msg.host = Some(decode_host(tlv)?);
            }
            // Info, Supported TCP Extensions, Cookie, ... carry nothing we act on.
            _ => {}
        }
        rest = &rest[tlv_len..];
    }
    if msg.host.is_some() && msg.connect.is_some() {
        return Err(ConvertError::Malformed("both a Connect and a Host TLV"));
    }
    Ok(msg)
}

/// The Host TLV's value: port, name length, name, zero padding (whole TLV given).
fn decode_host(tlv: &[u8]) -> Result<HostPort, ConvertError> {
    let ([_, _, p0, p1, n], name) = tlv
        .split_first_chunk::<5>()
        .ok_or(ConvertError::Malformed("Host TLV too short"))?;
    let (p0, p1, n) = (*p0, *p1, *n as usize);
    let (name, pad) = name
        .split_at_checked(n)
        .ok_or(ConvertError::Malformed("host name runs past the Host TLV"))?;
    if pad.len() >= 4 || pad.iter().any(|&b| b != 0) {
        return Err(ConvertError::Malformed("Host TLV padding"));
    }
    let host = std::str::from_utf8(name).map_err(|_| ConvertError::BadHost("not ASCII"))?;
    check_host(host)?;
    Ok(HostPort {
        host: host.to_string(),
        port: u16::from_be_bytes([p0, p1]),
    })
}

fn header(out: &mut Vec<u8>, total_len: usize) {
    out.push(VERSION);
    out.push((total_len / 4) as u8);
    out.extend_from_slice(&[0, 0]);
}

/// The client's message: fixed header and a Connect TLV naming `target`.
pub fn encode_connect(target: SocketAddr) -> Vec<u8> {
    encode_connect_with_token(target, None)
}

/// The client's message with a Token TLV (when `token` is given) after the Connect TLV.
pub fn encode_connect_with_token(target: SocketAddr, token: Option<&[u8; TOKEN_LEN]>) -> Vec<u8> {
    let len = 24 + token.map_or(0, |_| 4 + TOKEN_LEN);
    let mut out = Vec::with_capacity(len);
    header(&mut out, len);
    out.push(TLV_CONNECT);
    out.push(5);
    out.extend_from_slice(&target.port().to_be_bytes());
    let v6 = match target.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&v6.octets());
    if let Some(t) = token {
        out.extend_from_slice(&[TLV_TOKEN, ((4 + TOKEN_LEN) / 4) as u8, 0, 0]);
        out.extend_from_slice(t);
    }
    out
}

/// The client's message naming a host for the gateway to resolve (Host TLV), with a Token
/// TLV when `token` is given. Fails when the name cannot be sent ([`check_host`]).
pub fn encode_connect_host(
    target: &HostPort,
    token: Option<&[u8; TOKEN_LEN]>,
) -> Result<Vec<u8>, ConvertError> {
    check_host(&target.host)?;
    let tlv_len = (5 + target.host.len()).div_ceil(4) * 4;
    let len = HEADER_LEN + tlv_len + token.map_or(0, |_| 4 + TOKEN_LEN);
    let mut out = Vec::with_capacity(len);
    header(&mut out, len);
    out.extend_from_slice(&[TLV_HOST, (tlv_len / 4) as u8]);
    out.extend_from_slice(&target.port.to_be_bytes());
    out.push(target.host.len() as u8);
    out.extend_from_slice(target.host.as_bytes());
    out.resize(HEADER_LEN + tlv_len, 0);
    if let Some(t) = token {
        out.extend_from_slice(&[TLV_TOKEN, ((4 + TOKEN_LEN) / 4) as u8, 0, 0]);
        out.extend_from_slice(t);
    }
    Ok(out)
}

/// The client token for one connection: HMAC-SHA256(secret, label || client key || server
/// key), keys big-endian. The client computes it from its (local, remote) keys, the gateway
/// from its (remote, local) ones.
pub fn token_mac(secret: &[u8], client_key: u64, server_key: u64) -> [u8; TOKEN_LEN] {
    let mut msg = [0u8; TOKEN_LABEL.len() + 16];
    msg[..TOKEN_LABEL.len()].copy_from_slice(TOKEN_LABEL);
    msg[TOKEN_LABEL.len()..TOKEN_LABEL.len() + 8].copy_from_slice(&client_key.to_be_bytes());
    msg[TOKEN_LABEL.len() + 8..].copy_from_slice(&server_key.to_be_bytes());
    hmac_sha256(secret, &msg)
}

/// The gateway's success answer: the fixed header alone.
pub fn encode_ok() -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    header(&mut out, 4);
    out
}

/// The gateway's refusal: fixed header and an Error TLV.
pub fn encode_error(code: ErrorCode) -> Vec<u8> {
    encode_error_value(code, 0)
}

/// A refusal with a value byte. For Not Authorized, [`TLV_TOKEN`] as the value says that
/// the client token was what failed (as Unsupported Message names the TLV it refers to);
/// 0 is the allowlist.
pub fn encode_error_value(code: ErrorCode, value: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    header(&mut out, 8);
    out.extend_from_slice(&[TLV_ERROR, 1, code.to_u8(), value]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_round_trip_v4_and_v6() {
        for target in ["192.0.2.7:443", "[2001:db8::1]:8080", "127.0.0.1:1"] {
            let t: SocketAddr = target.parse().unwrap();
            let bytes = encode_connect(t);
            assert_eq!(bytes.len(), 24);
            assert_eq!(message_len(bytes[..4].try_into().unwrap()), Ok(24));
            let m = decode(&bytes).unwrap();
            assert_eq!(m.connect, Some(t));
            assert_eq!(m.error, None);
        }
    }

    #[test]
    fn v4_is_sent_mapped() {
        let bytes = encode_connect("10.1.2.3:80".parse().unwrap());
        assert_eq!(&bytes[..8], &[1, 6, 0, 0, 10, 5, 0, 80]);
        assert_eq!(&bytes[8..20], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&bytes[20..], &[10, 1, 2, 3]);
    }

    #[test]
    fn ok_and_error_round_trip() {
        let m = decode(&encode_ok()).unwrap();
        assert_eq!((m.connect, m.error), (None, None));
        for code in [
            ErrorCode::NotAuthorized,
            ErrorCode::ConnectionReset,
            ErrorCode::DestinationUnreachable,
            ErrorCode::Other(200),
        ] {
            let m = decode(&encode_error(code)).unwrap();
            assert_eq!(m.error, Some((code, 0)));
        }
    }

    #[test]
    fn connect_with_tcp_options_is_accepted() {
        let mut b = encode_connect("192.0.2.1:25".parse().unwrap());
        b[1] = 8;
        b[5] = 7;
        b.extend_from_slice(&[2, 4, 5, 0xb4, 1, 1, 1, 0]);
        let m = decode(&b).unwrap();
        assert_eq!(m.connect, Some("192.0.2.1:25".parse().unwrap()));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let good = encode_connect("192.0.2.1:25".parse().unwrap());
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        assert_eq!(
            decode(&bad_version),
            Err(ConvertError::UnsupportedVersion(2))
        );
        let mut zero_len = good.clone();
        zero_len[1] = 0;
        assert!(decode(&zero_len).is_err());
        let mut long = good.clone();
        long[1] = 7;
        assert!(decode(&long).is_err());
        let mut tlv_past_end = good.clone();
        tlv_past_end[5] = 6;
        assert!(decode(&tlv_past_end).is_err());
        let mut tlv_zero = good.clone();
        tlv_zero[5] = 0;
        assert!(decode(&tlv_zero).is_err());
        let mut short_connect = vec![1, 2, 0, 0, TLV_CONNECT, 1, 0, 80];
        assert!(decode(&short_connect).is_err());
        short_connect.truncate(3);
        assert!(decode(&short_connect).is_err());
        let mut twice = good.clone();
        twice[1] = 11;
        twice.extend_from_slice(&good[4..]);
        assert!(decode(&twice).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn token_round_trip_and_malformed_tokens() {
        let t: SocketAddr = "192.0.2.9:443".parse().unwrap();
        let tok = [0xabu8; TOKEN_LEN];
        let b = encode_connect_with_token(t, Some(&tok));
        assert_eq!(b.len(), 60);
        assert_eq!(message_len(b[..4].try_into().unwrap()), Ok(60));
        let m = decode(&b).unwrap();
        assert_eq!((m.connect, m.token), (Some(t), Some(tok)));
        assert_eq!(decode(&encode_connect(t)).unwrap().token, None);
        // A Token TLV one word short, and two of them.
        let mut short = b.clone();
        short.truncate(56);
        short[1] = 14;
        short[25] = 8;
        assert!(decode(&short).is_err());
        let mut twice = b.clone();
        twice.extend_from_slice(&b[24..]);
        twice[1] = 24;
        assert!(decode(&twice).is_err());
    }

    #[test]
    fn token_mac_binds_the_secret_and_both_keys() {
        let base = token_mac(b"s3cret", 1, 2);
        assert_ne!(
            base,
            token_mac(b"s3cret", 2, 1),
            "order of the keys matters"
        );
        assert_ne!(base, token_mac(b"s3cret", 1, 3));
        assert_ne!(base, token_mac(b"s3cret", 4, 2));
        assert_ne!(base, token_mac(b"s3cre", 1, 2));
        assert_eq!(base, token_mac(b"s3cret", 1, 2));
        // The construction as documented: HMAC-SHA256(secret, label || keys).
        let mut msg = TOKEN_LABEL.to_vec();
        msg.extend_from_slice(&1u64.to_be_bytes());
        msg.extend_from_slice(&2u64.to_be_bytes());
        assert_eq!(base, hmac_sha256(b"s3cret", &msg));
    }

    #[test]
    fn error_value_round_trips() {
        let m = decode(&encode_error_value(ErrorCode::NotAuthorized, TLV_TOKEN)).unwrap();
        assert_eq!(m.error, Some((ErrorCode::NotAuthorized, TLV_TOKEN)));
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Exhaustive over 1..=3 byte bodies and a pseudo-random sweep of longer ones.
        let mut x: u64 = 0x1234_5678;
        for len in 0..64usize {
            for _ in 0..2000 {
                let mut b = Vec::with_capacity(len);
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.push(x as u8);
                }
                if len >= 2 {
                    b[0] = 1;
                    b[1] = (len / 4) as u8;
                }
                let _ = decode(&b);
            }
        }
    }

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn host_round_trips_with_and_without_token() {
        let tok = [7u8; TOKEN_LEN];
        for name in [
            "a",
            "localhost",
            "abc",
            "abcd",
            "www.example.com.",
            &"x.".repeat(126),
        ] {
            let t = hp(name, 8443);
            for token in [None, Some(&tok)] {
                let b = encode_connect_host(&t, token).unwrap();
                assert_eq!(b.len() % 4, 0);
                assert_eq!(message_len(b[..4].try_into().unwrap()), Ok(b.len()));
                let m = decode(&b).unwrap();
                assert_eq!(m.host.as_ref(), Some(&t));
                assert_eq!((m.connect, m.token.as_ref()), (None, token));
                assert_eq!(first_bytes(&b), Ok(FirstBytes::Done(m)));
            }
        }
        // Layout: type, words, port, name length, name, zero padding.
        let b = encode_connect_host(&hp("abc", 443), None).unwrap();
        assert_eq!(b, [1, 3, 0, 0, TLV_HOST, 2, 1, 187, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn bad_host_names_are_refused_before_sending() {
        let long = "a".repeat(254);
        let long_label = "b".repeat(64);
        for bad in [
            "",
            "a..b",
            ".a",
            "ex ample.com",
            "caf\u{e9}.fr",
            "::1",
            &long,
            &long_label,
        ] {
            assert!(
                matches!(
                    encode_connect_host(&hp(bad, 1), None),
                    Err(ConvertError::BadHost(_))
                ),
                "{bad:?}"
            );
        }
        assert!(encode_connect_host(&hp(&"a.".repeat(126), 1), None).is_ok());
    }

    #[test]
    fn malformed_host_tlvs_are_errors() {
        let good = encode_connect_host(&hp("abc", 443), None).unwrap();
        // Name length past the TLV.
        let mut past = good.clone();
        past[8] = 9;
        assert!(decode(&past).is_err());
        // Non-zero padding, and a whole word of padding.
        let mut dirty = encode_connect_host(&hp("ab", 443), None).unwrap();
        *dirty.last_mut().unwrap() = 1;
        assert!(decode(&dirty).is_err());
        let mut wide = good.clone();
        wide[1] = 4;
        wide[5] = 3;
        wide.extend_from_slice(&[0; 4]);
        assert!(decode(&wide).is_err());
        // A name with a space, and a non-ASCII byte.
        let mut space = good.clone();
        space[10] = b' ';
        assert_eq!(
            decode(&space),
            Err(ConvertError::BadHost(
                "only ASCII letters, digits, '-', '_' and '.' are allowed"
            ))
        );
        let mut high = good.clone();
        high[10] = 0xc3;
        assert!(decode(&high).is_err());
        // Too short for the fixed part; and both a Connect and a Host TLV.
        assert!(decode(&[1, 2, 0, 0, TLV_HOST, 1, 0, 80]).is_err());
        let mut both = encode_connect("192.0.2.1:80".parse().unwrap());
        both.extend_from_slice(&good[4..]);
        both[1] = (both.len() / 4) as u8;
        assert!(decode(&both).is_err());
    }

    #[test]
    fn first_bytes_asks_for_exactly_the_message() {
        let t: SocketAddr = "192.0.2.9:443".parse().unwrap();
        let msg = encode_connect(t);
        assert_eq!(first_bytes(&[]), Ok(FirstBytes::Need(4)));
        assert_eq!(first_bytes(&msg[..3]), Ok(FirstBytes::Need(1)));
        assert_eq!(first_bytes(&msg[..4]), Ok(FirstBytes::Need(20)));
        assert_eq!(first_bytes(&msg[..23]), Ok(FirstBytes::Need(1)));
        match first_bytes(&msg) {
            Ok(FirstBytes::Done(m)) => assert_eq!(m.connect, Some(t)),
            other => panic!("{other:?}"),
        }
        // Bytes past the message are not looked at.
        let mut more = msg.clone();
        more.extend_from_slice(b"data");
        assert_eq!(first_bytes(&more), first_bytes(&msg));
        assert_eq!(
            first_bytes(&[9, 1, 0, 0]),
            Err(ConvertError::UnsupportedVersion(9))
        );
    }
}
