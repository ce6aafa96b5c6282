//! Test data and measurements shared by `demo` and `bench`: a deterministic byte stream, its
//! SHA-256 on both ends, receive counters sampled every 10 ms, and the longest stall.

use ring::digest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub type Sha = [u8; 32];

const CHUNK: usize = 64 * 1024;

/// Fills `buf` with stream `seed` from byte offset `at` (a splitmix64 per 8-byte word).
pub fn fill(seed: u64, at: u64, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let off = at + i as u64;
        let word = mix((off / 8).wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let bytes = word.to_le_bytes();
        let from = (off % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&bytes[from..from + n]);
        i += n;
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn hex(sha: &Sha) -> String {
    sha.iter().map(|b| format!("{b:02x}")).collect()
}

/// When a sender stops.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    Bytes(u64),
    /// Until this instant.
    Until(Instant),
}

/// What a sender or receiver did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub bytes: u64,
    pub sha: Sha,
    /// First and last byte (receiver) or first write and shutdown (sender).
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

/// Writes stream `seed` until `amount` is reached, then shuts the writer down.
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    seed: u64,
    amount: Amount,
) -> std::io::Result<Outcome> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    let first = Instant::now();
    loop {
        let n = match amount {
            Amount::Bytes(len) => ((len - at) as usize).min(CHUNK),
            Amount::Until(t) if Instant::now() >= t => 0,
            Amount::Until(_) => CHUNK,
        };
        if n == 0 {
            break;
        }
        fill(seed, at, &mut buf[..n]);
        ctx.update(&buf[..n]);
        w.write_all(&buf[..n]).await?;
        at += n as u64;
    }
    w.shutdown().await?;
    Ok(Outcome {
        bytes: at,
        sha: ctx.finish().as_ref().try_into().unwrap_or([0; 32]),
        first: Some(first),
        last: Some(Instant::now()),
    })
}

/// Reads to the end of the stream; `count` follows the bytes received.
pub async fn recv<R: AsyncRead + Unpin>(
    r: &mut R,
    count: &AtomicU64,
    hash: bool,
) -> std::io::Result<Outcome> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut out = Outcome::default();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            out.sha = ctx.finish().as_ref().try_into().unwrap_or([0; 32]);
            return Ok(out);
        }
        let now = Instant::now();
        out.first.get_or_insert(now);
        out.last = Some(now);
        if hash {
            ctx.update(&buf[..n]);
        }
        out.bytes += n as u64;
        count.store(out.bytes, Ordering::Relaxed);
    }
}

/// Cumulative byte counts taken at regular instants.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// (time since the start, bytes so far).
    pub points: Vec<(Duration, u64)>,
}

/// A stall: the longest time the counter did not move between its first and last change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    pub length: Duration,
    /// When it started (time since the start of sampling).
    pub at: Duration,
}

impl Samples {
    /// The longest stall. Before the first byte (connection setup) and after the last one
    /// (the transfer is over) do not count.
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

    /// Bytes per bucket of `width`: (bucket start, bytes in it).
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

/// Samples counters every `every` until `stop` is set.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Samples>>,
}

impl Sampler {
    pub fn spawn(counters: Vec<Arc<AtomicU64>>, every: Duration, start: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = vec![Samples::default(); counters.len()];
            let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start), every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let t = start.elapsed();
                for (c, o) in counters.iter().zip(out.iter_mut()) {
                    o.points.push((t, c.load(Ordering::Relaxed)));
                }
                if s.load(Ordering::Relaxed) {
                    return out;
                }
            }
        });
        Self { stop, task }
    }

    /// Takes a last sample and returns them all.
    pub async fn finish(self) -> Vec<Samples> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn samples(v: &[u64]) -> Samples {
        Samples {
            points: v
                .iter()
                .enumerate()
                .map(|(i, &b)| (ms(10 * i as u64), b))
                .collect(),
        }
    }

    #[test]
    fn fill_is_position_independent() {
        let mut whole = vec![0u8; 1000];
        fill(3, 5, &mut whole);
        let mut parts = vec![0u8; 1000];
        let (a, b) = parts.split_at_mut(333);
        fill(3, 5, a);
        fill(3, 5 + 333, b);
        assert_eq!(whole, parts);
        let mut other = vec![0u8; 1000];
        fill(4, 5, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn stall_ignores_setup_and_the_end() {
        // Setup (zeros), steady progress, a 60 ms gap (6 samples unchanged → 50 ms between
        // the last change and the sample before the next), then done and idle.
        let s = samples(&[
            0, 0, 0, 10, 20, 30, 30, 30, 30, 30, 30, 40, 50, 50, 50, 50, 50,
        ]);
        let st = s.longest_stall();
        assert_eq!(st.length, ms(50));
        assert_eq!(st.at, ms(50));
        // Steady: no stall beyond zero.
        let s = samples(&[0, 1, 2, 3, 4]);
        assert_eq!(s.longest_stall().length, Duration::ZERO);
        assert_eq!(Samples::default().longest_stall(), Stall::default());
    }

    #[test]
    fn buckets_sum_the_increments() {
        let s = samples(&[0, 5, 10, 10, 30, 31]);
        // 10 ms samples, 20 ms buckets: [0,5] [10,10] [30,31]
        assert_eq!(s.buckets(ms(20)), vec![5, 5, 21]);
    }

    #[tokio::test]
    async fn send_and_recv_agree() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let c2 = AtomicU64::new(0);
        let (s, r) = tokio::join!(
            send(&mut a, 9, Amount::Bytes(300_001)),
            recv(&mut b, &c2, true)
        );
        let (s, r) = (s.unwrap(), r.unwrap());
        assert_eq!(s.bytes, 300_001);
        assert_eq!(r.bytes, 300_001);
        assert_eq!(s.sha, r.sha);
        assert_eq!(c2.load(Ordering::Relaxed), 300_001);
    }
}
