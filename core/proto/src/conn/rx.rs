//! Receiving: TCP processing on the subflow, then the MPTCP options (DATA_ACK, mappings,
//! DATA_FIN, addresses, priorities, failures, fast close), then placing payload at its data
//! sequence number.

use super::handshake::Verdict;
use super::{CloseError, ConnState, Connection, Event, Reassembly, RxMapping};
use crate::cc::{Coupling, PathState};
use crate::seq::unwrap32;
use crate::subflow::{CloseReason, RxOutcome};
use crate::wire::{self, DataSeq, Dss, MpCapableKeys, MptcpOption, TcpRepr, TcpRstReason};
use std::time::Instant;

/// Most subflows a coupled controller looks at (the rest are ignored for coupling).
const MAX_COUPLED: usize = 8;

impl Connection {
    pub(crate) fn handle_segment(
        &mut self,
        now: Instant,
        id: super::SubflowId,
        seg: &TcpRepr,
        payload: &[u8],
    ) {
        let Some(idx) = self.index_of(id) else {
            return;
        };
        self.last_input = now;
        match self.handshake_segment(idx, seg) {
            Verdict::Continue => {}
            Verdict::Drop => return,
            Verdict::Reset(reason) => {
                self.reset_subflow(now, idx, reason);
                return;
            }
        }
        let mut states = [PathState {
            cwnd: 0,
            srtt: std::time::Duration::ZERO,
            mss: 0,
            loss_interval: 0,
            active: false,
        }; MAX_COUPLED];
        let n = self.subflows.len().min(MAX_COUPLED);
        for (i, e) in self.subflows.iter().take(n).enumerate() {
            states[i] =
                e.sf.path_state(e.usable() && !e.backup_remote && !e.backup_local);
        }
        let coupling = Coupling {
            me: idx.min(MAX_COUPLED - 1),
            paths: &states[..n.max(1)],
        };
        let was_synchronized = self.subflows[idx].sf.state.is_synchronized();
        let out = self.subflows[idx]
            .sf
            .on_segment(now, seg, payload.len(), coupling);
        if out.established {
            self.on_subflow_established(now, idx);
        }
        if out.reset {
            self.on_peer_reset(idx, seg);
        } else if out.ack.valid && !out.established {
            self.confirm_join(idx);
        }
        if self.mptcp && (was_synchronized || out.established) {
            self.process_mptcp_options(now, idx, seg, &out, payload.len());
        }
        if self.fallback.is_some() {
            self.fallback_ack(idx, out.ack.valid, out.ack.window);
        }
        if let Some((ssn, skip)) = out.data {
            if let Some(data) = payload.get(skip..) {
                self.place_data(now, idx, ssn, data);
            }
        }
        if self.fallback.is_none()
            && self.subflows[idx].sf.state == crate::subflow::State::CloseWait
        {
            // The peer closed this subflow (not the connection): close our side too.
            self.subflows[idx].sf.close();
        }
        if self.subflows.get(idx).is_some_and(|e| e.sf.is_closed()) {
            self.on_subflow_closed(now, idx);
        }
        self.steer(now);
        self.after_input(now);
    }

    /// A joiner waits for the peer to acknowledge its third ACK before sending data: any
    /// acceptable segment on the subflow after it is that acknowledgement.
    fn confirm_join(&mut self, idx: usize) {
        let e = &mut self.subflows[idx];
        if e.join.is_some_and(|j| j.awaiting_ack) {
            e.join = None;
            self.report_path_up(idx);
        }
    }

    fn on_peer_reset(&mut self, idx: usize, seg: &TcpRepr) {
        let fastclose =
            seg.options.mptcp.iter().any(
                |o| matches!(o, MptcpOption::MpFastClose(f) if f.receiver_key == self.keys.local),
            );
        let plain = self
            .fallback
            .is_some_and(|f| f.subflow == self.subflows[idx].id);
        if fastclose || plain {
            for e in &mut self.subflows {
                if !e.sf.is_closed() {
                    e.sf.abort();
                }
            }
            // Quietly: the peer is gone, no RST back.
            for e in &mut self.subflows {
                e.fastclose = false;
                e.rst_reason = None;
                e.sf.drop_pending_rst();
            }
            let err = if self.state == ConnState::Connecting {
                CloseError::ConnectFailed
            } else {
                CloseError::Reset
            };
            self.close(err);
        }
    }

    fn process_mptcp_options(
        &mut self,
        now: Instant,
        idx: usize,
        seg: &TcpRepr,
        out: &RxOutcome,
        payload_len: usize,
    ) {
        let mut window_edge_done = false;
        for opt in seg.options.mptcp.iter() {
            match *opt {
                MptcpOption::Dss(dss) => {
                    self.on_dss(now, idx, seg, &dss, out, payload_len);
                    window_edge_done |= dss.data_ack.is_some();
                }
                MptcpOption::MpCapable(m) => {
                    // The client's first data (or a repeated third ACK) on an established
                    // server subflow: the mapping of the first data is implicit.
                    if let MpCapableKeys::AckData {
                        data_len, checksum, ..
                    } = m.keys
                    {
                        if self.subflows[idx].initial && data_len > 0 {
                            self.subflows[idx].rx_maps.insert(RxMapping {
                                ssn: 1,
                                dsn: 1,
                                len: data_len as u64,
                                checksum,
                                fin: false,
                            });
                        }
                    }
                }
                MptcpOption::AddAddr(a) => self.on_add_addr(now, &a),
                MptcpOption::RemoveAddr(r) => self.on_remove_addr(now, r.ids()),
                MptcpOption::MpPrio(p) => {
                    let e = &mut self.subflows[idx];
                    if e.backup_remote != p.backup {
                        e.backup_remote = p.backup;
                        if let Some(path) = e.path {
                            self.events.push_back(Event::PathBackupChanged {
                                path,
                                backup: p.backup,
                            });
                        }
                    }
                }
                MptcpOption::MpFail(f) => self.on_mp_fail(idx, f.dsn),
                MptcpOption::MpFastClose(_) | MptcpOption::MpTcpRst(_) => {}
                MptcpOption::MpJoin(_) => {}
            }
        }
        if !window_edge_done && out.ack.valid {
            // No DATA_ACK on this segment: its window counts from the current data ACK.
            let edge = self.data_una + out.ack.window;
            if edge > self.peer_wnd_end {
                self.peer_wnd_end = edge;
            }
        }
    }

    fn on_dss(
        &mut self,
        now: Instant,
        idx: usize,
        seg: &TcpRepr,
        dss: &Dss,
        out: &RxOutcome,
        payload_len: usize,
    ) {
        if self.subflows[idx].initial {
            self.seen_dss = true;
        }
        if let Some(ack) = dss.data_ack {
            if !self.fully_established {
                // The peer acknowledges at the data level: it has our key.
                self.fully_established = true;
            }
            if let Some(off) = self.expand_data_ack(ack) {
                if out.ack.valid {
                    self.on_data_ack_offset(off, out.ack.window);
                } else {
                    self.on_data_ack_offset(off, 0);
                }
            }
        }
        if let Some(m) = dss.mapping {
            let ssn = unwrap32(m.ssn, self.subflows[idx].sf.rcv_nxt());
            let dsn = self.expand_peer_dsn(m.dsn);
            if m.data_len == 0 {
                let single = self.subflows.iter().filter(|e| e.usable()).count() <= 1;
                if single {
                    self.on_infinite_mapping(idx, ssn, dsn);
                }
                return;
            }
            let standalone_fin = dss.data_fin && m.ssn == 0 && m.data_len == 1;
            if dss.data_fin {
                let fin_at = dsn + m.data_len as u64 - 1;
                self.on_peer_data_fin(now, idx, fin_at);
            }
            if !standalone_fin {
                let len = m.data_len as u64 - dss.data_fin as u64;
                self.subflows[idx].rx_maps.insert(RxMapping {
                    ssn,
                    dsn,
                    len,
                    checksum: m.checksum,
                    fin: dss.data_fin,
                });
            }
        } else if dss.data_fin && payload_len == 0 {
            // DATA_FIN without a mapping is malformed (RFC 8684 §3.3); ignore it.
            let _ = seg;
        }
    }

    /// A DATA_ACK (our sequence space) as an offset, or None if it cannot be ours.
    fn expand_data_ack(&self, ack: DataSeq) -> Option<u64> {
        let off = match ack {
            DataSeq::Wide(v) => v.wrapping_sub(self.keys.local_idsn),
            DataSeq::Narrow(v) => {
                unwrap32(v.wrapping_sub(self.keys.local_idsn as u32), self.data_una)
            }
        };
        (off <= self.data_nxt + 1).then_some(off)
    }

    /// A DSN from the peer as an offset in its data space.
    fn expand_peer_dsn(&self, dsn: DataSeq) -> u64 {
        match dsn {
            DataSeq::Wide(v) => v.wrapping_sub(self.keys.remote_idsn),
            DataSeq::Narrow(v) => unwrap32(
                v.wrapping_sub(self.keys.remote_idsn as u32),
                self.recv.rcv_nxt(),
            ),
        }
    }

    /// Applies a data-level acknowledgement and the window that came with it.
    pub(crate) fn on_data_ack_offset(&mut self, ack: u64, window: u64) {
        let fin_sent = self.data_fin_sent;
        let max_ack = self.data_nxt.max(self.data_una) + fin_sent as u64;
        if ack > max_ack {
            return;
        }
        if ack > self.data_una {
            let end = self.data_end();
            if self.app_closed && fin_sent && ack > end {
                self.data_fin_acked = true;
            }
            self.data_una = ack.min(end);
            self.reinject.remove_below(self.data_una);
            for e in &mut self.subflows {
                e.own_queue.remove_below(self.data_una);
                e.carried.remove_below(self.data_una);
            }
            self.release_send_buffer();
        }
        let edge = ack.min(self.data_end()) + window;
        if edge > self.peer_wnd_end {
            self.peer_wnd_end = edge;
        }
    }

    /// Drops sent bytes the peer acknowledged at the data level. A subflow that still has
    /// to retransmit some of them (they reached the peer on another subflow) sends filler:
    /// the peer discards data below its DATA_ACK, so only the sequence space matters.
    pub(crate) fn release_send_buffer(&mut self) {
        self.send_buf.release_to(self.data_una);
    }

    fn on_peer_data_fin(&mut self, now: Instant, idx: usize, fin_at: u64) {
        if self.peer_fin.is_none() {
            self.peer_fin = Some(fin_at);
        }
        self.subflows[idx].sf.request_ack();
        self.check_peer_fin(now);
    }

    pub(crate) fn check_peer_fin(&mut self, _now: Instant) {
        if self.peer_fin_consumed {
            return;
        }
        if let Some(f) = self.peer_fin {
            if self.recv.rcv_nxt() >= f {
                self.peer_fin_consumed = true;
                self.events.push_back(Event::Readable);
                for e in &mut self.subflows {
                    if e.sf.state.can_receive() {
                        e.sf.request_ack();
                    }
                }
            }
        }
    }

    /// Puts received payload (starting at subflow offset `ssn`) where it belongs.
    fn place_data(&mut self, now: Instant, idx: usize, ssn: u64, data: &[u8]) {
        let rcv_before = self.recv.rcv_nxt();
        let full_sized = data.len() + 40 >= self.subflows[idx].sf.effective_mss() as usize;
        if self.fallback.is_none()
            && self.mptcp
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
                .fallback
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
        self.recv.insert(dsn, data);
        let end = dsn + data.len() as u64;
        end.min(self.recv.window_end()).saturating_sub(dsn).max(
            // Bytes below the window start were duplicates: accepted.
            self.recv.rcv_nxt().min(end).saturating_sub(dsn),
        )
    }

    /// Places bytes by DSS mapping, or as the plain stream after a fallback; returns the
    /// subflow offset up to which bytes were taken.
    fn place_mapped(&mut self, idx: usize, ssn: u64, data: &[u8]) -> u64 {
        let fb = self.fallback.filter(|f| f.subflow == self.subflows[idx].id);
        let mut s = ssn;
        let mut off = 0usize;
        while off < data.len() {
            if let Some(fb) = fb {
                if fb.rx_dsn(s).is_some() {
                    return self.place_plain(&fb, s, &data[off..]).unwrap_or(s);
                }
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

    /// Resets subflow `idx` with an MP_TCPRST reason.
    pub(crate) fn reset_subflow(&mut self, now: Instant, idx: usize, reason: TcpRstReason) {
        let e = &mut self.subflows[idx];
        e.rst_reason = Some(reason);
        e.sf.abort();
        self.on_subflow_closed(now, idx);
    }

    /// Bookkeeping when a subflow stops: reinject what it still owed, report the path down,
    /// and close the connection if nothing can carry it any more.
    pub(crate) fn on_subflow_closed(&mut self, now: Instant, idx: usize) {
        let e = &mut self.subflows[idx];
        if e.closed_handled {
            return;
        }
        e.closed_handled = true;
        let reason = e.sf.close_reason;
        e.sf.sent.drain().for_each(drop);
        let carried = std::mem::take(&mut e.carried);
        for r in carried.iter() {
            let start = r.start.max(self.data_una);
            if start < r.end {
                self.stats.bytes_reinjected += r.end - start;
                self.reinject.insert(start..r.end);
            }
        }
        let own = std::mem::take(&mut self.subflows[idx].own_queue);
        for r in own.iter() {
            self.reinject.insert(r.clone());
        }
        self.release_send_buffer();
        self.stats.subflows_closed += 1;
        let e = &self.subflows[idx];
        if e.kind.is_cellular() {
            self.paths.cellular_closed_bytes +=
                e.sf.counters.bytes_sent + e.sf.counters.bytes_received;
        }
        self.tuples_changed = true;
        let e = &self.subflows[idx];
        if e.reported_up {
            if let Some(path) = e.path {
                self.events
                    .push_back(Event::PathDown { path, kind: e.kind });
            }
        }
        let (id, initial, path) = (e.id, e.initial, e.path);
        self.paths.on_subflow_closed(now, path, reason);
        if self.fallback.is_some_and(|f| f.subflow == id) && reason != Some(CloseReason::Finished) {
            let err = match reason {
                Some(CloseReason::Reset) => CloseError::Reset,
                _ if self.state == ConnState::Connecting => CloseError::ConnectFailed,
                _ => CloseError::TimedOut,
            };
            self.close(err);
            return;
        }
        if initial && self.state == ConnState::Connecting {
            self.close(CloseError::ConnectFailed);
            return;
        }
        let any_live = self
            .subflows
            .iter()
            .any(|e| !e.sf.is_closed() && e.sf.state.is_synchronized());
        if !any_live && self.no_path_since.is_none() {
            self.no_path_since = Some(now);
        }
    }

    /// Events and state changes that follow any input.
    pub(crate) fn after_input(&mut self, _now: Instant) {
        if !self.was_writable && self.send_buf.free() > 0 && self.close_error.is_none() {
            self.was_writable = true;
            self.events.push_back(Event::Writable);
        }
        self.check_finished();
    }

    /// Both directions finished at the data level: close the subflows and report.
    fn check_finished(&mut self) {
        if self.state != ConnState::Established {
            return;
        }
        let done = if let Some(fb) = self.fallback {
            self.index_of(fb.subflow).is_none_or(|i| {
                let sf = &self.subflows[i].sf;
                self.app_closed && sf.peer_finished() && sf.all_acked()
            })
        } else {
            self.app_closed && self.data_fin_acked && self.peer_fin_consumed
        };
        if done {
            for e in &mut self.subflows {
                e.sf.close();
            }
            self.close(CloseError::Finished);
        }
    }
}
