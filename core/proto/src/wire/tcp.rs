//! The TCP header as an owned, `Copy` representation (smoltcp `Repr` style).

use core::fmt;

use super::bytes::{rd_u16, rd_u32, wr_u16, wr_u32};
use super::options::{MAX_OPTIONS_LEN, TcpOptions};
use super::{SeqNum, WireError};

/// Length of the TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// The eight TCP control bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronise sequence numbers (opening handshake).
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push: deliver to the application promptly.
    pub const PSH: Self = Self(0x08);
    /// The acknowledgement number is valid.
    pub const ACK: Self = Self(0x10);
    /// The urgent pointer is valid.
    pub const URG: Self = Self(0x20);
    /// ECN echo (RFC 3168).
    pub const ECE: Self = Self(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: Self = Self(0x80);

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, o: Self) {
        self.0 |= o.0;
    }
}

/// tcpdump's notation: `S.` is SYN/ACK, `P.` PSH/ACK, `F.` FIN/ACK, `none` when empty.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        const ORDER: [(TcpFlags, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        for (flag, c) in ORDER {
            if self.contains(flag) {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags[{self}]")
    }
}

/// A TCP header with its options. The checksum is not part of it: it depends on the IP
/// addresses and payload, and is filled separately ([`super::fill_tcp_checksum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first byte (or of the SYN/FIN).
    pub seq: SeqNum,
    /// Acknowledgement number: the next byte expected (valid with ACK).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window as on the wire, before window scaling.
    pub window: u16,
    /// Urgent pointer (valid with URG).
    pub urgent: u16,
    /// The options, parsed.
    pub options: TcpOptions,
}

/// Reads the data offset nibble and checks it against the available bytes (`avail` counted
/// from where the TCP header would start).
pub(crate) fn header_len_from_offset(doff_byte: u8, avail: usize) -> Result<usize, WireError> {
    let doff = doff_byte >> 4;
    let hlen = usize::from(doff) * 4;
    if doff < 5 || hlen > avail {
        return Err(WireError::BadDataOffset(doff));
    }
    Ok(hlen)
}

impl TcpRepr {
    /// Parses a TCP header; returns it and the offset of the payload in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), WireError> {
        if bytes.len() < TCP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hlen = header_len_from_offset(bytes[12], bytes.len())?;
        let options = TcpOptions::parse(&bytes[TCP_HEADER_LEN..hlen])?;
        let repr = Self {
            src_port: rd_u16(bytes, 0),
            dst_port: rd_u16(bytes, 2),
            seq: SeqNum(rd_u32(bytes, 4)),
            ack: SeqNum(rd_u32(bytes, 8)),
            flags: TcpFlags(bytes[13]),
            window: rd_u16(bytes, 14),
            urgent: rd_u16(bytes, 18),
            options,
        };
        Ok((repr, hlen))
    }

    /// Header length in bytes, options and padding included.
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + self.options.len()
    }

    /// Writes the header (checksum field zero); returns its length. The payload goes after it.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let olen = self.options.len();
        if olen > MAX_OPTIONS_LEN {
            return Err(WireError::OptionSpaceExceeded);
        }
        let hlen = TCP_HEADER_LEN + olen;
        let o = super::bytes::out(buf, hlen)?;
        wr_u16(o, 0, self.src_port);
        wr_u16(o, 2, self.dst_port);
        wr_u32(o, 4, self.seq.0);
        wr_u32(o, 8, self.ack.0);
        o[12] = ((hlen / 4) as u8) << 4;
        o[13] = self.flags.0;
        wr_u16(o, 14, self.window);
        wr_u16(o, 16, 0);
        wr_u16(o, 18, self.urgent);
        self.options.emit(&mut o[TCP_HEADER_LEN..])?;
        Ok(hlen)
    }

    /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
    pub fn segment_len(&self, payload_len: usize) -> usize {
        payload_len
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }
}
