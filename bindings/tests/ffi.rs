//! The exported API driven from Rust, the way the bindings drive it: objects behind `Arc`,
//! async calls awaited from a runtime that is not the library's.

mod common;

use braid_ffi::*;
use common::{client, network};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Writes `data` and reads the echo at the same time; returns what came back.
async fn echo(conn: &Arc<BraidConnection>, data: Vec<u8>) -> Vec<u8> {
    let len = data.len();
    let w = conn.clone();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 * 1024) {
            w.clone().write(chunk.to_vec(), None).await.unwrap();
        }
        w.finish().unwrap();
    });
    let mut got = Vec::with_capacity(len);
    loop {
        let b = conn.clone().read(65536, None).await.unwrap();
        if b.is_empty() {
            break;
        }
        got.extend_from_slice(&b);
    }
    writer.await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_through_gateway_over_two_paths() {
    let net = network().await;
    let c = client(&net, ServiceType::Aggregate);
    assert_eq!(c.interfaces().len(), 2);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    let data = pattern(3 << 20);
    let got = echo(&conn, data.clone()).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echo differs");
    let s = conn.stats();
    assert!(s.mptcp && s.bytes_received >= data.len() as u64, "{s:?}");
    assert!(net.path_delivered_bytes("wifi".into()).unwrap() > 0);
    assert!(net.path_delivered_bytes("cellular".into()).unwrap() > 0);
    assert_eq!(net.relayed_connections(), 1);
    conn.clone().close().await;
    assert!(matches!(
        conn.clone().read(10, None).await,
        Err(BraidError::Closed(_))
    ));
}

/// Kills WiFi under a handover connection, with or without the OS reporting it, and
/// returns the switch event's reason once the transfer after it has completed.
async fn kill_wifi_mid_connection(report_loss: bool) -> SwitchReason {
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    let events = conn.subscribe();
    assert_eq!(echo_round(&conn, 200_000).await, 200_000);
    let wifi = c.interfaces()[0].path_id;
    net.kill_path("wifi".into()).unwrap();
    if report_loss {
        c.interface_lost(wifi);
    }
    let conn2 = conn.clone();
    let traffic = tokio::spawn(async move { echo_round(&conn2, 500_000).await });
    let mut seen = Vec::new();
    let reason = loop {
        let Ok(e) = tokio::time::timeout(Duration::from_secs(20), events.clone().next()).await
        else {
            panic!("no path switch within 20 s; events: {seen:?}");
        };
        let e = e.expect("event stream ended");
        seen.push(e.clone());
        if let BraidEvent::PathSwitched {
            from_path,
            to_path,
            reason,
        } = e
        {
            assert_eq!(from_path, Some(wifi), "{seen:?}");
            assert_ne!(to_path, wifi, "{seen:?}");
            break reason;
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(30), traffic)
        .await
        .expect("transfer stalled after the switch")
        .unwrap();
    assert_eq!(n, 500_000);
    assert!(
        conn.paths()
            .iter()
            .all(|p| p.kind == InterfaceKind::Cellular)
            || !report_loss
    );
    events.close();
    assert_eq!(
        events.clone().next().await,
        None,
        "closed stream still yields"
    );
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_lost_switches_at_once() {
    assert_eq!(
        kill_wifi_mid_connection(true).await,
        SwitchReason::InterfaceLost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_path_death_switches_paths() {
    let r = kill_wifi_mid_connection(false).await;
    assert_ne!(r, SwitchReason::InterfaceLost);
}

/// One write of `len` bytes and its echo; returns the bytes read back.
async fn echo_round(conn: &Arc<BraidConnection>, len: usize) -> usize {
    let w = conn.clone();
    let data = pattern(len);
    let writer = tokio::spawn(async move { w.write(data, None).await });
    let mut got = 0;
    while got < len {
        let b = conn.clone().read(65536, None).await.unwrap();
        assert!(!b.is_empty(), "echo ended early");
        got += b.len();
    }
    writer.await.unwrap().unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refusals_are_typed_errors() {
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let e = c
        .clone()
        .connect_via(net.gateway(), net.refused_target(), None)
        .await
        .err()
        .expect("refused target connected");
    assert!(matches!(e, BraidError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains(&net.refused_target()), "{e}");
    let e = c
        .clone()
        .connect_via(net.gateway(), net.forbidden_target(), None)
        .await
        .err()
        .expect("forbidden target connected");
    assert!(matches!(e, BraidError::NotAllowed(_)), "{e:?}");
}

/// A TCP echo server on loopback.
async fn tcp_echo() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_tokens_takes_the_configured_one() {
    use braid::gateway::{Gateway, GatewayConfig, Tokens};
    let target = tcp_echo().await;
    let gw = Gateway::bind(
        "127.0.0.1:0".parse().unwrap(),
        GatewayConfig {
            allow: vec![target.to_string()],
            tokens: Tokens::new(["the-app-secret-0001"]),
            ..GatewayConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = gw.local_addr().to_string();
    let _gw = gw.spawn();
    let client = |token: Option<&str>, dss_checksum: bool| {
        let config = BraidConfig {
            token: token.map(String::from),
            dss_checksum,
            connect_timeout_ms: 5000,
            ..BraidConfig::default()
        };
        BraidClient::new(Some(config), None).unwrap()
    };
    for token in [None, Some("not-the-secret-0001")] {
        let e = client(token, false)
            .connect_via(addr.clone(), target.to_string(), None)
            .await
            .err()
            .expect("connected without the right token");
        assert!(matches!(e, BraidError::Unauthorized(_)), "{token:?}: {e:?}");
    }
    for dss_checksum in [false, true] {
        let conn = client(Some("the-app-secret-0001"), dss_checksum)
            .connect_via(addr.clone(), target.to_string(), None)
            .await
            .unwrap();
        assert_eq!(echo(&conn, pattern(100_000)).await, pattern(100_000));
    }
    // The token stays out of logs and debug output.
    let c = BraidConfig {
        token: Some("the-app-secret-0001".into()),
        ..BraidConfig::default()
    };
    assert!(!format!("{c:?}").contains("the-app-secret"));
}

#[test]
fn bad_arguments_are_invalid_argument_errors() {
    let bad = BraidConfig {
        interfaces: vec![BraidInterface {
            kind: InterfaceKind::Wifi,
            name: None,
            index: None,
            local_addr: Some("not an ip".into()),
            via: None,
        }],
        ..BraidConfig::default()
    };
    let e = BraidClient::new(Some(bad), None).err().unwrap();
    assert!(matches!(e, BraidError::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("not an ip"));
    let zero = BraidConfig {
        connect_timeout_ms: 0,
        ..BraidConfig::default()
    };
    assert!(matches!(
        BraidClient::new(Some(zero), None).err().unwrap(),
        BraidError::InvalidArgument(_)
    ));
}

struct Collect(std::sync::Mutex<Vec<BraidEvent>>);

impl BraidEventListener for Collect {
    fn on_event(&self, event: BraidEvent) -> Result<(), CallbackError> {
        self.0.lock().unwrap().push(event);
        // A failing listener must not stop the deliveries.
        Err(CallbackError::Failed {
            reason: "listener failure is only logged".into(),
        })
    }
}

struct Sink(std::sync::Mutex<Vec<(LogLevel, String)>>);

impl LogSink for Sink {
    fn log(&self, level: LogLevel, _target: String, message: String) -> Result<(), CallbackError> {
        self.0.lock().unwrap().push((level, message));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_and_log_sink_get_called() {
    let sink = Arc::new(Sink(Default::default()));
    init_logging(LogLevel::Debug, Some(sink.clone())).unwrap();
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    let l = Arc::new(Collect(Default::default()));
    let sub = conn.set_listener(l.clone());
    let wifi = c.interfaces()[0].path_id;
    c.interface_lost(wifi);
    let t0 = Instant::now();
    while !l
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, BraidEvent::PathSwitched { .. }))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            l.0.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sub.cancel();
    let before = l.0.lock().unwrap().len();
    conn.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        l.0.lock().unwrap().len(),
        before,
        "cancelled listener still called"
    );
    init_logging(LogLevel::Off, None).unwrap();
    let lines = sink.0.lock().unwrap();
    assert!(!lines.is_empty(), "no log line reached the sink");
    assert!(lines.iter().all(|(lvl, _)| *lvl != LogLevel::Trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_type_changes_on_a_live_connection() {
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    assert_eq!(echo_round(&conn, 100_000).await, 100_000);
    let cell = c.interfaces()[1].path_id;
    let cell_path = |pred: &dyn Fn(&BraidPath) -> bool| {
        conn.paths()
            .into_iter()
            .find(|p| p.path_id == cell)
            .filter(|p| pred(p))
    };
    let t0 = Instant::now();
    let p = loop {
        if let Some(p) = cell_path(&|p| p.state == "established") {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", conn.paths());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Handover keeps cellular as a backup; aggregate puts data on it.
    assert!(p.backup, "{p:?}");
    conn.set_service_type(ServiceType::Aggregate).unwrap();
    let t0 = Instant::now();
    while cell_path(&|p| !p.backup).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", conn.paths());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(echo_round(&conn, 100_000).await, 100_000);
    conn.abort();
    assert!(matches!(
        conn.set_service_type(ServiceType::Handover),
        Err(BraidError::Closed(_))
    ));
}

/// A listener that takes its time, and may cancel its own subscription from inside a call.
struct Slow {
    calls: std::sync::atomic::AtomicUsize,
    busy: std::sync::atomic::AtomicBool,
    cancel_inside: std::sync::Mutex<Option<Arc<BraidSubscription>>>,
    /// The call during which the listener cancelled itself.
    cancelled_in: std::sync::atomic::AtomicUsize,
}

impl BraidEventListener for Slow {
    fn on_event(&self, _event: BraidEvent) -> Result<(), CallbackError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.busy.store(true, SeqCst);
        let call = self.calls.fetch_add(1, SeqCst) + 1;
        if let Some(sub) = self.cancel_inside.lock().unwrap().take() {
            sub.cancel();
            self.cancelled_in.store(call, SeqCst);
        }
        std::thread::sleep(Duration::from_millis(100));
        self.busy.store(false, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_waits_for_a_call_in_progress_and_may_come_from_the_listener() {
    use std::sync::atomic::Ordering::SeqCst;
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    let slow = || {
        Arc::new(Slow {
            calls: Default::default(),
            busy: Default::default(),
            cancel_inside: Default::default(),
            cancelled_in: Default::default(),
        })
    };
    // Cancelled from outside while a call runs: cancel returns after it, and no call follows.
    let l = slow();
    let sub = conn.set_listener(l.clone());
    let t0 = Instant::now();
    while !l.busy.load(SeqCst) {
        assert!(t0.elapsed() < Duration::from_secs(10), "never called");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::task::spawn_blocking(move || sub.cancel())
        .await
        .unwrap();
    assert!(!l.busy.load(SeqCst), "cancel returned during a call");
    let n = l.calls.load(SeqCst);
    c.interface_lost(c.interfaces()[0].path_id);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(l.calls.load(SeqCst), n, "called after cancel returned");
    // Cancelled by the listener itself, inside a call: no deadlock, no call after it.
    let l = slow();
    let sub = conn.set_listener(l.clone());
    *l.cancel_inside.lock().unwrap() = Some(sub);
    let t0 = Instant::now();
    while l.cancelled_in.load(SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never cancelled itself"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(l.calls.load(SeqCst), l.cancelled_in.load(SeqCst));
    assert!(!l.busy.load(SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_read_ends_at_once_and_loses_no_bytes() {
    let net = network().await;
    let c = client(&net, ServiceType::Handover);
    let conn = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), None)
        .await
        .unwrap();
    // Nothing was written, so this read waits until the token is cancelled.
    let token = BraidCancelToken::new();
    let pending = tokio::spawn(conn.clone().read(1000, Some(token.clone())));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    token.cancel();
    let r = pending.await.unwrap();
    assert!(matches!(r, Err(BraidError::Cancelled)), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    // The connection is still usable and the echo arrives whole.
    assert_eq!(echo_round(&conn, 10_000).await, 10_000);
    // A token cancelled before the call makes it end without waiting.
    let r = c
        .clone()
        .connect_via(net.gateway(), net.echo_target(), Some(token))
        .await;
    assert!(matches!(r, Err(BraidError::Cancelled)), "{:?}", r.err());
    conn.close().await;
}
