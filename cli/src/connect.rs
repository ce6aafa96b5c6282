//! `braid connect`: netcat over Braid. stdin goes to the connection (EOF sends DATA_FIN), the
//! connection goes to stdout; the command ends when the peer has finished sending.

use crate::ClientOpts;
use crate::error::{Failure, Result};
use crate::iface::{self, IfaceSpec};
use crate::report::{self, PathNames};
use braid::{Client, Connection, ConnectionEvent, Interface};
use clap::Args;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The Braid gateway (with --target) or Braid/MPTCP server to connect to.
    #[arg(value_name = "REMOTE:PORT")]
    pub remote: String,
    /// Ask the gateway at REMOTE to relay to this TCP destination.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    #[command(flatten)]
    pub client: ClientOpts,
    /// The client token for a gateway that requires one (`braid gateway --token-file`): one
    /// of the secrets in its file. Only an HMAC of it over this connection's keys is sent.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "target",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// Like --token, with the secret read from the first line of FILE that is not blank or
    /// a # comment (keeps it out of the process list and shell history).
    #[arg(long, value_name = "FILE", requires = "target")]
    pub token_file: Option<std::path::PathBuf>,
    /// Seconds to wait for the gateway's answer to the Convert request, after the handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = crate::parse_secs)]
    pub convert_timeout: Duration,
    /// Print per-path statistics and events on stderr (every second and at the end).
    #[arg(long)]
    pub stats: bool,
}

impl ConnectArgs {
    /// The client token, from --token or --token-file.
    fn secret(&self) -> Result<Option<String>> {
        read_secret(self.token.as_deref(), self.token_file.as_deref())
    }
}

/// A client token from `--token` or the first line of `--token-file` that is not blank or a
/// `#` comment.
pub fn read_secret(
    token: Option<&str>,
    token_file: Option<&std::path::Path>,
) -> Result<Option<String>> {
    if let Some(t) = token {
        if t.trim().is_empty() {
            return Err(Failure::usage("--token is empty"));
        }
        return Ok(Some(t.trim().to_string()));
    }
    let Some(path) = token_file else {
        return Ok(None);
    };
    let text = std::fs::read(path)
        .map_err(|e| {
            Failure::usage(format!(
                "token file {}: {}",
                path.display(),
                crate::error::io_msg(&e)
            ))
        })
        .and_then(|b| {
            String::from_utf8(b).map_err(|_| {
                Failure::usage(format!("token file {}: not UTF-8 text", path.display()))
            })
        })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Some(l.to_string()))
        .ok_or_else(|| {
            Failure::usage(format!(
                "token file {}: holds no token (only blank lines and # comments)",
                path.display()
            ))
        })
}

/// Resolves `host:port` to one address, in one line on failure.
pub async fn resolve(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(Failure::usage(format!("'{s}': expected HOST:PORT")));
    };
    if port.parse::<u16>().is_err() {
        return Err(Failure::usage(format!("'{s}': bad port '{port}'")));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs = tokio::net::lookup_host(s).await.map_err(|e| {
        Failure::new(format!(
            "cannot resolve '{host}': {}",
            crate::error::io_msg(&e)
        ))
    })?;
    addrs
        .next()
        .ok_or_else(|| Failure::new(format!("cannot resolve '{host}': no addresses")))
}

/// Checks that `s` is `HOST:PORT` (or `[V6]:PORT`), in one line on failure.
pub fn check_target(s: &str) -> Result<()> {
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(Failure::usage(format!("'{s}': expected HOST:PORT")));
    };
    if port.parse::<u16>().is_err() {
        return Err(Failure::usage(format!("'{s}': bad port '{port}'")));
    }
    braid::convert::check_host(host).map_err(|e| Failure::usage(format!("'{s}': {e}")))
}

/// A client for the options: the interfaces checked first (each error in one line).
pub fn build_client(opts: &ClientOpts) -> Result<(Client, Vec<(IfaceSpec, Interface)>)> {
    build_client_with(opts, |b| b)
}

/// [`build_client`] for going through a gateway: its Convert timeout and the client token.
pub fn gateway_client(
    opts: &ClientOpts,
    convert_timeout: Duration,
    secret: Option<&str>,
) -> Result<(Client, Vec<(IfaceSpec, Interface)>)> {
    build_client_with(opts, |b| {
        let b = b.convert_timeout(convert_timeout);
        match secret {
            Some(s) => b.token(s),
            None => b,
        }
    })
}

/// [`build_client`] with more settings on the builder.
fn build_client_with(
    opts: &ClientOpts,
    more: impl FnOnce(braid::ClientBuilder) -> braid::ClientBuilder,
) -> Result<(Client, Vec<(IfaceSpec, Interface)>)> {
    let ifaces = iface::resolve(&opts.interfaces)?;
    let mut b = Client::builder()
        .policy(opts.policy())
        .carrier(opts.carrier.into())
        .connect_timeout(opts.connect_timeout)
        .dss_checksum(opts.dss_checksum)
        .gso(!opts.no_gso)
        .resolve_on_gateway(!opts.resolve_locally);
    for (_, i) in &ifaces {
        b = b.interface(i.clone());
    }
    Ok((more(b).build()?, ifaces))
}

pub fn names_of(ifaces: &[(IfaceSpec, Interface)]) -> PathNames {
    let mut n = PathNames::default();
    for (s, i) in ifaces {
        if let Some(idx) = i.index {
            n.0.insert(braid::PathId::new(idx), format!("{} ({})", s.name, s.kind));
        }
    }
    n
}

pub async fn run(a: ConnectArgs) -> Result<i32> {
    let remote = resolve(&a.remote).await?;
    let secret = a.secret()?;
    let (client, ifaces) = gateway_client(&a.client, a.convert_timeout, secret.as_deref())?;
    let names = names_of(&ifaces);
    // A host name target goes to the gateway to resolve (its DNS, not the local network's,
    // sees it); only its form is checked here.
    if let Some(t) = &a.target {
        check_target(t)?;
    }
    let conn = match &a.target {
        Some(t) => client.connect_via(remote, t).await?,
        None => client.connect(remote).await?,
    };
    let started = Instant::now();
    let stats_on = a.stats;
    let say = move |msg: String| {
        if stats_on {
            eprintln!("braid: {msg}");
        } else {
            log::info!("{msg}");
        }
    };
    if stats_on {
        say(format!(
            "connected to {remote}{} over {}",
            a.target
                .as_ref()
                .map(|t| format!(" (relaying to {t})"))
                .unwrap_or_default(),
            if ifaces.is_empty() {
                "the default route".to_string()
            } else {
                ifaces
                    .iter()
                    .map(|(s, _)| format!("{} ({})", s.name, s.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    let mut events = conn.events();
    let monitor = conn.monitor();

    // Events as they happen.
    {
        let names = names.clone();
        let mut ev = conn.events();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let done = matches!(e, ConnectionEvent::Closed(_));
                say(report::event(&e, &names));
                if done {
                    return;
                }
            }
        });
    }
    // Periodic statistics.
    if stats_on {
        let names = names.clone();
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(s) = monitor.stats() else { return };
                eprintln!(
                    "braid: t={:.0}s {}",
                    started.elapsed().as_secs_f64(),
                    report::conn_line(&s)
                );
                for p in &s.paths {
                    eprintln!("braid:   {}", report::path_line(p, &names));
                }
            }
        });
    }
    // Interface changes from the kernel.
    watch_interfaces(&client, remote.is_ipv4(), say);

    let result = pump(conn).await;
    // Give the DATA_FIN exchange a moment to finish.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(e) = events.recv().await {
            if matches!(e, ConnectionEvent::Closed(_)) {
                return;
            }
        }
    })
    .await;
    if stats_on {
        let s = result.as_ref().ok().and_then(|s| s.clone());
        if let Some(s) = s {
            eprintln!(
                "braid: done after {:.1}s: {}",
                started.elapsed().as_secs_f64(),
                report::conn_line(&s)
            );
            for p in &s.paths {
                eprintln!("braid:   {}", report::path_line(p, &names));
            }
        }
    }
    result.map(|_| 0)
}

/// Copies both ways. Returns the final statistics once the peer has finished.
async fn pump(conn: Connection) -> Result<Option<braid::ConnectionStats>> {
    let monitor = conn.monitor();
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match stdin.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    log::warn!("reading stdin: {}", crate::error::io_msg(&e));
                    0
                }
            };
            if n == 0 {
                let _ = w.shutdown().await;
                return w;
            }
            if let Err(e) = w.write_all(&buf[..n]).await {
                log::debug!("writing to the connection: {e}");
                return w;
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(Failure::new(crate::error::io_msg(&e))),
        };
        if let Err(e) = stdout.write_all(&buf[..n]).await {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // Whoever read our output has gone: stop quietly, like a shell pipeline.
                std::process::exit(141);
            }
            break Err(Failure::new(format!(
                "writing stdout: {}",
                crate::error::io_msg(&e)
            )));
        }
        let _ = stdout.flush().await;
    };
    let _ = stdout.flush().await;
    let stats = monitor.stats();
    // The peer finished: whatever stdin still has is not wanted. Dropping both halves sends
    // our DATA_FIN (after what was written) if stdin has not ended yet.
    writer.abort();
    drop(r);
    outcome.map(|_| stats)
}

/// On Linux, the client follows link and address changes of its interfaces; each one is
/// also said on stderr.
#[cfg(target_os = "linux")]
pub(crate) fn watch_interfaces(client: &Client, v4: bool, say: impl Fn(String) + Send + 'static) {
    use braid::netlink::Change;
    let mut changes = client.watch_interfaces(v4);
    tokio::spawn(async move {
        while let Some(c) = changes.recv().await {
            say(match c {
                Change::Lost { name, why, .. } => format!("interface {name} lost ({why})"),
                Change::Available { name, .. } => format!("interface {name} available"),
            });
        }
    });
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn watch_interfaces(
    _client: &Client,
    _v4: bool,
    _say: impl Fn(String) + Send + 'static,
) {
}
