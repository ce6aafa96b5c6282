//! `cargo xtask fuzz [--seconds N]`: builds the libFuzzer targets of `core/proto/fuzz` with
//! the stable toolchain (the sanitizer-coverage passes are stable `-C` flags; cargo-fuzz is not
//! needed) and runs each for N seconds. Any crash fails the command.

use crate::sh::{self, Result};
use std::process::Command;

const TARGETS: &[&str] = &["decode_segment", "endpoint"];
const FLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

pub fn run(args: &[String]) -> Result {
    let seconds = match args {
        [] => 60,
        [flag, n] if flag == "--seconds" => n
            .parse()
            .map_err(|_| format!("--seconds needs a number, got '{n}'"))?,
        _ => return Err("usage: cargo xtask fuzz [--seconds N]".into()),
    };
    let dir = sh::root().join("core/proto/fuzz");
    let mut build = sh::cargo();
    build
        .current_dir(&dir)
        .args(["build", "--release", "--target", TRIPLE])
        .env("RUSTFLAGS", FLAGS);
    sh::run(&mut build)?;
    for target in TARGETS {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let exe = dir.join("target").join(TRIPLE).join("release").join(target);
        sh::run(
            Command::new(exe)
                .arg(format!("-max_total_time={seconds}"))
                .arg("-max_len=4096")
                .arg(&corpus),
        )
        .map_err(|e| format!("fuzz target {target} found a crash: {e}"))?;
    }
    Ok(())
}
