//! Sending: control segments, subflow retransmissions, data chosen by the scheduler, pure
//! ACKs — each with the MPTCP options it needs — encoded in the endpoint's framing.

use super::{CloseError, Connection, SendClose, SubflowEntry, SubflowPhase, Timer};
use crate::sched::{SchedContext, SchedView};
use crate::subflow::{Control, SentSeg, State};
use crate::wire::{self, DataSeq, Dss, DssMapping, TcpFlags, TcpRepr};
use std::net::SocketAddr;
use std::time::Instant;

/// A datagram (or raw segment) to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The address to send from (the subflow's local end).
    pub local: SocketAddr,
    /// The address to send to.
    pub remote: SocketAddr,
    /// Bytes written into the caller's buffer.
    pub len: usize,
}

/// Most subflows the scheduler compares at once.
const MAX_SCHED: usize = 16;

/// What kind of segment options are being built for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Seg {
    Syn,
    PureAck,
    Fin,
    Rst,
    Data {
        dsn: u64,
        ssn: u64,
        len: u32,
        data_fin: bool,
    },
}

impl Connection {
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.reap_subflows();
        self.fallback_fin_if_done();
        let n = self.subflows.len();
        if n == 0 {
            return None;
        }
        let start = self.rr_cursor % n;
        self.rr_cursor = self.rr_cursor.wrapping_add(1);
        for k in 0..n {
            let i = (start + k) % n;
            if let Some(t) = self.send_control(now, i, buf, true) {
                return Some(t);
            }
        }
        for k in 0..n {
            let i = (start + k) % n;
            if let Some(t) = self.send_retransmission(now, i, buf) {
                return Some(t);
            }
        }
        if let Some(t) = self.send_data(now, buf) {
            return Some(t);
        }
        if let Some(t) = self.send_data_fin_alone(now, buf) {
            return Some(t);
        }
        for k in 0..n {
            let i = (start + k) % n;
            if let Some(t) = self.send_control(now, i, buf, false) {
                return Some(t);
            }
        }
        None
    }

    /// Removes subflows that are closed and have nothing left to say.
    fn reap_subflows(&mut self) {
        let mut i = 0;
        while i < self.subflows.len() {
            let e = &self.subflows[i];
            let accounted = matches!(e.phase, SubflowPhase::Closed { .. });
            if e.sf.is_closed() && e.sf.next_control().is_none() && accounted {
                self.remove_subflow(i);
            } else {
                i += 1;
            }
        }
    }

    /// A control segment, or (when `urgent` is false) a pure ACK. With `urgent`, pure ACKs
    /// are sent only when they carry something a data segment cannot (SACK blocks, MPTCP
    /// signals, the MP_JOIN third ACK).
    fn send_control(
        &mut self,
        now: Instant,
        idx: usize,
        buf: &mut [u8],
        urgent: bool,
    ) -> Option<Transmit> {
        let signal = self.has_signal(idx);
        let control = match self.subflows[idx].sf.next_control() {
            Some(Control::Ack) if urgent && !signal && !self.subflows[idx].sf.has_sack_info() => {
                return None;
            }
            Some(c) => c,
            None if signal && self.subflows[idx].sf.state.is_synchronized() => Control::Ack,
            None => return None,
        };
        let e = &self.subflows[idx];
        let window = self.recv.window();
        let (repr, kind) = match control {
            Control::Rst => (e.sf.header(now, TcpFlags::RST, e.sf.snd_nxt(), 0), Seg::Rst),
            Control::Syn => {
                let flags = if e.sf.state == State::SynReceived {
                    TcpFlags::SYN | TcpFlags::ACK
                } else {
                    TcpFlags::SYN
                };
                (e.sf.header(now, flags, 0, window), Seg::Syn)
            }
            Control::Fin => (
                e.sf.header(now, TcpFlags::FIN | TcpFlags::ACK, e.sf.snd_nxt(), window),
                Seg::Fin,
            ),
            Control::KeepAlive => (
                e.sf.header(now, TcpFlags::ACK, e.sf.keepalive_seq(), window),
                Seg::PureAck,
            ),
            Control::Ack => (
                e.sf.header(now, TcpFlags::ACK, e.sf.snd_nxt(), window),
                Seg::PureAck,
            ),
        };
        let mut repr = repr;
        let sent = self.add_mptcp_options(now, idx, &mut repr, kind);
        if matches!(kind, Seg::PureAck | Seg::Fin) {
            self.subflows[idx].sf.add_sack_blocks(&mut repr);
        }
        let t = self.encode(idx, &repr, &[], buf)?;
        self.commit_mptcp_options(idx, &sent);
        self.subflows[idx].sf.on_control_sent(now, control);
        Some(t)
    }

    /// Something only a pure ACK can carry is waiting on this subflow.
    fn has_signal(&self, idx: usize) -> bool {
        let e = &self.subflows[idx];
        if !e.usable() || !self.signals_allowed() {
            return false;
        }
        e.prio_pending.is_some()
            || e.fail_pending.is_some()
            || (self.paths.has_signal() && self.signal_carrier() == Some(idx))
    }

    /// MPTCP signals (MP_PRIO, ADD_ADDR, ...) go out only once segments carry DSS options,
    /// i.e. after the MP_CAPABLE exchange is complete, and not after a fallback.
    fn signals_allowed(&self) -> bool {
        self.fully_established && self.mode.fallback().is_none() && self.keys.remote.is_some()
    }

    /// The subflow that carries ADD_ADDR/REMOVE_ADDR: the first usable one.
    pub(crate) fn signal_carrier(&self) -> Option<usize> {
        self.subflows.iter().position(|e| e.usable())
    }

    fn send_retransmission(
        &mut self,
        now: Instant,
        idx: usize,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let (i, seg) = self.subflows[idx].sf.next_retransmission()?;
        if !self.subflows[idx].sf.pacing_allows(now, seg.seq_len()) {
            return None;
        }
        let t = self.build_data_segment(now, idx, &seg, buf)?;
        self.subflows[idx].sf.on_retransmitted(now, i);
        Some(t)
    }

    /// Writes a data (or FIN) segment that repeats `seg` exactly.
    fn build_data_segment(
        &mut self,
        now: Instant,
        idx: usize,
        seg: &SentSeg,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        if !self.bytes_held(seg.dsn, seg.len as u64) {
            return None;
        }
        let window = self.recv.window();
        let e = &self.subflows[idx];
        let mut flags = TcpFlags::ACK;
        if seg.fin {
            flags.insert(TcpFlags::FIN);
        }
        let mut repr = e.sf.header(now, flags, seg.ssn, window);
        let kind = if seg.len > 0 || seg.data_fin {
            Seg::Data {
                dsn: seg.dsn,
                ssn: seg.ssn,
                len: seg.len,
                data_fin: seg.data_fin,
            }
        } else {
            Seg::Fin
        };
        let sent = self.add_mptcp_options(now, idx, &mut repr, kind);
        let len = seg.len as usize;
        let send_buf = &self.send_buf;
        let t = self.encode_with(idx, &repr, len, buf, |out| {
            send_buf.copy_out(seg.dsn, out);
        })?;
        self.commit_mptcp_options(idx, &sent);
        Some(t)
    }

    /// New data, reinjected data, or a subflow's own queue, on the subflow the scheduler
    /// picks.
    fn send_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        // Subflows with their own queue (redundant copies) first.
        for idx in 0..self.subflows.len() {
            let e = &self.subflows[idx];
            if e.own_queue.is_empty() || !e.usable() || e.sf.send_room() == 0 {
                continue;
            }
            let first = e.own_queue.first()?;
            if let Some(t) = self.send_chunk(now, idx, first.start, first.end - first.start, buf) {
                let e = &mut self.subflows[idx];
                if let Some(sent) = e.sf.sent.back().copied() {
                    e.own_queue.remove(sent.dsn..sent.dsn + sent.len as u64);
                }
                return Some(t);
            }
        }

        let (start, avail, from_reinject) = if let Some(r) = self.reinject.first() {
            (r.start, r.end - r.start, true)
        } else {
            let mut end = self.data_end().min(self.peer_wnd_end.max(self.data_una));
            if self.data_nxt >= end && self.probe_window && self.data_nxt < self.data_end() {
                // Zero-window probe: one byte past the window makes the peer answer with
                // its current window (RFC 9293 §3.8.6.1).
                end = self.data_nxt + 1;
            }
            if self.data_nxt >= end {
                self.arm_persist(now);
                return None;
            }
            (self.data_nxt, end - self.data_nxt, false)
        };
        self.timers.stop(Timer::Persist);
        let idx = if from_reinject {
            self.pick_for_reinjection(now)?
        } else {
            self.pick_for_new_data(now)?
        };
        let t = self.send_chunk(now, idx, start, avail, buf)?;
        self.probe_window = false;
        let sent = *self.subflows[idx].sf.sent.back()?;
        let sent_end = sent.dsn + sent.len as u64;
        if from_reinject {
            self.reinject.remove(sent.dsn..sent_end);
        } else {
            self.data_nxt = sent_end;
            self.sent_high = self.sent_high.max(sent_end);
            if self.scheduler.redundant() || self.duplicate_small_write(now) {
                let cellular_ok = self.paths.cellular_allowed();
                for (j, e) in self.subflows.iter_mut().enumerate() {
                    if j != idx && e.usable() && (cellular_ok || !e.kind.is_cellular()) {
                        e.own_queue.insert(sent.dsn..sent_end);
                    }
                }
            }
        }
        Some(t)
    }

    /// Sends up to `avail` bytes from data offset `dsn` as one new segment on `idx`.
    fn send_chunk(
        &mut self,
        now: Instant,
        idx: usize,
        dsn: u64,
        avail: u64,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let window = self.recv.window();
        let room = self.subflows[idx].sf.send_room();
        if room == 0 {
            return None;
        }
        let e = &self.subflows[idx];
        let ssn = e.sf.next_seq();
        let mut repr = e.sf.header(now, TcpFlags::ACK, ssn, window);
        // Options first (their size limits the payload): planned for one byte, only to
        // be measured; the segment's own are built below.
        self.plan_mptcp_options(
            idx,
            Seg::Data {
                dsn,
                ssn,
                len: 1,
                data_fin: false,
            },
        )
        .write(&mut repr);
        let e = &self.subflows[idx];
        let opt_len = repr.options.len();
        let mss = (e.sf.effective_mss() as usize)
            .saturating_sub(opt_len)
            .max(1);
        let hdr = self.framing.header_len(&repr);
        let len = (mss as u64)
            .min(avail)
            .min(e.sf.segment_room(mss as u64))
            .min(buf.len().saturating_sub(hdr) as u64)
            .min(u16::MAX as u64 - 1) as u32;
        if len == 0 {
            return None;
        }
        if !self.subflows[idx].sf.pacing_allows(now, len as u64) {
            return None;
        }
        let end = dsn + len as u64;
        if !self.bytes_held(dsn, len as u64) {
            return None;
        }
        let data_fin = self.send_close.app_closed()
            && end == self.data_end()
            && self.mode.fallback().is_none();
        let mut repr = self.subflows[idx]
            .sf
            .header(now, TcpFlags::ACK, ssn, window);
        if end == self.data_end() {
            repr.flags.insert(TcpFlags::PSH);
        }
        let sent = self.add_mptcp_options(
            now,
            idx,
            &mut repr,
            Seg::Data {
                dsn,
                ssn,
                len,
                data_fin,
            },
        );
        let send_buf = &self.send_buf;
        let t = self.encode_with(idx, &repr, len as usize, buf, |out| {
            send_buf.copy_out(dsn, out);
        })?;
        self.commit_mptcp_options(idx, &sent);
        let e = &mut self.subflows[idx];
        e.sf.on_data_sent(now, len, dsn, data_fin);
        e.carried.insert(dsn..end);
        let cellular = e.kind.is_cellular();
        if data_fin {
            self.on_data_fin_sent(now);
        }
        if cellular {
            self.stats.cellular_bytes += len as u64;
        }
        Some(t)
    }

    /// DATA_FIN on a pure ACK, when no data segment can carry it (all data already sent)
    /// or it needs retransmission.
    fn send_data_fin_alone(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if !matches!(self.send_close, SendClose::FinQueued | SendClose::FinSent)
            || self.mode.fallback().is_some()
            || !self.is_mptcp()
        {
            return None;
        }
        if self.data_nxt < self.data_end() || !self.reinject.is_empty() {
            return None;
        }
        if self.timers.is_set(Timer::DataFinRtx) {
            // Sent and not yet due again.
            return None;
        }
        let idx = self.subflows.iter().position(|e| e.usable())?;
        let window = self.recv.window();
        let e = &self.subflows[idx];
        let mut repr = e.sf.header(now, TcpFlags::ACK, e.sf.snd_nxt(), window);
        let fin = self.data_end();
        repr.options
            .push_mptcp(Dss {
                data_ack: self.data_ack(),
                mapping: Some(DssMapping {
                    dsn: DataSeq::Wide(self.keys.local_idsn.wrapping_add(fin)),
                    ssn: 0,
                    data_len: 1,
                    checksum: self.checksum.then(|| {
                        wire::dss_checksum(self.keys.local_idsn.wrapping_add(fin), 0, 1, &[])
                    }),
                }),
                data_fin: true,
            })
            .ok()?;
        let t = self.encode(idx, &repr, &[], buf)?;
        self.subflows[idx].sf.on_control_sent(now, Control::Ack);
        self.on_data_fin_sent(now);
        Some(t)
    }

    /// The DATA_ACK to put in DSS options: next expected data offset (plus the DATA_FIN).
    /// Its low 32 bits are enough (RFC 8684 §3.3; the kernel sends those too): the peer
    /// expands them near its own unacknowledged offset, and 4 bytes fewer per segment is
    /// 0.3 % more payload in every full-sized packet.
    pub(crate) fn data_ack(&self) -> Option<DataSeq> {
        self.keys.remote?;
        let off = self.recv.rcv_nxt() + self.peer_fin_consumed as u64;
        Some(DataSeq::Narrow(
            self.keys.remote_idsn.wrapping_add(off) as u32
        ))
    }

    /// Chooses the subflow for the next chunk of new data.
    fn pick_for_new_data(&mut self, now: Instant) -> Option<usize> {
        let mut views = [SchedView::default(); MAX_SCHED];
        let n = self.data_candidates(now, &mut views);
        self.pick_among(&views[..n])
    }

    /// Chooses the subflow for data sent again after its first subflow failed or stalled
    /// (kept apart from new data, as the kernel's `get_retrans` is from `get_send`; today
    /// both choose the same way).
    fn pick_for_reinjection(&mut self, now: Instant) -> Option<usize> {
        let mut views = [SchedView::default(); MAX_SCHED];
        let n = self.data_candidates(now, &mut views);
        self.pick_among(&views[..n])
    }

    /// Fills `views` with the subflows that may carry shared data now and returns how many:
    /// usable, allowed by the fallback and by the path manager (the active path and the
    /// cost rules). If the active path has nothing usable, any usable subflow the cost rules
    /// allow will do.
    fn data_candidates(&mut self, now: Instant, views: &mut [SchedView; MAX_SCHED]) -> usize {
        let only = self.mode.fallback().map(|f| f.subflow);
        let eligible = |e: &SubflowEntry, strict: bool| {
            e.usable()
                && only.is_none_or(|id| id == e.id)
                && if strict {
                    self.paths.carries_data(e.kind, e.path)
                } else {
                    self.paths.cellular_allowed() || !e.kind.is_cellular()
                }
        };
        let strict = self.subflows.iter().any(|e| eligible(e, true));
        // A timeout without progress since, or silence past the unresponsive deadline: how a
        // server notices on its own that the path it sends on died (the client may have
        // nothing outstanding to notice it with, as in a download).
        let failing = |e: &SubflowEntry| {
            e.sf.rto_count > 0 || self.unresponsive_since(e).is_some_and(|t| t <= now)
        };
        // Backups carry data only when no regular subflow can: none usable, or all of
        // them failed.
        let any_regular = self
            .subflows
            .iter()
            .any(|e| eligible(e, strict) && !e.backup_remote && !e.backup_local && !failing(e));
        let mut n = 0;
        for (i, e) in self.subflows.iter().enumerate() {
            if n == MAX_SCHED {
                break;
            }
            if !eligible(e, strict) {
                continue;
            }
            let backup = e.backup_remote || e.backup_local;
            if any_regular && backup {
                continue;
            }
            views[n] = SchedView {
                index: i,
                srtt: e.sf.srtt(),
                rtt_known: e.sf.has_rtt_sample(),
                cwnd: e.sf.cwnd(),
                in_flight: e.sf.in_flight(),
                room: e.sf.send_room(),
                mss: e.sf.effective_mss() as u64,
                stale: failing(e),
                backup,
            };
            n += 1;
        }
        // A candidate whose pacer holds it back has no room now: the scheduler then spills
        // to the next one instead of leaving every path idle until the fast one's pacer
        // opens (with pacing the fast path rarely fills its window, so the slow one would
        // carry little).
        for v in &mut views[..n] {
            if v.room > 0 && !self.subflows[v.index].sf.pacing_allows(now, v.mss) {
                v.room = 0;
            }
        }
        n
    }

    /// The scheduler's pick among `views`: fresh subflows first when some are stale.
    fn pick_among(&mut self, views: &[SchedView]) -> Option<usize> {
        let ctx = SchedContext {
            send_window: self.peer_wnd_end.saturating_sub(self.data_nxt),
        };
        let n = views.len();
        let fresh: usize = views.iter().filter(|v| !v.stale).count();
        let pick = if fresh > 0 && fresh < n {
            let mut only_fresh = [SchedView::default(); MAX_SCHED];
            let mut m = 0;
            for v in views.iter().filter(|v| !v.stale) {
                only_fresh[m] = *v;
                m += 1;
            }
            self.scheduler.pick(&only_fresh[..m], ctx)
        } else {
            self.scheduler.pick(views, ctx)
        };
        pick.map(|v| v.index)
    }

    /// Zero window with data waiting: probe after an RTO so a lost window update cannot
    /// deadlock the connection.
    fn arm_persist(&mut self, now: Instant) {
        let waiting = self.data_nxt < self.data_end();
        let idle = self.subflows.iter().all(|e| e.sf.in_flight() == 0);
        if waiting && idle && !self.timers.is_set(Timer::Persist) {
            let rto = self
                .subflows
                .iter()
                .map(|e| e.sf.rtt.rto())
                .min()
                .unwrap_or(std::time::Duration::from_secs(1));
            self.timers.set(Timer::Persist, now + rto);
        }
    }

    fn encode(
        &self,
        idx: usize,
        repr: &TcpRepr,
        payload: &[u8],
        buf: &mut [u8],
    ) -> Option<Transmit> {
        self.encode_with(idx, repr, payload.len(), buf, |out| {
            out.copy_from_slice(payload)
        })
    }

    /// Whether the send buffer still holds `dsn..dsn + len`. It keeps every byte a subflow
    /// may have to send again, so a miss is a bug: the connection fails rather than send
    /// anything but the bytes that belong there (see docs/ARCHITECTURE.md, "Security").
    fn bytes_held(&mut self, dsn: u64, len: u64) -> bool {
        if len == 0 || (dsn >= self.send_buf.start() && dsn + len <= self.send_buf.end()) {
            return true;
        }
        self.abort_with(CloseError::ProtocolViolation(
            "bytes to send are no longer in the send buffer",
        ));
        false
    }

    fn encode_with(
        &self,
        idx: usize,
        repr: &TcpRepr,
        len: usize,
        buf: &mut [u8],
        fill: impl FnOnce(&mut [u8]),
    ) -> Option<Transmit> {
        let e: &SubflowEntry = &self.subflows[idx];
        let n = self
            .framing
            .encode(repr, len, fill, e.sf.local, e.sf.remote, buf)
            .ok()?;
        Some(Transmit {
            local: e.sf.local,
            remote: e.sf.remote,
            len: n,
        })
    }
}
