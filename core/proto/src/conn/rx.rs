//! Receiving: TCP processing on the subflow, then the MPTCP options (DATA_ACK, mappings,
//! DATA_FIN, addresses, priorities, failures, fast close), then placing payload at its data
//! sequence number.

use super::handshake::Verdict;
use super::{CloseError, ConnState, Connection, Event, Fallback, RxMapping};
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
        if self.is_mptcp() && (was_synchronized || out.established) {
            self.process_mptcp_options(now, idx, seg, &out, payload.len());
        } else if self.fallback.is_some() {
            self.fallback_ack(idx, &out);
        }
        if let Some((ssn, skip)) = out.data {
            if let Some(data) = payload.get(skip..) {
                self.place_data(now, idx, ssn, data);
            }
        }
        if self.subflows.get(idx).is_some_and(|e| e.sf.is_closed()) {
            self.on_subflow_closed(now, idx);
        }
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

    /// Plain TCP: the subflow's cumulative ACK is the data ACK.
    fn fallback_ack(&mut self, idx: usize, out: &RxOutcome) {
        let Some(fb) = self.fallback else { return };
        let e = &self.subflows[idx];
        if e.id != fb.subflow || !out.ack.valid {
            return;
        }
        let ack = e.sf.snd_una() + fb.tx_delta;
        let window = out.ack.window;
        self.on_data_ack_offset(ack.min(self.data_end()), window);
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
                MptcpOption::MpFail(f) => self.on_mp_fail(now, idx, f.dsn),
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
                self.on_infinite_mapping(idx, ssn, dsn);
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
        let fin_sent = self.data_fin_sent_at.is_some();
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
        let mut accepted_to = ssn;
        let fb = self.fallback;
        if let Some(fb) = fb.filter(|f| f.subflow == self.subflows[idx].id) {
            accepted_to = self.place_fallback(ssn, data, &fb);
        } else if self.is_mptcp() {
            if self.subflows[idx].rx_maps.find(ssn).is_none()
                && !self.seen_dss
                && self.subflows[idx].initial
                && self.subflows.len() == 1
                && !self.checksum
            {
                // Data with no mapping before any DSS: a middlebox strips our options.
                // RFC 8684 §3.7: continue as plain TCP.
                self.fall_back_midstream(idx);
                if let Some(fb) = self.fallback {
                    accepted_to = self.place_fallback(ssn, data, &fb);
                }
            } else if self.checksum {
                accepted_to = self.place_checked(now, idx, ssn, data);
            } else {
                accepted_to = self.place_mapped(idx, ssn, data);
            }
        }
        let e = &mut self.subflows[idx];
        if accepted_to > ssn {
            e.sf.commit_received(now, ssn..accepted_to, full_sized);
        } else {
            e.sf.request_ack();
        }
        e.rx_maps.prune_below(e.sf.rcv_nxt());
        if self.recv.rcv_nxt() > rcv_before {
            self.events.push_back(Event::Readable);
            self.check_peer_fin(now);
        }
    }

    fn place_fallback(&mut self, ssn: u64, data: &[u8], fb: &Fallback) -> u64 {
        if ssn < fb_rx_start(fb) {
            return ssn + data.len() as u64;
        }
        let dsn = ssn + fb.rx_delta;
        let accepted = self.insert_data(dsn, data);
        ssn + accepted
    }

    /// Inserts at `dsn`; returns how many leading bytes were taken (or were already there).
    fn insert_data(&mut self, dsn: u64, data: &[u8]) -> u64 {
        self.recv.insert(dsn, data);
        let end = dsn + data.len() as u64;
        end.min(self.recv.window_end()).saturating_sub(dsn).max(
            // Bytes below the window start were duplicates: accepted.
            self.recv.rcv_nxt().min(end).saturating_sub(dsn),
        )
    }

    fn place_mapped(&mut self, idx: usize, ssn: u64, data: &[u8]) -> u64 {
        let mut s = ssn;
        let mut off = 0usize;
        while off < data.len() {
            let Some(m) = self.subflows[idx].rx_maps.find(s) else {
                break;
            };
            let n = (data.len() - off).min((m.ssn + m.len - s) as usize);
            let dsn = m.dsn + (s - m.ssn);
            let took = self.insert_data(dsn, &data[off..off + n]) as usize;
            s += took as u64;
            off += took;
            if took < n {
                break;
            }
        }
        s
    }

    /// Checksum mode: a mapping's bytes are collected in subflow order and delivered only
    /// once all of them arrived and the DSS checksum matches.
    fn place_checked(&mut self, now: Instant, idx: usize, ssn: u64, data: &[u8]) -> u64 {
        let mut s = ssn;
        let mut off = 0usize;
        while off < data.len() {
            if s != self.subflows[idx].sf.rcv_nxt() + (s - ssn) {
                break;
            }
            let Some(m) = self.subflows[idx].rx_maps.find(s) else {
                break;
            };
            let e = &mut self.subflows[idx];
            let have = e.staged.len() as u64;
            if m.ssn + have != s {
                // Not the continuation of what is staged (restart for a new mapping).
                if s != m.ssn {
                    break;
                }
                e.staged.clear();
            }
            let n = (data.len() - off).min((m.ssn + m.len - s) as usize);
            e.staged.extend_from_slice(&data[off..off + n]);
            s += n as u64;
            off += n;
            if e.staged.len() as u64 == m.len {
                let staged = std::mem::take(&mut e.staged);
                let ok = m.checksum.is_some_and(|c| {
                    wire::verify_dss_checksum(
                        self.keys.remote_idsn.wrapping_add(m.dsn),
                        m.ssn as u32,
                        (m.len + m.fin as u64) as u16,
                        c,
                        &staged,
                    )
                });
                if ok {
                    self.insert_data(m.dsn, &staged);
                } else {
                    self.on_checksum_failure(now, idx, m.dsn);
                    return s;
                }
            }
        }
        s
    }

    /// A DSS checksum failed: with other subflows, reset this one (its data is reinjected
    /// by the peer); alone, ask for the infinite-mapping fallback with MP_FAIL.
    fn on_checksum_failure(&mut self, now: Instant, idx: usize, dsn: u64) {
        let others = self
            .subflows
            .iter()
            .enumerate()
            .any(|(i, e)| i != idx && e.usable());
        self.subflows[idx].staged.clear();
        if others {
            self.reset_subflow(now, idx, TcpRstReason::MiddleboxInterference);
        } else {
            self.subflows[idx].fail_pending = Some(dsn);
            self.subflows[idx].rx_maps.clear();
            let e = &self.subflows[idx];
            // Everything after the failed mapping is discarded until the infinite mapping
            // tells where the plain byte stream resumes.
            self.fallback = Some(Fallback {
                subflow: e.id,
                tx_delta: self.data_nxt.saturating_sub(e.sf.snd_nxt()),
                rx_delta: 0,
                announce_infinite: false,
            });
            self.rx_fallback_pending = true;
            self.checksum = false;
            self.events.push_back(Event::FellBackToTcp);
            e_request_ack(self, idx);
        }
    }

    /// The peer switched to plain TCP from `ssn` on (data offset `dsn`).
    fn on_infinite_mapping(&mut self, idx: usize, ssn: u64, dsn: u64) {
        let id = self.subflows[idx].id;
        let tx_delta = match self.fallback {
            Some(f) => f.tx_delta,
            None => self
                .data_nxt
                .saturating_sub(self.subflows[idx].sf.snd_nxt()),
        };
        let announce = self.fallback.is_none_or(|f| f.announce_infinite);
        self.fallback = Some(Fallback {
            subflow: id,
            tx_delta,
            rx_delta: dsn.wrapping_sub(ssn),
            announce_infinite: announce && self.fallback.is_none(),
        });
        self.rx_fallback_pending = false;
        self.rx_fallback_from = ssn;
        self.subflows[idx].rx_maps.clear();
    }

    /// We are told our data failed the peer's checksum at `dsn`: fall back to plain TCP,
    /// resending from there with an infinite mapping.
    fn on_mp_fail(&mut self, _now: Instant, idx: usize, dsn: u64) {
        let off = dsn.wrapping_sub(self.keys.local_idsn);
        if off < self.data_una || off > self.data_nxt {
            return;
        }
        let others = self
            .subflows
            .iter()
            .enumerate()
            .any(|(i, e)| i != idx && e.usable());
        if others {
            return;
        }
        let e = &self.subflows[idx];
        let snd_nxt = e.sf.snd_nxt();
        self.fallback = Some(Fallback {
            subflow: e.id,
            tx_delta: off.wrapping_sub(snd_nxt),
            rx_delta: self.fallback.map_or(0, |f| f.rx_delta),
            announce_infinite: true,
        });
        // Resend everything from the failed mapping on as plain TCP bytes.
        self.data_nxt = off;
        self.reinject.clear();
        self.checksum = false;
        self.events.push_back(Event::FellBackToTcp);
    }

    /// Options stripped mid-handshake: continue as plain TCP on the initial subflow.
    fn fall_back_midstream(&mut self, idx: usize) {
        let e = &self.subflows[idx];
        self.fallback = Some(Fallback {
            subflow: e.id,
            tx_delta: self.data_nxt.saturating_sub(e.sf.snd_nxt()),
            rx_delta: self.recv.rcv_nxt().wrapping_sub(e.sf.rcv_nxt()),
            announce_infinite: false,
        });
        self.mptcp = false;
        self.events.push_back(Event::FellBackToTcp);
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
        let mut stranded = Vec::new();
        for seg in e.sf.sent.drain() {
            if seg.len > 0 && !seg.syn {
                stranded.push(seg.dsn..seg.dsn + seg.len as u64);
            }
        }
        for r in stranded {
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

fn fb_rx_start(_fb: &Fallback) -> u64 {
    0
}

fn e_request_ack(c: &mut Connection, idx: usize) {
    c.subflows[idx].sf.request_ack();
}
