//! Received DSS mappings of one subflow: which subflow bytes carry which data sequence
//! numbers. A mapping may cover many segments (the kernel maps whole TSO bursts at once), so
//! mappings are kept until the subflow has received past their end.

use std::collections::VecDeque;
use std::ops::Range;

/// One DSS mapping as received: a run of subflow bytes and where they go in the data stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMapping {
    /// Subflow offset of the first mapped byte.
    pub ssn: u64,
    /// Data offset (from the peer's IDSN) of that byte.
    pub dsn: u64,
    /// Mapped payload bytes (a DATA_FIN's extra sequence number is not counted).
    pub len: u64,
    /// DSS checksum over the mapped bytes and pseudo-header, when checksums are in use.
    pub checksum: Option<u16>,
    /// The mapping's data-level length also counted the DATA_FIN.
    pub fin: bool,
}

impl RxMapping {
    /// Subflow offsets the mapping covers.
    pub fn ssn_range(&self) -> Range<u64> {
        self.ssn..self.ssn + self.len
    }
}

/// Mappings sorted by subflow offset. Lookups are binary searches: with DSS checksums a
/// subflow may hold a whole receive window of bytes (thousands of mappings) waiting.
#[derive(Debug, Default)]
pub struct MappingTable {
    maps: VecDeque<RxMapping>,
}

/// Most mappings kept per subflow: bounds memory against a peer that maps every byte
/// separately. 16 Ki mappings of full segments cover more than a 16 MB window.
const MAX_MAPPINGS: usize = 16 * 1024;

impl MappingTable {
    /// Records a mapping. One starting at the same subflow offset replaces the old: a
    /// retransmission carries the mapping (and checksum) of the bytes it actually holds,
    /// which for data the peer already acknowledged at the data level may be filler.
    pub fn insert(&mut self, m: RxMapping) {
        if m.len == 0 {
            return;
        }
        let at = self.maps.partition_point(|o| o.ssn < m.ssn);
        if let Some(old) = self.maps.get_mut(at).filter(|o| o.ssn == m.ssn) {
            *old = m;
            return;
        }
        if self.maps.len() >= MAX_MAPPINGS {
            self.maps.pop_front();
            self.maps
                .insert(at.saturating_sub(1).min(self.maps.len()), m);
            return;
        }
        self.maps.insert(at, m);
    }

    /// The mapping covering subflow offset `ssn`; the one starting closest below wins.
    pub fn find(&self, ssn: u64) -> Option<RxMapping> {
        let upto = self.maps.partition_point(|m| m.ssn <= ssn);
        // Usually the nearest one covers it; a longer, earlier mapping may too.
        self.maps
            .range(..upto)
            .rev()
            .take(8)
            .find(|m| ssn < m.ssn + m.len)
            .copied()
    }

    /// Forgets mappings at the front that end at or below `ssn` (received in full).
    pub fn prune_below(&mut self, ssn: u64) {
        while self.maps.front().is_some_and(|m| m.ssn + m.len <= ssn) {
            self.maps.pop_front();
        }
    }

    /// No mapping is held.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Forgets every mapping.
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

    #[test]
    fn replacement_and_many_mappings() {
        let mut t = MappingTable::default();
        for i in 0..5000u64 {
            t.insert(RxMapping {
                ssn: 1 + i * 10,
                dsn: i * 10,
                len: 10,
                checksum: None,
                fin: false,
            });
        }
        assert_eq!(t.find(1 + 1234 * 10 + 3).unwrap().dsn, 12340);
        t.insert(RxMapping {
            ssn: 11,
            dsn: 999,
            len: 10,
            checksum: Some(7),
            fin: false,
        });
        assert_eq!(t.find(12).unwrap().dsn, 999, "same start replaces");
        t.prune_below(1 + 4999 * 10);
        assert_eq!(t.find(1 + 4999 * 10).unwrap().dsn, 49990);
        assert!(t.find(5).is_none());
    }
}
