//! Kernel MPTCP client (phone) to kernel MPTCP server over both links: data intact, two
//! subflows seen at both ends, and a WiFi failure midway survived. Root only.
//!
//! The two tests take a lock so they never share the two CPUs: the numbers they print are
//! then meaningful.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use braid_netbed::kernel::{self, MptcpInfo, MptcpListener};
use braid_netbed::transfer::{self, ReceiveReport};
use braid_netbed::{Endpoint, Link, Side, Testbed, TestbedConfig, root_or_skip};

const BYTES: u64 = 50_000_000;
const PORT: u16 = 5201;
const TIMEOUT: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// What one end saw: its report, and MPTCP_INFO + subflow addresses taken halfway through.
struct End<R> {
    report: R,
    info: MptcpInfo,
    subflows: Vec<kernel::SubflowAddrs>,
    is_mptcp: bool,
}

/// MPTCP_INFO, the subflow addresses and TCP_IS_MPTCP of a connection.
type Snapshot = (MptcpInfo, Vec<kernel::SubflowAddrs>, bool);

fn snapshot(s: &TcpStream) -> std::io::Result<Snapshot> {
    Ok((
        kernel::mptcp_info(s)?,
        kernel::subflow_addrs(s)?,
        kernel::is_mptcp(s),
    ))
}

/// Phone endpoint `subflow` on c-cell; the phone connects to the server's WiFi address, so the
/// kernel opens its second subflow 10.31.2.1 -> 10.31.1.2 across the cell link.
fn testbed() -> Testbed {
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    tb.add_endpoint(
        Side::Phone,
        &Endpoint::on(Side::Phone, Link::Cell).subflow(),
    )
    .unwrap();
    tb
}

/// Runs a BYTES transfer; `upload` = phone sends. `during` runs on the calling thread with
/// the receiver's progress counter while the transfer goes on.
fn run_transfer(
    tb: &Testbed,
    upload: bool,
    during: impl FnOnce(&AtomicU64),
) -> (End<ReceiveReport>, End<transfer::SendReport>, Duration) {
    let server_addr = SocketAddr::from((Link::Wifi.addr(Side::Server), PORT));
    let listener = tb
        .run_in(Side::Server, move || MptcpListener::bind(server_addr))
        .unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let start = Instant::now();

    // Receiving end: read everything, snapshot MPTCP state at the halfway mark.
    let receiver =
        move |s: TcpStream, progress: Arc<AtomicU64>| -> std::io::Result<End<ReceiveReport>> {
            s.set_read_timeout(Some(TIMEOUT))?;
            let snap: Arc<Mutex<Option<Snapshot>>> = Arc::default();
            let report = {
                let mut reader = HalfwayProbe {
                    s: &s,
                    done: 0,
                    snap: &snap,
                };
                transfer::receive(&mut reader, Some(&progress))?
            };
            let (info, subflows, is_mptcp) = snap.lock().unwrap().take().expect("halfway snapshot");
            Ok(End {
                report,
                info,
                subflows,
                is_mptcp,
            })
        };
    // Sending end: write everything, snapshot halfway, close cleanly.
    let sender = move |mut s: TcpStream| -> std::io::Result<End<transfer::SendReport>> {
        let first = transfer::send(&mut s, BYTES / 2, None)?;
        let (info, subflows, is_mptcp) = snapshot(&s)?;
        let rest = send_rest(&mut s)?;
        transfer::finish_sending(&mut s, TIMEOUT)?;
        let report = transfer::SendReport {
            bytes: first.bytes + rest,
            sha256: transfer::pattern_sha256(BYTES),
            elapsed: start.elapsed(),
        };
        Ok(End {
            report,
            info,
            subflows,
            is_mptcp,
        })
    };

    let server_progress = Arc::clone(&progress);
    let phone_progress = Arc::clone(&progress);
    let (recv_handle, send_handle);
    if upload {
        recv_handle = std::thread::spawn(move || {
            let (s, _) = listener.accept()?;
            let end = receiver(s, server_progress);
            drop(listener); // only now: joins go through the listener
            end
        });
        send_handle = tb
            .spawn_in(Side::Phone, move || {
                let s = kernel::mptcp_connect(None, server_addr)?;
                sender(s)
            })
            .unwrap();
    } else {
        send_handle = std::thread::spawn(move || {
            let (s, _) = listener.accept()?;
            let end = sender(s);
            drop(listener);
            end
        });
        recv_handle = tb
            .spawn_in(Side::Phone, move || {
                let s = kernel::mptcp_connect(None, server_addr)?;
                receiver(s, phone_progress)
            })
            .unwrap();
    }
    during(&progress);
    let received = recv_handle.join().unwrap().unwrap();
    let elapsed = start.elapsed();
    let sent = send_handle.join().unwrap().unwrap();
    (received, sent, elapsed)
}

/// The second half of the pattern, continuing at offset BYTES / 2.
fn send_rest(s: &mut TcpStream) -> std::io::Result<u64> {
    use std::io::Write;
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = BYTES / 2;
    while off < BYTES {
        let n = (BYTES - off).min(buf.len() as u64) as usize;
        transfer::fill_pattern(off, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(BYTES - BYTES / 2)
}

/// A reader that snapshots the socket's MPTCP state once half of the data has been read.
struct HalfwayProbe<'a> {
    s: &'a TcpStream,
    done: u64,
    snap: &'a Mutex<Option<Snapshot>>,
}

impl std::io::Read for HalfwayProbe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.s).read(buf)?;
        let before = self.done;
        self.done += n as u64;
        if before < BYTES / 2 && self.done >= BYTES / 2 {
            *self.snap.lock().unwrap() = Some(snapshot(self.s)?);
        }
        Ok(n)
    }
}

fn check_two_subflows(
    who: &str,
    info: &MptcpInfo,
    subflows: &[kernel::SubflowAddrs],
    is_mptcp: bool,
) {
    println!(
        "{who}: token {:08x}, subflows {} (total {:?}), add_addr_accepted {}, flags {:#x}, \
         csum {}, retransmits {:?}, subflow addrs {:?}",
        info.token,
        info.subflows,
        info.subflows_total,
        info.add_addr_accepted,
        info.flags,
        info.csum_enabled,
        info.retransmits,
        subflows
            .iter()
            .map(|s| format!("{}->{}", s.local, s.remote))
            .collect::<Vec<_>>()
    );
    assert!(
        is_mptcp,
        "{who}: TCP_IS_MPTCP says the connection fell back"
    );
    assert!(!info.is_fallback(), "{who}: fallback flag set");
    assert_eq!(info.total_subflows(), 2, "{who}: {info:?}");
    assert_eq!(subflows.len(), 2, "{who}: {subflows:?}");
    let cell_phone = Link::Cell.addr(Side::Phone);
    assert!(
        subflows
            .iter()
            .any(|s| s.local.ip() == cell_phone || s.remote.ip() == cell_phone),
        "{who}: no subflow from the phone's cell address: {subflows:?}"
    );
}

#[test]
fn kernel_mptcp_uses_both_links() {
    if !root_or_skip("kernel_mptcp_uses_both_links") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tb = testbed();
    let (recv, sent, elapsed) = run_transfer(&tb, true, |_| {});
    let wifi = tb.counters(Link::Wifi).up.delivered().bytes;
    let cell = tb.counters(Link::Cell).up.delivered().bytes;
    println!(
        "kernel MPTCP upload: {BYTES} bytes in {:.2} s ({:.1} Mbit/s first to last byte), \
         wifi carried {:.1} MB, cell {:.1} MB, longest stall {:?}",
        elapsed.as_secs_f64(),
        recv.report.goodput_bps() / 1e6,
        wifi as f64 / 1e6,
        cell as f64 / 1e6,
        recv.report.longest_stall()
    );
    assert_eq!(recv.report.bytes, BYTES);
    assert_eq!(
        transfer::hex(&recv.report.sha256),
        transfer::hex(&sent.report.sha256),
        "SHA-256 differs"
    );
    check_two_subflows("phone (sender)", &sent.info, &sent.subflows, sent.is_mptcp);
    check_two_subflows(
        "server (receiver)",
        &recv.info,
        &recv.subflows,
        recv.is_mptcp,
    );
    // Both links carried a real share of the data.
    assert!(
        wifi > BYTES / 5 && cell > BYTES / 10,
        "wifi {wifi} B, cell {cell} B"
    );
}

#[test]
fn kernel_mptcp_survives_wifi_going_down_midway() {
    if !root_or_skip("kernel_mptcp_survives_wifi_going_down_midway") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tb = testbed();
    let mut killed_at = None;
    let (recv, sent, elapsed) = run_transfer(&tb, false, |progress| {
        // Download; take WiFi down once a third of the data has arrived.
        let deadline = Instant::now() + TIMEOUT;
        while progress.load(Ordering::Relaxed) < BYTES / 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        tb.link_down(Link::Wifi).unwrap();
        killed_at = Some(Instant::now());
    });
    let killed_at = killed_at.unwrap();
    let kill_rel = killed_at - recv.report.started;
    let stall = transfer::longest_stall(
        &recv.report.samples,
        kill_rel,
        recv.report.last_byte.unwrap(),
    );
    let before_kill = recv.report.samples.at(kill_rel);
    println!(
        "kernel MPTCP download, wifi down at {:.2} s ({:.1} MB in): {BYTES} bytes in {:.2} s, \
         longest stall after the kill {:?}, after-kill goodput {:.1} Mbit/s",
        kill_rel.as_secs_f64(),
        before_kill as f64 / 1e6,
        elapsed.as_secs_f64(),
        stall,
        recv.report
            .samples
            .rate_bps(kill_rel, recv.report.last_byte.unwrap())
            / 1e6
    );
    assert!(!tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    assert_eq!(recv.report.bytes, BYTES);
    assert_eq!(
        transfer::hex(&recv.report.sha256),
        transfer::hex(&sent.report.sha256),
        "SHA-256 differs"
    );
    // The halfway snapshot may come after the kill: the receiver only checks MPTCP is on.
    assert!(recv.is_mptcp && sent.is_mptcp);
    // After the kill, nothing more crossed WiFi, and cell carried the rest.
    let c = tb.counters(Link::Wifi);
    assert!(c.down.model.dropped_down.packets + c.down.model.lost_in_flight.packets > 0);
    assert!(tb.counters(Link::Cell).down.delivered().bytes > (BYTES - before_kill) / 2);
}
