//! The connection-level send buffer: bytes the application wrote, addressed by data sequence
//! number (DSN), kept until the peer acknowledges them at the data level and no subflow may
//! still have to retransmit them.

use std::collections::VecDeque;

/// The application's bytes by data sequence number, from the oldest a subflow may still resend
/// to the last written.
#[derive(Debug)]
pub struct SendBuffer {
    bytes: VecDeque<u8>,
    /// DSN of `bytes[0]`.
    start: u64,
    /// Everything below this DSN is acknowledged at the data level: it no longer counts
    /// against the capacity, though bytes a subflow may still resend are kept (`start`).
    acked: u64,
    capacity: usize,
}

impl SendBuffer {
    /// An empty buffer whose first byte will have data offset `start`, taking at most
    /// `capacity` unacknowledged bytes.
    pub fn new(start: u64, capacity: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            start,
            acked: start,
            capacity,
        }
    }

    /// DSN of the oldest byte still held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// DSN one past the last byte written.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Bytes held, acknowledged ones still kept for a resend included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Most unacknowledged bytes accepted from the application.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes how many unacknowledged bytes the buffer accepts; held bytes stay.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Room for more application data: what is not acknowledged counts, what is kept only
    /// for subflow retransmissions does not (it is bounded by the subflows' windows).
    pub fn free(&self) -> usize {
        let unacked = self.end() - self.acked.max(self.start);
        self.capacity.saturating_sub(unacked as usize)
    }

    /// Everything below `dsn` is acknowledged at the data level.
    pub fn set_acked(&mut self, dsn: u64) {
        self.acked = self.acked.max(dsn.min(self.end()));
    }

    /// Appends as much of `data` as fits; returns how much was taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.bytes.extend(&data[..n]);
        n
    }

    /// Forgets everything below `dsn`.
    pub fn release_to(&mut self, dsn: u64) {
        if dsn <= self.start {
            return;
        }
        let n = ((dsn - self.start) as usize).min(self.bytes.len());
        self.bytes.drain(..n);
        self.start += n as u64;
    }

    /// Copies the bytes at `dsn..dsn + dst.len()` into `dst`. Returns false (copying nothing)
    /// if any of them is no longer, or not yet, held.
    pub fn copy_out(&self, dsn: u64, dst: &mut [u8]) -> bool {
        if dsn < self.start || dsn + dst.len() as u64 > self.end() {
            return false;
        }
        let off = (dsn - self.start) as usize;
        let (a, b) = self.bytes.as_slices();
        let mut written = 0;
        if off < a.len() {
            let n = (a.len() - off).min(dst.len());
            dst[..n].copy_from_slice(&a[off..off + n]);
            written = n;
        }
        if written < dst.len() {
            let boff = off + written - a.len();
            let n = dst.len() - written;
            dst[written..].copy_from_slice(&b[boff..boff + n]);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_bounded_and_copy_follows_dsn() {
        let mut b = SendBuffer::new(1000, 10);
        assert_eq!(b.write(b"hello world"), 10);
        assert_eq!(b.end(), 1010);
        let mut out = [0u8; 4];
        assert!(b.copy_out(1006, &mut out));
        assert_eq!(&out, b"worl");
        b.release_to(1006);
        assert_eq!(b.start(), 1006);
        assert!(!b.copy_out(1005, &mut out), "released bytes are gone");
        assert!(!b.copy_out(1008, &mut out), "unwritten bytes are not there");
        assert_eq!(b.write(b"abcdefgh"), 6);
        let mut all = [0u8; 10];
        assert!(b.copy_out(1006, &mut all));
        assert_eq!(&all, b"worlabcdef");
    }

    #[test]
    fn acknowledged_bytes_kept_for_resending_do_not_take_room() {
        let mut b = SendBuffer::new(0, 8);
        assert_eq!(b.write(b"01234567"), 8);
        b.set_acked(6);
        assert_eq!(b.free(), 6, "acknowledged bytes leave room");
        b.release_to(2);
        let mut out = [0u8; 4];
        assert!(b.copy_out(2, &mut out), "kept bytes are still there");
        assert_eq!(&out, b"2345");
        assert_eq!(b.write(b"89abcdefgh"), 6);
        assert_eq!(b.len(), 12, "held beyond capacity only by what was kept");
        b.release_to(6);
        assert_eq!((b.start(), b.free()), (6, 0));
    }

    #[test]
    fn copy_across_ring_wrap() {
        let mut b = SendBuffer::new(0, 8);
        b.write(b"01234567");
        b.release_to(6);
        b.write(b"89ab");
        let mut out = [0u8; 6];
        assert!(b.copy_out(6, &mut out));
        assert_eq!(&out, b"6789ab");
    }
}
