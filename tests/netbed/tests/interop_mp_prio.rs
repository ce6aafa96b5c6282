//! MP_PRIO from Braid steers the kernel's sending. Braid (raw carrier, both interfaces,
//! aggregate) downloads from the kernel's MPTCP server over both subflows; then it marks its
//! WiFi subflow backup (`Connection::set_path_backup` → MP_PRIO B=1) and the kernel moves its
//! downlink to cellular; then it clears the flag and the kernel uses WiFi again. Measured on
//! the testbed's per-link downlink counters. Root only.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid::{Carrier, ConnectionEvent, InterfaceKind, ServiceType};
use braid_netbed::kernel::MptcpListener;
use braid_netbed::{Direction, Link, Side, Testbed, TestbedConfig, root_or_skip};
use common::*;

const BYTES: u64 = 40_000_000;
const PORT: u16 = 5204;
const TIMEOUT: Duration = Duration::from_secs(60);
/// Downloaded before WiFi is marked backup.
const SWITCH_AT: u64 = 8_000_000;
/// How long WiFi stays backup.
const BACKUP_FOR: Duration = Duration::from_millis(3000);
/// Time the kernel may take to act on MP_PRIO (in-flight data drains).
const SETTLE: Duration = Duration::from_millis(500);

#[test]
fn mp_prio_from_braid_moves_the_kernels_downlink() {
    if !root_or_skip("mp_prio_from_braid_moves_the_kernels_downlink") {
        return;
    }
    let _serial = serial();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let addr = server_addr(Link::Wifi, PORT);
    let listener = tb
        .run_in(Side::Server, move || MptcpListener::bind(addr))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept()?;
        let end = kernel_exchange(s, BYTES, TIMEOUT, |_| {});
        drop(listener);
        end
    });
    let (marks_tx, marks_rx) = mpsc::channel::<(&'static str, Instant)>();
    let client = braid_in(&tb, Side::Phone, move || async move {
        let client = phone_client(Carrier::Raw, ServiceType::Aggregate).build()?;
        let wifi = client
            .interfaces()
            .into_iter()
            .find(|(_, i)| i.kind == InterfaceKind::Wifi)
            .map(|(id, _)| id)
            .expect("a WiFi path");
        let mut conn = client.connect(addr).await?;
        let mut events = conn.events();
        let mut on_at: Option<Instant> = None;
        let mut off = false;
        let received = receive_with(&mut conn, |c, total| {
            if on_at.is_none() && total >= SWITCH_AT {
                c.set_path_backup(wifi, true);
                let now = Instant::now();
                on_at = Some(now);
                let _ = marks_tx.send(("backup", now));
            } else if !off && on_at.is_some_and(|t| t.elapsed() >= BACKUP_FOR) {
                c.set_path_backup(wifi, false);
                off = true;
                let _ = marks_tx.send(("primary", Instant::now()));
            }
        })
        .await?;
        // Download only, but the write side stays open until the end: the kernel refuses
        // MP_JOINs once the peer has sent DATA_FIN (its connection is then in CLOSE_WAIT).
        conn.finish();
        let seen = wait_closed(&mut events).await;
        let stats = conn.stats();
        Ok::<_, braid::Error>((received, stats, seen))
    });
    let mut samples = LinkSamples::default();
    while !client.is_finished() {
        samples.take(&tb, Direction::Down);
        std::thread::sleep(Duration::from_millis(20));
    }
    samples.take(&tb, Direction::Down);
    let (received, stats, events) = client.join().unwrap().unwrap();
    let kernel = server.join().unwrap().unwrap();
    check_same("download (kernel -> braid)", &kernel.sent, &received);
    let marks: Vec<_> = marks_rx.try_iter().collect();
    println!("marks {marks:?}\nbraid paths: {}", describe_paths(&stats));
    let on = marks
        .iter()
        .find(|m| m.0 == "backup")
        .expect("WiFi marked backup")
        .1;
    let off = marks
        .iter()
        .find(|m| m.0 == "primary")
        .expect("WiFi unmarked before the end")
        .1;
    let start = samples.at[0].0;
    let before = samples.delta(start, on);
    let during = samples.delta(on + SETTLE, off);
    let after = samples.delta(off + SETTLE, samples.at.last().unwrap().0);
    let mb = |v: [u64; 2]| {
        format!(
            "wifi {:.2} MB, cell {:.2} MB",
            v[0] as f64 / 1e6,
            v[1] as f64 / 1e6
        )
    };
    println!(
        "downlink before MP_PRIO: {}; WiFi backup ({:?} after settling): {}; after: {}",
        mb(before),
        off - on - SETTLE,
        mb(during),
        mb(after)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ConnectionEvent::BackupChanged { backup: true, .. })),
        "no BackupChanged event: {events:?}"
    );
    assert!(
        before[0] > 2_000_000 && before[1] > 1_000_000,
        "both links before: {}",
        mb(before)
    );
    // While WiFi is backup the kernel sends on cellular; WiFi carries at most a trickle
    // (retransmissions of what was in flight, window probes).
    assert!(
        during[1] > 3_000_000,
        "cellular did not take over: {}",
        mb(during)
    );
    assert!(
        during[0] * 20 < during[1],
        "the kernel kept sending on the backup WiFi subflow: {}",
        mb(during)
    );
    // And back.
    assert!(
        after[0] > 1_000_000,
        "WiFi not used again after MP_PRIO B=0: {}",
        mb(after)
    );
}
