//! Feeds arbitrary bytes to every wire decoder (TCP header, option field, single MPTCP option,
//! TCP-in-UDP payload). Whatever decodes must re-encode, and the re-encoding must decode to
//! the same value. Any panic is a bug.
//!
//! cargo +nightly fuzz run decode_segment

#![no_main]

use braid_proto::wire::{
    MAX_OPTIONS_LEN, MptcpOption, TcpOptions, TcpRepr, WireError, emit_udp_payload,
    parse_udp_payload,
};
use libfuzzer_sys::fuzz_target;

/// A rejected MPTCP option is reported on parse but never emitted.
fn canonical(mut o: TcpOptions) -> TcpOptions {
    o.mptcp_rejected = None;
    o
}

fuzz_target!(|data: &[u8]| {
    if let Ok((repr, off)) = TcpRepr::parse(data) {
        assert!(off >= 20 && off <= data.len());
        let mut buf = [0u8; 60];
        match repr.emit(&mut buf) {
            Ok(n) => {
                let (again, off2) = TcpRepr::parse(&buf[..n]).expect("re-encoded header parses");
                assert_eq!(off2, n);
                assert_eq!(
                    again,
                    TcpRepr {
                        options: canonical(repr.options),
                        ..repr
                    }
                );
            }
            // Kernel layout pads where a peer may have packed options tightly.
            Err(e) => assert_eq!(e, WireError::OptionSpaceExceeded),
        }
    }

    if let Ok(opts) = TcpOptions::parse(data) {
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        match opts.emit(&mut buf) {
            Ok(n) => {
                assert_eq!(n, opts.len());
                let again = TcpOptions::parse(&buf[..n]).expect("re-encoded options parse");
                assert_eq!(again, canonical(opts));
            }
            Err(e) => assert_eq!(e, WireError::OptionSpaceExceeded),
        }
    }

    if let Ok(opt) = MptcpOption::parse(data) {
        let mut buf = [0u8; 256];
        let n = opt.emit(&mut buf).expect("decoded MPTCP option re-encodes");
        assert_eq!(n, data.len());
        assert_eq!(MptcpOption::parse(&buf[..n]), Ok(opt));
    }

    if let Ok((repr, off)) = parse_udp_payload(data, 4242, 5499) {
        assert!(off >= 12 && off <= data.len());
        let mut buf = [0u8; 52];
        match emit_udp_payload(&repr, &mut buf) {
            Ok(n) => {
                let (again, off2) =
                    parse_udp_payload(&buf[..n], 4242, 5499).expect("re-encoded framing parses");
                assert_eq!(off2, n);
                assert_eq!(
                    again,
                    TcpRepr {
                        options: canonical(repr.options),
                        ..repr
                    }
                );
            }
            Err(e) => assert_eq!(e, WireError::OptionSpaceExceeded),
        }
    }
});
