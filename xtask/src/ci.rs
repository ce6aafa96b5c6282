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
    // The decoders, the endpoint, the gateway's first bytes and an established connection
    // against arbitrary input, briefly: 15 s per target, 75 s in all (longer runs:
    // `cargo xtask fuzz --seconds N`).
    crate::fuzz::run(&["--seconds".into(), "15".into()])?;
    crate::foreign::run(&[])?;
    crate::swift::run(&[])?;
    eprintln!("\nxtask ci: all green");
    Ok(())
}
