//! Receiving: TCP processing on the subflow, then the MPTCP options (DATA_ACK, mappings,
//! DATA_FIN, addresses, priorities, failures, fast close), then placing payload at its data
//! sequence number.

use super::handshake::Verdict;
use super::{CloseError, ConnState, Connection, Event, RxMapping, SendClose, SubflowPhase, Timer};
use crate::cc::{Coupling, PathState};
use crate::seq::unwrap32;
use crate::subflow::{CloseReason, RxOutcome};
use crate::wire::{DataSeq, Dss, MpCapableKeys, MptcpOption, TcpRepr, TcpRstReason};
use std::time::Instant;

/// How far beyond the receive window a mapping's DSN may lie and still be considered (data
/// beyond the window is dropped anyway; this only keeps DSN arithmetic far from 2^64).
const MAX_DSN_AHEAD: u64 = 1 << 32;

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
        let rcv_window = self.recv.capacity() as u64;
        let out = self.subflows[idx]
            .sf
            .on_segment(now, seg, payload.len(), rcv_window, coupling);
        if out.dropped {
            // Failed the subflow's checks: its options must not act (RFC 8684 §3 relies on
            // TCP's own validation), and it is no sign of life.
            self.stats.segments_rejected += 1;
            self.after_input(now);
            return;
        }
        self.last_valid_input = now;
        if out.ack.newly_acked > 0 && self.send_buf.start() < self.data_una {
            // Bytes held only for this subflow's retransmissions may go now.
            self.release_send_buffer();
        }
        let mut replaced = None;
        if out.established {
            self.on_subflow_established(now, idx);
            // Verified (its HMAC checked in the handshake): it takes over the address pair.
            replaced = self.subflows[idx].replaces.take();
        }
        if out.reset {
            self.on_peer_reset(idx, seg);
        } else if out.ack.valid && !out.established {
            self.confirm_join(idx);
        }
        if self.mode.reads_options() && (was_synchronized || out.established) {
            self.process_mptcp_options(now, idx, seg, &out, payload.len());
        }
        if self.mode.fallback().is_some() {
            self.fallback_ack(idx, out.ack.valid, out.ack.window);
        }
        if let Some((ssn, skip)) = out.data
            && let Some(data) = payload.get(skip..)
        {
            self.place_data(now, idx, ssn, data);
        }
        if self.mode.fallback().is_none()
            && self.subflows[idx].sf.state == crate::subflow::State::CloseWait
        {
            // The peer closed this subflow (not the connection): close our side too.
            self.subflows[idx].sf.close();
        }
        if self.subflows.get(idx).is_some_and(|e| e.sf.is_closed()) {
            self.on_subflow_closed(now, idx);
        }
        if let Some(old) = replaced {
            self.drop_subflow(now, old);
            if let Some(i) = self.index_of(id) {
                self.route_to_subflow(i);
            }
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
            .mode
            .fallback()
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
                        && self.subflows[idx].initial
                        && data_len > 0
                    {
                        self.subflows[idx].rx_maps.insert(RxMapping {
                            ssn: 1,
                            dsn: 1,
                            len: data_len as u64,
                            checksum,
                            fin: false,
                        });
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
            match self.expand_data_ack(ack) {
                Some(off) if out.ack.valid => self.on_data_ack_offset(off, out.ack.window),
                Some(off) => self.on_data_ack_offset(off, 0),
                // Acknowledges bytes never sent: ignored, it releases nothing.
                None => self.stats.signals_ignored += 1,
            }
        }
        if let Some(m) = dss.mapping {
            let ssn = unwrap32(m.ssn, self.subflows[idx].sf.rcv_nxt());
            let dsn = self.expand_peer_dsn(m.dsn);
            if dsn > self.recv.window_end() + MAX_DSN_AHEAD {
                // A 64-bit DSN no honest peer could use here (and whose end could overflow):
                // nothing it maps can be placed.
                self.stats.signals_ignored += 1;
                return;
            }
            if m.data_len == 0 {
                if self.infinite_mapping_plausible(dsn) {
                    self.on_infinite_mapping(idx, ssn, dsn);
                } else {
                    self.stats.signals_ignored += 1;
                }
                return;
            }
            let standalone_fin = dss.data_fin && m.ssn == 0 && m.data_len == 1;
            if dss.data_fin {
                let fin_at = dsn + m.data_len as u64 - 1;
                if !self.on_peer_data_fin(now, idx, fin_at) {
                    self.stats.signals_ignored += 1;
                    return;
                }
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
        let fin_sent = self.send_close.fin_sent();
        let max_ack = self.data_nxt.max(self.data_una) + fin_sent as u64;
        if ack > max_ack {
            return;
        }
        if ack > self.data_una {
            let end = self.data_end();
            if fin_sent && ack > end {
                self.send_close = SendClose::FinAcked;
                self.timers.stop(Timer::DataFinRtx);
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

    /// Drops sent bytes the peer acknowledged at the data level, but only those no live
    /// subflow may still have to retransmit: a subflow fills its own sequence space with the
    /// real bytes, never filler, so a bogus DATA_ACK cannot turn into corrupted data.
    pub(crate) fn release_send_buffer(&mut self) {
        let floor = self
            .subflows
            .iter()
            .filter_map(|e| e.sf.sent.lowest_dsn())
            .fold(self.data_una, u64::min);
        self.send_buf.set_acked(self.data_una);
        self.send_buf.release_to(floor);
    }

    /// The peer's DATA_FIN at data offset `fin_at`. Returns false, acting on nothing, when it
    /// cannot be genuine: before data already received, beyond the receive window, or
    /// elsewhere than a DATA_FIN seen before (the stream has one end).
    fn on_peer_data_fin(&mut self, now: Instant, idx: usize, fin_at: u64) -> bool {
        let plausible = match self.peer_fin {
            Some(f) => f == fin_at,
            None => {
                fin_at >= self.recv.rcv_nxt()
                    && fin_at <= self.recv.window_end()
                    && self.recv.highest_held().is_none_or(|h| fin_at >= h)
            }
        };
        if !plausible {
            return false;
        }
        self.peer_fin = Some(fin_at);
        self.subflows[idx].sf.request_ack();
        self.check_peer_fin(now);
        true
    }

    /// RFC 8684 §3.7: the peer switches to an infinite mapping only on the one subflow left,
    /// after a checksum failure (MP_FAIL) — which needs checksums — and from a point the
    /// data stream has reached (a gap before it could never fill).
    fn infinite_mapping_plausible(&self, dsn: u64) -> bool {
        let single = self.subflows.iter().filter(|e| e.usable()).count() <= 1;
        single && (self.checksum || self.rx_fail_dsn.is_some()) && dsn <= self.recv.rcv_nxt()
    }

    pub(crate) fn check_peer_fin(&mut self, _now: Instant) {
        if self.peer_fin_consumed {
            return;
        }
        if let Some(f) = self.peer_fin
            && self.recv.rcv_nxt() >= f
        {
            self.peer_fin_consumed = true;
            self.events.push_back(Event::Readable);
            for e in &mut self.subflows {
                if e.sf.state.can_receive() {
                    e.sf.request_ack();
                }
            }
        }
    }

    /// Resets subflow `idx` with an MP_TCPRST reason.
    pub(crate) fn reset_subflow(&mut self, now: Instant, idx: usize, reason: TcpRstReason) {
        self.subflows[idx].rst_reason = Some(reason);
        self.abort_subflow(now, idx);
    }

    /// Resets subflow `idx` and does the bookkeeping of a closed subflow.
    pub(crate) fn abort_subflow(&mut self, now: Instant, idx: usize) {
        self.subflows[idx].sf.abort();
        self.on_subflow_closed(now, idx);
    }

    /// Bookkeeping when a subflow stops: reinject what it still owed, report the path down,
    /// and close the connection if nothing can carry it any more.
    pub(crate) fn on_subflow_closed(&mut self, now: Instant, idx: usize) {
        let e = &mut self.subflows[idx];
        let was_up = match e.phase {
            SubflowPhase::Closed { .. } => return,
            phase => phase == SubflowPhase::Up,
        };
        e.phase = SubflowPhase::Closed { was_up };
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
        if self.closed_paths.len() == 16 {
            self.closed_paths.remove(0);
        }
        let mut last = super::path_stats(&self.subflows[idx]);
        last.state = "closed";
        self.closed_paths.push(last);
        let e = &self.subflows[idx];
        if e.kind.is_cellular() {
            self.paths.cellular_closed_bytes +=
                e.sf.counters.bytes_sent + e.sf.counters.bytes_received;
        }
        let e = &self.subflows[idx];
        if was_up && let Some(path) = e.path {
            self.events
                .push_back(Event::PathDown { path, kind: e.kind });
        }
        let (id, initial, path) = (e.id, e.initial, e.path);
        self.paths.on_subflow_closed(now, path, reason);
        if self.mode.fallback().is_some_and(|f| f.subflow == id)
            && reason != Some(CloseReason::Finished)
        {
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
        // No subflow left, not even one still connecting (a new one stops the timer).
        let any_live = self.subflows.iter().any(|e| !e.sf.is_closed());
        if !any_live && self.nothing_to_join() {
            self.close(CloseError::InitialPathLost);
            return;
        }
        if !any_live && !self.timers.is_set(Timer::NoPath) {
            self.timers
                .set(Timer::NoPath, now + self.cfg.no_path_timeout);
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
        let done = if let Some(fb) = self.mode.fallback() {
            self.index_of(fb.subflow).is_none_or(|i| {
                let sf = &self.subflows[i].sf;
                self.send_close.app_closed() && sf.peer_finished() && sf.all_acked()
            })
        } else {
            self.send_close == SendClose::FinAcked && self.peer_fin_consumed
        };
        if done {
            for e in &mut self.subflows {
                e.sf.close();
            }
            self.close(CloseError::Finished);
        }
    }
}
