//! Special-purpose address ranges and the scope they give an address. One table serves the
//! client, which joins only addresses of the server's own scope (docs/ARCHITECTURE.md,
//! "Security"), and the gateway's allowlist, where wide rules skip these ranges.

#![warn(missing_docs, unreachable_pub)]

use std::net::{IpAddr, Ipv6Addr};

/// How far an address reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Never a peer: unspecified, "this network", multicast, reserved, broadcast.
    Unroutable,
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// 169.254.0.0/16 and fe80::/10: valid on one link only.
    LinkLocal,
    /// RFC 1918, carrier-grade NAT, unique-local and site-local space.
    Private,
    /// Everything else: reachable across the Internet.
    Global,
}

const SPECIAL_V4: &[([u8; 4], u8, Scope)] = &[
    ([0, 0, 0, 0], 8, Scope::Unroutable), // "this network"; 0.0.0.0 reaches the local host
    ([10, 0, 0, 0], 8, Scope::Private),   // RFC 1918
    ([100, 64, 0, 0], 10, Scope::Private), // carrier-grade NAT (RFC 6598)
    ([127, 0, 0, 0], 8, Scope::Loopback), // loopback
    ([169, 254, 0, 0], 16, Scope::LinkLocal), // link-local, cloud metadata services
    ([172, 16, 0, 0], 12, Scope::Private), // RFC 1918
    ([192, 168, 0, 0], 16, Scope::Private), // RFC 1918
    ([224, 0, 0, 0], 4, Scope::Unroutable), // multicast
    ([240, 0, 0, 0], 4, Scope::Unroutable), // reserved, limited broadcast
];

const SPECIAL_V6: &[(u128, u8, Scope)] = &[
    (0, 96, Scope::Unroutable), // unspecified, loopback (see `scope`), IPv4-compatible
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, Scope::Private), // unique local
    (
        0xfe80_0000_0000_0000_0000_0000_0000_0000,
        10,
        Scope::LinkLocal,
    ), // link-local
    (
        0xfec0_0000_0000_0000_0000_0000_0000_0000,
        10,
        Scope::Private,
    ), // site-local (deprecated)
    (
        0xff00_0000_0000_0000_0000_0000_0000_0000,
        8,
        Scope::Unroutable,
    ), // multicast
];

/// The special range `ip` lies in (network, prefix length, scope), if any.
pub fn special_range(ip: IpAddr) -> Option<(IpAddr, u8, Scope)> {
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4
            .iter()
            .find(|(net, len, _)| prefix_eq(net, &v4.octets(), *len))
            .map(|&(net, len, s)| (IpAddr::from(net), len, s)),
        IpAddr::V6(v6) => SPECIAL_V6
            .iter()
            .find(|(net, len, _)| prefix_eq(&net.to_be_bytes(), &v6.octets(), *len))
            .map(|&(net, len, s)| (IpAddr::V6(Ipv6Addr::from(net)), len, s)),
    }
}

/// The scope of `ip`.
pub fn scope(ip: IpAddr) -> Scope {
    if ip.is_loopback() {
        return Scope::Loopback;
    }
    special_range(ip).map_or(Scope::Global, |(_, _, s)| s)
}

/// Whether the first `bits` bits of `a` and `b` agree.
pub fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = (bits as usize).min(a.len() * 8).min(b.len() * 8);
    let full = bits / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let s = |a: &str| scope(a.parse().unwrap());
        assert_eq!(s("8.8.8.8"), Scope::Global);
        assert_eq!(s("127.0.0.2"), Scope::Loopback);
        assert_eq!(s("10.1.2.3"), Scope::Private);
        assert_eq!(s("100.100.0.1"), Scope::Private);
        assert_eq!(s("100.128.0.1"), Scope::Global);
        assert_eq!(s("169.254.169.254"), Scope::LinkLocal);
        assert_eq!(s("255.255.255.255"), Scope::Unroutable);
        assert_eq!(s("0.0.0.0"), Scope::Unroutable);
        assert_eq!(s("::1"), Scope::Loopback);
        assert_eq!(s("::"), Scope::Unroutable);
        assert_eq!(s("fd00::1"), Scope::Private);
        assert_eq!(s("fe80::1"), Scope::LinkLocal);
        assert_eq!(s("ff02::1"), Scope::Unroutable);
        assert_eq!(s("2001:db8::1"), Scope::Global);
    }
}
