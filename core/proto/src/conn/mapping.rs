//! Received DSS mappings of one subflow: which subflow bytes carry which data sequence
//! numbers. A mapping may cover many segments (the kernel maps whole TSO bursts at once), so
//! mappings are kept until the subflow has received past their end.

use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMapping {
    /// Subflow offset of the first mapped byte.
    pub ssn: u64,
    /// Data offset (from the peer's IDSN) of that byte.
    pub dsn: u64,
    /// Mapped payload bytes (a DATA_FIN's extra sequence number is not counted).
    pub len: u64,
    pub checksum: Option<u16>,
    /// The mapping's data-level length also counted the DATA_FIN.
    pub fin: bool,
}

impl RxMapping {
    pub fn ssn_range(&self) -> Range<u64> {
        self.ssn..self.ssn + self.len
    }
}

#[derive(Debug, Default)]
pub struct MappingTable {
    maps: Vec<RxMapping>,
}

/// Mappings older than this many entries are pruned even if not yet passed (bounds memory
/// against a peer that sends a mapping per byte).
const MAX_MAPPINGS: usize = 256;

impl MappingTable {
    /// Records a mapping. An identical one is ignored; a different mapping for the same
    /// bytes replaces the old one only if it starts at the same subflow offset.
    pub fn insert(&mut self, m: RxMapping) {
        if m.len == 0 {
            return;
        }
        if let Some(old) = self.maps.iter_mut().find(|o| o.ssn == m.ssn) {
            if old.len < m.len {
                *old = m;
            }
            return;
        }
        if self.maps.len() >= MAX_MAPPINGS {
            self.maps.remove(0);
        }
        let at = self.maps.partition_point(|o| o.ssn < m.ssn);
        self.maps.insert(at, m);
    }

    /// The mapping covering subflow offset `ssn`.
    pub fn find(&self, ssn: u64) -> Option<RxMapping> {
        self.maps
            .iter()
            .rev()
            .find(|m| m.ssn <= ssn && ssn < m.ssn + m.len)
            .copied()
    }

    /// Forgets mappings that end at or below `ssn` (received in full).
    pub fn prune_below(&mut self, ssn: u64) {
        self.maps.retain(|m| m.ssn + m.len > ssn);
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn clear(&mut self) {
        self.maps.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_prune() {
        let mut t = MappingTable::default();
        t.insert(RxMapping {
            ssn: 1,
            dsn: 100,
            len: 10,
            checksum: None,
            fin: false,
        });
        t.insert(RxMapping {
            ssn: 11,
            dsn: 500,
            len: 5,
            checksum: None,
            fin: false,
        });
        assert_eq!(t.find(5).unwrap().dsn, 100);
        assert_eq!(t.find(12).unwrap().dsn, 500);
        assert!(t.find(16).is_none());
        t.prune_below(11);
        assert!(t.find(5).is_none());
        assert!(t.find(11).is_some());
    }
}
