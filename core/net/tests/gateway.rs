//! Gateway behaviour: many connections at once, the allowlist and Convert errors, and abuse
//! (garbage datagrams, a SYN flood, a client that stops reading) that must not hurt others.

mod common;

use braid::convert::ErrorCode;
use braid::gateway::GatewayConfig;
use braid::{Client, Error};
use braid_proto::wire::{
    self, MpCapable, MpCapableFlags, MpCapableKeys, SeqNum, TcpFlags, TcpOptions, TcpRepr,
};
use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

fn direct_client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections() {
    init_log();
    let echo = tcp_echo().await;
    // 200 at once from one address: the per-source limit is for abuse, not this.
    let cfg = GatewayConfig {
        max_half_open: 256,
        max_half_open_per_source: 256,
        max_connections: 512,
        ..Default::default()
    };
    let (gw, stats, _t, _stop) = gateway(vec![format!("127.0.0.1:{}", echo.port())], cfg).await;
    let client = direct_client();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let client = client.clone();
        let target = echo.to_string();
        tasks.push(tokio::spawn(async move {
            let conn = client.connect_via(gw, &target).await?;
            let (mut r, mut w) = conn.into_split();
            let len = 32 * 1024 + i * 97;
            let writer =
                tokio::spawn(
                    async move { send_stream(&mut w, 100 + i, len).await.map(|s| (s, w)) },
                );
            let (n, got) = recv_stream(&mut r).await?;
            let (sent, _w) = writer.await.map_err(std::io::Error::other)??;
            Ok::<_, Error>((n == len, got == sent))
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(60), t).await {
            Ok(Ok(Ok((true, true)))) => ok += 1,
            other => eprintln!("connection failed: {other:?}"),
        }
    }
    eprintln!("200 connections in {:?}", start.elapsed());
    assert_eq!(ok, 200, "every connection intact");
    assert_eq!(stats.relayed.load(Ordering::Relaxed), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_refusal_and_unreachable_targets() {
    init_log();
    let echo = tcp_echo().await;
    // A port nothing listens on (bound then closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let allow = vec![
        format!("127.0.0.1:{}", echo.port()),
        format!("localhost:{}", closed.port()),
    ];
    let (gw, stats, _t, _stop) = gateway(allow, Default::default()).await;
    let client = direct_client();

    // Not on the list: the gateway answers with an Error TLV, the client gets NotAllowed.
    let other = tcp_echo().await;
    match client.connect_via(gw, &other.to_string()).await {
        Err(Error::NotAllowed { target }) => assert_eq!(target, other.to_string()),
        r => panic!("expected NotAllowed, got {r:?}"),
    }
    // Allowed but refused by the destination.
    match client.connect_via(gw, &closed.to_string()).await {
        Err(Error::Gateway {
            code: ErrorCode::ConnectionReset,
            ..
        }) => {}
        r => panic!("expected a connection-reset Gateway error, got {r:?}"),
    }
    // And the allowed one works, with data after the Convert exchange.
    let mut c = client.connect_via(gw, &echo.to_string()).await.unwrap();
    c.write_all(b"hello braid").await.unwrap();
    c.finish();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello braid");
    assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_convert_header_gets_an_error_tlv() {
    init_log();
    let (gw, _stats, _t, _stop) = gateway(vec!["*:*".into()], Default::default()).await;
    let client = direct_client();
    let mut c = client.connect(gw).await.unwrap();
    // Version 7: unsupported.
    c.write_all(&[7, 1, 0, 0]).await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    let m = braid::convert::decode(&back).unwrap();
    assert_eq!(m.error.map(|e| e.0), Some(ErrorCode::UnsupportedVersion));
}

/// A TCP-in-UDP SYN with MP_CAPABLE, as a client would send it.
fn syn(src_port: u16, dst_port: u16, iss: u32) -> Vec<u8> {
    let mut options = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        ..Default::default()
    };
    let _ = options.push_mptcp(MpCapable {
        version: 1,
        flags: MpCapableFlags(0x01),
        keys: MpCapableKeys::Syn,
    });
    let repr = TcpRepr {
        src_port,
        dst_port,
        seq: SeqNum(iss),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65535,
        urgent: 0,
        options,
    };
    let mut buf = vec![0u8; 128];
    let n = wire::emit_udp_payload(&repr, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_syn_flood_and_a_stalled_reader_do_not_hurt_others() {
    init_log();
    let len = 8_000_000;
    let (sink, mut seen) = tcp_source_sink(len, 9).await;
    // A TCP server that writes as fast as it can and counts what it got rid of.
    let pushed = Arc::new(AtomicU64::new(0));
    let firehose = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let pushed = pushed.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let pushed = pushed.clone();
                tokio::spawn(async move {
                    let buf = vec![0x55u8; 64 * 1024];
                    while s.write_all(&buf).await.is_ok() {
                        pushed.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        addr
    };
    let cfg = GatewayConfig {
        max_half_open: 32,
        connection_buffer: 512 * 1024,
        ..Default::default()
    };
    let (gw, _stats, _t, _stop) = gateway(vec!["127.0.0.1:*".into()], cfg).await;
    let client = direct_client();

    // The stalled reader: connects to the firehose and never reads.
    let stalled = client.connect_via(gw, &firehose.to_string()).await.unwrap();

    // A SYN flood, then garbage until the honest transfer is over; it starts once the
    // garbage flows, so the two overlap however fast the transfer is.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let junk_sent = Arc::new(AtomicU64::new(0));
    let junk_count = junk_sent.clone();
    let abuse = tokio::spawn(async move {
        let mut flood = Vec::new();
        for i in 0..300u32 {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = s.local_addr().unwrap().port();
            let _ = s
                .send_to(&syn(port, gw.port(), i.wrapping_mul(7919)), gw)
                .await;
            flood.push(s);
        }
        let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut x: u64 = 0x9e37_79b9;
        let mut buf = [0u8; 1500];
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 1500) as usize;
            for b in buf[..n].iter_mut() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (x >> 56) as u8;
            }
            let _ = junk.send_to(&buf[..n], gw).await;
            sent += 1;
            junk_count.store(sent, Ordering::Relaxed);
            if sent % 64 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        (flood, sent)
    });
    while junk_sent.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The honest client starts its transfer.
    let conn = client.connect_via(gw, &sink.to_string()).await.unwrap();
    let start = Instant::now();
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move { send_stream(&mut w, 3, len).await.map(|s| (s, w)) });
    let reader = tokio::spawn(async move { recv_stream(&mut r).await });
    let junk_at_start = junk_sent.load(Ordering::Relaxed);

    let (n, got) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("honest download stalled")
        .unwrap()
        .unwrap();
    let (sent, _w) = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("honest upload stalled")
        .unwrap()
        .unwrap();
    let server = tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    let during = junk_sent.load(Ordering::Relaxed) - junk_at_start;
    done.store(true, Ordering::Relaxed);
    let (flood, _) = abuse.await.unwrap();
    eprintln!(
        "honest transfer of {len} B each way took {took:?} while {during} garbage datagrams came in"
    );
    assert!(during > 0, "the garbage overlapped the transfer");
    assert_eq!(n, len);
    assert_eq!(got, server.sent_sha);
    assert_eq!(server.received_sha, sent);

    // The firehose is held back by flow control: the gateway buffers a bounded amount.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = pushed.load(Ordering::Relaxed);
    eprintln!("firehose pushed {held} B into a connection nobody reads");
    assert!(
        held < 16 << 20,
        "gateway buffered {held} B for a client that does not read"
    );
    drop(stalled);
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_flood_is_bounded_by_the_half_open_limit() {
    init_log();
    let echo = tcp_echo().await;
    let gwo = braid::gateway::Gateway::bind(
        "127.0.0.1:0".parse().unwrap(),
        GatewayConfig {
            allow: vec![format!("{echo}")],
            max_half_open: 16,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let gw: SocketAddr = gwo.local_addr();
    let mut flood = Vec::new();
    for i in 0..100u32 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = s.local_addr().unwrap().port();
        s.send_to(&syn(port, gw.port(), i), gw).await.unwrap();
        flood.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ep = gwo.server().endpoint_stats();
    let held = gwo.server().connection_count();
    eprintln!("after 100 SYNs: {ep:?}, {held} connections held");
    assert!(held <= 16, "half-open connections beyond the limit: {held}");
    assert!(
        ep.syn_cookies_sent >= 84,
        "once the half-open queue is half full, SYNs are answered statelessly: {ep:?}"
    );
    // Each flood socket got a SYN/ACK and nothing crashed; the endpoint still answers.
    let mut answered = 0;
    for s in &flood {
        let mut b = [0u8; 256];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(20), s.recv(&mut b)).await {
            answered += 1;
        }
    }
    assert!(answered >= 90, "only {answered} of 100 SYNs were answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolved_on_the_gateway_and_refusals_told_apart() {
    init_log();
    let echo = tcp_echo().await;
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let allow = vec![echo.to_string(), closed.to_string()];
    let (gw, stats, _t, _stop) = gateway(allow, Default::default()).await;
    let client = direct_client();

    // The name travels; the gateway resolves it and checks the address it connects to.
    let mut c = client
        .connect_via(gw, &format!("localhost:{}", echo.port()))
        .await
        .unwrap();
    c.write_all(b"by name").await.unwrap();
    c.finish();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"by name");

    // Each refusal is its own error.
    let name = |port: u16| format!("localhost:{port}");
    match client.connect_via(gw, &name(9)).await {
        Err(Error::NotAllowed { target }) => assert_eq!(target, name(9)),
        r => panic!("expected NotAllowed, got {r:?}"),
    }
    match client.connect_via(gw, &name(closed.port())).await {
        Err(Error::Gateway {
            code: ErrorCode::ConnectionReset,
            timed_out: false,
            ..
        }) => {}
        r => panic!("expected refused, got {r:?}"),
    }
    match client.connect_via(gw, "nonexistent.invalid:443").await {
        Err(Error::Resolve { host, reason }) => {
            assert_eq!(host, "nonexistent.invalid:443");
            assert!(reason.contains("gateway"), "{reason}");
        }
        r => panic!("expected Resolve from the gateway, got {r:?}"),
    }
    match client.connect_via(gw, "bad..name:443").await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("bad..name"), "{m}"),
        r => panic!("expected InvalidArgument, got {r:?}"),
    }
    assert_eq!(stats.refused.load(Ordering::Relaxed), 3);

    // Resolved on the client: the gateway gets an address (and the same answers).
    let local = Client::builder().resolve_on_gateway(false).build().unwrap();
    let mut c = local
        .connect_via(gw, &format!("localhost:{}", echo.port()))
        .await
        .unwrap();
    c.finish();
    c.read_to_end(&mut Vec::new()).await.unwrap();
    match local.connect_via(gw, "nonexistent.invalid:443").await {
        Err(Error::Resolve { reason, .. }) => assert!(!reason.contains("gateway"), "{reason}"),
        r => panic!("expected a local Resolve error, got {r:?}"),
    }
}
