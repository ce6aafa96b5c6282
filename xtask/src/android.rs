//! `cargo xtask android`: the .so for every Android ABI (cargo-ndk, 16 KB pages) in the
//! library's jniLibs, then the AAR (Gradle). Needs cargo-ndk, an NDK and Gradle.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use std::path::PathBuf;
use std::process::Command;

/// (Android ABI, Rust target).
pub const ABIS: [(&str, &str); 4] = [
    ("arm64-v8a", "aarch64-linux-android"),
    ("armeabi-v7a", "armv7-linux-androideabi"),
    ("x86_64", "x86_64-linux-android"),
    ("x86", "i686-linux-android"),
];
const MIN_SDK: &str = "23";
/// Android 15 devices may use 16 KB pages: LOAD segments must be aligned to that.
const PAGE_FLAGS: &str = "-C link-arg=-Wl,-z,max-page-size=16384";

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`android` takes no arguments (got '{a}')"));
    }
    toolchain()?;
    let gradle = gradle()?;
    let root = sh::root();
    // The Kotlin layer compiles against the checked-in generated file: refresh it.
    ffi::bindings(&[])?;
    if sh::have("rustup") {
        sh::run(
            Command::new("rustup")
                .args(["target", "add"])
                .args(ABIS.map(|(_, t)| t)),
        )?;
    }
    for (abi, _) in ABIS {
        build_abi(abi)?;
    }
    let jni = root.join("android/braid/src/main/jniLibs");
    for (abi, triple) in ABIS {
        let so = target_dir().join(triple).join("mobile/libbraid_ffi.so");
        ffi::copy(&so, &jni.join(abi).join("libbraid_ffi.so"))?;
    }
    sh::run(
        Command::new(&gradle)
            .args(["-p"])
            .arg(root.join("android"))
            .args([":braid:assembleRelease", "--no-daemon"]),
    )?;
    let aar = root.join("android/braid/build/outputs/aar/braid-release.aar");
    let out = target_dir().join("android/braid-release.aar");
    ffi::copy(&aar, &out)?;
    eprintln!(
        "\nandroid: {} (jniLibs for {})",
        out.display(),
        ABIS.map(|(a, _)| a).join(", ")
    );
    Ok(())
}

/// Builds `libbraid_ffi.so` for one ABI with the `mobile` profile.
pub fn build_abi(abi: &str) -> Result {
    sh::run(
        sh::cargo()
            .args(["ndk", "-t", abi, "--platform", MIN_SDK])
            .args(["build", "-p", "braid-ffi", "--lib", "--profile", "mobile"])
            .env("RUSTFLAGS", PAGE_FLAGS),
    )
}

/// Stops with one line naming what is missing.
pub fn toolchain() -> Result {
    let ndk_ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["ndk", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ndk_ok {
        return Err("`cargo xtask android` needs cargo-ndk (cargo install cargo-ndk)".into());
    }
    let ndk = ["ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "NDK_HOME"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .chain(
            ["ANDROID_HOME", "ANDROID_SDK_ROOT"]
                .iter()
                .filter_map(std::env::var_os)
                .map(|s| PathBuf::from(s).join("ndk"))
                .filter_map(|d| std::fs::read_dir(d).ok()?.flatten().map(|e| e.path()).max()),
        )
        .find(|p| p.join("toolchains").is_dir());
    if ndk.is_none() {
        return Err("`cargo xtask android` needs the Android NDK (set ANDROID_NDK_HOME, or install it under $ANDROID_HOME/ndk)".into());
    }
    Ok(())
}

fn gradle() -> Result<PathBuf> {
    let wrapper = sh::root().join("android/gradlew");
    if wrapper.exists() {
        return Ok(wrapper);
    }
    if sh::have("gradle") {
        return Ok(PathBuf::from("gradle"));
    }
    Err("`cargo xtask android` needs Gradle 8.7+ (gradle on PATH, or android/gradlew) and the Android SDK (ANDROID_HOME)".into())
}
