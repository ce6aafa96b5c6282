//! `braid connect` through a `braid gateway`, like netcat.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn echo_through_the_gateway() {
    let echo = tcp_echo();
    let gw = gateway(&[echo.to_string()]);
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            &echo.to_string(),
            "--connect-timeout",
            "5",
        ],
        b"hello\n",
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "hello\n");
    // The gateway logs the relayed connection in one line.
    let l = gw
        .wait_line("finished", Duration::from_secs(5))
        .expect("no log line for the connection");
    assert!(l.contains(&echo.to_string()), "{l}");
}

#[test]
fn a_megabyte_each_way_with_stats() {
    let echo = tcp_echo();
    let gw = gateway(&[format!("{}:{}", echo.ip(), echo.port())]);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            &echo.to_string(),
            "--stats",
            "--policy",
            "aggregate",
        ],
        &data,
        Duration::from_secs(30),
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "stderr: {err}");
    assert!(
        out.stdout == data,
        "echoed data differs ({} B back)",
        out.stdout.len()
    );
    assert!(err.contains("connected to"), "{err}");
    assert!(err.contains("done after"), "{err}");
}

#[test]
fn a_target_outside_the_allowlist_is_refused() {
    let echo = tcp_echo();
    let other = tcp_echo();
    let gw = gateway(&[echo.to_string()]);
    let out = run(
        &[
            "connect",
            &gw.addr.to_string(),
            "--target",
            &other.to_string(),
        ],
        b"hello\n",
        Duration::from_secs(20),
    );
    let line = assert_one_line_error(&out, "target not allowed");
    assert!(line.contains("not allowed"), "{line}");
    assert!(out.stdout.is_empty());
    assert!(gw.wait_line("refused", Duration::from_secs(5)).is_some());
}
