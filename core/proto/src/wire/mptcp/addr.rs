//! ADD_ADDR and REMOVE_ADDR (RFC 8684 §3.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{emit_header, header, subtype};
use crate::wire::WireError;
use crate::wire::bytes::{rd_u16, rd_u64, wr_u16, wr_u64};

/// ADD_ADDR: announce an address (and optionally a port) under an address id.
///
/// `hmac` is `None` exactly for the echo form (E flag), which RFC 8684 sends without HMAC;
/// tying the two together makes a non-echo option without HMAC unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddAddr {
    /// The id the sender gives this address (REMOVE_ADDR and MP_JOIN refer to it).
    pub addr_id: u8,
    /// The announced IPv4 or IPv6 address.
    pub addr: IpAddr,
    /// The port to join at, when it differs from the initial subflow's.
    pub port: Option<u16>,
    /// Truncated HMAC proving the sender holds the connection's keys (`None`: the echo).
    pub hmac: Option<u64>,
}

impl AddAddr {
    /// Whether this is the echo that acknowledges a received ADD_ADDR.
    pub const fn is_echo(&self) -> bool {
        self.hmac.is_none()
    }

    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let st = header(b)?;
        if st != subtype::ADD_ADDR {
            return Err(WireError::UnknownMptcpSubtype(st));
        }
        let echo = b[2] & 0x01 != 0;
        let bad = WireError::BadMptcpLength {
            subtype: st,
            len: b.len() as u8,
        };
        // Remove the 4-byte header and the optional HMAC; what remains tells the family and port.
        let body = b.len().checked_sub(if echo { 4 } else { 12 }).ok_or(bad)?;
        let (v6, port) = match body {
            4 => (false, false),
            6 => (false, true),
            16 => (true, false),
            18 => (true, true),
            _ => return Err(bad),
        };
        let (addr, mut at) = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[4..20]);
            (IpAddr::V6(Ipv6Addr::from(o)), 20)
        } else {
            (IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), 8)
        };
        let port = if port {
            at += 2;
            Some(rd_u16(b, at - 2))
        } else {
            None
        };
        let hmac = (!echo).then(|| rd_u64(b, at));
        Ok(Self {
            addr_id: b[3],
            addr,
            port,
            hmac,
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        let a = if self.addr.is_ipv4() { 4 } else { 16 };
        4 + a + if self.port.is_some() { 2 } else { 0 } + if self.hmac.is_some() { 8 } else { 0 }
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let o = emit_header(buf, len, subtype::ADD_ADDR, u8::from(self.is_echo()))?;
        o[3] = self.addr_id;
        let mut at = match self.addr {
            IpAddr::V4(a) => {
                o[4..8].copy_from_slice(&a.octets());
                8
            }
            IpAddr::V6(a) => {
                o[4..20].copy_from_slice(&a.octets());
                20
            }
        };
        if let Some(p) = self.port {
            wr_u16(o, at, p);
            at += 2;
        }
        if let Some(h) = self.hmac {
            wr_u64(o, at, h);
        }
        Ok(len)
    }
}

/// REMOVE_ADDR: withdraw one or more address ids.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RemoveAddr {
    ids: [u8; RemoveAddr::MAX_IDS],
    count: u8,
}

impl RemoveAddr {
    /// As many ids as fit in the 40-byte TCP option space after the 3-byte header.
    pub const MAX_IDS: usize = 37;

    /// A REMOVE_ADDR for `ids` (1 to [`Self::MAX_IDS`] of them).
    pub fn new(ids: &[u8]) -> Result<Self, WireError> {
        if ids.is_empty() || ids.len() > Self::MAX_IDS {
            return Err(WireError::InvalidValue);
        }
        let mut r = Self {
            ids: [0; Self::MAX_IDS],
            count: ids.len() as u8,
        };
        r.ids[..ids.len()].copy_from_slice(ids);
        Ok(r)
    }

    /// The address ids withdrawn.
    pub fn ids(&self) -> &[u8] {
        &self.ids[..usize::from(self.count)]
    }

    /// Decodes the option from `b`: exactly its bytes, kind and length included.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let st = header(b)?;
        if st != subtype::REMOVE_ADDR {
            return Err(WireError::UnknownMptcpSubtype(st));
        }
        Self::new(&b[3..]).map_err(|_| WireError::BadMptcpLength {
            subtype: st,
            len: b.len() as u8,
        })
    }

    /// Bytes the option takes on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        3 + usize::from(self.count)
    }

    /// Writes the option at the front of `buf` and returns its length; fails if `buf` is too
    /// short or a field does not fit its encoding.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let o = emit_header(buf, len, subtype::REMOVE_ADDR, 0)?;
        o[3..].copy_from_slice(self.ids());
        Ok(len)
    }
}

impl core::fmt::Debug for RemoveAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoveAddr")
            .field("ids", &self.ids())
            .finish()
    }
}
