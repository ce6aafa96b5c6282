//! A userspace path emulator: a UDP relay on loopback that pushes every datagram through a
//! [`Link`] model (rate, delay, queue, loss, outages) in each direction. No root needed.
//!
//! Like a NAT, it gives every client flow (source address) its own upstream socket, so the
//! server sees one distinct source address per emulated path. Packets keep the link's outage
//! epoch from when they were offered: taking the link down loses those still in flight.

use braid_proto::sim::link::{Fate, Link, LinkConfig, LinkStats};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::driver::lock;

/// Where a delayed datagram goes.
#[derive(Clone)]
enum Dest {
    /// Upstream, from this flow's own socket.
    Up(Arc<UdpSocket>),
    /// Back to the client, from the listening socket.
    Down(SocketAddr),
}

struct InFlight {
    at: Instant,
    seq: u64,
    epoch: u64,
    dest: Dest,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One direction: the link model and the datagrams it holds.
struct Direction {
    link: Mutex<(Link, BinaryHeap<Reverse<InFlight>>, u64)>,
    notify: Notify,
}

impl Direction {
    fn new(cfg: LinkConfig, seed: u64) -> Self {
        Self {
            link: Mutex::new((Link::new(cfg, seed), BinaryHeap::new(), 0)),
            notify: Notify::new(),
        }
    }

    /// Offers a datagram to the link; queues it for delivery unless the link drops it.
    fn offer(&self, dest: Dest, data: Vec<u8>) {
        let mut g = lock(&self.link);
        let (link, heap, seq) = &mut *g;
        let now = Instant::now();
        let epoch = link.epoch();
        let times = match link.offer(now, data.len()) {
            Fate::Dropped(_) => return,
            Fate::Deliver(t) => [Some(t), None],
            Fate::Duplicate(a, b) => [Some(a), Some(b)],
        };
        let first = heap.peek().map(|Reverse(p)| p.at);
        for at in times.into_iter().flatten() {
            *seq += 1;
            heap.push(Reverse(InFlight {
                at,
                seq: *seq,
                epoch,
                dest: dest.clone(),
                data: data.clone(),
            }));
        }
        let new_first = heap.peek().map(|Reverse(p)| p.at);
        drop(g);
        if new_first != first {
            self.notify.notify_one();
        }
    }

    /// Delivers datagrams at their time, forever.
    async fn deliver(self: Arc<Self>, listen: Arc<UdpSocket>) {
        loop {
            let (due, next) = {
                let mut g = lock(&self.link);
                let (link, heap, _) = &mut *g;
                let now = Instant::now();
                let mut due = Vec::new();
                while heap.peek().is_some_and(|Reverse(p)| p.at <= now) {
                    let Some(Reverse(p)) = heap.pop() else { break };
                    if link.arrive(p.data.len(), p.epoch) {
                        due.push(p);
                    }
                }
                (due, heap.peek().map(|Reverse(p)| p.at))
            };
            for p in due {
                let r = match &p.dest {
                    Dest::Up(sock) => sock.try_send(&p.data),
                    Dest::Down(to) => listen.try_send_to(&p.data, *to),
                };
                if let Err(e) = r {
                    log::debug!("emulator: datagram lost on send: {e}");
                }
            }
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(t)) => {}
                        _ = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }
}

/// Which way a datagram crosses the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From a client towards the upstream.
    Up,
    /// From the upstream back to a client.
    Down,
}

/// Sees every datagram as it enters the emulator: its direction, the client flow it belongs
/// to and its bytes (for tests that play an observer on the path).
pub type Tap = Arc<dyn Fn(Way, SocketAddr, &[u8]) + Send + Sync>;

/// Client flows (by client address) and their upstream sockets.
type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// What the client-side task shares with the emulator handle.
struct Sides {
    flows: Flows,
    tap: Arc<Mutex<Option<Tap>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// A running path emulator. Dropping it stops it.
pub struct PathEmulator {
    local: SocketAddr,
    listen: Arc<UdpSocket>,
    up: Arc<Direction>,
    down: Arc<Direction>,
    flows: Flows,
    tap: Arc<Mutex<Option<Tap>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl PathEmulator {
    /// Relays datagrams received on `listen` to `upstream` through `up`, and the answers
    /// back through `down`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
    ) -> io::Result<PathEmulator> {
        let sock = Arc::new(UdpSocket::bind(listen).await?);
        let local = sock.local_addr()?;
        let seed = local.port() as u64;
        let up = Arc::new(Direction::new(up, seed));
        let down = Arc::new(Direction::new(down, seed ^ 0x5a5a));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let flows: Flows = Arc::new(Mutex::new(HashMap::new()));
        let tap: Arc<Mutex<Option<Tap>>> = Arc::new(Mutex::new(None));
        let t = vec![
            tokio::spawn(up.clone().deliver(sock.clone())),
            tokio::spawn(down.clone().deliver(sock.clone())),
            tokio::spawn(Self::client_side(
                sock.clone(),
                upstream,
                up.clone(),
                down.clone(),
                Sides {
                    flows: flows.clone(),
                    tap: tap.clone(),
                    tasks: tasks.clone(),
                },
            )),
        ];
        lock(&tasks).extend(t);
        Ok(PathEmulator {
            local,
            listen: sock,
            up,
            down,
            flows,
            tap,
            tasks,
        })
    }

    async fn client_side(
        sock: Arc<UdpSocket>,
        upstream: SocketAddr,
        up: Arc<Direction>,
        down: Arc<Direction>,
        sides: Sides,
    ) {
        let Sides { flows, tap, tasks } = sides;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    log::debug!("emulator: receive: {e}");
                    continue;
                }
            };
            let known = lock(&flows).get(&from).cloned();
            let flow = match known {
                Some(f) => f.clone(),
                None => {
                    let bind: SocketAddr = if upstream.is_ipv4() {
                        "127.0.0.1:0".parse().unwrap_or(upstream)
                    } else {
                        "[::1]:0".parse().unwrap_or(upstream)
                    };
                    let f = match UdpSocket::bind(bind).await {
                        Ok(f) => f,
                        Err(e) => {
                            log::warn!("emulator: no upstream socket: {e}");
                            continue;
                        }
                    };
                    if let Err(e) = f.connect(upstream).await {
                        log::warn!("emulator: cannot reach {upstream}: {e}");
                        continue;
                    }
                    let f = Arc::new(f);
                    lock(&flows).insert(from, f.clone());
                    let reader = tokio::spawn(Self::upstream_side(
                        f.clone(),
                        from,
                        down.clone(),
                        tap.clone(),
                    ));
                    lock(&tasks).push(reader);
                    f
                }
            };
            let t = lock(&tap).clone();
            if let Some(t) = t {
                t(Way::Up, from, &buf[..n]);
            }
            up.offer(Dest::Up(flow), buf[..n].to_vec());
        }
    }

    async fn upstream_side(
        sock: Arc<UdpSocket>,
        client: SocketAddr,
        down: Arc<Direction>,
        tap: Arc<Mutex<Option<Tap>>>,
    ) {
        let mut buf = vec![0u8; 65536];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => {
                    let t = lock(&tap).clone();
                    if let Some(t) = t {
                        t(Way::Down, client, &buf[..n]);
                    }
                    down.offer(Dest::Down(client), buf[..n].to_vec())
                }
                // ICMP port unreachable from a closed upstream port: keep going.
                Err(e) => log::debug!("emulator: upstream receive: {e}"),
            }
        }
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Takes both directions down (everything in flight is lost) or back up.
    pub fn set_down(&self, down: bool) {
        lock(&self.up.link).0.set_down(down);
        lock(&self.down.link).0.set_down(down);
    }

    /// Random loss in both directions.
    pub fn set_loss(&self, p: f64) {
        for d in [&self.up, &self.down] {
            let mut g = lock(&d.link);
            let cfg = g.0.config().clone().with_loss(p.clamp(0.0, 1.0));
            g.0.set_config(cfg);
        }
    }

    /// New parameters for datagrams offered from now on.
    pub fn set_config(&self, up: LinkConfig, down: LinkConfig) {
        lock(&self.up.link).0.set_config(up);
        lock(&self.down.link).0.set_config(down);
    }

    /// Client addresses seen so far (one flow each, with its own upstream socket).
    pub fn clients(&self) -> Vec<SocketAddr> {
        lock(&self.flows).keys().copied().collect()
    }

    /// Sends `data` upstream from `client`'s flow socket, at once and past the link model:
    /// the upstream sees it coming from that client's 4-tuple (an attacker on the path).
    pub fn inject_up(&self, client: SocketAddr, data: &[u8]) -> io::Result<()> {
        let flow = lock(&self.flows).get(&client).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no flow from {client}"))
        })?;
        flow.try_send(data).map(drop)
    }

    /// Sends `data` to `client` from the emulator's address, at once and past the link
    /// model: the client sees it coming from the upstream.
    pub fn inject_down(&self, client: SocketAddr, data: &[u8]) -> io::Result<()> {
        self.listen.try_send_to(data, client).map(drop)
    }

    /// Calls `tap` with every datagram from now on (`None` removes it).
    pub fn set_tap(&self, tap: Option<Tap>) {
        *lock(&self.tap) = tap;
    }

    /// Counters of the client-to-upstream and upstream-to-client directions.
    pub fn stats(&self) -> (LinkStats, LinkStats) {
        (
            lock(&self.up.link).0.stats(),
            lock(&self.down.link).0.stats(),
        )
    }
}

impl Drop for PathEmulator {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}
