//! A hostile host that knows a subflow's address pair but none of its sequence numbers or
//! keys, in the simulator: forged MPTCP signals, resets, joins and SYN floods must change
//! nothing. Also the data-level checks a segment must pass even when its TCP numbers are
//! right (an on-path attacker, or a broken peer).

mod common;

use braid_proto::random::{Random, SeededRandom};
use braid_proto::sim::LinkConfig;
use braid_proto::wire::*;
use braid_proto::{ConnectionConfig, EndpointConfig, Event, Framing, Policy, ServiceType};
use braid_testkit::pattern;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const ATTACK_AT: Duration = Duration::from_millis(700);

fn aggregate() -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::new(ServiceType::Aggregate),
        ..ConnectionConfig::default()
    }
}

fn two_path_transfer(seed: u64, bytes: u64) -> Transfer {
    Transfer::build(
        seed,
        &[(wifi_link(), wifi_link()), (cell_link(), cell_link())],
        bytes,
        bytes,
        Some(aggregate()),
        None,
    )
}

/// A segment from `from` to `to` with random sequence and acknowledgement numbers.
fn forge(
    rng: &mut SeededRandom,
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
    opts: &[MptcpOption],
    payload: &[u8],
) -> Vec<u8> {
    let mut o = TcpOptions::new();
    for opt in opts {
        o.push_mptcp(*opt).unwrap();
    }
    let repr = TcpRepr {
        src_port: from.port(),
        dst_port: to.port(),
        seq: SeqNum(rng.next_u32()),
        ack: SeqNum(rng.next_u32()),
        flags,
        window: 65535,
        urgent: 0,
        options: o,
    };
    let mut buf = vec![0u8; 2048];
    let n = Framing::TcpInUdp
        .encode(
            &repr,
            payload.len(),
            |b| b.copy_from_slice(payload),
            from,
            to,
            &mut buf,
        )
        .unwrap();
    buf.truncate(n);
    buf
}

/// Both directions of both subflows, as (from, to).
fn tuples() -> [(SocketAddr, SocketAddr); 4] {
    [
        (sa(WIFI), sa(SERVER)),
        (sa(SERVER), sa(WIFI)),
        (sa(CELL), sa(SERVER)),
        (sa(SERVER), sa(CELL)),
    ]
}

fn path_downs(events: &[(std::time::Instant, Event)]) -> usize {
    events
        .iter()
        .filter(|(_, e)| matches!(e, Event::PathDown { .. }))
        .count()
}

/// Runs a two-path transfer, forging `make(rng, from, to)` on every tuple `copies` times at
/// `ATTACK_AT`, and checks that it finishes intact with no path lost.
fn survives(
    name: &str,
    copies: usize,
    make: fn(&mut SeededRandom, SocketAddr, SocketAddr) -> Vec<u8>,
) {
    for seed in 0..3 {
        let mut t = two_path_transfer(seed, 3_000_000);
        t.sim.at(ATTACK_AT, move |sim| {
            let mut rng = SeededRandom::new(seed ^ 0xbad);
            for _ in 0..copies {
                for (from, to) in tuples() {
                    let d = make(&mut rng, from, to);
                    sim.inject(from, to, &d);
                }
            }
        });
        let r = t.run(Duration::from_secs(120));
        r.assert_intact(&format!("{name}, seed {seed}"));
        let client = &t.sim.node(t.client).apps[0];
        let server = t.server_app().unwrap();
        assert_eq!(path_downs(&client.events), 0, "{name}: client lost a path");
        assert_eq!(path_downs(&server.events), 0, "{name}: server lost a path");
        let stats = t
            .sim
            .node(t.client)
            .ep
            .connection(t.handle)
            .unwrap()
            .stats();
        assert!(
            stats.segments_rejected > 0,
            "{name}: forgeries were not even seen"
        );
        assert_eq!(stats.paths.len(), 2, "{name}: {:?}", stats.paths);
    }
}

#[test]
fn forged_data_fin_changes_nothing() {
    survives("DATA_FIN", 4, |rng, from, to| {
        let dss = Dss {
            data_ack: None,
            mapping: Some(DssMapping {
                dsn: DataSeq::Wide(rng.next_u64()),
                ssn: rng.next_u32(),
                data_len: 1,
                checksum: None,
            }),
            data_fin: true,
        };
        forge(rng, from, to, TcpFlags::ACK, &[MptcpOption::Dss(dss)], &[])
    });
}

#[test]
fn forged_infinite_mapping_changes_nothing() {
    survives("infinite mapping", 4, |rng, from, to| {
        let dss = Dss {
            data_ack: None,
            mapping: Some(DssMapping {
                dsn: DataSeq::Wide(rng.next_u64()),
                ssn: rng.next_u32(),
                data_len: 0,
                checksum: None,
            }),
            data_fin: false,
        };
        forge(
            rng,
            from,
            to,
            TcpFlags::ACK,
            &[MptcpOption::Dss(dss)],
            b"junk",
        )
    });
}

#[test]
fn forged_remove_addr_and_mp_prio_change_nothing() {
    survives("REMOVE_ADDR + MP_PRIO", 4, |rng, from, to| {
        let opts = [
            MptcpOption::RemoveAddr(RemoveAddr::new(&[0, 1, 2, 3]).unwrap()),
            MptcpOption::MpPrio(MpPrio { backup: true }),
        ];
        forge(rng, from, to, TcpFlags::ACK, &opts, &[])
    });
}

#[test]
fn forged_data_ack_changes_nothing() {
    survives("DATA_ACK", 8, |rng, from, to| {
        let dss = Dss {
            data_ack: Some(DataSeq::Narrow(rng.next_u32())),
            mapping: None,
            data_fin: false,
        };
        forge(rng, from, to, TcpFlags::ACK, &[MptcpOption::Dss(dss)], &[])
    });
}

#[test]
fn random_resets_change_nothing() {
    survives("RST", 8, |rng, from, to| {
        forge(rng, from, to, TcpFlags::RST | TcpFlags::ACK, &[], &[])
    });
}

#[test]
fn join_with_the_real_token_does_not_drop_the_live_subflow() {
    let mut t = two_path_transfer(7, 3_000_000);
    let server = t.server;
    t.sim.at(ATTACK_AT, move |sim| {
        let token = {
            let host = sim.node(server);
            let h = host.apps[0].handle;
            host.ep.connection(h).unwrap().local_token()
        };
        let mut rng = SeededRandom::new(99);
        for (from, to) in [(sa(CELL), sa(SERVER)), (sa(WIFI), sa(SERVER))] {
            let join = MptcpOption::MpJoin(MpJoin::Syn {
                backup: false,
                addr_id: 9,
                token,
                nonce: rng.next_u32(),
            });
            let d = forge(&mut rng, from, to, TcpFlags::SYN, &[join], &[]);
            sim.inject(from, to, &d);
        }
    });
    let r = t.run(Duration::from_secs(120));
    r.assert_intact("SYN+MP_JOIN with the token");
    assert_eq!(path_downs(&t.sim.node(t.client).apps[0].events), 0);
    assert_eq!(path_downs(&t.server_app().unwrap().events), 0);
}

#[test]
fn spoofed_syn_flood_leaves_honest_clients_connecting_over_a_long_rtt() {
    // 100 ms RTT path, a server with a small SYN queue, and 3000 spoofed SYN/s from random
    // sources for the whole handshake and beyond.
    let slow = LinkConfig::new(20_000_000, Duration::from_millis(50));
    let server_cfg = EndpointConfig {
        listen: true,
        max_half_open: 64,
        ..EndpointConfig::default()
    };
    let mut t = Transfer::build(
        11,
        &[(slow.clone(), slow)],
        200_000,
        200_000,
        None,
        Some(server_cfg),
    );
    fn flood(
        sim: &mut braid_proto::sim::Sim<braid_proto::harness::Host>,
        left: u32,
        rng_seed: u64,
    ) {
        let mut rng = SeededRandom::new(rng_seed);
        for _ in 0..3 {
            let ip = std::net::Ipv4Addr::new(10, 9, 0, 1 + (rng.next_u32() % 16) as u8);
            let from = SocketAddr::new(ip.into(), 1024 + (rng.next_u32() % 60000) as u16);
            let syn = MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: MpCapableFlags::H,
                keys: MpCapableKeys::Syn,
            });
            let d = forge(&mut rng, from, sa(SERVER), TcpFlags::SYN, &[syn], &[]);
            sim.inject(from, sa(SERVER), &d);
        }
        if left > 0 {
            sim.after(Duration::from_millis(1), move |sim| {
                flood(sim, left - 1, rng_seed + 1)
            });
        }
    }
    // The spoofed sources: 16 addresses behind their own link to the server.
    let spoofed: Vec<std::net::IpAddr> = (1..=16).map(|i| ip(&format!("10.9.0.{i}"))).collect();
    t.sim.add_node(
        braid_proto::harness::Host::new(EndpointConfig::default(), 5),
        &spoofed,
    );
    for a in &spoofed {
        // Nothing comes back from a spoofed source: answers to it are lost.
        let fast = LinkConfig::new(1_000_000_000, Duration::from_millis(1));
        t.sim
            .add_duplex(*a, ip("10.0.0.1"), fast.clone(), fast.with_loss(1.0));
    }
    t.sim.at(Duration::ZERO, |sim| flood(sim, 3000, 1));
    let (c, srv) = (t.client, t.server);
    let honest_done = t.sim.run_while(Duration::from_secs(30), move |sim| {
        let server_done = sim.node(srv).apps.iter().any(|a| a.peer_finished);
        !(sim.node(c).apps[0].peer_finished && server_done)
    });
    assert!(
        honest_done,
        "the honest connection did not finish behind the flood"
    );
    let client = &t.sim.node(t.client).apps[0];
    assert_eq!(
        client.received_sha,
        Some(pattern::sha256(SERVER_SEED, 200_000))
    );
    let server_app = t
        .sim
        .node(t.server)
        .apps
        .iter()
        .find(|a| a.peer_finished)
        .unwrap();
    assert_eq!(
        server_app.received_sha,
        Some(pattern::sha256(CLIENT_SEED, 200_000))
    );
    let ep = &t.sim.node(t.server).ep;
    let s = ep.stats();
    assert!(s.syn_cookies_sent > 1000, "{s:?}");
    assert!(
        s.syn_cookies_accepted >= 1,
        "the honest client came in by cookie: {s:?}"
    );
    assert!(
        ep.connection_count() <= 64 + 1,
        "state kept for spoofed SYNs: {} connections",
        ep.connection_count()
    );
}

/// An on-path attacker (or a broken peer) that sees the real sequence numbers: it raises
/// DATA_ACKs from the client past what the client has received. The server must not lose
/// the bytes it still has to (re)send, and never send anything but them.
#[test]
fn bogus_data_ack_with_valid_tcp_numbers_never_corrupts() {
    for seed in 0..5 {
        let lossy = base_link().with_loss(0.03);
        let mut t = Transfer::single_path(seed, lossy.clone(), lossy, 2_000_000, 2_000_000);
        let raised = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = raised.clone();
        // The highest data sequence number the server has sent so far (as seen on the path).
        let mut highest: Option<DataSeq> = None;
        // One client segment in 16 is rewritten, counted (not picked by sequence number,
        // which full-sized segments may never make a multiple of 16).
        let mut client_segments = 0u64;
        t.sim.set_middlebox(Box::new(move |src, dst, bytes| {
            let Ok((mut repr, off)) = parse_udp_payload(bytes, src.port(), dst.port()) else {
                return true;
            };
            if *src == sa(SERVER) {
                for o in repr.options.mptcp.iter() {
                    if let MptcpOption::Dss(Dss {
                        mapping: Some(m), ..
                    }) = o
                    {
                        let end = match m.dsn {
                            DataSeq::Wide(v) => DataSeq::Wide(v + m.data_len as u64),
                            DataSeq::Narrow(v) => {
                                DataSeq::Narrow(v.wrapping_add(m.data_len as u32))
                            }
                        };
                        highest = Some(end);
                    }
                }
                return true;
            }
            client_segments += 1;
            if count.get() >= 20 || !client_segments.is_multiple_of(16) {
                return true;
            }
            let payload = bytes[off..].to_vec();
            let mut changed = false;
            let mut opts = TcpOptions::new();
            opts.timestamps = repr.options.timestamps;
            opts.sack_blocks = repr.options.sack_blocks;
            for o in repr.options.mptcp.iter() {
                let mut o = *o;
                if let MptcpOption::Dss(d) = &mut o
                    && let (Some(a), Some(h)) = (d.data_ack, highest)
                {
                    let raised = match (a, h) {
                        (DataSeq::Wide(_), DataSeq::Wide(v)) => DataSeq::Wide(v),
                        (_, h) => DataSeq::Narrow(h.value() as u32),
                    };
                    changed = raised != a;
                    d.data_ack = Some(raised);
                }
                opts.push_mptcp(o).unwrap();
            }
            if changed {
                count.set(count.get() + 1);
                repr.options = opts;
                let mut buf = vec![0u8; 2048];
                let n = Framing::TcpInUdp
                    .encode(
                        &repr,
                        payload.len(),
                        |b| b.copy_from_slice(&payload),
                        *src,
                        *dst,
                        &mut buf,
                    )
                    .unwrap();
                buf.truncate(n);
                *bytes = buf;
            }
            true
        }));
        let r = t.run(Duration::from_secs(120));
        // The bytes the server kept for its subflow's retransmissions carry it through.
        r.assert_intact(&format!("bogus DATA_ACK, seed {seed}"));
        assert!(raised.get() > 0, "the middlebox raised no DATA_ACK");
    }
}

/// When the closing event of the client's connection came, and with what.
fn client_closed(t: &Transfer) -> Option<(Duration, braid_proto::CloseError)> {
    let start = t.sim.start();
    t.sim.node(t.client).apps[0]
        .events
        .iter()
        .find_map(|(at, e)| match e {
            Event::Closed(err) => Some((at.duration_since(start), err.clone())),
            _ => None,
        })
}

#[test]
fn a_dead_gateway_fails_the_connection_within_seconds_not_a_minute() {
    // Busy: both paths carry data when the peer vanishes.
    let mut t = two_path_transfer(3, 200_000_000);
    let kill = Duration::from_secs(2);
    t.down_at(0, kill);
    t.down_at(1, kill);
    t.sim.run_until(Duration::from_secs(40));
    let (at, err) = client_closed(&t).expect("the client noticed");
    assert_eq!(err, braid_proto::CloseError::TimedOut);
    let after = at - kill;
    eprintln!("busy connection: failed {after:?} after the peer vanished");
    assert!(after <= Duration::from_secs(12), "took {after:?}");

    // Idle: nothing outstanding, so only keepalives can tell.
    let mut t = two_path_transfer(4, 0);
    let kill = Duration::from_secs(1);
    t.down_at(0, kill);
    t.down_at(1, kill);
    t.sim.run_until(Duration::from_secs(80));
    let (at, err) = client_closed(&t).expect("the idle client noticed");
    assert_eq!(err, braid_proto::CloseError::TimedOut);
    let after = at - kill;
    eprintln!("idle connection: failed {after:?} after the peer vanished");
    assert!(after <= Duration::from_secs(35), "took {after:?}");
}
