//! Relaying one Braid connection and one TCP connection both ways: the gateway's loop (Braid
//! client <-> TCP server) and the local proxy's (app's TCP <-> Braid to the gateway).
//!
//! Two bounded copy loops, so a side that stops reading only stalls its own peer through
//! flow control. Half-close is carried both ways (FIN <-> DATA_FIN); when either side fails
//! the other is reset: MP_FASTCLOSE on the Braid side, RST (zero linger) on the TCP side.

use crate::connection::{Connection, Monitor};
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

/// Copies until end of stream, then half-closes the writer. Adds what it copies to `count`
/// and, when given, `total`.
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
    let mut buf = vec![0u8; buf_size.max(1024)];
    loop {
        let n = r.read(&mut buf).await.map_err(PumpError::Read)?;
        if n == 0 {
            w.shutdown().await.map_err(PumpError::Write)?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await.map_err(PumpError::Write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = total {
            t.fetch_add(n as u64, Ordering::Relaxed);
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
        tokio::pin!(idle_check);
        loop {
            tokio::select! {
                () = &mut idle_check, if idle.is_some() => {
                    let d = idle.unwrap_or_default();
                    let until = silent_until(&monitor, d);
                    if until <= Instant::now() {
                        break Some(Ending::Idle(d));
                    }
                    idle_check.as_mut().reset(until.into());
                    continue;
                }
                r = &mut to_tcp, if !to_tcp_done => match r {
                    Ok(()) => to_tcp_done = true,
                    // Reading Braid failed: its peer reset (or vanished). Writing TCP failed:
                    // the TCP peer reset.
                    Err(PumpError::Read(e)) => break Some(Ending::BraidFailed(e)),
                    Err(PumpError::Write(e)) => break Some(Ending::TcpFailed(e)),
                },
                r = &mut to_braid, if !to_braid_done => match r {
                    Ok(()) => to_braid_done = true,
                    Err(PumpError::Read(e)) => break Some(Ending::TcpFailed(e)),
                    Err(PumpError::Write(e)) => break Some(Ending::BraidFailed(e)),
                },
            }
            if to_tcp_done && to_braid_done {
                break None;
            }
        }
    };
    match failure {
        None => Ending::Finished,
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
