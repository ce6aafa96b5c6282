//! `braid connect` follows rtnetlink: a veth interface it was given loses its carrier, gets
//! it back, loses its address, gets one back; each change is reported (and handed to the
//! client as interface lost/available) while the connection goes on over loopback.
//!
//! Needs root (creates a veth pair). Skips with a message otherwise; with CI=true a missing
//! root is a failure.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the veth pair on drop.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no line with {needle:?}; stderr so far:\n{}",
        seen.join("\n")
    );
}

#[test]
fn connect_follows_link_and_address_changes() {
    if !is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("this test needs root, and CI runs as root");
        }
        // Straight to the stderr handle: the test harness captures `eprintln!`, not this.
        let _ = std::io::stderr().write_all(
            b"\n*** SKIPPED: connect_follows_link_and_address_changes: needs root (veth pair) ***\n\n",
        );
        return;
    }
    let a = format!("brc{}a", std::process::id() % 100_000);
    let b = format!("brc{}b", std::process::id() % 100_000);
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    let _guard = Veth(a.clone());
    ip(&["addr", "add", "198.18.77.1/32", "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", &b, "up"]);

    let echo = tcp_echo();
    let gw = gateway(&[echo.to_string()]);
    let (mut child, rx) = spawn_logged(
        braid()
            .args([
                "connect",
                &gw.addr.to_string(),
                "--target",
                &echo.to_string(),
                "--interface",
                "lo:wired",
                "--interface",
                &format!("{a}:cellular"),
                "--stats",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    wait_for(&rx, "connected to", &mut seen);
    // The initial dump must not report anything for a healthy interface.
    std::thread::sleep(Duration::from_millis(300));

    ip(&["link", "set", &b, "down"]); // carrier lost on `a`
    wait_for(&rx, &format!("interface {a} lost (link down)"), &mut seen);
    ip(&["link", "set", &b, "up"]);
    wait_for(&rx, &format!("interface {a} available"), &mut seen);
    ip(&["addr", "del", "198.18.77.1/32", "dev", &a]);
    wait_for(&rx, &format!("interface {a} lost (no address)"), &mut seen);
    ip(&["addr", "add", "198.18.77.2/32", "dev", &a]);
    wait_for(&rx, &format!("interface {a} available"), &mut seen);

    stdin.write_all(b"ping\n").unwrap();
    drop(stdin);
    let out = wait_limited(child, Duration::from_secs(20));
    assert!(out.status.success(), "status {:?}", out.status);
    assert_eq!(text(&out.stdout), "ping\n");
    let lost = seen.iter().filter(|l| l.contains(" lost (")).count();
    assert_eq!(lost, 2, "each change reported once:\n{}", seen.join("\n"));
}
