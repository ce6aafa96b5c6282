//! The endpoint's connection deadlines, earliest first (docs/ARCHITECTURE.md, "Timers and
//! the endpoint"): each connection's earliest timer is kept in an ordered set, so a wake
//! finds what is due in O(log n) and the next deadline in O(1), however many connections
//! sit idle.

use super::ConnectionHandle;
use super::hash::HandleMap;
use std::collections::BTreeSet;
use std::time::Instant;

/// One deadline per connection, ordered by time.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    order: BTreeSet<(Instant, ConnectionHandle)>,
    of: HandleMap<Instant>,
    /// The first entry of `order`, kept so that reading it costs nothing.
    earliest: Option<Instant>,
}

impl Deadlines {
    /// Sets (or, with None, removes) the deadline of `h`.
    pub(crate) fn set(&mut self, h: ConnectionHandle, at: Option<Instant>) {
        let old = match at {
            Some(at) => self.of.insert(h, at),
            None => self.of.remove(&h),
        };
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.order.remove(&(old, h));
        }
        if let Some(at) = at {
            self.order.insert((at, h));
        }
        self.earliest = self.order.first().map(|&(t, _)| t);
    }

    /// The earliest deadline of all connections.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.earliest
    }

    /// Removes and returns every connection due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<ConnectionHandle> {
        let mut due = Vec::new();
        while let Some(&(t, h)) = self.order.first() {
            if t > now {
                break;
            }
            self.order.pop_first();
            self.of.remove(&h);
            due.push(h);
        }
        self.earliest = self.order.first().map(|&(t, _)| t);
        due
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(n: u64) -> ConnectionHandle {
        ConnectionHandle(n)
    }

    #[test]
    fn keeps_one_deadline_per_connection() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(h(1), Some(t0 + Duration::from_secs(5)));
        d.set(h(2), Some(t0 + Duration::from_secs(3)));
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(3)));
        // Moving a deadline later replaces it rather than adding one.
        d.set(h(2), Some(t0 + Duration::from_secs(9)));
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(d.len(), 2);
        d.set(h(1), None);
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(9)));
        d.set(h(2), None);
        assert_eq!((d.next(), d.len()), (None, 0));
    }

    #[test]
    fn take_due_returns_only_what_is_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for i in 0..100 {
            d.set(h(i), Some(t0 + Duration::from_millis(i)));
        }
        let due = d.take_due(t0 + Duration::from_millis(2));
        assert_eq!(due, vec![h(0), h(1), h(2)]);
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(3)));
        assert_eq!(d.len(), 97);
        assert!(d.take_due(t0).is_empty());
    }

    #[test]
    fn equal_deadlines_are_kept_apart() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(h(1), Some(t0));
        d.set(h(2), Some(t0));
        assert_eq!(d.take_due(t0), vec![h(1), h(2)]);
    }
}
