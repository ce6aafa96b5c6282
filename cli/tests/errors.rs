//! Every error is one line on stderr and a non-zero exit, never a panic.

mod common;

use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn unknown_interface() {
    let out = run(
        &[
            "connect",
            "127.0.0.1:9",
            "--interface",
            "nosuch0",
            "--target",
            "127.0.0.1:1",
        ],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "unknown interface");
    assert!(l.contains("nosuch0"), "{l}");
}

#[test]
fn address_in_use() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &["gateway", "--listen", &addr, "--allow", "127.0.0.1:80"],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "address in use");
    assert!(l.contains("address already in use"), "{l}");
    assert!(l.contains(&addr), "{l}");
}

#[test]
fn gateway_unreachable() {
    let port = free_udp_port();
    let remote = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    let out = run(
        &[
            "connect",
            &remote,
            "--target",
            "127.0.0.1:80",
            "--connect-timeout",
            "1",
        ],
        b"hello\n",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "gateway unreachable");
    assert!(l.contains(&remote), "{l}");
    assert!(l.contains("no answer"), "{l}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Runs braid without any capability: as root, through `setpriv` with an empty bounding set,
/// so the exec'd program has none either.
fn run_unprivileged(args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return run(args, b"", LIMIT);
    }
    let child = std::process::Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    wait_limited(child, LIMIT)
}

#[test]
fn raw_carrier_without_privilege_says_what_is_needed() {
    for (what, args) in [
        (
            "raw gateway",
            &["gateway", "--listen", "127.0.0.1:0", "--carrier", "raw"][..],
        ),
        (
            "raw connect",
            &["connect", "127.0.0.1:9", "--carrier", "raw"][..],
        ),
    ] {
        let out = run_unprivileged(args);
        let l = assert_one_line_error(&out, what);
        assert!(l.contains("CAP_NET_RAW"), "{what}: {l}");
        assert!(l.contains("run as root"), "{what}: {l}");
    }
}

#[test]
fn bad_command_lines() {
    for args in [
        &["connect"][..],
        &["connect", "127.0.0.1:9", "--policy", "fastest"],
        &["connect", "nohostport"],
        &["connect", "127.0.0.1:9", "--interface", "eth0:radio"],
        &["connect", "127.0.0.1:9", "--connect-timeout", "-1"],
        &["gateway", "--listen", "not-an-address"],
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--allow",
            "10.0.0.0/99:80",
        ],
        // An announced address no client can reach, and a bind without an announcement.
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--announce",
            "0.0.0.0:7001",
        ],
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--announce-bind",
            "0.0.0.0",
        ],
        &["demo", "--seconds", "zero"],
        &["bench", "loopback", "--emulate", "carrier-pigeon"],
        &["frobnicate"],
        &["--log", "loud", "demo"],
    ] {
        let out = run(args, b"", LIMIT);
        assert_one_line_error(&out, &format!("{args:?}"));
    }
}

#[test]
fn unresolvable_host() {
    let out = run(
        &[
            "connect",
            "no-such-host.invalid:7000",
            "--connect-timeout",
            "1",
        ],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "unresolvable host");
    assert!(l.contains("no-such-host.invalid"), "{l}");
}
