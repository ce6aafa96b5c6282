//! Rate shaping: a kernel TCP bulk transfer over WiFi runs near 40 Mbit/s, both ways. The
//! bounds are generous on purpose: this checks the emulation works, benchmarks measure it.
//! Root only.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use braid_netbed::transfer::{self, ReceiveReport};
use braid_netbed::{Direction, Link, Side, Testbed, TestbedConfig, root_or_skip};

const BYTES: u64 = 15_000_000;

/// Sends BYTES over plain TCP from `sender` to the other side, across `link`.
fn tcp_bulk(tb: &Testbed, sender: Side, link: Link) -> ReceiveReport {
    let receiver = sender.other();
    let listen_addr = SocketAddr::from((link.addr(receiver), 0));
    let listener = tb
        .run_in(receiver, move || TcpListener::bind(listen_addr))
        .unwrap();
    let target = listener.local_addr().unwrap();
    let recv = std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        transfer::receive(&mut s, None)
    });
    let send = tb
        .spawn_in(sender, move || -> std::io::Result<()> {
            let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            transfer::send(&mut s, BYTES, None)?;
            transfer::finish_sending(&mut s, Duration::from_secs(30))
        })
        .unwrap();
    let report = recv.join().unwrap().unwrap();
    send.join().unwrap().unwrap();
    assert_eq!(report.bytes, BYTES);
    assert_eq!(report.sha256, transfer::pattern_sha256(BYTES));
    report
}

#[test]
fn tcp_over_wifi_is_shaped_to_the_configured_rate() {
    if !root_or_skip("tcp_over_wifi_is_shaped_to_the_configured_rate") {
        return;
    }
    let cfg = TestbedConfig::default();
    let tb = Testbed::up(cfg.clone()).unwrap();
    let cc = tb
        .read_sysctl(Side::Phone, "net.ipv4.tcp_congestion_control")
        .unwrap();
    for sender in [Side::Phone, Side::Server] {
        let dir = Direction::from_sender(sender);
        let rate = cfg.wifi.get(dir).rate_bps as f64;
        let before = tb.counters(Link::Wifi);
        let report = tcp_bulk(&tb, sender, Link::Wifi);
        let after = tb.counters(Link::Wifi);
        let goodput = report.goodput_bps();
        let queue_drops = after.get(dir).model.dropped_queue.packets
            - before.get(dir).model.dropped_queue.packets;
        println!(
            "wifi {}: {:.1} Mbit/s goodput ({:.0} % of {:.0} Mbit/s), {BYTES} bytes in {:.2} s, \
             {queue_drops} queue drops, cc {cc}",
            dir.name(),
            goodput / 1e6,
            100.0 * goodput / rate,
            rate / 1e6,
            report.transfer_time().unwrap().as_secs_f64(),
        );
        assert!(
            goodput >= 0.60 * rate && goodput <= 1.05 * rate,
            "wifi {}: {:.1} Mbit/s is not within 60-105 % of {:.0} Mbit/s",
            dir.name(),
            goodput / 1e6,
            rate / 1e6
        );
        // The bytes crossed the WiFi link, not cell.
        let crossed = after.get(dir).delivered().bytes - before.get(dir).delivered().bytes;
        assert!(
            crossed >= BYTES,
            "only {crossed} bytes crossed wifi {}",
            dir.name()
        );
    }
    assert_eq!(tb.counters(Link::Cell).up.model.offered.bytes, 0);
}
