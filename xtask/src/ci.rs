//! `cargo xtask ci`: what CI runs on a clean clone.
//!
//! Every cargo invocation is `--locked`: CI builds exactly the dependency versions in
//! Cargo.lock and fails if the lock file is out of date, instead of resolving anew.

use crate::deps;
use crate::sh::{self, Result};
use std::process::Command;

/// The library crates whose documentation must build without warnings.
const DOC_CRATES: [&str; 3] = ["braid-proto", "braid", "braid-ffi"];

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`ci` takes no arguments (got '{a}')"));
    }
    deps::install_all()?;
    check_msrv()?;
    sh::run(sh::cargo().args(["fmt", "--all", "--", "--check"]))?;
    // Clippy's `incompatible_msrv` lint (on by default) fails this step when the code uses an
    // API newer than the workspace's `rust-version`.
    sh::run(sh::cargo().args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The shipped library alone, without the features tests turn on (no simulator).
    sh::run(sh::cargo().args(["build", "--locked", "-p", "braid-proto", "-p", "braid"]))?;
    let mut doc = sh::cargo();
    doc.env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--locked", "--no-deps"]);
    for c in DOC_CRATES {
        doc.args(["-p", c]);
    }
    sh::run(&mut doc)?;
    sh::run(sh::cargo().args(["test", "--locked", "--workspace", "--no-fail-fast"]))?;
    // The decoders, the endpoint, the gateway's first bytes and an established connection
    // against arbitrary input, briefly: 15 s per target, 75 s in all (longer runs:
    // `cargo xtask fuzz --seconds N`).
    crate::fuzz::run(&["--seconds".into(), "15".into()])?;
    crate::foreign::run(&[])?;
    crate::swift::run(&[])?;
    eprintln!("\nxtask ci: all green");
    Ok(())
}

/// The minimum supported Rust version, checked as far as this machine allows.
///
/// Only one toolchain can be installed where CI runs, so there is no build with the
/// declared `rust-version` itself. What is checked instead: (1) the toolchain here is at least
/// that version (else the declared version would be a promise nobody tested); (2) clippy's
/// `incompatible_msrv` lint, in the clippy step, rejects standard-library APIs stabilised
/// after it. Not covered: language features newer than `rust-version` (the compiler here
/// accepts them); `let` chains, the newest feature in use, are why it says 1.88.
fn check_msrv() -> Result {
    let manifest = std::fs::read_to_string("Cargo.toml")
        .map_err(|e| format!("cannot read the workspace Cargo.toml: {e}"))?;
    let declared = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .ok_or("the workspace Cargo.toml declares no rust-version")?;
    let out = Command::new("rustc")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let have = text
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("unexpected `rustc --version` output: {text}"))?;
    let (want, got) = (version(&declared)?, version(have)?);
    if got < want {
        return Err(format!(
            "rustc {have} is older than the declared rust-version {declared}"
        ));
    }
    eprintln!("msrv: rust-version {declared}, rustc {have}: ok");
    Ok(())
}

/// `1.88` or `1.88.0` (or `1.95.0-nightly`) as (major, minor, patch).
fn version(v: &str) -> std::result::Result<(u32, u32, u32), String> {
    let core = v.split('-').next().unwrap_or(v);
    let mut parts = core.split('.').map(|p| p.parse::<u32>());
    let mut next = || {
        parts
            .next()
            .transpose()
            .map_err(|e| format!("bad version '{v}': {e}"))
    };
    let major = next()?.ok_or_else(|| format!("bad version '{v}'"))?;
    Ok((major, next()?.unwrap_or(0), next()?.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::version;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version("1.88").unwrap(), (1, 88, 0));
        assert_eq!(version("1.95.0-nightly").unwrap(), (1, 95, 0));
        assert!(version("1.9.0").unwrap() < version("1.88").unwrap());
        assert!(version("x.1").is_err());
        assert!(version("").is_err());
    }
}
