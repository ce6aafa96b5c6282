//! The SVG timeline: throughput per path in 100 ms buckets, the failure and the switch.

use super::live::{Run, Tick};
use super::{BUCKET, DemoArgs, Switch, failure_text};
use crate::error::{Failure, Result};
use crate::progress::mbps;
use crate::svg::{Chart, Marker, Series};
use std::path::PathBuf;

/// Draws the timeline and writes it (see [`write_svg`]); returns where.
pub(super) fn write(a: &DemoArgs, run: &Run, switch: Switch) -> Result<PathBuf> {
    let fail_text = failure_text(a.failure);
    let failed_at = run.failed_at;
    let (buckets_wifi, buckets_cell) = bucket_rates(&run.ticks);
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
    write_svg(a.svg.as_deref(), &chart.render())
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
