//! `cargo xtask fuzz [--seconds N] [--target T]`: builds the libFuzzer targets of
//! `core/proto/fuzz` with the stable toolchain (the sanitizer-coverage passes are stable `-C`
//! flags; cargo-fuzz is not needed) and runs each (or only T) for N seconds. Each target reads
//! its committed seeds (`seeds/T`) and grows its own corpus (`corpus/T`, not committed). Any
//! crash fails the command; the input that crashed is left in the fuzz directory.

use crate::sh::{self, Result};
use std::process::Command;

pub const TARGETS: &[&str] = &[
    "decode_segment",
    "endpoint",
    "convert_decode",
    "gateway_first_bytes",
    "established",
    "proxy_handshake",
];
const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--target T]";
const FLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

pub fn run(args: &[String]) -> Result {
    let mut seconds = 60u64;
    let mut only: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let n = it.next().ok_or(USAGE)?;
                seconds = n
                    .parse()
                    .map_err(|_| format!("--seconds needs a number, got '{n}'"))?;
            }
            "--target" => {
                let t = it.next().ok_or(USAGE)?;
                if !TARGETS.contains(&t.as_str()) {
                    return Err(format!(
                        "unknown fuzz target '{t}' (one of {})",
                        TARGETS.join(", ")
                    ));
                }
                only = Some(t.as_str());
            }
            _ => return Err(USAGE.into()),
        }
    }
    let dir = sh::root().join("core/proto/fuzz");
    let mut build = sh::cargo();
    build
        .current_dir(&dir)
        .args(["build", "--release", "--target", TRIPLE])
        .env("RUSTFLAGS", FLAGS);
    if let Some(t) = only {
        build.args(["--bin", t]);
    }
    sh::run(&mut build)?;
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = dir.join("seeds").join(target);
        let exe = dir.join("target").join(TRIPLE).join("release").join(target);
        let artifacts = dir.join("artifacts");
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
        let mut cmd = Command::new(exe);
        cmd.current_dir(&dir)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=4096")
            .arg("-timeout=20")
            .arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        sh::run(&mut cmd).map_err(|e| format!("fuzz target {target} found a crash: {e}"))?;
    }
    Ok(())
}
