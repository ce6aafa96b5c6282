//! A Linux kernel MPTCP client and a raw-carrier gateway that announces its own address
//! (docs/ARCHITECTURE.md, "Announce and the C flag"): the gateway's SYN/ACK carries C and an
//! ADD_ADDR names another port; the phone's kernel (endpoint `subflow` on c-cell) must not
//! join the address it connected to and joins the announced one instead. 4 MB each way,
//! hashes compared, no join refused. Root only.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::Duration;

use braid::RawConfig;
use braid::gateway::{Gateway, GatewayConfig};
use braid_netbed::kernel;
use braid_netbed::{Endpoint, Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 4_000_000;
const GATEWAY_PORT: u16 = 5220;
const ANNOUNCED_PORT: u16 = 5221;
const TARGET: &str = "127.0.0.1:6020";
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn kernel_mptcp_client_joins_the_announced_address_of_a_raw_gateway() {
    if !root_or_skip("kernel_mptcp_client_joins_the_announced_address_of_a_raw_gateway") {
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
    let announced = server_addr(Link::Wifi, ANNOUNCED_PORT);
    let (gw_tx, gw_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = braid_in(&tb, Side::Server, move || async move {
        let cfg = GatewayConfig {
            allow: vec![TARGET.to_string()],
            announce: Some(announced),
            ..GatewayConfig::default()
        };
        let listen = server_addr(Link::Wifi, GATEWAY_PORT);
        let gw = match Gateway::bind_raw(listen, cfg, RawConfig::default()).await {
            Ok(g) => g,
            Err(e) => {
                gw_tx.send(Err(e.to_string())).unwrap();
                return None;
            }
        };
        let stats = gw.stats();
        let probe = gw.server().probe();
        gw_tx.send(Ok(())).unwrap();
        let task = gw.spawn();
        let _ = stop_rx.await;
        let census = probe.census();
        task.abort();
        Some((stats.relayed.load(Ordering::Relaxed), census))
    });
    gw_rx.recv().unwrap().expect("raw gateway");
    let gw = server_addr(Link::Wifi, GATEWAY_PORT);
    let client = tb
        .spawn_in(Side::Phone, move || {
            let mut s = kernel::mptcp_connect(None, gw)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            convert_handshake(&mut s, target)?;
            kernel_exchange(s, BYTES, TIMEOUT, |_| {})
        })
        .unwrap();
    let phone = client.join().unwrap().unwrap();
    let tcp_server = server.join().unwrap().unwrap();
    let _ = stop_tx.send(());
    let (relayed, census) = gateway.join().unwrap().expect("gateway ran");
    let census = census.expect("endpoint alive");
    println!(
        "kernel client, raw gateway announcing {announced}: subflows {:?}; gateway joins refused {} (at the shared address {})",
        phone.view.subflows,
        census.endpoint.joins_rejected,
        census.endpoint.joins_rejected_unannounced
    );
    check_same("upload", &phone.sent, &tcp_server.received);
    check_same("download", &tcp_server.sent, &phone.received);
    assert!(phone.view.is_mptcp, "the kernel client fell back to TCP");
    assert_eq!(relayed, 1);
    assert_eq!(
        census.endpoint.joins_rejected, 0,
        "the kernel joined where C forbids it"
    );
    assert!(
        phone.view.subflows.iter().any(|s| s.remote == announced),
        "no subflow to the announced address: {:?}",
        phone.view.subflows
    );
}
