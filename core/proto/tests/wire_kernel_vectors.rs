//! The Linux 6.18 MPTCP v1 handshake in `fixtures/kernel-mptcp-v1.json`: every option decodes
//! to the expected fields, re-encodes to the same bytes, and the keys reproduce the tokens,
//! IDSNs and MP_JOIN HMACs the kernel used.

use braid_proto::wire::*;

const JSON: &str = include_str!("fixtures/kernel-mptcp-v1.json");

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The string value of `key` inside the object `section` (a flat, known-shape JSON file).
fn field<'a>(section: &str, key: &str) -> &'a str {
    let start = JSON
        .find(&format!("\"{section}\": {{"))
        .unwrap_or_else(|| panic!("no {section}"));
    let body = &JSON[start..];
    let body = &body[..body.find('}').unwrap()];
    let k = format!("\"{key}\": ");
    let v = &body[body
        .find(&k)
        .unwrap_or_else(|| panic!("no {section}.{key}"))
        + k.len()..];
    let v = v.trim_start();
    if let Some(rest) = v.strip_prefix('"') {
        &rest[..rest.find('"').unwrap()]
    } else {
        v[..v.find([',', '\n']).unwrap()].trim()
    }
}

fn check_u64(key: &str) -> u64 {
    u64::from_str_radix(field("checks", key), 16).unwrap()
}

fn check_u32(key: &str) -> u32 {
    u32::from_str_radix(field("checks", key), 16).unwrap()
}

const VECTORS: [&str; 7] = [
    "mp_capable_syn",
    "mp_capable_synack",
    "mp_capable_ack",
    "dss_example",
    "mp_join_syn",
    "mp_join_synack",
    "mp_join_ack",
];

/// Decodes the vector's lone MPTCP option and its whole option field, checks both re-encode
/// byte for byte and agree, and returns the option.
fn decode(name: &str) -> MptcpOption {
    let opt_bytes = unhex(field(name, "mptcp_option_hex"));
    let opt = MptcpOption::parse(&opt_bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(opt.len(), opt_bytes.len(), "{name}");
    let mut buf = [0u8; 40];
    let n = opt.emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], &opt_bytes[..], "{name}: option re-encode");

    let field_bytes = unhex(field(name, "tcp_options_hex"));
    let opts = TcpOptions::parse(&field_bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(opts.mptcp_rejected, None, "{name}");
    assert_eq!(opts.mptcp.as_slice(), &[opt], "{name}");
    assert!(opts.unknown.is_empty(), "{name}");
    assert_eq!(opts.len(), field_bytes.len(), "{name}");
    let mut buf = [0u8; 40];
    let n = opts.emit(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &field_bytes[..],
        "{name}: option field re-encode"
    );

    // The same options inside a full header, and inside TCP-in-UDP framing.
    let repr = TcpRepr {
        src_port: 54258,
        dst_port: 5499,
        seq: SeqNum(0xdead_beef),
        ack: SeqNum(7),
        flags: TcpFlags::ACK,
        window: 502,
        urgent: 0,
        options: opts,
    };
    let mut hdr = [0u8; 60];
    let n = repr.emit(&mut hdr).unwrap();
    assert_eq!(n, 20 + field_bytes.len());
    assert_eq!(&hdr[20..n], &field_bytes[..]);
    assert_eq!(TcpRepr::parse(&hdr[..n]).unwrap(), (repr, n));
    let mut udp = [0u8; 52];
    let m = emit_udp_payload(&repr, &mut udp).unwrap();
    assert_eq!(m, n - 8);
    assert_eq!(&udp[12..m], &field_bytes[..]);
    assert_eq!(
        parse_udp_payload(&udp[..m], 54258, 5499).unwrap(),
        (repr, m)
    );
    opt
}

#[test]
fn every_vector_round_trips() {
    for name in VECTORS {
        decode(name);
    }
}

#[test]
fn tokens_and_idsns_from_keys() {
    let ck = check_u64("client_key");
    let sk = check_u64("server_key");
    assert_eq!(token(ck), check_u32("client_token"));
    assert_eq!(token(sk), check_u32("server_token"));
    assert_eq!(idsn(ck), check_u64("client_idsn"));
    assert_eq!(idsn(sk), check_u64("server_idsn"));
}

#[test]
fn mp_capable_fields() {
    let ck = check_u64("client_key");
    let sk = check_u64("server_key");
    let h = MpCapableFlags::H;

    let MptcpOption::MpCapable(syn) = decode("mp_capable_syn") else {
        panic!()
    };
    assert_eq!(
        (syn.version, syn.flags, syn.keys),
        (1, h, MpCapableKeys::Syn)
    );
    assert!(
        !syn.flags.contains(MpCapableFlags::A),
        "Linux does not ask for checksums by default"
    );

    let MptcpOption::MpCapable(sa) = decode("mp_capable_synack") else {
        panic!()
    };
    assert_eq!((sa.version, sa.flags), (1, h));
    assert_eq!(sa.keys, MpCapableKeys::SynAck { sender_key: sk });

    let MptcpOption::MpCapable(ack) = decode("mp_capable_ack") else {
        panic!()
    };
    assert_eq!(
        ack.keys,
        MpCapableKeys::Ack {
            sender_key: ck,
            receiver_key: sk
        }
    );
    assert_eq!((ack.sender_key(), ack.receiver_key()), (Some(ck), Some(sk)));
}

#[test]
fn dss_fields() {
    assert_eq!(field("checks", "dss_first_dsn_is_idsn_plus_1"), "true");
    let MptcpOption::Dss(dss) = decode("dss_example") else {
        panic!()
    };
    // Sent by the server: its first data byte has DSN = server IDSN + 1, and it acknowledges
    // the client's data-level start (low 32 bits of client IDSN + 1).
    let server_idsn = check_u64("server_idsn");
    let client_idsn = check_u64("client_idsn");
    assert_eq!(
        dss.data_ack,
        Some(DataSeq::Narrow(client_idsn.wrapping_add(1) as u32))
    );
    let m = dss.mapping.unwrap();
    assert_eq!(m.dsn, DataSeq::Wide(server_idsn.wrapping_add(1)));
    assert_eq!(m.ssn, 1);
    assert_eq!(m.data_len, 0x7a60);
    assert_eq!(m.checksum, None);
    assert!(!dss.data_fin);
}

#[test]
fn mp_join_fields_and_hmacs() {
    assert_eq!(field("checks", "join_syn_token_is_server_token"), "true");
    assert_eq!(field("checks", "join_synack_hmac64_ok"), "true");
    assert_eq!(field("checks", "join_ack_hmac160_ok"), "true");
    let key_a = check_u64("client_key");
    let key_b = check_u64("server_key");

    let MptcpOption::MpJoin(MpJoin::Syn {
        backup,
        addr_id,
        token: tok,
        nonce: nonce_a,
    }) = decode("mp_join_syn")
    else {
        panic!("not a join SYN")
    };
    assert!(!backup);
    assert_eq!(addr_id, 1);
    assert_eq!(tok, check_u32("server_token"));
    assert_eq!(tok, token(key_b));

    let MptcpOption::MpJoin(MpJoin::SynAck {
        backup,
        addr_id,
        hmac,
        nonce: nonce_b,
    }) = decode("mp_join_synack")
    else {
        panic!("not a join SYN/ACK")
    };
    assert!(!backup);
    assert_eq!(addr_id, 0);
    assert_eq!(hmac, join_synack_hmac(key_b, key_a, nonce_b, nonce_a));
    assert!(verify_join_synack_hmac(
        key_b, key_a, nonce_b, nonce_a, hmac
    ));
    assert!(!verify_join_synack_hmac(
        key_b,
        key_a,
        nonce_b,
        nonce_a,
        hmac ^ 1
    ));
    assert!(
        !verify_join_synack_hmac(key_a, key_b, nonce_b, nonce_a, hmac),
        "key order matters"
    );

    let MptcpOption::MpJoin(MpJoin::Ack { hmac }) = decode("mp_join_ack") else {
        panic!("not a join ACK")
    };
    assert_eq!(hmac, join_ack_hmac(key_a, key_b, nonce_a, nonce_b));
    assert!(verify_join_ack_hmac(key_a, key_b, nonce_a, nonce_b, &hmac));
    let mut forged = hmac;
    forged[19] ^= 0x80;
    assert!(!verify_join_ack_hmac(
        key_a, key_b, nonce_a, nonce_b, &forged
    ));
    assert!(
        !verify_join_ack_hmac(key_a, key_b, nonce_b, nonce_a, &hmac),
        "nonce order matters"
    );
}

#[test]
fn kernel_option_field_other_values() {
    let o = TcpOptions::parse(&unhex(field("mp_capable_syn", "tcp_options_hex"))).unwrap();
    assert_eq!(o.mss, Some(1460));
    assert!(o.sack_permitted);
    assert_eq!(o.timestamps, Some((0x2fb6_2ede, 0)));
    assert_eq!(o.window_scale, Some(10));
    assert!(o.sack_blocks.is_empty());
    let o = TcpOptions::parse(&unhex(field("dss_example", "tcp_options_hex"))).unwrap();
    assert_eq!(
        (o.mss, o.window_scale, o.sack_permitted),
        (None, None, false)
    );
    assert_eq!(o.timestamps, Some((0x8d3d_d6a5, 0x2fb6_2ef2)));
    assert!(o.dss().is_some() && o.mp_capable().is_none() && o.mp_join().is_none());
}
