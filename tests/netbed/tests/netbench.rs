//! The namespace benchmark's harness (`braid-netbench`), briefly: every stack moves data in a
//! short bulk run with WiFi taken down midway, and an echo run measures latencies; the traces
//! carry samples, link counters and the action on one time axis. Root only; the Braid stacks
//! need the `braid` binary (target/release or target/debug), built by `cargo build -p braid-cli`.

use std::path::PathBuf;

use braid_netbed::bench::metrics;
use braid_netbed::bench::plan::{Action, Flow, Policy, RunSpec, Stack, Workload};
use braid_netbed::bench::runner::Bench;
use braid_netbed::root_or_skip;

fn braid_binary() -> Option<PathBuf> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("braid"))
        .find(|p| p.exists())
}

#[test]
fn every_stack_runs_bulk_with_a_link_down_and_echo() {
    if !root_or_skip("every_stack_runs_bulk_with_a_link_down_and_echo") {
        return;
    }
    let Some(braid) = braid_binary() else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n*** SKIPPED: netbench: no braid binary (cargo build -p braid-cli) ***\n\n",
        );
        return;
    };
    let bench = Bench::up(braid).unwrap();
    for stack in Stack::ALL {
        let t = bench
            .run(&RunSpec {
                stack,
                policy: Policy::Handover,
                kernel_backup: true,
                braid_lazy_backup: None,
                workload: Workload::Bulk {
                    flow: Flow::Down,
                    seconds: 3.0,
                },
                actions: vec![(1.5, Action::LinkDown)],
            })
            .unwrap_or_else(|e| panic!("{stack}: {e}"));
        let down = t.action_at(|a| *a == Action::LinkDown).unwrap();
        assert!((1.2..2.0).contains(&down), "{stack}: link down at {down}");
        let before = metrics::goodput_mbps(&t.rx, 0.5, down);
        assert!(
            before > 25.0,
            "{stack}: {before:.1} Mbit/s before the failure"
        );
        assert!(
            t.rx.bytes.len() >= 250,
            "{stack}: {} samples",
            t.rx.bytes.len()
        );
        // The relay's counters: WiFi carried the data before, nothing after.
        let rates = metrics::link_rates(&t, 0.1);
        assert!(
            rates.iter().any(|(s, w, _)| *s < down && *w > 20.0),
            "{stack}"
        );
        assert!(
            rates
                .iter()
                .filter(|(s, _, _)| *s > down + 0.2)
                .all(|(_, w, _)| *w == 0.0),
            "{stack}: WiFi carried data after it went down"
        );
        if stack.is_braid() {
            assert!(
                t.events.iter().any(|(_, e)| e.contains("lost")),
                "{stack}: no OS event in {:?}",
                t.events
            );
        }
    }
    for stack in [Stack::Kernel, Stack::BraidUdp] {
        let t = bench
            .run(&RunSpec {
                stack,
                policy: Policy::Interactive,
                kernel_backup: false,
                braid_lazy_backup: None,
                workload: Workload::Echo {
                    seconds: 2.0,
                    bytes: 100,
                    rate: 20.0,
                },
                actions: vec![],
            })
            .unwrap_or_else(|e| panic!("{stack}: {e}"));
        assert!((38..=42).contains(&t.echo.len()), "{stack}: {:?}", t.echo);
        let lat: Vec<Option<f64>> = t.echo.iter().map(|(_, l)| *l).collect();
        let p50 = metrics::quantile(&lat, 0.5).unwrap();
        // WiFi's RTT is 20 ms.
        assert!((0.019..0.1).contains(&p50), "{stack}: p50 {p50}");
    }
}
