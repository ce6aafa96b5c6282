//! Issue 3's integrity matrix: 10 MB each way over one path, SHA-256 of what was written
//! equals what was read, across many seeds, under loss, reordering, duplication and an
//! outage.

mod common;

use braid_proto::sim::LinkConfig;
use common::{Transfer, base_link};
use std::time::Duration;

const SEEDS: u64 = 20;
const BYTES: u64 = 10_000_000;

fn matrix(name: &str, link: impl Fn(u64) -> LinkConfig, outage: Option<(Duration, Duration)>) {
    let mut worst = Duration::ZERO;
    for seed in 0..SEEDS {
        let mut t = Transfer::single_path(seed, link(seed), link(seed), BYTES, BYTES);
        if let Some((at, len)) = outage {
            t.outage(at, len);
        }
        let r = t.run(Duration::from_secs(900));
        r.assert_intact(&format!("{name} seed {seed}"));
        worst = worst.max(r.elapsed);
    }
    eprintln!("{name}: {SEEDS} seeds intact, slowest {worst:?} simulated");
}

#[test]
fn clean_link() {
    matrix("clean", |_| base_link(), None);
}

#[test]
fn loss_1_percent() {
    matrix("1% loss", |_| base_link().with_loss(0.01), None);
}

#[test]
fn loss_5_percent() {
    matrix("5% loss", |_| base_link().with_loss(0.05), None);
}

#[test]
fn loss_15_percent() {
    matrix("15% loss", |_| base_link().with_loss(0.15), None);
}

#[test]
fn reordering() {
    matrix(
        "reordering",
        |_| base_link().with_reorder(0.05, Duration::from_millis(8)),
        None,
    );
}

#[test]
fn duplication() {
    matrix("duplication", |_| base_link().with_duplicate(0.05), None);
}

#[test]
fn two_second_outage() {
    matrix(
        "2 s outage",
        |_| base_link(),
        Some((Duration::from_millis(800), Duration::from_secs(2))),
    );
}

#[test]
fn everything_at_once() {
    matrix(
        "loss+reorder+dup",
        |_| {
            base_link()
                .with_loss(0.02)
                .with_reorder(0.02, Duration::from_millis(5))
                .with_duplicate(0.02)
        },
        None,
    );
}
