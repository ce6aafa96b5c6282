//! Bulk transfers over tokio I/O: write `n` bytes (or until a deadline) of a [`pattern`]
//! stream, read to the end, hash both, and poll byte counters into [`Trace`]s.
//!
//! [`pattern`]: crate::pattern

use crate::stall::Trace;
use crate::{Sha, Sha256, pattern};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;

/// When a sender stops.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    /// After this many bytes.
    Bytes(u64),
    /// At this instant.
    Until(Instant),
}

/// What a sender or receiver did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Bytes written or read.
    pub bytes: u64,
    /// SHA-256 of them (zeros if a receiver was asked not to hash).
    pub sha: Sha,
    /// First and last byte (receiver) or first write and shutdown (sender).
    pub first: Option<Instant>,
    /// See `first`.
    pub last: Option<Instant>,
}

/// Writes stream `seed` until `amount` is reached, then shuts the writer down.
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    seed: u64,
    amount: Amount,
) -> std::io::Result<Outcome> {
    let mut hash = Sha256::new();
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
        pattern::fill(seed, at, &mut buf[..n]);
        hash.update(&buf[..n]);
        w.write_all(&buf[..n]).await?;
        at += n as u64;
    }
    w.shutdown().await?;
    Ok(Outcome {
        bytes: at,
        sha: hash.finish(),
        first: Some(first),
        last: Some(Instant::now()),
    })
}

/// Reads to the end of the stream; `count` (if any) follows the bytes received; `hash`:
/// whether to compute the SHA-256 (it costs CPU a throughput test may not want to spend).
pub async fn recv<R: AsyncRead + Unpin>(
    r: &mut R,
    count: Option<&AtomicU64>,
    hash: bool,
) -> std::io::Result<Outcome> {
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut out = Outcome::default();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            if hash {
                out.sha = sha.finish();
            }
            return Ok(out);
        }
        let now = Instant::now();
        out.first.get_or_insert(now);
        out.last = Some(now);
        if hash {
            sha.update(&buf[..n]);
        }
        out.bytes += n as u64;
        if let Some(c) = count {
            c.store(out.bytes, Ordering::Relaxed);
        }
    }
}

/// Polls counters every `every` until finished, one [`Trace`] per counter.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Trace>>,
}

impl Sampler {
    /// Starts polling `counters` on a tokio task, the first tick at `start`.
    pub fn spawn(counters: Vec<Arc<AtomicU64>>, every: Duration, start: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = vec![Trace::default(); counters.len()];
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
    pub async fn finish(self) -> Vec<Trace> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn send_and_recv_agree() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let count = AtomicU64::new(0);
        let (s, r) = tokio::join!(
            send(&mut a, 9, Amount::Bytes(300_001)),
            recv(&mut b, Some(&count), true)
        );
        let (s, r) = (s.unwrap(), r.unwrap());
        assert_eq!(s.bytes, 300_001);
        assert_eq!(r.bytes, 300_001);
        assert_eq!(s.sha, r.sha);
        assert_eq!(s.sha, pattern::sha256(9, 300_001));
        assert_eq!(count.load(Ordering::Relaxed), 300_001);
    }

    #[tokio::test]
    async fn sampler_sees_the_counter_move() {
        let c = Arc::new(AtomicU64::new(0));
        let sampler = Sampler::spawn(vec![c.clone()], Duration::from_millis(2), Instant::now());
        tokio::time::sleep(Duration::from_millis(10)).await;
        c.store(42, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let traces = sampler.finish().await;
        let last = traces[0].points.last().copied().unwrap();
        assert_eq!(last.1, 42);
        assert_eq!(traces[0].points[0].1, 0);
    }
}
