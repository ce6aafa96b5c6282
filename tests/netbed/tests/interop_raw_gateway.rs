//! The gateway on the raw carrier serves the Linux kernel's MPTCP client: the phone's kernel
//! (endpoint `subflow` on c-cell) connects with protocol 262 to a Braid gateway bound with
//! `Gateway::bind_raw` (what `braid gateway --carrier raw` runs), asks for a TCP server in the
//! server namespace with an RFC 8803 Connect TLV, joins over cellular, and moves 20 MB each
//! way through the gateway. Root only.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::Duration;

use braid::RawConfig;
use braid::convert;
use braid::gateway::{Gateway, GatewayConfig};
use braid_netbed::kernel;
use braid_netbed::{Endpoint, Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 20_000_000;
const GATEWAY_PORT: u16 = 5210;
const TARGET: &str = "127.0.0.1:6010";
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn kernel_mptcp_client_through_the_raw_gateway() {
    if !root_or_skip("kernel_mptcp_client_through_the_raw_gateway") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    tb.add_endpoint(
        Side::Phone,
        &Endpoint::on(Side::Phone, Link::Cell).subflow(),
    )
    .unwrap();
    let target: SocketAddr = TARGET.parse().unwrap();
    let listener = tb
        .run_in(Side::Server, move || TcpListener::bind(target))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept()?;
        kernel_exchange(s, BYTES, TIMEOUT, |_| {})
    });
    let (gw_tx, gw_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = braid_in(&tb, Side::Server, move || async move {
        let cfg = GatewayConfig {
            allow: vec![TARGET.to_string()],
            ..GatewayConfig::default()
        };
        let listen = SocketAddr::from(([0, 0, 0, 0], GATEWAY_PORT));
        let gw = match Gateway::bind_raw(listen, cfg, RawConfig::default()).await {
            Ok(g) => g,
            Err(e) => {
                gw_tx.send(Err(e.to_string())).unwrap();
                return (0, 0);
            }
        };
        let stats = gw.stats();
        gw_tx.send(Ok(())).unwrap();
        let task = gw.spawn();
        let _ = stop_rx.await;
        task.abort();
        (
            stats.relayed.load(Ordering::Relaxed),
            stats.refused.load(Ordering::Relaxed),
        )
    });
    gw_rx.recv().unwrap().expect("raw gateway");
    let gw = server_addr(Link::Wifi, GATEWAY_PORT);
    let client = tb
        .spawn_in(Side::Phone, move || {
            let mut s = kernel::mptcp_connect(None, gw)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            // A destination outside the allowlist first, on its own connection.
            let mut refused = kernel::mptcp_connect(None, gw)?;
            refused.set_read_timeout(Some(TIMEOUT))?;
            let no = convert_handshake(&mut refused, "127.0.0.1:9".parse().unwrap())?;
            let ok = convert_handshake(&mut s, target)?;
            let end = kernel_exchange(s, BYTES, TIMEOUT, |_| {})?;
            Ok::<_, std::io::Error>((no, ok, end))
        })
        .unwrap();
    let (refused, accepted, phone) = client.join().unwrap().unwrap();
    let tcp_server = server.join().unwrap().unwrap();
    let _ = stop_tx.send(());
    let (relayed, refused_count) = gateway.join().unwrap();
    let cell = tb.counters(Link::Cell);
    println!(
        "kernel client via raw gateway: up {:.1} Mbit/s, down {:.1} Mbit/s; subflows {:?}; \
         cell up {:.1} MB down {:.1} MB",
        tcp_server.received.goodput_bps() / 1e6,
        phone.received.goodput_bps() / 1e6,
        phone.view.subflows,
        cell.up.delivered().bytes as f64 / 1e6,
        cell.down.delivered().bytes as f64 / 1e6,
    );
    assert_eq!(
        refused.error.map(|(c, _)| c),
        Some(convert::ErrorCode::NotAuthorized),
        "{refused:?}"
    );
    assert!(accepted.error.is_none(), "{accepted:?}");
    check_same(
        "upload (kernel -> tcp server)",
        &phone.sent,
        &tcp_server.received,
    );
    check_same(
        "download (tcp server -> kernel)",
        &tcp_server.sent,
        &phone.received,
    );
    assert!(phone.view.is_mptcp, "the kernel client fell back to TCP");
    assert_eq!(phone.view.max_subflows, 2, "{:?}", phone.view.info);
    assert!(
        cell.up.delivered().bytes > BYTES / 10 && cell.down.delivered().bytes > BYTES / 10,
        "the join over cellular carried too little: {cell:?}"
    );
    assert_eq!((relayed, refused_count), (1, 1));
}
