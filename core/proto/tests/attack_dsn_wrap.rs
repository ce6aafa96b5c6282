//! Data sequence numbers near 2^64. The engine keeps data offsets from the IDSN, so a peer's
//! 64-bit DSN or DATA_ACK just below the IDSN lands on an offset near 2^64: adding a length to
//! it must not overflow (tests run with overflow checks on), and such a value, far outside any
//! window, must change nothing. The initial DSN itself cannot be chosen (it is a hash of the
//! key), so the forgeries are placed relative to the real IDSNs of a live connection.

mod common;

use braid_proto::seq::{from_wire, unwrap32};
use braid_proto::wire::{
    self, DataSeq, Dss, DssMapping, MpFail, MptcpOption, SeqNum, TcpFlags, TcpOptions, TcpRepr,
};
use common::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The closest value to `reference` with the low 32 bits `value`, by brute force over the
/// three candidates that exist in u64 (no wrap past either end).
fn nearest(value: u32, reference: u64) -> Vec<u64> {
    let base = reference & !0xffff_ffff;
    let mut c = vec![base | value as u64];
    if let Some(up) = (base | value as u64).checked_add(1 << 32) {
        c.push(up);
    }
    if let Some(down) = (base | value as u64).checked_sub(1 << 32) {
        c.push(down);
    }
    let best = c.iter().map(|&x| x.abs_diff(reference)).min().unwrap();
    c.into_iter()
        .filter(|&x| x.abs_diff(reference) == best)
        .collect()
}

#[test]
fn unwrap32_near_2_64_does_not_overflow() {
    let refs = [
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - (1 << 31) + 1,
        u64::MAX - (1 << 31),
        u64::MAX - (1 << 32) + 7,
        (1 << 63) + 5,
    ];
    let values = [
        0u32,
        1,
        5,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0001,
        0xffff_fff0,
        u32::MAX,
    ];
    for &r in &refs {
        for &v in &values {
            let got = unwrap32(v, r);
            assert_eq!(got as u32, v, "unwrap32({v:#x}, {r:#x}) keeps the low bits");
            let want = nearest(v, r);
            assert!(
                want.contains(&got),
                "unwrap32({v:#x}, {r:#x}) = {got:#x}, nearest is {want:x?}"
            );
        }
    }
}

#[test]
fn from_wire_near_2_64_does_not_overflow() {
    for isn in [0u32, 1, 0x8000_0000, u32::MAX] {
        for off in [
            u64::MAX,
            u64::MAX - 1,
            u64::MAX - 0xffff,
            u64::MAX - (1 << 32),
        ] {
            let w = (isn as u64).wrapping_add(off) as u32;
            assert_eq!(from_wire(isn, w, off) as u32, off as u32);
        }
    }
}

/// A segment with one MPTCP option, in the sequence window of the subflow it goes on.
fn forged(seq: u32, ack: u32, opt: MptcpOption) -> Vec<u8> {
    let mut options = TcpOptions::default();
    options.push_mptcp(opt).unwrap();
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags::ACK,
        window: 65535,
        urgent: 0,
        options,
    };
    let mut buf = vec![0u8; 64];
    let n = wire::emit_udp_payload(&repr, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// DSS, DATA_FIN, infinite-mapping, DATA_ACK and MP_FAIL values at offsets just below 2^64
/// (and crossing it), for a receiver whose own IDSN is `rx_idsn` and whose peer's is `tx_idsn`.
fn near_wrap_options(rx_idsn: u64, tx_idsn: u64) -> Vec<MptcpOption> {
    let map = |dsn: u64, ssn: u32, len: u16, fin: bool| {
        MptcpOption::Dss(Dss {
            data_ack: None,
            mapping: Some(DssMapping {
                dsn: DataSeq::Wide(dsn),
                ssn,
                data_len: len,
                checksum: None,
            }),
            data_fin: fin,
        })
    };
    let ack = |v: u64| {
        MptcpOption::Dss(Dss {
            data_ack: Some(DataSeq::Wide(v)),
            mapping: None,
            data_fin: false,
        })
    };
    vec![
        // A standalone DATA_FIN at offset 2^64 - 1.
        map(tx_idsn.wrapping_sub(1), 0, 1, true),
        // A DATA_FIN whose mapping ends past 2^64.
        map(tx_idsn.wrapping_sub(10), 0x10, u16::MAX, true),
        // A mapping across the wrap.
        map(tx_idsn.wrapping_sub(50), 0x7000_0000, 100, false),
        // An infinite mapping at 2^64 - 1.
        map(tx_idsn.wrapping_sub(1), 0, 0, false),
        // DATA_ACKs of 2^64 - 1 and 2^64 - 2^30 (our own data space).
        ack(rx_idsn.wrapping_sub(1)),
        ack(rx_idsn.wrapping_sub(1 << 30)),
        // MP_FAIL naming offsets near 2^64 in either space.
        MptcpOption::MpFail(MpFail {
            dsn: tx_idsn.wrapping_sub(1),
        }),
        MptcpOption::MpFail(MpFail {
            dsn: rx_idsn.wrapping_sub(1),
        }),
    ]
}

/// The last segment seen on each (source, destination) pair: sequence number just after its
/// payload, and its ACK. A forgery with these passes the subflow's window checks.
type Seen = Rc<RefCell<HashMap<(SocketAddr, SocketAddr), (u32, u32)>>>;

#[test]
fn in_window_forgeries_with_dsns_near_2_64_change_nothing() {
    let len = 2_000_000;
    let mut t = Transfer::build(
        21,
        &[(wifi_link(), wifi_link()), (cell_link(), cell_link())],
        len,
        len,
        None,
        None,
    );
    let seen: Seen = Rc::new(RefCell::new(HashMap::new()));
    let tap = seen.clone();
    t.sim.set_middlebox(Box::new(move |src, dst, bytes| {
        if let Ok((seg, off)) = wire::parse_udp_payload(bytes, src.port(), dst.port())
            && seg.flags.contains(TcpFlags::ACK)
            && !seg.flags.contains(TcpFlags::SYN)
        {
            let next = seg.seq.0.wrapping_add((bytes.len() - off) as u32);
            tap.borrow_mut().insert((*src, *dst), (next, seg.ack.0));
        }
        true
    }));
    let server = t.server;
    let half = t.sim.run_while(Duration::from_secs(30), |sim| {
        sim.node(server)
            .apps
            .first()
            .is_none_or(|a| a.received < len / 4)
    });
    assert!(half, "the transfer never got a quarter through");
    let (ck, sk) = t
        .sim
        .node(t.client)
        .ep
        .connection(t.handle)
        .and_then(|c| c.mptcp_keys())
        .expect("MPTCP keys of the client connection");
    let (c_idsn, s_idsn) = (wire::idsn(ck), wire::idsn(sk));
    let tuples: Vec<_> = seen.borrow().iter().map(|(&k, &v)| (k, v)).collect();
    assert!(
        tuples.len() >= 4,
        "both subflows in both directions: {tuples:?}"
    );
    let mut n = 0;
    for ((src, dst), (seq, ack)) in tuples {
        let to_server = dst == sa(SERVER);
        let (rx, tx) = if to_server {
            (s_idsn, c_idsn)
        } else {
            (c_idsn, s_idsn)
        };
        for opt in near_wrap_options(rx, tx) {
            t.sim.inject(src, dst, &forged(seq, ack, opt));
            n += 1;
        }
    }
    eprintln!("{n} in-window forgeries with DSNs near 2^64");
    let out = t.run(Duration::from_secs(60));
    out.assert_intact("forged DSNs near 2^64");
}
