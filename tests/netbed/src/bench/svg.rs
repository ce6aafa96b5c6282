//! A small SVG writer for timelines: one panel per stack, stacked vertically, each with
//! line (or dot) series on a shared time axis and labelled vertical markers (link events).

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// (seconds, value).
    pub points: Vec<(f64, f64)>,
    /// Dots instead of a line (latencies).
    pub dots: bool,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    /// (seconds, label).
    pub markers: Vec<(f64, String)>,
}

pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub x_max: f64,
    /// Fixed top of the y axis; `None`: from the data.
    pub y_max: Option<f64>,
    pub panels: Vec<Panel>,
}

pub const WIFI: &str = "#1f77b4";
pub const CELL: &str = "#d62728";
pub const TOTAL: &str = "#555555";

const W: f64 = 820.0;
const PH: f64 = 170.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

pub fn render(c: &Chart) -> String {
    let h = TOP + c.panels.len() as f64 * (PH + GAP) + 10.0;
    let ymax = c.y_max.unwrap_or_else(|| {
        let m = c
            .panels
            .iter()
            .flat_map(|p| p.series.iter())
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        if m > 0.0 { m * 1.1 } else { 1.0 }
    });
    let xmax = c.x_max.max(1e-9);
    let pw = W - LEFT - RIGHT;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        esc(&c.title)
    );
    for (i, p) in c.panels.iter().enumerate() {
        let y0 = TOP + i as f64 * (PH + GAP) + 14.0;
        let x = |t: f64| LEFT + (t.clamp(0.0, xmax) / xmax) * pw;
        let y = |v: f64| y0 + PH - (v.clamp(0.0, ymax) / ymax) * PH;
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#,
            y0 - 4.0,
            esc(&p.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y0:.1}" width="{pw:.1}" height="{PH}" fill="none" stroke="#999"/>"##
        );
        let ys = step(ymax, 4.0);
        let mut v = 0.0;
        while v <= ymax + 1e-9 {
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                y(v),
                y(v),
                LEFT - 4.0,
                y(v) + 4.0,
                fmt_num(v)
            );
            v += ys;
        }
        let xs = step(xmax, 10.0);
        let mut t = 0.0;
        while t <= xmax + 1e-9 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x(t),
                y0 + PH + 13.0,
                fmt_num(t)
            );
            t += xs;
        }
        let _ = writeln!(
            s,
            r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
            y0 + PH / 2.0,
            y0 + PH / 2.0,
            esc(&c.y_label)
        );
        for (k, (t, label)) in p.markers.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{y0:.1}" y2="{:.1}" stroke="#2ca02c" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#2ca02c">{}</text>"##,
                x(*t),
                x(*t),
                y0 + PH,
                x(*t) + 3.0,
                y0 + 12.0 + 12.0 * k as f64,
                esc(label)
            );
        }
        if !p.series.is_empty() {
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="146" height="{:.1}" fill="white" fill-opacity="0.85"/>"#,
                LEFT + pw - 154.0,
                y0 + 3.0,
                14.0 * p.series.len() as f64 + 2.0
            );
        }
        for (k, se) in p.series.iter().enumerate() {
            if se.dots {
                for (t, v) in &se.points {
                    let (cy, fill) = if v.is_finite() {
                        (y(*v), se.color)
                    } else {
                        (y0 + 2.0, "black")
                    };
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{cy:.1}" r="1.8" fill="{fill}"/>"#,
                        x(*t)
                    );
                }
            } else {
                let pts: Vec<String> = se
                    .points
                    .iter()
                    .filter(|(t, v)| v.is_finite() && *t >= 0.0 && *t <= xmax)
                    .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{}" stroke-width="1.4" points="{}"/>"#,
                    se.color,
                    pts.join(" ")
                );
            }
            let lx = LEFT + pw - 150.0;
            let ly = y0 + 14.0 + 14.0 * k as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 9.0,
                se.color,
                lx + 14.0,
                esc(&se.name)
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>"#,
        LEFT + pw / 2.0,
        h - 4.0
    );
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_panels_series_and_markers() {
        let c = Chart {
            title: "t <1>".into(),
            y_label: "Mbit/s".into(),
            x_max: 10.0,
            y_max: None,
            panels: vec![Panel {
                title: "kernel".into(),
                series: vec![Series {
                    name: "wifi".into(),
                    color: WIFI,
                    points: vec![(0.0, 1.0), (5.0, 40.0), (6.0, f64::NAN)],
                    dots: false,
                }],
                markers: vec![(5.0, "wifi down".into())],
            }],
        };
        let s = render(&c);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("t &lt;1&gt;") && s.contains("wifi down"));
        assert_eq!(s.matches("<polyline").count(), 1);
        assert!(!s.contains("NaN"));
        assert_eq!(step(44.0, 4.0), 20.0);
    }
}
