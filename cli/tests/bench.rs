//! `braid bench`: loopback with JSON output, and server + client as two processes.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

fn check_json(stdout: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    assert!(v["goodput_mbps"].as_f64().unwrap() > 0.0, "{v}");
    v
}

#[test]
fn loopback_json() {
    let out = run(
        &["bench", "loopback", "--seconds", "2", "--json"],
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v = check_json(&text(&out.stdout));
    for dir in ["up", "down"] {
        let d = &v[dir];
        assert!(d["bytes"].as_u64().unwrap() > 0, "{dir}: {d}");
        assert!(d["goodput_mbps"].as_f64().unwrap() > 0.0);
        let t = d["samples"]["t_ms"].as_array().unwrap();
        let b = d["samples"]["bytes"].as_array().unwrap();
        assert_eq!(t.len(), b.len());
        assert!(t.len() >= 150, "{dir}: {} samples", t.len());
        assert_eq!(b.last().unwrap().as_u64(), d["bytes"].as_u64());
        assert!(d["per_second_mbps"].as_array().unwrap().len() >= 2);
        assert!(d["longest_stall_ms"].as_f64().is_some());
    }
    assert!(!v["paths"].as_array().unwrap().is_empty());
}

#[test]
fn loopback_two_emulated_paths_first_one_fails() {
    let out = run(
        &[
            "bench",
            "loopback",
            "--seconds",
            "3",
            "--emulate",
            "wifi,cell",
            "--fail-at",
            "1",
            "--policy",
            "handover",
            "--direction",
            "down",
            "--json",
        ],
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v = check_json(&text(&out.stdout));
    assert!(v["up"].is_null());
    let wire = v["setup"]["wire"].as_array().unwrap();
    assert_eq!(wire.len(), 2);
    assert!(
        wire.iter().all(|w| w["down_bytes"].as_u64().unwrap() > 0),
        "{wire:?}"
    );
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e.contains("first path fails")),
        "{events:?}"
    );
}

/// Kills the child on drop (a failing assertion must not leave a server behind).
struct Kill(Option<std::process::Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn server_and_client_processes() {
    let mut server = Kill(Some(
        braid()
            .args(["bench", "server", "--listen", "127.0.0.1:0", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let mut err = BufReader::new(server.0.as_mut().unwrap().stderr.take().unwrap());
    // "... bench server on udp 127.0.0.1:PORT"
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let listen = first
        .split("bench server on udp ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line from the server: {first}"))
        .trim()
        .to_string();
    let out = run(
        &[
            "bench",
            "client",
            &listen,
            "--seconds",
            "1",
            "--direction",
            "up",
        ],
        b"",
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("upload"), "{stdout}");
    assert!(!stdout.contains("download "), "{stdout}");
    // With --once the server exits by itself after the test.
    let s = wait_limited(server.0.take().unwrap(), Duration::from_secs(20));
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(s.status.success(), "server: {rest}");
    assert!(rest.contains("up: received"), "{rest}");
}

#[test]
fn loopback_echo_reports_latencies_and_a_path_timeline() {
    let out = run(
        &[
            "bench",
            "loopback",
            "--seconds",
            "1.5",
            "--emulate",
            "wifi,cell",
            "--policy",
            "interactive",
            "--direction",
            "echo",
            "--request-bytes",
            "100",
            "--rate",
            "20",
            "--json",
        ],
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let e = &v["echo"];
    let requests = e["requests"].as_u64().unwrap();
    assert!((25..=32).contains(&requests), "{e}");
    assert_eq!(e["replies"].as_u64().unwrap(), requests, "{e}");
    // WiFi's RTT is 20 ms: a 100-byte reply comes back in about that.
    let p50 = e["p50_ms"].as_f64().unwrap();
    assert!((15.0..200.0).contains(&p50), "{e}");
    assert_eq!(
        e["latency_ms"].as_array().unwrap().len() as u64,
        requests,
        "{e}"
    );
    assert!(v["up"].is_null() && v["down"].is_null(), "{v}");
    assert!(v["start_monotonic_ns"].as_u64().unwrap() > 0);
    let tl = &v["path_timeline"];
    let t = tl["t_ms"].as_array().unwrap();
    assert!(t.len() >= 10, "{tl}");
    let wifi = &tl["by_kind"]["wifi"];
    assert_eq!(wifi["sent"].as_array().unwrap().len(), t.len(), "{tl}");
    assert!(wifi["sent"].as_array().unwrap().last().unwrap().as_u64() > Some(0));
}

#[test]
fn bench_server_takes_a_carrier() {
    let out = run(&["bench", "server", "--help"], b"", Duration::from_secs(20));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--carrier"));
    let out = run(
        &[
            "bench",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--carrier",
            "pigeon",
        ],
        b"",
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("pigeon"), "{err}");
}
