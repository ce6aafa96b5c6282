//! Where received payload goes: by DSS mapping into the data-level buffer, as the plain byte
//! stream after a fallback, or (with DSS checksums) first into a per-subflow buffer until a
//! whole mapping can be verified.

use super::{Connection, Event, Reassembly};
use crate::wire::{self, TcpRstReason};
use std::time::Instant;

impl Connection {
    /// Puts received payload (starting at subflow offset `ssn`) where it belongs.
    pub(super) fn place_data(&mut self, now: Instant, idx: usize, ssn: u64, data: &[u8]) {
        let rcv_before = self.recv.rcv_nxt();
        let full_sized = data.len() + 40 >= self.subflows[idx].sf.effective_mss() as usize;
        if self.mode.fallback().is_none()
            && self.mode.reads_options()
            && self.subflows[idx].rx_maps.find(ssn).is_none()
            && !self.seen_dss
            && self.subflows[idx].initial
            && self.subflows.len() == 1
            && !self.checksum
        {
            // Data with no mapping before any DSS: a middlebox strips our options.
            self.fall_back_midstream(idx);
        }
        let accepted_to = if self.checksum {
            // Bytes before the peer's switch to plain TCP (if any) are checked per mapping;
            // the plain stream after it carries no checksum.
            let plain_from = self
                .mode
                .fallback()
                .filter(|f| f.subflow == self.subflows[idx].id)
                .and_then(|f| f.rx.map(|(from, _)| from));
            let end = ssn + data.len() as u64;
            match plain_from {
                Some(from) if ssn >= from => self.place_mapped(idx, ssn, data),
                Some(from) if end > from => {
                    let split = (from - ssn) as usize;
                    let to = self.place_checked(now, idx, ssn, &data[..split]);
                    if to == from {
                        self.place_mapped(idx, from, &data[split..])
                    } else {
                        to
                    }
                }
                _ => self.place_checked(now, idx, ssn, data),
            }
        } else {
            self.place_mapped(idx, ssn, data)
        };
        let e = &mut self.subflows[idx];
        if accepted_to > ssn {
            e.sf.commit_received(now, ssn..accepted_to, full_sized);
        } else {
            e.sf.request_ack();
        }
        // Mappings of bytes still waiting in the checked buffer are needed to drain it.
        let keep_from = e
            .checked_rx
            .as_ref()
            .map_or(e.sf.rcv_nxt(), |b| b.read_pos().min(e.sf.rcv_nxt()));
        e.rx_maps.prune_below(keep_from);
        if self.recv.rcv_nxt() > rcv_before {
            self.events.push_back(Event::Readable);
            self.check_peer_fin(now);
        }
    }

    /// Inserts at `dsn`; returns how many leading bytes were taken (or were already there).
    pub(crate) fn insert_data(&mut self, dsn: u64, data: &[u8]) -> u64 {
        if self.recv.insert(dsn, data).refused {
            // Too many out-of-order pieces: not taken, so the subflow does not acknowledge
            // it and the peer sends it again once the holes before it fill.
            return 0;
        }
        let end = dsn + data.len() as u64;
        end.min(self.recv.window_end()).saturating_sub(dsn).max(
            // Bytes below the window start were duplicates: accepted.
            self.recv.rcv_nxt().min(end).saturating_sub(dsn),
        )
    }

    /// Places bytes by DSS mapping, or as the plain stream after a fallback; returns the
    /// subflow offset up to which bytes were taken.
    fn place_mapped(&mut self, idx: usize, ssn: u64, data: &[u8]) -> u64 {
        let fb = self
            .mode
            .fallback()
            .filter(|f| f.subflow == self.subflows[idx].id);
        let mut s = ssn;
        let mut off = 0usize;
        while off < data.len() {
            if let Some(fb) = fb
                && fb.rx_dsn(s).is_some()
            {
                return self.place_plain(&fb, s, &data[off..]).unwrap_or(s);
            }
            let Some(m) = self.subflows[idx].rx_maps.find(s) else {
                break;
            };
            let n = (data.len() - off).min((m.ssn + m.len - s) as usize);
            let dsn = m.dsn + (s - m.ssn);
            let took = if self.rx_fail_dsn.is_some_and(|f| dsn >= f) {
                // After our MP_FAIL: the peer resends this as plain TCP.
                n
            } else {
                self.insert_data(dsn, &data[off..off + n]) as usize
            };
            s += took as u64;
            off += took;
            if took < n {
                break;
            }
        }
        s
    }

    /// Checksum mode: bytes are first held in subflow order (out-of-order ones too, so
    /// SACK keeps working), and a mapping's bytes go to the data level only once all of them
    /// are there and the DSS checksum matches.
    fn place_checked(&mut self, now: Instant, idx: usize, ssn: u64, data: &[u8]) -> u64 {
        let capacity = self.recv.capacity();
        let e = &mut self.subflows[idx];
        // Only bytes some mapping covers are taken: without one they cannot be checked.
        let end = ssn + data.len() as u64;
        let mut covered = ssn;
        while covered < end {
            match e.rx_maps.find(covered) {
                Some(m) => covered = m.ssn + m.len,
                None => break,
            }
        }
        let take = (covered.min(end) - ssn) as usize;
        if take == 0 {
            return ssn;
        }
        let rcv_nxt = e.sf.rcv_nxt();
        let buf = e
            .checked_rx
            .get_or_insert_with(|| Reassembly::new(rcv_nxt, capacity));
        buf.insert(ssn, &data[..take]);
        let accepted_to = (ssn + take as u64).min(buf.window_end());
        self.drain_checked(now, idx);
        accepted_to
    }

    /// Moves whole, verified mappings from subflow `idx`'s checked buffer to the data level,
    /// as far as the data-level window allows.
    pub(crate) fn drain_checked(&mut self, now: Instant, idx: usize) {
        loop {
            let e = &mut self.subflows[idx];
            let Some(buf) = e.checked_rx.as_mut() else {
                break;
            };
            let at = buf.read_pos();
            let Some(m) = e.rx_maps.find(at) else { break };
            if m.ssn != at {
                // The bytes before `at` of this mapping were never verified: treat as a
                // failure rather than pass unchecked data up.
                self.on_checksum_failure(now, idx, m.dsn);
                break;
            }
            if (buf.readable() as u64) < m.len {
                break;
            }
            let discard = self.rx_fail_dsn.is_some_and(|f| m.dsn >= f);
            if !discard && m.dsn + m.len > self.recv.window_end() {
                // The application has not read enough yet; `read` drains again.
                break;
            }
            let mut bytes = vec![0u8; m.len as usize];
            buf.read(&mut bytes);
            if discard {
                // After our MP_FAIL: the peer resends this as plain TCP.
                continue;
            }
            let ok = m.checksum.is_some_and(|c| {
                wire::verify_dss_checksum(
                    self.keys.remote_idsn.wrapping_add(m.dsn),
                    m.ssn as u32,
                    (m.len + m.fin as u64) as u16,
                    c,
                    &bytes,
                )
            });
            if !ok {
                self.on_checksum_failure(now, idx, m.dsn);
                break;
            }
            self.insert_data(m.dsn, &bytes);
        }
    }

    /// A DSS checksum failed: with other subflows, reset this one (its data is reinjected
    /// by the peer); alone, ask for the infinite-mapping fallback with MP_FAIL.
    fn on_checksum_failure(&mut self, now: Instant, idx: usize, dsn: u64) {
        let others = self
            .subflows
            .iter()
            .enumerate()
            .any(|(i, e)| i != idx && e.usable());
        self.subflows[idx].checked_rx = None;
        if others {
            self.reset_subflow(now, idx, TcpRstReason::MiddleboxInterference);
        } else {
            self.fail_rx(idx, dsn);
        }
    }
}
