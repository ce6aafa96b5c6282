//! `cargo xtask apple`: the XCFramework for the Swift package (ios/), zipped, with its
//! checksum patched into Package.swift. Needs macOS with Xcode.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Device, simulators (Apple silicon and Intel Macs) and macOS (for `swift test`).
const DEVICE: &str = "aarch64-apple-ios";
const SIMULATOR: [&str; 2] = ["aarch64-apple-ios-sim", "x86_64-apple-ios"];
const MACOS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];
/// Named after the binary target in ios/Package.swift (SwiftPM looks for that name in the zip).
const XCFRAMEWORK: &str = "braid_ffiFFI.xcframework";

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`apple` takes no arguments (got '{a}')"));
    }
    toolchain()?;
    let root = sh::root();
    let out = target_dir().join("apple");
    let _ = fs::remove_dir_all(&out);
    mkdir(&out)?;

    // Header and module map come from the generator (a host build keeps the metadata).
    let lib = ffi::build_host_library(false)?;
    ffi::generate(&lib, &target_dir().join("bindings"))?;
    let headers = out.join("include");
    mkdir(&headers)?;
    let generated = target_dir().join("bindings/swift");
    ffi::copy(
        &generated.join(format!("{}.h", ffi::SWIFT_FFI_MODULE)),
        &headers.join(format!("{}.h", ffi::SWIFT_FFI_MODULE)),
    )?;
    ffi::copy(
        &generated.join("module.modulemap"),
        &headers.join("module.modulemap"),
    )?;
    ffi::copy(
        &generated.join("BraidFFI.swift"),
        &root.join(ffi::SWIFT_IN_IOS),
    )?;

    let all: Vec<&str> = [DEVICE].into_iter().chain(SIMULATOR).chain(MACOS).collect();
    if sh::have("rustup") {
        sh::run(Command::new("rustup").args(["target", "add"]).args(&all))?;
    }
    for t in &all {
        sh::run(sh::cargo().args([
            "rustc",
            "-p",
            "braid-ffi",
            "--lib",
            "--profile",
            "mobile",
            "--crate-type",
            "staticlib",
            "--target",
            t,
        ]))?;
    }
    let a = |t: &str| target_dir().join(t).join("mobile/libbraid_ffi.a");
    let sim = lipo(&out.join("ios-simulator"), &SIMULATOR.map(a))?;
    let mac = lipo(&out.join("macos"), &MACOS.map(a))?;

    let xcf = out.join(XCFRAMEWORK);
    let mut c = Command::new("xcodebuild");
    c.arg("-create-xcframework");
    for l in [a(DEVICE), sim, mac] {
        c.arg("-library").arg(l).arg("-headers").arg(&headers);
    }
    sh::run(c.arg("-output").arg(&xcf))?;

    let zip = out.join(format!("{XCFRAMEWORK}.zip"));
    sh::run(
        Command::new("ditto")
            .args(["-c", "-k", "--sequesterRsrc", "--keepParent"])
            .arg(&xcf)
            .arg(&zip),
    )?;
    let checksum = capture(
        Command::new("swift")
            .args(["package", "compute-checksum"])
            .arg(&zip)
            .current_dir(root.join("ios")),
    )?;
    patch_checksum(&root.join("ios/Package.swift"), checksum.trim())?;

    // Local development: Package.swift uses this copy when it exists.
    let local = root.join("ios/Frameworks").join(XCFRAMEWORK);
    let _ = fs::remove_dir_all(&local);
    mkdir(&root.join("ios/Frameworks"))?;
    sh::run(Command::new("cp").arg("-R").arg(&xcf).arg(&local))?;
    eprintln!(
        "\napple: {} ({}), checksum {} written to ios/Package.swift; local copy in ios/Frameworks",
        zip.display(),
        fs::metadata(&zip).map(|m| m.len()).unwrap_or(0),
        checksum.trim()
    );
    Ok(())
}

/// Stops with one line naming what is missing.
fn toolchain() -> Result {
    if std::env::consts::OS != "macos" {
        return Err(format!(
            "`cargo xtask apple` needs macOS with Xcode (xcodebuild, swift); this machine runs {}",
            std::env::consts::OS
        ));
    }
    for tool in ["xcodebuild", "lipo", "ditto", "swift"] {
        if !sh::have(tool) {
            return Err(format!(
                "`cargo xtask apple` needs {tool} (install Xcode and its command-line tools)"
            ));
        }
    }
    Ok(())
}

fn lipo(dir: &Path, libs: &[PathBuf]) -> Result<PathBuf> {
    mkdir(dir)?;
    let fat = dir.join("libbraid_ffi.a");
    sh::run(
        Command::new("lipo")
            .arg("-create")
            .args(libs)
            .arg("-output")
            .arg(&fat),
    )?;
    Ok(fat)
}

/// Replaces the checksum of the binary target in Package.swift.
pub fn patch_checksum(package: &Path, checksum: &str) -> Result {
    let src = ffi::read(package)?;
    let mut done = false;
    let out: Vec<String> = src
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("checksum: \"") && !done {
                done = true;
                let indent = &l[..l.len() - t.len()];
                let rest = t.splitn(3, '"').nth(2).unwrap_or("");
                format!("{indent}checksum: \"{checksum}\"{rest}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !done {
        return Err(format!(
            "no `checksum: \"...\"` line in {}",
            package.display()
        ));
    }
    fs::write(package, out.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", package.display()))
}

fn capture(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let o = cmd
        .output()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn mkdir(p: &Path) -> Result {
    fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_line_is_replaced_once() {
        let dir = std::env::temp_dir().join(format!("braid-xtask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("Package.swift");
        std::fs::write(
            &p,
            "x\n        checksum: \"old\"\n    checksum: \"other\"\n",
        )
        .unwrap();
        super::patch_checksum(&p, "abc123").unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            s,
            "x\n        checksum: \"abc123\"\n    checksum: \"other\"\n"
        );
        std::fs::write(&p, "no checksum here\n").unwrap();
        assert!(super::patch_checksum(&p, "abc").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
