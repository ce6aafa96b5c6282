//! The endpoint driver: one tokio task per endpoint that owns the sans-IO [`Endpoint`] (shared
//! with connection handles behind a mutex), its UDP sockets and its timer.
//!
//! Wakeups: every socket gets its own waker that records the socket as ready and wakes the
//! driver, so a poll only touches sockets with something to read (or room to write). Handles
//! wake the driver after a write, read or shutdown; the driver wakes handles' read, write and
//! connect wakers on the engine's `Readable`, `Writable`, `Connected` and `Closed` events.
//!
//! Transmits: the engine writes one datagram per `poll_transmit`; consecutive datagrams to
//! the same destination with the same length are written into consecutive slots of one
//! buffer and sent as one GSO batch (quinn-udp), a shorter one closing the batch.

use crate::event::ConnectionEvent;
use crate::gso_guard::GsoGuard;
use braid_proto::endpoint::hash::{HandleMap, KeyedMap};
use braid_proto::{CloseError, ConnectionHandle, Endpoint, Event, PathId};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::sync::broadcast;
use tokio::time::Sleep;

pub(crate) type SockId = u64;

/// Events kept per connection for late subscribers.
const EVENT_HISTORY: usize = 64;
/// Events a subscriber may fall behind by before it misses some.
const EVENT_CHANNEL: usize = 256;

/// Largest datagram the engine may produce (MSS 1460 + TCP-in-UDP header and options,
/// with room to spare).
const MAX_DATAGRAM: usize = 2048;
/// Largest GSO batch (a UDP datagram's payload limit).
const MAX_GSO_BYTES: usize = 64000;
/// Receive buffer per quinn-udp batch slot: enough for a GRO super-datagram.
const RX_SLOT: usize = 64 * 1024;
/// Datagrams sent per driver iteration before it looks at input again.
const TX_BUDGET: usize = 512;
/// Receive calls per ready socket per driver iteration.
const RX_BUDGET: usize = 8;
/// Driver iterations per poll before yielding to other tasks.
const ITERATIONS: usize = 16;

/// Locks, ignoring poisoning: the state stays consistent between engine calls, and a
/// panicking application thread must not take the whole endpoint down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ready sockets and the driver's waker.
#[derive(Default)]
pub(crate) struct WakeQueue {
    inner: Mutex<WakeInner>,
}

#[derive(Default)]
struct WakeInner {
    ready: Vec<SockId>,
    driver: Option<Waker>,
}

impl WakeQueue {
    pub(crate) fn wake_driver(&self) {
        let g = lock(&self.inner);
        if let Some(w) = &g.driver {
            w.wake_by_ref();
        }
    }

    fn socket_ready(&self, id: SockId) {
        let mut g = lock(&self.inner);
        g.ready.push(id);
        if let Some(w) = &g.driver {
            w.wake_by_ref();
        }
    }
}

/// The waker given to tokio for one socket.
struct SockWaker {
    id: SockId,
    queued: AtomicBool,
    queue: Arc<WakeQueue>,
}

impl Wake for SockWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.socket_ready(self.id);
        }
    }
}

/// What a path socket is: UDP (TCP-in-UDP), or raw IP (genuine TCP, Linux).
enum SockIo {
    Udp {
        io: tokio::net::UdpSocket,
        udp: UdpSocketState,
    },
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Raw(crate::raw::RawSocket),
}

/// A socket the runtime opened for a path or a listener, not yet registered.
pub(crate) enum NewSocket {
    Udp(std::net::UdpSocket),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Raw(crate::raw::RawSocket),
}

/// One socket of the endpoint.
pub(crate) struct PathSock {
    io: SockIo,
    pub local: SocketAddr,
    /// (relay address, the remote it stands for): see `Interface::via`.
    via: Option<(SocketAddr, SocketAddr)>,
    waker: Arc<SockWaker>,
    pub owner: Option<(ConnectionHandle, PathId)>,
}

/// What the runtime keeps per connection besides the engine's state.
pub(crate) struct ConnRt {
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
    pub connect_waker: Option<Waker>,
    pub connected: bool,
    pub closed: Option<CloseError>,
    /// Created by the first subscriber: a channel holds room for 256 events (about 22 KiB),
    /// which an idle connection nobody listens to should not pay for.
    events: Option<broadcast::Sender<ConnectionEvent>>,
    /// Every event so far (bounded): a subscriber that comes after `connect` returned, when
    /// the second path may already be up, still sees the whole story.
    pub history: std::collections::VecDeque<ConnectionEvent>,
    /// An application handle exists (false for connections not yet accepted, or dropped).
    pub app_held: bool,
    /// Accepted by a listener, not yet handed out (waits for the handshake).
    pub pending_accept: bool,
    /// Dropped by the application while still open: aborted at this time.
    pub linger_until: Option<Instant>,
    /// Sockets of this connection's paths (client side).
    pub socks: Vec<(PathId, SockId)>,
    /// Created by a `Client`: follows its interface changes.
    pub client_managed: bool,
}

impl ConnRt {
    pub(crate) fn new(app_held: bool) -> Self {
        Self {
            read_waker: None,
            write_waker: None,
            connect_waker: None,
            connected: false,
            closed: None,
            events: None,
            history: std::collections::VecDeque::new(),
            app_held,
            pending_accept: false,
            linger_until: None,
            socks: Vec::new(),
            client_managed: false,
        }
    }

    /// Records an event for late subscribers and hands it to current ones.
    pub(crate) fn push_event(&mut self, e: ConnectionEvent) {
        if self.history.len() == EVENT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(e.clone());
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// A new subscription to the events from now on (see `history` for those before).
    pub(crate) fn subscribe(&mut self) -> broadcast::Receiver<ConnectionEvent> {
        self.events
            .get_or_insert_with(|| broadcast::channel(EVENT_CHANNEL).0)
            .subscribe()
    }

    fn wake_all(&mut self) {
        for w in [
            self.read_waker.take(),
            self.write_waker.take(),
            self.connect_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

/// Counters of the runtime (the engine keeps its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams (or raw segments) received.
    pub datagrams_in: u64,
    /// Datagrams (or raw segments) sent.
    pub datagrams_out: u64,
    /// Send calls (a GSO batch counts once).
    pub send_calls: u64,
    /// Receive calls (a GRO batch counts once).
    pub recv_calls: u64,
    /// Datagrams the engine rejected (malformed, unknown connection, refused).
    pub dropped_in: u64,
    /// Datagrams dropped on send (no socket for the address, or a send error).
    pub dropped_out: u64,
}

pub(crate) struct State {
    pub ep: Endpoint,
    socks: KeyedMap<SockId, PathSock>,
    route: KeyedMap<SocketAddr, SockId>,
    /// Sockets bound to an unspecified address, by port.
    route_port: KeyedMap<u16, SockId>,
    next_sock: SockId,
    /// Last path id handed to an interface without an OS index (starts above real indexes).
    last_path_id: u32,
    pub conns: HandleMap<ConnRt>,
    pub incoming: VecDeque<ConnectionHandle>,
    pub incoming_waker: Option<Waker>,
    /// Accepted connections waiting for the application, at most.
    pub backlog: usize,
    /// `Client`/`Server` handles alive; the driver stops when none is and no connection is.
    pub refs: usize,
    pub stopped: bool,
    /// How long a dropped, still open connection may take to finish gracefully.
    pub linger: Duration,
    pub stats: DriverStats,
    /// GSO batches allowed at all (`--no-gso` turns them off).
    pub gso: bool,
    /// Flows whose GSO batches get lost: sent one datagram at a time.
    gso_guard: GsoGuard,
}

impl State {
    /// The path id for an interface: its OS index when it has one, else a fresh number
    /// above any index.
    pub(crate) fn path_id_for(&mut self, index: Option<u32>) -> PathId {
        PathId::new(index.unwrap_or_else(|| {
            self.last_path_id += 1;
            self.last_path_id
        }))
    }
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub wake: Arc<WakeQueue>,
}

impl Shared {
    pub(crate) fn new(ep: Endpoint, linger: Duration, backlog: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                ep,
                socks: Default::default(),
                route: Default::default(),
                route_port: Default::default(),
                next_sock: 1,
                last_path_id: 1 << 16,
                conns: Default::default(),
                incoming: VecDeque::new(),
                incoming_waker: None,
                backlog,
                refs: 0,
                stopped: false,
                linger,
                stats: DriverStats::default(),
                gso: true,
                gso_guard: GsoGuard::default(),
            }),
            wake: Arc::new(WakeQueue::default()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    /// Registers a UDP or raw socket (must be called inside the runtime). The driver polls
    /// it next time.
    pub(crate) fn add_socket(
        &mut self,
        wake: &Arc<WakeQueue>,
        sock: NewSocket,
        local: SocketAddr,
        via: Option<(SocketAddr, SocketAddr)>,
    ) -> io::Result<SockId> {
        let io = match sock {
            NewSocket::Udp(sock) => {
                let io = tokio::net::UdpSocket::from_std(sock)?;
                let udp = UdpSocketState::new((&io).into())?;
                SockIo::Udp { io, udp }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            NewSocket::Raw(raw) => SockIo::Raw(raw),
        };
        let id = self.next_sock;
        self.next_sock += 1;
        let waker = Arc::new(SockWaker {
            id,
            queued: AtomicBool::new(false),
            queue: wake.clone(),
        });
        if local.ip().is_unspecified() {
            self.route_port.insert(local.port(), id);
        } else {
            self.route.insert(local, id);
        }
        self.socks.insert(
            id,
            PathSock {
                io,
                local,
                via,
                waker: waker.clone(),
                owner: None,
            },
        );
        // First poll registers the socket's interest.
        waker.wake_by_ref();
        Ok(id)
    }

    pub(crate) fn set_socket_owner(&mut self, id: SockId, owner: (ConnectionHandle, PathId)) {
        if let Some(s) = self.socks.get_mut(&id) {
            s.owner = Some(owner);
        }
    }

    pub(crate) fn remove_socket(&mut self, id: SockId) {
        if let Some(s) = self.socks.remove(&id) {
            if self.route.get(&s.local) == Some(&id) {
                self.route.remove(&s.local);
            }
            if self.route_port.get(&s.local.port()) == Some(&id) {
                self.route_port.remove(&s.local.port());
            }
        }
    }

    pub(crate) fn socket_local(&self, id: SockId) -> Option<SocketAddr> {
        self.socks.get(&id).map(|s| s.local)
    }

    fn route_of(&self, local: &SocketAddr) -> Option<SockId> {
        self.route
            .get(local)
            .or_else(|| self.route_port.get(&local.port()))
            .copied()
    }

    /// Forgets a connection and closes its sockets.
    pub(crate) fn release(&mut self, h: ConnectionHandle) {
        self.ep.release(h);
        if let Some(mut rt) = self.conns.remove(&h) {
            rt.wake_all();
            for (_, id) in rt.socks.drain(..) {
                self.remove_socket(id);
            }
        }
    }

    /// A connection's path went away: drop it from the engine and close its socket.
    pub(crate) fn drop_path(&mut self, now: Instant, h: ConnectionHandle, path: PathId) {
        self.ep.remove_path(now, h, path);
        let ids: Vec<SockId> = match self.conns.get_mut(&h) {
            Some(rt) => {
                let ids = rt
                    .socks
                    .iter()
                    .filter(|(p, _)| *p == path)
                    .map(|(_, id)| *id)
                    .collect();
                rt.socks.retain(|(p, _)| *p != path);
                ids
            }
            None => Vec::new(),
        };
        for id in ids {
            self.remove_socket(id);
        }
    }
}

/// A batch of datagrams for one (local, remote) pair.
struct Batch {
    buf: Vec<u8>,
    len: usize,
    seg: usize,
    segs: usize,
    key: (SocketAddr, SocketAddr),
    /// A shorter datagram closed the batch.
    closed: bool,
}

impl Batch {
    fn new() -> Self {
        Self {
            buf: vec![0u8; MAX_GSO_BYTES + MAX_DATAGRAM],
            len: 0,
            seg: 0,
            segs: 0,
            key: (
                SocketAddr::from(([0, 0, 0, 0], 0)),
                SocketAddr::from(([0, 0, 0, 0], 0)),
            ),
            closed: false,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.segs = 0;
        self.closed = false;
    }
}

enum Sent {
    Done,
    Blocked,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    rx: Vec<u8>,
    meta: Vec<RecvMeta>,
    tx: Batch,
    /// A batch the socket had no room for; sent before anything else.
    blocked: Option<Batch>,
    scratch: Vec<u8>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            timer_at: None,
            rx: vec![0u8; RX_SLOT * quinn_udp::BATCH_SIZE.min(8)],
            meta: vec![RecvMeta::default(); quinn_udp::BATCH_SIZE.min(8)],
            tx: Batch::new(),
            blocked: None,
            scratch: vec![0u8; 64 * 1024],
        }
    }

    /// Reads what a socket has, a bounded number of times. Returns true if it may have more.
    fn recv_socket(&mut self, st: &mut State, id: SockId) -> bool {
        let State {
            socks, ep, stats, ..
        } = st;
        let Some(sock) = socks.get(&id) else {
            return false;
        };
        sock.waker.queued.store(false, Ordering::Release);
        let waker = Waker::from(sock.waker.clone());
        let mut cx = Context::from_waker(&waker);
        let (io, udp) = match &sock.io {
            SockIo::Udp { io, udp } => (io, udp),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            SockIo::Raw(raw) => return Self::recv_raw(raw, &mut cx, &mut self.rx, ep, stats),
        };
        for _ in 0..RX_BUDGET {
            match io.poll_recv_ready(&mut cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(e)) => {
                    log::warn!("socket {}: {e}", sock.local);
                    return false;
                }
                Poll::Ready(Ok(())) => {}
            }
            let mut slices: Vec<IoSliceMut<'_>> =
                self.rx.chunks_mut(RX_SLOT).map(IoSliceMut::new).collect();
            let res = io.try_io(Interest::READABLE, || {
                udp.recv(io.into(), &mut slices, &mut self.meta)
            });
            let n = match res {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // ICMP errors reported on the socket and the like: not fatal.
                    log::debug!("receive on {}: {e}", sock.local);
                    continue;
                }
            };
            stats.recv_calls += 1;
            let now = Instant::now();
            for (m, buf) in self.meta.iter().zip(slices.iter()).take(n) {
                let mut from = m.addr;
                if let Some((via, remote)) = sock.via
                    && from == via
                {
                    from = remote;
                }
                let local = if sock.local.ip().is_unspecified() {
                    match m.dst_ip {
                        Some(ip) => SocketAddr::new(ip, sock.local.port()),
                        None => sock.local,
                    }
                } else {
                    sock.local
                };
                let data = &buf[..m.len.min(buf.len())];
                let stride = if m.stride == 0 { data.len() } else { m.stride };
                for seg in data.chunks(stride.max(1)) {
                    stats.datagrams_in += 1;
                    if ep.handle_segment(now, local, from, seg).is_err() {
                        stats.dropped_in += 1;
                    }
                }
            }
        }
        true
    }

    /// Reads what a raw socket has, one segment per call, a bounded number of times.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recv_raw(
        raw: &crate::raw::RawSocket,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        ep: &mut Endpoint,
        stats: &mut DriverStats,
    ) -> bool {
        for _ in 0..RX_BUDGET * 8 {
            match raw.poll_recv(cx, buf) {
                Poll::Pending => return false,
                Poll::Ready(Err(e)) => {
                    log::debug!("receive on raw {}: {e}", raw.local());
                    continue;
                }
                Poll::Ready(Ok(None)) => continue,
                Poll::Ready(Ok(Some(r))) => {
                    stats.recv_calls += 1;
                    stats.datagrams_in += 1;
                    let seg = &buf[r.start..r.end];
                    if ep
                        .handle_segment(Instant::now(), r.local, r.remote, seg)
                        .is_err()
                    {
                        stats.dropped_in += 1;
                    }
                }
            }
        }
        true
    }

    /// Sends one batch; `Blocked` when the socket has no room (the socket's waker is armed).
    fn send_batch(st: &mut State, b: &Batch) -> Sent {
        if b.segs == 0 {
            return Sent::Done;
        }
        let Some(id) = st.route_of(&b.key.0) else {
            st.stats.dropped_out += b.segs as u64;
            return Sent::Done;
        };
        let Some(sock) = st.socks.get(&id) else {
            return Sent::Done;
        };
        let (io, udp) = match &sock.io {
            SockIo::Udp { io, udp } => (io, udp),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            SockIo::Raw(raw) => {
                // One segment per batch (max_segments is 1 for raw sockets).
                let waker = Waker::from(sock.waker.clone());
                let mut cx = Context::from_waker(&waker);
                return match raw.poll_send(&mut cx, b.key.0, b.key.1, &b.buf[..b.len]) {
                    Poll::Pending => Sent::Blocked,
                    Poll::Ready(Ok(())) => {
                        st.stats.send_calls += 1;
                        st.stats.datagrams_out += 1;
                        Sent::Done
                    }
                    Poll::Ready(Err(e)) => {
                        log::debug!("send raw {} -> {}: {e}", b.key.0, b.key.1);
                        st.stats.dropped_out += 1;
                        Sent::Done
                    }
                };
            }
        };
        let mut dest = b.key.1;
        if let Some((via, remote)) = sock.via
            && dest == remote
        {
            dest = via;
        }
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: &b.buf[..b.len],
            segment_size: (b.segs > 1).then_some(b.seg),
            src_ip: sock.local.ip().is_unspecified().then_some(b.key.0.ip()),
        };
        let waker = Waker::from(sock.waker.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            let res = io.try_io(Interest::WRITABLE, || udp.try_send(io.into(), &t));
            match res {
                Ok(()) => {
                    st.stats.send_calls += 1;
                    st.stats.datagrams_out += b.segs as u64;
                    Self::watch_gso(st, b);
                    return Sent::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match io.poll_send_ready(&mut cx) {
                        Poll::Pending => return Sent::Blocked,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(_)) => return Sent::Done,
                    }
                }
                Err(e) => {
                    // The path is gone (ENETUNREACH), GSO refused (quinn-udp falls back),
                    // and so on: the engine retransmits what was lost.
                    log::debug!("send {} -> {dest}: {e}", sock.local);
                    st.stats.dropped_out += b.segs as u64;
                    return Sent::Done;
                }
            }
        }
    }

    /// Tells the GSO guard what went out; if it finds the flow's batches lost while single
    /// datagrams get through, the flow is sent unbatched from now on, which is logged and
    /// reported to the connection.
    fn watch_gso(st: &mut State, b: &Batch) {
        // Nothing to learn where batches are not sent (GSO off, unsupported, or given up).
        if Self::max_segments(st, &b.key) <= 1 {
            return;
        }
        let now = Instant::now();
        let batched = b.segs > 1;
        let datagrams = b.buf[..b.len].chunks(b.seg.max(1));
        let Some(v) = st.gso_guard.on_sent_batch(now, b.key, datagrams, batched) else {
            return;
        };
        let (local, remote) = b.key;
        let reason = v.reason();
        if v.whole_local {
            log::warn!(
                "{local}: GSO off towards every peer: several paths from this address lost their \
                 batched datagrams"
            );
        }
        log::warn!(
            "{local} -> {remote}: GSO off for this path: {reason}; something on the path (a NAT \
             on this host with a device lacking checksum offload, or a middlebox) spoils batched \
             datagrams, so they go out one per send call now (--no-gso turns GSO off everywhere)"
        );
        let Some((h, path)) = st.ep.connection_by_tuple(local, remote) else {
            return;
        };
        if let Some(rt) = st.conns.get_mut(&h) {
            rt.push_event(ConnectionEvent::GsoDisabled {
                path,
                remote,
                reason,
            });
        }
    }

    fn max_segments(st: &State, key: &(SocketAddr, SocketAddr)) -> usize {
        if !st.gso || st.gso_guard.is_off(key) {
            return 1;
        }
        st.route_of(&key.0)
            .and_then(|id| st.socks.get(&id))
            .map_or(1, |s| match &s.io {
                SockIo::Udp { udp, .. } => udp.max_gso_segments().max(1),
                #[cfg(any(target_os = "linux", target_os = "android"))]
                SockIo::Raw(_) => 1,
            })
    }

    /// Drains the engine's transmits. Returns true if the budget ran out with more to send.
    fn transmit(&mut self, st: &mut State, now: Instant) -> bool {
        if let Some(b) = self.blocked.take()
            && let Sent::Blocked = Self::send_batch(st, &b)
        {
            self.blocked = Some(b);
            return false;
        }
        let mut sent = 0;
        let mut max_segs = 1;
        loop {
            if sent >= TX_BUDGET {
                break;
            }
            let off = self.tx.len;
            let Some(t) = st
                .ep
                .poll_transmit(now, &mut self.tx.buf[off..off + MAX_DATAGRAM])
            else {
                break;
            };
            sent += 1;
            let key = (t.local, t.remote);
            if self.tx.segs == 0 {
                self.tx.key = key;
                self.tx.seg = t.len;
                self.tx.len = t.len;
                self.tx.segs = 1;
                max_segs = Self::max_segments(st, &key);
            } else if key == self.tx.key
                && !self.tx.closed
                && t.len <= self.tx.seg
                && self.tx.segs < max_segs
                && off + t.len <= MAX_GSO_BYTES
            {
                self.tx.len += t.len;
                self.tx.segs += 1;
                self.tx.closed = t.len < self.tx.seg;
            } else {
                // Send what is batched, then start over with this datagram, moved to the
                // front of the same buffer: a new buffer (64 KiB, zeroed) only when the
                // socket keeps the old one. With many peers this happens on nearly every
                // datagram.
                self.tx.len = off;
                let blocked = matches!(Self::send_batch(st, &self.tx), Sent::Blocked);
                if blocked {
                    let mut fresh = Batch::new();
                    fresh.buf[..t.len].copy_from_slice(&self.tx.buf[off..off + t.len]);
                    self.blocked = Some(std::mem::replace(&mut self.tx, fresh));
                } else {
                    self.tx.buf.copy_within(off..off + t.len, 0);
                    self.tx.closed = false;
                }
                self.tx.key = key;
                self.tx.seg = t.len;
                self.tx.len = t.len;
                self.tx.segs = 1;
                max_segs = Self::max_segments(st, &key);
                if blocked {
                    return false;
                }
                continue;
            }
            if self.tx.segs >= max_segs
                || self.tx.closed
                || self.tx.len + MAX_DATAGRAM > MAX_GSO_BYTES
            {
                if let Sent::Blocked = Self::send_batch(st, &self.tx) {
                    self.blocked = Some(std::mem::replace(&mut self.tx, Batch::new()));
                    return false;
                }
                self.tx.clear();
            }
        }
        if self.tx.segs > 0 {
            if let Sent::Blocked = Self::send_batch(st, &self.tx) {
                self.blocked = Some(std::mem::replace(&mut self.tx, Batch::new()));
                return false;
            }
            self.tx.clear();
        }
        sent >= TX_BUDGET
    }

    /// Hands engine events to connections and listeners.
    fn dispatch_events(&mut self, st: &mut State) {
        while let Some(h) = st.ep.accept() {
            let mut rt = ConnRt::new(false);
            if st.refs == 0 {
                // The listener is gone: nobody will accept this one.
                if let Some(c) = st.ep.connection_mut(h) {
                    c.abort();
                }
            } else {
                rt.pending_accept = true;
            }
            st.conns.insert(h, rt);
        }
        while let Some((h, ev)) = st.ep.poll_event() {
            let Some(rt) = st.conns.get_mut(&h) else {
                continue;
            };
            match &ev {
                Event::Readable => {
                    if let Some(w) = rt.read_waker.take() {
                        w.wake();
                    }
                    if !rt.app_held && !rt.pending_accept {
                        // Nobody will read: discard so the peer can finish.
                        if let Some(c) = st.ep.connection_mut(h) {
                            while matches!(c.read(&mut self.scratch), Ok(n) if n > 0) {}
                        }
                    }
                    continue;
                }
                Event::Writable => {
                    if let Some(w) = rt.write_waker.take() {
                        w.wake();
                    }
                    continue;
                }
                Event::Connected => {
                    rt.connected = true;
                    if let Some(w) = rt.connect_waker.take() {
                        w.wake();
                    }
                    if rt.pending_accept {
                        if st.incoming.len() < st.backlog {
                            st.incoming.push_back(h);
                            if let Some(w) = st.incoming_waker.take() {
                                w.wake();
                            }
                        } else {
                            log::warn!("accept backlog full: aborting a new connection");
                            rt.pending_accept = false;
                            if let Some(c) = st.ep.connection_mut(h) {
                                c.abort();
                            }
                        }
                    }
                }
                Event::Closed(e) => {
                    rt.closed = Some(e.clone());
                    rt.wake_all();
                }
                _ => {}
            }
            if let Some(pe) = ConnectionEvent::from_engine(&ev) {
                rt.push_event(pe);
            }
        }
    }

    /// Aborts lingering connections past their time and forgets closed, unowned ones.
    fn reap(&mut self, st: &mut State, now: Instant) {
        let mut release = Vec::new();
        for (h, rt) in st.conns.iter_mut() {
            if rt.app_held || rt.pending_accept && rt.closed.is_none() {
                continue;
            }
            if rt.closed.is_some() {
                release.push(*h);
            } else if rt.linger_until.is_some_and(|t| t <= now) {
                rt.linger_until = None;
                if let Some(c) = st.ep.connection_mut(*h) {
                    c.abort();
                }
            }
        }
        for h in release {
            if st.incoming.contains(&h) {
                continue;
            }
            st.release(h);
        }
    }

    fn next_deadline(st: &mut State) -> Option<Instant> {
        let linger = st.conns.values().filter_map(|rt| rt.linger_until).min();
        match (st.ep.poll_timeout(), linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        for _ in 0..ITERATIONS {
            let ready = {
                let mut q = lock(&shared.wake.inner);
                if !q.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.driver = Some(cx.waker().clone());
                }
                std::mem::take(&mut q.ready)
            };
            let mut more = false;
            for id in ready {
                if this.recv_socket(&mut st, id) {
                    // Budget used up with data left: come back to it.
                    if let Some(s) = st.socks.get(&id) {
                        s.waker.wake_by_ref();
                    }
                    more = true;
                }
            }
            let now = Instant::now();
            if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                st.ep.handle_timeout(now);
            }
            this.reap(&mut st, now);
            more |= this.transmit(&mut st, now);
            this.dispatch_events(&mut st);
            this.reap(&mut st, now);

            if st.refs == 0 && st.conns.is_empty() {
                st.stopped = true;
                if let Some(w) = st.incoming_waker.take() {
                    w.wake();
                }
                return Poll::Ready(());
            }

            // The engine's timers are never left due after `handle_timeout` (each one fired
            // is stopped or moved), so its deadline is taken as it is.
            let deadline = Self::next_deadline(&mut st);
            if deadline != this.timer_at {
                this.timer_at = deadline;
                if let Some(t) = deadline {
                    this.timer.as_mut().reset(tokio::time::Instant::from_std(t));
                }
            }
            let fired = this.timer_at.is_some() && this.timer.as_mut().poll(cx).is_ready();
            if fired {
                this.timer_at = None;
            }
            let queued = !lock(&shared.wake.inner).ready.is_empty();
            if !(fired || more || queued) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A reference that keeps an endpoint's driver alive (held by `Client` and `Server`).
pub(crate) struct EndpointRef {
    pub shared: Arc<Shared>,
}

impl EndpointRef {
    /// Starts the driver task; must run inside a tokio runtime.
    pub(crate) fn spawn(shared: Arc<Shared>) -> Self {
        shared.lock().refs += 1;
        tokio::spawn(Driver::new(shared.clone()));
        Self { shared }
    }
}

impl Clone for EndpointRef {
    fn clone(&self) -> Self {
        self.shared.lock().refs += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for EndpointRef {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.refs = st.refs.saturating_sub(1);
        drop(st);
        self.shared.wake.wake_driver();
    }
}
