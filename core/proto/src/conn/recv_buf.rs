//! The connection-level receive buffer: data from every subflow, placed by data sequence
//! number, handed to the application in order. Memory is proportional to what is held and
//! bounded by the receive window: the in-order part is one ring; out-of-order bytes are kept
//! as disjoint pieces, merged as soon as they touch, found in O(log n), and limited in number
//! so that a peer sending many tiny holes (a reassembly flood) only stalls itself.

use std::collections::{BTreeMap, VecDeque};

/// Default limit on out-of-order pieces per buffer. Honest reordering and loss over two
/// paths leave a few dozen holes in a window; thousands only come from abuse.
pub(super) const DEFAULT_MAX_PIECES: usize = 1024;

/// The receive side of the data stream: in-order bytes waiting to be read, and out-of-order
/// pieces waiting for the gaps before them.
#[derive(Debug)]
pub struct Reassembly {
    /// In-order bytes not yet read by the application; `ready[0]` has DSN `read_pos`.
    ready: VecDeque<u8>,
    read_pos: u64,
    /// Out-of-order pieces by starting DSN: all above `rcv_nxt()`, disjoint and never
    /// adjacent (touching pieces are merged).
    pending: BTreeMap<u64, VecDeque<u8>>,
    pending_bytes: usize,
    capacity: usize,
    max_pieces: usize,
    /// Out-of-order pieces refused because `max_pieces` were held.
    pieces_refused: u64,
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
    /// An out-of-order piece was refused (too many pieces held); nothing of it was kept.
    pub refused: bool,
}

impl Reassembly {
    /// An empty buffer whose next expected data offset is `start`, holding at most `capacity`
    /// bytes.
    pub fn new(start: u64, capacity: usize) -> Self {
        Self {
            ready: VecDeque::new(),
            read_pos: start,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            capacity,
            max_pieces: DEFAULT_MAX_PIECES,
            pieces_refused: 0,
        }
    }

    /// Limits the out-of-order pieces held at once to `max_pieces` (at least one).
    pub fn with_max_pieces(mut self, max_pieces: usize) -> Self {
        self.max_pieces = max_pieces.max(1);
        self
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

    /// Most bytes held at once (the receive window).
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

    /// Out-of-order pieces held.
    pub fn pieces(&self) -> usize {
        self.pending.len()
    }

    /// Out-of-order pieces refused so far because too many were held.
    pub fn pieces_refused(&self) -> u64 {
        self.pieces_refused
    }

    /// One past the highest byte held out of order, if any.
    pub fn highest_held(&self) -> Option<u64> {
        self.pending
            .last_key_value()
            .map(|(s, p)| s + p.len() as u64)
    }

    /// True if any byte of `dsn..dsn+len` has been received already (in order or not).
    pub fn has_any(&self, dsn: u64, len: u64) -> bool {
        dsn < self.rcv_nxt()
            || self
                .pending
                .range(..dsn.saturating_add(len))
                .next_back()
                .is_some_and(|(s, p)| s + p.len() as u64 > dsn)
    }

    /// Places `data` at `dsn`. Bytes already received or outside the window are ignored; an
    /// out-of-order piece that would exceed the piece limit is refused whole.
    pub fn insert(&mut self, dsn: u64, data: &[u8]) -> Inserted {
        let mut out = Inserted::default();
        let end = dsn.saturating_add(data.len() as u64);
        let lo = dsn.max(self.rcv_nxt());
        let hi = end.min(self.window_end());
        if end > self.window_end() {
            out.beyond_window = true;
        }
        if lo >= hi {
            return out;
        }
        if lo == self.rcv_nxt() {
            // Fast path: extends the in-order data up to the first pending piece; the rest
            // (if the segment overlaps pieces) merges with them and drains below.
            let upto = self
                .pending
                .first_key_value()
                .map_or(hi, |(&s, _)| s.min(hi).max(lo));
            let from = (lo - dsn) as usize;
            let to = (upto - dsn) as usize;
            self.ready.extend(&data[from..to]);
            out.new_bytes += to - from;
            out.advanced = to > from;
            if hi > upto {
                out.new_bytes += self.insert_pending(dsn, data, upto, hi).unwrap_or(0);
            }
            self.drain_pending();
        } else {
            match self.insert_pending(dsn, data, lo, hi) {
                Some(n) => out.new_bytes += n,
                None => {
                    self.pieces_refused += 1;
                    out.refused = true;
                }
            }
        }
        out
    }

    /// Holds `data[lo - dsn..hi - dsn]` out of order, merged with every piece it overlaps
    /// or touches. Returns the bytes not held before, or None if it would be a new piece
    /// beyond the limit.
    fn insert_pending(&mut self, dsn: u64, data: &[u8], lo: u64, hi: u64) -> Option<usize> {
        let piece_end = |s: u64, p: &VecDeque<u8>| s + p.len() as u64;
        let pred = self
            .pending
            .range(..lo)
            .next_back()
            .filter(|(s, p)| piece_end(**s, p) >= lo)
            .map(|(&s, _)| s);
        let succ: Vec<u64> = self.pending.range(lo..=hi).map(|(&s, _)| s).collect();
        if pred.is_none() && succ.is_empty() {
            if self.pending.len() >= self.max_pieces {
                return None;
            }
            let bytes = &data[(lo - dsn) as usize..(hi - dsn) as usize];
            self.pending.insert(lo, bytes.iter().copied().collect());
            self.pending_bytes += bytes.len();
            return Some(bytes.len());
        }
        // Everything involved, in order: held pieces and the new bytes in the gaps between
        // them. The largest piece stays where it is and the rest is added at its ends, so a
        // byte is copied O(log n) times however pieces grow.
        enum Part {
            Held(VecDeque<u8>),
            New(u64, u64),
        }
        let mut parts = Vec::with_capacity(succ.len() * 2 + 2);
        let mut pos = lo;
        let first_start = pred.unwrap_or(lo);
        if let Some(s) = pred {
            let p = self.pending.remove(&s).unwrap_or_default();
            pos = pos.max(piece_end(s, &p));
            parts.push(Part::Held(p));
        }
        for s in succ {
            let p = self.pending.remove(&s).unwrap_or_default();
            if pos < s {
                parts.push(Part::New(pos, s));
            }
            let e = piece_end(s, &p);
            if e <= pos {
                // Entirely inside what the predecessor already holds (cannot happen for
                // disjoint pieces, kept for safety).
                continue;
            }
            let skip = (pos.max(s) - s) as usize;
            let mut p = p;
            p.drain(..skip);
            pos = e;
            parts.push(Part::Held(p));
        }
        if pos < hi {
            parts.push(Part::New(pos, hi));
        }
        let mut added = 0;
        let base_at = parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Part::Held(v) => Some((v.len(), i)),
                Part::New(..) => None,
            })
            .max()
            .map_or(0, |(_, i)| i);
        let mut after = parts.split_off(base_at);
        let mut base = match after.remove(0) {
            Part::Held(v) => v,
            Part::New(a, b) => {
                added += (b - a) as usize;
                data[(a - dsn) as usize..(b - dsn) as usize]
                    .iter()
                    .copied()
                    .collect()
            }
        };
        for part in parts.into_iter().rev() {
            match part {
                Part::Held(v) => v.iter().rev().for_each(|&b| base.push_front(b)),
                Part::New(a, b) => {
                    added += (b - a) as usize;
                    data[(a - dsn) as usize..(b - dsn) as usize]
                        .iter()
                        .rev()
                        .for_each(|&x| base.push_front(x));
                }
            }
        }
        for part in after {
            match part {
                Part::Held(v) => base.extend(v),
                Part::New(a, b) => {
                    added += (b - a) as usize;
                    base.extend(&data[(a - dsn) as usize..(b - dsn) as usize]);
                }
            }
        }
        self.pending.insert(first_start, base);
        self.pending_bytes += added;
        Some(added)
    }

    /// Moves the piece that became contiguous (at most one: pieces never touch) into the
    /// in-order ring.
    fn drain_pending(&mut self) {
        let nxt = self.rcv_nxt();
        let Some(entry) = self.pending.first_entry() else {
            return;
        };
        let start = *entry.key();
        if start > nxt {
            return;
        }
        let mut piece = entry.remove();
        self.pending_bytes -= piece.len();
        let skip = ((nxt - start) as usize).min(piece.len());
        piece.drain(..skip);
        if self.ready.is_empty() {
            self.ready = piece;
        } else {
            self.ready.extend(piece);
        }
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
                if rng.next_u64().is_multiple_of(4) {
                    got.extend(read_all(&mut r));
                }
                // Keep progress: sometimes fill the head.
                let head = (r.rcv_nxt() - (1 << 40)) as usize;
                if rng.next_u64().is_multiple_of(8) && head < data.len() {
                    let e = (head + 100).min(data.len());
                    r.insert((1 << 40) + head as u64, &data[head..e]);
                }
            }
            got.extend(read_all(&mut r));
            assert_eq!(got, data, "seed {seed}");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn touching_pieces_merge_in_either_direction() {
        let mut r = Reassembly::new(0, 1 << 20);
        for i in 0..100u64 {
            r.insert(1000 + i, &[i as u8]);
        }
        assert_eq!(r.pieces(), 1, "ascending 1-byte pieces are one piece");
        for i in (0..100u64).rev() {
            r.insert(500 + i, &[i as u8]);
        }
        assert_eq!(r.pieces(), 2, "descending ones too");
        r.insert(600, &[7u8; 400]);
        assert_eq!(r.pieces(), 1, "a piece bridging two merges all three");
        assert_eq!(r.highest_held(), Some(1100));
        assert!(r.has_any(599, 2) && r.has_any(1099, 5) && !r.has_any(1100, 5));
        assert!(!r.has_any(400, 100), "bytes 400..500 are a hole");
        let mut head = vec![0u8; 500];
        head[0] = 1;
        let ins = r.insert(0, &head);
        assert!(ins.advanced);
        assert_eq!((r.rcv_nxt(), r.pieces(), r.buffered()), (1100, 0, 1100));
    }

    #[test]
    fn piece_limit_refuses_the_newest_and_holds_no_more() {
        let mut r = Reassembly::new(0, 1 << 20).with_max_pieces(8);
        for i in 0..8u64 {
            assert!(!r.insert(100 + 10 * i, b"x").refused);
        }
        let ins = r.insert(500, b"y");
        assert!(ins.refused && ins.new_bytes == 0);
        assert_eq!((r.pieces(), r.pieces_refused(), r.buffered()), (8, 1, 8));
        assert!(!r.insert(101, b"z").refused, "growing a held piece is fine");
        assert_eq!(r.pieces(), 8);
        // The hole fills; the refused piece comes again and is taken.
        r.insert(0, &[0u8; 200]);
        assert_eq!(r.pieces(), 0);
        assert!(!r.insert(500, b"y").refused);
    }

    #[test]
    fn scattered_one_byte_flood_is_bounded() {
        use crate::random::{Random, SeededRandom};
        let mut rng = SeededRandom::new(3);
        let mut r = Reassembly::new(0, 4 << 20);
        for _ in 0..100_000 {
            let at = 1 + rng.next_u64() % (4 << 20);
            r.insert(at, b"!");
        }
        assert_eq!(r.pieces(), DEFAULT_MAX_PIECES);
        assert!(r.buffered() <= 2 * DEFAULT_MAX_PIECES);
        assert!(r.pieces_refused() > 90_000);
        assert_eq!(r.rcv_nxt(), 0);
    }
}
