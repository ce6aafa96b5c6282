//! Shared by the interop tests (and the interop benchmark, which includes this file): Braid
//! in a namespace on its own tokio runtime, async transfers hashed with SHA-256, and the
//! kernel's end of a transfer with MPTCP_INFO watched while it runs.
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use braid::{Carrier, ConnectionEvent, ConnectionStats, Interface, InterfaceKind, ServiceType};
use braid_netbed::kernel::{self, MptcpInfo, SubflowAddrs};
use braid_netbed::transfer::{self, Incoming, Outgoing, ReceiveReport, SendReport};
use braid_netbed::{Link, Side, Testbed};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Every interop test runs alone: the numbers they print mean something on 2 cores, and the
/// testbeds' relays do not compete.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A current-thread tokio runtime: it lives on the calling thread, so in its namespace.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs the future made by `f` on a new thread inside `side`'s namespace, on that thread's
/// own runtime.
pub fn braid_in<F, Fut, T>(tb: &Testbed, side: Side, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    tb.spawn_in(side, move || runtime().block_on(f()))
        .expect("enter the namespace")
}

/// The phone's interfaces as Braid sees them: WiFi first (preferred), then cellular.
pub fn phone_interfaces() -> [Interface; 2] {
    [
        Interface::new(InterfaceKind::Wifi).with_name(Link::Wifi.iface(Side::Phone)),
        Interface::new(InterfaceKind::Cellular).with_name(Link::Cell.iface(Side::Phone)),
    ]
}

/// A client builder with both phone interfaces.
pub fn phone_client(carrier: Carrier, service: ServiceType) -> braid::ClientBuilder {
    let [w, c] = phone_interfaces();
    braid::Client::builder()
        .carrier(carrier)
        .service(service)
        .interface(w)
        .interface(c)
        .connect_timeout(Duration::from_secs(10))
}

/// Writes `len` pattern bytes (without shutting down); `progress` follows what was written.
pub async fn send_async(
    w: &mut (impl AsyncWrite + Unpin),
    len: u64,
    progress: Option<&AtomicU64>,
) -> io::Result<SendReport> {
    let mut out = Outgoing::new(len);
    while let Some(chunk) = out.next_chunk() {
        if let Err(e) = w.write_all(chunk).await {
            return Err(out.write_error(e));
        }
        if let Some(p) = progress {
            p.store(out.sent(), Ordering::Relaxed);
        }
    }
    w.flush().await?;
    Ok(out.finish())
}

/// Reads to EOF with SHA-256 and 10 ms progress samples.
pub async fn receive_async<R: AsyncRead + Unpin>(
    r: &mut R,
    progress: Option<&AtomicU64>,
) -> io::Result<ReceiveReport> {
    receive_with(r, |_, total| {
        if let Some(p) = progress {
            p.store(total, Ordering::Relaxed);
        }
    })
    .await
}

/// What the Braid end of an exchange saw.
#[derive(Debug)]
pub struct BraidEnd {
    pub sent: SendReport,
    pub received: ReceiveReport,
    /// Taken after both directions finished, before the connection was dropped.
    pub stats: ConnectionStats,
    pub events: Vec<ConnectionEvent>,
}

/// Sends `upload` bytes and reads to EOF at the same time; `progress` follows the bytes read.
/// The write side is shut down (DATA_FIN) after the upload; with nothing to upload, only
/// after the download: the kernel refuses MP_JOINs on a connection whose peer has sent
/// DATA_FIN (its socket is in CLOSE_WAIT), so a download must not half-close early.
pub async fn braid_exchange(
    conn: braid::Connection,
    upload: u64,
    progress: Option<Arc<AtomicU64>>,
) -> io::Result<BraidEnd> {
    let mut events = conn.events();
    let monitor = conn.monitor();
    let (mut r, mut w) = conn.into_split();
    let sender = async move {
        let s = send_async(&mut w, upload, None).await?;
        if upload > 0 {
            w.shutdown().await?;
        }
        Ok::<_, io::Error>((s, w))
    };
    let receiver = async move {
        receive_async(&mut r, progress.as_deref())
            .await
            .map(|x| (x, r))
    };
    let (sent, received) = tokio::join!(sender, receiver);
    let (sent, mut w) = sent?;
    let (received, r) = received?;
    if upload == 0 {
        w.shutdown().await?;
    }
    // Everything is written and read, but what was written may still be unacknowledged:
    // the connection (and this runtime) must live until it has closed (both DATA_FINs).
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let closed = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ConnectionEvent::Closed(e))) => {
                seen.push(ConnectionEvent::Closed(e.clone()));
                break Some(e);
            }
            Ok(Some(e)) => seen.push(e),
            Ok(None) | Err(_) => break None,
        }
    };
    let stats = monitor.stats().unwrap_or_default();
    if stats.bytes_acked < upload {
        return Err(io::Error::other(format!(
            "only {} of {upload} bytes acknowledged by the peer (closed: {closed:?})",
            stats.bytes_acked
        )));
    }
    drop(r.reunite(w));
    Ok(BraidEnd {
        sent,
        received,
        stats,
        events: seen,
    })
}

/// MPTCP state the kernel reported while a transfer ran.
#[derive(Clone, Debug, Default)]
pub struct KernelView {
    pub is_mptcp: bool,
    /// Most subflows seen at once (the first included).
    pub max_subflows: u8,
    /// The longest subflow list seen.
    pub subflows: Vec<SubflowAddrs>,
    /// The last MPTCP_INFO read.
    pub info: Option<MptcpInfo>,
    /// Every MPTCP_INFO read, with its time since the watch started.
    pub history: Vec<(Duration, MptcpInfo)>,
}

/// Reads MPTCP_INFO and the subflow list every `every` until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<KernelView>,
}

impl Watch {
    pub fn start(s: &TcpStream, every: Duration) -> io::Result<Watch> {
        let s = s.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut v = KernelView::default();
            loop {
                v.is_mptcp |= kernel::is_mptcp(&s);
                if let Ok(info) = kernel::mptcp_info(&s) {
                    v.max_subflows = v.max_subflows.max(info.total_subflows());
                    v.history.push((start.elapsed(), info.clone()));
                    v.info = Some(info);
                }
                if let Ok(list) = kernel::subflow_addrs(&s)
                    && list.len() > v.subflows.len()
                {
                    v.subflows = list;
                }
                if flag.load(Ordering::Relaxed) {
                    return v;
                }
                std::thread::sleep(every);
            }
        });
        Ok(Watch { stop, handle })
    }

    pub fn stop(self) -> KernelView {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("watch thread")
    }
}

/// What the kernel end of an exchange saw.
#[derive(Debug)]
pub struct KernelEnd {
    pub sent: SendReport,
    pub received: ReceiveReport,
    pub view: KernelView,
}

/// The kernel side of an exchange on an accepted (or connected) stream: sends `download`
/// bytes and reads to EOF at the same time, watching MPTCP_INFO; closes once both are done.
/// `during` runs on the calling thread while the transfer goes on, with the stream.
pub fn kernel_exchange(
    s: TcpStream,
    download: u64,
    timeout: Duration,
    during: impl FnOnce(&TcpStream),
) -> io::Result<KernelEnd> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let watch = Watch::start(&s, Duration::from_millis(50))?;
    let mut w = s.try_clone()?;
    // With nothing to send, the write half stays open until the peer is done: the kernel
    // refuses MP_JOINs (MP_TCPRST "administratively prohibited") once its side of the
    // connection has left ESTABLISHED, so an early DATA_FIN would forbid every join.
    let hold_write = download == 0;
    let sender = std::thread::spawn(move || -> io::Result<SendReport> {
        let r = transfer::send(&mut w, download, None)?;
        if !hold_write {
            w.shutdown(Shutdown::Write)?;
        }
        Ok(r)
    });
    let mut rd = s.try_clone()?;
    let receiver = std::thread::spawn(move || transfer::receive(&mut rd, None));
    during(&s);
    let received = receiver.join().expect("receiver thread")?;
    let sent = sender.join().expect("sender thread")?;
    if hold_write {
        s.shutdown(Shutdown::Write)?;
    }
    let view = watch.stop();
    Ok(KernelEnd {
        sent,
        received,
        view,
    })
}

/// A plain byte sink/source echo server for a kernel TCP socket is not needed: see
/// `kernel_exchange`. This checks one direction's integrity with a clear message.
pub fn check_same(what: &str, sent: &SendReport, received: &ReceiveReport) {
    assert_eq!(
        received.bytes, sent.bytes,
        "{what}: {} bytes sent, {} received",
        sent.bytes, received.bytes
    );
    assert_eq!(
        transfer::hex(&received.sha256),
        transfer::hex(&sent.sha256),
        "{what}: SHA-256 differs"
    );
}

/// Reads everything from `s` into nothing, then closes (for servers that only sink).
pub fn drain(mut s: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k as u64,
        }
    }
}

/// Writes a line to the real stderr (the harness captures `eprintln!`).
pub fn say(msg: &str) {
    let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
}

/// `ss -tin` in a namespace, for the log when something goes wrong.
pub fn ss(tb: &Testbed, side: Side) -> String {
    tb.command(side, "ss")
        .args(["-tinH"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The server's address on `link`, with `port`.
pub fn server_addr(link: Link, port: u16) -> SocketAddr {
    SocketAddr::from((link.addr(Side::Server), port))
}

/// Short description of a Braid connection's paths, for logs.
pub fn describe_paths(stats: &ConnectionStats) -> String {
    stats
        .paths
        .iter()
        .map(|p| {
            format!(
                "[{:?} {:?}->{:?} {} backup={} sent={} recv={} rtx={}]",
                p.kind,
                p.local,
                p.remote,
                p.state,
                p.backup,
                p.bytes_sent,
                p.bytes_received,
                p.retransmissions
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads to EOF with SHA-256 and samples, calling `hook(reader, total)` after every read
/// (to act on a Braid connection while it receives).
pub async fn receive_with<R: AsyncRead + Unpin>(
    r: &mut R,
    mut hook: impl FnMut(&R, u64),
) -> io::Result<ReceiveReport> {
    let mut rx = Incoming::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await.map_err(|e| rx.read_error(e))?;
        if n == 0 {
            return Ok(rx.finish());
        }
        let total = rx.record(&buf[..n]);
        hook(r, total);
    }
}

/// Waits (up to 60 s) for the connection's Closed event; the events seen on the way.
pub async fn wait_closed(events: &mut braid::Events) -> Vec<ConnectionEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let done = matches!(e, ConnectionEvent::Closed(_));
        seen.push(e);
        if done {
            break;
        }
    }
    seen
}

/// Per-link delivered bytes in one direction, sampled over time.
#[derive(Clone, Debug, Default)]
pub struct LinkSamples {
    pub at: Vec<(Instant, [u64; 2])>,
}

impl LinkSamples {
    pub fn take(&mut self, tb: &Testbed, dir: braid_netbed::Direction) {
        let get = |l: Link| {
            let c = tb.counters(l);
            match dir {
                braid_netbed::Direction::Up => c.up.delivered().bytes,
                braid_netbed::Direction::Down => c.down.delivered().bytes,
            }
        };
        self.at
            .push((Instant::now(), [get(Link::Wifi), get(Link::Cell)]));
    }

    /// Bytes per link delivered between `from` and `to` (nearest samples).
    pub fn delta(&self, from: Instant, to: Instant) -> [u64; 2] {
        let at = |t: Instant| {
            self.at
                .iter()
                .rev()
                .find(|(s, _)| *s <= t)
                .or(self.at.first())
                .map(|(_, v)| *v)
                .unwrap_or([0, 0])
        };
        let (a, b) = (at(from), at(to));
        [b[0] - a[0], b[1] - a[1]]
    }
}

/// Sends the Convert Connect message and reads the gateway's answer: Ok or its error code.
pub fn convert_handshake(
    s: &mut TcpStream,
    target: SocketAddr,
) -> io::Result<braid::convert::Message> {
    s.write_all(&braid::convert::encode_connect(target))?;
    let mut header = [0u8; braid::convert::HEADER_LEN];
    s.read_exact(&mut header)?;
    let len = braid::convert::message_len(&header).map_err(io::Error::other)?;
    let mut msg = header.to_vec();
    msg.resize(len, 0);
    s.read_exact(&mut msg[braid::convert::HEADER_LEN..])?;
    braid::convert::decode(&msg).map_err(io::Error::other)
}
