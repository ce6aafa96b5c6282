//! Stalls: the longest time a transfer made no progress. Three views of progress, one for
//! each way a test can observe it:
//!
//! - [`longest_gap`]: exact arrival times (the simulator harness records every read).
//! - [`Samples`] / [`Sampler`]: cumulative bytes on a fixed grid, filled by the reader after
//!   each blocking read (the namespace testbed).
//! - [`Trace`]: counters polled by a timer, possibly with missed ticks (the CLI's demo and
//!   bench, where readers run in other tasks).

use std::time::{Duration, Instant};

/// The longest time between two arrivals of new bytes within `[from, to]`, counting the
/// edges of the window (no arrival at all: the whole window). `arrivals` holds (time, total
/// bytes so far) in time order.
pub fn longest_gap(arrivals: &[(Instant, u64)], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut worst = Duration::ZERO;
    for &(t, _) in arrivals {
        if t < from {
            continue;
        }
        if t > to {
            break;
        }
        worst = worst.max(t - last);
        last = t;
    }
    worst.max(to.saturating_duration_since(last))
}

/// Bytes received by `t` according to `arrivals` (time, total so far) in time order.
pub fn received_at(arrivals: &[(Instant, u64)], t: Instant) -> u64 {
    let i = arrivals.partition_point(|&(at, _)| at <= t);
    if i == 0 { 0 } else { arrivals[i - 1].1 }
}

/// Default spacing of grid samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Cumulative bytes received, sampled on a fixed grid: `bytes[k]` is the total at
/// `(k + 1) × interval` after the start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    /// Grid spacing.
    pub interval: Duration,
    /// Total bytes at each grid point.
    pub bytes: Vec<u64>,
}

impl Samples {
    /// Bytes received by time `t` (the last sample at or before it).
    pub fn at(&self, t: Duration) -> u64 {
        if self.interval.is_zero() {
            return 0;
        }
        let k = (t.as_nanos() / self.interval.as_nanos()) as usize;
        match k {
            0 => 0,
            k => self.bytes[(k - 1).min(self.bytes.len().saturating_sub(1))],
        }
    }

    /// Time covered by the samples.
    pub fn duration(&self) -> Duration {
        self.interval * self.bytes.len() as u32
    }

    /// Average bits per second between `from` and `to`.
    pub fn rate_bps(&self, from: Duration, to: Duration) -> f64 {
        if to <= from {
            return 0.0;
        }
        (self.at(to) - self.at(from)) as f64 * 8.0 / (to - from).as_secs_f64()
    }

    /// The longest time without progress within `[from, to]` (times since the start): the
    /// longest run of consecutive grid points in that window whose total did not grow since
    /// the previous point, times the interval. 0 for a steady flow; resolution one interval.
    pub fn longest_stall(&self, from: Duration, to: Duration) -> Duration {
        let dt = self.interval;
        let mut best = 0u32;
        let mut run = 0u32;
        for (k, &b) in self.bytes.iter().enumerate() {
            let t = dt * (k as u32 + 1);
            if t <= from {
                continue;
            }
            if t > to {
                break;
            }
            let prev = if k == 0 { 0 } else { self.bytes[k - 1] };
            if b == prev {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
        }
        dt * best
    }
}

/// Turns (time, cumulative bytes) observations into [`Samples`]. Call `record` after every
/// read with the new total; the grid points since the previous call get the total from before
/// this read (those bytes arrived after them), which is exact for a reader that blocks in
/// `read` while nothing arrives.
#[derive(Clone, Debug)]
pub struct Sampler {
    start: Instant,
    total: u64,
    samples: Samples,
}

impl Sampler {
    /// A sampler on the default grid from `start`.
    pub fn new(start: Instant) -> Self {
        Self::with_interval(start, SAMPLE_INTERVAL)
    }

    /// A sampler on a grid of `interval` (positive) from `start`.
    pub fn with_interval(start: Instant, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "sample interval must be positive");
        Sampler {
            start,
            total: 0,
            samples: Samples {
                interval,
                bytes: Vec::new(),
            },
        }
    }

    /// Where the grid starts.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn fill_to(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        let due = (elapsed.as_nanos() / self.samples.interval.as_nanos()) as usize;
        while self.samples.bytes.len() < due {
            self.samples.bytes.push(self.total);
        }
    }

    /// The cumulative total became `total` at `now`.
    pub fn record(&mut self, now: Instant, total: u64) {
        self.fill_to(now);
        self.total = self.total.max(total);
    }

    /// The samples so far.
    pub fn samples(&self) -> &Samples {
        &self.samples
    }

    /// Fills the grid up to `now` with the last total and returns the samples.
    pub fn finish(mut self, now: Instant) -> Samples {
        self.fill_to(now);
        self.samples
    }
}

/// A stall found in a [`Trace`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    /// How long the counter did not move.
    pub length: Duration,
    /// When it started (time since the start of sampling).
    pub at: Duration,
}

/// Cumulative byte counts polled at (roughly) regular instants.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// (time since the start, bytes so far).
    pub points: Vec<(Duration, u64)>,
}

impl Trace {
    /// The longest stall: the longest time the counter did not move between its first and
    /// last change. Before the first byte (connection setup) and after the last one (the
    /// transfer is over) do not count.
    pub fn longest_stall(&self) -> Stall {
        let mut best = Stall::default();
        let mut last_change: Option<Duration> = None;
        let mut prev: Option<u64> = None;
        for &(t, b) in &self.points {
            if let Some(p) = prev {
                if b != p {
                    if let Some(since) = last_change {
                        // The bytes arrived at some point in (previous sample, t]: count the
                        // stall from the last change to the sample before this one.
                        let gap = t.saturating_sub(since).saturating_sub(self.step_before(t));
                        if gap > best.length {
                            best = Stall {
                                length: gap,
                                at: since,
                            };
                        }
                    }
                    last_change = Some(t);
                }
            } else if b > 0 {
                last_change = Some(t);
            }
            prev = Some(b);
        }
        best
    }

    /// Sampling interval at `t` (time since the previous sample).
    fn step_before(&self, t: Duration) -> Duration {
        match self.points.binary_search_by(|(x, _)| x.cmp(&t)) {
            Ok(i) if i > 0 => t - self.points[i - 1].0,
            _ => Duration::ZERO,
        }
    }

    /// Bytes per bucket of `width`: the bytes that arrived in each.
    pub fn buckets(&self, width: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        let mut prev = 0u64;
        for &(t, b) in &self.points {
            let i = (t.as_nanos() / width.as_nanos().max(1)) as usize;
            if out.len() <= i {
                out.resize(i + 1, 0);
            }
            out[i] += b.saturating_sub(prev);
            prev = b;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn gap_counts_the_window_edges() {
        let t0 = Instant::now();
        let arr = [(t0 + ms(10), 5), (t0 + ms(20), 9), (t0 + ms(70), 12)];
        assert_eq!(longest_gap(&arr, t0, t0 + ms(80)), ms(50));
        assert_eq!(longest_gap(&arr, t0, t0 + ms(200)), ms(130));
        assert_eq!(longest_gap(&[], t0, t0 + ms(30)), ms(30));
        assert_eq!(received_at(&arr, t0 + ms(5)), 0);
        assert_eq!(received_at(&arr, t0 + ms(20)), 9);
        assert_eq!(received_at(&arr, t0 + ms(99)), 12);
    }

    #[test]
    fn sampler_fills_grid_points_with_the_total_before_each_read() {
        let t0 = Instant::now();
        let mut s = Sampler::new(t0);
        s.record(t0 + ms(5), 100);
        s.record(t0 + ms(25), 300); // points 10 and 20 ms: 100
        s.record(t0 + ms(27), 400);
        let samples = s.finish(t0 + ms(41)); // 30, 40 ms: 400
        assert_eq!(samples.bytes, [100, 100, 400, 400]);
        assert_eq!(samples.at(ms(9)), 0);
        assert_eq!(samples.at(ms(35)), 400);
    }

    #[test]
    fn grid_stall_counts_idle_points_inside_the_window() {
        let samples = Samples {
            interval: ms(10),
            // t=10..: progress, progress, idle x3, progress, idle, progress
            bytes: vec![10, 20, 20, 20, 20, 30, 30, 40],
        };
        assert_eq!(samples.longest_stall(ms(0), ms(80)), ms(30));
        // The window cuts the run: points 40 and 50 only.
        assert_eq!(samples.longest_stall(ms(30), ms(80)), ms(20));
        assert_eq!(samples.longest_stall(ms(0), ms(20)), ms(0));
        let steady = Samples {
            interval: ms(10),
            bytes: (1..=100).collect(),
        };
        assert_eq!(steady.longest_stall(ms(0), ms(1000)), Duration::ZERO);
    }

    fn trace(v: &[u64]) -> Trace {
        Trace {
            points: v
                .iter()
                .enumerate()
                .map(|(i, &b)| (ms(10 * i as u64), b))
                .collect(),
        }
    }

    #[test]
    fn trace_stall_ignores_setup_and_the_end() {
        // Setup (zeros), steady progress, a 60 ms gap (6 samples unchanged → 50 ms between
        // the last change and the sample before the next), then done and idle.
        let s = trace(&[
            0, 0, 0, 10, 20, 30, 30, 30, 30, 30, 30, 40, 50, 50, 50, 50, 50,
        ]);
        let st = s.longest_stall();
        assert_eq!(st.length, ms(50));
        assert_eq!(st.at, ms(50));
        assert_eq!(
            trace(&[0, 1, 2, 3, 4]).longest_stall().length,
            Duration::ZERO
        );
        assert_eq!(Trace::default().longest_stall(), Stall::default());
    }

    #[test]
    fn buckets_sum_the_increments() {
        let s = trace(&[0, 5, 10, 10, 30, 31]);
        // 10 ms samples, 20 ms buckets: [0,5] [10,10] [30,31]
        assert_eq!(s.buckets(ms(20)), vec![5, 5, 21]);
    }
}
