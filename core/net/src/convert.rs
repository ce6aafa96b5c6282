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
//!
//! Decoding never panics: every length is checked against the input.

use braid_proto::wire::crypto::hmac_sha256;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The Convert protocol version (RFC 8803 §4).
pub const VERSION: u8 = 1;
/// TLV type: Info.
pub const TLV_INFO: u8 = 1;
/// TLV type: Connect (the target address).
pub const TLV_CONNECT: u8 = 10;
/// TLV type: Error.
pub const TLV_ERROR: u8 = 30;
/// The client token (RFC 8803 §8.1: 192-255 are for private use).
pub const TLV_TOKEN: u8 = 192;
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
    /// 0: the version is not supported.
    UnsupportedVersion,
    /// 1: the message does not parse.
    MalformedMessage,
    /// 2: the message is not supported.
    UnsupportedMessage,
    /// 3: a cookie was expected and is missing.
    MissingCookie,
    /// 32: the client may not reach this target.
    NotAuthorized,
    /// 33: a TCP option the converter cannot relay.
    UnsupportedTcpOption,
    /// 64: the converter is out of resources.
    ResourceExceeded,
    /// 65: the network failed reaching the target.
    NetworkFailure,
    /// 96: the target reset the connection.
    ConnectionReset,
    /// 97: the target is unreachable.
    DestinationUnreachable,
    /// A code this implementation does not name.
    Other(u8),
}

impl ErrorCode {
    /// The code on the wire.
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

    /// The code from the wire.
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
/// A Convert message that cannot be used.
pub enum ConvertError {
    #[error("unsupported Convert version {0}")]
    /// The version byte is not 1.
    UnsupportedVersion(u8),
    #[error("malformed Convert message: {0}")]
    /// The message is cut short or its TLVs do not parse.
    Malformed(&'static str),
    #[error("Convert message has no Connect TLV")]
    /// No Connect TLV, so no target.
    NoConnect,
}

impl ConvertError {
    /// The code to answer with in an Error TLV.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConvertError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            ConvertError::Malformed(_) => ErrorCode::MalformedMessage,
            ConvertError::NoConnect => ErrorCode::UnsupportedMessage,
        }
    }
}

/// A decoded Convert message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The target (Connect TLV).
    pub connect: Option<SocketAddr>,
    /// The error (Error TLV): code and value.
    pub error: Option<(ErrorCode, u8)>,
    /// The client token, if the client sent one.
    pub token: Option<[u8; TOKEN_LEN]>,
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
            // Info, Supported TCP Extensions, Cookie, ... carry nothing we act on.
            _ => {}
        }
        rest = &rest[tlv_len..];
    }
    Ok(msg)
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
