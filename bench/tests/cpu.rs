//! `braid-bench cpu` end to end on small transfers: every stack moves all its bytes and the
//! report has a row per stack and both ratios (the figures themselves are for the release run).

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_braid-bench"))
        .args(args)
        .output()
        .expect("braid-bench starts");
    assert!(
        out.status.success(),
        "braid-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn each_stack_reports_goodput_and_bytes_per_cpu_second() {
    for run in ["run-braid", "run-quinn", "run-tcp"] {
        let line = bench(&[run, "--bytes", "20000000"]);
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().expect("a number"))
            .collect();
        assert_eq!(v.len(), 2, "{run}: '{line}'");
        assert!(v.iter().all(|x| x.is_finite() && *x > 0.0), "{run}: {v:?}");
    }
}

#[test]
fn markdown_report_compares_braid_with_quinn_and_kernel_tcp() {
    let md = bench(&["cpu", "--bytes", "20000000", "--repeats", "1", "--markdown"]);
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 4, "header + 3 stacks:\n{md}");
    assert!(rows[1].starts_with("| Braid"), "{md}");
    assert!(rows[2].starts_with("| quinn"), "{md}");
    assert!(rows[3].starts_with("| kernel TCP"), "{md}");
    assert!(md.contains("Braid / quinn"), "{md}");
    assert!(md.contains("Braid / kernel TCP"), "{md}");
}

#[test]
fn a_size_that_is_not_a_number_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_braid-bench"))
        .args(["run-tcp", "--bytes", "lots"])
        .output()
        .expect("braid-bench starts");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bytes needs a number"));
}
