//! The UDP carrier on real interfaces: a Braid client in the phone namespace, its sockets bound
//! to `c-wifi` and `c-cell` by name (SO_BINDTOIFINDEX), goes through a Braid gateway (UDP) in
//! the server namespace to a kernel TCP server there. Midway WiFi goes down for real (`ip link
//! set c-wifi down`, the relay drops everything); Braid is not told and must notice by itself.
//! Nothing is lost either way. Root only.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use braid::gateway::{Gateway, GatewayConfig};
use braid::{Carrier, ServiceType};
use braid_netbed::transfer;
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 24_000_000;
const GATEWAY_PORT: u16 = 7000;
const TARGET: &str = "127.0.0.1:6000";
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn udp_carrier_through_a_gateway_survives_wifi_going_down() {
    if !root_or_skip("udp_carrier_through_a_gateway_survives_wifi_going_down") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
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
        let gw = Gateway::bind(SocketAddr::from(([0, 0, 0, 0], GATEWAY_PORT)), cfg).await;
        let gw = match gw {
            Ok(g) => g,
            Err(e) => {
                gw_tx.send(Err(e.to_string())).unwrap();
                return;
            }
        };
        let stats = gw.stats();
        gw_tx.send(Ok(())).unwrap();
        let task = gw.spawn();
        let _ = stop_rx.await;
        task.abort();
        println!(
            "gateway: relayed {}, up {} B, down {} B",
            stats.relayed.load(Ordering::Relaxed),
            stats.bytes_up.load(Ordering::Relaxed),
            stats.bytes_down.load(Ordering::Relaxed)
        );
    });
    gw_rx.recv().unwrap().expect("gateway");
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = phone_client(Carrier::Udp, ServiceType::Handover).build()?;
        let gw = server_addr(Link::Wifi, GATEWAY_PORT);
        let conn = client.connect_via(gw, TARGET).await?;
        Ok::<_, braid::Error>(braid_exchange(conn, BYTES, Some(p)).await?)
    });
    let deadline = Instant::now() + TIMEOUT;
    while progress.load(Ordering::Relaxed) < BYTES / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    tb.link_down(Link::Wifi).unwrap();
    let killed = Instant::now();
    let wifi_at_kill = tb.counters(Link::Wifi);
    let braid = client.join().unwrap().unwrap();
    let kernel = server.join().unwrap().unwrap();
    let _ = stop_tx.send(());
    gateway.join().unwrap();
    let down_rel = killed - braid.received.started;
    let stall = transfer::longest_stall(
        &braid.received.samples,
        down_rel,
        braid.received.last_byte.unwrap(),
    );
    println!(
        "udp carrier via gateway: wifi down at {:.2} s ({:.1} MB in); download stall {stall:?}; \
         done {:.2} s after it; events {:?}",
        down_rel.as_secs_f64(),
        braid.received.samples.at(down_rel) as f64 / 1e6,
        killed.elapsed().as_secs_f64(),
        braid.events
    );
    check_same(
        "upload (braid -> tcp server)",
        &braid.sent,
        &kernel.received,
    );
    check_same(
        "download (tcp server -> braid)",
        &kernel.sent,
        &braid.received,
    );
    assert!(!tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    let wifi = tb.counters(Link::Wifi);
    assert_eq!(wifi.down.delivered(), wifi_at_kill.down.delivered());
    let cell = tb.counters(Link::Cell);
    assert!(
        cell.down.delivered().bytes > (BYTES - braid.received.samples.at(down_rel)),
        "cellular did not carry the rest: {cell:?}"
    );
}
