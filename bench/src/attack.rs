//! Attack scenarios against an in-process gateway, shared by the CI tests (`tests/attack.rs`,
//! debug build, short) and `braid-bench attack` (release build, longer, repeated):
//!
//! - [`reassembly_flood`]: a malicious client with a real connection through the gateway
//!   sends 1-byte out-of-order DSS pieces that can never be delivered (the byte before them
//!   is never sent), while an honest client probes an echo server through the same gateway.
//! - [`syn_flood`]: spoofed-looking SYNs (a new source port, and address in 127/8, for each)
//!   while honest clients behind a 100 ms RTT path connect.
//! - [`forged_segments`]: an attacker that knows only one subflow's 4-tuple forges DATA_FIN,
//!   infinite mapping, REMOVE_ADDR, MP_PRIO, DATA_ACK and RSTs during a two-path transfer.

use braid::emulator::PathEmulator;
use braid::gateway::{Gateway, GatewayConfig};
use braid::{Client, ConnectionEvent, Interface, InterfaceKind, ServiceType, convert};
use braid_proto::random::SystemRandom;
use braid_proto::sim::link::LinkConfig;
use braid_proto::wire::{
    self, DataSeq, Dss, DssMapping, MpCapable, MpCapableFlags, MpCapableKeys, MpPrio, MptcpOption,
    RemoveAddr, SeqNum, TcpFlags, TcpOptions, TcpRepr,
};
use braid_proto::{Endpoint, EndpointConfig, Event, PathSpec};
use braid_testkit::pattern;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

pub type Result<T> = std::result::Result<T, String>;

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// min, median, max.
pub fn spread(v: &[Duration]) -> (Duration, Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    match s.len() {
        0 => (Duration::ZERO, Duration::ZERO, Duration::ZERO),
        n => (s[0], s[n / 2], s[n - 1]),
    }
}

/// A TCP echo server on loopback.
pub async fn tcp_echo() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}

/// A TCP server that reads and discards everything.
pub async fn tcp_sink() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

/// A gateway on loopback with default limits, allowing `targets`.
pub async fn gateway(targets: &[SocketAddr]) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let cfg = GatewayConfig {
        allow: targets.iter().map(|t| t.to_string()).collect(),
        ..GatewayConfig::default()
    };
    let gw = Gateway::bind("127.0.0.1:0".parse().map_err(|_| "address")?, cfg)
        .await
        .map_err(|e| format!("gateway: {e}"))?;
    let addr = gw.local_addr();
    Ok((addr, gw.spawn()))
}

/// Echo round trips through the gateway every `every` until `stop`; each takes at most
/// `limit` (a round trip that does not come back counts as `limit` and as a failure).
async fn probe(
    client: Client,
    gw: SocketAddr,
    echo: SocketAddr,
    every: Duration,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(Vec<Duration>, usize)> {
    let mut conn = tokio::time::timeout(limit * 5, client.connect_via(gw, &echo.to_string()))
        .await
        .map_err(|_| "honest probe connection timed out".to_string())?
        .map_err(|e| format!("honest probe connection: {e}"))?;
    let mut times = Vec::new();
    let mut failed = 0;
    let msg = [0x5au8; 64];
    let mut back = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let rt = async {
            conn.write_all(&msg).await?;
            conn.read_exact(&mut back).await
        };
        match tokio::time::timeout(limit, rt).await {
            Ok(Ok(_)) if back == msg => times.push(t.elapsed()),
            _ => {
                failed += 1;
                times.push(limit);
            }
        }
        tokio::time::sleep(every.saturating_sub(t.elapsed())).await;
    }
    Ok((times, failed))
}

/// Parameters of [`reassembly_flood`].
#[derive(Clone, Debug)]
pub struct FloodConfig {
    /// Out-of-order pieces per second.
    pub rate: u64,
    pub duration: Duration,
    /// Time between honest echo probes.
    pub probe_every: Duration,
    /// A probe slower than this counts as failed.
    pub probe_limit: Duration,
}

#[derive(Clone, Debug)]
pub struct FloodReport {
    pub pieces: u64,
    /// Pieces per second actually sent.
    pub achieved_rate: f64,
    pub probes: Vec<Duration>,
    pub probe_failures: usize,
    /// Peak resident memory during the flood minus the level just before it.
    pub rss_growth: i64,
    /// Gateway ACKs whose SACK blocks cover flood pieces: proof the pieces passed the
    /// subflow's window checks and are held for reassembly.
    pub sacked: u64,
}

/// What the malicious client learned about its own connection from what it sent.
#[derive(Clone, Copy, Debug, Default)]
struct Position {
    iss: u32,
    /// Next subflow sequence number and the ACK field it last sent.
    seq: u32,
    ack: u32,
    /// Next data sequence number on the wire (and whether the engine used 64 bits).
    dsn: u64,
    wide: bool,
    data_ack: Option<DataSeq>,
}

impl Position {
    fn observe(&mut self, seg: &TcpRepr, payload: usize) {
        if seg.flags.contains(TcpFlags::SYN) {
            self.iss = seg.seq.0;
            self.seq = seg.seq.0.wrapping_add(1);
            return;
        }
        let end = seg.seq.0.wrapping_add(payload as u32);
        if SeqNum(end) > SeqNum(self.seq) {
            self.seq = end;
        }
        self.ack = seg.ack.0;
        if let Some(d) = seg.options.dss() {
            if let Some(a) = d.data_ack {
                self.data_ack = Some(a);
            }
            if let Some(m) = d.mapping {
                let end = m.dsn.value().wrapping_add(u64::from(m.data_len));
                self.wide = m.dsn.is_wide();
                self.dsn = end;
            }
        }
        // The first data may ride in MP_CAPABLE with an implicit mapping at DSN offset 1.
        if let Some(MpCapable {
            keys:
                MpCapableKeys::AckData {
                    sender_key,
                    data_len,
                    ..
                },
            ..
        }) = seg.options.mp_capable()
        {
            let end = wire::idsn(*sender_key).wrapping_add(1 + u64::from(*data_len));
            if seg.options.dss().and_then(|d| d.mapping).is_none() {
                self.dsn = end;
                self.wide = true;
            }
        }
    }
}

/// A client whose engine is driven by hand over one UDP socket, so that after the handshake
/// and the Convert exchange it can send segments the engine never would.
struct RawClient {
    ep: Endpoint,
    sock: UdpSocket,
    local: SocketAddr,
    gw: SocketAddr,
    pos: Position,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(gw: SocketAddr, target: SocketAddr) -> Result<RawClient> {
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let local = sock.local_addr().map_err(|e| e.to_string())?;
        let mut ep = Endpoint::new(EndpointConfig::default(), Box::new(SystemRandom::new()));
        let h = ep.connect(
            Instant::now(),
            None,
            PathSpec::new(braid_proto::PathId::new(1), InterfaceKind::Wifi, local),
            gw,
        );
        let mut c = RawClient {
            ep,
            sock,
            local,
            gw,
            pos: Position::default(),
            buf: vec![0u8; 65536],
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut connected = false;
        let mut wrote = false;
        let mut answer = Vec::new();
        while Instant::now() < deadline {
            c.drive(Duration::from_millis(20)).await?;
            while let Some((_, ev)) = c.ep.poll_event() {
                match ev {
                    Event::Connected => connected = true,
                    Event::Closed(e) => return Err(format!("malicious client closed: {e}")),
                    _ => {}
                }
            }
            let Some(conn) = c.ep.connection_mut(h) else {
                return Err("malicious client connection vanished".into());
            };
            if connected && !wrote {
                conn.write(&convert::encode_connect(target))
                    .map_err(|e| e.to_string())?;
                wrote = true;
            }
            let mut tmp = [0u8; 64];
            while let Ok(n) = conn.read(&mut tmp) {
                if n == 0 {
                    return Err("gateway closed the malicious client".into());
                }
                answer.extend_from_slice(&tmp[..n]);
            }
            // The gateway's answer is the bare 4-byte header; once it is here and our
            // Convert message is acknowledged, the position is settled.
            if answer.len() >= convert::HEADER_LEN && conn.all_acked() {
                let m = convert::decode(&answer[..convert::HEADER_LEN])
                    .map_err(|e| format!("gateway answer: {e}"))?;
                if let Some((code, _)) = m.error {
                    return Err(format!("gateway refused the malicious client: {code}"));
                }
                // Let the last ACKs go out.
                c.drive(Duration::from_millis(50)).await?;
                return Ok(c);
            }
        }
        Err("malicious client: no Convert answer within 10 s".into())
    }

    /// Sends what the engine has, feeds it what arrives, runs its timers, for `d`.
    async fn drive(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            let now = Instant::now();
            self.ep.handle_timeout(now);
            while let Some(t) = self.ep.poll_transmit(now, &mut self.buf) {
                let dgram = &self.buf[..t.len];
                if let Ok((seg, off)) = wire::parse_udp_payload(dgram, 0, 0) {
                    self.pos.observe(&seg, dgram.len() - off);
                }
                let _ = self.sock.send_to(dgram, t.remote).await;
            }
            if now >= until {
                return Ok(());
            }
            let wake = self
                .ep
                .poll_timeout()
                .map_or(until, |t| t.min(until))
                .max(now + Duration::from_millis(1));
            let mut rx = [0u8; 65536];
            if let Ok(Ok((n, from))) =
                tokio::time::timeout(wake - now, self.sock.recv_from(&mut rx)).await
            {
                let _ = self
                    .ep
                    .handle_segment(Instant::now(), self.local, from, &rx[..n]);
            }
        }
    }

    /// Reads what the gateway sent back (without waiting) and counts ACKs with a SACK
    /// block past the hole, i.e. acknowledging flood pieces.
    fn count_sacks(&self) -> u64 {
        let mut rx = [0u8; 65536];
        let mut n = 0;
        while let Ok((len, _)) = self.sock.try_recv_from(&mut rx) {
            let Ok((seg, _)) = wire::parse_udp_payload(&rx[..len], 0, 0) else {
                continue;
            };
            let hole = SeqNum(self.pos.seq);
            if seg.options.sack_blocks.iter().any(|&(l, _)| l > hole) {
                n += 1;
            }
        }
        n
    }

    /// A 1-byte piece `2 * slot + 1` bytes past the first byte never sent: always out of
    /// order, never adjacent to another piece.
    fn piece(&self, slot: u32) -> Vec<u8> {
        let p = self.pos;
        let gap = 1 + 2 * slot;
        let dsn = if p.wide {
            DataSeq::Wide(p.dsn.wrapping_add(u64::from(gap)))
        } else {
            DataSeq::Narrow((p.dsn as u32).wrapping_add(gap))
        };
        let seq = p.seq.wrapping_add(gap);
        let dss = Dss {
            data_ack: p.data_ack,
            mapping: Some(DssMapping {
                dsn,
                ssn: seq.wrapping_sub(p.iss),
                data_len: 1,
                checksum: None,
            }),
            data_fin: false,
        };
        let mut options = TcpOptions::default();
        let _ = options.push_mptcp(dss);
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.gw.port(),
            seq: SeqNum(seq),
            ack: SeqNum(p.ack),
            flags: TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options,
        };
        let mut out = vec![0u8; 64];
        let n = wire::emit_udp_payload(&repr, &mut out).unwrap_or(0);
        out.truncate(n);
        out.push(0xee);
        out
    }
}

/// One client floods the gateway with undeliverable 1-byte pieces at `cfg.rate` per second
/// while another measures echo round trips through the same gateway.
pub async fn reassembly_flood(cfg: &FloodConfig) -> Result<FloodReport> {
    let echo = tcp_echo().await?;
    let sink = tcp_sink().await?;
    let (gw, gw_task) = gateway(&[echo, sink]).await?;
    let honest = Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let evil = RawClient::connect(gw, sink).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(
        honest,
        gw,
        echo,
        cfg.probe_every,
        cfg.probe_limit,
        stop.clone(),
    ));
    // Let the honest connection settle before taking the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Slots visited in a scrambled order (an odd multiplier permutes 0..2^16): each piece
    // lands between earlier ones, never at the end.
    let start = Instant::now();
    let (mut sent, mut tried) = (0u64, 0u64);
    while start.elapsed() < cfg.duration {
        let due = (start.elapsed().as_secs_f64() * cfg.rate as f64) as u64;
        while tried < due {
            let slot = (tried as u32).wrapping_mul(40_503) & 0xffff;
            tried += 1;
            let d = evil.piece(slot);
            // Only pieces that left count towards the rate.
            if evil.sock.send_to(&d, gw).await.is_ok() {
                sent += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = start.elapsed();
    // A moment after the flood for a late probe to show up.
    tokio::time::sleep(cfg.probe_every * 2).await;
    stop.store(true, Ordering::Relaxed);
    let sacked = evil.count_sacks();
    let (probes, failures) = prober.await.map_err(|e| e.to_string())??;
    let _ = sampler.await;
    gw_task.abort();
    Ok(FloodReport {
        pieces: sent,
        achieved_rate: sent as f64 / took.as_secs_f64(),
        probes,
        probe_failures: failures,
        rss_growth: peak.load(Ordering::Relaxed) as i64 - base as i64,
        sacked,
    })
}

/// Parameters of [`syn_flood`].
#[derive(Clone, Debug)]
pub struct SynFloodConfig {
    pub rate: u64,
    /// Honest clients, started one after another during the flood.
    pub honest: usize,
    /// Round-trip time of the honest clients' path.
    pub rtt: Duration,
    /// Time each honest client has to connect and get an echo back.
    pub limit: Duration,
}

#[derive(Clone, Debug)]
pub struct SynFloodReport {
    pub syns: u64,
    pub achieved_rate: f64,
    pub honest_ok: usize,
    pub honest: usize,
    /// Time to connect and echo, for each honest client that succeeded.
    pub connect_times: Vec<Duration>,
}

/// A SYN with MP_CAPABLE as a client sends it.
fn syn(iss: u32) -> Vec<u8> {
    let mut options = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        ..Default::default()
    };
    let _ = options.push_mptcp(MpCapable {
        version: 1,
        flags: MpCapableFlags(0x01),
        keys: MpCapableKeys::Syn,
    });
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq: SeqNum(iss),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65535,
        urgent: 0,
        options,
    };
    let mut buf = vec![0u8; 64];
    let n = wire::emit_udp_payload(&repr, &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// Sends `rate` SYNs per second to `gw` from a thread, each from a fresh socket (a new
/// port) on a different 127/8 address, until `stop`. Nobody answers the SYN/ACKs.
fn spawn_syn_flood(
    gw: SocketAddr,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut sent, mut tried) = (0u64, 0u64);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while tried < due {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let src = Ipv4Addr::new(
                    127,
                    1 + (x >> 8) as u8 % 200,
                    (x >> 16) as u8,
                    1 + (x >> 24) as u8 % 250,
                );
                // Where only 127.0.0.1 exists (not Linux), new ports alone.
                let s = std::net::UdpSocket::bind((IpAddr::V4(src), 0))
                    .or_else(|_| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)));
                // Only SYNs that left count towards the rate.
                tried += 1;
                if s.and_then(|s| s.send_to(&syn(x as u32), gw)).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

/// `cfg.rate` spoofed SYNs per second at the gateway while honest clients behind a
/// `cfg.rtt` path connect and echo.
pub async fn syn_flood(cfg: &SynFloodConfig) -> Result<SynFloodReport> {
    let echo = tcp_echo().await?;
    let (gw, gw_task) = gateway(&[echo]).await?;
    let half = cfg.rtt / 2;
    let link = LinkConfig::new(100_000_000, half).with_queue_bdp(4.0);
    let emu = PathEmulator::start(
        "127.0.0.1:0".parse().map_err(|_| "address")?,
        gw,
        link.clone(),
        link,
    )
    .await
    .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = spawn_syn_flood(gw, cfg.rate, stop.clone());
    let flood_start = Instant::now();
    // The queue of half-open connections fills first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = Vec::new();
    for _ in 0..cfg.honest {
        let client = Client::builder()
            .connect_timeout(cfg.limit)
            .interface(
                Interface::new(InterfaceKind::Wifi)
                    .with_local_addr(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    .with_via(emu.local_addr()),
            )
            .build()
            .map_err(|e| e.to_string())?;
        let limit = cfg.limit;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let attempt = async {
                let mut c = client.connect_via(gw, &echo.to_string()).await.ok()?;
                c.write_all(b"honest").await.ok()?;
                let mut back = [0u8; 6];
                c.read_exact(&mut back).await.ok()?;
                (&back == b"honest").then_some(())
            };
            match tokio::time::timeout(limit, attempt).await {
                Ok(Some(())) => Some(t.elapsed()),
                _ => None,
            }
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut times = Vec::new();
    for t in tasks {
        if let Ok(Some(d)) = t.await {
            times.push(d);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let took = flood_start.elapsed();
    let syns = flood.join().map_err(|_| "SYN flood thread panicked")?;
    gw_task.abort();
    Ok(SynFloodReport {
        syns,
        achieved_rate: syns as f64 / took.as_secs_f64(),
        honest_ok: times.len(),
        honest: cfg.honest,
        connect_times: times,
    })
}

/// Per attack of [`forged_segments`]: did the transfer finish intact, and did a path go down.
#[derive(Clone, Debug)]
pub struct ForgedReport {
    pub attack: &'static str,
    pub datagrams: usize,
    pub completed: bool,
    pub intact: bool,
    pub paths_down: usize,
    /// The client saw a subflow's backup flag change.
    pub backup_changed: bool,
    pub took: Duration,
}

fn forge(flags: TcpFlags, seq: u32, ack: u32, opt: Option<MptcpOption>) -> Vec<u8> {
    let mut options = TcpOptions::default();
    if let Some(o) = opt {
        let _ = options.push_mptcp(o);
    }
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        urgent: 0,
        options,
    };
    let mut buf = vec![0u8; 64];
    let n = wire::emit_udp_payload(&repr, &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// The attacks, each as the datagrams for one direction, from random numbers `r`.
fn attacks(r: &mut impl FnMut() -> u32) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let a = TcpFlags::ACK;
    let narrow = |v: u32| DataSeq::Narrow(v);
    let map = |dsn: u32, ssn: u32, len: u16, fin: bool| {
        Some(MptcpOption::Dss(Dss {
            data_ack: None,
            mapping: Some(DssMapping {
                dsn: narrow(dsn),
                ssn,
                data_len: len,
                checksum: None,
            }),
            data_fin: fin,
        }))
    };
    let base = r();
    vec![
        ("DATA_FIN", vec![forge(a, r(), r(), map(r(), 0, 1, true))]),
        (
            "infinite mapping",
            vec![forge(a, r(), r(), map(r(), r(), 0, false))],
        ),
        (
            "REMOVE_ADDR",
            vec![forge(
                a,
                r(),
                r(),
                RemoveAddr::new(&[0, 1, 2, 3, 4, 5, 6, 7])
                    .ok()
                    .map(Into::into),
            )],
        ),
        (
            "MP_PRIO",
            vec![forge(a, r(), r(), Some(MpPrio { backup: true }.into()))],
        ),
        (
            "DATA_ACK",
            (0..4u32)
                .map(|k| {
                    let dss = Dss {
                        data_ack: Some(narrow(base.wrapping_add(k << 30))),
                        mapping: None,
                        data_fin: false,
                    };
                    forge(a, r(), r(), Some(dss.into()))
                })
                .collect(),
        ),
        (
            "8 RSTs",
            (0..8)
                .map(|_| forge(TcpFlags::RST | a, r(), r(), None))
                .collect(),
        ),
    ]
}

/// For each attack, a `len`-byte transfer each way through the gateway over two emulated
/// paths; a quarter of the way in, the attacker sends its datagrams on the WiFi subflow's
/// 4-tuple in both directions.
pub async fn forged_segments(len: u64) -> Result<Vec<ForgedReport>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut r = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 16) as u32
    };
    let mut out = Vec::new();
    for (name, dgrams) in attacks(&mut r) {
        out.push(one_forged_transfer(name, &dgrams, len).await?);
    }
    Ok(out)
}

async fn one_forged_transfer(
    name: &'static str,
    dgrams: &[Vec<u8>],
    len: u64,
) -> Result<ForgedReport> {
    let echo = tcp_echo().await?;
    let (gw, gw_task) = gateway(&[echo]).await?;
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "address")?;
    let wifi = LinkConfig::new(40_000_000, Duration::from_millis(10)).with_queue_bdp(1.0);
    let cell = LinkConfig::new(20_000_000, Duration::from_millis(30)).with_queue_bdp(1.0);
    let w = PathEmulator::start(any, gw, wifi.clone(), wifi)
        .await
        .map_err(|e| e.to_string())?;
    let c = PathEmulator::start(any, gw, cell.clone(), cell)
        .await
        .map_err(|e| e.to_string())?;
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let client = Client::builder()
        .service(ServiceType::Aggregate)
        .interface(
            Interface::new(InterfaceKind::Wifi)
                .with_local_addr(lo)
                .with_via(w.local_addr()),
        )
        .interface(
            Interface::new(InterfaceKind::Cellular)
                .with_local_addr(lo)
                .with_via(c.local_addr()),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let conn = client
        .connect_via(gw, &echo.to_string())
        .await
        .map_err(|e| format!("{name}: connect: {e}"))?;
    let mut events = conn.events();
    let start = Instant::now();
    let (mut rd, mut wr) = conn.into_split();
    // The echo server returns the stream: the client checks it byte for byte.
    const SEED: u64 = 11;
    let writer = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        while at < len {
            let n = ((len - at) as usize).min(buf.len());
            pattern::fill(SEED, at, &mut buf[..n]);
            wr.write_all(&buf[..n]).await?;
            at += n as u64;
        }
        wr.shutdown().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut at, mut intact) = (0u64, true);
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>((at, intact));
            }
            intact &= pattern::first_mismatch(SEED, at, &buf[..n]).is_none();
            at += n as u64;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (wu, wd) = w.stats();
        let (cu, cd) = c.stats();
        let moved =
            wu.delivered.bytes + wd.delivered.bytes + cu.delivered.bytes + cd.delivered.bytes;
        if w.clients().len() == 1 && c.clients().len() == 1 && moved >= len / 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{name}: the transfer never got going"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = w.clients()[0];
    for d in dgrams {
        let _ = w.inject_up(d);
        let _ = w.inject_down(victim, d);
    }
    let done = tokio::time::timeout(Duration::from_secs(30), reader).await;
    let (completed, intact) = match done {
        Ok(Ok(Ok((n, ok)))) => (n == len, ok && n == len),
        _ => (false, false),
    };
    let took = start.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    let (mut paths_down, mut backup_changed) = (0, false);
    while let Some(e) = events.try_recv() {
        match e {
            ConnectionEvent::Closed(_) => break,
            ConnectionEvent::PathDown { .. } => paths_down += 1,
            ConnectionEvent::BackupChanged { .. } => backup_changed = true,
            _ => {}
        }
    }
    gw_task.abort();
    Ok(ForgedReport {
        attack: name,
        datagrams: 2 * dgrams.len(),
        completed,
        intact,
        paths_down,
        backup_changed,
        took,
    })
}
