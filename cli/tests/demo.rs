//! `braid demo` end to end: finishes by itself, data intact, a valid SVG.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn short_demo_is_intact_and_draws_a_timeline() {
    let dir = std::env::temp_dir().join(format!("braid-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let start = Instant::now();
    let child = braid()
        .args(["demo", "--seconds", "6", "--no-live"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_limited(child, Duration::from_secs(60));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("data intact: yes"), "{stdout}");
    assert!(stdout.contains("WiFi fails"), "{stdout}");
    assert!(stdout.contains("longest stall"), "{stdout}");
    assert_eq!(stdout.matches("SHA-256 match").count(), 3, "{stdout}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );

    let svg = std::fs::read_to_string(dir.join("braid-demo.svg")).expect("no braid-demo.svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    let lines: Vec<&str> = svg.lines().filter(|l| l.contains("<polyline")).collect();
    assert_eq!(lines.len(), 2, "one polyline per path");
    assert!(lines[0].contains("wifi") && lines[1].contains("cellular"));
    for l in &lines {
        let pts = l
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let n = pts.split_whitespace().count();
        // 100 ms buckets over at least the 6 s transfer.
        assert!(n >= 55, "only {n} points");
        for p in pts.split_whitespace() {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(x.is_finite() && y.is_finite() && y >= 0.0);
        }
    }
    assert!(svg.contains("id=\"failure\""), "no failure marker");
    // The cellular line carries traffic after the failure.
    let cell = lines[1].split("points=\"").nth(1).unwrap();
    let ys: Vec<f64> = cell
        .split('"')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.split_once(',').unwrap().1.parse().unwrap())
        .collect();
    let base = ys.iter().cloned().fold(f64::MIN, f64::max);
    assert!(ys.iter().any(|y| *y < base - 20.0), "cellular line is flat");
    let _ = std::fs::remove_dir_all(&dir);
}
