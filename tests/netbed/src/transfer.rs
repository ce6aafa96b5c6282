//! Bulk transfers for tests and benchmarks: a sender that writes N bytes of a deterministic
//! pattern, a receiver that reads to EOF, SHA-256 at both ends, and progress samples every
//! 10 ms from which goodput and the longest stall are computed.
//!
//! The functions take any `Read` / `Write`, so the same code measures kernel TCP, kernel MPTCP
//! and Braid connections; [`Sampler`] can also be fed by hand (an async reader calls
//! `record` after each read).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ring::digest;

/// Default spacing of progress samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

const CHUNK: usize = 64 * 1024;

/// Fills `buf` with the pattern bytes at stream offset `offset` (a multiple of 8). Every
/// 8-byte word depends on its position, so reordered or duplicated data changes the hash.
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    debug_assert_eq!(offset % 8, 0);
    let first = offset / 8;
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = mix(first + i as u64).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a sender wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    pub bytes: u64,
    pub sha256: [u8; 32],
    /// From the first write call to the last one returning (data may still be in flight).
    pub elapsed: Duration,
}

/// Writes `len` pattern bytes; `progress` (if any) follows the bytes written.
pub fn send(w: &mut impl Write, len: u64, progress: Option<&AtomicU64>) -> io::Result<SendReport> {
    let start = Instant::now();
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(CHUNK as u64) as usize;
        fill_pattern(sent, &mut buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| {
            io::Error::new(e.kind(), format!("send: after {sent} of {len} bytes: {e}"))
        })?;
        ctx.update(&buf[..n]);
        sent += n as u64;
        if let Some(p) = progress {
            p.store(sent, Ordering::Relaxed);
        }
    }
    w.flush()?;
    Ok(SendReport {
        bytes: sent,
        sha256: finish(ctx),
        elapsed: start.elapsed(),
    })
}

/// Ends a sender's side of a TCP (or MPTCP) connection cleanly: shuts down writing, then
/// waits (up to `timeout`) for the receiver to close, so that every byte was read before the
/// socket goes away.
pub fn finish_sending(stream: &mut TcpStream, timeout: Duration) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("waiting for the receiver to close: {e}"),
                ));
            }
        }
    }
}

/// What a receiver read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiveReport {
    pub bytes: u64,
    pub sha256: [u8; 32],
    /// When `receive` started; the samples count from here.
    pub started: Instant,
    pub first_byte: Option<Duration>,
    pub last_byte: Option<Duration>,
    pub samples: Samples,
}

impl ReceiveReport {
    /// First byte to last byte.
    pub fn transfer_time(&self) -> Option<Duration> {
        Some(self.last_byte?.saturating_sub(self.first_byte?))
    }

    /// Bits per second from the first byte to the last.
    pub fn goodput_bps(&self) -> f64 {
        match self.transfer_time() {
            Some(t) if !t.is_zero() => self.bytes as f64 * 8.0 / t.as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The longest stall between the first and the last byte.
    pub fn longest_stall(&self) -> Duration {
        match (self.first_byte, self.last_byte) {
            (Some(a), Some(b)) => longest_stall(&self.samples, a, b),
            _ => Duration::ZERO,
        }
    }
}

/// Reads to EOF, hashing and sampling; `progress` (if any) follows the bytes read.
pub fn receive(r: &mut impl Read, progress: Option<&AtomicU64>) -> io::Result<ReceiveReport> {
    let started = Instant::now();
    let mut sampler = Sampler::new(started);
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut first_byte = None;
    let mut last_byte = None;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("receive: after {total} bytes: {e}"),
                ));
            }
        };
        let now = Instant::now();
        ctx.update(&buf[..n]);
        total += n as u64;
        first_byte.get_or_insert(now - started);
        last_byte = Some(now - started);
        sampler.record(now, total);
        if let Some(p) = progress {
            p.store(total, Ordering::Relaxed);
        }
    }
    Ok(ReceiveReport {
        bytes: total,
        sha256: finish(ctx),
        started,
        first_byte,
        last_byte,
        samples: sampler.finish(Instant::now()),
    })
}

fn finish(ctx: digest::Context) -> [u8; 32] {
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The SHA-256 of the first `len` pattern bytes: what a correct receiver must compute.
pub fn pattern_sha256(len: u64) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        fill_pattern(off, &mut buf[..n]);
        ctx.update(&buf[..n]);
        off += n as u64;
    }
    finish(ctx)
}

/// Cumulative bytes received, sampled on a fixed grid: `bytes[k]` is the total at
/// `(k + 1) × interval` after the start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub interval: Duration,
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
}

/// Turns (time, cumulative bytes) observations into [`Samples`]. Call `record` after every
/// read with the new total; the samples for the grid points since the previous call get the
/// total from before this read (those bytes arrived after them), which is exact for a reader
/// that blocks in `read` while nothing arrives.
#[derive(Clone, Debug)]
pub struct Sampler {
    start: Instant,
    total: u64,
    samples: Samples,
}

impl Sampler {
    pub fn new(start: Instant) -> Self {
        Self::with_interval(start, SAMPLE_INTERVAL)
    }

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

    pub fn samples(&self) -> &Samples {
        &self.samples
    }

    /// Fills the grid up to `now` with the last total and returns the samples.
    pub fn finish(mut self, now: Instant) -> Samples {
        self.fill_to(now);
        self.samples
    }
}

/// The longest time without progress within `[from, to]` (times since the samples' start):
/// the longest run of consecutive grid points in that window whose total did not grow since
/// the previous point, times the interval. 0 for a steady flow; resolution one interval.
pub fn longest_stall(samples: &Samples, from: Duration, to: Duration) -> Duration {
    let dt = samples.interval;
    let mut best = 0u32;
    let mut run = 0u32;
    for (k, &b) in samples.bytes.iter().enumerate() {
        let t = dt * (k as u32 + 1);
        if t <= from {
            continue;
        }
        if t > to {
            break;
        }
        let prev = if k == 0 { 0 } else { samples.bytes[k - 1] };
        if b == prev {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    dt * best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn send_and_receive_agree_over_a_pipe() {
        let mut wire = Vec::new();
        let sent = send(&mut wire, 1_000_003, None).unwrap();
        assert_eq!(sent.bytes, 1_000_003);
        let got = receive(&mut wire.as_slice(), None).unwrap();
        assert_eq!(got.bytes, sent.bytes);
        assert_eq!(got.sha256, sent.sha256);
        assert_eq!(pattern_sha256(1_000_003), sent.sha256);
        // A swapped pair of words changes the hash.
        wire.swap(0, 8);
        let bad = receive(&mut wire.as_slice(), None).unwrap();
        assert_ne!(bad.sha256, sent.sha256);
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
    fn longest_stall_counts_idle_points_inside_the_window() {
        let samples = Samples {
            interval: ms(10),
            // t=10..: progress, progress, idle x3, progress, idle, progress
            bytes: vec![10, 20, 20, 20, 20, 30, 30, 40],
        };
        assert_eq!(longest_stall(&samples, ms(0), ms(80)), ms(30));
        // The window cuts the run: points 40 and 50 only.
        assert_eq!(longest_stall(&samples, ms(30), ms(80)), ms(20));
        assert_eq!(longest_stall(&samples, ms(0), ms(20)), ms(0));
        let steady = Samples {
            interval: ms(10),
            bytes: (1..=100).collect(),
        };
        assert_eq!(longest_stall(&steady, ms(0), ms(1000)), Duration::ZERO);
    }
}
