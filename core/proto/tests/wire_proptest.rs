//! Property tests: every valid value round-trips through emit/parse (option, option field,
//! TCP header, TCP-in-UDP), and no decoder panics on arbitrary bytes; whatever decodes
//! re-encodes to something that decodes to the same value.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::*;
use proptest::prelude::*;

fn data_seq() -> impl Strategy<Value = DataSeq> {
    prop_oneof![
        any::<u32>().prop_map(DataSeq::Narrow),
        any::<u64>().prop_map(DataSeq::Wide)
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn mp_capable() -> impl Strategy<Value = MpCapable> {
    let keys = prop_oneof![
        Just(MpCapableKeys::Syn),
        any::<u64>().prop_map(|sender_key| MpCapableKeys::SynAck { sender_key }),
        (any::<u64>(), any::<u64>()).prop_map(|(sender_key, receiver_key)| MpCapableKeys::Ack {
            sender_key,
            receiver_key
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<Option<u16>>()
        )
            .prop_map(|(sender_key, receiver_key, data_len, checksum)| {
                MpCapableKeys::AckData {
                    sender_key,
                    receiver_key,
                    data_len,
                    checksum,
                }
            }),
    ];
    (1u8..16, any::<u8>(), keys).prop_map(|(version, f, keys)| MpCapable {
        version,
        flags: MpCapableFlags(f),
        keys,
    })
}

fn mp_join() -> impl Strategy<Value = MpJoin> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(backup, addr_id, token, nonce)| MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u64>(), any::<u32>()).prop_map(
            |(backup, addr_id, hmac, nonce)| MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce
            }
        ),
        any::<[u8; 20]>().prop_map(|hmac| MpJoin::Ack { hmac }),
    ]
}

fn dss() -> impl Strategy<Value = Dss> {
    let mapping = (data_seq(), any::<u32>(), any::<u16>(), any::<Option<u16>>()).prop_map(
        |(dsn, ssn, data_len, checksum)| DssMapping {
            dsn,
            ssn,
            data_len,
            checksum,
        },
    );
    (
        proptest::option::of(data_seq()),
        proptest::option::of(mapping),
        any::<bool>(),
    )
        .prop_map(|(data_ack, mapping, data_fin)| Dss {
            data_ack,
            mapping,
            data_fin,
        })
}

fn mptcp_option() -> impl Strategy<Value = MptcpOption> {
    prop_oneof![
        mp_capable().prop_map(MptcpOption::from),
        mp_join().prop_map(MptcpOption::from),
        dss().prop_map(MptcpOption::from),
        (
            any::<u8>(),
            ip(),
            any::<Option<u16>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(addr_id, addr, port, hmac)| AddAddr {
                addr_id,
                addr,
                port,
                hmac
            }
            .into()),
        proptest::collection::vec(any::<u8>(), 1..=RemoveAddr::MAX_IDS)
            .prop_map(|ids| RemoveAddr::new(&ids).unwrap().into()),
        any::<bool>().prop_map(|backup| MpPrio { backup }.into()),
        any::<u64>().prop_map(|dsn| MpFail { dsn }.into()),
        any::<u64>().prop_map(|receiver_key| MpFastClose { receiver_key }.into()),
        (0u8..16, any::<u8>()).prop_map(|(flags, r)| MpTcpRst {
            flags,
            reason: TcpRstReason::from_u8(r)
        }
        .into()),
    ]
}

/// Raw option kinds this codec does not interpret.
fn unknown_option() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![6u8..8, 9u8..30, 31u8..=255];
    (kind, proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(k, data)| {
        let mut v = vec![k, (data.len() + 2) as u8];
        v.extend(data);
        v
    })
}

/// Valid option fields: fields are added in turn and whatever would overflow 40 bytes is
/// dropped, so every generated value is encodable.
fn tcp_options() -> impl Strategy<Value = TcpOptions> {
    (
        any::<Option<u16>>(),
        any::<Option<u8>>(),
        any::<bool>(),
        any::<Option<(u32, u32)>>(),
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
        proptest::collection::vec(mptcp_option(), 0..=4),
        proptest::collection::vec(unknown_option(), 0..=2),
    )
        .prop_map(|(mss, ws, sp, ts, sacks, mptcp, unknown)| {
            let mut o = TcpOptions::new();
            o.mss = mss;
            o.window_scale = ws;
            o.sack_permitted = sp;
            o.timestamps = ts;
            for (l, r) in sacks {
                let before = o;
                o.sack_blocks.push((SeqNum(l), SeqNum(r))).unwrap();
                if o.len() > MAX_OPTIONS_LEN {
                    o = before;
                    break;
                }
            }
            for m in mptcp {
                let _ = o.push_mptcp(m);
            }
            for u in unknown {
                let before = o;
                o.unknown.push(&u).unwrap();
                if o.len() > MAX_OPTIONS_LEN {
                    o = before;
                }
            }
            assert!(o.len() <= MAX_OPTIONS_LEN);
            o
        })
}

fn tcp_repr(allow_urg: bool) -> impl Strategy<Value = TcpRepr> {
    (
        any::<(u16, u16, u32, u32)>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        tcp_options(),
    )
        .prop_map(
            move |((src_port, dst_port, seq, ack), f, window, urgent, options)| {
                let mut flags = TcpFlags(f);
                let mut urgent = urgent;
                if !allow_urg {
                    flags.remove(TcpFlags::URG);
                    urgent = 0;
                }
                TcpRepr {
                    src_port,
                    dst_port,
                    seq: SeqNum(seq),
                    ack: SeqNum(ack),
                    flags,
                    window,
                    urgent,
                    options,
                }
            },
        )
}

/// Whole MPTCP options with plausible headers and random bodies, to get past the length and
/// subtype checks more often than uniformly random bytes would.
fn mptcp_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..16,
        0u8..16,
        proptest::collection::vec(any::<u8>(), 0..38),
    )
        .prop_map(|(st, nib, body)| {
            let mut v = vec![KIND_MPTCP, (body.len() + 3) as u8, (st << 4) | nib];
            v.extend(body);
            v
        })
}

/// Option fields assembled from plausible options, to exercise the option-field walker.
fn option_field_ish() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            mptcp_ish_bytes(),
            unknown_option(),
            Just(vec![1]),
            Just(vec![0]),
            any::<[u8; 4]>().prop_map(|b| vec![2, 4, b[0], b[1]]),
            any::<[u8; 8]>().prop_map(|b| [&[8u8, 10][..], &b].concat()),
            any::<[u8; 16]>().prop_map(|b| [&[5u8, 18][..], &b].concat()),
            proptest::collection::vec(any::<u8>(), 1..4),
        ],
        0..6,
    )
    .prop_map(|parts| {
        let mut v = parts.concat();
        v.truncate(MAX_OPTIONS_LEN);
        v
    })
}

/// What re-parsing emitted options can differ in: a rejected MPTCP option is never emitted.
fn canonical(mut o: TcpOptions) -> TcpOptions {
    o.mptcp_rejected = None;
    o
}

fn check_options_reencode(o: &TcpOptions) {
    let mut buf = [0u8; MAX_OPTIONS_LEN];
    // Re-encoding in kernel layout may need more room than a tightly packed input used.
    if let Ok(n) = o.emit(&mut buf) {
        assert_eq!(n, o.len());
        assert_eq!(n % 4, 0);
        let again = TcpOptions::parse(&buf[..n]).unwrap();
        assert_eq!(again, canonical(*o));
    } else {
        assert!(o.len() > MAX_OPTIONS_LEN);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mptcp_option_round_trips(opt in mptcp_option()) {
        let mut buf = [0u8; 64];
        let n = opt.emit(&mut buf).unwrap();
        prop_assert_eq!(n, opt.len());
        prop_assert_eq!(buf[0], KIND_MPTCP);
        prop_assert_eq!(usize::from(buf[1]), n);
        prop_assert_eq!(buf[2] >> 4, opt.subtype());
        prop_assert_eq!(MptcpOption::parse(&buf[..n]), Ok(opt));
        // Too short a buffer is refused without writing past it.
        if n > 0 {
            prop_assert_eq!(opt.emit(&mut buf[..n - 1]), Err(WireError::BufferTooSmall));
        }
    }

    #[test]
    fn dss_every_length_combination_round_trips(d in dss()) {
        let mut buf = [0u8; 28];
        let n = d.emit(&mut buf).unwrap();
        let want = 4 + d.data_ack.map_or(0, |a| if a.is_wide() { 8 } else { 4 })
            + d.mapping.map_or(0, |m| (if m.dsn.is_wide() { 8 } else { 4 }) + 6 + if m.checksum.is_some() { 2 } else { 0 });
        prop_assert_eq!(n, want);
        prop_assert_eq!(Dss::parse(&buf[..n]), Ok(d));
    }

    #[test]
    fn tcp_options_round_trip(o in tcp_options()) {
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        let n = o.emit(&mut buf).unwrap();
        prop_assert_eq!(n, o.len());
        prop_assert_eq!(n % 4, 0);
        prop_assert_eq!(TcpOptions::parse(&buf[..n]), Ok(o));
    }

    #[test]
    fn tcp_header_round_trips(r in tcp_repr(true), payload in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = [0u8; 80];
        let n = r.emit(&mut buf).unwrap();
        prop_assert_eq!(n, r.header_len());
        prop_assert_eq!(usize::from(buf[12] >> 4) * 4, n);
        buf[n..n + payload.len()].copy_from_slice(&payload);
        let (back, off) = TcpRepr::parse(&buf[..n + payload.len()]).unwrap();
        prop_assert_eq!(off, n);
        prop_assert_eq!(back, r);
    }

    #[test]
    fn udp_framing_round_trips(r in tcp_repr(false), payload in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = [0u8; 80];
        let n = emit_udp_payload(&r, &mut buf).unwrap();
        prop_assert_eq!(n, udp_header_len(&r));
        prop_assert_eq!(n + 8, r.header_len(), "zero overhead");
        buf[n..n + payload.len()].copy_from_slice(&payload);
        let (back, off) = parse_udp_payload(&buf[..n + payload.len()], r.src_port, r.dst_port).unwrap();
        prop_assert_eq!(off, n);
        prop_assert_eq!(back, r);
        // Same bytes as the TCP header, rearranged.
        let mut tcp = [0u8; 80];
        let m = r.emit(&mut tcp).unwrap();
        prop_assert_eq!(&buf[12..n], &tcp[20..m]);
        prop_assert_eq!(&buf[0..4], &tcp[12..16]);
        prop_assert_eq!(&buf[4..12], &tcp[4..12]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok((r, off)) = TcpRepr::parse(&bytes) {
            prop_assert!(off >= 20 && off <= bytes.len());
            check_options_reencode(&r.options);
        }
        if let Ok(o) = TcpOptions::parse(&bytes) {
            check_options_reencode(&o);
        }
        if let Ok(m) = MptcpOption::parse(&bytes) {
            let mut buf = [0u8; 64];
            let n = m.emit(&mut buf).unwrap();
            prop_assert_eq!(MptcpOption::parse(&buf[..n]), Ok(m));
        }
        if let Ok((r, off)) = parse_udp_payload(&bytes, 1, 2) {
            prop_assert!(off >= 12 && off <= bytes.len());
            check_options_reencode(&r.options);
        }
    }

    #[test]
    fn plausible_options_never_panic(field in option_field_ish(), opt in mptcp_ish_bytes()) {
        if let Ok(o) = TcpOptions::parse(&field) {
            check_options_reencode(&o);
        }
        if let Ok(m) = MptcpOption::parse(&opt) {
            let mut buf = [0u8; 64];
            let n = m.emit(&mut buf).unwrap();
            prop_assert_eq!(n, opt.len());
            prop_assert_eq!(MptcpOption::parse(&buf[..n]), Ok(m));
        }
        // The same field behind a header and a framing.
        let mut hdr = vec![0u8; 20];
        hdr[12] = (((20 + field.len()) / 4) as u8) << 4;
        hdr.extend_from_slice(&field);
        let _ = TcpRepr::parse(&hdr);
        let _ = parse_udp_payload(&hdr[8..], 1, 2);
    }

    #[test]
    fn seqnum_order_is_consistent(a in any::<u32>(), d in any::<u32>()) {
        let (x, y) = (SeqNum(a), SeqNum(a).wrapping_add(d));
        prop_assert_eq!(y.since(x), d);
        prop_assert_eq!(y.diff(x), d as i32);
        prop_assert_eq!(x.diff(y), (d as i32).wrapping_neg());
        match d {
            0 => prop_assert!(x == y),
            1..0x8000_0000 => prop_assert!(x.partial_cmp(&y) == Some(core::cmp::Ordering::Less) && x < y && x.max(y) == y && y.min(x) == x),
            0x8000_0000 => prop_assert!(x.partial_cmp(&y).is_none()),
            _ => prop_assert!(y.partial_cmp(&x) == Some(core::cmp::Ordering::Less) && y < x && y.max(x) == x && x.min(y) == y),
        }
    }

    #[test]
    fn checksum_fill_then_verify(payload in proptest::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>(), r in tcp_repr(true)) {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
        } else {
            ("192.0.2.1".parse().unwrap(), "198.51.100.7".parse().unwrap())
        };
        let mut seg = vec![0u8; r.header_len() + payload.len()];
        let n = r.emit(&mut seg).unwrap();
        seg[n..].copy_from_slice(&payload);
        fill_tcp_checksum(src, dst, &mut seg).unwrap();
        prop_assert!(verify_tcp_checksum(src, dst, &seg));
        seg[0] ^= 0x40;
        prop_assert!(!verify_tcp_checksum(src, dst, &seg));
    }
}

/// Every DSS shape, exhaustively: data ACK absent/4/8 × mapping absent/4/8 × checksum ×
/// DATA_FIN, with the length RFC 8684 gives for each.
#[test]
fn dss_all_shapes_exhaustive() {
    let acks = [
        None,
        Some(DataSeq::Narrow(0x0102_0304)),
        Some(DataSeq::Wide(0x0102_0304_0506_0708)),
    ];
    let dsns = [
        None,
        Some(DataSeq::Narrow(0xa0b0_c0d0)),
        Some(DataSeq::Wide(0xa0b0_c0d0_e0f0_0011)),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for ack in acks {
        for dsn in dsns {
            for csum in [None, Some(0xbeef)] {
                if dsn.is_none() && csum.is_some() {
                    continue;
                }
                for data_fin in [false, true] {
                    let mapping = dsn.map(|dsn| DssMapping {
                        dsn,
                        ssn: 77,
                        data_len: 1400,
                        checksum: csum,
                    });
                    let d = Dss {
                        data_ack: ack,
                        mapping,
                        data_fin,
                    };
                    let want = 4
                        + ack.map_or(0, |a| if a.is_wide() { 8 } else { 4 })
                        + dsn.map_or(0, |s| if s.is_wide() { 14 } else { 10 })
                        + csum.map_or(0, |_| 2);
                    let mut buf = [0u8; 28];
                    let n = d.emit(&mut buf).unwrap();
                    assert_eq!(n, want, "{d:?}");
                    let flags = buf[3];
                    assert_eq!(flags & 0x01 != 0, ack.is_some());
                    assert_eq!(flags & 0x02 != 0, ack.is_some_and(DataSeq::is_wide));
                    assert_eq!(flags & 0x04 != 0, dsn.is_some());
                    assert_eq!(flags & 0x08 != 0, dsn.is_some_and(DataSeq::is_wide));
                    assert_eq!(flags & 0x10 != 0, data_fin);
                    assert_eq!(MptcpOption::parse(&buf[..n]), Ok(MptcpOption::Dss(d)));
                    seen.insert(n);
                }
            }
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![4, 8, 12, 14, 16, 18, 20, 22, 24, 26, 28]
    );
}
