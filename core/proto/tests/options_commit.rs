//! MP_PRIO signalling (RFC 8684 §3.3.8). Options are planned without side effects and
//! consumed only by a segment that went out (docs/ARCHITECTURE.md, "Timers and the
//! endpoint"): an MP_PRIO whose segment could not be written is still sent by the next one,
//! exactly once. And it goes out only when the backup flag we want differs from the one the
//! peer last heard: a flag flipped and flipped back before any segment carried it is no news.

use braid_proto::PathId;
use braid_proto::random::SeededRandom;
use braid_proto::wire::{self, MptcpOption};
use braid_proto::{
    ConnectionHandle, Endpoint, EndpointConfig, InterfaceKind, PathSpec, Policy, ServiceType,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WIFI: PathId = PathId::new(1);
const CELL: PathId = PathId::new(2);

/// Delivers everything both sides have to send until both are quiet, and returns the
/// MP_PRIO flags the client's datagrams carried meanwhile.
fn pump(client: &mut Endpoint, server: &mut Endpoint, now: Instant) -> Vec<bool> {
    let mut buf = vec![0u8; 65536];
    let mut prios = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            let (seg, _) = wire::parse_udp_payload(&buf[..t.len], 0, 0).expect("well-formed");
            for o in seg.options.mptcp.iter() {
                if let MptcpOption::MpPrio(p) = o {
                    prios.push(p.backup);
                }
            }
            let _ = server.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            let _ = client.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
        }
        if !moved {
            return prios;
        }
    }
}

/// A client connected over WiFi under `policy`, fully established (data both ways), plus
/// a cellular path when `with_cellular`. Returns the endpoints, the client's handle and
/// the current time.
fn connected(
    policy: Policy,
    with_cellular: bool,
) -> (Endpoint, Endpoint, ConnectionHandle, Instant) {
    let mut cfg = EndpointConfig::default();
    cfg.connection.policy = policy;
    let mut client = Endpoint::new(cfg, Box::new(SeededRandom::new(11)));
    let mut server = Endpoint::new(
        EndpointConfig {
            listen: true,
            ..EndpointConfig::default()
        },
        Box::new(SeededRandom::new(12)),
    );
    let mut now = Instant::now();
    let server_addr: SocketAddr = "10.0.0.2:443".parse().unwrap();
    let wifi: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let h = client.connect(
        now,
        None,
        PathSpec::new(WIFI, InterfaceKind::Wifi, wifi),
        server_addr,
    );
    pump(&mut client, &mut server, now);
    let s = server.accept().expect("accepted");
    client.connection_mut(h).unwrap().write(b"ping").unwrap();
    pump(&mut client, &mut server, now);
    server.connection_mut(s).unwrap().write(b"pong").unwrap();
    pump(&mut client, &mut server, now);
    if with_cellular {
        let cell: SocketAddr = "10.0.1.1:5001".parse().unwrap();
        client.add_path(now, h, PathSpec::new(CELL, InterfaceKind::Cellular, cell));
        pump(&mut client, &mut server, now);
    }
    now += Duration::from_millis(100);
    client.handle_timeout(now);
    server.handle_timeout(now);
    pump(&mut client, &mut server, now);
    (client, server, h, now)
}

/// MP_PRIO options in the datagrams the client sends now.
fn prios_sent(client: &mut Endpoint, now: Instant) -> Vec<bool> {
    let mut buf = vec![0u8; 65536];
    let mut prios = Vec::new();
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        let (seg, _) = wire::parse_udp_payload(&buf[..t.len], 0, 0).expect("well-formed");
        for o in seg.options.mptcp.iter() {
            if let MptcpOption::MpPrio(p) = o {
                prios.push(p.backup);
            }
        }
    }
    prios
}

#[test]
fn a_backup_flag_set_and_cleared_before_it_went_out_sends_no_mp_prio() {
    // Aggregate: the path manager keeps the flag the app sets.
    let (mut client, mut server, h, now) = connected(Policy::new(ServiceType::Aggregate), false);
    client.set_path_backup(h, WIFI, true);
    client.set_path_backup(h, WIFI, false);
    assert_eq!(
        pump(&mut client, &mut server, now),
        Vec::<bool>::new(),
        "the peer never heard `backup`, so `regular` is no news"
    );
    // A real change is still signalled, once.
    client.set_path_backup(h, WIFI, true);
    assert_eq!(pump(&mut client, &mut server, now), vec![true]);
    // And so is its undoing, once the first went out.
    client.set_path_backup(h, WIFI, false);
    assert_eq!(pump(&mut client, &mut server, now), vec![false]);
}

#[test]
fn a_handover_flag_flipped_and_back_in_one_tick_sends_no_mp_prio() {
    let mut policy = Policy::new(ServiceType::Handover);
    policy.eager_backup = true;
    let (mut client, mut server, h, now) = connected(policy.clone(), true);
    let stats = client.connection(h).unwrap().stats();
    let cell: Vec<_> = stats
        .paths
        .iter()
        .filter(|p| p.path == Some(CELL))
        .collect();
    assert_eq!(cell.len(), 1, "the eager backup subflow is up");
    assert!(cell[0].backup, "and a backup, as its MP_JOIN said");
    // Aggregate makes cellular regular; handover again makes it a backup, as its join said.
    client.set_policy(now, h, Policy::new(ServiceType::Aggregate));
    client.set_policy(now, h, policy);
    assert_eq!(pump(&mut client, &mut server, now), Vec::<bool>::new());
}

#[test]
fn an_mp_prio_not_written_is_not_lost() {
    // Aggregate: every path regular unless the app says otherwise, so the path manager keeps
    // the backup flag the app sets (handover would make its only path regular again).
    let (mut client, _server, h, now) = connected(Policy::new(ServiceType::Aggregate), false);

    client.set_path_backup(h, WIFI, true);
    // Too small for any segment: nothing can be written.
    let mut tiny = [0u8; 16];
    assert!(client.poll_transmit(now, &mut tiny).is_none());
    // The MP_PRIO is still pending: the next segment carries it, once.
    client.connection_mut(h).unwrap();
    assert_eq!(prios_sent(&mut client, now), vec![true]);
    client.connection_mut(h).unwrap();
    assert_eq!(prios_sent(&mut client, now), Vec::<bool>::new());
}
