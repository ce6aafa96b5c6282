//! Efficiency in virtual time (deterministic, so asserting on it is sound): steady-state
//! goodput over a 40 Mbit/s, 20 ms RTT path with a BDP-sized queue, clean and at 1 % loss.

mod common;

use common::{Transfer, base_link};
use std::time::Duration;

/// Goodput in bit/s received by the server between `from` and `to` seconds.
fn goodput(t: &Transfer, from: u64, to: u64) -> f64 {
    let s = t.server_app().expect("server app");
    let start = t.sim.start();
    let a = s.received_at(start + Duration::from_secs(from));
    let b = s.received_at(start + Duration::from_secs(to));
    (b - a) as f64 * 8.0 / (to - from) as f64
}

#[test]
fn steady_state_goodput_is_at_least_90_percent_of_the_link() {
    let mut t = Transfer::single_path(1, base_link(), base_link(), 60_000_000, 0);
    let r = t.run(Duration::from_secs(60));
    r.assert_intact("clean 60 MB");
    let g = goodput(&t, 2, 10);
    eprintln!("steady-state goodput {:.2} Mbit/s of 40", g / 1e6);
    assert!(
        g >= 0.90 * 40e6,
        "goodput {:.2} Mbit/s below 90 % of 40",
        g / 1e6
    );
}

#[test]
fn goodput_at_1_percent_loss_is_in_cubics_range() {
    // RFC 9438 §5: at this BDP CUBIC runs in its Reno-friendly region, whose average window
    // is sqrt(3(1+b)/(2(1-b)p)) * (that is ~1.22/sqrt(p)) segments with b = 0.7, i.e.
    // 12.2 segments of ~1420 bytes per 20 ms RTT = 6.9 Mbit/s. The RTT grows with the
    // queue, and losses of retransmissions cost timeouts: accept 50 %..200 % of the model.
    let mut total = 0.0;
    let seeds = 5;
    for seed in 0..seeds {
        let link = base_link().with_loss(0.01);
        let mut t = Transfer::single_path(seed, link.clone(), link, 20_000_000, 0);
        let r = t.run(Duration::from_secs(120));
        r.assert_intact("1% loss");
        let g = goodput(&t, 2, 12);
        eprintln!("seed {seed}: {:.2} Mbit/s at 1 % loss", g / 1e6);
        total += g;
    }
    let mean = total / seeds as f64;
    let model = 1.22 / 0.01f64.sqrt() * 1420.0 * 8.0 / 0.020;
    eprintln!("mean {:.2} Mbit/s, model {:.2}", mean / 1e6, model / 1e6);
    assert!(
        mean > 0.5 * model && mean < 2.0 * model,
        "mean {:.2} Mbit/s outside 50..200 % of the {:.2} Mbit/s model",
        mean / 1e6,
        model / 1e6
    );
}
