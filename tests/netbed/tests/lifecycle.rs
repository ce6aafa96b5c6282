//! Testbeds come and go without leaving anything behind, and never collide. Root only.
//!
//! One test function on purpose: it counts this process's threads, which other tests running
//! in parallel in the same binary would disturb.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};

fn namespaces() -> HashSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

fn link_exists(ns: &str, dev: &str) -> bool {
    std::process::Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", dev])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Threads take a moment to disappear from /proc after join.
fn settle(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn testbeds_clean_up_and_do_not_collide() {
    if !root_or_skip("testbeds_clean_up_and_do_not_collide") {
        return;
    }
    let ns_before = namespaces();
    let threads_before = thread_names().len();

    // Two at once: distinct namespaces, same addresses inside, both work independently.
    let a = Testbed::up(TestbedConfig::default()).unwrap();
    let b = Testbed::up(TestbedConfig::default()).unwrap();
    let names: HashSet<String> = [&a, &b]
        .iter()
        .flat_map(|tb| [tb.ns_name(Side::Phone), tb.ns_name(Side::Server)])
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 4, "namespace names collide: {names:?}");
    let pid = std::process::id().to_string();
    for n in &names {
        assert!(n.contains(&pid), "{n} does not carry the pid");
        assert!(namespaces().contains(n), "{n} missing from /run/netns");
    }
    for tb in [&a, &b] {
        for side in [Side::Phone, Side::Server] {
            for link in Link::ALL {
                assert!(link_exists(tb.ns_name(side), link.iface(side)));
            }
        }
    }
    a.silent_loss(Link::Wifi, true);
    assert_eq!(a.ping(Link::Wifi, 2).unwrap().lost(), 2);
    assert_eq!(
        b.ping(Link::Wifi, 3).unwrap().lost(),
        0,
        "a's loss leaked into b"
    );
    let relays = thread_names()
        .iter()
        .filter(|t| t.starts_with("nb-relay"))
        .count();
    assert_eq!(relays, 2);

    // A process started in a namespace is killed when the testbed goes down.
    let mut sleeper = a.command(Side::Server, "sleep").arg("60").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let a_names = [
        a.ns_name(Side::Phone).to_string(),
        a.ns_name(Side::Server).to_string(),
    ];
    a.down().unwrap();
    let status = sleeper.wait().unwrap();
    assert!(
        !status.success(),
        "the process in the namespace survived: {status}"
    );
    for n in &a_names {
        assert!(!namespaces().contains(n), "{n} left behind by down()");
    }
    // b is untouched.
    assert_eq!(b.ping(Link::Cell, 2).unwrap().lost(), 0);
    drop(b);

    // A panic while a testbed is alive: unwinding drops it, which cleans up.
    let handle = std::thread::spawn(|| {
        let tb = Testbed::up(TestbedConfig::default()).unwrap();
        let names = [
            tb.ns_name(Side::Phone).to_string(),
            tb.ns_name(Side::Server).to_string(),
        ];
        std::fs::write(
            std::env::temp_dir().join(format!("netbed-panic-{}", std::process::id())),
            names.join(" "),
        )
        .unwrap();
        panic!("deliberate panic with a testbed up");
    });
    assert!(handle.join().is_err());
    let marker = std::env::temp_dir().join(format!("netbed-panic-{}", std::process::id()));
    let panicked_names = std::fs::read_to_string(&marker).unwrap();
    std::fs::remove_file(&marker).unwrap();
    for n in panicked_names.split_whitespace() {
        assert!(!namespaces().contains(n), "{n} left behind after a panic");
    }

    // Only ours: other processes on the machine may have namespaces of their own.
    let ours = |set: &HashSet<String>| -> HashSet<String> {
        set.iter()
            .filter(|n| n.contains(&format!("-{pid}-")))
            .cloned()
            .collect()
    };
    assert_eq!(ours(&namespaces()), ours(&ns_before), "namespaces leaked");
    assert!(
        settle(|| thread_names().len() <= threads_before),
        "threads leaked: before {threads_before}, now {:?}",
        thread_names()
    );
    assert!(!thread_names().iter().any(|t| t.starts_with("nb-")));
}
