//! TCP-in-UDP framing (draft-cheshire-tcp-over-udp, as the multipath-tcp/tcp-in-udp project
//! lays it out): zero bytes of overhead.
//!
//! The UDP header carries the ports (and the length and checksum, which replace TCP's
//! checksum and urgent pointer). The UDP payload starts with the TCP header's data offset,
//! flags and window, then sequence and acknowledgement numbers, then options and data:
//!
//! ```text
//! 0      1      2      4      8      12          doff*4-8
//! |doff| |flags |window|seq   |ack   |options... |data...
//! ```
//!
//! The data offset keeps its TCP meaning (header length in words), so the framed header is
//! exactly 8 bytes shorter than the TCP header. URG cannot be expressed.

use super::bytes::{rd_u16, rd_u32, wr_u16, wr_u32};
use super::options::{MAX_OPTIONS_LEN, TcpOptions};
use super::tcp::{TCP_HEADER_LEN, TcpFlags, TcpRepr, header_len_from_offset};
use super::{SeqNum, WireError};

/// What the UDP header replaces: ports, checksum and urgent pointer.
pub const UDP_FRAMING_SAVING: usize = 8;
/// Fixed part of the framed header (offset/flags/window, seq, ack).
pub const UDP_FIXED_LEN: usize = TCP_HEADER_LEN - UDP_FRAMING_SAVING;

/// Parses a TCP-in-UDP payload; the ports come from the UDP header. Returns the segment and
/// the offset of the data in `payload`.
pub fn parse_udp_payload(
    payload: &[u8],
    src_port: u16,
    dst_port: u16,
) -> Result<(TcpRepr, usize), WireError> {
    if payload.len() < UDP_FIXED_LEN {
        return Err(WireError::Truncated);
    }
    let hlen = header_len_from_offset(payload[0], payload.len() + UDP_FRAMING_SAVING)?;
    let flags = TcpFlags(payload[1]);
    if flags.contains(TcpFlags::URG) {
        return Err(WireError::UrgentNotSupported);
    }
    let data_off = hlen - UDP_FRAMING_SAVING;
    let options = TcpOptions::parse(&payload[UDP_FIXED_LEN..data_off])?;
    let repr = TcpRepr {
        src_port,
        dst_port,
        seq: SeqNum(rd_u32(payload, 4)),
        ack: SeqNum(rd_u32(payload, 8)),
        flags,
        window: rd_u16(payload, 2),
        urgent: 0,
        options,
    };
    Ok((repr, data_off))
}

/// Length of the framed header for `repr` (its TCP header length minus 8).
pub fn udp_header_len(repr: &TcpRepr) -> usize {
    repr.header_len() - UDP_FRAMING_SAVING
}

/// Writes the framed header at the start of a UDP payload; returns its length. The ports
/// of `repr` are not written: they belong in the UDP header.
pub fn emit_udp_payload(repr: &TcpRepr, buf: &mut [u8]) -> Result<usize, WireError> {
    if repr.flags.contains(TcpFlags::URG) || repr.urgent != 0 {
        return Err(WireError::UrgentNotSupported);
    }
    let olen = repr.options.len();
    if olen > MAX_OPTIONS_LEN {
        return Err(WireError::OptionSpaceExceeded);
    }
    let len = UDP_FIXED_LEN + olen;
    let o = super::bytes::out(buf, len)?;
    o[0] = (((TCP_HEADER_LEN + olen) / 4) as u8) << 4;
    o[1] = repr.flags.0;
    wr_u16(o, 2, repr.window);
    wr_u32(o, 4, repr.seq.0);
    wr_u32(o, 8, repr.ack.0);
    repr.options.emit(&mut o[UDP_FIXED_LEN..])?;
    Ok(len)
}
