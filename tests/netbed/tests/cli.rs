//! The `braid-netbed` binary: up as a daemon, control it, take it down. Root only.

use std::process::{Command, Output};

use braid_netbed::{namespace_exists, root_or_skip};

fn netbed(name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid-netbed"))
        .args(["--name", name])
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "failed: {text}");
    text
}

#[test]
fn daemon_up_control_and_down() {
    if !root_or_skip("daemon_up_control_and_down") {
        return;
    }
    let name = format!("nbt{}", std::process::id());
    let (phone, server) = (format!("{name}-phone"), format!("{name}-server"));
    let up = ok(&netbed(&name, &["up", "--daemon", "--cell-delay", "5"]));
    assert!(up.contains("is up"), "{up}");
    assert!(namespace_exists(&phone) && namespace_exists(&server));

    // A second `up` refuses.
    let again = netbed(&name, &["up", "--daemon"]);
    assert!(!again.status.success());

    let status = ok(&netbed(&name, &["status"]));
    assert!(status.contains("20.0 Mbit/s, 5.0 ms"), "{status}");
    assert!(
        status.contains("10.31.2.1 id 1 subflow dev c-cell"),
        "{status}"
    );

    ok(&netbed(&name, &["linkdown", "wifi"]));
    let links = ok(&netbed(
        &name,
        &["exec", "phone", "ip", "-o", "link", "show", "dev", "c-wifi"],
    ));
    assert!(!links.contains(",UP"), "{links}");
    ok(&netbed(&name, &["linkup", "wifi"]));
    ok(&netbed(&name, &["loss", "cell", "on"]));
    assert!(ok(&netbed(&name, &["status"])).contains("silent loss"));
    ok(&netbed(&name, &["set", "wifi", "up", "rate=5", "delay=20"]));
    assert!(ok(&netbed(&name, &["status"])).contains("5.0 Mbit/s, 20.0 ms"));
    let bad = netbed(&name, &["set", "wifi", "sideways"]);
    assert!(!bad.status.success());

    // `exec` passes the exit code through.
    let code = netbed(&name, &["exec", "server", "sh", "-c", "exit 3"]);
    assert_eq!(code.status.code(), Some(3));

    ok(&netbed(&name, &["down"]));
    assert!(!namespace_exists(&phone) && !namespace_exists(&server));
    // Idempotent.
    ok(&netbed(&name, &["down"]));
}
