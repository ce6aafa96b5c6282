//! `cargo xtask bench [sim|engine|cpu|netns|attack|all]`: runs the benchmarks and rewrites their sections
//! of BENCHMARKS.md (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), so the file
//! always holds numbers from the command it names, with the machine they ran on.
//!
//! `netns` needs root: it builds the release `braid` CLI and `braid-netbench`, which brings
//! up the namespace testbed and measures Braid and the kernel's MPTCP side by side; its SVG
//! timelines go to docs/bench/. `all` runs it only as root.
//!
//! `engine` runs `examples/engine_cost` of braid-proto (both endpoints in the simulator, no
//! sockets) twice under valgrind's callgrind and writes instructions per MB and the top
//! functions by inclusive and self cost: a figure that does not move with machine load.
//!
//! `attack` runs the flood and forged-segment scenarios of `braid-bench attack` on the release
//! build and writes the "Under attack" section; extra arguments (`--seconds 20`, `--repeats
//! 5`) are passed on.

use crate::sh::{self, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let sections: &[&str] = match which {
        "sim" => &["sim"],
        "engine" => &["engine"],
        "cpu" => &["cpu"],
        "netns" => &["netns"],
        "attack" => &["attack"],
        "all" if sh::is_root() => &["sim", "engine", "cpu", "netns", "attack"],
        "all" => {
            eprintln!("xtask bench: not root, leaving out the 'netns' benchmark");
            &["sim", "engine", "cpu", "attack"]
        }
        other => {
            return Err(format!(
                "unknown benchmark '{other}' (sim, engine, cpu, netns, attack or all)"
            ));
        }
    };
    if sections.contains(&"netns") && !sh::is_root() {
        return Err(
            "`cargo xtask bench netns` needs root (network namespaces, TUN devices, raw sockets)"
                .into(),
        );
    }
    for s in sections {
        let (command, body) = match *s {
            "sim" => (
                "cargo run --release -p braid-proto --example sim_bench",
                capture(sh::cargo().args([
                    "run",
                    "--quiet",
                    "--release",
                    "-p",
                    "braid-proto",
                    "--example",
                    "sim_bench",
                ]))?,
            ),
            "engine" => (
                "valgrind --tool=callgrind target/release/examples/engine_cost 20",
                engine()?,
            ),
            "cpu" => (
                "cargo run --release -p braid-bench -- cpu --markdown",
                capture(sh::cargo().args([
                    "run",
                    "--quiet",
                    "--release",
                    "-p",
                    "braid-bench",
                    "--",
                    "cpu",
                    "--markdown",
                ]))?,
            ),
            "netns" => (
                "sudo target/release/braid-netbench --braid target/release/braid",
                netns(args.get(1..).unwrap_or_default())?,
            ),
            "attack" => (
                "cargo run --release -p braid-bench -- attack --markdown",
                capture(
                    sh::cargo()
                        .args([
                            "run",
                            "--quiet",
                            "--release",
                            "-p",
                            "braid-bench",
                            "--",
                            "attack",
                            "--markdown",
                        ])
                        .args(if which == "attack" {
                            args.get(1..).unwrap_or_default()
                        } else {
                            &[]
                        }),
                )?,
            ),
            _ => unreachable!("sections are listed above"),
        };
        let text = format!(
            "Command: `{command}` (or `cargo xtask bench {s}`), on {}, {}.\n\n{}",
            machine(),
            today(),
            body.trim()
        );
        replace_section(s, &text)?;
        eprintln!("xtask bench: updated the '{s}' section of BENCHMARKS.md");
    }
    Ok(())
}

/// Megabytes the engine benchmark moves under callgrind (~8 s of valgrind time per run).
const ENGINE_MB: u64 = 20;

/// Runs the engine-cost example twice under callgrind and returns the markdown: the total
/// instruction count per MB of each run (they should agree), the same without the test
/// harness's own data work, and the top functions.
fn engine() -> Result<String> {
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "-p",
        "braid-proto",
        "--example",
        "engine_cost",
    ]))?;
    let root = sh::root();
    let exe = root.join("target/release/examples/engine_cost");
    let mut totals = Vec::new();
    let mut profile = None;
    let mut summary = String::new();
    for run in 0..2 {
        let out =
            std::env::temp_dir().join(format!("braid-callgrind-{}-{run}.out", std::process::id()));
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .arg(ENGINE_MB.to_string());
        summary = capture(&mut cmd)?;
        let inclusive = annotate(&out, true)?;
        let exclusive = annotate(&out, false)?;
        let _ = std::fs::remove_file(&out);
        totals.push(exclusive.total);
        profile = Some((inclusive, exclusive));
    }
    let (inclusive, exclusive) = profile.ok_or("callgrind did not run")?;
    let per_mb = |ir: u64| ir as f64 / ENGINE_MB as f64;
    // The harness's application hashes every received byte (SHA-256) and generates and checks
    // the byte pattern; that is the test's work, not the engine's.
    let harness: u64 = exclusive
        .rows
        .iter()
        .filter(|(_, name)| is_harness(name))
        .map(|(ir, _)| ir)
        .sum();
    let mut md = format!(
        "One connection moves {ENGINE_MB} MB client → server over a lossless simulated link \
         (1 Gbit/s, 2 ms one way, a queue no window fills), both endpoints in one process, no \
         sockets (`core/proto/examples/engine_cost.rs`). Instructions counted by callgrind \
         (`Ir`), so the figure does not depend on machine load. The example says: {}.\n\n\
         | | instructions per MB |\n|---|---|\n\
         | total, run 1 / run 2 | {:.4e} / {:.4e} ({} / {} Ir in all, {:+.4} % apart) |\n\
         | without the harness's data work (SHA-256 of the received bytes, pattern fill and check) | **{:.3e}** |\n\n",
        summary.trim(),
        per_mb(totals[0]),
        per_mb(totals[1]),
        totals[0],
        totals[1],
        (totals[1] as f64 - totals[0] as f64) / totals[0] as f64 * 100.0,
        per_mb(exclusive.total.saturating_sub(harness)),
    );
    for (title, p) in [
        ("inclusive (the function and what it calls)", &inclusive),
        ("self", &exclusive),
    ] {
        md += &format!(
            "Top 10 functions by {title} cost, last run, the harness's data work left out:\n\n| Ir per MB | % of total | function |\n|---|---|---|\n"
        );
        // Entry points (main, the runtime's start-up) include everything; leave them out.
        let rows = p
            .rows
            .iter()
            .filter(|(ir, name)| {
                (*ir as f64) < 0.99 * p.total as f64
                    && !is_harness(name)
                    && !is_harness_wrapper(name)
            })
            .take(10);
        for (ir, name) in rows {
            md += &format!(
                "| {:.3e} | {:.1} | `{}` |\n",
                per_mb(*ir),
                *ir as f64 / p.total as f64 * 100.0,
                name.replace('|', "\\|")
            );
        }
        md += "\n";
    }
    Ok(md)
}

/// The test harness's own per-byte work: hashing and checking the data (not engine cost).
/// Self costs of these functions are disjoint (the SHA-256 block function is the leaf).
fn is_harness(function: &str) -> bool {
    function.contains("sha256_block_data_order_avx") || function.contains("braid_testkit::pattern")
}

/// Callers that only wrap the harness's hashing, left out of the inclusive table.
fn is_harness_wrapper(function: &str) -> bool {
    function.contains("braid_testkit::Sha256") || function.contains("ring::digest")
}

/// Instruction counts from `callgrind_annotate`: the program total and (cost, function)
/// rows, highest first.
struct Profile {
    total: u64,
    rows: Vec<(u64, String)>,
}

fn annotate(out: &std::path::Path, inclusive: bool) -> Result<Profile> {
    let text = capture(
        Command::new("callgrind_annotate")
            .arg(format!(
                "--inclusive={}",
                if inclusive { "yes" } else { "no" }
            ))
            .arg("--threshold=100")
            .arg("--auto=no")
            .arg(out),
    )?;
    let mut total = None;
    let mut rows: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(ir) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // `(12.34%)  file:function [object]`
        let rest = rest.trim_start();
        let rest = rest.split_once(')').map_or(rest, |(_, r)| r).trim();
        if rest.starts_with("PROGRAM TOTALS") {
            total = Some(ir);
            continue;
        }
        let rest = rest.rsplit_once(" [").map_or(rest, |(f, _)| f);
        let function = rest.split_once(':').map_or(rest, |(_, f)| f);
        // One function appears once per source file its code was inlined from: merge them
        // (self costs add up; an inclusive cost already covers its inlined parts).
        match rows.iter_mut().find(|(_, f)| f == function) {
            Some((cost, _)) if inclusive => *cost = (*cost).max(ir),
            Some((cost, _)) => *cost += ir,
            None => rows.push((ir, function.to_string())),
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let total = total.ok_or("callgrind_annotate printed no PROGRAM TOTALS")?;
    Ok(Profile { total, rows })
}

/// Builds the release binaries, runs `braid-netbench` (its progress on stderr) and returns
/// its markdown. Extra arguments (`--repeats 1`, `--only aggregate`) are passed on.
fn netns(extra: &[String]) -> Result<String> {
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "-p",
        "braid-cli",
        "-p",
        "braid-netbed",
        "--bin",
        "braid",
        "--bin",
        "braid-netbench",
    ]))?;
    let root = sh::root();
    let out = std::env::temp_dir().join(format!("braid-netbench-{}.md", std::process::id()));
    sh::run(
        Command::new(root.join("target/release/braid-netbench"))
            .current_dir(&root)
            .arg("--braid")
            .arg(root.join("target/release/braid"))
            .args([
                "--svg-dir",
                "docs/bench",
                "--svg-href",
                "docs/bench",
                "--out",
            ])
            .arg(&out)
            .args(extra),
    )?;
    let md = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    Ok(md)
}

fn capture(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("\n$ {shown}");
    let out = cmd
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Rewrites the text between the section's markers, appending the section if it is new.
pub fn replace_section(name: &str, text: &str) -> Result {
    let path = sh::root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let block = format!("{open}\n{text}\n{close}");
    let new = match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &doc[..a], block, &doc[b + close.len()..]),
        _ => format!("{}\n{}\n", doc.trim_end(), block),
    };
    std::fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    format!("{cpus} vCPU ({model}), Linux {kernel}")
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
