//! Relaying one Braid connection and one TCP connection both ways: the gateway's loop (Braid
//! client <-> TCP server) and the local proxy's (app's TCP <-> Braid to the gateway).
//!
//! Two bounded copy loops, so a side that stops reading only stalls its own peer through
//! flow control. Half-close is carried both ways (FIN <-> DATA_FIN); when either side fails
//! the other is reset: MP_FASTCLOSE on the Braid side, RST (zero linger) on the TCP side.

use crate::connection::{Connection, Monitor};
use crate::event::ConnectionEvent;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a relayed pair of connections ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Both directions reached end of stream.
    Finished,
    /// The Braid side was reset or failed (the TCP side was reset in turn).
    BraidFailed(io::Error),
    /// The TCP side was reset or failed (the Braid side was reset in turn).
    TcpFailed(io::Error),
    /// The Braid peer sent nothing valid for this long: both sides were reset.
    Idle(Duration),
}

/// Bytes relayed so far, per direction.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub braid_to_tcp: AtomicU64,
    pub tcp_to_braid: AtomicU64,
}

/// Which side failed in a copy loop.
enum PumpError {
    Read(io::Error),
    Write(io::Error),
}

/// Reads go first to a buffer of this size inside the pump (no allocation); the copy
/// buffer is allocated only while reads fill it, that is while data flows.
const SMALL_READ: usize = 1024;

/// Copies until end of stream, then half-closes the writer. Adds what it copies to `count`
/// and, when given, `total`. The `buf_size` copy buffer exists only while data flows: it is
/// allocated (not zeroed) when a read fills the small buffer, and freed when a read comes
/// back small, so an idle relay holds no copy buffer (see docs/ARCHITECTURE.md, "Idle
/// connections are cheap").
async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    buf_size: usize,
    count: &AtomicU64,
    total: Option<&AtomicU64>,
) -> Result<(), PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let buf_size = buf_size.max(SMALL_READ);
    let mut small = [0u8; SMALL_READ];
    let mut big: Vec<u8> = Vec::new();
    loop {
        let flowing = big.capacity() > 0;
        let n = if flowing {
            big.clear();
            r.read_buf(&mut big).await.map_err(PumpError::Read)?
        } else {
            r.read(&mut small).await.map_err(PumpError::Read)?
        };
        if n == 0 {
            w.shutdown().await.map_err(PumpError::Write)?;
            return Ok(());
        }
        let data = if flowing { &big[..n] } else { &small[..n] };
        w.write_all(data).await.map_err(PumpError::Write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = total {
            t.fetch_add(n as u64, Ordering::Relaxed);
        }
        if !flowing && n == SMALL_READ {
            big = Vec::with_capacity(buf_size);
        } else if flowing && n < SMALL_READ {
            big = Vec::new();
        }
    }
}

/// Relays until both directions end or one side fails. `buf` is the copy buffer per
/// direction; with `idle`, the pair is reset once the Braid peer has sent nothing that passed
/// its subflow's checks for that long. Bytes are counted in `counts` and, as they pass, in
/// `totals` (an endpoint's live counters).
pub(crate) async fn relay(
    conn: Connection,
    tcp: TcpStream,
    buf: usize,
    idle: Option<Duration>,
    counts: &Counts,
    totals: Option<&Counts>,
) -> Ending {
    let never = std::future::pending();
    match relay_until(conn, tcp, buf, idle, counts, totals, never, None).await {
        Some(ending) => ending,
        // `never` does not complete.
        None => Ending::Finished,
    }
}

/// [`relay`], and when `stop` completes first, both sides are reset and the answer is `None`
/// (a draining gateway closing what is left). With `history`, the Braid connection's events
/// so far are left there at the end (read then rather than subscribed to for the whole
/// relay: a subscription costs every connection a channel).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay_until(
    conn: Connection,
    tcp: TcpStream,
    buf: usize,
    idle: Option<Duration>,
    counts: &Counts,
    totals: Option<&Counts>,
    stop: impl std::future::Future<Output = ()>,
    history: Option<&mut Vec<ConnectionEvent>>,
) -> Option<Ending> {
    let monitor = conn.monitor();
    let (mut br, mut bw) = conn.into_split();
    let (mut tr, mut tw) = tcp.into_split();
    let failure = {
        let to_tcp = pump(
            &mut br,
            &mut tw,
            buf,
            &counts.braid_to_tcp,
            totals.map(|t| &t.braid_to_tcp),
        );
        let to_braid = pump(
            &mut tr,
            &mut bw,
            buf,
            &counts.tcp_to_braid,
            totals.map(|t| &t.tcp_to_braid),
        );
        tokio::pin!(to_tcp, to_braid);
        let (mut to_tcp_done, mut to_braid_done) = (false, false);
        // Life is what the engine saw pass its checks; the check runs when the last sign
        // of life would expire.
        let silent_until =
            |m: &Monitor, idle: Duration| m.last_activity().unwrap_or_else(Instant::now) + idle;
        let first_check = idle.map_or_else(
            // Never fires in practice: a year.
            || Instant::now() + Duration::from_secs(365 * 24 * 3600),
            |d| silent_until(&monitor, d),
        );
        let idle_check = tokio::time::sleep_until(first_check.into());
        tokio::pin!(idle_check, stop);
        loop {
            tokio::select! {
                () = &mut stop => break Some(None),
                () = &mut idle_check, if idle.is_some() => {
                    let d = idle.unwrap_or_default();
                    let until = silent_until(&monitor, d);
                    if until <= Instant::now() {
                        break Some(Some(Ending::Idle(d)));
                    }
                    idle_check.as_mut().reset(until.into());
                    continue;
                }
                r = &mut to_tcp, if !to_tcp_done => match r {
                    Ok(()) => to_tcp_done = true,
                    // Reading Braid failed: its peer reset (or vanished). Writing TCP failed:
                    // the TCP peer reset.
                    Err(PumpError::Read(e)) => break Some(Some(Ending::BraidFailed(e))),
                    Err(PumpError::Write(e)) => break Some(Some(Ending::TcpFailed(e))),
                },
                r = &mut to_braid, if !to_braid_done => match r {
                    Ok(()) => to_braid_done = true,
                    Err(PumpError::Read(e)) => break Some(Some(Ending::TcpFailed(e))),
                    Err(PumpError::Write(e)) => break Some(Some(Ending::BraidFailed(e))),
                },
            }
            if to_tcp_done && to_braid_done {
                break None;
            }
        }
    };
    if let Some(h) = history {
        *h = bw.event_history();
    }
    // `None`: both directions finished; `Some(None)`: stopped; `Some(Some(_))`: failed.
    match failure {
        None => Some(Ending::Finished),
        Some(ending) => {
            // Pass the reset on: MP_FASTCLOSE to the Braid peer, RST to the TCP peer.
            bw.abort();
            let _ = tw.as_ref().set_zero_linger();
            // Dropping the write half would send a FIN first, and the peer would take the
            // end for an orderly one: the socket closes (with the RST) with the read half.
            tw.forget();
            drop(tr);
            ending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out what it holds in reads of the sizes given, in turn (so the
    /// pump sees small and full reads in any order), then end of stream.
    struct Chunked {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let size = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let n = size.min(buf.remaining()).min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn pump_copies_everything_in_order_whatever_the_read_sizes() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        // Small reads, reads that fill the small buffer exactly (the copy buffer comes),
        // large ones, and small again (it goes).
        let sizes = vec![
            1,
            300,
            SMALL_READ,
            5000,
            64 * 1024,
            17,
            SMALL_READ,
            SMALL_READ,
            3,
        ];
        let mut r = Chunked {
            data: data.clone(),
            at: 0,
            sizes,
            turn: 0,
        };
        let mut out = Vec::new();
        let count = AtomicU64::new(0);
        let total = AtomicU64::new(0);
        let res = pump(&mut r, &mut out, 16 * 1024, &count, Some(&total)).await;
        assert!(res.is_ok());
        assert_eq!(out.len(), data.len());
        assert!(out == data, "bytes differ");
        assert_eq!(count.load(Ordering::Relaxed), data.len() as u64);
        assert_eq!(total.load(Ordering::Relaxed), data.len() as u64);
    }
}
