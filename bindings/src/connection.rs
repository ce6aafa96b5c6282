//! `BraidConnection`: a byte stream over every usable path, with path events.

use crate::cancel::{BraidCancelToken, cancellable};
use crate::error::{BraidError, CallbackError, from_io};
use crate::lock;
use crate::runtime::{run, runtime};
use crate::stream::Stream;
use crate::types::{BraidEvent, BraidPath, BraidStats, InterfaceKind, ServiceType};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// The largest single read; bigger requests are served in several reads.
const MAX_READ: usize = 1 << 20;

/// How long `close` waits to hand TLS's close_notify to a full send buffer.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

fn closed_error() -> BraidError {
    BraidError::Closed("the connection was closed by the app".into())
}

/// One Braid connection, plain or with TLS inside (`BraidClient.connectTls`). Reads and
/// writes may run at the same time (one of each); a second concurrent read waits for the
/// first. Dropping it closes it gracefully.
#[derive(uniffi::Object)]
pub struct BraidConnection {
    /// `None` once the app closed or aborted it.
    conn: Mutex<Option<Stream>>,
    client: braid::Client,
    remote: String,
    reading: tokio::sync::Mutex<()>,
    writing: tokio::sync::Mutex<()>,
    /// Set by `close`/`abort`: wakes reads and writes that would otherwise wait forever.
    closed: watch::Sender<bool>,
    /// Subscribed when `connect` returns, so the first subscriber also sees what happened
    /// before the app got around to subscribing.
    first_events: Mutex<Option<braid::Events>>,
    final_stats: Mutex<Option<BraidStats>>,
    /// The policy in force, so a new service type keeps the app's other settings.
    policy: Mutex<braid::Policy>,
}

impl BraidConnection {
    pub(crate) fn new(
        conn: Stream,
        client: braid::Client,
        remote: String,
        policy: braid::Policy,
    ) -> Arc<Self> {
        let events = conn.connection().events();
        Arc::new(BraidConnection {
            conn: Mutex::new(Some(conn)),
            client,
            remote,
            reading: tokio::sync::Mutex::new(()),
            writing: tokio::sync::Mutex::new(()),
            closed: watch::channel(false).0,
            first_events: Mutex::new(Some(events)),
            final_stats: Mutex::new(None),
            policy: Mutex::new(policy),
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, BraidError>> {
        let mut g = lock(&self.conn);
        let Some(c) = g.as_mut() else {
            return Poll::Ready(Err(closed_error()));
        };
        let mut rb = ReadBuf::new(buf);
        match Pin::new(c).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(from_io(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize, BraidError>> {
        let mut g = lock(&self.conn);
        let Some(c) = g.as_mut() else {
            return Poll::Ready(Err(closed_error()));
        };
        match Pin::new(c).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(from_io(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    async fn read_inner(&self, max: usize) -> Result<Vec<u8>, BraidError> {
        let _one_reader = self.reading.lock().await;
        let mut closed = self.closed.subscribe();
        let mut buf = vec![0u8; max];
        let n = tokio::select! {
            r = poll_fn(|cx| self.poll_read(cx, &mut buf)) => r?,
            _ = closed.wait_for(|c| *c) => return Err(closed_error()),
        };
        buf.truncate(n);
        Ok(buf)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), BraidError>> {
        let mut g = lock(&self.conn);
        let Some(c) = g.as_mut() else {
            return Poll::Ready(Err(closed_error()));
        };
        Pin::new(c).poll_flush(cx).map_err(from_io)
    }

    async fn write_inner(&self, data: &[u8]) -> Result<(), BraidError> {
        let _one_writer = self.writing.lock().await;
        let mut closed = self.closed.subscribe();
        let mut off = 0;
        while off < data.len() {
            let n = tokio::select! {
                r = poll_fn(|cx| self.poll_write(cx, &data[off..])) => r?,
                _ = closed.wait_for(|c| *c) => return Err(closed_error()),
            };
            if n == 0 {
                return Err(BraidError::Closed(
                    "the connection accepts no more data".into(),
                ));
            }
            off += n;
        }
        // TLS may keep records it could not hand to a full send buffer yet.
        tokio::select! {
            r = poll_fn(|cx| self.poll_flush(cx)) => r,
            _ = closed.wait_for(|c| *c) => Err(closed_error()),
        }
    }

    /// Ends the sending side; for TLS, completes in the background if the send buffer is
    /// too full for the close_notify alert right now.
    fn finish_inner(self: &Arc<Self>) -> Result<(), BraidError> {
        let mut g = lock(&self.conn);
        let s = g.as_mut().ok_or_else(closed_error)?;
        if let Stream::Plain(c) = s {
            c.finish();
            return Ok(());
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match s.poll_finish(&mut cx) {
            Poll::Ready(r) => r.map_err(from_io),
            Poll::Pending => {
                drop(g);
                let this = self.clone();
                runtime().spawn(async move {
                    let _one_writer = this.writing.lock().await;
                    let r = poll_fn(|cx| match lock(&this.conn).as_mut() {
                        Some(s) => s.poll_finish(cx),
                        None => Poll::Ready(Ok(())),
                    })
                    .await;
                    if let Err(e) = r {
                        log::warn!("finishing a TLS connection failed: {e}");
                    }
                });
                Ok(())
            }
        }
    }

    /// Takes the connection away from the API; what happens to it is up to the caller.
    fn take(&self) -> Option<Stream> {
        let c = lock(&self.conn).take();
        if let Some(c) = &c {
            *lock(&self.final_stats) = Some(c.connection().stats().into());
        }
        self.closed.send_replace(true);
        c
    }

    fn events_now(&self) -> Option<braid::Events> {
        if let Some(e) = lock(&self.first_events).take() {
            return Some(e);
        }
        lock(&self.conn).as_ref().map(|c| c.connection().events())
    }
}

#[uniffi::export]
impl BraidConnection {
    /// Reads up to `max_bytes` (at most 1 MiB at a time). An empty result means the peer
    /// finished sending (end of stream). Cancelling `cancel` ends a pending read with
    /// `Cancelled` without losing bytes: the next read gets them.
    #[uniffi::method(default(cancel = None))]
    pub async fn read(
        self: Arc<Self>,
        max_bytes: u32,
        cancel: Option<Arc<BraidCancelToken>>,
    ) -> Result<Vec<u8>, BraidError> {
        if max_bytes == 0 {
            return Err(BraidError::InvalidArgument(
                "max_bytes must be at least 1".into(),
            ));
        }
        let max = (max_bytes as usize).min(MAX_READ);
        run(cancellable(
            cancel,
            async move { self.read_inner(max).await },
        ))
        .await
    }

    /// Writes all of `data`; returns once the connection has taken it (not when the peer
    /// received it). Cancelling a write (the task, or `cancel`) may leave part of it sent.
    #[uniffi::method(default(cancel = None))]
    pub async fn write(
        self: Arc<Self>,
        data: Vec<u8>,
        cancel: Option<Arc<BraidCancelToken>>,
    ) -> Result<(), BraidError> {
        run(cancellable(
            cancel,
            async move { self.write_inner(&data).await },
        ))
        .await
    }

    /// Finishes the sending side (the peer reads end of stream; with TLS, after a
    /// close_notify alert); reading goes on.
    pub fn finish(self: Arc<Self>) -> Result<(), BraidError> {
        crate::guard("finish", || self.finish_inner())
    }

    /// Closes the connection gracefully: what was written is still delivered in the
    /// background (up to the linger time); pending reads and writes fail with `Closed`.
    pub async fn close(self: Arc<Self>) {
        let this = self.clone();
        let _ = run(async move {
            if let Some(mut c) = this.take() {
                // TLS's close_notify, then DATA_FIN; a plain connection finishes at once.
                let finish = poll_fn(|cx| c.poll_finish(cx));
                if tokio::time::timeout(CLOSE_NOTIFY_WAIT, finish)
                    .await
                    .is_err()
                {
                    c.connection().finish();
                }
                // Wait for reads and writes in flight to see the close before dropping it.
                let _r = this.reading.lock().await;
                let _w = this.writing.lock().await;
                drop(c);
            }
            Ok(())
        })
        .await;
    }

    /// Tears the connection down at once; unsent data is lost.
    pub fn abort(&self) {
        if let Some(c) = self.take() {
            let _rt = runtime().enter();
            c.connection().abort();
        }
    }

    /// The application protocol the TLS server chose (ALPN, e.g. "h2"); nothing for a plain
    /// connection or when the server chose none.
    pub fn alpn_protocol(&self) -> Option<String> {
        lock(&self.conn).as_ref().and_then(Stream::alpn)
    }

    /// The address (or `host:port` target) the connection was opened to.
    pub fn remote(&self) -> String {
        self.remote.clone()
    }

    /// Counters; after `close` the last values before it.
    pub fn stats(&self) -> BraidStats {
        if let Some(c) = lock(&self.conn).as_ref() {
            return c.connection().stats().into();
        }
        lock(&self.final_stats).clone().unwrap_or(BraidStats {
            mptcp: false,
            established: false,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            bytes_reinjected: 0,
            subflows_opened: 0,
            subflows_closed: 0,
            cellular_bytes: 0,
            paths: Vec::new(),
        })
    }

    /// The paths the connection has a socket on now.
    pub fn paths(&self) -> Vec<BraidPath> {
        let (paths, stats) = match lock(&self.conn).as_ref() {
            Some(c) => (c.connection().paths(), c.connection().stats()),
            None => return Vec::new(),
        };
        let ifaces = self.client.interfaces();
        paths
            .into_iter()
            .map(|(id, local)| {
                // The newest subflow on the path tells its state.
                let sub = stats.paths.iter().rev().find(|p| p.path == Some(id));
                let kind = sub
                    .and_then(|p| p.kind)
                    .or_else(|| ifaces.iter().find(|(p, _)| *p == id).map(|(_, i)| i.kind));
                BraidPath {
                    path_id: id.get(),
                    kind: kind.map(Into::into).unwrap_or(InterfaceKind::Other),
                    local_addr: local.to_string(),
                    state: sub.map(|p| p.state).unwrap_or("none").to_string(),
                    backup: sub.is_some_and(|p| p.backup),
                }
            })
            .collect()
    }

    /// Changes how the connection uses its paths, live (the other settings of the client's
    /// config stay). Traffic may move at once: expect `BackupChanged`/`PathSwitched` events.
    pub fn set_service_type(&self, service_type: ServiceType) -> Result<(), BraidError> {
        crate::guard("set_service_type", || {
            let g = lock(&self.conn);
            let c = g.as_ref().ok_or_else(closed_error)?;
            let mut p = lock(&self.policy);
            p.service = service_type.into();
            let _rt = runtime().enter();
            c.connection().set_policy(p.clone());
            Ok(())
        })
    }

    /// A stream of this connection's events, pulled with `next()`. The first stream (or
    /// listener) also gets the events since `connect` returned.
    pub fn subscribe(&self) -> Arc<BraidEventStream> {
        Arc::new(BraidEventStream {
            events: tokio::sync::Mutex::new(self.events_now()),
            closed: watch::channel(false).0,
        })
    }

    /// Calls `listener` for every event, in order, on a Braid thread, until the returned
    /// subscription is cancelled or dropped (or the connection is gone).
    pub fn set_listener(&self, listener: Arc<dyn BraidEventListener>) -> Arc<BraidSubscription> {
        let events = self.events_now();
        let gate = Arc::new(ListenerGate::default());
        let g = gate.clone();
        let task = runtime().spawn(async move {
            let Some(mut events) = events else { return };
            while let Some(e) = events.recv().await {
                let Some(e) = BraidEvent::from_runtime(e) else {
                    continue;
                };
                let l = listener.clone();
                let g = g.clone();
                // A slow listener must not hold up a runtime worker.
                let r = tokio::task::spawn_blocking(move || g.call(|| l.on_event(e))).await;
                match r {
                    Ok(Some(Err(e))) => log::warn!("event listener failed: {e}"),
                    Err(e) => log::warn!("event listener failed: {e}"),
                    Ok(None) => return,
                    Ok(Some(Ok(()))) => {}
                }
            }
        });
        Arc::new(BraidSubscription {
            task: task.abort_handle(),
            gate,
        })
    }
}

impl Drop for BraidConnection {
    fn drop(&mut self) {
        // The runtime's handle closes gracefully on drop and needs the runtime to do so.
        let _rt = runtime().enter();
        drop(lock(&self.conn).take());
    }
}

/// Pull-style events: `next()` until it returns nothing.
#[derive(uniffi::Object)]
pub struct BraidEventStream {
    events: tokio::sync::Mutex<Option<braid::Events>>,
    closed: watch::Sender<bool>,
}

#[uniffi::export]
impl BraidEventStream {
    /// The next event; nothing once the connection is gone, after its `Closed` event, or
    /// after `close()`.
    pub async fn next(self: Arc<Self>) -> Option<BraidEvent> {
        run(async move {
            let mut closed = self.closed.subscribe();
            if *closed.borrow() {
                return Ok(None);
            }
            let mut g = self.events.lock().await;
            let Some(events) = g.as_mut() else {
                return Ok(None);
            };
            loop {
                let e = tokio::select! {
                    e = events.recv() => e,
                    _ = closed.wait_for(|c| *c) => None,
                };
                let Some(e) = e else {
                    *g = None;
                    return Ok(None);
                };
                // Nothing follows a close: let the next call end the stream at once.
                let last = matches!(e, braid::ConnectionEvent::Closed(_));
                if let Some(e) = BraidEvent::from_runtime(e) {
                    if last {
                        *g = None;
                    }
                    return Ok(Some(e));
                }
            }
        })
        .await
        .unwrap_or(None)
    }

    /// Ends the stream: a pending `next()` returns nothing.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Push-style events (see `BraidConnection.setListener`).
#[uniffi::export(foreign)]
pub trait BraidEventListener: Send + Sync {
    /// Called for each event of the connection, in order, on a Braid thread.
    fn on_event(&self, event: BraidEvent) -> Result<(), CallbackError>;
}

/// Makes "cancelled" final: once `close` returns, the listener is not called again (a call
/// in progress on another thread is waited for; one on this thread is the caller itself).
#[derive(Default)]
struct ListenerGate {
    cancelled: std::sync::atomic::AtomicBool,
    /// Held for the length of each call.
    calling: Mutex<()>,
    /// The thread making the current call, if any.
    caller: Mutex<Option<std::thread::ThreadId>>,
}

impl ListenerGate {
    fn call<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        use std::sync::atomic::Ordering;
        let _calling = lock(&self.calling);
        if self.cancelled.load(Ordering::Acquire) {
            return None;
        }
        *lock(&self.caller) = Some(std::thread::current().id());
        let out = f();
        *lock(&self.caller) = None;
        Some(out)
    }

    fn close(&self) {
        use std::sync::atomic::Ordering;
        self.cancelled.store(true, Ordering::Release);
        if *lock(&self.caller) != Some(std::thread::current().id()) {
            drop(lock(&self.calling));
        }
    }
}

/// Keeps a listener registered; dropping or cancelling it stops the calls.
#[derive(uniffi::Object)]
pub struct BraidSubscription {
    task: tokio::task::AbortHandle,
    gate: Arc<ListenerGate>,
}

#[uniffi::export]
impl BraidSubscription {
    /// Stops the calls: when this returns, the listener is not called again.
    pub fn cancel(&self) {
        self.task.abort();
        self.gate.close();
    }
}

impl Drop for BraidSubscription {
    fn drop(&mut self) {
        self.cancel();
    }
}
