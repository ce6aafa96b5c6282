//! `cargo xtask bench [sim|cpu|netns|attack|all]`: runs the benchmarks and rewrites their sections
//! of BENCHMARKS.md (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), so the file
//! always holds numbers from the command it names, with the machine they ran on.
//!
//! `netns` needs root: it builds the release `braid` CLI and `braid-netbench`, which brings
//! up the namespace testbed and measures Braid and the kernel's MPTCP side by side; its SVG
//! timelines go to docs/bench/. `all` runs it only as root.
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
        "cpu" => &["cpu"],
        "netns" => &["netns"],
        "attack" => &["attack"],
        "all" if sh::is_root() => &["sim", "cpu", "netns", "attack"],
        "all" => {
            eprintln!("xtask bench: not root, leaving out the 'netns' benchmark");
            &["sim", "cpu", "attack"]
        }
        other => {
            return Err(format!(
                "unknown benchmark '{other}' (sim, cpu, netns, attack or all)"
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
