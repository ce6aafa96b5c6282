//! Idle connections cost nothing per wake: with 10,000 established, idle MPTCP connections
//! on each endpoint, reading the next deadline touches no connection and handling a timeout
//! visits only the connections whose timer is due (docs/ARCHITECTURE.md, "Timers and the
//! endpoint"). The counters are the endpoint's own statistics.

use braid_proto::PathId;
use braid_proto::random::SeededRandom;
use braid_proto::{ConnectionConfig, Endpoint, EndpointConfig, InterfaceKind, PathSpec};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CONNECTIONS: u16 = 10_000;

fn endpoints() -> (Endpoint, Endpoint) {
    let connection = ConnectionConfig {
        send_buffer: 64 << 10,
        receive_buffer: 64 << 10,
        ..ConnectionConfig::default()
    };
    let client = Endpoint::new(
        EndpointConfig {
            connection: connection.clone(),
            max_connections: 20_000,
            ..EndpointConfig::default()
        },
        Box::new(SeededRandom::new(7)),
    );
    let server = Endpoint::new(
        EndpointConfig {
            connection,
            listen: true,
            max_connections: 20_000,
            ..EndpointConfig::default()
        },
        Box::new(SeededRandom::new(8)),
    );
    (client, server)
}

/// Delivers everything both endpoints have to send, until both are quiet; returns how many
/// datagrams went.
fn pump(client: &mut Endpoint, server: &mut Endpoint, now: Instant) -> usize {
    let mut buf = vec![0u8; 65536];
    let mut sent = 0;
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            let _ = server.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
            sent += 1;
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            let _ = client.handle_segment(now, t.remote, t.local, &buf[..t.len]);
            moved = true;
            sent += 1;
        }
        if !moved {
            return sent;
        }
    }
}

/// Runs both endpoints' timers (and what they send) up to `until`.
fn run_until(client: &mut Endpoint, server: &mut Endpoint, until: Instant) {
    loop {
        let next = [client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(now) = next.filter(|&t| t <= until) else {
            return;
        };
        client.handle_timeout(now);
        server.handle_timeout(now);
        pump(client, server, now);
    }
}

#[test]
fn idle_connections_are_not_visited_on_wakes() {
    let (mut client, mut server) = endpoints();
    let t0 = Instant::now();
    let server_addr: SocketAddr = "10.0.0.2:443".parse().unwrap();
    // One connection a millisecond, each from its own port, so their timers are spread.
    for i in 0..CONNECTIONS {
        let now = t0 + Duration::from_millis(i as u64);
        run_until(&mut client, &mut server, now);
        let local = SocketAddr::new("10.0.0.1".parse().unwrap(), 1024 + i);
        client.connect(
            now,
            None,
            PathSpec::new(PathId::new(1), InterfaceKind::Wifi, local),
            server_addr,
        );
        pump(&mut client, &mut server, now);
    }
    assert_eq!(client.connection_count(), CONNECTIONS as usize);
    assert_eq!(server.connection_count(), CONNECTIONS as usize);
    for h in client.handles() {
        let c = client.connection(h).unwrap();
        assert!(c.is_mptcp() && c.state() == braid_proto::ConnState::Established);
    }

    // Idle from here on: only keepalives (25 s after each connection's last segment) remain.
    let quiet = t0 + Duration::from_secs(20);
    run_until(&mut client, &mut server, quiet);
    let next = client.poll_timeout().expect("keepalives are armed");
    assert!(next > quiet, "nothing due while idle");

    // Reading the next deadline reads no connection, however often.
    let reads = (client.stats().deadline_reads, server.stats().deadline_reads);
    for _ in 0..1_000 {
        assert_eq!(client.poll_timeout(), Some(next));
        server.poll_timeout();
    }
    assert_eq!(
        (client.stats().deadline_reads, server.stats().deadline_reads),
        reads
    );

    // A wake 5 ms past the first keepalive visits the few connections due then, not all.
    let wake = next + Duration::from_millis(5);
    let wakes = client.stats().timer_wakes;
    client.handle_timeout(wake);
    let woken = client.stats().timer_wakes - wakes;
    let read = client.stats().deadline_reads - reads.0;
    assert!(
        (1..=10).contains(&woken),
        "{woken} connections woken for 5 ms of keepalives"
    );
    assert_eq!(read, woken, "each woken connection re-filed once");

    // The woken connections did their work: a keepalive probe each.
    let mut buf = vec![0u8; 65536];
    let mut probes = 0;
    while client.poll_transmit(wake, &mut buf).is_some() {
        probes += 1;
    }
    assert_eq!(probes, woken, "one keepalive per woken connection");
    assert!(client.poll_timeout().is_some_and(|t| t > wake));
}
