//! Test and benchmark support: an [`Endpoint`] with a bulk-transfer application, as a
//! simulator [`Node`]. The application writes a deterministic byte stream, reads and hashes
//! what arrives, and records when bytes arrived (for stall measurements).

use crate::conn::{ConnectionConfig, Event, ReadError};
use crate::endpoint::{ConnectionHandle, Endpoint, EndpointConfig};
use crate::path::PathSpec;
use crate::random::SeededRandom;
use crate::sim::Node;
use ring::digest;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The byte at stream offset `i` of the test stream with `seed`: pseudo-random, so that
/// misplaced data changes the hash, and computable at any offset.
pub fn stream_byte(seed: u64, i: u64) -> u8 {
    stream_word(seed, i / 8).to_le_bytes()[(i % 8) as usize]
}

/// Fills `dst` with the stream from offset `at`.
pub fn fill_stream(seed: u64, at: u64, dst: &mut [u8]) {
    let mut i = 0;
    // Unaligned head, then whole 8-byte words, then the tail.
    while i < dst.len() && (at + i as u64) % 8 != 0 {
        dst[i] = stream_byte(seed, at + i as u64);
        i += 1;
    }
    while i + 8 <= dst.len() {
        let word = stream_word(seed, (at + i as u64) / 8);
        dst[i..i + 8].copy_from_slice(&word.to_le_bytes());
        i += 8;
    }
    while i < dst.len() {
        dst[i] = stream_byte(seed, at + i as u64);
        i += 1;
    }
}

fn stream_word(seed: u64, w: u64) -> u64 {
    let mut z = w.wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SHA-256 of the first `len` bytes of the stream.
pub fn stream_sha256(seed: u64, len: u64) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        fill_stream(seed, at, &mut buf[..n]);
        ctx.update(&buf[..n]);
        at += n as u64;
    }
    ctx.finish().as_ref().try_into().unwrap_or([0; 32])
}

/// One side of a bulk transfer on one connection.
pub struct App {
    pub handle: ConnectionHandle,
    /// Bytes to send, then shut down (None: send nothing and never shut down).
    pub to_send: u64,
    pub stream_seed: u64,
    pub sent: u64,
    pub shutdown_sent: bool,
    pub received: u64,
    pub peer_finished: bool,
    recv_hash: Option<digest::Context>,
    pub received_sha: Option<[u8; 32]>,
    /// (time, bytes received so far), sampled on every read.
    pub arrivals: Vec<(Instant, u64)>,
    pub events: Vec<(Instant, Event)>,
    pub closed: bool,
    pub connected_at: Option<Instant>,
    pub finished_at: Option<Instant>,
    scratch: Vec<u8>,
}

impl App {
    pub fn new(handle: ConnectionHandle, to_send: u64, stream_seed: u64) -> Self {
        Self {
            handle,
            to_send,
            stream_seed,
            sent: 0,
            shutdown_sent: false,
            received: 0,
            peer_finished: false,
            recv_hash: Some(digest::Context::new(&digest::SHA256)),
            received_sha: None,
            arrivals: Vec::new(),
            events: Vec::new(),
            closed: false,
            connected_at: None,
            finished_at: None,
            scratch: vec![0u8; 64 * 1024],
        }
    }

    /// The longest time between two arrivals of new bytes, between `from` and `to`.
    pub fn longest_stall(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut worst = Duration::ZERO;
        for &(t, _) in &self.arrivals {
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

    /// Bytes received by `t`.
    pub fn received_at(&self, t: Instant) -> u64 {
        let i = self.arrivals.partition_point(|&(at, _)| at <= t);
        if i == 0 { 0 } else { self.arrivals[i - 1].1 }
    }
}

/// A simulator node: an endpoint plus the applications on its connections.
pub struct Host {
    pub ep: Endpoint,
    pub apps: Vec<App>,
    /// Server side: bytes each accepted connection sends back.
    pub accept_send: u64,
    pub accept_seed: u64,
    scratch: Vec<u8>,
}

impl Host {
    pub fn new(cfg: EndpointConfig, seed: u64) -> Self {
        Self {
            ep: Endpoint::new(cfg, Box::new(SeededRandom::new(seed))),
            apps: Vec::new(),
            accept_send: 0,
            accept_seed: 0,
            scratch: vec![0u8; 65_536],
        }
    }

    /// A client connection sending `bytes` of stream `seed`.
    pub fn connect(
        &mut self,
        now: Instant,
        cfg: Option<ConnectionConfig>,
        path: PathSpec,
        remote: SocketAddr,
        bytes: u64,
        seed: u64,
    ) -> ConnectionHandle {
        let h = self.ep.connect(now, cfg, path, remote);
        self.apps.push(App::new(h, bytes, seed));
        h
    }

    pub fn app(&self, h: ConnectionHandle) -> Option<&App> {
        self.apps.iter().find(|a| a.handle == h)
    }

    /// Moves application data in and out of every connection.
    pub fn pump(&mut self, now: Instant) {
        while let Some(h) = self.ep.accept() {
            self.apps
                .push(App::new(h, self.accept_send, self.accept_seed));
        }
        while let Some((h, ev)) = self.ep.poll_event() {
            if let Some(app) = self.apps.iter_mut().find(|a| a.handle == h) {
                match &ev {
                    Event::Connected => app.connected_at = Some(now),
                    Event::Closed(_) => {
                        app.closed = true;
                        app.finished_at.get_or_insert(now);
                    }
                    _ => {}
                }
                app.events.push((now, ev));
            }
        }
        for app in &mut self.apps {
            let Some(conn) = self.ep.connection_mut(app.handle) else {
                continue;
            };
            // Write.
            while app.sent < app.to_send {
                let n = ((app.to_send - app.sent) as usize)
                    .min(app.scratch.len())
                    .min(conn.send_capacity());
                if n == 0 {
                    break;
                }
                fill_stream(app.stream_seed, app.sent, &mut app.scratch[..n]);
                match conn.write(&app.scratch[..n]) {
                    Ok(k) => app.sent += k as u64,
                    Err(_) => break,
                }
            }
            if app.sent >= app.to_send && !app.shutdown_sent && app.to_send > 0 {
                conn.shutdown();
                app.shutdown_sent = true;
            }
            // Read.
            loop {
                match conn.read(&mut self.scratch) {
                    Ok(0) => {
                        if !app.peer_finished {
                            app.peer_finished = true;
                            if let Some(ctx) = app.recv_hash.take() {
                                app.received_sha = ctx.finish().as_ref().try_into().ok();
                            }
                            if app.to_send == 0 && !app.shutdown_sent {
                                conn.shutdown();
                                app.shutdown_sent = true;
                            }
                        }
                        break;
                    }
                    Ok(n) => {
                        if let Some(ctx) = app.recv_hash.as_mut() {
                            ctx.update(&self.scratch[..n]);
                        }
                        app.received += n as u64;
                        app.arrivals.push((now, app.received));
                    }
                    Err(ReadError::Blocked) | Err(ReadError::ConnectionLost(_)) => break,
                }
            }
        }
    }
}

impl Node for Host {
    fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let _ = self.ep.handle_segment(now, dst, src, payload);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.pump(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        self.pump(now);
        let t = self.ep.poll_transmit(now, &mut self.scratch)?;
        buf.extend_from_slice(&self.scratch[..t.len]);
        Some((t.local, t.remote))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
}
