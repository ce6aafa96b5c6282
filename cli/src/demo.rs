//! `braid demo`: the whole story in one process on loopback, no root, no network.
//!
//! A TCP server (source and sink), a Braid gateway that allows only it, two path emulators
//! (WiFi 40 Mbit/s 10 ms one-way, cellular 20 Mbit/s 30 ms) and a client with one interface
//! through each. Data flows both ways; a third of the way in WiFi fails (the emulated link
//! goes down and, by default, the client is told the interface is lost, as an OS would).
//! The demo shows per-path throughput live, the events, a summary and an SVG timeline.

use crate::error::{Failure, Result};
use crate::progress::{self, Display, bar, bytes, mbps};
use crate::report::{self, PathNames};
use crate::svg::{Chart, Marker, Series};
use crate::{PolicyArg, parse_secs};
use braid::emulator::PathEmulator;
use braid::gateway::{Gateway, GatewayConfig};
use braid::{Client, ConnectionEvent, Interface, InterfaceKind};
use braid_proto::sim::link::LinkConfig;
use braid_testkit::transfer::{self as stream, Amount, Outcome, Sampler};
use clap::{Args, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const WIFI_BPS: u64 = 40_000_000;
const CELL_BPS: u64 = 20_000_000;
const WIFI_DELAY: Duration = Duration::from_millis(10);
const CELL_DELAY: Duration = Duration::from_millis(30);
const BUCKET: Duration = Duration::from_millis(100);
/// Stream seeds: upload (client to server) and download.
const SEED_UP: u64 = 1;
const SEED_DOWN: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailureMode {
    /// The link dies and the client is told the interface is gone (like an OS would).
    Event,
    /// The link dies silently: the connection has to notice by itself.
    Silent,
    /// No failure (a baseline).
    None,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Length of the transfer (each way, at the same time).
    #[arg(long, value_name = "SECS", default_value = "12", value_parser = parse_secs)]
    pub seconds: Duration,
    /// Send this many bytes each way instead of sending for --seconds.
    #[arg(long, value_name = "N")]
    pub bytes: Option<u64>,
    /// Service type.
    #[arg(long, value_enum, default_value_t = PolicyArg::Handover)]
    pub policy: PolicyArg,
    /// How WiFi fails a third of the way in.
    #[arg(long, value_enum, default_value_t = FailureMode::Event)]
    pub failure: FailureMode,
    /// Where to write the SVG timeline (default: braid-demo.svg here, else in the temp dir).
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Plain progress lines instead of a refreshing one.
    #[arg(long)]
    pub no_live: bool,
}

fn link(rate: u64, delay: Duration) -> LinkConfig {
    LinkConfig::new(rate, delay)
        .with_queue_bdp(1.0)
        .with_overhead(28)
}

/// What the TCP server saw.
struct ServerSide {
    received: Outcome,
    sent: Outcome,
}

/// Cumulative wire bytes per path and direction at one instant.
#[derive(Clone, Copy, Debug, Default)]
struct Tick {
    t: Duration,
    wifi: (u64, u64),
    cell: (u64, u64),
}

impl Tick {
    fn wifi_total(&self) -> u64 {
        self.wifi.0 + self.wifi.1
    }
    fn cell_total(&self) -> u64 {
        self.cell.0 + self.cell.1
    }
}

fn wire(e: &PathEmulator) -> (u64, u64) {
    let (up, down) = e.stats();
    (up.delivered.bytes, down.delivered.bytes)
}

/// A TCP server: on its one connection, sends the download and sinks the upload.
async fn tcp_server(
    amount_for: impl Fn() -> Amount + Send + Sync + 'static,
    rx_count: Arc<AtomicU64>,
    done: oneshot::Sender<std::io::Result<ServerSide>>,
) -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let r = async {
            let (s, _) = l.accept().await?;
            let (mut r, mut w) = s.into_split();
            let amount = amount_for();
            let writer = tokio::spawn(async move { stream::send(&mut w, SEED_DOWN, amount).await });
            let received = stream::recv(&mut r, Some(&rx_count), true).await?;
            let sent = writer.await.map_err(std::io::Error::other)??;
            Ok(ServerSide { received, sent })
        }
        .await;
        let _ = done.send(r);
    });
    Ok(addr)
}

pub async fn run(a: DemoArgs) -> Result<i32> {
    if a.bytes == Some(0) {
        return Err(Failure::usage("--bytes must be at least 1"));
    }
    let mut out = Display::new(!a.no_live);
    let lo: IpAddr = [127, 0, 0, 1].into();
    let any: SocketAddr = (lo, 0).into();

    // The pieces, all on loopback.
    let up_rx = Arc::new(AtomicU64::new(0));
    let down_rx = Arc::new(AtomicU64::new(0));
    let (server_tx, mut server_rx) = oneshot::channel();
    let seconds = a.seconds;
    let bytes_each = a.bytes;
    let amount_for = move || match bytes_each {
        Some(n) => Amount::Bytes(n),
        None => Amount::Until(Instant::now() + seconds),
    };
    let tcp = tcp_server(amount_for, up_rx.clone(), server_tx).await?;
    let gw = Gateway::bind(
        any,
        GatewayConfig {
            allow: vec![tcp.to_string()],
            ..GatewayConfig::default()
        },
    )
    .await?;
    let gw_addr = gw.local_addr();
    tokio::spawn(gw.run());
    let wifi = PathEmulator::start(
        any,
        gw_addr,
        link(WIFI_BPS, WIFI_DELAY),
        link(WIFI_BPS, WIFI_DELAY),
    )
    .await?;
    let cell = PathEmulator::start(
        any,
        gw_addr,
        link(CELL_BPS, CELL_DELAY),
        link(CELL_BPS, CELL_DELAY),
    )
    .await?;
    let client = Client::builder()
        .service(a.policy.into())
        .connect_timeout(Duration::from_secs(5))
        .interface(
            Interface::new(InterfaceKind::Wifi)
                .with_local_addr(lo)
                .with_via(wifi.local_addr()),
        )
        .interface(
            Interface::new(InterfaceKind::Cellular)
                .with_local_addr(lo)
                .with_via(cell.local_addr()),
        )
        .build()?;
    let mut names = PathNames::default();
    let mut wifi_id = None;
    let mut cell_id = None;
    for (id, i) in client.interfaces() {
        names.0.insert(id, i.kind.to_string());
        match i.kind {
            InterfaceKind::Wifi => wifi_id = Some(id),
            _ => cell_id = Some(id),
        }
    }
    let (Some(wifi_id), Some(cell_id)) = (wifi_id, cell_id) else {
        return Err(Failure::new("internal error: the client lost an interface"));
    };

    out.line(&format!(
        "braid demo: WiFi 40 Mbit/s 10 ms + cellular 20 Mbit/s 30 ms (emulated on loopback), \
         policy {}",
        braid::ServiceType::from(a.policy)
    ));
    out.line(&format!(
        "  client -> [wifi {} | cellular {}] -> gateway {gw_addr} -> TCP server {tcp}",
        wifi.local_addr(),
        cell.local_addr()
    ));
    let transfer = match a.bytes {
        Some(n) => format!("{} each way", bytes(n)),
        None => format!("{:.1} s each way", a.seconds.as_secs_f64()),
    };
    let fail_text = match a.failure {
        FailureMode::Event => "WiFi fails a third of the way in (the OS reports it lost)",
        FailureMode::Silent => "WiFi fails silently a third of the way in",
        FailureMode::None => "no failure",
    };
    out.line(&format!(
        "  transfer: {transfer}, upload and download at once; {fail_text}"
    ));

    let conn = client.connect_via(gw_addr, &tcp.to_string()).await?;
    let t0 = Instant::now();
    // Events are stamped when they arrive, not when the display loop looks.
    let (ev_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    {
        let mut ev = conn.events();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                if ev_tx.send((t0.elapsed(), e)).is_err() {
                    return;
                }
            }
        });
    }
    let monitor = conn.monitor();
    let (mut r, mut w) = conn.into_split();
    let writer = {
        let amount = amount_for();
        tokio::spawn(async move { stream::send(&mut w, SEED_UP, amount).await })
    };
    let reader = {
        let c = down_rx.clone();
        tokio::spawn(async move { stream::recv(&mut r, Some(&c), true).await })
    };
    let sampler = Sampler::spawn(
        vec![up_rx.clone(), down_rx.clone()],
        Duration::from_millis(10),
        t0,
    );

    let expected = match a.bytes {
        Some(n) => Duration::from_secs_f64(n as f64 * 8.0 / CELL_BPS as f64),
        None => a.seconds,
    };
    let deadline = t0 + expected + Duration::from_secs(6);
    let fail_time = a.seconds / 3;
    let mut failed_at: Option<Duration> = None;
    let mut ticks = vec![Tick::default()];
    let mut evs: Vec<(Duration, ConnectionEvent)> = Vec::new();
    let mut writer = Some(writer);
    let mut reader = Some(reader);
    let mut up_done: Option<std::io::Result<Outcome>> = None;
    let mut down_done: Option<std::io::Result<Outcome>> = None;
    let mut server_done: Option<std::io::Result<ServerSide>> = None;
    let mut tick = tokio::time::interval(BUCKET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_print = Duration::ZERO;
    let mut timed_out = false;
    let mut stats = None;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    loop {
        tick.tick().await;
        let t = t0.elapsed();
        ticks.push(Tick {
            t,
            wifi: wire(&wifi),
            cell: wire(&cell),
        });
        // The last statistics while the connection is held (the halves end with their tasks).
        if let Some(s) = monitor.stats() {
            stats = Some(s);
        }
        // The failure.
        let third = match a.bytes {
            Some(n) => up_rx.load(relaxed) + down_rx.load(relaxed) >= 2 * n / 3,
            None => t >= fail_time,
        };
        if failed_at.is_none() && third && a.failure != FailureMode::None {
            wifi.set_down(true);
            if a.failure == FailureMode::Event {
                client.interface_lost(wifi_id);
            }
            failed_at = Some(t);
            out.line(&format!(
                "t={:>5.2}s  WiFi fails: emulated link down{}",
                t.as_secs_f64(),
                if a.failure == FailureMode::Event {
                    ", the OS reports the interface lost"
                } else {
                    " (no OS event)"
                }
            ));
        }
        while let Ok((te, e)) = events.try_recv() {
            if !matches!(e, ConnectionEvent::Closed(braid::CloseError::Finished)) {
                out.line(&format!(
                    "t={:>5.2}s  {}",
                    te.as_secs_f64(),
                    report::event(&e, &names)
                ));
            }
            evs.push((te, e));
        }
        // Progress.
        let every = if out.refreshing() {
            BUCKET
        } else {
            Duration::from_secs(1)
        };
        if t >= last_print + every {
            last_print = t;
            out.progress(&progress_line(
                &ticks,
                up_rx.load(relaxed) + down_rx.load(relaxed),
            ));
        }
        // Completion.
        if writer.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = writer.take() {
                up_done = Some(h.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
            }
        }
        if reader.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = reader.take() {
                down_done = Some(h.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
            }
        }
        if server_done.is_none() {
            if let Ok(s) = server_rx.try_recv() {
                server_done = Some(s);
            }
        }
        if up_done.is_some() && down_done.is_some() && server_done.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
    }
    let samples = sampler.finish().await;
    let total = t0.elapsed();
    out.finish();
    if let Some(s) = monitor.stats() {
        stats = Some(s);
    }

    // The timeline.
    let (buckets_wifi, buckets_cell) = bucket_rates(&ticks);
    let switch = evs.iter().find_map(|(t, e)| match e {
        ConnectionEvent::PathSwitched { to, reason, .. }
            if *to == cell_id && failed_at.is_some_and(|f| *t >= f) =>
        {
            Some((*t, *reason))
        }
        _ => None,
    });
    let mut markers = Vec::new();
    if let Some(f) = failed_at {
        markers.push(Marker {
            id: "failure",
            label: "WiFi fails".into(),
            at_secs: f.as_secs_f64(),
            color: "#d62728",
        });
    }
    if let Some((t, _)) = switch {
        markers.push(Marker {
            id: "switch",
            label: "switch to cellular".into(),
            at_secs: t.as_secs_f64(),
            color: "#2ca02c",
        });
    }
    let chart = Chart {
        title: "braid demo: throughput per path (both directions)".into(),
        subtitle: format!(
            "WiFi 40 Mbit/s 10 ms, cellular 20 Mbit/s 30 ms; policy {}; {}",
            braid::ServiceType::from(a.policy),
            fail_text
        ),
        bucket_secs: BUCKET.as_secs_f64(),
        series: vec![
            Series {
                name: "wifi".into(),
                color: "#1f77b4",
                values: buckets_wifi,
            },
            Series {
                name: "cellular".into(),
                color: "#ff7f0e",
                values: buckets_cell.clone(),
            },
        ],
        markers,
    };
    let svg_path = write_svg(a.svg.as_deref(), &chart.render())?;

    // The summary.
    out.line("");
    out.line(&format!(
        "summary (policy {}, {})",
        braid::ServiceType::from(a.policy),
        fail_text
    ));
    let server = match server_done {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            out.line(&format!(
                "  TCP server failed: {}",
                crate::error::io_msg(&e)
            ));
            None
        }
        None => None,
    };
    let up_sent = up_done.as_ref().and_then(|r| r.as_ref().ok());
    let down_got = down_done.as_ref().and_then(|r| r.as_ref().ok());
    if let Some(Err(e)) = &up_done {
        out.line(&format!("  upload failed: {}", crate::error::io_msg(e)));
    }
    if let Some(Err(e)) = &down_done {
        out.line(&format!("  download failed: {}", crate::error::io_msg(e)));
    }
    let up_ok = match (up_sent, server.as_ref()) {
        (Some(s), Some(srv)) => {
            s.bytes > 0 && s.bytes == srv.received.bytes && s.sha == srv.received.sha
        }
        _ => false,
    };
    let down_ok = match (down_got, server.as_ref()) {
        (Some(g), Some(srv)) => g.bytes > 0 && g.bytes == srv.sent.bytes && g.sha == srv.sent.sha,
        _ => false,
    };
    let line = |what: &str, got: Option<&Outcome>, ok: bool| {
        let (b, secs) = match got {
            Some(o) => (
                o.bytes,
                o.last
                    .map_or(0.0, |l| l.saturating_duration_since(t0).as_secs_f64()),
            ),
            None => (0, 0.0),
        };
        format!(
            "  {what:<9} {:>9} in {secs:5.2} s = {:5.1} Mbit/s   SHA-256 {} ({}…)",
            bytes(b),
            mbps(b, secs),
            if ok { "match" } else { "MISMATCH" },
            got.map(|o| braid_testkit::hex(&o.sha)[..16].to_string())
                .unwrap_or_default()
        )
    };
    out.line(&line("upload", server.as_ref().map(|s| &s.received), up_ok));
    out.line(&line("download", down_got, down_ok));
    let stall_up = samples
        .first()
        .map(|s| s.longest_stall())
        .unwrap_or_default();
    let stall_down = samples
        .get(1)
        .map(|s| s.longest_stall())
        .unwrap_or_default();
    out.line(&format!(
        "  longest stall (receiver side, 10 ms samples): upload {} at t={:.2}s, download {} at t={:.2}s",
        progress::ms(stall_up.length),
        stall_up.at.as_secs_f64(),
        progress::ms(stall_down.length),
        stall_down.at.as_secs_f64()
    ));
    if let Some(f) = failed_at {
        match switch {
            Some((t, reason)) => out.line(&format!(
                "  WiFi failed at t={:.2}s; switched to cellular at t={:.2}s, {} after the failure ({})",
                f.as_secs_f64(),
                t.as_secs_f64(),
                progress::ms(t.saturating_sub(f)),
                report::reason(reason)
            )),
            None => out.line(&format!(
                "  WiFi failed at t={:.2}s; no switch event (traffic was already on cellular or \
                 moved without one)",
                f.as_secs_f64()
            )),
        }
        let full = CELL_BPS as f64 * 0.8 / 1e6;
        if let Some(at) = ticks.windows(2).find_map(|p| {
            let dt = p[1].t.saturating_sub(p[0].t).as_secs_f64().max(0.05);
            let up = mbps(p[1].cell.0 - p[0].cell.0, dt);
            let down = mbps(p[1].cell.1 - p[0].cell.1, dt);
            (p[0].t >= f && up.max(down) >= full).then_some(p[1].t)
        }) {
            out.line(&format!(
                "  cellular at full speed (>= 80% of 20 Mbit/s one way) {} after the failure",
                progress::ms(at.saturating_sub(f))
            ));
        }
    }
    let last = ticks.last().copied().unwrap_or_default();
    out.line(&format!(
        "  per path on the wire: wifi {} up / {} down, cellular {} up / {} down",
        bytes(last.wifi.0),
        bytes(last.wifi.1),
        bytes(last.cell.0),
        bytes(last.cell.1)
    ));
    if let Some(s) = &stats {
        out.line(&format!("  connection: {}", report::conn_line(s)));
    }
    let intact = up_ok && down_ok && !timed_out;
    if timed_out {
        out.line(&format!(
            "  the transfer did not finish within {:.0} s",
            total.as_secs_f64()
        ));
    }
    out.line(&format!(
        "  data intact: {}",
        if intact {
            "yes (both directions, SHA-256 match)"
        } else {
            "NO"
        }
    ));
    out.line(&format!("  timeline: {}", svg_path.display()));
    if intact {
        Ok(0)
    } else if timed_out {
        Err(Failure::new(format!(
            "the demo's transfer did not finish within {:.0} s",
            total.as_secs_f64()
        )))
    } else {
        Err(Failure::new("the data did not arrive intact"))
    }
}

/// Mbit/s per 100 ms bucket and path (both directions).
fn bucket_rates(ticks: &[Tick]) -> (Vec<f64>, Vec<f64>) {
    let secs = BUCKET.as_secs_f64();
    let mut w = Vec::new();
    let mut c = Vec::new();
    for pair in ticks.windows(2) {
        let dt = pair[1]
            .t
            .saturating_sub(pair[0].t)
            .as_secs_f64()
            .max(secs * 0.5);
        w.push(mbps(pair[1].wifi_total() - pair[0].wifi_total(), dt));
        c.push(mbps(pair[1].cell_total() - pair[0].cell_total(), dt));
    }
    (w, c)
}

/// `t=4.2s  wifi ▇▇▇ 0.0 Mbit/s  cell ▇▇▇▇▇ 19.6 Mbit/s  total 48.2 MB`, rates over the
/// last half second.
fn progress_line(ticks: &[Tick], total: u64) -> String {
    let Some(now) = ticks.last() else {
        return String::new();
    };
    let back = ticks
        .iter()
        .rev()
        .find(|t| now.t.saturating_sub(t.t) >= Duration::from_millis(450))
        .or(ticks.first())
        .copied()
        .unwrap_or_default();
    let dt = now.t.saturating_sub(back.t).as_secs_f64();
    let w = mbps(now.wifi_total() - back.wifi_total(), dt);
    let c = mbps(now.cell_total() - back.cell_total(), dt);
    format!(
        "t={:>5.2}s  wifi {} {:>5.1} Mbit/s  cell {} {:>5.1} Mbit/s  total {}",
        now.t.as_secs_f64(),
        bar(w, 2.0 * WIFI_BPS as f64 / 1e6, 10),
        w,
        bar(c, 2.0 * CELL_BPS as f64 / 1e6, 10),
        c,
        bytes(total)
    )
}

/// Writes the SVG where asked, or `braid-demo.svg` here, or in the temp dir.
fn write_svg(asked: Option<&std::path::Path>, svg: &str) -> Result<PathBuf> {
    if let Some(p) = asked {
        std::fs::write(p, svg).map_err(|e| {
            Failure::new(format!(
                "cannot write {}: {}",
                p.display(),
                crate::error::io_msg(&e)
            ))
        })?;
        return Ok(p.to_path_buf());
    }
    let here = PathBuf::from("braid-demo.svg");
    if std::fs::write(&here, svg).is_ok() {
        return Ok(std::fs::canonicalize(&here).unwrap_or(here));
    }
    let tmp = std::env::temp_dir().join("braid-demo.svg");
    std::fs::write(&tmp, svg).map_err(|e| {
        Failure::new(format!(
            "cannot write the timeline here or to {}: {}",
            tmp.display(),
            crate::error::io_msg(&e)
        ))
    })?;
    Ok(tmp)
}
