//! The kernel's MPTCP server announces its cellular address (endpoint `signal` on s-cell);
//! Braid (raw carrier, WiFi only) joins it. Then the endpoint is deleted: the kernel sends
//! REMOVE_ADDR and Braid closes the subflow to that address, while the transfer goes on over
//! the first subflow and completes intact. Root only.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid::{Carrier, ConnectionStats, Interface, InterfaceKind, ServiceType};
use braid_netbed::kernel::MptcpListener;
use braid_netbed::{Endpoint, Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 30_000_000;
const PORT: u16 = 5203;
const ENDPOINT_ID: u8 = 7;
const TIMEOUT: Duration = Duration::from_secs(60);

/// The Braid subflow to `ip`, if it is open (listed and not closed).
fn open_subflow_to(stats: &ConnectionStats, ip: IpAddr) -> Option<&braid::PathStats> {
    stats
        .paths
        .iter()
        .find(|p| p.remote.is_some_and(|r| r.ip() == ip) && p.state != "closed")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn braid_joins_an_announced_address_and_drops_it_on_remove_addr() {
    if !root_or_skip("braid_joins_an_announced_address_and_drops_it_on_remove_addr") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let announced = Link::Cell.addr(Side::Server);
    tb.add_endpoint(
        Side::Server,
        &Endpoint::on(Side::Server, Link::Cell)
            .id(ENDPOINT_ID)
            .signal(),
    )
    .unwrap();
    // Wildcard: the join to the announced address needs a listener there too.
    let listener = tb
        .run_in(Side::Server, || {
            MptcpListener::bind(SocketAddr::from(([0, 0, 0, 0], PORT)))
        })
        .unwrap();
    let (kview_tx, kview_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept()?;
        let end = kernel_exchange(s, BYTES, TIMEOUT, |s| {
            // Subflow lists while it runs, for the assertions below.
            let _ = kview_tx.send(s.try_clone().unwrap());
        });
        drop(listener);
        end
    });
    let target = server_addr(Link::Wifi, PORT);
    let (mon_tx, mon_rx) = mpsc::channel();
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = braid::Client::builder()
            .carrier(Carrier::Raw)
            .service(ServiceType::Aggregate)
            .interface(Interface::new(InterfaceKind::Wifi).with_name(Link::Wifi.iface(Side::Phone)))
            .build()?;
        let conn = client.connect(target).await?;
        mon_tx.send(conn.monitor()).unwrap();
        Ok::<_, braid::Error>(braid_exchange(conn, BYTES, None).await?)
    });
    let monitor = mon_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("connected");
    let kstream = kview_rx.recv_timeout(Duration::from_secs(15)).unwrap();

    // 1. Braid joins the announced address and data flows on that subflow.
    let joined = wait_for(
        "a Braid subflow to the announced address",
        Duration::from_secs(10),
        || {
            monitor.stats().is_some_and(|s| {
                open_subflow_to(&s, IpAddr::V4(announced))
                    .is_some_and(|p| p.state == "established" && p.bytes_received > 100_000)
            })
        },
    );
    let kernel_before = braid_netbed::kernel::subflow_addrs(&kstream).unwrap();
    println!("joined {announced} after {joined:?}; kernel subflows {kernel_before:?}");
    assert!(
        kernel_before
            .iter()
            .any(|s| s.local.ip() == IpAddr::V4(announced)),
        "the kernel lists no subflow on its announced address: {kernel_before:?}"
    );

    // 2. The endpoint goes: REMOVE_ADDR; Braid closes its subflow to that address.
    let out = tb
        .command(Side::Server, "ip")
        .args([
            "mptcp",
            "endpoint",
            "delete",
            "id",
            &ENDPOINT_ID.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = wait_for(
        "Braid to close the removed address's subflow",
        Duration::from_secs(5),
        || {
            monitor
                .stats()
                .is_some_and(|s| open_subflow_to(&s, IpAddr::V4(announced)).is_none())
        },
    );
    let after = monitor.stats().unwrap();
    let kernel_after = braid_netbed::kernel::subflow_addrs(&kstream).unwrap();
    println!(
        "removed; Braid closed its subflow after {gone:?}: {}; kernel subflows {kernel_after:?}",
        describe_paths(&after)
    );
    assert!(
        after
            .paths
            .iter()
            .any(|p| p.remote == Some(target) && p.state == "established"),
        "the first subflow must stay: {}",
        describe_paths(&after)
    );
    drop(kstream);

    let braid = client.join().unwrap().unwrap();
    let kernel = server.join().unwrap().unwrap();
    check_same("upload (braid -> kernel)", &braid.sent, &kernel.received);
    check_same("download (kernel -> braid)", &kernel.sent, &braid.received);
    println!("braid events after connecting: {:?}", braid.events);
    assert_eq!(kernel.view.max_subflows, 2, "{:?}", kernel.view.info);
    assert!(
        kernel_after
            .iter()
            .all(|s| s.local.ip() != IpAddr::V4(announced)),
        "the kernel still has a subflow on the removed address: {kernel_after:?}"
    );
}
