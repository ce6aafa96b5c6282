//! `cargo xtask`: the project's build and CI driver. Every command installs what it needs.

mod android;
mod apple;
mod bench;
mod ci;
mod deps;
mod ffi;
mod foreign;
mod fuzz;
mod sh;
mod size;
mod swift;
mod swift_check;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci             fmt check, clippy (-D warnings), every test; installs what it needs
  deps           install the system packages the tests need (apt, npm), then exit
  fuzz [--seconds N] [--target T]  run the libFuzzer targets (stable toolchain) for N
                 seconds each (or only T)
  bench [sim|cpu|netns|attack|all]  run benchmarks and rewrite their sections of BENCHMARKS.md
                 (netns: root; Braid vs the kernel's MPTCP on the namespace testbed)
  bindings       regenerate the Swift, Kotlin and Python bindings (checked-in copies too)
  test-foreign [kotlin|python]  Kotlin (JVM + JNA) and Python tests of the real library
  test-swift     swift build + swift test of the package (Swift 5 and 6 modes) against the
                 real library; makes a Debian trixie root with Swift when none is on PATH
  apple          XCFramework in target/apple and ios/Frameworks (macOS + Xcode)
  release-apple VERSION [--base-url URL] [--zip ZIP]  the XCFramework zipped, its URL and
                 checksum written into Package.swift (--zip: a zip built elsewhere)
  android        .so per ABI (cargo-ndk) + AAR (Gradle)
  size           size of the shipped library (mobile profile, stripped) per target
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "ci" => ci::run(rest),
        "deps" => deps::install_all(),
        "fuzz" => fuzz::run(rest),
        "bench" => bench::run(rest),
        "bindings" => ffi::bindings(rest),
        "test-foreign" => foreign::run(rest),
        "test-swift" => swift::run(rest),
        "apple" => apple::run(rest),
        "release-apple" => apple::release(rest),
        "android" => android::run(rest),
        "size" => size::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
