//! WiFi goes down mid-transfer (the interface goes down and the application reports it, as
//! NWPathMonitor or ConnectivityManager would): Braid (raw carrier, aggregate) and the kernel's
//! MPTCP server finish the transfer over cellular, intact. One test per direction: the kernel
//! sending (it learns of the loss from Braid's REMOVE_ADDR and its own timeouts) and Braid
//! sending (it reinjects what was in flight on WiFi). Root only.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid::{Carrier, InterfaceKind, ServiceType};
use braid_netbed::kernel::MptcpListener;
use braid_netbed::transfer::{self, ReceiveReport};
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 24_000_000;
const TIMEOUT: Duration = Duration::from_secs(60);
/// WiFi goes down this long after the connection is up (about a third of the transfer).
const KILL_AFTER: Duration = Duration::from_millis(1500);

/// Runs one transfer (`upload` bytes from Braid, `download` from the kernel) and takes WiFi
/// down midway; checks integrity and that cellular carried the rest.
fn wifi_down_midway(port: u16, upload: u64, download: u64) {
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let addr = server_addr(Link::Wifi, port);
    let listener = tb
        .run_in(Side::Server, move || MptcpListener::bind(addr))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept()?;
        let end = kernel_exchange(s, download, TIMEOUT, |_| {});
        drop(listener);
        end
    });
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let (up_tx, up_rx) = mpsc::channel();
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = phone_client(Carrier::Raw, ServiceType::Aggregate).build()?;
        let wifi = client
            .interfaces()
            .into_iter()
            .find(|(_, i)| i.kind == InterfaceKind::Wifi)
            .map(|(id, _)| id)
            .expect("a WiFi path");
        let conn = client.connect(addr).await?;
        let _ = up_tx.send(Instant::now());
        let c = client.clone();
        tokio::spawn(async move {
            if lost_rx.await.is_ok() {
                c.interface_lost(wifi);
            }
        });
        Ok::<_, braid::Error>(braid_exchange(conn, upload, None).await?)
    });
    let connected = up_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("connected");
    std::thread::sleep(KILL_AFTER.saturating_sub(connected.elapsed()));
    tb.link_down(Link::Wifi).unwrap();
    let killed = Instant::now();
    let _ = lost_tx.send(());
    let wifi_at_kill = tb.counters(Link::Wifi);
    let cell_at_kill = tb.counters(Link::Cell);
    let braid = client.join().unwrap().unwrap();
    let kernel = server.join().unwrap().unwrap();
    let wifi = tb.counters(Link::Wifi);
    let cell = tb.counters(Link::Cell);

    // The receiving end's view of the kill.
    let (rx, name): (&ReceiveReport, _) = if download > 0 {
        (&braid.received, "download")
    } else {
        (&kernel.received, "upload")
    };
    let kill_rel = killed - rx.started;
    let stall = transfer::longest_stall(&rx.samples, kill_rel, rx.last_byte.unwrap());
    let after = rx.samples.rate_bps(kill_rel, rx.last_byte.unwrap());
    println!(
        "{name}: wifi down at {:.2} s ({:.1} MB in); longest stall after it {stall:?}; \
         {:.1} Mbit/s after it; done {:.2} s after it; braid paths {}",
        kill_rel.as_secs_f64(),
        rx.samples.at(kill_rel) as f64 / 1e6,
        after / 1e6,
        killed.elapsed().as_secs_f64(),
        describe_paths(&braid.stats)
    );
    check_same("upload (braid -> kernel)", &braid.sent, &kernel.received);
    check_same("download (kernel -> braid)", &kernel.sent, &braid.received);
    assert_eq!(rx.bytes, BYTES);
    assert!(!tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    // Nothing crossed WiFi after the kill; cellular carried the rest.
    assert_eq!(wifi.down.delivered(), wifi_at_kill.down.delivered());
    assert_eq!(wifi.up.delivered(), wifi_at_kill.up.delivered());
    let rest = BYTES - rx.samples.at(kill_rel);
    let carried = if download > 0 {
        cell.down.delivered().bytes - cell_at_kill.down.delivered().bytes
    } else {
        cell.up.delivered().bytes - cell_at_kill.up.delivered().bytes
    };
    assert!(
        carried >= rest,
        "cellular carried {carried} B after the kill, {rest} B were left"
    );
    // The rest went at a useful fraction of cellular's 20 Mbit/s.
    assert!(
        after > 8e6,
        "{name}: only {:.1} Mbit/s after the kill",
        after / 1e6
    );
}

#[test]
fn download_from_the_kernel_survives_wifi_going_down() {
    if !root_or_skip("download_from_the_kernel_survives_wifi_going_down") {
        return;
    }
    wifi_down_midway(5205, 0, BYTES);
}

#[test]
fn upload_to_the_kernel_survives_wifi_going_down() {
    if !root_or_skip("upload_to_the_kernel_survives_wifi_going_down") {
        return;
    }
    wifi_down_midway(5206, BYTES, 0);
}
