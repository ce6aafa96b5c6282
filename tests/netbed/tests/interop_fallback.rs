//! Braid (raw carrier, both interfaces) against a plain kernel TCP server (no MPTCP): the
//! SYN/ACK has no MP_CAPABLE, Braid falls back to TCP on the first path, and the transfer
//! works both ways; no join is attempted on cellular. Root only.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use braid::{Carrier, ServiceType};
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 10_000_000;
const PORT: u16 = 5209;
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn braid_falls_back_to_tcp_against_a_plain_tcp_server() {
    if !root_or_skip("braid_falls_back_to_tcp_against_a_plain_tcp_server") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let addr = server_addr(Link::Wifi, PORT);
    let listener = tb
        .run_in(Side::Server, move || TcpListener::bind(addr))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, peer) = listener.accept()?;
        kernel_exchange(s, BYTES, TIMEOUT, |_| {}).map(|e| (e, peer))
    });
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = phone_client(Carrier::Raw, ServiceType::Aggregate).build()?;
        let conn = client.connect(addr).await?;
        let fell_back = !conn.stats().mptcp;
        Ok::<_, braid::Error>((braid_exchange(conn, BYTES, None).await?, fell_back))
    });
    let (braid, fell_back_at_connect) = client.join().unwrap().unwrap();
    let (kernel, peer) = server.join().unwrap().unwrap();
    let cell = tb.counters(Link::Cell);
    println!(
        "plain TCP server, peer {peer}: up {:.1} Mbit/s, down {:.1} Mbit/s; cell carried {} B up",
        kernel.received.goodput_bps() / 1e6,
        braid.received.goodput_bps() / 1e6,
        cell.up.delivered().bytes
    );
    check_same("upload (braid -> tcp)", &braid.sent, &kernel.received);
    check_same("download (tcp -> braid)", &kernel.sent, &braid.received);
    assert!(fell_back_at_connect, "Braid thinks it speaks MPTCP");
    assert!(!braid.stats.mptcp);
    assert!(!kernel.view.is_mptcp);
    assert_eq!(peer.ip(), Link::Wifi.addr(Side::Phone));
    // One subflow: nothing (no MP_JOIN, no data) went over cellular.
    assert_eq!(cell.up.delivered().packets, 0, "{cell:?}");
}
