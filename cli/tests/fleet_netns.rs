//! The fleet test (docs/ARCHITECTURE.md, "Announce and the C flag"): a phone with two paths
//! (the testbed's WiFi and cellular links) → a balancer (the testbed's server namespace,
//! nftables: a `jhash` DNAT of the shared UDP address over three instances, a static DNAT of
//! each instance's announced port) → three real `braid gateway` processes → a TCP echo
//! server. Root only (CI is root); run under `flock /tmp/braid-netns.lock`.
//!
//! 1. With `--announce`: 60 connections (half handover, some of those losing WiFi midway;
//!    half aggregate) echo data with SHA-256 compared; every join goes to the announced port
//!    of the instance that owns its connection, the instances' `--metrics` count exactly the
//!    subflows of their own connections, and no join is refused.
//! 2. `kill -9` of one instance: the other instances' connections finish intact without a
//!    stall, the killed instance's clients get an error, and reconnect once the balancer
//!    drops the instance.
//! 3. The control run without `--announce`: about ⅔ of the joins land on an instance that
//!    does not own their connection and are refused at the shared address — the count the
//!    first run shows at zero.

mod common;

use braid::{Client, Interface, InterfaceKind, ServiceType};
use braid_netbed::{Link, Side, Testbed, TestbedConfig, root_or_skip};
use braid_testkit::{Sha256, pattern};
use common::{GatewayProc, scrape_raw, spawn_logged, tcp_echo, value};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BRAID: &str = env!("CARGO_BIN_EXE_braid");
const INSTANCES: usize = 3;
const SHARED_PORT: u16 = 7000;
/// Instance i announces port ANNOUNCED_BASE + i on the balancer's address.
const ANNOUNCED_BASE: u16 = 7001;
const CONNECTIONS: usize = 60;
const CHUNK: usize = 16 * 1024;

/// The balancer's public (shared) address: the server namespace's WiFi address, reached
/// over either link.
fn vip() -> Ipv4Addr {
    Link::Wifi.addr(Side::Server)
}

fn shared() -> SocketAddr {
    (vip(), SHARED_PORT).into()
}

/// Where instance `i` listens, behind the balancer (a dummy interface's address).
fn instance_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 1 + i as u8)
}

fn metrics_at(i: usize) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 9101 + i as u16).into()
}

/// Runs `nft -f -` with `rules` in the balancer's namespace.
fn nft(tb: &Testbed, rules: &str) {
    let mut c = tb.command(Side::Server, "nft");
    let mut child = c
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The balancer's rules: the shared address spread over the `live` instances by a hash of
/// the 5-tuple (like any stock L4 balancer), each announced port to its own instance.
fn balance(tb: &Testbed, live: &[usize]) {
    let map: Vec<String> = live
        .iter()
        .enumerate()
        .map(|(slot, &i)| format!("{slot} : {}", instance_ip(i)))
        .collect();
    let statics: String = (0..INSTANCES)
        .map(|i| {
            format!(
                "    ip daddr {} udp dport {} dnat to {}\n",
                vip(),
                ANNOUNCED_BASE + i as u16,
                instance_ip(i)
            )
        })
        .collect();
    let rules = format!(
        "add table ip fleet\ndelete table ip fleet\ntable ip fleet {{\n\
         chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n\
             ip daddr {vip} udp dport {SHARED_PORT} dnat to jhash ip saddr . udp sport . ip daddr . udp dport mod {n} seed 0x5eed map {{ {map} }}\n\
         {statics}  }}\n\
         chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n  }}\n}}\n",
        vip = vip(),
        n = live.len(),
        map = map.join(", "),
    );
    nft(tb, &rules);
}

/// The instances' addresses, on the balancer namespace's loopback (this kernel has no dummy
/// interfaces): a DNAT to them delivers locally.
fn instance_addresses(tb: &Testbed) {
    for i in 0..INSTANCES {
        let ip = format!("{}/32", instance_ip(i));
        let st = tb
            .command(Side::Server, "ip")
            .args(["addr", "add", &ip, "dev", "lo"])
            .status()
            .unwrap();
        assert!(st.success(), "ip addr add {ip} dev lo");
    }
}

/// Starts instance `i` (announcing its port when `announce`).
fn instance(tb: &Testbed, i: usize, echo: SocketAddr, announce: bool) -> GatewayProc {
    let mut c = tb.command(Side::Server, BRAID);
    c.args([
        "gateway",
        "--listen",
        &format!("{}:{SHARED_PORT}", instance_ip(i)),
    ])
    .args(["--allow", &echo.to_string()])
    .args(["--workers", "1", "--no-gso"])
    .args(["--metrics", &metrics_at(i).to_string()])
    // All 60 connections come from one phone at once.
    .args(["--max-half-open-per-source", "128"]);
    if announce {
        c.args([
            "--announce",
            &format!("{}:{}", vip(), ANNOUNCED_BASE + i as u16),
        ])
        .args(["--announce-bind", &instance_ip(i).to_string()]);
    }
    let (child, lines) = spawn_logged(c.stdin(Stdio::null()).stdout(Stdio::null()));
    let gw = GatewayProc {
        child,
        addr: shared(),
        lines,
    };
    gw.wait_line("braid gateway on udp", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("instance {i} did not start"));
    gw.wait_line("metrics on http://", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("instance {i}: no metrics"));
    gw
}

/// A scrape of instance `i`'s metrics (from inside the balancer's namespace).
fn scrape(tb: &Testbed, i: usize) -> String {
    tb.run_in(Side::Server, || {
        Ok(scrape_raw(metrics_at(i), "GET /metrics HTTP/1.1").1)
    })
    .unwrap()
}

fn client(service: ServiceType) -> Client {
    Client::builder()
        .service(service)
        .interface(
            Interface::new(InterfaceKind::Wifi)
                .with_local_addr(Link::Wifi.addr(Side::Phone).into()),
        )
        .interface(
            Interface::new(InterfaceKind::Cellular)
                .with_local_addr(Link::Cell.addr(Side::Phone).into()),
        )
        .build()
        .unwrap()
}

/// What one connection did.
#[derive(Debug)]
struct Run {
    /// An error the connection reported, if any.
    error: Option<String>,
    sent: u64,
    /// The echo came back whole and equal.
    intact: bool,
    /// Longest wait for an echoed chunk.
    longest_wait: Duration,
    /// Remote addresses of every subflow it had, live or closed.
    remotes: Vec<SocketAddr>,
    /// Live subflows at the end.
    live: usize,
}

impl Run {
    /// The announced port its joins went to, if they all went to one.
    fn instance(&self) -> Option<usize> {
        let mut ports = self
            .remotes
            .iter()
            .filter(|r| **r != shared())
            .map(|r| r.port());
        let first = ports.next()?;
        ports
            .all(|p| p == first)
            .then(|| usize::from(first - ANNOUNCED_BASE))
    }
}

/// How one connection behaves.
#[derive(Clone, Copy)]
struct Plan {
    chunks: usize,
    /// Pause between chunks (a slow, long-lived stream).
    pace: Duration,
    /// The app loses WiFi (the OS reports it gone) after this many chunks.
    drop_wifi_after: Option<usize>,
}

/// Opens a connection through the balancer and echoes `plan.chunks` chunks of stream `seed`,
/// one at a time, hashing both ways. Reports the run on `done` while the connection is
/// still open, waits for `release`, then closes it; returns an error of the close.
async fn echo_run(
    c: &Client,
    echo: SocketAddr,
    seed: u64,
    plan: Plan,
    done: std::sync::mpsc::Sender<Run>,
    mut release: tokio::sync::watch::Receiver<bool>,
) -> Option<String> {
    let mut run = Run {
        error: None,
        sent: 0,
        intact: false,
        longest_wait: Duration::ZERO,
        remotes: Vec::new(),
        live: 0,
    };
    let mut conn = match c.connect_via(shared(), &echo.to_string()).await {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(format!("connect: {e}"));
            let _ = done.send(run);
            return None;
        }
    };
    // The joins follow the ADD_ADDR, one round trip after the handshake.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !conn
            .stats()
            .paths
            .iter()
            .any(|p| p.state == "established" && p.remote != Some(shared()))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut sent_sha, mut got_sha) = (Sha256::new(), Sha256::new());
    let mut buf = vec![0u8; CHUNK];
    let mut back = vec![0u8; CHUNK];
    let mut equal = true;
    for n in 0..plan.chunks {
        if plan.drop_wifi_after == Some(n) {
            let wifi = Link::Wifi.addr(Side::Phone);
            for (path, local) in conn.paths() {
                if local.ip() == wifi {
                    conn.remove_path(path);
                }
            }
        }
        pattern::fill(seed, run.sent, &mut buf);
        sent_sha.update(&buf);
        let t = Instant::now();
        let io = async {
            conn.write_all(&buf).await?;
            conn.read_exact(&mut back).await
        };
        if let Err(e) = io.await {
            run.error = Some(e.to_string());
            break;
        }
        run.longest_wait = run.longest_wait.max(t.elapsed());
        got_sha.update(&back);
        equal &= back == buf;
        run.sent += CHUNK as u64;
        tokio::time::sleep(plan.pace).await;
    }
    let st = conn.stats();
    run.live = st.paths.iter().filter(|p| p.state == "established").count();
    run.remotes = st
        .paths
        .iter()
        .chain(st.closed_paths.iter())
        .filter_map(|p| p.remote)
        .collect();
    run.intact = run.error.is_none() && equal && sent_sha.finish() == got_sha.finish();
    let failed = run.error.is_some();
    let _ = done.send(run);
    let _ = release.wait_for(|r| *r).await;
    if failed {
        return None;
    }
    conn.finish();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .await
        .err()
        .map(|e| format!("closing: {e}"))
}

/// Runs `count` connections at once from the phone namespace (`handover(i)`: that service,
/// else aggregate). Once every one has run its plan, and while they are still open,
/// `at_rest` sees them all; then they close. `meanwhile` runs on this thread once they
/// started. Returns the runs and the errors of the closes.
fn many(
    tb: &Testbed,
    echo: SocketAddr,
    count: usize,
    handover: fn(usize) -> bool,
    plan_of: fn(usize) -> Plan,
    meanwhile: impl FnOnce(),
    at_rest: impl FnOnce(&[Run]),
) -> (Vec<Run>, Vec<String>) {
    let (done, runs_rx) = std::sync::mpsc::channel();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let phone = tb
        .spawn_in(Side::Phone, move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let clients = [
                    client(ServiceType::Aggregate),
                    client(ServiceType::Handover),
                ];
                let mut tasks = Vec::new();
                for i in 0..count {
                    let c = clients[usize::from(handover(i))].clone();
                    let (done, release) = (done.clone(), release.clone());
                    tasks.push(tokio::spawn(async move {
                        echo_run(&c, echo, i as u64 + 1, plan_of(i), done, release).await
                    }));
                }
                let mut closing = Vec::new();
                for t in tasks {
                    closing.extend(t.await.unwrap());
                }
                closing
            })
        })
        .unwrap();
    meanwhile();
    let mut runs = Vec::new();
    for _ in 0..count {
        match runs_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => runs.push(r),
            Err(_) => panic!("only {} of {count} connections ran", runs.len()),
        }
    }
    at_rest(&runs);
    let _ = release_tx.send(true);
    let closing = phone.join().unwrap();
    (runs, closing)
}

fn sum(tb: &Testbed, live: &[usize], sample: &str) -> f64 {
    live.iter().map(|&i| value(&scrape(tb, i), sample)).sum()
}

#[test]
fn a_fleet_behind_a_hashing_balancer_keeps_every_connection_on_one_instance() {
    if !root_or_skip("a_fleet_behind_a_hashing_balancer_keeps_every_connection_on_one_instance") {
        return;
    }
    let started = Instant::now();
    let tb = Testbed::up(TestbedConfig::default()).unwrap();
    instance_addresses(&tb);
    balance(&tb, &[0, 1, 2]);
    let echo = tb.run_in(Side::Server, || Ok(tcp_echo())).unwrap();
    let gws: Vec<Option<GatewayProc>> = (0..INSTANCES)
        .map(|i| Some(instance(&tb, i, echo, true)))
        .collect();

    // 1. With announcements: 60 connections, every join at its own instance.
    let all = [0, 1, 2];
    let (runs, closing) = many(
        &tb,
        echo,
        CONNECTIONS,
        |i| i % 2 == 0,
        |i| Plan {
            chunks: 8,
            pace: Duration::ZERO,
            // Some of the handover connections lose WiFi midway.
            drop_wifi_after: (i % 4 == 0).then_some(4),
        },
        || {},
        |runs| {
            let mut per_instance = [0f64; INSTANCES];
            for (i, r) in runs.iter().enumerate() {
                assert!(r.error.is_none() && r.intact, "connection {i}: {r:?}");
                let at = r.instance().unwrap_or_else(|| {
                    panic!("connection {i}: joins on no or several instances: {r:?}")
                });
                assert!(at < INSTANCES, "connection {i}: {r:?}");
                per_instance[at] += r.live as f64;
            }
            // Each instance holds exactly the live subflows of its own connections: none
            // of them sits anywhere else. The gateways may still be closing subflows the
            // phone already dropped (WiFi gone): their count settles within a few RTTs.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut held = [0f64; INSTANCES];
            loop {
                for (i, h) in held.iter_mut().enumerate() {
                    *h = value(&scrape(&tb, i), "braid_gateway_subflows");
                }
                if held == per_instance || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // A WiFi subflow the phone dropped may still be closing on its instance (it is
            // probed for an RTO before it goes), so an instance may hold a few more than its
            // connections use, never fewer, and never more than the dropped ones.
            for (i, (h, p)) in held.iter().zip(per_instance.iter()).enumerate() {
                assert!(
                    h >= p && h - p <= 15.0,
                    "instance {i} holds {h} subflows, its connections use {p} (all: {held:?} vs {per_instance:?})"
                );
            }
            eprintln!("fleet: live subflows per instance {per_instance:?}");
        },
    );
    assert!(closing.is_empty(), "{closing:?}");
    // Joins from both paths where WiFi stayed (the initial subflow and two joins).
    for (i, r) in runs.iter().enumerate() {
        let joins = r.remotes.iter().filter(|a| **a != shared()).count();
        let want = if i % 4 == 0 { 1 } else { 2 };
        assert!(joins >= want, "connection {i}: {joins} joins: {r:?}");
    }
    assert_eq!(
        sum(&tb, &all, "braid_gateway_accepted_total"),
        CONNECTIONS as f64
    );
    assert_eq!(sum(&tb, &all, "braid_gateway_joins_refused_total"), 0.0);
    assert_eq!(
        sum(&tb, &all, "braid_gateway_joins_refused_shared_total"),
        0.0
    );
    eprintln!("fleet: announce run done at {:?}", started.elapsed());

    // 2. kill -9 of instance 0 while 30 slow streams run.
    let mut gws = gws;
    let victim = gws[0].take().unwrap();
    let (runs, closing) = many(
        &tb,
        echo,
        30,
        |_| false,
        |_| Plan {
            chunks: 40,
            pace: Duration::from_millis(100),
            drop_wifi_after: None,
        },
        move || {
            std::thread::sleep(Duration::from_millis(1500));
            let mut victim = victim;
            // SIGKILL: no drain, no FASTCLOSE, nothing said to its clients.
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
        },
        |_| {},
    );
    assert!(closing.is_empty(), "{closing:?}");
    let mut lost = 0;
    let mut longest = Duration::ZERO;
    for (i, r) in runs.iter().enumerate() {
        match r.instance() {
            Some(0) => {
                assert!(
                    r.error.is_some(),
                    "connection {i} on the killed instance: {r:?}"
                );
                lost += 1;
            }
            Some(_) => {
                assert!(r.error.is_none() && r.intact, "connection {i}: {r:?}");
                assert_eq!(r.sent, 40 * CHUNK as u64, "connection {i}");
                longest = longest.max(r.longest_wait);
            }
            None => panic!("connection {i}: joins on no or several instances: {r:?}"),
        }
    }
    assert!(lost > 0, "no connection was on the killed instance");
    // No stall: an echoed chunk never waited anywhere near a retransmission timeout.
    assert!(
        longest < Duration::from_secs(2),
        "a surviving connection stalled for {longest:?}"
    );
    // The balancer's health check drops the instance; the lost clients reconnect.
    balance(&tb, &[1, 2]);
    let (again, closing) = many(
        &tb,
        echo,
        lost,
        |_| false,
        |_| Plan {
            chunks: 4,
            pace: Duration::ZERO,
            drop_wifi_after: None,
        },
        || {},
        |_| {},
    );
    assert!(closing.is_empty(), "{closing:?}");
    for (i, r) in again.iter().enumerate() {
        assert!(r.error.is_none() && r.intact, "reconnection {i}: {r:?}");
        assert!(
            matches!(r.instance(), Some(1 | 2)),
            "reconnection {i}: {r:?}"
        );
    }
    eprintln!(
        "fleet: kill run done at {:?}: {lost} of 30 lost and reconnected, longest echo wait of the others {longest:?}",
        started.elapsed()
    );

    // 3. The control run: the same fleet without --announce.
    drop(gws);
    balance(&tb, &[0, 1, 2]);
    let gws: Vec<GatewayProc> = (0..INSTANCES)
        .map(|i| instance(&tb, i, echo, false))
        .collect();
    let (runs, closing) = many(
        &tb,
        echo,
        30,
        |_| false,
        |_| Plan {
            chunks: 2,
            pace: Duration::ZERO,
            drop_wifi_after: None,
        },
        || {},
        |_| {},
    );
    assert!(closing.is_empty(), "{closing:?}");
    let mut joined = 0;
    for (i, r) in runs.iter().enumerate() {
        // Data goes on the initial subflow whatever happens to the join.
        assert!(r.error.is_none() && r.intact, "connection {i}: {r:?}");
        if r.live > 1 {
            joined += 1;
        }
    }
    let refused = sum(&tb, &all, "braid_gateway_joins_refused_shared_total");
    eprintln!(
        "fleet: control run done at {:?}: {joined} of 30 connections joined, {refused} joins refused at the shared address",
        started.elapsed()
    );
    // A join lands on its own instance one time in three: about 20 of the 30 first
    // attempts are refused (fewer than 8 is a 1-in-10^5 event), retries add more.
    assert!(refused >= 8.0, "{refused} joins refused without announce");
    assert!(joined <= 22, "{joined} of 30 joined without announce");
    drop(gws);
}
