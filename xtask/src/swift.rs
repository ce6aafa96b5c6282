//! `cargo xtask test-swift`: compiles the Swift package (root Package.swift) with a real
//! Swift toolchain and runs its tests against the host-built library, in Swift 5 and
//! Swift 6 language modes.
//!
//! The toolchain: `swift` ≥ 6 on PATH when there is one; otherwise a Debian 13 (trixie)
//! root made with `debootstrap --variant=minbase` and the `swiftlang` package (Swift 6.0.3;
//! Debian 12's glibc is too old to install it directly). The root is kept in
//! `<target>/swift-root` and reused; it is rebuilt only when missing or incomplete. Each run
//! mounts /proc (the toolchain finds its own libraries through /proc/self/exe) and the
//! workspace (read-only) inside the root, and unmounts them again, also when a step fails.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What the root gets on top of minbase. libc6-dev: the C headers and crt files the Swift
/// driver links with; ca-certificates: none needed (no package downloads by SwiftPM).
const PACKAGES: &[&str] = &["swiftlang", "libc6-dev"];
const SUITE: &str = "trixie";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Written into the root once it is complete; its content names what was installed, so a
/// change of PACKAGES rebuilds the root.
const READY: &str = "braid-swift-ready";
/// Where the workspace and the library appear inside the root.
const WORKSPACE_IN_ROOT: &str = "braid";
const LIB_IN_ROOT: &str = "opt/braid/lib";
/// Inside the root: SwiftPM's build directories (one per language mode, kept between runs).
const SCRATCH_IN_ROOT: &str = "var/cache/braid-swift";
/// Generated into the package by this command (ignored by git), see Package.swift.
const LINUX_FFI_DIR: &str = "ios/Linux/braid_ffiFFI";
const LINUX_TESTING_DIR: &str = "ios/Linux/BraidTesting";
const TESTING_MODULE: &str = "BraidTesting";
/// A hung test must not hang CI: `timeout` ends any one swift command after 20 minutes.
const TIMEOUT: [&str; 3] = ["-k", "30", "1200"];

pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`test-swift` takes no arguments (got '{a}')"));
    }
    let t0 = Instant::now();
    let Some(toolchain) = toolchain()? else {
        return Ok(());
    };
    let t_toolchain = t0.elapsed();
    eprintln!(
        "test-swift: toolchain ready in {:.1} s ({})",
        t_toolchain.as_secs_f64(),
        toolchain.describe()
    );

    let lib = ffi::build_host_library(true)?;
    let generated = target_dir().join("swift-generated");
    ffi::generate(&lib, &generated)?;
    let root = sh::root();
    if ffi::read(&generated.join(ffi::SWIFT_GENERATED))?
        != ffi::read(&root.join(ffi::SWIFT_IN_IOS))?
    {
        return Err(format!(
            "{} is stale: run `cargo xtask bindings` and commit the result",
            ffi::SWIFT_IN_IOS
        ));
    }
    stage(&lib, &generated.join("swift"), &toolchain)?;

    let mounts = toolchain.enter()?;
    let result: Result = (|| {
        for mode in ["5", "6"] {
            let t = Instant::now();
            toolchain.swift(&["build", "--build-tests"], mode)?;
            toolchain.swift(&["test", "--skip-build"], mode)?;
            eprintln!(
                "test-swift: Swift {mode} language mode: built and tested in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        let t = Instant::now();
        toolchain.consumer()?;
        eprintln!(
            "test-swift: a package depending on this one by path built and ran in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    })();
    drop(mounts);
    result?;
    eprintln!(
        "\ntest-swift: all green in {:.1} s (toolchain {:.1} s)",
        t0.elapsed().as_secs_f64(),
        t_toolchain.as_secs_f64()
    );
    Ok(())
}

enum Toolchain {
    /// `swift` on PATH.
    Host { lib_dir: PathBuf },
    /// The Debian root at this path.
    Root(PathBuf),
}

impl Toolchain {
    fn describe(&self) -> String {
        match self {
            Toolchain::Host { .. } => "swift on PATH".into(),
            Toolchain::Root(r) => format!("Debian {SUITE} root in {}", r.display()),
        }
    }

    /// Where the library goes so the linker and the test binary find it.
    fn lib_dir(&self) -> PathBuf {
        match self {
            Toolchain::Host { lib_dir } => lib_dir.clone(),
            Toolchain::Root(r) => r.join(LIB_IN_ROOT),
        }
    }

    /// The library's directory as the toolchain sees it.
    fn lib_dir_seen(&self) -> PathBuf {
        match self {
            Toolchain::Host { lib_dir } => lib_dir.clone(),
            Toolchain::Root(_) => Path::new("/").join(LIB_IN_ROOT),
        }
    }

    fn enter(&self) -> Result<Mounts> {
        match self {
            Toolchain::Host { .. } => Ok(Mounts::default()),
            Toolchain::Root(r) => {
                let mut m = Mounts::default();
                m.proc(r)?;
                m.bind_read_only(&sh::root(), &r.join(WORKSPACE_IN_ROOT))?;
                Ok(m)
            }
        }
    }

    /// `swift <args>` on the package, in language mode `mode`.
    fn swift(&self, args: &[&str], mode: &str) -> Result {
        let package = match self {
            Toolchain::Host { .. } => sh::root(),
            Toolchain::Root(_) => Path::new("/").join(WORKSPACE_IN_ROOT),
        };
        self.swift_in(args, mode, &package, &format!("swift{mode}"))
    }

    /// `swift <args>` on the package at `package` (as the toolchain sees it), with SwiftPM's
    /// build directory `scratch` (kept between runs).
    fn swift_in(&self, args: &[&str], mode: &str, package: &Path, scratch: &str) -> Result {
        let lib = self.lib_dir_seen();
        let mut swift_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        swift_args.extend(
            [
                "-Xswiftc",
                "-swift-version",
                "-Xswiftc",
                mode,
                "-Xlinker",
                "-L",
                "-Xlinker",
            ]
            .map(String::from),
        );
        swift_args.push(lib.display().to_string());
        match self {
            Toolchain::Host { .. } => sh::run(
                Command::new("timeout")
                    .args(TIMEOUT)
                    .arg("swift")
                    .args(&swift_args)
                    .arg("--scratch-path")
                    .arg(target_dir().join("swift-build").join(scratch))
                    .arg("--package-path")
                    .arg(package)
                    .env("LD_LIBRARY_PATH", &lib),
            ),
            Toolchain::Root(r) => {
                let mut c = Command::new("chroot");
                c.arg(r)
                    .args(["/usr/bin/env", "-i"])
                    .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .arg("HOME=/root")
                    .arg(format!("LD_LIBRARY_PATH={}", lib.display()))
                    .arg(format!("CI={}", std::env::var("CI").unwrap_or_default()))
                    .arg("timeout")
                    .args(TIMEOUT)
                    .arg("swift")
                    .args(&swift_args)
                    .arg("--scratch-path")
                    .arg(Path::new("/").join(SCRATCH_IN_ROOT).join(scratch))
                    .arg("--package-path")
                    .arg(package);
                sh::run(&mut c)
            }
        }
    }

    /// An app's package that depends on this one by path (`.package(path:)`) and uses the
    /// `Braid` product: it must resolve, build and run.
    fn consumer(&self) -> Result {
        let (dir, seen, braid) = match self {
            Toolchain::Host { .. } => {
                let d = target_dir().join("swift-consumer");
                (d.clone(), d, sh::root())
            }
            Toolchain::Root(r) => (
                r.join(SCRATCH_IN_ROOT).join("consumer"),
                Path::new("/").join(SCRATCH_IN_ROOT).join("consumer"),
                Path::new("/").join(WORKSPACE_IN_ROOT),
            ),
        };
        // SwiftPM names a path dependency after its directory.
        let identity = braid
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .ok_or("the workspace path has no name")?;
        let manifest = format!(
            "// swift-tools-version:5.10\n\
             import PackageDescription\n\
             let package = Package(\n\
             \x20   name: \"BraidConsumer\",\n\
             \x20   dependencies: [.package(path: \"{}\")],\n\
             \x20   targets: [.executableTarget(name: \"BraidConsumer\", \
             dependencies: [.product(name: \"Braid\", package: \"{identity}\")])]\n\
             )\n",
            braid.display()
        );
        let main = "import Braid\n\
                    // What an app does first: make a client (its interfaces follow the default route).\n\
                    let client = try BraidClient(config: .defaults(.handover))\n\
                    print(\"consumer: Braid \\(BraidLog.version), \\(client.interfaces.count) interface(s)\")\n";
        write_if_changed(&dir.join("Package.swift"), &manifest)?;
        write_if_changed(&dir.join("Sources/BraidConsumer/main.swift"), main)?;
        self.swift_in(&["run"], "6", &seen, "consumer")
    }
}

fn write_if_changed(p: &Path, content: &str) -> Result {
    if fs::read_to_string(p).ok().as_deref() == Some(content) {
        return Ok(());
    }
    if let Some(d) = p.parent() {
        mkdir(d)?;
    }
    fs::write(p, content).map_err(|e| format!("cannot write {}: {e}", p.display()))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A usable toolchain, or `None` (after a loud message) when there is none and this is
/// not CI.
fn toolchain() -> Result<Option<Toolchain>> {
    if let Some(v) = host_swift_major()
        && v >= 6
    {
        return Ok(Some(Toolchain::Host {
            lib_dir: target_dir().join("swift-lib"),
        }));
    }
    if std::env::consts::OS != "linux" || !sh::is_root() {
        let why = format!(
            "no swift >= 6 on PATH, and making a Debian {SUITE} root with it needs Linux and root"
        );
        if in_ci() {
            return Err(format!(
                "test-swift: {why} (CI=true: a missing toolchain is a failure)"
            ));
        }
        eprintln!("\n!!! test-swift: SKIPPED: {why}\n");
        return Ok(None);
    }
    let root = target_dir().join("swift-root");
    if !ready(&root) {
        provision(&root)?;
    }
    Ok(Some(Toolchain::Root(root)))
}

fn host_swift_major() -> Option<u32> {
    let o = Command::new("swift").arg("--version").output().ok()?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    swift_major(&text)
}

/// The major version in `swift --version` output ("... Swift version 6.0.3 (...)").
fn swift_major(text: &str) -> Option<u32> {
    let rest = &text[text.find("Swift version ")? + "Swift version ".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn ready_marker() -> String {
    format!("{SUITE}: {}\n", PACKAGES.join(" "))
}

fn ready(root: &Path) -> bool {
    fs::read_to_string(root.join(READY)).is_ok_and(|s| s == ready_marker())
        // A symlink into the root's own /usr/libexec: not followed from out here.
        && fs::symlink_metadata(root.join("usr/bin/swift")).is_ok()
}

/// Builds the root in `<root>.partial` and renames it into place once complete, so an
/// interrupted build is never taken for a finished one.
fn provision(root: &Path) -> Result {
    let t0 = Instant::now();
    let partial = root.with_extension("partial");
    for dir in [root, partial.as_path()] {
        if dir.exists() {
            // A bind mount left by a killed run would make removing the directory delete
            // what is mounted there.
            unmount_below(dir)?;
            fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        }
    }
    crate::deps::install_apt(&[("debootstrap", "debootstrap")])?;
    if !sh::have("debootstrap") {
        return Err("debootstrap is missing (Debian package debootstrap)".into());
    }
    let mirror = std::env::var("BRAID_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
    eprintln!("test-swift: making a Debian {SUITE} root with Swift (about 450 MB, once)");
    sh::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", SUITE])
            .arg(&partial)
            .arg(&mirror),
    )?;
    let mut mounts = Mounts::default();
    mounts.proc(&partial)?;
    sh::run(
        Command::new("chroot")
            .arg(&partial)
            .args(["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive"])
            .args(["apt-get", "-qq", "update"]),
    )?;
    sh::run(
        Command::new("chroot")
            .arg(&partial)
            .args(["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive"])
            .args(["apt-get", "-qq", "install", "-y", "--no-install-recommends"])
            .args(PACKAGES),
    )?;
    sh::run(
        Command::new("chroot")
            .arg(&partial)
            .args(["apt-get", "clean"]),
    )?;
    drop(mounts);
    fs::write(partial.join(READY), ready_marker())
        .map_err(|e| format!("cannot write {}: {e}", partial.join(READY).display()))?;
    fs::rename(&partial, root).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            root.display()
        )
    })?;
    eprintln!(
        "test-swift: Debian {SUITE} root with Swift made in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Puts what the Linux targets of Package.swift need in place: the C headers next to the
/// committed module map, the generated test-network Swift, and the library.
fn stage(lib: &Path, swift_out: &Path, toolchain: &Toolchain) -> Result {
    let root = sh::root();
    let ffi_dir = root.join(LINUX_FFI_DIR);
    let headers: Vec<PathBuf> = fs::read_dir(swift_out)
        .map_err(|e| format!("cannot list {}: {e}", swift_out.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .collect();
    for h in ["braid_ffiFFI.h", "BraidTestingFFI.h"] {
        if !headers.iter().any(|p| p.ends_with(h)) {
            return Err(format!(
                "the generator made no {h} in {} (module map {LINUX_FFI_DIR}/module.modulemap expects it)",
                swift_out.display()
            ));
        }
    }
    for h in &headers {
        copy_if_changed(h, &ffi_dir.join(h.file_name().unwrap_or_default()))?;
    }
    copy_if_changed(
        &swift_out.join(format!("{TESTING_MODULE}.swift")),
        &root
            .join(LINUX_TESTING_DIR)
            .join(format!("{TESTING_MODULE}.swift")),
    )?;
    let lib_dir = toolchain.lib_dir();
    copy_if_changed(lib, &lib_dir.join(lib.file_name().unwrap_or_default()))
}

/// Leaves the file (and its time stamp) alone when the content is the same, so SwiftPM
/// does not rebuild what depends on it.
fn copy_if_changed(from: &Path, to: &Path) -> Result {
    let new = fs::read(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if fs::read(to).ok().as_deref() == Some(&new[..]) {
        return Ok(());
    }
    ffi::copy(from, to)
}

/// Mounts made for one run; dropping unmounts them, newest first.
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn proc(&mut self, root: &Path) -> Result {
        let at = root.join("proc");
        if mounted_below(&at).contains(&at) {
            return Ok(());
        }
        mkdir(&at)?;
        sh::run(Command::new("mount").args(["-t", "proc", "proc"]).arg(&at))?;
        self.0.push(at);
        Ok(())
    }

    /// Read-only, so nothing run inside can change the workspace (and removing the root
    /// while it is mounted cannot delete it).
    fn bind_read_only(&mut self, from: &Path, at: &Path) -> Result {
        if mounted_below(at).contains(&at.to_path_buf()) {
            unmount(at)?;
        }
        mkdir(at)?;
        sh::run(Command::new("mount").arg("--bind").arg(from).arg(at))?;
        self.0.push(at.to_path_buf());
        sh::run(
            Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(at),
        )
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        while let Some(at) = self.0.pop() {
            if let Err(e) = unmount(&at) {
                eprintln!("test-swift: {e}");
            }
        }
    }
}

fn unmount(at: &Path) -> Result {
    let ok = Command::new("umount")
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    // Busy (a process of a killed run still inside): detach it now, freed when unused.
    if ok
        || Command::new("umount")
            .arg("-l")
            .arg(at)
            .status()
            .is_ok_and(|s| s.success())
    {
        Ok(())
    } else {
        Err(format!("cannot unmount {}", at.display()))
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounted_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let table = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/self/mounts escapes spaces and the like as octal.
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

fn unmount_below(dir: &Path) -> Result {
    for m in mounted_below(dir) {
        unmount(&m)?;
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result {
    fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn swift_version_is_read_from_the_banner() {
        assert_eq!(
            super::swift_major("Swift version 6.0.3 (swift-6.0.3-RELEASE)\nTarget: x86_64"),
            Some(6)
        );
        assert_eq!(
            super::swift_major("Apple Swift version 5.10 (swiftlang-5.10.0.13)"),
            Some(5)
        );
        assert_eq!(super::swift_major("command not found"), None);
    }
}
