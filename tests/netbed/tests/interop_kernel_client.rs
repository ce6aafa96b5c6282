//! The Linux kernel's MPTCP client (phone namespace, endpoint `subflow` on c-cell) against a
//! Braid server on the raw carrier (server namespace, wildcard address): MP_CAPABLE over
//! WiFi, the kernel joining from its cellular address, 50 MB each way, SHA-256 checked.
//! Root only.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use braid::{RawConfig, Server, ServerConfig};
use braid_netbed::kernel;
use braid_netbed::{Endpoint, Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 50_000_000;
const PORT: u16 = 5202;
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn kernel_client_to_braid_raw_server_joins_from_its_second_address() {
    if !root_or_skip("kernel_client_to_braid_raw_server_joins_from_its_second_address") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    tb.add_endpoint(
        Side::Phone,
        &Endpoint::on(Side::Phone, Link::Cell).subflow(),
    )
    .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = braid_in(&tb, Side::Server, move || async move {
        let listen = SocketAddr::from(([0, 0, 0, 0], PORT));
        let server = Server::bind_raw(listen, ServerConfig::default(), RawConfig::default());
        let server = match server {
            Ok(s) => {
                ready_tx.send(Ok(())).unwrap();
                s
            }
            Err(e) => {
                ready_tx.send(Err(e.to_string())).unwrap();
                return Err(e);
            }
        };
        let conn = server.accept().await.ok_or(braid::Error::EndpointClosed)?;
        let end = braid_exchange(conn, BYTES, None).await?;
        Ok::<_, braid::Error>(end)
    });
    ready_rx.recv().unwrap().expect("Braid raw server");
    let start = Instant::now();
    let target = server_addr(Link::Wifi, PORT);
    let client = tb
        .spawn_in(Side::Phone, move || {
            let s = kernel::mptcp_connect(None, target)?;
            kernel_exchange(s, BYTES, TIMEOUT, |_| {})
        })
        .unwrap();
    let kernel = client.join().unwrap().unwrap();
    let braid = server.join().unwrap().unwrap();
    let wifi = tb.counters(Link::Wifi);
    let cell = tb.counters(Link::Cell);
    println!(
        "kernel -> braid raw server: {BYTES} B each way in {:.2} s; up {:.1} Mbit/s, down {:.1} \
         Mbit/s",
        start.elapsed().as_secs_f64(),
        braid.received.goodput_bps() / 1e6,
        kernel.received.goodput_bps() / 1e6,
    );
    println!(
        "links: wifi up {:.1} MB down {:.1} MB, cell up {:.1} MB down {:.1} MB",
        wifi.up.delivered().bytes as f64 / 1e6,
        wifi.down.delivered().bytes as f64 / 1e6,
        cell.up.delivered().bytes as f64 / 1e6,
        cell.down.delivered().bytes as f64 / 1e6,
    );
    println!("braid server paths: {}", describe_paths(&braid.stats));
    println!(
        "kernel client: mptcp {}, max subflows {}, subflows {:?}",
        kernel.view.is_mptcp, kernel.view.max_subflows, kernel.view.subflows
    );
    check_same("upload (kernel -> braid)", &kernel.sent, &braid.received);
    check_same("download (braid -> kernel)", &braid.sent, &kernel.received);
    assert!(braid.stats.mptcp, "the Braid server fell back to TCP");
    assert!(kernel.view.is_mptcp, "the kernel client fell back to TCP");
    assert_eq!(kernel.view.max_subflows, 2, "{:?}", kernel.view.info);
    let cell_phone = Link::Cell.addr(Side::Phone);
    assert!(
        kernel
            .view
            .subflows
            .iter()
            .any(|s| s.local.ip() == cell_phone),
        "the kernel did not join from its cell address: {:?}",
        kernel.view.subflows
    );
    assert!(
        braid
            .stats
            .paths
            .iter()
            .any(|p| p.remote.is_some_and(|r| r.ip() == cell_phone) && p.bytes_received > 0),
        "the Braid server has no subflow carrying data from the phone's cell address: {}",
        describe_paths(&braid.stats)
    );
    for (name, c) in [("wifi", &wifi), ("cell", &cell)] {
        assert!(
            c.up.delivered().bytes > BYTES / 10 && c.down.delivered().bytes > BYTES / 10,
            "{name} carried too little: {c:?}"
        );
    }
}
