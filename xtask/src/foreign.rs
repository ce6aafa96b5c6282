//! `cargo xtask test-foreign`: the Kotlin (JVM + JNA) and Python tests of the real library,
//! plus the checks that keep ios/ and android/ in step with the generated bindings.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use crate::swift_check;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// (marker, Debian package): javac for the Android stubs (and the JVM for kotlinc), JNA
/// for the bindings, npm for the Kotlin compiler.
const APT: &[(&str, &str)] = &[
    ("javac", "default-jdk-headless"),
    ("/usr/share/java/jna.jar", "libjna-java"),
    ("npm", "npm"),
    ("python3", "python3"),
];

/// The Kotlin compiler from npm; its lib/ also has kotlinx-coroutines-core-jvm.
const KOTLIN_COMPILER: &str = "kotlin-compiler@2.4.20";
const JNA_JAR: &str = "/usr/share/java/jna.jar";

pub fn run(args: &[String]) -> Result {
    let (kotlin, python) = match args.first().map(String::as_str) {
        None => (true, true),
        Some("kotlin") => (true, false),
        Some("python") => (false, true),
        Some(a) => {
            return Err(format!(
                "`test-foreign` takes kotlin, python or nothing (got '{a}')"
            ));
        }
    };
    let kotlin_home = tools(kotlin)?;
    let lib = ffi::build_host_library(true)?;
    let out = target_dir().join("foreign");
    ffi::generate(&lib, &out)?;
    check_checked_in(&out)?;
    let root = sh::root();
    swift_check::check_dir(
        &out.join(ffi::SWIFT_GENERATED),
        &root.join("ios/Sources/Braid"),
    )?;
    eprintln!("test-foreign: the Swift layer only uses what the generated Swift declares");
    let mut failed = Vec::new();
    if kotlin && let Err(e) = kotlin_tests(&kotlin_home, &lib, &out) {
        eprintln!("test-foreign: Kotlin: {e}");
        failed.push("Kotlin");
    }
    if python && let Err(e) = python_tests(&lib, &out) {
        eprintln!("test-foreign: Python: {e}");
        failed.push("Python");
    }
    if failed.is_empty() {
        eprintln!("\ntest-foreign: all green");
        Ok(())
    } else {
        Err(format!(
            "foreign-language tests failed: {}",
            failed.join(", ")
        ))
    }
}

/// Installs what is missing; fails with one line naming a tool that is still missing.
fn tools(kotlin: bool) -> Result<PathBuf> {
    crate::deps::install_apt(APT)?;
    for (marker, pkg) in APT {
        let ok = if marker.starts_with('/') {
            Path::new(marker).exists()
        } else {
            sh::have(marker)
        };
        if !ok {
            return Err(format!(
                "{marker} is missing (Debian package {pkg}); run as root to install it, or install it yourself"
            ));
        }
    }
    let home = target_dir().join("tools/node_modules/kotlin-compiler");
    if kotlin && !home.join("bin/kotlinc").exists() {
        let prefix = target_dir().join("tools");
        fs::create_dir_all(&prefix)
            .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
        sh::run(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(&prefix)
                .arg(KOTLIN_COMPILER),
        )
        .map_err(|e| {
            format!("kotlinc is missing and `npm install {KOTLIN_COMPILER}` failed: {e}")
        })?;
        if !home.join("bin/kotlinc").exists() {
            return Err(format!(
                "kotlinc is missing: npm's {KOTLIN_COMPILER} has no bin/kotlinc"
            ));
        }
    }
    Ok(home)
}

/// The checked-in generated files must be what the generator makes of the current code.
/// The testing crate is a separate uniffi component, so braid_ffi's files are the same
/// with or without the `testing` feature.
fn check_checked_in(out: &Path) -> Result {
    let root = sh::root();
    let pairs = [
        (
            out.join("kotlin/io/braid/ffi/braid_ffi.kt"),
            ffi::KOTLIN_IN_ANDROID,
        ),
        (out.join(ffi::SWIFT_GENERATED), ffi::SWIFT_IN_IOS),
    ];
    for (fresh, checked_in) in pairs {
        if ffi::read(&fresh)? != ffi::read(&root.join(checked_in))? {
            return Err(format!(
                "{checked_in} is stale: run `cargo xtask bindings` and commit the result"
            ));
        }
    }
    Ok(())
}

/// The JNA the AAR ships (android/gradle.properties), and that the Gradle build uses it.
fn shipped_jna() -> Result<String> {
    let root = sh::root();
    let props = ffi::read(&root.join("android/gradle.properties"))?;
    let v = props
        .lines()
        .find_map(|l| l.trim().strip_prefix("braid.jnaVersion="))
        .map(|v| v.trim().to_string())
        .ok_or("android/gradle.properties has no braid.jnaVersion")?;
    let build = ffi::read(&root.join("android/braid/build.gradle.kts"))?;
    if !build.contains("net.java.dev.jna:jna:$jnaVersion@aar") {
        return Err(
            "android/braid/build.gradle.kts must depend on net.java.dev.jna:jna:$jnaVersion@aar (the version pinned in gradle.properties)".into(),
        );
    }
    Ok(v)
}

fn kotlin_tests(home: &Path, lib: &Path, out: &Path) -> Result {
    let root = sh::root();
    // Only Debian's JNA can be installed where these tests run (JNA is on neither PyPI nor
    // npm, and Maven Central is out of reach): say which one is tested against which ships.
    let shipped = shipped_jna()?;
    let tested = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libjna-java"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(unknown version)".into());
    eprintln!(
        "test-foreign: Kotlin tests use JNA {tested} (Debian libjna-java); the AAR ships JNA {shipped}"
    );
    let work = out.join("kotlin-build");
    let stubs = work.join("stubs");
    let jar = work.join("tests.jar");
    let coroutines = home.join("lib/kotlinx-coroutines-core-jvm.jar");
    let stdlib = home.join("lib/kotlin-stdlib.jar");

    let java_stubs = files(&root.join("android/stubs"), "java")?;
    let mut kotlin = files(&out.join("kotlin"), "kt")?;
    kotlin.extend(
        files(&root.join("android/braid/src/main/kotlin/io/braid"), "kt")?
            .into_iter()
            // The checked-in copy of the generated file is identical (checked above).
            .filter(|p| !p.ends_with("ffi/braid_ffi.kt")),
    );
    kotlin.extend(files(&root.join("bindings/tests/kotlin"), "kt")?);

    let inputs: Vec<&PathBuf> = java_stubs.iter().chain(&kotlin).collect();
    if newer_than_all(&jar, &inputs) {
        eprintln!("test-foreign: Kotlin classes are up to date");
    } else {
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&stubs)
            .map_err(|e| format!("cannot create {}: {e}", stubs.display()))?;
        sh::run(
            Command::new("javac")
                .arg("-nowarn")
                .arg("-d")
                .arg(&stubs)
                .args(&java_stubs),
        )?;
        let cp = join_cp(&[Path::new(JNA_JAR), &coroutines, &stubs]);
        sh::run(
            Command::new(home.join("bin/kotlinc"))
                .args(["-nowarn", "-jvm-target", "17", "-cp", &cp, "-d"])
                .arg(&jar)
                .args(&kotlin),
        )?;
    }
    let cp = join_cp(&[&jar, Path::new(JNA_JAR), &stdlib, &coroutines, &stubs]);
    let lib_dir = lib.parent().unwrap_or(Path::new("."));
    sh::run(
        Command::new("java")
            .arg("-cp")
            .arg(cp)
            .arg(format!("-Djna.library.path={}", lib_dir.display()))
            .arg("io.braid.tests.BraidTestsKt"),
    )
}

fn python_tests(lib: &Path, out: &Path) -> Result {
    let pkg = out.join("python");
    ffi::copy(lib, &pkg.join(ffi::cdylib_name("braid_ffi")))?;
    let tests = sh::root().join("bindings/tests/python");
    sh::run(
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-v", "-s"])
            .arg(&tests)
            .arg("-t")
            .arg(&tests)
            .env("PYTHONPATH", &pkg)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
}

/// Every file ending in `.ext` under `dir`, sorted.
fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newer_than_all(target: &Path, inputs: &[&PathBuf]) -> bool {
    let Some(t) = mtime(target) else { return false };
    inputs.iter().all(|i| mtime(i).is_some_and(|m| m <= t))
}

fn join_cp(parts: &[&Path]) -> String {
    parts
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}
