//! `braid gateway --workers N`: N gateways in one process, each on its own OS thread with
//! its own current-thread runtime and endpoint, sharing the listening port (SO_REUSEPORT),
//! each with its own announced address (see docs/ARCHITECTURE.md, "Every core").

use crate::error::{Failure, Result};
use braid::gateway::metrics::WorkerView;
use braid::gateway::{DrainReport, Gateway, GatewayConfig, GatewayStats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Each worker's announced address, from `--announce`: none; one `ADDR:PORT` as the base
/// (worker i gets port PORT+i); or exactly one per worker, in order.
pub fn announce_plan(list: &[SocketAddr], workers: usize) -> Result<Vec<Option<SocketAddr>>> {
    match list {
        [] => Ok(vec![None; workers]),
        [base] => (0..workers)
            .map(|i| {
                let port = u16::try_from(i)
                    .ok()
                    .and_then(|i| base.port().checked_add(i))
                    .filter(|_| base.port() != 0 || workers == 1)
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--announce {base}: {workers} workers need ports {}..{} (and not 0)",
                            base.port(),
                            u32::from(base.port()) + workers as u32 - 1
                        ))
                    })?;
                Ok(Some(SocketAddr::new(base.ip(), port)))
            })
            .collect(),
        many if many.len() == workers => Ok(many.iter().copied().map(Some).collect()),
        many => Err(Failure::usage(format!(
            "--announce: give one address (the base) or one per worker; got {} for {workers} workers",
            many.len()
        ))),
    }
}

/// The running workers.
pub struct Workers {
    /// The shared listening address, as bound.
    pub addr: SocketAddr,
    /// Each worker's own address, as bound.
    pub announced: Vec<Option<SocketAddr>>,
    pub views: Vec<WorkerView>,
    stop: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<Option<DrainReport>>>,
}

/// How a worker binds its gateway.
#[derive(Clone)]
pub struct Bind {
    pub listen: SocketAddr,
    pub cfg: GatewayConfig,
    pub raw: Option<braid::raw::RawConfig>,
    pub drain_timeout: Duration,
}

impl Workers {
    /// Starts one worker per entry of `announce`, one after the other: the first binds
    /// `listen` (port 0 picks one), the others its port.
    pub fn start(b: Bind, announce: Vec<Option<SocketAddr>>) -> Result<Workers> {
        let n = announce.len();
        if n > 1 && b.raw.is_some() {
            // A raw socket sees every segment for its port, whatever the others do.
            return Err(Failure::usage(
                "--workers above 1 needs the UDP carrier (raw sockets cannot share a port)",
            ));
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut w = Workers {
            addr: b.listen,
            announced: Vec::with_capacity(n),
            views: Vec::with_capacity(n),
            stop,
            done: Vec::with_capacity(n),
        };
        for (i, own) in announce.into_iter().enumerate() {
            let mut cfg = b.cfg.clone();
            cfg.reuse_port = n > 1;
            cfg.announce = own;
            let bind = Bind {
                listen: w.addr,
                cfg,
                raw: b.raw.clone(),
                drain_timeout: b.drain_timeout,
            };
            let (ready, done) = spawn_worker(i, bind, stop_rx.clone())?;
            let started = ready
                .recv()
                .map_err(|_| Failure::new(format!("gateway worker {i} died while starting")))??;
            w.addr = started.addr;
            w.announced.push(started.announced);
            w.views.push(started.view);
            w.done.push(done);
        }
        Ok(w)
    }

    /// Every worker's counters.
    pub fn stats(&self) -> Vec<Arc<GatewayStats>> {
        self.views.iter().map(|v| v.stats.clone()).collect()
    }

    /// Drains every worker once `stop` completes; `None` if a worker's endpoint stopped
    /// first. The reports are summed.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<DrainReport> {
        let Workers { stop: tx, done, .. } = self;
        let mut all = Box::pin(all_drained(done));
        tokio::select! {
            () = stop => {}
            r = &mut all => return r,
        }
        let _ = tx.send(true);
        all.await
    }
}

/// Waits for every worker; `None` as soon as one stopped without a drain.
async fn all_drained(done: Vec<oneshot::Receiver<Option<DrainReport>>>) -> Option<DrainReport> {
    let mut sum = DrainReport {
        open_at_start: 0,
        closed: 0,
    };
    let mut set = tokio::task::JoinSet::new();
    for d in done {
        set.spawn(d);
    }
    while let Some(r) = set.join_next().await {
        let r = r.ok()?.ok()??;
        sum.open_at_start += r.open_at_start;
        sum.closed += r.closed;
    }
    Some(sum)
}

/// What a worker reports once bound.
struct Started {
    addr: SocketAddr,
    announced: Option<SocketAddr>,
    view: WorkerView,
}

type Ready = std::sync::mpsc::Receiver<Result<Started>>;

fn spawn_worker(
    i: usize,
    b: Bind,
    mut stop: watch::Receiver<bool>,
) -> Result<(Ready, oneshot::Receiver<Option<DrainReport>>)> {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("braid-gw{i}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(Failure::new(format!(
                        "gateway worker {i}: cannot start its runtime: {e}"
                    ))));
                    return;
                }
            };
            rt.block_on(async move {
                let bound = match b.raw {
                    None => Gateway::bind(b.listen, b.cfg).await,
                    Some(raw) => Gateway::bind_raw(b.listen, b.cfg, raw).await,
                };
                let gw = match bound {
                    Ok(gw) => gw,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(Started {
                    addr: gw.local_addr(),
                    announced: gw.announced_addr(),
                    view: gw.metrics_view(),
                }));
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let report = gw.run_until(stopped, b.drain_timeout).await;
                let _ = done_tx.send(report);
            });
        })
        .map_err(|e| Failure::new(format!("cannot start gateway worker {i}: {e}")))?;
    Ok((ready, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn announce_schemes() {
        assert_eq!(announce_plan(&[], 3).unwrap(), vec![None; 3]);
        assert_eq!(
            announce_plan(&[a("10.0.0.1:7100")], 3).unwrap(),
            vec![
                Some(a("10.0.0.1:7100")),
                Some(a("10.0.0.1:7101")),
                Some(a("10.0.0.1:7102"))
            ]
        );
        let list = [a("10.0.0.1:7100"), a("10.0.0.2:7100")];
        assert_eq!(
            announce_plan(&list, 2).unwrap(),
            vec![Some(list[0]), Some(list[1])]
        );
        assert!(announce_plan(&list, 3).is_err());
        assert!(announce_plan(&[a("10.0.0.1:65535")], 2).is_err());
        assert!(announce_plan(&[a("10.0.0.1:0")], 2).is_err());
        assert_eq!(
            announce_plan(&[a("10.0.0.1:0")], 1).unwrap(),
            vec![Some(a("10.0.0.1:0"))]
        );
    }
}
