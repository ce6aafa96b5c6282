//! The transfer as it happens: both directions at once, the failure a third of the way in,
//! events and per-path progress printed as they come.

use super::network::{Network, ServerSide};
use super::{BUCKET, CELL_BPS, DemoArgs, FailureMode, SEED_UP, Switch, WIFI_BPS, amount};
use crate::error::Result;
use crate::progress::{Display, bar, bytes, mbps};
use crate::report;
use braid::emulator::PathEmulator;
use braid::{ConnectionEvent, ConnectionStats, PathId};
use braid_testkit::stall::Trace;
use braid_testkit::transfer::{self as stream, Outcome, Sampler};
use std::time::{Duration, Instant};

/// Cumulative wire bytes per path and direction at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tick {
    pub(super) t: Duration,
    pub(super) wifi: (u64, u64),
    pub(super) cell: (u64, u64),
}

impl Tick {
    pub(super) fn wifi_total(&self) -> u64 {
        self.wifi.0 + self.wifi.1
    }
    pub(super) fn cell_total(&self) -> u64 {
        self.cell.0 + self.cell.1
    }
}

fn wire(e: &PathEmulator) -> (u64, u64) {
    let (up, down) = e.stats();
    (up.delivered.bytes, down.delivered.bytes)
}

/// What happened during the transfer.
pub(super) struct Run {
    pub(super) t0: Instant,
    /// Wire bytes per path every 100 ms.
    pub(super) ticks: Vec<Tick>,
    pub(super) events: Vec<(Duration, ConnectionEvent)>,
    pub(super) failed_at: Option<Duration>,
    pub(super) up_done: Option<std::io::Result<Outcome>>,
    pub(super) down_done: Option<std::io::Result<Outcome>>,
    pub(super) server_done: Option<std::io::Result<ServerSide>>,
    pub(super) timed_out: bool,
    /// The connection's last statistics.
    pub(super) stats: Option<ConnectionStats>,
    /// Receive counters sampled every 10 ms: upload (at the server), download.
    pub(super) samples: Vec<Trace>,
    pub(super) total: Duration,
}

impl Run {
    /// The switch to `cell` after the failure, if one was reported.
    pub(super) fn switch_to(&self, cell: PathId) -> Switch {
        self.events.iter().find_map(|(t, e)| match e {
            ConnectionEvent::PathSwitched { to, reason, .. }
                if *to == cell && self.failed_at.is_some_and(|f| *t >= f) =>
            {
                Some((*t, *reason))
            }
            _ => None,
        })
    }
}

/// Connects, transfers both ways, fails WiFi on time and follows it all until both
/// directions and the server are done (or the deadline passes).
pub(super) async fn watch(a: &DemoArgs, net: &mut Network, out: &mut Display) -> Result<Run> {
    let Network {
        up_rx,
        down_rx,
        server_rx,
        gw_addr,
        tcp,
        wifi,
        cell,
        client,
        names,
        wifi_id,
        ..
    } = net;
    let (gw_addr, tcp, wifi_id) = (*gw_addr, *tcp, *wifi_id);
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
        let amount = amount(a.bytes, a.seconds);
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
            wifi: wire(wifi),
            cell: wire(cell),
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
                    report::event(&e, names)
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
        if writer.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = writer.take()
        {
            up_done = Some(h.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
        }
        if reader.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = reader.take()
        {
            down_done = Some(h.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
        }
        if server_done.is_none()
            && let Ok(s) = server_rx.try_recv()
        {
            server_done = Some(s);
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

    Ok(Run {
        t0,
        ticks,
        events: evs,
        failed_at,
        up_done,
        down_done,
        server_done,
        timed_out,
        stats,
        samples,
        total,
    })
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
