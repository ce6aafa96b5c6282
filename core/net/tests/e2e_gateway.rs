//! Loopback end to end: a client with two emulated paths (WiFi-like and cellular-like) through
//! a gateway to a TCP server, data both ways checked by SHA-256, the WiFi path killed midway.

mod common;

use braid::{ConnectionEvent, InterfaceKind};
use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_paths_through_gateway_wifi_dies_midway() {
    init_log();
    // The issue asks for 100 MB each way: BRAID_E2E_BYTES=100000000.
    let len = e2e_bytes(100_000_000);
    let (tcp, mut seen) = tcp_source_sink(len, 2).await;
    let (gw, gstats, _gw_task, _stop) = gateway(vec![format!("{tcp}")], Default::default()).await;
    let (wifi_emu, cell_emu) = two_paths(gw).await;
    let client = common::two_path_client(&wifi_emu, &cell_emu)
        .build()
        .unwrap();
    let conn = client.connect_via(gw, &tcp.to_string()).await.unwrap();
    let mut events = conn.events();
    let start = Instant::now();
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move { send_stream(&mut w, 1, len).await.map(|s| (s, w)) });
    let reader = tokio::spawn(async move { recv_stream(&mut r).await });

    // Kill WiFi once about a third of the data went up.
    let killer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (up, _) = wifi_emu.stats();
            let (cup, _) = cell_emu.stats();
            if up.delivered.bytes + cup.delivered.bytes >= len / 3 {
                wifi_emu.set_down(true);
                return (wifi_emu, cell_emu, Instant::now());
            }
        }
    });
    let (wifi_emu, cell_emu, killed_at) = tokio::time::timeout(Duration::from_secs(120), killer)
        .await
        .unwrap()
        .unwrap();
    let (recv_len, recv_sha) = tokio::time::timeout(Duration::from_secs(180), reader)
        .await
        .expect("download stalled")
        .unwrap()
        .unwrap();
    let (sent_sha, _w) = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("upload stalled")
        .unwrap()
        .unwrap();
    let server = tokio::time::timeout(Duration::from_secs(60), seen.recv())
        .await
        .expect("server never finished")
        .unwrap();
    let elapsed = start.elapsed();

    let mut evs = Vec::new();
    while let Some(e) = events.try_recv() {
        evs.push(e);
    }
    let (wu, wd) = wifi_emu.stats();
    let (cu, cd) = cell_emu.stats();
    eprintln!(
        "{len} B each way in {elapsed:?} (WiFi killed at {:?}); wifi up/down {} / {} B, cell up/down {} / {} B; events {evs:?}",
        killed_at - start,
        wu.delivered.bytes,
        wd.delivered.bytes,
        cu.delivered.bytes,
        cd.delivered.bytes
    );
    assert_eq!(recv_len, len, "download length");
    assert_eq!(recv_sha, server.sent_sha, "download corrupted");
    assert_eq!(server.received, len, "upload length");
    assert_eq!(server.received_sha, sent_sha, "upload corrupted");
    assert!(
        wu.delivered.bytes > 0 && cu.delivered.bytes > 0,
        "both paths carried data"
    );
    assert!(
        evs.iter().any(|e| matches!(
            e,
            ConnectionEvent::PathDown {
                kind: InterfaceKind::Wifi,
                ..
            }
        )) || wu.lost_in_flight.packets + wu.dropped_down.packets > 0
    );
    assert_eq!(gstats.relayed.load(std::sync::atomic::Ordering::Relaxed), 1);
}
