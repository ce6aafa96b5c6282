//! `cargo xtask apple` and `release-apple`: the XCFramework for the Swift package (root
//! Package.swift), and a release of it: zipped, with URL and checksum written into the
//! manifest. Building needs macOS with Xcode; checking a zip and writing the manifest do not.

use crate::ffi::{self, target_dir};
use crate::sh::{self, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Device, simulators (Apple silicon and Intel Macs) and macOS (for `swift test`).
const DEVICE: &str = "aarch64-apple-ios";
const SIMULATOR: [&str; 2] = ["aarch64-apple-ios-sim", "x86_64-apple-ios"];
const MACOS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];
/// Named after the binary target in Package.swift (SwiftPM looks for that name in the zip).
const XCFRAMEWORK: &str = "braid_ffiFFI.xcframework";

/// Must match `platforms:` in Package.swift.
const IOS_MIN: &str = "15.0";
const MACOS_MIN: &str = "12.0";
/// The C module's own folder inside each slice's Headers: a module.modulemap at the root of
/// Headers collides with any other XCFramework that does the same ("Multiple commands
/// produce .../module.modulemap").
const HEADERS_SUBDIR: &str = ffi::SWIFT_FFI_MODULE;
/// The line of Package.swift that `release-apple` rewrites.
const RELEASE_LINE: &str = "let release: (url: String, checksum: String)? =";

/// `cargo xtask apple`: the XCFramework in target/apple and ios/Frameworks (which a
/// checkout's Package.swift uses when present).
pub fn run(args: &[String]) -> Result {
    if let Some(a) = args.first() {
        return Err(format!("`apple` takes no arguments (got '{a}')"));
    }
    let xcf = build_xcframework()?;
    let root = sh::root();
    let local = root.join("ios/Frameworks").join(XCFRAMEWORK);
    let _ = fs::remove_dir_all(&local);
    mkdir(&root.join("ios/Frameworks"))?;
    sh::run(Command::new("cp").arg("-R").arg(&xcf).arg(&local))?;
    eprintln!(
        "\napple: {}; local copy in ios/Frameworks (Package.swift uses it)",
        xcf.display()
    );
    Ok(())
}

fn build_xcframework() -> Result<PathBuf> {
    toolchain()?;
    let root = sh::root();
    let out = target_dir().join("apple");
    let _ = fs::remove_dir_all(&out);
    mkdir(&out)?;

    // Header and module map come from the generator (a host build keeps the metadata).
    let lib = ffi::build_host_library(false)?;
    ffi::generate(&lib, &target_dir().join("bindings"))?;
    let headers = out.join("include");
    let module_dir = headers.join(HEADERS_SUBDIR);
    mkdir(&module_dir)?;
    let generated = target_dir().join("bindings/swift");
    for f in [
        format!("{}.h", ffi::SWIFT_FFI_MODULE),
        "module.modulemap".into(),
    ] {
        ffi::copy(&generated.join(&f), &module_dir.join(&f))?;
    }
    ffi::copy(
        &generated.join("BraidFFI.swift"),
        &root.join(ffi::SWIFT_IN_IOS),
    )?;

    let all: Vec<&str> = [DEVICE].into_iter().chain(SIMULATOR).chain(MACOS).collect();
    if sh::have("rustup") {
        sh::run(Command::new("rustup").args(["target", "add"]).args(&all))?;
    }
    for t in &all {
        sh::run(
            sh::cargo()
                .args([
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
                ])
                .env("IPHONEOS_DEPLOYMENT_TARGET", IOS_MIN)
                .env("MACOSX_DEPLOYMENT_TARGET", MACOS_MIN),
        )?;
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
    check_layout(&relative_files(&xcf)?, "")?;
    Ok(xcf)
}

/// `cargo xtask release-apple VERSION [--base-url URL] [--zip ZIP]`: the zipped XCFramework
/// (built here, or `--zip` built elsewhere), its layout checked, its URL
/// (`<base-url>/<VERSION>/braid_ffiFFI.xcframework.zip`; the base defaults to the GitHub
/// releases of the `origin` remote) and SHA-256 checksum written into Package.swift.
pub fn release(args: &[String]) -> Result {
    let usage = "usage: cargo xtask release-apple VERSION [--base-url URL] [--zip ZIP]";
    let mut version = None;
    let mut base = None;
    let mut given_zip = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--base-url" => base = Some(it.next().ok_or(usage)?.clone()),
            "--zip" => given_zip = Some(PathBuf::from(it.next().ok_or(usage)?)),
            v if version.is_none() && !v.starts_with('-') => version = Some(v.to_string()),
            other => return Err(format!("unexpected '{other}'; {usage}")),
        }
    }
    let version = version.ok_or(usage)?;
    check_version(&version)?;
    let base = match base {
        Some(b) => b,
        None => github_releases_base()?,
    };
    let url = release_url(&base, &version)?;

    let zip = match given_zip {
        Some(z) => z,
        None => {
            let xcf = build_xcframework()?;
            let zip = target_dir().join(format!("apple/{XCFRAMEWORK}.zip"));
            let _ = fs::remove_file(&zip);
            sh::run(
                Command::new("ditto")
                    .args(["-c", "-k", "--sequesterRsrc", "--keepParent"])
                    .arg(&xcf)
                    .arg(&zip),
            )?;
            zip
        }
    };
    let bytes = fs::read(&zip).map_err(|e| format!("cannot read {}: {e}", zip.display()))?;
    check_layout(&zip_entries(&bytes)?, &format!("{XCFRAMEWORK}/"))
        .map_err(|e| format!("{}: {e}", zip.display()))?;
    let checksum = sha256_file(&zip)?;
    let package = sh::root().join("Package.swift");
    write_release(&package, &url, &checksum)?;
    eprintln!(
        "\nrelease-apple: Package.swift now points at {url} (checksum {checksum}).\n\
         Upload {} there, then commit Package.swift and tag {version}.",
        zip.display()
    );
    Ok(())
}

/// Stops with one line naming what is missing.
fn toolchain() -> Result {
    if std::env::consts::OS != "macos" {
        return Err(format!(
            "building the XCFramework needs macOS with Xcode (xcodebuild, lipo, ditto); this machine runs {} \
             (release-apple --zip ZIP takes one built elsewhere)",
            std::env::consts::OS
        ));
    }
    for tool in ["xcodebuild", "lipo", "ditto"] {
        if !sh::have(tool) {
            return Err(format!(
                "building the XCFramework needs {tool} (install Xcode and its command-line tools)"
            ));
        }
    }
    // With only the command-line tools, xcodebuild exists but refuses to run.
    let xcode = Command::new("xcodebuild")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !xcode {
        return Err(
            "xcodebuild does not work: install Xcode (not only the command-line tools) and \
             select it with `sudo xcode-select -s /Applications/Xcode.app`"
                .into(),
        );
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

/// `1.2.3` (optionally `-suffix`): SwiftPM resolves `from:` against semantic-version tags.
fn check_version(v: &str) -> Result {
    let core = v.split('-').next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "version '{v}' is not MAJOR.MINOR.PATCH (SwiftPM needs semantic-version tags)"
        ))
    }
}

fn release_url(base: &str, version: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    if !base.starts_with("https://") {
        return Err(format!(
            "release base URL '{base}' must start with https:// (SwiftPM downloads binary targets over HTTPS only)"
        ));
    }
    Ok(format!("{base}/{version}/{XCFRAMEWORK}.zip"))
}

/// `https://github.com/OWNER/REPO/releases/download` from the `origin` remote.
fn github_releases_base() -> Result<String> {
    let remote = capture(
        Command::new("git")
            .args(["remote", "get-url", "origin"])
            .current_dir(sh::root()),
    )
    .map_err(|e| format!("no --base-url given and no origin remote to derive it from ({e})"))?;
    github_base_from_remote(remote.trim()).ok_or_else(|| {
        format!(
            "origin ({}) is not a GitHub repository: pass --base-url https://host/path",
            remote.trim()
        )
    })
}

fn github_base_from_remote(remote: &str) -> Option<String> {
    let path = remote
        .strip_prefix("https://github.com/")
        .or_else(|| remote.strip_prefix("git@github.com:"))
        .or_else(|| remote.strip_prefix("ssh://git@github.com/"))?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut it = path.split('/');
    let (owner, repo) = (it.next()?, it.next()?);
    if owner.is_empty() || repo.is_empty() || it.next().is_some() {
        return None;
    }
    Some(format!(
        "https://github.com/{owner}/{repo}/releases/download"
    ))
}

/// Points the manifest's `release` at `url` with `checksum`.
fn write_release(package: &Path, url: &str, checksum: &str) -> Result {
    if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{checksum}' is not a SHA-256 checksum"));
    }
    if url.contains('"') || url.contains('\\') {
        return Err(format!("URL '{url}' cannot go into a Swift string as is"));
    }
    let src = ffi::read(package)?;
    let mut found = 0;
    let out: Vec<String> = src
        .lines()
        .map(|l| {
            if l.starts_with(RELEASE_LINE) {
                found += 1;
                format!("{RELEASE_LINE} (url: \"{url}\", checksum: \"{checksum}\")")
            } else {
                l.to_string()
            }
        })
        .collect();
    if found != 1 {
        return Err(format!(
            "{} must have exactly one line starting with `{RELEASE_LINE}` (found {found})",
            package.display()
        ));
    }
    fs::write(package, out.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", package.display()))
}

/// SwiftPM's checksum of a binary target is the SHA-256 of the zip.
fn sha256_file(p: &Path) -> Result<String> {
    let out = if sh::have("sha256sum") {
        capture(Command::new("sha256sum").arg(p))?
    } else {
        capture(Command::new("shasum").args(["-a", "256"]).arg(p))?
    };
    let sum = out.split_whitespace().next().unwrap_or("").to_string();
    if sum.len() == 64 {
        Ok(sum)
    } else {
        Err(format!("unexpected checksum output '{}'", out.trim()))
    }
}

/// Every file below `dir`, relative to it, with `/` separators.
fn relative_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(r) = p.strip_prefix(dir) {
                out.push(r.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(out)
}

/// The XCFramework's files (under `prefix`) have, in every slice, the header and module map
/// in Headers/braid_ffiFFI/ and nothing at the root of Headers that could collide.
fn check_layout(files: &[String], prefix: &str) -> Result {
    if !files.iter().any(|f| *f == format!("{prefix}Info.plist")) {
        return Err(format!("no {prefix}Info.plist: not an XCFramework"));
    }
    let mut slices = 0;
    for f in files {
        let Some(rest) = f.strip_prefix(prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() == 3 && parts[1] == "Headers" {
            return Err(format!(
                "{f} is at the root of Headers (must be in Headers/{HEADERS_SUBDIR}/)"
            ));
        }
        if parts.len() == 4
            && parts[1] == "Headers"
            && parts[2] == HEADERS_SUBDIR
            && parts[3] == "module.modulemap"
        {
            slices += 1;
            let header = format!(
                "{prefix}{}/Headers/{HEADERS_SUBDIR}/{}.h",
                parts[0],
                ffi::SWIFT_FFI_MODULE
            );
            if !files.contains(&header) {
                return Err(format!("{header} is missing"));
            }
        }
    }
    // Device, simulator and macOS.
    if slices < 3 {
        return Err(format!(
            "{slices} slices have Headers/{HEADERS_SUBDIR}/module.modulemap (expected 3)"
        ));
    }
    Ok(())
}

/// The names in a zip's central directory.
fn zip_entries(zip: &[u8]) -> Result<Vec<String>> {
    let u16_at = |i: usize| -> Option<usize> {
        Some(u16::from_le_bytes(zip.get(i..i + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(zip.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
    let eocd = (0..zip.len().saturating_sub(21))
        .rev()
        .take(22 + 65535)
        .find(|&i| zip[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or("not a zip file (no end of central directory)")?;
    let bad = || "damaged zip central directory".to_string();
    let count = u16_at(eocd + 10).ok_or_else(bad)?;
    let mut at = u32_at(eocd + 16).ok_or_else(bad)?;
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        if !zip
            .get(at..)
            .is_some_and(|s| s.starts_with(&[0x50, 0x4b, 0x01, 0x02]))
        {
            return Err(bad());
        }
        let name_len = u16_at(at + 28).ok_or_else(bad)?;
        let extra = u16_at(at + 30).ok_or_else(bad)?;
        let comment = u16_at(at + 32).ok_or_else(bad)?;
        let name = zip.get(at + 46..at + 46 + name_len).ok_or_else(bad)?;
        names.push(String::from_utf8_lossy(name).into_owned());
        at += 46 + name_len + extra + comment;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip with empty stored entries `names` (enough for the central-directory reader).
    fn zip_of(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for n in names {
            let offset = out.len() as u32;
            out.extend([0x50, 0x4b, 0x03, 0x04]);
            out.extend([0u8; 22]);
            out.extend((n.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(n.as_bytes());
            central.extend([0x50, 0x4b, 0x01, 0x02]);
            central.extend([0u8; 24]);
            central.extend((n.len() as u16).to_le_bytes());
            central.extend([0u8; 12]);
            central.extend(offset.to_le_bytes());
            central.extend(n.as_bytes());
        }
        let cd_at = out.len() as u32;
        out.extend(&central);
        out.extend([0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
        out.extend((names.len() as u16).to_le_bytes());
        out.extend((names.len() as u16).to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend(cd_at.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    fn xcframework(headers_in_subdir: bool) -> Vec<String> {
        let mut files = vec![format!("{XCFRAMEWORK}/Info.plist")];
        for slice in [
            "ios-arm64",
            "ios-arm64_x86_64-simulator",
            "macos-arm64_x86_64",
        ] {
            let h = if headers_in_subdir {
                format!("{XCFRAMEWORK}/{slice}/Headers/braid_ffiFFI/")
            } else {
                format!("{XCFRAMEWORK}/{slice}/Headers/")
            };
            files.push(format!("{h}module.modulemap"));
            files.push(format!("{h}braid_ffiFFI.h"));
            files.push(format!("{XCFRAMEWORK}/{slice}/libbraid_ffi.a"));
        }
        files
    }

    #[test]
    fn zip_layout_is_checked() {
        let prefix = format!("{XCFRAMEWORK}/");
        let good = xcframework(true);
        let names: Vec<&str> = good.iter().map(String::as_str).collect();
        let entries = zip_entries(&zip_of(&names)).unwrap();
        assert_eq!(entries, good);
        check_layout(&entries, &prefix).unwrap();

        let flat = xcframework(false);
        let e = check_layout(&flat, &prefix).unwrap_err();
        assert!(e.contains("root of Headers"), "{e}");
        let e = check_layout(&good[1..], &prefix).unwrap_err();
        assert!(e.contains("Info.plist"), "{e}");
        let no_header: Vec<String> = good
            .iter()
            .filter(|f| !f.ends_with(".h"))
            .cloned()
            .collect();
        assert!(check_layout(&no_header, &prefix).is_err());
        assert!(zip_entries(b"not a zip at all, just some bytes").is_err());
    }

    #[test]
    fn release_is_written_into_the_manifest() {
        let dir = std::env::temp_dir().join(format!("braid-xtask-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("Package.swift");
        fs::write(&p, format!("// x\n{RELEASE_LINE} nil\nlet y = 1\n")).unwrap();
        let sum = "ab".repeat(32);
        let url = release_url("https://github.com/o/braid/releases/download/", "0.1.0").unwrap();
        assert_eq!(
            url,
            "https://github.com/o/braid/releases/download/0.1.0/braid_ffiFFI.xcframework.zip"
        );
        write_release(&p, &url, &sum).unwrap();
        let s = fs::read_to_string(&p).unwrap();
        assert_eq!(
            s,
            format!("// x\n{RELEASE_LINE} (url: \"{url}\", checksum: \"{sum}\")\nlet y = 1\n")
        );
        // Again: the line is replaced, not added to.
        write_release(&p, &url, &"cd".repeat(32)).unwrap();
        assert_eq!(
            fs::read_to_string(&p)
                .unwrap()
                .matches(RELEASE_LINE)
                .count(),
            1
        );
        assert!(write_release(&p, &url, "0000").is_err());
        fs::write(&p, "no release line\n").unwrap();
        assert!(write_release(&p, &url, &sum).is_err());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_committed_manifest_has_one_release_line_and_no_fake_checksum() {
        let s = fs::read_to_string(sh::root().join("Package.swift")).unwrap();
        let lines: Vec<&str> = s.lines().filter(|l| l.starts_with(RELEASE_LINE)).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            !s.contains(&"0".repeat(64)),
            "placeholder checksum in Package.swift"
        );
    }

    #[test]
    fn versions_urls_and_remotes() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("1.2.3-beta.1").is_ok());
        assert!(check_version("v1.2.3").is_err());
        assert!(check_version("1.2").is_err());
        assert!(release_url("http://example.com", "1.0.0").is_err());
        for r in [
            "https://github.com/o/braid.git",
            "git@github.com:o/braid.git",
            "ssh://git@github.com/o/braid",
        ] {
            assert_eq!(
                github_base_from_remote(r).as_deref(),
                Some("https://github.com/o/braid/releases/download"),
                "{r}"
            );
        }
        assert_eq!(github_base_from_remote("https://gitlab.com/o/braid"), None);
    }

    #[test]
    fn checksum_is_sha256() {
        let p = std::env::temp_dir().join(format!("braid-xtask-sum-{}", std::process::id()));
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = fs::remove_file(p);
    }
}
