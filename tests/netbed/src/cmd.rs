//! Running the kernel's configuration tools (`ip`) and checking that they are installed.
//!
//! Every failure becomes an `io::Error` whose message names the command line that failed and
//! carries its stderr, so a broken testbed says what went wrong.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Runs `program args…` and returns its stdout; an error names the command and its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> io::Result<String> {
    let line = command_line(program, args);
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{line}`: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(io::Error::other(format!(
            "`{line}` failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS…` in the initial namespace.
pub(crate) fn ip(args: &[&str]) -> io::Result<String> {
    run("ip", args)
}

/// `ip -n NS ARGS…`: the command acts on namespace `ns`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> io::Result<String> {
    let mut all = Vec::with_capacity(args.len() + 2);
    all.extend_from_slice(&["-n", ns]);
    all.extend_from_slice(args);
    run("ip", &all)
}

fn command_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

fn in_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
        || ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file())
}

/// Checks, once per process, that everything the testbed needs is present: `ip` from iproute2
/// with `ip mptcp`, `/dev/net/tun`, a kernel with MPTCP and network namespaces. The error lists
/// every missing piece with the way to get it.
pub fn check_prerequisites() -> io::Result<()> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let mut missing = Vec::new();
            if !in_path("ip") {
                missing.push("`ip` (apt-get install iproute2)".to_string());
            } else if run("ip", &["mptcp", "limits", "show"]).is_err() {
                missing.push("`ip mptcp` (iproute2 >= 5.8: apt-get install iproute2)".to_string());
            }
            if !Path::new("/dev/net/tun").exists() {
                missing.push("/dev/net/tun (modprobe tun)".to_string());
            }
            if !Path::new("/proc/sys/net/mptcp/enabled").exists() {
                missing.push("kernel MPTCP (CONFIG_MPTCP, /proc/sys/net/mptcp)".to_string());
            }
            if !Path::new("/proc/self/ns/net").exists() {
                missing.push("network namespaces (CONFIG_NET_NS)".to_string());
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("braid-netbed: missing {}", missing.join(", ")))
            }
        })
        .clone()
        .map_err(|msg| io::Error::new(io::ErrorKind::NotFound, msg))
}

/// True when the process runs with effective uid 0 (read from /proc, no libc call needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Uid: real effective saved filesystem
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// For root-only tests: returns true when the test may run. When the process is not root it
/// prints a loud SKIPPED line and returns false, unless `CI=true`, where it panics: CI runs
/// as root, so a skip there would hide a broken setup.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: needs root (network namespaces), and CI=true: not running as root is a failure"
        );
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`, not this.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n*** SKIPPED: {test}: needs root (network namespaces) ***\n\n").as_bytes(),
    );
    false
}
