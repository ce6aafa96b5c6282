//! Middleboxes in the simulator: MPTCP options stripped (from the start or after the
//! handshake), payload corrupted with DSS checksums on (MP_FAIL and the infinite-mapping
//! fallback of RFC 8684 §3.7 with one subflow; a subflow reset with two).

mod common;

use braid_proto::wire::{TcpFlags, emit_udp_payload, parse_udp_payload};
use braid_proto::{ConnectionConfig, Event, PathId, Policy, ServiceType};

const CELL_PATH: PathId = PathId::new(2);
use common::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Rewrites a TCP-in-UDP datagram without its MPTCP options.
fn strip_mptcp(buf: &mut Vec<u8>, src: &std::net::SocketAddr, dst: &std::net::SocketAddr) {
    let Ok((mut repr, off)) = parse_udp_payload(buf, src.port(), dst.port()) else {
        return;
    };
    repr.options.mptcp.clear();
    let payload = buf[off..].to_vec();
    let mut out = vec![0u8; 64 + payload.len()];
    let n = emit_udp_payload(&repr, &mut out).unwrap();
    out.truncate(n);
    out.extend_from_slice(&payload);
    *buf = out;
}

fn events(t: &Transfer) -> Vec<Event> {
    t.client_app()
        .events
        .iter()
        .map(|(_, e)| e.clone())
        .collect()
}

fn server_events(t: &Transfer) -> Vec<Event> {
    t.server_app().map_or(Vec::new(), |a| {
        a.events.iter().map(|(_, e)| e.clone()).collect()
    })
}

#[test]
fn options_stripped_everywhere_gives_plain_tcp() {
    let mut t = Transfer::single_path(1, base_link(), base_link(), 3_000_000, 3_000_000);
    t.sim.set_middlebox(Box::new(|src, dst, buf| {
        strip_mptcp(buf, src, dst);
        true
    }));
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("stripped from the SYN on");
    assert!(events(&t).contains(&Event::FellBackToTcp));
}

#[test]
fn options_stripped_after_the_handshake_fall_back_cleanly() {
    for seed in 0..5 {
        let mut t = Transfer::single_path(seed, base_link(), base_link(), 3_000_000, 3_000_000);
        t.sim.set_middlebox(Box::new(|src, dst, buf| {
            let syn = parse_udp_payload(buf, src.port(), dst.port())
                .is_ok_and(|(r, _)| r.flags.contains(TcpFlags::SYN));
            if !syn {
                strip_mptcp(buf, src, dst);
            }
            true
        }));
        let r = t.run(Duration::from_secs(60));
        r.assert_intact(&format!("stripped after SYNs, seed {seed}"));
        assert!(server_events(&t).contains(&Event::FellBackToTcp));
        assert!(events(&t).contains(&Event::FellBackToTcp));
    }
}

/// Flips one payload byte of the `nth` data segment from the client on `port`.
fn corrupter(
    nth: u32,
    port: u16,
) -> impl FnMut(&mut std::net::SocketAddr, &mut std::net::SocketAddr, &mut Vec<u8>) -> bool {
    let seen = Rc::new(Cell::new(0u32));
    move |src, dst, buf| {
        if src.port() != port {
            return true;
        }
        if let Ok((_, off)) = parse_udp_payload(buf, src.port(), dst.port())
            && buf.len() > off + 100
        {
            seen.set(seen.get() + 1);
            if seen.get() == nth {
                buf[off + 50] ^= 0x5a;
            }
        }
        true
    }
}

#[test]
fn corrupted_payload_with_one_subflow_falls_back_via_mp_fail_and_stays_intact() {
    let cfg = ConnectionConfig {
        checksum: true,
        ..ConnectionConfig::default()
    };
    let mut t = Transfer::build(
        2,
        &[(base_link(), base_link())],
        4_000_000,
        1_000_000,
        Some(cfg),
        None,
    );
    t.sim.set_middlebox(Box::new(corrupter(300, 40001)));
    let r = t.run(Duration::from_secs(10));
    r.assert_intact("corruption, one subflow");
    assert!(
        server_events(&t).contains(&Event::FellBackToTcp),
        "receiver sent MP_FAIL"
    );
    assert!(
        events(&t).contains(&Event::FellBackToTcp),
        "sender switched to the infinite mapping"
    );
}

#[test]
fn corrupted_payload_with_two_subflows_resets_that_subflow_and_stays_intact() {
    let cfg = ConnectionConfig {
        checksum: true,
        policy: Policy::new(ServiceType::Aggregate),
        ..ConnectionConfig::default()
    };
    let paths = [(wifi_link(), wifi_link()), (cell_link(), cell_link())];
    let mut t = Transfer::build(3, &paths, 8_000_000, 0, Some(cfg), None);
    t.sim.set_middlebox(Box::new(corrupter(200, 40002)));
    // A reset subflow must not leave a hole for long: the data it carried is reinjected.
    let r = t.run(Duration::from_secs(10));
    r.assert_intact("corruption on cellular, two subflows");
    let ev = events(&t);
    assert!(!ev.contains(&Event::FellBackToTcp), "still MPTCP: {ev:?}");
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::PathDown {
                path: CELL_PATH,
                ..
            }
        )),
        "the corrupted subflow was reset: {ev:?}"
    );
}
