//! The single error type of the wire codec.

use core::fmt;

/// Why a segment, option or framing could not be parsed or emitted.
///
/// `Copy` so that it can be stored inside [`super::TcpOptions`] (a rejected MPTCP option does not
/// make the segment unusable) and returned from hot paths without cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The input ends before a fixed-size field does.
    Truncated,
    /// The TCP data offset is below 5 words or points past the end of the input.
    BadDataOffset(u8),
    /// A TCP option's length byte is impossible for its kind (below 2, past the end of the
    /// option field, or not the fixed length that kind requires).
    BadOptionLength {
        /// The option kind.
        kind: u8,
        /// Its length byte.
        len: u8,
    },
    /// [`super::MptcpOption::parse`] was given an option whose kind is not 30.
    NotMptcp(u8),
    /// An MPTCP subtype this codec does not know (RFC 8684 says: ignore the option).
    UnknownMptcpSubtype(u8),
    /// An MP_CAPABLE of a version we do not speak (version 0 is RFC 6824).
    UnsupportedMptcpVersion(u8),
    /// An MPTCP option whose length matches none of the forms of its subtype.
    BadMptcpLength {
        /// The MPTCP subtype.
        subtype: u8,
        /// The option's length byte.
        len: u8,
    },
    /// The value cannot be encoded (e.g. REMOVE_ADDR without ids, SACK block count over 4).
    InvalidValue,
    /// More options of one family than the fixed-capacity representation can hold.
    TooManyOptions,
    /// The options do not fit in the 40 bytes a TCP header can carry.
    OptionSpaceExceeded,
    /// TCP-in-UDP cannot express URG or a non-zero urgent pointer.
    UrgentNotSupported,
    /// The output buffer is shorter than what must be written.
    BufferTooSmall,
    /// The TCP checksum does not match the segment (raw carrier).
    BadChecksum,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => f.write_str("input truncated"),
            Self::BadDataOffset(d) => write!(f, "bad TCP data offset {d}"),
            Self::BadOptionLength { kind, len } => {
                write!(f, "bad length {len} for TCP option kind {kind}")
            }
            Self::NotMptcp(kind) => write!(f, "option kind {kind} is not MPTCP (30)"),
            Self::UnknownMptcpSubtype(s) => write!(f, "unknown MPTCP subtype {s}"),
            Self::UnsupportedMptcpVersion(v) => write!(f, "unsupported MPTCP version {v}"),
            Self::BadMptcpLength { subtype, len } => {
                write!(f, "bad length {len} for MPTCP subtype {subtype}")
            }
            Self::InvalidValue => f.write_str("value cannot be encoded"),
            Self::TooManyOptions => f.write_str("too many options"),
            Self::OptionSpaceExceeded => f.write_str("TCP options exceed 40 bytes"),
            Self::UrgentNotSupported => f.write_str("urgent data is not supported in TCP-in-UDP"),
            Self::BufferTooSmall => f.write_str("output buffer too small"),
            Self::BadChecksum => f.write_str("bad TCP checksum"),
        }
    }
}

impl std::error::Error for WireError {}
