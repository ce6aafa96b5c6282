//! Per-path throughput over time: delivered bytes bucketed per path per interval, for plots
//! and for checks such as "the new path reached full speed within 0.5 s".

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct PathMeter {
    interval: Duration,
    /// `bytes[path][bucket]`: bytes delivered on `path` during bucket `bucket`.
    bytes: Vec<Vec<u64>>,
}

impl PathMeter {
    pub fn new(interval: Duration) -> Self {
        assert!(!interval.is_zero(), "meter interval must be positive");
        Self {
            interval,
            bytes: Vec::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Counts `bytes` delivered on `path` at `at` (time since the start of the measurement).
    pub fn record(&mut self, path: usize, at: Duration, bytes: usize) {
        let bucket = (at.as_nanos() / self.interval.as_nanos()) as usize;
        if self.bytes.len() <= path {
            self.bytes.resize_with(path + 1, Vec::new);
        }
        let series = &mut self.bytes[path];
        if series.len() <= bucket {
            series.resize(bucket + 1, 0);
        }
        series[bucket] += bytes as u64;
    }

    /// Number of paths seen so far (highest index + 1).
    pub fn paths(&self) -> usize {
        self.bytes.len()
    }

    /// Number of buckets of the longest series.
    pub fn buckets(&self) -> usize {
        self.bytes.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Bytes per bucket on `path`; shorter than `buckets()` if the path went quiet earlier.
    pub fn series(&self, path: usize) -> &[u64] {
        self.bytes.get(path).map_or(&[], Vec::as_slice)
    }

    /// Bytes delivered on `path` in bucket `bucket` (0 past the end).
    pub fn bytes_in(&self, path: usize, bucket: usize) -> u64 {
        self.series(path).get(bucket).copied().unwrap_or(0)
    }

    /// Throughput of `path` in bucket `bucket`, in bits per second.
    pub fn rate_bps(&self, path: usize, bucket: usize) -> f64 {
        self.bytes_in(path, bucket) as f64 * 8.0 / self.interval.as_secs_f64()
    }

    pub fn total(&self, path: usize) -> u64 {
        self.series(path).iter().sum()
    }

    /// Comma-separated table: `t_s,path0_bps,path1_bps,...`, one row per bucket.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("t_s");
        for path in 0..self.paths() {
            out.push_str(&format!(",path{path}_bps"));
        }
        out.push('\n');
        for bucket in 0..self.buckets() {
            let t = self.interval.as_secs_f64() * bucket as f64;
            out.push_str(&format!("{t:.3}"));
            for path in 0..self.paths() {
                out.push_str(&format!(",{:.0}", self.rate_bps(path, bucket)));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bytes_per_path_and_interval() {
        let mut m = PathMeter::new(Duration::from_millis(100));
        m.record(0, Duration::from_millis(10), 1000);
        m.record(0, Duration::from_millis(99), 500);
        m.record(0, Duration::from_millis(100), 250);
        m.record(2, Duration::from_millis(350), 125);
        assert_eq!(m.paths(), 3);
        assert_eq!(m.buckets(), 4);
        assert_eq!(m.series(0), &[1500, 250]);
        assert_eq!(m.series(1), &[] as &[u64]);
        assert_eq!(m.bytes_in(2, 3), 125);
        assert_eq!(m.rate_bps(0, 0), 1500.0 * 8.0 * 10.0);
        assert_eq!(m.total(0), 1750);
        let csv = m.to_csv();
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.starts_with("t_s,path0_bps,path1_bps,path2_bps\n0.000,120000,0,0\n"));
    }
}
