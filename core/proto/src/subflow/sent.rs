//! Segments a subflow has sent and not yet had cumulatively acknowledged: the SACK scoreboard
//! and the record RACK uses to decide what was lost.

use std::collections::VecDeque;
use std::time::Instant;

/// One transmitted segment. Subflow sequence offsets are relative to the ISN (SYN = 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentSeg {
    pub ssn: u64,
    pub len: u32,
    /// Data sequence number of the first payload byte (meaningless for pure FIN/SYN).
    pub dsn: u64,
    /// Carries the connection-level DATA_FIN (which takes one DSN after the payload).
    pub data_fin: bool,
    /// Carries the subflow FIN (takes one subflow sequence number after the payload).
    pub fin: bool,
    pub syn: bool,
    pub sent_at: Instant,
    pub retransmitted: bool,
    pub sacked: bool,
    /// Declared lost and waiting for retransmission.
    pub lost: bool,
}

impl SentSeg {
    /// Subflow sequence space the segment occupies (payload + SYN/FIN flags).
    pub(crate) fn seq_len(&self) -> u64 {
        self.len as u64 + self.fin as u64 + self.syn as u64
    }

    pub(crate) fn end(&self) -> u64 {
        self.ssn + self.seq_len()
    }

    /// Counted in the RFC 6675 "pipe": sent, not SACKed, not waiting as lost.
    pub(crate) fn in_pipe(&self) -> bool {
        !self.sacked && !self.lost
    }
}

/// The outstanding segments in subflow-sequence order, with running byte counts.
#[derive(Debug, Default)]
pub(crate) struct SentQueue {
    segs: VecDeque<SentSeg>,
    /// Bytes of sequence space in the pipe.
    pub in_flight: u64,
    pub lost_count: usize,
    pub sacked_count: usize,
    /// (ssn, dsn) of payload-carrying segments whose DSN is lower than every later one's:
    /// the front is the lowest DSN this subflow may still have to retransmit. Segments only
    /// leave from the front, so this is a sliding-window minimum, O(1) amortized.
    dsn_floor: VecDeque<(u64, u64)>,
}

impl SentQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.segs.len()
    }

    pub(crate) fn front(&self) -> Option<&SentSeg> {
        self.segs.front()
    }

    pub(crate) fn back(&self) -> Option<&SentSeg> {
        self.segs.back()
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &SentSeg> + '_ {
        self.segs.iter()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&SentSeg> {
        self.segs.get(i)
    }

    pub(crate) fn push(&mut self, seg: SentSeg) {
        debug_assert!(self.segs.back().is_none_or(|b| b.end() <= seg.ssn));
        self.in_flight += seg.seq_len();
        if seg.len > 0 {
            while self.dsn_floor.back().is_some_and(|&(_, d)| d >= seg.dsn) {
                self.dsn_floor.pop_back();
            }
            self.dsn_floor.push_back((seg.ssn, seg.dsn));
        }
        self.segs.push_back(seg);
    }

    /// Lowest DSN among the payload bytes this subflow has not had acknowledged: the send
    /// buffer must keep everything from there on.
    pub(crate) fn lowest_dsn(&self) -> Option<u64> {
        self.dsn_floor.front().map(|&(_, d)| d)
    }

    /// Removes every segment fully below `ack`, trimming a partially acknowledged one.
    /// Calls `on_removed` for each removed (or trimmed) segment with the bytes acknowledged.
    pub(crate) fn ack_to(&mut self, ack: u64, mut on_removed: impl FnMut(&SentSeg, u64)) {
        while let Some(front) = self.segs.front_mut() {
            if front.end() <= ack {
                let seg = *front;
                self.segs.pop_front();
                if self
                    .dsn_floor
                    .front()
                    .is_some_and(|&(ssn, _)| ssn == seg.ssn)
                {
                    self.dsn_floor.pop_front();
                }
                self.forget(&seg);
                on_removed(&seg, seg.seq_len());
            } else if front.ssn < ack {
                // Partial acknowledgement: keep the tail. SYN/FIN flags stay with the tail
                // only for FIN (the SYN is always first and alone).
                let cut = ack - front.ssn;
                let before = *front;
                let mut payload_cut = cut;
                if front.syn {
                    front.syn = false;
                    payload_cut -= 1;
                }
                let payload_cut = payload_cut.min(front.len as u64);
                let (old_ssn, new_dsn) = (front.ssn, front.dsn + payload_cut);
                front.ssn = ack;
                front.len -= payload_cut as u32;
                front.dsn = new_dsn;
                if let Some(f) = self.dsn_floor.front_mut()
                    && f.0 == old_ssn
                {
                    *f = (ack, new_dsn);
                    // A later segment with a lower DSN outlives this one: it is the floor.
                    while self.dsn_floor.len() >= 2 && self.dsn_floor[0].1 >= self.dsn_floor[1].1 {
                        self.dsn_floor.pop_front();
                    }
                }
                if front.in_pipe() {
                    self.in_flight -= cut;
                }
                on_removed(&before, cut);
                break;
            } else {
                break;
            }
        }
    }

    fn forget(&mut self, seg: &SentSeg) {
        if seg.in_pipe() {
            self.in_flight -= seg.seq_len();
        }
        if seg.lost {
            self.lost_count -= 1;
        }
        if seg.sacked {
            self.sacked_count -= 1;
        }
    }

    /// Marks segments fully inside `start..end` as SACKed. Returns the indexes newly marked
    /// through `on_sacked`.
    pub(crate) fn sack(&mut self, start: u64, end: u64, mut on_sacked: impl FnMut(&SentSeg)) {
        let mut i = self.segs.partition_point(|s| s.ssn < start);
        while let Some(seg) = self.segs.get_mut(i) {
            if seg.end() > end {
                break;
            }
            if !seg.sacked {
                if seg.in_pipe() {
                    self.in_flight -= seg.seq_len();
                }
                if seg.lost {
                    seg.lost = false;
                    self.lost_count -= 1;
                }
                seg.sacked = true;
                self.sacked_count += 1;
                on_sacked(seg);
            }
            i += 1;
        }
    }

    pub(crate) fn mark_lost(&mut self, i: usize) -> bool {
        let Some(seg) = self.segs.get_mut(i) else {
            return false;
        };
        if seg.lost || seg.sacked {
            return false;
        }
        seg.lost = true;
        self.in_flight -= seg.seq_len();
        self.lost_count += 1;
        true
    }

    /// The first segment waiting for retransmission.
    pub(crate) fn first_lost(&self) -> Option<usize> {
        if self.lost_count == 0 {
            return None;
        }
        self.segs.iter().position(|s| s.lost)
    }

    /// Records the retransmission of segment `i` at `now`.
    pub(crate) fn retransmitted(&mut self, i: usize, now: Instant) -> Option<SentSeg> {
        let seg = self.segs.get_mut(i)?;
        if seg.lost {
            seg.lost = false;
            self.lost_count -= 1;
            self.in_flight += seg.seq_len();
        } else if !seg.in_pipe() {
            return None;
        }
        seg.retransmitted = true;
        seg.sent_at = now;
        Some(*seg)
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut SentSeg> {
        self.segs.get_mut(i)
    }

    /// Drops everything (the subflow is gone); returns the segments.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = SentSeg> + '_ {
        self.in_flight = 0;
        self.lost_count = 0;
        self.sacked_count = 0;
        self.dsn_floor.clear();
        self.segs.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(ssn: u64, len: u32, t: Instant) -> SentSeg {
        SentSeg {
            ssn,
            len,
            dsn: 1000 + ssn,
            data_fin: false,
            fin: false,
            syn: false,
            sent_at: t,
            retransmitted: false,
            sacked: false,
            lost: false,
        }
    }

    #[test]
    fn pipe_accounting_through_sack_loss_retransmit_ack() {
        let t = Instant::now();
        let mut q = SentQueue::default();
        for i in 0..4 {
            q.push(seg(1 + i * 100, 100, t));
        }
        assert_eq!(q.in_flight, 400);
        q.sack(201, 401, |_| {});
        assert_eq!(q.in_flight, 200);
        assert_eq!(q.sacked_count, 2);
        assert!(q.mark_lost(0));
        assert!(!q.mark_lost(2), "sacked segments are not lost");
        assert_eq!(q.in_flight, 100);
        assert_eq!(q.first_lost(), Some(0));
        q.retransmitted(0, t).unwrap();
        assert_eq!(q.in_flight, 200);
        let mut acked = 0;
        q.ack_to(251, |_, n| acked += n);
        assert_eq!(acked, 250);
        assert_eq!(q.front().unwrap().ssn, 251);
        assert_eq!(q.front().unwrap().dsn, 1251);
        assert_eq!(q.len(), 2);
        q.ack_to(401, |_, _| {});
        assert!(q.is_empty());
        assert_eq!(q.lowest_dsn(), None);
        assert_eq!((q.in_flight, q.lost_count, q.sacked_count), (0, 0, 0));
    }

    #[test]
    fn lowest_dsn_follows_reinjected_segments_and_acks() {
        let t = Instant::now();
        let mut q = SentQueue::default();
        let at = |ssn: u64, dsn: u64| SentSeg {
            dsn,
            ..seg(ssn, 100, t)
        };
        q.push(at(1, 500));
        q.push(at(101, 600));
        // Reinjected from a dead subflow: lower DSN, later on this one.
        q.push(at(201, 100));
        q.push(at(301, 700));
        assert_eq!(q.lowest_dsn(), Some(100));
        q.ack_to(251, |_, _| {});
        assert_eq!(q.lowest_dsn(), Some(150), "partly acknowledged reinjection");
        q.ack_to(301, |_, _| {});
        assert_eq!(q.lowest_dsn(), Some(700));
        q.ack_to(350, |_, _| {});
        assert_eq!(q.lowest_dsn(), Some(749));
        let mut q2 = SentQueue::default();
        q2.push(at(1, 900));
        q2.push(at(101, 950));
        q2.ack_to(60, |_, _| {});
        assert_eq!(
            q2.lowest_dsn(),
            Some(950),
            "a later segment with a lower DSN"
        );
        q2.drain().for_each(drop);
        assert_eq!(q2.lowest_dsn(), None);
    }
}
