//! How fast the simulator runs. These tests print packets per CPU second and check only that
//! the run was right; timing assertions belong in benchmarks, not in tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use braid_proto::sim::toy::{Echo, PacedSender, Sink, ToyNode};
use braid_proto::sim::{LinkConfig, Sim};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

/// CPU time of this thread (Linux), or wall time where that is not available.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        })
}

/// Sends `packets` datagrams of 1460 bytes from A to B at 100 Mbit/s over a 120 Mbit/s,
/// 20 ms link, optionally echoed back; returns (datagrams delivered, CPU time).
fn transfer(packets: u64, echo: bool, loss: f64) -> (u64, Duration) {
    let mut sim: Sim<ToyNode> = Sim::new(1);
    let interval = Duration::from_nanos(1460 * 8 * 1_000_000_000 / 100_000_000);
    let sender = PacedSender::new(
        SocketAddr::new(A, 1),
        SocketAddr::new(B, 1),
        1460,
        packets,
        interval,
    );
    let sender = sim.add_node(ToyNode::Sender(sender), &[A]);
    let far = if echo {
        ToyNode::Echo(Echo::new())
    } else {
        ToyNode::Sink(Sink::counting())
    };
    sim.add_node(far, &[B]);
    let cfg = LinkConfig::new(120_000_000, Duration::from_millis(20))
        .with_overhead(28)
        .with_queue_bdp(1.0)
        .with_loss(loss);
    let (there, back) = sim.add_duplex(A, B, cfg.clone(), cfg);
    let started = cpu_time();
    while sim.step() {}
    let cpu = cpu_time() - started;
    let delivered =
        sim.link(there).stats().delivered.packets + sim.link(back).stats().delivered.packets;
    if echo {
        let echoes = sim.node(sender).sender().echoes.len() as u64;
        assert_eq!(echoes, sim.link(back).stats().delivered.packets);
    }
    (delivered, cpu)
}

fn report(what: &str, delivered: u64, cpu: Duration) {
    let rate = delivered as f64 / cpu.as_secs_f64().max(1e-9);
    println!(
        "{what}: {delivered} datagrams in {:.3} s CPU = {:.2} M datagrams per CPU second",
        cpu.as_secs_f64(),
        rate / 1e6
    );
}

#[test]
fn hundred_megabytes_one_way() {
    // 70_000 × 1460 B ≈ 100 MB.
    let (delivered, cpu) = transfer(70_000, false, 0.0);
    assert_eq!(
        delivered, 70_000,
        "the link is faster than the sender: nothing is lost"
    );
    report("100 MB one way", delivered, cpu);
}

#[test]
fn hundred_megabytes_echoed_with_loss() {
    let (delivered, cpu) = transfer(70_000, true, 0.01);
    // Each direction loses about 1 %.
    let expected = 70_000.0 * 0.99 + 70_000.0 * 0.99 * 0.99;
    assert!((delivered as f64 - expected).abs() < 700.0, "{delivered}");
    report("100 MB echoed, 1 % loss", delivered, cpu);
}

#[test]
#[ignore = "performance: run with --ignored --nocapture"]
fn two_million_datagrams() {
    let (delivered, cpu) = transfer(1_000_000, true, 0.0);
    assert_eq!(delivered, 2_000_000);
    report("1 M echoed", delivered, cpu);
}
