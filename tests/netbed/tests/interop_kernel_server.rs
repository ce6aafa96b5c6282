//! Braid (raw carrier, phone namespace) against the Linux kernel's MPTCP server (server
//! namespace): MP_CAPABLE on WiFi, MP_JOIN over cellular, 50 MB each way, SHA-256 checked,
//! and the kernel reporting two subflows. Root only.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use braid::{Carrier, ServiceType};
use braid_netbed::kernel::MptcpListener;
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 50_000_000;
const PORT: u16 = 5201;
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn braid_raw_client_to_kernel_server_joins_over_cellular() {
    if !root_or_skip("braid_raw_client_to_kernel_server_joins_over_cellular") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let addr = server_addr(Link::Wifi, PORT);
    let listener = tb
        .run_in(Side::Server, move || MptcpListener::bind(addr))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, peer) = listener.accept()?;
        let end = kernel_exchange(s, BYTES, TIMEOUT, |_| {});
        drop(listener); // joins go through the listener: keep it until the end
        end.map(|e| (e, peer))
    });
    let start = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = phone_client(Carrier::Raw, ServiceType::Aggregate).build()?;
        let conn = client.connect(addr).await?;
        let end = braid_exchange(conn, BYTES, Some(progress)).await?;
        Ok::<_, braid::Error>(end)
    });
    let braid = client.join().unwrap().unwrap();
    let (kernel, peer) = server.join().unwrap().unwrap();
    let elapsed = start.elapsed();
    let wifi = tb.counters(Link::Wifi);
    let cell = tb.counters(Link::Cell);
    println!(
        "braid raw -> kernel: {BYTES} B each way in {:.2} s; up {:.1} Mbit/s, down {:.1} Mbit/s; \
         first subflow from {peer}",
        elapsed.as_secs_f64(),
        kernel.received.goodput_bps() / 1e6,
        braid.received.goodput_bps() / 1e6,
    );
    println!(
        "links: wifi up {:.1} MB down {:.1} MB, cell up {:.1} MB down {:.1} MB",
        wifi.up.delivered().bytes as f64 / 1e6,
        wifi.down.delivered().bytes as f64 / 1e6,
        cell.up.delivered().bytes as f64 / 1e6,
        cell.down.delivered().bytes as f64 / 1e6,
    );
    println!("braid paths: {}", describe_paths(&braid.stats));
    println!(
        "kernel: mptcp {}, max subflows {}, subflows {:?}, info {:?}",
        kernel.view.is_mptcp, kernel.view.max_subflows, kernel.view.subflows, kernel.view.info
    );
    check_same("upload (braid -> kernel)", &braid.sent, &kernel.received);
    check_same("download (kernel -> braid)", &kernel.sent, &braid.received);
    assert!(braid.stats.mptcp, "braid fell back to TCP");
    assert!(kernel.view.is_mptcp, "the kernel fell back to TCP");
    assert_eq!(kernel.view.max_subflows, 2, "{:?}", kernel.view.info);
    let cell_phone = Link::Cell.addr(Side::Phone);
    assert!(
        kernel
            .view
            .subflows
            .iter()
            .any(|s| s.remote.ip() == cell_phone),
        "the kernel lists no subflow from the phone's cell address: {:?}",
        kernel.view.subflows
    );
    // Both links carried a real share, both ways.
    for (name, c) in [("wifi", &wifi), ("cell", &cell)] {
        assert!(
            c.up.delivered().bytes > BYTES / 10 && c.down.delivered().bytes > BYTES / 10,
            "{name} carried too little: {c:?}"
        );
    }
}
