//! Malformed input of every kind gives the precise typed error (table-driven), and emitters
//! refuse what does not fit.

use std::net::{IpAddr, Ipv4Addr};

use braid_proto::wire::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bad_len(subtype: u8, len: u8) -> WireError {
    WireError::BadMptcpLength { subtype, len }
}

/// A valid 20-byte header (ACK, no options) followed by `opts`, with the data offset set to
/// cover them.
fn header_with(opts: &str) -> Vec<u8> {
    let o = unhex(opts);
    let mut h = unhex("d3f2157b 00000001 00000002 50100200 00000000");
    h[12] = (((20 + o.len()) / 4) as u8) << 4;
    h.extend_from_slice(&o);
    h
}

#[test]
fn tcp_header_errors() {
    let ok = header_with("");
    let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
        ("empty", vec![], WireError::Truncated),
        ("19 bytes", ok[..19].to_vec(), WireError::Truncated),
        (
            "doff 0",
            {
                let mut h = ok.clone();
                h[12] = 0x00;
                h
            },
            WireError::BadDataOffset(0),
        ),
        (
            "doff 4",
            {
                let mut h = ok.clone();
                h[12] = 0x40;
                h
            },
            WireError::BadDataOffset(4),
        ),
        (
            "doff past end",
            {
                let mut h = ok.clone();
                h[12] = 0x60;
                h
            },
            WireError::BadDataOffset(6),
        ),
        (
            "doff 15 of 40",
            {
                let mut h = header_with("01010101 01010101");
                h[12] = 0xf0;
                h
            },
            WireError::BadDataOffset(15),
        ),
        (
            "bad option inside",
            header_with("02030000"),
            WireError::BadOptionLength { kind: 2, len: 3 },
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(TcpRepr::parse(&bytes).map(|_| ()), Err(want), "{what}");
    }
    assert!(TcpRepr::parse(&ok).is_ok());
}

#[test]
fn tcp_option_field_errors() {
    let b = |kind, len| WireError::BadOptionLength { kind, len };
    let cases: [(&str, &str, WireError); 17] = [
        ("kind without length", "02", WireError::Truncated),
        (
            "nop then kind without length",
            "0101 08",
            WireError::Truncated,
        ),
        ("length 0", "0800", b(8, 0)),
        ("length 1", "fd01", b(0xfd, 1)),
        ("mptcp length 0", "1e00", b(30, 0)),
        ("length past end", "020405", b(2, 4)),
        ("unknown length past end", "fd0a0000", b(0xfd, 10)),
        ("mss length 3", "020305 01", b(2, 3)),
        ("mss length 6", "02060000 0000", b(2, 6)),
        ("wscale length 4", "03040700", b(3, 4)),
        ("sack-permitted length 3", "040300 01", b(4, 3)),
        ("sack length 2", "0502", b(5, 2)),
        ("sack length 9", "0509 0000000000000000 00", b(5, 9)),
        ("timestamps length 8", "0808 0000000000000000", b(8, 8)),
        ("timestamps truncated", "080a 00000000", b(8, 10)),
        (
            "41 bytes",
            "01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101 01",
            WireError::OptionSpaceExceeded,
        ),
        (
            "error after good options",
            "020405b4 0103030a 0201",
            b(2, 1),
        ),
    ];
    for (what, hex, want) in cases {
        assert_eq!(TcpOptions::parse(&unhex(hex)), Err(want), "{what}");
    }
}

#[test]
fn tcp_option_field_tolerated() {
    // EOL ends parsing; whatever follows is ignored.
    let o = TcpOptions::parse(&unhex("020405b4 00 ffffff")).unwrap();
    assert_eq!(o.mss, Some(1460));
    // Unknown kinds are kept verbatim, between known ones.
    let o = TcpOptions::parse(&unhex("fd0412340103030a 1c04abcd")).unwrap();
    assert_eq!(o.unknown.as_bytes(), &unhex("fd041234 1c04abcd")[..]);
    assert_eq!(o.unknown.iter().count(), 2);
    assert_eq!(o.window_scale, Some(10));
    // An MPTCP option that fails is reported, the rest of the segment survives.
    let o = TcpOptions::parse(&unhex("1e0c0001 0000000000000001 020405b4 1e0401 81")).unwrap();
    assert_eq!(
        o.mptcp_rejected,
        Some(WireError::UnsupportedMptcpVersion(0))
    );
    assert_eq!(o.mss, Some(1460));
    assert_eq!(
        o.mptcp.len(),
        1,
        "the v1 MP_CAPABLE after the v0 one is still taken"
    );
    let o = TcpOptions::parse(&unhex("1e03f0 01 020405b4")).unwrap();
    assert_eq!(o.mptcp_rejected, Some(WireError::UnknownMptcpSubtype(15)));
    assert!(o.mptcp.is_empty());
    // Five MPTCP options: the fifth does not fit the representation.
    let o = TcpOptions::parse(&unhex("1e0350 1e0351 1e0350 1e0351 1e0350")).unwrap();
    assert_eq!(o.mptcp.len(), 4);
    assert_eq!(o.mptcp_rejected, Some(WireError::TooManyOptions));
}

#[test]
fn mptcp_option_errors() {
    let cases: Vec<(&str, &str, WireError)> = vec![
        ("empty", "", WireError::Truncated),
        ("kind only", "1e", WireError::Truncated),
        ("not kind 30", "0204 05b4", WireError::NotMptcp(2)),
        (
            "length 2",
            "1e02",
            WireError::BadOptionLength { kind: 30, len: 2 },
        ),
        ("length past input", "1e0c0101 00", WireError::Truncated),
        (
            "input past length",
            "1e040101 00",
            WireError::BadOptionLength { kind: 30, len: 4 },
        ),
        ("subtype 9", "1e03 90", WireError::UnknownMptcpSubtype(9)),
        (
            "subtype 14",
            "1e04 e000",
            WireError::UnknownMptcpSubtype(14),
        ),
        (
            "MP_EXPERIMENTAL",
            "1e04 f000",
            WireError::UnknownMptcpSubtype(15),
        ),
        (
            "MP_CAPABLE v0 SYN",
            "1e0c0081 0123456789abcdef",
            WireError::UnsupportedMptcpVersion(0),
        ),
        (
            "MP_CAPABLE v0 ACK",
            "1e140081 0123456789abcdef 0123456789abcdef",
            WireError::UnsupportedMptcpVersion(0),
        ),
        (
            "MP_CAPABLE v0 bad length",
            "1e0300",
            WireError::UnsupportedMptcpVersion(0),
        ),
    ];
    for (what, hex, want) in cases {
        assert_eq!(MptcpOption::parse(&unhex(hex)), Err(want), "{what}");
    }
}

/// Builds an MPTCP option of `len` bytes with the given subtype byte and zero body.
fn mptcp_of_len(subtype_byte: u8, flags: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[0] = 30;
    v[1] = len as u8;
    v[2] = subtype_byte;
    if len > 3 {
        v[3] = flags;
    }
    v
}

#[test]
fn mptcp_wrong_length_per_subtype() {
    // (subtype byte, byte 3, valid lengths) — every other length from 3 to 40 must be refused.
    let table: [(u8, u8, &[usize]); 13] = [
        (0x01, 0x81, &[4, 12, 20, 22, 24]),          // MP_CAPABLE v1
        (0x10, 0x00, &[12, 16, 24]),                 // MP_JOIN
        (0x20, 0x00, &[4]),                          // DSS, no flags
        (0x20, 0x01, &[8]),                          // DSS, 4-byte data ACK
        (0x20, 0x03, &[12]),                         // DSS, 8-byte data ACK
        (0x20, 0x04, &[14, 16]),                     // DSS, 4-byte mapping (+ checksum)
        (0x20, 0x0f, &[26, 28]),                     // DSS, 8-byte ACK + 8-byte mapping
        (0x30, 0x00, &[16, 18, 28, 30]),             // ADD_ADDR with HMAC
        (0x31, 0x00, &[8, 10, 20, 22]),              // ADD_ADDR echo
        (0x40, 0x01, &(4..=40).collect::<Vec<_>>()), // REMOVE_ADDR: 1..=37 ids
        (0x51, 0x00, &[3]),                          // MP_PRIO
        (0x60, 0x00, &[12]),                         // MP_FAIL
        (0x70, 0x00, &[12]),                         // MP_FASTCLOSE
    ];
    for (sb, flags, valid) in table {
        let subtype = sb >> 4;
        for len in 3..=40usize {
            let opt = mptcp_of_len(sb, flags, len);
            let got = MptcpOption::parse(&opt);
            if valid.contains(&len) {
                let o = got.unwrap_or_else(|e| panic!("subtype byte {sb:#x} len {len}: {e}"));
                assert_eq!(o.subtype(), subtype);
                assert_eq!(o.len(), len);
            } else {
                assert_eq!(
                    got,
                    Err(bad_len(subtype, len as u8)),
                    "subtype byte {sb:#x} len {len}"
                );
            }
        }
    }
    // MP_TCPRST: exactly 4.
    for len in 3..=40usize {
        let got = MptcpOption::parse(&mptcp_of_len(0x81, 0x06, len));
        if len == 4 {
            assert!(got.is_ok());
        } else {
            assert_eq!(got, Err(bad_len(8, len as u8)), "MP_TCPRST len {len}");
        }
    }
    // REMOVE_ADDR beyond the option space.
    let mut big = vec![0u8; 41];
    big[..3].copy_from_slice(&[30, 41, 0x40]);
    assert_eq!(MptcpOption::parse(&big), Err(bad_len(4, 41)));
}

#[test]
fn typed_parsers_reject_other_subtypes() {
    let prio = unhex("1e0351");
    assert_eq!(
        MpCapable::parse(&prio),
        Err(WireError::UnknownMptcpSubtype(5))
    );
    assert_eq!(Dss::parse(&prio), Err(WireError::UnknownMptcpSubtype(5)));
    assert_eq!(MpJoin::parse(&prio), Err(WireError::UnknownMptcpSubtype(5)));
    assert_eq!(MpPrio::parse(&prio), Ok(MpPrio { backup: true }));
}

#[test]
fn udp_framing_errors() {
    let ok = unhex("50100200 00000001 00000002");
    let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
        ("empty", vec![], WireError::Truncated),
        ("11 bytes", ok[..11].to_vec(), WireError::Truncated),
        (
            "doff 4",
            {
                let mut p = ok.clone();
                p[0] = 0x40;
                p
            },
            WireError::BadDataOffset(4),
        ),
        (
            "doff past end",
            {
                let mut p = ok.clone();
                p[0] = 0x60;
                p
            },
            WireError::BadDataOffset(6),
        ),
        (
            "URG",
            {
                let mut p = ok.clone();
                p[1] |= 0x20;
                p
            },
            WireError::UrgentNotSupported,
        ),
        (
            "bad option",
            unhex("60100200 00000001 00000002 02030000"),
            WireError::BadOptionLength { kind: 2, len: 3 },
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(
            parse_udp_payload(&bytes, 1, 2).map(|_| ()),
            Err(want),
            "{what}"
        );
    }
    let (r, off) = parse_udp_payload(&ok, 1, 2).unwrap();
    assert_eq!(
        (r.src_port, r.dst_port, r.seq, r.ack, off),
        (1, 2, SeqNum(1), SeqNum(2), 12)
    );

    let mut urg = TcpRepr {
        flags: TcpFlags::URG | TcpFlags::ACK,
        ..TcpRepr::default()
    };
    assert_eq!(
        emit_udp_payload(&urg, &mut [0; 60]),
        Err(WireError::UrgentNotSupported)
    );
    urg.flags = TcpFlags::ACK;
    urg.urgent = 1;
    assert_eq!(
        emit_udp_payload(&urg, &mut [0; 60]),
        Err(WireError::UrgentNotSupported)
    );
}

#[test]
fn emit_refuses_what_does_not_fit() {
    let mut o = TcpOptions::new();
    o.timestamps = Some((1, 2));
    o.mss = Some(1400);
    let join_ack = MpJoin::Ack { hmac: [7; 20] };
    o.push_mptcp(join_ack).unwrap(); // 4 + 12 + 24 = 40: exactly full
    assert_eq!(o.len(), 40);
    assert_eq!(
        o.push_mptcp(MpPrio { backup: true }),
        Err(WireError::OptionSpaceExceeded)
    );
    assert_eq!(
        o.mptcp.len(),
        1,
        "a refused push leaves the options unchanged"
    );

    // Every buffer shorter than the option field is refused; none is written past its end.
    for n in 0..40 {
        let mut buf = vec![0xee; n];
        assert_eq!(
            o.emit(&mut buf),
            Err(WireError::BufferTooSmall),
            "buffer {n}"
        );
    }
    let repr = TcpRepr {
        options: o,
        ..TcpRepr::default()
    };
    assert_eq!(repr.emit(&mut [0; 59]), Err(WireError::BufferTooSmall));
    assert_eq!(repr.emit(&mut [0; 60]), Ok(60));
    assert_eq!(
        emit_udp_payload(&repr, &mut [0; 51]),
        Err(WireError::BufferTooSmall)
    );
    assert_eq!(emit_udp_payload(&repr, &mut [0; 52]), Ok(52));

    // Over-full fields built by hand (bypassing push_mptcp) are refused by emit.
    let mut over = o;
    over.mptcp.push(MpPrio { backup: true }.into()).unwrap();
    assert_eq!(over.len(), 44);
    assert_eq!(over.emit(&mut [0; 64]), Err(WireError::OptionSpaceExceeded));
    let repr = TcpRepr {
        options: over,
        ..TcpRepr::default()
    };
    assert_eq!(repr.emit(&mut [0; 64]), Err(WireError::OptionSpaceExceeded));
    assert_eq!(
        emit_udp_payload(&repr, &mut [0; 64]),
        Err(WireError::OptionSpaceExceeded)
    );

    let mut full = TcpOptions::new();
    for _ in 0..4 {
        full.push_mptcp(MpPrio { backup: false }).unwrap();
    }
    assert_eq!(
        full.push_mptcp(MpPrio { backup: false }),
        Err(WireError::TooManyOptions)
    );
    let mut sack = SackBlocks::new();
    for i in 0..4 {
        sack.push((SeqNum(i), SeqNum(i + 1))).unwrap();
    }
    assert_eq!(
        sack.push((SeqNum(9), SeqNum(10))),
        Err(WireError::TooManyOptions)
    );

    // Single options.
    let dss = Dss {
        data_ack: Some(DataSeq::Wide(1)),
        mapping: Some(DssMapping {
            dsn: DataSeq::Wide(2),
            ssn: 3,
            data_len: 4,
            checksum: Some(5),
        }),
        data_fin: true,
    };
    assert_eq!(dss.len(), 28);
    assert_eq!(dss.emit(&mut [0; 27]), Err(WireError::BufferTooSmall));
    assert_eq!(dss.emit(&mut [0; 28]), Ok(28));
    assert_eq!(RemoveAddr::new(&[]), Err(WireError::InvalidValue));
    assert_eq!(RemoveAddr::new(&[1; 38]), Err(WireError::InvalidValue));
    let v0 = MpCapable {
        version: 0,
        flags: MpCapableFlags::H,
        keys: MpCapableKeys::Syn,
    };
    assert_eq!(v0.emit(&mut [0; 4]), Err(WireError::InvalidValue));
    let rst = MpTcpRst {
        flags: 0x10,
        reason: TcpRstReason::Unspecified,
    };
    assert_eq!(rst.emit(&mut [0; 4]), Err(WireError::InvalidValue));
    let add = AddAddr {
        addr_id: 1,
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: None,
        hmac: Some(1),
    };
    assert_eq!(add.emit(&mut [0; 15]), Err(WireError::BufferTooSmall));
    let mut u = UnknownOptions::new();
    assert_eq!(
        u.push(&[0xfd, 3, 0, 0]),
        Err(WireError::BadOptionLength { kind: 0xfd, len: 3 })
    );
    assert_eq!(
        u.push(&[1, 2]),
        Err(WireError::BadOptionLength { kind: 1, len: 2 })
    );
    let ten = [0xfd, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..4 {
        u.push(&ten).unwrap();
    }
    assert_eq!(u.push(&[0xfd, 2]), Err(WireError::OptionSpaceExceeded));
}

#[test]
fn errors_display_and_are_std_errors() {
    let e: Box<dyn std::error::Error> = Box::new(WireError::BadMptcpLength { subtype: 2, len: 5 });
    assert_eq!(e.to_string(), "bad length 5 for MPTCP subtype 2");
    assert_eq!(
        WireError::UnsupportedMptcpVersion(0).to_string(),
        "unsupported MPTCP version 0"
    );
}
