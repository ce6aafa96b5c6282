//! Operating a gateway: `--metrics` answers real HTTP scrapes with counters that move, and
//! SIGTERM drains (open transfers finish intact, new connections are refused, exit 0; what
//! is left at `--drain-timeout` is closed and counted).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// The metrics address the gateway logged.
fn metrics_addr(gw: &GatewayProc) -> SocketAddr {
    let l = gw
        .wait_line("metrics on http://", LIMIT)
        .expect("the gateway never said where its metrics are");
    let rest = l.split("metrics on http://").nth(1).unwrap();
    rest.trim_end_matches("/metrics").trim().parse().unwrap()
}

/// One scrape with curl (a real client), when this machine has it.
fn scrape_curl(at: SocketAddr) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{at}/metrics"))
        .output()
        .ok()?;
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    Some(text(&out.stdout))
}

#[test]
fn metrics_answer_scrapes_and_move_after_a_relayed_connection() {
    let echo = tcp_echo();
    let gw = gateway_with(&[echo.to_string()], &["--metrics", "127.0.0.1:0"]);
    let at = metrics_addr(&gw);

    let (status, before) = scrape_raw(at, "GET /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for family in [
        "# TYPE braid_gateway_connections gauge",
        "# TYPE braid_gateway_subflows gauge",
        "# TYPE braid_gateway_bytes_total counter",
        "# TYPE braid_gateway_refusals_total counter",
        "# TYPE braid_gateway_joins_refused_total counter",
        "# TYPE braid_gateway_handshake_seconds histogram",
        "# TYPE braid_gateway_convert_seconds histogram",
        "# TYPE braid_gateway_worker_connections gauge",
    ] {
        assert!(before.contains(family), "missing {family:?} in:\n{before}");
    }
    assert_eq!(value(&before, "braid_gateway_relayed_total"), 0.0);
    assert_eq!(value(&before, "braid_gateway_convert_seconds_count"), 0.0);

    // One relayed connection, one refused (a destination outside the allowlist).
    let payload = b"hello, metrics\n";
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            &echo.to_string(),
            "--connect-timeout",
            "5",
        ],
        payload,
        LIMIT,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(out.stdout, payload);
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            "127.0.0.1:9",
            "--connect-timeout",
            "5",
        ],
        b"x",
        LIMIT,
    );
    assert!(!out.status.success());

    // The relayed connection's byte counts land when it ends: poll until they do.
    let deadline = Instant::now() + LIMIT;
    let after = loop {
        let body = scrape_curl(at).unwrap_or_else(|| scrape_raw(at, "GET /metrics HTTP/1.1").1);
        if value(&body, "braid_gateway_bytes_total{direction=\"down\"}") > 0.0 {
            break body;
        }
        assert!(Instant::now() < deadline, "bytes never counted:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let n = payload.len() as f64;
    assert_eq!(value(&after, "braid_gateway_relayed_total"), 1.0);
    assert_eq!(value(&after, "braid_gateway_accepted_total"), 2.0);
    assert_eq!(value(&after, "braid_gateway_refused_total"), 1.0);
    assert_eq!(
        value(
            &after,
            "braid_gateway_refusals_total{code=\"not_authorized\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&after, "braid_gateway_bytes_total{direction=\"up\"}"),
        n
    );
    assert_eq!(
        value(&after, "braid_gateway_bytes_total{direction=\"down\"}"),
        n
    );
    assert_eq!(value(&after, "braid_gateway_convert_seconds_count"), 1.0);
    assert_eq!(value(&after, "braid_gateway_handshake_seconds_count"), 2.0);
    assert_eq!(
        value(
            &after,
            "braid_gateway_handshake_seconds_bucket{le=\"+Inf\"}"
        ),
        2.0
    );
    assert!(
        value(
            &after,
            "braid_gateway_worker_datagrams_total{worker=\"0\",direction=\"in\"}"
        ) > 0.0
    );
    assert_eq!(value(&after, "braid_gateway_draining"), 0.0);

    // Not a scrape: clear answers, no crash.
    assert_eq!(
        scrape_raw(at, "GET /nope HTTP/1.1").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        scrape_raw(at, "DELETE /metrics HTTP/1.1").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(scrape_raw(at, "GARBAGE").0, "HTTP/1.1 400 Bad Request");
    assert_eq!(scrape_raw(at, "GET /metrics HTTP/1.1").0, "HTTP/1.1 200 OK");
}

fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
    let r = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `braid connect` through `gw` to `target`, stdin and stdout piped.
fn connect_child(gw: &GatewayProc, target: SocketAddr) -> Child {
    braid()
        .args([
            "connect",
            &gw.addr.to_string(),
            "--target",
            &target.to_string(),
        ])
        .args(["--connect-timeout", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn braid connect")
}

/// Bytes that differ from one chunk to the next.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
}

#[test]
fn sigterm_drains_a_running_transfer_and_refuses_new_connections() {
    let echo = tcp_echo();
    let mut gw = gateway_with(
        &[echo.to_string()],
        &["--metrics", "127.0.0.1:0", "--drain-timeout", "60"],
    );
    let at = metrics_addr(&gw);
    let data = pattern(3 << 20);
    let mut client = connect_child(&gw, echo);
    let mut stdin = client.stdin.take().unwrap();
    // Read as it arrives, as a real consumer does.
    let mut stdout = client.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let sent = data.clone();
    // About 4 s of sending: the drain begins in the middle of it.
    let writer = std::thread::spawn(move || {
        for chunk in sent.chunks(48 * 1024) {
            stdin.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(60));
        }
    });
    let deadline = Instant::now() + LIMIT;
    while value(
        &scrape_raw(at, "GET /metrics HTTP/1.1").1,
        "braid_gateway_connections{state=\"relaying\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the transfer never started relaying"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&gw.child);
    gw.wait_line("draining: refusing new connections; 1 open", LIMIT)
        .expect("no drain log line");
    assert!(
        !writer.is_finished(),
        "the transfer ended before the drain began"
    );

    // A new connection during the drain is refused.
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            &echo.to_string(),
            "--connect-timeout",
            "5",
        ],
        b"late\n",
        LIMIT,
    );
    assert!(
        !out.status.success(),
        "a connection got through a draining gateway"
    );
    let scraped = scrape_raw(at, "GET /metrics HTTP/1.1").1;
    assert_eq!(value(&scraped, "braid_gateway_draining"), 1.0);
    assert_eq!(
        value(
            &scraped,
            "braid_gateway_refusal_causes_total{cause=\"draining\"}"
        ),
        1.0
    );

    // The running transfer completes intact.
    writer.join().unwrap();
    let out = wait_limited(client, LIMIT);
    assert!(out.status.success(), "client: {}", text(&out.stderr));
    let echoed = reader.join().unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echoed bytes differ");

    // Then the gateway exits 0, having closed nothing.
    let status = wait_exit(&mut gw.child, LIMIT);
    assert!(status.success(), "gateway exit {status:?}");
    gw.wait_line("drained: 1 connections open at SIGTERM, 0 closed", LIMIT)
        .expect("no drained log line");
}

#[test]
fn a_drain_closes_what_is_left_at_its_timeout() {
    let echo = tcp_echo();
    let mut gw = gateway_with(&[echo.to_string()], &["--drain-timeout", "1"]);
    // A connection that would stay open forever: stdin never closes.
    let mut client = connect_child(&gw, echo);
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"ping\n").unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut echoed = [0u8; 5];
    stdout.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping\n");

    let began = Instant::now();
    sigterm(&gw.child);
    let status = wait_exit(&mut gw.child, LIMIT);
    assert!(status.success(), "gateway exit {status:?}");
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "left before the drain timeout"
    );
    gw.wait_line("drained: 1 connections open at SIGTERM, 1 closed", LIMIT)
        .expect("no drained log line");
    // The client learns its connection is gone (reset), it is not left hanging.
    let out = wait_limited(client, LIMIT);
    assert!(
        !out.status.success(),
        "the client did not see its connection closed"
    );
    drop(stdin);
}

#[test]
fn workers_share_the_listening_port_and_each_answers_at_its_own_address() {
    let echo = tcp_echo();
    let own = [free_udp_port(), free_udp_port()];
    let gw = gateway_with(
        &[echo.to_string()],
        &[
            "--workers",
            "2",
            "--metrics",
            "127.0.0.1:0",
            "--announce",
            &format!("127.0.0.1:{}", own[0]),
            "--announce",
            &format!("127.0.0.1:{}", own[1]),
        ],
    );
    let at = metrics_addr(&gw);
    let through = |gateway: SocketAddr, i: usize| {
        let payload = format!("connection {i}\n");
        let out = run(
            &[
                "connect",
                &gateway.to_string(),
                "--target",
                &echo.to_string(),
                "--connect-timeout",
                "5",
            ],
            payload.as_bytes(),
            LIMIT,
        );
        assert!(out.status.success(), "{i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), payload);
    };
    let served = |body: &str, w: usize| {
        value(
            body,
            &format!("braid_gateway_worker_datagrams_total{{worker=\"{w}\",direction=\"in\"}}"),
        )
    };
    // Each connection comes from a new port: the kernel hashes them over both workers.
    for i in 0..16 {
        through(gw.addr, i);
    }
    let spread = scrape_raw(at, "GET /metrics HTTP/1.1").1;
    // At least one on each worker (all 16 on one: 1 in 2^15).
    assert!(
        served(&spread, 0) > 0.0 && served(&spread, 1) > 0.0,
        "{spread}"
    );
    // And each worker answers at its own address.
    for (w, port) in own.iter().enumerate() {
        let before = served(&scrape_raw(at, "GET /metrics HTTP/1.1").1, w);
        through(SocketAddr::from(([127, 0, 0, 1], *port)), 100 + w);
        let after = scrape_raw(at, "GET /metrics HTTP/1.1").1;
        assert!(
            served(&after, w) > before,
            "worker {w} did not serve its own address"
        );
    }
    let body = scrape_raw(at, "GET /metrics HTTP/1.1").1;
    assert_eq!(value(&body, "braid_gateway_accepted_total"), 18.0);
}

/// Without announced addresses, a join lands on the worker owning its connection only one
/// time in two: the others are refused, and counted.
#[test]
fn joins_on_the_wrong_worker_are_refused_and_counted() {
    let echo = tcp_echo();
    let gw = gateway_with(
        &[echo.to_string()],
        &["--workers", "2", "--metrics", "127.0.0.1:0"],
    );
    let at = metrics_addr(&gw);
    let subflows: usize = echoed_two_path_connections(gw.addr, echo)
        .iter()
        .map(|c| c.paths.len())
        .sum();
    let body = scrape_raw(at, "GET /metrics HTTP/1.1").1;
    let refused = value(&body, "braid_gateway_joins_refused_total");
    // 12 joins, each refused with probability 1/2: none refused is 1 in 4096.
    assert!(refused >= 1.0, "no join refused:\n{body}");
    // The ones that landed right made second subflows.
    assert!(
        subflows > 12,
        "no join succeeded ({subflows} subflows for 12 connections)"
    );
    // Every one arrived at the shared address: the only one without --announce.
    assert_eq!(
        value(&body, "braid_gateway_joins_refused_shared_total"),
        refused
    );
}

/// With announced addresses, every join goes to the worker's own address (the C flag keeps
/// clients off the shared one): each connection's joins, one from each of its two paths,
/// end at one worker's announced port, and no join is refused.
#[test]
fn with_announce_joins_from_every_path_reach_the_announced_port_and_none_is_refused() {
    let echo = tcp_echo();
    let own = [free_udp_port(), free_udp_port()];
    let gw = gateway_with(
        &[echo.to_string()],
        &[
            "--workers",
            "2",
            "--metrics",
            "127.0.0.1:0",
            "--announce",
            &format!("127.0.0.1:{}", own[0]),
            "--announce",
            &format!("127.0.0.1:{}", own[1]),
        ],
    );
    let at = metrics_addr(&gw);
    let remotes: Vec<Vec<_>> = echoed_two_path_connections(gw.addr, echo)
        .iter()
        .map(|st| {
            st.paths
                .iter()
                .map(|p| (p.local.unwrap(), p.remote.unwrap()))
                .collect()
        })
        .collect();
    for (i, paths) in remotes.iter().enumerate() {
        let joins: Vec<_> = paths.iter().filter(|(_, r)| *r != gw.addr).collect();
        assert_eq!(joins.len(), 2, "connection {i}: {paths:?}");
        let port = joins[0].1.port();
        assert!(own.contains(&port), "connection {i}: {paths:?}");
        assert!(
            joins.iter().all(|(_, r)| r.port() == port),
            "connection {i}: joins on two workers: {paths:?}"
        );
        let mut from: Vec<_> = joins.iter().map(|(l, _)| l.ip()).collect();
        from.sort();
        assert_eq!(
            from,
            vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from([127, 0, 0, 2])
            ],
            "connection {i}: a join from each path: {paths:?}"
        );
    }
    let body = scrape_raw(at, "GET /metrics HTTP/1.1").1;
    assert_eq!(value(&body, "braid_gateway_joins_refused_total"), 0.0);
    assert_eq!(
        value(&body, "braid_gateway_joins_refused_shared_total"),
        0.0
    );
}

/// Twelve connections through the gateway from a client with two paths on two loopback
/// addresses (so a join comes from another 4-tuple), each checked with an echo; their stats
/// once joins were answered (or refused: a few round trips on loopback).
fn echoed_two_path_connections(gw: SocketAddr, echo: SocketAddr) -> Vec<braid::ConnectionStats> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let client = braid::Client::builder()
            .service(braid::ServiceType::Aggregate)
            .interface(
                braid::Interface::new(braid::InterfaceKind::Wifi)
                    .with_local_addr([127, 0, 0, 1].into()),
            )
            .interface(
                braid::Interface::new(braid::InterfaceKind::Cellular)
                    .with_local_addr([127, 0, 0, 2].into()),
            )
            .build()
            .unwrap();
        let mut held = Vec::new();
        for i in 0..12u8 {
            let mut conn = client.connect_via(gw, &echo.to_string()).await.unwrap();
            conn.write_all(&[i; 100]).await.unwrap();
            let mut back = [0u8; 100];
            conn.read_exact(&mut back).await.unwrap();
            assert_eq!(back, [i; 100], "connection {i}: echo differs");
            held.push(conn);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        held.iter().map(|c| c.stats()).collect()
    })
}
