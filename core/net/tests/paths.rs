//! Paths added and removed while a transfer runs.

mod common;

use braid::{Client, ConnectionEvent, Interface, InterfaceKind, Server, ServerConfig, ServiceType};
use common::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_added_then_first_one_lost() {
    add_then_lose(ServiceType::Aggregate).await;
}

/// Repro for the engine: `Endpoint::remove_path` only marks the local path unavailable; the
/// path's subflow stays established (retransmitting into a closed socket) and the handover
/// policy never moves data to the backup subflow, so the transfer stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn handover_interface_added_then_first_one_lost() {
    add_then_lose(ServiceType::Handover).await;
}

async fn add_then_lose(service: ServiceType) {
    init_log();
    let len: u64 = 20_000_000;
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let saddr = server.local_addr();
    let (wifi_emu, cell_emu) = two_paths(saddr).await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let conn = server.accept().await.unwrap();
        let (mut r, _w) = conn.into_split();
        let got = recv_stream(&mut r).await;
        let _ = done_tx.send(got);
        tokio::time::sleep(Duration::from_secs(1)).await;
    });

    let lo = "127.0.0.1".parse().unwrap();
    let client = Client::builder()
        .service(service)
        .interface(
            Interface::new(InterfaceKind::Wifi)
                .with_local_addr(lo)
                .with_via(wifi_emu.local_addr()),
        )
        .build()
        .unwrap();
    let conn = client.connect(saddr).await.unwrap();
    let mut events = conn.events();
    let wifi_id = client.interfaces()[0].0;
    assert_eq!(conn.paths().len(), 1);
    let mon = conn.monitor();
    let (_r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move { send_stream(&mut w, 5, len).await.map(|s| (s, w)) });

    // Cellular appears a moment later; then WiFi goes away.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cell_id = client
        .interface_available(
            Interface::new(InterfaceKind::Cellular)
                .with_local_addr(lo)
                .with_via(cell_emu.local_addr()),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("no PathUp for cellular");
        if let Some(ConnectionEvent::PathUp { path, .. }) = up
            && path == cell_id
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = wifi_emu.stats().0.delivered.bytes;
    client.interface_lost(wifi_id);
    let lost_at = Instant::now();

    let mon2 = mon.clone();
    let cell2 = cell_emu.stats();
    let _ = cell2;
    let progress = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let Some(s) = mon2.stats() else { return };
            if std::env::var("BRAID_TEST_PROGRESS").is_ok() {
                eprintln!(
                    "sent {} acked {} reinj {} paths {:?}",
                    s.bytes_sent,
                    s.bytes_acked,
                    s.bytes_reinjected,
                    s.paths
                        .iter()
                        .map(|p| (
                            p.path,
                            p.state,
                            p.backup,
                            p.bytes_sent,
                            p.cwnd,
                            p.in_flight,
                            p.rto_events
                        ))
                        .collect::<Vec<_>>()
                );
            }
        }
    });
    let (sent_sha, mut w) = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("upload stalled")
        .unwrap()
        .unwrap();
    let (n, got_sha) = tokio::time::timeout(Duration::from_secs(60), done_rx)
        .await
        .expect("server never finished")
        .unwrap()
        .unwrap();
    let after = wifi_emu.stats().0.delivered.bytes;
    let stats = mon.stats().unwrap();
    eprintln!(
        "finished {:?} after WiFi was lost; wifi carried {before} B before, {} B after; paths now {:?}",
        lost_at.elapsed(),
        after - before,
        stats
            .paths
            .iter()
            .map(|p| (p.path, p.kind, p.state, p.bytes_sent))
            .collect::<Vec<_>>()
    );
    assert_eq!(n, len);
    assert_eq!(got_sha, sent_sha);
    assert!(
        cell_emu.stats().0.delivered.bytes > len / 4,
        "cellular carried the rest"
    );
    // The lost interface's socket is closed: nothing more leaves on it.
    assert!(
        after - before < 200_000,
        "WiFi kept sending after it was lost: {} B",
        after - before
    );
    let _ = w.shutdown().await;
    progress.abort();
}
