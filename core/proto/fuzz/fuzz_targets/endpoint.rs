//! Feeds arbitrary datagrams to a listening endpoint and to a client mid-handshake, with the
//! clock moving between them, in both framings. Any panic is a bug: the engine must survive
//! whatever a peer sends.
#![no_main]

use braid_proto::random::SeededRandom;
use braid_proto::{Endpoint, EndpointConfig, Framing, InterfaceKind, PathId, PathSpec};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let framing = if mode & 1 == 0 { Framing::TcpInUdp } else { Framing::Tcp };
    let server_addr = "10.0.0.1:443".parse().unwrap();
    let client_addr = "10.0.1.2:40001".parse().unwrap();
    let mut server = Endpoint::new(
        EndpointConfig { listen: true, framing, ..EndpointConfig::default() },
        Box::new(SeededRandom::new(1)),
    );
    let mut client = Endpoint::new(
        EndpointConfig { framing, ..EndpointConfig::default() },
        Box::new(SeededRandom::new(2)),
    );
    let mut now = Instant::now();
    client.connect(now, None, PathSpec::new(PathId::new(1), InterfaceKind::Wifi, client_addr), server_addr);
    let mut buf = vec![0u8; 65536];
    // Datagrams are length-prefixed (one byte) pieces of the input.
    let mut input = rest;
    while let Some((&len, tail)) = input.split_first() {
        let n = (len as usize).min(tail.len());
        let (d, next) = tail.split_at(n);
        input = next;
        now += Duration::from_millis(u64::from(len % 50));
        let _ = server.handle_segment(now, server_addr, client_addr, d);
        let _ = client.handle_segment(now, client_addr, server_addr, d);
        server.handle_timeout(now);
        client.handle_timeout(now);
        for ep in [&mut server, &mut client] {
            for _ in 0..1000 {
                if ep.poll_transmit(now, &mut buf).is_none() {
                    break;
                }
            }
            while ep.poll_event().is_some() {}
        }
    }
});
