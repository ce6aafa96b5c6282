//! TCP behaviour of the engine in the simulator: flow control with a receiver that stops
//! reading (zero window, window update, persist probe when the update is lost), keepalive on
//! an idle connection, giving up on a peer that vanished, and TIME_WAIT.

mod common;

use braid_proto::wire::{TcpFlags, parse_udp_payload};
use braid_proto::{CloseError, ConnectionConfig, Event, Policy, ServiceType};
use common::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn small_buffers() -> ConnectionConfig {
    ConnectionConfig {
        send_buffer: 256 * 1024,
        receive_buffer: 64 * 1024,
        ..ConnectionConfig::default()
    }
}

#[test]
fn sender_respects_a_full_window_and_resumes_when_the_reader_does() {
    let server_cfg = braid_proto::EndpointConfig {
        listen: true,
        connection: small_buffers(),
        ..Default::default()
    };
    let mut t = Transfer::build(
        1,
        &[(base_link(), base_link())],
        3_000_000,
        0,
        Some(small_buffers()),
        Some(server_cfg),
    );
    t.sim.run_until(Duration::from_millis(300));
    let s = t.server;
    t.sim.node_mut(s).apps[0].paused = true;
    t.sim.run_until(Duration::from_secs(3));
    let held = t.server_app().unwrap().received;
    let sh = t.server_app().unwrap().handle;
    let buffered = t.sim.node(s).ep.connection(sh).unwrap().readable();
    assert!(
        buffered <= 64 * 1024,
        "never more than the window is accepted: {buffered}"
    );
    assert!(buffered >= 60 * 1024, "the window filled: {buffered}");
    t.sim.run_until(Duration::from_secs(4));
    assert_eq!(t.server_app().unwrap().received, held, "still paused");
    t.sim.node_mut(s).apps[0].paused = false;
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("zero window then resume");
}

#[test]
fn a_lost_window_update_is_recovered_by_the_persist_probe() {
    let server_cfg = braid_proto::EndpointConfig {
        listen: true,
        connection: small_buffers(),
        ..Default::default()
    };
    let mut t = Transfer::build(
        2,
        &[(base_link(), base_link())],
        2_000_000,
        0,
        Some(small_buffers()),
        Some(server_cfg),
    );
    t.sim.run_until(Duration::from_millis(300));
    let s = t.server;
    t.sim.node_mut(s).apps[0].paused = true;
    t.sim.run_until(Duration::from_secs(2));
    // Drop every segment from the server for a while: the window update is lost.
    let dropping = Rc::new(Cell::new(true));
    let d = dropping.clone();
    let dropped = Rc::new(Cell::new(0u32));
    let n = dropped.clone();
    t.sim.set_middlebox(Box::new(move |src, _dst, _buf| {
        if d.get() && *src == sa(SERVER) {
            n.set(n.get() + 1);
            return false;
        }
        true
    }));
    t.sim.node_mut(s).apps[0].paused = false;
    t.sim.run_until(Duration::from_millis(2100));
    dropping.set(false);
    assert!(dropped.get() > 0, "the window update was dropped");
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("persist probe");
}

#[test]
fn idle_connection_stays_up_with_keepalives() {
    let mut t = Transfer::single_path(3, base_link(), base_link(), 0, 0);
    let probes = Rc::new(Cell::new(0u32));
    let p = probes.clone();
    t.sim.set_middlebox(Box::new(move |src, dst, buf| {
        if let Ok((r, off)) = parse_udp_payload(buf, src.port(), dst.port())
            && *src == sa(WIFI)
            && buf.len() == off
            && !r.flags.contains(TcpFlags::SYN)
        {
            p.set(p.get() + 1);
        }
        true
    }));
    t.sim.run_until(Duration::from_secs(120));
    let c = t.sim.node(t.client).ep.connection(t.handle).unwrap();
    assert!(!c.is_closed(), "idle connection still open after 2 minutes");
    // Handshake ACKs plus at least one keepalive every 25 s.
    assert!(probes.get() >= 4, "keepalives sent: {}", probes.get());
}

#[test]
fn a_vanished_peer_is_given_up_on() {
    let mut t = Transfer::single_path(4, base_link(), base_link(), 0, 0);
    t.sim.run_until(Duration::from_secs(1));
    t.down_at(0, Duration::from_secs(1));
    t.sim.run_until(Duration::from_secs(200));
    let ev: Vec<Event> = t.client_app().events.iter().map(|e| e.1.clone()).collect();
    assert!(ev.contains(&Event::Closed(CloseError::TimedOut)), "{ev:?}");
}

#[test]
fn closed_subflows_pass_through_time_wait() {
    let cfg = ConnectionConfig {
        policy: Policy::new(ServiceType::Aggregate),
        ..ConnectionConfig::default()
    };
    let mut t = Transfer::build(
        5,
        &[(base_link(), base_link())],
        100_000,
        100_000,
        Some(cfg),
        None,
    );
    let r = t.run(Duration::from_secs(30));
    r.assert_intact("small transfer");
    // Both DATA_FINs are through; the subflows close with FINs right after.
    t.sim
        .run_until(t.sim.elapsed() + Duration::from_millis(200));
    let c = t.sim.node(t.client).ep.connection(t.handle).unwrap();
    let states: Vec<&str> = c.stats().paths.iter().map(|p| p.state).collect();
    assert!(
        states.contains(&"time-wait"),
        "the side that closed first waits: {states:?}"
    );
    t.sim.run_until(t.sim.elapsed() + Duration::from_secs(5));
    let c = t.sim.node(t.client).ep.connection(t.handle);
    assert!(
        c.is_none_or(
            |c| c.stats().paths.iter().all(|p| p.state == "closed") || c.stats().paths.is_empty()
        ),
        "TIME_WAIT ended"
    );
}

#[test]
fn nat_rebinding_is_survived_by_re_joining() {
    // A NAT in front of the client changes the external port of the WiFi flow at 2 s: the
    // server sees an unknown address pair, answers it with a RST, the client's subflow dies
    // and the path manager joins again through the new binding.
    let mut t = Transfer::single_path(6, base_link(), base_link(), 20_000_000, 5_000_000);
    let rebound = Rc::new(Cell::new(false));
    let r2 = rebound.clone();
    let inside = sa(WIFI);
    let outside = std::net::SocketAddr::new(inside.ip(), 50_001);
    t.sim.set_middlebox(Box::new(move |src, dst, _buf| {
        if r2.get() {
            if *src == inside {
                *src = outside;
            } else if *dst == outside {
                *dst = inside;
            }
        }
        true
    }));
    let flag = rebound.clone();
    t.sim.at(Duration::from_secs(2), move |_| flag.set(true));
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("NAT rebinding");
    let ev: Vec<Event> = t.client_app().events.iter().map(|e| e.1.clone()).collect();
    let ups = ev
        .iter()
        .filter(|e| matches!(e, Event::PathUp { .. }))
        .count();
    assert_eq!(ups, 2, "joined again after the rebinding: {ev:?}");
}
