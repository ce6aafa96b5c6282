//! `braid bench server`: accepts connections and serves each test.

use super::client::wait_closed;
use super::protocol::{FRAME_REPORT, MAGIC, encode_report, send_frames, sink};
use super::{Direction, SAMPLE, ServerArgs};
use crate::CarrierArg;
use crate::error::{Failure, Result};
use crate::progress::{bytes, mbps};
use braid::{Connection, Server, ServerConfig};
use braid_testkit::transfer::Sampler;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) async fn server(a: ServerArgs) -> Result<i32> {
    let mut cfg = ServerConfig::default();
    cfg.connection.checksum = a.dss_checksum;
    let srv = match a.carrier {
        CarrierArg::Udp => Server::bind(a.listen, cfg)?,
        CarrierArg::Raw => Server::bind_raw(a.listen, cfg, braid::raw::RawConfig::default())?,
    };
    let proto = match a.carrier {
        CarrierArg::Udp => "udp",
        CarrierArg::Raw => "tcp (raw carrier, MPTCP)",
    };
    log::info!("bench server on {proto} {}", srv.local_addr());
    loop {
        let Some(conn) = srv.accept().await else {
            return Err(Failure::new("the server's endpoint stopped"));
        };
        let peer = conn.remote_addr();
        let task = tokio::spawn(async move {
            match serve(conn).await {
                Ok(s) => log::info!("bench {peer}: {s}"),
                Err(e) => log::info!("bench {peer}: failed: {}", crate::error::io_msg(&e)),
            }
        });
        if a.once {
            let _ = task.await;
            return Ok(0);
        }
    }
}

/// Per subflow: what it sent, retransmitted and how often it timed out, and the bytes
/// reinjected on other subflows — what an operator looks at when a test was slow.
pub(super) fn path_summary(s: &braid_proto::ConnectionStats) -> String {
    let mut out = format!("reinjected {}", bytes(s.bytes_reinjected));
    for p in s.paths.iter().chain(&s.closed_paths) {
        let kind = p.kind.map(|k| k.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "; {kind} {}: sent {}, retransmitted {}, {} timeouts, srtt {} ms",
            p.state,
            bytes(p.bytes_sent),
            bytes(p.bytes_retransmitted),
            p.rto_events,
            p.srtt.as_millis()
        ));
    }
    out
}

/// One test, server side. Returns a line for the log.
pub(super) async fn serve(conn: Connection) -> std::io::Result<String> {
    let events = conn.events();
    let (mut r, mut w) = conn.into_split();
    let mut req = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut req))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a bench request");
    if &req[..4] != MAGIC {
        return Err(bad());
    }
    let dir = Direction::from_code(req[4]).ok_or_else(bad)?;
    let ms = u32::from_be_bytes([req[8], req[9], req[10], req[11]]);
    let duration = Duration::from_millis(ms.clamp(1, 3_600_000) as u64);
    let start = Instant::now();
    if dir == Direction::Echo {
        let echoed = tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        wait_closed(events, Duration::from_secs(5)).await;
        return Ok(format!(
            "echo: {} in {:.1}s; {}",
            bytes(echoed),
            start.elapsed().as_secs_f64(),
            path_summary(&w.stats())
        ));
    }
    let rx = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::spawn(vec![rx.clone()], SAMPLE, start);
    let sender = async {
        if dir.down() {
            send_frames(&mut w, start + duration).await
        } else {
            Ok(0)
        }
    };
    let receiver = sink(&mut r, &rx);
    let (sent, received) = tokio::join!(sender, receiver);
    let (sent, received) = (sent?, received?);
    let samples = sampler.finish().await;
    let s = samples.into_iter().next().unwrap_or_default();
    let report = encode_report(received, &s);
    w.write_all(&[FRAME_REPORT]).await?;
    w.write_all(&(report.len() as u32).to_be_bytes()).await?;
    w.write_all(&report).await?;
    w.shutdown().await?;
    // The report must reach the client before this process may exit (`--once`).
    wait_closed(events, Duration::from_secs(5)).await;
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "{}: received {} ({:.1} Mbit/s), sent {} in {:.1}s; {}",
        dir.as_str(),
        bytes(received),
        mbps(received, duration.as_secs_f64()),
        bytes(sent),
        secs,
        path_summary(&w.stats())
    ))
}
