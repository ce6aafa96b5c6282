//! Gateway access control from the command line: client tokens, the allowlist's special
//! ranges, and clear one-line errors for bad token files and --allow entries.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// A file in a fresh temporary directory.
fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "braid-cli-{}-{}",
        std::process::id(),
        name.replace(['/', ' '], "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("file");
    std::fs::write(&f, contents).unwrap();
    f
}

fn connect(gw: &GatewayProc, target: &str, extra: &[&str]) -> std::process::Output {
    let gw = gw.addr.to_string();
    let mut args = vec!["connect", &gw, "--target", target, "--connect-timeout", "5"];
    args.extend_from_slice(extra);
    run(&args, b"hello\n", LIMIT)
}

#[test]
fn tokens_through_the_cli() {
    let echo = tcp_echo();
    let secrets = temp_file(
        "tokens",
        b"# clients\n\nfirst-secret-00001\nsecond-secret-0002\n",
    );
    let gw = gateway_with(
        &[echo.to_string()],
        &["--token-file", secrets.to_str().unwrap()],
    );
    let target = echo.to_string();

    let out = connect(&gw, &target, &[]);
    let l = assert_one_line_error(&out, "no token");
    assert!(l.contains("requires a client token"), "{l}");
    assert!(l.contains("--token"), "{l}");

    let out = connect(&gw, &target, &["--token", "third-secret-0003"]);
    let l = assert_one_line_error(&out, "wrong token");
    assert!(l.contains("refused the client token"), "{l}");

    let out = connect(&gw, &target, &["--token", "second-secret-0002"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");

    // The same secret from a file (first token line).
    let mine = temp_file("client-token", b"# mine\nfirst-secret-00001\n");
    let out = connect(&gw, &target, &["--token-file", mine.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");

    // The refusals were logged, one line per kind and source.
    assert!(gw.wait_line("no client token", LIMIT).is_some());
    assert!(gw.wait_line("wrong client token", LIMIT).is_some());
}

#[test]
fn a_wildcard_does_not_reach_loopback() {
    let echo = tcp_echo();
    let gw = gateway(&["*:*".to_string()]);
    let out = connect(&gw, &echo.to_string(), &[]);
    let l = assert_one_line_error(&out, "loopback through *:*");
    assert!(l.contains("not allowed"), "{l}");
    let gw = gateway(&[format!("127.0.0.1:{}", echo.port())]);
    let out = connect(&gw, &echo.to_string(), &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}

#[test]
fn bad_token_files_are_one_line_errors() {
    let empty = temp_file("empty", b"# only a comment\n\n   \n");
    let binary = temp_file("binary", &[0xff, 0xfe, 0x00, b'\n']);
    let missing = std::env::temp_dir().join("braid-no-such-token-file");
    let dir = std::env::temp_dir();
    for (file, says) in [
        (missing.to_str().unwrap(), "no such file"),
        (empty.to_str().unwrap(), "holds no token"),
        (binary.to_str().unwrap(), "not UTF-8"),
        (dir.to_str().unwrap(), "directory"),
    ] {
        let out = run(
            &[
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--allow",
                "127.0.0.1:80",
                "--token-file",
                file,
            ],
            b"",
            LIMIT,
        );
        let l = assert_one_line_error(&out, file);
        assert!(l.contains("token file") && l.contains(file), "{l}");
        assert!(l.contains(says), "{says}: {l}");
        assert_eq!(out.status.code(), Some(2), "{l}");
    }
    // The client's side of the same.
    let out = run(
        &[
            "connect",
            "127.0.0.1:9",
            "--target",
            "127.0.0.1:80",
            "--token-file",
            empty.to_str().unwrap(),
        ],
        b"",
        LIMIT,
    );
    let l = assert_one_line_error(&out, "empty client token file");
    assert!(l.contains("holds no token"), "{l}");
}

#[test]
fn bad_allow_entries_and_limits_are_one_line_errors() {
    for (entry, says) in [
        ("nohostport", "expected HOST_OR_CIDR:PORT"),
        ("10.0.0.0/99:80", "prefix length too long"),
        (":80", "no host"),
        ("1.2.3.4:99999", "bad port"),
        ("no-such-host.invalid:80", "cannot resolve"),
    ] {
        let out = run(
            &["gateway", "--listen", "127.0.0.1:0", "--allow", entry],
            b"",
            LIMIT,
        );
        let l = assert_one_line_error(&out, entry);
        assert!(l.contains(says), "{entry}: {l}");
    }
    for args in [
        &["--max-half-open-per-source", "0"][..],
        &["--convert-timeout", "0"],
        &["--idle-timeout", "soon"],
        &["--resolve-every", "-5"],
    ] {
        let mut all = vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--allow",
            "127.0.0.1:80",
        ];
        all.extend_from_slice(args);
        let out = run(&all, b"", LIMIT);
        assert_one_line_error(&out, &format!("{args:?}"));
    }
    // A token makes sense only through a gateway.
    let out = run(&["connect", "127.0.0.1:9", "--token", "x"], b"", LIMIT);
    assert_one_line_error(&out, "--token without --target");
}
