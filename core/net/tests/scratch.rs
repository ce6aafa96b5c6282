mod common;
use braid::{Client, Interface, InterfaceKind, ServiceType};
use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch() {
    init_log();
    let len = e2e_bytes(4_000_000);
    let kill = std::env::var("KILL").is_ok();
    let direct = std::env::var("DIRECT").is_ok();
    let (tcp, mut seen) = tcp_source_sink(len, 2).await;
    let (gw, _gstats, _gw_task, _stop) = gateway(vec![format!("{tcp}")], Default::default()).await;
    let (wifi_emu, cell_emu) = two_paths(gw).await;
    let lo = "127.0.0.1".parse().unwrap();
    let mut b = Client::builder().service(ServiceType::Aggregate);
    if direct {
        b = b.interface(Interface::new(InterfaceKind::Wifi).with_local_addr(lo));
    } else {
        b = b.interface(Interface::new(InterfaceKind::Wifi).with_local_addr(lo).with_via(wifi_emu.local_addr()))
        .interface(Interface::new(InterfaceKind::Cellular).with_local_addr(lo).with_via(cell_emu.local_addr()));
    }
    let client = b.build().unwrap();
    let conn = client.connect_via(gw, &tcp.to_string()).await.unwrap();
    let start = Instant::now();
    let (mut r, mut w) = conn.into_split();
    let mon = w.monitor();
    let stats_w = move || { let s = mon.stats().unwrap_or_default(); format!("sent {} acked {} rcvd {} reinj {} paths {:?}", s.bytes_sent, s.bytes_acked, s.bytes_received, s.bytes_reinjected, s.paths.iter().map(|p| (p.path, p.state, p.bytes_sent, p.srtt, p.cwnd, p.in_flight, p.rto_events)).collect::<Vec<_>>()) };
    let writer = tokio::spawn(async move { send_stream(&mut w, 1, len).await.map(|s| (s, w)) });
    let reader = tokio::spawn(async move { recv_stream(&mut r).await });
    let mut killed = false;
    for i in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (wu, wd) = wifi_emu.stats();
        let (cu, cd) = cell_emu.stats();
        eprintln!("t={:?} wifi up {} down {} (drop {:?}) cell up {} down {} ; conn {:?}", start.elapsed(), wu.delivered.bytes, wd.delivered.bytes, wu.dropped(), cu.delivered.bytes, cd.delivered.bytes, stats_w());
        if kill && !killed && i == 4 { wifi_emu.set_down(true); killed = true; eprintln!("KILLED wifi"); }
        if reader.is_finished() && writer.is_finished() { break; }
    }
    let (rl, _) = reader.await.unwrap().unwrap();
    let _ = writer.await.unwrap().unwrap();
    let s = seen.recv().await.unwrap();
    eprintln!("done {rl} {} in {:?}", s.received, start.elapsed());
}

