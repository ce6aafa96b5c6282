//! Braid as the `braid` CLI in the namespaces: `braid bench server` in the server namespace
//! (one per carrier, serving every run), `braid bench client --json` in the phone namespace
//! bound to both phone interfaces. The client follows rtnetlink, so taking `c-wifi` down
//! reaches it as the OS's "interface lost" event.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::plan::{Flow, Policy, Stack, Workload};
use crate::transfer::Samples;
use crate::{Link, Side, Testbed};

fn carrier(stack: Stack) -> &'static str {
    match stack {
        Stack::BraidRaw => "raw",
        _ => "udp",
    }
}

/// A running `braid bench server`; killed on drop.
pub struct BraidServer {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl BraidServer {
    pub fn start(tb: &Testbed, braid: &Path, stack: Stack, port: u16) -> io::Result<BraidServer> {
        let listen = format!("0.0.0.0:{port}");
        let mut child = tb
            .command(Side::Server, &braid.to_string_lossy())
            .args(["--log", "info", "bench", "server", "--listen", &listen])
            .args(["--carrier", carrier(stack)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", braid.display())))?;
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr"));
        // Other lines (the raw carrier's firewall rule) may come first.
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            if err.read_line(&mut line)? == 0 || seen.len() > 20 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "{stack} server did not start: {}",
                    seen.join(" | ")
                )));
            }
            if line.contains("bench server on") {
                break;
            }
            seen.push(line.trim().to_string());
        }
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let mut l = keep.lock().unwrap_or_else(|e| e.into_inner());
                l.push(line);
                let n = l.len();
                if n > 200 {
                    l.drain(..n - 100);
                }
            }
        });
        Ok(BraidServer { child, port, log })
    }

    pub fn remote(&self) -> SocketAddr {
        SocketAddr::from((Link::Wifi.addr(Side::Server), self.port))
    }

    /// The server's last log lines (for errors).
    pub fn tail(&self) -> String {
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        l.iter()
            .rev()
            .take(5)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl Drop for BraidServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `braid bench client` that is running.
pub struct BraidClient {
    output: std::thread::JoinHandle<io::Result<std::process::Output>>,
}

/// Starts a client for `w` against `server`.
pub fn start_client(
    tb: &Testbed,
    braid: &Path,
    stack: Stack,
    policy: Policy,
    lazy_backup: Option<f64>,
    server: &BraidServer,
    w: Workload,
) -> io::Result<BraidClient> {
    let mut cmd = tb.command(Side::Phone, &braid.to_string_lossy());
    cmd.args(["bench", "client", &server.remote().to_string()])
        .args(["-i", "c-wifi:wifi", "-i", "c-cell:cellular"])
        .args(["--policy", policy.name(), "--carrier", carrier(stack)])
        .args(["--seconds", &w.seconds().to_string(), "--json"]);
    if let Some(idle) = lazy_backup {
        cmd.args(["--lazy-backup", "--backup-idle-close", &idle.to_string()]);
    }
    match w {
        Workload::Bulk { flow, .. } => {
            cmd.args(["--direction", flow.name()]);
        }
        Workload::Echo { bytes, rate, .. } => {
            cmd.args(["--direction", "echo"])
                .args(["--request-bytes", &bytes.to_string()])
                .args(["--rate", &rate.to_string()]);
        }
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", braid.display())))?;
    Ok(BraidClient {
        output: std::thread::spawn(move || child.wait_with_output()),
    })
}

/// What a Braid run produced (times in seconds since the client's start).
#[derive(Debug, Default)]
pub struct BraidRun {
    pub origin_ns: u64,
    pub rx: Samples,
    pub echo: Vec<(f64, Option<f64>)>,
    pub events: Vec<(f64, String)>,
    pub cell_live: Vec<(f64, u64)>,
}

impl BraidClient {
    /// Waits for the client and reads its JSON.
    pub fn finish(self, w: Workload, server: &BraidServer) -> io::Result<BraidRun> {
        let out = self
            .output
            .join()
            .map_err(|_| io::Error::other("client reader panicked"))??;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "braid bench client failed ({}): {}; server: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                server.tail()
            )));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| io::Error::other(format!("braid bench client JSON: {e}")))?;
        parse(&v, w)
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}

fn parse(v: &Value, w: Workload) -> io::Result<BraidRun> {
    let origin_ns = v["start_monotonic_ns"]
        .as_u64()
        .ok_or_else(|| io::Error::other("no start_monotonic_ns in the client's JSON"))?;
    let mut run = BraidRun {
        origin_ns,
        ..BraidRun::default()
    };
    match w {
        Workload::Bulk { flow, .. } => {
            let d = match flow {
                Flow::Down => &v["down"],
                Flow::Up => &v["up"],
            };
            let t = f64s(&d["samples"]["t_ms"]);
            let b = f64s(&d["samples"]["bytes"]);
            run.rx = to_grid(&t, &b, Duration::from_millis(10));
        }
        Workload::Echo { .. } => {
            let e = &v["echo"];
            let sent = f64s(&e["sent_at_ms"]);
            let lat = e["latency_ms"].as_array().cloned().unwrap_or_default();
            run.echo = sent
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let l = lat.get(i).and_then(|x| x.as_f64()).map(|ms| ms / 1e3);
                    (t / 1e3, l)
                })
                .collect();
        }
    }
    if let Some(evs) = v["events"].as_array() {
        for e in evs {
            run.events.push((
                e["t_s"].as_f64().unwrap_or(0.0),
                e["event"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    let tl = &v["path_timeline"];
    let t = f64s(&tl["t_ms"]);
    let live = f64s(&tl["by_kind"]["cellular"]["live"]);
    run.cell_live = t
        .iter()
        .zip(live.iter())
        .map(|(t, l)| (t / 1e3, *l as u64))
        .collect();
    Ok(run)
}

/// (time in ms, cumulative bytes) points to a fixed grid: the value at k × `dt` is that of
/// the last point before (k + ½) × `dt` (the CLI samples on the same 10 ms ticks, a little
/// late).
pub fn to_grid(t_ms: &[f64], bytes: &[f64], dt: Duration) -> Samples {
    let mut out = Samples {
        interval: dt,
        bytes: Vec::new(),
    };
    let Some(&end) = t_ms.last() else {
        return out;
    };
    let step = dt.as_secs_f64() * 1e3;
    let n = (end / step).round() as usize;
    let mut j = 0;
    let mut cur = 0u64;
    for k in 1..=n {
        let at = (k as f64 + 0.5) * step;
        while j < t_ms.len() && t_ms[j] <= at {
            cur = cur.max(bytes[j] as u64);
            j += 1;
        }
        out.bytes.push(cur);
    }
    out
}

/// The `braid` binary next to this one (target/release/braid), or `braid` on PATH.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("braid")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("braid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_takes_the_last_point_at_or_before() {
        let s = to_grid(
            &[10.0, 20.3, 29.9, 41.0, 50.0],
            &[5.0, 7.0, 9.0, 12.0, 20.0],
            Duration::from_millis(10),
        );
        assert_eq!(s.bytes, vec![5, 7, 9, 12, 20]);
        assert!(
            to_grid(&[], &[], Duration::from_millis(10))
                .bytes
                .is_empty()
        );
    }
}
