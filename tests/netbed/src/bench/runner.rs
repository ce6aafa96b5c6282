//! One run: the testbed reset to its standard links, the stack started, the actions applied
//! to the WiFi link at their times, the per-link counters sampled every 50 ms, and
//! everything put on the receiver's time axis.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::braid_peer::{self, BraidServer};
use super::clock;
use super::kernel_peer::{self, KernelServer};
use super::plan::{Action, LinkSeries, RunSpec, Stack, Trace};
use crate::{
    Direction, Endpoint, Link, LinkSetup, Side, Testbed, TestbedConfig, default_link_config,
};

const KERNEL_PORT: u16 = 7100;
const BRAID_UDP_PORT: u16 = 7000;
const BRAID_RAW_PORT: u16 = 7001;
const WIFI_RATE: u64 = 40_000_000;
/// Cellular capacity (bit/s), for "% of the new path's capacity".
pub const CELL_RATE: u64 = 20_000_000;

/// The testbed with a kernel listener and a Braid server per carrier, all serving every run.
pub struct Bench {
    // Servers before the testbed: they are killed before the namespaces go.
    kernel: KernelServer,
    udp: BraidServer,
    raw: BraidServer,
    tb: Testbed,
    braid: PathBuf,
}

impl Bench {
    pub fn up(braid: PathBuf) -> io::Result<Bench> {
        let tb = Testbed::up(TestbedConfig::default())?;
        let kernel = KernelServer::bind(&tb, KERNEL_PORT)?;
        let udp = BraidServer::start(&tb, &braid, Stack::BraidUdp, BRAID_UDP_PORT)?;
        let raw = BraidServer::start(&tb, &braid, Stack::BraidRaw, BRAID_RAW_PORT)?;
        Ok(Bench {
            kernel,
            udp,
            raw,
            tb,
            braid,
        })
    }

    pub fn testbed(&self) -> &Testbed {
        &self.tb
    }

    /// Standard WiFi again: up, passing traffic, 40 Mbit/s and 10 ms both ways.
    fn reset(&self) -> io::Result<()> {
        if !self.tb.interface_is_up(Side::Phone, Link::Wifi)? {
            self.tb.link_up(Link::Wifi)?;
        }
        self.tb.silent_loss(Link::Wifi, false);
        let w = LinkSetup::wifi();
        self.tb.set_link(Link::Wifi, Direction::Up, w.up);
        self.tb.set_link(Link::Wifi, Direction::Down, w.down);
        Ok(())
    }

    fn apply(&self, a: Action) -> io::Result<()> {
        let both = |cfg: crate::LinkConfig| {
            self.tb.set_link(Link::Wifi, Direction::Up, cfg.clone());
            self.tb.set_link(Link::Wifi, Direction::Down, cfg);
        };
        match a {
            Action::LinkDown => self.tb.link_down(Link::Wifi)?,
            Action::LinkUp => self.tb.link_up(Link::Wifi)?,
            Action::Silent(on) => self.tb.silent_loss(Link::Wifi, on),
            Action::Delay(ms) => both(default_link_config(WIFI_RATE, Duration::from_millis(ms))),
            Action::Loss(p) => {
                let mut c = default_link_config(WIFI_RATE, Duration::from_millis(10));
                c.loss = p / 100.0;
                both(c)
            }
        }
        Ok(())
    }

    /// The kernel's path manager on the phone: a subflow from the cellular address,
    /// optionally flagged backup.
    fn kernel_endpoints(&self, backup: bool) -> io::Result<()> {
        self.tb.flush_endpoints(Side::Phone)?;
        let mut ep = Endpoint::on(Side::Phone, Link::Cell).subflow();
        if backup {
            ep = ep.backup();
        }
        self.tb.add_endpoint(Side::Phone, &ep)
    }

    /// Runs `spec` once.
    pub fn run(&self, spec: &RunSpec) -> io::Result<Trace> {
        self.reset()?;
        std::thread::sleep(Duration::from_millis(300));
        if spec.stack == Stack::Kernel {
            self.kernel_endpoints(spec.kernel_backup)?;
        }
        let dir = spec.workload.flow().link_direction();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut pts = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let w = self.tb.counters(Link::Wifi).get(dir).delivered().bytes;
                    let c = self.tb.counters(Link::Cell).get(dir).delivered().bytes;
                    pts.push((clock::now_ns(), w, c));
                    std::thread::sleep(Duration::from_millis(50));
                }
                pts
            });
            let t0 = clock::now_ns();
            let result = self.run_stack(spec, t0, scope);
            stop.store(true, Ordering::Relaxed);
            let pts = sampler.join().expect("link sampler");
            let (origin, mut trace, done) = result?;
            trace.actions = done
                .into_iter()
                .map(|(t, a)| (clock::rel(origin, t), a))
                .collect();
            trace.links = LinkSeries {
                points: pts
                    .into_iter()
                    .map(|(t, w, c)| (clock::rel(origin, t), w, c))
                    .collect(),
            };
            Ok(trace)
        })
    }

    /// Starts the stack, applies the actions (times from `t0`), waits for the result.
    /// Returns the trace's origin, the trace and the actions with their CLOCK_MONOTONIC.
    #[allow(clippy::type_complexity)]
    fn run_stack<'scope, 'env: 'scope>(
        &'env self,
        spec: &RunSpec,
        t0: u64,
        scope: &'scope std::thread::Scope<'scope, 'env>,
    ) -> io::Result<(u64, Trace, Vec<(u64, Action)>)> {
        let w = spec.workload;
        let finish: Box<dyn FnOnce() -> io::Result<(u64, Trace)> + 'scope> = match spec.stack {
            Stack::Kernel => {
                let h = scope.spawn(move || kernel_peer::run(&self.tb, &self.kernel, w));
                Box::new(move || {
                    let k = h
                        .join()
                        .map_err(|_| io::Error::other("kernel run panicked"))??;
                    let trace = Trace {
                        rx: k.rx,
                        echo: k.echo,
                        ..Trace::default()
                    };
                    Ok((k.origin_ns, trace))
                })
            }
            Stack::BraidUdp | Stack::BraidRaw => {
                let server = if spec.stack == Stack::BraidUdp {
                    &self.udp
                } else {
                    &self.raw
                };
                let c = braid_peer::start_client(
                    &self.tb,
                    &self.braid,
                    spec.stack,
                    spec.policy,
                    spec.braid_lazy_backup,
                    server,
                    w,
                )?;
                Box::new(move || {
                    let b = c.finish(w, server)?;
                    let trace = Trace {
                        rx: b.rx,
                        echo: b.echo,
                        events: b.events,
                        cell_live: b.cell_live,
                        ..Trace::default()
                    };
                    Ok((b.origin_ns, trace))
                })
            }
        };
        // The stack needs a moment to connect (a process to start, a handshake): actions
        // are timed from a little after t0; their real times are recorded anyway.
        let lead = Duration::from_millis(if spec.stack.is_braid() { 150 } else { 30 });
        let mut done = Vec::new();
        for (at, a) in &spec.actions {
            let due = t0 + (lead + Duration::from_secs_f64(*at)).as_nanos() as u64;
            let now = clock::now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            self.apply(*a)?;
            done.push((clock::now_ns(), *a));
        }
        let (origin, trace) = finish()?;
        Ok((origin, trace, done))
    }
}
