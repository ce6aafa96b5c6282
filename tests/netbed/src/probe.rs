//! A small RTT probe: UDP echo between the namespaces (like `ping`, without raw sockets).
//!
//! An echo thread in the server namespace, bound to the target address, returns every
//! datagram to its sender. The phone side sends numbered 64-byte probes one at a time, waits
//! up to a second for each echo, and records the round-trip times.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::{Link, Side, Testbed};

const PROBE_LEN: usize = 64;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How the phone's probe socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// Not bound: the routing table picks the path (WiFi by default).
    Any,
    /// SO_BINDTODEVICE to the link's phone interface.
    Device(Link),
    /// Bound to the link's phone address (policy routing picks the link).
    Address(Link),
}

/// Round-trip times of a probe run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RttStats {
    pub sent: u32,
    /// RTTs of the probes that came back, in sending order.
    pub samples: Vec<Duration>,
}

impl RttStats {
    pub fn lost(&self) -> u32 {
        self.sent - self.samples.len() as u32
    }

    pub fn min(&self) -> Option<Duration> {
        self.samples.iter().min().copied()
    }

    pub fn max(&self) -> Option<Duration> {
        self.samples.iter().max().copied()
    }

    pub fn median(&self) -> Option<Duration> {
        let mut s = self.samples.clone();
        s.sort();
        s.get(s.len() / 2).copied()
    }
}

impl std::fmt::Display for RttStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        write!(
            f,
            "{} sent, {} lost, rtt min/median/max = {:.2}/{:.2}/{:.2} ms",
            self.sent,
            self.lost(),
            ms(self.min()),
            ms(self.median()),
            ms(self.max())
        )
    }
}

/// Runs `count` probes from the phone (bound per `bind`) to `dst` on the server.
pub(crate) fn udp_rtt(
    tb: &Testbed,
    bind: Bind,
    dst: Ipv4Addr,
    count: u32,
    interval: Duration,
) -> io::Result<RttStats> {
    let echo = tb.run_in(Side::Server, move || {
        UdpSocket::bind(SocketAddrV4::new(dst, 0))
    })?;
    let target = echo.local_addr()?;
    echo.set_read_timeout(Some(Duration::from_millis(50)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    // The socket already belongs to the server namespace: the echo thread need not be there.
    let echo_thread = std::thread::Builder::new()
        .name("nb-echo".into())
        .spawn(move || {
            let mut buf = [0u8; 2048];
            while !echo_stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        })?;
    let result = tb.run_in(Side::Phone, move || {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        match bind {
            Bind::Any => {}
            Bind::Device(link) => sock.bind_device(Some(link.iface(Side::Phone).as_bytes()))?,
            Bind::Address(link) => {
                let a = SocketAddr::from((link.addr(Side::Phone), 0));
                sock.bind(&a.into())?;
            }
        }
        let sock: UdpSocket = sock.into();
        // Not connected: connect() would fail outright while the link is down, and a probe
        // run then is simply all loss.
        run_probes(&sock, target, count, interval)
    });
    stop.store(true, Ordering::Relaxed);
    let _ = echo_thread.join();
    result
}

fn run_probes(
    sock: &UdpSocket,
    target: SocketAddr,
    count: u32,
    interval: Duration,
) -> io::Result<RttStats> {
    let mut stats = RttStats::default();
    let mut buf = [0u8; 2048];
    for seq in 0..count {
        let mut probe = [0u8; PROBE_LEN];
        probe[..4].copy_from_slice(&seq.to_be_bytes());
        let sent_at = Instant::now();
        stats.sent += 1;
        if let Err(e) = sock.send_to(&probe, target) {
            if !is_unreachable(&e) {
                return Err(e);
            }
            std::thread::sleep(interval);
            continue;
        }
        let deadline = sent_at + PROBE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == target && n >= 4 && buf[..4] == seq.to_be_bytes() => {
                    stats.samples.push(sent_at.elapsed());
                    break;
                }
                Ok(_) => continue, // a late echo of an earlier probe, or a stranger
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                // ICMP errors (unreachable while a link is down) count as loss.
                Err(e) if is_unreachable(&e) => break,
                Err(e) => return Err(e),
            }
        }
        std::thread::sleep(interval);
    }
    Ok(stats)
}

/// Errors that mean "no path right now": the probe counts as lost.
fn is_unreachable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
        || matches!(
            e.raw_os_error(),
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN)
        )
}
