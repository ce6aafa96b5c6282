//! Simulator benchmarks for BENCHMARKS.md: single-path goodput per loss rate, simulator
//! speed, aggregation and stall per scheduler. Virtual time, so the goodput figures are
//! deterministic per seed; only the CPU figures depend on the machine.
//!
//! `cargo run --release -p braid-proto --example sim_bench` prints a Markdown section.

use braid_proto::PathId;

const WIFI_PATH: PathId = PathId::new(1);
use braid_proto::harness::{Transfer, base_link, cell_link, wifi_link};
use braid_proto::{ConnectionConfig, Policy, SchedulerKind, ServiceType};
use std::time::{Duration, Instant};

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn goodput(t: &Transfer, from: Duration, to: Duration) -> f64 {
    let s = t.server_app().expect("server app");
    let start = t.sim.start();
    let a = s.received_at(start + from);
    let b = s.received_at(start + to);
    (b - a) as f64 * 8.0 / (to - from).as_secs_f64() / 1e6
}

fn cpu_time() -> Duration {
    // Process CPU time (user + system) from /proc, so the figure is CPU, not wall clock.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let seeds = 5;
    println!("### Simulated single path: 40 Mbit/s, 20 ms RTT, BDP queue, CUBIC\n");
    println!(
        "| random loss (both ways) | goodput min / median / max (Mbit/s, seconds 2-12, {seeds} seeds) |"
    );
    println!("|---|---|");
    for loss in [0.0, 0.001, 0.01, 0.05, 0.15] {
        let v: Vec<f64> = (0..seeds)
            .map(|seed| {
                let link = base_link().with_loss(loss);
                let mut t = Transfer::single_path(seed, link.clone(), link, 80_000_000, 0);
                t.run(Duration::from_secs(12));
                goodput(&t, Duration::from_secs(2), Duration::from_secs(12))
            })
            .collect();
        let (lo, med, hi) = stats(v);
        println!("| {:.1} % | {lo:.2} / {med:.2} / {hi:.2} |", loss * 100.0);
    }

    println!("\n### Simulator speed\n");
    let mut v = Vec::new();
    for seed in 0..3 {
        let bytes = 100_000_000u64;
        let c0 = cpu_time();
        let w0 = Instant::now();
        let mut t = Transfer::single_path(seed, base_link(), base_link(), bytes, 0);
        let r = t.run(Duration::from_secs(600));
        assert!(r.done);
        let cpu = (cpu_time() - c0).max(w0.elapsed().min(Duration::from_millis(10)));
        v.push(bytes as f64 / cpu.as_secs_f64());
    }
    let (lo, med, hi) = stats(v);
    println!(
        "A 100 MB transfer (both endpoints, the links, SHA-256 of the data) simulates at \
         {:.0} / {:.0} / {:.0} MB per CPU second (min / median / max of 3).",
        lo / 1e6,
        med / 1e6,
        hi / 1e6
    );

    println!(
        "\n### Simulated WiFi (40 Mbit/s, 10 ms) + cellular (20 Mbit/s, 30 ms), one connection\n"
    );
    println!(
        "| scheduler | aggregate goodput (Mbit/s, s 2-10) | WiFi dies at 3 s: longest receiver stall |"
    );
    println!("|---|---|---|");
    for sched in [
        SchedulerKind::MinRtt,
        SchedulerKind::Blest,
        SchedulerKind::RoundRobin,
        SchedulerKind::Redundant,
    ] {
        let cfg = ConnectionConfig {
            policy: Policy::new(ServiceType::Aggregate),
            scheduler: sched,
            ..ConnectionConfig::default()
        };
        let paths = [(wifi_link(), wifi_link()), (cell_link(), cell_link())];
        let mut t = Transfer::build(1, &paths, 80_000_000, 0, Some(cfg.clone()), None);
        t.run(Duration::from_secs(10));
        let g = goodput(&t, Duration::from_secs(2), Duration::from_secs(10));
        let mut t = Transfer::build(1, &paths, 40_000_000, 0, Some(cfg), None);
        let kill = Duration::from_secs(3);
        t.down_at(0, kill);
        t.run(Duration::from_secs(8));
        let s = t.server_app().expect("server app");
        let start = t.sim.start();
        let stall = s.longest_stall(start + kill, start + kill + Duration::from_secs(3));
        println!(
            "| {} | {g:.2} | {:.0} ms |",
            sched.as_str(),
            stall.as_secs_f64() * 1e3
        );
    }
    handover_table();
}

/// Handover in the simulator: WiFi dies at 3 s during an upload + download.
pub fn handover_table() {
    use braid_proto::sim::Sim;
    let _: Option<Sim<braid_proto::harness::Host>> = None;
    println!("\n### Simulated handover (WiFi dies at 3 s, upload and download at once)\n");
    println!(
        "| policy, failure | switch after the failure | longest stall up / down | cellular goodput 0.5-1.5 s after |"
    );
    println!("|---|---|---|---|");
    for (name, service, os_event) in [
        ("handover, OS reports the loss", ServiceType::Handover, true),
        ("handover, silent blackhole", ServiceType::Handover, false),
        (
            "aggregate, OS reports the loss",
            ServiceType::Aggregate,
            true,
        ),
        ("aggregate, silent blackhole", ServiceType::Aggregate, false),
    ] {
        let cfg = ConnectionConfig {
            policy: Policy::new(service),
            ..ConnectionConfig::default()
        };
        let paths = [(wifi_link(), wifi_link()), (cell_link(), cell_link())];
        let mut t = Transfer::build(1, &paths, 40_000_000, 40_000_000, Some(cfg), None);
        let kill = Duration::from_secs(3);
        t.down_at(0, kill);
        if os_event {
            let (c, h) = (t.client, t.handle);
            t.sim.at(kill, move |sim| {
                let now = sim.now();
                sim.node_mut(c).ep.remove_path(now, h, PathId::new(1));
            });
        }
        t.sim.run_until(kill + Duration::from_secs(3));
        let start = t.sim.start();
        let switch = t
            .client_app()
            .events
            .iter()
            .find_map(|(at, e)| match e {
                braid_proto::Event::PathSwitched { .. }
                | braid_proto::Event::PathDown {
                    path: WIFI_PATH, ..
                } => Some(*at - start),
                _ => None,
            })
            .map_or("-".to_string(), |at| {
                format!("{:.0} ms", (at.saturating_sub(kill)).as_secs_f64() * 1e3)
            });
        let s = t.server_app().expect("server app");
        let c = t.client_app();
        let up = s.longest_stall(start + kill, start + kill + Duration::from_secs(2));
        let down = c.longest_stall(start + kill, start + kill + Duration::from_secs(2));
        let a = s.received_at(start + kill + Duration::from_millis(500));
        let b = s.received_at(start + kill + Duration::from_millis(1500));
        println!(
            "| {name} | {switch} | {:.0} / {:.0} ms | {:.1} Mbit/s up |",
            up.as_secs_f64() * 1e3,
            down.as_secs_f64() * 1e3,
            (b - a) as f64 * 8.0 / 1e6
        );
    }
}
