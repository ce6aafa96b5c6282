//! `cargo xtask android`: the .so for every Android ABI (cargo-ndk, 16 KB pages) in the
//! library's jniLibs, checked for 16 KB-aligned LOAD segments, then the AAR and a local Maven
//! repository (Gradle). Needs cargo-ndk, an NDK, the Android SDK and Gradle 8.9+.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use std::fs;
use std::path::{Path, PathBuf};
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
/// The page size the packaged libraries must be aligned to.
pub const PAGE_16K: u64 = 0x4000;
/// AGP 8.7.3 (android/build.gradle.kts) needs Gradle 8.9 or newer.
const MIN_GRADLE: (u32, u32) = (8, 9);

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`android` takes no arguments (got '{a}')"));
    }
    toolchain()?;
    sdk()?;
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
        let packaged = jni.join(abi).join("libbraid_ffi.so");
        ffi::copy(&so, &packaged)?;
        check_16k(&packaged)?;
    }
    let maven = target_dir().join("android/maven");
    sh::run(
        Command::new(&gradle)
            .arg("-p")
            .arg(root.join("android"))
            .args([
                ":braid:assembleRelease",
                ":braid:publishReleasePublicationToLocalRepository",
            ])
            .arg(format!("-Pbraid.mavenRepo={}", maven.display()))
            .arg("--no-daemon"),
    )?;
    let aar = root.join("android/braid/build/outputs/aar/braid-release.aar");
    let out = target_dir().join("android/braid-release.aar");
    ffi::copy(&aar, &out)?;
    check_aar(&out)?;
    eprintln!(
        "\nandroid: {} (jniLibs for {}, every LOAD segment 16 KB aligned); Maven repository: {}",
        out.display(),
        ABIS.map(|(a, _)| a).join(", "),
        maven.display()
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

/// The Android SDK Gradle builds against (`ANDROID_HOME`, or `sdk.dir` in local.properties).
fn sdk() -> Result {
    let from_env = ["ANDROID_HOME", "ANDROID_SDK_ROOT"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from);
    let local = fs::read_to_string(sh::root().join("android/local.properties"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("sdk.dir=").map(|d| PathBuf::from(d.trim())))
        });
    if from_env.chain(local).any(|d| d.join("platforms").is_dir()) {
        Ok(())
    } else {
        Err("`cargo xtask android` needs the Android SDK with a platform installed (set ANDROID_HOME, or sdk.dir in android/local.properties)".into())
    }
}

/// The wrapper when its jar is there, else a Gradle 8.9+ on PATH.
fn gradle() -> Result<PathBuf> {
    let android = sh::root().join("android");
    if android.join("gradle/wrapper/gradle-wrapper.jar").exists() {
        return Ok(android.join("gradlew"));
    }
    let need = format!("{}.{}", MIN_GRADLE.0, MIN_GRADLE.1);
    if !sh::have("gradle") {
        return Err(format!(
            "`cargo xtask android` needs Gradle {need}+ (android/gradle/wrapper/gradle-wrapper.jar is not committed: run `gradle wrapper` in android/ once, or put gradle on PATH)"
        ));
    }
    let out = Command::new("gradle")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run `gradle --version`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match gradle_version(&text) {
        Some(v) if v >= MIN_GRADLE => Ok(PathBuf::from("gradle")),
        Some((a, b)) => Err(format!(
            "Gradle {a}.{b} is on PATH; AGP 8.7.3 needs Gradle {need}+ (or run `gradle wrapper` in android/ and use the wrapper)"
        )),
        None => Err(format!(
            "cannot tell the version of the gradle on PATH; Gradle {need}+ is needed"
        )),
    }
}

/// (major, minor) from `gradle --version` output ("Gradle 8.10.2").
fn gradle_version(text: &str) -> Option<(u32, u32)> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Gradle "))?;
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .map(|m| {
            m.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Some((major, minor))
}

/// Every `.so` inside the AAR (`jni/<abi>/*.so`) is 16 KB aligned too.
fn check_aar(aar: &Path) -> Result {
    let dir = target_dir().join("android/aar-check");
    let _ = fs::remove_dir_all(&dir);
    sh::run(
        Command::new("unzip")
            .args(["-q", "-o"])
            .arg(aar)
            .arg("jni/*")
            .arg("-d")
            .arg(&dir),
    )
    .map_err(|e| format!("cannot list the .so files in the AAR (unzip): {e}"))?;
    let mut n = 0;
    for (abi, _) in ABIS {
        let so = dir.join("jni").join(abi).join("libbraid_ffi.so");
        if !so.exists() {
            return Err(format!("the AAR has no jni/{abi}/libbraid_ffi.so"));
        }
        check_16k(&so)?;
        n += 1;
    }
    eprintln!("android: {n} packaged .so files, every LOAD segment aligned to 16 KB");
    Ok(())
}

/// Fails unless every LOAD segment of the ELF file at `path` is aligned to 16 KB or more.
pub fn check_16k(path: &Path) -> Result {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let aligns = load_alignments(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if aligns.is_empty() {
        return Err(format!("{}: no LOAD segments", path.display()));
    }
    match aligns.iter().find(|a| **a < PAGE_16K) {
        Some(a) => Err(format!(
            "{}: a LOAD segment is aligned to {a:#x} bytes, not 16 KB (0x4000): link with -Wl,-z,max-page-size=16384 (devices with 16 KB pages cannot load it)",
            path.display()
        )),
        None => Ok(()),
    }
}

/// `p_align` of every PT_LOAD program header of an ELF image (32- or 64-bit, either byte order).
pub fn load_alignments(elf: &[u8]) -> std::result::Result<Vec<u64>, String> {
    const PT_LOAD: u32 = 1;
    if elf.len() < 0x34 || &elf[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    let wide = match elf[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let le = match elf[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF byte order {d}")),
    };
    let rd = |off: usize, len: usize| -> std::result::Result<u64, String> {
        let b = off
            .checked_add(len)
            .and_then(|end| elf.get(off..end))
            .ok_or_else(|| format!("truncated ELF file (need {len} bytes at {off})"))?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    // e_phoff, e_phentsize, e_phnum; in each header p_type and p_align.
    let (phoff, phentsize, phnum) = if wide {
        (rd(0x20, 8)?, rd(0x36, 2)?, rd(0x38, 2)?)
    } else {
        (rd(0x1c, 4)?, rd(0x2a, 2)?, rd(0x2c, 2)?)
    };
    let (align_off, align_len, min_ent) = if wide { (48, 8, 56) } else { (28, 4, 32) };
    if phnum > 0 && phentsize < min_ent {
        return Err(format!("program header entries of {phentsize} bytes"));
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let h = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| o.checked_add(align_off).map(|a| (o, a)))
            .ok_or("program header offset out of range")?;
        if rd(h.0, 4)? == u64::from(PT_LOAD) {
            out.push(rd(h.1, align_len)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared library built here with the host's C compiler and `extra` linker flags.
    fn build_so(name: &str, extra: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-elf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // One source per test: the tests run in parallel.
        let src = dir.join(format!("{name}.c"));
        fs::write(&src, "int braid_probe(void) { return 42; }\n").unwrap();
        let out = dir.join(name);
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&out)
            .arg(&src)
            .args(extra)
            .status()
            .expect("the C compiler (cc) that links Rust on this host");
        assert!(status.success(), "cc failed for {name}");
        out
    }

    #[test]
    fn sixteen_k_pages_pass() {
        let so = build_so("lib16k.so", &["-Wl,-z,max-page-size=16384"]);
        let aligns = load_alignments(&fs::read(&so).unwrap()).unwrap();
        assert!(!aligns.is_empty());
        assert!(aligns.iter().all(|a| *a == 0x4000), "{aligns:x?}");
        check_16k(&so).unwrap();
    }

    #[test]
    fn four_k_pages_fail() {
        for (name, flags) in [
            ("lib4k.so", &["-Wl,-z,max-page-size=4096"][..]),
            // The host's default (4 KB on x86_64 with current binutils and lld).
            ("libdefault.so", &[][..]),
        ] {
            let so = build_so(name, flags);
            let aligns = load_alignments(&fs::read(&so).unwrap()).unwrap();
            if aligns.iter().all(|a| *a >= PAGE_16K) {
                // A linker whose default is already 16 KB or more: nothing to reject.
                assert_eq!(name, "libdefault.so", "{aligns:x?}");
                continue;
            }
            let e = check_16k(&so).unwrap_err();
            assert!(
                e.contains("not 16 KB") && e.contains("max-page-size=16384"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(load_alignments(b"not an elf").is_err());
        let mut hdr = vec![0u8; 64];
        hdr[..4].copy_from_slice(b"\x7fELF");
        hdr[4] = 2;
        hdr[5] = 1;
        // One program header far past the end of the file.
        hdr[0x20] = 0xff;
        hdr[0x36] = 56;
        hdr[0x38] = 1;
        assert!(load_alignments(&hdr).unwrap_err().contains("truncated"));
    }

    #[test]
    fn gradle_versions() {
        let out = "\n------------------------------------------------------------\nGradle 8.10.2\n------------------------------------------------------------\n";
        assert_eq!(gradle_version(out), Some((8, 10)));
        assert_eq!(gradle_version("Gradle 8.7"), Some((8, 7)));
        assert!(gradle_version("Gradle 8.7").unwrap() < MIN_GRADLE);
        assert_eq!(gradle_version("nothing"), None);
    }
}
