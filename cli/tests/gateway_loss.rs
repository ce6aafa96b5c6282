//! A gateway that dies mid-connection (SIGKILL: no reset, no FIN, just silence) must make
//! `braid connect` fail with an error, and soon, not hang.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn killing_the_gateway_makes_connect_exit_non_zero_within_35_s() {
    let echo = tcp_echo();
    let mut gw = gateway(&[echo.to_string()]);
    let mut child = braid()
        .args([
            "connect",
            &gw.addr.to_string(),
            "--target",
            &echo.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn braid connect");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(n).is_err() {
                return;
            }
        }
    });
    // The session works: a line goes through the gateway and comes back.
    stdin.write_all(b"before\n").unwrap();
    stdin.flush().unwrap();
    let got = rx.recv_timeout(Duration::from_secs(15));
    assert!(got.is_ok(), "no echo through the gateway before killing it");

    gw.child.kill().expect("kill the gateway");
    let _ = gw.child.wait();
    let killed = Instant::now();
    // The application keeps writing, as a live session would; stdin stays open.
    let writer = std::thread::spawn(move || {
        while killed.elapsed() < Duration::from_secs(45) {
            if stdin
                .write_all(b"after\n")
                .and_then(|_| stdin.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if killed.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = killed.elapsed();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = writer.join();
    eprintln!("braid connect after the gateway died: {status:?} after {took:?}; stderr:\n{err}");
    let status = status.unwrap_or_else(|| {
        panic!("braid connect still running 40 s after the gateway died; stderr:\n{err}")
    });
    assert!(
        !status.success(),
        "braid connect exited with success after losing its gateway"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        took <= Duration::from_secs(35),
        "braid connect took {took:?} to give up on a dead gateway"
    );
}
