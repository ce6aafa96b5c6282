//! `cargo xtask size`: the size of the shipped library per target. Its own module: it
//! builds through both the host (`ffi`) and the Android (`android`) paths, which do not
//! depend on each other.

use crate::android;
use crate::ffi::{cdylib_name, target_dir};
use crate::sh::{self, Result};
use std::fs;
use std::path::Path;
use std::process::Command;

/// `cargo xtask size`: the release library as it would ship (profile `mobile`: size-
/// optimised, fat LTO, unwinding kept, stripped), for the host and, where cargo-ndk and an NDK
/// are installed, for each Android ABI.
pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`size` takes no arguments (got '{a}')"));
    }
    sh::run(sh::cargo().args([
        "rustc",
        "-p",
        "braid-ffi",
        "--lib",
        "--profile",
        "mobile",
        "--crate-type",
        "cdylib",
    ]))?;
    let host = target_dir().join("mobile").join(cdylib_name("braid_ffi"));
    let mut rows = vec![(host_triple(), file_size(&host)?)];
    if android::toolchain().is_ok() {
        for (abi, triple) in android::ABIS {
            android::build_abi(abi)?;
            let so = target_dir().join(triple).join("mobile/libbraid_ffi.so");
            rows.push((triple.to_string(), file_size(&so)?));
        }
    } else {
        eprintln!("size: no Android toolchain (cargo-ndk + NDK): host only");
    }
    let mut table = String::from("| target | libbraid_ffi (mobile profile, stripped) |\n|---|---|");
    for (t, n) in rows {
        table.push_str(&format!("\n| {t} | {:.2} MB ({n} bytes) |", n as f64 / 1e6));
    }
    println!("\n{table}");
    crate::bench::replace_section("size", &table)?;
    eprintln!("size: updated the 'size' section of BENCHMARKS.md");
    Ok(())
}

fn file_size(p: &Path) -> Result<u64> {
    fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| format!("cannot stat {}: {e}", p.display()))
}

fn host_triple() -> String {
    Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_else(|| "host".into())
}
