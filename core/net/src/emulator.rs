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

/// Which way a datagram crosses the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From a client towards the upstream.
    Up,
    /// From the upstream back to a client.
    Down,
}

/// Sees every datagram offered to the emulator, with its direction (for tests that play an
/// observer on the path).
pub type Tap = Arc<dyn Fn(Way, &[u8]) + Send + Sync>;

/// One direction: the link model and the datagrams it holds.
struct Direction {
    link: Mutex<(Link, BinaryHeap<Reverse<InFlight>>, u64)>,
    notify: Notify,
    way: Way,
    tap: Mutex<Option<Tap>>,
}

impl Direction {
    fn new(cfg: LinkConfig, seed: u64, way: Way) -> Self {
        Self {
            link: Mutex::new((Link::new(cfg, seed), BinaryHeap::new(), 0)),
            notify: Notify::new(),
            way,
            tap: Mutex::new(None),
        }
    }

    /// Offers a datagram to the link; queues it for delivery unless the link drops it.
    fn offer(&self, dest: Dest, data: Vec<u8>) {
        let tap = lock(&self.tap).clone();
        if let Some(tap) = tap {
            tap(self.way, &data);
        }
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

/// A running path emulator. Dropping it stops it.
pub struct PathEmulator {
    local: SocketAddr,
    /// The socket clients send to (and injected datagrams come from).
    listen: Arc<UdpSocket>,
    up: Arc<Direction>,
    down: Arc<Direction>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Each client flow's upstream socket, by the client's address.
    flows: Flows,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

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
        let listen_sock = sock.clone();
        let seed = local.port() as u64;
        let up = Arc::new(Direction::new(up, seed, Way::Up));
        let down = Arc::new(Direction::new(down, seed ^ 0x5a5a, Way::Down));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let flows: Flows = Arc::default();
        let t = vec![
            tokio::spawn(up.clone().deliver(sock.clone())),
            tokio::spawn(down.clone().deliver(sock.clone())),
            tokio::spawn(Self::client_side(
                sock,
                upstream,
                up.clone(),
                down.clone(),
                tasks.clone(),
                flows.clone(),
            )),
        ];
        lock(&tasks).extend(t);
        Ok(PathEmulator {
            local,
            listen: listen_sock,
            up,
            down,
            tasks,
            flows,
        })
    }

    async fn client_side(
        sock: Arc<UdpSocket>,
        upstream: SocketAddr,
        up: Arc<Direction>,
        down: Arc<Direction>,
        tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
        flows: Flows,
    ) {
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
                Some(f) => f,
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
                    let reader = tokio::spawn(Self::upstream_side(f.clone(), from, down.clone()));
                    lock(&tasks).push(reader);
                    f
                }
            };
            up.offer(Dest::Up(flow), buf[..n].to_vec());
        }
    }

    async fn upstream_side(sock: Arc<UdpSocket>, client: SocketAddr, down: Arc<Direction>) {
        let mut buf = vec![0u8; 65536];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => down.offer(Dest::Down(client), buf[..n].to_vec()),
                // ICMP port unreachable from a closed upstream port: keep going.
                Err(e) => log::debug!("emulator: upstream receive: {e}"),
            }
        }
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Client addresses seen so far (one flow each, with its own upstream socket).
    pub fn clients(&self) -> Vec<SocketAddr> {
        lock(&self.flows).keys().copied().collect()
    }

    /// Sends `datagram` to `client` at once from the emulator's address, past the link
    /// model: the client takes it for one from the upstream (what an attacker who knows the
    /// flow's addresses can forge).
    pub fn inject_down(&self, client: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        self.listen.try_send_to(datagram, client).map(drop)
    }

    /// Calls `tap` with every datagram offered from now on, both ways (`None` removes it).
    pub fn set_tap(&self, tap: Option<Tap>) {
        *lock(&self.up.tap) = tap.clone();
        *lock(&self.down.tap) = tap;
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

    /// Sends `datagram` upstream at once from every client flow's socket, past the link
    /// model (even while it is down): what an attacker who knows the flows' addresses can
    /// forge. Returns how many flows it went out on.
    pub fn inject_up(&self, datagram: &[u8]) -> usize {
        let flows: Vec<_> = lock(&self.flows).values().cloned().collect();
        flows
            .iter()
            .filter(|f| f.try_send(datagram).is_ok())
            .count()
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
