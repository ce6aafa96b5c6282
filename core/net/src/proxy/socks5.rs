//! SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929), as pure functions
//! over the bytes received so far: each parse says how much more it needs or what it found
//! and how many bytes that took.

use super::Parsed;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const VERSION: u8 = 5;
/// Method: no authentication.
pub const NO_AUTH: u8 = 0x00;
/// Method: username/password (RFC 1929).
pub const USER_PASS: u8 = 0x02;
/// Method reply: none of the offered methods is acceptable.
pub const NO_ACCEPTABLE: u8 = 0xff;
/// The only command served.
pub const CMD_CONNECT: u8 = 1;

/// RFC 1928 §6 reply codes.
pub mod reply {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const TTL_EXPIRED: u8 = 0x06;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

/// Where a CONNECT request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetAddr {
    Ip(IpAddr),
    /// A domain name as sent (checked to be printable ASCII; the gateway checks the rest).
    Domain(String),
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub target: TargetAddr,
    pub port: u16,
}

impl Request {
    /// `host:port` for `Client::connect_via` (IPv6 in brackets; a domain that is an IP
    /// literal is treated as that address).
    pub fn target_string(&self) -> String {
        let ip = match &self.target {
            TargetAddr::Ip(ip) => Some(*ip),
            TargetAddr::Domain(d) => d.parse::<IpAddr>().ok(),
        };
        match (ip, &self.target) {
            (Some(IpAddr::V6(v6)), _) => format!("[{v6}]:{}", self.port),
            (Some(ip), _) => format!("{ip}:{}", self.port),
            (None, TargetAddr::Domain(d)) => format!("{d}:{}", self.port),
            (None, TargetAddr::Ip(_)) => unreachable!("an Ip target always has an address"),
        }
    }
}

/// A request that cannot be served, with the reply code that says so (None: not even a
/// SOCKS5 message, close without a reply).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    #[error("not SOCKS version 5 (got {0})")]
    Version(u8),
    #[error("no authentication methods offered")]
    NoMethods,
    #[error("bad username/password sub-negotiation version {0}")]
    AuthVersion(u8),
    #[error("command {0} is not supported (only CONNECT)")]
    Command(u8),
    #[error("address type {0} is not supported")]
    AddressType(u8),
    #[error("reserved byte is not zero")]
    Reserved,
    #[error("the domain name is empty or not printable ASCII")]
    Domain,
}

impl SocksError {
    /// The reply code to answer a request with, for errors found in the request.
    pub fn reply(&self) -> Option<u8> {
        match self {
            SocksError::Command(_) => Some(reply::COMMAND_NOT_SUPPORTED),
            SocksError::AddressType(_) => Some(reply::ADDRESS_TYPE_NOT_SUPPORTED),
            SocksError::Domain | SocksError::Reserved => Some(reply::GENERAL_FAILURE),
            _ => None,
        }
    }
}

/// The client's greeting: the methods it offers.
pub fn parse_greeting(buf: &[u8]) -> Result<Parsed<Vec<u8>>, SocksError> {
    let Some(&[ver, n]) = buf.first_chunk::<2>() else {
        return Ok(Parsed::More);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + n as usize;
    match buf.get(2..end) {
        Some(methods) => Ok(Parsed::Done(methods.to_vec(), end)),
        None => Ok(Parsed::More),
    }
}

/// Which method to pick from those offered: username/password when credentials are
/// required, no authentication otherwise; [`NO_ACCEPTABLE`] when the client offers neither.
pub fn choose_method(offered: &[u8], need_auth: bool) -> u8 {
    let want = if need_auth { USER_PASS } else { NO_AUTH };
    if offered.contains(&want) {
        want
    } else {
        NO_ACCEPTABLE
    }
}

/// An RFC 1929 username/password request, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPass {
    pub username: Vec<u8>,
    pub password: Vec<u8>,
}

/// The RFC 1929 request.
pub fn parse_user_pass(buf: &[u8]) -> Result<Parsed<UserPass>, SocksError> {
    let Some(&[ver, ulen]) = buf.first_chunk::<2>() else {
        return Ok(Parsed::More);
    };
    if ver != 1 {
        return Err(SocksError::AuthVersion(ver));
    }
    let ulen = ulen as usize;
    let Some(&plen) = buf.get(2 + ulen) else {
        return Ok(Parsed::More);
    };
    let end = 3 + ulen + plen as usize;
    match buf.get(..end) {
        Some(all) => Ok(Parsed::Done(
            UserPass {
                username: all[2..2 + ulen].to_vec(),
                password: all[3 + ulen..].to_vec(),
            },
            end,
        )),
        None => Ok(Parsed::More),
    }
}

/// The CONNECT request (any other command is an error carrying reply 0x07).
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request>, SocksError> {
    let Some(&[ver, cmd, rsv, atyp]) = buf.first_chunk::<4>() else {
        return Ok(Parsed::More);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    if cmd != CMD_CONNECT {
        return Err(SocksError::Command(cmd));
    }
    if rsv != 0 {
        return Err(SocksError::Reserved);
    }
    let (addr_len, skip) = match atyp {
        1 => (4, 0),
        4 => (16, 0),
        3 => match buf.get(4) {
            Some(&n) => (n as usize, 1),
            None => return Ok(Parsed::More),
        },
        other => return Err(SocksError::AddressType(other)),
    };
    let start = 4 + skip;
    let end = start + addr_len + 2;
    let Some(all) = buf.get(..end) else {
        return Ok(Parsed::More);
    };
    let a = &all[start..start + addr_len];
    let target = match atyp {
        1 => TargetAddr::Ip(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        4 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            TargetAddr::Ip(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => {
            if a.is_empty() || !a.iter().all(|b| b.is_ascii_graphic()) {
                return Err(SocksError::Domain);
            }
            TargetAddr::Domain(String::from_utf8_lossy(a).into_owned())
        }
    };
    let port = u16::from_be_bytes([all[end - 2], all[end - 1]]);
    Ok(Parsed::Done(Request { target, port }, end))
}

/// A reply to a request. The bound address is not meaningful through a gateway: IPv4 0.0.0.0
/// port 0, as RFC 1928 allows.
pub fn encode_reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done<T>(p: Parsed<T>) -> (T, usize) {
        match p {
            Parsed::Done(v, n) => (v, n),
            Parsed::More => panic!("incomplete"),
        }
    }

    #[test]
    fn greeting_incremental_and_method_choice() {
        let g = [5, 2, NO_AUTH, USER_PASS, 0xaa];
        for cut in 0..4 {
            assert_eq!(parse_greeting(&g[..cut]), Ok(Parsed::More), "{cut}");
        }
        assert_eq!(done(parse_greeting(&g).unwrap()), (vec![0, 2], 4));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::Version(4)));
        assert_eq!(parse_greeting(&[5, 0]), Err(SocksError::NoMethods));
        assert_eq!(choose_method(&[0, 2], true), USER_PASS);
        assert_eq!(choose_method(&[0, 2], false), NO_AUTH);
        assert_eq!(choose_method(&[0], true), NO_ACCEPTABLE);
        assert_eq!(choose_method(&[2], false), NO_ACCEPTABLE);
    }

    #[test]
    fn user_pass() {
        let m = [1, 3, b'b', b'o', b'b', 2, b'p', b'w', 9];
        for cut in 0..8 {
            assert_eq!(parse_user_pass(&m[..cut]), Ok(Parsed::More), "{cut}");
        }
        assert_eq!(
            done(parse_user_pass(&m).unwrap()),
            (
                UserPass {
                    username: b"bob".to_vec(),
                    password: b"pw".to_vec()
                },
                8
            )
        );
        assert_eq!(
            done(parse_user_pass(&[1, 0, 0]).unwrap()),
            (
                UserPass {
                    username: vec![],
                    password: vec![]
                },
                3
            )
        );
        assert_eq!(parse_user_pass(&[5, 1]), Err(SocksError::AuthVersion(5)));
    }

    #[test]
    fn requests_of_each_address_type() {
        let v4 = [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0xee];
        let (r, n) = done(parse_request(&v4).unwrap());
        assert_eq!((r.target_string(), n), ("127.0.0.1:8080".to_string(), 10));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[1, 187]);
        assert_eq!(
            done(parse_request(&v6).unwrap()).0.target_string(),
            "[::1]:443"
        );
        let mut dom = vec![5, 1, 0, 3, 9];
        dom.extend_from_slice(b"localhost");
        dom.extend_from_slice(&[0x20, 0xfb]);
        for cut in 0..dom.len() {
            assert_eq!(parse_request(&dom[..cut]), Ok(Parsed::More), "{cut}");
        }
        let (r, n) = done(parse_request(&dom).unwrap());
        assert_eq!(r.target, TargetAddr::Domain("localhost".into()));
        assert_eq!((r.target_string(), n), ("localhost:8443".to_string(), 16));
        // A literal sent as a domain name is that address.
        let mut lit = vec![5, 1, 0, 3, 3];
        lit.extend_from_slice(b"::1");
        lit.extend_from_slice(&[0, 80]);
        assert_eq!(
            done(parse_request(&lit).unwrap()).0.target_string(),
            "[::1]:80"
        );
    }

    #[test]
    fn bad_requests_carry_their_reply() {
        let bind = [5, 2, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_request(&bind), Err(SocksError::Command(2)));
        assert_eq!(
            SocksError::Command(2).reply(),
            Some(reply::COMMAND_NOT_SUPPORTED)
        );
        let e = parse_request(&[5, 1, 0, 7]).unwrap_err();
        assert_eq!(e.reply(), Some(reply::ADDRESS_TYPE_NOT_SUPPORTED));
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 2, b'a', b' ', 0, 80]),
            Err(SocksError::Domain)
        );
        assert_eq!(parse_request(&[5, 1, 1, 1]), Err(SocksError::Reserved));
        assert_eq!(parse_request(&[4, 1, 0, 1]), Err(SocksError::Version(4)));
        assert_eq!(SocksError::Version(4).reply(), None);
    }

    #[test]
    fn reply_layout() {
        assert_eq!(
            encode_reply(reply::TTL_EXPIRED),
            [5, 6, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }
}
