//! `braid bench client` and `loopback`: runs a test over a connection and reports it.

use super::protocol::{CHUNK, MAGIC, echo_replies, echo_requests, monotonic_ns, read_frames};
use super::results::{
    DirResult, EchoResult, Outcome, PathTimeline, PathTotals, print_human, to_json,
};
use super::server::serve;
use super::{ClientArgs, Direction, LoopbackArgs, Measure, SAMPLE, lock};
use crate::connect::{build_client, names_of, resolve};
use crate::error::{Failure, Result};
use crate::json::Json;
use crate::report::{self, PathNames};
use braid::emulator::PathEmulator;
use braid::{Client, Connection, Interface, Monitor, PathId, Server, ServerConfig};
use braid_testkit::stall::Trace;
use braid_testkit::transfer::Sampler;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Runs one test over `conn`.
pub(super) async fn measure(
    conn: Connection,
    m: &Measure,
    names: &PathNames,
    fail: Option<(Duration, Box<dyn FnOnce() + Send>)>,
) -> Result<Outcome> {
    let monitor = conn.monitor();
    let events = conn.events();
    let closed = conn.events();
    let (mut r, mut w) = conn.into_split();
    let mut req = [0u8; 16];
    req[..4].copy_from_slice(MAGIC);
    req[4] = m.direction.code();
    let ms = m.seconds.as_millis().min(u32::MAX as u128) as u32;
    req[8..12].copy_from_slice(&ms.to_be_bytes());
    w.write_all(&req).await?;
    let start = Instant::now();
    let start_monotonic_ns = monotonic_ns();
    let mut timeline = PathTimeline::default();
    // Events and the failure are stamped when they happen.
    let log: Arc<std::sync::Mutex<Vec<(Duration, String)>>> = Arc::default();
    let ev_task = {
        let log = log.clone();
        let names = names.clone();
        let mut events = events;
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let line = report::event(&e, &names);
                lock(&log).push((start.elapsed(), line));
            }
        })
    };
    if let Some((at, f)) = fail {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            f();
            lock(&log).push((start.elapsed(), "first path fails".into()));
        });
    }
    let dir = m.direction;
    let seconds = m.seconds;
    let echo_size = m.request_bytes as usize;
    let echo_every = Duration::from_secs_f64(1.0 / m.rate);
    let echo_sent: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let echo_latency: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let sent_log = echo_sent.clone();
    let writer = tokio::spawn(async move {
        let buf = vec![0xa5u8; CHUNK];
        let mut sent = 0u64;
        if dir == Direction::Echo {
            let until = start + seconds;
            sent = echo_requests(&mut w, echo_size, echo_every, start, until, &sent_log).await?;
        } else if dir.up() {
            let until = Instant::now() + seconds;
            while Instant::now() < until {
                w.write_all(&buf).await?;
                sent += CHUNK as u64;
            }
        }
        w.shutdown().await?;
        Ok::<_, std::io::Error>((sent, w))
    });
    let rx = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::spawn(vec![rx.clone()], SAMPLE, start);
    let mut paths: BTreeMap<PathId, PathTotals> = BTreeMap::new();
    let reader = async {
        if dir == Direction::Echo {
            echo_replies(&mut r, echo_size, start, &echo_sent, &echo_latency, &rx)
                .await
                .map(|n| (n, (0, Trace::default())))
        } else {
            read_frames(&mut r, &rx).await
        }
    };
    tokio::pin!(reader);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let limit = start + seconds + Duration::from_secs(30).max(seconds);
    let report = loop {
        tokio::select! {
            res = &mut reader => break res,
            _ = tick.tick() => {
                collect_paths(&monitor, &mut paths);
                if let Some(s) = monitor.stats() {
                    timeline.record(start.elapsed(), &s);
                }
                if Instant::now() > limit {
                    return Err(Failure::new(format!(
                        "the test did not finish within {:.0} s",
                        (limit - start).as_secs_f64()
                    )));
                }
            }
        }
    };
    collect_paths(&monitor, &mut paths);
    // Our DATA_ACK of the server's DATA_FIN must go out before this process exits.
    wait_closed(closed, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    ev_task.abort();
    let mut evs = std::mem::take(&mut *lock(&log));
    evs.sort_by_key(|(t, _)| *t);
    let samples = sampler.finish().await;
    let (down_bytes, report) = report.map_err(|e| {
        Failure::new(format!(
            "reading from the bench server: {}",
            crate::error::io_msg(&e)
        ))
    })?;
    let (up_sent, _w) = writer
        .await
        .map_err(|e| Failure::new(format!("the sender failed: {e}")))?
        .map_err(|e| Failure::new(format!("sending: {}", crate::error::io_msg(&e))))?;
    let (up_received, up_samples) = report;
    if dir.up() && up_received != up_sent {
        log::warn!("the server received {up_received} B of the {up_sent} B sent");
    }
    Ok(Outcome {
        up: dir.up().then_some(DirResult {
            bytes: up_received,
            samples: up_samples,
        }),
        down: dir.down().then(|| DirResult {
            bytes: down_bytes,
            samples: samples.into_iter().next().unwrap_or_default(),
        }),
        paths,
        events: evs,
        timeline,
        echo: (dir == Direction::Echo).then(|| {
            let sent_at = lock(&echo_sent).clone();
            let lat = lock(&echo_latency);
            EchoResult {
                request_bytes: echo_size as u32,
                latency: (0..sent_at.len()).map(|i| lat.get(i).copied()).collect(),
                sent_at,
            }
        }),
        start_monotonic_ns,
    })
}

/// Waits (at most `limit`) for the connection to close: both DATA_FINs acknowledged.
pub(super) async fn wait_closed(mut events: braid::Events, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        while let Some(e) = events.recv().await {
            if matches!(e, braid::ConnectionEvent::Closed(_)) {
                return;
            }
        }
    })
    .await;
}

pub(super) fn collect_paths(m: &Monitor, paths: &mut BTreeMap<PathId, PathTotals>) {
    let Some(s) = m.stats() else { return };
    for p in s.paths {
        let Some(id) = p.path else { continue };
        let e = paths.entry(id).or_default();
        e.kind = p.kind.map(|k| k.to_string()).unwrap_or_default();
        e.sent = e.sent.max(p.bytes_sent);
        e.received = e.received.max(p.bytes_received);
    }
}

pub(super) async fn client(a: ClientArgs) -> Result<i32> {
    let remote = resolve(&a.remote).await?;
    let (client, ifaces) = build_client(&a.client)?;
    let names = names_of(&ifaces);
    let conn = client.connect(remote).await?;
    // The OS's "interface lost" / "available" events reach the connection, as in `connect`.
    crate::connect::watch_interfaces(&client, remote.is_ipv4(), |m| log::info!("{m}"));
    let o = measure(conn, &a.measure, &names, None).await?;
    let policy = braid::ServiceType::from(a.client.policy).to_string();
    if a.measure.json {
        let setup = Json::obj().with(
            "interfaces",
            ifaces
                .iter()
                .map(|(s, _)| format!("{}:{}", s.name, s.kind))
                .collect::<Vec<_>>(),
        );
        println!(
            "{}",
            to_json(&remote.to_string(), &policy, &a.measure, &o, setup).to_string_pretty()
        );
    } else {
        print_human(
            &format!(
                "braid bench: {remote}, policy {policy}, direction {}, {:.1} s",
                a.measure.direction.as_str(),
                a.measure.seconds.as_secs_f64()
            ),
            &o,
        );
    }
    Ok(0)
}

pub(super) async fn loopback(a: LoopbackArgs) -> Result<i32> {
    let lo: IpAddr = [127, 0, 0, 1].into();
    let mut cfg = ServerConfig::default();
    cfg.connection.checksum = a.dss_checksum;
    let srv = Server::bind((lo, 0).into(), cfg)?;
    let addr = srv.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = srv.accept().await {
            tokio::spawn(async move {
                if let Err(e) = serve(conn).await {
                    log::warn!("bench server: {}", crate::error::io_msg(&e));
                }
            });
        }
    });
    let mut emus = Vec::new();
    for p in &a.emulate {
        let e = PathEmulator::start((lo, 0).into(), addr, p.link(), p.link()).await?;
        emus.push((*p, e));
    }
    let mut b = Client::builder()
        .service(a.policy.into())
        .dss_checksum(a.dss_checksum);
    for (p, e) in &emus {
        b = b.interface(
            Interface::new(p.kind())
                .with_local_addr(lo)
                .with_via(e.local_addr()),
        );
    }
    let client = b.build()?;
    let mut names = PathNames::default();
    for (id, i) in client.interfaces() {
        names.0.insert(id, i.label());
    }
    for (id, i) in client.interfaces() {
        if i.via.is_some() {
            names.0.insert(id, i.kind.to_string());
        }
    }
    let conn = client.connect(addr).await?;
    let emus = Arc::new(emus);
    let fail: Option<(Duration, Box<dyn FnOnce() + Send>)> = a.fail_at.map(|at| {
        let emus = emus.clone();
        let client = client.clone();
        let silent = a.fail_silent;
        let f: Box<dyn FnOnce() + Send> = Box::new(move || {
            if let Some((_, e)) = emus.first() {
                e.set_down(true);
            }
            if !silent && let Some((id, _)) = client.interfaces().first() {
                client.interface_lost(*id);
            }
        });
        (at, f)
    });
    let o = measure(conn, &a.measure, &names, fail).await?;
    let policy = braid::ServiceType::from(a.policy).to_string();
    let emulated: Vec<String> = a
        .emulate
        .iter()
        .map(|p| {
            let l = p.link();
            format!(
                "{}:{}Mbit/s:{}ms",
                p.kind(),
                l.rate_bps / 1_000_000,
                l.delay.as_millis()
            )
        })
        .collect();
    if a.measure.json {
        let mut wire = Vec::new();
        for (p, e) in emus.iter() {
            let (u, d) = e.stats();
            wire.push(
                Json::obj()
                    .with("path", p.kind().to_string())
                    .with("up_bytes", u.delivered.bytes)
                    .with("down_bytes", d.delivered.bytes)
                    .with("dropped_packets", u.dropped().packets + d.dropped().packets),
            );
        }
        let setup = Json::obj()
            .with("emulate", emulated)
            .with("fail_at_s", a.fail_at.map(|d| d.as_secs_f64()))
            .with("fail_silent", a.fail_silent)
            .with("wire", wire);
        println!(
            "{}",
            to_json(&addr.to_string(), &policy, &a.measure, &o, setup).to_string_pretty()
        );
    } else {
        print_human(
            &format!(
                "braid bench loopback: {}, policy {policy}, direction {}, {:.1} s",
                if emulated.is_empty() {
                    "one unlimited path".to_string()
                } else {
                    emulated.join(" + ")
                },
                a.measure.direction.as_str(),
                a.measure.seconds.as_secs_f64()
            ),
            &o,
        );
    }
    Ok(0)
}
