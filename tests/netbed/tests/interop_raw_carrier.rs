//! The raw carrier itself, Braid to Braid on loopback in a private network namespace: IPv4
//! (server on the wildcard address: replies take their source from IP_PKTINFO) and IPv6, the
//! firewall rule with nft and with iptables (installed, then removed with the server's port),
//! the kernel's RSTs killing connections when no rule keeps them away, and the one-line errors
//! for a missing capability or a missing rule. Root only.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use braid::raw::firewall;
use braid::{
    Carrier, FirewallBackend, FirewallMode, Interface, InterfaceKind, RawConfig, Server,
    ServerConfig,
};
use braid_netbed::root_or_skip;
use common::*;

const BYTES: u64 = 4_000_000;

/// Runs `f` on a thread of its own in a new, empty network namespace (loopback up).
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) takes no pointers; it moves only this thread (and
        // the threads and processes it creates from now on) into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        let ok = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(ok.success());
        f()
    })
    .join()
    .unwrap()
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Braid raw server on `listen` and a Braid raw client from `local`, BYTES each way.
async fn braid_to_braid(
    listen: SocketAddr,
    local: IpAddr,
    raw: RawConfig,
) -> Result<(BraidEnd, BraidEnd), braid::Error> {
    let server = Server::bind_raw(listen, ServerConfig::default(), raw.clone())?;
    let port = server.local_addr().port();
    let target = SocketAddr::new(local, port);
    let client = braid::Client::builder()
        .carrier(Carrier::Raw)
        .raw_config(raw)
        .interface(Interface::new(InterfaceKind::Wired).with_local_addr(local))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let accept = async {
        let conn = server.accept().await.ok_or(braid::Error::EndpointClosed)?;
        Ok::<_, braid::Error>(braid_exchange(conn, BYTES, None).await?)
    };
    let connect = async {
        let conn = client.connect(target).await?;
        Ok::<_, braid::Error>(braid_exchange(conn, BYTES, None).await?)
    };
    // The first error ends both (a connection reset during the handshake is never accepted).
    let (s, c) = tokio::try_join!(accept, connect)?;
    Ok((c, s))
}

fn check_pair(what: &str, client: &BraidEnd, server: &BraidEnd) {
    check_same(
        &format!("{what}: client -> server"),
        &client.sent,
        &server.received,
    );
    check_same(
        &format!("{what}: server -> client"),
        &server.sent,
        &client.received,
    );
    assert!(
        client.stats.mptcp && server.stats.mptcp,
        "{what}: not MPTCP"
    );
}

#[test]
fn raw_carrier_ipv4_and_ipv6_with_nft() {
    if !root_or_skip("raw_carrier_ipv4_and_ipv6_with_nft") {
        return;
    }
    let _serial = serial();
    in_private_netns(|| {
        let raw = RawConfig::default().with_backend(FirewallBackend::Nft);
        let rt = runtime();
        // IPv4, server on the wildcard address.
        let (c, s) = rt
            .block_on(braid_to_braid(
                "0.0.0.0:7100".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
                raw.clone(),
            ))
            .unwrap();
        check_pair("IPv4", &c, &s);
        // IPv6 on ::1 (IPV6_PKTINFO, no IP header on receive).
        let (c, s) = rt
            .block_on(braid_to_braid(
                "[::1]:7101".parse().unwrap(),
                "::1".parse().unwrap(),
                raw.clone(),
            ))
            .unwrap();
        check_pair("IPv6", &c, &s);
        drop(rt);
        // The rule and the client range stay; the servers' ports went with the servers.
        let table = sh(
            "nft",
            &["list", "table", "inet", &firewall::nft_table(raw.mark)],
        );
        println!("{table}");
        assert!(table.contains("meta mark != 0x000b4a1d"), "{table}");
        assert!(table.contains("61000-61999"), "{table}");
        assert!(
            !table.contains("7100") && !table.contains("7101"),
            "{table}"
        );
        assert!(firewall::is_installed(&raw, &raw.ports).unwrap());
        firewall::remove(&raw).unwrap();
        assert!(!firewall::is_installed(&raw, &raw.ports).unwrap());
    });
}

#[test]
fn raw_carrier_with_iptables() {
    if !root_or_skip("raw_carrier_with_iptables") {
        return;
    }
    let _serial = serial();
    in_private_netns(|| {
        let raw = RawConfig::default()
            .with_backend(FirewallBackend::Iptables)
            .with_ports(62000..=62099)
            .with_mark(0x5eed);
        let rt = runtime();
        let (c, s) = rt
            .block_on(braid_to_braid(
                "127.0.0.1:7102".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
                raw.clone(),
            ))
            .unwrap();
        check_pair("IPv4 with iptables", &c, &s);
        drop(rt);
        let rules = sh("iptables", &["-S", "OUTPUT"]);
        println!("{rules}");
        assert!(
            rules.contains("--sport 62000:62099") && rules.contains("--mark 0x5eed"),
            "{rules}"
        );
        assert!(!rules.contains("7102"), "the server's port stays: {rules}");
        firewall::remove(&raw).unwrap();
        let rules = sh("iptables", &["-S", "OUTPUT"]);
        assert!(!rules.contains("braid-raw"), "{rules}");
    });
}

#[test]
fn without_the_rule_the_kernel_resets_raw_connections() {
    if !root_or_skip("without_the_rule_the_kernel_resets_raw_connections") {
        return;
    }
    let _serial = serial();
    in_private_netns(|| {
        // Nobody keeps the kernel's RSTs away: its answer to the SYN (no socket listens on
        // the port) reaches the client first, or its RST to the SYN/ACK reaches the server.
        let raw = RawConfig::default().with_firewall(FirewallMode::Unmanaged);
        let r = runtime().block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                braid_to_braid(
                    "127.0.0.1:7103".parse().unwrap(),
                    "127.0.0.1".parse().unwrap(),
                    raw,
                ),
            )
            .await
        });
        let err = r
            .expect("neither finished nor failed in 20 s")
            .expect_err("a raw connection survived the kernel's RSTs");
        println!("without the rule: {err}");
    });
}

/// Drops every capability of the calling thread (effective, permitted, inheritable).
fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads one header and two data structs laid out as the kernel's
    // (version 3); both live across the call. It changes only the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn errors_say_what_is_missing() {
    if !root_or_skip("errors_say_what_is_missing") {
        return;
    }
    let _serial = serial();
    in_private_netns(|| {
        let rt = runtime();
        // No rule, and the configuration forbids installing one.
        let raw = RawConfig::default().with_firewall(FirewallMode::Require);
        let err = rt
            .block_on(async {
                braid::Client::builder()
                    .carrier(Carrier::Raw)
                    .raw_config(raw.clone())
                    .build()
                    .map(|_| ())
            })
            .expect_err("built without the rule");
        let msg = err.to_string();
        println!("{msg}");
        assert!(
            matches!(err, braid::Error::FirewallRuleMissing { .. }),
            "{err:?}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            msg.contains("install it as root with: nft 'add table inet braid_b4a1d;"),
            "{msg}"
        );
        // The command in the message works as given.
        let braid::Error::FirewallRuleMissing { rule, .. } = &err else {
            unreachable!()
        };
        let ok = Command::new("sh").args(["-c", rule]).status().unwrap();
        assert!(ok.success(), "{rule}");
        assert!(firewall::is_installed(&raw, &raw.ports).unwrap());
        rt.block_on(async {
            braid::Client::builder()
                .carrier(Carrier::Raw)
                .raw_config(raw.clone())
                .build()
                .map(|_| ())
        })
        .expect("builds once the rule is there");
        // The same with iptables.
        let ipt = raw.clone().with_backend(FirewallBackend::Iptables);
        let msg = rt
            .block_on(async {
                Server::bind_raw(
                    "127.0.0.1:7104".parse().unwrap(),
                    ServerConfig::default(),
                    ipt,
                )
                .map(|_| ())
            })
            .expect_err("bound without the rule")
            .to_string();
        println!("{msg}");
        assert!(
            msg.contains("install it as root with: iptables -w -I OUTPUT -p tcp --sport 7104 "),
            "{msg}"
        );
    });
    // Without CAP_NET_RAW (a thread that dropped its capabilities).
    let msg = std::thread::spawn(|| {
        drop_capabilities();
        runtime()
            .block_on(async {
                braid::Client::builder()
                    .carrier(Carrier::Raw)
                    .build()
                    .map(|_| ())
            })
            .expect_err("raw sockets without CAP_NET_RAW")
            .to_string()
    })
    .join()
    .unwrap();
    println!("{msg}");
    assert_eq!(
        msg,
        "permission denied: raw sockets need CAP_NET_RAW (run as root, or `setcap \
         cap_net_raw,cap_net_admin+ep` on the program)"
    );
}
