//! The bench protocol on the wire: the request, data and report frames, echo requests.

use super::lock;
use braid_testkit::stall::Trace;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) const MAGIC: &[u8; 4] = b"BRB1";

pub(super) const FRAME_DATA: u8 = 0;

pub(super) const FRAME_REPORT: u8 = 1;

pub(super) const CHUNK: usize = 64 * 1024;

pub(super) async fn send_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    until: Instant,
) -> std::io::Result<u64> {
    let mut frame = vec![0x5au8; 5 + CHUNK];
    frame[0] = FRAME_DATA;
    frame[1..5].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    let mut sent = 0;
    while Instant::now() < until {
        w.write_all(&frame).await?;
        sent += CHUNK as u64;
    }
    Ok(sent)
}

pub(super) async fn sink<R: AsyncRead + Unpin>(
    r: &mut R,
    count: &AtomicU64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(got);
        }
        got += n as u64;
        count.store(got, Ordering::Relaxed);
    }
}

/// Report: bytes u64, samples u32, then (microseconds u64, bytes u64) each; big endian.
pub(super) fn encode_report(received: u64, s: &Trace) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + 16 * s.points.len());
    v.extend_from_slice(&received.to_be_bytes());
    v.extend_from_slice(&(s.points.len() as u32).to_be_bytes());
    for (t, b) in &s.points {
        v.extend_from_slice(&(t.as_micros() as u64).to_be_bytes());
        v.extend_from_slice(&b.to_be_bytes());
    }
    v
}

pub(super) fn decode_report(v: &[u8]) -> Option<(u64, Trace)> {
    let received = u64::from_be_bytes(v.get(0..8)?.try_into().ok()?);
    let n = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) as usize;
    if v.len() != 12 + 16 * n {
        return None;
    }
    let mut s = Trace::default();
    for i in 0..n {
        let at = 12 + 16 * i;
        let t = u64::from_be_bytes(v[at..at + 8].try_into().ok()?);
        let b = u64::from_be_bytes(v[at + 8..at + 16].try_into().ok()?);
        s.points.push((Duration::from_micros(t), b));
    }
    Some((received, s))
}

/// Writes one request of `size` bytes every `every` until `until`; the send times go to
/// `sent` (since `start`).
pub(super) async fn echo_requests<W: AsyncWrite + Unpin>(
    w: &mut W,
    size: usize,
    every: Duration,
    start: Instant,
    until: Instant,
    sent: &std::sync::Mutex<Vec<Duration>>,
) -> std::io::Result<u64> {
    let mut buf = vec![0x3cu8; size];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return Ok(n * size as u64);
        }
        let seq = n.to_be_bytes();
        let k = seq.len().min(size);
        buf[..k].copy_from_slice(&seq[8 - k..]);
        lock(sent).push(start.elapsed());
        w.write_all(&buf).await?;
        n += 1;
    }
}

/// Reads echoed replies to the end; the latency of reply i is its arrival minus
/// `sent[i]`.
pub(super) async fn echo_replies<R: AsyncRead + Unpin>(
    r: &mut R,
    size: usize,
    start: Instant,
    sent: &std::sync::Mutex<Vec<Duration>>,
    latency: &std::sync::Mutex<Vec<Duration>>,
    count: &AtomicU64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(got);
        }
        let before = got / size as u64;
        got += n as u64;
        count.store(got, Ordering::Relaxed);
        let now = start.elapsed();
        let sent = lock(sent);
        let mut lat = lock(latency);
        for i in before..got / size as u64 {
            if let Some(t) = sent.get(i as usize) {
                lat.push(now.saturating_sub(*t));
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads download frames to the end. Returns (download bytes, the server's report).
pub(super) async fn read_frames<R: AsyncRead + Unpin>(
    r: &mut R,
    count: &AtomicU64,
) -> std::io::Result<(u64, (u64, Trace))> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let mut report = None;
    loop {
        let mut h = [0u8; 5];
        match r.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        match h[0] {
            FRAME_DATA => {
                let mut left = len;
                while left > 0 {
                    let n = r.read(&mut buf[..left.min(CHUNK)]).await?;
                    if n == 0 {
                        return Err(bad("the server closed in the middle of a frame"));
                    }
                    left -= n;
                    got += n as u64;
                    count.store(got, Ordering::Relaxed);
                }
            }
            FRAME_REPORT if len <= 64 << 20 => {
                let mut v = vec![0u8; len];
                r.read_exact(&mut v).await?;
                report = Some(decode_report(&v).ok_or_else(|| bad("bad report from the server"))?);
            }
            _ => return Err(bad("bad frame from the server")),
        }
    }
    let report =
        report.ok_or_else(|| bad("the server sent no report (is it a braid bench server?)"))?;
    Ok((got, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip_and_rejects_garbage() {
        let s = Trace {
            points: vec![
                (Duration::from_millis(10), 5),
                (Duration::from_millis(20), 9),
            ],
        };
        let v = encode_report(9, &s);
        let (n, d) = decode_report(&v).unwrap();
        assert_eq!(n, 9);
        assert_eq!(d.points, s.points);
        assert!(decode_report(&v[..v.len() - 1]).is_none());
        assert!(decode_report(&[]).is_none());
    }

    #[tokio::test]
    async fn echo_requests_and_replies_over_a_pipe() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let (mut sr, mut sw) = tokio::io::split(b);
        let echo = tokio::spawn(async move {
            tokio::io::copy(&mut sr, &mut sw).await.unwrap();
            sw.shutdown().await.unwrap();
        });
        let start = Instant::now();
        let sent = std::sync::Mutex::new(Vec::new());
        let lat = std::sync::Mutex::new(Vec::new());
        let count = AtomicU64::new(0);
        let (mut r, mut w) = tokio::io::split(&mut a);
        let writer = async {
            let n = echo_requests(
                &mut w,
                100,
                Duration::from_millis(5),
                start,
                start + Duration::from_millis(100),
                &sent,
            )
            .await
            .unwrap();
            w.shutdown().await.unwrap();
            n
        };
        let reader = echo_replies(&mut r, 100, start, &sent, &lat, &count);
        let (n, got) = tokio::join!(writer, reader);
        echo.await.unwrap();
        assert_eq!(got.unwrap(), n);
        assert!(n >= 500, "{n}");
        assert_eq!(lock(&lat).len(), lock(&sent).len());
    }

    #[tokio::test]
    async fn frames_and_report_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move {
            let n = send_frames(&mut a, Instant::now() + Duration::from_millis(50))
                .await
                .unwrap();
            let rep = encode_report(123, &Trace::default());
            a.write_all(&[FRAME_REPORT]).await.unwrap();
            a.write_all(&(rep.len() as u32).to_be_bytes())
                .await
                .unwrap();
            a.write_all(&rep).await.unwrap();
            a.shutdown().await.unwrap();
            n
        });
        let c = AtomicU64::new(0);
        let (got, (up, _)) = read_frames(&mut b, &c).await.unwrap();
        assert_eq!(got, t.await.unwrap());
        assert!(got > 0);
        assert_eq!(up, 123);
    }
}
