//! The emulated paths: delays, policy routing, link down / up, silent loss. Root only.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use braid_netbed::{Bind, Direction, Link, LinkConfig, Side, Testbed, TestbedConfig, root_or_skip};
use socket2::{Domain, Protocol, Socket, Type};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn rtt_matches_the_configured_delays() {
    if !root_or_skip("rtt_matches_the_configured_delays") {
        return;
    }
    let cfg = TestbedConfig::default();
    let tb = Testbed::up(cfg.clone()).unwrap();
    for link in Link::ALL {
        let setup = cfg.link(link);
        let two_way = setup.up.delay + setup.down.delay;
        let stats = tb.ping(link, 20).unwrap();
        println!("{link}: {stats} (configured {} ms)", ms(two_way));
        assert_eq!(stats.lost(), 0, "{link}: probes lost: {stats}");
        let min = stats.min().unwrap();
        let median = stats.median().unwrap();
        assert!(
            min >= two_way,
            "{link}: RTT {min:?} below the configured {two_way:?}"
        );
        assert!(
            median < two_way + Duration::from_millis(15),
            "{link}: median RTT {median:?} far above the configured {two_way:?}"
        );
    }
}

#[test]
fn traffic_bound_to_a_device_or_address_uses_that_link() {
    if !root_or_skip("traffic_bound_to_a_device_or_address_uses_that_link") {
        return;
    }
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let server_wifi = Link::Wifi.addr(Side::Server);

    // UDP bound to c-cell, to the server's WiFi address: must cross the cell link.
    for bind in [Bind::Device(Link::Cell), Bind::Address(Link::Cell)] {
        let wifi_before = tb.counters(Link::Wifi);
        let cell_before = tb.counters(Link::Cell);
        let stats = tb.ping_from(bind, server_wifi, 10).unwrap();
        let wifi = tb.counters(Link::Wifi);
        let cell = tb.counters(Link::Cell);
        println!("{bind:?} -> {server_wifi}: {stats}");
        assert_eq!(stats.lost(), 0);
        assert!(
            stats.min().unwrap() >= Duration::from_millis(60),
            "{bind:?}: {stats}"
        );
        for dir in Direction::BOTH {
            let crossed =
                cell.get(dir).delivered().packets - cell_before.get(dir).delivered().packets;
            assert!(
                crossed >= 10,
                "{bind:?}: only {crossed} packets {dir:?} on cell"
            );
            assert_eq!(
                wifi.get(dir).model.offered,
                wifi_before.get(dir).model.offered,
                "{bind:?}: traffic leaked onto wifi {dir:?}"
            );
        }
    }

    // Unbound traffic takes WiFi (the preferred default route).
    let cell_before = tb.counters(Link::Cell);
    let stats = tb
        .ping_from(Bind::Any, Link::Cell.addr(Side::Server), 5)
        .unwrap();
    // 10.31.2.2 is on the cell subnet: the connected route wins over the default.
    assert!(stats.min().unwrap() >= Duration::from_millis(60));
    assert!(
        tb.counters(Link::Cell).up.model.offered.packets
            >= cell_before.up.model.offered.packets + 5
    );

    // A TCP connection from a socket bound to c-cell also crosses cell.
    let listener = tb
        .run_in(Side::Server, || std::net::TcpListener::bind("0.0.0.0:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let cell_before = tb.counters(Link::Cell);
    let wifi_before = tb.counters(Link::Wifi);
    let local = tb
        .run_in(Side::Phone, move || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.bind_device(Some(b"c-cell"))?;
            let remote = SocketAddr::from((server_wifi, port));
            s.connect_timeout(&remote.into(), Duration::from_secs(5))?;
            let s: TcpStream = s.into();
            s.local_addr()
        })
        .unwrap();
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(local.ip(), Link::Cell.addr(Side::Phone));
    assert_eq!(peer.ip(), Link::Cell.addr(Side::Phone));
    assert!(
        tb.counters(Link::Cell).up.delivered().packets >= cell_before.up.delivered().packets + 2
    );
    assert_eq!(
        tb.counters(Link::Wifi).up.model.offered,
        wifi_before.up.model.offered
    );
}

#[test]
fn link_down_is_an_interface_event_and_link_up_restores_the_path() {
    if !root_or_skip("link_down_is_an_interface_event_and_link_up_restores_the_path") {
        return;
    }
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    assert!(tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    assert_eq!(tb.ping(Link::Wifi, 3).unwrap().lost(), 0);

    tb.link_down(Link::Wifi).unwrap();
    assert!(
        !tb.interface_is_up(Side::Phone, Link::Wifi).unwrap(),
        "c-wifi still up"
    );
    assert!(
        tb.interface_is_up(Side::Server, Link::Wifi).unwrap(),
        "server side must stay up"
    );
    let down = tb.ping(Link::Wifi, 3).unwrap();
    assert_eq!(down.lost(), 3, "wifi passes traffic while down: {down}");
    // Server -> phone traffic on the dead link is dropped by the relay.
    let dropped_before = tb.counters(Link::Wifi).down.dropped().packets;
    tb.run_in(Side::Server, || {
        let s = std::net::UdpSocket::bind((Link::Wifi.addr(Side::Server), 0))?;
        for _ in 0..5 {
            s.send_to(b"x", (Link::Wifi.addr(Side::Phone), 9))?;
        }
        Ok(())
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let c = tb.counters(Link::Wifi);
    assert!(
        c.down.dropped().packets >= dropped_before + 5,
        "relay did not drop: {c:?}"
    );
    // Cell is unaffected.
    assert_eq!(tb.ping(Link::Cell, 3).unwrap().lost(), 0);

    tb.link_up(Link::Wifi).unwrap();
    assert!(tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    let up = tb.ping(Link::Wifi, 5).unwrap();
    assert_eq!(up.lost(), 0, "wifi not restored: {up}");
    // The default route is back: unbound traffic to the server reaches it over WiFi.
    let wifi_before = tb.counters(Link::Wifi).up.delivered().packets;
    let any = tb
        .ping_from(Bind::Any, Link::Wifi.addr(Side::Server), 3)
        .unwrap();
    assert_eq!(any.lost(), 0);
    assert!(tb.counters(Link::Wifi).up.delivered().packets >= wifi_before + 3);
}

#[test]
fn silent_loss_drops_everything_with_the_interface_up() {
    if !root_or_skip("silent_loss_drops_everything_with_the_interface_up") {
        return;
    }
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    tb.silent_loss(Link::Wifi, true);
    assert!(tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    let before = tb.counters(Link::Wifi);
    let lost = tb.ping(Link::Wifi, 3).unwrap();
    assert_eq!(lost.lost(), 3, "silent loss let traffic through: {lost}");
    let after = tb.counters(Link::Wifi);
    assert!(after.up.model.dropped_down.packets >= before.up.model.dropped_down.packets + 3);
    assert_eq!(after.up.delivered(), before.up.delivered());
    assert!(tb.interface_is_up(Side::Phone, Link::Wifi).unwrap());
    assert_eq!(tb.ping(Link::Cell, 3).unwrap().lost(), 0);

    tb.silent_loss(Link::Wifi, false);
    assert_eq!(tb.ping(Link::Wifi, 3).unwrap().lost(), 0);
}

#[test]
fn link_settings_change_live() {
    if !root_or_skip("link_settings_change_live") {
        return;
    }
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    let slow = LinkConfig::new(10_000_000, Duration::from_millis(50)).with_queue_ms(100);
    tb.set_link(Link::Wifi, Direction::Up, slow.clone());
    assert_eq!(tb.link_config(Link::Wifi, Direction::Up), slow);
    let stats = tb.ping(Link::Wifi, 5).unwrap();
    println!("wifi with 50 ms up + 10 ms down: {stats}");
    assert!(stats.min().unwrap() >= Duration::from_millis(60), "{stats}");
    assert!(
        stats.median().unwrap() < Duration::from_millis(75),
        "{stats}"
    );
}
