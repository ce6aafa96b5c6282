//! The uniffi library and its generated bindings: `cargo xtask bindings` and `cargo xtask
//! size`, plus what `test-foreign`, `apple` and `android` share.

use crate::sh::{self, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The generated files that are checked in, next to the layers written against them.
pub const KOTLIN_IN_ANDROID: &str = "android/braid/src/main/kotlin/io/braid/ffi/braid_ffi.kt";
pub const SWIFT_IN_IOS: &str = "ios/Sources/BraidFFI/BraidFFI.swift";
/// The generated Swift file (named after `module_name` in bindings/uniffi.toml).
pub const SWIFT_GENERATED: &str = "swift/BraidFFI.swift";
/// The C module the generated Swift imports (header + modulemap, shipped in the XCFramework).
pub const SWIFT_FFI_MODULE: &str = "braid_ffiFFI";

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sh::root().join("target"))
}

/// The host's shared-library file name for `name`.
pub fn cdylib_name(name: &str) -> String {
    match std::env::consts::OS {
        "macos" | "ios" => format!("lib{name}.dylib"),
        "windows" => format!("{name}.dll"),
        _ => format!("lib{name}.so"),
    }
}

/// Builds braid-ffi for the host (dev profile: it keeps the uniffi metadata the generator
/// reads) and the generator itself. Returns the library's path.
pub fn build_host_library(testing: bool) -> Result<PathBuf> {
    let mut c = sh::cargo();
    c.args(["build", "-p", "braid-ffi", "--lib"]);
    if testing {
        c.args(["--features", "testing"]);
    }
    sh::run(&mut c)?;
    // A separate invocation: with `cli` unified into the library's uniffi, the library
    // would be rebuilt with the generator's dependencies.
    sh::run(sh::cargo().args(["build", "-p", "braid-uniffi-bindgen"]))?;
    Ok(target_dir().join("debug").join(cdylib_name("braid_ffi")))
}

fn bindgen(bin: &str) -> Command {
    let mut c = Command::new(target_dir().join("debug").join(bin));
    // Library mode asks `cargo metadata` for each crate's uniffi.toml.
    c.current_dir(sh::root());
    c
}

/// Generates Kotlin and Python, and the Swift sources, C header and module map, for every
/// uniffi crate in `lib` into `out/{kotlin,python,swift}`. Files whose content did not
/// change keep their time stamp, so what is built from them is not rebuilt.
pub fn generate(lib: &Path, out: &Path) -> Result {
    let fresh = out.join(".generated");
    let _ = fs::remove_dir_all(&fresh);
    for lang in ["kotlin", "python"] {
        sh::run(
            bindgen("uniffi-bindgen")
                .args(["generate", "--no-format", "--language", lang, "--out-dir"])
                .arg(fresh.join(lang))
                .arg(lib),
        )?;
    }
    sh::run(
        bindgen("uniffi-bindgen-swift")
            .args(["--swift-sources", "--headers", "--modulemap"])
            .args(["--module-name", SWIFT_FFI_MODULE])
            .args(["--modulemap-filename", "module.modulemap"])
            .arg(lib)
            .arg(fresh.join("swift")),
    )?;
    for lang in ["kotlin", "python", "swift"] {
        sync(&fresh.join(lang), &out.join(lang))?;
    }
    let _ = fs::remove_dir_all(&fresh);
    Ok(())
}

/// Makes `to` hold exactly the files of `from`, rewriting only those that differ.
fn sync(from: &Path, to: &Path) -> Result {
    let mut wanted = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = from.join(&rel);
        let entries =
            fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(r);
            } else {
                let new = fs::read(e.path()).map_err(|e| format!("cannot read: {e}"))?;
                if fs::read(to.join(&r)).ok().as_deref() != Some(&new[..]) {
                    copy(&e.path(), &to.join(&r))?;
                }
                wanted.push(r);
            }
        }
    }
    // Files of crates or languages that are gone.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = fs::read_dir(to.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(r);
            } else if !wanted.contains(&r) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

pub fn copy(from: &Path, to: &Path) -> Result {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

pub fn read(p: &Path) -> Result<String> {
    fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// `cargo xtask bindings`: regenerates the bindings and refreshes the checked-in copies.
pub fn bindings(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`bindings` takes no arguments (got '{a}')"));
    }
    let lib = build_host_library(false)?;
    let out = target_dir().join("bindings");
    generate(&lib, &out)?;
    let root = sh::root();
    copy(
        &out.join("kotlin/io/braid/ffi/braid_ffi.kt"),
        &root.join(KOTLIN_IN_ANDROID),
    )?;
    copy(&out.join(SWIFT_GENERATED), &root.join(SWIFT_IN_IOS))?;
    copy(&lib, &out.join("python").join(cdylib_name("braid_ffi")))?;
    eprintln!(
        "\nbindings: Kotlin -> {KOTLIN_IN_ANDROID}, Swift -> {SWIFT_IN_IOS}, \
         header + modulemap -> {}, Python (with the library) -> {}",
        out.join("swift").display(),
        out.join("python").display()
    );
    Ok(())
}
