//! `cargo xtask ci`: what CI runs on a clean clone.

use crate::deps;
use crate::sh::{self, Result};

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`ci` takes no arguments (got '{a}')"));
    }
    deps::install_all()?;
    sh::run(sh::cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh::run(sh::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh::run(sh::cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    // The decoders and the endpoint against arbitrary bytes, briefly (longer runs:
    // `cargo xtask fuzz --seconds N`).
    crate::fuzz::run(&["--seconds".into(), "20".into()])?;
    crate::foreign::run(&[])?;
    crate::swift::run(&[])?;
    eprintln!("\nxtask ci: all green");
    Ok(())
}
