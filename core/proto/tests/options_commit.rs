//! MPTCP options are planned without side effects and consumed only by a segment that went
//! out (docs/ARCHITECTURE.md, "Timers and the endpoint"): an MP_PRIO whose segment could
//! not be written is still sent by the next one, exactly once.

use braid_proto::PathId;
use braid_proto::random::SeededRandom;
use braid_proto::wire::{self, MptcpOption};
use braid_proto::{Endpoint, EndpointConfig, InterfaceKind, PathSpec, Policy, ServiceType};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn pump(client: &mut Endpoint, server: &mut Endpoint, now: Instant) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            let _ = server.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            let _ = client.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
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
fn an_mp_prio_not_written_is_not_lost() {
    // Aggregate: every path regular unless the app says otherwise, so the path manager keeps
    // the backup flag the app sets (handover would make its only path regular again).
    let mut cfg = EndpointConfig::default();
    cfg.connection.policy = Policy::new(ServiceType::Aggregate);
    let mut client = Endpoint::new(cfg, Box::new(SeededRandom::new(3)));
    let mut server = Endpoint::new(
        EndpointConfig {
            listen: true,
            ..EndpointConfig::default()
        },
        Box::new(SeededRandom::new(4)),
    );
    let mut now = Instant::now();
    let server_addr: SocketAddr = "10.0.0.2:443".parse().unwrap();
    let local: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let h = client.connect(
        now,
        None,
        PathSpec::new(PathId::new(1), InterfaceKind::Wifi, local),
        server_addr,
    );
    pump(&mut client, &mut server, now);
    let s = server.accept().expect("accepted");
    // Data both ways, so that each side has seen the other's DSS (fully established).
    client.connection_mut(h).unwrap().write(b"ping").unwrap();
    pump(&mut client, &mut server, now);
    server.connection_mut(s).unwrap().write(b"pong").unwrap();
    pump(&mut client, &mut server, now);
    now += Duration::from_millis(100);
    client.handle_timeout(now);
    server.handle_timeout(now);
    pump(&mut client, &mut server, now);

    client.set_path_backup(h, PathId::new(1), true);
    // Too small for any segment: nothing can be written.
    let mut tiny = [0u8; 16];
    assert!(client.poll_transmit(now, &mut tiny).is_none());
    // The MP_PRIO is still pending: the next segment carries it, once.
    client.connection_mut(h).unwrap();
    assert_eq!(prios_sent(&mut client, now), vec![true]);
    client.connection_mut(h).unwrap();
    assert_eq!(prios_sent(&mut client, now), Vec::<bool>::new());
}
