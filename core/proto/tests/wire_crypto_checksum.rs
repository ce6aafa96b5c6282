//! Known answers: SHA-256 (FIPS 180-2 examples), HMAC-SHA256 (RFC 4231), the ADD_ADDR HMAC,
//! the DSS checksum (worked by hand) and TCP checksums of real kernel packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn sha256_known_answers() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];
    for (msg, want) in cases {
        assert_eq!(sha256(msg).to_vec(), unhex(want));
    }
}

#[test]
fn hmac_sha256_rfc4231() {
    let big_key = [0xaa; 131];
    let key4: Vec<u8> = (1..=25).collect();
    let cases: [(&[u8], &[u8], &str); 6] = [
        (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (&[0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (&key4, &[0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (
            &big_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            &big_key,
            b"This is a test using a larger than block-size key and a larger than block-size data. \
The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (i, (key, msg, want)) in cases.iter().enumerate() {
        assert_eq!(
            hmac_sha256(key, msg).to_vec(),
            unhex(want),
            "RFC 4231 case {i}"
        );
    }
}

/// Expected values computed independently with Python's `hmac`/`hashlib`:
/// rightmost 8 bytes of HMAC-SHA256(sender_key || receiver_key, id || addr || port).
#[test]
fn add_addr_hmac_known_answers() {
    let client = 0x950b_1aee_0b6f_9012;
    let server = 0xd648_f4dd_cfd8_67eb;
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    assert_eq!(
        add_addr_hmac(client, server, 7, v4, Some(8080)),
        0x1bf9_d9af_de33_7ad6
    );
    let v6 = IpAddr::V6("2001:db8::42".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        add_addr_hmac(server, client, 3, v6, None),
        0x9c9f_c034_a556_5db5
    );

    assert!(verify_add_addr_hmac(
        client,
        server,
        7,
        v4,
        Some(8080),
        0x1bf9_d9af_de33_7ad6
    ));
    assert!(!verify_add_addr_hmac(
        client,
        server,
        7,
        v4,
        Some(8081),
        0x1bf9_d9af_de33_7ad6
    ));
    assert!(!verify_add_addr_hmac(
        client,
        server,
        7,
        v4,
        None,
        0x1bf9_d9af_de33_7ad6
    ));
    assert!(!verify_add_addr_hmac(
        server,
        client,
        7,
        v4,
        Some(8080),
        0x1bf9_d9af_de33_7ad6
    ));
    assert!(!verify_add_addr_hmac(
        client,
        server,
        8,
        v4,
        Some(8080),
        0x1bf9_d9af_de33_7ad6
    ));
    // "No port" is hashed as port 0.
    assert_eq!(
        add_addr_hmac(server, client, 3, v6, Some(0)),
        0x9c9f_c034_a556_5db5
    );
}

#[test]
fn constant_time_eq_basics() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(&[0x80], &[0x00]));
}

#[test]
fn dss_checksum_by_hand() {
    // Pseudo-header words 0123 4567 89ab cdef | 0000 0064 | 0005 | 0000, payload "hello" as
    // 6865 6c6c 6f00. Sum = 0x2e25e, folded 0xe25e + 0x2 = 0xe260, complement 0x1d9f.
    let dsn = 0x0123_4567_89ab_cdef;
    assert_eq!(dss_checksum(dsn, 100, 5, b"hello"), 0x1d9f);
    assert!(verify_dss_checksum(dsn, 100, 5, 0x1d9f, b"hello"));
    assert!(!verify_dss_checksum(dsn, 100, 5, 0x1d9e, b"hello"));
    assert!(!verify_dss_checksum(dsn, 101, 5, 0x1d9f, b"hello"));
    assert!(
        !verify_dss_checksum(dsn ^ (1 << 40), 100, 5, 0x1d9f, b"hello"),
        "all 64 DSN bits count"
    );
    assert!(!verify_dss_checksum(dsn, 100, 5, 0x1d9f, b"hellp"));

    // All-ones words: ffff ffff ffff ffff ffff ffff ffff 0000 + ffff = 8 * 0xffff, which folds to
    // 0xffff: checksum 0x0000.
    assert_eq!(dss_checksum(u64::MAX, u32::MAX, 0xffff, &[0xff, 0xff]), 0);

    // A mapping split across segments at an odd boundary gives the same checksum.
    let mut c = dss_pseudo_header(dsn, 100, 5);
    c.add_bytes(b"hel");
    c.add_bytes(b"lo");
    assert_eq!(c.finish(), 0x1d9f);
}

fn fixture_packets() -> Vec<(String, Vec<u8>)> {
    include_str!("fixtures/tcp-checksum-packets.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap();
            (name.to_string(), unhex(hex.trim()))
        })
        .collect()
}

/// Splits an IP packet into (src, dst, TCP segment).
fn split_ip(p: &[u8]) -> (IpAddr, IpAddr, &[u8]) {
    if p[0] >> 4 == 4 {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        (src.into(), dst.into(), &p[ihl..total])
    } else {
        let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
        let src: [u8; 16] = p[8..24].try_into().unwrap();
        let dst: [u8; 16] = p[24..40].try_into().unwrap();
        (
            Ipv6Addr::from(src).into(),
            Ipv6Addr::from(dst).into(),
            &p[40..40 + plen],
        )
    }
}

#[test]
fn tcp_checksum_of_real_packets() {
    let packets = fixture_packets();
    assert_eq!(packets.len(), 4);
    let mut families = (0, 0);
    for (name, p) in &packets {
        let (src, dst, seg) = split_ip(p);
        if src.is_ipv4() {
            families.0 += 1
        } else {
            families.1 += 1
        }
        let stored = u16::from_be_bytes([seg[16], seg[17]]);
        assert_eq!(tcp_checksum(src, dst, seg), stored, "{name}");
        assert!(verify_tcp_checksum(src, dst, seg), "{name}");
        assert!(!verify_tcp_checksum(dst, dst, seg), "{name}: wrong address");

        let mut bad = seg.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(!verify_tcp_checksum(src, dst, &bad), "{name}: corrupted");

        // Re-emit the parsed header, put the payload back, fill the checksum: same bytes.
        let (repr, off) = TcpRepr::parse(seg).unwrap();
        assert_eq!(repr.dst_port.min(repr.src_port), 5499, "{name}");
        let mut out = vec![0u8; seg.len()];
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(n, off, "{name}");
        assert_eq!(&out[16..18], &[0, 0], "emit leaves the checksum zero");
        out[n..].copy_from_slice(&seg[off..]);
        fill_tcp_checksum(src, dst, &mut out).unwrap();
        assert_eq!(out, seg, "{name}");
    }
    assert_eq!(families, (2, 2));
}

#[test]
fn tcp_checksum_short_segments() {
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(!verify_tcp_checksum(a, a, &[0; 19]));
    assert_eq!(
        fill_tcp_checksum(a, a, &mut [0; 19]),
        Err(WireError::Truncated)
    );
    let _ = tcp_checksum(a, a, &[1, 2, 3]); // must not panic
}
