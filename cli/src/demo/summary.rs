//! The summary after the transfer: bytes, rates and hashes each way, the longest stalls,
//! how fast traffic moved to cellular, and the verdict.

use super::live::Run;
use super::{CELL_BPS, DemoArgs, Switch, failure_text};
use crate::error::{Failure, Result};
use crate::progress::{self, Display, bytes, mbps};
use crate::report;
use braid_testkit::transfer::Outcome;
use std::path::Path;

/// Prints the summary; Ok(0) when both directions arrived intact in time.
pub(super) fn report(
    a: &DemoArgs,
    run: &Run,
    switch: Switch,
    svg_path: &Path,
    out: &mut Display,
) -> Result<i32> {
    let fail_text = failure_text(a.failure);
    let Run {
        t0,
        ticks,
        failed_at,
        up_done,
        down_done,
        server_done,
        timed_out,
        stats,
        samples,
        total,
        ..
    } = run;
    let (t0, failed_at, timed_out, total) = (*t0, *failed_at, *timed_out, *total);
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
            out.line(&format!("  TCP server failed: {}", crate::error::io_msg(e)));
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
