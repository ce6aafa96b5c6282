//! A set of disjoint half-open `u64` ranges, kept sorted. Used for SACK scoreboards, received
//! sequence ranges and data-level reinjection queues. Sequence numbers inside the engine are
//! unwrapped 64-bit offsets, so there is no wrap-around to care about here.

#![warn(missing_docs, unreachable_pub)]

use std::ops::Range;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// Disjoint half-open ranges, sorted.
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Range<u64>> + '_ {
        self.ranges.iter()
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.ranges.first().cloned()
    }

    /// The highest range.
    pub fn last(&self) -> Option<Range<u64>> {
        self.ranges.last().cloned()
    }

    /// Total number of values covered.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Adds `r`, merging with neighbours it touches or overlaps. Returns how many values were
    /// not already present.
    pub fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        // First range whose end reaches r.start (could merge), and the first that starts past r.end.
        let lo = self.ranges.partition_point(|x| x.end < r.start);
        let hi = self.ranges.partition_point(|x| x.start <= r.end);
        if lo == hi {
            self.ranges.insert(lo, r.clone());
            return r.end - r.start;
        }
        let already: u64 = self.ranges[lo..hi]
            .iter()
            .map(|x| x.end.min(r.end).saturating_sub(x.start.max(r.start)))
            .sum();
        let start = self.ranges[lo].start.min(r.start);
        let end = self.ranges[hi - 1].end.max(r.end);
        self.ranges.drain(lo + 1..hi);
        self.ranges[lo] = start..end;
        (r.end - r.start) - already
    }

    /// Removes `r` from the set (splitting a range if needed).
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let lo = self.ranges.partition_point(|x| x.end <= r.start);
        let hi = self.ranges.partition_point(|x| x.start < r.end);
        if lo >= hi {
            return;
        }
        let first = self.ranges[lo].clone();
        let last = self.ranges[hi - 1].clone();
        let mut keep = Vec::with_capacity(2);
        if first.start < r.start {
            keep.push(first.start..r.start);
        }
        if last.end > r.end {
            keep.push(r.end..last.end);
        }
        self.ranges.splice(lo..hi, keep);
    }

    /// Drops everything below `v`.
    pub fn remove_below(&mut self, v: u64) {
        let n = self.ranges.partition_point(|x| x.end <= v);
        self.ranges.drain(..n);
        if let Some(first) = self.ranges.first_mut()
            && first.start < v
        {
            first.start = v;
        }
    }

    /// Whether `v` is in one of the ranges.
    pub fn contains(&self, v: u64) -> bool {
        let i = self.ranges.partition_point(|x| x.end <= v);
        self.ranges.get(i).is_some_and(|x| x.start <= v)
    }

    /// The range containing `v`, if any.
    pub fn range_containing(&self, v: u64) -> Option<Range<u64>> {
        let i = self.ranges.partition_point(|x| x.end <= v);
        self.ranges.get(i).filter(|x| x.start <= v).cloned()
    }

    /// Removes and returns the lowest sub-range, at most `max` long.
    pub fn pop_front(&mut self, max: u64) -> Option<Range<u64>> {
        let first = self.ranges.first_mut()?;
        let end = first.end.min(first.start.saturating_add(max));
        let out = first.start..end;
        if end == first.end {
            self.ranges.remove(0);
        } else {
            first.start = end;
        }
        Some(out)
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rs: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in rs {
            s.insert(a..b);
        }
        s
    }

    fn ranges(s: &RangeSet) -> Vec<(u64, u64)> {
        s.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn insert_merges_and_counts_new_values() {
        let mut s = set(&[(10, 20), (30, 40)]);
        assert_eq!(s.insert(15..16), 0);
        assert_eq!(s.insert(18..32), 10);
        assert_eq!(ranges(&s), vec![(10, 40)]);
        assert_eq!(s.insert(40..45), 5, "touching ranges merge");
        assert_eq!(ranges(&s), vec![(10, 45)]);
        assert_eq!(s.insert(0..5), 5);
        assert_eq!(ranges(&s), vec![(0, 5), (10, 45)]);
        assert_eq!(s.insert(3..3), 0);
    }

    #[test]
    fn remove_splits() {
        let mut s = set(&[(0, 100)]);
        s.remove(10..20);
        s.remove(50..60);
        assert_eq!(ranges(&s), vec![(0, 10), (20, 50), (60, 100)]);
        s.remove(5..70);
        assert_eq!(ranges(&s), vec![(0, 5), (70, 100)]);
        s.remove_below(80);
        assert_eq!(ranges(&s), vec![(80, 100)]);
        assert!(s.contains(80) && !s.contains(100) && !s.contains(79));
    }

    #[test]
    fn pop_front_is_bounded() {
        let mut s = set(&[(0, 10), (20, 25)]);
        assert_eq!(s.pop_front(4), Some(0..4));
        assert_eq!(s.pop_front(100), Some(4..10));
        assert_eq!(s.pop_front(100), Some(20..25));
        assert_eq!(s.pop_front(1), None);
    }

    #[test]
    fn matches_a_bitmap_model() {
        use crate::random::{Random, SeededRandom};
        let mut rng = SeededRandom::new(3);
        for _ in 0..200 {
            let mut s = RangeSet::new();
            let mut model = [false; 64];
            for _ in 0..20 {
                let a = rng.next_u64() % 64;
                let b = (a + rng.next_u64() % 10).min(64);
                if rng.next_u64().is_multiple_of(3) {
                    s.remove(a..b);
                    model[a as usize..b as usize].fill(false);
                } else {
                    let fresh = model[a as usize..b as usize]
                        .iter()
                        .filter(|x| !**x)
                        .count();
                    assert_eq!(s.insert(a..b), fresh as u64);
                    model[a as usize..b as usize].fill(true);
                }
                for (i, m) in model.iter().enumerate() {
                    assert_eq!(s.contains(i as u64), *m);
                }
                assert!(s.ranges.windows(2).all(|w| w[0].end < w[1].start));
            }
        }
    }
}
