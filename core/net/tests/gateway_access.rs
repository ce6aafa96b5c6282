//! Who may use a gateway and how long a connection may hold a slot: client tokens, the
//! allowlist's special ranges, per-source Convert-phase limits, the Convert deadlines on both
//! sides, and the idle timeout of relayed connections.

mod common;

use braid::convert::{self, ErrorCode};
use braid::emulator::PathEmulator;
use braid::gateway::{GatewayConfig, Tokens};
use braid::{Client, Error, Interface, InterfaceKind, Server, ServerConfig};
use braid_proto::wire::{
    self, MpCapable, MpCapableFlags, MpCapableKeys, MptcpOption, SeqNum, TcpFlags, TcpOptions,
    TcpRepr,
};
use common::*;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

const SECRETS: [&str; 2] = ["alpha-secret-0001-xyz", "beta-secret-0002-xyz"];

fn client_from(ip: &str) -> braid::ClientBuilder {
    let ip: IpAddr = ip.parse().unwrap();
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .interface(Interface::new(InterfaceKind::Wired).with_local_addr(ip))
}

fn with_tokens() -> GatewayConfig {
    GatewayConfig {
        tokens: Tokens::new(SECRETS),
        ..Default::default()
    }
}

async fn echo_once(c: &mut braid::Connection, msg: &[u8]) -> Vec<u8> {
    c.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
        .await
        .expect("echo timed out")
        .unwrap();
    back
}

/// Reads the gateway's whole Convert answer on a connection opened without `connect_via`.
async fn answer(c: &mut braid::Connection) -> convert::Message {
    let mut header = [0u8; convert::HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut header))
        .await
        .expect("no answer")
        .unwrap();
    let len = convert::message_len(&header).unwrap();
    let mut msg = vec![0u8; len];
    msg[..4].copy_from_slice(&header);
    c.read_exact(&mut msg[4..]).await.unwrap();
    convert::decode(&msg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_missing_wrong_and_right() {
    init_log();
    let echo = tcp_echo().await;
    let (gw, stats, _t, _stop) = gateway(vec![echo.to_string()], with_tokens()).await;

    let none = client_from("127.0.0.1").build().unwrap();
    match none.connect_via(gw, &echo.to_string()).await {
        Err(Error::TokenRequired { gateway }) => assert_eq!(gateway, gw),
        r => panic!("expected TokenRequired, got {r:?}"),
    }
    let wrong = client_from("127.0.0.1")
        .token("gamma-secret-0003-xyz")
        .build()
        .unwrap();
    match wrong.connect_via(gw, &echo.to_string()).await {
        Err(Error::TokenRejected { gateway }) => assert_eq!(gateway, gw),
        r => panic!("expected TokenRejected, got {r:?}"),
    }
    // Either secret of the file works.
    for s in SECRETS {
        let right = client_from("127.0.0.1").token(s).build().unwrap();
        let mut c = right.connect_via(gw, &echo.to_string()).await.unwrap();
        assert_eq!(echo_once(&mut c, b"authenticated").await, b"authenticated");
    }
    assert_eq!(stats.token_missing.load(Ordering::Relaxed), 1);
    assert_eq!(stats.token_rejected.load(Ordering::Relaxed), 1);
    assert_eq!(stats.relayed.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_worth_nothing_on_another_connection() {
    init_log();
    let echo = tcp_echo().await;
    let (gw, stats, _t, _stop) = gateway(vec![echo.to_string()], with_tokens()).await;
    let client = client_from("127.0.0.1").build().unwrap();
    // Two connections; the token made for the first is replayed on the second.
    let mut a = client.connect(gw).await.unwrap();
    let mut b = client.connect(gw).await.unwrap();
    let (ak, ag) = a.mptcp_keys().expect("MPTCP keys of a");
    let (bk, bg) = b.mptcp_keys().expect("MPTCP keys of b");
    assert_ne!((ak, ag), (bk, bg));
    let tok_a = convert::token_mac(SECRETS[0].as_bytes(), ak, ag);
    b.write_all(&convert::encode_connect_with_token(echo, Some(&tok_a)))
        .await
        .unwrap();
    let m = answer(&mut b).await;
    assert_eq!(
        m.error,
        Some((ErrorCode::NotAuthorized, convert::TLV_TOKEN)),
        "a replayed token must be refused"
    );
    // The same token on its own connection is fine.
    a.write_all(&convert::encode_connect_with_token(echo, Some(&tok_a)))
        .await
        .unwrap();
    let m = answer(&mut a).await;
    assert_eq!(m.error, None);
    assert_eq!(echo_once(&mut a, b"mine").await, b"mine");
    assert_eq!(stats.token_rejected.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_does_not_reach_loopback_but_explicit_does() {
    init_log();
    let echo = tcp_echo().await;
    let client = client_from("127.0.0.1").build().unwrap();
    for wide in ["*:*", "0.0.0.0/0:*"] {
        let (gw, _s, _t, _stop) = gateway(vec![wide.into()], Default::default()).await;
        match client.connect_via(gw, &echo.to_string()).await {
            Err(Error::NotAllowed { target }) => assert_eq!(target, echo.to_string()),
            r => panic!("{wide} reached loopback: {r:?}"),
        }
    }
    for explicit in [
        format!("127.0.0.1:{}", echo.port()),
        "127.0.0.0/8:*".to_string(),
    ] {
        let (gw, _s, _t, _stop) = gateway(vec![explicit.clone()], Default::default()).await;
        let mut c = client
            .connect_via(gw, &echo.to_string())
            .await
            .unwrap_or_else(|e| panic!("{explicit}: {e}"));
        assert_eq!(echo_once(&mut c, b"loop").await, b"loop");
    }
}

/// Opens `n` connections from `ip` that never send a Convert message.
async fn idle_handshakes(gw: SocketAddr, ip: &str, n: usize) -> (Client, Vec<braid::Connection>) {
    let client = client_from(ip).build().unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(c) = client.connect(gw).await {
            held.push(c);
        }
    }
    (client, held)
}

/// Five honest connects from another source while the slots are held; how many echo in time.
async fn honest_connects(gw: SocketAddr, echo: SocketAddr) -> (usize, Vec<Duration>) {
    let client = client_from("127.0.0.2")
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut ok = 0;
    let mut took = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3), async {
            let mut c = client.connect_via(gw, &echo.to_string()).await?;
            c.write_all(b"honest").await?;
            let mut b = [0u8; 6];
            c.read_exact(&mut b).await?;
            Ok::<_, Error>(b == *b"honest")
        })
        .await;
        match r {
            Ok(Ok(true)) => {
                ok += 1;
                took.push(t.elapsed());
            }
            other => eprintln!("honest connect {i}: {other:?}"),
        }
    }
    (ok, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_handshakes_from_one_source_do_not_lock_others_out() {
    init_log();
    let echo = tcp_echo().await;
    let allow = vec![echo.to_string()];
    let (gw, stats, _t, _stop) = gateway(allow.clone(), Default::default()).await;
    let start = Instant::now();
    let (_c, held) = idle_handshakes(gw, "127.0.0.1", 130).await;
    eprintln!("130 idle handshakes took {:?}", start.elapsed());
    assert!(
        held.len() >= 120,
        "only {} handshakes completed",
        held.len()
    );
    let (ok, took) = honest_connects(gw, echo).await;
    eprintln!(
        "with the per-source limit: {ok}/5 honest connects, {took:?}; {} refused by source",
        stats.source_limited.load(Ordering::Relaxed)
    );
    assert!(ok >= 4, "only {ok} of 5 honest connects succeeded");
    assert!(stats.source_limited.load(Ordering::Relaxed) >= 100);
    drop(held);

    // Control: without a per-source limit the same attack locks the honest client out, so
    // the numbers above are the limit's doing.
    let cfg = GatewayConfig {
        max_half_open_per_source: 1000,
        ..Default::default()
    };
    let (gw, _stats, _t2, _stop2) = gateway(allow, cfg).await;
    let (_c, held) = idle_handshakes(gw, "127.0.0.1", 130).await;
    let (ok, _) = honest_connects(gw, echo).await;
    eprintln!("without it: {ok}/5 honest connects");
    assert!(ok <= 1, "the control attack did not bite ({ok}/5)");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_no_convert_message_is_reset_at_the_deadline() {
    init_log();
    let echo = tcp_echo().await;
    let cfg = GatewayConfig {
        handshake_timeout: Duration::from_millis(800),
        ..Default::default()
    };
    let (gw, stats, _t, _stop) = gateway(vec![echo.to_string()], cfg).await;
    let client = client_from("127.0.0.1").build().unwrap();
    let mut c = client.connect(gw).await.unwrap();
    let start = Instant::now();
    // Half a header, then nothing.
    c.write_all(&[1, 6]).await.unwrap();
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
        .await
        .expect("the gateway never gave up on the silent client");
    let took = start.elapsed();
    eprintln!("reset after {took:?}: {r:?}");
    assert!(r.is_err(), "expected a reset, got {r:?}");
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(stats.convert_timeouts.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_on_a_gateway_that_never_answers_convert() {
    init_log();
    // A Braid server that accepts and reads but never answers: not a gateway.
    let srv = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let addr = srv.local_addr();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(c) = srv.accept().await {
            held.push(c);
        }
    });
    let client = client_from("127.0.0.1")
        .convert_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Instant::now();
    let r = client.connect_via(addr, "192.0.2.1:80").await;
    let took = start.elapsed();
    match r {
        Err(Error::ConvertTimeout { gateway, after }) => {
            assert_eq!(gateway, addr);
            assert_eq!(after, Duration::from_secs(1));
        }
        r => panic!("expected ConvertTimeout, got {r:?}"),
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A TCP-in-UDP segment with random sequence and acknowledgement numbers: the kind of
/// datagram an off-path attacker who knows the 4-tuple can send.
fn forged_segment(x: &mut u64) -> Vec<u8> {
    let mut next = || {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    };
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq: SeqNum(next() as u32),
        ack: SeqNum(next() as u32),
        flags: TcpFlags::ACK,
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut buf = vec![0u8; 256];
    let n = wire::emit_udp_payload(&repr, &mut buf).unwrap();
    buf.truncate(n);
    buf.extend((0..64).map(|_| next() as u8));
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_reset_even_when_junk_keeps_coming() {
    init_log();
    let echo = tcp_echo().await;
    let idle = Duration::from_millis(1500);
    let cfg = GatewayConfig {
        idle_timeout: idle,
        ..Default::default()
    };
    let (gw, stats, _t, _stop) = gateway(vec![echo.to_string()], cfg).await;
    let emu = PathEmulator::start("127.0.0.1:0".parse().unwrap(), gw, wifi(), wifi())
        .await
        .unwrap();
    let client = Client::builder()
        .interface(
            Interface::new(InterfaceKind::Wifi)
                .with_local_addr("127.0.0.1".parse().unwrap())
                .with_via(emu.local_addr()),
        )
        .build()
        .unwrap();
    let mut c = client.connect_via(gw, &echo.to_string()).await.unwrap();

    // A client that talks now and then outlives the timeout several times over.
    let start = Instant::now();
    while start.elapsed() < idle * 3 {
        assert_eq!(echo_once(&mut c, b"ping").await, b"ping");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(stats.idle_timeouts.load(Ordering::Relaxed), 0);

    // The client goes silent (its path is cut); forged datagrams on its 4-tuple keep coming.
    emu.set_down(true);
    let silent = Instant::now();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut injected = 0;
    while stats.idle_timeouts.load(Ordering::Relaxed) == 0 && silent.elapsed() < idle * 4 {
        injected += emu.inject_up(&forged_segment(&mut x));
        let junk: Vec<u8> = (0..40).map(|i| (x >> (i % 8)) as u8).collect();
        injected += emu.inject_up(&junk);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = silent.elapsed();
    eprintln!("idle reset after {took:?} of silence, {injected} forged datagrams meanwhile");
    assert!(injected > 50, "the junk did not go out ({injected})");
    assert_eq!(
        stats.idle_timeouts.load(Ordering::Relaxed),
        1,
        "junk kept a silent connection alive for {took:?}"
    );
    assert!(took >= idle - Duration::from_millis(400), "{took:?}");
}

/// The MP_CAPABLE flags of a TCP-in-UDP datagram.
fn mp_capable_flags(d: &[u8], src: u16, dst: u16) -> MpCapableFlags {
    let (repr, _) = wire::parse_udp_payload(d, src, dst).unwrap();
    repr.options
        .mptcp_iter()
        .find_map(|o| match o {
            MptcpOption::MpCapable(m) => Some(m.flags),
            _ => None,
        })
        .expect("no MP_CAPABLE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dss_checksum_switches_ask_for_checksums() {
    init_log();
    // The client's SYN says "checksums required" (flag A) only when asked to.
    for on in [false, true] {
        let fake = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = fake.local_addr().unwrap();
        let client = client_from("127.0.0.1")
            .connect_timeout(Duration::from_millis(500))
            .dss_checksum(on)
            .build()
            .unwrap();
        let t = tokio::spawn(async move { client.connect(addr).await.map(|_| ()) });
        let mut b = [0u8; 512];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), fake.recv_from(&mut b))
            .await
            .unwrap()
            .unwrap();
        let flags = mp_capable_flags(&b[..n], from.port(), addr.port());
        assert_eq!(flags.contains(MpCapableFlags::A), on, "client, {on}");
        assert!(t.await.unwrap().is_err());
    }
    // The gateway's SYN/ACK asks for them when it is told to, whatever the client said.
    for on in [false, true] {
        let cfg = GatewayConfig {
            dss_checksum: on,
            ..Default::default()
        };
        let (gw, _s, _t, _stop) = gateway(vec![], cfg).await;
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = s.local_addr().unwrap().port();
        let mut options = TcpOptions {
            mss: Some(1460),
            ..Default::default()
        };
        options
            .push_mptcp(MpCapable {
                version: 1,
                flags: MpCapableFlags::H,
                keys: MpCapableKeys::Syn,
            })
            .unwrap();
        let syn = TcpRepr {
            src_port: port,
            dst_port: gw.port(),
            seq: SeqNum(1000),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 65535,
            urgent: 0,
            options,
        };
        let mut buf = vec![0u8; 128];
        let n = wire::emit_udp_payload(&syn, &mut buf).unwrap();
        s.send_to(&buf[..n], gw).await.unwrap();
        let mut b = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut b))
            .await
            .unwrap()
            .unwrap();
        let flags = mp_capable_flags(&b[..n], gw.port(), port);
        assert_eq!(flags.contains(MpCapableFlags::A), on, "gateway, {on}");
    }
}
