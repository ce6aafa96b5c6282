//! Wire formats: TCP header and options, every MPTCP v1 option, TCP-in-UDP framing, checksums
//! and MPTCP crypto.
//!
//! Everything here is allocation-free and panic-free on any input: parsers return
//! [`WireError`], emitters write into caller buffers and refuse what does not fit.

mod bytes;
pub mod checksum;
pub mod crypto;
mod error;
pub mod mptcp;
pub mod options;
mod seq;
pub mod tcp;
pub mod udp_framing;

pub use checksum::{
    Checksum, dss_checksum, dss_pseudo_header, fill_tcp_checksum, internet_checksum, tcp_checksum,
    verify_dss_checksum, verify_tcp_checksum,
};
pub use crypto::{
    add_addr_hmac, constant_time_eq, hmac_sha256, idsn, join_ack_hmac, join_synack_hmac, sha256,
    token, verify_add_addr_hmac, verify_join_ack_hmac, verify_join_synack_hmac,
};
pub use error::WireError;
pub use mptcp::{
    AddAddr, DataSeq, Dss, DssMapping, KIND_MPTCP, MpCapable, MpCapableFlags, MpCapableKeys,
    MpFail, MpFastClose, MpJoin, MpPrio, MpTcpRst, MptcpOption, RemoveAddr, TcpRstReason,
};
pub use options::{MAX_OPTIONS_LEN, MptcpOptions, SackBlocks, TcpOptions, UnknownOptions};
pub use seq::SeqNum;
pub use tcp::{TCP_HEADER_LEN, TcpFlags, TcpRepr};
pub use udp_framing::{emit_udp_payload, parse_udp_payload, udp_header_len};
