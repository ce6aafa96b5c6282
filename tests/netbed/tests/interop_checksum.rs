//! DSS checksums (RFC 8684 §3.3.1) negotiated between Braid (raw carrier) and the kernel's
//! MPTCP: once with the kernel asking (`net.mptcp.checksum_enabled=1` on the server), once
//! with Braid asking (`ConnectionConfig::checksum`). Both subflows, both directions, SHA-256
//! checked, and the kernel reporting checksums on. Root only.

mod common;

use std::time::Duration;

use braid::{Carrier, ConnectionConfig, ServiceType};
use braid_netbed::kernel::MptcpListener;
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 20_000_000;
const TIMEOUT: Duration = Duration::from_secs(60);

fn checksummed_transfer(port: u16, kernel_asks: bool, braid_asks: bool) {
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    tb.set_mptcp_checksum(Side::Server, kernel_asks).unwrap();
    let addr = server_addr(Link::Wifi, port);
    let listener = tb
        .run_in(Side::Server, move || MptcpListener::bind(addr))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept()?;
        let end = kernel_exchange(s, BYTES, TIMEOUT, |_| {});
        drop(listener);
        end
    });
    let client = braid_in(&tb, Side::Phone, move || async move {
        let cfg = ConnectionConfig {
            checksum: braid_asks,
            ..ConnectionConfig::default()
        };
        let client = phone_client(Carrier::Raw, ServiceType::Aggregate)
            .connection_config(cfg)
            .build()?;
        let conn = client.connect(addr).await?;
        Ok::<_, braid::Error>(braid_exchange(conn, BYTES, None).await?)
    });
    let braid = client.join().unwrap().unwrap();
    let kernel = server.join().unwrap().unwrap();
    let info = kernel.view.info.clone().expect("MPTCP_INFO");
    println!(
        "kernel asks {kernel_asks}, braid asks {braid_asks}: csum_enabled {}, subflows {}, \
         up {:.1} Mbit/s, down {:.1} Mbit/s; braid paths {}",
        info.csum_enabled,
        kernel.view.max_subflows,
        kernel.received.goodput_bps() / 1e6,
        braid.received.goodput_bps() / 1e6,
        describe_paths(&braid.stats)
    );
    check_same("upload (braid -> kernel)", &braid.sent, &kernel.received);
    check_same("download (kernel -> braid)", &kernel.sent, &braid.received);
    assert!(
        kernel.view.is_mptcp && braid.stats.mptcp,
        "fell back to TCP"
    );
    assert_eq!(
        info.csum_enabled, 1,
        "the kernel does not use DSS checksums"
    );
    assert_eq!(kernel.view.max_subflows, 2, "{info:?}");
}

#[test]
fn dss_checksums_asked_by_the_kernel() {
    if !root_or_skip("dss_checksums_asked_by_the_kernel") {
        return;
    }
    checksummed_transfer(5207, true, false);
}

#[test]
fn dss_checksums_asked_by_braid() {
    if !root_or_skip("dss_checksums_asked_by_braid") {
        return;
    }
    checksummed_transfer(5208, false, true);
}
