//! A hand-written SVG timeline: throughput per path over time, with markers.

use std::fmt::Write;

/// One line of the chart.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// Mbit/s per bucket.
    pub values: Vec<f64>,
}

/// A vertical marker (the failure, the switch).
pub struct Marker {
    pub id: &'static str,
    pub label: String,
    pub at_secs: f64,
    pub color: &'static str,
}

pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub bucket_secs: f64,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
}

const W: f64 = 960.0;
const H: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 56.0;

/// A "nice" step for about `target` ticks over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 {
        return 1.0;
    }
    let raw = range / target;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    pub fn render(&self) -> String {
        let buckets = self
            .series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0);
        let t_max = (buckets as f64 * self.bucket_secs)
            .max(self.markers.iter().map(|m| m.at_secs).fold(0.0, f64::max))
            .max(self.bucket_secs);
        let v_max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let y_step = nice_step(v_max.max(1.0), 5.0);
        let y_top = ((v_max / y_step).ceil() * y_step).max(y_step);
        let x_step = nice_step(t_max, 10.0);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let x = |t: f64| LEFT + t / t_max * pw;
        let y = |v: f64| TOP + ph - v.clamp(0.0, y_top) / y_top * ph;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text><text x="{LEFT}" y="44" fill="#555">{}</text>"##,
            esc(&self.title),
            esc(&self.subtitle)
        );
        // Grid and y axis labels.
        let _ = writeln!(s, r##"<g id="y-axis" stroke="#ddd">"##);
        let mut v = 0.0;
        while v <= y_top + 1e-9 {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end" stroke="none" fill="#333">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                yy + 4.0,
                trim(v)
            );
            v += y_step;
        }
        let _ = writeln!(s, "</g>");
        // X axis ticks.
        let _ = writeln!(s, r##"<g id="x-axis" stroke="#333">"##);
        let mut t = 0.0;
        while t <= t_max + 1e-9 {
            let xx = x(t);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" stroke="none" fill="#333">{}</text>"##,
                TOP + ph,
                TOP + ph + 5.0,
                TOP + ph + 19.0,
                trim(t)
            );
            t += x_step;
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
            TOP + ph,
            LEFT + pw
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">time (s)</text>"##,
            LEFT + pw / 2.0,
            H - 12.0
        );
        let _ = writeln!(
            s,
            r##"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle" fill="#333">Mbit/s ({} ms buckets)</text>"##,
            TOP + ph / 2.0,
            (self.bucket_secs * 1000.0).round()
        );
        // Markers.
        for m in &self.markers {
            let xx = x(m.at_secs);
            let _ = writeln!(
                s,
                r#"<g id="{}"><line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" fill="{}">{}</text></g>"#,
                m.id,
                TOP + ph,
                m.color,
                xx + 4.0,
                TOP + 12.0
                    + 14.0 * (self.markers.iter().position(|o| o.id == m.id).unwrap_or(0) as f64),
                m.color,
                esc(&m.label)
            );
        }
        // One polyline per path, each point at the middle of its bucket.
        for se in &self.series {
            let mut pts = String::new();
            for (i, v) in se.values.iter().enumerate() {
                let t = (i as f64 + 0.5) * self.bucket_secs;
                let _ = write!(pts, "{:.1},{:.1} ", x(t), y(*v));
            }
            let _ = writeln!(
                s,
                r#"<polyline class="path" data-path="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                esc(&se.name),
                se.color,
                pts.trim_end()
            );
        }
        // Legend.
        let lx = LEFT + pw + 16.0;
        let _ = writeln!(s, r#"<g id="legend">"#);
        for (i, se) in self.series.iter().enumerate() {
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" fill="#333">{}</text>"##,
                lx + 22.0,
                se.color,
                lx + 28.0,
                ly + 4.0,
                esc(&se.name)
            );
        }
        for (i, m) in self.markers.iter().enumerate() {
            let ly = TOP + 10.0 + 20.0 * (self.series.len() + i) as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{}" stroke-width="1.5" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" fill="#333">{}</text>"##,
                lx + 22.0,
                m.color,
                lx + 28.0,
                ly + 4.0,
                esc(m.id)
            );
        }
        let _ = writeln!(s, "</g>");
        s.push_str("</svg>\n");
        s
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_markers_and_legend() {
        let c = Chart {
            title: "wifi <&> cell".into(),
            subtitle: "sub".into(),
            bucket_secs: 0.1,
            series: vec![
                Series {
                    name: "wifi".into(),
                    color: "#1f77b4",
                    values: vec![10.0, 40.0, 0.0],
                },
                Series {
                    name: "cellular".into(),
                    color: "#ff7f0e",
                    values: vec![0.0, 0.0, 19.5],
                },
            ],
            markers: vec![Marker {
                id: "failure",
                label: "WiFi fails".into(),
                at_secs: 0.2,
                color: "#d62728",
            }],
        };
        let s = c.render();
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains(r#"id="failure""#));
        assert!(s.contains("wifi &lt;&amp;&gt; cell"));
        // Three points per line.
        let line = s
            .lines()
            .find(|l| l.contains("data-path=\"wifi\""))
            .unwrap();
        let pts = line.split("points=\"").nth(1).unwrap();
        assert_eq!(pts.trim_end_matches("\"/>").split(' ').count(), 3);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(12.0, 10.0), 2.0);
        assert_eq!(nice_step(45.0, 5.0), 10.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }
}
