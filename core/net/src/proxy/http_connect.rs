//! HTTP CONNECT (RFC 9110 §9.3.6) as pure functions over the bytes received so far: the
//! request head up to a size cap, its target and its `Proxy-Authorization`, and the answers.

use super::Parsed;

/// The end of a request head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// A parsed CONNECT request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// `host:port` (IPv6 literals in brackets), as `Client::connect_via` takes it.
    pub target: String,
    /// The `Proxy-Authorization` field value, if any.
    pub proxy_authorization: Option<String>,
}

/// A head that cannot be served; [`HttpError::status`] is the answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("method {0} is not supported (only CONNECT)")]
    Method(String),
}

impl HttpError {
    /// Status code and reason phrase to answer with.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HttpError::TooLarge(_) => (431, "Request Header Fields Too Large"),
            HttpError::Malformed(_) => (400, "Bad Request"),
            HttpError::Method(_) => (405, "Method Not Allowed"),
        }
    }
}

/// Parses the request head once it is complete; `cap` bounds it (terminator included).
/// The `usize` of [`Parsed::Done`] is the head's length: bytes after it belong to the tunnel.
pub fn parse_head(buf: &[u8], cap: usize) -> Result<Parsed<Head>, HttpError> {
    let window = &buf[..buf.len().min(cap)];
    // Not HTTP at all (a TLS record, SOCKS4, noise): say so now rather than at the cap.
    let method_so_far = window.split(|&b| b == b' ').next().unwrap_or_default();
    if !method_so_far.iter().all(u8::is_ascii_uppercase) || method_so_far.len() > 32 {
        return Err(HttpError::Malformed("not an HTTP request"));
    }
    let Some(at) = window.windows(HEAD_END.len()).position(|w| w == HEAD_END) else {
        return if buf.len() >= cap {
            Err(HttpError::TooLarge(cap))
        } else {
            Ok(Parsed::More)
        };
    };
    let head = std::str::from_utf8(&buf[..at])
        .map_err(|_| HttpError::Malformed("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(HttpError::Malformed("not HTTP/1.x"));
    }
    if method != "CONNECT" {
        if method.is_empty() {
            return Err(HttpError::Malformed("bad method"));
        }
        return Err(HttpError::Method(method.to_string()));
    }
    let target = authority(target)?;
    let mut proxy_authorization = None;
    for field in lines {
        let (name, value) = field
            .split_once(':')
            .ok_or(HttpError::Malformed("header field without ':'"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HttpError::Malformed("bad header field name"));
        }
        if name.eq_ignore_ascii_case("proxy-authorization") {
            proxy_authorization = Some(value.trim().to_string());
        }
    }
    Ok(Parsed::Done(
        Head {
            target,
            proxy_authorization,
        },
        at + HEAD_END.len(),
    ))
}

/// A CONNECT target (authority form: `host:port`, `[v6]:port`), port required.
fn authority(t: &str) -> Result<String, HttpError> {
    let bad = HttpError::Malformed("CONNECT target is not host:port");
    let (host, port) = t.rsplit_once(':').ok_or(bad.clone())?;
    if port.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad);
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad);
        }
    } else if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'[' && b != b']' && b != b':')
    {
        return Err(bad);
    }
    Ok(t.to_string())
}

/// Whether a `Proxy-Authorization` value is `Basic` with exactly these credentials.
pub fn basic_matches(value: &str, username: &str, password: &str) -> bool {
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let want = base64(format!("{username}:{password}").as_bytes());
    // Not early-exit on the first differing byte.
    let got = token.trim().as_bytes();
    got.len() == want.len()
        && got
            .iter()
            .zip(want.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Standard padded base64 (RFC 4648 §4), for comparing Basic credentials.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The answer once the tunnel is up.
pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// An error answer with a short text body; the connection closes after it.
pub fn error_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut extra = String::new();
    if status == 407 {
        extra.push_str("Proxy-Authenticate: Basic realm=\"braid\"\r\n");
    }
    if status == 405 {
        extra.push_str("Allow: CONNECT\r\n");
    }
    let body = format!("{body}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Parsed<Head>, HttpError> {
        parse_head(s.as_bytes(), 8192)
    }

    #[test]
    fn connect_heads() {
        let req = "CONNECT localhost:8443 HTTP/1.1\r\nHost: localhost:8443\r\nproxy-authorization: Basic Ym9iOnB3\r\n\r\nTLS";
        for cut in 0..req.len() - 3 {
            assert_eq!(parse_head(&req.as_bytes()[..cut], 8192), Ok(Parsed::More));
        }
        let Parsed::Done(h, n) = head(req).unwrap() else {
            panic!()
        };
        assert_eq!(n, req.len() - 3, "bytes after the head are the tunnel's");
        assert_eq!(h.target, "localhost:8443");
        assert_eq!(h.proxy_authorization.as_deref(), Some("Basic Ym9iOnB3"));
        let Parsed::Done(h, _) = head("CONNECT [::1]:443 HTTP/1.0\r\n\r\n").unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.target.as_str(), h.proxy_authorization),
            ("[::1]:443", None)
        );
    }

    #[test]
    fn bad_heads() {
        let m = |s| head(s).unwrap_err().status().0;
        assert_eq!(m("GET http://x/ HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(m("CONNECT localhost HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(m("CONNECT localhost:99999 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(m("CONNECT [zz]:1 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(m("CONNECT :1 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(m("CONNECT a:1 HTTP/2\r\n\r\n"), 400);
        assert_eq!(m("CONNECT a:1  HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(m("CONNECT a:1 HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(m("\u{1}\u{2} a:1 HTTP/1.1\r\n\r\n"), 400);
        let endless = format!("CONNECT {}", "a".repeat(100));
        assert_eq!(
            parse_head(endless.as_bytes(), 64),
            Err(HttpError::TooLarge(64))
        );
        // Not HTTP: refused from the first bytes, without waiting for more.
        for junk in [
            &[0x16u8, 3, 1][..],
            &[4, 1, 0, 80],
            b"get / HTTP/1.1",
            b"\r\n",
        ] {
            assert_eq!(
                parse_head(junk, 8192),
                Err(HttpError::Malformed("not an HTTP request")),
                "{junk:?}"
            );
        }
        assert_eq!(parse_head(b"CONN", 8192), Ok(Parsed::More));
        // A terminator past the cap is too late.
        let long = format!("CONNECT a:1 HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(100));
        assert_eq!(
            parse_head(long.as_bytes(), 64),
            Err(HttpError::TooLarge(64))
        );
    }

    #[test]
    fn basic_credentials() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bob:pw"), "Ym9iOnB3");
        assert!(basic_matches("Basic Ym9iOnB3", "bob", "pw"));
        assert!(basic_matches("basic  Ym9iOnB3 ", "bob", "pw"));
        assert!(!basic_matches("Basic Ym9iOnB4", "bob", "pw"));
        assert!(!basic_matches("Bearer Ym9iOnB3", "bob", "pw"));
        assert!(!basic_matches("Basic", "bob", "pw"));
        assert!(!basic_matches("Basic Ym9iOnB3", "bob", "p"));
    }

    #[test]
    fn responses() {
        let r =
            String::from_utf8(error_response(407, "Proxy Authentication Required", "no")).unwrap();
        assert!(r.starts_with("HTTP/1.1 407 "));
        assert!(r.contains("Proxy-Authenticate: Basic"));
        assert!(r.ends_with("Content-Length: 3\r\nConnection: close\r\nProxy-Authenticate: Basic realm=\"braid\"\r\n\r\nno\n"));
    }
}
