//! One test's results: per direction, per path, echo latency; as text and JSON.

use super::{Measure, SAMPLE};
use crate::json::Json;
use crate::progress::{bytes, mbps};
use braid::PathId;
use braid_testkit::stall::{Stall, Trace};
use std::collections::BTreeMap;
use std::time::Duration;

/// One direction's result.
pub(super) struct DirResult {
    pub(super) bytes: u64,
    pub(super) samples: Trace,
}

impl DirResult {
    /// From the first to the last byte.
    pub(super) fn active(&self) -> (Duration, Duration) {
        let first = self
            .samples
            .points
            .iter()
            .find(|(_, b)| *b > 0)
            .map(|p| p.0);
        let last = self
            .samples
            .points
            .iter()
            .find(|(_, b)| *b >= self.bytes)
            .map(|p| p.0);
        (first.unwrap_or_default(), last.unwrap_or_default())
    }

    pub(super) fn secs(&self) -> f64 {
        let (_, last) = self.active();
        last.as_secs_f64()
    }

    pub(super) fn goodput(&self) -> f64 {
        mbps(self.bytes, self.secs())
    }

    /// Mbit/s in each second up to the last byte; a last partial second is divided by its
    /// actual length (and left out when shorter than 50 ms).
    pub(super) fn per_second(&self) -> Vec<f64> {
        let end = self.secs();
        let mut v: Vec<f64> = self
            .samples
            .buckets(Duration::from_secs(1))
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (*i as f64) < end)
            .map(|(i, b)| {
                let len = (end - i as f64).min(1.0);
                if len < 0.05 { f64::NAN } else { mbps(b, len) }
            })
            .collect();
        if v.last().is_some_and(|x| x.is_nan()) {
            v.pop();
        }
        v
    }

    pub(super) fn stall(&self) -> Stall {
        self.samples.longest_stall()
    }

    pub(super) fn json(&self) -> Json {
        let st = self.stall();
        Json::obj()
            .with("bytes", self.bytes)
            .with("seconds", self.secs())
            .with("goodput_mbps", self.goodput())
            .with("per_second_mbps", self.per_second())
            .with("longest_stall_ms", st.length.as_secs_f64() * 1e3)
            .with("longest_stall_at_s", st.at.as_secs_f64())
            .with(
                "samples",
                Json::obj()
                    .with("interval_ms", SAMPLE.as_millis() as u64)
                    .with(
                        "t_ms",
                        self.samples
                            .points
                            .iter()
                            .map(|(t, _)| t.as_secs_f64() * 1e3)
                            .collect::<Vec<_>>(),
                    )
                    .with(
                        "bytes",
                        self.samples
                            .points
                            .iter()
                            .map(|(_, b)| *b)
                            .collect::<Vec<_>>(),
                    ),
            )
    }
}

/// Per path: the largest counters seen (a path's stats vanish when it is removed).
#[derive(Clone, Debug, Default)]
pub(super) struct PathTotals {
    pub(super) kind: String,
    pub(super) sent: u64,
    pub(super) received: u64,
}

pub(super) struct Outcome {
    pub(super) up: Option<DirResult>,
    pub(super) down: Option<DirResult>,
    pub(super) paths: BTreeMap<PathId, PathTotals>,
    pub(super) events: Vec<(Duration, String)>,
    pub(super) timeline: PathTimeline,
    pub(super) echo: Option<EchoResult>,
    /// CLOCK_MONOTONIC at the start of the measurement (shared by every process on the
    /// machine, so a harness can place its own actions on the samples' time axis).
    pub(super) start_monotonic_ns: u64,
}

/// Bytes per interface kind over time (live subflows plus the final counters of closed
/// ones), and how many subflows of that kind were alive, every 100 ms.
#[derive(Clone, Debug, Default)]
pub(super) struct PathTimeline {
    pub(super) t: Vec<Duration>,
    /// kind -> (sent, received, live subflows) per sample.
    pub(super) by_kind: BTreeMap<String, Vec<(u64, u64, u64)>>,
}

impl PathTimeline {
    pub(super) fn record(&mut self, t: Duration, s: &braid::ConnectionStats) {
        let mut now: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for (p, live) in s
            .paths
            .iter()
            .map(|p| (p, 1))
            .chain(s.closed_paths.iter().map(|p| (p, 0)))
        {
            let kind = p
                .kind
                .map(|k| k.to_string())
                .unwrap_or_else(|| "other".into());
            let e = now.entry(kind).or_default();
            e.0 += p.bytes_sent;
            e.1 += p.bytes_received;
            e.2 += live;
        }
        let n = self.t.len();
        for (k, v) in now {
            let col = self.by_kind.entry(k).or_default();
            col.resize(n, (0, 0, 0));
            col.push(v);
        }
        self.t.push(t);
        for col in self.by_kind.values_mut() {
            if col.len() < n + 1 {
                let last = col.last().map_or((0, 0, 0), |l| (l.0, l.1, 0));
                col.resize(n + 1, last);
            }
        }
    }

    pub(super) fn json(&self) -> Json {
        let mut kinds = Json::obj();
        for (k, col) in &self.by_kind {
            kinds = kinds.with(
                k,
                Json::obj()
                    .with("sent", col.iter().map(|c| c.0).collect::<Vec<_>>())
                    .with("received", col.iter().map(|c| c.1).collect::<Vec<_>>())
                    .with("live", col.iter().map(|c| c.2).collect::<Vec<_>>()),
            );
        }
        Json::obj()
            .with(
                "t_ms",
                self.t
                    .iter()
                    .map(|t| t.as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
            .with("by_kind", kinds)
    }
}

/// Request/response latencies (`--direction echo`).
#[derive(Clone, Debug, Default)]
pub(super) struct EchoResult {
    pub(super) request_bytes: u32,
    /// When each request was written (since the start).
    pub(super) sent_at: Vec<Duration>,
    /// Its reply's latency; `None` when no reply came.
    pub(super) latency: Vec<Option<Duration>>,
}

impl EchoResult {
    /// The `q` quantile (0..=1) of the latencies, nearest rank; a missing reply counts as
    /// longer than any.
    pub(super) fn quantile(&self, q: f64) -> Option<Duration> {
        let mut v: Vec<Duration> = self
            .latency
            .iter()
            .map(|l| l.unwrap_or(Duration::MAX))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    }

    pub(super) fn json(&self) -> Json {
        let ms = |d: Option<Duration>| match d {
            Some(d) if d != Duration::MAX => Json::from(d.as_secs_f64() * 1e3),
            _ => Json::Null,
        };
        Json::obj()
            .with("request_bytes", self.request_bytes)
            .with("requests", self.sent_at.len())
            .with("replies", self.latency.iter().flatten().count())
            .with("p50_ms", ms(self.quantile(0.5)))
            .with("p90_ms", ms(self.quantile(0.9)))
            .with("p99_ms", ms(self.quantile(0.99)))
            .with("max_ms", ms(self.quantile(1.0)))
            .with(
                "sent_at_ms",
                self.sent_at
                    .iter()
                    .map(|t| t.as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
            .with(
                "latency_ms",
                self.latency.iter().map(|l| ms(*l)).collect::<Vec<_>>(),
            )
    }
}

pub(super) fn print_human(title: &str, o: &Outcome) {
    println!("{title}");
    let up = o.up.as_ref().map(|d| d.per_second()).unwrap_or_default();
    let down = o.down.as_ref().map(|d| d.per_second()).unwrap_or_default();
    println!("  second    up Mbit/s  down Mbit/s");
    for i in 0..up.len().max(down.len()) {
        let f = |v: &Vec<f64>| {
            v.get(i)
                .map(|x| format!("{x:11.1}"))
                .unwrap_or_else(|| format!("{:>11}", "-"))
        };
        println!("  {:>6}  {} {}", i + 1, f(&up), f(&down));
    }
    for (what, d) in [("upload", &o.up), ("download", &o.down)] {
        if let Some(d) = d {
            let st = d.stall();
            println!(
                "  {what:<9} {:>9} in {:.2} s = {:.1} Mbit/s, longest stall {:.0} ms at t={:.2}s",
                bytes(d.bytes),
                d.secs(),
                d.goodput(),
                st.length.as_secs_f64() * 1e3,
                st.at.as_secs_f64()
            );
        }
    }
    let total: u64 = o.paths.values().map(|p| p.sent + p.received).sum();
    if total > 0 {
        let shares: Vec<String> = o
            .paths
            .iter()
            .map(|(id, p)| {
                format!(
                    "#{id} {} {:.1}% ({} sent, {} received)",
                    p.kind,
                    100.0 * (p.sent + p.received) as f64 / total as f64,
                    bytes(p.sent),
                    bytes(p.received)
                )
            })
            .collect();
        println!("  paths: {}", shares.join(", "));
    }
    if let Some(e) = &o.echo {
        let ms = |d: Option<Duration>| match d {
            Some(d) if d != Duration::MAX => format!("{:.1} ms", d.as_secs_f64() * 1e3),
            _ => "-".into(),
        };
        println!(
            "  echo: {} requests of {} B, {} replies; latency p50 {}, p90 {}, p99 {}, max {}",
            e.sent_at.len(),
            e.request_bytes,
            e.latency.iter().flatten().count(),
            ms(e.quantile(0.5)),
            ms(e.quantile(0.9)),
            ms(e.quantile(0.99)),
            ms(e.quantile(1.0))
        );
    }
    for (t, e) in &o.events {
        println!("  t={:>6.3}s  {e}", t.as_secs_f64());
    }
}

pub(super) fn to_json(remote: &str, policy: &str, m: &Measure, o: &Outcome, extra: Json) -> Json {
    let total: u64 = o.paths.values().map(|p| p.sent + p.received).sum();
    let paths: Vec<Json> = o
        .paths
        .iter()
        .map(|(id, p)| {
            Json::obj()
                .with("id", id.get())
                .with("kind", p.kind.as_str())
                .with("bytes_sent", p.sent)
                .with("bytes_received", p.received)
                .with(
                    "share",
                    if total > 0 {
                        (p.sent + p.received) as f64 / total as f64
                    } else {
                        0.0
                    },
                )
        })
        .collect();
    let goodput =
        o.up.as_ref().map_or(0.0, |d| d.goodput()) + o.down.as_ref().map_or(0.0, |d| d.goodput());
    Json::obj()
        .with("remote", remote)
        .with("policy", policy)
        .with("direction", m.direction.as_str())
        .with("seconds", m.seconds.as_secs_f64())
        .with("goodput_mbps", goodput)
        .with("up", o.up.as_ref().map(|d| d.json()))
        .with("down", o.down.as_ref().map(|d| d.json()))
        .with("paths", paths)
        .with(
            "events",
            o.events
                .iter()
                .map(|(t, e)| {
                    Json::obj()
                        .with("t_s", t.as_secs_f64())
                        .with("event", e.as_str())
                })
                .collect::<Vec<_>>(),
        )
        .with("echo", o.echo.as_ref().map(|e| e.json()))
        .with("start_monotonic_ns", o.start_monotonic_ns)
        .with("path_timeline", o.timeline.json())
        .with("setup", extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_quantiles_count_missing_replies_as_longest() {
        let ms = Duration::from_millis;
        let e = EchoResult {
            request_bytes: 100,
            sent_at: vec![ms(0), ms(50), ms(100), ms(150)],
            latency: vec![Some(ms(30)), Some(ms(10)), Some(ms(20)), None],
        };
        assert_eq!(e.quantile(0.5), Some(ms(20)));
        assert_eq!(e.quantile(0.25), Some(ms(10)));
        assert_eq!(e.quantile(1.0), Some(Duration::MAX));
        let j = e.json().to_string_pretty();
        assert!(j.contains("\"replies\": 3"), "{j}");
        assert_eq!(EchoResult::default().quantile(0.5), None);
    }
}
