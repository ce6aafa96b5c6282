//! What a `BraidConnection` reads and writes: the Braid connection itself, or TLS over it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A Braid connection, plain or inside a TLS session. Either way the Braid connection stays
/// reachable ([`Stream::connection`]) for stats, paths, events and the service type.
pub(crate) enum Stream {
    Plain(braid::Connection),
    /// Boxed: a TLS session is a few KB of buffers and state.
    Tls(Box<braid::tls::ClientTlsStream<braid::Connection>>),
}

impl Stream {
    /// The Braid connection underneath.
    pub(crate) fn connection(&self) -> &braid::Connection {
        match self {
            Stream::Plain(c) => c,
            Stream::Tls(t) => t.get_ref().0,
        }
    }

    /// The application protocol the server chose (ALPN), for TLS.
    pub(crate) fn alpn(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    /// Ends the sending side. TLS first queues its close_notify alert, then the Braid
    /// connection sends DATA_FIN after it.
    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(c) => Pin::new(c).poll_read(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(c) => Pin::new(c).poll_write(cx, data),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(c) => Pin::new(c).poll_flush(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(c) => Pin::new(c).poll_shutdown(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}
