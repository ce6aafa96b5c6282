//! Sending on a subflow: which control segment is due, how much new data the congestion
//! window, the peer's window and the pacer allow, header construction, and bookkeeping of
//! what was sent.

use super::{SentSeg, State, Subflow};
use crate::seq::to_wire;
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};
use std::time::Instant;

/// A segment the subflow needs sent that is not new data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Reset (we aborted the subflow).
    Rst,
    /// The SYN or SYN/ACK, first transmission or retransmission.
    Syn,
    /// Our FIN (first transmission; retransmissions come through the lost-segment path).
    Fin,
    /// A keepalive probe: an ACK one below `snd_una`, which the peer must answer.
    KeepAlive,
    /// A pure ACK.
    Ack,
}

impl Subflow {
    /// The most urgent non-data segment due, if any.
    pub(crate) fn next_control(&self) -> Option<Control> {
        if self.rst_pending {
            return Some(Control::Rst);
        }
        if self.state == State::Closed {
            return None;
        }
        if matches!(self.state, State::SynSent | State::SynReceived) {
            return self
                .sent
                .front()
                .filter(|s| s.syn && s.lost)
                .map(|_| Control::Syn);
        }
        if self.fin_wanted
            && self.fin_ssn.is_none()
            && matches!(self.state, State::Established | State::CloseWait)
        {
            return Some(Control::Fin);
        }
        if self.keepalive_due {
            return Some(Control::KeepAlive);
        }
        if self.ack_now {
            return Some(Control::Ack);
        }
        None
    }

    /// Whether the connection may give this subflow new data at all.
    pub(crate) fn accepts_new_data(&self) -> bool {
        self.state.can_send() && !self.fin_wanted && self.fin_ssn.is_none()
    }

    /// How many bytes of new data the congestion window and the peer's subflow window allow
    /// now. Pacing is checked separately with `pacing_allows`.
    pub(crate) fn send_room(&self) -> u64 {
        if !self.accepts_new_data() {
            return 0;
        }
        let cwnd_room = self.cc.window().saturating_sub(self.sent.in_flight);
        let wnd_room = self.peer_wnd_edge.saturating_sub(self.snd_nxt);
        cwnd_room.min(wnd_room)
    }

    /// How many bytes the next new segment may carry, for a full segment of `full` bytes:
    /// with any room left in the congestion window, a whole segment (as a stack counting
    /// its window in packets sends one), so a window that is not a multiple of the segment
    /// size does not cut the stream into short segments for good, each costing as much to
    /// build, send, receive and acknowledge as a full one (issue 20). The congestion window
    /// is overshot by less than one segment; the peer's window never is.
    pub(crate) fn segment_room(&self, full: u64) -> u64 {
        if !self.accepts_new_data() {
            return 0;
        }
        let cwnd_room = self.cc.window().saturating_sub(self.sent.in_flight);
        if cwnd_room == 0 {
            return 0;
        }
        let wnd_room = self.peer_wnd_edge.saturating_sub(self.snd_nxt);
        cwnd_room.max(full).min(wnd_room)
    }

    /// Room in the congestion window for a retransmission.
    pub(crate) fn retransmit_room(&self) -> u64 {
        self.cc.window().saturating_sub(self.sent.in_flight)
    }

    /// The pacer's verdict for `bytes` now; when it says wait, a timer is armed.
    pub(crate) fn pacing_allows(&mut self, now: Instant, bytes: u64) -> bool {
        if !self.cfg.pacing || !self.rtt.has_samples() {
            return true;
        }
        let mss = self.effective_mss() as u64;
        match self.pacer.delay_until(
            now,
            bytes,
            self.cc.window(),
            self.rtt.srtt(),
            mss,
            self.cc.in_slow_start(),
        ) {
            None => true,
            Some(t) => {
                self.timers.pacing = Some(t);
                false
            }
        }
    }

    /// The first segment waiting for retransmission, if the window lets it go. After a
    /// timeout the first segment always goes (that is the point of the timeout).
    pub(crate) fn next_retransmission(&self) -> Option<(usize, SentSeg)> {
        let i = self.sent.first_lost()?;
        let seg = *self.sent.get(i)?;
        if seg.syn {
            return None;
        }
        let fits = seg.seq_len() <= self.retransmit_room() || self.sent.in_flight == 0;
        fits.then_some((i, seg))
    }

    /// Builds the TCP header for a segment at subflow offset `seq` with `flags`, advertising
    /// `window` bytes. MPTCP options and SACK blocks are added by the caller.
    pub(crate) fn header(&self, now: Instant, flags: TcpFlags, seq: u64, window: u64) -> TcpRepr {
        let mut options = TcpOptions::default();
        let syn = flags.contains(TcpFlags::SYN);
        let ack = flags.contains(TcpFlags::ACK) || !syn;
        let mut flags = flags;
        if ack {
            flags.insert(TcpFlags::ACK);
        }
        if syn {
            options.mss = Some(self.cfg.mss);
            let offer_ws = self.state == State::SynSent || self.rcv_wscale > 0;
            if offer_ws {
                options.window_scale = Some(self.cfg.window_scale);
            }
            options.sack_permitted =
                self.cfg.sack && (self.state == State::SynSent || self.sack_ok);
            let offer_ts = self.cfg.timestamps && (self.state == State::SynSent || self.ts_ok);
            if offer_ts {
                options.timestamps = Some((self.ts_now(now), self.ts_recent));
            }
        } else if self.ts_ok {
            options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        let shift = if syn { 0 } else { self.rcv_wscale };
        let window = (window >> shift).min(0xffff) as u16;
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: SeqNum(to_wire(self.iss, seq)),
            ack: if ack {
                SeqNum(to_wire(self.irs, self.rcv_nxt))
            } else {
                SeqNum(0)
            },
            flags,
            window,
            urgent: 0,
            options,
        }
    }

    /// Adds as many SACK blocks as fit in the option space left. The block holding the most
    /// recently received out-of-order data goes first (RFC 2018).
    pub(crate) fn add_sack_blocks(&self, repr: &mut TcpRepr) {
        if !self.sack_ok || self.rcv_ooo.is_empty() {
            return;
        }
        let first = self.last_ooo.clone().filter(|r| r.start > self.rcv_nxt);
        let blocks = first.iter().cloned().chain(
            self.rcv_ooo
                .iter()
                .rev()
                .filter(|r| Some(*r) != first.as_ref())
                .cloned(),
        );
        for r in blocks {
            let block = (
                SeqNum(to_wire(self.irs, r.start)),
                SeqNum(to_wire(self.irs, r.end)),
            );
            // A SACK option costs 2 bytes plus 8 per block, after two NOPs.
            let extra = if repr.options.sack_blocks.is_empty() {
                12
            } else {
                8
            };
            if repr.options.len() + extra > crate::wire::MAX_OPTIONS_LEN
                || repr.options.sack_blocks.push(block).is_err()
            {
                break;
            }
        }
    }

    /// Sequence offset for the next new segment.
    pub(crate) fn next_seq(&self) -> u64 {
        self.snd_nxt
    }

    /// Records that a segment carrying the current ACK went out (any segment does).
    pub(crate) fn on_segment_sent(&mut self, now: Instant, bytes: u64) {
        self.ack_now = false;
        self.ack_pending = false;
        self.unacked_segments = 0;
        self.timers.delayed_ack = None;
        self.last_sent = now;
        self.counters.segments_sent += 1;
        if bytes > 0 && self.cfg.pacing {
            self.pacer.on_sent(now, bytes);
        }
    }

    /// Records new data sent at `snd_nxt`.
    pub(crate) fn on_data_sent(&mut self, now: Instant, len: u32, dsn: u64, data_fin: bool) {
        let seg = SentSeg {
            ssn: self.snd_nxt,
            len,
            dsn,
            data_fin,
            fin: false,
            syn: false,
            sent_at: now,
            retransmitted: false,
            sacked: false,
            lost: false,
        };
        self.sent.push(seg);
        self.snd_nxt += len as u64;
        self.counters.bytes_sent += len as u64;
        self.on_segment_sent(now, len as u64);
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
    }

    /// Records the retransmission of queued segment `index`.
    pub(crate) fn on_retransmitted(&mut self, now: Instant, index: usize) {
        if let Some(seg) = self.sent.retransmitted(index, now) {
            self.counters.retransmissions += 1;
            self.counters.bytes_retransmitted += seg.len as u64;
            self.on_segment_sent(now, seg.seq_len());
            if self.timers.rto.is_none() {
                self.timers.rto = Some(now + self.rtt.rto());
            }
        }
    }

    /// Records that a control segment went out.
    pub(crate) fn on_control_sent(&mut self, now: Instant, control: Control) {
        match control {
            Control::Rst => {
                self.rst_pending = false;
                self.last_sent = now;
            }
            Control::Syn => {
                self.sent.retransmitted(0, now);
                // The first SYN is not a retransmission for Karn's rule.
                if self.syn_count == 0
                    && let Some(s) = self.sent.get_mut(0)
                {
                    s.retransmitted = false;
                }
                self.on_segment_sent(now, 0);
                self.timers.rto = Some(now + self.rtt.rto());
            }
            Control::Fin => {
                let ssn = self.snd_nxt;
                self.sent.push(SentSeg {
                    ssn,
                    len: 0,
                    dsn: 0,
                    data_fin: false,
                    fin: true,
                    syn: false,
                    sent_at: now,
                    retransmitted: false,
                    sacked: false,
                    lost: false,
                });
                self.fin_ssn = Some(ssn);
                self.snd_nxt += 1;
                self.state = match self.state {
                    State::CloseWait => State::LastAck,
                    _ => State::FinWait1,
                };
                self.on_segment_sent(now, 1);
                if self.timers.rto.is_none() {
                    self.timers.rto = Some(now + self.rtt.rto());
                }
            }
            Control::KeepAlive => {
                self.keepalive_due = false;
                self.probe_sent_at.get_or_insert(now);
                self.on_segment_sent(now, 0);
            }
            Control::Ack => self.on_segment_sent(now, 0),
        }
    }

    /// Sequence offset a keepalive probe carries: one below `snd_una`, so the peer treats
    /// it as a duplicate and answers with an ACK.
    pub(crate) fn keepalive_seq(&self) -> u64 {
        self.snd_una.saturating_sub(1)
    }
}
