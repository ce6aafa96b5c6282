//! Numbers from traces: goodput over a window, the longest receiver stall after an event,
//! how soon the new path ran at nearly full speed, latency quantiles, min / median / max.

use super::plan::Trace;
use crate::transfer::{self, Samples};
use std::time::Duration;

fn dur(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Mbit/s received between `from` and `to` (seconds since the trace's origin).
pub fn goodput_mbps(rx: &Samples, from: f64, to: f64) -> f64 {
    rx.rate_bps(dur(from), dur(to)) / 1e6
}

/// The longest receiver stall in `[from, to]`, in milliseconds: the gap between increases of
/// the received-byte counter sampled every 10 ms.
pub fn stall_ms(rx: &Samples, from: f64, to: f64) -> f64 {
    transfer::longest_stall(rx, dur(from), dur(to)).as_secs_f64() * 1e3
}

/// The handover gap, in milliseconds: the first receiver stall at or after `at` (the run of
/// 10 ms samples without progress that the failure causes, including its part before `at`
/// when the receiver had already stopped). Later stalls on the new path, such as ordinary
/// loss recovery, are not part of it; `stall_ms` covers those.
pub fn handover_gap_ms(rx: &Samples, at: f64) -> f64 {
    let b = &rx.bytes;
    let dt = rx.interval.as_secs_f64() * 1e3;
    if b.len() < 2 || dt == 0.0 {
        return 0.0;
    }
    // Sample k holds the bytes received by (k + 1) · dt.
    let first = ((at * 1e3 / dt).floor() as usize).min(b.len() - 1);
    let flat = |k: usize| k > 0 && b[k] == b[k - 1];
    // The first sample without progress from the failure on.
    let Some(start) = (first.max(1)..b.len()).find(|&k| flat(k)) else {
        return 0.0;
    };
    let mut lo = start;
    while lo > 1 && flat(lo - 1) {
        lo -= 1;
    }
    let mut hi = start;
    while hi + 1 < b.len() && flat(hi + 1) {
        hi += 1;
    }
    (hi - lo + 1) as f64 * dt
}

/// Milliseconds after `at` until the receiver first got `fraction` of `capacity_bps` over a
/// 200 ms window; `None` if it never did before `until`.
pub fn full_speed_after_ms(
    rx: &Samples,
    at: f64,
    until: f64,
    capacity_bps: u64,
    fraction: f64,
) -> Option<f64> {
    let win = 0.2;
    let mut t = at;
    while t + win <= until {
        if rx.rate_bps(dur(t), dur(t + win)) >= fraction * capacity_bps as f64 {
            return Some((t - at) * 1e3);
        }
        t += 0.01;
    }
    None
}

/// Per-link Mbit/s (wire bytes) in buckets of `width` seconds from the trace's link
/// counters: (bucket start, WiFi, cellular).
pub fn link_rates(tr: &Trace, width: f64) -> Vec<(f64, f64, f64)> {
    let p = &tr.links.points;
    let mut out = Vec::new();
    if p.len() < 2 {
        return out;
    }
    let at = |t: f64| -> (u64, u64) {
        // Linear interpolation between samples.
        match p.iter().position(|x| x.0 >= t) {
            Some(0) => (p[0].1, p[0].2),
            None => {
                let l = p[p.len() - 1];
                (l.1, l.2)
            }
            Some(i) => {
                let (a, b) = (p[i - 1], p[i]);
                let f = if b.0 > a.0 {
                    (t - a.0) / (b.0 - a.0)
                } else {
                    1.0
                };
                let lerp = |x: u64, y: u64| x as f64 + f * (y as f64 - x as f64);
                (lerp(a.1, b.1) as u64, lerp(a.2, b.2) as u64)
            }
        }
    };
    let mut t = p[0].0.max(0.0);
    let end = p[p.len() - 1].0;
    while t + width <= end {
        let (w0, c0) = at(t);
        let (w1, c1) = at(t + width);
        let mbps = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 8.0 / width / 1e6;
        out.push((t, mbps(w0, w1), mbps(c0, c1)));
        t += width;
    }
    out
}

/// Receiver goodput in buckets of `width` seconds: (bucket start, Mbit/s).
pub fn goodput_series(rx: &Samples, width: f64) -> Vec<(f64, f64)> {
    let end = rx.duration().as_secs_f64();
    let mut out = Vec::new();
    let mut t = 0.0;
    while t + width <= end + 1e-9 {
        out.push((t, goodput_mbps(rx, t, t + width)));
        t += width;
    }
    out
}

/// The `q` quantile (nearest rank) of latencies in seconds; a missing reply counts as
/// infinitely late.
pub fn quantile(lat: &[Option<f64>], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = lat.iter().map(|l| l.unwrap_or(f64::INFINITY)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// Min, median, max of the finite values (`None` if there are none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    /// "min / median / max" with `prec` decimals.
    pub fn show(s: Option<Summary>, prec: usize) -> String {
        match s {
            Some(s) => format!("{:.p$} / {:.p$} / {:.p$}", s.min, s.median, s.max, p = prec),
            None => "-".into(),
        }
    }
}

/// The per-run values, comma separated ("∞" for a missing one).
pub fn runs(values: &[f64], prec: usize) -> String {
    values
        .iter()
        .map(|v| {
            if v.is_finite() {
                format!("{v:.prec$}")
            } else {
                "∞".into()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(v: &[u64]) -> Samples {
        Samples {
            interval: Duration::from_millis(10),
            bytes: v.to_vec(),
        }
    }

    #[test]
    fn summary_and_quantiles() {
        let s = Summary::of(&[3.0, 1.0, f64::NAN, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Summary::of(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(Summary::of(&[]).is_none());
        let lat = [Some(0.03), Some(0.01), None, Some(0.02)];
        assert_eq!(quantile(&lat, 0.5), Some(0.02));
        assert_eq!(quantile(&lat, 0.99), Some(f64::INFINITY));
        assert_eq!(runs(&[1.234, f64::INFINITY], 1), "1.2, ∞");
    }

    #[test]
    fn goodput_stall_and_recovery() {
        // 12 500 B per 10 ms = 10 Mbit/s, then nothing for 100 ms, then 25 000 B per 10 ms.
        let mut v = Vec::new();
        let mut b = 0;
        for k in 0..100 {
            if !(50..60).contains(&k) {
                b += if k < 50 { 12_500 } else { 25_000 };
            }
            v.push(b);
        }
        let s = grid(&v);
        assert!((goodput_mbps(&s, 0.1, 0.4) - 10.0).abs() < 1e-6);
        let st = stall_ms(&s, 0.45, 1.0);
        assert!((90.0..=110.0).contains(&st), "{st}");
        // The gap the failure at 0.5 s causes, and the same gap when the failure is noted a
        // little after the receiver stopped.
        assert_eq!(handover_gap_ms(&s, 0.5), 100.0);
        assert_eq!(handover_gap_ms(&s, 0.53), 100.0);
        // A later, longer stall is not the handover gap.
        let mut w = v.clone();
        for x in w.iter_mut().skip(80) {
            *x = v[79];
        }
        assert_eq!(handover_gap_ms(&grid(&w), 0.5), 100.0);
        assert!(stall_ms(&grid(&w), 0.45, 1.0) > 150.0);
        let r = full_speed_after_ms(&s, 0.5, 1.0, 20_000_000, 0.9).unwrap();
        // The first 200 ms window at 90 % may start up to 20 ms before the flow resumes.
        assert!((70.0..=110.0).contains(&r), "{r}");
        assert!(full_speed_after_ms(&s, 0.0, 0.45, 20_000_000, 0.9).is_none());
        assert_eq!(goodput_series(&s, 0.5).len(), 2);
    }
}
