//! The connection-level receive buffer: data from every subflow, placed by data sequence
//! number, handed to the application in order. Memory is proportional to what is held: the
//! in-order part is one ring, out-of-order pieces are kept as separate chunks until the gap
//! before them fills.

use crate::range_set::RangeSet;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
pub struct Reassembly {
    /// In-order bytes not yet read by the application; `ready[0]` has DSN `read_pos`.
    ready: VecDeque<u8>,
    read_pos: u64,
    /// Out-of-order chunks by starting DSN, all above `rcv_nxt()`, disjoint.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_ranges: RangeSet,
    pending_bytes: usize,
    capacity: usize,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Bytes not held before (in or out of order).
    pub new_bytes: usize,
    /// The in-order edge moved.
    pub advanced: bool,
    /// Some of the offered bytes lay beyond the receive window and were dropped.
    pub beyond_window: bool,
}

impl Reassembly {
    pub fn new(start: u64, capacity: usize) -> Self {
        Self {
            ready: VecDeque::new(),
            read_pos: start,
            pending: BTreeMap::new(),
            pending_ranges: RangeSet::new(),
            pending_bytes: 0,
            capacity,
        }
    }

    /// The next DSN expected in order: what a DATA_ACK acknowledges.
    pub fn rcv_nxt(&self) -> u64 {
        self.read_pos + self.ready.len() as u64
    }

    /// DSN of the next byte the application will read.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Bytes ready for the application.
    pub fn readable(&self) -> usize {
        self.ready.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Right edge of the receive window: nothing at or beyond it is accepted.
    pub fn window_end(&self) -> u64 {
        self.read_pos + self.capacity as u64
    }

    /// Receive window to advertise, measured from `rcv_nxt()`.
    pub fn window(&self) -> u64 {
        self.window_end() - self.rcv_nxt()
    }

    /// Bytes held (in order and out of order).
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.pending_bytes
    }

    /// True if any byte of `dsn..dsn+len` has been received already (in order or not).
    pub fn has_any(&self, dsn: u64, len: u64) -> bool {
        dsn < self.rcv_nxt()
            || self
                .pending_ranges
                .iter()
                .any(|r| r.start < dsn + len && dsn < r.end)
    }

    /// Places `data` at `dsn`. Bytes already received or outside the window are ignored.
    pub fn insert(&mut self, dsn: u64, data: &[u8]) -> Inserted {
        let mut out = Inserted::default();
        let end = dsn + data.len() as u64;
        let lo = dsn.max(self.rcv_nxt());
        let hi = end.min(self.window_end());
        if end > self.window_end() {
            out.beyond_window = true;
        }
        if lo >= hi {
            return out;
        }
        if lo == self.rcv_nxt() {
            // Fast path: extends the in-order data. Take what isn't already pending.
            let upto = self
                .pending_ranges
                .first()
                .map_or(hi, |r| r.start.min(hi).max(lo));
            let from = (lo - dsn) as usize;
            let to = (upto - dsn) as usize;
            self.ready.extend(&data[from..to]);
            out.new_bytes += to - from;
            out.advanced = to > from;
            // Bytes of this segment beyond the first pending chunk are handled as out of order.
            if hi > upto {
                out.new_bytes += self.insert_pending(dsn, data, upto, hi);
            }
            self.drain_pending();
        } else {
            out.new_bytes += self.insert_pending(dsn, data, lo, hi);
        }
        out
    }

    fn insert_pending(&mut self, dsn: u64, data: &[u8], lo: u64, hi: u64) -> usize {
        let mut gaps = RangeSet::new();
        gaps.insert(lo..hi);
        for r in self.pending_ranges.iter() {
            if r.start >= hi {
                break;
            }
            gaps.remove(r.clone());
        }
        let mut added = 0;
        for g in gaps.iter() {
            let from = (g.start - dsn) as usize;
            let to = (g.end - dsn) as usize;
            self.pending.insert(g.start, data[from..to].to_vec());
            added += to - from;
        }
        self.pending_ranges.insert(lo..hi);
        self.pending_bytes += added;
        added
    }

    /// Moves chunks that became contiguous into the in-order ring.
    fn drain_pending(&mut self) {
        loop {
            let nxt = self.rcv_nxt();
            let Some(entry) = self.pending.first_entry() else {
                break;
            };
            let start = *entry.key();
            if start > nxt {
                break;
            }
            let chunk = entry.remove();
            self.pending_bytes -= chunk.len();
            let end = start + chunk.len() as u64;
            if end > nxt {
                self.ready.extend(&chunk[(nxt - start) as usize..]);
            }
        }
        let nxt = self.rcv_nxt();
        self.pending_ranges.remove_below(nxt);
    }

    /// Copies in-order bytes into `dst`; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.ready.len());
        let (a, b) = self.ready.as_slices();
        let na = n.min(a.len());
        dst[..na].copy_from_slice(&a[..na]);
        if n > na {
            dst[na..n].copy_from_slice(&b[..n - na]);
        }
        self.ready.drain(..n);
        self.read_pos += n as u64;
        n
    }

    /// Skips the in-order position forward (plain-TCP fallback after a data-level reset).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut Reassembly) -> Vec<u8> {
        let mut out = vec![0u8; r.readable()];
        let n = r.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn in_order_and_out_of_order() {
        let mut r = Reassembly::new(100, 1000);
        assert!(r.insert(100, b"abc").advanced);
        let ins = r.insert(106, b"ghi");
        assert!(!ins.advanced);
        assert_eq!(ins.new_bytes, 3);
        assert_eq!(r.rcv_nxt(), 103);
        let ins = r.insert(103, b"def");
        assert!(ins.advanced);
        assert_eq!(r.rcv_nxt(), 109);
        assert_eq!(read_all(&mut r), b"abcdefghi");
    }

    #[test]
    fn duplicates_and_overlaps_are_ignored() {
        let mut r = Reassembly::new(0, 1000);
        r.insert(5, b"56789");
        r.insert(3, b"34567");
        assert_eq!(r.insert(3, b"34567").new_bytes, 0);
        r.insert(0, b"012");
        assert_eq!(read_all(&mut r), b"0123456789");
        assert_eq!(r.insert(2, b"2345").new_bytes, 0, "already read");
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn window_is_enforced() {
        let mut r = Reassembly::new(0, 8);
        let ins = r.insert(0, b"0123456789");
        assert!(ins.beyond_window);
        assert_eq!(ins.new_bytes, 8);
        assert_eq!(r.window(), 0);
        let mut two = [0u8; 2];
        r.read(&mut two);
        assert_eq!(r.window(), 2);
        assert_eq!(r.insert(8, b"89x").new_bytes, 2);
        assert_eq!(read_all(&mut r), b"23456789");
    }

    #[test]
    fn random_segments_reassemble_exactly() {
        use crate::random::{Random, SeededRandom};
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for seed in 0..50 {
            let mut rng = SeededRandom::new(seed);
            let mut r = Reassembly::new(1 << 40, 1 << 20);
            let mut got = Vec::new();
            while got.len() < data.len() {
                let a = (rng.next_u64() % data.len() as u64) as usize;
                let b = (a + 1 + (rng.next_u64() % 300) as usize).min(data.len());
                r.insert((1 << 40) + a as u64, &data[a..b]);
                if rng.next_u64() % 4 == 0 {
                    got.extend(read_all(&mut r));
                }
                // Keep progress: sometimes fill the head.
                let head = (r.rcv_nxt() - (1 << 40)) as usize;
                if rng.next_u64() % 8 == 0 && head < data.len() {
                    let e = (head + 100).min(data.len());
                    r.insert((1 << 40) + head as u64, &data[head..e]);
                }
            }
            got.extend(read_all(&mut r));
            assert_eq!(got, data, "seed {seed}");
            assert_eq!(r.buffered(), 0);
        }
    }
}
