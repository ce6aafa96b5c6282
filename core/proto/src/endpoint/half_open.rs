//! Server connections still in their handshake, counted per source as they come and go, so
//! that the SYN-flood checks cost O(1) per SYN (docs/ARCHITECTURE.md, "Handshakes under
//! pressure").

use super::ConnectionHandle;
use super::hash::{HandleMap, KeyedMap};
use std::collections::VecDeque;
use std::net::IpAddr;

#[derive(Debug, Default)]
pub(crate) struct HalfOpen {
    /// Each half-open connection with its source address.
    members: HandleMap<IpAddr>,
    /// Keyed: the peer picks its source address.
    by_source: KeyedMap<IpAddr, usize>,
    /// Oldest first; entries no longer half-open are skipped (and dropped) lazily.
    fifo: VecDeque<ConnectionHandle>,
}

impl HalfOpen {
    pub(crate) fn insert(&mut self, h: ConnectionHandle, source: IpAddr) {
        if self.members.insert(h, source).is_some() {
            return;
        }
        *self.by_source.entry(source).or_insert(0) += 1;
        self.fifo.push_back(h);
    }

    /// Forgets `h` (its handshake completed, or it is gone).
    pub(crate) fn remove(&mut self, h: ConnectionHandle) {
        let Some(source) = self.members.remove(&h) else {
            return;
        };
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
        // Stale entries are skipped by `oldest`; compact when they dominate.
        if self.fifo.len() > 2 * self.members.len() + 64 {
            let members = &self.members;
            self.fifo.retain(|h| members.contains_key(h));
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, h: ConnectionHandle) -> bool {
        self.members.contains_key(&h)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn count_from(&self, source: IpAddr) -> usize {
        self.by_source.get(&source).copied().unwrap_or(0)
    }

    /// The half-open connection that has waited longest.
    pub(crate) fn oldest(&mut self) -> Option<ConnectionHandle> {
        while let Some(&h) = self.fifo.front() {
            if self.members.contains_key(&h) {
                return Some(h);
            }
            self.fifo.pop_front();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source_and_finds_the_oldest() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut q = HalfOpen::default();
        q.insert(ConnectionHandle(1), a);
        q.insert(ConnectionHandle(2), b);
        q.insert(ConnectionHandle(3), a);
        q.insert(ConnectionHandle(3), a); // twice: counted once
        assert_eq!((q.len(), q.count_from(a), q.count_from(b)), (3, 2, 1));
        assert_eq!(q.oldest(), Some(ConnectionHandle(1)));
        q.remove(ConnectionHandle(1));
        q.remove(ConnectionHandle(1)); // already gone: no change
        assert_eq!((q.len(), q.count_from(a)), (2, 1));
        assert_eq!(q.oldest(), Some(ConnectionHandle(2)));
        assert!(!q.contains(ConnectionHandle(1)) && q.contains(ConnectionHandle(3)));
    }

    #[test]
    fn stale_entries_do_not_pile_up() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut q = HalfOpen::default();
        for i in 0..10_000 {
            q.insert(ConnectionHandle(i), a);
            q.remove(ConnectionHandle(i));
        }
        assert!(q.fifo.len() <= 64 + 1);
        assert_eq!((q.len(), q.count_from(a), q.oldest()), (0, 0, None));
    }
}
