//! The relay: one thread that moves IP packets between the TUN devices of each link through a
//! link model per direction.
//!
//! Loop: `ppoll` on the four TUN files and a wake-up socket, with a nanosecond timeout equal
//! to the earliest pending delivery. Readable TUN files are drained (bounded per pass, so one
//! busy direction cannot starve the others); each packet is offered to its direction's model,
//! which returns a delivery time or a drop. Accepted packets wait in a min-heap ordered by
//! delivery time; due ones are written to the far TUN file if the model still lets them
//! arrive (`Link::arrive`: a link that went down meanwhile loses what was in flight).
//! Buffers are recycled, so the steady state does not allocate.
//!
//! Control (link down, silent loss, new configs, counters) goes through a mutex the relay
//! holds only while it processes a batch, plus a wake-up byte so changes apply at once.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use braid_proto::sim::link::{Counter, Fate, Link as LinkModel, LinkConfig, LinkStats};

use crate::{Direction, Link, Side};

/// Packets read from one TUN file per pass before the others get a turn.
const READ_BURST: usize = 128;
/// Largest packet a TUN device hands us (its MTU is 1500; this leaves room for changes).
const MAX_PACKET: usize = 65_536;
/// Recycled buffers kept at most.
const POOL_MAX: usize = 8192;

/// Counters of one direction of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// What the link model saw: offered, delivered, dropped (down, queue, random, in flight).
    pub model: LinkStats,
    /// Packets the model delivered but the far TUN device refused (its interface was down).
    pub unwritable: Counter,
}

impl DirectionCounters {
    /// Packets and bytes that reached the far side.
    pub fn delivered(&self) -> Counter {
        Counter {
            packets: self.model.delivered.packets - self.unwritable.packets,
            bytes: self.model.delivered.bytes - self.unwritable.bytes,
        }
    }

    /// Everything that did not reach the far side.
    pub fn dropped(&self) -> Counter {
        self.model.dropped() + self.unwritable
    }
}

/// Counters of one link, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Phone -> server.
    pub up: DirectionCounters,
    /// Server -> phone.
    pub down: DirectionCounters,
}

impl LinkCounters {
    pub fn get(&self, dir: Direction) -> &DirectionCounters {
        match dir {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

/// The two TUN files of one link.
pub(crate) struct LinkFiles {
    pub phone: File,
    pub server: File,
}

struct DirState {
    model: LinkModel,
    unwritable: Counter,
}

struct LinkState {
    dirs: [DirState; 2],
    /// The phone interface was taken down (`link_down`).
    admin_down: bool,
    /// Everything is dropped while the interfaces stay up (`silent_loss`).
    silent: bool,
}

impl LinkState {
    fn apply_down(&mut self) {
        let down = self.admin_down || self.silent;
        for d in &mut self.dirs {
            d.model.set_down(down);
        }
    }
}

struct State {
    links: [LinkState; 2],
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

/// A running relay; dropping it stops the thread and closes the TUN files (which removes the
/// TUN interfaces).
pub(crate) struct Relay {
    shared: Arc<Shared>,
    waker: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts the relay thread. `configs[link][direction]`, `files[link]`.
    pub(crate) fn start(
        name: &str,
        files: [LinkFiles; 2],
        configs: [[LinkConfig; 2]; 2],
        seed: u64,
    ) -> io::Result<Relay> {
        let mut k = 0u64;
        let links = configs.map(|[up, down]| {
            let mut make = |cfg: LinkConfig| {
                k += 1;
                DirState {
                    model: LinkModel::new(cfg, seed_for(seed, k)),
                    unwritable: Counter::default(),
                }
            };
            LinkState {
                dirs: [make(up), make(down)],
                admin_down: false,
                silent: false,
            }
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State { links }),
            stop: AtomicBool::new(false),
        });
        let (waker, wake_rx) = UnixStream::pair()?;
        waker.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("nb-relay-{name}"))
            .spawn(move || {
                if let Err(e) = run(&thread_shared, &wake_rx, &files) {
                    eprintln!("braid-netbed: relay stopped: {e}");
                }
            })?;
        Ok(Relay {
            shared,
            waker,
            thread: Some(thread),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in the relay thread while it held the lock leaves consistent-enough data:
        // counters and flags only.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self) {
        let _ = (&self.waker).write(&[1]);
    }

    /// Link down at the relay: drops both ways, loses what is in flight.
    pub(crate) fn set_admin_down(&self, link: Link, down: bool) {
        let mut st = self.state();
        let l = &mut st.links[link.index()];
        l.admin_down = down;
        l.apply_down();
        drop(st);
        self.wake();
    }

    pub(crate) fn set_silent_loss(&self, link: Link, on: bool) {
        let mut st = self.state();
        let l = &mut st.links[link.index()];
        l.silent = on;
        l.apply_down();
        drop(st);
        self.wake();
    }

    pub(crate) fn is_silent(&self, link: Link) -> bool {
        self.state().links[link.index()].silent
    }

    pub(crate) fn set_config(&self, link: Link, dir: Direction, cfg: LinkConfig) {
        self.state().links[link.index()].dirs[dir.index()]
            .model
            .set_config(cfg);
        self.wake();
    }

    pub(crate) fn config(&self, link: Link, dir: Direction) -> LinkConfig {
        self.state().links[link.index()].dirs[dir.index()]
            .model
            .config()
            .clone()
    }

    pub(crate) fn counters(&self, link: Link) -> LinkCounters {
        let st = self.state();
        let l = &st.links[link.index()];
        let get = |dir: Direction| DirectionCounters {
            model: l.dirs[dir.index()].model.stats(),
            unwritable: l.dirs[dir.index()].unwritable,
        };
        LinkCounters {
            up: get(Direction::Up),
            down: get(Direction::Down),
        }
    }

    /// Stops the thread and waits for it. Idempotent.
    pub(crate) fn stop(&mut self) {
        self.shared.stop.store(true, AtomicOrdering::SeqCst);
        self.wake();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("braid-netbed: the relay thread panicked");
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn seed_for(seed: u64, k: u64) -> u64 {
    // splitmix64 step: well-spread, distinct seeds per direction.
    let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A packet waiting for its delivery time.
struct Pending {
    due: Instant,
    seq: u64,
    link: usize,
    dir: usize,
    epoch: u64,
    buf: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest (then the oldest) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Index in the poll set: 0 is the wake-up socket, then (link, side) pairs.
fn poll_slot(link: usize, side: Side) -> usize {
    1 + link * 2
        + match side {
            Side::Phone => 0,
            Side::Server => 1,
        }
}

fn file_of(files: &[LinkFiles; 2], link: usize, side: Side) -> &File {
    match side {
        Side::Phone => &files[link].phone,
        Side::Server => &files[link].server,
    }
}

fn run(shared: &Shared, wake_rx: &UnixStream, files: &[LinkFiles; 2]) -> io::Result<()> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 5];
    pfds[0].fd = wake_rx.as_raw_fd();
    for link in 0..2 {
        for side in [Side::Phone, Side::Server] {
            pfds[poll_slot(link, side)].fd = file_of(files, link, side).as_raw_fd();
        }
    }
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut scratch = vec![0u8; MAX_PACKET];
    let mut seq = 0u64;

    while !shared.stop.load(AtomicOrdering::SeqCst) {
        let timeout = heap
            .peek()
            .map(|p| p.due.saturating_duration_since(Instant::now()));
        poll(&mut pfds, timeout)?;
        if pfds[0].revents != 0 {
            let mut sink = [0u8; 64];
            while matches!((&*wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        let mut st = shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());

        for link in 0..2 {
            for side in [Side::Phone, Side::Server] {
                let slot = poll_slot(link, side);
                let revents = pfds[slot].revents;
                if revents == 0 {
                    continue;
                }
                if revents & (libc::POLLERR | libc::POLLNVAL) != 0 && revents & libc::POLLIN == 0 {
                    // The device is gone (it cannot be while we hold the file) or broken:
                    // stop polling it rather than spin.
                    eprintln!("braid-netbed: relay: TUN poll error {revents:#x}, ignoring it");
                    pfds[slot].fd = -1;
                    continue;
                }
                let dir = Direction::from_sender(side).index();
                let file = file_of(files, link, side);
                for _ in 0..READ_BURST {
                    let n = match (&*file).read(&mut scratch) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break, // WouldBlock, or the interface is down
                    };
                    let ds = &mut st.links[link].dirs[dir];
                    let now = Instant::now();
                    let fate = ds.model.offer(now, n);
                    let epoch = ds.model.epoch();
                    let mut push = |due: Instant, buf: Vec<u8>| {
                        seq += 1;
                        heap.push(Pending {
                            due,
                            seq,
                            link,
                            dir,
                            epoch,
                            buf,
                        });
                    };
                    match fate {
                        Fate::Dropped(_) => {}
                        Fate::Deliver(due) => {
                            let mut buf = pool.pop().unwrap_or_default();
                            buf.clear();
                            buf.extend_from_slice(&scratch[..n]);
                            push(due, buf);
                        }
                        Fate::Duplicate(first, second) => {
                            let mut buf = pool.pop().unwrap_or_default();
                            buf.clear();
                            buf.extend_from_slice(&scratch[..n]);
                            push(second, buf.clone());
                            push(first, buf);
                        }
                    }
                }
            }
        }

        let now = Instant::now();
        while heap.peek().is_some_and(|p| p.due <= now) {
            let Some(p) = heap.pop() else { break };
            let ds = &mut st.links[p.link].dirs[p.dir];
            if ds.model.arrive(p.buf.len(), p.epoch) {
                let to = match p.dir {
                    0 => Side::Server,
                    _ => Side::Phone,
                };
                let file = file_of(files, p.link, to);
                if (&*file).write(&p.buf).is_err() {
                    ds.unwritable.add(p.buf.len());
                }
            }
            if pool.len() < POOL_MAX {
                pool.push(p.buf);
            }
        }
    }
    Ok(())
}

/// `ppoll` with a nanosecond timeout (`None` = wait forever).
fn poll(pfds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a valid, exclusively borrowed array of pollfd of the given length;
    // `ts_ptr` is null or points at `ts`, alive for the call; no signal mask is passed.
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            for p in pfds.iter_mut() {
                p.revents = 0;
            }
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_pops_earliest_then_oldest() {
        let t0 = Instant::now();
        let mk = |ms: u64, seq: u64| Pending {
            due: t0 + Duration::from_millis(ms),
            seq,
            link: 0,
            dir: 0,
            epoch: 0,
            buf: Vec::new(),
        };
        let mut heap = BinaryHeap::new();
        heap.push(mk(5, 1));
        heap.push(mk(1, 3));
        heap.push(mk(1, 2));
        heap.push(mk(3, 4));
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|p| p.seq)).collect();
        assert_eq!(order, [2, 3, 4, 1]);
    }

    #[test]
    fn seeds_differ_per_direction() {
        assert_ne!(seed_for(1, 1), seed_for(1, 2));
        assert_ne!(seed_for(1, 1), seed_for(2, 1));
    }
}
