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

pub use braid_testkit::hex;
pub use braid_testkit::stall::{SAMPLE_INTERVAL, Sampler, Samples};
use braid_testkit::{Sha256, pattern};

/// The test kit's stream this testbed sends (one direction per transfer, so one seed).
const SEED: u64 = 1;

const CHUNK: usize = 64 * 1024;

/// Fills `buf` with the pattern bytes at stream offset `offset`.
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    pattern::fill(SEED, offset, buf);
}

/// The SHA-256 of the first `len` pattern bytes: what a correct receiver must compute.
pub fn pattern_sha256(len: u64) -> [u8; 32] {
    pattern::sha256(SEED, len)
}

/// The longest time without progress within `[from, to]` (see [`Samples::longest_stall`]).
pub fn longest_stall(samples: &Samples, from: Duration, to: Duration) -> Duration {
    samples.longest_stall(from, to)
}

/// What a sender wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    pub bytes: u64,
    pub sha256: [u8; 32],
    /// From the first write call to the last one returning (data may still be in flight).
    pub elapsed: Duration,
}

/// A sender's state: the next pattern chunk to write, the hash of what was produced. The
/// sync [`send`] and the async senders of the tests share it.
pub struct Outgoing {
    start: Instant,
    hash: Sha256,
    sent: u64,
    len: u64,
    buf: Vec<u8>,
}

impl Outgoing {
    /// A sender of `len` pattern bytes.
    pub fn new(len: u64) -> Self {
        Self {
            start: Instant::now(),
            hash: Sha256::new(),
            sent: 0,
            len,
            buf: vec![0u8; CHUNK],
        }
    }

    /// The next chunk (counted as sent and hashed), or None when all `len` bytes were.
    pub fn next_chunk(&mut self) -> Option<&[u8]> {
        let n = (self.len - self.sent).min(CHUNK as u64) as usize;
        if n == 0 {
            return None;
        }
        fill_pattern(self.sent, &mut self.buf[..n]);
        self.hash.update(&self.buf[..n]);
        self.sent += n as u64;
        Some(&self.buf[..n])
    }

    /// Bytes handed out so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// An error after a failed write, saying how far the sender got.
    pub fn write_error(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("send: after {} of {} bytes: {e}", self.sent, self.len),
        )
    }

    /// What was sent.
    pub fn finish(self) -> SendReport {
        SendReport {
            bytes: self.sent,
            sha256: self.hash.finish(),
            elapsed: self.start.elapsed(),
        }
    }
}

/// Writes `len` pattern bytes; `progress` (if any) follows the bytes written.
pub fn send(w: &mut impl Write, len: u64, progress: Option<&AtomicU64>) -> io::Result<SendReport> {
    let mut out = Outgoing::new(len);
    while let Some(chunk) = out.next_chunk() {
        if let Err(e) = w.write_all(chunk) {
            return Err(out.write_error(e));
        }
        if let Some(p) = progress {
            p.store(out.sent(), Ordering::Relaxed);
        }
    }
    w.flush()?;
    Ok(out.finish())
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

/// A receiver's state: hash, byte count, first and last byte, progress samples. The sync
/// [`receive`] and the async receivers of the tests share it.
pub struct Incoming {
    started: Instant,
    sampler: Sampler,
    hash: Sha256,
    total: u64,
    first_byte: Option<Duration>,
    last_byte: Option<Duration>,
}

impl Incoming {
    /// A receiver starting now (the samples count from here).
    pub fn new() -> Self {
        let started = Instant::now();
        Self {
            started,
            sampler: Sampler::new(started),
            hash: Sha256::new(),
            total: 0,
            first_byte: None,
            last_byte: None,
        }
    }

    /// Accounts for `data`, just read; returns the total so far.
    pub fn record(&mut self, data: &[u8]) -> u64 {
        let now = Instant::now();
        self.hash.update(data);
        self.total += data.len() as u64;
        self.first_byte.get_or_insert(now - self.started);
        self.last_byte = Some(now - self.started);
        self.sampler.record(now, self.total);
        self.total
    }

    /// An error after a failed read, saying how far the receiver got.
    pub fn read_error(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("receive: after {} bytes: {e}", self.total),
        )
    }

    /// What was received.
    pub fn finish(self) -> ReceiveReport {
        ReceiveReport {
            bytes: self.total,
            sha256: self.hash.finish(),
            started: self.started,
            first_byte: self.first_byte,
            last_byte: self.last_byte,
            samples: self.sampler.finish(Instant::now()),
        }
    }
}

impl Default for Incoming {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads to EOF, hashing and sampling; `progress` (if any) follows the bytes read.
pub fn receive(r: &mut impl Read, progress: Option<&AtomicU64>) -> io::Result<ReceiveReport> {
    let mut rx = Incoming::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(rx.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(rx.read_error(e)),
        };
        let total = rx.record(&buf[..n]);
        if let Some(p) = progress {
            p.store(total, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
