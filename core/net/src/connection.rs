//! A Braid connection as a tokio byte stream.

use crate::driver::{ConnRt, NewSocket, Shared};
use crate::error::{Error, Result};
use crate::event::{ConnectionEvent, Events};
use crate::socket::{Interface, PathInfo, SocketBinder, SocketOptions, open_path_socket};
use braid_proto::{
    CloseError, ConnectionHandle, ConnectionStats, PathId, PathSpec, ReadError, WriteError,
};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What it takes to open path sockets (client side).
pub(crate) struct PathFactory {
    pub binder: Arc<dyn SocketBinder>,
    pub opts: SocketOptions,
    /// Raw carrier settings; `None` for the UDP carrier.
    pub raw: Option<crate::raw::RawConfig>,
}

impl PathFactory {
    /// Opens the socket of one path, for the client's carrier.
    pub(crate) fn open(&self, info: &PathInfo) -> Result<(NewSocket, SocketAddr)> {
        match &self.raw {
            None => open_path_socket(info, &*self.binder, self.opts)
                .map(|(s, local)| (NewSocket::Udp(s), local)),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Some(raw) => crate::raw::open_path(info, &*self.binder, raw, self.opts)
                .map(|(s, local)| (NewSocket::Raw(s), local)),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Some(_) => Err(Error::Unsupported("the raw carrier outside Linux")),
        }
    }

    /// Opens the socket for `iface` towards `remote` and adds it as a path of `h`.
    pub(crate) fn add_path(
        &self,
        shared: &Shared,
        h: ConnectionHandle,
        id: PathId,
        iface: &Interface,
        remote: SocketAddr,
    ) -> Result<()> {
        let info = PathInfo {
            id,
            interface: iface.clone(),
            remote: iface.via.unwrap_or(remote),
        };
        let (sock, local) = self.open(&info)?;
        let mut st = shared.lock();
        if st.stopped {
            return Err(Error::EndpointClosed);
        }
        if !st.conns.contains_key(&h) {
            return Err(Error::Closed(braid_proto::CloseError::Aborted));
        }
        let via = iface.via.map(|v| (v, remote));
        let sid = st.add_socket(&shared.wake, sock, local, via)?;
        st.set_socket_owner(sid, (h, id));
        if let Some(rt) = st.conns.get_mut(&h) {
            rt.socks.push((id, sid));
        }
        st.ep
            .add_path(Instant::now(), h, PathSpec::new(id, iface.kind, local));
        drop(st);
        shared.wake.wake_driver();
        Ok(())
    }
}

/// The application's hold on a connection: dropping the last one closes it gracefully
/// (DATA_FIN), then aborts it if it has not finished within the linger time.
pub(crate) struct ConnRef {
    pub shared: Arc<Shared>,
    pub h: ConnectionHandle,
    pub remote: SocketAddr,
    pub paths: Option<Arc<PathFactory>>,
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let linger = st.linger;
        if let Some(rt) = st.conns.get_mut(&self.h) {
            rt.app_held = false;
            if rt.closed.is_none() {
                rt.linger_until = Some(Instant::now() + linger);
                if let Some(c) = st.ep.connection_mut(self.h) {
                    c.shutdown();
                    // Unread data will never be read.
                    let mut sink = [0u8; 4096];
                    while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
                }
            }
        }
        drop(st);
        self.shared.wake.wake_driver();
    }
}

impl ConnRef {
    pub(crate) fn new(
        shared: Arc<Shared>,
        h: ConnectionHandle,
        remote: SocketAddr,
        paths: Option<Arc<PathFactory>>,
    ) -> Self {
        Self {
            shared,
            h,
            remote,
            paths,
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        let Some(c) = st.ep.connection_mut(self.h) else {
            return Poll::Ready(Err(gone(&st, self.h)));
        };
        let dst = buf.initialize_unfilled();
        if dst.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match c.read(dst) {
            Ok(n) => {
                buf.advance(n);
                drop(st);
                if n > 0 {
                    // A read may open the receive window: the engine may want to say so.
                    self.shared.wake.wake_driver();
                }
                Poll::Ready(Ok(()))
            }
            Err(ReadError::Blocked) => {
                if let Some(rt) = st.conns.get_mut(&self.h) {
                    rt.read_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(ReadError::ConnectionLost(e)) => Poll::Ready(Err(Error::Closed(e).into_io())),
            // A refusal this runtime does not know yet: fail the read and say why.
            Err(other) => Poll::Ready(Err(io::Error::other(other.to_string()))),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock();
        let Some(c) = st.ep.connection_mut(self.h) else {
            return Poll::Ready(Err(gone(&st, self.h)));
        };
        match c.write(data) {
            Ok(n) => {
                drop(st);
                if n > 0 {
                    self.shared.wake.wake_driver();
                }
                Poll::Ready(Ok(n))
            }
            Err(WriteError::Blocked) => {
                if let Some(rt) = st.conns.get_mut(&self.h) {
                    rt.write_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(WriteError::Closed) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write side already shut down",
            ))),
            Err(WriteError::ConnectionLost(e)) => Poll::Ready(Err(Error::Closed(e).into_io())),
            // A refusal this runtime does not know yet: fail the write and say why.
            Err(other) => Poll::Ready(Err(io::Error::other(other.to_string()))),
        }
    }

    fn shutdown(&self) {
        let mut st = self.shared.lock();
        if let Some(c) = st.ep.connection_mut(self.h) {
            c.shutdown();
        }
        drop(st);
        self.shared.wake.wake_driver();
    }

    fn events(&self) -> Events {
        let mut st = self.shared.lock();
        // Subscribing and copying the history under the same lock the driver sends under:
        // no event is missed or seen twice.
        let (rx, backlog) = match st.conns.get_mut(&self.h) {
            Some(rt) => (rt.subscribe(), rt.history.clone()),
            None => (tokio::sync::broadcast::channel(1).1, Default::default()),
        };
        Events { rx, backlog }
    }

    /// The events so far (the last 64), without subscribing.
    fn event_history(&self) -> Vec<ConnectionEvent> {
        let st = self.shared.lock();
        st.conns
            .get(&self.h)
            .map(|rt| rt.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn stats(&self) -> ConnectionStats {
        let st = self.shared.lock();
        st.ep
            .connection(self.h)
            .map(|c| c.stats())
            .unwrap_or_default()
    }

    fn mptcp_keys(&self) -> Option<(u64, u64)> {
        self.shared
            .lock()
            .ep
            .connection(self.h)
            .and_then(|c| c.mptcp_keys())
    }

    fn last_activity(&self) -> Option<Instant> {
        self.shared
            .lock()
            .ep
            .connection(self.h)
            .map(|c| c.last_activity())
    }
}

fn gone(st: &crate::driver::State, _h: ConnectionHandle) -> io::Error {
    if st.stopped {
        Error::EndpointClosed.into_io()
    } else {
        Error::Closed(braid_proto::CloseError::Aborted).into_io()
    }
}

/// Waits until the handshake completes or fails.
pub(crate) async fn wait_connected(
    shared: &Shared,
    h: ConnectionHandle,
    remote: SocketAddr,
) -> Result<()> {
    std::future::poll_fn(|cx| {
        let mut st = shared.lock();
        if st.stopped {
            return Poll::Ready(Err(Error::EndpointClosed));
        }
        let Some(rt) = st.conns.get_mut(&h) else {
            return Poll::Ready(Err(Error::EndpointClosed));
        };
        if rt.connected {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = &rt.closed {
            return Poll::Ready(Err(Error::ConnectFailed {
                remote,
                reason: e.clone(),
            }));
        }
        rt.connect_waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// One Braid connection: a reliable byte stream over every usable path.
///
/// `poll_shutdown` sends DATA_FIN (the write side closes, reading goes on). Dropping the
/// connection closes it gracefully and aborts it if the peer does not finish in time.
pub struct Connection {
    inner: Arc<ConnRef>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("handle", &self.inner.h)
            .field("remote", &self.inner.remote)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(inner: ConnRef) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The address the connection was opened to (or accepted from).
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote
    }

    /// Path and state changes from now on.
    pub fn events(&self) -> Events {
        self.inner.events()
    }

    /// The connection's counters (engine and paths).
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats()
    }

    /// The MPTCP keys (local, remote) once both are known; `None` for a connection that is
    /// plain TCP (fallback) or gone. Both ends know them, so they can bind a secret to this
    /// connection (the gateway's client token does).
    pub fn mptcp_keys(&self) -> Option<(u64, u64)> {
        self.inner.mptcp_keys()
    }

    /// When the peer last sent a segment that passed its subflow's checks (forged or stray
    /// datagrams do not count); `None` once the connection is gone.
    pub fn last_activity(&self) -> Option<Instant> {
        self.inner.last_activity()
    }

    /// Sends DATA_FIN after the buffered data (same as `poll_shutdown`).
    pub fn finish(&self) {
        self.inner.shutdown();
    }

    /// Tears the connection down at once (MP_FASTCLOSE).
    pub fn abort(&self) {
        let mut st = self.inner.shared.lock();
        if let Some(c) = st.ep.connection_mut(self.inner.h) {
            c.abort();
        }
        drop(st);
        self.inner.shared.wake.wake_driver();
    }

    /// Opens a subflow on another interface. Returns the path's id.
    pub fn add_path(&self, iface: Interface) -> Result<PathId> {
        let Some(f) = &self.inner.paths else {
            return Err(Error::Unsupported("adding paths to an accepted connection"));
        };
        let id = {
            let mut st = self.inner.shared.lock();
            st.path_id_for(iface.index)
        };
        f.add_path(
            &self.inner.shared,
            self.inner.h,
            id,
            &iface,
            self.inner.remote,
        )?;
        Ok(id)
    }

    /// The interface behind `path` is gone: its subflows are dropped and its socket closed.
    pub fn remove_path(&self, path: PathId) {
        let mut st = self.inner.shared.lock();
        st.drop_path(Instant::now(), self.inner.h, path);
        drop(st);
        self.inner.shared.wake.wake_driver();
    }

    /// Waits until the connection is over (both sides finished, or it failed) and says how
    /// it ended. Useful after `finish()` to know the peer got everything before exiting.
    pub async fn closed(&self) -> CloseError {
        let mut events = self.events();
        {
            let st = self.inner.shared.lock();
            match st.conns.get(&self.inner.h) {
                Some(rt) => {
                    if let Some(e) = &rt.closed {
                        return e.clone();
                    }
                }
                // Released by the runtime: it was over.
                None => return CloseError::Finished,
            }
        }
        while let Some(e) = events.recv().await {
            if let ConnectionEvent::Closed(e) = e {
                return e;
            }
        }
        CloseError::Finished
    }

    /// Changes the service type (and its settings) on the live connection.
    pub fn set_policy(&self, policy: braid_proto::Policy) {
        let mut st = self.inner.shared.lock();
        st.ep.set_policy(Instant::now(), self.inner.h, policy);
        drop(st);
        self.inner.shared.wake.wake_driver();
    }

    /// Quality hints from the OS for `path` (weak signal, metered).
    pub fn set_path_quality(&self, path: PathId, quality: braid_proto::conn::PathQuality) {
        let mut st = self.inner.shared.lock();
        st.ep
            .interface_quality(Instant::now(), self.inner.h, path, quality);
        drop(st);
        self.inner.shared.wake.wake_driver();
    }

    /// Asks the peer to send on `path` only when nothing else works (MP_PRIO backup), or not.
    pub fn set_path_backup(&self, path: PathId, backup: bool) {
        let mut st = self.inner.shared.lock();
        st.ep.set_path_backup(self.inner.h, path, backup);
        drop(st);
        self.inner.shared.wake.wake_driver();
    }

    /// Paths with a socket, and their local addresses.
    pub fn paths(&self) -> Vec<(PathId, SocketAddr)> {
        let st = self.inner.shared.lock();
        st.conns
            .get(&self.inner.h)
            .map(|rt: &ConnRt| {
                rt.socks
                    .iter()
                    .filter_map(|(p, id)| st.socket_local(*id).map(|a| (*p, a)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A handle for watching the connection from elsewhere; it does not keep it open.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Halves that can move to different tasks.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                inner: self.inner.clone(),
            },
            OwnedWriteHalf { inner: self.inner },
        )
    }

    /// Borrowed halves.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf { inner: &self.inner },
            WriteHalf { inner: &self.inner },
        )
    }
}

macro_rules! read_half {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.inner.poll_read(cx, buf)
            }
        }
    };
}

macro_rules! write_half {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.shutdown();
                Poll::Ready(Ok(()))
            }
        }
    };
}

/// The reading half of a connection, owned.
pub struct OwnedReadHalf {
    inner: Arc<ConnRef>,
}

/// The writing half of a connection, owned.
pub struct OwnedWriteHalf {
    inner: Arc<ConnRef>,
}

/// The reading half of a borrowed connection.
pub struct ReadHalf<'a> {
    inner: &'a Arc<ConnRef>,
}

/// The writing half of a borrowed connection.
pub struct WriteHalf<'a> {
    inner: &'a Arc<ConnRef>,
}

// The connection and its halves read and write the same shared state.
read_half!(Connection);
write_half!(Connection);
read_half!(OwnedReadHalf);
read_half!(ReadHalf<'_>);
write_half!(OwnedWriteHalf);
write_half!(WriteHalf<'_>);

impl OwnedWriteHalf {
    /// Resets the connection (RST on every subflow, MP_FASTCLOSE) without waiting for buffered data.
    pub fn abort(&self) {
        Connection {
            inner: self.inner.clone(),
        }
        .abort();
    }

    /// The connection's counters (engine and paths).
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats()
    }

    /// The connection's events so far (the last 64), without subscribing: a subscription
    /// costs the connection a channel for as long as it lives.
    pub fn event_history(&self) -> Vec<ConnectionEvent> {
        self.inner.event_history()
    }
}

impl OwnedReadHalf {
    /// Puts the halves back together (both must come from the same connection).
    pub fn reunite(
        self,
        w: OwnedWriteHalf,
    ) -> std::result::Result<Connection, (Self, OwnedWriteHalf)> {
        if Arc::ptr_eq(&self.inner, &w.inner) {
            drop(w);
            Ok(Connection { inner: self.inner })
        } else {
            Err((self, w))
        }
    }

    /// The connection's events (a new subscription).
    pub fn events(&self) -> Events {
        self.inner.events()
    }
}

/// Watches a connection without owning it (stats and events while the halves are busy).
#[derive(Clone)]
pub struct Monitor {
    inner: std::sync::Weak<ConnRef>,
}

impl Monitor {
    /// Statistics, or `None` once the application dropped the connection.
    pub fn stats(&self) -> Option<ConnectionStats> {
        self.inner.upgrade().map(|c| c.stats())
    }

    /// The connection's events (a new subscription), if it still exists.
    pub fn events(&self) -> Option<Events> {
        self.inner.upgrade().map(|c| c.events())
    }

    /// See [`Connection::last_activity`]; `None` once the application dropped it.
    pub fn last_activity(&self) -> Option<Instant> {
        self.inner.upgrade().and_then(|c| c.last_activity())
    }
}

impl OwnedWriteHalf {
    /// A handle to watch the connection's statistics and events after the halves are gone.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            inner: Arc::downgrade(&self.inner),
        }
    }
}
